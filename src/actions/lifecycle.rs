//! start, stop, demote, promote.

use crate::actions::{checks, rejoin};
use crate::agent::{ActionResult, Agent, Failure};
use crate::controlfile::{ControlData, DbState};
use crate::election::{self, Candidate, Verdict};
use crate::exit::OcfExit;
use crate::instance::{self, POLL};
use crate::pacemaker::{ATTR_CANCEL_SWITCHOVER, ATTR_LSN, ATTR_NODES, ATTR_RECOVER_PRIMARY};
use crate::pg;
use crate::role::{Postmaster, Role};
use crate::scores;
use crate::validate::Settings;
use std::time::Duration;
use tokio::time::Instant;

pub async fn start(agent: &Agent) -> ActionResult {
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
            check_former_primary(agent, &o.control, Some(&settings)).await?;
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
    instance::wait_for(agent, "a running standby", |r| matches!(r, Role::Standby | Role::Primary))
        .await
        .and_then(|o| {
            if o.role == Role::Primary {
                Err(Failure::generic("instance started as a primary despite standby.signal"))
            } else {
                log::info!("instance started as a standby");
                Ok(OcfExit::Success)
            }
        })
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
) -> Result<(), Failure> {
    if !was_primary(control.state) || agent.params.datadir.join("backup_label").exists() {
        return Ok(());
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
    checks::binaries_and_user(agent)?;
    // Stop whatever runs, whatever state it is in: a failed stop gets the
    // node fenced, so never refuse one that can be done.
    if let Postmaster::NotRunning = instance::postmaster(&agent.params.datadir) {
        let c = instance::control_data(agent).await;
        match c {
            Ok(c) => {
                log::info!("instance already stopped (control file: \"{}\")", c.state.as_str())
            }
            Err(e) => log::info!("instance already stopped ({})", e.reason),
        }
        return Ok(OcfExit::Success);
    }
    stop_running(agent).await?;
    log::info!("instance stopped");
    Ok(OcfExit::Success)
}

/// Fast shutdown; if it cannot finish in time, immediate shutdown so the
/// stop still succeeds (crash recovery at next start is safe; fencing the
/// node is not cheaper).
async fn stop_running(agent: &Agent) -> Result<(), Failure> {
    let reserve = (agent.time_left() / 4).min(Duration::from_secs(5));
    let fast_deadline = agent.deadline - reserve;
    let fast = instance::pg_ctl_stop_until(agent, "fast", fast_deadline).await;
    if let Err(e) = fast {
        log::warn!("fast shutdown did not complete ({}); using immediate shutdown", e.reason);
        instance::pg_ctl_stop_until(agent, "immediate", agent.deadline).await?;
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
    checks::binaries_and_user(agent)?;
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
        }
        Role::Stopped | Role::CrashedStandby | Role::CrashedPrimary => {
            // A crashed primary here is not recovered in place (pre-demote
            // would have done it): another node takes over. Starting it as a
            // standby must not hide a divergence behind a "shut down in
            // recovery" control file, where a later start could not see it.
            check_former_primary(agent, &o.control, None).await?;
        }
        Role::Transient(w) => return Err(Failure::generic(w)),
        Role::Broken(code, why) => return Err(Failure::new(code, why)),
    }
    start_standby(agent).await
}

pub async fn promote(agent: &Agent) -> ActionResult {
    checks::binaries_and_user(agent)?;
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
    // Everything the decision reads, at once: each tool call is a round trip
    // to attrd or the CIB, and the VIP waits for this promotion.
    let d = agent.deadline;
    let (cancel, recovering, nodes_attr, published, view) = tokio::join!(
        pcmk.private_all(ATTR_CANCEL_SWITCHOVER, d),
        pcmk.private_all(ATTR_RECOVER_PRIMARY, d),
        pcmk.private_all(ATTR_NODES, d),
        pcmk.private_all(ATTR_LSN, d),
        pcmk.cluster_view(d),
    );
    if let Some(why) = cancel.map_err(tool)?.get(&me) {
        let _ = pcmk.delete_private(ATTR_CANCEL_SWITCHOVER, agent.deadline).await;
        return Err(Failure::generic(format!("switchover cancelled: {why}")));
    }
    if recovering.map_err(tool)?.contains_key(&me) {
        log::info!("recovering the primary in place: no election");
    } else {
        let published =
            Published { nodes: nodes_attr.map_err(tool)?, positions: published.map_err(tool)? };
        elect(agent, &me, published, view.map_err(tool)?).await?;
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
    log::info!("promoted to primary");
    Ok(OcfExit::Success)
}

fn tool(e: crate::pacemaker::ToolError) -> Failure {
    Failure::generic(e.to_string())
}

/// The marker the health service's `/primary` check reads: present from a
/// successful promote until the next demote or stop (which clear it before
/// anything else), and gone after a reboot (HA_RSCTMP is a tmpfs).
mod promotion_marker {
    use crate::agent::Agent;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    fn path(agent: &Agent) -> std::path::PathBuf {
        let dir = agent
            .env
            .get("HA_RSCTMP")
            .filter(|d| !d.is_empty())
            .map(String::as_str)
            .unwrap_or("/run/resource-agents");
        crate::health::promotion_marker(dir, &agent.pcmk.resource)
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
        published = pcmk.private_all(ATTR_LSN, agent.deadline).await.map_err(tool)?;
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
    match election::elect(me, &candidates) {
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
            pcmk.set_score(me, 1, agent.deadline).await.map_err(tool)?;
            pcmk.set_score(&node, scores::BEST_STANDBY, agent.deadline).await.map_err(tool)?;
            Err(Failure::generic(format!(
                "{node} is more advanced ({}) than this node: promotion handed over to it",
                position.to_attr()
            )))
        }
        Verdict::Refuse(why) => Err(Failure::generic(format!("election: {why}"))),
    }
}
