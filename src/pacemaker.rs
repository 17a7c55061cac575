//! Pacemaker's command-line tools: the only way the agent reads or writes
//! cluster state. Found in `$HA_SBIN_DIR` (default /usr/sbin), which is also
//! how tests substitute fakes.

use crate::cib::{self, ClusterView};
use crate::process::{Cmd, CmdError};
use std::collections::HashMap;
use std::path::PathBuf;
use tokio::time::Instant;

/// A Pacemaker tool that could not run, failed, or printed what cannot be
/// read.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error(transparent)]
    Cmd(#[from] CmdError),
    #[error("{command} failed: {message}")]
    Failed { command: String, message: String },
    #[error("{0}")]
    Parse(String),
}

/// A tool that failed: a generic failure with the tool's own message.
impl crate::agent::EdgeError for ToolError {
    const CODE: crate::exit::OcfExit = crate::exit::OcfExit::ErrGeneric;
}

pub struct Pacemaker {
    pub sbin: PathBuf,
    /// The primitive's id (OCF_RESOURCE_INSTANCE without a clone suffix).
    pub resource: String,
}

/// Private attributes the agent keeps in attrd (never in the CIB), named
/// `<name>-<resource>` so two resources of this agent do not mix.
pub const ATTR_LSN: &str = "lsn_location";
pub const ATTR_NODES: &str = "nodes";
pub const ATTR_CANCEL_SWITCHOVER: &str = "cancel_switchover";
pub const ATTR_RECOVER_PRIMARY: &str = "recover_primary";
/// End of the valid WAL on the disk of a node whose instance is not
/// running (published at its probe and at pre-promote): its WAL counts in
/// every election until it starts.
pub const ATTR_WAL_ON_DISK: &str = "wal_on_disk";
/// `<timeline>#<lsn>` of the checkpoint a primary wrote when demoted.
pub const ATTR_SHUTDOWN_CHECKPOINT: &str = "shutdown_checkpoint";

impl Pacemaker {
    fn tool(&self, name: &str) -> Cmd<'static> {
        Cmd::new(self.sbin.join(name))
    }

    async fn run_ok(&self, cmd: Cmd<'_>, deadline: Instant) -> Result<String, ToolError> {
        let o = cmd.run(deadline).await?;
        if o.success() {
            Ok(o.stdout)
        } else {
            Err(ToolError::Failed { command: cmd.display(), message: o.message() })
        }
    }

    /// Nodes and promotion scores, in one call.
    pub async fn cluster_view(&self, deadline: Instant) -> Result<ClusterView, ToolError> {
        let xml = self.run_ok(self.tool("cibadmin").arg("--query"), deadline).await?;
        cib::parse(&xml, &self.resource).map_err(ToolError::Parse)
    }

    pub async fn set_score(
        &self,
        node: &str,
        score: i32,
        deadline: Instant,
    ) -> Result<(), ToolError> {
        let cmd = self
            .tool("crm_attribute")
            .arg(format!("--promotion={}", self.resource))
            .args(["--node", node, "--update"])
            .arg(score.to_string());
        self.run_ok(cmd, deadline).await.map(|_| ())
    }

    pub async fn delete_score(&self, node: &str, deadline: Instant) -> Result<(), ToolError> {
        let cmd = self
            .tool("crm_attribute")
            .arg(format!("--promotion={}", self.resource))
            .args(["--node", node, "--delete"]);
        self.run_ok(cmd, deadline).await.map(|_| ())
    }

    /// Remove a score with lifetime forever (left by PAF's crm_master).
    pub async fn delete_permanent_score(
        &self,
        node: &str,
        deadline: Instant,
    ) -> Result<(), ToolError> {
        let cmd = self.tool("crm_attribute").arg(format!("--promotion={}", self.resource)).args([
            "--lifetime",
            "forever",
            "--node",
            node,
            "--delete",
        ]);
        self.run_ok(cmd, deadline).await.map(|_| ())
    }

    /// Write the synchronous replication record (a cluster property: it
    /// must outlive the primary that writes it).
    pub async fn set_sync_record(&self, value: &str, deadline: Instant) -> Result<(), ToolError> {
        let cmd = self
            .tool("crm_attribute")
            .args(["--type", "crm_config", "--name", &cib::sync_record_name(&self.resource)])
            .args(["--update", value]);
        self.run_ok(cmd, deadline).await.map(|_| ())
    }

    pub async fn delete_sync_record(&self, deadline: Instant) -> Result<(), ToolError> {
        let cmd = self
            .tool("crm_attribute")
            .args(["--type", "crm_config", "--name", &cib::sync_record_name(&self.resource)])
            .arg("--delete");
        self.run_ok(cmd, deadline).await.map(|_| ())
    }

    /// A transient (lifetime reboot) CIB attribute of `node`, for the
    /// operator's eyes (`crm_mon -A`).
    pub async fn set_node_attr(
        &self,
        node: &str,
        name: &str,
        value: &str,
        deadline: Instant,
    ) -> Result<(), ToolError> {
        self.node_attr(node, name, &["--update", value], deadline).await
    }

    pub async fn delete_node_attr(
        &self,
        node: &str,
        name: &str,
        deadline: Instant,
    ) -> Result<(), ToolError> {
        self.node_attr(node, name, &["--delete"], deadline).await
    }

    /// crm_attribute on the transient attribute `name` of `node`.
    async fn node_attr(
        &self,
        node: &str,
        name: &str,
        op: &[&str],
        deadline: Instant,
    ) -> Result<(), ToolError> {
        let cmd = self
            .tool("crm_attribute")
            .args(["--node", node, "--lifetime", "reboot", "--name", name])
            .args(op.iter().copied());
        self.run_ok(cmd, deadline).await.map(|_| ())
    }

    fn private_name(&self, name: &str) -> String {
        format!("{name}-{}", self.resource)
    }

    pub async fn set_private(
        &self,
        name: &str,
        value: &str,
        deadline: Instant,
    ) -> Result<(), ToolError> {
        // Query output quotes values with ": keep them out of the value.
        let value = value.replace('"', "'");
        let cmd = self.tool("attrd_updater").args([
            "--private",
            "--lifetime",
            "reboot",
            "--name",
            &self.private_name(name),
            "--update",
            &value,
        ]);
        self.run_ok(cmd, deadline).await.map(|_| ())
    }

    /// Values of a private attribute on every node that has it.
    pub async fn private_all(
        &self,
        name: &str,
        deadline: Instant,
    ) -> Result<HashMap<String, String>, ToolError> {
        // With OCF_RESKEY_CRM_meta_on_node set (as in every agent action),
        // Pacemaker 2.1's attrd_updater answers --all for that node only.
        let cmd = self
            .tool("attrd_updater")
            .args(["--query", "--all", "--name", &self.private_name(name)])
            .env_remove("OCF_RESKEY_CRM_meta_on_node");
        let o = cmd.run(deadline).await?;
        if o.success() || is_missing_attribute(o.status.code(), &o.stderr) {
            return Ok(parse_attrd_query(&o.stdout));
        }
        // Anything else (attrd unreachable, a timeout) is not "no value":
        // a safety check reading it must not take it for one.
        Err(ToolError::Failed { command: cmd.display(), message: o.message() })
    }

    pub async fn delete_private(&self, name: &str, deadline: Instant) -> Result<(), ToolError> {
        // --private: the attribute never reached the CIB, leave the CIB alone
        // (a CIB write would abort the transition in progress).
        let cmd = self.tool("attrd_updater").args([
            "--private",
            "--lifetime",
            "reboot",
            "--delete",
            "--name",
            &self.private_name(name),
        ]);
        self.run_ok(cmd, deadline).await.map(|_| ())
    }

    pub async fn local_node_name(&self, deadline: Instant) -> Result<String, ToolError> {
        let out = self.run_ok(self.tool("crm_node").arg("--name"), deadline).await?;
        let name = out.trim().to_string();
        if name.is_empty() {
            return Err(ToolError::Parse("crm_node --name printed nothing".into()));
        }
        Ok(name)
    }
}

/// How `attrd_updater --query` says that no node has the attribute:
/// "attribute does not exist", exit 78 with Pacemaker 2.1.5 (seen on the
/// namespace cluster), 105 (CRM_EX_NOSUCH) accepted too. A lost connection
/// to attrd is exit 102 ("Could not connect to attrd").
pub fn is_missing_attribute(code: Option<i32>, stderr: &str) -> bool {
    matches!(code, Some(78) | Some(105)) && stderr.contains("attribute does not exist")
}

/// `name="lsn_location" host="srv1" value="1#0/3000060"` per line.
pub fn parse_attrd_query(out: &str) -> HashMap<String, String> {
    let field = |line: &str, key: &str| -> Option<String> {
        let start = line.find(&format!("{key}=\""))? + key.len() + 2;
        let end = line[start..].find('"')? + start;
        Some(line[start..end].to_string())
    };
    out.lines()
        .filter_map(|l| Some((field(l, "host")?, field(l, "value")?)))
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attrd_query_output() {
        let out = "name=\"lsn_location\" host=\"srv1\" value=\"1#0/3000060\"\n\
name=\"lsn_location\" host=\"srv2\" value=\"\"\n\
name=\"lsn_location\" host=\"srv3\" value=\"2#0/4000000\"\n";
        let m = parse_attrd_query(out);
        assert_eq!(m.len(), 2);
        assert_eq!(m["srv1"], "1#0/3000060");
        assert_eq!(m["srv3"], "2#0/4000000");
        assert!(parse_attrd_query("").is_empty());
    }

    #[test]
    fn only_a_missing_attribute_is_no_value() {
        let missing = "attrd_updater: Could not query value of x: attribute does not exist\n";
        assert!(is_missing_attribute(Some(78), missing));
        assert!(is_missing_attribute(Some(105), missing));
        assert!(!is_missing_attribute(Some(102), "Could not connect to attrd: Connection refused"));
        assert!(!is_missing_attribute(Some(105), "Could not query value of x: No such device"));
        assert!(!is_missing_attribute(None, missing));
    }

    proptest::proptest! {
        /// What attrd_updater prints for any hosts and values reads back.
        #[test]
        fn attrd_query_output_round_trips(
            attrs in proptest::collection::btree_map("[a-z0-9][a-z0-9.-]{0,15}", "[^\"\n\r]{1,30}", 0..6)
        ) {
            let out: String = attrs
                .iter()
                .map(|(h, v)| format!("name=\"lsn_location-pgsqld\" host=\"{h}\" value=\"{v}\"\n"))
                .collect();
            let parsed = parse_attrd_query(&out);
            proptest::prop_assert_eq!(parsed.len(), attrs.len());
            for (h, v) in &attrs {
                proptest::prop_assert_eq!(parsed.get(h), Some(v));
            }
        }

        #[test]
        fn attrd_query_never_panics(s in "\\PC*", code in proptest::option::of(0i32..256)) {
            let _ = parse_attrd_query(&s);
            let _ = is_missing_attribute(code, &s);
        }
    }
}
