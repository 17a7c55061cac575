//! A diverged former primary rejoining by itself (`rejoin_policy`): the WAL
//! a rewind discards copied beside the data directory, pg_rewind or
//! pg_basebackup run as system_user within the start's deadline, and a
//! marker beside the data directory for what a timeout cut, so that the
//! next start redoes it. What to do is decided in `rejoin_policy`; this
//! module only does it.

use crate::actions::rejoin::{self, Diverged};
use crate::actions::{checks, lifecycle};
use crate::agent::{ActionResult, Agent, Failure};
use crate::controlfile::DbState;
use crate::lsn::Lsn;
use crate::process::{Cmd, CmdError};
use crate::rejoin_policy::{self as policy, Action, Facts, Pending, Policy, Primary};
use crate::safefs::{self, FsError};
use crate::validate::{self, Settings};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;

/// Size cap of one of this node's files kept across a copy.
const CONFIG_CAP: u64 = 4 << 20;
const MARKER_CAP: u64 = 4096;

/// This node's own files (`rejoin_policy::node_files`), absent ones as None.
type Saved = Vec<(String, Option<Vec<u8>>)>;

fn fs_failure(what: impl std::fmt::Display, e: FsError) -> Failure {
    Failure::generic(format!("{what} {e}"))
}

/// The directory holding the data directory, open, and the data
/// directory's name in it.
fn beside(agent: &Agent) -> Result<(safefs::Dir, String, PathBuf), Failure> {
    let d = &agent.params.datadir;
    let name = d
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Failure::generic(format!("datadir {} has no name", d.display())))?;
    let parent = d.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("/"));
    let dir = safefs::Dir::open(parent).map_err(|e| fs_failure(parent.display(), e))?;
    Ok((dir, name.to_string(), parent.to_path_buf()))
}

fn now_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    policy::stamp(secs)
}

/// The unfinished operation an earlier start left (its marker, written by
/// root: one the system user planted is refused).
pub fn pending(agent: &Agent) -> Result<Option<(Pending, Option<String>)>, Failure> {
    // No parent to look in: the checks of the start say what is wrong.
    let Ok((dir, name, parent)) = beside(agent) else { return Ok(None) };
    let marker = policy::marker_name(&name);
    let root = nix::unistd::geteuid().as_raw();
    match dir.read_owned(&marker, MARKER_CAP, root) {
        Ok(b) => policy::parse_marker(&String::from_utf8_lossy(&b)).map(Some).ok_or_else(|| {
            Failure::generic(format!(
                "{}/{marker} is not a marker the agent wrote: check the data directory, remove it, then cleanup",
                parent.display()
            ))
        }),
        Err(FsError::NotFound) => Ok(None),
        Err(e) => Err(fs_failure(format!("{}/{marker}", parent.display()), e)),
    }
}

fn write_marker(
    dir: &safefs::Dir,
    name: &str,
    p: Pending,
    aside: Option<&str>,
) -> Result<(), Failure> {
    let marker = policy::marker_name(name);
    dir.remove(&marker).map_err(|e| fs_failure(&marker, e))?;
    let mut f = dir.create_file(&marker, 0o600).map_err(|e| fs_failure(&marker, e))?;
    f.write_all(policy::marker_text(p, aside).as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| Failure::generic(format!("{marker}: {e}")))?;
    dir.sync().map_err(|e| fs_failure(&marker, e))
}

fn remove_marker(dir: &safefs::Dir, name: &str) -> Result<(), Failure> {
    let marker = policy::marker_name(name);
    dir.remove(&marker).map_err(|e| fs_failure(&marker, e))?;
    dir.sync().map_err(|e| fs_failure(&marker, e))
}

/// A start found this former primary's WAL diverged: refuse, rewind or
/// rebuild, as the policy says.
pub async fn rejoin(agent: &Agent, settings: &Settings, d: Diverged) -> ActionResult {
    let policy = agent.params.rejoin_policy;
    if policy == Policy::Manual {
        return Err(d.refusal());
    }
    // The divergence check got its answer from the primary: it answers.
    let primary = match rejoin::primary_elsewhere(agent).await? {
        Some(node) => Primary::Answers(node),
        None => Primary::NotInCib,
    };
    let facts = control_facts(agent).await?;
    let f = Facts {
        policy,
        diverged: true,
        pending: None,
        primary,
        rewindable: facts.wal_log_hints || facts.checksums,
    };
    let action = policy::decide(&f);
    log::info!("rejoin_policy={}: {action:?} ({f:?})", policy.as_str());
    match action {
        Action::Refuse(why) => Err(Failure::generic(why)),
        Action::Start => Err(d.refusal()),
        Action::Rewind | Action::Clone => {
            // A rebuild that cannot happen is refused before anything is
            // written.
            if action == Action::Clone {
                clone_possible(agent)?;
            }
            // pg_rewind would finish a crash recovery first, writing
            // checkpoints into the WAL after what was kept: a kept copy put
            // back later would then lose the record the control file names.
            let d = finish_crash_recovery(agent, d).await?;
            // A pg_rewind cut short may have rewritten any WAL segment from
            // the last common checkpoint on: keep them all, from there.
            let (action, from) = if action == Action::Rewind {
                match rewind_dry_run(agent, &settings.primary_conninfo).await {
                    Ok(checkpoint) => (Action::Rewind, checkpoint.min(d.switchpoint)),
                    Err(why) => {
                        log::error!("pg_rewind cannot run: {why}");
                        match policy::after_failed_rewind(policy, &why) {
                            Action::Refuse(r) => return Err(Failure::generic(r)),
                            a => {
                                clone_possible(agent)?;
                                (a, d.switchpoint)
                            }
                        }
                    }
                }
            } else {
                (action, d.switchpoint)
            };
            let kept = keep_diverged_wal(agent, &d, from, facts.segment_size)?;
            if action == Action::Rewind {
                rewind_then_start(agent, &settings.primary_conninfo, kept, false).await
            } else {
                log::warn!(
                    "pg_rewind is impossible here (neither wal_log_hints nor data checksums): rebuilding with pg_basebackup"
                );
                clone_then_start(agent, &settings.primary_conninfo, None, None).await
            }
        }
    }
}

/// A former primary that crashed: its crash recovery finished the way
/// pg_rewind does it (postgres in single-user mode, which replays, writes
/// its checkpoints and stops: no connection, no new timeline), so that its
/// WAL does not change any more. `d.own_last` then covers those records.
async fn finish_crash_recovery(agent: &Agent, d: Diverged) -> Result<Diverged, Failure> {
    let c = crate::instance::control_data(agent).await?;
    if matches!(c.state, DbState::ShutDown | DbState::ShutDownInRecovery) {
        return Ok(d);
    }
    let p = &agent.params;
    let words = validate::check_start_opts(p)?;
    let cmd = Cmd::new(p.bin("postgres"))
        .args(["--single", "-F", "-D"])
        .arg(p.pgdata.display().to_string())
        .args(checks::config_file_opts(agent, &words))
        .arg("template1")
        .run_as(agent.runas()?);
    log::info!("finishing the crash recovery of this former primary: {}", cmd.display());
    let out = cmd
        .run(Instant::now() + agent.time_left() / 3)
        .await
        .map_err(|e| Failure::generic(format!("crash recovery before pg_rewind: {e}")))?;
    let c = crate::instance::control_data(agent).await?;
    if !out.success() || c.state != DbState::ShutDown {
        return Err(Failure::generic(format!(
            "crash recovery before pg_rewind failed (control file: \"{}\"): {}",
            c.state.as_str(),
            out.message()
        )));
    }
    Ok(Diverged { own_last: d.own_last.max(c.checkpoint), ..d })
}

/// Redo what an earlier start could not finish.
pub async fn resume(agent: &Agent, pending: Pending, aside: Option<String>) -> ActionResult {
    log::warn!("an earlier start left a {pending:?} unfinished: resuming it");
    let (conninfo, rewindable) = match pending {
        Pending::Rewind => {
            // The run cut short may have replaced this node's configuration
            // with the primary's: its own, kept with the WAL, first.
            if let Some(k) = &aside {
                let (_, _, parent) = beside(agent)?;
                restore_config(agent, &save_config(&parent.join(k))?)?;
            }
            let s = checks::local(agent, true).await?.expect("settings were asked for");
            let f = control_facts(agent).await?;
            (s.primary_conninfo, f.wal_log_hints || f.checksums)
        }
        Pending::Clone => {
            checks::binaries_and_user(agent)?;
            let p = &agent.params;
            // The configuration is in pgdata, or, when it is the data
            // directory, in the old one kept aside.
            // (Not aside yet: the rename never happened, pgdata is intact.)
            let (_, _, parent) = beside(agent)?;
            let confdir = match &aside {
                Some(a) if p.pgdata == p.datadir && parent.join(a).is_dir() => parent.join(a),
                _ => p.pgdata.clone(),
            };
            (checks::setting_in(agent, &confdir, "primary_conninfo").await?, false)
        }
    };
    let primary = primary_state(agent, &conninfo).await?;
    let f = Facts {
        policy: agent.params.rejoin_policy,
        diverged: true,
        pending: Some(pending),
        primary,
        rewindable,
    };
    match policy::decide(&f) {
        Action::Refuse(why) => Err(Failure::generic(why)),
        Action::Rewind => match aside {
            // What the interrupted run may have removed from pg_wal.
            Some(kept) => {
                restore_diverged_wal(agent, &kept)?;
                rewind_then_start(agent, &conninfo, Some(kept), true).await
            }
            None if f.policy.may_clone() => {
                log::warn!("interrupted pg_rewind, and no kept WAL to redo it from: rebuilding");
                clone_then_start(agent, &conninfo, None, None).await
            }
            None => Err(Failure::generic(
                "interrupted pg_rewind, and no kept WAL to redo it from: rebuild by hand",
            )),
        },
        Action::Clone => clone_then_start(agent, &conninfo, None, aside).await,
        Action::Start => Err(Failure::generic("nothing to resume")),
    }
}

/// Another node promoted in the CIB, and whether it answers through
/// primary_conninfo.
async fn primary_state(agent: &Agent, primary_conninfo: &str) -> Result<Primary, Failure> {
    let Some(node) = rejoin::primary_elsewhere(agent).await? else {
        return Ok(Primary::NotInCib);
    };
    let until = Instant::now() + (agent.time_left() / 4).min(Duration::from_secs(10));
    let conninfo = rejoin::replication_conninfo(primary_conninfo);
    Ok(match rejoin::identify_primary(agent, &conninfo, until).await {
        Ok(Some(_)) => Primary::Answers(node),
        Ok(None) => Primary::NotInCib,
        Err(e) => {
            log::error!("{}", e.reason);
            Primary::Unreachable(node)
        }
    })
}

/// wal_log_hints, checksums and WAL segment size, from pg_controldata.
async fn control_facts(agent: &Agent) -> Result<policy::RewindFacts, Failure> {
    let p = &agent.params;
    let out = Cmd::new(p.bin("pg_controldata"))
        .arg(p.datadir.display().to_string())
        .run_as(agent.runas()?)
        .run(agent.deadline)
        .await?;
    policy::parse_controldata(&out.stdout).ok_or_else(|| {
        Failure::generic(format!(
            "pg_controldata does not say whether pg_rewind can run (wal_log_hints, checksums): {}",
            out.message()
        ))
    })
}

/// Time kept back from a long copy: the standby must still start.
fn reserve(agent: &Agent) -> Duration {
    (agent.time_left() / 3).min(Duration::from_secs(20))
}

/// Copy the WAL segments written after the fork to
/// `<datadir>.diverged-<time>-tl<N>/`, owned by system_user; its name.
fn keep_diverged_wal(
    agent: &Agent,
    d: &Diverged,
    from: Lsn,
    seg_size: u64,
) -> Result<Option<String>, Failure> {
    let runas = agent.runas()?;
    let wal_path = agent.params.datadir.join("pg_wal");
    let wal = safefs::Dir::open_owned_by(&wal_path, runas.uid)
        .map_err(|e| fs_failure(wal_path.display(), e))?;
    let names: Vec<String> = std::fs::read_dir(&wal_path)
        .map_err(|e| Failure::generic(format!("{}: {e}", wal_path.display())))?
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    let segments = policy::diverged_segments(&names, d.timeline, from, d.own_last, seg_size);
    if segments.is_empty() {
        log::warn!(
            "no WAL segment of timeline {} after {} in {}: nothing to keep",
            d.timeline,
            d.switchpoint,
            wal_path.display()
        );
        return Ok(None);
    }
    let (dir, name, parent) = beside(agent)?;
    let free = dir.free_bytes().map_err(|e| fs_failure(parent.display(), e))?;
    policy::wal_copy_room(free, seg_size.saturating_mul(segments.len() as u64))
        .map_err(Failure::generic)?;
    let kept_name = policy::diverged_dir_name(&name, &now_stamp(), d.timeline);
    let kept_path = parent.join(&kept_name);
    let kept = dir
        .create_dir(&kept_name, runas.uid, runas.gid)
        .map_err(|e| fs_failure(kept_path.display(), e))?;
    let until = agent.deadline - reserve(agent);
    for s in &segments {
        if Instant::now() >= until {
            return Err(Failure::generic(format!(
                "copying the diverged WAL to {} did not finish in time: raise the start timeout",
                kept_path.display()
            )));
        }
        let (src, _) = wal.open_file(s, seg_size).map_err(|e| fs_failure(s, e))?;
        let mut dst = kept.create_file(s, 0o600).map_err(|e| fs_failure(s, e))?;
        safefs::Dir::chown_file(&dst, runas.uid, runas.gid).map_err(|e| fs_failure(s, e))?;
        std::io::copy(&mut src.take(seg_size), &mut dst)
            .and_then(|_| dst.sync_all())
            .map_err(|e| Failure::generic(format!("copying {s}: {e}")))?;
    }
    kept.sync().and_then(|_| dir.sync()).map_err(|e| fs_failure(kept_path.display(), e))?;
    log::warn!(
        "the WAL this former primary wrote after the fork at {} (timeline {} from {from} to {}) is kept in {} ({} segments): read it with pg_waldump",
        d.switchpoint,
        d.timeline,
        d.own_last,
        kept_path.display(),
        segments.len()
    );
    Ok(Some(kept_name))
}

/// Put the kept diverged WAL segments back in pg_wal (over whatever an
/// interrupted pg_rewind left under their names).
fn restore_diverged_wal(agent: &Agent, kept_name: &str) -> Result<(), Failure> {
    let runas = agent.runas()?;
    let (_, _, parent) = beside(agent)?;
    let kept_path = parent.join(kept_name);
    let kept = safefs::Dir::open_owned_by(&kept_path, runas.uid)
        .map_err(|e| fs_failure(kept_path.display(), e))?;
    let wal_path = agent.params.datadir.join("pg_wal");
    let wal = safefs::Dir::open_owned_by(&wal_path, runas.uid)
        .map_err(|e| fs_failure(wal_path.display(), e))?;
    let mut names: Vec<String> = std::fs::read_dir(&kept_path)
        .map_err(|e| Failure::generic(format!("{}: {e}", kept_path.display())))?
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n.len() == 24 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect();
    names.sort();
    for n in &names {
        let (src, _) = kept.open_file(n, 1 << 30).map_err(|e| fs_failure(n, e))?;
        wal.remove(n).map_err(|e| fs_failure(n, e))?;
        let mut dst = wal.create_file(n, 0o600).map_err(|e| fs_failure(n, e))?;
        safefs::Dir::chown_file(&dst, runas.uid, runas.gid).map_err(|e| fs_failure(n, e))?;
        std::io::copy(&mut src.take(1 << 30), &mut dst)
            .and_then(|_| dst.sync_all())
            .map_err(|e| Failure::generic(format!("restoring {n}: {e}")))?;
    }
    wal.sync().map_err(|e| fs_failure(wal_path.display(), e))?;
    log::warn!(
        "put the {} diverged WAL segments kept in {} back in pg_wal before running pg_rewind again",
        names.len(),
        kept_path.display()
    );
    Ok(())
}

/// This node's configuration files in `dir` (absent ones as None).
fn save_config(dir: &Path) -> Result<Saved, Failure> {
    let d = safefs::Dir::open(dir).map_err(|e| fs_failure(dir.display(), e))?;
    let regular: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| Failure::generic(format!("{}: {e}", dir.display())))?
        .flatten()
        .filter(|e| e.path().symlink_metadata().is_ok_and(|m| m.is_file()))
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    policy::node_files(&regular)
        .map_err(Failure::generic)?
        .into_iter()
        .map(|f| match d.read(&f, CONFIG_CAP) {
            Ok(b) => Ok((f, Some(b))),
            Err(FsError::NotFound) => Ok((f, None)),
            Err(e) => Err(fs_failure(dir.join(&f).display(), e)),
        })
        .collect()
}

/// Put this node's configuration files back in the data directory, as
/// they were (one the copy brought that this node did not have is removed).
fn restore_config(agent: &Agent, saved: &Saved) -> Result<(), Failure> {
    write_config(agent, &agent.params.datadir, saved)
}

/// A copy of the configuration files in the kept WAL directory.
fn keep_config(agent: &Agent, kept: &Path, saved: &Saved) -> Result<(), Failure> {
    write_config(agent, kept, saved)
}

fn write_config(agent: &Agent, datadir: &Path, saved: &Saved) -> Result<(), Failure> {
    let runas = agent.runas()?;
    let d = safefs::Dir::open_owned_by(datadir, runas.uid)
        .map_err(|e| fs_failure(datadir.display(), e))?;
    for (name, content) in saved {
        d.remove(name).map_err(|e| fs_failure(name, e))?;
        if let Some(bytes) = content {
            let mut f = d.create_file(name, 0o600).map_err(|e| fs_failure(name, e))?;
            safefs::Dir::chown_file(&f, runas.uid, runas.gid).map_err(|e| fs_failure(name, e))?;
            f.write_all(bytes)
                .and_then(|_| f.sync_all())
                .map_err(|e| Failure::generic(format!("restoring {name}: {e}")))?;
        }
    }
    d.sync().map_err(|e| fs_failure(datadir.display(), e))
}

/// primary_conninfo's parameters for a command of ours: without the ones
/// we set, `extra` added, the password apart (it goes in PGPASSWORD).
fn command_conninfo(primary_conninfo: &str, extra: &[(&str, &str)]) -> (String, Option<String>) {
    let mut params: Vec<(String, String)> = validate::conninfo_params(primary_conninfo)
        .into_iter()
        .filter(|(k, _)| !["replication", "dbname"].contains(&k.as_str()))
        .collect();
    if !params.iter().any(|(k, _)| k == "connect_timeout") {
        params.push(("connect_timeout".into(), "5".into()));
    }
    params.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    crate::conninfo::take_password(&validate::conninfo_string(&params))
}

fn major(agent: &Agent) -> u32 {
    safefs::read_in(&agent.params.datadir, "PG_VERSION", safefs::SMALL)
        .ok()
        .and_then(|b| validate::check_pg_version(&String::from_utf8_lossy(&b)).ok())
        .unwrap_or(0)
}

enum RunError {
    TimedOut(String),
    Failed(String),
}

/// One long command as system_user, ended before the start's deadline
/// less the time to start the standby (its process group killed then).
async fn run_long(
    agent: &Agent,
    cmd: Cmd<'_>,
    password: Option<String>,
    what: &str,
) -> Result<String, RunError> {
    let budget = agent.time_left().saturating_sub(reserve(agent));
    run_within(cmd, password, what, budget).await
}

/// The same within `budget`; its output (stderr, then stdout).
async fn run_within(
    cmd: Cmd<'_>,
    password: Option<String>,
    what: &str,
    budget: Duration,
) -> Result<String, RunError> {
    let cmd = match password {
        Some(pw) => cmd.env("PGPASSWORD", pw),
        None => cmd,
    };
    log::info!("running {} (at most {} s)", cmd.display(), budget.as_secs());
    let t0 = Instant::now();
    match cmd.run(Instant::now() + budget).await {
        Ok(o) if o.success() => {
            log::info!("{what} done in {:.1} s", t0.elapsed().as_secs_f64());
            for l in o.stderr.lines().chain(o.stdout.lines()).filter(|l| !l.trim().is_empty()) {
                log::debug!("{what}: {l}");
            }
            Ok(format!("{}\n{}", o.stderr, o.stdout))
        }
        Ok(o) => Err(RunError::Failed(o.message())),
        Err(CmdError::TimedOut(_)) => Err(RunError::TimedOut(format!(
            "{what} did not finish within the start timeout ({} s given): stopped; the next start redoes it, raise the start timeout",
            budget.as_secs()
        ))),
        Err(e) => Err(RunError::Failed(e.to_string())),
    }
}

/// pg_rewind, then start. This node's configuration files are kept with
/// the diverged WAL: a run cut short may already have replaced them with
/// the primary's, and the next (`resumed`) takes them from there.
async fn rewind_then_start(
    agent: &Agent,
    primary_conninfo: &str,
    kept: Option<String>,
    resumed: bool,
) -> ActionResult {
    let (dir, name, parent) = beside(agent)?;
    let p = &agent.params;
    let saved = match (&kept, resumed) {
        (Some(k), true) => save_config(&parent.join(k))?,
        (_, _) => {
            let saved = save_config(&p.datadir)?;
            if let Some(k) = &kept {
                keep_config(agent, &parent.join(k), &saved)?;
            }
            saved
        }
    };
    write_marker(&dir, &name, Pending::Rewind, kept.as_deref())?;
    let (cmd, password) = pg_rewind_cmd(agent, primary_conninfo, false)?;
    match run_long(agent, cmd, password, "pg_rewind").await {
        Ok(_) => {}
        Err(RunError::TimedOut(why)) => return Err(Failure::generic(why)),
        Err(RunError::Failed(why)) => {
            log::error!("pg_rewind failed: {why}");
            return match policy::after_failed_rewind(p.rejoin_policy, &why) {
                Action::Clone => {
                    log::warn!("pg_rewind failed: rebuilding with pg_basebackup");
                    clone_then_start(agent, primary_conninfo, Some(saved), None).await
                }
                Action::Refuse(r) => Err(Failure::generic(r)),
                a => Err(Failure::generic(format!("unexpected decision {a:?}"))),
            };
        }
    }
    restore_config(agent, &saved)?;
    remove_marker(&dir, &name)?;
    log::warn!("pg_rewind done: starting as a standby of the primary");
    lifecycle::start_standby(agent).await
}

/// pg_rewind from the primary behind `primary_conninfo`, as system_user.
fn pg_rewind_cmd<'a>(
    agent: &'a Agent,
    primary_conninfo: &str,
    dry_run: bool,
) -> Result<(Cmd<'a>, Option<String>), Failure> {
    let p = &agent.params;
    let (conninfo, password) = command_conninfo(primary_conninfo, &[("dbname", "postgres")]);
    let mut cmd = Cmd::new(p.bin("pg_rewind"))
        .args(["--target-pgdata", &p.datadir.display().to_string()])
        .args(["--source-server", &conninfo])
        .run_as(agent.runas()?);
    if p.pgdata != p.datadir && major(agent) >= 15 {
        // Crash recovery of the target runs postgres: its configuration.
        cmd = cmd.args(["--config-file", &p.pgdata.join("postgresql.conf").display().to_string()]);
    }
    if dry_run {
        cmd = cmd.arg("--dry-run");
    }
    Ok((cmd, password))
}

/// pg_rewind --dry-run: whether pg_rewind can run (source reachable, rights,
/// prerequisites), and the last checkpoint before the fork, from which a
/// second run would read this instance's WAL again.
async fn rewind_dry_run(agent: &Agent, primary_conninfo: &str) -> Result<Lsn, String> {
    let (cmd, password) = pg_rewind_cmd(agent, primary_conninfo, true).map_err(|f| f.reason)?;
    let budget = agent.time_left() / 4;
    match run_within(cmd, password, "pg_rewind --dry-run", budget).await {
        Ok(out) => policy::parse_common_checkpoint(&out).ok_or_else(|| {
            format!("pg_rewind --dry-run did not name the last common checkpoint: {}", out.trim())
        }),
        Err(RunError::TimedOut(why) | RunError::Failed(why)) => Err(why),
    }
}

/// Bytes of the regular files under `path` (links not followed), read
/// before `until`.
fn tree_size(path: &Path, until: Instant) -> Result<u64, String> {
    let mut total = 0u64;
    let mut todo = vec![path.to_path_buf()];
    while let Some(dir) = todo.pop() {
        if Instant::now() >= until {
            return Err(format!("measuring {} did not finish in time", path.display()));
        }
        for e in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let e = e.map_err(|e| format!("{}: {e}", dir.display()))?;
            let m = e.path().symlink_metadata().map_err(|e| format!("{}: {e}", dir.display()))?;
            if m.is_dir() {
                todo.push(e.path());
            } else if m.is_file() {
                total = total.saturating_add(m.len());
            }
        }
    }
    Ok(total)
}

/// Whether the data directory can be rebuilt with the old one kept aside:
/// no tablespaces (their directories are in use by the old data), and room
/// for a new copy on its filesystem.
fn clone_possible(agent: &Agent) -> Result<(), Failure> {
    let datadir = &agent.params.datadir;
    let tblspc = std::fs::read_dir(datadir.join("pg_tblspc"))
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if tblspc {
        return Err(Failure::generic(
            "a rebuild would need the tablespace directories, in use by the old data: rebuild by hand",
        ));
    }
    let (dir, _, parent) = beside(agent)?;
    let size = tree_size(datadir, Instant::now() + agent.time_left() / 10)
        .map_err(|e| Failure::generic(format!("cannot tell the room a rebuild needs: {e}")))?;
    let free = dir.free_bytes().map_err(|e| fs_failure(parent.display(), e))?;
    policy::clone_room(free, size).map_err(Failure::generic)
}

/// Rebuild the data directory with pg_basebackup from the primary, the old
/// one renamed aside (or already aside: `aside`, from the marker).
async fn clone_then_start(
    agent: &Agent,
    primary_conninfo: &str,
    saved: Option<Saved>,
    aside: Option<String>,
) -> ActionResult {
    let p = &agent.params;
    let runas = agent.runas()?;
    let (dir, name, parent) = beside(agent)?;
    let datadir = &p.datadir;
    let link = datadir.symlink_metadata().map(|m| m.file_type().is_symlink()).unwrap_or(false);
    if link {
        return Err(Failure::generic(format!(
            "datadir {} is a symbolic link: the agent does not rebuild it, rebuild by hand",
            datadir.display()
        )));
    }
    let aside_done = match &aside {
        Some(a) => dir.exists(a).map_err(|e| fs_failure(a, e))?,
        None => false,
    };
    let aside_name = if let (true, Some(a)) = (aside_done, aside) {
        // Ours, from the interrupted clone: what is in datadir now is its
        // incomplete copy.
        if dir.exists(&name).map_err(|e| fs_failure(&name, e))? {
            log::warn!(
                "removing the incomplete copy an interrupted clone left in {}",
                datadir.display()
            );
            std::fs::remove_dir_all(datadir)
                .map_err(|e| Failure::generic(format!("removing {}: {e}", datadir.display())))?;
        }
        a
    } else {
        clone_possible(agent)?;
        let a = policy::replaced_dir_name(&name, &now_stamp());
        write_marker(&dir, &name, Pending::Clone, Some(&a))?;
        dir.rename(&name, &a).map_err(|e| fs_failure(datadir.display(), e))?;
        dir.sync().map_err(|e| fs_failure(parent.display(), e))?;
        log::warn!("old data directory moved aside to {}", parent.join(&a).display());
        a
    };
    let saved = match saved {
        Some(s) => s,
        None => save_config(&parent.join(&aside_name))?,
    };
    dir.create_dir(&name, runas.uid, runas.gid).map_err(|e| fs_failure(datadir.display(), e))?;
    let (conninfo, password) = command_conninfo(primary_conninfo, &[]);
    let cmd = Cmd::new(p.bin("pg_basebackup"))
        .args(["-D", &datadir.display().to_string(), "-X", "stream", "-c", "fast", "-d", &conninfo])
        .run_as(runas);
    match run_long(agent, cmd, password, "pg_basebackup").await {
        Ok(_) => {}
        Err(RunError::TimedOut(why)) => return Err(Failure::generic(why)),
        Err(RunError::Failed(why)) => {
            return Err(Failure::generic(format!(
                "pg_basebackup failed: {why}; the next start redoes it"
            )));
        }
    }
    restore_config(agent, &saved)?;
    remove_marker(&dir, &name)?;
    log::warn!(
        "data directory rebuilt from the primary (the old one is in {}): starting as a standby",
        parent.join(&aside_name).display()
    );
    lifecycle::start_standby(agent).await
}

/// validate-all: what the policy needs on this node, gathered here, judged
/// in `rejoin_policy::check_prerequisites`.
pub async fn validate(agent: &Agent, settings: &Settings) -> Result<(), Failure> {
    let policy = agent.params.rejoin_policy;
    if policy == Policy::Manual {
        return Ok(());
    }
    let p = &agent.params;
    let missing_binaries: Vec<String> = policy::binaries(policy)
        .iter()
        .map(|b| p.bin(b))
        .filter(|b| !crate::process::is_executable(b))
        .map(|b| b.display().to_string())
        .collect();
    let wal_log_hints = checks::setting_in(agent, &p.pgdata, "wal_log_hints").await? == "on";
    let checksums = control_facts(agent).await?.checksums;
    let rewind_rights = if missing_binaries.is_empty() {
        rewind_rights(agent, &settings.primary_conninfo).await
    } else {
        None
    };
    let room = if policy.may_clone() {
        let until = Instant::now() + agent.time_left() / 4;
        match (tree_size(&p.datadir, until), beside(agent)) {
            (Ok(size), Ok((dir, _, _))) => dir.free_bytes().ok().map(|free| (free, size)),
            _ => None,
        }
    } else {
        None
    };
    let facts =
        policy::Prerequisites { missing_binaries, wal_log_hints, checksums, rewind_rights, room };
    log::debug!("rejoin_policy={}: {facts:?}", policy.as_str());
    for w in policy::check_prerequisites(policy, &facts)? {
        log::warn!("rejoin_policy={}: {w}", policy.as_str());
    }
    Ok(())
}

/// Whether the primary_conninfo user may run pg_rewind on the primary
/// (superuser, or the functions pg_rewind's manual lists); None when the
/// primary does not answer now.
async fn rewind_rights(agent: &Agent, primary_conninfo: &str) -> Option<bool> {
    const Q: &str = "SELECT r.rolsuper OR (\
        has_function_privilege('pg_catalog.pg_ls_dir(text, boolean, boolean)', 'EXECUTE') AND \
        has_function_privilege('pg_catalog.pg_stat_file(text, boolean)', 'EXECUTE') AND \
        has_function_privilege('pg_catalog.pg_read_binary_file(text)', 'EXECUTE') AND \
        has_function_privilege('pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)', 'EXECUTE')) \
        FROM pg_roles r WHERE r.rolname = current_user";
    let (conninfo, password) = command_conninfo(primary_conninfo, &[("dbname", "postgres")]);
    let mut cmd = Cmd::new(agent.params.bin("psql"))
        .args(["-X", "-A", "-t", "-d", &conninfo, "-c", Q])
        .run_as(agent.runas().ok()?);
    if let Some(pw) = password {
        cmd = cmd.env("PGPASSWORD", pw);
    }
    let until = Instant::now() + agent.time_left() / 3;
    match cmd.run(until).await {
        Ok(o) if o.success() => match o.stdout.trim() {
            "t" => Some(true),
            "f" => Some(false),
            _ => None,
        },
        Ok(o) => {
            log::warn!("cannot ask the primary about pg_rewind's rights: {}", o.message());
            None
        }
        Err(e) => {
            log::warn!("cannot ask the primary about pg_rewind's rights: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_conninfo_keeps_the_password_apart() {
        let (c, pw) = command_conninfo(
            "host=vip user=rep password=s3cret application_name=srv1 dbname=replication",
            &[("dbname", "postgres")],
        );
        assert_eq!(pw.as_deref(), Some("s3cret"));
        assert!(!c.contains("s3cret") && !c.contains("replication"), "{c}");
        assert!(c.contains("dbname='postgres'") && c.contains("connect_timeout='5'"), "{c}");
        let (c, _) = command_conninfo("postgresql://rep@vip/x?connect_timeout=2", &[]);
        assert!(c.contains("connect_timeout='2'") && !c.contains("connect_timeout='5'"), "{c}");
    }
}
