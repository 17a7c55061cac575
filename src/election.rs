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
}
