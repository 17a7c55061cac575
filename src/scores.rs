//! Promotion scores the primary's monitor gives every cluster node, from its
//! replication view. Pure: the caller reads rows and current scores, applies
//! the changes this returns.
//!
//! Scores are hints for Pacemaker's choice; the election at promotion time
//! re-checks with fresh positions. Standbys are ranked by `write_lsn`, the most
//! advanced one highest (PAF 2.3.0 ranks them the other way round), equal
//! positions share a score.

use crate::lsn::Lsn;
use std::collections::{BTreeMap, HashMap};

pub const PRIMARY: i32 = 1001;
pub const BEST_STANDBY: i32 = 1000;
pub const RANK_STEP: i32 = 10;
/// Lowest score a streaming standby within maxlag gets, however many there are.
pub const LOWEST_STANDBY: i32 = 1;
/// Connected but not streaming yet (startup, backup, stopping).
pub const NOT_READY: i32 = -1;
/// Streaming but further behind than maxlag.
pub const TOO_FAR_BEHIND: i32 = -100;
/// Cluster node with no replication connection to the primary.
pub const NOT_CONNECTED: i32 = -1000;
/// Marked never to be promoted by the operator (Pacemaker's -INFINITY).
pub const NEVER_PROMOTE: i32 = -1_000_000;

/// One row of `pg_stat_replication`, what the scores are made of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicationRow {
    pub application_name: String,
    pub state: String,
    pub write_lsn: Option<Lsn>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    Primary,
    Ranked { rank: usize, write_lsn: Lsn, lag: u64 },
    TooFarBehind { lag: u64, maxlag: u64 },
    NotReady { state: String },
    NotConnected,
    NeverPromote,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Primary => write!(f, "it is the primary"),
            Reason::Ranked { rank, write_lsn, lag } => {
                write!(
                    f,
                    "standby ranked {} by write LSN {write_lsn} ({lag} bytes behind)",
                    rank + 1
                )
            }
            Reason::TooFarBehind { lag, maxlag } => {
                write!(f, "standby is {lag} bytes behind, more than maxlag ({maxlag})")
            }
            Reason::NotReady { state } => write!(f, "standby is in replication state \"{state}\""),
            Reason::NotConnected => write!(f, "it has no replication connection to the primary"),
            Reason::NeverPromote => {
                write!(f, "it is marked {}", crate::election::NEVER_PROMOTE)
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Score {
    pub value: i32,
    pub reason: Reason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub scores: BTreeMap<String, Score>,
    /// application_names of replication clients that are not cluster nodes
    /// (backup tools, pg_receivewal): ignored.
    pub foreign_clients: Vec<String>,
}

pub fn compute(
    local: &str,
    cluster_nodes: &[String],
    rows: &[ReplicationRow],
    primary_lsn: Lsn,
    maxlag: u64,
) -> Table {
    let is_peer = |n: &str| n != local && cluster_nodes.iter().any(|c| c == n);
    let mut foreign_clients: Vec<String> = rows
        .iter()
        .filter(|r| !is_peer(&r.application_name))
        .map(|r| r.application_name.clone())
        .collect();
    foreign_clients.sort();
    foreign_clients.dedup();

    // Best row per peer: the most advanced one among duplicates.
    let mut best: BTreeMap<&str, &ReplicationRow> = BTreeMap::new();
    for r in rows.iter().filter(|r| is_peer(&r.application_name)) {
        let e = best.entry(&r.application_name).or_insert(r);
        if row_rank(r) > row_rank(e) {
            *e = r;
        }
    }

    let mut scores = BTreeMap::new();
    scores.insert(local.to_string(), Score { value: PRIMARY, reason: Reason::Primary });

    let mut ranked: Vec<(&str, Lsn, u64)> = Vec::new();
    for (name, r) in &best {
        match r.write_lsn.filter(|_| is_streaming(&r.state)) {
            None => {
                scores.insert(
                    name.to_string(),
                    Score { value: NOT_READY, reason: Reason::NotReady { state: r.state.clone() } },
                );
            }
            Some(w) => {
                let lag = primary_lsn.0.saturating_sub(w.0);
                if maxlag > 0 && lag > maxlag {
                    scores.insert(
                        name.to_string(),
                        Score {
                            value: TOO_FAR_BEHIND,
                            reason: Reason::TooFarBehind { lag, maxlag },
                        },
                    );
                } else {
                    ranked.push((name, w, lag));
                }
            }
        }
    }
    // Most advanced first; names break ties only for a stable order.
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut rank = 0;
    for (i, (name, w, lag)) in ranked.iter().enumerate() {
        if i > 0 && *w < ranked[i - 1].1 {
            rank += 1;
        }
        let value = (BEST_STANDBY - RANK_STEP * rank as i32).max(LOWEST_STANDBY);
        scores.insert(
            name.to_string(),
            Score { value, reason: Reason::Ranked { rank, write_lsn: *w, lag: *lag } },
        );
    }

    for n in cluster_nodes {
        scores
            .entry(n.clone())
            .or_insert(Score { value: NOT_CONNECTED, reason: Reason::NotConnected });
    }
    Table { scores, foreign_clients }
}

/// How two rows of the same standby compare: streaming before anything
/// else, then the most advanced. A standby can have several walsenders: a
/// connection its node lost without a word (power cut, node rebuilt) stays
/// in `startup` until TCP gives up on it, beside the live one.
pub fn row_rank(r: &ReplicationRow) -> (bool, Option<Lsn>) {
    (is_streaming(&r.state), r.write_lsn)
}

fn is_streaming(state: &str) -> bool {
    matches!(state, "streaming" | "catchup")
}

/// The scores that differ from what the CIB holds now: only these are written.
pub fn changes<'a>(table: &'a Table, current: &HashMap<String, i32>) -> Vec<(&'a str, &'a Score)> {
    table
        .scores
        .iter()
        .filter(|(node, s)| current.get(node.as_str()) != Some(&s.value))
        .map(|(n, s)| (n.as_str(), s))
        .collect()
}

/// Nodes the operator marked never to be promoted get -INFINITY, whatever
/// their replication state.
pub fn bar(table: &mut Table, never: &[String]) {
    for (node, score) in table.scores.iter_mut() {
        if never.contains(node) && score.value != PRIMARY {
            *score = Score { value: NEVER_PROMOTE, reason: Reason::NeverPromote };
        }
    }
}

/// What a running standby without a replication connection knows when it
/// asks whether to give itself a promotion score.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan<'a> {
    /// Promotion scores in the cluster now, by node.
    pub scores: &'a HashMap<String, i32>,
    pub me: &'a str,
    /// Marked never to be promoted.
    pub never_promote: bool,
}

/// Without a primary, Pacemaker promotes a node only if one has a positive
/// score. Scores come from the primary's monitor: when the primary dies
/// before it scored the standbys that had just connected (first interval
/// after a start or a promotion), or at a whole-cluster start, nobody has
/// one and nobody would ever be promoted. Then a standby may raise itself
/// to `LOWEST_STANDBY`, if it is the most advanced it knows of (the caller
/// compares positions); the election at promotion compares every node's
/// fresh position, running or on disk, and hands over to a better one or
/// refuses. A score of `NOT_CONNECTED` does not hold a standby back (PAF
/// never promotes a disconnected standby, and leaves the cluster without a
/// primary): it may be stale (set before the standby connected), and after
/// the primary's loss every standby is disconnected. The maxlag flag does.
/// Returns why not, if not.
pub fn may_raise_itself(o: &Orphan) -> Result<(), &'static str> {
    if o.never_promote {
        return Err("it is marked never to be promoted");
    }
    if o.scores.values().any(|s| *s > 0) {
        return Err("a node has a positive promotion score");
    }
    match o.scores.get(o.me) {
        Some(&s) if s <= TOO_FAR_BEHIND && s > NOT_CONNECTED => {
            return Err("the last primary monitor flagged it beyond maxlag");
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `compute` on the primary, the first of `nodes`, with
    /// pg_stat_replication rows written "name state write_lsn" (`-`: none).
    fn scored(nodes: &str, rows: &[&str], current: &str, maxlag: u64) -> Table {
        let nodes: Vec<String> = nodes.split_whitespace().map(String::from).collect();
        let rows: Vec<ReplicationRow> = rows
            .iter()
            .map(|r| match r.split_whitespace().collect::<Vec<_>>()[..] {
                [name, state, lsn] => ReplicationRow {
                    application_name: name.into(),
                    state: state.into(),
                    write_lsn: (lsn != "-").then(|| lsn.parse().unwrap()),
                },
                _ => panic!("row {r:?}"),
            })
            .collect();
        compute(&nodes[0], &nodes, &rows, current.parse().unwrap(), maxlag)
    }

    fn nodes(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    fn values(t: &Table) -> Vec<(&str, i32)> {
        t.scores.iter().map(|(n, s)| (n.as_str(), s.value)).collect()
    }

    #[test]
    fn most_advanced_standby_scores_highest() {
        let rows = ["srv2 streaming 0/3000000", "srv3 streaming 0/5000000"];
        let t = scored("srv1 srv2 srv3", &rows, "0/5000000", 0);
        assert_eq!(values(&t), vec![("srv1", 1001), ("srv2", 990), ("srv3", 1000)]);
    }

    #[test]
    fn equal_positions_share_a_score_and_ranks_stay_dense() {
        let rows = ["b streaming 0/5", "a streaming 0/5", "c catchup 0/4"];
        let t = scored("p a b c", &rows, "0/5", 0);
        assert_eq!(values(&t), vec![("a", 1000), ("b", 1000), ("c", 990), ("p", 1001)]);
    }

    #[test]
    fn standbys_not_streaming_cannot_be_promoted() {
        for state in ["startup", "backup", "stopping"] {
            let t = scored("p s", &[&format!("s {state} 0/1")], "0/1", 0);
            assert_eq!(t.scores["s"].value, NOT_READY, "{state}");
        }
        let t = scored("p s", &["s streaming -"], "0/1", 0);
        assert_eq!(t.scores["s"].value, NOT_READY);
    }

    #[test]
    fn maxlag_gives_a_negative_score_and_zero_disables_it() {
        let rows = ["s1 streaming 0/1000", "s2 streaming 0/F00"];
        let t = scored("p s1 s2", &rows, "0/1000", 0x80);
        assert_eq!(t.scores["s1"].value, 1000);
        assert_eq!(t.scores["s2"].value, TOO_FAR_BEHIND);
        assert_eq!(t.scores["s2"].reason, Reason::TooFarBehind { lag: 0x100, maxlag: 0x80 });
        // exactly maxlag behind is still fine
        assert_eq!(scored("p s1 s2", &rows, "0/1000", 0x100).scores["s2"].value, 990);
        assert_eq!(scored("p s1 s2", &rows, "0/1000", 0).scores["s2"].value, 990);
    }

    #[test]
    fn disconnected_nodes_and_foreign_clients() {
        let t = scored("p s", &["pg_receivewal streaming 0/9", "p streaming 0/9"], "0/9", 0);
        assert_eq!(values(&t), vec![("p", 1001), ("s", NOT_CONNECTED)]);
        assert_eq!(t.foreign_clients, vec!["p".to_string(), "pg_receivewal".to_string()]);
    }

    #[test]
    fn duplicate_connections_keep_the_best() {
        let rows = ["s startup 0/1", "s streaming 0/2", "s streaming 0/1"];
        let t = scored("p s", &rows, "0/2", 0);
        assert_eq!(t.scores["s"].value, 1000);
        assert_eq!(
            t.scores["s"].reason,
            Reason::Ranked { rank: 0, write_lsn: "0/2".parse().unwrap(), lag: 0 }
        );
    }

    #[test]
    fn many_standbys_never_drop_to_zero() {
        let names: Vec<String> = (0..150).map(|i| format!("s{i:03}")).collect();
        let rows: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, n)| format!("{n} streaming 0/{:X}", 1000 - i))
            .collect();
        let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
        let t = scored(&format!("p {}", names.join(" ")), &rows, "0/1000", 0);
        assert_eq!(t.scores["s000"].value, 1000);
        assert_eq!(t.scores["s099"].value, 10);
        assert_eq!(t.scores["s149"].value, LOWEST_STANDBY);
    }

    #[test]
    fn only_changed_scores_are_written() {
        let t = scored("p s x", &["s streaming 0/2"], "0/2", 0);
        let mut current = HashMap::new();
        assert_eq!(changes(&t, &current).len(), 3);
        current.insert("p".to_string(), 1001);
        current.insert("s".to_string(), 990);
        current.insert("x".to_string(), NOT_CONNECTED);
        let ch = changes(&t, &current);
        assert_eq!(ch.len(), 1);
        assert_eq!((ch[0].0, ch[0].1.value), ("s", 1000));
        current.insert("s".to_string(), 1000);
        assert!(changes(&t, &current).is_empty());
    }

    #[test]
    fn never_promote_nodes_get_minus_infinity_except_a_primary() {
        let mut t = scored("p s n x", &["s streaming 0/2", "n streaming 0/2"], "0/2", 0);
        bar(&mut t, &nodes(&["n", "x", "p"]));
        assert_eq!(
            values(&t),
            vec![("n", NEVER_PROMOTE), ("p", PRIMARY), ("s", 1000), ("x", NEVER_PROMOTE)]
        );
        assert_eq!(t.scores["n"].reason.to_string(), "it is marked pgsqlms-never-promote");
    }

    /// Every combination of the inputs that matter.
    #[test]
    fn a_standby_raises_itself_only_when_nobody_could_be_promoted() {
        let values = [
            None,
            Some(PRIMARY),
            Some(BEST_STANDBY),
            Some(LOWEST_STANDBY),
            Some(0),
            Some(NOT_READY),
            Some(TOO_FAR_BEHIND),
            Some(-500),
            Some(NOT_CONNECTED),
            Some(NEVER_PROMOTE),
        ];
        for mine in values {
            for other in values {
                for never_promote in [false, true] {
                    let mut scores = HashMap::new();
                    if let Some(v) = mine {
                        scores.insert("me".to_string(), v);
                    }
                    if let Some(v) = other {
                        scores.insert("other".to_string(), v);
                    }
                    let o = Orphan { scores: &scores, me: "me", never_promote };
                    let flagged =
                        matches!(mine, Some(v) if v <= TOO_FAR_BEHIND && v > NOT_CONNECTED);
                    let expected = !never_promote
                        && mine.is_none_or(|v| v <= 0)
                        && other.is_none_or(|v| v <= 0)
                        && !flagged;
                    assert_eq!(may_raise_itself(&o).is_ok(), expected, "{o:?}");
                }
            }
        }
        // The case seen: the primary's score went with its node, both
        // standbys still hold the score of before they connected.
        let scores =
            HashMap::from([("me".to_string(), NOT_CONNECTED), ("b".to_string(), NOT_CONNECTED)]);
        let o = Orphan { scores: &scores, me: "me", never_promote: false };
        assert_eq!(may_raise_itself(&o), Ok(()));
    }
}
