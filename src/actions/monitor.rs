//! monitor: the role of the instance, and on the primary the promotion
//! scores of every node. Built for cost: the standby monitor forks nothing
//! while it streams; the primary monitor forks one `cibadmin` and writes
//! only the scores (and synchronous replication record) that changed.

use crate::agent::{ActionResult, Agent, Failure};
use crate::election::Position;
use crate::exit::OcfExit;
use crate::instance::{self, Observed};
use crate::pacemaker::ATTR_LSN;
use crate::pg;
use crate::role::Role;
use crate::scores;
use crate::syncrep::{self, Change};

pub async fn monitor(agent: &Agent) -> ActionResult {
    // Anything at that name (a link, a FIFO) is looked at, and refused, by
    // the control file reader: only a real absence is "not running".
    if agent.is_probe() && !control_file_present(agent) {
        // Probe on a node where the instance does not exist (yet): not running.
        log::debug!(
            "probe: no control file in {}, reporting not running",
            agent.params.datadir.display()
        );
        return Ok(OcfExit::NotRunning);
    }
    let o = instance::settle(agent).await?;
    report(agent, o).await
}

fn control_file_present(agent: &Agent) -> bool {
    match crate::safefs::Dir::open(&agent.params.datadir)
        .and_then(|d| d.exists("global/pg_control"))
    {
        Ok(present) => present,
        Err(crate::safefs::FsError::NotFound) => false,
        Err(_) => true,
    }
}

/// Turn an observed role into the monitor's answer, doing the role's duties.
pub async fn report(agent: &Agent, o: Observed) -> ActionResult {
    match &o.role {
        Role::Primary => {
            if let Err(e) = update_scores(agent, &o).await {
                // Scores are hints: a failure here must not fail the primary.
                log::warn!("could not update promotion scores: {}", e.reason);
            }
            Ok(OcfExit::RunningPromoted)
        }
        Role::Standby => {
            if o.status.as_ref().is_none_or(|s| s.receiver.as_deref() != Some("streaming"))
                && let Err(e) = bootstrap_score(agent, &o).await
            {
                log::warn!("could not check for a missing promotion score: {}", e.reason);
            }
            Ok(OcfExit::Success)
        }
        Role::Stopped => Ok(OcfExit::NotRunning),
        Role::CrashedPrimary => Err(Failure::new(
            o.role.ocf(),
            format!(
                "PostgreSQL is not running but its control file says \"{}\": it crashed as a primary",
                o.control.state.as_str()
            ),
        )),
        Role::CrashedStandby => Err(Failure::new(
            o.role.ocf(),
            format!(
                "PostgreSQL is not running but its control file says \"{}\": it crashed as a standby",
                o.control.state.as_str()
            ),
        )),
        Role::Transient(what) => Err(Failure::generic(what.clone())),
        Role::Broken(code, why) => Err(Failure::new(*code, why.clone())),
    }
}

async fn update_scores(agent: &Agent, o: &Observed) -> Result<(), Failure> {
    let client = o.client.as_ref().ok_or_else(|| Failure::generic("no session"))?;
    let primary_lsn = o.status.as_ref().and_then(|s| s.lsn).unwrap_or_default();
    let repl = pg::replication(client, agent.deadline)
        .await
        .map_err(|e| Failure::generic(e.to_string()))?;
    let rows = repl.rows;
    let view = agent
        .pcmk
        .cluster_view(agent.deadline)
        .await
        .map_err(|e| Failure::generic(e.to_string()))?;
    let me = agent.node().await?;
    if let Err(e) = keep_sync_record(agent, me, &view, &repl.synchronous_standby_names).await {
        log::error!("could not update the synchronous replication record: {}", e.reason);
    }
    let table = scores::compute(me, &view.nodes, &rows, primary_lsn, agent.params.maxlag);
    if !table.foreign_clients.is_empty() {
        log::debug!(
            "ignoring replication clients that are not cluster nodes: {}",
            table.foreign_clients.join(", ")
        );
    }
    for (node, score) in scores::changes(&table, &view.scores) {
        let old = view.scores.get(node).map(|s| s.to_string()).unwrap_or_else(|| "none".into());
        let msg = format!("promotion score of {node}: {old} -> {} ({})", score.value, score.reason);
        if score.value < 0 && node != me {
            log::warn!("{msg}");
        } else {
            log::info!("{msg}");
        }
        agent
            .pcmk
            .set_score(node, score.value, agent.deadline)
            .await
            .map_err(|e| Failure::generic(e.to_string()))?;
    }
    // Scores PAF wrote with lifetime forever would outlive ours: remove them.
    for node in view.permanent_scores.keys() {
        log::info!("removing the permanent promotion score of {node} left by a previous agent");
        agent
            .pcmk
            .delete_permanent_score(node, agent.deadline)
            .await
            .map_err(|e| Failure::generic(e.to_string()))?;
    }
    Ok(())
}

/// Keep the cluster-wide record of who may hold acknowledged commits in
/// step with `synchronous_standby_names`; written only when it changes. It
/// is removed when replication becomes asynchronous: from then on commits
/// are acknowledged without any standby, so failover already gives up the
/// guarantee, for older commits too (README, "How it protects your data").
async fn keep_sync_record(
    agent: &Agent,
    me: &str,
    view: &crate::cib::ClusterView,
    setting: &str,
) -> Result<(), Failure> {
    let wanted = syncrep::wanted_value(setting, me, &view.nodes);
    let d = agent.deadline;
    match syncrep::change(view.sync_record.as_deref(), wanted) {
        Change::Keep => Ok(()),
        Change::Write(v) => {
            log::info!(
                "synchronous_standby_names = '{setting}': recording who holds acknowledged commits: {v}"
            );
            agent.pcmk.set_sync_record(&v, d).await.map_err(|e| Failure::generic(e.to_string()))
        }
        Change::Remove => {
            log::warn!(
                "synchronous replication is off (synchronous_standby_names = '{setting}'): \
                 removing the record; failover may now lose acknowledged commits"
            );
            agent.pcmk.delete_sync_record(d).await.map_err(|e| Failure::generic(e.to_string()))
        }
    }
}

/// With a synchronous replication record, no standby scores itself until
/// the published positions prove one holds every acknowledged commit (see
/// `syncrep`): a promotion Pacemaker would try earlier is refused anyway.
fn sync_allows_promotion(
    agent: &Agent,
    view: &crate::cib::ClusterView,
    published: &std::collections::HashMap<String, String>,
    (me, mine): (&str, Position),
) -> bool {
    // Our own update may not be visible in attrd's answer yet.
    let survivors: Vec<(String, Position)> = published
        .iter()
        .filter(|(n, _)| n.as_str() != me)
        .filter_map(|(n, v)| Some((n.clone(), Position::from_attr(v)?)))
        .chain([(me.to_string(), mine)])
        .collect();
    match syncrep::guard(view.sync_record.as_deref(), agent.params.sync_failover, &survivors) {
        syncrep::Guard::Refuse(why) => {
            log::info!("no promotion score: {why}");
            false
        }
        _ => true,
    }
}

/// Whole-cluster start: no primary, no promotion score anywhere, so
/// Pacemaker would promote nobody (PAF's issue 147). Each standby publishes
/// its position; the most advanced one among those published gives itself a
/// small score. The election at promotion time settles any tie or race.
async fn bootstrap_score(agent: &Agent, o: &Observed) -> Result<(), Failure> {
    let view = agent
        .pcmk
        .cluster_view(agent.deadline)
        .await
        .map_err(|e| Failure::generic(e.to_string()))?;
    if !view.scores.is_empty() {
        return Ok(());
    }
    let me = agent.node().await?.to_string();
    let timeline =
        o.status.as_ref().and_then(|s| s.received_tli).unwrap_or(0).max(o.control.timeline);
    let lsn = o.status.as_ref().and_then(|s| s.lsn).unwrap_or(o.control.checkpoint);
    let mine = Position { timeline, lsn };
    agent
        .pcmk
        .set_private(ATTR_LSN, &mine.to_attr(), agent.deadline)
        .await
        .map_err(|e| Failure::generic(e.to_string()))?;
    let published = agent
        .pcmk
        .private_all(ATTR_LSN, agent.deadline)
        .await
        .map_err(|e| Failure::generic(e.to_string()))?;
    if !sync_allows_promotion(agent, &view, &published, (&me, mine)) {
        return Ok(());
    }
    let best_other = published
        .iter()
        .filter(|(n, _)| **n != me)
        .filter_map(|(_, v)| Position::from_attr(v))
        .max();
    if best_other.is_none_or(|b| mine >= b) {
        log::info!(
            "no promotion score in the cluster and no primary: this standby ({}) is the most advanced known, scoring it 1",
            mine.to_attr()
        );
        agent
            .pcmk
            .set_score(&me, 1, agent.deadline)
            .await
            .map_err(|e| Failure::generic(e.to_string()))?;
    }
    Ok(())
}
