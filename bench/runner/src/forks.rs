//! Processes created by one run of COMMAND, counted from strace's records
//! (what is counted: main.rs).

use crate::cli::RunArgs;
use crate::executor::{self, Finished};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Default, Debug, PartialEq)]
pub struct ForkCount {
    pub procs: u64,
    pub procs_all: u64,
    pub threads: u64,
    pub execs: u64,
}

/// Runs COMMAND once under `strace -f -ff`, attached before COMMAND's exec
/// and detached when COMMAND exits. Returns its exit and the counts.
pub fn traced_run(o: &RunArgs, exe: &Path, log: &File) -> Result<(i32, ForkCount), String> {
    let server_exe = o.server_exe.as_deref().ok_or("--forks needs --server-exe")?;
    let tool_dir = o.tool_dir.as_deref().ok_or("--forks needs --tool-dir")?;
    let (child, gate) = executor::spawn_gated(exe, &o.cmd, log)?;
    let pid = Pid::from_raw(child.id() as i32);
    let dir = o.trace_dir.join(format!("strace.{pid}"));
    // On every error path the child is released and goes on untraced.
    let abandon = |child, dir: &Path| {
        let _ = executor::wait(child, o.timeout);
        let _ = fs::remove_dir_all(dir);
    };
    if let Err(e) = fs::create_dir_all(&dir) {
        executor::release(gate);
        abandon(child, &dir);
        return Err(format!("{}: {e}", dir.display()));
    }
    let strace = Command::new("strace")
        .args(["-qq", "-f", "-ff", "-o"])
        .arg(dir.join("t"))
        .args(["-e", "trace=fork,vfork,clone,clone3,execve", "-p", &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log.try_clone().map(Stdio::from).unwrap_or_else(|_| Stdio::null()))
        .spawn();
    let mut strace = match strace {
        Ok(s) => s,
        Err(e) => {
            executor::release(gate);
            abandon(child, &dir);
            return Err(format!("strace: {e}"));
        }
    };
    // Release the child only once strace is attached to it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let attached = loop {
        if traced(pid) {
            break true;
        }
        if Instant::now() > deadline || matches!(strace.try_wait(), Ok(Some(_))) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    if !attached {
        let _ = killpg(pid, Signal::SIGKILL);
        executor::release(gate);
        let _ = executor::wait(child, None);
        let _ = strace.kill();
        let _ = strace.wait();
        let _ = fs::remove_dir_all(&dir);
        return Err("strace did not attach within 10 s (is ptrace allowed here?)".into());
    }
    std::thread::sleep(Duration::from_millis(20));
    executor::release(gate);
    let waited = executor::wait(child, o.timeout);
    // Detach from whatever is still running (a postmaster and its children).
    let _ = kill(Pid::from_raw(strace.id() as i32), Signal::SIGTERM);
    let _ = strace.wait();
    let Finished { exit, .. } = waited?;
    let files = read_traces(&dir)?;
    if o.keep_trace {
        eprintln!("bench-run: strace files kept in {}", dir.display());
    } else {
        let _ = fs::remove_dir_all(&dir);
    }
    Ok((exit, classify(pid.as_raw().into(), &files, server_exe, tool_dir, &o.fake_tools)))
}

/// Whether a tracer is attached to `pid` (TracerPid of /proc/PID/status).
fn traced(pid: Pid) -> bool {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("TracerPid:").map(|v| v.trim().to_string()))
        })
        .is_some_and(|t| !t.is_empty() && t != "0")
}

#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Clone { child: i64, thread: bool },
    Exec { path: String },
}

fn read_traces(dir: &Path) -> Result<HashMap<i64, Vec<Ev>>, String> {
    let mut m = HashMap::new();
    for e in fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let e = e.map_err(|e| e.to_string())?;
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("t.").and_then(|p| p.parse::<i64>().ok()) else {
            continue;
        };
        let text = fs::read(e.path()).map_err(|e| e.to_string())?;
        m.insert(pid, parse_trace(&String::from_utf8_lossy(&text)));
    }
    Ok(m)
}

/// Events of one process's strace -ff file, in order.
fn parse_trace(text: &str) -> Vec<Ev> {
    let mut evs = Vec::new();
    let mut pending: Option<String> = None;
    for line in text.lines() {
        let full = if let Some(rest) = line.strip_prefix("<... ") {
            let after = rest.split_once("resumed>").map(|x| x.1).unwrap_or("");
            pending.take().unwrap_or_default() + after
        } else if let Some(i) = line.find(" <unfinished ...>") {
            pending = Some(line[..i].to_string());
            continue;
        } else {
            line.to_string()
        };
        let name = full.split('(').next().unwrap_or("").trim();
        let Some(ret) = return_value(&full) else { continue };
        match name {
            "clone" | "clone3" | "fork" | "vfork" if ret > 0 => {
                evs.push(Ev::Clone { child: ret, thread: full.contains("CLONE_THREAD") })
            }
            "execve" if ret == 0 => {
                let path = full.split('"').nth(1).unwrap_or("").to_string();
                evs.push(Ev::Exec { path })
            }
            _ => {}
        }
    }
    evs
}

/// The return value of a strace line: the token after the last "= " that
/// follows the closing parenthesis of the arguments (strace pads short
/// lines: "vfork()        = 123").
fn return_value(line: &str) -> Option<i64> {
    let mut end = line.len();
    while let Some(i) = line[..end].rfind("= ") {
        if line[..i].trim_end().ends_with(')') {
            return line[i + 2..].split_whitespace().next()?.parse().ok();
        }
        end = i;
    }
    None
}

/// Walks the process tree from `root` through the clone records.
fn classify(
    root: i64,
    files: &HashMap<i64, Vec<Ev>>,
    server_exe: &str,
    tool_dir: &str,
    fakes: &[String],
) -> ForkCount {
    let is_fake = |path: &str| {
        let p = Path::new(path);
        p.parent().is_some_and(|d| d.as_os_str().as_bytes() == tool_dir.as_bytes())
            && p.file_name().is_some_and(|n| fakes.iter().any(|f| f.as_bytes() == n.as_bytes()))
    };
    let mut c = ForkCount::default();
    // (pid, inside a server process, inside a fake tool); a child starts
    // with its parent's flags at the time of the clone.
    let mut queue: VecDeque<(i64, bool, bool)> = VecDeque::from([(root, false, false)]);
    let mut seen = HashSet::new();
    while let Some((pid, mut server, mut fake)) = queue.pop_front() {
        if !seen.insert(pid) {
            continue;
        }
        for ev in files.get(&pid).map(Vec::as_slice).unwrap_or(&[]) {
            match ev {
                Ev::Exec { path } => {
                    if !server && !fake {
                        c.execs += 1;
                    }
                    if path == server_exe {
                        server = true;
                    }
                    if is_fake(path) {
                        fake = true;
                    }
                }
                Ev::Clone { child, thread } => {
                    if !server {
                        if *thread {
                            c.threads += 1;
                        } else {
                            c.procs_all += 1;
                            if !fake {
                                c.procs += 1;
                            }
                        }
                    }
                    queue.push_back((*child, server, fake));
                }
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strace_lines() {
        let t = "execve(\"/usr/bin/perl\", [\"perl\"], 0x7ffc /* 40 vars */) = 0\n\
clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f) = 101\n\
clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM, child_tid=0x7f, parent_tid=0x7f, exit_signal=0, stack=0x7f, stack_size=0x1ffe00, tls=0x7f} => {parent_tid=[102]}, 88) = 102\n\
clone3({flags=CLONE_VM|CLONE_VFORK, exit_signal=SIGCHLD, stack=0x7f, stack_size=0x9000}, 88 <unfinished ...>\n\
<... clone3 resumed>) = 103\n\
execve(\"/nope\", [\"nope\"], 0x1 /* 1 var */) = -1 ENOENT (No such file or directory)\n\
clone(child_stack=NULL, flags=SIGCHLD) = -1 EAGAIN (Resource temporarily unavailable)\n\
vfork()                                 = 104\n\
--- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=101} ---\n";
        assert_eq!(
            parse_trace(t),
            vec![
                Ev::Exec { path: "/usr/bin/perl".into() },
                Ev::Clone { child: 101, thread: false },
                Ev::Clone { child: 102, thread: true },
                Ev::Clone { child: 103, thread: false },
                Ev::Clone { child: 104, thread: false },
            ]
        );
    }

    #[test]
    fn server_and_fake_descendants_are_classified() {
        let fakes: Vec<String> =
            crate::cli::DEFAULT_FAKE_TOOLS.split(',').map(str::to_string).collect();
        let mut f = HashMap::new();
        // agent: runs pg_ctl (2), a fake tool (3), a real-shaped script (4), a thread (5)
        f.insert(
            1,
            vec![
                Ev::Exec { path: "/agent".into() },
                Ev::Clone { child: 2, thread: false },
                Ev::Clone { child: 3, thread: false },
                Ev::Clone { child: 4, thread: false },
                Ev::Clone { child: 5, thread: true },
            ],
        );
        // pg_ctl forks the postmaster (6), which forks its children (7, 8)
        f.insert(
            2,
            vec![Ev::Exec { path: "/pg/bin/pg_ctl".into() }, Ev::Clone { child: 6, thread: false }],
        );
        f.insert(
            6,
            vec![
                Ev::Exec { path: "/bin/sh".into() },
                Ev::Exec { path: "/pg/bin/postgres".into() },
                Ev::Clone { child: 7, thread: false },
                Ev::Clone { child: 8, thread: false },
            ],
        );
        f.insert(7, vec![Ev::Clone { child: 9, thread: false }]);
        // the fake forks twice inside
        f.insert(
            3,
            vec![
                Ev::Exec { path: "/sbin/crm_attribute".into() },
                Ev::Clone { child: 10, thread: false },
            ],
        );
        f.insert(
            10,
            vec![Ev::Exec { path: "/bin/cat".into() }, Ev::Clone { child: 11, thread: false }],
        );
        // crm_master (not a fake of a C tool) runs the fake crm_attribute
        f.insert(
            4,
            vec![
                Ev::Exec { path: "/sbin/crm_master".into() },
                Ev::Clone { child: 12, thread: false },
            ],
        );
        f.insert(
            12,
            vec![
                Ev::Exec { path: "/sbin/crm_attribute".into() },
                Ev::Clone { child: 13, thread: false },
            ],
        );
        let c = classify(1, &f, "/pg/bin/postgres", "/sbin", &fakes);
        assert_eq!(c, ForkCount { procs: 5, procs_all: 8, threads: 1, execs: 7 });
    }

    #[test]
    fn return_values() {
        assert_eq!(return_value("vfork()                                 = 5226"), Some(5226));
        assert_eq!(return_value("clone(child_stack=NULL, flags=SIGCHLD) = 7"), Some(7));
        assert_eq!(
            return_value(
                "execve(\"/x\", [\"x\"], 0x1 /* 1 var */) = -1 ENOENT (No such file or directory)"
            ),
            Some(-1)
        );
        assert_eq!(return_value("execve(\"/a = b\", [\"x\"], 0x1 /* 1 var */) = 0"), Some(0));
        assert_eq!(return_value("exit_group(0)                           = ?"), None);
    }
}
