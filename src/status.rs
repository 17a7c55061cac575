//! `pgsqlms status`: one view of the cluster from any node. Pure: the facts
//! (crm_mon's XML, the local PostgreSQL, the primary's replication view when
//! this node is the primary) are gathered at the edge (`status_cmd`); this
//! module turns them into the report, its table and its JSON.
//!
//! The JSON schema is stable: fields are only ever added (`schema` is bumped
//! when one changes meaning). README.md, "Status view", documents it.

use crate::crm_mon::{ClusterStatus, FailedOp, FenceEvent};
use crate::lsn::Lsn;
use crate::scores;
use serde::Serialize;

pub const SCHEMA: u32 = 1;

/// What the local PostgreSQL says (empty fields when it does not answer).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LocalPg {
    /// Why there is no answer, when there is none.
    pub error: Option<String>,
    pub in_recovery: Option<bool>,
    /// transaction_read_only: on for every session (a primary that takes
    /// no writes).
    pub read_only: Option<bool>,
    pub timeline: Option<u32>,
    /// Primary: current WAL write position.
    pub current_lsn: Option<Lsn>,
    /// Standby: last WAL received and flushed, and last replayed.
    pub receive_lsn: Option<Lsn>,
    pub replay_lsn: Option<Lsn>,
    /// Standby: WAL receiver state and the primary's end of WAL as it last
    /// reported it (pg_stat_wal_receiver.latest_end_lsn).
    pub receiver_status: Option<String>,
    pub primary_end_lsn: Option<Lsn>,
    /// Standby: seconds since the last replayed transaction's commit.
    pub replay_delay_s: Option<f64>,
    /// Primary: one row per connected standby.
    pub replication: Vec<ReplicationView>,
}

impl LocalPg {
    /// "down" (no answer), "primary" or "standby".
    pub fn role(&self) -> &'static str {
        match (&self.error, self.in_recovery) {
            (None, Some(false)) => "primary",
            (None, Some(true)) => "standby",
            _ => "down",
        }
    }

    /// Standby: bytes between the primary's end of WAL, as last reported,
    /// and what it replayed.
    pub fn standby_lag_bytes(&self) -> Option<u64> {
        match (self.in_recovery, self.primary_end_lsn, self.replay_lsn) {
            (Some(true), Some(p), Some(r)) => Some(p.0.saturating_sub(r.0)),
            _ => None,
        }
    }
}

/// A row of the primary's pg_stat_replication: what the scores read, and
/// more.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplicationView {
    /// Name, state and write position.
    pub standby: scores::ReplicationRow,
    pub sync_state: String,
    pub flush_lsn: Option<Lsn>,
    pub replay_lsn: Option<Lsn>,
    /// replay_lag in seconds
    pub replay_lag_s: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub schema: u32,
    pub resource: String,
    /// The node this report was made on: PostgreSQL details of other nodes
    /// come from the primary, so they are complete only on the primary.
    pub observed_from: String,
    pub cluster: ClusterSummary,
    pub nodes: Vec<NodeReport>,
    /// Things an operator should look at, most serious first.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterSummary {
    pub primary: Option<String>,
    pub promoted_count: usize,
    pub vip: Option<Vip>,
    pub maintenance_mode: bool,
    pub quorum: bool,
    pub dc: Option<String>,
    pub last_fence: Option<FenceEvent>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Vip {
    pub id: String,
    pub node: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeReport {
    pub name: String,
    /// online, offline, standby, maintenance, unclean, pending
    pub node_state: String,
    /// Promoted, Unpromoted, Stopped (Pacemaker's view of the instance)
    pub pacemaker_role: String,
    pub failed: bool,
    /// primary, standby, down, unknown (PostgreSQL's own view, where known)
    pub postgres_role: String,
    pub timeline: Option<u32>,
    pub wal_written: Option<String>,
    pub wal_flushed: Option<String>,
    pub wal_replayed: Option<String>,
    pub lag_bytes: Option<u64>,
    pub lag_seconds: Option<f64>,
    /// streaming, catchup, ... with sync, async, quorum or potential
    pub replication: Option<String>,
    pub score: Option<i32>,
    pub score_reason: String,
    pub promotable: bool,
    pub not_promotable_because: Option<String>,
    pub last_failure: Option<FailedOp>,
    /// Where the PostgreSQL columns come from: local, primary or none.
    pub source: String,
}

fn lsn_str(l: Option<Lsn>) -> Option<String> {
    l.map(|l| l.to_string())
}

/// What a promotion score means (scores are set by the primary's monitor).
pub fn score_reason(score: Option<i32>) -> String {
    match score {
        None => "no score: no primary monitor has scored this node".into(),
        Some(s) if s >= scores::PRIMARY => "primary".into(),
        Some(s) if s >= scores::LOWEST_STANDBY => {
            let rank = (scores::BEST_STANDBY - s.min(scores::BEST_STANDBY)) / scores::RANK_STEP + 1;
            format!("streaming, rank {rank} by WAL written (most advanced first)")
        }
        Some(scores::NOT_READY) => "connected, not streaming yet (startup or backup)".into(),
        Some(s) if s <= scores::NOT_CONNECTED => "not connected to the primary".into(),
        Some(s) if s <= scores::TOO_FAR_BEHIND => "beyond maxlag".into(),
        Some(0) => "not scored (standby without a primary yet)".into(),
        Some(s) => format!("score {s}"),
    }
}

fn node_state(st: &ClusterStatus, name: &str) -> String {
    match st.nodes.iter().find(|n| n.name == name) {
        None => "unknown".into(),
        Some(n) if n.unclean => "unclean".into(),
        Some(n) if !n.online => "offline".into(),
        Some(n) if n.pending => "pending".into(),
        Some(n) if n.maintenance => "maintenance".into(),
        Some(n) if n.standby => "standby".into(),
        Some(_) => "online".into(),
    }
}

/// Why Pacemaker would not promote this node now (None: it could).
fn promotion_blocker(
    st: &ClusterStatus,
    node: &str,
    role: &str,
    failed: bool,
    score: Option<i32>,
) -> Option<String> {
    let state = node_state(st, node);
    if state != "online" {
        return Some(format!("node is {state}"));
    }
    if role == "Promoted" {
        return Some("already the primary".into());
    }
    if failed {
        return Some("its instance has failed: clean it up first".into());
    }
    if role != "Unpromoted" {
        return Some(format!("its instance is {}", role.to_lowercase()));
    }
    if st.maintenance_mode {
        return Some("the cluster is in maintenance mode".into());
    }
    if !st.quorum {
        return Some("the cluster has no quorum".into());
    }
    match score {
        Some(s) if s > 0 => None,
        s => Some(score_reason(s)),
    }
}

/// Build the report. `local` is the node this runs on.
pub fn build(resource: &str, local: &str, st: &ClusterStatus, pg: &LocalPg) -> Report {
    let mut names: Vec<String> = st.nodes.iter().map(|n| n.name.clone()).collect();
    for n in st.instances.keys() {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    let primary = st.primary().map(str::to_string);
    let local_is_primary = pg.in_recovery == Some(false);
    let mut nodes = Vec::new();
    for name in &names {
        let inst = st.instances.get(name);
        let role = inst.map(|i| i.role.clone()).unwrap_or_else(|| "Stopped".into());
        let failed = inst.is_some_and(|i| i.failed);
        let score = st.score(name, resource);
        let mut n = NodeReport {
            name: name.clone(),
            node_state: node_state(st, name),
            pacemaker_role: role.clone(),
            failed,
            postgres_role: "unknown".into(),
            timeline: None,
            wal_written: None,
            wal_flushed: None,
            wal_replayed: None,
            lag_bytes: None,
            lag_seconds: None,
            replication: None,
            score,
            score_reason: score_reason(score),
            promotable: false,
            not_promotable_because: promotion_blocker(st, name, &role, failed, score),
            last_failure: st
                .failures
                .iter()
                .filter(|f| &f.node == name)
                .max_by(|a, b| a.last_rc_change.cmp(&b.last_rc_change))
                .cloned(),
            source: "none".into(),
        };
        n.promotable = n.not_promotable_because.is_none();
        if name == local {
            n.source = "local".into();
            fill_local(&mut n, pg);
        } else if local_is_primary {
            let best = pg
                .replication
                .iter()
                .filter(|r| &r.standby.application_name == name)
                .max_by_key(|r| scores::row_rank(&r.standby));
            if let Some(r) = best {
                n.source = "primary".into();
                n.postgres_role = "standby".into();
                n.timeline = pg.timeline;
                n.wal_written = lsn_str(r.standby.write_lsn);
                n.wal_flushed = lsn_str(r.flush_lsn);
                n.wal_replayed = lsn_str(r.replay_lsn);
                n.lag_bytes = match (pg.current_lsn, r.replay_lsn) {
                    (Some(c), Some(p)) => Some(c.0.saturating_sub(p.0)),
                    _ => None,
                };
                n.lag_seconds = r.replay_lag_s.or(Some(0.0));
                n.replication = Some(format!("{} {}", r.standby.state, r.sync_state));
            } else if role == "Unpromoted" {
                n.source = "primary".into();
                n.replication = Some("not connected to the primary".into());
            }
        }
        nodes.push(n);
    }
    let vip = st
        .others
        .iter()
        .find(|p| p.agent.ends_with(":IPaddr2") || p.agent.ends_with(":IPaddr"))
        .map(|p| Vip { id: p.id.clone(), node: p.nodes.first().cloned() });
    let mut warnings = Vec::new();
    if st.promoted_count() > 1 {
        warnings.push(format!(
            "Pacemaker reports {} promoted instances: check fencing now",
            st.promoted_count()
        ));
    }
    if primary.is_none() {
        let why = nodes
            .iter()
            .filter(|n| n.pacemaker_role == "Unpromoted")
            .map(|n| {
                format!(
                    "{}: {}",
                    n.name,
                    n.not_promotable_because.as_deref().unwrap_or("promotable")
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        warnings.push(if why.is_empty() {
            "no primary, and no running standby".into()
        } else {
            format!("no primary ({why})")
        });
    }
    if !st.quorum {
        warnings.push("this partition has no quorum: Pacemaker will not start or promote".into());
    }
    if st.maintenance_mode {
        warnings.push("maintenance mode: Pacemaker does not act on failures".into());
    }
    if let Some(e) = &pg.error {
        warnings.push(format!("local PostgreSQL: {e}"));
    }
    for n in &nodes {
        if n.failed {
            warnings
                .push(format!("{}: failed instance (`pcs resource cleanup` once fixed)", n.name));
        }
    }
    Report {
        schema: SCHEMA,
        resource: resource.to_string(),
        observed_from: local.to_string(),
        cluster: ClusterSummary {
            primary,
            promoted_count: st.promoted_count(),
            vip,
            maintenance_mode: st.maintenance_mode,
            quorum: st.quorum,
            dc: st.dc.clone(),
            last_fence: st.last_fence().cloned(),
        },
        nodes,
        warnings,
    }
}

fn fill_local(n: &mut NodeReport, pg: &LocalPg) {
    if pg.error.is_some() {
        n.postgres_role = "down".into();
        return;
    }
    n.timeline = pg.timeline;
    match pg.in_recovery {
        Some(false) => {
            n.postgres_role = "primary".into();
            n.wal_written = lsn_str(pg.current_lsn);
            n.wal_flushed = lsn_str(pg.current_lsn);
            n.wal_replayed = lsn_str(pg.current_lsn);
            n.lag_bytes = Some(0);
            n.lag_seconds = Some(0.0);
        }
        Some(true) => {
            n.postgres_role = "standby".into();
            n.wal_written = lsn_str(pg.receive_lsn);
            n.wal_flushed = lsn_str(pg.receive_lsn);
            n.wal_replayed = lsn_str(pg.replay_lsn);
            n.lag_bytes = pg.standby_lag_bytes();
            n.lag_seconds = pg.replay_delay_s;
            n.replication =
                Some(pg.receiver_status.clone().unwrap_or_else(|| "no WAL receiver".into()));
        }
        None => {}
    }
}

/// Bytes in a human unit.
fn bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{b} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// The table an operator reads. `colour`: ANSI colours (a terminal that
/// wants them); plain text otherwise.
pub fn render(r: &Report, colour: bool) -> String {
    let paint = |c: &str, s: &str| if colour { format!("{c}{s}{RESET}") } else { s.to_string() };
    let mut out = String::new();
    let primary = match &r.cluster.primary {
        Some(p) => paint(GREEN, p),
        None => paint(RED, "none"),
    };
    let vip = r
        .cluster
        .vip
        .as_ref()
        .map(|v| format!("{} on {}", v.id, v.node.as_deref().unwrap_or("no node")))
        .unwrap_or_else(|| "none".into());
    out.push_str(&format!(
        "{} {}   primary: {}   vip: {}   quorum: {}   maintenance: {}   dc: {}\n",
        paint(BOLD, "resource"),
        r.resource,
        primary,
        vip,
        if r.cluster.quorum { paint(GREEN, "yes") } else { paint(RED, "no") },
        if r.cluster.maintenance_mode { paint(YELLOW, "on") } else { "off".into() },
        r.cluster.dc.as_deref().unwrap_or("none"),
    ));
    if let Some(f) = &r.cluster.last_fence {
        out.push_str(&format!(
            "last fencing: {} of {} ({}) at {}\n",
            f.action, f.target, f.status, f.completed
        ));
    }
    let header = [
        "NODE",
        "STATE",
        "PACEMAKER",
        "POSTGRES",
        "TL",
        "WRITTEN",
        "FLUSHED",
        "REPLAYED",
        "LAG",
        "REPLICATION",
        "SCORE",
        "PROMOTABLE",
    ];
    let rows: Vec<[String; 12]> = r
        .nodes
        .iter()
        .map(|n| {
            let lag = match (n.lag_bytes, n.lag_seconds) {
                (Some(b), Some(s)) => format!("{} {s:.1}s", bytes(b)),
                (Some(b), None) => bytes(b),
                (None, Some(s)) => format!("{s:.1}s"),
                _ => "-".into(),
            };
            let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
            [
                n.name.clone(),
                n.node_state.clone(),
                format!("{}{}", n.pacemaker_role, if n.failed { " FAILED" } else { "" }),
                n.postgres_role.clone(),
                n.timeline.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
                dash(&n.wal_written),
                dash(&n.wal_flushed),
                dash(&n.wal_replayed),
                lag,
                dash(&n.replication),
                n.score.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
                match &n.not_promotable_because {
                    None => "yes".into(),
                    Some(w) => format!("no: {w}"),
                },
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>, styles: Vec<Option<&str>>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let last = i + 1 == cells.len();
            let pad =
                if last { String::new() } else { " ".repeat(widths[i] - c.chars().count() + 2) };
            match styles.get(i).copied().flatten() {
                Some(st) if colour => s.push_str(&format!("{st}{c}{RESET}{pad}")),
                _ => s.push_str(&format!("{c}{pad}")),
            }
        }
        s.push('\n');
        s
    };
    out.push('\n');
    out.push_str(&line(header.iter().map(|h| h.to_string()).collect(), vec![Some(BOLD); 12]));
    for (row, n) in rows.into_iter().zip(&r.nodes) {
        let mut styles = vec![None; 12];
        styles[1] = (n.node_state != "online").then_some(RED);
        styles[2] = if n.failed {
            Some(RED)
        } else if n.pacemaker_role == "Promoted" {
            Some(GREEN)
        } else {
            None
        };
        styles[11] = Some(if n.promotable { GREEN } else { YELLOW });
        out.push_str(&line(row.to_vec(), styles));
    }
    let failures: Vec<&NodeReport> = r.nodes.iter().filter(|n| n.last_failure.is_some()).collect();
    if !failures.is_empty() {
        out.push_str("\nlast failures:\n");
        for n in failures {
            let f = n.last_failure.as_ref().expect("filtered");
            out.push_str(&format!(
                "  {}: {} {} at {}: {}\n",
                n.name, f.op_key, f.exit_status, f.last_rc_change, f.exit_reason
            ));
        }
    }
    if r.nodes.iter().any(|n| n.source == "none" && n.name != r.observed_from) {
        out.push_str(&format!(
            "\n(PostgreSQL columns of other nodes come from the primary: run this on {} for them)\n",
            r.cluster.primary.as_deref().unwrap_or("the primary")
        ));
    }
    for w in &r.warnings {
        out.push_str(&format!("{} {w}\n", paint(RED, "!")));
    }
    out
}

pub fn to_json(r: &Report) -> String {
    serde_json::to_string_pretty(r).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm_mon;

    fn healthy() -> ClusterStatus {
        crm_mon::parse(include_str!("../tests/fixtures/crm_mon/healthy.xml"), "pgsqld").unwrap()
    }

    fn row(name: &str, write_lsn: Option<Lsn>) -> scores::ReplicationRow {
        scores::ReplicationRow {
            application_name: name.into(),
            state: "streaming".into(),
            write_lsn,
        }
    }

    fn primary_pg() -> LocalPg {
        LocalPg {
            in_recovery: Some(false),
            timeline: Some(3),
            current_lsn: Some(Lsn(0x3000100)),
            replication: vec![
                ReplicationView {
                    standby: row("srv2", Some(Lsn(0x3000100))),
                    sync_state: "sync".into(),
                    flush_lsn: Some(Lsn(0x3000100)),
                    replay_lsn: Some(Lsn(0x3000000)),
                    replay_lag_s: Some(0.25),
                },
                ReplicationView {
                    standby: row("someone-else", None),
                    sync_state: "async".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn healthy_cluster_from_the_primary() {
        let r = build("pgsqld", "srv1", &healthy(), &primary_pg());
        assert_eq!(r.cluster.primary.as_deref(), Some("srv1"));
        assert_eq!(r.cluster.vip.as_ref().unwrap().node.as_deref(), Some("srv1"));
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        let srv2 = r.nodes.iter().find(|n| n.name == "srv2").unwrap();
        assert_eq!(srv2.postgres_role, "standby");
        assert_eq!(srv2.lag_bytes, Some(0x100));
        assert_eq!(srv2.replication.as_deref(), Some("streaming sync"));
        assert!(srv2.promotable);
        // srv3 has a score but no replication row: not connected.
        let srv3 = r.nodes.iter().find(|n| n.name == "srv3").unwrap();
        assert_eq!(srv3.replication.as_deref(), Some("not connected to the primary"));
        let srv1 = r.nodes.iter().find(|n| n.name == "srv1").unwrap();
        assert_eq!(srv1.not_promotable_because.as_deref(), Some("already the primary"));
        assert_eq!(srv1.source, "local");
    }

    #[test]
    fn a_stale_walsender_does_not_hide_the_live_one() {
        // Seen in the cluster after s28 rebuilt srv1: the primary kept the
        // walsender of srv1's lost connection in "startup", listed first.
        let mut pg = primary_pg();
        let live = pg.replication[0].clone();
        let stale = ReplicationView {
            standby: scores::ReplicationRow {
                application_name: "srv2".into(),
                state: "startup".into(),
                write_lsn: None,
            },
            sync_state: "potential".into(),
            ..Default::default()
        };
        for rows in [vec![stale.clone(), live.clone()], vec![live, stale]] {
            pg.replication = rows;
            let r = build("pgsqld", "srv1", &healthy(), &pg);
            let srv2 = r.nodes.iter().find(|n| n.name == "srv2").unwrap();
            assert_eq!(srv2.replication.as_deref(), Some("streaming sync"));
            assert_eq!(srv2.wal_replayed.as_deref(), Some("0/3000000"));
        }
    }

    #[test]
    fn no_primary_says_why() {
        let mut st = healthy();
        st.instances.get_mut("srv1").unwrap().role = "Stopped".into();
        st.nodes[0].online = false;
        st.attributes.get_mut("srv2").unwrap().insert("master-pgsqld".into(), "-1000".into());
        st.attributes.get_mut("srv3").unwrap().insert("master-pgsqld".into(), "-100".into());
        let pg = LocalPg {
            in_recovery: Some(true),
            receive_lsn: Some(Lsn(10)),
            replay_lsn: Some(Lsn(8)),
            primary_end_lsn: Some(Lsn(20)),
            receiver_status: Some("waiting".into()),
            ..Default::default()
        };
        let r = build("pgsqld", "srv2", &st, &pg);
        assert_eq!(r.cluster.primary, None);
        let w = &r.warnings[0];
        assert!(w.contains("srv2: not connected to the primary"), "{w}");
        assert!(w.contains("srv3: beyond maxlag"), "{w}");
        let srv1 = r.nodes.iter().find(|n| n.name == "srv1").unwrap();
        assert_eq!(srv1.node_state, "offline");
        let srv2 = r.nodes.iter().find(|n| n.name == "srv2").unwrap();
        assert_eq!(srv2.lag_bytes, Some(12));
        assert_eq!(srv2.replication.as_deref(), Some("waiting"));
        let text = render(&r, false);
        assert!(text.contains("primary: none"), "{text}");
        assert!(!text.contains('\x1b'), "plain text when not a terminal");
        assert!(render(&r, true).contains('\x1b'));
    }

    #[test]
    fn two_promoted_instances_are_a_warning() {
        let mut st = healthy();
        st.instances.get_mut("srv2").unwrap().role = "Promoted".into();
        let r = build("pgsqld", "srv1", &st, &primary_pg());
        assert!(r.warnings[0].contains("2 promoted"), "{:?}", r.warnings);
    }

    #[test]
    fn local_postgres_down_is_shown_not_crashed_on() {
        let r = build(
            "pgsqld",
            "srv3",
            &healthy(),
            &LocalPg { error: Some("not listening".into()), ..Default::default() },
        );
        let srv3 = r.nodes.iter().find(|n| n.name == "srv3").unwrap();
        assert_eq!(srv3.postgres_role, "down");
        assert!(r.warnings.iter().any(|w| w.contains("not listening")));
    }

    #[test]
    fn score_reasons_cover_the_table() {
        assert_eq!(score_reason(Some(1001)), "primary");
        assert!(score_reason(Some(1000)).contains("rank 1"));
        assert!(score_reason(Some(990)).contains("rank 2"));
        assert!(score_reason(Some(-1)).contains("not streaming"));
        assert_eq!(score_reason(Some(-100)), "beyond maxlag");
        assert_eq!(score_reason(Some(-1000)), "not connected to the primary");
        assert!(score_reason(None).starts_with("no score"));
    }

    #[test]
    fn json_has_the_documented_top_level_fields() {
        let r = build("pgsqld", "srv1", &healthy(), &primary_pg());
        let v: serde_json::Value = serde_json::from_str(&to_json(&r)).unwrap();
        for k in ["schema", "resource", "observed_from", "cluster", "nodes", "warnings"] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
        assert_eq!(v["schema"], 1);
        assert_eq!(v["nodes"][1]["wal_flushed"], "0/3000100");
    }

    #[test]
    fn human_bytes() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(2048), "2.0 kB");
        assert_eq!(bytes(16 * 1024 * 1024), "16.0 MB");
    }
}
