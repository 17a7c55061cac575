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
    let meta = |k: &str| env.get(&format!("OCF_RESKEY_CRM_meta_{k}")).map(|s| s.trim().to_string());
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
    conninfo_params(conninfo)
        .into_iter()
        .filter(|(k, _)| k == "application_name")
        .map(|(_, v)| v)
        .next_back()
}

/// The parameters of a libpq connection string, in order, as libpq reads
/// both of its forms: `key=value` pairs or a `postgresql://` URI (user,
/// password, hosts and ports, database, then the query's parameters).
/// Malformed input yields the pairs read before the fault.
pub fn conninfo_params(conninfo: &str) -> Vec<(String, String)> {
    let s = conninfo.trim();
    for scheme in ["postgresql://", "postgres://"] {
        if let Some(rest) = s.strip_prefix(scheme) {
            return uri_params(rest);
        }
    }
    let mut found = Vec::new();
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
        found.push((key, value));
    }
    found
}

/// `[user[:password]@][host][:port][,...][/dbname][?key=value&...]`
fn uri_params(rest: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let (head, query) = match rest.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (rest, None),
    };
    let (netloc, dbname) = match head.split_once('/') {
        Some((n, d)) => (n, Some(d)),
        None => (head, None),
    };
    let hostlist = match netloc.split_once('@') {
        Some((userinfo, hosts)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                out.push(("user".to_string(), percent_decode(user)));
            }
            if let Some(p) = password {
                out.push(("password".to_string(), percent_decode(p)));
            }
            hosts
        }
        None => netloc,
    };
    if !hostlist.is_empty() {
        let (mut hosts, mut ports) = (Vec::new(), Vec::new());
        for hp in hostlist.split(',') {
            // [v6addr]:port, host:port, host
            let (host, port) = if let Some(v6) = hp.strip_prefix('[') {
                match v6.split_once(']') {
                    Some((h, p)) => (h, p.strip_prefix(':').unwrap_or("")),
                    None => (v6, ""),
                }
            } else {
                match hp.rsplit_once(':') {
                    Some((h, p)) => (h, p),
                    None => (hp, ""),
                }
            };
            hosts.push(percent_decode(host));
            ports.push(percent_decode(port));
        }
        if hosts.iter().any(|h| !h.is_empty()) {
            out.push(("host".to_string(), hosts.join(",")));
        }
        if ports.iter().any(|p| !p.is_empty()) {
            out.push(("port".to_string(), ports.join(",")));
        }
    }
    if let Some(d) = dbname.filter(|d| !d.is_empty()) {
        out.push(("dbname".to_string(), percent_decode(d)));
    }
    for kv in query.unwrap_or("").split('&').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        out.push((percent_decode(k), percent_decode(v)));
    }
    out
}

/// A `key='value' ...` connection string of `params` (quoted as libpq reads).
pub fn conninfo_string(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{k}='{}'", v.replace('\\', "\\\\").replace('\'', "\\'")))
        .collect::<Vec<_>>()
        .join(" ")
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        // Bytes, not a str slice: a '%' before a multi-byte character must
        // not cut it (that panicked).
        if b[i] == b'%'
            && let Some(hex) = b.get(i + 1..i + 3)
            && hex.iter().all(u8::is_ascii_hexdigit)
            && let Ok(v) = u8::from_str_radix(&String::from_utf8_lossy(hex), 16)
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
            ("postgres://h/db?application_name=%C3%A9%", Some("é%")),
            ("postgres://h/db?application_name=%é", Some("%é")),
            ("postgresql://h/db", None),
            ("", None),
        ];
        for (ci, want) in cases {
            assert_eq!(conninfo_application_name(ci).as_deref(), want, "{ci}");
        }
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn conninfo_parameters_of_both_forms() {
        assert_eq!(
            conninfo_params(
                "postgresql://rep:s%40cret@10.0.0.1:5433/postgres?application_name=srv1&sslmode=disable"
            ),
            pairs(&[
                ("user", "rep"),
                ("password", "s@cret"),
                ("host", "10.0.0.1"),
                ("port", "5433"),
                ("dbname", "postgres"),
                ("application_name", "srv1"),
                ("sslmode", "disable"),
            ])
        );
        assert_eq!(
            conninfo_params("postgres://%2Ftmp%2Fsock:5432?application_name=a"),
            pairs(&[("host", "/tmp/sock"), ("port", "5432"), ("application_name", "a")])
        );
        assert_eq!(
            conninfo_params("postgresql://[::1]:5432,h2/db"),
            pairs(&[("host", "::1,h2"), ("port", "5432,"), ("dbname", "db")])
        );
        assert_eq!(conninfo_params("postgresql://"), pairs(&[]));
        assert_eq!(
            conninfo_params("host=/tmp port=5 application_name='a b'"),
            pairs(&[("host", "/tmp"), ("port", "5"), ("application_name", "a b")])
        );
    }

    #[test]
    fn conninfo_strings_read_back_the_same() {
        let p = pairs(&[("host", "/tmp/it's"), ("password", "a\\b c"), ("application_name", "")]);
        assert_eq!(conninfo_params(&conninfo_string(&p)), p);
    }

    proptest::proptest! {
        /// Any parameters written as a connection string read back the same.
        #[test]
        fn conninfo_strings_round_trip(
            p in proptest::collection::vec(("[a-z_]{1,16}", "\\PC{0,20}"), 0..6)
        ) {
            let p: Vec<(String, String)> = p;
            proptest::prop_assert_eq!(conninfo_params(&conninfo_string(&p)), p);
        }

        #[test]
        fn any_conninfo_is_read_without_panic(s in "(postgresql://|[@:/?&=,%'\\\\\\[\\] ]|\\PC){0,40}") {
            let _ = conninfo_params(&s);
            let _ = conninfo_application_name(&s);
        }
    }
}
