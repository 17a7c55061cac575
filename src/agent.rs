//! What every action works with: parameters, deadline, node identity, the
//! system user and the Pacemaker tools; and the failure type actions return.

use crate::exit::OcfExit;
use crate::pacemaker::Pacemaker;
use crate::params::Params;
use crate::process::RunAs;
use std::cell::OnceCell;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// An action that did not succeed: the code Pacemaker gets and the one line
/// crm_mon shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: OcfExit,
    pub reason: String,
}

impl Failure {
    pub fn new(code: OcfExit, reason: impl Into<String>) -> Failure {
        Failure { code, reason: reason.into() }
    }

    pub fn generic(reason: impl Into<String>) -> Failure {
        Failure::new(OcfExit::ErrGeneric, reason)
    }
}

/// An edge's error (a `thiserror` enum of `pg`, `pacemaker`, `process`,
/// `controlfile`, `params`, `notify`): its text is the exit reason, written
/// for the operator; `CODE` is what Pacemaker gets. Each edge says its code
/// beside its error type.
pub trait EdgeError: std::error::Error {
    const CODE: OcfExit;
}

impl<E: EdgeError> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure::new(E::CODE, e.to_string())
    }
}

impl From<crate::validate::Problem> for Failure {
    fn from(p: crate::validate::Problem) -> Failure {
        Failure { code: p.code, reason: p.reason }
    }
}

pub type ActionResult = Result<OcfExit, Failure>;

/// Used when Pacemaker gives no timeout (an action run by hand).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Kept back from Pacemaker's timeout so the agent reports its own reason
/// before the executor kills it.
pub const TIMEOUT_MARGIN: Duration = Duration::from_millis(500);

pub struct Agent {
    pub env: HashMap<String, String>,
    pub params: Params,
    pub deadline: Instant,
    pub interval_ms: u64,
    pub pcmk: Pacemaker,
    runas: OnceCell<RunAs>,
    node: OnceCell<String>,
}

/// Deadline from `OCF_RESKEY_CRM_meta_timeout` (milliseconds).
pub fn action_timeout(env: &HashMap<String, String>) -> Duration {
    env.get("OCF_RESKEY_CRM_meta_timeout")
        .and_then(|t| t.trim().parse::<u64>().ok())
        .filter(|t| *t > 0)
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_TIMEOUT)
}

/// What the action may spend of Pacemaker's timeout: all but a margin to
/// report, a smaller one for short timeouts, never more than was given.
pub fn time_to_work(timeout: Duration) -> Duration {
    timeout.saturating_sub(TIMEOUT_MARGIN.min(timeout / 4))
}

/// The primitive's id: `OCF_RESOURCE_INSTANCE` without a clone suffix.
pub fn resource_name(env: &HashMap<String, String>) -> String {
    let inst = env.get("OCF_RESOURCE_INSTANCE").map(String::as_str).unwrap_or("pgsqld");
    inst.split(':').next().unwrap_or(inst).to_string()
}

impl Agent {
    pub fn new(env: HashMap<String, String>, params: Params, started: Instant) -> Agent {
        let deadline = started + time_to_work(action_timeout(&env));
        let interval_ms = env
            .get("OCF_RESKEY_CRM_meta_interval")
            .and_then(|i| i.trim().parse().ok())
            .unwrap_or(0);
        let sbin = env
            .get("HA_SBIN_DIR")
            .filter(|s| !s.is_empty())
            .cloned()
            .unwrap_or_else(|| "/usr/sbin".into());
        let pcmk = Pacemaker { sbin: sbin.into(), resource: resource_name(&env) };
        Agent {
            env,
            params,
            deadline,
            interval_ms,
            pcmk,
            runas: OnceCell::new(),
            node: OnceCell::new(),
        }
    }

    pub fn is_probe(&self) -> bool {
        self.interval_ms == 0
    }

    pub fn runas(&self) -> Result<&RunAs, Failure> {
        if let Some(r) = self.runas.get() {
            return Ok(r);
        }
        let r = RunAs::lookup(&self.params.system_user)?;
        Ok(self.runas.get_or_init(|| r))
    }

    /// This node's name as Pacemaker knows it.
    pub async fn node(&self) -> Result<&str, Failure> {
        if let Some(n) = self.node.get() {
            return Ok(n);
        }
        let name = match self.env.get("OCF_RESKEY_CRM_meta_on_node").filter(|s| !s.is_empty()) {
            Some(n) => n.clone(),
            None => self
                .pcmk
                .local_node_name(self.deadline)
                .await
                .map_err(|e| Failure::generic(format!("cannot tell this node's name: {e}")))?,
        };
        Ok(self.node.get_or_init(|| name))
    }

    /// Pacemaker's runtime directory for agents (`HA_RSCTMP`, root's, a
    /// tmpfs): flags that must outlive one action but not a reboot.
    pub fn rsctmp(&self) -> &str {
        self.env
            .get("HA_RSCTMP")
            .filter(|d| !d.is_empty())
            .map(String::as_str)
            .unwrap_or("/run/resource-agents")
    }

    pub fn time_left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::env_of;

    /// Each edge's error is a std::error::Error and reaches Pacemaker with
    /// its code and its operator text (no Debug output).
    #[test]
    fn edge_errors_become_failures_with_their_code() {
        use crate::role::{Contact, Refusal};
        fn failure<E: std::error::Error + Into<Failure>>(e: E) -> Failure {
            let text = e.to_string();
            let f: Failure = e.into();
            assert_eq!(f.reason, text);
            f
        }
        let cases = [
            (
                failure(crate::pg::PgError::Contact(Contact::Refused(Refusal::Denied(
                    "no pg_hba.conf entry".into(),
                )))),
                OcfExit::ErrGeneric,
                "PostgreSQL refused the connection: no pg_hba.conf entry",
            ),
            (
                failure(crate::process::CmdError::TimedOut("/usr/bin/x".into())),
                OcfExit::ErrGeneric,
                "/usr/bin/x did not finish before the action timeout",
            ),
            (
                failure(crate::process::UserError::NoSuchUser("pg".into())),
                OcfExit::ErrArgs,
                "system user \"pg\" does not exist",
            ),
            (
                failure(crate::pacemaker::ToolError::Failed {
                    command: "attrd_updater".into(),
                    message: "boom".into(),
                }),
                OcfExit::ErrGeneric,
                "attrd_updater failed: boom",
            ),
            (
                failure(crate::controlfile::ControlError::BadCrc),
                OcfExit::ErrGeneric,
                "control file CRC does not match (torn or unknown layout)",
            ),
            (
                failure(crate::params::ParamError("maxlag: not a number".into())),
                OcfExit::ErrConfigured,
                "maxlag: not a number",
            ),
            (
                failure(crate::notify::NotifyError("unknown notification type".into())),
                OcfExit::ErrArgs,
                "unknown notification type",
            ),
        ];
        for (f, code, reason) in cases {
            assert_eq!((f.code, f.reason.as_str()), (code, reason));
        }
    }

    #[test]
    fn timeout_from_meta_in_milliseconds() {
        assert_eq!(
            action_timeout(&env_of("", &[("OCF_RESKEY_CRM_meta_timeout", "20000")])),
            Duration::from_secs(20)
        );
        assert_eq!(
            action_timeout(&env_of("", &[("OCF_RESKEY_CRM_meta_timeout", "x")])),
            DEFAULT_TIMEOUT
        );
        assert_eq!(action_timeout(&HashMap::new()), DEFAULT_TIMEOUT);
    }

    #[test]
    fn the_deadline_stays_within_the_timeout() {
        assert_eq!(time_to_work(Duration::from_secs(20)), Duration::from_millis(19_500));
        assert_eq!(time_to_work(Duration::from_millis(400)), Duration::from_millis(300));
        for ms in [0, 1, 10, 200, 500, 999, 1000, 2000] {
            let t = Duration::from_millis(ms);
            assert!(time_to_work(t) <= t, "{ms} ms");
        }
    }

    #[test]
    fn resource_name_drops_the_clone_suffix() {
        assert_eq!(resource_name(&env_of("", &[("OCF_RESOURCE_INSTANCE", "pgsqld:2")])), "pgsqld");
        assert_eq!(resource_name(&env_of("", &[("OCF_RESOURCE_INSTANCE", "pgsqld")])), "pgsqld");
    }
}
