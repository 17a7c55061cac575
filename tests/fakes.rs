//! The fake Pacemaker tools of tests/fakes behave like the real ones in what
//! the agent relies on (ARCHITECTURE.md): output formats, exit codes, the
//! store layout the integration tests read, one calls.log line per call.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Store(PathBuf);

impl Store {
    fn new(name: &str) -> Store {
        let d = std::env::temp_dir().join(format!("pgsqlms-fakes-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("nodes"), "srv1\nsrv2\nsrv3\n").unwrap();
        Store(d)
    }

    /// (exit code, stdout, stderr) of tests/fakes/<tool> as srv1's agent.
    fn run(&self, tool: &str, args: &[&str]) -> (i32, String, String) {
        let o = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fakes").join(tool))
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("PGSQLMS_FAKE_DIR", &self.0)
            .env("OCF_RESKEY_CRM_meta_on_node", "srv1")
            .env("OCF_RESOURCE_INSTANCE", "pgsqld")
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.0.join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn promotion_scores_live_in_the_cib_status_section() {
    let s = Store::new("scores");
    assert_eq!(
        s.run("crm_attribute", &["--promotion=pgsqld", "--node", "srv2", "--update", "1000"]).0,
        0
    );
    assert_eq!(fs::read_to_string(s.0.join("attrs/srv2/master-pgsqld")).unwrap(), "1000");
    let (rc, out, _) = s.run("crm_attribute", &["--promotion=pgsqld", "--node", "srv2", "--query"]);
    assert_eq!((rc, out.as_str()), (0, "scope=status  name=master-pgsqld value=1000\n"));
    assert_eq!(s.run("crm_attribute", &["--promotion=pgsqld", "--node", "srv2", "--delete"]).0, 0);
    assert!(!s.0.join("attrs/srv2/master-pgsqld").exists());
    // deleting again is fine, querying a missing one is ENXIO (105)
    assert_eq!(s.run("crm_attribute", &["--promotion=pgsqld", "--node", "srv2", "--delete"]).0, 0);
    assert_eq!(s.run("crm_attribute", &["--promotion=pgsqld", "--node", "srv2", "--query"]).0, 105);
    // a node the cluster does not know cannot get a score
    let (rc, _, err) =
        s.run("crm_attribute", &["--promotion=pgsqld", "--node", "pg_receivewal", "--update", "1"]);
    assert_eq!(rc, 105, "{err}");
    assert!(!s.0.join("attrs/pg_receivewal").exists());
    assert_eq!(s.calls().len(), 6);
    assert_eq!(s.calls()[0], "crm_attribute --promotion=pgsqld --node srv2 --update 1000");
}

#[test]
fn private_attributes_stay_out_of_the_cib() {
    let s = Store::new("private");
    let set =
        |node: &str, v: &str| {
            let o = Command::new(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fakes/attrd_updater"),
            )
            .args(["--private", "--lifetime", "reboot", "--name", "lsn_location", "--update", v])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("PGSQLMS_FAKE_DIR", &s.0)
            .env("OCF_RESKEY_CRM_meta_on_node", node)
            .status()
            .unwrap();
            assert!(o.success());
        };
    set("srv1", "1#0/3000060");
    set("srv3", "1#0/5000000");
    let (rc, out, _) = s.run("attrd_updater", &["--query", "--all", "--name", "lsn_location"]);
    assert_eq!(rc, 0);
    assert_eq!(
        out,
        "name=\"lsn_location\" host=\"srv1\" value=\"1#0/3000060\"\nname=\"lsn_location\" host=\"srv3\" value=\"1#0/5000000\"\n"
    );
    let (_, cib, _) = s.run("cibadmin", &["--query"]);
    assert!(!cib.contains("lsn_location"), "{cib}");
    // --delete acts on the local node and leaves an empty value, like attrd
    assert_eq!(s.run("attrd_updater", &["--delete", "--name", "lsn_location"]).0, 0);
    let (_, out, _) = s.run("attrd_updater", &["--query", "--all", "--name", "lsn_location"]);
    assert_eq!(
        out,
        "name=\"lsn_location\" host=\"srv1\" value=\"\"\nname=\"lsn_location\" host=\"srv3\" value=\"1#0/5000000\"\n"
    );
    let (rc, _, err) = s.run("attrd_updater", &["--query", "--all", "--name", "nodes"]);
    assert_eq!(rc, 78, "attrd_updater 2.1.5: missing attribute");
    assert!(err.contains("attribute does not exist"), "{err}");
}

#[test]
fn cib_has_the_shape_of_pacemaker_2_1() {
    let s = Store::new("cib");
    fs::write(s.0.join("offline"), "srv3\n").unwrap();
    s.run("crm_attribute", &["--promotion=pgsqld", "--node", "srv1", "--update", "1001"]);
    s.run("crm_attribute", &["--promotion=pgsqld", "--node", "srv2", "--update", "1000"]);
    let (rc, cib, _) = s.run("cibadmin", &["--query"]);
    assert_eq!(rc, 0);
    for want in [
        "<node id=\"1\" uname=\"srv1\"/>",
        "<node id=\"3\" uname=\"srv3\"/>",
        "<node_state id=\"2\" uname=\"srv2\" in_ccm=\"true\" crmd=\"online\"",
        "<node_state id=\"3\" uname=\"srv3\" in_ccm=\"false\" crmd=\"offline\"",
        "<transient_attributes id=\"1\">",
        "<instance_attributes id=\"status-1\">",
        "<nvpair id=\"status-1-master-pgsqld\" name=\"master-pgsqld\" value=\"1001\"/>",
        "<nvpair id=\"status-2-master-pgsqld\" name=\"master-pgsqld\" value=\"1000\"/>",
    ] {
        assert!(cib.contains(want), "missing {want} in\n{cib}");
    }
    // valid against the schema Pacemaker 2.1.5 validates with
    let rng = Path::new("/usr/share/pacemaker/pacemaker-3.9.rng");
    if rng.exists() {
        let f = s.0.join("cib.xml");
        fs::write(&f, &cib).unwrap();
        let o = Command::new("xmllint")
            .arg("--noout")
            .arg("--relaxng")
            .arg(rng)
            .arg(&f)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let (_, status, _) = s.run("cibadmin", &["--query", "-o", "status"]);
    assert!(status.starts_with("<status>"), "{status}");
    assert_eq!(s.run("crm_node", &["--partition"]).1, "srv1 srv2\n");
    assert_eq!(s.calls().iter().filter(|l| l.starts_with("cibadmin")).count(), 2);
}

/// The synchronous replication record: a cluster property, as
/// `crm_attribute --type crm_config` writes it (checked against the real
/// tool on a CIB file: same nvpair id, delete of a missing one succeeds).
#[test]
fn cluster_properties_live_in_crm_config() {
    let s = Store::new("crm_config");
    let value = "FIRST 1 (\"srv2\",\"a&b<c>\")";
    let args = ["--type", "crm_config", "--name", "pgsqlms-sync-pgsqld"];
    assert_eq!(s.run("crm_attribute", &[&args[..], &["--update", value]].concat()).0, 0);
    assert_eq!(fs::read_to_string(s.0.join("crm_config/pgsqlms-sync-pgsqld")).unwrap(), value);
    let (rc, cib, _) = s.run("cibadmin", &["--query"]);
    assert_eq!(rc, 0);
    let want = "<nvpair id=\"cib-bootstrap-options-pgsqlms-sync-pgsqld\" name=\"pgsqlms-sync-pgsqld\" \
                value=\"FIRST 1 (&quot;srv2&quot;,&quot;a&amp;b&lt;c&gt;&quot;)\"/>";
    assert!(cib.contains(want), "missing {want} in\n{cib}");
    let (rc, out, _) = s.run("crm_attribute", &[&args[..], &["--query"]].concat());
    assert_eq!(
        (rc, out.trim()),
        (0, format!("scope=crm_config  name=pgsqlms-sync-pgsqld value={value}").as_str())
    );
    for _ in 0..2 {
        assert_eq!(s.run("crm_attribute", &[&args[..], &["--delete"]].concat()).0, 0);
    }
    assert!(!s.run("cibadmin", &["--query"]).1.contains("pgsqlms-sync"));
    assert_eq!(s.run("crm_attribute", &[&args[..], &["--query"]].concat()).0, 105);
}

#[test]
fn crm_node_name_uses_local_node_file() {
    let s = Store::new("crm_node");
    fs::write(s.0.join("local_node"), "srv2\n").unwrap();
    assert_eq!(s.run("crm_node", &["--name"]).1, "srv2\n");
    fs::create_dir_all(s.0.join("fail")).unwrap();
    fs::write(s.0.join("fail/crm_node"), "1").unwrap();
    let (rc, _, err) = s.run("crm_node", &["--name"]);
    assert_eq!(rc, 1, "{err}");
}
