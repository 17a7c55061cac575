//! Processes as /proc shows them: the postmaster `postmaster.pid` names,
//! whether it serves this data directory, and its process tree. Every file
//! is read with a size cap and without following a symbolic link (the data
//! directory belongs to the database user).

use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// postmaster.pid holds a few short lines; /proc/<pid>/stat is one line.
const SMALL_FILE_CAP: u64 = 8 * 1024;

/// At most `cap` bytes of `path`, refusing a symbolic link as last component.
pub fn read_capped(path: &Path, cap: u64) -> std::io::Result<String> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other(format!("{} is not a regular file", path.display())));
    }
    let mut s = String::new();
    f.take(cap).read_to_string(&mut s)?;
    Ok(s)
}

/// One process: its name, state letter (R, S, D, T, Z...) and parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub pid: i32,
    pub comm: String,
    pub state: char,
    pub ppid: i32,
    /// CPU time used so far (utime + stime, clock ticks); 0 when unknown.
    pub cpu: u64,
}

/// `pid (comm) state ppid ...`: comm may hold spaces and parentheses.
pub fn parse_stat(pid: i32, stat: &str) -> Option<Stat> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    let mut rest = stat.get(close + 1..)?.split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    // fields 14 and 15 of proc(5): 9 more after ppid, then utime, stime
    let mut rest = rest.skip(9);
    let mut tick = || rest.next().and_then(|t| t.parse::<u64>().ok()).unwrap_or(0);
    let cpu = tick().saturating_add(tick());
    Some(Stat { pid, comm, state, ppid, cpu })
}

pub fn stat(pid: i32) -> Option<Stat> {
    let text = read_capped(Path::new(&format!("/proc/{pid}/stat")), SMALL_FILE_CAP).ok()?;
    parse_stat(pid, &text)
}

/// The first line of `postmaster.pid`: the postmaster's PID.
pub fn pid_file_pid(datadir: &Path) -> Option<i32> {
    let text = read_capped(&datadir.join("postmaster.pid"), SMALL_FILE_CAP).ok()?;
    text.lines().next()?.trim().parse::<i32>().ok().filter(|p| *p > 0)
}

/// Whether `pid` works in `datadir` (same device and inode as its current
/// directory): every PostgreSQL process chdirs to its data directory, so a
/// recycled PID, or another instance's postmaster, fails this test.
/// `None` when it cannot be told (the process ended meanwhile).
pub fn works_in(pid: i32, datadir: &Path) -> Option<bool> {
    let cwd = std::fs::metadata(format!("/proc/{pid}/cwd")).ok()?;
    let dir = std::fs::metadata(datadir).ok()?;
    Some(cwd.dev() == dir.dev() && cwd.ino() == dir.ino())
}

fn all_stats() -> Vec<Stat> {
    let Ok(rd) = std::fs::read_dir("/proc") else { return Vec::new() };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(stat)
        .collect()
}

/// `root` and all its descendants (root first), from one scan of /proc.
pub fn tree(root: i32) -> Vec<Stat> {
    let all = all_stats();
    descendants(root, &all)
}

/// `root` and its descendants among `all`, root first.
pub fn descendants(root: i32, all: &[Stat]) -> Vec<Stat> {
    let mut out: Vec<Stat> = all.iter().filter(|s| s.pid == root).cloned().collect();
    let mut i = 0;
    while i < out.len() {
        let parent = out[i].pid;
        for s in all.iter().filter(|s| s.ppid == parent && s.pid != parent) {
            if !out.iter().any(|o| o.pid == s.pid) {
                out.push(s.clone());
            }
        }
        i += 1;
    }
    out
}

/// Every live process working in `dir` (same device and inode).
pub fn working_in(dir: &Path) -> Vec<Stat> {
    let Ok(d) = std::fs::metadata(dir) else { return Vec::new() };
    all_stats()
        .into_iter()
        .filter(|s| s.state != 'Z' && s.state != 'X')
        .filter(|s| {
            std::fs::metadata(format!("/proc/{}/cwd", s.pid))
                .is_ok_and(|c| c.dev() == d.dev() && c.ino() == d.ino())
        })
        .collect()
}

/// Postgres processes still working in `dir` although it was removed: the
/// kernel shows their current directory as `<dir> (deleted)`.
pub fn postgres_in_removed_dir(dir: &Path) -> Vec<Stat> {
    let gone = format!("{} (deleted)", dir.display());
    all_stats()
        .into_iter()
        .filter(|s| s.comm.starts_with("postgres") || s.comm.starts_with("postmaster"))
        .filter(|s| s.state != 'Z' && s.state != 'X')
        .filter(|s| {
            std::fs::read_link(format!("/proc/{}/cwd", s.pid))
                .is_ok_and(|c| c.as_os_str().as_encoded_bytes() == gone.as_bytes())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines() {
        assert_eq!(
            parse_stat(123, "123 (postgres) S 1 2 3"),
            Some(Stat { pid: 123, comm: "postgres".into(), state: 'S', ppid: 1, cpu: 0 })
        );
        let real = "4242 (postgres) D 4241 4242 4242 0 -1 4194560 120 0 3 0 17 5 0 0 20 0 1 0";
        assert_eq!(parse_stat(4242, real).map(|s| (s.state, s.ppid, s.cpu)), Some(('D', 4241, 22)));
        assert_eq!(parse_stat(9, "9 (a (b) c) T 7 1").map(|s| (s.comm, s.state, s.ppid)), {
            Some(("a (b) c".to_string(), 'T', 7))
        });
        assert_eq!(parse_stat(1, "garbage"), None);
        assert_eq!(parse_stat(1, "1 (x) S notanumber"), None);
    }

    #[test]
    fn stat_parsing_never_panics_on_any_cut() {
        let line = "4242 (post) gres)) D 4241 4242 4242 0 -1 4194560 é";
        for (i, _) in line.char_indices() {
            for (j, _) in line.char_indices().filter(|(j, _)| *j >= i) {
                let _ = parse_stat(1, &line[i..j]);
            }
        }
    }

    fn st(pid: i32, ppid: i32) -> Stat {
        Stat { pid, comm: "postgres".into(), state: 'S', ppid, cpu: 0 }
    }

    #[test]
    fn tree_collects_every_generation_once() {
        let all = vec![st(1, 0), st(10, 1), st(11, 10), st(12, 10), st(13, 12), st(20, 1)];
        let pids: Vec<i32> = descendants(10, &all).iter().map(|s| s.pid).collect();
        assert_eq!(pids, vec![10, 11, 12, 13]);
        assert!(descendants(99, &all).is_empty());
        // A self-parented entry (PID 0 style) does not loop.
        let pids: Vec<i32> = descendants(0, &[st(0, 0), st(5, 0)]).iter().map(|s| s.pid).collect();
        assert_eq!(pids, vec![0, 5]);
    }

    #[test]
    fn this_process_works_in_its_cwd_only() {
        let me = std::process::id() as i32;
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(works_in(me, &cwd), Some(true));
        let other = std::env::temp_dir().join(format!("pgsqlms-procfs-{me}"));
        std::fs::create_dir_all(&other).unwrap();
        if other != cwd {
            assert_eq!(works_in(me, &other), Some(false));
        }
        std::fs::remove_dir_all(&other).unwrap();
        assert_eq!(works_in(me, &other), None);
    }

    #[test]
    fn capped_reads_refuse_links() {
        let dir = std::env::temp_dir().join(format!("pgsqlms-capped-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("f"), "0123456789").unwrap();
        assert_eq!(read_capped(&dir.join("f"), 4).unwrap(), "0123");
        std::os::unix::fs::symlink(dir.join("f"), dir.join("l")).unwrap();
        assert!(read_capped(&dir.join("l"), 4).is_err());
        assert!(read_capped(&dir, 4).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
