//! Starting COMMAND and waiting for it: its own process group, stdin from
//! /dev/null, stdout and stderr to the log, an optional deadline after which
//! the whole group is killed, and the rusage of the child's tree.

use nix::errno::Errno;
use nix::libc;
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::WaitStatus;
use nix::unistd::{access, AccessFlags, Pid};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{PipeWriter, Read, Write};
use std::mem::MaybeUninit;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// COMMAND's exit code, 128 + signal number, or this when the deadline
/// killed it.
pub const TIMED_OUT: i32 = -1;

/// How a waited-for child ended, and what its tree used.
pub struct Finished {
    pub exit: i32,
    /// User and system CPU time of the child and of every descendant
    /// waited for by its parent (the kernel adds a reaped child's times to
    /// its parent's).
    pub user_us: u64,
    pub sys_us: u64,
    /// Largest peak resident set of any single process of that tree, KiB.
    pub maxrss_kb: u64,
}

/// The executable COMMAND names: a path, or the first match in PATH.
pub fn resolve(cmd: &str) -> Result<PathBuf, String> {
    let p = if cmd.contains('/') {
        PathBuf::from(cmd)
    } else {
        std::env::var_os("PATH")
            .and_then(|path| std::env::split_paths(&path).map(|d| d.join(cmd)).find(|p| is_exec(p)))
            .ok_or_else(|| format!("{cmd}: not found in PATH"))?
    };
    if !is_exec(&p) {
        return Err(format!("{}: not an executable file", p.display()));
    }
    Ok(p)
}

fn is_exec(p: &Path) -> bool {
    p.is_file() && access(p, AccessFlags::X_OK).is_ok()
}

/// `argv[0]` stays as given, as exec(3) would pass it.
fn command<S: AsRef<OsStr>>(exe: &Path, argv: &[S], log: &File) -> Result<Command, String> {
    let out = log.try_clone().map_err(|e| format!("log: {e}"))?;
    let err = log.try_clone().map_err(|e| format!("log: {e}"))?;
    let mut c = Command::new(exe);
    c.arg0(&argv[0]).args(&argv[1..]).stdout(out).stderr(err).process_group(0);
    Ok(c)
}

/// Starts `exe` with `argv`, for a timed run.
pub fn spawn(exe: &Path, argv: &[String], log: &File) -> Result<Child, String> {
    let mut c = command(exe, argv, log)?;
    // An empty pre_exec hook makes std fork(2) the child instead of
    // posix_spawn's vfork: a vfork child runs in this process's memory until
    // its exec, and the kernel then counts all of this runner's resident
    // pages (its code included) in the child's ru_maxrss.
    // SAFETY: the hook does nothing.
    unsafe {
        c.pre_exec(|| Ok(()));
    }
    c.stdin(Stdio::null()).spawn().map_err(|e| format!("{}: {e}", exe.display()))
}

/// Starts a process that execs `exe` only once the returned writer is
/// written to or dropped, so that a tracer can attach to it first: this
/// program's hidden `gate` subcommand (see [`gate`]), whose exec of `exe`
/// is then the first thing the tracer sees. (A pre_exec hook cannot wait:
/// std's spawn returns only once the child has exec'd.)
pub fn spawn_gated(exe: &Path, argv: &[String], log: &File) -> Result<(Child, PipeWriter), String> {
    let me = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let (r, w) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
    let mut gate_argv: Vec<OsString> = vec!["bench-run".into(), "gate".into(), "--".into()];
    gate_argv.push(exe.into());
    gate_argv.extend(argv.iter().map(OsString::from));
    let mut c = command(&me, &gate_argv, log)?;
    let child = c.stdin(r).spawn().map_err(|e| format!("{}: {e}", me.display()))?;
    Ok((child, w))
}

/// Lets a process of [`spawn_gated`] go on.
pub fn release(mut w: PipeWriter) {
    let _ = w.write_all(b"x");
}

/// The `gate` subcommand (EXE ARGV0 [ARG]...): waits for a byte or EOF on
/// stdin, then replaces this process with EXE, stdin from /dev/null.
/// Returns only on error.
pub fn gate(cmd: &[OsString]) -> String {
    let [exe, argv0, args @ ..] = cmd else { return "gate: EXE ARGV0 [ARG]...".into() };
    let mut b = [0u8; 1];
    let _ = std::io::stdin().read(&mut b);
    let err = Command::new(exe).arg0(argv0).args(args).stdin(Stdio::null()).exec();
    format!("{}: {err}", exe.to_string_lossy())
}

/// Waits for `child`; with a timeout, a watchdog kills its process group
/// when it runs out, and the exit is [`TIMED_OUT`].
pub fn wait(child: Child, timeout: Option<Duration>) -> Result<Finished, String> {
    let pid = Pid::from_raw(child.id() as i32);
    let killed = Arc::new(AtomicBool::new(false));
    let (done, rx) = mpsc::channel::<()>();
    let watchdog = timeout.map(|t| {
        let killed = killed.clone();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(t) {
                killed.store(true, Ordering::SeqCst);
                let _ = killpg(pid, Signal::SIGKILL);
            }
        })
    });
    let waited = wait4(pid);
    let _ = done.send(());
    if let Some(w) = watchdog {
        let _ = w.join();
    }
    let (status, ru) = waited?;
    let exit = if killed.load(Ordering::SeqCst) {
        TIMED_OUT
    } else {
        match WaitStatus::from_raw(pid, status) {
            Ok(WaitStatus::Exited(_, code)) => code,
            Ok(WaitStatus::Signaled(_, sig, _)) => 128 + sig as i32,
            _ => 255,
        }
    };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Ok(Finished {
        exit,
        user_us: us(ru.ru_utime),
        sys_us: us(ru.ru_stime),
        maxrss_kb: ru.ru_maxrss as u64,
    })
}

/// wait4(2): the raw status and the child tree's rusage. std and nix wait
/// for a child without its rusage, and getrusage(RUSAGE_CHILDREN) sums all
/// children ever reaped and keeps the largest maxrss ever seen, so it cannot
/// give one run's figures.
fn wait4(pid: Pid) -> Result<(i32, libc::rusage), String> {
    let mut status = 0;
    let mut ru = MaybeUninit::<libc::rusage>::zeroed();
    loop {
        // SAFETY: both pointers are valid for writes during the call, and
        // `ru` is initialised whatever wait4 did: zeroed first (rusage holds
        // integers only, so all zeros is a valid value), then filled by a
        // successful wait4.
        let (r, usage) = unsafe {
            (libc::wait4(pid.as_raw(), &mut status, 0, ru.as_mut_ptr()), ru.assume_init())
        };
        match Errno::result(r) {
            Ok(_) => return Ok((status, usage)),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(format!("wait4: {e}")),
        }
    }
}

/// What a run's exit means, for error messages.
pub fn describe_exit(exit: i32) -> String {
    match exit {
        TIMED_OUT => "timed out, killed".to_string(),
        e if e > 128 => format!("killed by signal {}", e - 128),
        e => format!("exit {e}"),
    }
}
