//! Helpers of the integration tests: real PostgreSQL instances (15 and 18)
//! run as user `postgres` under /tmp/pgsqlms-it/<test>/, the agent binary
//! run with a clean OCF environment, and the fake Pacemaker store of
//! tests/fakes (see tests/fakes/_fakelib.sh).
//!
//! Everything is bounded in time and cleaned up by `TestEnv`'s Drop, even when
//! a test panics. Set PGSQLMS_IT_KEEP=1 to keep the directory of a failed
//! test (servers are stopped all the same).
//!
//! This machine's PID 1 does not reap orphans, so a killed postmaster would
//! stay a zombie that `kill(pid, 0)` still finds. The test process makes
//! itself a child subreaper and reaps the orphans it inherits (postmasters
//! started through pg_ctl, by the tests or by the agent), as init does on a
//! real system.
#![allow(dead_code)]

pub mod cases;
pub mod slot_cases;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::{Pid, User};

pub const OCF_SUCCESS: i32 = 0;
pub const OCF_ERR_GENERIC: i32 = 1;
pub const OCF_ERR_ARGS: i32 = 2;
pub const OCF_ERR_UNIMPLEMENTED: i32 = 3;
pub const OCF_ERR_PERM: i32 = 4;
pub const OCF_ERR_INSTALLED: i32 = 5;
pub const OCF_ERR_CONFIGURED: i32 = 6;
pub const OCF_NOT_RUNNING: i32 = 7;
pub const OCF_RUNNING_PROMOTED: i32 = 8;
pub const OCF_FAILED_PROMOTED: i32 = 9;

/// Resource id the agent runs as (`OCF_RESOURCE_INSTANCE`).
pub const RSC: &str = "pgsqld";
/// Root of every test directory.
/// A port no instance of a test listens on, near `port` (7000 away, on the
/// side that stays within u16: test ports go up to about 60000).
pub fn unused_port(port: u16) -> u16 {
    port.checked_add(7000).unwrap_or(port - 7000)
}

/// Root of the test directories; `PGSQLMS_IT_ROOT` overrides it so that two
/// checkouts can run their tests at once on one machine.
pub static IT_ROOT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    std::env::var("PGSQLMS_IT_ROOT").unwrap_or_else(|_| "/tmp/pgsqlms-it".to_string())
});
/// Bumped when the template data directory's setup changes.
const TEMPLATE_REV: u32 = 2;

const SQL_TIMEOUT: Duration = Duration::from_secs(30);
const PG_CTL_TIMEOUT_S: u64 = 60;
/// Default `OCF_RESKEY_CRM_meta_timeout` of an agent run, in ms.
pub const AGENT_TIMEOUT_MS: u64 = 60_000;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn agent_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pgsqlms"))
}

// ---------------------------------------------------------------------------
// processes: subreaper, tracked children, timeouts

/// pids of the children spawned by `run`/`spawn_bg`: the reaper leaves them
/// to their owner's wait().
fn tracked() -> &'static Mutex<HashSet<i32>> {
    static T: OnceLock<Mutex<HashSet<i32>>> = OnceLock::new();
    T.get_or_init(|| Mutex::new(HashSet::new()))
}

fn init_process() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the integration tests run as root: they start PostgreSQL as user postgres"
        );
        nix::sys::prctl::set_child_subreaper(true).expect("prctl(PR_SET_CHILD_SUBREAPER)");
        std::thread::Builder::new()
            .name("reaper".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(Duration::from_millis(50));
                    reap_orphans();
                }
            })
            .expect("reaper thread");
        fs::create_dir_all(&*IT_ROOT).expect("create the test root");
        fs::set_permissions(&*IT_ROOT, fs::Permissions::from_mode(0o755)).unwrap();
    });
}

/// `(state, ppid)` from /proc/<pid>/stat.
fn proc_state(pid: i32) -> Option<(char, i32)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let mut it = rest.split_whitespace();
    let state = it.next()?.chars().next()?;
    let ppid = it.next()?.parse().ok()?;
    Some((state, ppid))
}

fn all_pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

/// Reaps the zombies this process inherited (not its own tracked children).
pub fn reap_orphans() {
    let me = std::process::id() as i32;
    let guard = tracked().lock().unwrap();
    for pid in all_pids() {
        if guard.contains(&pid) {
            continue;
        }
        if let Some(('Z', ppid)) = proc_state(pid)
            && ppid == me
        {
            let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
        }
    }
}

/// Alive and not a zombie.
pub fn pid_alive(pid: i32) -> bool {
    matches!(proc_state(pid), Some((s, _)) if s != 'Z' && s != 'X')
}

/// Live processes whose working directory is `dir` or below (every
/// PostgreSQL process chdirs to its data directory).
pub fn pids_under(dir: &Path) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&p| p as u32 != std::process::id())
        .filter(|&p| {
            fs::read_link(format!("/proc/{p}/cwd")).map(|c| c.starts_with(dir)).unwrap_or(false)
        })
        .filter(|&p| pid_alive(p))
        .collect()
}

/// Fails the test (`what: <pids>`) unless every process working under
/// `dir` has ended within `within` (Duration::ZERO: one look), reaping the
/// orphans this process inherits meanwhile.
#[track_caller]
pub fn assert_no_process_under(dir: &Path, within: Duration, what: &str) {
    let t0 = Instant::now();
    loop {
        reap_orphans();
        let left = pids_under(dir);
        if left.is_empty() {
            return;
        }
        assert!(t0.elapsed() < within, "{what}: {left:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        if t0.elapsed() > timeout {
            panic!("timeout ({timeout:?}) waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[derive(Debug, Clone)]
pub struct Output {
    /// exit code, or -(signal) when killed by a signal
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    pub timed_out: bool,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.code == 0 && !self.timed_out
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Runs `cmd` to completion, at most `timeout` (then SIGKILL). stdout and
/// stderr go to files in `scratch` (not pipes: a daemon child such as a
/// postmaster may keep them open long after the command exits).
pub fn run(cmd: &mut Command, timeout: Duration, scratch: &Path) -> Output {
    init_process();
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let out_path = scratch.join(format!(".out.{}.{n}", std::process::id()));
    let err_path = scratch.join(format!(".err.{}.{n}", std::process::id()));
    let out_f = fs::File::create(&out_path).expect("create stdout file");
    let err_f = fs::File::create(&err_path).expect("create stderr file");
    cmd.stdin(Stdio::null()).stdout(out_f).stderr(err_f);
    let t0 = Instant::now();
    let mut child = {
        let mut g = tracked().lock().unwrap();
        let c = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        g.insert(c.id() as i32);
        c
    };
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if t0.elapsed() > timeout {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    tracked().lock().unwrap().remove(&(child.id() as i32));
    let elapsed = t0.elapsed();
    let stdout = String::from_utf8_lossy(&fs::read(&out_path).unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&fs::read(&err_path).unwrap_or_default()).into_owned();
    let _ = fs::remove_file(&out_path);
    let _ = fs::remove_file(&err_path);
    use std::os::unix::process::ExitStatusExt;
    let code = status.code().unwrap_or_else(|| -status.signal().unwrap_or(0));
    Output { code, stdout, stderr, elapsed, timed_out }
}

/// Panics with the command's output unless it succeeded.
pub fn run_ok(cmd: &mut Command, timeout: Duration, scratch: &Path) -> Output {
    let desc = format!("{cmd:?}");
    let o = run(cmd, timeout, scratch);
    if !o.ok() {
        panic!(
            "command failed (code {}, timed out: {}): {desc}\n--- stdout\n{}\n--- stderr\n{}",
            o.code, o.timed_out, o.stdout, o.stderr
        );
    }
    o
}

pub struct PgUser {
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

pub fn pg_user() -> &'static PgUser {
    static U: OnceLock<PgUser> = OnceLock::new();
    U.get_or_init(|| {
        let u = User::from_name("postgres").expect("getpwnam").expect("user postgres must exist");
        PgUser { uid: u.uid.as_raw(), gid: u.gid.as_raw(), home: u.dir }
    })
}

/// A command run as user postgres with a minimal environment.
pub fn as_postgres(prog: impl AsRef<std::ffi::OsStr>, cwd: &Path) -> Command {
    let u = pg_user();
    let mut c = Command::new(prog);
    c.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", &u.home)
        .env("USER", "postgres")
        .env("LOGNAME", "postgres")
        .env("LC_ALL", "C")
        .env("PGCONNECT_TIMEOUT", "10")
        .current_dir(cwd)
        .uid(u.uid)
        .gid(u.gid);
    c
}

pub fn chown_pg(p: &Path) {
    let u = pg_user();
    std::os::unix::fs::chown(p, Some(u.uid), Some(u.gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", p.display()));
}

// ---------------------------------------------------------------------------
// PostgreSQL versions

#[derive(Debug, Clone)]
pub struct Pg {
    pub version: u32,
    pub bindir: PathBuf,
}

impl Pg {
    /// The binaries of `version`, from tests/pgbin.sh. A missing version
    /// fails the test, except 18 when PGSQLMS_SKIP_PG18=1 (then None: the
    /// caller returns early).
    pub fn get(version: u32) -> Option<Pg> {
        static CACHE: OnceLock<Mutex<HashMap<u32, Result<PathBuf, String>>>> = OnceLock::new();
        let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
        let res = cache
            .lock()
            .unwrap()
            .entry(version)
            .or_insert_with(|| {
                let o = Command::new("bash")
                    .arg(repo().join("tests/pgbin.sh"))
                    .arg(version.to_string())
                    .output()
                    .expect("run tests/pgbin.sh");
                if o.status.success() {
                    Ok(PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
                } else {
                    Err(String::from_utf8_lossy(&o.stderr).trim().to_string())
                }
            })
            .clone();
        match res {
            Ok(bindir) => Some(Pg { version, bindir }),
            Err(e) if version == 18 && std::env::var("PGSQLMS_SKIP_PG18").as_deref() == Ok("1") => {
                eprintln!("PostgreSQL 18 missing, test skipped (PGSQLMS_SKIP_PG18=1): {e}");
                None
            }
            Err(e) => panic!(
                "PostgreSQL {version} binaries are missing: {e}\n(run tests/setup.sh; PGSQLMS_SKIP_PG18=1 skips the PG18 tests)"
            ),
        }
    }

    pub fn bin(&self, name: &str) -> PathBuf {
        self.bindir.join(name)
    }

    /// An initdb'd, never started data directory with the settings every
    /// instance shares, made once per version and copied by each test.
    fn template(&self) -> PathBuf {
        static LOCK: Mutex<()> = Mutex::new(());
        let _g = LOCK.lock().unwrap();
        let h = fnv(self.bindir.to_string_lossy().as_bytes());
        let path = PathBuf::from(format!(
            "{}/.template-pg{}-r{TEMPLATE_REV}-{h:08x}",
            *IT_ROOT, self.version
        ));
        if path.join("PG_VERSION").exists() {
            return path;
        }
        let tmp = PathBuf::from(format!(
            "{}/.template-tmp-{}-{}",
            *IT_ROOT,
            std::process::id(),
            SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()
        ));
        fs::create_dir_all(&tmp).unwrap();
        chown_pg(&tmp);
        let data = tmp.join("data");
        run_ok(
            as_postgres(self.bin("initdb"), &tmp).arg("-D").arg(&data).args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]),
            Duration::from_secs(180),
            &tmp,
        );
        append(
            &data.join("postgresql.conf"),
            "\n# --- pgsqlms integration tests\n\
             listen_addresses = ''\n\
             wal_level = replica\n\
             hot_standby = on\n\
             recovery_target_timeline = 'latest'\n\
             max_wal_senders = 10\n\
             wal_keep_size = '256MB'\n\
             shared_buffers = '16MB'\n\
             fsync = off\n\
             logging_collector = on\n\
             log_directory = 'log'\n\
             log_filename = 'postgresql.log'\n\
             log_line_prefix = '%m [%p] %b '\n",
        );
        fs::write(
            data.join("pg_hba.conf"),
            "# pgsqlms integration tests: unix sockets only\n\
             local all         all trust\n\
             local replication all trust\n",
        )
        .unwrap();
        chown_pg(&data.join("pg_hba.conf"));
        match fs::rename(&data, &path) {
            Ok(()) => {}
            Err(_) if path.join("PG_VERSION").exists() => {} // another process won
            Err(e) => panic!("rename template: {e}"),
        }
        let _ = fs::remove_dir_all(&tmp);
        path
    }
}

fn fnv(b: &[u8]) -> u32 {
    let mut h: u32 = 0x811c9dc5;
    for x in b {
        h ^= *x as u32;
        h = h.wrapping_mul(0x01000193);
    }
    h
}

pub fn append(path: &Path, text: &str) {
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    f.write_all(text.as_bytes()).unwrap();
}

// ---------------------------------------------------------------------------
// the test environment

/// One PostgreSQL instance of a test. Its cluster node name is also the
/// application_name it streams with.
#[derive(Debug, Clone)]
pub struct Instance {
    pub node: String,
    pub pgdata: PathBuf,
    pub port: u16,
}

impl Instance {
    pub fn standby_signal(&self) -> PathBuf {
        self.pgdata.join("standby.signal")
    }
    pub fn pid_file(&self) -> PathBuf {
        self.pgdata.join("postmaster.pid")
    }
    pub fn conf(&self) -> PathBuf {
        self.pgdata.join("postgresql.conf")
    }
    /// First line of postmaster.pid.
    pub fn postmaster_pid(&self) -> Option<i32> {
        fs::read_to_string(self.pid_file()).ok()?.lines().next()?.trim().parse().ok()
    }
    pub fn server_log(&self) -> String {
        fs::read_to_string(self.pgdata.join("log/postgresql.log")).unwrap_or_default()
    }
}

/// Result of one agent run.
#[derive(Debug, Clone)]
pub struct AgentRun {
    pub action: String,
    pub node: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    /// What the agent logged to HA_LOGFILE during this run.
    pub log: String,
}

impl AgentRun {
    pub fn exit_reasons(&self) -> Vec<&str> {
        self.stderr.lines().filter(|l| l.starts_with("ocf-exit-reason:")).collect()
    }

    pub fn describe(&self) -> String {
        format!(
            "agent `{}` on {} exited {} after {:?}\n--- stdout\n{}\n--- stderr\n{}\n--- log\n{}",
            self.action, self.node, self.code, self.elapsed, self.stdout, self.stderr, self.log
        )
    }

    /// Asserts the exit code; a failure must also give exactly one exit
    /// reason line.
    #[track_caller]
    pub fn expect(&self, code: i32, what: &str) -> &Self {
        assert_eq!(self.code, code, "{what}: expected OCF code {code}\n{}", self.describe());
        if ![OCF_SUCCESS, OCF_NOT_RUNNING, OCF_RUNNING_PROMOTED].contains(&code) {
            assert_eq!(
                self.exit_reasons().len(),
                1,
                "{what}: a failure prints exactly one `ocf-exit-reason:` line on stderr\n{}",
                self.describe()
            );
        }
        self
    }
}

/// A notification as Pacemaker 2.1 passes it. Lists hold node names; the
/// resource ids (`pgsqld:N`) are derived from the node's position in
/// `all`.
#[derive(Debug, Clone, Default)]
pub struct Notify {
    pub kind: &'static str,      // pre | post
    pub operation: &'static str, // start | stop | promote | demote
    pub all: Vec<String>,
    pub active: Vec<String>,
    pub promoted: Vec<String>,
    pub unpromoted: Vec<String>,
    pub start: Vec<String>,
    pub stop: Vec<String>,
    pub promote: Vec<String>,
    pub demote: Vec<String>,
}

impl Notify {
    pub fn new(kind: &'static str, operation: &'static str, all: &[&str]) -> Notify {
        Notify {
            kind,
            operation,
            all: all.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }
    /// A notification of a transition that starts from `promoted` and
    /// `unpromoted` (the active nodes, in that order); the nodes it
    /// starts, stops, promotes or demotes are for the caller to set.
    pub fn from_roles(
        kind: &'static str,
        operation: &'static str,
        all: &[&str],
        promoted: &[&str],
        unpromoted: &[&str],
    ) -> Notify {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Notify {
            active: names(&[promoted, unpromoted].concat()),
            promoted: names(promoted),
            unpromoted: names(unpromoted),
            ..Notify::new(kind, operation, all)
        }
    }
    /// The pre-promote notification of a transition that promotes
    /// `promote`, the standbys `standbys` being active (no primary).
    pub fn pre_promote(all: &[&str], standbys: &[&str], promote: &str) -> Notify {
        Notify {
            promote: vec![promote.to_string()],
            ..Notify::from_roles("pre", "promote", all, &[], standbys)
        }
    }
    /// The same notification at another step of its transition: `kind`
    /// (pre | post) of `operation`. For `env.notify_all(.., n.at(..))`.
    pub fn at(&mut self, kind: &'static str, operation: &'static str) -> &Notify {
        self.kind = kind;
        self.operation = operation;
        self
    }
    fn rsc(&self, node: &str) -> String {
        let i = self.all.iter().position(|n| n == node).unwrap_or(self.all.len());
        format!("{RSC}:{i}")
    }
    fn pair(&self, key: &str, nodes: &[String], env: &mut Vec<(String, String)>) {
        let unames = nodes.join(" ");
        let rscs = nodes.iter().map(|n| self.rsc(n)).collect::<Vec<_>>().join(" ");
        env.push((format!("OCF_RESKEY_CRM_meta_notify_{key}_uname"), unames));
        env.push((format!("OCF_RESKEY_CRM_meta_notify_{key}_resource"), rscs));
    }
    pub fn env(&self) -> Vec<(String, String)> {
        let mut e = vec![
            ("OCF_RESKEY_CRM_meta_notify_type".to_string(), self.kind.to_string()),
            ("OCF_RESKEY_CRM_meta_notify_operation".to_string(), self.operation.to_string()),
        ];
        self.pair("start", &self.start, &mut e);
        self.pair("stop", &self.stop, &mut e);
        self.pair("promote", &self.promote, &mut e);
        self.pair("demote", &self.demote, &mut e);
        self.pair("active", &self.active, &mut e);
        self.pair("promoted", &self.promoted, &mut e);
        self.pair("unpromoted", &self.unpromoted, &mut e);
        self.pair("master", &self.promoted, &mut e);
        self.pair("slave", &self.unpromoted, &mut e);
        let inactive: Vec<String> =
            self.all.iter().filter(|n| !self.active.contains(n)).cloned().collect();
        e.push((
            "OCF_RESKEY_CRM_meta_notify_inactive_resource".into(),
            inactive.iter().map(|n| self.rsc(n)).collect::<Vec<_>>().join(" "),
        ));
        e.push(("OCF_RESKEY_CRM_meta_notify_available_uname".into(), self.all.join(" ")));
        e.push(("OCF_RESKEY_CRM_meta_notify_all_uname".into(), self.all.join(" ")));
        e.push(("OCF_RESKEY_CRM_meta_notify_all_hosts".into(), self.all.join(" ")));
        e
    }
}

pub struct TestEnv {
    pub pg: Pg,
    pub name: String,
    pub dir: PathBuf,
    /// unix socket directory of every instance of the test
    pub sock: PathBuf,
    /// PGSQLMS_FAKE_DIR
    pub fake: PathBuf,
    pub agent_log: PathBuf,
    next_port: Mutex<u16>,
    instances: Mutex<Vec<Instance>>,
    paused: Mutex<Vec<i32>>,
    background: Mutex<Vec<Child>>,
}

impl TestEnv {
    /// A fresh, empty test directory /tmp/pgsqlms-it/pg<ver>-<name>.
    pub fn new(pg: &Pg, name: &str) -> TestEnv {
        init_process();
        let dir = PathBuf::from(format!("{}/pg{}-{name}", *IT_ROOT, pg.version));
        cleanup_dir(&dir);
        fs::create_dir_all(&dir).unwrap();
        chown_pg(&dir);
        let sock = dir.join("sock");
        let fake = dir.join("fake");
        fs::create_dir_all(&sock).unwrap();
        chown_pg(&sock);
        fs::create_dir_all(&fake).unwrap();
        fs::write(fake.join("nodes"), "").unwrap();
        fs::write(fake.join("calls.log"), "").unwrap();
        // ports only name the socket files inside `sock`: no clash possible
        // between tests, but keep them distinct anyway for readable logs
        let base = 20000 + (fnv(dir.to_string_lossy().as_bytes()) % 4000) as u16 * 10;
        TestEnv {
            pg: pg.clone(),
            name: name.to_string(),
            agent_log: dir.join("agent.log"),
            dir,
            sock,
            fake,
            next_port: Mutex::new(base),
            instances: Mutex::new(Vec::new()),
            paused: Mutex::new(Vec::new()),
            background: Mutex::new(Vec::new()),
        }
    }

    fn port(&self) -> u16 {
        let mut p = self.next_port.lock().unwrap();
        *p += 1;
        *p
    }

    /// Adds `node` to the fake cluster's node list (once).
    pub fn add_node(&self, node: &str) {
        let mut nodes = self.nodes();
        if !nodes.iter().any(|n| n == node) {
            nodes.push(node.to_string());
            self.set_nodes(&nodes.iter().map(|s| s.as_str()).collect::<Vec<_>>());
        }
    }

    pub fn set_nodes(&self, nodes: &[&str]) {
        let mut s = nodes.join("\n");
        s.push('\n');
        fs::write(self.fake.join("nodes"), s).unwrap();
    }

    pub fn nodes(&self) -> Vec<String> {
        fs::read_to_string(self.fake.join("nodes"))
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    }

    fn conf_lines(&self, port: u16, node: &str, upstream_port: u16) -> String {
        format!(
            "\n# --- instance {node}\n\
             port = {port}\n\
             unix_socket_directories = '{sock}'\n\
             cluster_name = '{node}'\n\
             primary_conninfo = 'host={sock} port={upstream_port} application_name={node}'\n",
            sock = self.sock.display()
        )
    }

    /// A new primary data directory for `node` (from the template; never
    /// started, so its control file says "shut down"). Its primary_conninfo
    /// points to a port nobody listens on, like a virtual IP that is
    /// currently on this very node.
    pub fn init_instance(&self, node: &str) -> Instance {
        let tpl = self.pg.template();
        let pgdata = self.dir.join(node);
        run_ok(
            Command::new("cp").arg("-a").arg(&tpl).arg(&pgdata),
            Duration::from_secs(60),
            &self.dir,
        );
        let port = self.port();
        append(&pgdata.join("postgresql.conf"), &self.conf_lines(port, node, port + 5000));
        let inst = Instance { node: node.to_string(), pgdata, port };
        self.instances.lock().unwrap().push(inst.clone());
        self.add_node(node);
        inst
    }

    /// A standby of the running `primary`, cloned with pg_basebackup, with
    /// standby.signal and primary_conninfo (application_name=`node`). Not
    /// started.
    pub fn clone_standby(&self, primary: &Instance, node: &str) -> Instance {
        let pgdata = self.dir.join(node);
        run_ok(
            as_postgres(self.pg.bin("pg_basebackup"), &self.dir)
                .arg("-h")
                .arg(&self.sock)
                .arg("-p")
                .arg(primary.port.to_string())
                .arg("-D")
                .arg(&pgdata)
                .args(["-X", "stream", "-c", "fast", "--no-sync"]),
            Duration::from_secs(120),
            &self.dir,
        );
        let port = self.port();
        // later lines win: this overrides the primary's own settings
        append(&pgdata.join("postgresql.conf"), &self.conf_lines(port, node, primary.port));
        let _ = fs::remove_dir_all(pgdata.join("log"));
        fs::write(pgdata.join("standby.signal"), "").unwrap();
        chown_pg(&pgdata.join("standby.signal"));
        let inst = Instance { node: node.to_string(), pgdata, port };
        self.instances.lock().unwrap().push(inst.clone());
        self.add_node(node);
        inst
    }

    /// Points `inst`'s primary_conninfo to `upstream_port` (effective at its
    /// next start or reload).
    pub fn set_upstream(&self, inst: &Instance, upstream_port: u16) {
        append(
            &inst.conf(),
            &format!(
                "primary_conninfo = 'host={} port={upstream_port} application_name={}'\n",
                self.sock.display(),
                inst.node
            ),
        );
    }

    /// primary_conninfo in URI form, the socket directory percent-encoded.
    pub fn set_upstream_uri(&self, inst: &Instance, upstream_port: u16) {
        append(
            &inst.conf(),
            &format!(
                "primary_conninfo = 'postgresql://{}:{upstream_port}/postgres?application_name={}'\n",
                self.sock.display().to_string().replace('/', "%2F"),
                inst.node
            ),
        );
    }

    pub fn pg_ctl(&self, inst: &Instance, args: &[&str]) -> Output {
        run(
            as_postgres(self.pg.bin("pg_ctl"), &self.dir).arg("-D").arg(&inst.pgdata).args(args),
            Duration::from_secs(PG_CTL_TIMEOUT_S + 30),
            &self.dir,
        )
    }

    /// Starts with pg_ctl (not through the agent).
    pub fn start(&self, inst: &Instance) {
        let t = PG_CTL_TIMEOUT_S.to_string();
        let log = self.dir.join(format!("{}.pg_ctl.log", inst.node));
        let o = self.pg_ctl(inst, &["-w", "-t", &t, "-l", log.to_str().unwrap(), "start"]);
        assert!(
            o.ok(),
            "pg_ctl start {} failed: {}{}\n{}",
            inst.node,
            o.stdout,
            o.stderr,
            inst.server_log()
        );
        self.wait_sql(inst, "SELECT 1", "1");
    }

    /// Starts as a standby: writes standby.signal first.
    pub fn start_standby(&self, inst: &Instance) {
        fs::write(inst.standby_signal(), "").unwrap();
        chown_pg(&inst.standby_signal());
        self.start(inst);
        assert_eq!(self.sql(inst, "SELECT pg_is_in_recovery()").unwrap(), "t");
    }

    pub fn stop(&self, inst: &Instance, mode: &str) {
        let t = PG_CTL_TIMEOUT_S.to_string();
        let o = self.pg_ctl(inst, &["-w", "-t", &t, "-m", mode, "stop"]);
        assert!(o.ok(), "pg_ctl stop {} failed: {}{}", inst.node, o.stdout, o.stderr);
    }

    /// kill -9 of the postmaster (pid from postmaster.pid), then waits until
    /// every process of the instance is gone, the postmaster reaped
    /// included: a zombie postmaster still "exists" for the next postmaster's
    /// lock file check (kill(pid, 0)), which then refuses to start. Init
    /// reaps it at once on a real system, long before Pacemaker reacts.
    pub fn kill9(&self, inst: &Instance) {
        let pid = inst.postmaster_pid().expect("postmaster.pid");
        kill(Pid::from_raw(pid), Signal::SIGKILL).expect("kill -9 postmaster");
        wait_until(
            &format!("end of the processes of {}", inst.node),
            Duration::from_secs(30),
            || {
                reap_orphans();
                proc_state(pid).is_none() && pids_under(&inst.pgdata).is_empty()
            },
        );
        assert!(inst.pid_file().exists(), "postmaster.pid stays after a kill -9");
    }

    /// `pg_controldata` output of `inst`, as `name -> value`.
    pub fn controldata(&self, inst: &Instance) -> BTreeMap<String, String> {
        let o = run_ok(
            as_postgres(self.pg.bin("pg_controldata"), &self.dir).arg(&inst.pgdata),
            Duration::from_secs(30),
            &self.dir,
        );
        o.stdout
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect()
    }

    /// "Database cluster state" of `inst`'s control file.
    pub fn cluster_state(&self, inst: &Instance) -> String {
        self.controldata(inst).remove("Database cluster state").unwrap_or_default()
    }

    pub fn is_running(&self, inst: &Instance) -> bool {
        inst.postmaster_pid().map(pid_alive).unwrap_or(false)
    }

    /// Runs one SQL statement as postgres; trimmed output or the error.
    pub fn sql(&self, inst: &Instance, q: &str) -> Result<String, String> {
        let o = run(
            as_postgres(self.pg.bin("psql"), &self.dir)
                .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
                .arg(&self.sock)
                .arg("-p")
                .arg(inst.port.to_string())
                .args(["-d", "postgres", "-c", q]),
            SQL_TIMEOUT,
            &self.dir,
        );
        if o.ok() {
            Ok(o.stdout.trim().to_string())
        } else {
            Err(format!("{}{}", o.stderr, if o.timed_out { " (timeout)" } else { "" }))
        }
    }

    #[track_caller]
    pub fn sql_ok(&self, inst: &Instance, q: &str) -> String {
        self.sql(inst, q).unwrap_or_else(|e| panic!("SQL on {} failed: {q}: {e}", inst.node))
    }

    /// Polls `q` until it returns `want` (30 s).
    pub fn wait_sql(&self, inst: &Instance, q: &str, want: &str) {
        let mut last: String;
        let t0 = Instant::now();
        loop {
            match self.sql(inst, q) {
                Ok(v) if v == want => return,
                Ok(v) => last = v,
                Err(e) => last = e,
            }
            if t0.elapsed() > Duration::from_secs(30) {
                panic!(
                    "timeout waiting on {} for [{q}] = [{want}]; last: [{last}]\n{}",
                    inst.node,
                    inst.server_log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn in_recovery(&self, inst: &Instance) -> bool {
        self.sql_ok(inst, "SELECT pg_is_in_recovery()") == "t"
    }

    /// Waits until `standby` streams from `primary`.
    pub fn wait_streaming(&self, primary: &Instance, standby: &Instance) {
        self.wait_sql(
            primary,
            &format!("SELECT count(*) FROM pg_stat_replication WHERE application_name = '{}' AND state = 'streaming'", standby.node),
            "1",
        );
    }

    /// The end of the WAL `primary` has written (`pg_current_wal_lsn()`).
    #[track_caller]
    pub fn current_lsn(&self, primary: &Instance) -> String {
        self.sql_ok(primary, "SELECT pg_current_wal_lsn()")
    }

    /// Waits until `standby` has received the WAL up to `lsn`.
    pub fn wait_received(&self, standby: &Instance, lsn: &str) {
        self.wait_sql(standby, &format!("SELECT pg_last_wal_receive_lsn() >= '{lsn}'"), "t");
    }

    /// Waits until `standby` has replayed the WAL up to `lsn`.
    pub fn wait_replayed(&self, standby: &Instance, lsn: &str) {
        self.wait_sql(standby, &format!("SELECT pg_last_wal_replay_lsn() >= '{lsn}'"), "t");
    }

    /// Waits until `primary` sees the standby `node` has written the WAL up
    /// to `lsn` (write_lsn of its pg_stat_replication row).
    pub fn wait_written(&self, primary: &Instance, node: &str, lsn: &str) {
        self.wait_sql(
            primary,
            &format!(
                "SELECT write_lsn >= '{lsn}' FROM pg_stat_replication WHERE application_name = '{node}'"
            ),
            "t",
        );
    }

    /// Promotes `standby` by hand (`pg_promote()`, no agent) and waits
    /// until it has left recovery.
    #[track_caller]
    pub fn promote_by_hand(&self, standby: &Instance) {
        self.sql_ok(standby, "SELECT pg_promote()");
        self.wait_sql(standby, "SELECT pg_is_in_recovery()", "f");
    }

    /// SIGSTOP of the standby's WAL receiver: it stays connected (for
    /// wal_sender_timeout) with a frozen write_lsn. Resumed in Drop.
    pub fn pause_walreceiver(&self, standby: &Instance) -> i32 {
        let pid: i32 = self
            .sql_ok(standby, "SELECT pid FROM pg_stat_wal_receiver")
            .parse()
            .expect("walreceiver pid");
        kill(Pid::from_raw(pid), Signal::SIGSTOP).unwrap();
        self.paused.lock().unwrap().push(pid);
        pid
    }

    /// SIGSTOP of any process of the test (a postmaster, a backend...).
    /// Resumed in Drop, before the servers are stopped. A process that
    /// exited since it was listed (a backend ending) has nothing to pause.
    pub fn pause(&self, pid: i32) {
        match kill(Pid::from_raw(pid), Signal::SIGSTOP) {
            Ok(()) => self.paused.lock().unwrap().push(pid),
            Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => panic!("SIGSTOP {pid}: {e}"),
        }
    }

    pub fn resume(&self, pid: i32) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
        self.paused.lock().unwrap().retain(|p| *p != pid);
    }

    /// A program left running in the background (as postgres, cwd = the
    /// test dir), killed in Drop.
    pub fn spawn_bg(&self, prog: &Path, args: &[&str]) -> i32 {
        let log = fs::File::create(
            self.dir.join(format!("bg-{}.log", SEQ.fetch_add(1, Ordering::Relaxed))),
        )
        .unwrap();
        let mut g = tracked().lock().unwrap();
        let c = as_postgres(prog, &self.dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", prog.display()));
        g.insert(c.id() as i32);
        let pid = c.id() as i32;
        self.background.lock().unwrap().push(c);
        pid
    }

    // -- the agent ----------------------------------------------------------

    /// The environment Pacemaker 2.1.5 gives an action of the promotable
    /// clone `pgsqld` on `inst.node`.
    pub fn base_env(&self, inst: &Instance, action: &str) -> Vec<(String, String)> {
        let nodes = self.nodes();
        let idx = nodes.iter().position(|n| *n == inst.node).unwrap_or(0);
        let e = [
            ("PATH", "/usr/sbin:/usr/bin:/sbin:/bin".to_string()),
            ("OCF_ROOT", "/usr/lib/ocf".into()),
            ("OCF_RA_VERSION_MAJOR", "1".into()),
            ("OCF_RA_VERSION_MINOR", "1".into()),
            ("OCF_RESOURCE_INSTANCE", RSC.into()),
            ("OCF_RESOURCE_TYPE", "pgsqlms".into()),
            ("OCF_RESOURCE_PROVIDER", "rust".into()),
            ("OCF_RESKEY_crm_feature_set", "3.16.2".into()),
            ("OCF_RESKEY_CRM_meta_name", action.into()),
            ("OCF_RESKEY_CRM_meta_on_node", inst.node.clone()),
            ("OCF_RESKEY_CRM_meta_on_node_uuid", (idx + 1).to_string()),
            ("OCF_RESKEY_CRM_meta_timeout", AGENT_TIMEOUT_MS.to_string()),
            ("OCF_RESKEY_CRM_meta_interval", "0".into()),
            ("OCF_RESKEY_CRM_meta_notify", "true".into()),
            ("OCF_RESKEY_CRM_meta_clone", idx.to_string()),
            ("OCF_RESKEY_CRM_meta_clone_max", nodes.len().max(1).to_string()),
            ("OCF_RESKEY_CRM_meta_clone_node_max", "1".into()),
            ("OCF_RESKEY_CRM_meta_globally_unique", "false".into()),
            ("OCF_RESKEY_CRM_meta_promotable", "true".into()),
            ("OCF_RESKEY_CRM_meta_promoted_max", "1".into()),
            ("OCF_RESKEY_CRM_meta_promoted_node_max", "1".into()),
            ("OCF_RESKEY_CRM_meta_master_max", "1".into()),
            ("OCF_RESKEY_CRM_meta_master_node_max", "1".into()),
            ("OCF_RESKEY_bindir", self.pg.bindir.to_string_lossy().into_owned()),
            ("OCF_RESKEY_pgdata", inst.pgdata.to_string_lossy().into_owned()),
            ("OCF_RESKEY_pghost", self.sock.to_string_lossy().into_owned()),
            ("OCF_RESKEY_pgport", inst.port.to_string()),
            ("OCF_RESKEY_system_user", "postgres".into()),
            ("HA_SBIN_DIR", repo().join("tests/fakes").to_string_lossy().into_owned()),
            ("PGSQLMS_FAKE_DIR", self.fake.to_string_lossy().into_owned()),
            ("HA_LOGFACILITY", "none".into()),
            ("HA_LOGFILE", self.agent_log.to_string_lossy().into_owned()),
            ("HA_debug", "0".into()),
            ("HA_RSCTMP", self.dir.join("rsctmp").join(&inst.node).to_string_lossy().into_owned()),
        ];
        e.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// Runs `pgsqlms <action>` for `inst` with the base environment.
    pub fn agent(&self, inst: &Instance, action: &str) -> AgentRun {
        self.agent_env(inst, action, &[])
    }

    /// Same, with changes to the environment: `(name, Some(value))` sets,
    /// `(name, None)` removes.
    pub fn agent_env(
        &self,
        inst: &Instance,
        action: &str,
        changes: &[(&str, Option<&str>)],
    ) -> AgentRun {
        let mut env: Vec<(String, String)> = self.base_env(inst, action);
        for (k, v) in changes {
            env.retain(|(n, _)| n != k);
            if let Some(v) = v {
                env.push((k.to_string(), v.to_string()));
            }
        }
        self.agent_raw(&inst.node, action, &env)
    }

    pub fn agent_raw(&self, node: &str, action: &str, env: &[(String, String)]) -> AgentRun {
        let timeout_ms: u64 = env
            .iter()
            .find(|(k, _)| k == "OCF_RESKEY_CRM_meta_timeout")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(AGENT_TIMEOUT_MS);
        let log_before = fs::metadata(&self.agent_log).map(|m| m.len()).unwrap_or(0);
        let mut cmd = Command::new(agent_bin());
        cmd.env_clear().arg(action).current_dir("/").envs(env.iter().map(|(k, v)| (k, v)));
        let o =
            run(&mut cmd, Duration::from_millis(timeout_ms) + Duration::from_secs(15), &self.dir);
        let log = fs::read(&self.agent_log)
            .map(|b| String::from_utf8_lossy(&b[(log_before as usize).min(b.len())..]).into_owned())
            .unwrap_or_default();
        let run = AgentRun {
            action: action.to_string(),
            node: node.to_string(),
            code: o.code,
            stdout: o.stdout,
            stderr: o.stderr,
            elapsed: o.elapsed,
            log,
        };
        assert!(!o.timed_out, "agent exceeded its timeout of {timeout_ms} ms\n{}", run.describe());
        run
    }

    /// `notify` with the variables of `n`.
    pub fn notify(&self, inst: &Instance, n: &Notify) -> AgentRun {
        let env = n.env();
        let changes: Vec<(&str, Option<&str>)> =
            env.iter().map(|(k, v)| (k.as_str(), Some(v.as_str()))).collect();
        self.agent_env(inst, "notify", &changes)
    }

    /// Sends `n` to every instance, as Pacemaker does, each must succeed.
    pub fn notify_all(&self, insts: &[&Instance], n: &Notify) {
        for i in insts {
            self.notify(i, n)
                .expect(OCF_SUCCESS, &format!("{}-{} notify on {}", n.kind, n.operation, i.node));
        }
    }

    /// The single-node promotion Pacemaker runs: pre-promote notify,
    /// promote, post-promote notify. Returns the promote's result.
    pub fn promote_like_pacemaker(&self, inst: &Instance) -> AgentRun {
        let mut n = Notify::pre_promote(&[&inst.node], &[&inst.node], &inst.node);
        self.notify(inst, &n).expect(OCF_SUCCESS, "pre-promote notify");
        let r = self.agent(inst, "promote");
        if r.code == OCF_SUCCESS {
            n.kind = "post";
            self.notify(inst, &n).expect(OCF_SUCCESS, "post-promote notify");
        }
        r
    }

    // -- the fake Pacemaker store -------------------------------------------

    fn read_attr(path: PathBuf) -> Option<String> {
        fs::read_to_string(path).ok()
    }

    /// Promotion score of `node` (CIB transient attribute master-pgsqld).
    pub fn score(&self, node: &str) -> Option<String> {
        Self::read_attr(self.fake.join("attrs").join(node).join(format!("master-{RSC}")))
    }

    pub fn set_score(&self, node: &str, v: &str) {
        let d = self.fake.join("attrs").join(node);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join(format!("master-{RSC}")), v).unwrap();
    }

    /// An operation in `node`'s history of the resource, as the CIB's
    /// status section records it (`lrm_rsc_op` `id`: operation, rc-code,
    /// op-status).
    pub fn set_lrm_op(&self, node: &str, id: &str, operation: &str, rc: i32, status: i32) {
        self.add_node(node);
        let d = self.fake.join("lrm").join(node);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join(id), format!("{operation} {rc} {status}\n")).unwrap();
    }

    /// `node`'s history of the resource emptied (as after a fencing).
    pub fn clear_lrm_ops(&self, node: &str) {
        let _ = fs::remove_dir_all(self.fake.join("lrm").join(node));
    }

    /// Private (attrd-only) attribute; None when absent or deleted (empty).
    pub fn private_attr(&self, node: &str, name: &str) -> Option<String> {
        Self::read_attr(self.fake.join("private").join(node).join(name)).filter(|v| !v.is_empty())
    }

    /// All private attributes of `node` whose name starts with `prefix`
    /// (the agent may suffix them with the resource name, as PAF does).
    pub fn private_attrs_like(&self, node: &str, prefix: &str) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        if let Ok(d) = fs::read_dir(self.fake.join("private").join(node)) {
            for e in d.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with(prefix) {
                    m.insert(n, fs::read_to_string(e.path()).unwrap_or_default());
                }
            }
        }
        m
    }

    /// Non-empty values of `node`'s private attributes whose name starts
    /// with `prefix`.
    pub fn private_values(&self, node: &str, prefix: &str) -> Vec<String> {
        self.private_attrs_like(node, prefix).into_values().filter(|v| !v.is_empty()).collect()
    }

    /// Sets the private attribute `name` of `node` directly in the fake
    /// store, as `node`'s agent would have published it: the agent names
    /// its private attributes `<name>-<resource>` (src/pacemaker.rs). An
    /// empty value is a deleted one.
    /// Make a fake Pacemaker tool fail with `code` (None: work again).
    pub fn fail_tool(&self, tool: &str, code: Option<i32>) {
        let f = self.fake.join("fail").join(tool);
        match code {
            Some(c) => {
                std::fs::create_dir_all(f.parent().unwrap()).unwrap();
                std::fs::write(&f, c.to_string()).unwrap();
            }
            None => {
                let _ = std::fs::remove_file(&f);
            }
        }
    }

    pub fn set_private(&self, node: &str, name: &str, value: &str) {
        let d = self.fake.join("private").join(node);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join(format!("{name}-{RSC}")), value).unwrap();
    }

    pub fn remove_score(&self, node: &str) {
        let _ = fs::remove_file(self.fake.join("attrs").join(node).join(format!("master-{RSC}")));
    }

    pub fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.fake.join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    pub fn clear_calls(&self) {
        fs::write(self.fake.join("calls.log"), "").unwrap();
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        for pid in self.paused.lock().unwrap().drain(..) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
        }
        for mut c in self.background.lock().unwrap().drain(..) {
            let _ = c.kill();
            let _ = c.wait();
            tracked().lock().unwrap().remove(&(c.id() as i32));
        }
        for inst in self.instances.lock().unwrap().iter() {
            if self.is_running(inst) {
                let _ = self.pg_ctl(inst, &["-w", "-t", "30", "-m", "immediate", "stop"]);
            }
        }
        let failed = std::thread::panicking();
        if failed {
            eprintln!("test directory: {}", self.dir.display());
            if let Ok(l) = fs::read_to_string(&self.agent_log) {
                let tail: Vec<&str> = l.lines().rev().take(40).collect();
                eprintln!("--- last lines of {}:", self.agent_log.display());
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
        if failed && std::env::var("PGSQLMS_IT_KEEP").as_deref() == Ok("1") {
            kill_under(&self.dir);
            eprintln!("kept {} (PGSQLMS_IT_KEEP=1)", self.dir.display());
        } else {
            cleanup_dir(&self.dir);
        }
    }
}

/// SIGKILL of every process working under `dir`, waiting for their end.
fn kill_under(dir: &Path) {
    for _ in 0..100 {
        let pids = pids_under(dir);
        if pids.is_empty() {
            return;
        }
        for p in pids {
            let _ = kill(Pid::from_raw(p), Signal::SIGCONT);
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(50));
        reap_orphans();
    }
}

/// Idempotent: stops whatever runs there (leftovers of an aborted run
/// included) and removes the directory.
fn cleanup_dir(dir: &Path) {
    if !dir.exists() {
        return;
    }
    kill_under(dir);
    let _ = fs::remove_dir_all(dir);
}

// ---------------------------------------------------------------------------
// data directory snapshots (validate-all must not touch anything)

/// path -> (size, mtime ns, mode), recursively.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, i64, u32)> {
    fn walk(d: &Path, m: &mut BTreeMap<PathBuf, (u64, i64, u32)>) {
        let Ok(rd) = fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(md) = fs::symlink_metadata(&p) else { continue };
            m.insert(
                p.clone(),
                (md.len(), md.mtime() * 1_000_000_000 + md.mtime_nsec(), md.mode()),
            );
            if md.is_dir() {
                walk(&p, m);
            }
        }
    }
    let mut m = BTreeMap::new();
    walk(dir, &mut m);
    m
}

#[track_caller]
pub fn assert_same_snapshot(
    before: &BTreeMap<PathBuf, (u64, i64, u32)>,
    after: &BTreeMap<PathBuf, (u64, i64, u32)>,
    what: &str,
) {
    let mut diffs = Vec::new();
    for (p, v) in before {
        match after.get(p) {
            None => diffs.push(format!("removed {}", p.display())),
            Some(w) if w != v => diffs.push(format!("changed {} {v:?} -> {w:?}", p.display())),
            _ => {}
        }
    }
    for p in after.keys() {
        if !before.contains_key(p) {
            diffs.push(format!("created {}", p.display()));
        }
    }
    assert!(diffs.is_empty(), "{what}: the data directory changed:\n{}", diffs.join("\n"));
}

/// Generates the #[test] functions of every shared case for one version.
#[macro_export]
macro_rules! action_tests {
    ($v:expr) => {
        $crate::action_tests!(@each $v;
            meta_data,
            action_by_state,
            primary_monitor_sets_scores,
            validate_good,
            validate_pgdata_missing,
            validate_refuses_bad_definitions,
            validate_conninfo_without_application_name,
            validate_recovery_target_timeline,
            validate_wal_level_minimal,
            validate_outside_a_transition,
            validate_bindir_without_binaries,
            validate_unsupported_pg_version,
            notify_pre_promote_sets_lsn_location,
            failover_election_hands_over_to_most_advanced,
            promote_refused_when_pre_promote_cannot_publish,
            stopped_node_with_newer_wal_stops_the_promotion,
            restarted_standby_publishes_its_wal_on_disk,
            probe_scores_the_most_advanced_at_cold_start,
            wal_on_disk_equals_the_replayed_position,
            wal_on_disk_found_despite_zeroed_segments,
            switchover,
            switchover_cancelled_without_shutdown_checkpoint,
            former_primary_diverged_refuses_start,
            former_primary_after_clean_stop_rejoins,
            former_primary_crashed_without_lost_wal_rejoins,
            crashed_standby_stop_and_start,
            crashed_standby_recovered_in_place,
            crashed_primary_recovered_in_place,
            standby_monitor_bootstraps_score_without_primary,
            maxlag_flags_standby_and_election_honours_it,
            monitor_of_a_hung_postmaster_is_bounded,
            stop_with_short_timeout,
            stop_falls_back_to_immediate_shutdown,
            sync_record_follows_synchronous_standby_names,
            inherited_sync_record_kept_until_members_caught_up,
            primary_monitor_with_lost_sync_standby,
            monitor_queries_are_cancelled_by_the_server,
            promote_refused_while_sync_standby_absent,
            promote_in_availability_mode_warns,
            start_refuses_linked_standby_signal,
            non_utf8_environment,
            start_opts_with_shell_syntax_refused,
            data_path_with_space_and_quote,
            fifo_control_file_is_a_bounded_error,
            corrupt_control_file_is_an_error,
            validate_refuses_setups_that_cannot_work,
            foreign_postmaster_pid_is_not_ours,
            stop_despite_configuration_errors,
            stop_without_data_directory,
            stop_without_binaries,
            hung_primary_is_dealt_with_in_seconds,
            conninfo_password_not_in_arguments,
            server_output_kept_without_logging_collector,
            monitor_with_a_full_listen_backlog_is_bounded,
            monitor_with_a_subsecond_timeout_is_bounded,
            promote_refused_when_attrd_cannot_answer,
            switchover_cancelled_when_attrd_fails_in_pre_promote,
            switchover_refused_with_an_earlier_shutdown_checkpoint,
            former_primary_diverged_refuses_start_with_uri_conninfo,
            former_primary_refused_when_the_primary_cannot_be_asked,
            former_primary_start_skips_a_dead_address_when_nobody_is_primary,
            former_primary_check_bounds_a_hung_waldump,
            slots_primary_monitor_keeps_one_per_node,
            slots_invalidated_slot_is_reported,
            slots_standby_uses_its_slot_and_advances_the_others,
            slots_validate_refuses_unbounded_wal,
            slots_stopped_standby_catches_up,
            no_slots_stopped_standby_says_why_it_cannot_catch_up,
            slots_turned_on_under_a_running_standby,
            rejoin_rewind_streams_again,
            rejoin_manual_keeps_the_refusal,
            rejoin_clone_when_rewind_is_impossible,
            rejoin_refused_without_a_reachable_primary,
            rejoin_rewind_cut_by_the_timeout_is_redone,
            rejoin_failed_rewind_then_clone,
            rejoin_clone_cut_by_the_timeout_is_redone,
            rejoin_validate_prerequisites,
            rejoin_clone_refused_without_room,
            rejoin_rewind_killed_mid_copy_is_redone,
        );
    };
    (@each $v:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                support::cases::$case($v);
            }
        )*
    };
}
