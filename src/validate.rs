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
    let name = conninfo_application_name(&s.primary_conninfo).map_err(|e| {
        problem(OcfExit::ErrArgs, format!("primary_conninfo is not a valid connection string: {e}"))
    })?;
    match name {
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

/// With replication_slots=true: `max_slot_wal_keep_size` (PostgreSQL 13+,
/// `None` on 12, which has no such setting) must bound what a slot keeps,
/// or a node that stays down fills the primary's disk.
pub fn check_slot_settings(
    major: u32,
    max_slot_wal_keep_size: Option<&str>,
) -> Result<(), Problem> {
    let Some(v) = max_slot_wal_keep_size.filter(|_| major >= 13) else {
        return Err(problem(
            OcfExit::ErrInstalled,
            format!(
                "replication_slots needs max_slot_wal_keep_size, which PostgreSQL {major} lacks (a dead node's slot could fill the disk)"
            ),
        ));
    };
    match crate::slots::keep_size_is_bounded(v) {
        Some(true) => Ok(()),
        Some(false) => Err(problem(
            OcfExit::ErrArgs,
            format!(
                "max_slot_wal_keep_size is {}: set it > 0 (e.g. 10GB) for replication_slots, or a dead node's slot fills the disk",
                v.trim()
            ),
        )),
        None => Err(problem(
            OcfExit::ErrArgs,
            format!("max_slot_wal_keep_size reads \"{}\": not a size", v.trim()),
        )),
    }
}

/// The application_name of a libpq connection string: `key=value` pairs
/// (values optionally single-quoted, with `\'` and `\\` escapes) or a URI.
/// A string libpq itself would refuse is an error here too.
pub fn conninfo_application_name(conninfo: &str) -> Result<Option<String>, String> {
    let s = conninfo.trim();
    if s.starts_with("postgresql://") || s.starts_with("postgres://") {
        let Some((_, query)) = s.split_once('?') else { return Ok(None) };
        let mut found = None;
        for kv in query.split('&') {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("missing \"=\" in URI query parameter \"{kv}\""))?;
            if uri_decode(k)? == "application_name" {
                found = Some(uri_decode(v)?);
            }
        }
        return Ok(found);
    }
    let (pairs, error) = conninfo_pairs(s);
    match error {
        Some(e) => Err(e),
        None => Ok(pairs.into_iter().rev().find(|(k, _)| k == "application_name").map(|(_, v)| v)),
    }
}

/// The `key=value` form of a connection string as libpq reads it: values
/// optionally single-quoted, `\` escaping the next character. The pairs read,
/// and what libpq would refuse (a missing `=`, an unterminated quote): the
/// pairs up to that point are kept, the quoted value included.
fn conninfo_pairs(s: &str) -> (Vec<(String, String)>, Option<String>) {
    let mut found = Vec::new();
    let mut chars = s.chars().peekable();
    let skip_blanks = |chars: &mut std::iter::Peekable<std::str::Chars>| {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
    };
    loop {
        skip_blanks(&mut chars);
        if chars.peek().is_none() {
            return (found, None);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        skip_blanks(&mut chars);
        if key.is_empty() || chars.next() != Some('=') {
            return (found, Some(format!("missing \"=\" after \"{key}\"")));
        }
        skip_blanks(&mut chars);
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    None => {
                        let e = format!("unterminated quoted string (value of {key})");
                        found.push((key, value));
                        return (found, Some(e));
                    }
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
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
}

/// libpq's URI decoding: every `%` starts two hex digits, and `%00` is refused.
fn uri_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    for (i, _) in s.match_indices('%') {
        let hex = b.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit));
        match hex {
            None => return Err(format!("invalid percent-encoded token in \"{s}\"")),
            Some(b"00") => return Err(format!("forbidden %00 in \"{s}\"")),
            Some(_) => {}
        }
    }
    Ok(percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned())
}

/// Characters that make the shell pg_ctl runs postgres through do more than
/// split words: expansions, redirections, command separators.
const SHELL_SPECIAL: &[char] = &['$', '`', ';', '|', '&', '<', '>', '(', ')', '\n', '\r', '\0'];

/// start_opts as the words postgres gets. They reach a shell (pg_ctl -o):
/// anything that would expand or run something there is refused, and the
/// words are quoted again before they go (see `instance::pg_ctl_start`).
pub fn start_opts_words(opts: &str) -> Result<Vec<String>, Problem> {
    if let Some(c) = opts.chars().find(|c| SHELL_SPECIAL.contains(c)) {
        return Err(problem(
            OcfExit::ErrConfigured,
            format!(
                "start_opts contains {c:?}, which a shell would expand or act on: give plain postgres options (quote values with spaces)"
            ),
        ));
    }
    shell_words::split(opts).map_err(|e| {
        problem(OcfExit::ErrConfigured, format!("start_opts cannot be split into words: {e}"))
    })
}

/// The port start_opts sets (`-p N`, `-pN`, `-c port=N`, `--port=N`), if any.
pub fn start_opts_port(words: &[String]) -> Option<String> {
    let mut port = None;
    let mut it = words.iter().peekable();
    while let Some(w) = it.next() {
        let setting = match w.as_str() {
            "-p" => it.next().map(|v| format!("port={v}")),
            "-c" => it.next().cloned(),
            w if w.starts_with("-p") => Some(format!("port={}", &w[2..])),
            w if w.starts_with("-c") => Some(w[2..].to_string()),
            w if w.starts_with("--") => Some(w[2..].replace('-', "_")),
            _ => None,
        };
        if let Some((k, v)) = setting.as_deref().and_then(|s| s.split_once('='))
            && k.trim() == "port"
        {
            port = Some(v.trim().to_string());
        }
    }
    port
}

/// start_opts must not move the server to another port than the one the
/// agent connects to.
pub fn check_start_opts(params: &Params) -> Result<Vec<String>, Problem> {
    let words = start_opts_words(&params.start_opts)?;
    if let Some(port) = start_opts_port(&words)
        && port.parse::<u16>().ok() != Some(params.pgport)
    {
        return Err(problem(
            OcfExit::ErrConfigured,
            format!(
                "start_opts sets port {port} but pgport is {}: the agent would not find the server",
                params.pgport
            ),
        ));
    }
    Ok(words)
}

/// The major version of `postgres --version` output ("postgres (PostgreSQL) 15.10 ...").
pub fn binaries_major(version_output: &str) -> Option<u32> {
    let v = version_output.split(')').nth(1)?.split_whitespace().next()?;
    let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The binaries must be of the data directory's major version.
pub fn check_binaries_version(version_output: &str, data_major: u32) -> Result<(), Problem> {
    match binaries_major(version_output) {
        Some(m) if m == data_major => Ok(()),
        Some(m) => Err(problem(
            OcfExit::ErrInstalled,
            format!(
                "bindir holds PostgreSQL {m} binaries but the data directory is PostgreSQL {data_major}: point bindir at version {data_major}"
            ),
        )),
        None => Err(problem(
            OcfExit::ErrInstalled,
            format!(
                "cannot tell the version of postgres in bindir (it printed \"{}\")",
                version_output.trim()
            ),
        )),
    }
}

/// PostgreSQL never runs as root; the agent's commands must not either.
pub fn check_system_user_uid(name: &str, uid: u32) -> Result<(), Problem> {
    if uid == 0 {
        return Err(problem(
            OcfExit::ErrConfigured,
            format!(
                "system_user {name} is root (uid 0): set it to the user owning the data directory (postgres)"
            ),
        ));
    }
    Ok(())
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
    conninfo_pairs(s).0
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

/// `%XX` decoded; a `%` not followed by two hex digits stays as it is
/// (libpq's own check, where one is needed, is `validate::uri_decode`).
pub(crate) fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
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
    fn slots_need_a_bounded_max_slot_wal_keep_size() {
        assert!(check_slot_settings(15, Some("10GB")).is_ok());
        assert!(check_slot_settings(13, Some("1024MB")).is_ok());
        for v in ["-1", "0"] {
            let e = check_slot_settings(15, Some(v)).unwrap_err();
            assert_eq!(e.code, OcfExit::ErrArgs);
            assert!(
                e.reason.starts_with(&format!("max_slot_wal_keep_size is {v}")),
                "{}",
                e.reason
            );
        }
        let e = check_slot_settings(12, None).unwrap_err();
        assert_eq!(e.code, OcfExit::ErrInstalled);
        assert!(e.reason.contains("PostgreSQL 12 lacks"), "{}", e.reason);
        // 12 with a value (cannot happen: postgres -C fails) is refused too.
        assert!(check_slot_settings(12, Some("10GB")).is_err());
        assert_eq!(check_slot_settings(15, Some("much")).unwrap_err().code, OcfExit::ErrArgs);
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
            assert_eq!(conninfo_application_name(ci).unwrap().as_deref(), want, "{ci}");
        }
    }

    /// What libpq refuses is refused, and application_name=%aé does not
    /// panic (no slicing inside a UTF-8 character).
    #[test]
    fn conninfo_libpq_refuses_is_refused() {
        for bad in [
            "application_name='x'y",
            "application_name='unterminated",
            "host=a application_name",
            "=x",
            "postgresql://h/db?application_name=%aé",
            "postgresql://h/db?application_name=%zz",
            "postgresql://h/db?application_name=a%00",
            "postgresql://h/db?application_name",
        ] {
            assert!(conninfo_application_name(bad).is_err(), "{bad}");
            let p = check_settings(&settings("replica", "latest", bad), "srv1").unwrap_err();
            assert_eq!(p.code, OcfExit::ErrArgs, "{bad}");
            assert!(p.reason.contains("not a valid connection string"), "{}", p.reason);
        }
        assert_eq!(
            conninfo_application_name("postgresql://h/db?application_name=%C3%A9t%C3%A9"),
            Ok(Some("été".into()))
        );
    }

    #[test]
    fn start_opts_are_words_without_shell_expansion() {
        assert_eq!(start_opts_words("").unwrap(), Vec::<String>::new());
        assert_eq!(
            start_opts_words("-c config_file='/etc/pg conf/postgresql.conf' -c work_mem=4MB")
                .unwrap(),
            vec!["-c", "config_file=/etc/pg conf/postgresql.conf", "-c", "work_mem=4MB"]
        );
        for bad in [
            "-c x=$(touch /tmp/owned)",
            "-c x=`id`",
            "-c x=$HOME",
            "-c a=1; reboot",
            "-c a=1 | cat",
            "-c a=1 & x",
            "-c a=1 > /etc/x",
            "-c a=1 < /etc/x",
            "-c a=1\nreboot",
            "-c 'unterminated",
        ] {
            let p = start_opts_words(bad).unwrap_err();
            assert_eq!(p.code, OcfExit::ErrConfigured, "{bad}");
            assert!(p.reason.starts_with("start_opts"), "{}", p.reason);
        }
    }

    #[test]
    fn start_opts_port_must_be_pgport() {
        let w = |s: &str| start_opts_words(s).unwrap();
        assert_eq!(start_opts_port(&w("-p 5433")), Some("5433".into()));
        assert_eq!(start_opts_port(&w("-p5433")), Some("5433".into()));
        assert_eq!(start_opts_port(&w("-c port=5434")), Some("5434".into()));
        assert_eq!(start_opts_port(&w("-cport=5434")), Some("5434".into()));
        assert_eq!(start_opts_port(&w("--port=5435")), Some("5435".into()));
        assert_eq!(start_opts_port(&w("-c work_mem=1MB")), None);
        let mut e = ok_env();
        e.insert("OCF_RESKEY_pgport".into(), "5432".into());
        e.insert("OCF_RESKEY_start_opts".into(), "-p 5433".into());
        let p = check_start_opts(&params(&e)).unwrap_err();
        assert_eq!(p.code, OcfExit::ErrConfigured);
        assert!(p.reason.contains("5433") && p.reason.contains("5432"), "{}", p.reason);
        e.insert("OCF_RESKEY_start_opts".into(), "-p 5432 -c work_mem=1MB".into());
        assert!(check_start_opts(&params(&e)).is_ok());
    }

    #[test]
    fn binaries_must_match_the_data_version() {
        let v15 = "postgres (PostgreSQL) 15.10 (Debian 15.10-0+deb12u1)\n";
        assert_eq!(binaries_major(v15), Some(15));
        assert_eq!(binaries_major("postgres (PostgreSQL) 18.1\n"), Some(18));
        assert_eq!(binaries_major("postgres (PostgreSQL) 19beta1"), Some(19));
        assert_eq!(check_binaries_version(v15, 15), Ok(()));
        let p = check_binaries_version(v15, 18).unwrap_err();
        assert_eq!(p.code, OcfExit::ErrInstalled);
        assert!(p.reason.contains("15") && p.reason.contains("18"));
        assert_eq!(check_binaries_version("", 15).unwrap_err().code, OcfExit::ErrInstalled);
    }

    #[test]
    fn root_is_not_a_system_user() {
        assert_eq!(check_system_user_uid("root", 0).unwrap_err().code, OcfExit::ErrConfigured);
        assert_eq!(check_system_user_uid("postgres", 110), Ok(()));
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        /// A value as libpq would quote it in key=value form.
        fn quote(v: &str) -> String {
            format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
        }

        proptest! {
            #[test]
            fn conninfo_never_panics(s in "\\PC*") {
                let _ = conninfo_application_name(&s);
                let _ = conninfo_application_name(&format!("postgresql://h/d?{s}"));
            }

            #[test]
            fn conninfo_round_trips(name in "\\PC*", host in "[a-z0-9.]{1,20}") {
                let ci = format!("host={host} application_name={} sslmode=disable", quote(&name));
                prop_assert_eq!(conninfo_application_name(&ci), Ok(Some(name.clone())));
                let uri = format!(
                    "postgresql://{host}/db?sslmode=disable&application_name={}",
                    percent_encoding::utf8_percent_encode(&name, percent_encoding::NON_ALPHANUMERIC)
                );
                prop_assert_eq!(conninfo_application_name(&uri), Ok(Some(name)));
            }

            #[test]
            fn start_opts_never_panic_and_quoted_words_round_trip(
                s in "\\PC*",
                words in proptest::collection::vec("[^$`;|&<>()\n\r\0]*", 0..6),
            ) {
                let _ = start_opts_words(&s);
                let _ = start_opts_words(&s).map(|w| start_opts_port(&w));
                let joined = shell_words::join(&words);
                prop_assert_eq!(start_opts_words(&joined).unwrap(), words);
            }

            #[test]
            fn version_parsers_never_panic(s in "\\PC*") {
                let _ = check_pg_version(&s);
                let _ = binaries_major(&s);
            }
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
