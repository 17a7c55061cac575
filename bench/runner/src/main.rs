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
//! The child (this program's hidden `gate` subcommand) blocks on a pipe
//! until `strace -f -ff -p PID` is attached, then execs COMMAND; when
//! COMMAND exits, strace is told to detach (SIGTERM) from what is left, e.g.
//! a postmaster the command started. From the clone/clone3/fork/vfork/execve
//! records of every traced process:
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
//!
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
//!
//! Modules: `cli` (arguments), `executor` (start, deadline, wait and
//! rusage), `measurement` (the `run` subcommand and its counters), `forks`
//! (the strace count), `report` (the tables).

mod cli;
mod executor;
mod forks;
mod measurement;
mod report;

use clap::Parser;
use cli::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let r = match Cli::parse().command {
        Command::Run(o) => measurement::run(&o),
        Command::Report(a) => report::report(&a),
        Command::Gate { cmd } => {
            // Reached only when the exec failed: 127, as a shell's.
            eprintln!("bench-run: {}", executor::gate(&cmd));
            return ExitCode::from(127);
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-run: {e}");
            ExitCode::FAILURE
        }
    }
}
