//! The parts of the CIB the agent reads, parsed from `cibadmin --query`
//! output with quick-xml: cluster nodes, promotion scores and the
//! synchronous replication record. Pure.

use quick_xml::events::Event;
use quick_xml::reader::Reader;
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterView {
    /// Node names from the configuration's `<nodes>` section.
    pub nodes: Vec<String>,
    /// Promotion scores with lifetime reboot (status section), by node name.
    pub scores: HashMap<String, i32>,
    /// Promotion scores with lifetime forever (`<nodes>` section), left by
    /// PAF's `crm_master --lifetime forever`: removed when taking over.
    pub permanent_scores: HashMap<String, i32>,
    /// The cluster property `sync_record_name(resource)`: who may hold
    /// acknowledged commits (`syncrep::Record` value), kept by the primary.
    pub sync_record: Option<String>,
    /// Nodes whose attribute `pgsqlms-never-promote` is true (permanent or
    /// transient): the operator's word that they must not be promoted.
    pub never_promote: Vec<String>,
    /// Transient attribute `slot_lost_name(resource)` by node: the slot the
    /// primary saw invalidated for that node (`slots::lost_attr_changes`).
    pub slot_lost: HashMap<String, String>,
    /// Nodes whose operation history of the resource (status section) says
    /// an instance there is, or may be, promoted: `op_may_promote`.
    pub maybe_promoted: Vec<String>,
}

impl ClusterView {
    /// A node other than `me` with the primary's promotion score (its
    /// monitor gives it that score).
    pub fn scored_primary(&self, me: &str) -> Option<&str> {
        self.scores
            .iter()
            .find(|(n, s)| n.as_str() != me && **s == crate::scores::PRIMARY)
            .map(|(n, _)| n.as_str())
    }
}

/// One recorded operation of the resource (`lrm_rsc_op`): may it have left
/// a promoted instance behind? Errs on the side of yes: a promote in any
/// state (done, failed, still running), any result "running promoted"
/// (rc 8), and a demote that did not succeed.
pub fn op_may_promote(operation: &str, rc_code: &str, op_status: &str) -> bool {
    operation == "promote"
        || rc_code == "8"
        || (operation == "demote" && (rc_code != "0" || op_status != "0"))
}

/// Name of the transient node attribute telling the operator that a node's
/// replication slot was invalidated (it needs a rebuild): shown by
/// `crm_mon -A` beside the node.
pub fn slot_lost_name(resource: &str) -> String {
    format!("pgsqlms-slot-lost-{resource}")
}

/// Name of the cluster property (crm_config) holding the synchronous
/// replication record of `resource`: it must outlive the primary, so it is
/// neither a transient nor a node attribute.
pub fn sync_record_name(resource: &str) -> String {
    format!("pgsqlms-sync-{resource}")
}

fn attr(e: &quick_xml::events::BytesStart, name: &str) -> Option<String> {
    e.attributes().flatten().find(|a| AsRef::<str>::as_ref(&a.key) == name).and_then(|a| {
        a.normalized_value(quick_xml::XmlVersion::Implicit1_0).ok().map(|v| v.into_owned())
    })
}

/// Parse a CIB and collect the promotion scores named `master-<resource>`.
pub fn parse(xml: &str, resource: &str) -> Result<ClusterView, String> {
    let score_name = format!("master-{resource}");
    let record_name = sync_record_name(resource);
    let lost_name = slot_lost_name(resource);
    let mut reader = Reader::from_str(xml);
    let mut view = ClusterView::default();
    let mut path: Vec<String> = Vec::new();
    // uname of the `<node>` (configuration) or `<node_state>` (status) we are in.
    let mut node_ctx: Option<String> = None;
    let mut id_to_uname: HashMap<String, String> = HashMap::new();
    // Inside the `lrm_resource` of our resource (anonymous clone: its id;
    // a unique clone: `id:N`).
    let mut in_our_lrm = false;
    let instance_prefix = format!("{resource}:");
    loop {
        let ev = reader.read_event().map_err(|e| format!("CIB is not valid XML: {e}"))?;
        let (e, empty) = match &ev {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(_) => {
                match path.pop().as_deref() {
                    Some("node" | "node_state") => node_ctx = None,
                    Some("lrm_resource") => in_our_lrm = false,
                    _ => {}
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let name = AsRef::<str>::as_ref(&e.name()).to_string();
        let in_section = |s: &str| path.iter().any(|p| p == s);
        match name.as_str() {
            "node" if in_section("nodes") && in_section("configuration") => {
                if let Some(u) = attr(e, "uname") {
                    if let Some(id) = attr(e, "id") {
                        id_to_uname.insert(id, u.clone());
                    }
                    view.nodes.push(u.clone());
                    node_ctx = Some(u);
                }
            }
            "node_state" if in_section("status") => {
                node_ctx = attr(e, "uname")
                    .or_else(|| attr(e, "id").and_then(|id| id_to_uname.get(&id).cloned()));
            }
            "lrm_resource" if in_section("status") && !empty => {
                in_our_lrm = attr(e, "id")
                    .is_some_and(|id| id == resource || id.starts_with(&instance_prefix));
            }
            "lrm_rsc_op" if in_our_lrm => {
                let get = |k: &str| attr(e, k).unwrap_or_default();
                if let Some(node) = &node_ctx
                    && op_may_promote(&get("operation"), &get("rc-code"), &get("op-status"))
                    && !view.maybe_promoted.contains(node)
                {
                    view.maybe_promoted.push(node.clone());
                }
            }
            "nvpair"
                if in_section("crm_config")
                    && attr(e, "name").as_deref() == Some(record_name.as_str()) =>
            {
                view.sync_record = attr(e, "value");
            }
            "nvpair" if attr(e, "name").as_deref() == Some(score_name.as_str()) => {
                if let (Some(node), Some(v)) = (&node_ctx, attr(e, "value")) {
                    let score = parse_score(&v);
                    if in_section("transient_attributes") {
                        view.scores.insert(node.clone(), score);
                    } else if in_section("nodes") {
                        view.permanent_scores.insert(node.clone(), score);
                    }
                }
            }
            "nvpair"
                if in_section("transient_attributes")
                    && attr(e, "name").as_deref() == Some(lost_name.as_str()) =>
            {
                if let (Some(node), Some(v)) = (&node_ctx, attr(e, "value")) {
                    view.slot_lost.insert(node.clone(), v);
                }
            }
            "nvpair" if attr(e, "name").as_deref() == Some(crate::election::NEVER_PROMOTE) => {
                if let (Some(node), Some(v)) = (&node_ctx, attr(e, "value"))
                    && is_true(&v)
                    && !view.never_promote.contains(node)
                {
                    view.never_promote.push(node.clone());
                }
            }
            _ => {}
        }
        if empty {
            if name == "node" || name == "node_state" {
                node_ctx = None;
            }
        } else {
            path.push(name);
        }
    }
    Ok(view)
}

/// Pacemaker's booleans (crm_is_true).
fn is_true(v: &str) -> bool {
    matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "on" | "yes" | "y" | "1")
}

/// Pacemaker's score syntax: integers, with INFINITY spelled out.
pub fn parse_score(v: &str) -> i32 {
    match v.trim() {
        "INFINITY" | "+INFINITY" => 1_000_000,
        "-INFINITY" => -1_000_000,
        s => s.parse::<i64>().map(|n| n.clamp(-1_000_000, 1_000_000) as i32).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CIB: &str = r#"<cib crm_feature_set="3.16.2" validate-with="pacemaker-3.9" epoch="12" num_updates="4" admin_epoch="0">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="cib-bootstrap-options-pgsqlms-sync-pgsqld" name="pgsqlms-sync-pgsqld" value="ANY 1 (&quot;srv2&quot;,&quot;srv3&quot;)"/>
        <nvpair id="cib-bootstrap-options-pgsqlms-sync-other" name="pgsqlms-sync-other" value="x"/>
      </cluster_property_set>
    </crm_config>
    <nodes>
      <node id="1" uname="srv1"/>
      <node id="2" uname="srv2">
        <instance_attributes id="nodes-2">
          <nvpair id="nodes-2-master-pgsqld" name="master-pgsqld" value="1000"/>
        </instance_attributes>
      </node>
      <node id="3" uname="srv3">
        <instance_attributes id="nodes-3">
          <nvpair id="nodes-3-never" name="pgsqlms-never-promote" value="true"/>
        </instance_attributes>
      </node>
    </nodes>
    <resources/>
    <constraints/>
  </configuration>
  <status>
    <node_state id="1" uname="srv1" in_ccm="true" crmd="online" join="member" expected="member">
      <transient_attributes id="1">
        <instance_attributes id="status-1">
          <nvpair id="status-1-master-pgsqld" name="master-pgsqld" value="1001"/>
          <nvpair id="status-1-master-other" name="master-other" value="5"/>
          <nvpair id="status-1-never" name="pgsqlms-never-promote" value="false"/>
        </instance_attributes>
      </transient_attributes>
      <lrm id="1"><lrm_resources/></lrm>
    </node_state>
    <node_state id="3" in_ccm="true" crmd="online"><transient_attributes id="3"><instance_attributes id="status-3">
      <nvpair id="status-3-master-pgsqld" name="master-pgsqld" value="-INFINITY"/>
      <nvpair id="status-3-lost" name="pgsqlms-slot-lost-pgsqld" value="pgsqlms_srv3"/>
      <nvpair id="status-3-lost-other" name="pgsqlms-slot-lost-other" value="x"/>
    </instance_attributes></transient_attributes></node_state>
  </status>
</cib>"#;

    #[test]
    fn reads_nodes_and_scores_of_our_resource_only() {
        let v = parse(CIB, "pgsqld").unwrap();
        assert_eq!(v.nodes, vec!["srv1", "srv2", "srv3"]);
        assert_eq!(v.scores.get("srv1"), Some(&1001));
        assert_eq!(v.scores.get("srv3"), Some(&-1_000_000));
        assert_eq!(v.scores.get("srv2"), None);
        assert_eq!(v.scored_primary("srv3"), Some("srv1"));
        assert_eq!(v.scored_primary("srv1"), None);
        assert_eq!(v.permanent_scores.get("srv2"), Some(&1000));
        assert_eq!(v.never_promote, vec!["srv3"]);
        let other = parse(CIB, "other").unwrap();
        assert_eq!(other.scores.get("srv1"), Some(&5));
        assert_eq!(other.scores.len(), 1);
        assert_eq!(v.sync_record.as_deref(), Some("ANY 1 (\"srv2\",\"srv3\")"));
        assert_eq!(other.sync_record.as_deref(), Some("x"));
        assert_eq!(parse(CIB, "third").unwrap().sync_record, None);
        assert_eq!(v.slot_lost.len(), 1);
        assert_eq!(v.slot_lost.get("srv3").map(String::as_str), Some("pgsqlms_srv3"));
        assert_eq!(other.slot_lost.get("srv3").map(String::as_str), Some("x"));
    }

    /// Operations of one node: (operation, rc-code, op-status).
    type NodeOps<'a> = (&'a str, &'a [(&'a str, &'a str, &'a str)]);

    /// One node_state per (node, ops of lrm_resource `rsc`).
    fn history(rsc: &str, nodes: &[NodeOps]) -> String {
        let mut x = String::from("<cib><configuration><nodes/></configuration><status>");
        for (i, (n, ops)) in nodes.iter().enumerate() {
            x.push_str(&format!(
                "<node_state id=\"{i}\" uname=\"{n}\"><lrm id=\"{i}\"><lrm_resources>\
                 <lrm_resource id=\"{rsc}\" type=\"pgsqlms\" class=\"ocf\" provider=\"rust\">"
            ));
            for (k, (op, rc, st)) in ops.iter().enumerate() {
                x.push_str(&format!(
                    "<lrm_rsc_op id=\"{rsc}_{k}\" operation_key=\"{rsc}_{op}_0\" operation=\"{op}\" \
                     rc-code=\"{rc}\" op-status=\"{st}\" interval=\"0\"/>"
                ));
            }
            x.push_str("</lrm_resource></lrm_resources></lrm></node_state>");
        }
        x.push_str("</status></cib>");
        x
    }

    #[test]
    fn promoted_instances_seen_in_the_operation_history() {
        let maybe = |rsc: &str, nodes: &[NodeOps]| {
            parse(&history(rsc, nodes), "pgsqld").unwrap().maybe_promoted
        };
        // Whole cluster starting: starts pending or done, probes "not running".
        let none: Vec<String> = vec![];
        assert_eq!(
            maybe(
                "pgsqld",
                &[
                    ("srv1", &[("monitor", "7", "0"), ("start", "193", "-1")]),
                    ("srv2", &[("start", "0", "0"), ("monitor", "0", "0")]),
                    ("srv3", &[("demote", "0", "0"), ("stop", "0", "0")]),
                ]
            ),
            none
        );
        // Promoted (done or running), probed as promoted, a failed demote.
        assert_eq!(maybe("pgsqld", &[("srv1", &[("promote", "0", "0")])]), ["srv1"]);
        assert_eq!(maybe("pgsqld", &[("srv1", &[("promote", "193", "-1")])]), ["srv1"]);
        assert_eq!(maybe("pgsqld", &[("srv1", &[("promote", "1", "0")])]), ["srv1"]);
        assert_eq!(maybe("pgsqld", &[("srv2", &[("monitor", "8", "0")])]), ["srv2"]);
        assert_eq!(maybe("pgsqld", &[("srv2", &[("demote", "1", "0")])]), ["srv2"]);
        assert_eq!(maybe("pgsqld", &[("srv2", &[("demote", "193", "-1")])]), ["srv2"]);
        // A unique clone's instance ids; another resource does not count.
        assert_eq!(maybe("pgsqld:1", &[("srv3", &[("monitor", "8", "0")])]), ["srv3"]);
        assert_eq!(maybe("pgsqld2", &[("srv3", &[("promote", "0", "0")])]), none);
        assert_eq!(maybe("pgsql-vip", &[("srv3", &[("monitor", "8", "0")])]), none);
        // Several ops on one node: the node once.
        assert_eq!(
            maybe("pgsqld", &[("srv1", &[("promote", "0", "0"), ("monitor", "8", "0")])]),
            ["srv1"]
        );
    }

    #[test]
    fn scores_parse_like_pacemaker() {
        assert_eq!(parse_score("INFINITY"), 1_000_000);
        assert_eq!(parse_score("+INFINITY"), 1_000_000);
        assert_eq!(parse_score("99999999"), 1_000_000);
        assert_eq!(parse_score("-1000"), -1000);
        assert_eq!(parse_score("junk"), 0);
    }

    #[test]
    fn broken_xml_is_an_error() {
        assert!(parse("<cib><status></cib>", "pgsqld").is_err());
        assert_eq!(parse("<cib/>", "pgsqld").unwrap(), ClusterView::default());
    }

    proptest::proptest! {
        /// Nodes and scores written as Pacemaker writes them read back.
        #[test]
        fn generated_cibs_read_back(
            nodes in proptest::collection::btree_map("[a-z][a-z0-9&<>'\"-]{0,10}", proptest::option::of(-1_000_000i32..=1_000_000), 0..5)
        ) {
            let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
            let mut config = String::new();
            let mut status = String::new();
            for (i, (n, score)) in nodes.iter().enumerate() {
                config.push_str(&format!("<node id=\"{i}\" uname=\"{}\"/>", esc(n)));
                status.push_str(&format!("<node_state id=\"{i}\" uname=\"{}\"><transient_attributes id=\"{i}\"><instance_attributes id=\"status-{i}\">", esc(n)));
                if let Some(s) = score {
                    status.push_str(&format!("<nvpair id=\"status-{i}-master-pgsqld\" name=\"master-pgsqld\" value=\"{s}\"/>"));
                }
                status.push_str("</instance_attributes></transient_attributes></node_state>");
            }
            let xml = format!("<cib><configuration><nodes>{config}</nodes></configuration><status>{status}</status></cib>");
            let v = parse(&xml, "pgsqld").unwrap();
            proptest::prop_assert_eq!(v.nodes, nodes.keys().cloned().collect::<Vec<_>>());
            let want: HashMap<String, i32> = nodes.iter().filter_map(|(n, s)| Some((n.clone(), (*s)?))).collect();
            proptest::prop_assert_eq!(v.scores, want);
        }

        #[test]
        fn any_text_is_parsed_or_refused_without_panic(s in "(<cib>|<status>|<node_state uname=\"a\">|<transient_attributes>|<nvpair name=\"master-r\" value=\"|\"/>|</[a-z_]+>|\\PC){0,40}") {
            let _ = parse(&s, "r");
        }
    }
}
