//! External commands: spawned with a clean environment, optionally as the
//! PostgreSQL system user, and always bounded by the action's deadline.

use nix::unistd::{Gid, Uid, User};
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use tokio::time::Instant;

/// The identity PostgreSQL commands run under.
#[derive(Debug, Clone)]
pub struct RunAs {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
    pub groups: Vec<Gid>,
    pub home: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("system user \"{0}\" does not exist")]
    NoSuchUser(String),
    #[error("cannot look up the system user: {0}")]
    Lookup(String),
}

/// The system user cannot be used: this node's setup.
impl crate::agent::EdgeError for UserError {
    const CODE: crate::exit::OcfExit = crate::exit::OcfExit::ErrArgs;
}

impl RunAs {
    pub fn lookup(name: &str) -> Result<RunAs, UserError> {
        let user = User::from_name(name)
            .map_err(|e| UserError::Lookup(e.to_string()))?
            .ok_or_else(|| UserError::NoSuchUser(name.to_string()))?;
        let cname = CString::new(name).map_err(|e| UserError::Lookup(e.to_string()))?;
        let groups = nix::unistd::getgrouplist(&cname, user.gid)
            .map_err(|e| UserError::Lookup(e.to_string()))?;
        Ok(RunAs { name: name.to_string(), uid: user.uid, gid: user.gid, groups, home: user.dir })
    }
}

#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The command's own words, for an exit reason: its stderr on one line,
    /// the first line (the cause: "could not start server") before what
    /// follows ("Examine the log output."); else stdout's last line.
    pub fn message(&self) -> String {
        let stderr: Vec<&str> =
            self.stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        if !stderr.is_empty() {
            return stderr.join(" ");
        }
        self.stdout
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| format!("exit status {}", self.status))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    #[error("{} not found or not executable", .0.display())]
    Missing(PathBuf),
    #[error("cannot run {path}: {1}", path = .0.display())]
    Spawn(PathBuf, #[source] std::io::Error),
    #[error("{} did not finish before the action timeout", .0.display())]
    TimedOut(PathBuf),
}

/// A command that could not run or did not finish in time.
impl crate::agent::EdgeError for CmdError {
    const CODE: crate::exit::OcfExit = crate::exit::OcfExit::ErrGeneric;
}

/// How the child's standard output is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdout {
    Capture,
    /// For `pg_ctl start`: the postmaster inherits pg_ctl's stdout and keeps
    /// it open for its whole life, so the pipe is read only until the
    /// command itself exits (its early messages, a FATAL among them, are
    /// what an operator needs), then closed: the server ignores SIGPIPE.
    UntilExit,
    /// Only the last this many bytes (whole lines) are kept, however much
    /// the command prints (pg_waldump over a whole WAL).
    Tail(usize),
}

/// What is kept of a command's stderr at most.
const STDERR_CAP: usize = 64 * 1024;

pub struct Cmd<'a> {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub run_as: Option<&'a RunAs>,
    pub stdout: Stdout,
    /// Start from an empty environment (PostgreSQL commands): nothing of
    /// the executor's leaks to system_user. Pacemaker tools keep theirs.
    pub clean_env: bool,
    /// Variables removed from an inherited environment.
    pub env_remove: Vec<&'static str>,
    /// Variables set for the child (after the clean start).
    pub env: Vec<(String, String)>,
}

impl<'a> Cmd<'a> {
    pub fn new(program: impl AsRef<Path>) -> Cmd<'a> {
        Cmd {
            program: program.as_ref().to_path_buf(),
            args: Vec::new(),
            run_as: None,
            stdout: Stdout::Capture,
            clean_env: false,
            env_remove: Vec::new(),
            env: Vec::new(),
        }
    }

    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, a: I) -> Self {
        self.args.extend(a.into_iter().map(Into::into));
        self
    }

    /// Run as `r`, in a clean environment.
    pub fn run_as(mut self, r: &'a RunAs) -> Self {
        self.run_as = Some(r);
        self.clean_env = true;
        self
    }

    #[cfg(test)]
    pub fn clean_env(mut self) -> Self {
        self.clean_env = true;
        self
    }

    pub fn env_remove(mut self, name: &'static str) -> Self {
        self.env_remove.push(name);
        self
    }

    /// Data (a path) passed to the child without going through its argv.
    pub fn env(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.push((name.to_string(), value.into()));
        self
    }

    pub fn stdout_tail(mut self, bytes: usize) -> Self {
        self.stdout = Stdout::Tail(bytes);
        self
    }

    pub fn stdout_until_exit(mut self) -> Self {
        self.stdout = Stdout::UntilExit;
        self
    }

    pub fn display(&self) -> String {
        std::iter::once(self.program.display().to_string())
            .chain(self.args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub async fn run(&self, deadline: Instant) -> Result<Output, CmdError> {
        if !is_executable(&self.program) {
            return Err(CmdError::Missing(self.program.clone()));
        }
        let mut c = tokio::process::Command::new(&self.program);
        if self.clean_env {
            c.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        }
        for name in &self.env_remove {
            c.env_remove(name);
        }
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c.args(&self.args)
            .env("LC_ALL", "C")
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: at the deadline the whole group is
            // killed, not only the direct child (a shell's children, a
            // hung helper of pg_ctl).
            .process_group(0)
            .kill_on_drop(true);
        if let Some(r) = self.run_as {
            c.env("HOME", &r.home).env("USER", &r.name).env("LOGNAME", &r.name);
            let (uid, gid, groups) = (r.uid, r.gid, r.groups.clone());
            // SAFETY: only async-signal-safe calls between fork and exec; the
            // group list was built before the fork.
            unsafe {
                c.pre_exec(move || {
                    nix::unistd::setgroups(&groups)?;
                    nix::unistd::setgid(gid)?;
                    nix::unistd::setuid(uid)?;
                    Ok(())
                });
            }
        }
        let child = c.spawn().map_err(|e| CmdError::Spawn(self.program.clone(), e))?;
        let group = child.id().map(|pid| GroupKiller(nix::unistd::Pid::from_raw(pid as i32)));
        let work = async {
            match self.stdout {
                Stdout::Capture => {
                    child.wait_with_output().await.map(|o| (o.status, o.stdout, o.stderr))
                }
                Stdout::UntilExit => read_until_exit(child).await,
                Stdout::Tail(keep) => read_tail(child, keep).await,
            }
        };
        let r = tokio::time::timeout_at(deadline, work).await;
        // Done in time: its group (a postmaster forked by pg_ctl start lives
        // in a session of its own) is left alone.
        if r.is_ok() {
            std::mem::forget(group);
        }
        match r {
            Err(_) => Err(CmdError::TimedOut(self.program.clone())),
            Ok(Err(e)) => Err(CmdError::Spawn(self.program.clone(), e)),
            Ok(Ok((status, stdout, stderr))) => Ok(Output {
                status,
                stdout: String::from_utf8_lossy(&stdout).into_owned(),
                stderr: String::from_utf8_lossy(&stderr).into_owned(),
            }),
        }
    }
}

/// Kills the process group of a command that did not finish, when dropped:
/// at the deadline or when the action is abandoned. The leader is not
/// reaped yet then (`wait` did not return), so its pid, the group id, is
/// not reused.
struct GroupKiller(nix::unistd::Pid);

impl Drop for GroupKiller {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(self.0, nix::sys::signal::Signal::SIGKILL);
    }
}

async fn drain(pipe: &mut (impl tokio::io::AsyncRead + Unpin), buf: &mut Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let mut chunk = [0u8; 4096];
    while let Ok(Ok(n)) =
        tokio::time::timeout(std::time::Duration::from_millis(20), pipe.read(&mut chunk)).await
    {
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Read both pipes to their end, keeping the last `keep` bytes of stdout
/// (from a line start) and the first STDERR_CAP bytes of stderr.
async fn read_tail(
    mut child: tokio::process::Child,
    keep: usize,
) -> std::io::Result<(ExitStatus, Vec<u8>, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let (mut out_buf, mut err_buf) = (Vec::new(), Vec::new());
    let mut cut = false;
    let mut chunk_out = vec![0u8; 64 * 1024];
    let mut chunk_err = [0u8; 4096];
    while out.is_some() || err.is_some() {
        tokio::select! {
            n = async { out.as_mut().expect("guarded").read(&mut chunk_out).await }, if out.is_some() => match n {
                Ok(0) | Err(_) => out = None,
                Ok(n) => {
                    out_buf.extend_from_slice(&chunk_out[..n]);
                    if out_buf.len() > 2 * keep {
                        out_buf.drain(..out_buf.len() - keep);
                        cut = true;
                    }
                }
            },
            n = async { err.as_mut().expect("guarded").read(&mut chunk_err).await }, if err.is_some() => match n {
                Ok(0) | Err(_) => err = None,
                Ok(n) => {
                    let room = STDERR_CAP.saturating_sub(err_buf.len()).min(n);
                    err_buf.extend_from_slice(&chunk_err[..room]);
                }
            },
        }
    }
    let status = child.wait().await?;
    if out_buf.len() > keep {
        out_buf.drain(..out_buf.len() - keep);
        cut = true;
    }
    if cut {
        // drop the partial first line
        let start = out_buf.iter().position(|b| *b == b'\n').map_or(out_buf.len(), |i| i + 1);
        out_buf.drain(..start);
    }
    Ok((status, out_buf, err_buf))
}

/// Read stdout and stderr while the child runs; once it has exited, take
/// what is already in the pipes and stop, whoever else still holds them.
async fn read_until_exit(
    mut child: tokio::process::Child,
) -> std::io::Result<(ExitStatus, Vec<u8>, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let (mut out_buf, mut err_buf) = (Vec::new(), Vec::new());
    let mut chunk_out = [0u8; 4096];
    let mut chunk_err = [0u8; 4096];
    let status = loop {
        tokio::select! {
            status = child.wait() => break status?,
            n = async { out.as_mut().expect("guarded").read(&mut chunk_out).await }, if out.is_some() => match n {
                Ok(0) | Err(_) => out = None,
                Ok(n) => out_buf.extend_from_slice(&chunk_out[..n]),
            },
            n = async { err.as_mut().expect("guarded").read(&mut chunk_err).await }, if err.is_some() => match n {
                Ok(0) | Err(_) => err = None,
                Ok(n) => err_buf.extend_from_slice(&chunk_err[..n]),
            },
        }
    };
    // What was written before the exit is in the pipes already.
    if let Some(p) = out.as_mut() {
        drain(p, &mut out_buf).await;
    }
    if let Some(p) = err.as_mut() {
        drain(p, &mut err_buf).await;
    }
    Ok((status, out_buf, err_buf))
}

pub fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    #[test]
    fn captures_output_and_status() {
        rt().block_on(async {
            let o = Cmd::new("/bin/sh")
                .args(["-c", "echo out; echo err >&2; exit 3"])
                .run(Instant::now() + Duration::from_secs(5))
                .await
                .unwrap();
            assert_eq!(o.stdout, "out\n");
            assert_eq!(o.message(), "err");
            assert_eq!(o.status.code(), Some(3));
            // pg_ctl start: the cause comes first, not its last line only
            let o = Cmd::new("/bin/sh")
                .args(["-c", "echo 'waiting for server to start.... stopped waiting'; \
                    printf 'pg_ctl: could not start server\\nExamine the log output.\\n' >&2; exit 1"])
                .run(Instant::now() + Duration::from_secs(5))
                .await
                .unwrap();
            assert_eq!(o.message(), "pg_ctl: could not start server Examine the log output.");
        });
    }

    #[test]
    fn the_deadline_kills_the_command() {
        rt().block_on(async {
            let start = std::time::Instant::now();
            let r = Cmd::new("/bin/sleep")
                .arg("30")
                .run(Instant::now() + Duration::from_millis(200))
                .await;
            assert!(matches!(r, Err(CmdError::TimedOut(_))));
            assert!(start.elapsed() < Duration::from_secs(5));
        });
    }

    /// Gone, or a zombie waiting for its reaper.
    fn dead(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z')))
            .unwrap_or(true)
    }

    #[test]
    fn the_deadline_kills_grandchildren_too() {
        let file = std::env::temp_dir().join(format!("pgsqlms-grandchild-{}", std::process::id()));
        let script = format!("sleep 30 & echo $! > {}; wait", file.display());
        rt().block_on(async {
            let r = Cmd::new("/bin/sh")
                .args(["-c", &script])
                .run(Instant::now() + Duration::from_millis(300))
                .await;
            assert!(matches!(r, Err(CmdError::TimedOut(_))), "{r:?}");
        });
        let pid = std::fs::read_to_string(&file).unwrap().trim().to_string();
        std::fs::remove_file(&file).unwrap();
        let t0 = std::time::Instant::now();
        while !dead(&pid) && t0.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(dead(&pid), "the grandchild {pid} still runs after the deadline");
    }

    #[test]
    fn output_until_exit_does_not_wait_for_grandchildren() {
        rt().block_on(async {
            let start = std::time::Instant::now();
            // The background sleep keeps stdout open, like a postmaster.
            let o = Cmd::new("/bin/sh")
                .args(["-c", "echo early; (sleep 5; echo late) & echo gone >&2; exit 4"])
                .stdout_until_exit()
                .run(Instant::now() + Duration::from_secs(10))
                .await
                .unwrap();
            assert!(start.elapsed() < Duration::from_secs(3), "waited for the grandchild");
            assert_eq!(o.stdout, "early\n");
            assert_eq!(o.stderr, "gone\n");
            assert_eq!(o.status.code(), Some(4));
        });
    }

    #[test]
    fn tail_output_keeps_the_last_whole_lines_only() {
        rt().block_on(async {
            let o = Cmd::new("/bin/sh")
                .args(["-c", "seq 1 200000; seq 1 100000 >&2"])
                .stdout_tail(100)
                .run(Instant::now() + Duration::from_secs(10))
                .await
                .unwrap();
            assert!(o.stdout.len() <= 100, "{}", o.stdout.len());
            assert!(o.stdout.starts_with(|c: char| c.is_ascii_digit()));
            assert!(o.stdout.ends_with("199999\n200000\n"), "{}", o.stdout);
            assert!(o.stderr.len() <= STDERR_CAP && o.stderr.starts_with("1\n2\n"));
            assert!(o.success());
        });
    }

    #[test]
    fn a_missing_binary_is_reported_by_path() {
        rt().block_on(async {
            let r =
                Cmd::new("/nonexistent/pg_ctl").run(Instant::now() + Duration::from_secs(1)).await;
            assert!(
                matches!(&r, Err(CmdError::Missing(p)) if p == Path::new("/nonexistent/pg_ctl"))
            );
        });
    }

    #[test]
    fn environment_is_clean() {
        rt().block_on(async {
            let o = Cmd::new("/usr/bin/env")
                .clean_env()
                .run(Instant::now() + Duration::from_secs(5))
                .await
                .unwrap();
            let mut names: Vec<&str> =
                o.stdout.lines().filter_map(|l| l.split_once('=')).map(|(k, _)| k).collect();
            names.sort();
            assert_eq!(names, vec!["LC_ALL", "PATH"]);
        });
    }

    /// Needs root, like the whole suite (tests/run.sh): fails rather than
    /// skips, so a run without root is never taken for a pass.
    #[test]
    fn runs_as_another_user_with_its_groups() {
        assert!(Uid::effective().is_root(), "setuid/setgid/setgroups need root: run as root");
        // postgres (tests/setup.sh) has a supplementary group (ssl-cert).
        let r = RunAs::lookup("postgres").expect("the postgres user (tests/setup.sh)");
        let id = |flag: &'static str| {
            rt().block_on(async {
                let o = Cmd::new("/usr/bin/id")
                    .arg(flag)
                    .run_as(&r)
                    .run(Instant::now() + Duration::from_secs(5))
                    .await
                    .unwrap();
                assert!(o.success(), "id {flag}: {}", o.message());
                o.stdout.trim().to_string()
            })
        };
        assert_eq!(id("-u"), r.uid.to_string());
        assert_eq!(id("-g"), r.gid.to_string());
        // Exactly the user's groups: its own set, none of root's left over.
        let mut got: Vec<String> = id("-G").split_whitespace().map(str::to_string).collect();
        let mut want: Vec<String> = r.groups.iter().map(|g| g.to_string()).collect();
        got.sort();
        got.dedup();
        want.sort();
        want.dedup();
        assert_eq!(got, want);
        assert!(!got.contains(&"0".to_string()), "root's group kept: {got:?}");
        assert!(matches!(RunAs::lookup("no-such-user-pgsqlms"), Err(UserError::NoSuchUser(_))));
    }
}
