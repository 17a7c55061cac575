//! Choosing the standby to promote. Pure: positions are gathered during the
//! pre-promote notification, and the designated node decides in `promote`.
//!
//! Pacemaker picks the node with the highest promotion score, but scores come
//! from the last primary monitor, which may be seconds old. Before promoting,
//! the designated node compares fresh positions (timeline, last received LSN)
//! of every active standby; if another is ahead, promoting here would lose
//! the WAL only that one has, so it hands the promotion over instead.

use crate::lsn::Lsn;
use crate::scores;

/// A standby's position, published as the private attribute `lsn_location`
/// in the form `<timeline>#<lsn>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub timeline: u32,
    pub lsn: Lsn,
}

/// Published instead of a position by a node that has no running standby:
/// it is not a candidate, and the designated node need not wait for it.
pub const NO_POSITION: &str = "none";

impl Position {
    pub fn to_attr(self) -> String {
        format!("{}#{}", self.timeline, self.lsn)
    }

    pub fn from_attr(s: &str) -> Option<Position> {
        let (tl, lsn) = s.trim().split_once('#')?;
        Some(Position { timeline: tl.parse().ok()?, lsn: lsn.parse().ok()? })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub node: String,
    pub position: Position,
    /// Current promotion score, if any: the last primary monitor marks
    /// standbys beyond maxlag with `scores::TOO_FAR_BEHIND`.
    pub score: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// This node is (one of) the most advanced: promote it.
    Proceed,
    /// `node` is ahead: give it the promotion.
    HandOver { node: String, position: Position },
    /// No safe choice: the most advanced standby is beyond maxlag, and any
    /// other would lose what it has.
    Refuse(String),
}

fn beyond_maxlag(c: &Candidate) -> bool {
    c.score.is_some_and(|s| s <= scores::TOO_FAR_BEHIND && s > scores::NOT_CONNECTED)
}

/// `candidates` must include the local node.
pub fn elect(local: &str, candidates: &[Candidate]) -> Verdict {
    let Some(me) = candidates.iter().find(|c| c.node == local) else {
        return Verdict::Refuse(format!("no position known for the local node {local}"));
    };
    // The most advanced position; on a tie the local node wins, so an
    // election between equals never aborts a promotion.
    let best = candidates
        .iter()
        .max_by(|a, b| {
            a.position
                .cmp(&b.position)
                .then_with(|| (a.node == local).cmp(&(b.node == local)))
                .then_with(|| b.node.cmp(&a.node))
        })
        .expect("local is a candidate");
    if beyond_maxlag(best) {
        return Verdict::Refuse(format!(
            "{} has the most recent data ({}#{}) but was beyond maxlag at the last primary monitor; \
             promoting any other node would lose data",
            best.node, best.position.timeline, best.position.lsn
        ));
    }
    if best.position == me.position {
        Verdict::Proceed
    } else {
        Verdict::HandOver { node: best.node.clone(), position: best.position }
    }
}

/// Why a node whose WAL counts cannot take the promotion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Barred {
    /// Its instance runs no standby (stopped, crashed, not started in this
    /// transition): its position is the end of the valid WAL on its disk.
    NotRunning,
    /// The operator marked it never to be promoted.
    NeverPromote,
}

/// A node whose WAL counts when deciding whether a promotion loses
/// commits, but which cannot be promoted itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub node: String,
    pub position: Position,
    pub barred: Barred,
}

/// The election over every node that holds WAL. `candidates` are the
/// running standbys of the transition (the local node among them), `never`
/// the nodes marked never to be promoted, `holders` the nodes whose WAL is
/// on disk only. The promotion goes to the most advanced node that may be
/// promoted, and only if no other node holds more WAL: promoting it would
/// lose what only that one has.
pub fn elect_among(
    local: &str,
    candidates: &[Candidate],
    never: &[String],
    holders: &[Holder],
) -> Verdict {
    let barred = |n: &str| never.iter().any(|x| x == n);
    let promotable: Vec<Candidate> =
        candidates.iter().filter(|c| !barred(&c.node)).cloned().collect();
    let verdict = if barred(local) {
        // Hand over to the most advanced one that may be promoted.
        match promotable.iter().max_by(|a, b| a.position.cmp(&b.position).then(b.node.cmp(&a.node)))
        {
            None => {
                return Verdict::Refuse(format!(
                    "{local} is marked {NEVER_PROMOTE} and no other standby may be promoted"
                ));
            }
            Some(best) => match elect(&best.node, &promotable) {
                Verdict::Proceed => {
                    Verdict::HandOver { node: best.node.clone(), position: best.position }
                }
                other => other,
            },
        }
    } else {
        elect(local, &promotable)
    };
    let chosen = match &verdict {
        Verdict::Proceed => match promotable.iter().find(|c| c.node == local) {
            Some(c) => c.position,
            None => return verdict,
        },
        Verdict::HandOver { position, .. } => *position,
        Verdict::Refuse(_) => return verdict,
    };
    let others = candidates
        .iter()
        .filter(|c| barred(&c.node))
        .map(|c| (c.node.as_str(), c.position, Barred::NeverPromote))
        .chain(holders.iter().map(|h| {
            let why = if barred(&h.node) { Barred::NeverPromote } else { h.barred };
            (h.node.as_str(), h.position, why)
        }));
    match others.filter(|(_, p, _)| *p > chosen).max_by_key(|(_, p, _)| *p) {
        None => verdict,
        Some((node, p, why)) => Verdict::Refuse(format!(
            "{node} holds the newest WAL ({}) but {}; promoting would lose commits",
            p.to_attr(),
            match why {
                Barred::NotRunning => "runs no standby: start it",
                Barred::NeverPromote => "is marked never to be promoted",
            }
        )),
    }
}

/// The node attribute an operator sets (`crm_attribute --node <node> --name
/// pgsqlms-never-promote --update true`) so that a node is never promoted.
pub const NEVER_PROMOTE: &str = "pgsqlms-never-promote";

#[cfg(test)]
mod tests {
    use super::*;

    fn c(node: &str, tl: u32, lsn: &str, score: Option<i32>) -> Candidate {
        Candidate {
            node: node.into(),
            position: Position { timeline: tl, lsn: lsn.parse().unwrap() },
            score,
        }
    }

    #[test]
    fn attribute_round_trip() {
        let p = Position { timeline: 3, lsn: "1/A0".parse().unwrap() };
        assert_eq!(p.to_attr(), "3#1/A0");
        assert_eq!(Position::from_attr("3#1/A0"), Some(p));
        for bad in ["", "3", "#0/1", "x#0/1", "3#zz", "3#0/1#"] {
            assert_eq!(Position::from_attr(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_most_advanced_standby_is_promoted() {
        let cs = [c("a", 1, "0/500", Some(1000)), c("b", 1, "0/600", Some(990))];
        assert_eq!(
            elect("a", &cs),
            Verdict::HandOver { node: "b".into(), position: cs[1].position }
        );
        assert_eq!(elect("b", &cs), Verdict::Proceed);
    }

    #[test]
    fn a_higher_timeline_wins_over_a_higher_lsn() {
        let cs = [c("a", 1, "0/900", None), c("b", 2, "0/600", None)];
        assert!(matches!(elect("a", &cs), Verdict::HandOver { node, .. } if node == "b"));
    }

    #[test]
    fn ties_keep_the_designated_node() {
        let cs = [c("a", 1, "0/600", None), c("b", 1, "0/600", None), c("c", 1, "0/600", None)];
        for n in ["a", "b", "c"] {
            assert_eq!(elect(n, &cs), Verdict::Proceed);
        }
    }

    #[test]
    fn alone_proceeds_and_unknown_local_refuses() {
        assert_eq!(elect("a", &[c("a", 1, "0/1", None)]), Verdict::Proceed);
        assert!(matches!(elect("z", &[c("a", 1, "0/1", None)]), Verdict::Refuse(_)));
    }

    #[test]
    fn maxlag_flag_is_honoured_never_overridden() {
        // The best one was flagged beyond maxlag: nobody may be promoted.
        let cs = [c("a", 1, "0/500", Some(1000)), c("b", 1, "0/600", Some(scores::TOO_FAR_BEHIND))];
        assert!(matches!(elect("a", &cs), Verdict::Refuse(m) if m.contains("maxlag")));
        // A flagged node behind the designated one does not matter.
        let cs = [c("a", 1, "0/700", Some(1000)), c("b", 1, "0/600", Some(scores::TOO_FAR_BEHIND))];
        assert_eq!(elect("a", &cs), Verdict::Proceed);
        // Other negative scores are not maxlag flags: data wins.
        for s in [scores::NOT_READY, scores::NOT_CONNECTED] {
            let cs = [c("a", 1, "0/500", Some(1000)), c("b", 1, "0/600", Some(s))];
            assert!(matches!(elect("a", &cs), Verdict::HandOver { .. }));
        }
    }

    fn h(node: &str, tl: u32, lsn: &str, barred: Barred) -> Holder {
        Holder {
            node: node.into(),
            position: Position { timeline: tl, lsn: lsn.parse().unwrap() },
            barred,
        }
    }

    fn never(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_stopped_node_with_more_wal_stops_the_promotion() {
        let cs = [c("a", 1, "0/500", Some(1000)), c("b", 1, "0/400", Some(990))];
        let stopped = [h("x", 1, "0/600", Barred::NotRunning)];
        assert!(matches!(elect_among("a", &cs, &[], &stopped),
            Verdict::Refuse(m) if m.starts_with("x holds the newest WAL (1#0/600)") && m.contains("start it")));
        // Equal or behind: it does not matter.
        for lsn in ["0/500", "0/100"] {
            let stopped = [h("x", 1, lsn, Barred::NotRunning)];
            assert_eq!(elect_among("a", &cs, &[], &stopped), Verdict::Proceed);
            assert!(
                matches!(elect_among("b", &cs, &[], &stopped), Verdict::HandOver { node, .. } if node == "a")
            );
        }
    }

    #[test]
    fn never_promote_is_not_chosen_but_its_wal_counts() {
        let cs = [
            c("a", 1, "0/500", Some(1000)),
            c("b", 1, "0/600", Some(990)),
            c("n", 1, "0/550", None),
        ];
        // b is the most advanced and may be promoted.
        assert_eq!(elect_among("b", &cs, &never(&["n"]), &[]), Verdict::Proceed);
        // The never-promote node designated: hands over to the best other.
        assert!(matches!(elect_among("n", &cs, &never(&["n"]), &[]),
            Verdict::HandOver { node, .. } if node == "b"));
        // The never-promote node alone has the newest WAL: refuse, naming it.
        let cs = [c("a", 1, "0/500", Some(1000)), c("n", 1, "0/600", None)];
        for local in ["a", "n"] {
            assert!(
                matches!(elect_among(local, &cs, &never(&["n"]), &[]),
                Verdict::Refuse(m) if m.starts_with("n holds the newest WAL") && m.contains("never to be promoted")),
                "{local}"
            );
        }
        // Alone and barred.
        assert!(
            matches!(elect_among("n", &cs[1..], &never(&["n"]), &[]), Verdict::Refuse(m) if m.contains(NEVER_PROMOTE))
        );
        // A holder on disk that is marked never to be promoted says so.
        let stopped = [h("n", 1, "0/700", Barred::NotRunning)];
        assert!(matches!(elect_among("a", &cs[..1], &never(&["n"]), &stopped),
            Verdict::Refuse(m) if m.contains("never to be promoted")));
    }

    #[test]
    fn without_holders_or_barred_nodes_it_is_the_plain_election() {
        let cs = [
            c("a", 1, "0/500", Some(1000)),
            c("b", 1, "0/600", Some(scores::TOO_FAR_BEHIND)),
            c("d", 2, "0/1", None),
        ];
        for l in ["a", "b", "d", "z"] {
            assert_eq!(elect_among(l, &cs, &[], &[]), elect(l, &cs), "{l}");
        }
    }

    proptest::proptest! {
        /// Whatever the positions, flags and roles: a promotion that goes
        /// ahead goes to a node that may be promoted, holding at least as
        /// much WAL as every node known, running or not.
        #[test]
        fn never_loses_wal_nor_promotes_a_barred_node(
            nodes in proptest::collection::vec((1u32..3, 0u64..6, proptest::bool::ANY, 0u8..4), 1..6),
            local in 0usize..6,
        ) {
            let mut cands = Vec::new();
            let mut holders = Vec::new();
            let mut barred = Vec::new();
            for (i, (tl, lsn, is_never, kind)) in nodes.iter().enumerate() {
                let node = format!("n{i}");
                let position = Position { timeline: *tl, lsn: crate::lsn::Lsn(*lsn) };
                if *is_never { barred.push(node.clone()); }
                let score = if *kind == 3 { Some(scores::TOO_FAR_BEHIND) } else { None };
                if *kind == 0 {
                    holders.push(Holder { node, position, barred: Barred::NotRunning });
                } else {
                    cands.push(Candidate { node, position, score });
                }
            }
            let local = format!("n{}", local.min(nodes.len() - 1));
            let all: Vec<Position> = cands.iter().map(|c| c.position).chain(holders.iter().map(|h| h.position)).collect();
            let newest = all.iter().max().copied().unwrap();
            let chosen = match elect_among(&local, &cands, &barred, &holders) {
                Verdict::Proceed => Some(local.clone()),
                Verdict::HandOver { node, .. } => Some(node),
                Verdict::Refuse(_) => None,
            };
            if let Some(n) = chosen {
                let c = cands.iter().find(|c| c.node == n);
                proptest::prop_assert!(c.is_some(), "promoted a node that runs no standby");
                let c = c.unwrap();
                proptest::prop_assert!(!barred.contains(&n));
                proptest::prop_assert_eq!(c.position, newest);
                proptest::prop_assert!(!beyond_maxlag(c));
            }
        }
    }
}
