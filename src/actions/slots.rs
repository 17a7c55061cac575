//! Replication slots at the edge (parameter `replication_slots`): apply
//! what `slots::plan` decides, on the primary (its monitor, after a
//! promotion) and on standbys (at start, after a promotion elsewhere, and
//! the monitor's advance of their slots). A failure here never fails the
//! action: slots protect WAL, the instance runs without them.

use crate::agent::{Agent, Failure};
use crate::cib::{self, ClusterView};
use crate::pg;
use crate::slots::{self, Facts, Slot};
use std::collections::BTreeMap;
use std::path::PathBuf;
use tokio_postgres::Client;

/// The postgres option that makes a standby use its slot: given on the
/// command line at start (pg_ctl -o), so that no file of the operator's is
/// written, and turning the parameter off takes effect at the next start.
pub fn start_options(agent: &Agent, node: &str) -> Vec<String> {
    if !agent.params.replication_slots {
        return vec![];
    }
    vec!["-c".into(), format!("primary_slot_name={}", slots::slot_name(node))]
}

fn orphans_path(agent: &Agent) -> PathBuf {
    std::path::Path::new(agent.rsctmp())
        .join(format!("pgsqlms-{}.slot_orphans", agent.pcmk.resource))
}

/// The record of orphaned slots (HA_RSCTMP: root's, gone at reboot, when
/// the grace starts again, which only delays a drop). Read only when there
/// is an orphan to judge.
fn read_orphans(agent: &Agent) -> BTreeMap<String, u64> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let path = orphans_path(agent);
    let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(&path)
    else {
        return BTreeMap::new();
    };
    let mut text = String::new();
    let _ = f.take(64 * 1024).read_to_string(&mut text);
    slots::parse_orphans(&text)
}

fn write_orphans(agent: &Agent, m: &BTreeMap<String, u64>) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = orphans_path(agent);
    let r = if m.is_empty() {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    } else {
        path.parent().map(std::fs::create_dir_all).unwrap_or(Ok(())).and_then(|_| {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(&path)
                .and_then(|mut f| f.write_all(slots::format_orphans(m).as_bytes()))
        })
    };
    if let Err(e) = r {
        log::warn!("cannot record orphaned slots in {}: {e}", path.display());
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Create, drop and report as `slots::plan` says; returns the plan's lost
/// slots. Reads and writes the orphan record only when an orphan exists.
async fn apply(
    agent: &Agent,
    client: &Client,
    me: &str,
    view: &ClusterView,
    have: &[Slot],
    streaming: &BTreeMap<String, crate::lsn::Lsn>,
) -> Vec<(String, String)> {
    let (want, _) = slots::wanted(me, &view.nodes);
    let any_orphan = have.iter().any(|s| {
        slots::is_owned(&s.name)
            && s.physical
            && !s.temporary
            && !s.active
            && !want.contains_key(&s.name)
    });
    let recorded = if any_orphan { read_orphans(agent) } else { BTreeMap::new() };
    let facts = Facts {
        me,
        nodes: &view.nodes,
        slots: have,
        orphan_since: &recorded,
        now: now(),
        grace: agent.params.replication_slots_grace,
        streaming,
    };
    let plan = slots::plan(&facts);
    for (node, why) in &plan.refused {
        log::error!("no replication slot for {node}: {why}");
    }
    for (slot, node) in &plan.lost {
        log::warn!(
            "replication slot {slot} of {node} was invalidated: {node} fell further behind than max_slot_wal_keep_size, \
             the WAL it needs is gone; rebuild it (pg_basebackup)"
        );
    }
    let d = agent.deadline;
    for (slot, why) in &plan.drop {
        match pg::drop_slot(client, slot, d).await {
            Ok(()) => log::info!("dropped replication slot {slot}: {why}"),
            Err(e) => log::warn!("could not drop replication slot {slot} ({why}): {e}"),
        }
    }
    for (slot, node) in &plan.create {
        match pg::create_slot(client, slot, d).await {
            Ok(()) => log::info!("created replication slot {slot} for {node}"),
            Err(e) => log::warn!("could not create replication slot {slot} for {node}: {e}"),
        }
    }
    for (slot, at) in &plan.advance {
        match pg::advance_slot(client, slot, *at, d).await {
            // Every monitor until that standby restarts (its own monitor
            // warns about it): debug only.
            Ok(()) => log::debug!(
                "replication slot {slot} is not used by its node, which streams without it (restart it to use it): moved to {at}"
            ),
            Err(e) => log::warn!("could not advance replication slot {slot}: {e}"),
        }
    }
    if any_orphan || !plan.orphan_since.is_empty() {
        if plan.orphan_since != recorded {
            for (slot, since) in &plan.orphan_since {
                if !recorded.contains_key(slot) {
                    log::info!(
                        "replication slot {slot} belongs to no cluster node: dropped in {} s unless its node comes back",
                        agent.params.replication_slots_grace.saturating_sub(facts.now - since)
                    );
                }
            }
        }
        write_orphans(agent, &plan.orphan_since);
    }
    plan.lost
}

/// The primary's monitor: slots from the same round trip as the
/// replication rows, the cluster view it already read. Forks nothing, and
/// runs no statement, when every slot is there and nothing is lost.
pub async fn primary_upkeep(
    agent: &Agent,
    client: &Client,
    me: &str,
    view: &ClusterView,
    have: &[Slot],
    rows: &[crate::scores::ReplicationRow],
) -> Result<(), Failure> {
    let at: BTreeMap<String, crate::lsn::Lsn> = rows
        .iter()
        .filter(|r| r.state == "streaming")
        .filter_map(|r| Some((r.application_name.clone(), r.write_lsn?)))
        .collect();
    let streaming: Vec<String> = at.keys().cloned().collect();
    let streaming = &streaming;
    let lost = apply(agent, client, me, view, have, &at).await;
    let current: BTreeMap<String, String> =
        view.slot_lost.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let name = cib::slot_lost_name(&agent.pcmk.resource);
    for (node, value) in slots::lost_attr_changes(me, &view.nodes, &lost, streaming, &current) {
        let r = match &value {
            Some(v) => agent.pcmk.set_node_attr(&node, &name, v, agent.deadline).await,
            None => {
                log::info!("{node} streams again: removing its attribute {name}");
                agent.pcmk.delete_node_attr(&node, &name, agent.deadline).await
            }
        };
        r?;
    }
    Ok(())
}

/// On this node whatever its role: slots for every other node, per the
/// cluster view (at start, after a promotion); on a standby they are then
/// advanced to the replayed position.
pub async fn upkeep(agent: &Agent, client: &Client, in_recovery: bool) -> Result<(), Failure> {
    if !agent.params.replication_slots {
        return Ok(());
    }
    let me = agent.node().await?.to_string();
    let (view, have) =
        tokio::join!(agent.pcmk.cluster_view(agent.deadline), pg::slots(client, agent.deadline));
    let view = view?;
    let have = have.map_err(|e| Failure::generic(format!("listing replication slots: {e}")))?;
    apply(agent, client, &me, &view, &have, &BTreeMap::new()).await;
    if in_recovery { advance(agent, client).await } else { Ok(()) }
}

/// A standby's slots for the other nodes follow its replay, so that after
/// a failover they keep what those nodes still need, not more. One
/// statement, no fork: the standby monitor's share. Only on a standby.
pub async fn advance(agent: &Agent, client: &Client) -> Result<(), Failure> {
    if !agent.params.replication_slots {
        return Ok(());
    }
    let (used, moved) = pg::advance_owned_slots(client, agent.deadline)
        .await
        .map_err(|e| Failure::generic(format!("advancing replication slots: {e}")))?;
    let me = agent.node().await?;
    let mine = slots::slot_name(me);
    if used != mine {
        log::warn!(
            "this standby streams with primary_slot_name '{used}', not its slot {mine}: restart it to use its slot (it started before replication_slots was set?)"
        );
    }
    if !moved.is_empty() {
        log::debug!("advanced replication slots {} to the replayed position", moved.join(", "));
    }
    Ok(())
}

/// A standby that does not stream: say why when its server log tells
/// (WAL its upstream already removed, a slot missing there). Costs one
/// query and a capped read of the log's tail, only while not streaming.
pub async fn say_why_not_streaming(agent: &Agent, client: &Client) {
    let datadir = &agent.params.datadir;
    // The logging collector's file (relative to the data directory), or
    // the file pg_ctl -l writes when there is no collector.
    let current = pg::rows(client, "SELECT pg_current_logfile()", agent.deadline)
        .await
        .ok()
        .and_then(|r| r.into_iter().next())
        .and_then(|r| r.into_iter().next().flatten());
    // The file name comes from the data directory (current_logfiles):
    // nothing that climbs out of the log directory it names.
    let path = match current {
        Some(p)
            if std::path::Path::new(&p)
                .components()
                .any(|c| c == std::path::Component::ParentDir) =>
        {
            log::debug!("pg_current_logfile() is {p:?}: not reading it");
            return;
        }
        Some(p) => datadir.join(p),
        None => match crate::instance::server_log_path(datadir) {
            Some(p) => p,
            None => return,
        },
    };
    let tail = crate::instance::log_since(&path, 0);
    match slots::why_not_streaming(&tail) {
        Some(slots::NotStreaming::SegmentRemoved(seg)) => {
            let fix = if agent.params.replication_slots {
                "its slot did not keep it (invalidated, or created after this standby fell behind): rebuild this standby (pg_basebackup)"
            } else {
                "set replication_slots=true (with max_slot_wal_keep_size) so the primary keeps it, and rebuild this standby (pg_basebackup)"
            };
            log::error!(
                "this standby cannot catch up: the primary already removed WAL segment {seg} that it needs; {fix}"
            );
        }
        Some(slots::NotStreaming::NoSlot(name)) => log::warn!(
            "this standby waits for replication slot {name} on the primary (created by the primary's next monitor, or by the operator)"
        ),
        None => {}
    }
}
