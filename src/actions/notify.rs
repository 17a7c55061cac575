//! notify: the pre/post hooks around promotions, demotions and stops.
//! Pacemaker logs and ignores the return code, so problems are logged and
//! left for the following action to act upon.

use crate::agent::{ActionResult, Agent, Failure};
use crate::election::{NO_POSITION, Position};
use crate::exit::OcfExit;
use crate::instance;
use crate::notify::{self, Notification, Operation, When};
use crate::pacemaker::{
    ATTR_CANCEL_SWITCHOVER, ATTR_LSN, ATTR_NODES, ATTR_RECOVER_PRIMARY, ATTR_SHUTDOWN_CHECKPOINT,
    ATTR_WAL_ON_DISK,
};
use crate::pg;
use crate::process::Cmd;
use crate::role::Role;
use crate::waldump;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;

pub async fn notify(agent: &Agent) -> ActionResult {
    let n = notify::parse(&agent.env)?;
    log::debug!("notification {:?}-{:?}: {:?}", n.when, n.operation, n.transition);
    let r = match (n.when, n.operation) {
        (When::Pre, Operation::Promote) => pre_promote(agent, &n).await,
        (When::Post, Operation::Promote) => clean_election_attrs(agent).await,
        (When::Post, Operation::Start) => slot_upkeep(agent).await,
        (When::Pre, Operation::Demote) => pre_demote(agent, &n).await,
        (When::Pre, Operation::Stop) => pre_stop(agent, &n).await,
        _ => Ok(()),
    };
    if let Err(e) = r {
        log::warn!("notify {}-{}: {}", n.when, n.operation, e.reason);
    }
    Ok(OcfExit::Success)
}

/// With replication_slots: after a node started, every running instance
/// makes sure it holds a slot for each other node now (the primary's
/// monitor would, but the new standby waits for its slot until then). Not
/// after a promotion: the node list did not change, the promote itself
/// checked the new primary's slots, and the VIP waits for these
/// notifications.
async fn slot_upkeep(agent: &Agent) -> Result<(), Failure> {
    if !agent.params.replication_slots {
        return Ok(());
    }
    let o = instance::observe(agent).await?;
    match (&o.role, &o.client) {
        (Role::Standby, Some(c)) => crate::actions::slots::upkeep(agent, c, true).await,
        (Role::Primary, Some(c)) => crate::actions::slots::upkeep(agent, c, false).await,
        _ => Ok(()),
    }
}

async fn pre_promote(agent: &Agent, n: &Notification) -> Result<(), Failure> {
    let me = agent.node().await?.to_string();
    let Some(target) = n.transition.promote.first() else { return Ok(()) };
    log::info!("{target} is about to be promoted");
    // A verdict of an earlier transition must not refuse this one.
    clear_local_cancel(agent);
    let r = prepare_promotion(agent, n, &me, target).await;
    if let Err(e) = &r
        && *target == me
    {
        // Without this node's own fresh position there is no election: the
        // promote that follows must not go ahead as if outside a transition.
        let why = format!("pre-promote could not publish this node's position: {}", e.reason);
        log::error!("{why}");
        if let Err(e) = write_local_cancel(agent, &why) {
            log::error!("cannot keep the refusal in {}: {e}", local_cancel(agent).display());
        }
    }
    r
}

/// Pre-promote's work: the checks of a switchover, and this node's position
/// (or its WAL on disk) published for the promote's election.
async fn prepare_promotion(
    agent: &Agent,
    n: &Notification,
    me: &str,
    target: &str,
) -> Result<(), Failure> {
    let t = &n.transition;
    let pcmk = &agent.pcmk;
    if t.is_primary_recovery(target) {
        log::info!("the primary on {target} is recovered in place: no election");
        if target == me {
            pcmk.set_private(ATTR_RECOVER_PRIMARY, "1", agent.deadline).await?;
        }
        return Ok(());
    }
    // Flags of an earlier transition must not leak into this one; the
    // position and node list are overwritten below. Concurrently: each
    // attrd_updater call is a round trip to attrd, on the failover path.
    let switchover = t.switchover_from(me);
    let checked = async {
        // This node's position of an earlier transition, too: if this one
        // cannot publish a fresh one, the promote must wait for it and
        // refuse, not compare a stale one.
        let (a, b, c) = tokio::join!(
            pcmk.delete_private(ATTR_RECOVER_PRIMARY, agent.deadline),
            pcmk.delete_private(ATTR_CANCEL_SWITCHOVER, agent.deadline),
            pcmk.delete_private(ATTR_LSN, agent.deadline),
        );
        a.and(b).and(c)?;
        let o = instance::observe(agent).await?;
        if let Some(old) = switchover {
            check_switchover(agent, old, &o).await?;
        }
        Ok::<_, Failure>(o)
    }
    .await;
    let o = match (checked, switchover) {
        (Ok(o), _) => o,
        // A check that could not run cancels the switchover as one that failed.
        (Err(why), Some(old)) => {
            cancel_switchover(agent, old, &why.reason).await;
            return Ok(());
        }
        (Err(why), None) => return Err(why),
    };

    let client = match (&o.role, &o.client) {
        (Role::Standby, Some(c)) => c,
        (r, _) => {
            log::info!("not a running standby ({r}): not a candidate for this promotion");
            // Its WAL still counts: the election refuses to lose it.
            let (a, b) = tokio::join!(
                pcmk.set_private(ATTR_LSN, NO_POSITION, agent.deadline),
                publish_wal_on_disk(agent, &o),
            );
            a?;
            return b;
        }
    };
    // A standby that followed a promotion records the new timeline in its
    // control file at its next restartpoint. Force one only then: a
    // restartpoint flushes every dirty buffer, and failover waits for it.
    let mut control = o.control;
    if instance::newest_history_timeline(&agent.params.datadir) > control.timeline {
        pg::bounded_checkpoint(client, agent.time_left() / 4, agent.deadline).await;
        control = instance::control_data(agent).await?;
    }
    let status = pg::status(client, agent.deadline).await?;
    let pos = instance::standby_position(agent, &control, &status, agent.deadline).await?;
    log::info!("this standby's position: timeline {} LSN {}", pos.timeline, pos.lsn);
    let position = pos.to_attr();
    if target == me {
        let nodes = t.election_nodes().join(" ");
        let (a, b) = tokio::join!(
            pcmk.set_private(ATTR_LSN, &position, agent.deadline),
            pcmk.set_private(ATTR_NODES, &nodes, agent.deadline),
        );
        Ok(a.and(b)?)
    } else {
        Ok(pcmk.set_private(ATTR_LSN, &position, agent.deadline).await?)
    }
}

/// Publish the end of the WAL on this node's disk (instance not running).
async fn publish_wal_on_disk(agent: &Agent, o: &instance::Observed) -> Result<(), Failure> {
    if matches!(o.role, Role::Broken(..)) {
        return Ok(());
    }
    let p = instance::wal_end_on_disk(agent, &o.control, None, agent.deadline).await?;
    log::info!("WAL on disk ends at {} (timeline {})", p.lsn, p.timeline);
    Ok(agent.pcmk.set_private(ATTR_WAL_ON_DISK, &p.to_attr(), agent.deadline).await?)
}

/// Tell the promote that follows on this node to refuse: in attrd (PAF's
/// flag) and in a file on this node, which a failing attrd cannot lose.
async fn cancel_switchover(agent: &Agent, old: &str, reason: &str) {
    log::error!("switchover from {old} is not safe: {reason}");
    if let Err(e) = write_local_cancel(agent, &format!("switchover cancelled: {reason}")) {
        log::error!(
            "cannot keep the switchover cancel flag in {}: {e}",
            local_cancel(agent).display()
        );
    }
    if let Err(e) = agent.pcmk.set_private(ATTR_CANCEL_SWITCHOVER, reason, agent.deadline).await {
        log::error!("cannot set the switchover cancel flag in attrd: {e}");
    }
}

/// Where pre-promote leaves a cancelled switchover's reason for the
/// promote: `$HA_RSCTMP` (root's, /run/resource-agents by default).
fn local_cancel(agent: &Agent) -> PathBuf {
    Path::new(agent.rsctmp()).join(format!("pgsqlms-{}.cancel_switchover", agent.pcmk.resource))
}

fn write_local_cancel(agent: &Agent, reason: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = local_cancel(agent);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&path)?;
    f.write_all(reason.as_bytes())?;
    f.sync_all()
}

fn clear_local_cancel(agent: &Agent) {
    let path = local_cancel(agent);
    if let Err(e) = std::fs::remove_file(&path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        log::warn!("cannot remove {}: {e}", path.display());
    }
}

/// The reason pre-promote left on this node, removed once read.
pub fn take_local_cancel(agent: &Agent) -> Option<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let path = local_cancel(agent);
    let mut f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => return Some(format!("unreadable cancel flag {}: {e}", path.display())),
    };
    let mut reason = String::new();
    let _ = f.by_ref().take(4096).read_to_string(&mut reason);
    clear_local_cancel(agent);
    Some(if reason.is_empty() { "pre-promote refused this promotion".into() } else { reason })
}

/// After a promotion, on every node. The controller waits for every node's
/// notification before it starts the VIP: the deletes run concurrently.
async fn clean_election_attrs(agent: &Agent) -> Result<(), Failure> {
    clear_local_cancel(agent);
    let (p, d) = (&agent.pcmk, agent.deadline);
    let (a, b, c, e, f) = tokio::join!(
        p.delete_private(ATTR_LSN, d),
        p.delete_private(ATTR_NODES, d),
        p.delete_private(ATTR_RECOVER_PRIMARY, d),
        p.delete_private(ATTR_CANCEL_SWITCHOVER, d),
        p.delete_private(ATTR_SHUTDOWN_CHECKPOINT, d),
    );
    Ok(a.and(b).and(c).and(e).and(f)?)
}

/// In a switchover the old primary shut down cleanly; its last WAL record is
/// the shutdown checkpoint, whose position it published when demoted. If
/// this standby did not receive that very record as its last one, promoting
/// it would lose what came before, and the old primary could not follow it.
/// (A shutdown checkpoint of an earlier restart of the primary does not count.)
async fn check_switchover(agent: &Agent, old: &str, o: &instance::Observed) -> Result<(), Failure> {
    let expected = published_checkpoint(agent, old).await?;
    log::info!(
        "switchover from {old}: checking that its shutdown checkpoint {} (timeline {}) is the last record received",
        expected.lsn,
        expected.timeline
    );
    let client = o.client.as_ref().ok_or_else(|| Failure::generic("standby not answering"))?;
    let rows = pg::rows(client, "SELECT pg_last_wal_receive_lsn()", agent.deadline).await?;
    let last: crate::lsn::Lsn = rows
        .first()
        .and_then(|r| r[0].as_deref())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Failure::generic("this standby received no WAL by streaming"))?;
    if last <= expected.lsn {
        return Err(Failure::generic(format!(
            "shutdown checkpoint of {old} at {} not received (WAL received up to {last})",
            expected.lsn
        )));
    }
    // Fast: the checkpoint is the last record received, so it lies in the
    // last few kilobytes (pg_waldump starts at the first record after any
    // LSN).
    let out = waldump(agent, expected.timeline, waldump::tail_window_start(last), last).await?;
    let mut verdict = waldump::received_checkpoint(&out.stdout, expected.lsn, expected.timeline);
    if verdict == waldump::Received::Missing {
        // Slow, should the tail not be readable: from the last restartpoint.
        // A fresh one makes the range short; if it takes too long, reading
        // from the previous one is as right.
        pg::bounded_checkpoint(client, agent.time_left() / 4, agent.deadline).await;
        let control = instance::control_data(agent).await?;
        let from = control.redo.min(expected.lsn);
        let out = waldump(agent, expected.timeline, from, last).await?;
        verdict = waldump::received_checkpoint(&out.stdout, expected.lsn, expected.timeline);
        if verdict == waldump::Received::Missing {
            return Err(Failure::generic(format!(
                "shutdown checkpoint of {old} at {} not found in the WAL received up to {last} ({})",
                expected.lsn,
                if out.success() {
                    "pg_waldump: no such record".to_string()
                } else {
                    out.message()
                }
            )));
        }
    }
    match verdict {
        waldump::Received::Last(c) => {
            log::info!(
                "received the shutdown checkpoint of {old} at {} (timeline {}) as the last record",
                c.lsn,
                c.timeline
            );
            Ok(())
        }
        _ => Err(Failure::generic(format!(
            "WAL after the shutdown checkpoint of {old} at {}: not the one of its demote",
            expected.lsn
        ))),
    }
}

/// The shutdown checkpoint `old` published when demoted. Attributes travel
/// asynchronously: wait for it a little, then give up (the switchover is
/// cancelled: without it, nothing tells which checkpoint to look for).
async fn published_checkpoint(agent: &Agent, old: &str) -> Result<Position, Failure> {
    let give_up = Instant::now() + (agent.time_left() / 4).min(Duration::from_secs(5));
    loop {
        let all = agent.pcmk.private_all(ATTR_SHUTDOWN_CHECKPOINT, agent.deadline).await?;
        if let Some(v) = all.get(old) {
            return Position::from_attr(v).ok_or_else(|| {
                Failure::generic(format!(
                    "{old} published an unreadable shutdown checkpoint \"{v}\""
                ))
            });
        }
        if Instant::now() + Duration::from_millis(100) >= give_up {
            return Err(Failure::generic(format!(
                "{old} published no shutdown checkpoint: cannot tell whether it was received"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// pg_waldump of this instance's pg_wal, from `start` to `end` on `timeline`.
async fn waldump(
    agent: &Agent,
    timeline: u32,
    start: crate::lsn::Lsn,
    end: crate::lsn::Lsn,
) -> Result<crate::process::Output, Failure> {
    let p = &agent.params;
    Ok(Cmd::new(p.bin("pg_waldump"))
        .args(["--path"])
        .arg(p.datadir.join("pg_wal").display().to_string())
        .args([
            "--timeline",
            &timeline.to_string(),
            "--start",
            &start.to_string(),
            "--end",
            &end.to_string(),
        ])
        .args(crate::instance::segments_between(&p.datadir, timeline, start, end))
        .run_as(agent.runas()?)
        // The records looked for are the last ones.
        .stdout_tail(256 * 1024)
        .run(agent.deadline)
        .await?)
}

/// Whether this node's instance is `crashed` (a crashed primary or standby)
/// and the transition recovers it in place: a primary demoted and promoted
/// again, a standby stopped and started again.
async fn recovered_in_place(
    agent: &Agent,
    n: &Notification,
    crashed: Role,
) -> Result<bool, Failure> {
    let me = agent.node().await?;
    let t = &n.transition;
    let in_place = match crashed {
        Role::CrashedPrimary => t.demote.iter().any(|x| x == me) && t.is_primary_recovery(me),
        _ => t.stop.iter().any(|x| x == me) && t.is_standby_recovery(me),
    };
    Ok(in_place && instance::observe(agent).await?.role == crashed)
}

/// A crashed primary about to be demoted and promoted again on this node:
/// let it finish crash recovery as a primary first, as no other primary
/// exists, so the demote that follows stops it cleanly.
async fn pre_demote(agent: &Agent, n: &Notification) -> Result<(), Failure> {
    if !recovered_in_place(agent, n, Role::CrashedPrimary).await? {
        return Ok(());
    }
    log::info!(
        "primary crashed and is recovered in place: running its crash recovery before the demote"
    );
    instance::remove_standby_signal(agent)?;
    instance::pg_ctl_start(agent).await?;
    log::info!(
        "crash recovery done (control file: \"{}\")",
        instance::control_data(agent).await?.state.as_str()
    );
    Ok(())
}

/// A crashed standby about to be stopped and started again on this node:
/// start it now so its crash recovery is done and the stop is a clean one.
async fn pre_stop(agent: &Agent, n: &Notification) -> Result<(), Failure> {
    if !recovered_in_place(agent, n, Role::CrashedStandby).await? {
        return Ok(());
    }
    log::info!("standby crashed and is restarted in place: starting it so the stop is clean");
    instance::ensure_standby_signal(agent)?;
    instance::pg_ctl_start(agent).await
}
