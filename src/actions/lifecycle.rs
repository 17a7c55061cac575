//! start, stop, demote, promote.

use crate::actions::{checks, rejoin, rewind};
use crate::agent::{ActionResult, Agent, Failure};
use crate::controlfile::{ControlData, DbState};
use crate::election::{self, Barred, Candidate, Holder, Verdict};
use crate::exit::OcfExit;
use crate::hang::Liveness;
use crate::instance::{self, POLL};
use crate::pacemaker::{
    ATTR_CANCEL_SWITCHOVER, ATTR_LSN, ATTR_NODES, ATTR_RECOVER_PRIMARY, ATTR_SHUTDOWN_CHECKPOINT,
    ATTR_WAL_ON_DISK,
};
use crate::pg;
use crate::role::{Postmaster, Role};
use crate::scores;
use crate::syncrep::{self, Guard};
use crate::validate::Settings;
use std::time::Duration;
use tokio::time::Instant;

pub async fn start(agent: &Agent) -> ActionResult {
    // What an earlier start of a rejoin left unfinished comes first: a
    // half-done copy is no data directory the checks below could read.
    if let Some((pending, aside)) = rewind::pending(agent)? {
        return rewind::resume(agent, pending, aside).await;
    }
    let settings = checks::local(agent, true).await?.expect("settings were asked for");
    let o = instance::settle(agent).await?;
    match o.role {
        Role::Standby => {
            log::info!("instance already running as a standby");
            Ok(OcfExit::Success)
        }
        Role::Primary => Err(Failure::generic(
            "instance is running as a primary outside of Pacemaker's knowledge; start must leave a standby: stop it first",
        )),
        Role::Stopped | Role::CrashedStandby | Role::CrashedPrimary => {
            if let Some(diverged) = check_former_primary(agent, &o.control, Some(&settings)).await?
            {
                drop(o);
                return rewind::rejoin(agent, &settings, diverged).await;
            }
            start_standby(agent).await
        }
        Role::Transient(w) => Err(Failure::generic(w)),
        Role::Broken(code, why) => Err(Failure::new(code, why)),
    }
}

/// Start with standby.signal and wait until it answers as a standby.
pub async fn start_standby(agent: &Agent) -> ActionResult {
    instance::ensure_standby_signal(agent)?;
    // After a kill -9, orphaned backends can hold the old shared memory or
    // lock file until they notice their postmaster is gone: retry while the
    // action has time.
    while let Err(e) = instance::pg_ctl_start(agent).await {
        let transient = e.reason.contains("shared memory") || e.reason.contains("lock file");
        if !transient || agent.time_left() < Duration::from_secs(3) {
            return Err(e);
        }
        log::warn!("{}; retrying", e.reason);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let o = instance::wait_for(agent, "a running standby", |r| {
        matches!(r, Role::Standby | Role::Primary)
    })
    .await?;
    if o.role == Role::Primary {
        return Err(Failure::generic("instance started as a primary despite standby.signal"));
    }
    log::info!("instance started as a standby");
    if let Some(client) = &o.client
        && let Err(e) = crate::actions::slots::upkeep(agent, client, true).await
    {
        log::warn!("replication slots: {}", e.reason);
    }
    // Running, it publishes live positions: the WAL-on-disk one would go stale.
    if let Err(e) = agent.pcmk.delete_private(ATTR_WAL_ON_DISK, agent.deadline).await {
        log::warn!("could not delete the published end of the WAL on disk: {e}");
    }
    Ok(OcfExit::Success)
}

/// The control file of an instance that last ran as a primary.
fn was_primary(state: DbState) -> bool {
    matches!(
        state,
        DbState::ShutDown
            | DbState::InProduction
            | DbState::InCrashRecovery
            | DbState::ShuttingDown
    )
}

/// Before a stopped or crashed former primary starts as a standby: refuse
/// if its WAL is not part of the current primary's history. A fresh base
/// backup says "in production" too, but is behind by construction.
async fn check_former_primary(
    agent: &Agent,
    control: &ControlData,
    settings: Option<&Settings>,
) -> Result<Option<rejoin::Diverged>, Failure> {
    if !was_primary(control.state) || instance::has_backup_label(agent)? {
        return Ok(None);
    }
    let fetched;
    let settings = match settings {
        Some(s) => s,
        None => {
            fetched = checks::local(agent, true).await?.expect("settings were asked for");
            &fetched
        }
    };
    rejoin::check(agent, control, &settings.primary_conninfo).await
}

pub async fn stop(agent: &Agent) -> ActionResult {
    promotion_marker::clear(agent);
    // Stop whatever runs, whatever state it is in: a failed stop gets the
    // node fenced, so never refuse one that can be done.
    let datadir = &agent.params.datadir;
    let pid = match instance::postmaster(datadir) {
        Postmaster::Running(pid) => pid,
        Postmaster::NotRunning if !datadir.is_dir() => return stop_without_datadir(agent).await,
        Postmaster::NotRunning => {
            match instance::control_data(agent).await {
                Ok(c) => {
                    log::info!("instance already stopped (control file: \"{}\")", c.state.as_str())
                }
                Err(e) => log::info!("instance already stopped ({})", e.reason),
            }
            return Ok(OcfExit::Success);
        }
    };
    // A server that cannot make progress would not answer a shutdown
    // request either: waiting out the timeout only delays the failover.
    if let Liveness::Hung(why) = instance::liveness(pid).await {
        log::error!("PostgreSQL is hung: {why}; killing it (the next start does crash recovery)");
        instance::kill_tree(agent, pid).await?;
        log::info!("hung instance killed");
        return Ok(OcfExit::Success);
    }
    if let Err(e) = checks::binaries_and_user(agent) {
        // No pg_ctl to ask: the postmaster is ours (checked above), signal
        // it the way pg_ctl would rather than fail the stop.
        log::error!("{}: stopping the postmaster (PID {pid}) with signals", e.reason);
        signal_stop(agent, pid).await?;
        log::info!("instance stopped");
        return Ok(OcfExit::Success);
    }
    stop_running(agent, pid).await?;
    log::info!("instance stopped");
    Ok(OcfExit::Success)
}

/// pg_ctl's fast shutdown (SIGINT), then its immediate one (SIGQUIT), then
/// SIGKILL of the whole tree, each given part of the time left.
async fn signal_stop(agent: &Agent, pid: i32) -> Result<(), Failure> {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    for (sig, share) in [(Signal::SIGINT, 2), (Signal::SIGQUIT, 3)] {
        let _ = kill(Pid::from_raw(pid), sig);
        let until = Instant::now() + agent.time_left() / share;
        while Instant::now() < until {
            if let Postmaster::NotRunning = instance::postmaster(&agent.params.datadir) {
                return Ok(());
            }
            tokio::time::sleep(POLL).await;
        }
        log::warn!("the postmaster did not stop after {sig}");
    }
    instance::kill_tree(agent, pid).await
}

/// The data directory is missing. On a node where the resource was never
/// installed, Pacemaker's probes and cleanups run stop too and need "stopped"
/// (0): anything else would fence a node for a resource it never ran. But
/// a server still running in a data directory that was removed under it
/// must not be called stopped: kill it, and fail if it survives.
async fn stop_without_datadir(agent: &Agent) -> ActionResult {
    let datadir = &agent.params.datadir;
    let orphans = crate::procfs::postgres_in_removed_dir(datadir);
    if orphans.is_empty() {
        log::warn!(
            "data directory {} not found, and no PostgreSQL process works in it: nothing to stop here",
            datadir.display()
        );
        return Ok(OcfExit::Success);
    }
    log::error!(
        "data directory {} was removed while PostgreSQL ran in it: killing its processes",
        datadir.display()
    );
    instance::kill_processes(agent, orphans).await?;
    Ok(OcfExit::Success)
}

/// Fast shutdown; if it cannot finish in time, immediate shutdown so the
/// stop still succeeds (crash recovery at next start is safe; fencing the
/// node is not cheaper).
/// A server found hung while it shuts down (its disk stopped answering) is
/// killed rather than waited for.
async fn stop_running(agent: &Agent, pid: i32) -> Result<(), Failure> {
    let reserve = (agent.time_left() / 4).min(Duration::from_secs(5));
    let fast_deadline = agent.deadline - reserve;
    let pm = Postmaster::Running(pid);
    let hung = |f: Failure| async move {
        log::error!("{}: killing it", f.reason);
        instance::kill_tree(agent, pid).await
    };
    match instance::unless_hung(pm, instance::pg_ctl_stop_until(agent, "fast", fast_deadline)).await
    {
        Err(f) => return hung(f).await,
        Ok(Err(e)) => {
            log::warn!("fast shutdown did not complete ({}); using immediate shutdown", e.reason);
            let immediate = instance::pg_ctl_stop_until(agent, "immediate", agent.deadline);
            match instance::unless_hung(pm, immediate).await {
                Err(f) => return hung(f).await,
                Ok(r) => r?,
            }
        }
        Ok(Ok(())) => {}
    }
    wait_postmaster_gone(agent).await
}

async fn wait_postmaster_gone(agent: &Agent) -> Result<(), Failure> {
    loop {
        if let Postmaster::NotRunning = instance::postmaster(&agent.params.datadir) {
            return Ok(());
        }
        if Instant::now() + POLL >= agent.deadline {
            return Err(Failure::generic("the postmaster is still running at the end of the stop"));
        }
        tokio::time::sleep(POLL).await;
    }
}

pub async fn demote(agent: &Agent) -> ActionResult {
    promotion_marker::clear(agent);
    // A hung primary would never shut down cleanly: kill it now and fail,
    // so that the stop that follows finds it stopped and another node
    // takes over in seconds rather than after this action's timeout.
    if let Postmaster::Running(pid) = instance::postmaster(&agent.params.datadir)
        && let Liveness::Hung(why) = instance::liveness(pid).await
    {
        log::error!("PostgreSQL is hung: {why}; killing it");
        instance::kill_tree(agent, pid).await?;
        return Err(Failure::generic(format!(
            "PostgreSQL hung ({why}): killed it; it restarts as a standby"
        )));
    }
    // The same ownership and version checks as start: demote starts it.
    checks::setup(agent).await?;
    let o = instance::settle(agent).await?;
    match o.role {
        Role::Standby => {
            log::info!("instance already running as a standby");
            return Ok(OcfExit::Success);
        }
        Role::Primary => {
            drop(o);
            // Clean (fast) shutdown only: the shutdown checkpoint is what the
            // standby taking over checks it received.
            instance::pg_ctl_stop_until(agent, "fast", agent.deadline).await?;
            wait_postmaster_gone(agent).await?;
            let c = instance::control_data(agent).await?;
            if c.state != DbState::ShutDown {
                return Err(Failure::generic(format!(
                    "primary did not shut down cleanly (control file: \"{}\")",
                    c.state.as_str()
                )));
            }
            log::info!(
                "primary shut down cleanly at checkpoint {}, starting it as a standby",
                c.checkpoint
            );
            // The standby taking over checks it received this very record.
            let ckpt = election::Position { timeline: c.timeline, lsn: c.checkpoint }.to_attr();
            if let Err(e) =
                agent.pcmk.set_private(ATTR_SHUTDOWN_CHECKPOINT, &ckpt, agent.deadline).await
            {
                log::error!(
                    "cannot publish the shutdown checkpoint (a switchover will be cancelled): {e}"
                );
            }
        }
        Role::Stopped | Role::CrashedStandby | Role::CrashedPrimary => {
            // A crashed primary here is not recovered in place (pre-demote
            // would have done it): another node takes over. Starting it as a
            // standby must not hide a divergence behind a "shut down in
            // recovery" control file, where a later start could not see it.
            // Only a start rejoins (rejoin_policy): here it is refused.
            if let Some(diverged) = check_former_primary(agent, &o.control, None).await? {
                return Err(diverged.refusal());
            }
        }
        Role::Transient(w) => return Err(Failure::generic(w)),
        Role::Broken(code, why) => return Err(Failure::new(code, why)),
    }
    start_standby(agent).await
}

pub async fn promote(agent: &Agent) -> ActionResult {
    checks::setup(agent).await?;
    let o = instance::settle(agent).await?;
    match o.role {
        Role::Primary => {
            log::info!("instance already running as a primary");
            promotion_marker::set(agent);
            return Ok(OcfExit::Success);
        }
        Role::Standby => {}
        Role::Stopped => {
            log::info!("instance is stopped: starting it as a standby before promoting it");
            drop(o);
            start_standby(agent).await?;
        }
        Role::CrashedPrimary | Role::CrashedStandby => {
            return Err(Failure::generic(
                "cannot promote a crashed instance: it must be recovered (stopped and started) first",
            ));
        }
        Role::Transient(w) => return Err(Failure::generic(w)),
        Role::Broken(code, why) => return Err(Failure::new(code, why)),
    }

    let pcmk = &agent.pcmk;
    let me = agent.node().await?.to_string();
    if let Some(why) = crate::actions::notify::take_local_cancel(agent) {
        let _ = pcmk.delete_private(ATTR_CANCEL_SWITCHOVER, agent.deadline).await;
        return Err(Failure::generic(why));
    }
    // Everything the decision reads, at once: each tool call is a round trip
    // to attrd or the CIB, and the VIP waits for this promotion.
    let d = agent.deadline;
    let (cancel, recovering, nodes_attr, published, on_disk, view) = tokio::join!(
        pcmk.private_all(ATTR_CANCEL_SWITCHOVER, d),
        pcmk.private_all(ATTR_RECOVER_PRIMARY, d),
        pcmk.private_all(ATTR_NODES, d),
        pcmk.private_all(ATTR_LSN, d),
        pcmk.private_all(ATTR_WAL_ON_DISK, d),
        pcmk.cluster_view(d),
    );
    if let Some(why) = cancel?.get(&me) {
        let _ = pcmk.delete_private(ATTR_CANCEL_SWITCHOVER, agent.deadline).await;
        return Err(Failure::generic(format!("switchover cancelled: {why}")));
    }
    if recovering?.contains_key(&me) {
        log::info!("recovering the primary in place: no election");
    } else {
        let published = Published { nodes: nodes_attr?, positions: published?, on_disk: on_disk? };
        elect(agent, &me, published, view?).await?;
    }

    let o = instance::observe(agent).await?;
    let client = o.client.ok_or_else(|| {
        Failure::generic("lost the connection to the standby before promoting it")
    })?;
    let rows = pg::rows(&client, "SELECT pg_promote(false)", agent.deadline)
        .await
        .map_err(|e| Failure::generic(format!("pg_promote failed: {e}")))?;
    if rows.first().and_then(|r| r[0].as_deref()) != Some("t") {
        return Err(Failure::generic("pg_promote could not signal the promotion"));
    }
    // pg_promote(true) looks every 100 ms; the end of recovery takes a few.
    loop {
        let rows = pg::rows(&client, "SELECT pg_is_in_recovery()", agent.deadline)
            .await
            .map_err(|e| Failure::generic(format!("waiting for the promotion: {e}")))?;
        if rows.first().and_then(|r| r[0].as_deref()) == Some("f") {
            break;
        }
        if Instant::now() + PROMOTE_POLL >= agent.deadline {
            return Err(Failure::generic("the promotion did not complete in time"));
        }
        tokio::time::sleep(PROMOTE_POLL).await;
    }
    instance::wait_for(agent, "a primary", |r| *r == Role::Primary).await?;
    promotion_marker::set(agent);
    // A slot for every other node now, not at the first monitor: standbys
    // reconnect to this primary within seconds.
    if let Err(e) = crate::actions::slots::upkeep(agent, &client, false).await {
        log::warn!("replication slots: {}", e.reason);
    }
    log::info!("promoted to primary");
    Ok(OcfExit::Success)
}

/// With synchronous replication, promote only if the standbys in the
/// election provably hold every acknowledged commit (`syncrep`); one filter
/// before the election, which then picks the most advanced of them.
///
/// On a refusal every promotion score is removed, so Pacemaker stops
/// retrying a promotion that cannot succeed (each failure counts towards
/// migration-threshold). The standbys' monitors then see a cluster with no
/// score and no primary, and score the most advanced one only once the
/// same check passes (`monitor::bootstrap_score`): when the absent standby
/// is back, the promotion happens by itself.
async fn sync_guard(
    agent: &Agent,
    view: &crate::cib::ClusterView,
    candidates: &[Candidate],
    holders: &[Holder],
) -> Result<(), Failure> {
    // Nodes holding WAL without a running standby survive too: what they
    // hold is on disk (the election waits for them when they are ahead).
    let survivors: Vec<(String, election::Position)> = candidates
        .iter()
        .map(|c| (c.node.clone(), c.position))
        .chain(holders.iter().map(|h| (h.node.clone(), h.position)))
        .collect();
    match syncrep::guard(view.sync_record.as_deref(), agent.params.sync_failover, &survivors) {
        Guard::NoRecord => Ok(()),
        Guard::Allow(why) => {
            log::info!("synchronous replication: {why}");
            Ok(())
        }
        Guard::Warn(why) => {
            log::warn!("{why}");
            Ok(())
        }
        Guard::Refuse(why) => {
            log::error!(
                "not promoting: {why} (or set sync_failover=available to accept the loss); \
                 removing the promotion scores until it is back"
            );
            for node in view.scores.keys() {
                if let Err(e) = agent.pcmk.delete_score(node, agent.deadline).await {
                    log::warn!("could not remove the promotion score of {node}: {e}");
                }
            }
            Err(Failure::generic(why))
        }
    }
}

/// The marker the health service's `/primary` check reads: present from a
/// successful promote until the next demote or stop (which clear it before
/// anything else), and gone after a reboot (HA_RSCTMP is a tmpfs).
mod promotion_marker {
    use crate::agent::Agent;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    fn path(agent: &Agent) -> std::path::PathBuf {
        crate::health::promotion_marker(agent.rsctmp(), &agent.pcmk.resource)
    }

    pub fn set(agent: &Agent) {
        let p = path(agent);
        let r = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&p)
            .and_then(|mut f| writeln!(f, "{}", std::process::id()));
        if let Err(e) = r {
            log::warn!("could not write {} for the health service: {e}", p.display());
        }
    }

    pub fn clear(agent: &Agent) {
        let p = path(agent);
        match std::fs::remove_file(&p) {
            Ok(()) => log::debug!("removed {}", p.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::warn!("could not remove {}: {e}", p.display()),
        }
    }
}

const PROMOTE_POLL: Duration = Duration::from_millis(10);

/// What pre-promote published, read once before the election.
struct Published {
    /// node list of the transition, from the node to promote
    nodes: std::collections::HashMap<String, String>,
    /// positions of every node
    positions: std::collections::HashMap<String, String>,
    /// end of the WAL on disk of nodes whose instance is not running
    on_disk: std::collections::HashMap<String, String>,
}

/// Compare fresh positions published in pre-promote; fail the promotion in
/// favour of a more advanced standby.
async fn elect(
    agent: &Agent,
    me: &str,
    first: Published,
    view: crate::cib::ClusterView,
) -> Result<(), Failure> {
    let pcmk = &agent.pcmk;
    let nodes_attr = first.nodes;
    let mut published = first.positions;
    if !nodes_attr.contains_key(me) && !published.contains_key(me) {
        // Pacemaker always notifies before a promotion (notify=true is
        // enforced): this promote runs outside a transition (by hand, ocft).
        log::warn!("no pre-promote notification data: promoting without an election");
        return Ok(());
    }
    let mut nodes: Vec<String> = nodes_attr
        .get(me)
        .map(|v| v.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    if !nodes.iter().any(|n| n == me) {
        nodes.push(me.to_string());
    }
    // Attributes travel asynchronously: wait for every node's, but keep half
    // of the time left to report and hand over.
    let give_up = Instant::now() + agent.time_left() / 2;
    let positions = loop {
        let missing: Vec<&String> = nodes.iter().filter(|n| !published.contains_key(*n)).collect();
        if missing.is_empty() {
            break published;
        }
        if Instant::now() + Duration::from_millis(100) >= give_up {
            return Err(Failure::generic(format!(
                "election: no position published by {} in time; not promoting without comparing",
                missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        published = pcmk.private_all(ATTR_LSN, agent.deadline).await?;
    };
    let mut candidates = Vec::new();
    for n in &nodes {
        let published = &positions[n];
        if published == election::NO_POSITION {
            log::info!("election: {n} runs no standby, not a candidate");
            continue;
        }
        let pos = election::Position::from_attr(published).ok_or_else(|| {
            Failure::generic(format!(
                "election: {n} published an unreadable position \"{published}\""
            ))
        })?;
        candidates.push(Candidate {
            node: n.clone(),
            position: pos,
            score: view.scores.get(n).copied(),
        });
    }
    // Every other node holding WAL counts: instances not running (WAL on
    // disk, or a position published before they stopped).
    let holders: Vec<Holder> = first
        .on_disk
        .iter()
        .chain(positions.iter().filter(|(n, _)| !nodes.contains(n)))
        .filter(|(n, _)| view.nodes.contains(n) && !candidates.iter().any(|c| &c.node == *n))
        .filter_map(|(n, v)| {
            let position = election::Position::from_attr(v)?;
            Some(Holder { node: n.clone(), position, barred: Barred::NotRunning })
        })
        .collect();
    for h in &holders {
        log::info!(
            "election: {} runs no standby but holds WAL up to {}",
            h.node,
            h.position.to_attr()
        );
    }
    sync_guard(agent, &view, &candidates, &holders).await?;
    match election::elect_among(me, &candidates, &view.never_promote, &holders) {
        Verdict::Proceed => {
            log::info!(
                "election: this node is the most advanced of {} ({})",
                nodes.join(", "),
                candidates
                    .iter()
                    .map(|c| format!("{}={}", c.node, c.position.to_attr()))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            Ok(())
        }
        Verdict::HandOver { node, position } => {
            let mine =
                if view.never_promote.iter().any(|n| n == me) { scores::NEVER_PROMOTE } else { 1 };
            pcmk.set_score(me, mine, agent.deadline).await?;
            pcmk.set_score(&node, scores::BEST_STANDBY, agent.deadline).await?;
            Err(Failure::generic(format!(
                "{node} is more advanced ({}) than this node: promotion handed over to it",
                position.to_attr()
            )))
        }
        Verdict::Refuse(why) => Err(Failure::generic(format!("election: {why}"))),
    }
}
