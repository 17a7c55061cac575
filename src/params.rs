//! Resource parameters: their single definition (names, defaults, help text,
//! used by meta-data and the man page alike) and their parsing from the
//! `OCF_RESKEY_*` environment into plain data.

use std::collections::HashMap;
use std::path::PathBuf;

/// One parameter as meta-data and the manual describe it.
pub struct ParamSpec {
    pub name: &'static str,
    pub content_type: &'static str,
    /// Default as shown to the operator (`None`: no default shown).
    pub default: Option<&'static str>,
    pub unique: bool,
    /// OCF 1.1 `reloadable`: read at every action, so a new value needs
    /// no restart (Pacemaker runs reload-agent instead of stop and start).
    pub reloadable: bool,
    pub shortdesc: &'static str,
    pub longdesc: &'static str,
}

pub const DEFAULT_SYSTEM_USER: &str = "postgres";
pub const DEFAULT_BINDIR: &str = "/usr/bin";
pub const DEFAULT_PGDATA: &str = "/var/lib/pgsql/data";
pub const DEFAULT_PGHOST: &str = "/var/run/postgresql";
pub const DEFAULT_PGPORT: u16 = 5432;
pub const DEFAULT_SLOTS_GRACE: u64 = 600;

/// Pacemaker's booleans (crm_is_true and its false words).
fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "y" | "1" => Some(true),
        "false" | "off" | "no" | "n" | "0" => Some(false),
        _ => None,
    }
}

/// Parameter names and defaults are PAF's, so an existing resource can switch
/// agent without touching its parameters.
pub const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "system_user",
        content_type: "string",
        default: Some(DEFAULT_SYSTEM_USER),
        unique: false,
        reloadable: false,
        shortdesc: "PostgreSQL system user",
        longdesc: "System user account that owns the data directory and runs the PostgreSQL server. Every PostgreSQL command the agent runs, runs as this user.",
    },
    ParamSpec {
        name: "bindir",
        content_type: "string",
        default: Some(DEFAULT_BINDIR),
        unique: false,
        reloadable: false,
        shortdesc: "Path to the PostgreSQL binaries",
        longdesc: "Directory holding pg_ctl, pg_controldata, pg_waldump and postgres (on Debian: /usr/lib/postgresql/<major>/bin).",
    },
    ParamSpec {
        name: "pgdata",
        content_type: "string",
        default: Some(DEFAULT_PGDATA),
        unique: true,
        reloadable: false,
        shortdesc: "Path to the configuration directory",
        longdesc: "The directory given to pg_ctl -D: where postgresql.conf lives. It is also the data directory unless datadir says otherwise (Debian keeps configuration in /etc/postgresql/<major>/<cluster>).",
    },
    ParamSpec {
        name: "datadir",
        content_type: "string",
        default: Some("PGDATA"),
        unique: true,
        reloadable: false,
        shortdesc: "Path to the data directory",
        longdesc: "The data directory (data_directory), when it is not pgdata. The agent reads the control file and writes standby.signal here.",
    },
    ParamSpec {
        name: "pghost",
        content_type: "string",
        default: Some(DEFAULT_PGHOST),
        unique: false,
        reloadable: false,
        shortdesc: "Host the agent connects to",
        longdesc: "Unix socket directory (or, not recommended, host name) the agent connects to. The agent connects as system_user; over a unix socket, peer authentication works out of the box.",
    },
    ParamSpec {
        name: "pgport",
        content_type: "integer",
        default: Some("5432"),
        unique: false,
        reloadable: false,
        shortdesc: "PostgreSQL port",
        longdesc: "The port PostgreSQL listens on.",
    },
    ParamSpec {
        name: "maxlag",
        content_type: "integer",
        default: Some("0"),
        unique: false,
        reloadable: true,
        shortdesc: "Maximum lag allowed on a standby before it may not be promoted",
        longdesc: "Bytes of WAL a standby may lag behind the primary and still be promoted. A standby further behind gets a negative promotion score, and the election at promotion time refuses it too. 0 disables the check.",
    },
    ParamSpec {
        name: "sync_failover",
        content_type: "string",
        default: Some("safe"),
        unique: false,
        reloadable: true,
        shortdesc: "Synchronous replication: refuse (safe) or allow (available) a failover that may lose acknowledged commits",
        longdesc: "Used only when synchronous_standby_names is set on the primary. safe: a standby is promoted only when the surviving standbys provably hold every commit the primary acknowledged (enough members of synchronous_standby_names survive); otherwise the promotion is refused, and its reason names the standbys to bring back. available: the most advanced surviving standby is promoted anyway, with a warning saying which acknowledged commits may be lost.",
    },
    ParamSpec {
        name: "rejoin_policy",
        content_type: "string",
        default: Some(crate::rejoin_policy::DEFAULT),
        unique: false,
        reloadable: true,
        shortdesc: "What a former primary whose WAL diverged does at start: manual, rewind or rewind-or-clone",
        longdesc: "Used only when a start finds that this instance last ran as a primary and its WAL provably forked from the history of the primary the CIB shows on another node (a failover lost its last transactions). manual: refuse the start, the reason asks for pg_rewind (PAF's behaviour). rewind: when that primary answers through primary_conninfo, copy the WAL segments that will be discarded (from the last checkpoint before the fork on) to <datadir>.diverged-<YYYYmmddTHHMMSS>-tl<timeline> beside the data directory (readable with pg_waldump), run pg_rewind from it as system_user, then start as a standby; needs wal_log_hints=on or data checksums, and a primary_conninfo user allowed to run pg_rewind (superuser, or the grants of the pg_rewind manual). rewind-or-clone: the same, and when pg_rewind is impossible or fails, rebuild with pg_basebackup, the old data directory renamed to <datadir>.replaced-<YYYYmmddTHHMMSS> (refused when the disk has no room for both). The transactions the old primary committed after the fork are lost from the cluster either way; they stay readable in the kept WAL. Both run within the start timeout: raise it to what a pg_rewind or a full copy takes; an operation cut by the timeout is redone at the next start. This node's own files at the top of the data directory (postgresql.conf, postgresql.auto.conf, pg_hba.conf, pg_ident.conf, an included local.conf, certificates; not PostgreSQL's state files) are put back after the copy; files in its subdirectories come from the primary.",
    },
    ParamSpec {
        name: "recovery_template",
        content_type: "string",
        default: None,
        unique: true,
        reloadable: false,
        shortdesc: "Unsupported (PostgreSQL 11 and older)",
        longdesc: "Accepted by PAF for PostgreSQL 11 and older. This agent supports PostgreSQL 12 and newer only, where standbys are configured in postgresql.conf and started with standby.signal; setting this parameter is a configuration error.",
    },
    ParamSpec {
        name: "start_opts",
        content_type: "string",
        default: Some(""),
        unique: false,
        reloadable: false,
        shortdesc: "Additional arguments given to the postgres process on startup",
        longdesc: "Extra arguments passed to postgres through pg_ctl -o at start, for example \"-c config_file=/etc/postgresql/15/main/postgresql.conf\". Split into words by shell rules (quote a value with spaces); shell syntax ($, backticks, ;, |, &, <, >, parentheses, newlines) is refused, and a port set here must equal pgport.",
    },
    ParamSpec {
        name: "replication_slots",
        content_type: "boolean",
        default: Some("false"),
        unique: false,
        reloadable: false,
        shortdesc: "Keep one physical replication slot per cluster node",
        longdesc: "true: every node (primary and standbys) keeps a physical replication slot named pgsqlms_<node> for each other cluster node, so a standby that is down keeps the WAL it needs, and a new primary already holds a slot for every other node. Standbys are started with -c primary_slot_name=pgsqlms_<node> (nothing is written in the configuration files): a running standby uses its slot from its next start. Slots of nodes removed from the cluster are dropped after replication_slots_grace; slots whose name does not start with pgsqlms_ are never touched. Requires PostgreSQL 13+ and max_slot_wal_keep_size > 0, so that a dead node cannot fill the primary's disk: a slot that falls behind by more is invalidated, reported in the log and in the node attribute pgsqlms-slot-lost-<resource>, and the node must be rebuilt.",
    },
    ParamSpec {
        name: "replication_slots_grace",
        content_type: "integer",
        default: Some("600"),
        unique: false,
        reloadable: true,
        shortdesc: "Seconds a slot of a node removed from the cluster is kept",
        longdesc: "With replication_slots=true: how long the slot of a node that is no longer a cluster node is kept, unused, before the agent drops it (a node removed and added back within this time keeps its WAL).",
    },
];

/// Parameters as parsed from the environment. Values are raw here; checks
/// that need facts from the machine live in `validate`.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub system_user: String,
    pub bindir: PathBuf,
    pub pgdata: PathBuf,
    pub datadir: PathBuf,
    pub pghost: String,
    pub pgport: u16,
    pub maxlag: u64,
    pub start_opts: String,
    pub sync_failover: crate::syncrep::Failover,
    pub rejoin_policy: crate::rejoin_policy::Policy,
    /// Set only when the operator gave the PAF-only parameter: refused.
    pub recovery_template: Option<String>,
    /// Keep a physical slot per other cluster node (`slots`).
    pub replication_slots: bool,
    /// Seconds before the slot of a node gone from the cluster is dropped.
    pub replication_slots_grace: u64,
}

/// Why the parameters cannot be used at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParamError(pub String);

/// The resource definition is wrong, on every node.
impl crate::agent::EdgeError for ParamError {
    const CODE: crate::exit::OcfExit = crate::exit::OcfExit::ErrConfigured;
}

fn reskey<'a>(env: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    env.get(&format!("OCF_RESKEY_{name}")).map(|s| s.as_str()).filter(|s| !s.is_empty())
}

impl Params {
    pub fn from_env(env: &HashMap<String, String>) -> Result<Params, ParamError> {
        let pgdata = PathBuf::from(reskey(env, "pgdata").unwrap_or(DEFAULT_PGDATA));
        let datadir = reskey(env, "datadir").map(PathBuf::from).unwrap_or_else(|| pgdata.clone());
        let pgport = match reskey(env, "pgport") {
            None => DEFAULT_PGPORT,
            Some(s) => s.trim().parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                ParamError(format!("pgport must be a TCP port number, got \"{s}\""))
            })?,
        };
        let maxlag = match reskey(env, "maxlag") {
            None => 0,
            Some(s) => s.trim().parse::<u64>().map_err(|_| {
                ParamError(format!(
                    "maxlag must be a whole number of bytes (0 disables it), got \"{s}\""
                ))
            })?,
        };
        let sync_failover = match reskey(env, "sync_failover").map(str::trim) {
            None | Some("safe") => crate::syncrep::Failover::Safe,
            Some("available") => crate::syncrep::Failover::Available,
            Some(s) => {
                return Err(ParamError(format!(
                    "sync_failover must be \"safe\" or \"available\", got \"{s}\""
                )));
            }
        };
        let replication_slots = match reskey(env, "replication_slots").map(str::trim) {
            None => false,
            Some(v) => parse_bool(v).ok_or_else(|| {
                ParamError(format!("replication_slots must be true or false, got \"{v}\""))
            })?,
        };
        let replication_slots_grace = match reskey(env, "replication_slots_grace") {
            None => DEFAULT_SLOTS_GRACE,
            Some(s) => s.trim().parse::<u64>().map_err(|_| {
                ParamError(format!(
                    "replication_slots_grace must be a whole number of seconds, got \"{s}\""
                ))
            })?,
        };
        let rejoin_policy = crate::rejoin_policy::Policy::parse(
            reskey(env, "rejoin_policy").unwrap_or(crate::rejoin_policy::DEFAULT),
        )
        .map_err(ParamError)?;
        Ok(Params {
            system_user: reskey(env, "system_user").unwrap_or(DEFAULT_SYSTEM_USER).to_string(),
            bindir: PathBuf::from(reskey(env, "bindir").unwrap_or(DEFAULT_BINDIR)),
            pgdata,
            datadir,
            pghost: reskey(env, "pghost").unwrap_or(DEFAULT_PGHOST).to_string(),
            pgport,
            maxlag,
            start_opts: reskey(env, "start_opts").unwrap_or("").to_string(),
            sync_failover,
            rejoin_policy,
            recovery_template: reskey(env, "recovery_template").map(str::to_string),
            replication_slots,
            replication_slots_grace,
        })
    }

    pub fn bin(&self, name: &str) -> PathBuf {
        self.bindir.join(name)
    }
}

/// An environment from (name, value) pairs, each name after `prefix`.
#[cfg(test)]
pub fn env_of(prefix: &str, pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (format!("{prefix}{k}"), v.to_string())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        env_of("OCF_RESKEY_", pairs)
    }

    #[test]
    fn defaults_are_pafs() {
        let p = Params::from_env(&HashMap::new()).unwrap();
        assert_eq!(p.system_user, "postgres");
        assert_eq!(p.bindir, PathBuf::from("/usr/bin"));
        assert_eq!(p.pgdata, PathBuf::from("/var/lib/pgsql/data"));
        assert_eq!(p.datadir, p.pgdata);
        assert_eq!(p.pghost, "/var/run/postgresql");
        assert_eq!(p.pgport, 5432);
        assert_eq!(p.maxlag, 0);
        assert_eq!(p.start_opts, "");
        assert_eq!(p.recovery_template, None);
        assert_eq!(p.sync_failover, crate::syncrep::Failover::Safe);
        assert!(!p.replication_slots);
        assert_eq!(p.replication_slots_grace, 600);
        assert_eq!(p.rejoin_policy, crate::rejoin_policy::Policy::Manual);
    }

    #[test]
    fn replication_slots_is_a_boolean_with_a_grace() {
        let f = |v: &str| Params::from_env(&env(&[("replication_slots", v)]));
        for t in ["true", "on", "YES", "1", " y "] {
            assert!(f(t).unwrap().replication_slots, "{t}");
        }
        for t in ["false", "off", "no", "0"] {
            assert!(!f(t).unwrap().replication_slots, "{t}");
        }
        let e = f("sometimes").unwrap_err();
        assert!(e.0.contains("replication_slots") && e.0.contains("sometimes"), "{e}");
        let g = |v: &str| Params::from_env(&env(&[("replication_slots_grace", v)]));
        assert_eq!(g("0").unwrap().replication_slots_grace, 0);
        assert_eq!(g(" 30 ").unwrap().replication_slots_grace, 30);
        assert!(g("-1").unwrap_err().0.contains("replication_slots_grace"));
        assert!(g("1h").is_err());
    }

    #[test]
    fn rejoin_policy_takes_three_values() {
        use crate::rejoin_policy::Policy;
        let f = |v: &str| Params::from_env(&env(&[("rejoin_policy", v)])).map(|p| p.rejoin_policy);
        assert_eq!(f("manual"), Ok(Policy::Manual));
        assert_eq!(f("rewind"), Ok(Policy::Rewind));
        assert_eq!(f("rewind-or-clone"), Ok(Policy::RewindOrClone));
        let e = f("clone").unwrap_err();
        assert!(e.0.contains("rejoin_policy") && e.0.contains("clone"), "{e}");
    }

    #[test]
    fn sync_failover_takes_two_values() {
        let f = |v: &str| Params::from_env(&env(&[("sync_failover", v)])).map(|p| p.sync_failover);
        assert_eq!(f("safe"), Ok(crate::syncrep::Failover::Safe));
        assert_eq!(f(" available "), Ok(crate::syncrep::Failover::Available));
        let e = f("Available").unwrap_err();
        assert!(e.0.contains("sync_failover") && e.0.contains("Available"), "{e}");
    }

    #[test]
    fn datadir_overrides_pgdata_for_data_only() {
        let p = Params::from_env(&env(&[
            ("pgdata", "/etc/postgresql/15/main"),
            ("datadir", "/srv/pg"),
        ]))
        .unwrap();
        assert_eq!(p.pgdata, PathBuf::from("/etc/postgresql/15/main"));
        assert_eq!(p.datadir, PathBuf::from("/srv/pg"));
    }

    #[test]
    fn empty_values_mean_default() {
        let p = Params::from_env(&env(&[("pgport", ""), ("maxlag", "")])).unwrap();
        assert_eq!(p.pgport, 5432);
        assert_eq!(p.maxlag, 0);
    }

    #[test]
    fn bad_numbers_are_refused_with_the_value() {
        for (k, v) in [
            ("maxlag", "10MB"),
            ("maxlag", "-1"),
            ("pgport", "0"),
            ("pgport", "70000"),
            ("pgport", "x"),
        ] {
            let e = Params::from_env(&env(&[(k, v)])).unwrap_err();
            assert!(e.0.contains(k) && e.0.contains(v), "{e}");
        }
        assert_eq!(Params::from_env(&env(&[("maxlag", " 1024 ")])).unwrap().maxlag, 1024);
    }

    #[test]
    fn every_parameter_is_described_once() {
        let mut names: Vec<_> = PARAMS.iter().map(|p| p.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), PARAMS.len());
        for n in [
            "system_user",
            "bindir",
            "pgdata",
            "datadir",
            "pghost",
            "pgport",
            "start_opts",
            "maxlag",
            "sync_failover",
            "rejoin_policy",
            "recovery_template",
            "replication_slots",
            "replication_slots_grace",
        ] {
            assert!(names.contains(&n), "{n}");
        }
    }
}
