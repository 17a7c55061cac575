//! The `run` subcommand: timed runs, or one traced run, of COMMAND, each
//! appended to the results as one line (fields: main.rs).

use crate::cli::RunArgs;
use crate::{executor, forks};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

pub fn run(o: &RunArgs) -> Result<(), String> {
    let exe = executor::resolve(&o.cmd[0])?;
    let log = append(&o.log)?;
    let mut results = append(&o.results)?;

    if o.forks {
        let before = count_lines(o.count_lines.as_deref());
        let (exit, c) = forks::traced_run(o, &exe, &log)?;
        let calls = calls_delta(o.count_lines.as_deref(), before);
        check_exit(o, exit)?;
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
        // Wall time: from just before the fork to just after the wait.
        let t0 = Instant::now();
        let child = executor::spawn(&exe, &o.cmd, &log)?;
        let m = executor::wait(child, o.timeout)?;
        let wall_us = t0.elapsed().as_micros();
        let calls = calls_delta(o.count_lines.as_deref(), before);
        let fake_us = fake_cpu_us(o.fake_cpu.as_deref(), cpu_before);
        check_exit(o, m.exit)?;
        if i < o.warmup {
            continue;
        }
        writeln!(
            results,
            "time\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            o.agent, o.label, wall_us, m.user_us, m.sys_us, m.maxrss_kb, m.exit, calls, fake_us
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn append(path: &Path) -> Result<File, String> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn count_lines(f: Option<&Path>) -> Option<usize> {
    let f = f?;
    Some(fs::read(f).map(|b| b.iter().filter(|c| **c == b'\n').count()).unwrap_or(0))
}

fn file_len(f: Option<&Path>) -> Option<u64> {
    let f = f?;
    Some(fs::metadata(f).map(|m| m.len()).unwrap_or(0))
}

/// Lines the run added to the fake tools' call log; -1 without one.
fn calls_delta(f: Option<&Path>, before: Option<usize>) -> i64 {
    match (count_lines(f), before) {
        (Some(a), Some(b)) => a as i64 - b as i64,
        _ => -1,
    }
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

/// A run whose exit is not expected fails the benchmark, with the end of
/// the log.
fn check_exit(o: &RunArgs, exit: i32) -> Result<(), String> {
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
        executor::describe_exit(exit),
        o.expect,
        o.cmd.join(" "),
        o.log.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bash_times_output() {
        assert_eq!(parse_times_field("0m0.003s"), Some(3000));
        assert_eq!(parse_times_field("1m2.500s"), Some(62_500_000));
        assert_eq!(parse_times_field("x"), None);
    }
}
