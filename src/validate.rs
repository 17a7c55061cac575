//! Configuration checks, pure over facts gathered at the edge. Which OCF
//! code each problem gets matters to Pacemaker:
//! - ERR_INSTALLED (5, node): software missing or too old here.
//! - ERR_ARGS (2, node): this node's setup is wrong (its postgresql.conf,
//!   its data directory, its system user). PAF uses it for these too.
//! - ERR_CONFIGURED (6, fatal everywhere): the resource definition itself
//!   is wrong (meta attributes, parameter values).

use crate::exit::OcfExit;
use crate::params::Params;
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub code: OcfExit,
    pub reason: String,
}

fn problem(code: OcfExit, reason: impl Into<String>) -> Problem {
    Problem { code, reason: reason.into() }
}

/// Cluster-level meta attributes and parameters: no machine facts needed.
pub fn check_resource(params: &Params, env: &HashMap<String, String>) -> Result<(), Problem> {
    check_parameters(params, env)?;
    check_clone_meta(env)
}

/// Whether the clone's meta attributes came with this run. Pacemaker passes
/// them to every action of a clone instance; `crm_resource --validate`, which
/// `pcs resource create --agent-validation` runs before the clone exists,
/// passes none: then only the parameters can be checked.
pub fn clone_meta_given(env: &HashMap<String, String>) -> bool {
    ["clone", "clone_max", "clone_node_max", "promotable", "notify", "promoted_max", "master_max"]
        .iter()
        .any(|k| env.contains_key(&format!("OCF_RESKEY_CRM_meta_{k}")))
}

/// The parameters and the Pacemaker version.
pub fn check_parameters(params: &Params, env: &HashMap<String, String>) -> Result<(), Problem> {
    if params.recovery_template.is_some() {
        return Err(problem(
            OcfExit::ErrConfigured,
            "parameter recovery_template is for PostgreSQL 11 and older; this agent supports PostgreSQL 12+ \
             (standby settings in postgresql.conf, standby.signal): remove the parameter",
        ));
    }
    if let Some(set) = env.get("OCF_RESKEY_crm_feature_set")
        && !feature_set_at_least(set, (3, 9, 0))
    {
        return Err(problem(
            OcfExit::ErrInstalled,
            format!(
                "Pacemaker 2.1 or newer is required (CRM feature set {set} is older than 3.9.0)"
            ),
        ));
    }
    Ok(())
}

/// The clone's meta attributes: notify=true, promoted-max=1.
pub fn check_clone_meta(env: &HashMap<String, String>) -> Result<(), Problem> {
    let meta = |k: &str| env.get(&format!("OCF_RESKEY_CRM_meta_{k}")).map(|s| s.trim().to_string());
    match meta("notify").as_deref() {
        Some("true") | Some("1") | Some("yes") | Some("on") => {}
        other => {
            return Err(problem(
                OcfExit::ErrConfigured,
                format!(
                    "meta attribute notify must be true for this promotable clone (it is {}): the election and switchover checks run in notifications",
                    other.map(|v| format!("\"{v}\"")).unwrap_or_else(|| "unset".into())
                ),
            ));
        }
    }
    let promoted_max = meta("promoted_max")
        .filter(|v| !v.is_empty())
        .or_else(|| meta("master_max").filter(|v| !v.is_empty()));
    if let Some(v) = promoted_max
        && v != "1"
    {
        return Err(problem(
            OcfExit::ErrConfigured,
            format!(
                "meta attribute promoted-max must be 1 (it is {v}): PostgreSQL has exactly one primary"
            ),
        ));
    }
    Ok(())
}

pub fn feature_set_at_least(set: &str, min: (u32, u32, u32)) -> bool {
    let mut it = set.trim().split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let v = (it.next().unwrap_or(0), it.next().unwrap_or(0), it.next().unwrap_or(0));
    v >= min
}

/// `PG_VERSION` content → major version, refusing anything before 12.
pub fn check_pg_version(content: &str) -> Result<u32, Problem> {
    let text = content.trim();
    let major = text.split('.').next().and_then(|m| m.parse::<u32>().ok()).ok_or_else(|| {
        problem(
            OcfExit::ErrInstalled,
            format!("PG_VERSION holds \"{text}\", not a PostgreSQL version"),
        )
    })?;
    if major < 12 {
        return Err(problem(
            OcfExit::ErrInstalled,
            format!("PostgreSQL {text} is not supported: this agent needs PostgreSQL 12 or newer"),
        ));
    }
    Ok(major)
}

/// Settings a standby of this agent needs, as the server would read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub wal_level: String,
    pub recovery_target_timeline: String,
    pub primary_conninfo: String,
}

pub fn check_settings(s: &Settings, node: &str) -> Result<(), Problem> {
    if !matches!(s.wal_level.as_str(), "replica" | "logical") {
        return Err(problem(
            OcfExit::ErrArgs,
            format!(
                "wal_level is \"{}\": set it to replica (or logical) so standbys can replicate",
                s.wal_level
            ),
        ));
    }
    if s.recovery_target_timeline != "latest" {
        return Err(problem(
            OcfExit::ErrArgs,
            format!(
                "recovery_target_timeline is \"{}\": set it to 'latest' so standbys follow a newly promoted primary",
                s.recovery_target_timeline
            ),
        ));
    }
    match conninfo_application_name(&s.primary_conninfo) {
        Some(name) if name == node => Ok(()),
        found => Err(problem(
            OcfExit::ErrArgs,
            format!(
                "primary_conninfo must contain application_name={node} (this node's name) so the primary can score it; it has {}",
                found.map(|n| format!("application_name={n}")).unwrap_or_else(|| "none".into())
            ),
        )),
    }
}

/// The application_name of a libpq connection string: `key=value` pairs
/// (values optionally single-quoted, with `\'` and `\\` escapes) or a URI.
pub fn conninfo_application_name(conninfo: &str) -> Option<String> {
    let s = conninfo.trim();
    if s.starts_with("postgresql://") || s.starts_with("postgres://") {
        let query = s.split_once('?')?.1;
        return query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .filter(|(k, _)| *k == "application_name")
            .map(|(_, v)| percent_decode(v))
            .next_back();
    }
    let mut found = None;
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            break;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return found; // malformed: keep what we had
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '\'' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        if key == "application_name" {
            found = Some(value);
        }
    }
    found
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn ok_env() -> HashMap<String, String> {
        env(&[("OCF_RESKEY_CRM_meta_notify", "true"), ("OCF_RESKEY_CRM_meta_promoted_max", "1")])
    }

    fn params(e: &HashMap<String, String>) -> Params {
        Params::from_env(e).unwrap()
    }

    #[test]
    fn resource_checks() {
        let e = ok_env();
        assert_eq!(check_resource(&params(&e), &e), Ok(()));

        let mut e = ok_env();
        e.insert("OCF_RESKEY_CRM_meta_notify".into(), "false".into());
        assert_eq!(check_resource(&params(&e), &e).unwrap_err().code, OcfExit::ErrConfigured);
        e.remove("OCF_RESKEY_CRM_meta_notify");
        assert!(check_resource(&params(&e), &e).unwrap_err().reason.contains("unset"));

        for key in ["OCF_RESKEY_CRM_meta_promoted_max", "OCF_RESKEY_CRM_meta_master_max"] {
            let mut e = ok_env();
            e.remove("OCF_RESKEY_CRM_meta_promoted_max");
            e.insert(key.into(), "2".into());
            let p = check_resource(&params(&e), &e).unwrap_err();
            assert_eq!(p.code, OcfExit::ErrConfigured, "{key}");
            assert!(p.reason.contains("promoted-max"));
        }

        let mut e = ok_env();
        e.insert("OCF_RESKEY_recovery_template".into(), "/x".into());
        let p = check_resource(&params(&e), &e).unwrap_err();
        assert_eq!(p.code, OcfExit::ErrConfigured);
        assert!(p.reason.contains("PostgreSQL 12"));

        let mut e = ok_env();
        e.insert("OCF_RESKEY_crm_feature_set".into(), "3.6.1".into());
        assert_eq!(check_resource(&params(&e), &e).unwrap_err().code, OcfExit::ErrInstalled);
        e.insert("OCF_RESKEY_crm_feature_set".into(), "3.16.2".into());
        assert_eq!(check_resource(&params(&e), &e), Ok(()));
    }

    #[test]
    fn clone_meta_presence() {
        // crm_resource --validate (pcs --agent-validation): no meta at all
        let bare = env(&[("OCF_RESKEY_crm_feature_set", "3.20.0")]);
        assert!(!clone_meta_given(&bare));
        assert_eq!(check_parameters(&params(&bare), &bare), Ok(()));
        // an action of a clone instance without notify still fails
        let clone = env(&[("OCF_RESKEY_CRM_meta_clone_max", "3")]);
        assert!(clone_meta_given(&clone));
        assert!(check_clone_meta(&clone).unwrap_err().reason.contains("unset"));
        assert!(check_resource(&params(&clone), &clone).is_err());
        assert!(clone_meta_given(&ok_env()));
        assert_eq!(check_clone_meta(&ok_env()), Ok(()));
        // parameter problems are found without meta attributes too
        let mut e = bare.clone();
        e.insert("OCF_RESKEY_recovery_template".into(), "/x".into());
        assert!(check_parameters(&params(&e), &e).is_err());
    }

    #[test]
    fn pg_versions() {
        assert_eq!(check_pg_version("15\n"), Ok(15));
        assert_eq!(check_pg_version("18"), Ok(18));
        assert_eq!(check_pg_version("12"), Ok(12));
        assert_eq!(check_pg_version("11").unwrap_err().code, OcfExit::ErrInstalled);
        assert_eq!(check_pg_version("9.6").unwrap_err().code, OcfExit::ErrInstalled);
        assert_eq!(check_pg_version("garbage").unwrap_err().code, OcfExit::ErrInstalled);
    }

    fn settings(wal: &str, rtt: &str, ci: &str) -> Settings {
        Settings {
            wal_level: wal.into(),
            recovery_target_timeline: rtt.into(),
            primary_conninfo: ci.into(),
        }
    }

    #[test]
    fn settings_checks() {
        let good = settings("replica", "latest", "host=10.0.0.1 application_name=srv1");
        assert_eq!(check_settings(&good, "srv1"), Ok(()));
        assert_eq!(
            check_settings(&settings("logical", "latest", "application_name=srv1"), "srv1"),
            Ok(())
        );
        for bad in [
            settings("minimal", "latest", "application_name=srv1"),
            settings("replica", "current", "application_name=srv1"),
            settings("replica", "latest", "host=x"),
            settings("replica", "latest", "application_name=srv2"),
            settings("replica", "latest", ""),
        ] {
            assert_eq!(check_settings(&bad, "srv1").unwrap_err().code, OcfExit::ErrArgs, "{bad:?}");
        }
        let p = check_settings(&settings("replica", "latest", "application_name=srv2"), "srv1")
            .unwrap_err();
        assert!(
            p.reason.contains("application_name=srv1")
                && p.reason.contains("application_name=srv2")
        );
    }

    #[test]
    fn application_name_in_every_conninfo_form() {
        let cases = [
            ("host=a application_name=srv1", Some("srv1")),
            ("application_name='srv1' host=a", Some("srv1")),
            ("host=a application_name = 'srv 1'", Some("srv 1")),
            ("application_name='it\\'s'", Some("it's")),
            ("host=a user=rep", None),
            ("host='x application_name=fake' application_name=real", Some("real")),
            ("host='x application_name=fake'", None),
            (
                "postgresql://rep@10.0.0.1:5432/postgres?application_name=srv1&sslmode=disable",
                Some("srv1"),
            ),
            ("postgres://h/db?application_name=srv%31", Some("srv1")),
            ("postgresql://h/db", None),
            ("", None),
        ];
        for (ci, want) in cases {
            assert_eq!(conninfo_application_name(ci).as_deref(), want, "{ci}");
        }
    }
}
