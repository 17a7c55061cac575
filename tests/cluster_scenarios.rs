//! Failure scenarios against the namespace cluster of `tests/cluster`.
//!
//! Needs root and the harness of tests/cluster (see its README.md). Run:
//!
//! ```text
//! tests/cluster/run-scenarios.sh                      # up, all scenarios, down
//! PGSQLMS_CLUSTER=1 cargo test --test cluster_scenarios -- --ignored --nocapture --test-threads=1
//! PGSQLMS_CLUSTER=1 cargo test --test cluster_scenarios crash_primary -- --ignored --nocapture
//! ```
//!
//! The tests are #[ignore]d: a plain `cargo test` lists them as ignored; they
//! run with `--ignored` and PGSQLMS_CLUSTER=1 (tests/cluster/run-scenarios.sh).
//! Each test brings the cluster to a healthy state first (building it with
//! `up.sh` when there is none, repairing it with `heal.sh` / `rebuild.sh` /
//! `up.sh` when a previous scenario left it broken), so any subset runs in any
//! order; `--test-threads=1` runs them in the order of their names.
//!
//! During a scenario:
//! - a writer commits numbered rows (`ha_rows`) to the primary through the
//!   VIP, as the application would, with synchronous replication on; a row
//!   counts as acknowledged when its COMMIT returned success;
//! - a poller asks every node's instance `pg_is_in_recovery()` (through the
//!   node's own unix socket, so partitions do not hide anything) four times a
//!   second, to catch two writable primaries at the same time.
//!
//! Each scenario prints one `SCENARIO` line: name, seconds from the fault to
//! the first commit acknowledged after the outage (`writable_after`; `-` for
//! faults that must not interrupt commits), longest gap between two
//! acknowledged commits after the fault (`max_gap`), rows acknowledged, rows
//! lost, nodes fenced (from the hypervisor's log), the agent. It fails unless: exactly one primary at the end, every standby
//! streaming again, no acknowledged row missing on the final primary, never
//! two primaries at once, plus the scenario's own expectations.
//! On failure the nodes' logs are copied to target/cluster-logs/.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::process::Command;
use tokio::time::{sleep, timeout};
use tokio_postgres::{Client, NoTls};

const HARNESS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cluster");
const RECIPES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/pcs-examples");
const PAF: &str = "ocf:heartbeat:pgsqlms";

/// One scenario at a time: they all share the one cluster.
static LOCK: Mutex<()> = Mutex::new(());

// ---------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------

#[test]
#[ignore = "needs the namespace cluster: tests/cluster/run-scenarios.sh"]
fn s01_bootstrap() {
    scenario("bootstrap");
}
#[test]
#[ignore = "needs the namespace cluster: tests/cluster/run-scenarios.sh"]
fn s02_kill_primary() {
    scenario("kill_primary");
}
#[test]
#[ignore = "needs the namespace cluster: tests/cluster/run-scenarios.sh"]
fn s03_crash_primary() {
    scenario("crash_primary");
}
#[test]
#[ignore = "needs the namespace cluster: tests/cluster/run-scenarios.sh"]
fn s04_switchover() {
    scenario("switchover");
}
#[test]
#[ignore = "needs the namespace cluster: tests/cluster/run-scenarios.sh"]
fn s05_kill_standby() {
    scenario("kill_standby");
}
#[test]
#[ignore = "needs the namespace cluster: tests/cluster/run-scenarios.sh"]
fn s06_election() {
    scenario("election");
}
#[test]
#[ignore = "needs the namespace cluster: tests/cluster/run-scenarios.sh"]
fn s07_maxlag() {
    scenario("maxlag");
}
#[test]
#[ignore = "needs the namespace cluster: tests/cluster/run-scenarios.sh"]
fn s08_partition_primary() {
    scenario("partition_primary");
}
#[test]
#[ignore = "needs the namespace cluster: tests/cluster/run-scenarios.sh"]
fn s09_old_primary_returns() {
    scenario("old_primary_returns");
}
// The operator's recipes of pcs-examples/ (s04 is 02-switchover.sh), run as
// an operator would, under the same writer and poller as the failures.
#[test]
#[ignore = "needs the namespace cluster: tests/cluster/run-scenarios.sh"]
fn s10_recipe_node_standby() {
    scenario("recipe_node_standby");
}
#[test]
#[ignore = "needs the namespace cluster: tests/cluster/run-scenarios.sh"]
fn s11_recipe_maintenance() {
    scenario("recipe_maintenance");
}
#[test]
#[ignore = "needs the namespace cluster: tests/cluster/run-scenarios.sh"]
fn s12_recipe_failover() {
    scenario("recipe_failover");
}
#[test]
#[ignore = "needs the namespace cluster: tests/cluster/run-scenarios.sh"]
fn s13_recipe_cleanup() {
    scenario("recipe_cleanup");
}
#[test]
#[ignore = "needs the namespace cluster: tests/cluster/run-scenarios.sh"]
fn s14_recipe_migrate_from_paf() {
    scenario("recipe_migrate_from_paf");
}
#[test]
#[ignore = "needs the namespace cluster: tests/cluster/run-scenarios.sh"]
fn s20_crash_primary_unscored() {
    scenario("crash_primary_unscored");
}
#[test]
#[ignore = "needs the namespace cluster: tests/cluster/run-scenarios.sh"]
fn s21_double_failure_returning_node() {
    scenario("double_failure_returning_node");
}

// rejoin_policy (src/rejoin_policy.rs, src/actions/rewind.rs): the isolated
// primary, which committed locally what nobody else got, comes back and
// rejoins by itself. Opt-in until they have passed on the cluster: they run
// only when named exactly (tests/cluster/run-scenarios.sh s50_rejoin_rewind),
// never in the default suite.
fn opted_in(test: &str) -> bool {
    let named = std::env::args().any(|a| a == test);
    if !named {
        say(&format!(
            "{test}: opt-in, skipped (run it by name: tests/cluster/run-scenarios.sh {test})"
        ));
    }
    named
}
#[test]
#[ignore = "needs the namespace cluster: tests/cluster/run-scenarios.sh"]
fn s50_rejoin_rewind() {
    if opted_in("s50_rejoin_rewind") {
        scenario("rejoin_rewind");
    }
}
#[test]
#[ignore = "needs the namespace cluster: tests/cluster/run-scenarios.sh"]
fn s51_rejoin_clone() {
    if opted_in("s51_rejoin_clone") {
        scenario("rejoin_clone");
    }
}

// Synchronous replication (src/syncrep.rs): the primary and its synchronous
// standby lose power together.
#[test]
#[ignore = "needs the namespace cluster: tests/cluster/run-scenarios.sh"]
fn s15_sync_loss_first() {
    scenario("sync_loss_first");
}
#[test]
#[ignore = "needs the namespace cluster: tests/cluster/run-scenarios.sh"]
fn s16_sync_loss_any() {
    scenario("sync_loss_any");
}

#[test]
#[ignore = "needs the namespace cluster: tests/cluster/run-scenarios.sh"]
fn s30_hung_primary() {
    scenario("hung_primary");
}

#[test]
#[ignore = "needs the namespace cluster: tests/cluster/run-scenarios.sh"]
fn s31_frozen_primary_node() {
    scenario("frozen_primary_node");
}

// Clients through HAProxy routed by the nodes' health service (no VIP):
// tests/cluster/haproxy.sh, pcs-examples/haproxy.cfg.
#[test]
#[ignore = "needs the namespace cluster: tests/cluster/run-scenarios.sh"]
fn s40_haproxy_switchover() {
    scenario("haproxy_switchover");
}
#[test]
#[ignore = "needs the namespace cluster: tests/cluster/run-scenarios.sh"]
fn s41_haproxy_crash_primary() {
    scenario("haproxy_crash_primary");
}

fn say(msg: &str) {
    // Straight to the process's stderr: libtest does not capture this, so a
    // skipped test says so even without --nocapture.
    let _ = writeln!(std::io::stderr(), "{msg}");
}

fn scenario(name: &str) {
    // Ignored by default; run on purpose, they must not pass vacuously.
    if std::env::var("PGSQLMS_CLUSTER").as_deref() != Ok("1") {
        panic!(
            "cluster_scenarios::{name}: set PGSQLMS_CLUSTER=1 (see tests/cluster/run-scenarios.sh)"
        );
    }
    if !nix::unistd::geteuid().is_root() {
        panic!("cluster scenarios must run as root");
    }
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let rt =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let outcome = rt.block_on(run_scenario(name));
    let line = outcome.line();
    say(&line);
    append_result(&line);
    if !outcome.failures.is_empty() {
        for f in &outcome.failures {
            say(&format!("    - {f}"));
        }
        if let Some(dir) = rt.block_on(save_logs(name)) {
            say(&format!("    logs: {dir}"));
        }
        panic!("scenario {name} failed: {}", outcome.failures.join("; "));
    }
}

fn append_result(line: &str) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/target/cluster-scenarios.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "{line}");
    }
}

// ---------------------------------------------------------------------------
// Cluster settings and harness scripts
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Settings {
    nodes: Vec<String>,
    vip: String,
    port: u16,
    /// Where clients connect: the VIP's port, or HAProxy's write port.
    client_port: u16,
    sockdir: String,
    app_user: String,
    app_password: String,
    app_db: String,
    cg_root: String,
    state_dir: String,
    agent: String,
    pg_major: String,
    sbin_extra: String,
    debian: String,
}

impl Settings {
    async fn load() -> Settings {
        let out = run(
            "bash",
            &[
                "-c",
                &format!(
                    ". {HARNESS}/lib.sh && printf '%s\\n' \"$NODES\" \"$VIP\" \"$PGPORT\" \
                     \"$PGSOCKDIR\" \"$APP_USER\" \"$APP_PASSWORD\" \"$APP_DB\" \"$CG_ROOT\" \
                     \"$STATE_DIR\" \"$AGENT\" \"$PG_MAJOR\" \"$SBIN_EXTRA\" \"$DEBIAN\""
                ),
            ],
            Duration::from_secs(10),
        )
        .await;
        let v: Vec<&str> = out.stdout.lines().collect();
        assert!(v.len() >= 11 && out.ok, "cannot read lib.sh settings: {}", out.stderr);
        Settings {
            nodes: v[0].split_whitespace().map(String::from).collect(),
            vip: v[1].into(),
            port: v[2].parse().expect("PGPORT"),
            client_port: v[2].parse().expect("PGPORT"),
            sockdir: v[3].into(),
            app_user: v[4].into(),
            app_password: v[5].into(),
            app_db: v[6].into(),
            cg_root: v[7].into(),
            state_dir: v[8].into(),
            agent: v[9].into(),
            pg_major: v[10].into(),
            sbin_extra: v.get(11).copied().unwrap_or("").into(),
            debian: v.get(12).copied().filter(|d| !d.is_empty()).unwrap_or("12").into(),
        }
    }

    /// Host pid of the node's init (pid 1 of its pid namespace).
    fn init_pid(&self, node: &str) -> Option<u32> {
        let procs =
            std::fs::read_to_string(format!("{}/{node}/cgroup.procs", self.cg_root)).ok()?;
        for p in procs.lines() {
            let Ok(status) = std::fs::read_to_string(format!("/proc/{p}/status")) else {
                continue;
            };
            if let Some(l) = status.lines().find(|l| l.starts_with("NSpid:")) {
                let f: Vec<&str> = l.split_whitespace().collect();
                if f.len() == 3 && f[2] == "1" {
                    return p.parse().ok();
                }
            }
        }
        None
    }

    /// Fencing actions (reboot/off) the hypervisor carried out, per node.
    fn fences(&self) -> BTreeMap<String, usize> {
        let mut m: BTreeMap<String, usize> = self.nodes.iter().map(|n| (n.clone(), 0)).collect();
        let log = std::fs::read_to_string(format!("{}/hypervisor.log", self.state_dir))
            .unwrap_or_default();
        for l in log.lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() >= 4 && (f[1] == "reboot" || f[1] == "off") && f[3] == "rc=0" {
                *m.entry(f[2].trim_end_matches(':').to_string()).or_default() += 1;
            }
        }
        m
    }
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

async fn run(prog: &str, args: &[&str], limit: Duration) -> Out {
    run_env(prog, args, &[], limit).await
}

async fn run_env(prog: &str, args: &[&str], env: &[(&str, &str)], limit: Duration) -> Out {
    let child = Command::new(prog)
        .args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match timeout(limit, child).await {
        Ok(Ok(o)) => Out {
            ok: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        },
        Ok(Err(e)) => Out { ok: false, stdout: String::new(), stderr: e.to_string() },
        Err(_) => Out {
            ok: false,
            stdout: String::new(),
            stderr: format!("{prog} {}: timed out after {limit:?}", args.join(" ")),
        },
    }
}

/// Run tests/cluster/<name> ARGS, logging it.
async fn script(name: &str, args: &[&str], limit: Duration) -> Out {
    script_env(name, args, &[], limit).await
}

async fn script_env(name: &str, args: &[&str], env: &[(&str, &str)], limit: Duration) -> Out {
    say(&format!("    {} $ {name} {}", clock(), args.join(" ")));
    let out = run_env(&format!("{HARNESS}/{name}"), args, env, limit).await;
    if !out.ok {
        say(&format!("    {name} failed: {}", out.stderr.trim()));
    }
    out
}

fn clock() -> String {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let s = d.as_secs() % 86400;
    format!("{:02}:{:02}:{:02}.{:03}", s / 3600, s / 60 % 60, s % 60, d.subsec_millis())
}

#[derive(Debug, Default, Clone)]
struct Roles {
    promoted: Vec<String>,
    unpromoted: Vec<String>,
    vip: Option<String>,
}

async fn roles() -> Roles {
    let out = run(&format!("{HARNESS}/status.sh"), &["--roles"], Duration::from_secs(20)).await;
    let mut r = Roles::default();
    for l in out.stdout.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.as_slice() {
            ["vip", n] => r.vip = Some(n.to_string()),
            [n, "Promoted"] => r.promoted.push(n.to_string()),
            [n, "Unpromoted"] => r.unpromoted.push(n.to_string()),
            _ => {}
        }
    }
    r.unpromoted.sort();
    r
}

async fn wait_healthy(secs: u64) -> bool {
    script("wait-healthy.sh", &[&secs.to_string()], Duration::from_secs(secs + 30)).await.ok
}

async fn status_text() -> String {
    run(&format!("{HARNESS}/status.sh"), &[], Duration::from_secs(30)).await.stdout
}

async fn promotion_score(node: &str) -> Option<i64> {
    let out = run(&format!("{HARNESS}/promotion-score.sh"), &[node], Duration::from_secs(20)).await;
    out.stdout.trim().parse().ok()
}

// ---------------------------------------------------------------------------
// SQL connections
// ---------------------------------------------------------------------------

async fn connect(conninfo: &str) -> Result<Client, String> {
    let (client, conn) = timeout(Duration::from_secs(3), tokio_postgres::connect(conninfo, NoTls))
        .await
        .map_err(|_| "connect: timeout".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// The application's view: TCP to the VIP.
async fn connect_vip(s: &Settings) -> Result<Client, String> {
    connect(&format!(
        "host={} port={} user={} password={} dbname={} connect_timeout=2 \
         application_name=scenario-writer",
        s.vip, s.client_port, s.app_user, s.app_password, s.app_db
    ))
    .await
}

/// The operator's view: the node's unix socket, through its mount namespace
/// (/proc/PID/root), as root (peer authentication, role root).
async fn connect_node(s: &Settings, node: &str) -> Result<(u32, Client), String> {
    let pid = s.init_pid(node).ok_or_else(|| format!("{node} is off"))?;
    let c = connect(&format!(
        "host=/proc/{pid}/root{} port={} user=root dbname={} connect_timeout=2 \
         application_name=scenario-poller",
        s.sockdir, s.port, s.app_db
    ))
    .await?;
    Ok((pid, c))
}

async fn node_in_recovery(s: &Settings, node: &str) -> Option<bool> {
    let (_, c) = connect_node(s, node).await.ok()?;
    let row = timeout(Duration::from_secs(2), c.query_one("SELECT pg_is_in_recovery()", &[]))
        .await
        .ok()?
        .ok()?;
    Some(row.get(0))
}

async fn node_streaming(s: &Settings, node: &str) -> bool {
    let Ok((_, c)) = connect_node(s, node).await else {
        return false;
    };
    matches!(
        timeout(
            Duration::from_secs(2),
            c.query_opt("SELECT status FROM pg_stat_wal_receiver", &[])
        )
        .await,
        Ok(Ok(Some(row))) if row.get::<_, String>(0) == "streaming"
    )
}

/// Bytes of WAL each standby still has to write, seen from the primary.
async fn write_lag(s: &Settings, primary: &str) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    if let Ok((_, c)) = connect_node(s, primary).await
        && let Ok(Ok(rows)) = timeout(
            Duration::from_secs(2),
            c.query(
                "SELECT application_name, \
                 pg_wal_lsn_diff(pg_current_wal_lsn(), write_lsn)::bigint \
                 FROM pg_stat_replication",
                &[],
            ),
        )
        .await
    {
        for r in rows {
            m.insert(r.get::<_, String>(0), r.get::<_, Option<i64>>(1).unwrap_or(-1));
        }
    }
    m
}

// ---------------------------------------------------------------------------
// Writer and poller
// ---------------------------------------------------------------------------

#[derive(Default)]
struct WriterLog {
    acks: Vec<(Instant, i64)>,
    fails: Vec<Instant>,
    last_error: Option<String>,
}

async fn writer(s: Settings, run_id: String, stop: Arc<AtomicBool>, log: Arc<Mutex<WriterLog>>) {
    let mut client: Option<Client> = None;
    let mut id: i64 = 0;
    let fail = |log: &Arc<Mutex<WriterLog>>, e: String| {
        let mut l = log.lock().unwrap();
        l.fails.push(Instant::now());
        l.last_error = Some(e);
    };
    while !stop.load(Ordering::Relaxed) {
        if client.is_none() {
            match connect_vip(&s).await {
                Ok(c) => {
                    let ddl = "CREATE TABLE IF NOT EXISTS ha_rows (run text, id bigint, \
                               at timestamptz DEFAULT clock_timestamp(), PRIMARY KEY (run, id))";
                    match timeout(Duration::from_secs(5), c.batch_execute(ddl)).await {
                        Ok(Ok(())) => client = Some(c),
                        Ok(Err(e)) => fail(&log, e.to_string()),
                        Err(_) => fail(&log, "create table: timeout".into()),
                    }
                }
                Err(e) => fail(&log, e),
            }
            if client.is_none() {
                sleep(Duration::from_millis(200)).await;
                continue;
            }
        }
        id += 1;
        let c = client.as_ref().expect("connected");
        let r = timeout(
            Duration::from_secs(5),
            c.execute("INSERT INTO ha_rows (run, id) VALUES ($1, $2)", &[&run_id, &id]),
        )
        .await;
        match r {
            Ok(Ok(1)) => log.lock().unwrap().acks.push((Instant::now(), id)),
            Ok(Ok(n)) => {
                fail(&log, format!("insert returned {n} rows"));
                client = None;
            }
            Ok(Err(e)) => {
                fail(&log, e.to_string());
                client = None;
            }
            Err(_) => {
                fail(&log, "commit: no answer within 5s".into());
                client = None;
            }
        }
        sleep(Duration::from_millis(20)).await;
    }
}

#[derive(Default)]
struct PollLog {
    rounds: u64,
    /// (when, primaries) for every round that saw two or more primaries
    doubles: Vec<(Instant, Vec<String>)>,
    /// (when, node) each time an instance is seen as a primary and was not
    /// one (or was not reachable) in the previous round
    promotions: Vec<(Instant, String)>,
}

async fn poller(s: Settings, stop: Arc<AtomicBool>, log: Arc<Mutex<PollLog>>) {
    let mut conns: BTreeMap<String, (u32, Client)> = BTreeMap::new();
    let mut previous: Vec<String> = Vec::new();
    let mut first_round = true;
    while !stop.load(Ordering::Relaxed) {
        let mut primaries = Vec::new();
        for n in &s.nodes {
            let pid = s.init_pid(n);
            if conns.get(n).is_some_and(|(p, _)| Some(*p) != pid) {
                conns.remove(n); // rebooted or off
            }
            if !conns.contains_key(n)
                && pid.is_some()
                && let Ok(c) = connect_node(&s, n).await
            {
                conns.insert(n.clone(), c);
            }
            if let Some((_, c)) = conns.get(n) {
                match timeout(
                    Duration::from_secs(1),
                    c.query_one("SELECT pg_is_in_recovery()", &[]),
                )
                .await
                {
                    Ok(Ok(row)) => {
                        if !row.get::<_, bool>(0) {
                            primaries.push(n.clone());
                        }
                    }
                    _ => {
                        conns.remove(n);
                    }
                }
            }
        }
        {
            let mut l = log.lock().unwrap();
            l.rounds += 1;
            if primaries.len() > 1 {
                l.doubles.push((Instant::now(), primaries.clone()));
            }
            if !first_round {
                for n in primaries.iter().filter(|n| !previous.contains(n)) {
                    l.promotions.push((Instant::now(), n.clone()));
                }
            }
        }
        previous = primaries;
        first_round = false;
        sleep(Duration::from_millis(250)).await;
    }
}

// ---------------------------------------------------------------------------
// Scenario run
// ---------------------------------------------------------------------------

struct Outcome {
    name: String,
    agent: String,
    writable_after: Option<f64>,
    max_gap: f64,
    acked: usize,
    lost: Option<usize>,
    fenced: Vec<String>,
    notes: Vec<String>,
    failures: Vec<String>,
}

impl Outcome {
    fn line(&self) -> String {
        format!(
            "SCENARIO {:<20} writable_after={:>6} max_gap={:>5.1}s acked={:>5} lost={:>3} \
             fenced=[{}] agent={} {}{}",
            self.name,
            self.writable_after.map_or("-".into(), |w| format!("{w:.1}s")),
            self.max_gap,
            self.acked,
            self.lost.map_or("?".into(), |l| l.to_string()),
            self.fenced.join(","),
            self.agent,
            if self.failures.is_empty() { "PASS" } else { "FAIL" },
            if self.notes.is_empty() {
                String::new()
            } else {
                format!(" ({})", self.notes.join("; "))
            }
        )
    }
}

struct Ctx {
    s: Settings,
    primary: String,
    standbys: Vec<String>,
    fault_at: Instant,
    wlog: Arc<Mutex<WriterLog>>,
    plog: Arc<Mutex<PollLog>>,
    /// false when the fault must not interrupt commits (writable_after is
    /// then not reported; max_gap tells whether commits stalled)
    expect_outage: bool,
    notes: Vec<String>,
    failures: Vec<String>,
}

impl Ctx {
    fn fail(&mut self, msg: impl Into<String>) {
        let m = msg.into();
        say(&format!("    FAIL: {m}"));
        self.failures.push(m);
    }

    fn fault(&mut self) {
        self.fault_at = Instant::now();
    }

    /// First acknowledged commit after the first failure that followed the
    /// fault (or, with no failure at all, the first one after the fault).
    fn writable_at(&self) -> Option<Instant> {
        let l = self.wlog.lock().unwrap();
        let from = l.fails.iter().copied().find(|t| *t >= self.fault_at).unwrap_or(self.fault_at);
        l.acks.iter().map(|(t, _)| *t).find(|t| *t > from)
    }

    /// Wait for an outage to start and end: a failed commit after the fault,
    /// then an acknowledged one.
    async fn wait_writable_after_outage(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            {
                let l = self.wlog.lock().unwrap();
                if let Some(f) = l.fails.iter().find(|t| **t >= self.fault_at)
                    && l.acks.iter().any(|(t, _)| t > f)
                {
                    return true;
                }
            }
            sleep(Duration::from_millis(100)).await;
        }
        let err = self.wlog.lock().unwrap().last_error.clone().unwrap_or_default();
        self.fail(format!("not writable {}s after the fault (last error: {err})", limit.as_secs()));
        false
    }

    /// After the loss of the primary `old`: writable again, a former standby
    /// promoted first, `old` fenced (`before`: fence counts before the fault).
    async fn expect_fenced_and_replaced(&mut self, old: &str, before: &BTreeMap<String, usize>) {
        if self.wait_writable_after_outage(WRITABLE_LIMIT).await {
            let first = self.first_promoted();
            self.notes.push(format!("promoted: {}", first.as_deref().unwrap_or("?")));
            if !first.as_ref().is_some_and(|n| self.standbys.contains(n)) {
                self.fail(format!(
                    "expected a former standby {:?} promoted, got {first:?}",
                    self.standbys
                ));
            }
        }
        if self.s.fences().get(old) <= before.get(old) {
            self.fail(format!("{old} was not fenced"));
        }
    }

    /// Planned operations fence nobody (`before`: fence counts before them).
    fn expect_no_fencing(&mut self, before: &BTreeMap<String, usize>) {
        let now = self.s.fences();
        if now != *before {
            self.fail(format!("a node was fenced: {before:?} -> {now:?}"));
        }
    }

    /// The first instance that became a primary after the fault.
    fn first_promoted(&self) -> Option<String> {
        let l = self.plog.lock().unwrap();
        l.promotions.iter().find(|(t, _)| *t >= self.fault_at).map(|(_, n)| n.clone())
    }

    fn acked_since(&self, t: Instant) -> usize {
        self.wlog.lock().unwrap().acks.iter().filter(|(a, _)| *a >= t).count()
    }

    async fn bulk_write(&mut self, rows: u32) {
        match connect_vip(&self.s).await {
            Ok(c) => {
                let sql = format!(
                    "CREATE TABLE IF NOT EXISTS ha_bulk (i int, t text); \
                     INSERT INTO ha_bulk SELECT g, repeat('x', 500) FROM generate_series(1, {rows}) g"
                );
                match timeout(Duration::from_secs(60), c.batch_execute(&sql)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => self.fail(format!("bulk write: {e}")),
                    Err(_) => self.fail("bulk write: timeout"),
                }
            }
            Err(e) => self.fail(format!("bulk write: {e}")),
        }
    }
}

async fn run_scenario(name: &str) -> Outcome {
    say(&format!("==== {} scenario {name}", clock()));
    let mut s = Settings::load().await;
    let mut pre_fail = Vec::new();

    // The migration starts from a cluster running PAF.
    if name == "recipe_migrate_from_paf"
        && running_agents(&s).await != BTreeSet::from([PAF.to_string()])
    {
        let mut paf = s.clone();
        paf.agent = PAF.into();
        let out = up(&paf).await;
        if !out.ok {
            pre_fail.push(format!("up.sh with PAF failed: {}", out.stderr.trim()));
        }
        s = Settings::load().await;
    }
    // Bootstrap builds the cluster itself (the fault is the cluster start);
    // the others need a healthy one.
    if name != "bootstrap" && pre_fail.is_empty() {
        if let Err(e) = ensure_healthy(&s).await {
            pre_fail.push(e);
        }
        s = Settings::load().await;
    }
    if name.starts_with("haproxy_") && pre_fail.is_empty() {
        match through_haproxy(&mut s).await {
            Ok(()) => {}
            Err(e) => pre_fail.push(e),
        }
    }
    let r = roles().await;
    let primary = r.promoted.first().cloned().unwrap_or_default();
    let standbys = r.unpromoted.clone();

    let run_id = format!(
        "{name}-{}",
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let wlog = Arc::new(Mutex::new(WriterLog::default()));
    let plog = Arc::new(Mutex::new(PollLog::default()));
    let mut ctx = Ctx {
        s: s.clone(),
        primary,
        standbys,
        fault_at: Instant::now(),
        wlog: wlog.clone(),
        plog: plog.clone(),
        expect_outage: true,
        notes: Vec::new(),
        failures: pre_fail,
    };
    let fences_before = s.fences();
    let started = Instant::now();

    let w = tokio::spawn(writer(s.clone(), run_id.clone(), stop.clone(), wlog.clone()));
    let p = tokio::spawn(poller(s.clone(), stop.clone(), plog.clone()));

    if ctx.failures.is_empty() {
        if name != "bootstrap" {
            // Warm up: the writer must be committing before the fault.
            sleep(Duration::from_secs(2)).await;
            if ctx.acked_since(started) == 0 {
                let err = wlog.lock().unwrap().last_error.clone().unwrap_or_default();
                ctx.fail(format!("writer could not commit before the fault: {err}"));
            }
        }
        if ctx.failures.is_empty() {
            let fault_result = match name {
                "bootstrap" => sc_bootstrap(&mut ctx).await,
                "kill_primary" => sc_kill_primary(&mut ctx).await,
                "crash_primary" => sc_crash_primary(&mut ctx).await,
                "crash_primary_unscored" => sc_crash_primary_unscored(&mut ctx).await,
                "double_failure_returning_node" => sc_double_failure(&mut ctx).await,
                "switchover" => sc_switchover(&mut ctx).await,
                "kill_standby" => sc_kill_standby(&mut ctx).await,
                "election" => sc_election(&mut ctx).await,
                "maxlag" => sc_maxlag(&mut ctx).await,
                "partition_primary" => sc_partition_primary(&mut ctx).await,
                "old_primary_returns" => sc_old_primary_returns(&mut ctx).await,
                "recipe_node_standby" => sc_recipe_node_standby(&mut ctx).await,
                "recipe_maintenance" => sc_recipe_maintenance(&mut ctx).await,
                "recipe_failover" => sc_recipe_failover(&mut ctx).await,
                "recipe_cleanup" => sc_recipe_cleanup(&mut ctx).await,
                "recipe_migrate_from_paf" => sc_recipe_migrate_from_paf(&mut ctx).await,
                "sync_loss_first" => sc_sync_loss(&mut ctx, true).await,
                "sync_loss_any" => sc_sync_loss(&mut ctx, false).await,
                "hung_primary" => sc_hung_primary(&mut ctx).await,
                "frozen_primary_node" => sc_frozen_primary_node(&mut ctx).await,
                "haproxy_switchover" => sc_switchover(&mut ctx).await,
                "haproxy_crash_primary" => sc_crash_primary(&mut ctx).await,
                "rejoin_rewind" => sc_rejoin(&mut ctx, false).await,
                "rejoin_clone" => sc_rejoin(&mut ctx, true).await,
                other => panic!("unknown scenario {other}"),
            };
            if let Err(e) = fault_result {
                ctx.fail(e);
            }
            // Every scenario ends with every standby streaming again; a
            // returning old primary may instead refuse to start, diverged,
            // with an exit reason that says how to repair it.
            let old_primary_may_diverge =
                matches!(name, "partition_primary" | "old_primary_returns" | "recipe_failover");
            let healthy = if old_primary_may_diverge && !wait_healthy(30).await {
                accept_diverged_old_primary(&mut ctx).await || wait_healthy(90).await
            } else {
                old_primary_may_diverge || wait_healthy(120).await
            };
            if !healthy {
                let st = status_text().await;
                ctx.fail(format!(
                    "cluster not healthy (one Promoted + standbys streaming) 120s after the fault:\n{st}"
                ));
            } else {
                expect_status_view(&mut ctx, "healthy after the fault", |v, r| {
                    let streaming = v["nodes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|n| {
                            n["replication"].as_str().is_some_and(|s| s.starts_with("streaming"))
                        })
                        .count();
                    if streaming == r.unpromoted.len() {
                        Ok(())
                    } else {
                        Err(format!(
                            "{streaming} standbys streaming, Pacemaker has {:?}",
                            r.unpromoted
                        ))
                    }
                })
                .await;
            }
        }
    }

    // Keep writing a little on the final primary, then stop everything.
    sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let _ = w.await;
    let _ = p.await;
    if name == "bootstrap" {
        ctx.s = Settings::load().await; // up.sh wrote the settings
    }

    // ---- common checks ----
    let s = ctx.s.clone();
    let mut sql_primaries = Vec::new();
    for n in &s.nodes {
        if node_in_recovery(&s, n).await == Some(false) {
            sql_primaries.push(n.clone());
        }
    }
    let final_roles = roles().await;
    if sql_primaries.len() != 1 || final_roles.promoted.len() != 1 {
        ctx.fail(format!(
            "expected exactly one primary: instances not in recovery {:?}, Pacemaker Promoted {:?}",
            sql_primaries, final_roles.promoted
        ));
    }
    let acked: Vec<i64> = wlog.lock().unwrap().acks.iter().map(|(_, id)| *id).collect();
    let mut lost = None;
    if let Some(fp) = sql_primaries.first().filter(|_| sql_primaries.len() == 1) {
        match connect_node(&s, fp).await {
            Ok((_, c)) => {
                match c.query("SELECT id FROM ha_rows WHERE run = $1", &[&run_id]).await {
                    Ok(rows) => {
                        let present: BTreeSet<i64> = rows.iter().map(|r| r.get(0)).collect();
                        let missing: Vec<i64> =
                            acked.iter().copied().filter(|id| !present.contains(id)).collect();
                        if !missing.is_empty() {
                            ctx.fail(format!(
                            "{} acknowledged rows missing on the final primary {fp} (ids {:?}...)",
                            missing.len(),
                            &missing[..missing.len().min(10)]
                        ));
                        }
                        lost = Some(missing.len());
                    }
                    Err(e) => ctx.fail(format!("cannot read ha_rows on {fp}: {e}")),
                }
            }
            Err(e) => ctx.fail(format!("cannot connect to the final primary {fp}: {e}")),
        }
    }
    {
        let pl = plog.lock().unwrap();
        if let Some((t, nodes)) = pl.doubles.first() {
            let msg = format!(
                "two primaries at once: {:?} at fault{:+.1}s ({} polls of {} saw it)",
                nodes,
                t.duration_since(ctx.fault_at).as_secs_f64(),
                pl.doubles.len(),
                pl.rounds
            );
            drop(pl);
            ctx.fail(msg);
        }
    }
    let fences_after = s.fences();
    let fenced: Vec<String> = fences_after
        .iter()
        .filter(|(n, c)| **c > fences_before.get(*n).copied().unwrap_or(0))
        .map(|(n, c)| {
            let k = c - fences_before.get(n).copied().unwrap_or(0);
            if k > 1 { format!("{n}x{k}") } else { n.clone() }
        })
        .collect();

    let writable_after = if ctx.expect_outage {
        ctx.writable_at().map(|t| t.duration_since(ctx.fault_at).as_secs_f64())
    } else {
        None
    };
    let max_gap = {
        let l = wlog.lock().unwrap();
        let mut gap = 0f64;
        let mut prev = ctx.fault_at;
        for (t, _) in l.acks.iter().filter(|(t, _)| *t >= ctx.fault_at) {
            gap = gap.max(t.duration_since(prev).as_secs_f64());
            prev = *t;
        }
        gap
    };

    Outcome {
        name: name.to_string(),
        agent: s.agent.clone(),
        writable_after,
        max_gap,
        acked: acked.len(),
        lost,
        fenced,
        notes: ctx.notes,
        failures: ctx.failures,
    }
}

/// Bring the cluster to a healthy state, repairing what previous scenarios
/// broke: heal the network, rebuild standbys that do not stream, and as a
/// last resort build a new cluster.
async fn ensure_healthy(s: &Settings) -> Result<(), String> {
    // Nodes boot with their cluster stack again.
    for n in &s.nodes {
        let _ = std::fs::write(format!("{}/nodes/{n}/autostart", s.state_dir), "1\n");
    }
    let running = s.nodes.iter().any(|n| s.init_pid(n).is_some());
    if running {
        if wait_healthy(20).await {
            return cleanup_failcounts().await;
        }
        say("    cluster not healthy: repairing");
        script("heal.sh", &[], Duration::from_secs(30)).await;
        for n in &s.nodes {
            if s.init_pid(n).is_none() {
                script("power.sh", &["on", n], Duration::from_secs(60)).await;
            }
        }
        if wait_healthy(45).await {
            return cleanup_failcounts().await;
        }
        let r = roles().await;
        if r.promoted.len() == 1 {
            for n in &s.nodes {
                if *n != r.promoted[0] && !node_streaming(s, n).await {
                    script("rebuild.sh", &[n], Duration::from_secs(240)).await;
                }
            }
            if wait_healthy(60).await {
                return cleanup_failcounts().await;
            }
        }
        say("    repair failed: building a new cluster");
    }
    let out = up(s).await;
    if !out.ok {
        return Err(format!("up.sh failed: {}", out.stderr.trim()));
    }
    Ok(())
}

/// A new cluster, same shape, agent and PostgreSQL version as the last one.
async fn up(s: &Settings) -> Out {
    let nodes = s.nodes.join(" ");
    script_env(
        "up.sh",
        &[],
        &[
            ("AGENT", &s.agent),
            ("NODES", &nodes),
            ("PG_MAJOR", &s.pg_major),
            ("SBIN_EXTRA", &s.sbin_extra),
            ("DEBIAN", &s.debian),
        ],
        Duration::from_secs(400),
    )
    .await
}

/// Forget failures of earlier scenarios (migration-threshold would ban nodes).
async fn cleanup_failcounts() -> Result<(), String> {
    let fails =
        run(&format!("{HARNESS}/status.sh"), &["--failcounts"], Duration::from_secs(20)).await;
    if fails.stdout.trim().is_empty() {
        return Ok(());
    }
    script("cleanup.sh", &[], Duration::from_secs(60)).await;
    if wait_healthy(60).await {
        Ok(())
    } else {
        Err("cluster not healthy after crm_resource --cleanup".into())
    }
}

async fn save_logs(name: &str) -> Option<String> {
    let dir = format!(
        "{}/target/cluster-logs/{name}-{}",
        env!("CARGO_MANIFEST_DIR"),
        SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs()
    );
    let out = run(
        "bash",
        &[
            "-c",
            &format!(
                ". {HARNESS}/lib.sh && mkdir -p {dir} && \
                 for n in $NODES; do cp -a \"$NODES_DIR/$n/var-log\" {dir}/$n 2>/dev/null; \
                 cp \"$NODES_DIR/$n/boot.log\" {dir}/$n/ 2>/dev/null; done; \
                 cp \"$STATE_DIR/hypervisor.log\" {dir}/ 2>/dev/null; \
                 {HARNESS}/status.sh > {dir}/status.txt 2>&1; true"
            ),
        ],
        Duration::from_secs(60),
    )
    .await;
    out.ok.then_some(dir)
}

// ---------------------------------------------------------------------------
// Scenarios. Each injects its fault (ctx.fault() marks the time), waits for
// the service to come back and checks its own expectations; run_scenario then
// waits for a healthy cluster and runs the common checks.
// ---------------------------------------------------------------------------

const WRITABLE_LIMIT: Duration = Duration::from_secs(120);

/// Fresh cluster from nothing: the fault is `up.sh` itself.
async fn sc_bootstrap(ctx: &mut Ctx) -> Result<(), String> {
    script("down.sh", &[], Duration::from_secs(120)).await;
    ctx.fault();
    let out = up(&ctx.s).await;
    if !out.ok {
        return Err(format!("up.sh failed: {}", out.stderr.trim()));
    }
    ctx.notes.push(format!("up.sh took {:.1}s", ctx.fault_at.elapsed().as_secs_f64()));
    let deadline = Instant::now() + Duration::from_secs(60);
    while ctx.acked_since(ctx.fault_at) == 0 && Instant::now() < deadline {
        sleep(Duration::from_millis(200)).await;
    }
    if ctx.acked_since(ctx.fault_at) == 0 {
        return Err("no commit through the VIP after up.sh".into());
    }
    Ok(())
}

/// kill -9 of NODE's postmaster (tests/cluster/kill-postmaster.sh).
/// Health service on every node and HAProxy on its own host: the writer
/// then goes through HAProxy's write port instead of the VIP.
async fn through_haproxy(s: &mut Settings) -> Result<(), String> {
    let out = script("haproxy.sh", &["up"], Duration::from_secs(60)).await;
    if !out.ok {
        return Err(format!("haproxy.sh up: {}", out.stderr.trim()));
    }
    let prefix = s.vip.rsplit_once('.').map(|(p, _)| p.to_string()).ok_or("VIP is not IPv4")?;
    s.vip = format!("{prefix}.5");
    s.client_port = 5000;
    // HAProxy marks the primary up after its first successful check (1 s).
    let deadline = Instant::now() + Duration::from_secs(15);
    while connect_vip(s).await.is_err() {
        if Instant::now() > deadline {
            return Err("no PostgreSQL behind HAProxy's write port after 15 s".into());
        }
        sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// `pgsqlms status --json` on the primary's node (or the first node that
/// is on) against Pacemaker's view (status.sh --roles) and the test `pred`.
async fn expect_status_view(
    ctx: &mut Ctx,
    when: &str,
    pred: impl Fn(&serde_json::Value, &Roles) -> Result<(), String>,
) {
    let r = roles().await;
    let Some(node) = r
        .promoted
        .first()
        .cloned()
        .or_else(|| ctx.s.nodes.iter().find(|n| ctx.s.init_pid(n).is_some()).cloned())
    else {
        return ctx.fail(format!("status view ({when}): no node is on"));
    };
    let t = Instant::now();
    let out = script(
        "on.sh",
        &[&node, "/usr/lib/ocf/resource.d/rust/pgsqlms", "status", "--json"],
        Duration::from_secs(20),
    )
    .await;
    let took = t.elapsed().as_secs_f64();
    // The operator's table too, kept for the README (target/status-*.txt).
    let table = script(
        "on.sh",
        &[&node, "/usr/lib/ocf/resource.d/rust/pgsqlms", "status", "--color=never"],
        Duration::from_secs(20),
    )
    .await;
    let file = format!("target/status-{}.txt", when.replace(' ', "-").replace('\'', ""));
    let _ = std::fs::write(
        &file,
        format!("# pgsqlms status  ({when})\n{}{}", table.stdout, table.stderr),
    );
    let v: serde_json::Value = match serde_json::from_str(&out.stdout) {
        Ok(v) => v,
        Err(e) => {
            return ctx.fail(format!(
                "status view ({when}) on {node}: not JSON ({e}): {} {}",
                out.stdout, out.stderr
            ));
        }
    };
    let mut problems = Vec::new();
    if v["cluster"]["primary"].as_str() != r.promoted.first().map(String::as_str) {
        problems.push(format!(
            "primary {} but Pacemaker promoted {:?}",
            v["cluster"]["primary"], r.promoted
        ));
    }
    for n in v["nodes"].as_array().into_iter().flatten() {
        let name = n["name"].as_str().unwrap_or_default().to_string();
        let role = n["pacemaker_role"].as_str().unwrap_or_default();
        let expected = if r.promoted.contains(&name) {
            "Promoted"
        } else if r.unpromoted.contains(&name) {
            "Unpromoted"
        } else {
            "Stopped"
        };
        if role != expected {
            problems.push(format!("{name}: {role}, Pacemaker says {expected}"));
        }
        if role == "Promoted" && n["postgres_role"] != "primary" {
            problems.push(format!("{name}: PostgreSQL role {}", n["postgres_role"]));
        }
    }
    if let Err(e) = pred(&v, &r) {
        problems.push(e);
    }
    if problems.is_empty() {
        ctx.notes.push(format!("status view {when}: ok in {took:.2}s"));
    } else {
        ctx.fail(format!("status view ({when}) on {node}: {}", problems.join("; ")));
    }
}

async fn kill_postmaster(node: &str) -> Result<(), String> {
    let out = script("kill-postmaster.sh", &[node], Duration::from_secs(30)).await;
    if out.ok { Ok(()) } else { Err(format!("kill-postmaster.sh: {}", out.stderr.trim())) }
}

/// kill -9 of the primary's postmaster: recovered in place or failed over.
async fn sc_kill_primary(ctx: &mut Ctx) -> Result<(), String> {
    let p = ctx.primary.clone();
    ctx.fault();
    kill_postmaster(&p).await?;
    ctx.wait_writable_after_outage(WRITABLE_LIMIT).await;
    let r = roles().await;
    ctx.notes.push(format!("primary after: {}", r.promoted.join(",")));
    Ok(())
}

/// Every process of the primary's PostgreSQL stopped (SIGSTOP, as on a
/// dead disk) while its node stays healthy: the agent recognises it as hung
/// and kills it instead of waiting out its timeouts; nobody is fenced.
async fn sc_hung_primary(ctx: &mut Ctx) -> Result<(), String> {
    let p = ctx.primary.clone();
    let before = ctx.s.fences();
    ctx.fault();
    let out = script("hang-postgres.sh", &[&p, "STOP"], Duration::from_secs(30)).await;
    if !out.ok {
        return Err(format!("hang-postgres.sh: {}", out.stderr.trim()));
    }
    ctx.wait_writable_after_outage(WRITABLE_LIMIT).await;
    let r = roles().await;
    ctx.notes.push(format!("primary after: {}", r.promoted.join(",")));
    ctx.expect_no_fencing(&before);
    Ok(())
}

/// Every process of the primary's node frozen (cgroup.freeze: a hung
/// kernel): the agent there is frozen too, so only the membership loss and
/// fencing can resolve it; a standby is promoted, the node power-cycled.
async fn sc_frozen_primary_node(ctx: &mut Ctx) -> Result<(), String> {
    let p = ctx.primary.clone();
    let before = ctx.s.fences();
    ctx.fault();
    let out = script("crash.sh", &["--hang", &p], Duration::from_secs(30)).await;
    if !out.ok {
        return Err(format!("crash.sh --hang: {}", out.stderr.trim()));
    }
    ctx.expect_fenced_and_replaced(&p, &before).await;
    Ok(())
}

/// Power loss of the primary node: fenced, the best standby promoted.
async fn sc_crash_primary(ctx: &mut Ctx) -> Result<(), String> {
    let p = ctx.primary.clone();
    let before = ctx.s.fences();
    ctx.fault();
    let out = script("crash.sh", &[&p], Duration::from_secs(30)).await;
    if !out.ok {
        return Err(format!("crash.sh: {}", out.stderr.trim()));
    }
    ctx.expect_fenced_and_replaced(&p, &before).await;
    expect_status_view(ctx, "after the primary's node was fenced", |v, _| {
        let last = &v["cluster"]["last_fence"];
        if last["target"] == p.as_str() { Ok(()) } else { Err(format!("last fencing {last}")) }
    })
    .await;
    Ok(())
}

/// Power loss of the primary node before its monitor scored the standbys
/// (its first interval after a start or a promotion): every standby holds
/// the score of before it connected (-1000). The node hangs (frozen, so
/// that its monitor cannot score them again) and is fenced (power-cycled).
/// A standby must raise itself and be promoted without a human.
async fn sc_crash_primary_unscored(ctx: &mut Ctx) -> Result<(), String> {
    // How many times the agent on NODE gave itself a score (its log).
    async fn raises(node: &str) -> u32 {
        let (pattern, log) =
            ("is the most advanced known: scoring it", "/var/log/pacemaker/pacemaker.log");
        let out =
            script("on.sh", &[node, "grep", "-c", pattern, log], Duration::from_secs(30)).await;
        out.stdout.trim().parse().unwrap_or(0)
    }
    let mut raises_before = Vec::new();
    for s in &ctx.standbys {
        raises_before.push(raises(s).await);
    }
    let p = ctx.primary.clone();
    let before = ctx.s.fences();
    // The crashed primary stays out (its cluster stack does not start at
    // boot), as in the incident: the standbys are on their own.
    let autostart = format!("{}/nodes/{p}/autostart", ctx.s.state_dir);
    std::fs::write(&autostart, "0\n").map_err(|e| e.to_string())?;
    ctx.fault();
    let out = script("crash.sh", &["--hang", &p], Duration::from_secs(30)).await;
    if !out.ok {
        return Err(format!("crash.sh --hang: {}", out.stderr.trim()));
    }
    for s in ctx.standbys.clone() {
        let args = [
            s.as_str(),
            "crm_attribute",
            "--promotion=pgsqld",
            "--node",
            s.as_str(),
            "--lifetime",
            "reboot",
            "--update",
            "-1000",
        ];
        let out = script("on.sh", &args, Duration::from_secs(60)).await;
        if !out.ok {
            return Err(format!("setting the stale score of {s}: {}", out.stderr.trim()));
        }
    }
    ctx.notes.push(format!(
        "standby scores set before the fence: {:?}",
        [promotion_score(&ctx.standbys[0]).await, promotion_score(&ctx.standbys[1]).await]
    ));
    ctx.expect_fenced_and_replaced(&p, &before).await;
    // The promotion must have come from a standby raising itself: the
    // stale scores held (otherwise this scenario tested nothing).
    let mut raised = Vec::new();
    for (s, before) in ctx.standbys.clone().into_iter().zip(raises_before) {
        if raises(&s).await > before {
            raised.push(s);
        }
    }
    ctx.notes.push(format!("raised itself: {raised:?}"));
    if raised.is_empty() {
        ctx.fail("no standby raised its own score: the stale scores did not hold");
    }
    // Bring the old primary back as an administrator would: re-clone it.
    let out = script("rebuild.sh", &[&p], Duration::from_secs(240)).await;
    if !out.ok {
        ctx.fail(format!("rebuild.sh {p}: {}", out.stderr.trim()));
    }
    Ok(())
}

/// The primary's node and the node of the most advanced standby lose power
/// together; the lagging standby (still scored, its link slowed down) is
/// left without quorum. The most advanced one comes back 20 s later: it
/// must be the one promoted (its WAL on disk counts in the election), not
/// the laggard, with no acknowledged commit lost.
async fn sc_double_failure(ctx: &mut Ctx) -> Result<(), String> {
    if ctx.standbys.len() < 2 {
        return Err("needs at least 2 standbys".into());
    }
    let good = ctx.standbys[0].clone();
    let lagging = ctx.standbys[1].clone();
    script("slow-replication.sh", &[&lagging, "64kbit"], Duration::from_secs(30)).await;
    ctx.bulk_write(6000).await;
    let lag = write_lag(&ctx.s, &ctx.primary).await;
    ctx.notes.push(format!("lag before the power loss: {lag:?}"));
    if lag.get(&lagging).copied().unwrap_or(0) < 1_000_000 {
        ctx.fail(format!("{lagging} is not lagging: {lag:?}"));
    }
    ctx.notes.push(format!("score of {lagging}: {:?}", promotion_score(&lagging).await));
    // The old primary stays out (its cluster stack does not start at boot).
    let p = ctx.primary.clone();
    let autostart = format!("{}/nodes/{p}/autostart", ctx.s.state_dir);
    std::fs::write(&autostart, "0\n").map_err(|e| e.to_string())?;
    ctx.fault();
    let (off_p, off_good) = (["off", p.as_str()], ["off", good.as_str()]);
    let (a, b) = tokio::join!(
        script("power.sh", &off_p, Duration::from_secs(30)),
        script("power.sh", &off_good, Duration::from_secs(30)),
    );
    if !a.ok || !b.ok {
        return Err(format!("power.sh off: {} {}", a.stderr.trim(), b.stderr.trim()));
    }
    script("heal.sh", &[], Duration::from_secs(30)).await;
    sleep(Duration::from_secs(20)).await;
    let out = script("power.sh", &["on", &good], Duration::from_secs(60)).await;
    if !out.ok {
        return Err(format!("power.sh on {good}: {}", out.stderr.trim()));
    }
    let deadline = Instant::now() + WRITABLE_LIMIT;
    while ctx.first_promoted().is_none() && Instant::now() < deadline {
        sleep(Duration::from_millis(200)).await;
    }
    let first = ctx.first_promoted();
    ctx.notes.push(format!("promoted: {}", first.as_deref().unwrap_or("-")));
    if first.as_deref() != Some(good.as_str()) {
        ctx.fail(format!(
            "expected {good}, which holds the most WAL, promoted; got {first:?} ({lagging} lagged)"
        ));
    }
    ctx.wait_writable_after_outage(WRITABLE_LIMIT).await;
    // Bring the old primary back as an administrator would: re-clone it.
    let out = script("rebuild.sh", &[&p], Duration::from_secs(240)).await;
    if !out.ok {
        ctx.fail(format!("rebuild.sh {p}: {}", out.stderr.trim()));
    }
    Ok(())
}

/// Controlled switchover: pcs-examples/02-switchover.sh (`pcs resource move
/// --promoted`, then `pcs resource clear`).
async fn sc_switchover(ctx: &mut Ctx) -> Result<(), String> {
    let p = ctx.primary.clone();
    let target = ctx.standbys.first().cloned().ok_or("no standby")?;
    let before = ctx.s.fences();
    ctx.fault();
    let out = recipe(&p, "02-switchover.sh", &[&target]).await;
    if !out.ok {
        ctx.fail(format!("02-switchover.sh: {}", out.stderr.trim()));
    }
    ctx.wait_writable_after_outage(WRITABLE_LIMIT).await;
    let r = roles().await;
    if r.promoted != [target.clone()] {
        ctx.fail(format!("expected {target} promoted, got {:?}", r.promoted));
    }
    ctx.expect_no_fencing(&before);
    Ok(())
}

/// kill -9 of a standby's postmaster: restarted in place, nobody fenced, the
/// primary keeps committing (ANY 1 of the other standbys).
async fn sc_kill_standby(ctx: &mut Ctx) -> Result<(), String> {
    let sb = ctx.standbys.first().cloned().ok_or("no standby")?;
    let before = ctx.s.fences();
    let pid_before = ctx.s.init_pid(&sb);
    ctx.expect_outage = false;
    ctx.fault();
    kill_postmaster(&sb).await?;
    // The standby must come back by itself.
    let deadline = Instant::now() + Duration::from_secs(90);
    sleep(Duration::from_secs(2)).await;
    while !node_streaming(&ctx.s, &sb).await && Instant::now() < deadline {
        sleep(Duration::from_millis(500)).await;
    }
    if !node_streaming(&ctx.s, &sb).await {
        ctx.fail(format!("{sb} not streaming again 90s after its postmaster was killed"));
    }
    if ctx.s.fences() != before || ctx.s.init_pid(&sb) != pid_before {
        ctx.fail(format!("{sb} was fenced or rebooted (expected a restart in place)"));
    }
    let r = roles().await;
    if r.promoted != [ctx.primary.clone()] {
        ctx.fail(format!("primary changed: {:?} (was {})", r.promoted, ctx.primary));
    }
    Ok(())
}

/// One standby lags behind (its replication link slowed down), the primary
/// crashes: the most advanced standby must be promoted.
async fn sc_election(ctx: &mut Ctx) -> Result<(), String> {
    if ctx.standbys.len() < 2 {
        return Err("needs at least 2 standbys".into());
    }
    let good = ctx.standbys[0].clone();
    let lagging = ctx.standbys[1].clone();
    script("slow-replication.sh", &[&lagging, "64kbit"], Duration::from_secs(30)).await;
    ctx.bulk_write(6000).await;
    let lag = write_lag(&ctx.s, &ctx.primary).await;
    ctx.notes.push(format!("lag before crash: {lag:?}"));
    if lag.get(&lagging).copied().unwrap_or(0) < 1_000_000 {
        ctx.fail(format!("{lagging} is not lagging: {lag:?}"));
    }
    // The crashed primary stays out (its cluster stack does not start at
    // boot): this scenario is about the election only.
    let p = ctx.primary.clone();
    let autostart = format!("{}/nodes/{p}/autostart", ctx.s.state_dir);
    std::fs::write(&autostart, "0\n").map_err(|e| e.to_string())?;
    ctx.fault();
    let out = script("crash.sh", &[&p], Duration::from_secs(30)).await;
    if !out.ok {
        return Err(format!("crash.sh: {}", out.stderr.trim()));
    }
    // Wait for a promotion, not for commits: with the old primary down, the
    // lagging standby may be the only one left to acknowledge synchronous
    // commits, and it needs its link back for that.
    let deadline = Instant::now() + WRITABLE_LIMIT;
    while ctx.first_promoted().is_none() && Instant::now() < deadline {
        sleep(Duration::from_millis(200)).await;
    }
    let first = ctx.first_promoted();
    ctx.notes.push(format!("promoted: {}", first.as_deref().unwrap_or("-")));
    if first.as_deref() != Some(good.as_str()) {
        ctx.fail(format!(
            "expected the most advanced standby {good} promoted, got {first:?} ({lagging} lagged)"
        ));
    }
    script("heal.sh", &[], Duration::from_secs(30)).await;
    ctx.wait_writable_after_outage(WRITABLE_LIMIT).await;
    // Bring the old primary back as an administrator would: re-clone it.
    let out = script("rebuild.sh", &[&p], Duration::from_secs(240)).await;
    if !out.ok {
        ctx.fail(format!("rebuild.sh {p}: {}", out.stderr.trim()));
    }
    Ok(())
}

/// maxlag: a connected standby lagging more than maxlag bytes loses its
/// promotion score, and gets it back once caught up.
async fn sc_maxlag(ctx: &mut Ctx) -> Result<(), String> {
    let lagging = ctx.standbys.last().cloned().ok_or("no standby")?;
    let p = ctx.primary.clone();
    let set_maxlag = |v: &'static str| {
        let p = p.clone();
        async move {
            script(
                "on.sh",
                &[&p, "pcs", "resource", "update", "pgsqld", &format!("maxlag={v}")],
                Duration::from_secs(60),
            )
            .await
        }
    };
    let out = set_maxlag("1048576").await;
    if !out.ok {
        return Err(format!("pcs resource update maxlag: {}", out.stderr.trim()));
    }
    if !wait_healthy(60).await {
        ctx.fail("cluster not healthy after setting maxlag");
    }
    let r = roles().await;
    if r.promoted != [p.clone()] {
        ctx.fail(format!("setting maxlag moved the primary: {:?}", r.promoted));
    }
    script("slow-replication.sh", &[&lagging, "64kbit"], Duration::from_secs(30)).await;
    ctx.expect_outage = false;
    ctx.fault();
    ctx.bulk_write(6000).await;
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut score = promotion_score(&lagging).await;
    while score.is_none_or(|v| v >= 0) && Instant::now() < deadline {
        sleep(Duration::from_secs(1)).await;
        score = promotion_score(&lagging).await;
    }
    let lag = write_lag(&ctx.s, &p).await;
    ctx.notes.push(format!("lagging {lagging}: score {score:?}, lag {:?}", lag.get(&lagging)));
    if score.is_none_or(|v| v >= 0) {
        ctx.fail(format!(
            "{lagging} lags {:?} bytes > maxlag but its promotion score is {score:?}",
            lag.get(&lagging)
        ));
    }
    if !node_streaming(&ctx.s, &lagging).await {
        ctx.notes.push(format!("{lagging} was disconnected (not a maxlag test any more)"));
    }
    script("heal.sh", &[], Duration::from_secs(30)).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    while promotion_score(&lagging).await.is_none_or(|v| v < 0) && Instant::now() < deadline {
        sleep(Duration::from_secs(1)).await;
    }
    let score = promotion_score(&lagging).await;
    if score.is_none_or(|v| v < 0) {
        ctx.fail(format!("{lagging} caught up but its promotion score stays {score:?}"));
    }
    let out = set_maxlag("0").await;
    if !out.ok {
        ctx.fail(format!("pcs resource update maxlag=0: {}", out.stderr.trim()));
    }
    Ok(())
}

/// The old primary, back after a failover, wrote WAL the new primary never
/// got (its shutdown checkpoint at least): it cannot follow, and the agent
/// must leave it stopped, not running and not primary, with an exit reason
/// asking for pg_rewind. Then repair it as that reason says.
async fn accept_diverged_old_primary(ctx: &mut Ctx) -> bool {
    let old = ctx.primary.clone();
    let Some(survivor) = ctx.s.nodes.iter().find(|n| **n != old).cloned() else { return false };
    let mon = script("on.sh", &[&survivor, "crm_mon", "-1"], Duration::from_secs(30)).await;
    let refused = mon
        .stdout
        .lines()
        .any(|l| l.contains(&format!(" on {old} returned")) && l.contains("pg_rewind"));
    if !refused {
        return false;
    }
    if node_in_recovery(&ctx.s, &old).await.is_some() {
        ctx.fail(format!("{old} refused to start but PostgreSQL runs there"));
        return false;
    }
    ctx.notes
        .push(format!("{old} diverged: start refused, exit reason asks for pg_rewind; rebuilt"));
    let out = script("rebuild.sh", &[&old], Duration::from_secs(180)).await;
    out.ok && wait_healthy(60).await
}

/// The primary is cut from everyone (other nodes and clients): the majority
/// fences it and promotes a standby; the partition heals afterwards.
async fn sc_partition_primary(ctx: &mut Ctx) -> Result<(), String> {
    let p = ctx.primary.clone();
    let before = ctx.s.fences();
    ctx.fault();
    let out = script("partition.sh", &[&p], Duration::from_secs(30)).await;
    if !out.ok {
        return Err(format!("partition.sh: {}", out.stderr.trim()));
    }
    if ctx.wait_writable_after_outage(WRITABLE_LIMIT).await {
        let r = roles().await;
        ctx.notes.push(format!("promoted: {}", r.promoted.join(",")));
        if r.promoted.contains(&p) {
            ctx.fail(format!("the isolated {p} is still Promoted"));
        }
    }
    if ctx.s.fences().get(&p) <= before.get(&p) {
        ctx.fail(format!("the isolated {p} was not fenced"));
    }
    sleep(Duration::from_secs(5)).await;
    script("heal.sh", &[], Duration::from_secs(30)).await;
    Ok(())
}

/// One statement on `node`'s instance in database `db`, through its unix
/// socket (partitions do not hide it), as root.
async fn node_sql(s: &Settings, node: &str, db: &str, sql: &str) -> Result<(), String> {
    let pid = s.init_pid(node).ok_or_else(|| format!("{node} is off"))?;
    let c = connect(&format!(
        "host=/proc/{pid}/root{} port={} user=root dbname={db} connect_timeout=2",
        s.sockdir, s.port
    ))
    .await?;
    match timeout(Duration::from_secs(10), c.batch_execute(sql)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("{sql}: {e}")),
        Err(_) => Err(format!("{sql}: timeout")),
    }
}

/// Entries of `node`'s /var/lib/postgresql/<major> named `main.<prefix>*`.
fn beside_datadir(s: &Settings, node: &str, prefix: &str) -> Vec<std::path::PathBuf> {
    let dir = format!("{}/nodes/{node}/var-lib-postgresql/{}", s.state_dir, s.pg_major);
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("main.{prefix}")))
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// rejoin_policy=rewind (`clone` false): the primary is cut from everyone
/// right after committing locally what no standby gets; fenced, it reboots
/// diverged, and must stream again without anyone's help: pg_rewind from the
/// new primary (replicator granted pg_rewind's functions), the discarded
/// WAL kept in main.diverged-*. With `clone`, rejoin_policy=rewind-or-clone
/// and replicator without those grants: pg_rewind fails (permission
/// denied), pg_basebackup rebuilds, the old data in main.replaced-*.
/// Notes the time from the old primary's boot to its streaming.
async fn sc_rejoin(ctx: &mut Ctx, clone: bool) -> Result<(), String> {
    let p = ctx.primary.clone();
    let s = ctx.s.clone();
    let policy = if clone { "rewind-or-clone" } else { "rewind" };
    let functions = "pg_catalog.pg_ls_dir(text, boolean, boolean), pg_catalog.pg_stat_file(text, boolean), \
                     pg_catalog.pg_read_binary_file(text), pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)";
    let grant = if clone {
        format!("REVOKE EXECUTE ON FUNCTION {functions} FROM replicator")
    } else {
        format!("GRANT EXECUTE ON FUNCTION {functions} TO replicator")
    };
    node_sql(&s, &p, "postgres", &grant).await?;
    let update = |v: String| {
        let p = p.clone();
        async move {
            script(
                "on.sh",
                &[&p, "pcs", "resource", "update", "pgsqld", &v],
                Duration::from_secs(60),
            )
            .await
        }
    };
    let out = update(format!("rejoin_policy={policy}")).await;
    if !out.ok {
        return Err(format!("pcs resource update rejoin_policy: {}", out.stderr.trim()));
    }
    if !wait_healthy(60).await {
        return Err(format!("cluster not healthy after setting rejoin_policy={policy}"));
    }
    if roles().await.promoted != [p.clone()] {
        return Err("setting rejoin_policy moved the primary".into());
    }
    let before = s.fences();
    let old_init = s.init_pid(&p);
    ctx.fault();
    let out = script("partition.sh", &[&p], Duration::from_secs(30)).await;
    if !out.ok {
        return Err(format!("partition.sh: {}", out.stderr.trim()));
    }
    // WAL nobody else gets: the isolated primary diverges for sure.
    if let Err(e) = node_sql(
        &s,
        &p,
        &s.app_db,
        "SET synchronous_commit = local; CREATE TABLE rejoin_lost AS SELECT generate_series(1, 1000) AS i",
    )
    .await
    {
        ctx.fail(format!("could not write on the isolated primary: {e}"));
    }
    ctx.expect_fenced_and_replaced(&p, &before).await;
    sleep(Duration::from_secs(5)).await;
    script("heal.sh", &[], Duration::from_secs(30)).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut booted = None;
    while booted.is_none() && Instant::now() < deadline {
        match s.init_pid(&p) {
            Some(pid) if Some(pid) != old_init => booted = Some(Instant::now()),
            _ => sleep(Duration::from_millis(200)).await,
        }
    }
    let booted = booted.ok_or_else(|| format!("{p} did not boot again within 120 s"))?;
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut streaming = None;
    while streaming.is_none() && Instant::now() < deadline {
        if node_streaming(&s, &p).await {
            streaming = Some(Instant::now());
        } else {
            sleep(Duration::from_millis(250)).await;
        }
    }
    match streaming {
        Some(t) => ctx.notes.push(format!(
            "rejoin_policy={policy}: {p} from boot to streaming {:.1} s",
            (t - booted).as_secs_f64()
        )),
        None => {
            ctx.fail(format!("{p} does not stream 240 s after its boot (rejoin_policy={policy})"))
        }
    }
    let kept = beside_datadir(&s, &p, "diverged-");
    let segments = kept
        .first()
        .and_then(|d| std::fs::read_dir(d).ok())
        .map(|d| d.flatten().filter(|e| e.file_name().len() == 24).count())
        .unwrap_or(0);
    if segments == 0 {
        ctx.fail(format!("no discarded WAL kept beside {p}'s data directory: {kept:?}"));
    }
    let replaced = beside_datadir(&s, &p, "replaced-");
    if clone == replaced.is_empty() {
        ctx.fail(format!(
            "old data directory moved aside: {replaced:?} (expected only for a rebuild)"
        ));
    }
    if streaming.is_some() {
        match node_in_recovery(&s, &p).await {
            Some(true) => {}
            other => ctx.fail(format!("{p} is not a standby after its rejoin: {other:?}")),
        }
    }
    ctx.notes.push(format!("kept {segments} WAL segments in {:?}", kept.first()));
    // Back to the cluster's defaults for the scenarios that follow.
    let out = update("rejoin_policy=manual".into()).await;
    if !out.ok {
        ctx.fail(format!("pcs resource update rejoin_policy=manual: {}", out.stderr.trim()));
    }
    for d in kept.iter().chain(replaced.iter()) {
        let _ = std::fs::remove_dir_all(d);
    }
    Ok(())
}

/// The old primary, fenced, stays down (cluster stack disabled at boot) while
/// the new primary takes writes, then comes back: it must rejoin as a standby.
async fn sc_old_primary_returns(ctx: &mut Ctx) -> Result<(), String> {
    let p = ctx.primary.clone();
    let autostart = format!("{}/nodes/{p}/autostart", ctx.s.state_dir);
    std::fs::write(&autostart, "0\n").map_err(|e| e.to_string())?;
    ctx.fault();
    let out = script("crash.sh", &[&p], Duration::from_secs(30)).await;
    if !out.ok {
        return Err(format!("crash.sh: {}", out.stderr.trim()));
    }
    ctx.wait_writable_after_outage(WRITABLE_LIMIT).await;
    // The node is fenced (booted without its cluster stack); writes go on.
    let deadline = Instant::now() + Duration::from_secs(60);
    while ctx.s.init_pid(&p).is_none() && Instant::now() < deadline {
        sleep(Duration::from_millis(500)).await;
    }
    sleep(Duration::from_secs(5)).await;
    std::fs::write(&autostart, "1\n").map_err(|e| e.to_string())?;
    if ctx.s.init_pid(&p).is_none() {
        script("power.sh", &["on", &p], Duration::from_secs(60)).await;
    }
    let out = script(
        "on.sh",
        &[&p, &format!("{HARNESS}/node-services.sh"), "start"],
        Duration::from_secs(90),
    )
    .await;
    if !out.ok {
        ctx.fail(format!("starting the cluster stack on {p}: {}", out.stderr.trim()));
    }
    let r = roles().await;
    ctx.notes.push(format!("promoted after the return: {}", r.promoted.join(",")));
    Ok(())
}

// ---------------------------------------------------------------------------
// Recipes of pcs-examples/, run on a node as an operator would.
// ---------------------------------------------------------------------------

/// Run pcs-examples/RECIPE ARGS on NODE; its output goes to the test log.
async fn recipe(node: &str, name: &str, args: &[&str]) -> Out {
    let path = format!("{RECIPES}/{name}");
    let mut all = vec![node, path.as_str()];
    all.extend_from_slice(args);
    let out = script("on.sh", &all, Duration::from_secs(300)).await;
    for l in out.stdout.lines().filter(|l| l.starts_with(name)) {
        say(&format!("      {l}"));
    }
    out
}

/// A node other than the ones given.
fn other_node(ctx: &Ctx, not: &[&str]) -> Result<String, String> {
    ctx.s
        .nodes
        .iter()
        .find(|n| !not.contains(&n.as_str()))
        .cloned()
        .ok_or_else(|| "no other node".into())
}

/// First line of postmaster.pid on each node (empty when not running).
async fn postmaster_pids(s: &Settings) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for n in &s.nodes {
        let pid = std::fs::read_to_string(format!(
            "{}/nodes/{n}/var-lib-postgresql/{}/main/postmaster.pid",
            s.state_dir, s.pg_major
        ))
        .ok()
        .and_then(|t| t.lines().next().map(String::from))
        .unwrap_or_default();
        m.insert(n.clone(), pid);
    }
    m
}

/// The agents of the pgsqld instances Pacemaker reports (crm_mon).
async fn running_agents(s: &Settings) -> BTreeSet<String> {
    let Some(n) = s.nodes.iter().find(|n| s.init_pid(n).is_some()) else { return BTreeSet::new() };
    let mon =
        script("on.sh", &[n, "crm_mon", "-1", "--output-as=xml"], Duration::from_secs(30)).await;
    mon.stdout
        .lines()
        .filter(|l| l.contains("<resource id=\"pgsqld\""))
        .filter_map(|l| Some(l.split("resource_agent=\"").nth(1)?.split('"').next()?.to_string()))
        .collect()
}

async fn failcounts() -> String {
    run(&format!("{HARNESS}/status.sh"), &["--failcounts"], Duration::from_secs(20)).await.stdout
}

/// 03-node-standby.sh on the primary's node: a switchover to a standby, the
/// node's instance stopped; then unstandby: it comes back as a standby.
async fn sc_recipe_node_standby(ctx: &mut Ctx) -> Result<(), String> {
    let p = ctx.primary.clone();
    let op = other_node(ctx, &[&p])?;
    let before = ctx.s.fences();
    ctx.fault();
    let out = recipe(&op, "03-node-standby.sh", &["standby", &p]).await;
    if !out.ok {
        ctx.fail(format!("03-node-standby.sh standby {p}: {}", out.stderr.trim()));
    }
    ctx.wait_writable_after_outage(WRITABLE_LIMIT).await;
    let r = roles().await;
    ctx.notes.push(format!("primary during standby: {}", r.promoted.join(",")));
    if r.promoted.len() != 1 || r.promoted.contains(&p) || r.unpromoted.contains(&p) {
        ctx.fail(format!(
            "{p} in standby: expected its instance stopped and another primary, got {r:?}"
        ));
    }
    if node_in_recovery(&ctx.s, &p).await.is_some() {
        ctx.fail(format!("PostgreSQL still runs on {p} in standby"));
    }
    let out = recipe(&op, "03-node-standby.sh", &["unstandby", &p]).await;
    if !out.ok {
        ctx.fail(format!("03-node-standby.sh unstandby {p}: {}", out.stderr.trim()));
    }
    ctx.expect_no_fencing(&before);
    Ok(())
}

/// 04-maintenance.sh: maintenance mode on, the DBA restarts the primary by
/// hand (Pacemaker must not react), maintenance off: same primary, no
/// failure recorded, nothing fenced.
async fn sc_recipe_maintenance(ctx: &mut Ctx) -> Result<(), String> {
    let p = ctx.primary.clone();
    let before = ctx.s.fences();
    ctx.expect_outage = false;
    ctx.fault();
    let out = recipe(&p, "04-maintenance.sh", &["on"]).await;
    if !out.ok {
        return Err(format!("04-maintenance.sh on: {}", out.stderr.trim()));
    }
    expect_status_view(ctx, "in maintenance mode", |v, _| {
        if v["cluster"]["maintenance_mode"] == true {
            Ok(())
        } else {
            Err("maintenance_mode not shown".into())
        }
    })
    .await;
    let pids = postmaster_pids(&ctx.s).await;
    let restart = format!(
        ". {HARNESS}/lib.sh && as_pg {p} \"$PG_BINDIR/pg_ctl\" -D \"$PGDATA_NODE\" -m fast -w -t 60 \
         -l /var/log/postgresql/startup.log restart"
    );
    let out = run("bash", &["-c", &restart], Duration::from_secs(90)).await;
    if !out.ok {
        ctx.fail(format!("pg_ctl restart on {p}: {}", out.stderr.trim()));
    }
    sleep(Duration::from_secs(3)).await; // longer than a monitor interval: nobody reacts
    let out = recipe(&p, "04-maintenance.sh", &["off"]).await;
    if !out.ok {
        ctx.fail(format!("04-maintenance.sh off: {}", out.stderr.trim()));
    }
    let after = postmaster_pids(&ctx.s).await;
    if after.get(&p) == pids.get(&p) {
        ctx.fail(format!("{p}: PostgreSQL was not restarted (postmaster {:?})", after.get(&p)));
    }
    for n in ctx.standbys.clone() {
        if after.get(&n) != pids.get(&n) {
            ctx.fail(format!(
                "{n}: PostgreSQL restarted ({:?} -> {:?})",
                pids.get(&n),
                after.get(&n)
            ));
        }
    }
    let r = roles().await;
    if r.promoted != [p.clone()] {
        ctx.fail(format!("primary moved: {:?} (was {p})", r.promoted));
    }
    let fc = failcounts().await;
    if !fc.trim().is_empty() {
        ctx.fail(format!("failures recorded: {}", fc.trim()));
    }
    ctx.expect_no_fencing(&before);
    Ok(())
}

/// 05-failover.sh: the primary's node is fenced on purpose; a standby is
/// promoted; the old primary comes back (rejoins, or stays out diverged).
async fn sc_recipe_failover(ctx: &mut Ctx) -> Result<(), String> {
    let p = ctx.primary.clone();
    let op = other_node(ctx, &[&p])?;
    let before = ctx.s.fences();
    ctx.fault();
    let out = recipe(&op, "05-failover.sh", &[]).await;
    if !out.ok {
        ctx.fail(format!("05-failover.sh: {}", out.stderr.trim()));
    }
    // `pcs stonith fence` reboots the node, and the harness's power switch
    // has it back at once: the old primary may publish the end of its WAL
    // (newer than any standby's: what it wrote last was never streamed)
    // before a standby is promoted, and the election then waits for it and
    // promotes it. Either outcome is right; what must hold is writable
    // again, the node fenced, nothing acknowledged lost (checked after).
    if ctx.wait_writable_after_outage(WRITABLE_LIMIT).await {
        let first = ctx.first_promoted();
        ctx.notes.push(format!("promoted: {}", first.as_deref().unwrap_or("?")));
    }
    if ctx.s.fences().get(&p) <= before.get(&p) {
        ctx.fail(format!("{p} was not fenced"));
    }
    Ok(())
}

/// A standby fails (kill -9, recovered in place): its failure shows in the
/// fail counts until 06-cleanup.sh clears it.
async fn sc_recipe_cleanup(ctx: &mut Ctx) -> Result<(), String> {
    let sb = ctx.standbys.first().cloned().ok_or("no standby")?;
    ctx.expect_outage = false;
    ctx.fault();
    kill_postmaster(&sb).await?;
    let deadline = Instant::now() + Duration::from_secs(90);
    while !failcounts().await.contains(&sb) && Instant::now() < deadline {
        sleep(Duration::from_millis(500)).await;
    }
    if !failcounts().await.contains(&sb) {
        return Err(format!("no failure recorded on {sb} after its postmaster was killed"));
    }
    if !wait_healthy(90).await {
        ctx.fail(format!("{sb} not recovered in place"));
    }
    let out = recipe(&ctx.primary.clone(), "06-cleanup.sh", &[&sb]).await;
    if !out.ok {
        ctx.fail(format!("06-cleanup.sh {sb}: {}", out.stderr.trim()));
    }
    let fc = failcounts().await;
    if !fc.trim().is_empty() {
        ctx.fail(format!("failures left after 06-cleanup.sh: {}", fc.trim()));
    }
    Ok(())
}

/// 07-migrate-from-paf.sh on a cluster running PAF: the resource runs
/// ocf:rust:pgsqlms afterwards, no PostgreSQL restarted, the primary where
/// it was; then the new agent carries out a switchover.
async fn sc_recipe_migrate_from_paf(ctx: &mut Ctx) -> Result<(), String> {
    let agents = running_agents(&ctx.s).await;
    if agents != BTreeSet::from([PAF.to_string()]) {
        return Err(format!("expected a cluster running PAF, it runs {agents:?}"));
    }
    let p = ctx.primary.clone();
    let before = ctx.s.fences();
    let pids = postmaster_pids(&ctx.s).await;
    ctx.expect_outage = false;
    ctx.fault();
    let out = recipe(&p, "07-migrate-from-paf.sh", &[]).await;
    if !out.ok {
        return Err(format!("07-migrate-from-paf.sh: {}", out.stderr.trim()));
    }
    let agents = running_agents(&ctx.s).await;
    if agents != BTreeSet::from(["ocf:rust:pgsqlms".to_string()]) {
        ctx.fail(format!("pgsqld instances run {agents:?}, expected ocf:rust:pgsqlms only"));
    } else {
        // Later scenarios (and their repairs) now deal with our agent.
        let env = format!("{}/cluster.env", ctx.s.state_dir);
        if let Ok(t) = std::fs::read_to_string(&env) {
            let t: Vec<String> = t
                .lines()
                .map(|l| {
                    if l.starts_with("AGENT=") { "AGENT=ocf:rust:pgsqlms".into() } else { l.into() }
                })
                .collect();
            let _ = std::fs::write(&env, t.join("\n") + "\n");
        }
    }
    let after = postmaster_pids(&ctx.s).await;
    if after != pids {
        ctx.fail(format!("PostgreSQL restarted: postmasters {pids:?} -> {after:?}"));
    }
    let r = roles().await;
    if r.promoted != [p.clone()] {
        ctx.fail(format!("primary moved: {:?} (was {p})", r.promoted));
    }
    if !wait_healthy(60).await {
        ctx.fail("cluster not healthy after the migration");
    }
    // The new agent in charge: a switchover.
    let target = ctx.standbys.first().cloned().ok_or("no standby")?;
    let out = recipe(&p, "02-switchover.sh", &[&target]).await;
    if !out.ok {
        ctx.fail(format!("02-switchover.sh {target} after the migration: {}", out.stderr.trim()));
    }
    ctx.notes.push(format!("migrated with the primary on {p}, then switched over to {target}"));
    ctx.expect_no_fencing(&before);
    Ok(())
}

// ---------------------------------------------------------------------------
// Synchronous replication: zero acknowledged-commit loss
// ---------------------------------------------------------------------------

/// The primary and the standby X lose power together, while the other
/// standby Y lags (slow link): commits acknowledged by X alone may be
/// missing on Y. With `FIRST 1 (X, Y)` (or the harness' `ANY 1 (srv1, srv2,
/// srv3)`), Y alone cannot prove it holds every acknowledged commit: its
/// promotion is refused, naming X, and nothing is promoted. X comes back:
/// it is promoted by itself, with no acknowledged row lost (common check).
///
/// Quorum: 3 nodes, 2 lost. The scenario sets no-quorum-policy=ignore, so
/// that the survivor fences the two others and goes on (as a 5-node cluster
/// losing 2 would, with quorum), and restores the policy at the end. The
/// two lost nodes reboot without their cluster stack (fencing), X is
/// started again by the scenario, the old primary is rebuilt.
async fn sc_sync_loss(ctx: &mut Ctx, first: bool) -> Result<(), String> {
    if ctx.standbys.len() != 2 {
        return Err(format!("needs exactly 2 standbys, got {:?}", ctx.standbys));
    }
    let p = ctx.primary.clone();
    let (x, y) = (ctx.standbys[0].clone(), ctx.standbys[1].clone());
    let record = if first {
        let (_, c) = connect_node(&ctx.s, &p).await?;
        let set = format!("ALTER SYSTEM SET synchronous_standby_names = 'FIRST 1 ({x}, {y})'");
        c.batch_execute(&set).await.map_err(|e| format!("{set}: {e}"))?;
        c.batch_execute("SELECT pg_reload_conf()").await.map_err(|e| e.to_string())?;
        format!("FIRST 1 (\"{x}\",\"{y}\")")
    } else {
        let mut m = [x.clone(), y.clone()];
        m.sort();
        format!("ANY 1 (\"{}\",\"{}\")", m[0], m[1])
    };
    // The primary's monitor (every second) records who holds the commits.
    let query =
        ["crm_attribute", "--type", "crm_config", "--name", "pgsqlms-sync-pgsqld", "--query"];
    let mut seen = String::new();
    for _ in 0..30 {
        seen = script("on.sh", &[&[y.as_str()][..], &query[..]].concat(), Duration::from_secs(20))
            .await
            .stdout;
        if seen.contains(&record) {
            break;
        }
        sleep(Duration::from_secs(1)).await;
    }
    if !seen.contains(&record) {
        ctx.fail(format!("sync record: expected {record}, CIB has {seen:?}"));
    }
    let policy = script(
        "on.sh",
        &[
            &y,
            "crm_attribute",
            "--type",
            "crm_config",
            "--name",
            "no-quorum-policy",
            "--query",
            "--quiet",
        ],
        Duration::from_secs(20),
    )
    .await;
    let old_policy = policy.stdout.trim().to_string();
    script(
        "on.sh",
        &[&y, "pcs", "property", "set", "no-quorum-policy=ignore"],
        Duration::from_secs(30),
    )
    .await;

    script("slow-replication.sh", &[&y, "64kbit"], Duration::from_secs(30)).await;
    ctx.bulk_write(3000).await;
    let lag = write_lag(&ctx.s, &p).await;
    ctx.notes.push(format!("lag before the loss: {lag:?}"));
    for n in [&p, &x] {
        let autostart = format!("{}/nodes/{n}/autostart", ctx.s.state_dir);
        std::fs::write(&autostart, "0\n").map_err(|e| e.to_string())?;
    }
    ctx.fault();
    let (pa, xa) = ([p.as_str()], [x.as_str()]);
    let (a, b) = tokio::join!(
        script("crash.sh", &pa, Duration::from_secs(30)),
        script("crash.sh", &xa, Duration::from_secs(30)),
    );
    if !a.ok || !b.ok {
        return Err(format!("crash.sh: {} {}", a.stderr.trim(), b.stderr.trim()));
    }

    // Safe mode: Y's promotion is refused with a reason naming X, and
    // nothing gets promoted while X is away.
    let want = format!("bring back {x}");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut refused = false;
    while Instant::now() < deadline && !refused {
        let st = script("on.sh", &[&y, "crm_mon", "-1"], Duration::from_secs(20)).await.stdout;
        refused = st.contains(&want);
        if !refused {
            sleep(Duration::from_secs(1)).await;
        }
    }
    if !refused {
        ctx.fail(format!("no refused promotion naming {x} within 90 s"));
    }
    sleep(Duration::from_secs(10)).await;
    if let Some(n) = ctx.first_promoted() {
        ctx.fail(format!("{n} was promoted while {x} was away"));
    }
    ctx.notes.push(format!("refused until {x} returned"));
    script("heal.sh", &[], Duration::from_secs(30)).await;

    // X comes back: promoted by itself.
    let autostart = format!("{}/nodes/{x}/autostart", ctx.s.state_dir);
    std::fs::write(&autostart, "1\n").map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while ctx.s.init_pid(&x).is_none() && Instant::now() < deadline {
        sleep(Duration::from_millis(500)).await;
    }
    if ctx.s.init_pid(&x).is_none() {
        script("power.sh", &["on", &x], Duration::from_secs(60)).await;
    }
    let out = script(
        "on.sh",
        &[&x, &format!("{HARNESS}/node-services.sh"), "start"],
        Duration::from_secs(90),
    )
    .await;
    if !out.ok {
        ctx.fail(format!("starting the cluster stack on {x}: {}", out.stderr.trim()));
    }
    ctx.wait_writable_after_outage(WRITABLE_LIMIT).await;
    let promoted = ctx.first_promoted();
    ctx.notes.push(format!("promoted: {}", promoted.as_deref().unwrap_or("-")));
    if promoted.as_deref() != Some(x.as_str()) {
        ctx.fail(format!("expected {x} (most advanced, back) promoted, got {promoted:?}"));
    }
    let restore = if old_policy.is_empty() || old_policy.contains("Error") {
        "no-quorum-policy=".to_string()
    } else {
        format!("no-quorum-policy={old_policy}")
    };
    script("on.sh", &[&y, "pcs", "property", "set", &restore], Duration::from_secs(30)).await;
    let out = script("rebuild.sh", &[&p], Duration::from_secs(240)).await;
    if !out.ok {
        ctx.fail(format!("rebuild.sh {p}: {}", out.stderr.trim()));
    }
    Ok(())
}
