//! Replication slots kept by the agent (parameter `replication_slots`):
//! one physical slot per other cluster node, on the primary and on every
//! standby, so that a node that is down keeps the WAL it needs (up to
//! `max_slot_wal_keep_size`), and a newly promoted primary already holds a
//! slot for every other node. Pure: names, and what to create, drop or
//! report from plain data; the queries are in `pg`, the actions in
//! `actions::slots`.

use crate::lsn::Lsn;
use std::collections::{BTreeMap, BTreeSet};

/// Every slot the agent owns starts with this: a slot without it is the
/// operator's, and never touched.
pub const PREFIX: &str = "pgsqlms_";
/// NAMEDATALEN - 1: PostgreSQL refuses longer slot names.
pub const MAX_LEN: usize = 63;
/// Characters of the hash that makes a lossy name unique.
const HASH_LEN: usize = 8;

/// FNV-1a, 32 bits: stable across versions and machines (the name must be
/// the same on every node), no crate needed for 8 hex digits.
fn fnv1a(b: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for x in b {
        h ^= u32::from(*x);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The slot of `node`: `pgsqlms_<node>` when the node name is already a
/// valid slot name (lower-case letters, digits, underscores) that fits;
/// otherwise the name with every other character as `_`, upper case
/// lowered, cut to fit, and `_<8 hex digits of a hash of the real name>`
/// so that `srv-1`, `srv_1` and `SRV_1` get three different slots.
/// Depends on the node name only: every node computes the same.
pub fn slot_name(node: &str) -> String {
    let room = MAX_LEN - PREFIX.len();
    let exact = !node.is_empty()
        && node.len() <= room
        && node.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if exact {
        return format!("{PREFIX}{node}");
    }
    let body: String = node
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { '_' }
        })
        .take(room - HASH_LEN - 1)
        .collect();
    format!("{PREFIX}{body}_{:0width$x}", fnv1a(node.as_bytes()), width = HASH_LEN)
}

/// Whether `name` is a slot the agent owns (made by `slot_name`).
pub fn is_owned(name: &str) -> bool {
    name.len() <= MAX_LEN
        && name.strip_prefix(PREFIX).is_some_and(|rest| {
            rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

/// One row of `pg_replication_slots`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub name: String,
    pub physical: bool,
    pub temporary: bool,
    pub active: bool,
    /// `reserved`, `extended`, `unreserved`, `lost`; None before a slot
    /// reserved WAL.
    pub wal_status: Option<String>,
    pub restart_lsn: Option<Lsn>,
}

impl Slot {
    pub fn lost(&self) -> bool {
        self.wal_status.as_deref() == Some("lost")
    }
}

/// What a node knows when it looks after its slots.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub me: &'a str,
    /// Cluster nodes (the CIB's `<nodes>`).
    pub nodes: &'a [String],
    pub slots: &'a [Slot],
    /// Since when (seconds since the epoch) each owned slot has been known
    /// to belong to no cluster node, as recorded by earlier looks.
    pub orphan_since: &'a BTreeMap<String, u64>,
    pub now: u64,
    /// Seconds an orphaned slot is kept before it is dropped.
    pub grace: u64,
    /// Nodes streaming from this one, with the position they wrote
    /// (`pg_stat_replication`); empty on a standby.
    pub streaming: &'a BTreeMap<String, Lsn>,
}

/// What to do, and what to say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Slots to create: (slot, node).
    pub create: Vec<(String, String)>,
    /// Slots to drop, with why.
    pub drop: Vec<(String, String)>,
    /// Invalidated slots (WAL gone) of cluster nodes: (slot, node). Those
    /// not in use are dropped and created again (in `drop` and `create`),
    /// so a rebuilt node finds a working slot.
    pub lost: Vec<(String, String)>,
    /// Nodes that get no slot, with why (names that collide, a slot of that
    /// name that is not a physical one).
    pub refused: Vec<(String, String)>,
    /// The record of orphaned slots to keep for the next look.
    pub orphan_since: BTreeMap<String, u64>,
    /// Slots to move forward: their node streams without using them (it
    /// started before replication_slots was turned on and was not
    /// restarted since), and an unused slot would keep WAL for nothing
    /// until it is invalidated.
    pub advance: Vec<(String, Lsn)>,
}

/// The slot each other node should have, and the nodes refused one because
/// their names give the same slot name.
pub fn wanted(me: &str, nodes: &[String]) -> (BTreeMap<String, String>, Vec<(String, String)>) {
    wanted_named(me, nodes, &slot_name)
}

type Namer<'a> = &'a dyn Fn(&str) -> String;

fn wanted_named(
    me: &str,
    nodes: &[String],
    name: Namer,
) -> (BTreeMap<String, String>, Vec<(String, String)>) {
    let mut by_slot: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for n in nodes {
        by_slot.entry(name(n)).or_default().insert(n.as_str());
    }
    let mut want = BTreeMap::new();
    let mut refused = Vec::new();
    for (slot, owners) in by_slot {
        if owners.len() > 1 {
            for n in owners.iter().filter(|n| **n != me) {
                let others: Vec<&str> = owners.iter().copied().filter(|o| o != n).collect();
                refused.push((
                    n.to_string(),
                    format!(
                        "node names {} and {} give the same slot name {slot}: no slot for either",
                        n,
                        others.join(", ")
                    ),
                ));
            }
            continue;
        }
        let n = owners.into_iter().next().expect("one owner");
        if n != me {
            want.insert(slot, n.to_string());
        }
    }
    (want, refused)
}

/// Which slots to create, drop and report. Rules:
/// - only slots named by `slot_name` (`is_owned`), physical and not
///   temporary, are ever dropped: anything else is the operator's;
/// - a slot in use is never dropped;
/// - a slot whose node left the cluster is dropped once it has been
///   unused and nodeless for `grace` seconds; this node's own slot (a node
///   never streams from itself) at once;
/// - with no usable node list (empty, or without this node) nothing is
///   dropped nor created: a broken view must not look like an empty cluster.
pub fn plan(f: &Facts) -> Plan {
    plan_named(f, &slot_name)
}

/// `plan` with the naming rule given: the tests make names collide, which
/// real node names only do through a hash collision.
fn plan_named(f: &Facts, name: Namer) -> Plan {
    let mut p = Plan::default();
    if f.nodes.is_empty() || !f.nodes.iter().any(|n| n == f.me) {
        p.orphan_since = f.orphan_since.clone();
        return p;
    }
    let (want, refused) = wanted_named(f.me, f.nodes, name);
    p.refused = refused;
    let by_name: BTreeMap<&str, &Slot> = f.slots.iter().map(|s| (s.name.as_str(), s)).collect();
    for (slot, node) in &want {
        match by_name.get(slot.as_str()) {
            None => p.create.push((slot.clone(), node.clone())),
            Some(s) if !s.physical || s.temporary => p.refused.push((
                node.clone(),
                format!("a {} slot named {slot} exists: not using it", kind(s)),
            )),
            Some(s) if s.lost() => {
                p.lost.push((slot.clone(), node.clone()));
                if !s.active {
                    p.drop.push((
                        slot.clone(),
                        format!("invalidated (WAL beyond max_slot_wal_keep_size): created again for {node}"),
                    ));
                    p.create.push((slot.clone(), node.clone()));
                }
            }
            Some(s) => {
                if let Some(at) = f.streaming.get(node)
                    && !s.active
                    && s.restart_lsn.is_some_and(|r| r < *at)
                {
                    p.advance.push((slot.clone(), *at));
                }
            }
        }
    }
    let mine = name(f.me);
    for s in f.slots {
        if !is_owned(&s.name) || !s.physical || s.temporary || want.contains_key(&s.name) {
            continue;
        }
        // Names refused for a collision are not orphans: the nodes exist.
        if f.nodes.iter().any(|n| n != f.me && name(n) == s.name) {
            continue;
        }
        if s.active {
            continue;
        }
        if s.name == mine {
            p.drop.push((
                s.name.clone(),
                "slot of this very node, which never streams from itself".into(),
            ));
            continue;
        }
        let since = f.orphan_since.get(&s.name).copied().unwrap_or(f.now).min(f.now);
        if f.now - since >= f.grace {
            p.drop.push((
                s.name.clone(),
                format!(
                    "its node left the cluster, unused for {} s (grace {} s)",
                    f.now - since,
                    f.grace
                ),
            ));
        } else {
            p.orphan_since.insert(s.name.clone(), since);
        }
    }
    p
}

fn kind(s: &Slot) -> &'static str {
    match (s.physical, s.temporary) {
        (true, true) => "temporary physical",
        (false, true) => "temporary logical",
        (false, false) => "logical",
        (true, false) => "physical",
    }
}

/// The value each node's "slot lost" attribute should have, from what the
/// primary sees: set (to the slot's name) while its slot is invalidated,
/// kept until the node streams again (a recreated slot does not bring the
/// WAL back: the node needs a rebuild), removed then. Returns the changes:
/// (node, Some(value)) to write, (node, None) to remove.
pub fn lost_attr_changes(
    me: &str,
    nodes: &[String],
    lost: &[(String, String)],
    streaming: &[String],
    current: &BTreeMap<String, String>,
) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for n in nodes.iter().filter(|n| n.as_str() != me) {
        let now_lost = lost.iter().find(|(_, node)| node == n).map(|(slot, _)| slot.clone());
        let cur = current.get(n).cloned();
        let want = match now_lost {
            Some(slot) => Some(slot),
            None if streaming.iter().any(|s| s == n) => None,
            None => cur.clone(),
        };
        if want != cur {
            out.push((n.clone(), want));
        }
    }
    out
}

/// The orphan record as kept in a file: `<slot> <since>` per line. Lines
/// that do not read are skipped (the grace starts again for them).
pub fn parse_orphans(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (name, since) = l.trim().split_once(' ')?;
            let since = since.trim().parse().ok()?;
            is_owned(name).then(|| (name.to_string(), since))
        })
        .collect()
}

pub fn format_orphans(m: &BTreeMap<String, u64>) -> String {
    m.iter().map(|(n, s)| format!("{n} {s}\n")).collect()
}

/// `max_slot_wal_keep_size` as `postgres -C` prints it ("-1", "0",
/// "10GB", "1024MB"): whether it bounds what a slot keeps (> 0).
pub fn keep_size_is_bounded(value: &str) -> Option<bool> {
    let v = value.trim();
    let digits_end = v
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || (*i == 0 && *c == '-')))
        .map(|(i, _)| i)
        .unwrap_or(v.len());
    let n: i64 = v[..digits_end].parse().ok()?;
    let unit = v[digits_end..].trim();
    if !matches!(unit, "" | "kB" | "MB" | "GB" | "TB") {
        return None;
    }
    Some(n > 0)
}

/// Why a standby's WAL receiver cannot stream, as its server log says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotStreaming {
    /// The upstream already removed this segment: without a slot (or with
    /// an invalidated one) this standby can never catch up by streaming.
    SegmentRemoved(String),
    /// The upstream has no slot of that name (yet).
    NoSlot(String),
}

/// The last reason in `log` (the tail of a standby's server log) why its
/// WAL receiver could not stream, unless it streamed again after it.
pub fn why_not_streaming(log: &str) -> Option<NotStreaming> {
    let mut last = None;
    for line in log.lines() {
        // Streaming since, or failing for another reason now (no primary
        // to talk to): an older line is not why.
        if line.contains("started streaming WAL")
            || line.contains("could not connect to the primary server")
        {
            last = None;
        } else if let Some(rest) = line.split("requested WAL segment ").nth(1)
            && rest.contains("has already been removed")
        {
            let seg: String = rest.chars().take_while(char::is_ascii_hexdigit).collect();
            if seg.len() == 24 {
                last = Some(NotStreaming::SegmentRemoved(seg));
            }
        } else if let Some(rest) = line.split("replication slot \"").nth(1)
            && let Some((name, tail)) = rest.split_once('"')
            && tail.trim_start().starts_with("does not exist")
        {
            last = Some(NotStreaming::NoSlot(name.chars().take(MAX_LEN).collect()));
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn valid_slot_name(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= MAX_LEN
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    }

    #[test]
    fn names_that_are_valid_stay_readable() {
        assert_eq!(slot_name("srv1"), "pgsqlms_srv1");
        assert_eq!(slot_name("node_2"), "pgsqlms_node_2");
        let long = "a".repeat(55);
        assert_eq!(slot_name(&long), format!("pgsqlms_{long}"));
        assert_eq!(slot_name(&long).len(), 63);
    }

    #[test]
    fn lossy_names_carry_a_hash() {
        let a = slot_name("srv-1");
        let b = slot_name("srv_1");
        let c = slot_name("SRV_1");
        assert!(a.starts_with("pgsqlms_srv_1_") && a.len() == "pgsqlms_srv_1_".len() + 8, "{a}");
        assert_eq!(b, "pgsqlms_srv_1");
        assert!(c.starts_with("pgsqlms_srv_1_"), "{c}");
        assert!(a != b && b != c && a != c);
        let long = slot_name(&"x".repeat(56));
        assert_eq!(long.len(), 63);
        assert_ne!(long, slot_name(&"x".repeat(57)));
        assert!(slot_name("db1.example.com").starts_with("pgsqlms_db1_example_com_"));
        assert!(valid_slot_name(&slot_name("")) && valid_slot_name(&slot_name("ü")));
    }

    #[test]
    fn ownership_is_by_prefix_and_charset() {
        assert!(is_owned("pgsqlms_srv1"));
        assert!(!is_owned("srv1"));
        assert!(!is_owned("pgsqlms_Srv1"));
        assert!(!is_owned("my_pgsqlms_srv1"));
        assert!(!is_owned(&format!("pgsqlms_{}", "a".repeat(56))));
    }

    proptest! {
        #[test]
        fn any_node_name_gives_a_valid_owned_slot_name(node in "\\PC{0,80}") {
            let s = slot_name(&node);
            prop_assert!(valid_slot_name(&s), "{}", s);
            prop_assert!(is_owned(&s));
            prop_assert_eq!(slot_name(&node), s);
        }

        #[test]
        fn distinct_node_names_give_distinct_slots(
            a in "[a-zA-Z0-9_.-]{1,70}",
            b in "[a-zA-Z0-9_.-]{1,70}",
        ) {
            prop_assume!(a != b);
            prop_assert_ne!(slot_name(&a), slot_name(&b));
        }

        #[test]
        fn valid_names_map_exactly(n in "[a-z0-9_]{1,55}") {
            prop_assert_eq!(slot_name(&n), format!("pgsqlms_{n}"));
        }

        #[test]
        fn orphan_records_never_panic(s in "\\PC*") {
            let _ = parse_orphans(&s);
        }

        #[test]
        fn server_logs_never_panic(s in "(requested WAL segment |has already been removed|replication slot \"|\" does not exist|\n|\\PC)*") {
            let _ = why_not_streaming(&s);
        }

        #[test]
        fn keep_size_never_panics(s in "\\PC*") {
            let _ = keep_size_is_bounded(&s);
        }
    }

    fn slot(name: &str) -> Slot {
        Slot {
            name: name.into(),
            physical: true,
            temporary: false,
            active: false,
            wal_status: Some("reserved".into()),
            restart_lsn: Some(Lsn(0x3000000)),
        }
    }

    fn nodes(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    static NOBODY: BTreeMap<String, Lsn> = BTreeMap::new();

    fn facts<'a>(
        me: &'a str,
        nodes: &'a [String],
        slots: &'a [Slot],
        orphans: &'a BTreeMap<String, u64>,
    ) -> Facts<'a> {
        Facts { me, nodes, slots, orphan_since: orphans, now: 1000, grace: 300, streaming: &NOBODY }
    }

    #[test]
    fn slots_of_nodes_streaming_without_them_follow_them() {
        let ns = nodes(&["srv1", "srv2", "srv3"]);
        let none = BTreeMap::new();
        let mut used = slot("pgsqlms_srv3");
        used.active = true;
        let have = [slot("pgsqlms_srv2"), used];
        let mut streaming = BTreeMap::new();
        streaming.insert("srv2".to_string(), Lsn(0x5000000));
        streaming.insert("srv3".to_string(), Lsn(0x5000000));
        let mut f = facts("srv1", &ns, &have, &none);
        f.streaming = &streaming;
        assert_eq!(plan(&f).advance, vec![("pgsqlms_srv2".to_string(), Lsn(0x5000000))]);
        // Never backwards.
        streaming.insert("srv2".to_string(), Lsn(0x1000000));
        let mut f = facts("srv1", &ns, &have, &none);
        f.streaming = &streaming;
        assert!(plan(&f).advance.is_empty());
    }

    #[test]
    fn creates_a_slot_for_every_other_node() {
        let ns = nodes(&["srv1", "srv2", "srv3"]);
        let none = BTreeMap::new();
        let p = plan(&facts("srv1", &ns, &[], &none));
        assert_eq!(
            p.create,
            vec![
                ("pgsqlms_srv2".to_string(), "srv2".to_string()),
                ("pgsqlms_srv3".to_string(), "srv3".to_string())
            ]
        );
        assert!(p.drop.is_empty() && p.lost.is_empty() && p.refused.is_empty());
        // Nothing to do when they are there: the monitor's usual case.
        let have = [slot("pgsqlms_srv2"), slot("pgsqlms_srv3")];
        assert_eq!(plan(&facts("srv1", &ns, &have, &none)), Plan::default());
    }

    #[test]
    fn a_broken_node_list_changes_nothing() {
        let have = [slot("pgsqlms_srv2"), slot("pgsqlms_old")];
        let mut rec = BTreeMap::new();
        rec.insert("pgsqlms_old".to_string(), 1u64);
        for ns in [nodes(&[]), nodes(&["srv2", "srv3"])] {
            let p = plan(&facts("srv1", &ns, &have, &rec));
            assert!(p.create.is_empty() && p.drop.is_empty(), "{ns:?}: {p:?}");
            assert_eq!(p.orphan_since, rec);
        }
    }

    #[test]
    fn orphans_are_dropped_after_the_grace_only() {
        let ns = nodes(&["srv1", "srv2"]);
        let have = [slot("pgsqlms_srv2"), slot("pgsqlms_srv3")];
        let none = BTreeMap::new();
        // First seen: recorded, kept.
        let p = plan(&facts("srv1", &ns, &have, &none));
        assert!(p.drop.is_empty());
        assert_eq!(p.orphan_since.get("pgsqlms_srv3"), Some(&1000));
        // Within the grace: kept, same record.
        let mut rec = BTreeMap::new();
        rec.insert("pgsqlms_srv3".to_string(), 800u64);
        let p = plan(&facts("srv1", &ns, &have, &rec));
        assert!(p.drop.is_empty());
        assert_eq!(p.orphan_since, rec);
        // Past it: dropped, forgotten.
        rec.insert("pgsqlms_srv3".to_string(), 700u64);
        let p = plan(&facts("srv1", &ns, &have, &rec));
        assert_eq!(p.drop.len(), 1);
        assert_eq!(p.drop[0].0, "pgsqlms_srv3");
        assert!(p.orphan_since.is_empty());
        // Grace 0: at once. A record from the future (clock change) restarts it.
        let mut f = facts("srv1", &ns, &have, &none);
        f.grace = 0;
        assert_eq!(plan(&f).drop.len(), 1);
        rec.insert("pgsqlms_srv3".to_string(), 5000u64);
        let p = plan(&facts("srv1", &ns, &have, &rec));
        assert!(p.drop.is_empty());
        assert_eq!(p.orphan_since.get("pgsqlms_srv3"), Some(&1000));
    }

    #[test]
    fn records_of_slots_gone_or_back_are_forgotten() {
        let ns = nodes(&["srv1", "srv2"]);
        let mut rec = BTreeMap::new();
        rec.insert("pgsqlms_srv2".to_string(), 1u64);
        rec.insert("pgsqlms_gone".to_string(), 1u64);
        let have = [slot("pgsqlms_srv2")];
        assert!(plan(&facts("srv1", &ns, &have, &rec)).orphan_since.is_empty());
    }

    #[test]
    fn never_drops_what_is_not_ours_or_in_use() {
        let ns = nodes(&["srv1", "srv2"]);
        let mut active = slot("pgsqlms_srv3");
        active.active = true;
        let mut logical = slot("pgsqlms_srv4");
        logical.physical = false;
        let mut temp = slot("pgsqlms_srv5");
        temp.temporary = true;
        let have = [
            slot("pgsqlms_srv2"),
            slot("operator_slot"),
            slot("barman"),
            slot("PGSQLMS_x"),
            active,
            logical,
            temp,
        ];
        let mut rec = BTreeMap::new();
        for s in &have {
            rec.insert(s.name.clone(), 0u64);
        }
        let p = plan(&facts("srv1", &ns, &have, &rec));
        assert!(p.drop.is_empty(), "{p:?}");
        assert!(p.orphan_since.is_empty(), "{p:?}");
    }

    #[test]
    fn own_slot_is_dropped_at_once_unless_in_use() {
        let ns = nodes(&["srv1", "srv2"]);
        let none = BTreeMap::new();
        let have = [slot("pgsqlms_srv1"), slot("pgsqlms_srv2")];
        let p = plan(&facts("srv1", &ns, &have, &none));
        assert_eq!(p.drop.len(), 1);
        assert_eq!(p.drop[0].0, "pgsqlms_srv1");
        let mut busy = slot("pgsqlms_srv1");
        busy.active = true;
        assert!(plan(&facts("srv1", &ns, &[busy, slot("pgsqlms_srv2")], &none)).drop.is_empty());
    }

    #[test]
    fn lost_slots_are_reported_and_made_again_when_unused() {
        let ns = nodes(&["srv1", "srv2", "srv3"]);
        let none = BTreeMap::new();
        let mut lost = slot("pgsqlms_srv2");
        lost.wal_status = Some("lost".into());
        lost.restart_lsn = None;
        let p = plan(&facts("srv1", &ns, &[lost.clone(), slot("pgsqlms_srv3")], &none));
        assert_eq!(p.lost, vec![("pgsqlms_srv2".to_string(), "srv2".to_string())]);
        assert_eq!(p.drop.iter().map(|d| d.0.as_str()).collect::<Vec<_>>(), ["pgsqlms_srv2"]);
        assert_eq!(p.create, vec![("pgsqlms_srv2".to_string(), "srv2".to_string())]);
        lost.active = true;
        let p = plan(&facts("srv1", &ns, &[lost, slot("pgsqlms_srv3")], &none));
        assert_eq!(p.lost.len(), 1);
        assert!(p.drop.is_empty() && p.create.is_empty());
    }

    #[test]
    fn colliding_names_get_no_slot_and_are_not_orphans() {
        // Real node names collide only through a hash collision: a naming
        // rule that lowers case stands in for one.
        let lower = |n: &str| format!("pgsqlms_{}", n.to_ascii_lowercase());
        let ns = nodes(&["srv1", "srv2", "SRV2", "srv3"]);
        let (want, refused) = wanted_named("srv1", &ns, &lower);
        assert_eq!(want.keys().collect::<Vec<_>>(), ["pgsqlms_srv3"]);
        assert_eq!(refused.len(), 2);
        assert!(refused.iter().all(|r| r.1.contains("pgsqlms_srv2")), "{refused:?}");
        let none = BTreeMap::new();
        let have = [slot("pgsqlms_srv2"), slot("pgsqlms_srv3")];
        let p = plan_named(&facts("srv1", &ns, &have, &none), &lower);
        assert!(p.create.is_empty() && p.drop.is_empty() && p.orphan_since.is_empty(), "{p:?}");
        assert_eq!(p.refused.len(), 2);
        // This node colliding with another: the other gets no slot either.
        let ns = nodes(&["srv1", "SRV1"]);
        let (want, refused) = wanted_named("srv1", &ns, &lower);
        assert!(want.is_empty());
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].0, "SRV1");
    }

    #[test]
    fn a_foreign_slot_of_the_same_name_is_not_used() {
        let ns = nodes(&["srv1", "srv2"]);
        let none = BTreeMap::new();
        let mut logical = slot("pgsqlms_srv2");
        logical.physical = false;
        let p = plan(&facts("srv1", &ns, &[logical], &none));
        assert!(p.create.is_empty() && p.drop.is_empty());
        assert!(p.refused[0].1.contains("logical"), "{p:?}");
    }

    #[test]
    fn lost_attribute_stays_until_the_node_streams() {
        let ns = nodes(&["srv1", "srv2", "srv3"]);
        let lost = vec![("pgsqlms_srv2".to_string(), "srv2".to_string())];
        let mut cur = BTreeMap::new();
        assert_eq!(
            lost_attr_changes("srv1", &ns, &lost, &[], &cur),
            vec![("srv2".to_string(), Some("pgsqlms_srv2".to_string()))]
        );
        cur.insert("srv2".to_string(), "pgsqlms_srv2".to_string());
        assert!(lost_attr_changes("srv1", &ns, &lost, &[], &cur).is_empty());
        // Recreated (not lost any more) but not streaming: kept.
        assert!(lost_attr_changes("srv1", &ns, &[], &[], &cur).is_empty());
        // Streaming again: removed.
        assert_eq!(
            lost_attr_changes("srv1", &ns, &[], &["srv2".to_string()], &cur),
            vec![("srv2".to_string(), None)]
        );
        // Never about this node itself, nor nodes outside the cluster.
        cur.insert("srv1".to_string(), "x".to_string());
        cur.insert("old".to_string(), "x".to_string());
        assert!(lost_attr_changes("srv1", &ns, &[], &[], &cur).is_empty());
    }

    #[test]
    fn orphan_records_round_trip() {
        let mut m = BTreeMap::new();
        m.insert("pgsqlms_a".to_string(), 12u64);
        m.insert("pgsqlms_b_1".to_string(), 0u64);
        assert_eq!(parse_orphans(&format_orphans(&m)), m);
        assert!(parse_orphans("operator 12\npgsqlms_x notanumber\n\n").is_empty());
    }

    #[test]
    fn server_log_says_why_a_standby_does_not_stream() {
        let removed = "2026-12-01 02:00:00.000 UTC [123] FATAL:  could not receive data from WAL stream: ERROR:  requested WAL segment 000000010000000000000003 has already been removed\n";
        let started = "2026-12-01 02:00:05.000 UTC [124] LOG:  started streaming WAL from primary at 0/4000000 on timeline 1\n";
        let noslot = "2026-12-01 02:00:01.000 UTC [125] FATAL:  could not start WAL streaming: ERROR:  replication slot \"pgsqlms_srv2\" does not exist\n";
        assert_eq!(
            why_not_streaming(removed),
            Some(NotStreaming::SegmentRemoved("000000010000000000000003".into()))
        );
        assert_eq!(why_not_streaming(&format!("{removed}{started}")), None);
        let refused = "2026-12-01 02:00:09.000 UTC [126] FATAL:  could not connect to the primary server: connection to server at \"10.0.0.1\", port 5432 failed: Connection refused\n";
        assert_eq!(why_not_streaming(&format!("{removed}{refused}")), None);
        assert_eq!(
            why_not_streaming(&format!("{started}{removed}")),
            Some(NotStreaming::SegmentRemoved("000000010000000000000003".into()))
        );
        assert_eq!(
            why_not_streaming(&format!("{removed}{noslot}")),
            Some(NotStreaming::NoSlot("pgsqlms_srv2".into()))
        );
        assert_eq!(why_not_streaming("requested WAL segment 0003 has already been removed"), None);
        assert_eq!(why_not_streaming(""), None);
    }

    #[test]
    fn keep_size_values() {
        assert_eq!(keep_size_is_bounded("-1"), Some(false));
        assert_eq!(keep_size_is_bounded("0"), Some(false));
        assert_eq!(keep_size_is_bounded("10GB"), Some(true));
        assert_eq!(keep_size_is_bounded("1024MB"), Some(true));
        assert_eq!(keep_size_is_bounded(" 64MB\n"), Some(true));
        assert_eq!(keep_size_is_bounded("lots"), None);
        assert_eq!(keep_size_is_bounded("10 parsecs"), None);
    }
}
