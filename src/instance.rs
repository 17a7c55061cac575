//! The local PostgreSQL instance: observing its role and driving pg_ctl.
//! Decisions are in `role`; this module gathers facts and acts.

use crate::agent::{Agent, Failure};
use crate::controlfile::{self, ControlData, ControlError};
use crate::election::Position;
use crate::exit::OcfExit;
use crate::hang::{self, Liveness};
use crate::lsn::Lsn;
use crate::pg::{self, PgError, Status, Target};
use crate::process::Cmd;
use crate::procfs;
use crate::role::{self, Contact, Postmaster, Role};
use crate::safefs;
use crate::waldump::{self, WalStop};
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
            // PostgreSQL 18 warns about a bad CRC on stderr.
            let text = format!("{}\n{}", out.stderr, out.stdout);
            controlfile::parse_pg_controldata(&text).map_err(|e| match e {
                // Both readers agree the checksum fails: garbage, not a state.
                ControlError::BadCrc => Failure::generic(format!(
                    "{}/global/pg_control fails its CRC check: the control file is corrupt",
                    agent.params.datadir.display()
                )),
                e => Failure::generic(e.to_string()),
            })
        }
    }
}

/// The newest timeline whose history file this instance holds: a standby
/// fetches it when it starts following a new timeline. Only names are read
/// (pg_wal may legitimately be a link, initdb -X).
/// Where this instance's newest timeline began (the switch point in its
/// history file): `Ok(None)` on the first timeline, an error when the
/// history file of a later one cannot be read.
pub fn timeline_switch_point(datadir: &Path) -> Result<Option<Lsn>, String> {
    let tli = newest_history_timeline(datadir);
    if tli < 2 {
        return Ok(None);
    }
    let name = format!("{tli:08X}.history");
    read_small(&datadir.join("pg_wal").join(&name))
        .and_then(|h| waldump::timeline_start(&h))
        .map(Some)
        .ok_or_else(|| format!("no switch point readable in pg_wal/{name}"))
}

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

/// Where the valid WAL this instance holds on disk ends: read by
/// `pg_waldump --quiet` (it prints only where it stops: no output to hold
/// in memory) from `from`, or from the last checkpoint, on the newest
/// timeline the instance knows (from its switch point). Unlike
/// `pg_last_wal_receive_lsn()`, which starts again at the beginning of a
/// segment after a restart, this never goes backwards. The end is the end
/// of the last valid record as PostgreSQL reports replayed positions, so a
/// stopped node and a running one holding the same WAL publish the same
/// position. Ends by `until`.
pub async fn wal_end_on_disk(
    agent: &Agent,
    control: &ControlData,
    from: Option<Lsn>,
    until: Instant,
) -> Result<Position, Failure> {
    let datadir = &agent.params.datadir;
    let newest = newest_history_timeline(datadir).max(control.timeline);
    let mut tried = Vec::new();
    let mut said = String::new();
    for tli in [newest, control.timeline] {
        if tried.contains(&tli) {
            continue;
        }
        tried.push(tli);
        let switch_point = if tli > control.timeline {
            read_small(&datadir.join("pg_wal").join(format!("{tli:08X}.history")))
                .and_then(|h| waldump::timeline_start(&h))
                .unwrap_or_default()
        } else {
            Lsn(0)
        };
        let start = control.checkpoint.max(switch_point).max(from.unwrap_or_default());
        let seg = segment_size(datadir);
        // With the segments named, a zeroed segment file (preallocated, never
        // written) cannot be the one pg_waldump takes its segment size from.
        let range = segment_range(datadir, tli, start);
        if range.first().is_some_and(|first| segment_never_written(datadir, first)) {
            // The segment the read starts in was created ahead of use and
            // never written: the valid WAL ends where the read starts.
            return Ok(Position { timeline: tli, lsn: start });
        }
        let out = waldump_cmd(agent, tli, start, &["--quiet"], &range, until).await?;
        let stop = match range.last() {
            Some(last) => waldump::end_of_valid_wal_in_range(&out.stderr, out.success(), last, seg),
            None => waldump::end_of_valid_wal(&out.stderr, seg),
        };
        let end = match stop {
            Some(WalStop::End(end)) => Some(end),
            // Its end, as PostgreSQL reports replayed positions: the
            // record's length is in a one-record dump.
            Some(WalStop::LastRecordAt(last)) => {
                let range = segment_range(datadir, tli, last);
                let one = waldump_cmd(agent, tli, last, &["--limit", "1"], &range, until).await?;
                waldump::first_record(&one.stdout)
                    .filter(|(at, _)| *at == last)
                    .map(|(_, total)| waldump::record_end(last, total, seg))
            }
            None => None,
        };
        match end {
            Some(end) if end >= start => return Ok(Position { timeline: tli, lsn: end }),
            _ => {
                log::warn!("no WAL end found on timeline {tli} from {start}: {}", out.message());
                said = out.message();
            }
        }
    }
    Err(Failure::generic(format!(
        "could not find where the WAL in {} ends after {}: {said}",
        datadir.join("pg_wal").display(),
        control.checkpoint
    )))
}

/// Whether the WAL segment file `name` was never written: created ahead of
/// use, it is all zeros, and its page header has no magic number. A file
/// that cannot be read is not called blank (pg_waldump will say why).
fn segment_never_written(datadir: &Path, name: &str) -> bool {
    safefs::Dir::open(datadir)
        .and_then(|d| d.head(Path::new("pg_wal").join(name), 2))
        .is_ok_and(|magic| magic == [0, 0])
}

/// A running standby's position: the most it received or replayed, and,
/// when it is not streaming (a restart makes the received position start
/// again at a segment boundary; replay may still be going through WAL on
/// disk), the end of the valid WAL on its disk beyond that. Streaming, it
/// forks nothing.
pub async fn standby_position(
    agent: &Agent,
    control: &ControlData,
    status: &Status,
    until: Instant,
) -> Result<Position, Failure> {
    let lsn = status
        .lsn
        .ok_or_else(|| Failure::generic("standby reports no received or replayed LSN"))?;
    let live = Position { timeline: status.received_tli.unwrap_or(0).max(control.timeline), lsn };
    if status.receiver.as_deref() == Some("streaming") {
        return Ok(live);
    }
    Ok(live.max(wal_end_on_disk(agent, control, Some(lsn), until).await?))
}

/// `pg_waldump` of this instance's pg_wal from `start` on `timeline`.
async fn waldump_cmd(
    agent: &Agent,
    timeline: u32,
    start: Lsn,
    extra: &[&str],
    segments: &[String],
    until: Instant,
) -> Result<crate::process::Output, Failure> {
    Ok(Cmd::new(agent.params.bin("pg_waldump"))
        .args(extra.iter().copied())
        .arg("--path")
        .arg(agent.params.datadir.join("pg_wal").display().to_string())
        .args(["--timeline", &timeline.to_string(), "--start", &start.to_string()])
        .args(segments.iter().map(String::as_str))
        .run_as(agent.runas()?)
        .run(until.min(agent.deadline))
        .await?)
}

/// pg_waldump's STARTSEG and ENDSEG for a read from `start` to `end` (the
/// files holding the first and the last byte), when both are there: for the
/// same reason as `segment_range`.
pub fn segments_between(datadir: &Path, timeline: u32, start: Lsn, end: Lsn) -> Vec<String> {
    let size = segment_size(datadir);
    let last_byte = Lsn(end.0.saturating_sub(1).max(start.0));
    let names = [start, last_byte].map(|l| waldump::segment_file_name(timeline, l, size));
    match names {
        [Some(first), Some(last)]
            if [&first, &last].iter().all(|n| {
                datadir
                    .join("pg_wal")
                    .join(n)
                    .symlink_metadata()
                    .is_ok_and(|m| m.file_type().is_file())
            }) =>
        {
            vec![first, last]
        }
        _ => vec![],
    }
}

/// pg_waldump's STARTSEG and ENDSEG arguments: the segment file holding
/// `start` and the newest segment file of `timeline` in pg_wal, when both
/// are there. Without STARTSEG pg_waldump takes the segment size from the
/// header of whichever file it finds first, and a segment created zeroed
/// (a crashed primary's last) makes it fail ("WAL segment size must be a
/// power of two ... specifies 0 bytes"); with STARTSEG alone it would stop
/// at the end of that segment.
pub fn segment_range(datadir: &Path, timeline: u32, start: Lsn) -> Vec<String> {
    let size = segment_size(datadir);
    let Some(first) = waldump::segment_file_name(timeline, start, size) else { return vec![] };
    let prefix = format!("{timeline:08X}");
    let last = std::fs::read_dir(datadir.join("pg_wal")).ok().and_then(|entries| {
        entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_string();
                let regular = e.path().symlink_metadata().ok()?.file_type().is_file();
                (regular
                    && name.len() == 24
                    && name.starts_with(&prefix)
                    && name.bytes().all(|b| b.is_ascii_hexdigit()))
                .then_some(name)
            })
            .max()
    });
    match last {
        Some(last) if last >= first && datadir.join("pg_wal").join(&first).is_file() => {
            vec![first, last]
        }
        _ => vec![],
    }
}

/// The WAL segment size, from the size of a segment file in pg_wal (16 MB
/// when there is none to look at).
fn segment_size(datadir: &Path) -> u64 {
    std::fs::read_dir(datadir.join("pg_wal"))
        .ok()
        .and_then(|entries| {
            entries.flatten().find_map(|e| {
                let name = e.file_name();
                let name = name.to_str()?;
                let meta = e.path().symlink_metadata().ok()?;
                (name.len() == 24
                    && name.bytes().all(|b| b.is_ascii_hexdigit())
                    && meta.file_type().is_file())
                .then_some(meta.len())
                .filter(|l| l.is_power_of_two())
            })
        })
        .unwrap_or(16 * 1024 * 1024)
}

/// A small file of the data directory: not through a symbolic link, at
/// most 64 kB.
fn read_small(path: &Path) -> Option<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits() | nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)
        .ok()?;
    if !f.metadata().ok()?.file_type().is_file() {
        return None;
    }
    let mut text = String::new();
    f.take(64 * 1024).read_to_string(&mut text).ok()?;
    Some(text)
}

/// Whether `postmaster.pid` names a live postmaster of this data directory.
pub fn postmaster(datadir: &Path) -> Postmaster {
    // A stale pid file can name a reused PID: check it is a postgres, and
    // not a zombie nobody reaped yet (a dead postmaster).
    match pid_file_process(datadir) {
        Some((pid, state)) if state != 'Z' && state != 'X' => Postmaster::Running(pid),
        _ => Postmaster::NotRunning,
    }
}

/// The postgres process `postmaster.pid` names, if any, with its state
/// letter from /proc (R, S, Z...). A postgres that works in another
/// directory is not ours: a recycled PID, maybe another instance's
/// postmaster, which neither monitor nor stop may take for this one.
fn pid_file_process(datadir: &Path) -> Option<(i32, char)> {
    let pid = procfs::pid_file_pid(datadir)?;
    let st = procfs::stat(pid)?;
    if !(st.comm.starts_with("postgres") || st.comm.starts_with("postmaster")) {
        return None;
    }
    // A zombie has no working directory left: it is dead whoever it was.
    if st.state == 'Z' || st.state == 'X' {
        return Some((pid, st.state));
    }
    match procfs::works_in(pid, datadir) {
        Some(true) => Some((pid, st.state)),
        Some(false) => {
            log::warn!(
                "postmaster.pid names PID {pid}, a postgres process serving another directory: not this instance"
            );
            None
        }
        None => None,
    }
}

/// How long to look at a suspicious instance before calling it hung.
const HANG_LOOKS: usize = 3;
const HANG_LOOK_EVERY: Duration = Duration::from_millis(300);

/// Whether the instance whose postmaster is `pid` can make progress. One
/// /proc read when the postmaster is fine; a few looks at the whole process
/// tree otherwise.
pub async fn liveness(pid: i32) -> Liveness {
    let look = || procfs::tree(pid).iter().map(|s| s.state).collect::<Vec<char>>();
    let pm = procfs::stat(pid).map(|s| s.state);
    if !pm.is_some_and(|s| hang::suspicious(&[s])) {
        return Liveness::Alive;
    }
    let mut samples = vec![look()];
    while samples.len() < HANG_LOOKS && !matches!(hang::judge(&samples), Liveness::Hung(_)) {
        tokio::time::sleep(HANG_LOOK_EVERY).await;
        samples.push(look());
    }
    hang::judge(&samples)
}

/// SIGKILL of the postmaster `pid` and of every process under it: what a
/// hung server gets. Nothing committed is lost (the WAL is on disk); the
/// next start does crash recovery. Fails when a process outlives the kill
/// (uninterruptible sleep on a dead disk): only fencing ends it then.
pub async fn kill_tree(agent: &Agent, pid: i32) -> Result<(), Failure> {
    kill_processes(agent, procfs::tree(pid)).await
}

/// SIGKILL of `procs`, waiting (a bounded moment) until they are gone.
pub async fn kill_processes(agent: &Agent, procs: Vec<procfs::Stat>) -> Result<(), Failure> {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    log::warn!(
        "SIGKILL to {} PostgreSQL processes (PID:state {})",
        procs.len(),
        procs.iter().map(|s| format!("{}:{}", s.pid, s.state)).collect::<Vec<_>>().join(" ")
    );
    for s in &procs {
        let _ = kill(Pid::from_raw(s.pid), Signal::SIGKILL);
    }
    let give_up = Instant::now() + (agent.time_left() / 2).min(Duration::from_secs(10));
    loop {
        // Same PID, same parent: still that process (a recycled PID would
        // have another parent, or at least not be a child of the tree).
        let left: Vec<procfs::Stat> = procs
            .iter()
            .filter_map(|s| procfs::stat(s.pid).filter(|n| n.ppid == s.ppid || n.comm == s.comm))
            .filter(|s| s.state != 'Z' && s.state != 'X')
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() >= give_up {
            return Err(Failure::generic(format!(
                "PostgreSQL processes survive SIGKILL (PID:state {}): the node must be fenced",
                left.iter().map(|s| format!("{}:{}", s.pid, s.state)).collect::<Vec<_>>().join(" ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Fails at once when the instance cannot answer, instead of waiting for a
/// connection or a shutdown that will never come.
pub async fn fail_if_hung(pm: Postmaster) -> Result<(), Failure> {
    if let Postmaster::Running(pid) = pm
        && let Liveness::Hung(why) = liveness(pid).await
    {
        return Err(Failure::generic(format!("PostgreSQL is hung: {why} (postmaster PID {pid})")));
    }
    Ok(())
}

pub fn target(agent: &Agent) -> Result<Target<'_>, Failure> {
    Ok(Target { host: &agent.params.pghost, port: agent.params.pgport, user: agent.runas()? })
}

/// Look once: control file, postmaster, and one query if it answers.
pub async fn observe(agent: &Agent) -> Result<Observed, Failure> {
    let control = control_data(agent).await?;
    let pm = postmaster(&agent.params.datadir);
    fail_if_hung(pm).await?;
    let t = target(agent)?;
    // Nothing to connect to: skip the attempt (and its timeout) entirely.
    let connected = if pm == Postmaster::NotRunning && t.host.starts_with('/') {
        Err(PgError::Contact(Contact::Unreachable))
    } else {
        unless_hung(pm, pg::connect(&t, agent.deadline)).await?
    };
    let (contact, client, status) = match connected {
        Ok(client) => match unless_hung(pm, pg::status(&client, agent.deadline)).await? {
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
    let backup_label = has_backup_label(agent)?;
    let role = role::decide(control.state, pm, &contact, backup_label);
    log::debug!(
        "state \"{}\", postmaster {pm:?}, contact {contact:?} => {role:?}",
        control.state.as_str()
    );
    Ok(Observed { role, control, client, status })
}

/// `work` (a connection, a query, a shutdown), abandoned as soon as the
/// instance is seen hung while it waits: its postmaster stopped, or, after
/// `STALL_WINDOW` without an answer, no CPU used by any of its processes
/// while some wait on the disk. A server that stopped making progress would
/// otherwise hold the action until its timeout.
pub async fn unless_hung<T>(pm: Postmaster, work: impl Future<Output = T>) -> Result<T, Failure> {
    let Postmaster::Running(pid) = pm else { return Ok(work.await) };
    let watch = async {
        let mut looks: Vec<hang::Look> = Vec::new();
        let keep = (STALL_WINDOW.as_millis() / HANG_WATCH_EVERY.as_millis()) as usize + 1;
        loop {
            tokio::time::sleep(HANG_WATCH_EVERY).await;
            if let Err(f) = fail_if_hung(pm).await {
                return f;
            }
            looks.push(procfs::tree(pid).iter().map(|s| (s.state, s.cpu)).collect());
            if looks.len() > keep {
                looks.remove(0);
            }
            if looks.len() == keep
                && let Some(why) = hang::stalled(&looks)
            {
                return Failure::generic(format!(
                    "PostgreSQL is hung: {why} (postmaster PID {pid})"
                ));
            }
        }
    };
    tokio::select! {
        r = work => Ok(r),
        f = watch => Err(f),
    }
}

/// How often an unanswered connection or query looks at the processes.
const HANG_WATCH_EVERY: Duration = Duration::from_millis(500);
/// How long a server may use no CPU, waiting on its disk, before it is
/// called hung.
const STALL_WINDOW: Duration = Duration::from_secs(5);

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
                "timed out waiting for the instance to be {what} (it is {})",
                o.role
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

fn secs_left(agent: &Agent) -> String {
    agent.time_left().as_secs().max(1).to_string()
}

/// Whether `backup_label` is in the data directory (a link counts: it is
/// not followed).
pub fn has_backup_label(agent: &Agent) -> Result<bool, Failure> {
    let datadir = &agent.params.datadir;
    safefs::Dir::open(datadir).and_then(|d| d.exists("backup_label")).map_err(|e| {
        Failure::new(OcfExit::ErrArgs, format!("{}/backup_label: {e}", datadir.display()))
    })
}

/// `standby.signal` in the data directory, owned by system_user, mode 0600.
/// Root creates it: never through a link, and only in a directory the
/// system user owns.
pub fn ensure_standby_signal(agent: &Agent) -> Result<(), Failure> {
    let runas = agent.runas()?;
    let datadir = &agent.params.datadir;
    safefs::Dir::open_owned_by(datadir, runas.uid)
        .and_then(|d| d.ensure_empty_file("standby.signal", runas.uid, runas.gid))
        .map_err(|e| Failure::generic(format!("{}/standby.signal: {e}", datadir.display())))
}

pub fn remove_standby_signal(agent: &Agent) -> Result<(), Failure> {
    let runas = agent.runas()?;
    let datadir = &agent.params.datadir;
    safefs::Dir::open_owned_by(datadir, runas.uid).and_then(|d| d.remove("standby.signal")).map_err(
        |e| Failure::generic(format!("cannot remove {}/standby.signal: {e}", datadir.display())),
    )
}

/// `pg_ctl start`, waiting for the server to accept connections.
/// pg_ctl runs postgres through /bin/sh: the data directory goes in PGDATA
/// (never into the shell's text, where pg_ctl -D would put it between
/// double quotes, which `$` and `"` escape), and the options are quoted
/// word by word.
pub async fn pg_ctl_start(agent: &Agent) -> Result<(), Failure> {
    let p = &agent.params;
    let words = crate::validate::check_start_opts(p)?;
    // -D again among the quoted options, so that ps shows which instance
    // a postmaster is.
    let mut opts = vec!["-D".to_string(), p.pgdata.display().to_string()];
    opts.extend(crate::actions::checks::config_file_opts(agent, &words));
    // Last: it wins over the same setting in start_opts.
    opts.extend(crate::actions::slots::start_options(agent, agent.node().await?));
    let mut cmd = Cmd::new(p.bin("pg_ctl"))
        .args(["start", "-w", "-t"])
        .arg(secs_left(agent))
        .args(["-o".to_string(), shell_words::join(&opts)])
        .run_as(agent.runas()?)
        .env("PGDATA", p.pgdata.display().to_string())
        .stdout_until_exit();
    // pg_ctl puts the -l path between double quotes in its shell command:
    // a path a shell would change is not given (the server's output is then
    // lost, as without the agent's log; said in the log).
    let log = server_log(agent).filter(|(path, _)| {
        let text = path.display().to_string();
        let safe = !text.contains(['$', '`', '"', '\\', '\n']);
        if !safe {
            log::warn!(
                "not keeping the server's output in {text}: pg_ctl would hand it to a shell"
            );
        }
        safe
    });
    if let Some((path, _)) = &log {
        cmd = cmd.arg("-l").arg(path.display().to_string());
    }
    wait_unreaped_postmaster(agent).await;
    remove_foreign_pid_file(&agent.params.datadir);
    let out = cmd.run(agent.deadline).await?;
    if !out.success() {
        let logged = log.map(|(path, from)| log_since(&path, from)).unwrap_or_default();
        return Err(Failure::generic(format!(
            "pg_ctl start failed: {}",
            start_failure(&format!("{logged}\n{}", out.stdout), &out.message())
        )));
    }
    Ok(())
}

/// Where the server's own output goes (`pg_ctl -l`): without it, a server
/// with logging_collector off writes to a pipe that closes with pg_ctl, and
/// nothing would say why it crashed later. `<datadir>.server.log`, beside
/// the data directory (not in it: base backups copy the data directory).
pub fn server_log_path(datadir: &Path) -> Option<std::path::PathBuf> {
    let name = datadir.file_name()?.to_str()?;
    Some(datadir.with_file_name(format!("{name}.server.log")))
}

/// The server log, opened (created) safely by root: no symbolic link
/// followed, mode 0600, a regular file with one link, owned by system_user;
/// with its current size. `None` (and a warning) when it cannot be: the
/// start goes on, as before, without a log file.
fn server_log(agent: &Agent) -> Option<(std::path::PathBuf, u64)> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let path = server_log_path(&agent.params.datadir)?;
    // pg_ctl hands the path to /bin/sh between double quotes.
    let text = path.to_str()?;
    if text.contains(['"', '$', '`', '\\', '\n']) {
        log::warn!("server log {text}: the path holds shell characters; not writing a server log");
        return None;
    }
    let runas = agent.runas().ok()?;
    // Created here (O_EXCL) and given to system_user, or an existing file
    // of system_user's: never a file of someone else's given away.
    let open = |create: bool| {
        let mut o = std::fs::OpenOptions::new();
        o.append(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC);
        if create {
            o.create_new(true);
        }
        o.open(&path).and_then(|f| Ok((f.metadata()?, f, create)))
    };
    let opened = match open(true) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => open(false),
        other => other,
    };
    let why = match opened {
        Err(e) => e.to_string(),
        Ok((m, _, _)) if !m.is_file() || m.nlink() != 1 => {
            "not a regular file with a single link".to_string()
        }
        Ok((m, _, _)) if m.uid() == runas.uid.as_raw() => return Some((path, m.len())),
        Ok((_, f, true)) => match nix::unistd::fchown(&f, Some(runas.uid), Some(runas.gid)) {
            Ok(()) => return Some((path, 0)),
            Err(e) => format!("cannot give it to {}: {e}", runas.name),
        },
        Ok((m, _, false)) => format!("owned by uid {}, not by {}", m.uid(), runas.name),
    };
    log::warn!("server log {text}: {why}; starting without a server log file");
    None
}

/// What the server wrote to its log from `offset` on (at most 64 KiB).
pub fn log_since(path: &Path, offset: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::fs::OpenOptionsExt;
    const CAP: u64 = 64 * 1024;
    let Ok(mut f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
    else {
        return String::new();
    };
    // Only a regular file: a FIFO or device put there is not read.
    let len = match f.metadata() {
        Ok(m) if m.is_file() => m.len(),
        _ => return String::new(),
    };
    let from = offset.max(len.saturating_sub(CAP)).min(len);
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(from)).is_ok() {
        let _ = f.take(CAP).read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
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

/// A `postmaster.pid` naming a live process that works elsewhere (a PID
/// recycled after a crash and a reboot, maybe another instance's
/// postmaster): PostgreSQL would refuse to start for as long as that
/// process lives. Removed, but only when no process at all works in the
/// data directory: orphaned backends of the old server would still hold its
/// shared memory, which the lock file lets PostgreSQL detect.
fn remove_foreign_pid_file(datadir: &Path) {
    let Some(pid) = procfs::pid_file_pid(datadir) else { return };
    let alive_elsewhere = procfs::stat(pid).is_some_and(|s| s.state != 'Z' && s.state != 'X')
        && procfs::works_in(pid, datadir) == Some(false);
    if !alive_elsewhere {
        return;
    }
    let inside = procfs::working_in(datadir);
    if !inside.is_empty() {
        log::warn!(
            "postmaster.pid names PID {pid}, which works elsewhere, but processes still work in the data directory ({}): leaving it",
            inside.iter().map(|s| s.pid.to_string()).collect::<Vec<_>>().join(",")
        );
        return;
    }
    match std::fs::remove_file(datadir.join("postmaster.pid")) {
        Ok(()) => log::warn!(
            "removed a stale postmaster.pid naming PID {pid}, a process of another directory"
        ),
        Err(e) => log::warn!("cannot remove the stale postmaster.pid: {e}"),
    }
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
        .await?;
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

    proptest::proptest! {
        #[test]
        fn proc_stat_parsing_never_panics(s in "\\PC*") {
            let _ = crate::procfs::parse_stat(1, &s);
        }
    }
}
