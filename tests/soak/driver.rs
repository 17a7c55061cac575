//! The soak run (I/O edge): clients, fault injection with the scripts of
//! tests/cluster, the wait for a steady cluster, evidence. Decisions about
//! the outcome belong to checker.rs.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::time::{sleep, timeout};
use tokio_postgres::Client;

pub use crate::cluster_harness::say;
use crate::cluster_harness::{
    HARNESS, Out, Roles, Settings, clock, connect_node, connect_vip, copy_cluster_logs, insert_one,
    recipe, roles, run, script, wait_healthy,
};

use super::checker::{self, Report};
use super::history::{Ack, FaultRecord, History, NodeState, RowSet, Sample, WriteError, to_ranges};
use super::plan::{FaultSpec, Kind, Target, describe};

const WRITERS: u32 = 2;
/// Time a fault needs to show before "healthy" means anything.
const SETTLE: Duration = Duration::from_secs(8);

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

const TABLE: &str = "CREATE TABLE IF NOT EXISTS soak_rows (run text, writer int, id bigint, \
                     at timestamptz DEFAULT clock_timestamp(), PRIMARY KEY (run, writer, id))";

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

#[derive(Default)]
pub struct Recorder {
    acks: Vec<Ack>,
    errors: Vec<WriteError>,
    samples: Vec<Sample>,
}

struct Flags {
    stop: AtomicBool,
    pause: AtomicBool,
    paused: Vec<AtomicBool>,
}

/// Appends rows (run, writer, 1, 2, 3...) through the VIP, one commit at a
/// time (synchronous replication as configured), recording every
/// acknowledged commit and every failure with its time.
async fn writer(w: u32, s: Settings, run_id: String, flags: Arc<Flags>, rec: Arc<Mutex<Recorder>>) {
    let mut client: Option<Client> = None;
    let mut id: i64 = 0;
    let fail = |e: String| {
        let mut short = e;
        short.truncate(200);
        rec.lock().unwrap().errors.push(WriteError { writer: w, t: now_ms(), error: short });
    };
    while !flags.stop.load(Ordering::Relaxed) {
        if flags.pause.load(Ordering::Relaxed) {
            flags.paused[w as usize - 1].store(true, Ordering::Relaxed);
            sleep(Duration::from_millis(50)).await;
            continue;
        }
        flags.paused[w as usize - 1].store(false, Ordering::Relaxed);
        if client.is_none() {
            match connect_vip(&s, &format!("soak-writer-{w}")).await {
                Ok(c) => client = Some(c),
                Err(e) => {
                    fail(e);
                    sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
        }
        id += 1;
        let c = client.as_ref().expect("connected");
        let (sql, writer) =
            ("INSERT INTO soak_rows (run, writer, id) VALUES ($1, $2, $3)", w as i32);
        match insert_one(c, sql, &[&run_id, &writer, &id]).await {
            Ok(()) => rec.lock().unwrap().acks.push(Ack { writer: w, id, t: now_ms() }),
            Err(e) => {
                fail(e);
                client = None;
            }
        }
        sleep(Duration::from_millis(20)).await;
    }
}

/// Asks one node every 0.2 s whether it accepts writes: not in recovery,
/// transaction_read_only off, and a transaction id can be assigned (a
/// write; synchronous_commit local so that it never waits for standbys).
async fn poll_node(node: String, s: Settings, flags: Arc<Flags>, rec: Arc<Mutex<Recorder>>) {
    let mut conn: Option<(u32, Client)> = None;
    while !flags.stop.load(Ordering::Relaxed) {
        let sent = now_ms();
        let pid = s.init_pid(&node);
        if conn.as_ref().is_some_and(|(p, _)| Some(*p) != pid) {
            conn = None;
        }
        if conn.is_none()
            && let Some(p) = pid
            && let Ok((_, c)) = connect_node(&s, &node).await
            && let Ok(Ok(())) = timeout(
                Duration::from_secs(1),
                c.batch_execute("SET synchronous_commit = local; SET statement_timeout = 1000"),
            )
            .await
        {
            conn = Some((p, c));
        }
        let mut state = NodeState::Unreachable;
        if let Some((_, c)) = &conn {
            let q = timeout(
                Duration::from_secs(1),
                c.query_one(
                    "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only')::bool",
                    &[],
                ),
            )
            .await;
            state = match q {
                Ok(Ok(row)) if row.get::<_, bool>(0) => NodeState::ReadOnly,
                Ok(Ok(_)) => {
                    match timeout(Duration::from_secs(1), c.query_one("SELECT txid_current()", &[]))
                        .await
                    {
                        Ok(Ok(_)) => NodeState::Writable,
                        _ => NodeState::Unreachable,
                    }
                }
                _ => NodeState::Unreachable,
            };
            if state == NodeState::Unreachable {
                conn = None;
            }
        }
        rec.lock().unwrap().samples.push(Sample {
            node: node.clone(),
            sent,
            recv: now_ms(),
            state,
        });
        sleep(Duration::from_millis(200)).await;
    }
}

// ---------------------------------------------------------------------------
// The soak
// ---------------------------------------------------------------------------

pub struct Options {
    pub seed: u64,
    pub faults: Vec<FaultSpec>,
    pub budget: Option<Duration>,
    pub converge_secs: u64,
    pub evidence: String,
}

struct Soak {
    s: Settings,
    o: Options,
    run_id: String,
    flags: Arc<Flags>,
    rec: Arc<Mutex<Recorder>>,
    hist: History,
    hv_offset: u64,
    saved: BTreeSet<usize>,
    log: std::fs::File,
}

impl Soak {
    fn note(&mut self, line: &str) {
        say(line);
        let _ = writeln!(self.log, "{line}");
    }

    /// The history so far, with the clients' records.
    fn snapshot(&self) -> History {
        let mut h = self.hist.clone();
        let r = self.rec.lock().unwrap();
        h.acks = r.acks.clone();
        h.write_errors = r.errors.clone();
        h.samples = r.samples.clone();
        h
    }

    fn last_ack(&self) -> u64 {
        self.rec.lock().unwrap().acks.iter().map(|a| a.t).max().unwrap_or(0)
    }

    /// Pause the writers (each finishes its statement first).
    async fn pause_writers(&self, on: bool) {
        self.flags.pause.store(on, Ordering::Relaxed);
        if !on {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.flags.paused.iter().any(|p| !p.load(Ordering::Relaxed))
            && Instant::now() < deadline
        {
            sleep(Duration::from_millis(50)).await;
        }
    }

    /// Rows on the primary, and every node's checksum of the table once the
    /// standbys replayed what the primary has (writers paused meanwhile).
    async fn read_state(
        &self,
        primary: &str,
    ) -> (Option<RowSet>, u64, BTreeMap<String, Option<String>>) {
        self.pause_writers(true).await;
        let mut rows = None;
        let mut lsn = None;
        let at = now_ms();
        if let Ok((_, c)) = connect_node(&self.s, primary).await {
            if let Ok(Ok(v)) = timeout(
                Duration::from_secs(20),
                c.query(
                    "SELECT writer, id FROM soak_rows WHERE run = $1 ORDER BY writer, id",
                    &[&self.run_id],
                ),
            )
            .await
            {
                let mut by: BTreeMap<u32, Vec<i64>> = BTreeMap::new();
                for r in v {
                    by.entry(r.get::<_, i32>(0) as u32).or_default().push(r.get(1));
                }
                rows = Some(by.into_iter().map(|(w, ids)| (w, to_ranges(&ids))).collect());
            }
            if let Ok(Ok(r)) = timeout(
                Duration::from_secs(5),
                c.query_one("SELECT pg_current_wal_lsn()::text", &[]),
            )
            .await
            {
                lsn = Some(r.get::<_, String>(0));
            }
        }
        let mut sums = BTreeMap::new();
        for n in self.s.nodes.clone() {
            sums.insert(n.clone(), self.checksum(&n, lsn.as_deref()).await);
        }
        self.pause_writers(false).await;
        (rows, at, sums)
    }

    async fn checksum(&self, node: &str, lsn: Option<&str>) -> Option<String> {
        let (_, c) = connect_node(&self.s, node).await.ok()?;
        if let Some(lsn) = lsn {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let r = timeout(
                    Duration::from_secs(2),
                    c.query_one(
                        "SELECT NOT pg_is_in_recovery() OR pg_last_wal_replay_lsn() >= ($1::text)::pg_lsn",
                        &[&lsn],
                    ),
                )
                .await;
                if matches!(&r, Ok(Ok(row)) if row.get::<_, bool>(0)) || Instant::now() > deadline {
                    break;
                }
                sleep(Duration::from_millis(200)).await;
            }
        }
        let r = timeout(
            Duration::from_secs(20),
            c.query_one(
                "SELECT count(*) || ':' || coalesce(md5(string_agg(writer || '.' || id, ',' \
                 ORDER BY writer, id)), '') FROM soak_rows WHERE run = $1",
                &[&self.run_id],
            ),
        )
        .await;
        match r {
            Ok(Ok(row)) => Some(row.get(0)),
            _ => None,
        }
    }

    /// Copy every node's logs and the cluster's state into the evidence.
    async fn save_evidence(&self, label: &str) -> String {
        let dir = format!("{}/{label}", self.o.evidence);
        let more = format!(
            "n=$(quorate_node) || n=${{NODES%% *}}; \
             on_node \"$n\" crm_mon -1 -rf > {dir}/crm_mon.txt 2>&1; \
             {HARNESS}/status.sh --failcounts > {dir}/failcounts.txt 2>&1;"
        );
        let _ = copy_cluster_logs(&dir, &more, Duration::from_secs(120)).await;
        dir
    }

    /// Wait for a steady cluster (wait-healthy.sh, and a commit acknowledged
    /// after the injection) within `bound` seconds. An old primary that the
    /// agent refuses to start, diverged (its exit reason asks for pg_rewind),
    /// is rebuilt as the administrator would (recorded as a repair).
    async fn converge(&mut self, rec: &mut FaultRecord, bound: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(bound);
        let started = Instant::now();
        let mut rebuilt: BTreeSet<String> = BTreeSet::new();
        // Right after a fault the cluster still looks healthy: Corosync
        // notices a lost node after ~3.5 s, a monitor a dead postmaster
        // after up to 6 s, a walsender its vanished standby later still.
        sleep(SETTLE).await;
        loop {
            let left = deadline.saturating_duration_since(Instant::now()).as_secs();
            if left == 0 {
                return false;
            }
            let since = now_ms();
            if wait_healthy(left.min(15)).await
                && self.last_ack() > rec.injected
                && self.all_nodes_answer(since).await
                && self.settled(left.min(30)).await
                && wait_healthy(5).await
            {
                return true;
            }
            if started.elapsed() > Duration::from_secs(15) {
                for n in self.diverged_nodes().await {
                    if rebuilt.insert(n.clone()) {
                        rec.repairs.push(format!("rebuild.sh {n} (start refused, diverged)"));
                        script("rebuild.sh", &[&n], Duration::from_secs(240)).await;
                    }
                }
            }
        }
    }

    /// No transition in flight (`crm_resource --wait`): a recovery that
    /// Pacemaker has planned but not yet carried out is not steady, and
    /// clearing fail counts then would cancel it.
    async fn settled(&self, secs: u64) -> bool {
        let r = roles().await;
        let Some(p) = r.promoted.first() else { return false };
        run(
            &format!("{HARNESS}/on.sh"),
            &[p, "crm_resource", "--wait", &format!("--timeout={secs}s")],
            Duration::from_secs(secs + 20),
        )
        .await
        .ok
    }

    /// Every node's instance answered the poller after `since`, and its
    /// latest answer was not "unreachable".
    async fn all_nodes_answer(&self, since: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let ok = {
                let r = self.rec.lock().unwrap();
                self.s.nodes.iter().all(|n| {
                    r.samples
                        .iter()
                        .rev()
                        .find(|x| x.node == *n)
                        .is_some_and(|x| x.sent >= since && x.state != NodeState::Unreachable)
                })
            };
            if ok || Instant::now() > deadline {
                return ok;
            }
            sleep(Duration::from_millis(200)).await;
        }
    }

    /// Fences logged since the last look belong to the fault just before
    /// (they came after it looked steady: worth a note).
    fn late_fences(&mut self) {
        let (late, off) = self.s.fences_since(self.hv_offset);
        self.hv_offset = off;
        if let Some(f) = self.hist.faults.last_mut()
            && !late.is_empty()
        {
            f.notes.push(format!("fenced after it looked steady: {late:?}"));
            f.fences.extend(late);
        }
    }

    async fn diverged_nodes(&self) -> Vec<String> {
        let Some(live) = self.s.nodes.iter().find(|n| self.s.init_pid(n).is_some()).cloned() else {
            return vec![];
        };
        let mon =
            run(&format!("{HARNESS}/on.sh"), &[&live, "crm_mon", "-1"], Duration::from_secs(30))
                .await;
        self.s
            .nodes
            .iter()
            .filter(|n| {
                mon.stdout
                    .lines()
                    .any(|l| l.contains(&format!(" on {n} returned")) && l.contains("pg_rewind"))
            })
            .cloned()
            .collect()
    }

    /// After a fault that did not converge: undo everything the faults may
    /// have left, then the repairs of tests/cluster (heal, power on,
    /// rebuild.sh of standbys that do not stream, cleanup; up.sh last).
    async fn repair(&mut self, rec: &mut FaultRecord) {
        let s = self.s.clone();
        script("heal.sh", &[], Duration::from_secs(30)).await;
        for n in &s.nodes {
            let _ = std::fs::write(format!("{}/nodes/{n}/autostart", s.state_dir), "1\n");
            let _ = std::fs::write(format!("{}/{n}/cgroup.freeze", s.cg_root), "0\n");
            if s.init_pid(n).is_some() {
                let _ = run(
                    &format!("{HARNESS}/on.sh"),
                    &[n, "pkill", "-CONT", "-u", "postgres"],
                    Duration::from_secs(20),
                )
                .await;
            } else {
                script("power.sh", &["on", n], Duration::from_secs(60)).await;
                rec.repairs.push(format!("power.sh on {n}"));
            }
        }
        script("cleanup.sh", &[], Duration::from_secs(60)).await;
        if wait_healthy(60).await {
            rec.repairs.push("heal, cleanup".into());
            return;
        }
        for n in self.diverged_nodes().await {
            rec.repairs.push(format!("rebuild.sh {n} (diverged)"));
            script("rebuild.sh", &[&n], Duration::from_secs(240)).await;
        }
        let r = roles().await;
        if r.promoted.len() == 1 {
            for n in s.nodes.iter().filter(|n| **n != r.promoted[0]) {
                if !self.streaming(n).await {
                    rec.repairs.push(format!("rebuild.sh {n}"));
                    script("rebuild.sh", &[n], Duration::from_secs(240)).await;
                }
            }
            script("cleanup.sh", &[], Duration::from_secs(60)).await;
            if wait_healthy(60).await {
                return;
            }
        }
        rec.repairs.push("up.sh (new cluster: earlier rows unverifiable)".into());
        self.rebuild_cluster().await;
    }

    async fn streaming(&self, node: &str) -> bool {
        let Ok((_, c)) = connect_node(&self.s, node).await else { return false };
        matches!(
            timeout(Duration::from_secs(2), c.query_opt("SELECT status FROM pg_stat_wal_receiver", &[])).await,
            Ok(Ok(Some(row))) if row.get::<_, String>(0) == "streaming"
        )
    }

    async fn rebuild_cluster(&mut self) {
        self.hist.resets.push(now_ms());
        let out = script("up.sh", &[], Duration::from_secs(400)).await;
        if !out.ok {
            self.note(&format!("up.sh failed: {}", out.stderr.trim()));
        }
        self.s = Settings::load().await;
        self.hv_offset = self.s.fences_since(0).1;
        self.create_table().await;
    }

    async fn create_table(&self) {
        for _ in 0..30 {
            if let Ok(c) = connect_vip(&self.s, "soak-setup").await
                && let Ok(Ok(())) = timeout(Duration::from_secs(10), c.batch_execute(TABLE)).await
            {
                return;
            }
            sleep(Duration::from_secs(1)).await;
        }
    }

    /// Inject one fault; fills targets, allowed fences, injected time.
    async fn inject(
        &mut self,
        spec: &FaultSpec,
        rec: &mut FaultRecord,
        r: &Roles,
    ) -> Result<(), String> {
        let primary = r.promoted.first().cloned().ok_or("no primary")?;
        let standby = |k: u64| -> Result<String, String> {
            if r.unpromoted.is_empty() {
                return Err("no standby".into());
            }
            Ok(r.unpromoted[(k % r.unpromoted.len() as u64) as usize].clone())
        };
        let target = match spec.target {
            Target::Primary => primary.clone(),
            Target::Standby(k) => standby(k)?,
        };
        rec.targets = vec![target.clone()];
        let ok = |o: Out, what: &str| {
            if o.ok { Ok(()) } else { Err(format!("{what}: {}", o.stderr.trim())) }
        };
        let secs = Duration::from_secs(spec.secs);
        match spec.kind {
            Kind::KillPrimary | Kind::KillStandby => {
                ok(
                    script("kill-postmaster.sh", &[&target], Duration::from_secs(30)).await,
                    "kill-postmaster.sh",
                )?;
            }
            Kind::PowerOffPrimary | Kind::PowerOffStandby => {
                rec.allowed_fences = vec![target.clone()];
                ok(script("crash.sh", &[&target], Duration::from_secs(30)).await, "crash.sh")?;
            }
            Kind::PartitionPrimary | Kind::PartitionStandby => {
                rec.allowed_fences = vec![target.clone()];
                ok(
                    script("partition.sh", &[&target], Duration::from_secs(30)).await,
                    "partition.sh",
                )?;
                // Heal once the majority fenced it (or after 40 s).
                let deadline = Instant::now() + Duration::from_secs(40);
                while !self.s.fences_since(self.hv_offset).0.contains(&target)
                    && Instant::now() < deadline
                {
                    sleep(Duration::from_millis(500)).await;
                }
                sleep(Duration::from_secs(2)).await;
                ok(script("heal.sh", &[], Duration::from_secs(30)).await, "heal.sh")?;
            }
            Kind::Switchover => {
                ok(recipe(&primary, "02-switchover.sh", &[&target]).await, "02-switchover.sh")?;
            }
            Kind::NodeStandbyPrimary | Kind::NodeStandbyStandby => {
                let op = self
                    .s
                    .nodes
                    .iter()
                    .find(|n| **n != target && self.s.init_pid(n).is_some())
                    .cloned();
                let op = op.ok_or("no other node")?;
                let res = recipe(&op, "03-node-standby.sh", &["standby", &target]).await;
                if !res.ok {
                    rec.notes.push(format!("03-node-standby.sh standby: {}", res.stderr.trim()));
                }
                let t = now_ms();
                let deadline = Instant::now() + Duration::from_secs(60);
                while self.last_ack() <= t && Instant::now() < deadline {
                    sleep(Duration::from_millis(200)).await;
                }
                sleep(secs).await;
                ok(
                    recipe(&op, "03-node-standby.sh", &["unstandby", &target]).await,
                    "03-node-standby.sh unstandby",
                )?;
                ok(res, "03-node-standby.sh standby")?;
            }
            Kind::CutReplication => {
                ok(
                    script("cut-replication.sh", &[&target], Duration::from_secs(30)).await,
                    "cut-replication.sh",
                )?;
                sleep(secs).await;
                ok(script("heal.sh", &[&target], Duration::from_secs(30)).await, "heal.sh")?;
            }
            Kind::ClusterPowerCut => {
                rec.any_fence_ok = true;
                rec.targets = self.s.nodes.clone();
                for n in self.s.nodes.clone() {
                    script("power.sh", &["off", &n], Duration::from_secs(30)).await;
                }
                sleep(Duration::from_secs(2)).await;
                for n in self.s.nodes.clone() {
                    ok(
                        script("power.sh", &["on", &n], Duration::from_secs(60)).await,
                        "power.sh on",
                    )?;
                }
            }
            Kind::FreezePrimary => {
                rec.allowed_fences = vec![target.clone()];
                let pid = self.s.init_pid(&target);
                ok(
                    script("crash.sh", &["--hang", &target], Duration::from_secs(30)).await,
                    "crash.sh --hang",
                )?;
                sleep(secs).await;
                if self.s.init_pid(&target) == pid && pid.is_some() {
                    rec.notes.push("thawed (not fenced while frozen)".into());
                    let _ =
                        std::fs::write(format!("{}/{target}/cgroup.freeze", self.s.cg_root), "0\n");
                }
            }
            Kind::HangPostgresPrimary => {
                rec.allowed_fences = vec![target.clone()];
                let pid = self.s.init_pid(&target);
                ok(
                    script(
                        "on.sh",
                        &[&target, "pkill", "-STOP", "-u", "postgres"],
                        Duration::from_secs(30),
                    )
                    .await,
                    "pkill -STOP",
                )?;
                sleep(secs).await;
                if self.s.init_pid(&target) == pid && pid.is_some() {
                    rec.notes.push("SIGCONT (not fenced while stopped)".into());
                    script(
                        "on.sh",
                        &[&target, "pkill", "-CONT", "-u", "postgres"],
                        Duration::from_secs(30),
                    )
                    .await;
                }
            }
            Kind::DoubleFault => {
                rec.allowed_fences = vec![target.clone()];
                rec.targets = vec![target.clone(), primary.clone()];
                ok(script("crash.sh", &[&target], Duration::from_secs(30)).await, "crash.sh")?;
                ok(
                    script("kill-postmaster.sh", &[&primary], Duration::from_secs(30)).await,
                    "kill-postmaster.sh",
                )?;
            }
        }
        Ok(())
    }

    async fn one_fault(&mut self, spec: &FaultSpec) {
        let r = roles().await;
        let mut rec = FaultRecord {
            index: spec.index,
            kind: spec.kind.name().into(),
            secs: spec.secs,
            start: now_ms(),
            ..FaultRecord::default()
        };
        self.late_fences();
        self.note(&format!("==== {} fault {}", clock(), describe(spec)));
        if let Err(e) = self.inject(spec, &mut rec, &r).await {
            rec.notes.push(format!("injection: {e}"));
            self.note(&format!("    injection: {e}"));
        }
        rec.injected = now_ms();
        let bound = if spec.kind == Kind::ClusterPowerCut {
            self.o.converge_secs + 60
        } else {
            self.o.converge_secs
        };
        rec.converged = self.converge(&mut rec, bound).await;
        rec.end = now_ms();
        let (fenced, off) = self.s.fences_since(self.hv_offset);
        rec.fences = fenced;
        self.hv_offset = off;
        if rec.converged {
            // Operators clear fail counts (migration-threshold would ban a
            // node after a few faults of a long soak).
            let fc =
                run(&format!("{HARNESS}/status.sh"), &["--failcounts"], Duration::from_secs(20))
                    .await;
            if !fc.stdout.trim().is_empty() {
                script("cleanup.sh", &[], Duration::from_secs(60)).await;
                wait_healthy(60).await;
            }
            let p = roles().await.promoted;
            if let [p] = p.as_slice() {
                let (rows, at, sums) = self.read_state(p).await;
                rec.rows = rows;
                rec.rows_at = at;
                rec.checksums = sums;
            }
        }
        let idx = rec.index;
        let converged = rec.converged;
        let line = format!(
            "FAULT {:>3} {:<22} [{}] {} in {:.1}s writable_after={} fences=[{}]{}{}",
            idx,
            rec.kind,
            rec.targets.join(","),
            if converged { "converged" } else { "NOT CONVERGED" },
            (rec.end - rec.injected) as f64 / 1000.0,
            "{W}",
            rec.fences.join(","),
            if rec.repairs.is_empty() {
                String::new()
            } else {
                format!(" repairs={:?}", rec.repairs)
            },
            if rec.notes.is_empty() {
                String::new()
            } else {
                format!(" ({})", rec.notes.join("; "))
            },
        );
        self.hist.faults.push(rec);
        // The checker after each fault: evidence for the faults it blames.
        let report = checker::check(&self.snapshot());
        let w = report
            .writable_after
            .last()
            .copied()
            .flatten()
            .map_or("-".into(), |v| format!("{v:.1}s"));
        let failed = report.failed_faults();
        let verdict = if failed.contains(&idx) { "FAIL" } else { "ok" };
        self.note(&format!("{} {verdict}", line.replace("{W}", &w)));
        for i in failed.difference(&self.saved.clone()) {
            let kind = self.hist.faults.get(*i).map_or("?".into(), |f| f.kind.clone());
            let dir = self.save_evidence(&format!("fault-{i:03}-{kind}")).await;
            self.note(&format!("    evidence: {dir}"));
            self.saved.insert(*i);
        }
        if !converged {
            let mut rec = self.hist.faults.pop().expect("pushed");
            self.repair(&mut rec).await;
            self.note(&format!("    repaired: {:?}", rec.repairs));
            self.hist.faults.push(rec);
        }
    }
}

/// Bring the cluster to a healthy state (or build one).
async fn ensure_healthy(s: &Settings) -> bool {
    for n in &s.nodes {
        let _ = std::fs::write(format!("{}/nodes/{n}/autostart", s.state_dir), "1\n");
    }
    if s.nodes.iter().any(|n| s.init_pid(n).is_some()) && wait_healthy(30).await {
        return true;
    }
    script("up.sh", &[], Duration::from_secs(400)).await.ok
}

pub async fn soak(o: Options) -> (History, Report) {
    let mut s = Settings::load().await;
    if !ensure_healthy(&s).await {
        panic!("no healthy cluster to soak (up.sh failed)");
    }
    s = Settings::load().await;
    std::fs::create_dir_all(&o.evidence).expect("evidence directory");
    let schedule: String = o.faults.iter().map(|f| describe(f) + "\n").collect();
    std::fs::write(format!("{}/schedule.txt", o.evidence), format!("seed {}\n{schedule}", o.seed))
        .expect("schedule.txt");
    let log = std::fs::File::create(format!("{}/faults.log", o.evidence)).expect("faults.log");
    let run_id = format!("soak-{}-{}", o.seed, now_ms());
    let flags = Arc::new(Flags {
        stop: AtomicBool::new(false),
        pause: AtomicBool::new(false),
        paused: (0..WRITERS).map(|_| AtomicBool::new(false)).collect(),
    });
    let rec = Arc::new(Mutex::new(Recorder::default()));
    let hist = History {
        seed: o.seed,
        planned: o.faults.len(),
        agent: s.agent.clone(),
        nodes: s.nodes.clone(),
        started: now_ms(),
        ..History::default()
    };
    let hv_offset = s.fences_since(0).1;
    let mut k = Soak {
        s: s.clone(),
        o,
        run_id: run_id.clone(),
        flags: flags.clone(),
        rec: rec.clone(),
        hist,
        hv_offset,
        saved: BTreeSet::new(),
        log,
    };
    k.create_table().await;

    let mut tasks = Vec::new();
    for w in 1..=WRITERS {
        tasks.push(tokio::spawn(writer(w, s.clone(), run_id.clone(), flags.clone(), rec.clone())));
    }
    for n in &s.nodes {
        tasks.push(tokio::spawn(poll_node(n.clone(), s.clone(), flags.clone(), rec.clone())));
    }
    sleep(Duration::from_secs(3)).await;
    let t0 = Instant::now();
    let faults = k.o.faults.clone();
    for spec in &faults {
        if k.o.budget.is_some_and(|b| t0.elapsed() > b) {
            k.note(&format!(
                "budget of {:?} spent: {} of {} faults run",
                k.o.budget.unwrap_or_default(),
                spec.index,
                faults.len()
            ));
            break;
        }
        k.one_fault(spec).await;
        // pause between faults: clients write on a steady cluster
        sleep(Duration::from_secs(2)).await;
    }
    sleep(Duration::from_secs(2)).await;
    k.late_fences();
    flags.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }

    // Final state: the one primary's rows, every node's checksum.
    let mut primaries = Vec::new();
    for n in &k.s.nodes {
        if let Ok((_, c)) = connect_node(&k.s, n).await
            && let Ok(Ok(row)) =
                timeout(Duration::from_secs(2), c.query_one("SELECT pg_is_in_recovery()", &[]))
                    .await
            && !row.get::<_, bool>(0)
        {
            primaries.push(n.clone());
        }
    }
    if let [p] = primaries.as_slice() {
        let (rows, at, sums) = k.read_state(p).await;
        k.hist.final_primary = Some(p.clone());
        k.hist.final_rows = rows;
        k.hist.final_rows_at = at;
        k.hist.final_checksums = sums;
    } else {
        k.note(&format!("final check: instances out of recovery: {primaries:?}"));
    }
    k.hist.finished = now_ms();
    let h = k.snapshot();
    let report = checker::check(&h);
    let _ = std::fs::write(
        format!("{}/history.json", k.o.evidence),
        serde_json::to_string(&h).unwrap_or_default(),
    );
    let _ = std::fs::write(
        format!("{}/report.md", k.o.evidence),
        format!(
            "Soak seed {} ({} faults planned, {} run), agent {}, {}:\n\n{}",
            h.seed,
            h.planned,
            h.faults.len(),
            h.agent,
            k.o.evidence,
            report.markdown()
        ),
    );
    let line = format!("{} evidence={}", report.summary_line(h.seed, h.planned), k.o.evidence);
    let _ = std::fs::write(format!("{}/summary.txt", k.o.evidence), format!("{line}\n"));
    if !report.ok() {
        let dir = k.save_evidence("final").await;
        k.note(&format!("    evidence: {dir}"));
    }
    k.note(&line);
    (h, report)
}
