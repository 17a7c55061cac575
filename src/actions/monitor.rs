//! monitor: the role of the instance, and on the primary the promotion
//! scores of every node. Built for cost: the standby monitor forks nothing
//! while it streams; the primary monitor forks one `cibadmin` and writes
//! only the scores (and synchronous replication record) that changed.

use crate::agent::{ActionResult, Agent, Failure};
use crate::election::Position;
use crate::exit::OcfExit;
use crate::instance::{self, Observed};
use crate::pacemaker::{ATTR_LSN, ATTR_WAL_ON_DISK};
use crate::pg;
use crate::role::Role;
use crate::scores;
use crate::syncrep::{self, Change};
use tokio::time::Instant;

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
    if agent.is_probe()
        && matches!(o.role, Role::Stopped | Role::CrashedStandby | Role::CrashedPrimary)
        && let Err(e) = publish_wal_on_disk(agent, &o).await
    {
        // The probe's answer is the role; what it could not publish, the
        // election waits for or refuses without.
        log::warn!("could not publish the end of the WAL on disk: {}", e.reason);
    }
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

/// A node whose instance is not running still holds WAL: publish where it
/// ends so that every election counts it. At a whole-cluster start (no
/// promotion score anywhere) the most advanced node known also scores
/// itself now, so Pacemaker promotes it right after starting it instead of
/// waiting for a monitor round.
async fn publish_wal_on_disk(agent: &Agent, o: &Observed) -> Result<(), Failure> {
    // Half of the probe's time at most: its answer is what Pacemaker waits for.
    let until = Instant::now() + agent.time_left() / 2;
    let mine = instance::wal_end_on_disk(agent, &o.control, None, until).await?;
    log::info!("WAL on disk ends at {} (timeline {})", mine.lsn, mine.timeline);
    let d = agent.deadline;
    agent.pcmk.set_private(ATTR_WAL_ON_DISK, &mine.to_attr(), d).await?;
    let view = agent.pcmk.cluster_view(d).await?;
    let Some(me) = may_raise(agent, &view, "at its probe").await? else { return Ok(()) };
    raise_if_most_advanced(agent, &me, mine, &view).await
}

/// This node's name when it may score itself (`scores::may_raise_itself`);
/// None, with the reason logged, when not.
async fn may_raise(
    agent: &Agent,
    view: &crate::cib::ClusterView,
    when: &str,
) -> Result<Option<String>, Failure> {
    let me = agent.node().await?.to_string();
    let orphan = scores::Orphan {
        scores: &view.scores,
        me: &me,
        never_promote: view.never_promote.contains(&me),
    };
    match scores::may_raise_itself(&orphan) {
        Ok(()) => Ok(Some(me)),
        Err(why) => {
            log::debug!("not scoring this node {when}: {why}");
            Ok(None)
        }
    }
}

/// Score this node `LOWEST_STANDBY` if no other node published a position
/// ahead of `mine` (running standbys and WAL on disk alike).
async fn raise_if_most_advanced(
    agent: &Agent,
    me: &str,
    mine: Position,
    view: &crate::cib::ClusterView,
) -> Result<(), Failure> {
    let d = agent.deadline;
    let (live, disk) = tokio::join!(
        agent.pcmk.private_all(ATTR_LSN, d),
        agent.pcmk.private_all(ATTR_WAL_ON_DISK, d)
    );
    let (live, disk) = (live?, disk?);
    // Every other node's best known position: running standbys and WAL on disk.
    let mut others: std::collections::BTreeMap<String, Position> = Default::default();
    for (n, v) in live.iter().chain(disk.iter()) {
        if n.as_str() == me || !view.nodes.contains(n) {
            continue;
        }
        if let Some(p) = Position::from_attr(v) {
            let e = others.entry(n.clone()).or_insert(p);
            *e = (*e).max(p);
        }
    }
    let others: Vec<(String, Position)> = others.into_iter().collect();
    if !sync_allows_promotion(agent, view, &others, (me, mine)) {
        return Ok(());
    }
    let best_other = others.iter().map(|(n, p)| (*p, n)).max();
    if let Some((best, node)) = best_other.filter(|(b, _)| *b > mine) {
        log::info!(
            "no node may be promoted, but {node} is more advanced ({}) than this one ({}): not scoring this node",
            best.to_attr(),
            mine.to_attr()
        );
        return Ok(());
    }
    log::info!(
        "no node may be promoted and this one ({}) is the most advanced known: scoring it {}",
        mine.to_attr(),
        scores::LOWEST_STANDBY
    );
    Ok(agent.pcmk.set_score(me, scores::LOWEST_STANDBY, d).await?)
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
            if let Some(client) = &o.client
                && let Err(e) = crate::actions::slots::advance(agent, client).await
            {
                log::warn!("{}", e.reason);
            }
            let streaming =
                o.status.as_ref().is_some_and(|s| s.receiver.as_deref() == Some("streaming"));
            if !streaming && let Some(client) = &o.client {
                crate::actions::slots::say_why_not_streaming(agent, client).await;
            }
            if !streaming && let Err(e) = bootstrap_score(agent, &o).await {
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
    let repl = pg::replication(client, agent.params.replication_slots, agent.deadline).await?;
    let rows = repl.rows;
    let view = agent.pcmk.cluster_view(agent.deadline).await?;
    let me = agent.node().await?;
    if let Err(e) =
        keep_sync_record(agent, client, me, &view, &repl.synchronous_standby_names).await
    {
        log::error!("could not update the synchronous replication record: {}", e.reason);
    }
    if let Some(have) = &repl.slots
        && let Err(e) =
            crate::actions::slots::primary_upkeep(agent, client, me, &view, have, &rows).await
    {
        log::warn!("replication slots: {}", e.reason);
    }
    let mut table = scores::compute(me, &view.nodes, &rows, primary_lsn, agent.params.maxlag);
    scores::bar(&mut table, &view.never_promote);
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
        agent.pcmk.set_score(node, score.value, agent.deadline).await?;
    }
    // Scores PAF wrote with lifetime forever would outlive ours: remove them.
    for node in view.permanent_scores.keys() {
        log::info!("removing the permanent promotion score of {node} left by a previous agent");
        agent.pcmk.delete_permanent_score(node, agent.deadline).await?;
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
    client: &tokio_postgres::Client,
    me: &str,
    view: &crate::cib::ClusterView,
    setting: &str,
) -> Result<(), Failure> {
    let wanted = syncrep::wanted_value(setting, me, &view.nodes);
    let d = agent.deadline;
    match syncrep::change(view.sync_record.as_deref(), wanted) {
        Change::Keep => Ok(()),
        Change::Write(v)
            if view.sync_record.is_some()
                && !inherited_record_replaceable(agent, client, &v).await? =>
        {
            Ok(())
        }
        Change::Write(v) => {
            log::info!(
                "synchronous_standby_names = '{setting}': recording who holds acknowledged commits: {v}"
            );
            Ok(agent.pcmk.set_sync_record(&v, d).await?)
        }
        Change::Remove => {
            log::warn!(
                "synchronous replication is off (synchronous_standby_names = '{setting}'): \
                 removing the record; failover may now lose acknowledged commits"
            );
            Ok(agent.pcmk.delete_sync_record(d).await?)
        }
    }
}

/// After a promotion (this primary's timeline began at a switch point), the
/// record inherited from the former primary stays until enough members of
/// the new one have flushed past the switch point (`syncrep::may_replace_inherited`).
async fn inherited_record_replaceable(
    agent: &Agent,
    client: &tokio_postgres::Client,
    new_value: &str,
) -> Result<bool, Failure> {
    let switch = match instance::timeline_switch_point(&agent.params.datadir) {
        Ok(Some(switch)) => switch,
        Ok(None) => return Ok(true),
        Err(e) => {
            log::warn!("keeping the synchronous replication record of the former primary: {e}");
            return Ok(false);
        }
    };
    let rows = pg::rows(
        client,
        &format!(
            "SELECT application_name FROM pg_stat_replication WHERE flush_lsn >= '{switch}'::pg_lsn"
        ),
        agent.deadline,
    )
    .await?;
    let caught_up: Vec<String> = rows.into_iter().filter_map(|r| r[0].clone()).collect();
    let ok = syncrep::may_replace_inherited(new_value, &caught_up);
    if !ok {
        log::info!(
            "keeping the synchronous replication record of the former primary until enough of \
             {new_value} have flushed past {switch}, where this primary's timeline began \
             (caught up: {})",
            if caught_up.is_empty() { "none".to_string() } else { caught_up.join(", ") }
        );
    }
    Ok(ok)
}

/// With a synchronous replication record, no standby scores itself until
/// the published positions prove one holds every acknowledged commit (see
/// `syncrep`): a promotion Pacemaker would try earlier is refused anyway.
fn sync_allows_promotion(
    agent: &Agent,
    view: &crate::cib::ClusterView,
    others: &[(String, Position)],
    (me, mine): (&str, Position),
) -> bool {
    // Our own update may not be visible in attrd's answer yet.
    let survivors: Vec<(String, Position)> =
        others.iter().cloned().chain([(me.to_string(), mine)]).collect();
    match syncrep::guard(view.sync_record.as_deref(), agent.params.sync_failover, &survivors) {
        syncrep::Guard::Refuse(why) => {
            log::info!("no promotion score: {why}");
            false
        }
        _ => true,
    }
}

/// A standby without a replication connection. If no node has a positive
/// promotion score (whole-cluster start, or the primary died before its
/// monitor scored the standbys that had just connected), Pacemaker would
/// promote nobody: publish this standby's position, and score it if it is
/// the most advanced known (`scores::may_raise_itself` says when). The
/// election at promotion compares every node's fresh position.
async fn bootstrap_score(agent: &Agent, o: &Observed) -> Result<(), Failure> {
    let view = agent.pcmk.cluster_view(agent.deadline).await?;
    if view.scores.values().any(|s| *s > 0) {
        return Ok(());
    }
    let Some(me) = may_raise(agent, &view, "as a standby without a primary").await? else {
        return Ok(());
    };
    let status = o.status.as_ref().ok_or_else(|| Failure::generic("no status of the standby"))?;
    let until = Instant::now() + agent.time_left() / 2;
    let mine = instance::standby_position(agent, &o.control, status, until).await?;
    agent.pcmk.set_private(ATTR_LSN, &mine.to_attr(), agent.deadline).await?;
    raise_if_most_advanced(agent, &me, mine, &view).await
}
