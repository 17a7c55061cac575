//! bench-run: the measuring runner of the pgsqlms benchmarks.
//!
//!   bench-run run [OPTIONS] -- COMMAND [ARG]...
//!   bench-run report RESULTS.tsv [LABEL]...
//!
//! `run` executes COMMAND with the runner's environment, stdin from
//! /dev/null and stdout+stderr appended to --log, and appends one line per
//! recorded run to --results (tab separated):
//!
//!   time   AGENT LABEL wall_us user_us sys_us maxrss_kb exit tool_calls fake_cpu_us
//!
//! * wall: CLOCK_MONOTONIC from just before fork() to just after wait4().
//! * user/sys: the rusage wait4() returns for the child: its own CPU time
//!   plus that of every descendant that was waited for by its parent,
//!   recursively (the kernel adds a reaped child's times to its parent's
//!   "children" times). A daemon that detaches (the postmaster pg_ctl
//!   starts) is reparented and reaped by init, never by the command's tree:
//!   it is not counted. Do not make this process a child subreaper.
//! * maxrss: ru_maxrss of the same rusage, in KiB: the largest peak
//!   resident set of any single process of that tree (not a sum).
//! * tool_calls: lines added to --count-lines FILE by the run (the fake
//!   Pacemaker tools log one line per invocation), or -1.
//! * fake_cpu_us: CPU time the fake tools spent during the run, from what
//!   they appended to --fake-cpu FILE (each invocation appends the output of
//!   bash's `times` at exit: its own and its children's user and sys time),
//!   or -1. CPU minus this is the agent's own cost with free tools.
//!
//! With --forks, COMMAND runs once, under strace, and the line is
//!
//!   forks  AGENT LABEL procs procs_all threads execs exit tool_calls
//!
//! The child is forked, blocks on a pipe until `strace -f -ff -p PID` is
//! attached, then execs COMMAND; when COMMAND exits, strace is told to
//! detach (SIGTERM) from what is left, e.g. a postmaster the command started.
//! From the clone/clone3/fork/vfork/execve records of every traced process:
//! * procs_all: processes created (clone without CLONE_THREAD, fork, vfork)
//!   by COMMAND and its descendants, except those created by PostgreSQL
//!   server processes (any process that exec'd --server-exe, and its
//!   descendants: the postmaster's own children are the server's business,
//!   not the agent's). The postmaster itself counts: pg_ctl forks it.
//! * procs: procs_all minus processes created inside the fake Pacemaker
//!   tools (files of --tool-dir named in --fake-tools): the real tools are C
//!   programs that do not fork, so this is the count a real cluster sees.
//!   The invocation of a tool still counts (the fork that runs it).
//! * threads: clones with CLONE_THREAD by the same processes.
//! * execs: successful execve() by COMMAND's processes outside the fakes
//!   and the server (programs run), COMMAND's own exec included.
//! Timing runs are never traced: strace stops every traced process at each
//! of these syscalls and would distort wall and CPU time.
//!
//! With --timeout-ms, a command still running after that long is killed
//! (SIGKILL to its process group; the runner puts the child in a new one)
//! and the run fails. A run whose exit code is not in --expect fails too:
//! the runner prints the end of --log and exits 1 (a benchmark of a
//! failing action measures nothing).
//!
//! `report` prints the tables of the action benchmark from RESULTS.tsv:
//! per label, median and min/max over the runs of each agent ("ours" and
//! "paf"). Labels given as arguments come first, in that order; labels
//! starting with "_" are not shown.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

const DEFAULT_FAKE_TOOLS: &str = "cibadmin,crm_attribute,attrd_updater,crm_node,crm_resource";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("run") => cmd_run(&args[1..]),
        Some("report") => cmd_report(&args[1..]),
        _ => Err(usage()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-run: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> String {
    "usage: bench-run run --label L --agent A --results FILE [--expect 0,7] [--runs N] \
     [--warmup N] [--log FILE] [--timeout-ms MS] [--count-lines FILE] [--fake-cpu FILE] [--forks \
     --server-exe PATH --tool-dir DIR [--fake-tools a,b] [--trace-dir DIR] [--keep-trace]] -- COMMAND [ARG]...\n\
     \x20      bench-run report RESULTS.tsv [LABEL]..."
        .to_string()
}

// ---------------------------------------------------------------- run --

struct RunOpts {
    label: String,
    agent: String,
    results: PathBuf,
    expect: Vec<i32>,
    runs: u32,
    warmup: u32,
    log: PathBuf,
    timeout: Option<Duration>,
    count_lines: Option<PathBuf>,
    fake_cpu: Option<PathBuf>,
    forks: bool,
    server_exe: Option<String>,
    tool_dir: Option<String>,
    fake_tools: Vec<String>,
    trace_dir: PathBuf,
    keep_trace: bool,
    cmd: Vec<String>,
}

fn parse_run(args: &[String]) -> Result<RunOpts, String> {
    let mut o = RunOpts {
        label: String::new(),
        agent: String::new(),
        results: PathBuf::new(),
        expect: vec![0],
        runs: 1,
        warmup: 0,
        log: PathBuf::from("/dev/null"),
        timeout: None,
        count_lines: None,
        fake_cpu: None,
        forks: false,
        server_exe: None,
        tool_dir: None,
        fake_tools: DEFAULT_FAKE_TOOLS.split(',').map(str::to_string).collect(),
        trace_dir: std::env::temp_dir(),
        keep_trace: false,
        cmd: Vec::new(),
    };
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        if a == "--" {
            o.cmd = args[i + 1..].to_vec();
            break;
        }
        if a == "--forks" || a == "--keep-trace" {
            if a == "--forks" {
                o.forks = true;
            } else {
                o.keep_trace = true;
            }
            i += 1;
            continue;
        }
        let v = args.get(i + 1).ok_or_else(|| format!("{a} needs a value\n{}", usage()))?.clone();
        let num = |v: &str| v.parse::<u64>().map_err(|_| format!("{a}: not a number: {v}"));
        match a {
            "--label" => o.label = v,
            "--agent" => o.agent = v,
            "--results" => o.results = v.into(),
            "--expect" => {
                o.expect = v
                    .split(',')
                    .map(|c| c.trim().parse::<i32>().map_err(|_| format!("--expect: bad code {c}")))
                    .collect::<Result<_, _>>()?
            }
            "--runs" => o.runs = num(&v)? as u32,
            "--warmup" => o.warmup = num(&v)? as u32,
            "--log" => o.log = v.into(),
            "--timeout-ms" => o.timeout = Some(Duration::from_millis(num(&v)?)),
            "--count-lines" => o.count_lines = Some(v.into()),
            "--fake-cpu" => o.fake_cpu = Some(v.into()),
            "--server-exe" => o.server_exe = Some(v),
            "--tool-dir" => o.tool_dir = Some(v.trim_end_matches('/').to_string()),
            "--fake-tools" => o.fake_tools = v.split(',').map(str::to_string).collect(),
            "--trace-dir" => o.trace_dir = v.into(),
            _ => return Err(format!("unknown option {a}\n{}", usage())),
        }
        i += 2;
    }
    if o.cmd.is_empty()
        || o.label.is_empty()
        || o.agent.is_empty()
        || o.results.as_os_str().is_empty()
    {
        return Err(usage());
    }
    if o.label.contains('\t') || o.agent.contains('\t') {
        return Err("labels may not contain tabs".into());
    }
    Ok(o)
}

fn cmd_run(args: &[String]) -> Result<(), String> {
    let o = parse_run(args)?;
    let exe = resolve(&o.cmd[0])?;
    let argv: Vec<CString> = o
        .cmd
        .iter()
        .map(|a| CString::new(a.as_bytes()).map_err(|_| format!("NUL byte in argument {a:?}")))
        .collect::<Result<_, _>>()?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&o.log)
        .map_err(|e| format!("{}: {e}", o.log.display()))?;
    let mut results = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&o.results)
        .map_err(|e| format!("{}: {e}", o.results.display()))?;

    if o.forks {
        let before = count_lines(o.count_lines.as_deref());
        let (exit, c) = traced_run(&o, &exe, &argv, &log)?;
        let calls = calls_delta(o.count_lines.as_deref(), before);
        check_exit(&o, exit)?;
        writeln!(
            results,
            "forks\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            o.agent, o.label, c.procs, c.procs_all, c.threads, c.execs, exit, calls
        )
        .map_err(|e| e.to_string())?;
        return Ok(());
    }

    for i in 0..o.warmup + o.runs {
        let before = count_lines(o.count_lines.as_deref());
        let cpu_before = file_len(o.fake_cpu.as_deref());
        let m = timed_run(&exe, &argv, log.as_raw_fd(), o.timeout)?;
        let calls = calls_delta(o.count_lines.as_deref(), before);
        let fake_us = fake_cpu_us(o.fake_cpu.as_deref(), cpu_before);
        check_exit(&o, m.exit)?;
        if i < o.warmup {
            continue;
        }
        writeln!(
            results,
            "time\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            o.agent, o.label, m.wall_us, m.user_us, m.sys_us, m.maxrss_kb, m.exit, calls, fake_us
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn count_lines(f: Option<&Path>) -> Option<usize> {
    let f = f?;
    Some(fs::read(f).map(|b| b.iter().filter(|c| **c == b'\n').count()).unwrap_or(0))
}

fn file_len(f: Option<&Path>) -> Option<u64> {
    let f = f?;
    Some(fs::metadata(f).map(|m| m.len()).unwrap_or(0))
}

/// CPU time the fake tools recorded (bash `times` output, appended by each
/// invocation at exit) in FILE since offset `before`, in µs; -1 if unknown.
fn fake_cpu_us(f: Option<&Path>, before: Option<u64>) -> i64 {
    let (Some(f), Some(before)) = (f, before) else { return -1 };
    let Ok(b) = fs::read(f) else { return 0 };
    let new = String::from_utf8_lossy(&b[(before as usize).min(b.len())..]).into_owned();
    new.split_whitespace().filter_map(parse_times_field).sum::<u64>() as i64
}

/// "1m2.345s" (bash `times`) -> µs
fn parse_times_field(t: &str) -> Option<u64> {
    let (m, s) = t.strip_suffix('s')?.split_once('m')?;
    let secs: f64 = s.parse().ok()?;
    Some(m.parse::<u64>().ok()? * 60_000_000 + (secs * 1e6).round() as u64)
}

fn calls_delta(f: Option<&Path>, before: Option<usize>) -> i64 {
    match (count_lines(f), before) {
        (Some(a), Some(b)) => a as i64 - b as i64,
        _ => -1,
    }
}

/// exit code, or 128+signal, or -1 on timeout
fn check_exit(o: &RunOpts, exit: i32) -> Result<(), String> {
    if o.expect.contains(&exit) {
        return Ok(());
    }
    let tail = fs::read_to_string(&o.log)
        .map(|s| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(25)..].join("\n")
        })
        .unwrap_or_default();
    Err(format!(
        "{} {} failed: {} (expected exit {:?}): {}\n--- last lines of {} ---\n{tail}",
        o.agent,
        o.label,
        match exit {
            -1 => "timed out, killed".to_string(),
            e if e > 128 => format!("killed by signal {}", e - 128),
            e => format!("exit {e}"),
        },
        o.expect,
        o.cmd.join(" "),
        o.log.display()
    ))
}

fn resolve(cmd: &str) -> Result<CString, String> {
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
    CString::new(p.as_os_str().as_bytes()).map_err(|_| "NUL in path".to_string())
}

fn is_exec(p: &Path) -> bool {
    let Ok(c) = CString::new(p.as_os_str().as_bytes()) else { return false };
    p.is_file() && unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// fork + exec. The child gets its own process group, stdin /dev/null,
/// stdout and stderr on `out`. With `gate`, it waits for one byte (or EOF)
/// on the read end before exec.
fn fork_exec(
    exe: &CString,
    argv: &[CString],
    out: RawFd,
    gate: Option<(RawFd, RawFd)>,
) -> Result<libc::pid_t, String> {
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let devnull = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if devnull < 0 {
        return Err(format!("/dev/null: {}", std::io::Error::last_os_error()));
    }
    // Everything the child needs is allocated above: between fork and exec
    // it only makes async-signal-safe calls.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let e = std::io::Error::last_os_error();
        unsafe { libc::close(devnull) };
        return Err(format!("fork: {e}"));
    }
    if pid == 0 {
        unsafe {
            libc::setpgid(0, 0);
            if let Some((r, w)) = gate {
                libc::close(w);
                let mut b = 0u8;
                loop {
                    let n = libc::read(r, &mut b as *mut u8 as *mut libc::c_void, 1);
                    if n < 0 && *libc::__errno_location() == libc::EINTR {
                        continue;
                    }
                    break;
                }
            }
            libc::dup2(devnull, 0);
            libc::dup2(out, 1);
            libc::dup2(out, 2);
            libc::execv(exe.as_ptr(), ptrs.as_ptr());
            libc::_exit(127);
        }
    }
    unsafe { libc::close(devnull) };
    Ok(pid)
}

/// wait4 with an optional watchdog that kills the child's process group.
/// Returns (exit code or 128+signal or -1 on timeout, rusage).
fn wait_child(pid: libc::pid_t, timeout: Option<Duration>) -> Result<(i32, libc::rusage), String> {
    let killed = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<()>();
    let watchdog = timeout.map(|t| {
        let killed = killed.clone();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(t) {
                killed.store(true, Ordering::SeqCst);
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
        })
    });
    let mut status = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            break;
        }
        if r < 0 && errno() == libc::EINTR {
            continue;
        }
        return Err(format!("wait4: {}", std::io::Error::last_os_error()));
    }
    let _ = tx.send(());
    if let Some(w) = watchdog {
        let _ = w.join();
    }
    let code = if killed.load(Ordering::SeqCst) {
        -1
    } else if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        255
    };
    Ok((code, ru))
}

struct Measure {
    wall_us: u64,
    user_us: u64,
    sys_us: u64,
    maxrss_kb: u64,
    exit: i32,
}

fn tv_us(t: libc::timeval) -> u64 {
    t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64
}

fn timed_run(
    exe: &CString,
    argv: &[CString],
    out: RawFd,
    timeout: Option<Duration>,
) -> Result<Measure, String> {
    let t0 = Instant::now();
    let pid = fork_exec(exe, argv, out, None)?;
    let (exit, ru) = wait_child(pid, timeout)?;
    let wall = t0.elapsed();
    Ok(Measure {
        wall_us: wall.as_micros() as u64,
        user_us: tv_us(ru.ru_utime),
        sys_us: tv_us(ru.ru_stime),
        maxrss_kb: ru.ru_maxrss as u64,
        exit,
    })
}

// ------------------------------------------------------- process count --

#[derive(Default, Debug, PartialEq)]
struct ForkCount {
    procs: u64,
    procs_all: u64,
    threads: u64,
    execs: u64,
}

fn traced_run(
    o: &RunOpts,
    exe: &CString,
    argv: &[CString],
    log: &File,
) -> Result<(i32, ForkCount), String> {
    let server_exe = o.server_exe.clone().ok_or("--forks needs --server-exe")?;
    let tool_dir = o.tool_dir.clone().ok_or("--forks needs --tool-dir")?;
    let mut fds = [0; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe2: {}", std::io::Error::last_os_error()));
    }
    let (r, w) = (fds[0], fds[1]);
    let pid = fork_exec(exe, argv, log.as_raw_fd(), Some((r, w)))?;
    unsafe { libc::close(r) };
    let release = |w: RawFd| unsafe {
        libc::write(w, b"x".as_ptr() as *const libc::c_void, 1);
        libc::close(w);
    };
    let dir = o.trace_dir.join(format!("strace.{pid}"));
    let cleanup = |dir: &Path| {
        let _ = fs::remove_dir_all(dir);
    };
    if let Err(e) = fs::create_dir_all(&dir) {
        release(w);
        let _ = wait_child(pid, o.timeout);
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
            release(w);
            let _ = wait_child(pid, o.timeout);
            cleanup(&dir);
            return Err(format!("strace: {e}"));
        }
    };
    // Release the child only once strace is attached to it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let attached = loop {
        let tracer = fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| l.strip_prefix("TracerPid:").map(|v| v.trim().to_string()))
            })
            .unwrap_or_default();
        if !tracer.is_empty() && tracer != "0" {
            break true;
        }
        if Instant::now() > deadline || matches!(strace.try_wait(), Ok(Some(_))) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    if !attached {
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        release(w);
        let _ = wait_child(pid, None);
        let _ = strace.kill();
        let _ = strace.wait();
        cleanup(&dir);
        return Err("strace did not attach within 10 s (is ptrace allowed here?)".into());
    }
    std::thread::sleep(Duration::from_millis(20));
    release(w);
    let waited = wait_child(pid, o.timeout);
    // Detach from whatever is still running (a postmaster and its children).
    unsafe { libc::kill(strace.id() as libc::pid_t, libc::SIGTERM) };
    let _ = strace.wait();
    let (exit, _) = waited?;
    let files = read_traces(&dir)?;
    if o.keep_trace {
        eprintln!("bench-run: strace files kept in {}", dir.display());
    } else {
        cleanup(&dir);
    }
    let c = classify(pid, &files, &server_exe, &tool_dir, &o.fake_tools);
    Ok((exit, c))
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

fn classify(
    root: libc::pid_t,
    files: &HashMap<i64, Vec<Ev>>,
    server_exe: &str,
    tool_dir: &str,
    fakes: &[String],
) -> ForkCount {
    let is_fake = |path: &str| {
        Path::new(path)
            .parent()
            .map(|d| d.as_os_str().as_bytes() == tool_dir.as_bytes())
            .unwrap_or(false)
            && Path::new(path)
                .file_name()
                .map(|n| fakes.iter().any(|f| f.as_bytes() == n.as_bytes()))
                .unwrap_or(false)
    };
    let mut c = ForkCount::default();
    // (pid, inside a server process, inside a fake tool); a child starts
    // with its parent's flags at the time of the clone.
    let mut queue: VecDeque<(i64, bool, bool)> = VecDeque::from([(root as i64, false, false)]);
    let mut seen = std::collections::HashSet::new();
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

// ------------------------------------------------------------- report --

#[derive(Default)]
struct Series {
    wall_us: Vec<f64>,
    cpu_us: Vec<f64>,
    own_cpu_us: Vec<f64>,
    rss_kb: Vec<f64>,
    calls: Vec<f64>,
    exits: Vec<i32>,
    procs: Vec<f64>,
    procs_all: Vec<f64>,
    threads: Vec<f64>,
    execs: Vec<f64>,
}

fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = s.len();
    Some(if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 })
}

fn min(v: &[f64]) -> Option<f64> {
    v.iter().cloned().reduce(f64::min)
}

fn max(v: &[f64]) -> Option<f64> {
    v.iter().cloned().reduce(f64::max)
}

fn fmt_num(x: Option<f64>, scale: f64) -> String {
    match x {
        None => "-".into(),
        Some(v) => {
            let v = v / scale;
            if v >= 100.0 {
                format!("{v:.0}")
            } else if v >= 10.0 {
                format!("{v:.1}")
            } else {
                format!("{v:.2}")
            }
        }
    }
}

fn fmt_int(x: Option<f64>) -> String {
    x.map(|v| if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.1}") })
        .unwrap_or_else(|| "-".into())
}

fn fmt_range(v: &[f64], scale: f64) -> String {
    if v.is_empty() {
        return "-".into();
    }
    format!("{}–{}", fmt_num(min(v), scale), fmt_num(max(v), scale))
}

fn ratio(paf: Option<f64>, ours: Option<f64>) -> String {
    match (paf, ours) {
        (Some(p), Some(o)) if o > 0.0 => {
            let r = p / o;
            if r >= 10.0 {
                format!("{r:.0}×")
            } else {
                format!("{r:.1}×")
            }
        }
        _ => "-".into(),
    }
}

fn cmd_report(args: &[String]) -> Result<(), String> {
    let file = args.first().ok_or_else(usage)?;
    let text = fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
    let mut order: Vec<String> = args[1..].to_vec();
    let mut data: BTreeMap<(String, String), Series> = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 9 {
            continue;
        }
        let (kind, agent, label) = (f[0], f[1].to_string(), f[2].to_string());
        if label.starts_with('_') {
            continue;
        }
        if !order.contains(&label) {
            order.push(label.clone());
        }
        let n = |i: usize| f[i].parse::<f64>().unwrap_or(f64::NAN);
        let s = data.entry((label, agent)).or_default();
        match kind {
            "time" => {
                s.wall_us.push(n(3));
                s.cpu_us.push(n(4) + n(5));
                s.rss_kb.push(n(6));
                s.exits.push(f[7].parse().unwrap_or(-1));
                if n(8) >= 0.0 {
                    s.calls.push(n(8));
                }
                if f.len() > 9 && n(9) >= 0.0 {
                    s.own_cpu_us.push(n(4) + n(5) - n(9));
                }
            }
            "forks" => {
                s.procs.push(n(3));
                s.procs_all.push(n(4));
                s.threads.push(n(5));
                s.execs.push(n(6));
                s.exits.push(f[7].parse().unwrap_or(-1));
            }
            _ => {}
        }
    }
    let empty = Series::default();
    let get = |label: &str, agent: &str| {
        data.get(&(label.to_string(), agent.to_string())).unwrap_or(&empty)
    };
    let order: Vec<String> =
        order.into_iter().filter(|l| data.keys().any(|(dl, _)| dl == l)).collect();
    let rc = |s: &Series| {
        let mut e = s.exits.clone();
        e.sort();
        e.dedup();
        e.iter().map(|c| c.to_string()).collect::<Vec<_>>().join("/")
    };

    println!("Medians (wall and CPU in ms, peak RSS in MiB; forks: processes created, see below)");
    println!();
    println!("| action | runs ours/PAF | rc | ours wall | ours CPU | ours forks | ours RSS | PAF wall | PAF CPU | PAF forks | PAF RSS | PAF/ours wall | PAF/ours CPU | PAF/ours forks |");
    println!("|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for l in &order {
        let (o, p) = (get(l, "ours"), get(l, "paf"));
        println!(
            "| {l} | {}/{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            o.wall_us.len(),
            p.wall_us.len(),
            match (rc(o), rc(p)) {
                (a, b) if a == b || b.is_empty() => a,
                (a, b) if a.is_empty() => b,
                (a, b) => format!("{a} vs {b}"),
            },
            fmt_num(median(&o.wall_us), 1e3),
            fmt_num(median(&o.cpu_us), 1e3),
            fmt_int(median(&o.procs)),
            fmt_num(median(&o.rss_kb), 1024.0),
            fmt_num(median(&p.wall_us), 1e3),
            fmt_num(median(&p.cpu_us), 1e3),
            fmt_int(median(&p.procs)),
            fmt_num(median(&p.rss_kb), 1024.0),
            ratio(median(&p.wall_us), median(&o.wall_us)),
            ratio(median(&p.cpu_us), median(&o.cpu_us)),
            ratio(median(&p.procs), median(&o.procs)),
        );
    }
    println!();
    println!("Spread: min–max over the runs (wall and CPU in ms, peak RSS in MiB)");
    println!();
    println!("| action | ours wall | ours CPU | ours RSS | PAF wall | PAF CPU | PAF RSS |");
    println!("|---|--:|--:|--:|--:|--:|--:|");
    for l in &order {
        let (o, p) = (get(l, "ours"), get(l, "paf"));
        println!(
            "| {l} | {} | {} | {} | {} | {} | {} |",
            fmt_range(&o.wall_us, 1e3),
            fmt_range(&o.cpu_us, 1e3),
            fmt_range(&o.rss_kb, 1024.0),
            fmt_range(&p.wall_us, 1e3),
            fmt_range(&p.cpu_us, 1e3),
            fmt_range(&p.rss_kb, 1024.0),
        );
    }
    println!();
    println!("Without the fake tools: CPU minus what the fake Pacemaker tools spent (ms, median and min–max), and tool calls per run");
    println!();
    println!("| action | ours CPU w/o fakes | ours min–max | ours tool calls | PAF CPU w/o fakes | PAF min–max | PAF tool calls | PAF/ours CPU w/o fakes |");
    println!("|---|--:|--:|--:|--:|--:|--:|--:|");
    for l in &order {
        let (o, p) = (get(l, "ours"), get(l, "paf"));
        println!(
            "| {l} | {} | {} | {} | {} | {} | {} | {} |",
            fmt_num(median(&o.own_cpu_us), 1e3),
            fmt_range(&o.own_cpu_us, 1e3),
            fmt_int(median(&o.calls)),
            fmt_num(median(&p.own_cpu_us), 1e3),
            fmt_range(&p.own_cpu_us, 1e3),
            fmt_int(median(&p.calls)),
            ratio(median(&p.own_cpu_us), median(&o.own_cpu_us)),
        );
    }
    println!();
    println!("Processes created, from one traced run per agent and action");
    println!();
    println!("| action | ours forks | ours forks incl. fake-tool internals | ours threads | ours programs run | PAF forks | PAF forks incl. fake-tool internals | PAF threads | PAF programs run |");
    println!("|---|--:|--:|--:|--:|--:|--:|--:|--:|");
    for l in &order {
        let (o, p) = (get(l, "ours"), get(l, "paf"));
        println!(
            "| {l} | {} | {} | {} | {} | {} | {} | {} | {} |",
            fmt_int(median(&o.procs)),
            fmt_int(median(&o.procs_all)),
            fmt_int(median(&o.threads)),
            fmt_int(median(&o.execs)),
            fmt_int(median(&p.procs)),
            fmt_int(median(&p.procs_all)),
            fmt_int(median(&p.threads)),
            fmt_int(median(&p.execs)),
        );
    }
    Ok(())
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
        let fakes: Vec<String> = DEFAULT_FAKE_TOOLS.split(',').map(str::to_string).collect();
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

    #[test]
    fn bash_times_output() {
        assert_eq!(parse_times_field("0m0.003s"), Some(3000));
        assert_eq!(parse_times_field("1m2.500s"), Some(62_500_000));
        assert_eq!(parse_times_field("x"), None);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
