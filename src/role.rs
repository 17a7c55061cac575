//! Role of the local instance from what was observed: a pure function, so
//! every combination of control-file state, postmaster and connection result
//! is tested below.

use crate::controlfile::DbState;
use crate::exit::OcfExit;

/// Whether a live postmaster owns the data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Postmaster {
    Running(i32),
    NotRunning,
}

/// Why the server refused the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 57P03 while starting, shutting down, recovering or not yet consistent.
    NotYet(String),
    /// 57P03 "Hot standby mode is disabled": a warm standby.
    HotStandbyOff,
    /// Authentication or authorisation failed (28xxx, 3D000...): configuration.
    Denied(String),
    /// Anything else (too many connections, out of memory): may pass.
    Other(String),
}

/// Result of trying to talk to the server over its protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contact {
    /// Connected and asked `pg_is_in_recovery()`.
    Answered {
        in_recovery: bool,
    },
    Refused(Refusal),
    /// Nobody listens at the socket or port.
    Unreachable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Primary,
    Standby,
    /// Cleanly stopped (as a primary or as a standby).
    Stopped,
    /// Not running, but the control file says it was a primary at the time.
    CrashedPrimary,
    /// Not running, but the control file says it was a standby at the time.
    CrashedStandby,
    /// Starting, stopping or recovering: ask again shortly.
    Transient(String),
    /// Cannot be managed as configured: code and what to tell the operator.
    Broken(OcfExit, String),
}

impl Role {
    /// The monitor's answer for a settled role.
    pub fn ocf(&self) -> OcfExit {
        match self {
            Role::Primary => OcfExit::RunningPromoted,
            Role::Standby => OcfExit::Success,
            Role::Stopped => OcfExit::NotRunning,
            Role::CrashedPrimary => OcfExit::FailedPromoted,
            Role::CrashedStandby | Role::Transient(_) => OcfExit::ErrGeneric,
            Role::Broken(code, _) => *code,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::HotStandbyOff => f.write_str("hot standby mode is disabled"),
            Refusal::NotYet(msg) | Refusal::Denied(msg) | Refusal::Other(msg) => f.write_str(msg),
        }
    }
}

impl std::fmt::Display for Contact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Contact::Answered { in_recovery: true } => {
                f.write_str("PostgreSQL answered, in recovery")
            }
            Contact::Answered { in_recovery: false } => {
                f.write_str("PostgreSQL answered, a primary")
            }
            Contact::Refused(r) => write!(f, "PostgreSQL refused the connection: {r}"),
            Contact::Unreachable => f.write_str("PostgreSQL is not listening"),
        }
    }
}

/// For an operator: what the instance is.
impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Role::Primary => f.write_str("a primary"),
            Role::Standby => f.write_str("a standby"),
            Role::Stopped => f.write_str("stopped"),
            Role::CrashedPrimary => f.write_str("a crashed primary"),
            Role::CrashedStandby => f.write_str("a crashed standby"),
            Role::Transient(why) => write!(f, "in transition: {why}"),
            Role::Broken(_, why) => write!(f, "unusable: {why}"),
        }
    }
}

/// `backup_label`: the data directory holds one, i.e. it is a base backup
/// never started, whose copied control file still says "in production".
pub fn decide(
    state: DbState,
    postmaster: Postmaster,
    contact: &Contact,
    backup_label: bool,
) -> Role {
    match contact {
        Contact::Answered { in_recovery: false } => Role::Primary,
        Contact::Answered { in_recovery: true } => Role::Standby,
        Contact::Refused(Refusal::HotStandbyOff) => Role::Broken(
            OcfExit::ErrConfigured,
            "instance runs as a warm standby (hot_standby = off); only hot standbys are supported"
                .into(),
        ),
        Contact::Refused(Refusal::Denied(msg)) => Role::Broken(
            OcfExit::ErrArgs,
            format!(
                "PostgreSQL refused the agent's connection: {msg} (check pg_hba.conf for local connections of system_user)"
            ),
        ),
        Contact::Refused(Refusal::NotYet(msg)) => Role::Transient(msg.clone()),
        Contact::Refused(Refusal::Other(msg)) => Role::Transient(msg.clone()),
        Contact::Unreachable => match postmaster {
            Postmaster::Running(pid) => Role::Transient(format!(
                "postmaster (PID {pid}) is running but does not accept connections yet at the configured pghost/pgport"
            )),
            Postmaster::NotRunning => match state {
                DbState::ShutDown | DbState::ShutDownInRecovery => Role::Stopped,
                DbState::InProduction if backup_label => Role::Stopped,
                DbState::InProduction | DbState::InCrashRecovery | DbState::ShuttingDown => {
                    Role::CrashedPrimary
                }
                DbState::InArchiveRecovery | DbState::StartingUp => Role::CrashedStandby,
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_contacts_read_as_text() {
        let refused =
            Contact::Refused(Refusal::NotYet("the database system is starting up".into()));
        assert_eq!(
            refused.to_string(),
            "PostgreSQL refused the connection: the database system is starting up"
        );
        assert_eq!(Contact::Unreachable.to_string(), "PostgreSQL is not listening");
        assert_eq!(Role::Transient("recovering".into()).to_string(), "in transition: recovering");
        assert_eq!(Role::CrashedStandby.to_string(), "a crashed standby");
    }

    const STATES: [DbState; 7] = DbState::ALL;

    #[test]
    fn an_answer_decides_whatever_the_control_file_says() {
        // The control file lags a promotion by one checkpoint: SQL wins.
        // (backup_label too: a server that answers was started.)
        for st in STATES {
            for pm in [Postmaster::Running(10), Postmaster::NotRunning] {
                for label in [false, true] {
                    let primary = Contact::Answered { in_recovery: false };
                    assert_eq!(decide(st, pm, &primary, label), Role::Primary);
                    let standby = Contact::Answered { in_recovery: true };
                    assert_eq!(decide(st, pm, &standby, label), Role::Standby);
                }
            }
        }
    }

    #[test]
    fn instances_not_running_are_classified_by_their_last_state() {
        use DbState::*;
        // (control file state, backup_label, role)
        let table = [
            (ShutDown, false, Role::Stopped),
            (ShutDownInRecovery, false, Role::Stopped),
            (InProduction, false, Role::CrashedPrimary),
            (InCrashRecovery, false, Role::CrashedPrimary),
            (ShuttingDown, false, Role::CrashedPrimary),
            (InArchiveRecovery, false, Role::CrashedStandby),
            (StartingUp, false, Role::CrashedStandby),
            // A base backup never started is stopped, not crashed;
            // backup_label changes nothing else.
            (InProduction, true, Role::Stopped),
            (InArchiveRecovery, true, Role::CrashedStandby),
            (InCrashRecovery, true, Role::CrashedPrimary),
        ];
        for (st, label, role) in table {
            let got = decide(st, Postmaster::NotRunning, &Contact::Unreachable, label);
            assert_eq!(got, role, "{st:?}, backup_label {label}");
        }
    }

    #[test]
    fn a_live_postmaster_without_a_socket_is_transient() {
        for st in STATES {
            assert!(
                matches!(decide(st, Postmaster::Running(42), &Contact::Unreachable, false), Role::Transient(m) if m.contains("42"))
            );
        }
    }

    #[test]
    fn refusals() {
        let r = decide(
            DbState::InArchiveRecovery,
            Postmaster::Running(1),
            &Contact::Refused(Refusal::HotStandbyOff),
            false,
        );
        assert_eq!(r.ocf(), OcfExit::ErrConfigured);
        let r = decide(
            DbState::InProduction,
            Postmaster::Running(1),
            &Contact::Refused(Refusal::Denied("no pg_hba.conf entry".into())),
            false,
        );
        assert!(matches!(&r, Role::Broken(OcfExit::ErrArgs, m) if m.contains("pg_hba")));
        let r = decide(
            DbState::StartingUp,
            Postmaster::Running(1),
            &Contact::Refused(Refusal::NotYet("starting up".into())),
            false,
        );
        assert_eq!(r, Role::Transient("starting up".into()));
        let r = decide(
            DbState::InProduction,
            Postmaster::Running(1),
            &Contact::Refused(Refusal::Other("too many clients".into())),
            false,
        );
        assert!(matches!(r, Role::Transient(_)));
    }

    #[test]
    fn ocf_codes() {
        assert_eq!(Role::Primary.ocf(), OcfExit::RunningPromoted);
        assert_eq!(Role::Standby.ocf(), OcfExit::Success);
        assert_eq!(Role::Stopped.ocf(), OcfExit::NotRunning);
        assert_eq!(Role::CrashedPrimary.ocf(), OcfExit::FailedPromoted);
        assert_eq!(Role::CrashedStandby.ocf(), OcfExit::ErrGeneric);
        assert_eq!(Role::Transient("x".into()).ocf(), OcfExit::ErrGeneric);
    }
}
