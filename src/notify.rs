//! A notification's environment, parsed into a typed transition, and the
//! questions the agent asks of it. Pure.

use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Pre,
    Post,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Start,
    Stop,
    Promote,
    Demote,
}

/// As Pacemaker names them (`pre`, `promote`): "pre-promote".
impl std::fmt::Display for When {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            When::Pre => "pre",
            When::Post => "post",
        })
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Operation::Start => "start",
            Operation::Stop => "stop",
            Operation::Promote => "promote",
            Operation::Demote => "demote",
        })
    }
}

/// Node names per list of the notification.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Transition {
    /// where an instance is about to start (`start_uname`)
    pub start: Vec<String>,
    /// where an instance is about to stop (`stop_uname`)
    pub stop: Vec<String>,
    /// the node to promote (`promote_uname`)
    pub promote: Vec<String>,
    /// the node to demote (`demote_uname`)
    pub demote: Vec<String>,
    /// where an instance runs before the transition (`active_uname`)
    pub active: Vec<String>,
    /// where it runs promoted (`promoted_uname`, `master_uname` before 2.1)
    pub promoted: Vec<String>,
    /// where it runs unpromoted (`unpromoted_uname`, `slave_uname` before 2.1)
    pub unpromoted: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub when: When,
    pub operation: Operation,
    pub transition: Transition,
}

/// A notification whose environment cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotifyError(pub String);

/// An environment Pacemaker would not send.
impl crate::agent::EdgeError for NotifyError {
    const CODE: crate::exit::OcfExit = crate::exit::OcfExit::ErrArgs;
}

const PREFIX: &str = "OCF_RESKEY_CRM_meta_notify_";

fn names(env: &HashMap<String, String>, list: &str) -> Option<Vec<String>> {
    env.get(&format!("{PREFIX}{list}_uname"))
        .map(|v| v.split_whitespace().map(str::to_string).collect())
}

/// Pacemaker 2.1 passes both `promoted`/`unpromoted` and the legacy
/// `master`/`slave` lists; older ones only the latter.
fn names_or_legacy(env: &HashMap<String, String>, list: &str, legacy: &str) -> Vec<String> {
    names(env, list).or_else(|| names(env, legacy)).unwrap_or_default()
}

pub fn parse(env: &HashMap<String, String>) -> Result<Notification, NotifyError> {
    let get = |k: &str| env.get(&format!("{PREFIX}{k}")).map(|s| s.trim()).unwrap_or("");
    let named = |value: &str, w: &dyn std::fmt::Display| w.to_string() == value;
    let Some(when) = [When::Pre, When::Post].into_iter().find(|w| named(get("type"), w)) else {
        return Err(NotifyError(format!("unknown notification type \"{}\"", get("type"))));
    };
    let operations = [Operation::Start, Operation::Stop, Operation::Promote, Operation::Demote];
    let Some(operation) = operations.into_iter().find(|o| named(get("operation"), o)) else {
        let other = get("operation");
        return Err(NotifyError(format!("unknown notification operation \"{other}\"")));
    };
    let list = |l: &str| names(env, l).unwrap_or_default();
    Ok(Notification {
        when,
        operation,
        transition: Transition {
            start: list("start"),
            stop: list("stop"),
            promote: list("promote"),
            demote: list("demote"),
            active: list("active"),
            promoted: names_or_legacy(env, "promoted", "master"),
            unpromoted: names_or_legacy(env, "unpromoted", "slave"),
        },
    })
}

fn has(list: &[String], node: &str) -> bool {
    list.iter().any(|n| n == node)
}

impl Transition {
    /// The primary on `node` failed and Pacemaker recovers it in place
    /// (demote, stop, start, promote on the same node): no election needed.
    pub fn is_primary_recovery(&self, node: &str) -> bool {
        has(&self.promoted, node) && has(&self.promote, node)
    }

    /// The standby on `node` failed and is restarted in place.
    pub fn is_standby_recovery(&self, node: &str) -> bool {
        has(&self.unpromoted, node) && has(&self.start, node)
    }

    /// A controlled switchover to `node`: the one primary is demoted but
    /// stays up (not stopped), and `node`, a standby, is promoted. Returns
    /// the old primary.
    pub fn switchover_from(&self, node: &str) -> Option<&str> {
        let [old] = self.promoted.as_slice() else { return None };
        let ([demoted], [promoted]) = (self.demote.as_slice(), self.promote.as_slice()) else {
            return None;
        };
        (demoted == old
            && promoted == node
            && old != node
            && has(&self.unpromoted, node)
            && !has(&self.stop, old))
        .then_some(old.as_str())
    }

    /// Nodes whose standby takes part in an election: active or starting,
    /// and not stopping for good (a node stopped and started again, as
    /// after a failed probe of a node that comes back, counts).
    pub fn election_nodes(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .active
            .iter()
            .chain(self.start.iter())
            .filter(|n| !has(&self.stop, n) || has(&self.start, n))
            .cloned()
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::env_of;

    #[test]
    fn parses_lists_with_stray_spaces() {
        let n = parse(&env_of(
            PREFIX,
            &[
                ("type", "pre"),
                ("operation", "promote"),
                ("promote_uname", " srv2 "),
                ("promote_resource", "pgsqld:1 "),
                ("active_uname", "srv1  srv2 srv3 "),
                ("unpromoted_uname", "srv2 srv3"),
                ("promoted_uname", ""),
            ],
        ))
        .unwrap();
        assert_eq!((n.when, n.operation), (When::Pre, Operation::Promote));
        assert_eq!(n.transition.promote, vec!["srv2"]);
        assert_eq!(n.transition.active, vec!["srv1", "srv2", "srv3"]);
        assert!(n.transition.promoted.is_empty());
        assert!(n.transition.stop.is_empty());
    }

    #[test]
    fn legacy_names_are_used_when_new_ones_are_absent() {
        let n = parse(&env_of(
            PREFIX,
            &[
                ("type", "post"),
                ("operation", "demote"),
                ("master_uname", "a"),
                ("slave_uname", "b c"),
            ],
        ))
        .unwrap();
        assert_eq!(n.transition.promoted, vec!["a"]);
        assert_eq!(n.transition.unpromoted, vec!["b", "c"]);
        // New names win when present.
        let n = parse(&env_of(
            PREFIX,
            &[
                ("type", "post"),
                ("operation", "demote"),
                ("master_uname", "a"),
                ("promoted_uname", "z"),
            ],
        ))
        .unwrap();
        assert_eq!(n.transition.promoted, vec!["z"]);
    }

    #[test]
    fn unknown_type_or_operation_is_an_error() {
        assert!(parse(&env_of(PREFIX, &[("type", "during"), ("operation", "start")])).is_err());
        assert!(parse(&env_of(PREFIX, &[("type", "pre"), ("operation", "migrate")])).is_err());
        assert!(parse(&HashMap::new()).is_err());
    }

    /// The transition of a notification with these lists (`("demote",
    /// "srv1")`: `demote_uname=srv1`), read as Pacemaker passes them.
    fn t(lists: &[(&str, &str)]) -> Transition {
        let keys: Vec<(String, &str)> =
            lists.iter().map(|(l, v)| (format!("{l}_uname"), *v)).collect();
        let mut pairs: Vec<(&str, &str)> = vec![("type", "pre"), ("operation", "promote")];
        pairs.extend(keys.iter().map(|(k, v)| (k.as_str(), *v)));
        parse(&env_of(PREFIX, &pairs)).unwrap().transition
    }

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn classifies_recoveries() {
        let all_srv1 = ["promoted", "demote", "stop", "start", "promote"].map(|l| (l, "srv1"));
        let tr = t(&[&all_srv1[..], &[("unpromoted", "srv2 srv3")]].concat());
        assert!(tr.is_primary_recovery("srv1"));
        assert!(!tr.is_primary_recovery("srv2"));
        assert_eq!(tr.switchover_from("srv1"), None);
        let tr = t(&[("unpromoted", "srv2 srv3"), ("stop", "srv3"), ("start", "srv3")]);
        assert!(tr.is_standby_recovery("srv3"));
        assert!(!tr.is_standby_recovery("srv2"));
    }

    #[test]
    fn classifies_switchover_and_failover() {
        let base = [
            ("promoted", "srv1"),
            ("unpromoted", "srv2 srv3"),
            ("demote", "srv1"),
            ("promote", "srv2"),
            ("active", "srv1 srv2 srv3"),
        ];
        // The lists of `base` with `changes` (a list given again replaces it).
        let with = |changes: &[(&'static str, &'static str)]| t(&[&base[..], changes].concat());
        let switchover = with(&[]);
        assert_eq!(switchover.switchover_from("srv2"), Some("srv1"));
        assert_eq!(switchover.switchover_from("srv3"), None);
        // The old primary is stopped too: a failover, no shutdown checkpoint to expect.
        let failover = with(&[("stop", "srv1")]);
        assert_eq!(failover.switchover_from("srv2"), None);
        assert_eq!(failover.election_nodes(), v("srv2 srv3"));
        assert_eq!(switchover.election_nodes(), v("srv1 srv2 srv3"));
        // Two primaries (never with promoted-max=1) or no demote: not a switchover.
        assert_eq!(with(&[("promoted", "srv1 srv3")]).switchover_from("srv2"), None);
        assert_eq!(with(&[("demote", "")]).switchover_from("srv2"), None);
    }

    #[test]
    fn starting_nodes_join_the_election() {
        let tr = t(&[("active", "a"), ("start", "b a"), ("stop", "c")]);
        assert_eq!(tr.election_nodes(), v("a b"));
    }

    /// Every combination of one node's presence in the three lists.
    #[test]
    fn a_node_counts_unless_it_stops_for_good() {
        for bits in 0..8u8 {
            let (active, start, stop) = (bits & 1 != 0, bits & 2 != 0, bits & 4 != 0);
            let lists: Vec<(&str, &str)> = [("active", active), ("start", start), ("stop", stop)]
                .into_iter()
                .filter(|(_, listed)| *listed)
                .map(|(list, _)| (list, "x"))
                .collect();
            let counts = start || active && !stop;
            assert_eq!(
                t(&lists).election_nodes().len() == 1,
                counts,
                "active {active} start {start} stop {stop}"
            );
        }
    }

    proptest::proptest! {
        /// Lists as Pacemaker passes them (space-separated, extra spaces
        /// allowed) read back; the questions asked of them never panic.
        #[test]
        fn notification_lists_read_back(
            lists in proptest::collection::vec(proptest::collection::vec("[a-z0-9][a-z0-9.-]{0,8}", 0..4), 7),
            pad in "[ ]{1,3}",
            when in proptest::sample::select(vec!["pre", "post"]),
            op in proptest::sample::select(vec!["start", "stop", "promote", "demote"]),
        ) {
            let keys = ["start", "stop", "promote", "demote", "active", "promoted", "unpromoted"];
            let mut env: HashMap<String, String> = keys
                .iter()
                .zip(&lists)
                .map(|(k, l)| (format!("{PREFIX}{k}_uname"), format!("{pad}{}{pad}", l.join(&pad))))
                .collect();
            env.insert(format!("{PREFIX}type"), when.to_string());
            env.insert(format!("{PREFIX}operation"), op.to_string());
            let n = parse(&env).unwrap();
            let t = &n.transition;
            let got = [&t.start, &t.stop, &t.promote, &t.demote, &t.active, &t.promoted, &t.unpromoted];
            for (g, want) in got.iter().zip(&lists) {
                proptest::prop_assert_eq!(*g, want);
            }
            for node in lists.iter().flatten() {
                let _ = (t.is_primary_recovery(node), t.is_standby_recovery(node), t.switchover_from(node));
            }
            let _ = t.election_nodes();
        }

        #[test]
        fn any_environment_parses_or_fails_without_panic(
            env in proptest::collection::hash_map("OCF_RESKEY_CRM_meta_notify_[a-z_]{0,20}", "\\PC{0,30}", 0..8)
        ) {
            if let Ok(n) = parse(&env) {
                let _ = n.transition.election_nodes();
                let _ = n.transition.switchover_from("srv1");
            }
        }
    }
}
