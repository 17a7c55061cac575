//! What `crm_mon --output-as=xml` says about the cluster, for the status view
//! and the health service. Pure: the XML is gathered at the edge. Only the
//! XML form is read: crm_mon's text output changes between releases.

use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClusterStatus {
    pub dc: Option<String>,
    pub quorum: bool,
    pub maintenance_mode: bool,
    pub stonith_enabled: bool,
    pub nodes: Vec<NodeStatus>,
    /// Instances of the watched resource, by node.
    pub instances: BTreeMap<String, Instance>,
    /// Other primitives (a VIP...): id, agent, nodes where active.
    pub others: Vec<Primitive>,
    /// Node attributes (promotion scores among them), by node.
    pub attributes: BTreeMap<String, BTreeMap<String, String>>,
    pub failures: Vec<FailedOp>,
    pub fencing: Vec<FenceEvent>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub online: bool,
    pub standby: bool,
    pub maintenance: bool,
    pub unclean: bool,
    pub pending: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Instance {
    /// Promoted, Unpromoted, Started, Stopped... (Master/Slave from older
    /// Pacemakers are normalised to Promoted/Unpromoted).
    pub role: String,
    pub failed: bool,
    pub managed: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Primitive {
    pub id: String,
    pub agent: String,
    pub nodes: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FailedOp {
    pub node: String,
    pub op_key: String,
    pub task: String,
    pub exit_status: String,
    pub exit_reason: String,
    pub last_rc_change: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FenceEvent {
    pub target: String,
    pub action: String,
    pub status: String,
    pub completed: String,
}

fn attr(e: &BytesStart, name: &str) -> Option<String> {
    e.attributes().flatten().find(|a| AsRef::<str>::as_ref(&a.key) == name).and_then(|a| {
        a.normalized_value(quick_xml::XmlVersion::Implicit1_0).ok().map(|v| v.into_owned())
    })
}

fn flag(e: &BytesStart, name: &str) -> bool {
    attr(e, name).as_deref() == Some("true")
}

fn normalise_role(role: &str) -> String {
    match role {
        "Master" => "Promoted".into(),
        "Slave" => "Unpromoted".into(),
        r => r.into(),
    }
}

/// `resource` is the primitive's id (e.g. `pgsqld`); its clone instances
/// appear as `pgsqld` (anonymous clones) or `pgsqld:N`.
pub fn parse(xml: &str, resource: &str) -> Result<ClusterStatus, String> {
    let mut reader = Reader::from_str(xml);
    let mut st = ClusterStatus::default();
    let mut path: Vec<String> = Vec::new();
    // The primitive we are inside (<resource> ... <node/> ... </resource>).
    let mut current: Option<(String, String, String, bool, bool)> = None;
    let mut current_has_node = false;
    let mut attr_node: Option<String> = None;
    // Instances of ours listed with a role but without a node, and the
    // pending operations of ours in the node history (see `place_pending`).
    let mut nodeless: Vec<String> = Vec::new();
    let mut pending: Vec<(String, String)> = Vec::new();
    let mut hist_node: Option<String> = None;
    let mut hist_ours = false;
    let close = |current: &mut Option<(String, String, String, bool, bool)>,
                 has_node: bool,
                 nodeless: &mut Vec<String>| {
        if let Some((id, _, role, _, _)) = current.take()
            && !has_node
            && id.split(':').next() == Some(resource)
            && role != "Stopped"
        {
            nodeless.push(role);
        }
    };
    loop {
        let ev =
            reader.read_event().map_err(|e| format!("crm_mon output is not valid XML: {e}"))?;
        let (e, empty) = match &ev {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(_) => {
                if let Some(name) = path.pop() {
                    match name.as_str() {
                        "resource" => close(&mut current, current_has_node, &mut nodeless),
                        "node" if path.last().map(String::as_str) == Some("node_attributes") => {
                            attr_node = None
                        }
                        "node" if path.last().map(String::as_str) == Some("node_history") => {
                            hist_node = None
                        }
                        "resource_history" => hist_ours = false,
                        _ => {}
                    }
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let name = AsRef::<str>::as_ref(&e.name()).to_string();
        let parent = path.last().map(String::as_str).unwrap_or("");
        match (parent, name.as_str()) {
            ("summary", "current_dc") if flag(e, "present") => {
                st.dc = attr(e, "name");
                st.quorum = flag(e, "with_quorum");
            }
            ("summary", "cluster_options") => {
                st.maintenance_mode = flag(e, "maintenance-mode");
                st.stonith_enabled = flag(e, "stonith-enabled");
            }
            ("nodes", "node") => st.nodes.push(NodeStatus {
                name: attr(e, "name").unwrap_or_default(),
                online: flag(e, "online"),
                standby: flag(e, "standby"),
                maintenance: flag(e, "maintenance"),
                unclean: flag(e, "unclean"),
                pending: flag(e, "pending"),
            }),
            (_, "resource") if path.iter().any(|p| p == "resources") => {
                let id = attr(e, "id").unwrap_or_default();
                let agent = attr(e, "resource_agent").unwrap_or_default();
                let role = normalise_role(&attr(e, "role").unwrap_or_default());
                let failed = flag(e, "failed");
                let managed = flag(e, "managed");
                let ours = id.split(':').next() == Some(resource);
                if !ours && parent != "clone" {
                    st.others.push(Primitive {
                        id: id.clone(),
                        agent: agent.clone(),
                        nodes: vec![],
                    });
                }
                current = Some((id, agent, role, failed, managed));
                current_has_node = false;
            }
            ("resource", "node") => {
                current_has_node = true;
                if let (Some((id, _, role, failed, managed)), Some(node)) =
                    (&current, attr(e, "name"))
                {
                    if id.split(':').next() == Some(resource) {
                        st.instances.insert(
                            node,
                            Instance { role: role.clone(), failed: *failed, managed: *managed },
                        );
                    } else if let Some(p) = st.others.iter_mut().rev().find(|p| &p.id == id) {
                        p.nodes.push(node);
                    }
                }
            }
            ("node_attributes", "node") => attr_node = attr(e, "name"),
            ("node", "attribute") if path.iter().any(|p| p == "node_attributes") => {
                if let (Some(node), Some(n), Some(v)) =
                    (&attr_node, attr(e, "name"), attr(e, "value"))
                {
                    st.attributes.entry(node.clone()).or_default().insert(n, v);
                }
            }
            ("failures", "failure") => st.failures.push(FailedOp {
                node: attr(e, "node").unwrap_or_default(),
                op_key: attr(e, "op_key").or_else(|| attr(e, "id")).unwrap_or_default(),
                task: attr(e, "task").unwrap_or_default(),
                exit_status: attr(e, "exitstatus").unwrap_or_default(),
                // Pacemaker escapes the stored reason once more.
                exit_reason: attr(e, "exitreason")
                    .map(|r| quick_xml::escape::unescape(&r).map(|u| u.into_owned()).unwrap_or(r))
                    .unwrap_or_default(),
                last_rc_change: attr(e, "last-rc-change").unwrap_or_default(),
            }),
            ("node_history", "node") => hist_node = attr(e, "name"),
            ("node", "resource_history") if hist_node.is_some() => {
                hist_ours = attr(e, "id").is_some_and(|i| i.split(':').next() == Some(resource));
            }
            ("resource_history", "operation_history") if hist_ours => {
                // 193: Pacemaker's "pending" result (record-pending).
                if let (Some(node), Some("193"), Some(task)) =
                    (&hist_node, attr(e, "rc").as_deref(), attr(e, "task"))
                {
                    pending.push((node.clone(), task));
                }
            }
            ("fence_history", "fence_event") => st.fencing.push(FenceEvent {
                target: attr(e, "target").unwrap_or_default(),
                action: attr(e, "action").unwrap_or_default(),
                status: attr(e, "status").unwrap_or_default(),
                completed: attr(e, "completed").unwrap_or_default(),
            }),
            _ => {}
        }
        if !empty {
            path.push(name);
        } else if name == "resource" {
            close(&mut current, current_has_node, &mut nodeless);
        }
    }
    if path.is_empty() && st.dc.is_none() && st.nodes.is_empty() {
        return Err("crm_mon output has no cluster summary or nodes".into());
    }
    place_pending(&mut st.instances, nodeless, &pending);
    Ok(st)
}

/// The role Pacemaker shows while `task` runs.
fn pending_role(task: &str) -> Option<&'static str> {
    Some(match task {
        "start" => "Starting",
        "stop" => "Stopping",
        "promote" => "Promoting",
        "demote" => "Demoting",
        "migrate_to" | "migrate_from" => "Migrating",
        _ => return None,
    })
}

/// crm_mon (2.1 and 3.0) may list an instance whose action is pending
/// without its node (`role="Demoting" nodes_running_on="0"`): read alone,
/// the node being demoted would look stopped. The node history names the
/// node with that pending operation; give the instance back to it.
fn place_pending(
    instances: &mut BTreeMap<String, Instance>,
    mut nodeless: Vec<String>,
    pending: &[(String, String)],
) {
    for (node, task) in pending {
        if instances.contains_key(node) {
            continue;
        }
        let Some(role) = pending_role(task) else { continue };
        if let Some(i) = nodeless.iter().position(|r| r == role) {
            nodeless.swap_remove(i);
            instances.insert(
                node.clone(),
                Instance { role: role.to_string(), failed: false, managed: true },
            );
        }
    }
}

impl ClusterStatus {
    /// The node where the watched resource is promoted (the first, if
    /// Pacemaker reports more than one).
    pub fn primary(&self) -> Option<&str> {
        self.instances.iter().find(|(_, i)| i.role == "Promoted").map(|(n, _)| n.as_str())
    }

    pub fn promoted_count(&self) -> usize {
        self.instances.values().filter(|i| i.role == "Promoted").count()
    }

    pub fn score(&self, node: &str, resource: &str) -> Option<i32> {
        let v = self.attributes.get(node)?.get(&format!("master-{resource}"))?;
        Some(crate::cib::parse_score(v))
    }

    /// Last fencing event (by completion time, ISO-like strings sort).
    pub fn last_fence(&self) -> Option<&FenceEvent> {
        self.fencing.iter().max_by(|a, b| a.completed.cmp(&b.completed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const SAMPLE: &str = include_str!("../tests/fixtures/crm_mon/healthy.xml");

    #[test]
    fn healthy_cluster() {
        let st = parse(SAMPLE, "pgsqld").unwrap();
        assert_eq!(st.dc.as_deref(), Some("srv2"));
        assert!(st.quorum);
        assert!(!st.maintenance_mode);
        assert_eq!(st.nodes.len(), 3);
        assert_eq!(st.primary(), Some("srv1"));
        assert_eq!(st.promoted_count(), 1);
        assert_eq!(st.instances["srv2"].role, "Unpromoted");
        assert_eq!(st.score("srv1", "pgsqld"), Some(1001));
        assert_eq!(st.score("srv3", "pgsqld"), Some(990));
        let vip = st.others.iter().find(|p| p.id == "pgsql-vip").unwrap();
        assert_eq!(vip.nodes, vec!["srv1".to_string()]);
    }

    #[test]
    fn legacy_role_names_are_normalised() {
        let xml =
            SAMPLE.replace("\"Promoted\"", "\"Master\"").replace("\"Unpromoted\"", "\"Slave\"");
        let st = parse(&xml, "pgsqld").unwrap();
        assert_eq!(st.primary(), Some("srv1"));
        assert_eq!(st.instances["srv3"].role, "Unpromoted");
    }

    #[test]
    fn failures_and_fencing() {
        let xml = r#"<pacemaker-result><summary><current_dc present="false"/></summary>
<nodes><node name="a" online="false" unclean="true"/></nodes>
<failures><failure op_key="pgsqld_monitor_5000" node="a" exitstatus="not running" exitreason="PostgreSQL crashed: control file says &amp;quot;in production&amp;quot;" exitcode="7" call="9" status="complete" last-rc-change="2026-11-30 10:00:00 +00:00" task="monitor"/></failures>
<fence_history><fence_event action="reboot" target="a" status="success" completed="2026-11-30 10:00:05Z"/><fence_event action="off" target="b" status="success" completed="2026-11-30 09:00:05Z"/></fence_history>
</pacemaker-result>"#;
        let st = parse(xml, "pgsqld").unwrap();
        assert!(st.dc.is_none());
        assert!(!st.quorum);
        assert!(st.nodes[0].unclean);
        assert_eq!(
            st.failures[0].exit_reason,
            "PostgreSQL crashed: control file says \"in production\""
        );
        assert_eq!(st.last_fence().unwrap().target, "a");
        assert_eq!(st.primary(), None);
    }

    /// Taken from the cluster (PostgreSQL 18, s40) during a switchover:
    /// srv2's demote is pending and crm_mon lists it without a node.
    const PENDING_DEMOTE: &str = include_str!("../tests/fixtures/crm_mon/pending-demote.xml");

    #[test]
    fn a_pending_instance_listed_without_its_node_is_placed_by_its_history() {
        let st = parse(PENDING_DEMOTE, "pgsqld").unwrap();
        assert_eq!(st.instances["srv2"].role, "Demoting");
        assert_eq!(st.instances["srv1"].role, "Unpromoted");
        assert_eq!(st.instances["srv3"].role, "Unpromoted");
        assert_eq!(st.primary(), None);
        // Without the pending record the instance stays unplaced, never
        // guessed onto a node.
        let no_history = PENDING_DEMOTE.replace("rc=\"193\"", "rc=\"0\"");
        let st = parse(&no_history, "pgsqld").unwrap();
        assert!(!st.instances.contains_key("srv2"));
    }

    #[test]
    fn place_pending_matches_role_to_task() {
        let mut inst = BTreeMap::new();
        let a = Instance { role: "Unpromoted".into(), failed: false, managed: true };
        inst.insert("a".to_string(), a.clone());
        let pending = [
            ("a".to_string(), "demote".to_string()), // already placed: kept
            ("b".to_string(), "promote".to_string()), // no Promoting instance
            ("c".to_string(), "stop".to_string()),
            ("d".to_string(), "monitor".to_string()),
        ];
        place_pending(&mut inst, vec!["Stopping".into(), "Demoting".into()], &pending);
        assert_eq!(inst["a"], a);
        assert!(!inst.contains_key("b"));
        assert_eq!(inst["c"].role, "Stopping");
        assert!(!inst.contains_key("d"));
        for (task, role) in [
            ("start", "Starting"),
            ("stop", "Stopping"),
            ("promote", "Promoting"),
            ("demote", "Demoting"),
            ("migrate_to", "Migrating"),
            ("migrate_from", "Migrating"),
        ] {
            assert_eq!(pending_role(task), Some(role));
        }
        assert_eq!(pending_role("monitor"), None);
        assert_eq!(pending_role("notify"), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse("<<<", "pgsqld").is_err());
        assert!(parse("", "pgsqld").is_err());
        assert!(parse("<a><b></a>", "pgsqld").is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in ".{0,400}") {
            let _ = parse(&s, "pgsqld");
        }
        #[test]
        fn never_panics_on_mutated_samples(cut in 0usize..4000, junk in "[<>/=\" a-z]{0,20}") {
            let mut x = SAMPLE.to_string();
            let at = cut.min(x.len());
            if x.is_char_boundary(at) {
                x.insert_str(at, &junk);
                let _ = parse(&x, "pgsqld");
            }
        }
    }
}
