//! The parts of the CIB the agent reads, parsed from `cibadmin --query`
//! output with quick-xml: cluster nodes and promotion scores. Pure.

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
}

fn attr(e: &quick_xml::events::BytesStart, name: &str) -> Option<String> {
    e.attributes().flatten().find(|a| AsRef::<str>::as_ref(&a.key) == name).and_then(|a| {
        a.normalized_value(quick_xml::XmlVersion::Implicit1_0).ok().map(|v| v.into_owned())
    })
}

/// Parse a CIB and collect the promotion scores named `master-<resource>`.
pub fn parse(xml: &str, resource: &str) -> Result<ClusterView, String> {
    let score_name = format!("master-{resource}");
    let mut reader = Reader::from_str(xml);
    let mut view = ClusterView::default();
    let mut path: Vec<String> = Vec::new();
    // uname of the `<node>` (configuration) or `<node_state>` (status) we are in.
    let mut node_ctx: Option<String> = None;
    let mut id_to_uname: HashMap<String, String> = HashMap::new();
    loop {
        let ev = reader.read_event().map_err(|e| format!("CIB is not valid XML: {e}"))?;
        let (e, empty) = match &ev {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(_) => {
                if let Some(name) = path.pop()
                    && (name == "node" || name == "node_state")
                {
                    node_ctx = None;
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
    <crm_config/>
    <nodes>
      <node id="1" uname="srv1"/>
      <node id="2" uname="srv2">
        <instance_attributes id="nodes-2">
          <nvpair id="nodes-2-master-pgsqld" name="master-pgsqld" value="1000"/>
        </instance_attributes>
      </node>
      <node id="3" uname="srv3"/>
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
        </instance_attributes>
      </transient_attributes>
      <lrm id="1"><lrm_resources/></lrm>
    </node_state>
    <node_state id="3" in_ccm="true" crmd="online">
      <transient_attributes id="3">
        <instance_attributes id="status-3">
          <nvpair id="status-3-master-pgsqld" name="master-pgsqld" value="-INFINITY"/>
        </instance_attributes>
      </transient_attributes>
    </node_state>
  </status>
</cib>"#;

    #[test]
    fn reads_nodes_and_scores_of_our_resource_only() {
        let v = parse(CIB, "pgsqld").unwrap();
        assert_eq!(v.nodes, vec!["srv1", "srv2", "srv3"]);
        assert_eq!(v.scores.get("srv1"), Some(&1001));
        assert_eq!(v.scores.get("srv3"), Some(&-1_000_000));
        assert_eq!(v.scores.get("srv2"), None);
        assert_eq!(v.permanent_scores.get("srv2"), Some(&1000));
        let other = parse(CIB, "other").unwrap();
        assert_eq!(other.scores.get("srv1"), Some(&5));
        assert_eq!(other.scores.len(), 1);
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
}
