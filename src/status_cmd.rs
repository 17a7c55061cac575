//! The edge of `pgsqlms status` and of the health service: Pacemaker's view
//! (`crm_mon --output-as=xml`, the resource's parameters from the CIB) and
//! the local PostgreSQL, each bounded by a deadline. Decisions and
//! rendering are in `status` and `health`.

use crate::crm_mon::{self, ClusterStatus};
use crate::lsn::Lsn;
use crate::params::Params;
use crate::pg::{self, Target};
use crate::process::{Cmd, RunAs};
use crate::scores::ReplicationRow;
use crate::status::{LocalPg, ReplicationView};
use quick_xml::events::Event;
use quick_xml::reader::Reader;
use std::collections::HashMap;
use std::path::PathBuf;
use tokio::time::Instant;

/// Where Pacemaker's tools are (`HA_SBIN_DIR`, as for the agent).
pub fn sbin() -> PathBuf {
    std::env::var_os("HA_SBIN_DIR")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| "/usr/sbin".into())
}

async fn tool(name: &str, args: &[&str], deadline: Instant) -> Result<String, String> {
    let cmd = Cmd::new(sbin().join(name)).args(args.iter().copied());
    let o = cmd.run(deadline).await.map_err(|e| e.to_string())?;
    if o.success() {
        Ok(o.stdout)
    } else {
        Err(format!("{} failed: {}", cmd.display(), o.message()))
    }
}

/// A resource of this agent in the CIB: its id and parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceDef {
    pub id: String,
    pub params: HashMap<String, String>,
}

/// Find the pgsqlms primitive (`ocf:rust:pgsqlms`, or PAF's
/// `ocf:heartbeat:pgsqlms`) in CIB XML: the one named `want`, or the only
/// one. Pure.
pub fn find_resource(cib: &str, want: Option<&str>) -> Result<ResourceDef, String> {
    let mut reader = Reader::from_str(cib);
    let mut found: Vec<ResourceDef> = Vec::new();
    let mut inside: Option<ResourceDef> = None;
    let mut depth_in_primitive = 0usize;
    let mut in_instance_attrs = false;
    loop {
        let ev = reader.read_event().map_err(|e| format!("CIB is not valid XML: {e}"))?;
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                let name = AsRef::<str>::as_ref(&e.name()).to_string();
                let get = |k: &str| {
                    e.attributes().flatten().find(|a| AsRef::<str>::as_ref(&a.key) == k).and_then(
                        |a| {
                            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                                .ok()
                                .map(|v| v.into_owned())
                        },
                    )
                };
                if inside.is_none()
                    && name == "primitive"
                    && get("type").as_deref() == Some("pgsqlms")
                {
                    let def =
                        ResourceDef { id: get("id").unwrap_or_default(), params: HashMap::new() };
                    if empty {
                        found.push(def);
                    } else {
                        inside = Some(def);
                        depth_in_primitive = 0;
                    }
                    continue;
                }
                if let Some(def) = inside.as_mut() {
                    if name == "instance_attributes" && !empty {
                        in_instance_attrs = true;
                    }
                    if name == "nvpair"
                        && in_instance_attrs
                        && let (Some(k), Some(v)) = (get("name"), get("value"))
                    {
                        def.params.insert(k, v);
                    }
                    if !empty {
                        depth_in_primitive += 1;
                    }
                }
            }
            Event::End(ref e) if inside.is_some() => {
                let name = AsRef::<str>::as_ref(&e.name()).to_string();
                if depth_in_primitive == 0 && name == "primitive" {
                    found.push(inside.take().expect("inside"));
                } else {
                    if name == "instance_attributes" {
                        in_instance_attrs = false;
                    }
                    depth_in_primitive = depth_in_primitive.saturating_sub(1);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    match want {
        Some(w) => found
            .into_iter()
            .find(|d| d.id == w)
            .ok_or_else(|| format!("no pgsqlms resource named \"{w}\" in the CIB")),
        None => match found.len() {
            0 => Err("no pgsqlms resource in the CIB".into()),
            1 => Ok(found.remove(0)),
            _ => Err(format!(
                "several pgsqlms resources ({}): choose one with --resource",
                found.iter().map(|d| d.id.as_str()).collect::<Vec<_>>().join(", ")
            )),
        },
    }
}

/// The agent's parameters from a resource definition (defaults as the agent
/// applies them).
pub fn params_of(def: &ResourceDef) -> Result<Params, String> {
    let env: HashMap<String, String> =
        def.params.iter().map(|(k, v)| (format!("OCF_RESKEY_{k}"), v.clone())).collect();
    Params::from_env(&env).map_err(|e| e.0)
}

pub struct PacemakerView {
    pub status: ClusterStatus,
    pub resource: ResourceDef,
    pub local: String,
}

pub async fn pacemaker_view(
    want: Option<&str>,
    deadline: Instant,
) -> Result<PacemakerView, String> {
    let (mon, cib, node) = tokio::join!(
        tool("crm_mon", &["-1", "--output-as=xml"], deadline),
        tool("cibadmin", &["--query", "--scope", "resources"], deadline),
        tool("crm_node", &["--name"], deadline),
    );
    let resource = find_resource(&cib?, want)?;
    let status = crm_mon::parse(&mon?, &resource.id)?;
    Ok(PacemakerView { status, resource, local: node?.trim().to_string() })
}

fn lsn(v: &Option<String>) -> Option<Lsn> {
    v.as_deref().and_then(|s| s.parse().ok())
}

/// The primary's end of WAL as this standby knows it: what the sender last
/// reported (latest_end_lsn, NULL until its first report after a connection)
/// or, when newer or unknown, what was received.
fn primary_end(latest_end: &Option<String>, received: &Option<String>) -> Option<Lsn> {
    lsn(latest_end).max(lsn(received))
}

const LOCAL_SQL: &str = "SELECT pg_is_in_recovery(), \
 CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn() END, \
 pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn(), \
 (SELECT status FROM pg_stat_wal_receiver LIMIT 1), \
 (SELECT latest_end_lsn FROM pg_stat_wal_receiver LIMIT 1), \
 extract(epoch FROM now() - pg_last_xact_replay_timestamp()), \
 CASE WHEN pg_is_in_recovery() \
  THEN coalesce((SELECT received_tli FROM pg_stat_wal_receiver LIMIT 1), \
                (SELECT timeline_id FROM pg_control_checkpoint())) \
  ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END, \
 current_setting('transaction_read_only')";

const REPLICATION_SQL: &str = "SELECT application_name, state, sync_state, \
 write_lsn, flush_lsn, replay_lsn, extract(epoch FROM replay_lag) FROM pg_stat_replication";

/// One session to the local PostgreSQL as system_user, one or two
/// queries, closed after.
pub async fn local_pg(params: &Params, with_replication: bool, deadline: Instant) -> LocalPg {
    match RunAs::lookup(&params.system_user) {
        Ok(user) => local_pg_as(params, &user, with_replication, deadline).await,
        Err(e) => LocalPg { error: Some(e.to_string()), ..Default::default() },
    }
}

/// The same as `user` (the health service looks the user up once).
pub async fn local_pg_as(
    params: &Params,
    user: &RunAs,
    with_replication: bool,
    deadline: Instant,
) -> LocalPg {
    let target = Target { host: &params.pghost, port: params.pgport, user };
    let client = match pg::connect(&target, deadline).await {
        Ok(c) => c,
        Err(e) => return LocalPg { error: Some(e.to_string()), ..Default::default() },
    };
    let rows = match pg::rows(&client, LOCAL_SQL, deadline).await {
        Ok(r) => r,
        Err(e) => return LocalPg { error: Some(e.to_string()), ..Default::default() },
    };
    let Some(r) = rows.first() else {
        return LocalPg {
            error: Some("no answer to the status query".into()),
            ..Default::default()
        };
    };
    let in_recovery = r[0].as_deref() == Some("t");
    let mut out = LocalPg {
        error: None,
        in_recovery: Some(in_recovery),
        read_only: Some(r[8].as_deref() == Some("on")),
        timeline: r[7].as_deref().and_then(|s| s.parse().ok()),
        current_lsn: lsn(&r[1]),
        receive_lsn: lsn(&r[2]),
        replay_lsn: lsn(&r[3]),
        receiver_status: r[4].clone(),
        primary_end_lsn: primary_end(&r[5], &r[2]),
        replay_delay_s: r[6].as_deref().and_then(|s| s.parse().ok()),
        replication: Vec::new(),
    };
    if with_replication && !in_recovery {
        match pg::rows(&client, REPLICATION_SQL, deadline).await {
            Ok(rows) => {
                out.replication = rows
                    .into_iter()
                    .map(|r| ReplicationView {
                        standby: ReplicationRow {
                            application_name: r[0].clone().unwrap_or_default(),
                            state: r[1].clone().unwrap_or_default(),
                            write_lsn: lsn(&r[3]),
                        },
                        sync_state: r[2].clone().unwrap_or_default(),
                        flush_lsn: lsn(&r[4]),
                        replay_lsn: lsn(&r[5]),
                        replay_lag_s: r[6].as_deref().and_then(|s| s.parse().ok()),
                    })
                    .collect()
            }
            Err(e) => out.error = Some(format!("pg_stat_replication: {e}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CIB: &str = r#"<cib><configuration><resources>
<primitive id="fence" class="stonith" type="fence_ns"/>
<clone id="pgsqld-clone"><primitive id="pgsqld" class="ocf" provider="rust" type="pgsqlms">
 <instance_attributes id="pgsqld-ia">
  <nvpair id="a" name="pgdata" value="/etc/postgresql/15/main"/>
  <nvpair id="b" name="pgport" value="5433"/>
 </instance_attributes>
 <meta_attributes id="m"><nvpair id="c" name="notify" value="true"/></meta_attributes>
 <operations><op id="o" name="monitor" interval="5s"/></operations>
</primitive><meta_attributes id="cm"/></clone>
<primitive id="vip" class="ocf" provider="heartbeat" type="IPaddr2"/>
</resources></configuration></cib>"#;

    #[test]
    fn finds_the_resource_and_its_parameters() {
        let d = find_resource(CIB, None).unwrap();
        assert_eq!(d.id, "pgsqld");
        assert_eq!(d.params.get("pgport").map(String::as_str), Some("5433"));
        assert!(!d.params.contains_key("notify"), "meta attributes are not parameters");
        let p = params_of(&d).unwrap();
        assert_eq!(p.pgport, 5433);
        assert!(find_resource(CIB, Some("other")).is_err());
        assert!(find_resource("<cib/>", None).is_err());
        let two = CIB.replace(
            "</resources>",
            r#"<primitive id="pg2" class="ocf" provider="rust" type="pgsqlms"/></resources>"#,
        );
        assert!(find_resource(&two, None).unwrap_err().contains("several"));
        assert_eq!(find_resource(&two, Some("pg2")).unwrap().id, "pg2");
    }

    proptest::proptest! {
        #[test]
        fn cib_parsing_never_panics(s in ".{0,300}") {
            let _ = find_resource(&s, None);
        }
    }
}
