//! The local PostgreSQL instance: observing its role and driving pg_ctl.
//! Decisions are in `role`; this module gathers facts and acts.

use crate::agent::{Agent, Failure};
use crate::controlfile::{self, ControlData, ControlError};
use crate::exit::OcfExit;
use crate::pg::{self, PgError, Status, Target};
use crate::process::Cmd;
use crate::role::{self, Contact, Postmaster, Role};
use std::path::Path;
use std::time::Duration;
use tokio::time::Instant;
use tokio_postgres::Client;

/// How often a transient state is looked at again.
pub const POLL: Duration = Duration::from_millis(200);
const CRC_RETRY: Duration = Duration::from_millis(20);

/// One look at the instance.
pub struct Observed {
    pub role: Role,
    pub control: ControlData,
    /// An open session when the server answered.
    pub client: Option<Client>,
    pub status: Option<Status>,
}

/// The control file: read natively, or through pg_controldata when the
/// layout is not one we can verify.
pub async fn control_data(agent: &Agent) -> Result<ControlData, Failure> {
    let mut read = controlfile::read(&agent.params.datadir);
    // A read racing PostgreSQL's in-place rewrite shows a bad CRC.
    for _ in 0..2 {
        if !matches!(read, Err(ControlError::BadCrc)) || agent.time_left() < CRC_RETRY {
            break;
        }
        tokio::time::sleep(CRC_RETRY).await;
        read = controlfile::read(&agent.params.datadir);
    }
    match read {
        Ok(c) => Ok(c),
        Err(ControlError::Io(e)) => Err(Failure::new(OcfExit::ErrArgs, e)),
        Err(native) => {
            log::debug!("native control file read failed ({native}), asking pg_controldata");
            let runas = agent.runas()?;
            let out = Cmd::new(agent.params.bin("pg_controldata"))
                .arg(agent.params.datadir.display().to_string())
                .run_as(runas)
                .run(agent.deadline)
                .await
                .map_err(|e| Failure::new(OcfExit::ErrInstalled, e.to_string()))?;
            if !out.success() {
                return Err(Failure::generic(format!("pg_controldata failed: {}", out.message())));
            }
            controlfile::parse_pg_controldata(&out.stdout)
                .map_err(|e| Failure::generic(e.to_string()))
        }
    }
}

/// The newest timeline whose history file this instance holds: a standby
/// fetches it when it starts following a new timeline.
pub fn newest_history_timeline(datadir: &Path) -> u32 {
    std::fs::read_dir(datadir.join("pg_wal"))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name();
                    let name = name.to_str()?;
                    let tli = name.strip_suffix(".history")?;
                    (tli.len() == 8).then(|| u32::from_str_radix(tli, 16).ok()).flatten()
                })
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// Whether `postmaster.pid` names a live postgres process.
pub fn postmaster(datadir: &Path) -> Postmaster {
    // A stale pid file can name a reused PID: check it is a postgres, and
    // not a zombie nobody reaped yet (a dead postmaster).
    match pid_file_process(datadir) {
        Some((pid, state)) if state != 'Z' && state != 'X' => Postmaster::Running(pid),
        _ => Postmaster::NotRunning,
    }
}

/// The postgres process `postmaster.pid` names, if any, with its state
/// letter from /proc (R, S, Z...).
fn pid_file_process(datadir: &Path) -> Option<(i32, char)> {
    let text = std::fs::read_to_string(datadir.join("postmaster.pid")).ok()?;
    let pid = text.lines().next()?.trim().parse::<i32>().ok().filter(|p| *p > 0)?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (comm, state) = parse_proc_stat(&stat)?;
    (comm.starts_with("postgres") || comm.starts_with("postmaster")).then_some((pid, state))
}

/// `pid (comm) state ...`: comm may hold spaces and parentheses.
fn parse_proc_stat(stat: &str) -> Option<(&str, char)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?;
    let state = stat.get(close + 1..)?.trim_start().chars().next()?;
    Some((comm, state))
}

pub fn target(agent: &Agent) -> Result<Target<'_>, Failure> {
    Ok(Target { host: &agent.params.pghost, port: agent.params.pgport, user: agent.runas()? })
}

/// Look once: control file, postmaster, and one query if it answers.
pub async fn observe(agent: &Agent) -> Result<Observed, Failure> {
    let control = control_data(agent).await?;
    let pm = postmaster(&agent.params.datadir);
    let t = target(agent)?;
    // Nothing to connect to: skip the attempt (and its timeout) entirely.
    let connected = if pm == Postmaster::NotRunning && t.host.starts_with('/') {
        Err(PgError::Contact(Contact::Unreachable))
    } else {
        pg::connect(&t, agent.deadline).await
    };
    let (contact, client, status) = match connected {
        Ok(client) => match pg::status(&client, agent.deadline).await {
            Ok(st) => (Contact::Answered { in_recovery: st.in_recovery }, Some(client), Some(st)),
            Err(PgError::TimedOut) => {
                return Err(Failure::generic(
                    "PostgreSQL did not answer the status query before the action timeout",
                ));
            }
            Err(e) => (Contact::Refused(role::Refusal::Other(e.to_string())), None, None),
        },
        Err(PgError::Contact(c)) => (c, None, None),
        Err(PgError::TimedOut) => {
            return Err(Failure::generic(
                "connecting to PostgreSQL did not complete before the action timeout",
            ));
        }
        Err(e) => (Contact::Refused(role::Refusal::Other(e.to_string())), None, None),
    };
    let backup_label = agent.params.datadir.join("backup_label").exists();
    let role = role::decide(control.state, pm, &contact, backup_label);
    log::debug!(
        "state \"{}\", postmaster {pm:?}, contact {contact:?} => {role:?}",
        control.state.as_str()
    );
    Ok(Observed { role, control, client, status })
}

/// Look until the role is settled (not starting, stopping or recovering),
/// or the deadline comes.
pub async fn settle(agent: &Agent) -> Result<Observed, Failure> {
    loop {
        let o = observe(agent).await?;
        match &o.role {
            Role::Transient(what) => {
                if Instant::now() + POLL >= agent.deadline {
                    return Err(Failure::generic(format!(
                        "instance still not settled at the end of the action: {what}"
                    )));
                }
                tokio::time::sleep(POLL).await;
            }
            _ => return Ok(o),
        }
    }
}

/// Look until `done` says the role is the one wanted, or the deadline.
pub async fn wait_for(
    agent: &Agent,
    what: &str,
    done: impl Fn(&Role) -> bool,
) -> Result<Observed, Failure> {
    loop {
        let o = observe(agent).await?;
        if done(&o.role) {
            return Ok(o);
        }
        if let Role::Broken(code, msg) = &o.role {
            return Err(Failure::new(*code, msg.clone()));
        }
        if Instant::now() + POLL >= agent.deadline {
            return Err(Failure::generic(format!(
                "timed out waiting for the instance to be {what} (it is {:?})",
                o.role
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

fn secs_left(agent: &Agent) -> String {
    agent.time_left().as_secs().max(1).to_string()
}

/// `standby.signal` in the data directory, owned by system_user.
pub fn ensure_standby_signal(agent: &Agent) -> Result<(), Failure> {
    let path = agent.params.datadir.join("standby.signal");
    if path.exists() {
        return Ok(());
    }
    let runas = agent.runas()?;
    std::fs::write(&path, b"")
        .map_err(|e| Failure::generic(format!("cannot create {}: {e}", path.display())))?;
    nix::unistd::chown(&path, Some(runas.uid), Some(runas.gid)).map_err(|e| {
        Failure::generic(format!("cannot give {} to {}: {e}", path.display(), runas.name))
    })?;
    Ok(())
}

pub fn remove_standby_signal(agent: &Agent) -> Result<(), Failure> {
    let path = agent.params.datadir.join("standby.signal");
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Failure::generic(format!("cannot remove {}: {e}", path.display()))),
    }
}

/// `pg_ctl start`, waiting for the server to accept connections.
pub async fn pg_ctl_start(agent: &Agent) -> Result<(), Failure> {
    let p = &agent.params;
    let mut cmd = Cmd::new(p.bin("pg_ctl"))
        .args(["start", "-D"])
        .arg(p.pgdata.display().to_string())
        .args(["-w", "-t"])
        .arg(secs_left(agent))
        .run_as(agent.runas()?)
        .stdout_until_exit();
    // Where pgdata only holds the configuration, point postgres at it.
    let mut opts = String::new();
    if p.datadir != p.pgdata && !p.start_opts.contains("config_file") {
        opts.push_str(&format!("-c config_file={}/postgresql.conf ", p.pgdata.display()));
    }
    opts.push_str(&p.start_opts);
    if !opts.trim().is_empty() {
        cmd = cmd.args(["-o", opts.trim()]);
    }
    wait_unreaped_postmaster(agent).await;
    let out = cmd.run(agent.deadline).await.map_err(|e| Failure::generic(e.to_string()))?;
    if !out.success() {
        return Err(Failure::generic(format!(
            "pg_ctl start failed: {}",
            start_failure(&out.stdout, &out.message())
        )));
    }
    Ok(())
}

/// The server's own words (its FATAL line) say more than pg_ctl's "Examine
/// the log output"; when a logging collector took the FATAL line, at least
/// say where the log is.
fn start_failure(server_output: &str, pg_ctl_message: &str) -> String {
    let lines: Vec<&str> = server_output.lines().map(str::trim).collect();
    let fatal: Vec<&str> =
        lines.iter().copied().filter(|l| l.contains("FATAL") || l.contains("PANIC")).collect();
    if !fatal.is_empty() {
        let hints = lines.iter().copied().filter(|l| l.contains("HINT") || l.contains("DETAIL"));
        return fatal.into_iter().chain(hints).collect::<Vec<_>>().join(" ");
    }
    match lines.iter().find_map(|l| l.split_once("Future log output will appear in directory ")) {
        Some((_, dir)) => {
            format!("{pg_ctl_message} (the server's log is in {})", dir.trim_end_matches('.'))
        }
        None => pg_ctl_message.to_string(),
    }
}

/// A killed postmaster that init has not reaped yet is a zombie: dead for
/// us, alive for PostgreSQL's lock file check, which then refuses to start.
/// Give init a moment.
async fn wait_unreaped_postmaster(agent: &Agent) {
    let give_up = Instant::now() + (agent.time_left() / 4).min(Duration::from_secs(5));
    while let Some(pid) = zombie_postmaster(&agent.params.datadir) {
        if Instant::now() >= give_up {
            log::warn!(
                "previous postmaster (PID {pid}) is still an unreaped zombie; starting anyway"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn zombie_postmaster(datadir: &Path) -> Option<i32> {
    pid_file_process(datadir).filter(|(_, state)| *state == 'Z').map(|(pid, _)| pid)
}

/// `pg_ctl stop -m <mode>`, waiting until the server is down or `until`.
pub async fn pg_ctl_stop_until(agent: &Agent, mode: &str, until: Instant) -> Result<(), Failure> {
    let p = &agent.params;
    let secs = until.saturating_duration_since(Instant::now()).as_secs().max(1).to_string();
    let out = Cmd::new(p.bin("pg_ctl"))
        .args(["stop", "-D"])
        .arg(p.datadir.display().to_string())
        .args(["-m", mode, "-w", "-t"])
        .arg(secs)
        .run_as(agent.runas()?)
        .run(until)
        .await
        .map_err(|e| Failure::generic(e.to_string()))?;
    if !out.success() {
        return Err(Failure::generic(format!("pg_ctl stop -m {mode} failed: {}", out.message())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_files_give_the_newest_timeline() {
        let dir = std::env::temp_dir().join(format!("pgsqlms-hist-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("pg_wal")).unwrap();
        assert_eq!(newest_history_timeline(&dir), 0);
        for f in [
            "00000002.history",
            "0000000A.history",
            "000000010000000000000003",
            "junk.history",
            "0000000B.history.partial",
        ] {
            std::fs::write(dir.join("pg_wal").join(f), "").unwrap();
        }
        assert_eq!(newest_history_timeline(&dir), 10);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(newest_history_timeline(&dir), 0);
    }

    #[test]
    fn start_failures_quote_the_server() {
        let fatal = "2026-11-24 LOG:  starting PostgreSQL\n2026-11-24 FATAL:  lock file \"postmaster.pid\" already exists\n2026-11-24 HINT:  Is another postmaster (PID 4984) running?\n";
        assert_eq!(
            start_failure(fatal, "Examine the log output."),
            "2026-11-24 FATAL:  lock file \"postmaster.pid\" already exists 2026-11-24 HINT:  Is another postmaster (PID 4984) running?"
        );
        let collector = "2026-11-24 LOG:  redirecting log output to logging collector process\n2026-11-24 HINT:  Future log output will appear in directory \"/var/log/postgresql\".\n";
        assert_eq!(
            start_failure(collector, "Examine the log output."),
            "Examine the log output. (the server's log is in \"/var/log/postgresql\")"
        );
        assert_eq!(start_failure("", "could not start server"), "could not start server");
    }

    #[test]
    fn proc_stat_parsing() {
        assert_eq!(parse_proc_stat("123 (postgres) S 1 2 3"), Some(("postgres", 'S')));
        assert_eq!(parse_proc_stat("9 (a (b) c) Z 1"), Some(("a (b) c", 'Z')));
        assert_eq!(parse_proc_stat("garbage"), None);
    }

    #[test]
    fn this_process_is_not_a_postmaster() {
        let dir = std::env::temp_dir().join(format!("pgsqlms-pm-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("postmaster.pid"), format!("{}\n/data\n", std::process::id()))
            .unwrap();
        assert_eq!(postmaster(&dir), Postmaster::NotRunning);
        std::fs::write(dir.join("postmaster.pid"), "not a pid\n").unwrap();
        assert_eq!(postmaster(&dir), Postmaster::NotRunning);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(postmaster(&dir), Postmaster::NotRunning);
    }
}
