//! Health checks for load balancers (`pgsqlms health-server`): what each
//! path answers, from what this node knows. Pure; the HTTP server and the
//! PostgreSQL query are in `healthd`.
//!
//! `/primary` answers 200 only where Pacemaker promoted this node (the
//! promote action leaves a marker that demote and stop remove first, see
//! `promotion_marker`) *and* PostgreSQL is a writable primary: a primary
//! that Pacemaker did not promote (started by hand, a former primary not
//! yet demoted) never gets write traffic.

use crate::status::LocalPg;
use serde::Serialize;

/// What a check asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Primary,
    /// A streaming standby, within `max_lag` bytes of the primary if given.
    Replica {
        max_lag: Option<u64>,
    },
    /// PostgreSQL runs and answers.
    Health,
}

/// Why a request gets no check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadRequest {
    NotFound,
    MethodNotAllowed,
    BadQuery(String),
}

/// Parse `GET <path>[?query]`.
pub fn route(method: &str, path_and_query: &str) -> Result<Check, BadRequest> {
    if method != "GET" && method != "HEAD" {
        return Err(BadRequest::MethodNotAllowed);
    }
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let path = path.trim_end_matches('/');
    let mut max_lag = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("lag", v)) if path == "/replica" => {
                max_lag = Some(v.parse::<u64>().map_err(|_| {
                    BadRequest::BadQuery(format!("lag must be a number of bytes, got \"{v}\""))
                })?)
            }
            _ => return Err(BadRequest::BadQuery(format!("unknown parameter \"{pair}\""))),
        }
    }
    match path {
        "/primary" | "/master" | "/read-write" => Ok(Check::Primary),
        "/replica" | "/standby" | "/read-only" => Ok(Check::Replica { max_lag }),
        "/health" | "" => Ok(Check::Health),
        _ => Err(BadRequest::NotFound),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    #[serde(skip)]
    pub status: u16,
    pub ok: bool,
    pub role: &'static str,
    pub pacemaker_promoted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The answer to `check` from what the local PostgreSQL answered to the
/// status query (`status_cmd::local_pg_as`, without replication rows).
pub fn decide(check: Check, promoted_here: bool, pg: &LocalPg) -> Answer {
    let mut a = Answer {
        status: 503,
        ok: false,
        role: pg.role(),
        pacemaker_promoted: promoted_here,
        lag_bytes: pg.standby_lag_bytes(),
        timeline: pg.timeline,
        reason: None,
    };
    let refuse = |mut a: Answer, why: String| {
        a.reason = Some(why);
        a
    };
    if let Some(e) = &pg.error {
        return refuse(a, format!("PostgreSQL does not answer: {e}"));
    }
    let verdict = match check {
        Check::Health => Ok(()),
        Check::Primary => {
            if pg.in_recovery != Some(false) {
                Err("PostgreSQL is a standby".to_string())
            } else if pg.read_only == Some(true) {
                Err("PostgreSQL is read-only (default_transaction_read_only)".to_string())
            } else if !promoted_here {
                Err("Pacemaker has not promoted this node".to_string())
            } else {
                Ok(())
            }
        }
        Check::Replica { max_lag } => {
            if pg.in_recovery != Some(true) {
                Err("PostgreSQL is a primary".to_string())
            } else if pg.receiver_status.as_deref() != Some("streaming") {
                Err(format!(
                    "not streaming (WAL receiver: {})",
                    pg.receiver_status.as_deref().unwrap_or("none")
                ))
            } else {
                match (max_lag, pg.standby_lag_bytes()) {
                    (None, _) => Ok(()),
                    (Some(max), Some(lag)) if lag <= max => Ok(()),
                    (Some(max), Some(lag)) => Err(format!("{lag} bytes behind (limit {max})")),
                    (Some(_), None) => Err("lag unknown".to_string()),
                }
            }
        }
    };
    match verdict {
        Ok(()) => {
            a.status = 200;
            a.ok = true;
            a
        }
        Err(why) => refuse(a, why),
    }
}

/// The file promote leaves for the health service, in Pacemaker's
/// root-owned resource-agent runtime directory (a tmpfs: a reboot, as after
/// fencing, removes it).
pub fn promotion_marker(rsctmp: &str, resource: &str) -> std::path::PathBuf {
    std::path::Path::new(rsctmp).join(format!("pgsqlms-{resource}.promoted"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsn::Lsn;

    fn primary() -> LocalPg {
        LocalPg { in_recovery: Some(false), timeline: Some(2), ..Default::default() }
    }

    fn standby(lag: u64, status: &str) -> LocalPg {
        LocalPg {
            in_recovery: Some(true),
            receiver_status: Some(status.into()),
            primary_end_lsn: Some(Lsn(1000 + lag)),
            replay_lsn: Some(Lsn(1000)),
            ..Default::default()
        }
    }

    #[test]
    fn routes() {
        assert_eq!(route("GET", "/primary"), Ok(Check::Primary));
        assert_eq!(route("HEAD", "/primary/"), Ok(Check::Primary));
        assert_eq!(route("GET", "/replica"), Ok(Check::Replica { max_lag: None }));
        assert_eq!(route("GET", "/replica?lag=1024"), Ok(Check::Replica { max_lag: Some(1024) }));
        assert_eq!(route("GET", "/health"), Ok(Check::Health));
        assert_eq!(route("GET", "/"), Ok(Check::Health));
        assert_eq!(route("GET", "/etc/passwd"), Err(BadRequest::NotFound));
        assert_eq!(route("POST", "/primary"), Err(BadRequest::MethodNotAllowed));
        assert!(matches!(route("GET", "/replica?lag=lots"), Err(BadRequest::BadQuery(_))));
        assert!(matches!(route("GET", "/primary?lag=1"), Err(BadRequest::BadQuery(_))));
    }

    #[test]
    fn primary_needs_pacemaker_and_a_writable_primary() {
        assert_eq!(decide(Check::Primary, true, &primary()).status, 200);
        let a = decide(Check::Primary, false, &primary());
        assert_eq!(a.status, 503);
        assert!(a.reason.unwrap().contains("not promoted"));
        assert_eq!(decide(Check::Primary, true, &standby(0, "streaming")).status, 503);
        let ro = LocalPg { read_only: Some(true), ..primary() };
        assert_eq!(decide(Check::Primary, true, &ro).status, 503);
        let down = LocalPg { error: Some("gone".into()), ..primary() };
        assert_eq!(decide(Check::Primary, true, &down).status, 503);
    }

    #[test]
    fn replica_streaming_within_lag() {
        let r = |lag: Option<u64>, pg: &LocalPg| decide(Check::Replica { max_lag: lag }, false, pg);
        assert_eq!(r(None, &standby(5000, "streaming")).status, 200);
        assert_eq!(r(Some(5000), &standby(5000, "streaming")).status, 200);
        assert_eq!(r(Some(4999), &standby(5000, "streaming")).status, 503);
        assert_eq!(r(None, &standby(0, "waiting")).status, 503);
        assert_eq!(r(None, &primary()).status, 503);
        let unknown = LocalPg { primary_end_lsn: None, ..standby(0, "streaming") };
        assert_eq!(r(Some(10), &unknown).status, 503);
        assert_eq!(r(None, &unknown).status, 200);
    }

    #[test]
    fn health_is_postgres_answering() {
        assert_eq!(decide(Check::Health, false, &standby(9, "waiting")).status, 200);
        assert_eq!(decide(Check::Health, true, &primary()).status, 200);
        let down = LocalPg { error: Some("no socket".into()), ..Default::default() };
        let a = decide(Check::Health, false, &down);
        assert_eq!((a.status, a.role), (503, "down"));
    }

    proptest::proptest! {
        #[test]
        fn routing_never_panics(m in "[A-Z]{0,8}", p in ".{0,200}") {
            let _ = route(&m, &p);
        }
    }
}
