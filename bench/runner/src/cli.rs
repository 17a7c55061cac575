//! Command line of bench-run (the fields it writes are described in main.rs).

use clap::{Args, Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_FAKE_TOOLS: &str = "cibadmin,crm_attribute,attrd_updater,crm_node,crm_resource";

#[derive(Parser, Debug)]
#[command(name = "bench-run", about = "The measuring runner of the pgsqlms benchmarks")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run COMMAND and append one line per recorded run to --results.
    Run(Box<RunArgs>),
    /// Print the tables of the action benchmark from RESULTS.tsv.
    Report(ReportArgs),
    /// Internal (--forks): wait for a byte or EOF on stdin, then exec
    /// EXE with ARGV, stdin from /dev/null.
    #[command(hide = true)]
    Gate {
        #[arg(last = true, required = true)]
        cmd: Vec<OsString>,
    },
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Label of the measured action (a field of the results: no tab).
    #[arg(long, value_parser = field)]
    pub label: String,
    /// Agent name, "ours" or "paf" for the report (no tab).
    #[arg(long, value_parser = field)]
    pub agent: String,
    /// TSV file the runs are appended to.
    #[arg(long)]
    pub results: PathBuf,
    /// Exit codes that count as success, comma separated.
    #[arg(long, value_delimiter = ',', value_parser = exit_code, default_value = "0")]
    pub expect: Vec<i32>,
    /// Recorded runs.
    #[arg(long, default_value_t = 1)]
    pub runs: u32,
    /// Unrecorded runs before them.
    #[arg(long, default_value_t = 0)]
    pub warmup: u32,
    /// File COMMAND's stdout and stderr are appended to.
    #[arg(long, default_value = "/dev/null")]
    pub log: PathBuf,
    /// Kill COMMAND's process group after this many milliseconds.
    #[arg(long = "timeout-ms", value_parser = millis)]
    pub timeout: Option<Duration>,
    /// File the fake tools add a line to per call (tool_calls).
    #[arg(long)]
    pub count_lines: Option<PathBuf>,
    /// File the fake tools append bash's `times` to (fake_cpu_us).
    #[arg(long)]
    pub fake_cpu: Option<PathBuf>,
    /// Count the processes of one run under strace instead of timing.
    #[arg(long, requires_all = ["server_exe", "tool_dir"])]
    pub forks: bool,
    /// The PostgreSQL server binary: what its processes create is not counted.
    #[arg(long)]
    pub server_exe: Option<String>,
    /// Directory of the fake Pacemaker tools.
    #[arg(long, value_parser = dir_path)]
    pub tool_dir: Option<String>,
    /// File names in --tool-dir that are fakes of C tools.
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_FAKE_TOOLS)]
    pub fake_tools: Vec<String>,
    /// Where strace writes its files.
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    pub trace_dir: PathBuf,
    /// Keep the strace files.
    #[arg(long)]
    pub keep_trace: bool,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub cmd: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Results of `bench-run run`.
    pub file: PathBuf,
    /// Labels shown first, in this order (labels starting with "_" are never shown).
    pub labels: Vec<String>,
}

fn field(s: &str) -> Result<String, String> {
    match s {
        "" => Err("may not be empty".into()),
        s if s.contains('\t') => Err("may not contain tabs".into()),
        s => Ok(s.to_string()),
    }
}

fn exit_code(s: &str) -> Result<i32, String> {
    s.trim().parse().map_err(|_| format!("bad code {s}"))
}

fn millis(s: &str) -> Result<Duration, String> {
    s.parse().map(Duration::from_millis).map_err(|_| format!("not a number: {s}"))
}

fn dir_path(s: &str) -> Result<String, String> {
    Ok(s.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    fn run(args: &[&str]) -> Result<RunArgs, clap::Error> {
        let all = ["bench-run", "run"].iter().chain(args);
        match Cli::try_parse_from(all)?.command {
            Command::Run(r) => Ok(*r),
            c => panic!("parsed as {c:?}"),
        }
    }

    #[test]
    fn run_options_as_the_benchmarks_pass_them() {
        let r = run(&[
            "--label",
            "probe, stopped",
            "--agent",
            "ours",
            "--results",
            "/r.tsv",
            "--expect",
            "0, 7",
            "--timeout-ms",
            "25000",
            "--tool-dir",
            "/b/sbin/",
            "--forks",
            "--server-exe",
            "/pg/postgres",
            "--",
            "/agent",
            "monitor",
        ])
        .unwrap();
        assert_eq!(r.label, "probe, stopped");
        assert_eq!(r.expect, vec![0, 7]);
        assert_eq!(r.timeout, Some(Duration::from_secs(25)));
        assert_eq!(r.tool_dir.as_deref(), Some("/b/sbin"));
        assert_eq!(r.fake_tools.len(), 5);
        assert_eq!((r.runs, r.warmup), (1, 0));
        assert_eq!(r.cmd, vec!["/agent", "monitor"]);
    }

    #[test]
    fn bad_run_options_are_refused() {
        let base = ["--label", "l", "--agent", "a", "--results", "/r"];
        let with = |extra: &[&'static str]| {
            let mut v: Vec<&str> = base.to_vec();
            v.extend_from_slice(extra);
            run(&v)
        };
        assert!(with(&["--", "/x"]).is_ok());
        assert!(with(&[]).is_err(), "no command");
        assert!(with(&["--expect", "0,x", "--", "/x"]).is_err());
        assert!(with(&["--runs", "-1", "--", "/x"]).is_err());
        assert!(with(&["--forks", "--", "/x"]).is_err(), "--forks without --server-exe");
        assert!(run(&["--label", "a\tb", "--agent", "a", "--results", "/r", "--", "/x"]).is_err());
        assert!(run(&["--label", "", "--agent", "a", "--results", "/r", "--", "/x"]).is_err());
    }
}
