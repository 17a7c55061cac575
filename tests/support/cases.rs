//! Test bodies shared by every PostgreSQL version (tests/actions_pgNN.rs
//! call them through `action_tests!`). Each takes the major version.

use super::*;
use std::fs;
use std::path::Path;
use std::time::Duration;

// The slot cases are called through `action_tests!` like these.
#[allow(unused_imports)]
pub use super::slot_cases::*;

/// The test environment, or return (test skipped) when PG18 is missing and
/// PGSQLMS_SKIP_PG18=1. Any other missing version fails the test.
macro_rules! env_for {
    ($v:expr, $name:expr) => {
        match Pg::get($v) {
            Some(pg) => TestEnv::new(&pg, $name),
            None => return,
        }
    };
}

/// `sql` run by psql in the background on `inst` (a session that waits).
fn psql_in_background(env: &TestEnv, inst: &Instance, sql: &str) {
    let port = inst.port.to_string();
    let sock = env.sock.to_str().unwrap();
    let args = ["-X", "-h", sock, "-p", &port, "-d", "postgres", "-c", sql];
    env.spawn_bg(&env.pg.bin("psql"), &args);
}

fn interval(ms: &str) -> (&'static str, Option<&str>) {
    ("OCF_RESKEY_CRM_meta_interval", Some(ms))
}

// ---------------------------------------------------------------------------
// meta-data

/// `(name, default)` of every `<parameter>`; default None when absent.
fn parameters(xml: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find("<parameter ") {
        let block_end = rest[i..].find("</parameter>").map(|e| i + e).unwrap_or(rest.len());
        let block = &rest[i..block_end];
        let tag = &block[..block.find('>').unwrap_or(block.len())];
        let name = attr(tag, "name").unwrap_or_default();
        let default = block.find("<content").and_then(|c| {
            let ctag = &block[c..];
            let ctag = &ctag[..ctag.find('>').unwrap_or(ctag.len())];
            attr(ctag, "default")
        });
        out.push((name, default));
        rest = &rest[block_end..];
    }
    out
}

fn attr(tag: &str, name: &str) -> Option<String> {
    for q in ['"', '\''] {
        let pat = format!(" {name}={q}");
        if let Some(i) = tag.find(&pat) {
            let v = &tag[i + pat.len()..];
            return Some(v[..v.find(q)?].to_string());
        }
    }
    None
}

const OCF_1_1_RNG: &str = "/usr/share/pcs/data/ocf-1.1.rng";

pub fn meta_data(v: u32) {
    let env = env_for!(v, "meta_data");
    let inst = env.init_instance("srv1");
    let r = env.agent(&inst, "meta-data");
    r.expect(OCF_SUCCESS, "meta-data");
    let file = env.dir.join("meta-data.xml");
    fs::write(&file, &r.stdout).unwrap();
    // The OCF 1.1 schema pcs validates agents with (resource-agents'
    // ra-api-1.dtd predates OCF 1.1's `reloadable`).
    let o = run(
        Command::new("xmllint").args(["--noout", "--relaxng", OCF_1_1_RNG]).arg(&file),
        Duration::from_secs(30),
        &env.dir,
    );
    assert!(o.ok(), "meta-data is not valid against {OCF_1_1_RNG}:\n{}\n{}", o.stderr, r.stdout);

    let params = parameters(&r.stdout);
    let expected: &[(&str, &[&str])] = &[
        ("system_user", &["postgres"]),
        ("bindir", &["/usr/bin"]),
        ("pgdata", &["/var/lib/pgsql/data"]),
        ("datadir", &["PGDATA"]),
        ("pghost", &["/var/run/postgresql"]),
        ("pgport", &["5432"]),
        ("start_opts", &[""]),
        ("maxlag", &["0"]),
        ("replication_slots", &["false"]),
    ];
    for (name, defaults) in expected {
        let p = params.iter().find(|(n, _)| n == name);
        let Some((_, default)) = p else {
            panic!("meta-data lacks parameter {name}:\n{}", r.stdout)
        };
        let d = default.clone().unwrap_or_default();
        assert!(
            defaults.contains(&d.as_str()),
            "parameter {name}: default {default:?}, PAF's is {defaults:?}"
        );
    }
    for action in
        ["start", "stop", "promote", "demote", "monitor", "notify", "meta-data", "validate-all"]
    {
        assert!(
            r.stdout.contains(&format!("<action name=\"{action}\"")),
            "meta-data lacks action {action}"
        );
    }
    // one monitor per role, with distinct intervals
    let monitors: Vec<&str> =
        r.stdout.lines().filter(|l| l.contains("<action name=\"monitor\"")).collect();
    assert!(monitors.len() >= 2, "a monitor per role expected: {monitors:?}");
    assert!(
        monitors.iter().any(|l| l.contains("Promoted") || l.contains("Master")),
        "{monitors:?}"
    );
    assert!(
        monitors.iter().any(|l| l.contains("Unpromoted") || l.contains("Slave")),
        "{monitors:?}"
    );
}

// ---------------------------------------------------------------------------
// action by state: what each action returns and leaves, from each state of a
// single instance

/// How the instance is when the action runs. The states that were a
/// primary hold table `t` (10 rows), which every later state must keep.
#[derive(Clone, Copy, Debug)]
enum State {
    NeverStarted,
    /// No data directory (not mounted, PostgreSQL not installed here).
    PgdataMissing,
    StoppedPrimary,
    StoppedStandby,
    RunningStandby,
    RunningPrimary,
    /// kill -9 of the postmaster and its children.
    CrashedPrimary,
    CrashedStandby,
}

#[derive(Clone, Copy, Debug)]
enum Act {
    /// monitor with interval 0.
    Probe,
    /// monitor with this interval (ms).
    Monitor(&'static str),
    Start,
    Stop,
    /// With the pre- and post-promote notifications Pacemaker sends.
    Promote,
    Demote,
}

/// What must be true after the action, beyond its code.
#[derive(Clone, Copy, Debug)]
enum Effect {
    /// Nothing more to check (a probe changes nothing).
    Answer,
    /// No data directory was created.
    NoPgdata,
    /// A standby in recovery, data kept, probed as one; the same action
    /// again succeeds and leaves it so.
    Standby,
    /// A primary, data kept, probed and monitored as one; promote again
    /// succeeds.
    Primary,
    /// Nothing left running; stop again succeeds; probed as not running.
    Stopped,
    /// The same standby: not restarted.
    Untouched,
}

struct Case {
    state: State,
    act: Act,
    code: i32,
    effect: Effect,
}

const fn case(state: State, act: Act, code: i32, effect: Effect) -> Case {
    Case { state, act, code, effect }
}

#[rustfmt::skip]
const ACTION_BY_STATE: &[Case] = {
    use Act::*;
    use Effect::*;
    use State::*;
    &[
        // state          action             expected code         effect
        case(NeverStarted,   Probe,            OCF_NOT_RUNNING,      Answer),
        case(PgdataMissing,  Probe,            OCF_NOT_RUNNING,      NoPgdata),
        case(StoppedPrimary, Probe,            OCF_NOT_RUNNING,      Answer),
        case(StoppedStandby, Probe,            OCF_NOT_RUNNING,      Answer),
        case(RunningStandby, Probe,            OCF_SUCCESS,          Answer),
        case(RunningStandby, Monitor("16000"), OCF_SUCCESS,          Answer),
        case(RunningPrimary, Probe,            OCF_RUNNING_PROMOTED, Answer),
        case(CrashedPrimary, Probe,            OCF_FAILED_PROMOTED,  Answer),
        case(CrashedStandby, Probe,            OCF_ERR_GENERIC,      Answer),
        case(NeverStarted,   Start,            OCF_SUCCESS,          Standby),
        case(StoppedPrimary, Start,            OCF_SUCCESS,          Standby),
        case(RunningStandby, Stop,             OCF_SUCCESS,          Stopped),
        case(RunningPrimary, Stop,             OCF_SUCCESS,          Stopped),
        case(RunningStandby, Promote,          OCF_SUCCESS,          Primary),
        case(RunningPrimary, Demote,           OCF_SUCCESS,          Standby),
        case(RunningStandby, Demote,           OCF_SUCCESS,          Untouched),
    ]
};

const ROWS: &str = "10";

impl Case {
    fn name(&self) -> String {
        format!("{:?} {:?}", self.state, self.act)
    }

    /// Builds the state; returns the environment changes the actions need.
    fn prepare(&self, env: &TestEnv, inst: &Instance) -> Vec<(&'static str, Option<String>)> {
        let mut changes = Vec::new();
        let was_primary = |env: &TestEnv| {
            env.start(inst);
            env.sql_ok(inst, &format!("CREATE TABLE t AS SELECT generate_series(1, {ROWS}) AS i"));
        };
        match self.state {
            State::NeverStarted => {}
            State::PgdataMissing => {
                let missing = env.dir.join("no-such-pgdata");
                changes.push(("OCF_RESKEY_pgdata", Some(missing.display().to_string())));
            }
            State::StoppedPrimary => {
                was_primary(env);
                env.stop(inst, "fast");
                assert!(!inst.standby_signal().exists());
            }
            State::StoppedStandby => {
                env.start_standby(inst);
                env.stop(inst, "fast");
            }
            State::RunningStandby => env.start_standby(inst),
            State::RunningPrimary => was_primary(env),
            State::CrashedPrimary => {
                was_primary(env);
                env.kill9(inst);
            }
            State::CrashedStandby => {
                env.start_standby(inst);
                env.kill9(inst);
            }
        }
        if let Act::Monitor(ms) = self.act {
            changes.push(("OCF_RESKEY_CRM_meta_interval", Some(ms.to_string())));
        }
        changes
    }

    fn has_data(&self) -> bool {
        matches!(self.state, State::StoppedPrimary | State::RunningPrimary | State::CrashedPrimary)
    }

    fn run(&self, env: &TestEnv, inst: &Instance, changes: &[(&str, Option<&str>)]) -> AgentRun {
        match self.act {
            Act::Probe | Act::Monitor(_) => env.agent_env(inst, "monitor", changes),
            Act::Start => env.agent_env(inst, "start", changes),
            Act::Stop => env.agent_env(inst, "stop", changes),
            Act::Promote => env.promote_like_pacemaker(inst),
            Act::Demote => env.agent_env(inst, "demote", changes),
        }
    }

    fn check(&self, v: u32) {
        let name = self.name();
        let dir: String = format!("{:?}_{:?}", self.state, self.act)
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let env = env_for!(v, &dir.to_lowercase());
        let inst = env.init_instance("srv1");
        let owned = self.prepare(&env, &inst);
        let changes: Vec<(&str, Option<&str>)> =
            owned.iter().map(|(k, v)| (*k, v.as_deref())).collect();
        let pid = inst.postmaster_pid();
        self.run(&env, &inst, &changes).expect(self.code, &name);
        let data_kept = |what: &str| {
            if self.has_data() {
                assert_eq!(env.sql_ok(&inst, "SELECT count(*) FROM t"), ROWS, "{name}: {what}");
            }
        };
        match self.effect {
            Effect::Answer => {}
            Effect::NoPgdata => {
                assert!(!env.dir.join("no-such-pgdata").exists(), "{name}: pgdata created")
            }
            Effect::Standby => {
                assert!(inst.standby_signal().exists(), "{name}: no standby.signal");
                assert!(env.in_recovery(&inst), "{name}: not a standby");
                data_kept("data lost");
                env.agent(&inst, "monitor").expect(OCF_SUCCESS, &format!("{name}: probe after"));
                self.run(&env, &inst, &[]).expect(OCF_SUCCESS, &format!("{name}: again"));
                assert!(env.in_recovery(&inst), "{name}: not a standby after the second");
            }
            Effect::Primary => {
                assert!(!env.in_recovery(&inst), "{name}: not a primary");
                assert!(!inst.standby_signal().exists(), "{name}: standby.signal left");
                data_kept("data lost");
                env.agent(&inst, "monitor")
                    .expect(OCF_RUNNING_PROMOTED, &format!("{name}: probe after"));
                env.agent_env(&inst, "monitor", &[interval("15000")])
                    .expect(OCF_RUNNING_PROMOTED, &format!("{name}: monitor after"));
                env.agent(&inst, "promote").expect(OCF_SUCCESS, &format!("{name}: again"));
                assert!(!env.in_recovery(&inst), "{name}: not a primary after the second");
            }
            Effect::Stopped => {
                assert_stopped(&env, &inst);
                self.run(&env, &inst, &[]).expect(OCF_SUCCESS, &format!("{name}: again"));
                env.agent(&inst, "monitor")
                    .expect(OCF_NOT_RUNNING, &format!("{name}: probe after"));
            }
            Effect::Untouched => {
                assert!(env.in_recovery(&inst), "{name}: not a standby");
                assert_eq!(inst.postmaster_pid(), pid, "{name}: restarted");
            }
        }
    }
}

/// Every row of ACTION_BY_STATE, each on its own instance; the failures
/// are reported together.
pub fn action_by_state(v: u32) {
    let failed: Vec<String> = ACTION_BY_STATE
        .iter()
        .filter(|c| std::panic::catch_unwind(|| c.check(v)).is_err())
        .map(Case::name)
        .collect();
    assert!(failed.is_empty(), "action by state, failed rows: {}", failed.join(", "));
}

fn assert_stopped(env: &TestEnv, inst: &Instance) {
    assert!(!inst.pid_file().exists(), "postmaster.pid remains after stop");
    assert_no_process_under(&inst.pgdata, Duration::ZERO, "processes remain after stop");
    assert!(!env.is_running(inst));
}

// ---------------------------------------------------------------------------
// promotion scores

fn crm_attribute_calls(env: &TestEnv) -> Vec<String> {
    env.calls().into_iter().filter(|l| l.starts_with("crm_attribute")).collect()
}

pub fn primary_monitor_sets_scores(v: u32) {
    let env = env_for!(v, "scores");
    let (p, s2, s3) = three_nodes(&env);
    env.add_node("srv4"); // a cluster node with no standby

    // a replication client that is no cluster node
    let rw = env.dir.join("receivewal");
    fs::create_dir(&rw).unwrap();
    chown_pg(&rw);
    env.spawn_bg(
        &env.pg.bin("pg_receivewal"),
        &[
            "-D",
            rw.to_str().unwrap(),
            "-h",
            env.sock.to_str().unwrap(),
            "-p",
            &p.port.to_string(),
            "-n",
        ],
    );
    env.wait_sql(
        &p,
        "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'pg_receivewal'",
        "1",
    );

    // srv2 ahead of srv3 by write_lsn: srv3's WAL receiver is frozen (still
    // connected and "streaming" for wal_sender_timeout) while the primary
    // writes.
    env.wait_sql(
        &p,
        "SELECT count(*) FROM pg_stat_replication WHERE application_name IN ('srv2', 'srv3') AND write_lsn = pg_current_wal_lsn()",
        "2",
    );
    env.pause_walreceiver(&s3);
    env.sql_ok(&p, "CREATE TABLE t AS SELECT generate_series(1, 10000) AS i");
    let lsn = env.current_lsn(&p);
    env.wait_written(&p, "srv2", &lsn);
    assert_eq!(
        env.sql_ok(&p, &format!("SELECT write_lsn < '{lsn}' AND state = 'streaming' FROM pg_stat_replication WHERE application_name = 'srv3'")),
        "t"
    );

    env.clear_calls();
    let mon = [interval("10000"), ("OCF_RESKEY_CRM_meta_timeout", Some("10000"))];
    let r = env.agent_env(&p, "monitor", &mon);
    r.expect(OCF_RUNNING_PROMOTED, "monitor of the primary");
    eprintln!("first primary monitor:\n{}", r.describe());
    let scores: Vec<(String, Option<String>)> =
        ["srv1", "srv2", "srv3", "srv4"].iter().map(|n| (n.to_string(), env.score(n))).collect();
    let want = |s: &str| Some(s.to_string());
    assert_eq!(
        scores,
        vec![
            ("srv1".to_string(), want("1001")),
            ("srv2".to_string(), want("1000")),
            ("srv3".to_string(), want("990")),
            ("srv4".to_string(), want("-1000")),
        ],
        "promotion scores after the first monitor; calls: {:#?}\n{}",
        env.calls(),
        r.describe()
    );
    assert!(
        !env.fake.join("attrs/pg_receivewal").exists(),
        "a replication client that is no node gets no score"
    );
    assert!(
        !env.calls().iter().any(|l| l.contains("pg_receivewal")),
        "no Pacemaker call about pg_receivewal: {:#?}",
        env.calls()
    );

    // nothing changed: nothing written, nothing logged again about the
    // foreign client
    env.clear_calls();
    let r2 = env.agent_env(&p, "monitor", &mon);
    r2.expect(OCF_RUNNING_PROMOTED, "second monitor of the primary");
    assert_eq!(
        crm_attribute_calls(&env),
        Vec::<String>::new(),
        "only changed scores are written\n{}",
        r2.describe()
    );
    assert_eq!(
        env.calls(),
        vec!["cibadmin --query".to_string()],
        "an unchanged primary monitor reads the CIB once and forks no other Pacemaker tool"
    );
    assert!(
        !r2.stderr.contains("pg_receivewal") && !r2.log.contains("pg_receivewal"),
        "the foreign client is logged again on an unchanged monitor\n{}",
        r2.describe()
    );
    assert_eq!(env.score("srv3").as_deref(), Some("990"));

    // a streaming standby's recurring monitor calls no Pacemaker tool
    env.clear_calls();
    env.agent_env(
        &s2,
        "monitor",
        &[interval("16000"), ("OCF_RESKEY_CRM_meta_timeout", Some("10000"))],
    )
    .expect(OCF_SUCCESS, "monitor of a streaming standby");
    assert_eq!(
        env.calls(),
        Vec::<String>::new(),
        "a streaming standby's monitor forks no Pacemaker tool"
    );
}

// ---------------------------------------------------------------------------
// validate-all
//
// Exit codes by kind of problem, as src/validate.rs documents them (and as
// Pacemaker acts on them):
// - this node's setup (its data directory, its postgresql.conf, its system
//   user): ERR_ARGS, a hard error that bans the resource from this node only.
//   Not ERR_CONFIGURED: that would ban the resource from every node, healthy
//   ones included, for a problem local to one of them.
// - the resource definition (meta attributes, parameter values, the same on
//   every node): ERR_CONFIGURED.
// - software missing or too old on this node: ERR_INSTALLED.
const NODE_SETUP: i32 = OCF_ERR_ARGS;
const RESOURCE_DEFINITION: i32 = OCF_ERR_CONFIGURED;
const NOT_INSTALLED: i32 = OCF_ERR_INSTALLED;

/// A stopped, never started instance configured as the tests expect.
fn validate_setup(v: u32, name: &str) -> Option<(TestEnv, Instance)> {
    let pg = Pg::get(v)?;
    let env = TestEnv::new(&pg, name);
    let inst = env.init_instance("srv1");
    Some((env, inst))
}

/// validate-all with `changes` must fail with `code` and leave `dir` as it
/// was.
#[track_caller]
fn expect_validate_failure(
    env: &TestEnv,
    inst: &Instance,
    dir: &Path,
    changes: &[(&str, Option<&str>)],
    code: i32,
    what: &str,
) {
    let before = snapshot(dir);
    let r = env.agent_env(inst, "validate-all", changes);
    r.expect(code, what);
    assert_same_snapshot(&before, &snapshot(dir), what);
    assert!(!env.is_running(inst), "{what}: validate-all started the instance");
}

pub fn validate_good(v: u32) {
    let Some((env, inst)) = validate_setup(v, "validate_good") else { return };
    let before = snapshot(&inst.pgdata);
    env.agent(&inst, "validate-all").expect(OCF_SUCCESS, "validate-all of a good setup (stopped)");
    assert_same_snapshot(&before, &snapshot(&inst.pgdata), "validate-all of a good setup");
    env.start_standby(&inst);
    env.agent(&inst, "validate-all")
        .expect(OCF_SUCCESS, "validate-all of a good setup (running standby)");
}

pub fn validate_pgdata_missing(v: u32) {
    let Some((env, inst)) = validate_setup(v, "validate_pgdata") else { return };
    let missing = env.dir.join("no-such-pgdata");
    let r = env.agent_env(
        &inst,
        "validate-all",
        &[("OCF_RESKEY_pgdata", Some(missing.to_str().unwrap()))],
    );
    r.expect(NODE_SETUP, "validate-all with a missing pgdata");
    assert!(!missing.exists(), "validate-all created pgdata");
}

/// Changes to the base environment: `(name, Some(value))` sets, `(name,
/// None)` removes.
type EnvChanges = &'static [(&'static str, Option<&'static str>)];

/// Resource definitions validate-all refuses, each with its code: the
/// environment changes from a good setup, and what is wrong.
#[rustfmt::skip]
const BAD_DEFINITIONS: &[(&str, EnvChanges, i32)] = &[
    ("maxlag=abc", &[("OCF_RESKEY_maxlag", Some("abc"))], RESOURCE_DEFINITION),
    ("maxlag=10MB", &[("OCF_RESKEY_maxlag", Some("10MB"))], RESOURCE_DEFINITION),
    ("maxlag=-5", &[("OCF_RESKEY_maxlag", Some("-5"))], RESOURCE_DEFINITION),
    ("notify=false", &[("OCF_RESKEY_CRM_meta_notify", Some("false"))], RESOURCE_DEFINITION),
    ("notify unset", &[("OCF_RESKEY_CRM_meta_notify", None)], RESOURCE_DEFINITION),
    ("promoted-max=2", &[
        ("OCF_RESKEY_CRM_meta_promoted_max", Some("2")),
        ("OCF_RESKEY_CRM_meta_master_max", Some("2")),
    ], RESOURCE_DEFINITION),
    ("legacy master-max=2", &[
        ("OCF_RESKEY_CRM_meta_promoted_max", None),
        ("OCF_RESKEY_CRM_meta_master_max", Some("2")),
    ], RESOURCE_DEFINITION),
    ("recovery_template set",
        &[("OCF_RESKEY_recovery_template", Some("/var/lib/pgsql/recovery.conf.pcmk"))],
        RESOURCE_DEFINITION),
    ("system_user=root", &[("OCF_RESKEY_system_user", Some("root"))], RESOURCE_DEFINITION),
    ("system_user that does not exist",
        &[("OCF_RESKEY_system_user", Some("pgsqlms-no-such-user"))], NODE_SETUP),
];

pub fn validate_refuses_bad_definitions(v: u32) {
    let Some((env, inst)) = validate_setup(v, "validate_bad_definitions") else { return };
    for (what, changes, code) in BAD_DEFINITIONS {
        expect_validate_failure(&env, &inst, &inst.pgdata, changes, *code, what);
    }
}

pub fn validate_conninfo_without_application_name(v: u32) {
    let Some((env, inst)) = validate_setup(v, "validate_conninfo") else { return };
    let conf = inst.conf();
    let orig = fs::read_to_string(&conf).unwrap();
    let sock = env.sock.display().to_string();
    for (label, line) in [
        (
            "other application_name",
            format!("primary_conninfo = 'host={sock} port=1 application_name=srv9'\n"),
        ),
        ("no application_name", format!("primary_conninfo = 'host={sock} port=1'\n")),
        (
            "application_name prefix of the node",
            format!("primary_conninfo = 'host={sock} port=1 application_name=srv10'\n"),
        ),
    ] {
        fs::write(&conf, format!("{orig}{line}")).unwrap();
        expect_validate_failure(
            &env,
            &inst,
            &inst.pgdata,
            &[],
            NODE_SETUP,
            &format!("primary_conninfo with {label}"),
        );
    }
    fs::write(&conf, &orig).unwrap();
    env.agent(&inst, "validate-all")
        .expect(OCF_SUCCESS, "validate-all with the configuration restored");
}

pub fn validate_recovery_target_timeline(v: u32) {
    let Some((env, inst)) = validate_setup(v, "validate_rtt") else { return };
    append(&inst.conf(), "recovery_target_timeline = 'current'\n");
    expect_validate_failure(
        &env,
        &inst,
        &inst.pgdata,
        &[],
        NODE_SETUP,
        "recovery_target_timeline = 'current'",
    );
}

pub fn validate_wal_level_minimal(v: u32) {
    let Some((env, inst)) = validate_setup(v, "validate_wal_level") else { return };
    append(&inst.conf(), "wal_level = minimal\nmax_wal_senders = 0\n");
    // run once so the control file says minimal too, whatever the agent reads
    env.start(&inst);
    env.stop(&inst, "fast");
    expect_validate_failure(&env, &inst, &inst.pgdata, &[], NODE_SETUP, "wal_level = minimal");
}

/// `crm_resource --validate` (what `pcs resource create --agent-validation`
/// runs) passes no clone meta attributes: the parameters and the node are
/// checked, the clone's meta attributes are not, and the resource
/// definition is checked once, by validate-all itself.
pub fn validate_outside_a_transition(v: u32) {
    let Some((env, inst)) = validate_setup(v, "validate_no_meta") else { return };
    let clone_meta = [
        "clone",
        "clone_max",
        "clone_node_max",
        "globally_unique",
        "notify",
        "promotable",
        "promoted_max",
        "promoted_node_max",
        "master_max",
        "master_node_max",
    ];
    let keys: Vec<String> = clone_meta.iter().map(|k| format!("OCF_RESKEY_CRM_meta_{k}")).collect();
    let changes: Vec<(&str, Option<&str>)> = keys.iter().map(|k| (k.as_str(), None)).collect();
    let r = env.agent_env(&inst, "validate-all", &changes);
    r.expect(OCF_SUCCESS, "validate-all without clone meta attributes");
    assert_eq!(
        r.log.matches("no clone meta attributes given").count(),
        1,
        "the clone meta attributes are skipped once, and said so:\n{}",
        r.log
    );
    let mut bad = changes.clone();
    bad.push(("OCF_RESKEY_maxlag", Some("abc")));
    expect_validate_failure(
        &env,
        &inst,
        &inst.pgdata,
        &bad,
        RESOURCE_DEFINITION,
        "maxlag=abc, no meta",
    );
}

pub fn validate_bindir_without_binaries(v: u32) {
    let Some((env, inst)) = validate_setup(v, "validate_bindir") else { return };
    let empty = env.dir.join("emptybin");
    fs::create_dir(&empty).unwrap();
    expect_validate_failure(
        &env,
        &inst,
        &inst.pgdata,
        &[("OCF_RESKEY_bindir", Some(empty.to_str().unwrap()))],
        NOT_INSTALLED,
        "bindir without binaries",
    );
}

pub fn validate_unsupported_pg_version(v: u32) {
    let Some((env, inst)) = validate_setup(v, "validate_pg_version") else { return };
    let old = env.dir.join("pg11");
    run_ok(
        Command::new("cp").arg("-a").arg(&inst.pgdata).arg(&old),
        Duration::from_secs(60),
        &env.dir,
    );
    fs::write(old.join("PG_VERSION"), "11\n").unwrap();
    chown_pg(&old.join("PG_VERSION"));
    expect_validate_failure(
        &env,
        &inst,
        &old,
        &[("OCF_RESKEY_pgdata", Some(old.to_str().unwrap()))],
        NOT_INSTALLED,
        "PG_VERSION 11",
    );
}

// ---------------------------------------------------------------------------
// notify

pub fn notify_pre_promote_sets_lsn_location(v: u32) {
    let env = env_for!(v, "notify_pre_promote");
    let inst = env.init_instance("srv1");
    env.start_standby(&inst);
    let mut n = Notify::pre_promote(&["srv1"], &["srv1"], "srv1");
    env.notify(&inst, &n).expect(OCF_SUCCESS, "pre-promote notify");
    let attrs: Vec<(String, String)> = env
        .private_attrs_like("srv1", "lsn_location")
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    assert_eq!(
        attrs.len(),
        1,
        "one private lsn_location attribute expected on srv1, got {attrs:?}; calls: {:#?}",
        env.calls()
    );
    let (name, value) = &attrs[0];
    let (tl, lsn) = value
        .split_once('#')
        .unwrap_or_else(|| panic!("{name}={value}: expected <timeline>#<lsn>"));
    assert!(
        tl.parse::<u32>().is_ok() && !lsn.is_empty(),
        "{name}={value}: expected <timeline>#<lsn>"
    );
    assert!(
        !env.fake.join("attrs/srv1").join(name).exists(),
        "lsn_location must be private (attrd only), not in the CIB"
    );

    env.notify(&inst, n.at("post", "promote")).expect(OCF_SUCCESS, "post-promote notify");
    assert!(
        env.private_attrs_like("srv1", "lsn_location").values().all(|v| v.is_empty()),
        "post-promote must clear lsn_location: {:?}",
        env.private_attrs_like("srv1", "lsn_location")
    );
}

// ---------------------------------------------------------------------------
// transitions over several nodes (one machine, the fake Pacemaker)

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// srv1 primary with standbys srv2, srv3 streaming from it.
fn three_nodes(env: &TestEnv) -> (Instance, Instance, Instance) {
    let p = env.init_instance("srv1");
    env.start(&p);
    let s2 = env.clone_standby(&p, "srv2");
    let s3 = env.clone_standby(&p, "srv3");
    env.start(&s2);
    env.start(&s3);
    env.wait_streaming(&p, &s2);
    env.wait_streaming(&p, &s3);
    (p, s2, s3)
}

/// The primary srv1 is lost while srv2 lags behind srv3, and Pacemaker
/// (from scores a monitor set earlier) picks srv2: its promote must refuse
/// and hand the promotion over to srv3, which then gets promoted.
pub fn failover_election_hands_over_to_most_advanced(v: u32) {
    let env = env_for!(v, "failover_election");
    let (p, s2, s3) = three_nodes(&env);
    env.agent_env(&p, "monitor", &[interval("15000")])
        .expect(OCF_RUNNING_PROMOTED, "primary monitor");

    // srv2 stops receiving, srv3 gets more WAL, then the primary dies
    env.stop(&s2, "fast");
    env.sql_ok(&p, "CREATE TABLE t AS SELECT generate_series(1, 10000) AS i");
    let lsn = env.current_lsn(&p);
    env.wait_received(&s3, &lsn);
    env.kill9(&p);
    fs::write(env.fake.join("offline"), "srv1\n").unwrap();
    env.start(&s2);
    assert!(env.in_recovery(&s2));
    let behind = env.sql_ok(
        &s2,
        &format!("SELECT pg_last_wal_receive_lsn() < '{lsn}' OR pg_last_wal_receive_lsn() IS NULL"),
    );
    assert_eq!(behind, "t", "srv2 must be behind srv3 for this test");

    let mut n = Notify::pre_promote(&["srv1", "srv2", "srv3"], &["srv2", "srv3"], "srv2");
    env.notify_all(&[&s2, &s3], &n);
    for node in ["srv2", "srv3"] {
        assert!(
            !env.private_attrs_like(node, "lsn_location").values().all(|v| v.is_empty()),
            "pre-promote published no position for {node}"
        );
    }
    let r = env.agent(&s2, "promote");
    expect_promotion_refused(&env, &r, &s2, "srv3", "promote of the lagging standby srv2");
    let score = |n: &str| env.score(n).and_then(|s| s.parse::<i64>().ok());
    assert!(
        score("srv3") > score("srv2"),
        "srv3 must now be preferred: srv2={:?} srv3={:?}",
        env.score("srv2"),
        env.score("srv3")
    );

    // Pacemaker's next transition promotes srv3
    n.promote = names(&["srv3"]);
    env.notify_all(&[&s2, &s3], &n);
    env.agent(&s3, "promote").expect(OCF_SUCCESS, "promote of the most advanced standby srv3");
    assert!(!env.in_recovery(&s3));
    assert_eq!(env.sql_ok(&s3, "SELECT count(*) FROM t"), "10000", "srv3 kept the last writes");
    env.notify_all(&[&s2, &s3], n.at("post", "promote"));
    for node in ["srv2", "srv3"] {
        assert!(
            env.private_attrs_like(node, "lsn_location").values().all(|v| v.is_empty()),
            "post-promote must clear {node}'s position"
        );
    }
}

/// The standby to promote cannot work out its own position in pre-promote
/// (its pg_waldump fails; its primary is gone, so it is not streaming): the
/// promote that follows refuses with that reason instead of promoting as
/// if it ran outside a transition, and without comparing a position left
/// by an earlier transition.
pub fn promote_refused_when_pre_promote_cannot_publish(v: u32) {
    use std::os::unix::fs::PermissionsExt;
    let env = env_for!(v, "pre_promote_fails");
    let (p, s) = two_nodes(&env);
    env.sql_ok(&p, "CREATE TABLE t AS SELECT generate_series(1, 1000) AS i");
    let n = Notify::pre_promote(&["srv1", "srv2"], &["srv2"], "srv2");
    // An earlier transition's position, left behind.
    env.notify_all(&[&s], &n);
    assert!(published_lsn(&env, "srv2", "lsn_location").is_some());
    env.kill9(&p);
    fs::write(env.fake.join("offline"), "srv1\n").unwrap();

    let bin = env.dir.join("bin-failing-waldump");
    fs::create_dir_all(&bin).unwrap();
    for e in fs::read_dir(&env.pg.bindir).unwrap().flatten() {
        std::os::unix::fs::symlink(e.path(), bin.join(e.file_name())).unwrap();
    }
    fs::remove_file(bin.join("pg_waldump")).unwrap();
    fs::write(
        bin.join("pg_waldump"),
        "#!/bin/sh\necho 'pg_waldump: error: disk on fire' >&2\nexit 1\n",
    )
    .unwrap();
    fs::set_permissions(bin.join("pg_waldump"), fs::Permissions::from_mode(0o755)).unwrap();
    let bindir = bin.display().to_string();
    let mut changes: Vec<(String, String)> = n.env();
    changes.push(("OCF_RESKEY_bindir".into(), bindir));
    let changes: Vec<(&str, Option<&str>)> =
        changes.iter().map(|(k, v)| (k.as_str(), Some(v.as_str()))).collect();
    env.agent_env(&s, "notify", &changes).expect(OCF_SUCCESS, "pre-promote (always succeeds)");
    assert_eq!(published_lsn(&env, "srv2", "lsn_location"), None, "the stale position is gone");

    let r = env.agent(&s, "promote");
    r.expect(OCF_ERR_GENERIC, "promote after a pre-promote that could not publish");
    assert!(
        r.exit_reasons()[0].contains("pre-promote could not publish this node's position"),
        "{}",
        r.describe()
    );
    assert!(env.in_recovery(&s), "srv2 must stay a standby");
    // The refusal was for that transition only: a working one promotes.
    env.notify_all(&[&s], &n);
    env.agent(&s, "promote").expect(OCF_SUCCESS, "promote after a working pre-promote");
}

/// Published `<timeline>#<lsn>` of `node`'s private attribute `name`.
fn published_lsn(env: &TestEnv, node: &str, name: &str) -> Option<String> {
    let v = env.private_values(node, name);
    v.first().map(|p| {
        p.split_once('#').unwrap_or_else(|| panic!("{name} of {node}: {p:?}")).1.to_string()
    })
}

/// The double failure seen in a cluster: the primary's node and the node
/// of its most advanced standby lose power; the lagging standby is the one
/// Pacemaker would promote. The node that comes back publishes the end of
/// the WAL on its disk at its probe (its instance crashed), and the
/// election counts it: the promotion of the laggard is refused, naming it,
/// until it runs a standby again, then handed over to it. Marked never to
/// be promoted, it is not chosen, and its WAL still stops the promotion.
pub fn stopped_node_with_newer_wal_stops_the_promotion(v: u32) {
    let env = env_for!(v, "wal_on_disk");
    let (p, s2, s3) = three_nodes(&env);
    env.stop(&s2, "fast");
    env.sql_ok(&p, "CREATE TABLE t AS SELECT generate_series(1, 10000) AS i");
    let lsn = env.current_lsn(&p);
    env.wait_received(&s3, &lsn);
    env.kill9(&p);
    env.stop(&s3, "immediate"); // power cut: a crashed standby
    fs::write(env.fake.join("offline"), "srv1\n").unwrap();
    env.start(&s2);

    // srv3 comes back: its probe publishes the end of its WAL on disk.
    let r = env.agent_env(&s3, "monitor", &[interval("0")]);
    assert_ne!(r.code, OCF_SUCCESS, "probe of a crashed standby\n{}", r.describe());
    let on_disk = published_lsn(&env, "srv3", "wal_on_disk")
        .unwrap_or_else(|| panic!("srv3's probe published no WAL end\n{}", r.describe()));
    assert_eq!(
        env.sql_ok(&s2, &format!("SELECT '{on_disk}'::pg_lsn >= '{lsn}'")),
        "t",
        "srv3's WAL on disk ({on_disk}) must reach what it received ({lsn})"
    );

    // Pacemaker promotes srv2 without starting srv3: refused, naming srv3.
    let mut n = Notify::pre_promote(&["srv1", "srv2", "srv3"], &["srv2"], "srv2");
    env.notify_all(&[&s2], &n);
    let r = env.agent(&s2, "promote");
    expect_promotion_refused(
        &env,
        &r,
        &s2,
        "election: srv3 holds the newest WAL",
        "promote of the laggard while srv3 holds more WAL",
    );

    // srv3 starts in the next transition; marked never to be promoted,
    // its WAL still counts.
    env.agent(&s3, "start").expect(OCF_SUCCESS, "start of srv3");
    assert_eq!(published_lsn(&env, "srv3", "wal_on_disk"), None, "start clears it");
    let never = env.fake.join("perm/srv3");
    fs::create_dir_all(&never).unwrap();
    fs::write(never.join("pgsqlms-never-promote"), "true").unwrap();
    n.active = names(&["srv2"]);
    n.start = names(&["srv3"]);
    n.unpromoted = names(&["srv2"]);
    env.notify_all(&[&s2, &s3], &n);
    let r = env.agent(&s2, "promote");
    r.expect(OCF_ERR_GENERIC, "promote of srv2 while srv3, never to be promoted, is ahead");
    assert!(
        r.exit_reasons()[0].contains("srv3") && r.exit_reasons()[0].contains("never"),
        "{}",
        r.describe()
    );

    // The operator lifts the mark: the promotion is handed over to srv3.
    fs::remove_file(never.join("pgsqlms-never-promote")).unwrap();
    env.notify_all(&[&s2, &s3], &n);
    let r = env.agent(&s2, "promote");
    r.expect(OCF_ERR_GENERIC, "promote of srv2 hands over");
    assert!(r.exit_reasons()[0].contains(":srv3 is more advanced"), "{}", r.describe());
    n.promote = names(&["srv3"]);
    env.notify_all(&[&s2, &s3], &n);
    env.agent(&s3, "promote").expect(OCF_SUCCESS, "promote of srv3");
    assert_eq!(env.sql_ok(&s3, "SELECT count(*) FROM t"), "10000", "no row lost");
}

/// Whole-cluster start from cleanly stopped instances: each probe
/// publishes the end of the WAL on its disk, and the most advanced node
/// known scores itself at once, so Pacemaker promotes it right after the
/// start. A node behind a published one does not; a node marked never to
/// be promoted never does.
pub fn probe_scores_the_most_advanced_at_cold_start(v: u32) {
    let env = env_for!(v, "probe_cold_start");
    let (p, s) = two_nodes(&env);
    env.stop(&s, "fast");
    env.sql_ok(&p, "CREATE TABLE t AS SELECT generate_series(1, 1000) AS i");
    env.stop(&p, "fast");
    let probe = |inst: &Instance| {
        env.agent_env(inst, "monitor", &[interval("0")])
            .expect(OCF_NOT_RUNNING, "probe of a stopped instance");
    };
    probe(&p);
    probe(&s);
    assert_eq!((env.score("srv1"), env.score("srv2")), (Some("1".to_string()), None));
    let lsn = |node: &str| -> u64 {
        let (hi, lo) = published_lsn(&env, node, "wal_on_disk")
            .expect("published")
            .split_once('/')
            .map(|(h, l)| (h.to_string(), l.to_string()))
            .unwrap();
        (u64::from_str_radix(&hi, 16).unwrap() << 32) | u64::from_str_radix(&lo, 16).unwrap()
    };
    let checkpoint = env.controldata(&p)["Latest checkpoint location"].clone();
    let (hi, lo) = checkpoint.split_once('/').unwrap();
    let checkpoint =
        (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap();
    assert!(lsn("srv1") > checkpoint, "the end of srv1's WAL is past its shutdown checkpoint");
    assert!(lsn("srv2") < checkpoint, "srv2 stopped before the last writes");

    // Marked never to be promoted: it publishes, and does not score itself.
    env.remove_score("srv1");
    let never = env.fake.join("perm/srv1");
    fs::create_dir_all(&never).unwrap();
    fs::write(never.join("pgsqlms-never-promote"), "true").unwrap();
    probe(&p);
    assert_eq!(env.score("srv1"), None);
}

/// The end of the WAL on disk a stopped standby publishes is exactly the
/// position it reported as replayed while running: a stopped node and a
/// running one holding the same WAL compare equal (neither is refused for
/// the other).
pub fn wal_on_disk_equals_the_replayed_position(v: u32) {
    let env = env_for!(v, "wal_on_disk_exact");
    let (p, s) = two_nodes(&env);
    env.sql_ok(&p, "CREATE TABLE t AS SELECT generate_series(1, 5000) AS i");
    let lsn = env.current_lsn(&p);
    env.wait_replayed(&s, &lsn);
    env.stop(&p, "fast"); // its shutdown checkpoint is the last record
    // replayed up to the end of what it received (the checkpoint included)
    let mut replayed = String::new();
    assert!(
        eventually(Duration::from_secs(30), || {
            replayed = env.sql_ok(
                &s,
                "SELECT pg_last_wal_replay_lsn() || ' ' || (pg_last_wal_replay_lsn() = pg_last_wal_receive_lsn())",
            );
            replayed.ends_with(" true")
        }),
        "replay did not catch up: {replayed}"
    );
    let replayed = replayed.split(' ').next().unwrap().to_string();
    env.stop(&s, "fast");
    env.agent_env(&s, "monitor", &[interval("0")]).expect(OCF_NOT_RUNNING, "probe");
    assert_eq!(published_lsn(&env, "srv2", "wal_on_disk"), Some(replayed));
}

/// A crashed primary's pg_wal holds segment files created ahead of use and
/// never written (all zeros). pg_waldump, left to pick the file it takes the
/// segment size from, may pick one of them and fail: the end of the WAL is
/// still found and published. Many zeroed files, so that one of them is
/// first in the directory's order whatever the file system's hashing.
pub fn wal_on_disk_found_despite_zeroed_segments(v: u32) {
    let env = env_for!(v, "wal_on_disk_zeroed");
    let inst = env.init_instance("srv1");
    env.start(&inst);
    env.sql_ok(&inst, "CREATE TABLE t AS SELECT generate_series(1, 1000) AS i");
    let committed = env.sql_ok(&inst, "SELECT pg_current_wal_flush_lsn()");
    env.kill9(&inst);
    let wal = inst.pgdata.join("pg_wal");
    for n in 0x40..0x60 {
        let f = wal.join(format!("0000000100000000000000{n:02X}"));
        fs::File::create(&f).and_then(|h| h.set_len(16 << 20)).unwrap();
        chown_pg(&f);
    }
    env.agent_env(&inst, "monitor", &[interval("0")])
        .expect(OCF_FAILED_PROMOTED, "probe of the crashed primary");
    let published = published_lsn(&env, "srv1", "wal_on_disk").expect("the end of its WAL");
    let lsn = |s: &str| {
        let (hi, lo) = s.split_once('/').unwrap();
        (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
    };
    assert!(lsn(&published) >= lsn(&committed), "published {published}, flushed {committed}");
}

/// A standby restarted while its primary is gone holds received WAL it has
/// not replayed (here held back by recovery_min_apply_delay); its receive
/// position is gone with the restart. Pre-promote publishes the end of the
/// WAL on its disk, not the replayed position.
pub fn restarted_standby_publishes_its_wal_on_disk(v: u32) {
    let env = env_for!(v, "restarted_standby");
    let (p, s) = two_nodes(&env);
    append(&s.conf(), "recovery_min_apply_delay = '1h'\n");
    env.stop(&s, "fast");
    env.start(&s);
    env.wait_streaming(&p, &s);
    env.sql_ok(&p, "CREATE TABLE t AS SELECT generate_series(1, 1000) AS i");
    let lsn = env.current_lsn(&p);
    env.wait_received(&s, &lsn);
    env.stop(&p, "immediate");
    env.stop(&s, "fast");
    env.start(&s);
    let replayed = env.sql_ok(&s, "SELECT pg_last_wal_replay_lsn()");
    assert_eq!(
        env.sql_ok(&s, &format!("SELECT '{replayed}'::pg_lsn < '{lsn}'")),
        "t",
        "the apply delay must hold replay back for this test"
    );
    let n = Notify::pre_promote(&["srv1", "srv2"], &["srv2"], "srv2");
    env.notify(&s, &n).expect(OCF_SUCCESS, "pre-promote");
    let published = published_lsn(&env, "srv2", "lsn_location").expect("a position");
    assert_eq!(
        env.sql_ok(&s, &format!("SELECT '{published}'::pg_lsn >= '{lsn}'")),
        "t",
        "published {published}, received {lsn}, replayed {replayed}"
    );
}

/// The notifications and actions of a switchover srv1 -> srv2.
fn switchover_transition(env: &TestEnv, p: &Instance, s: &Instance) -> AgentRun {
    switchover_transition_with(env, p, s, false)
}

/// `attrd_fails`: attrd_updater fails (exit 102, as when attrd is not
/// reachable) during the pre-promote notifications only.
fn switchover_transition_with(
    env: &TestEnv,
    p: &Instance,
    s: &Instance,
    attrd_fails: bool,
) -> AgentRun {
    let mut n = Notify::from_roles("pre", "demote", &["srv1", "srv2"], &["srv1"], &["srv2"]);
    n.demote = names(&["srv1"]);
    n.promote = names(&["srv2"]);
    env.notify_all(&[p, s], &n);
    env.agent(p, "demote").expect(OCF_SUCCESS, "demote of srv1");
    env.notify_all(&[p, s], n.at("post", "demote"));
    if attrd_fails {
        env.fail_tool("attrd_updater", Some(102));
    }
    env.notify_all(&[p, s], n.at("pre", "promote"));
    env.fail_tool("attrd_updater", None);
    let r = env.agent(s, "promote");
    if r.code == OCF_SUCCESS {
        env.notify_all(&[p, s], n.at("post", "promote"));
    }
    r
}

/// Controlled switchover: srv2 received srv1's shutdown checkpoint, gets
/// promoted, and srv1 follows it as a standby.
pub fn switchover(v: u32) {
    let env = env_for!(v, "switchover");
    let (p, s) = two_nodes(&env);
    // srv1 follows srv2 once demoted (the "virtual IP" moves to srv2)
    env.set_upstream(&p, s.port);
    env.sql_ok(&p, "CREATE TABLE t AS SELECT generate_series(1, 100) AS i");

    switchover_transition(&env, &p, &s).expect(OCF_SUCCESS, "promote of srv2 in a switchover");
    assert!(!env.in_recovery(&s), "srv2 is the primary");
    assert!(env.in_recovery(&p), "srv1 is a standby");
    env.wait_streaming(&s, &p);
    assert_eq!(env.sql_ok(&s, "SELECT count(*) FROM t"), "100");
    env.agent_env(&s, "monitor", &[interval("15000")])
        .expect(OCF_RUNNING_PROMOTED, "monitor of the new primary");
    assert_eq!(env.score("srv2").as_deref(), Some("1001"));
    assert_eq!(env.score("srv1").as_deref(), Some("1000"));
    env.agent_env(&p, "monitor", &[interval("16000")])
        .expect(OCF_SUCCESS, "monitor of the old primary");
}

/// `r`, a promote of `standby`, failed with a reason that says `reason`,
/// and `standby` is still a standby.
#[track_caller]
fn expect_promotion_refused(
    env: &TestEnv,
    r: &AgentRun,
    standby: &Instance,
    reason: &str,
    what: &str,
) {
    r.expect(OCF_ERR_GENERIC, what);
    assert!(
        r.exit_reasons()[0].contains(reason),
        "{what}: the exit reason must say {reason:?}\n{}",
        r.describe()
    );
    assert!(env.in_recovery(standby), "{what}: {} must stay a standby", standby.node);
}

/// Switchover to a standby that did not receive srv1's shutdown checkpoint
/// (its replication was cut before the demote): the promotion is refused.
pub fn switchover_cancelled_without_shutdown_checkpoint(v: u32) {
    switchover_after_cut(v, "switchover_cancelled", Before::Nothing);
}

/// What happens besides the cut of srv2's replication, before the
/// switchover.
enum Before {
    Nothing,
    /// srv1 restarts cleanly before the cut: srv2 received a shutdown
    /// checkpoint, but not the one of the demote.
    CleanRestart,
    /// attrd cannot take the cancel flag in pre-promote.
    AttrdFailsInPrePromote,
}

/// A switchover from srv1 to srv2 after srv2's replication was cut: the
/// promotion is refused, srv2 stays a standby.
fn switchover_after_cut(v: u32, name: &str, before: Before) {
    let env = env_for!(v, name);
    let (p, s) = two_nodes(&env);
    env.sql_ok(&p, "CREATE TABLE t AS SELECT generate_series(1, 100) AS i");
    if let Before::CleanRestart = before {
        env.stop(&p, "fast");
        env.start(&p);
        env.wait_streaming(&p, &s);
    }
    cut_replication(&env, &p, &s);
    let attrd_fails = matches!(before, Before::AttrdFailsInPrePromote);
    let r = switchover_transition_with(&env, &p, &s, attrd_fails);
    let what = format!("{name}: promote of srv2 after its replication was cut");
    expect_promotion_refused(&env, &r, &s, "switchover cancelled", &what);
}

/// srv2 with its replication cut before a switchover from srv1: it cannot
/// receive srv1's shutdown checkpoint.
fn cut_replication(env: &TestEnv, p: &Instance, s: &Instance) {
    let lsn = env.current_lsn(p);
    env.wait_received(s, &lsn);
    env.sql_ok(
        s,
        &format!(
            "ALTER SYSTEM SET primary_conninfo = 'host={} port={} application_name=srv2'",
            env.sock.display(),
            unused_port(s.port)
        ),
    );
    env.sql_ok(s, "SELECT pg_reload_conf()");
    env.wait_sql(
        p,
        "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'srv2'",
        "0",
    );
}

/// srv1 restarted once (a clean shutdown: a shutdown checkpoint on the same
/// timeline, which srv2 received), then srv2's replication was cut before
/// the switchover: srv2 has a shutdown checkpoint in its WAL, but not the
/// one of the demote. The promotion is refused.
pub fn switchover_refused_with_an_earlier_shutdown_checkpoint(v: u32) {
    switchover_after_cut(v, "switchover_earlier_checkpoint", Before::CleanRestart);
}

/// The switchover check fails while attrd cannot take the cancel flag: the
/// promotion is still refused (the flag is kept on the node too).
pub fn switchover_cancelled_when_attrd_fails_in_pre_promote(v: u32) {
    switchover_after_cut(v, "switchover_cancel_attrd_fails", Before::AttrdFailsInPrePromote);
}

/// attrd cannot answer during a promote: the switchover flag and the
/// election data cannot be read, and the promotion stops with a reason
/// instead of taking failures for "no attribute".
pub fn promote_refused_when_attrd_cannot_answer(v: u32) {
    let env = env_for!(v, "promote_attrd_fails");
    let (_p, s) = two_nodes(&env);
    env.fail_tool("attrd_updater", Some(102));
    let r = env.agent(&s, "promote");
    env.fail_tool("attrd_updater", None);
    expect_promotion_refused(&env, &r, &s, "attrd_updater", "promote while attrd_updater fails");
}

// ---------------------------------------------------------------------------
// former primaries rejoining (src/actions/rejoin.rs, src/divergence.rs)

/// srv1 primary with srv2 streaming from it.
fn two_nodes(env: &TestEnv) -> (Instance, Instance) {
    let p = env.init_instance("srv1");
    env.start(&p);
    let s = env.clone_standby(&p, "srv2");
    env.start(&s);
    env.wait_streaming(&p, &s);
    (p, s)
}

/// Polls `f` every 100 ms for at most `timeout`; false when it never held.
fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t0 = std::time::Instant::now();
    loop {
        if f() {
            return true;
        }
        if t0.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Failover with WAL the new primary never got: srv2 stopped, srv1 wrote
/// more, crashed, and srv2 was promoted (timeline 2). srv1 started as a
/// standby of srv2 would never replicate: its start must fail with
/// instructions (pg_rewind), change nothing in its data directory and leave
/// it stopped.
pub fn former_primary_diverged_refuses_start(v: u32) {
    let env = env_for!(v, "former_primary_diverged");
    diverged_former_primary_start_is_refused(&env, false);
}

/// The same with primary_conninfo as a URI: the check must not append
/// keywords to it (libpq rejects that) nor skip itself.
pub fn former_primary_diverged_refuses_start_with_uri_conninfo(v: u32) {
    let env = env_for!(v, "former_primary_diverged_uri");
    diverged_former_primary_start_is_refused(&env, true);
}

/// A former primary whose primary_conninfo leads nowhere while the CIB
/// shows srv2 as the primary: the divergence check cannot run, so the start
/// stops with a reason instead of starting unchecked.
pub fn former_primary_refused_when_the_primary_cannot_be_asked(v: u32) {
    let env = env_for!(v, "former_primary_unreachable");
    let (p, s) = two_nodes(&env);
    env.kill9(&p);
    env.promote_by_hand(&s);
    env.set_score("srv2", "1001");
    env.set_upstream(&p, unused_port(s.port));
    let r = env.agent_env(&p, "start", &[("OCF_RESKEY_CRM_meta_timeout", Some("20000"))]);
    r.expect(OCF_ERR_GENERIC, "start of a former primary that cannot ask the primary");
    assert!(
        r.exit_reasons()[0].contains("srv2 is the primary but not reachable"),
        "{}",
        r.describe()
    );
    assert!(!env.is_running(&p), "the refused start left srv1 running");
    // Without a primary anywhere (whole cluster start), it starts.
    env.set_score("srv2", "1000");
    env.agent(&p, "start").expect(OCF_SUCCESS, "start of a former primary with no primary around");
}

/// pg_waldump hangs while a crashed former primary is checked (a stand-in
/// that sleeps in a child of its own, in a bindir otherwise real): the check
/// gives up within its budget, not at the end of the start's timeout, with
/// a reason, and nothing of the hung command is left running.
pub fn former_primary_check_bounds_a_hung_waldump(v: u32) {
    use std::os::unix::fs::PermissionsExt;
    let env = env_for!(v, "former_primary_hung_waldump");
    let (p, s) = two_nodes(&env);
    env.kill9(&p);
    env.promote_by_hand(&s);
    env.set_upstream(&p, s.port);
    let bin = env.dir.join("bin-hung-waldump");
    std::fs::create_dir_all(&bin).unwrap();
    for e in std::fs::read_dir(&env.pg.bindir).unwrap().flatten() {
        std::os::unix::fs::symlink(e.path(), bin.join(e.file_name())).unwrap();
    }
    let pidfile = env.dir.join("hung-waldump.pid");
    std::fs::remove_file(bin.join("pg_waldump")).unwrap();
    std::fs::write(
        bin.join("pg_waldump"),
        format!("#!/bin/sh\nsleep 600 &\necho $! > {}\nwait\n", pidfile.display()),
    )
    .unwrap();
    std::fs::set_permissions(bin.join("pg_waldump"), std::fs::Permissions::from_mode(0o755))
        .unwrap();
    std::fs::set_permissions(&env.dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let bindir = bin.display().to_string();
    let t0 = std::time::Instant::now();
    let r = env.agent_env(
        &p,
        "start",
        &[("OCF_RESKEY_bindir", Some(&bindir)), ("OCF_RESKEY_CRM_meta_timeout", Some("30000"))],
    );
    let wall = t0.elapsed();
    r.expect(OCF_ERR_GENERIC, "start of a former primary whose pg_waldump hangs");
    assert!(
        r.exit_reasons()[0].contains("reading this instance's WAL"),
        "the reason must say what did not finish\n{}",
        r.describe()
    );
    assert!(wall < Duration::from_secs(15), "the check took {wall:?} of 30 s\n{}", r.describe());
    let pid = std::fs::read_to_string(&pidfile).expect("the stand-in ran").trim().to_string();
    reap_orphans();
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        state.is_empty()
            || state.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z')),
        "the hung command's child {pid} still runs: {state}"
    );
    assert!(!env.is_running(&p), "the refused start left srv1 running");
}

/// srv1 (primary `p`) and its standby `s` share table t; `s` stops, `p`
/// commits locally what `s` never receives (table lost) and crashes, and
/// `s` is promoted: `p`'s WAL has diverged from the new primary's history.
fn diverge(env: &TestEnv, p: &Instance, s: &Instance) {
    env.sql_ok(p, "CREATE TABLE t AS SELECT generate_series(1, 100) AS i");
    let lsn = env.current_lsn(p);
    env.wait_received(s, &lsn);
    env.stop(s, "fast");
    env.sql_ok(
        p,
        "SET synchronous_commit = local; CREATE TABLE lost AS SELECT generate_series(1, 1000) AS i",
    );
    env.kill9(p);
    env.start(s);
    env.promote_by_hand(s);
}

fn diverged_former_primary_start_is_refused(env: &TestEnv, uri: bool) {
    let (p, s) = two_nodes(env);
    diverge(env, &p, &s);
    assert_eq!(
        env.sql_ok(&s, "SELECT count(*) FROM pg_class WHERE relname = 'lost'"),
        "0",
        "srv2 must not have srv1's last writes"
    );
    env.sql_ok(&s, "CHECKPOINT");
    assert_eq!(
        env.controldata(&s).get("Latest checkpoint's TimeLineID").map(String::as_str),
        Some("2"),
        "srv2 on timeline 2"
    );
    assert_eq!(env.cluster_state(&p), "in production", "srv1 crashed as a primary");

    if uri {
        env.set_upstream_uri(&p, s.port);
    } else {
        env.set_upstream(&p, s.port);
    }
    let before = snapshot(&p.pgdata);
    let r = env.agent(&p, "start");
    r.expect(OCF_ERR_GENERIC, "start of a former primary that diverged");
    assert!(
        r.exit_reasons()[0].contains("pg_rewind"),
        "the exit reason must tell to run pg_rewind\n{}",
        r.describe()
    );
    assert_same_snapshot(
        &before,
        &snapshot(&p.pgdata),
        "refused start of a diverged former primary",
    );
    assert!(!env.is_running(&p), "the refused start left srv1 running");
    assert_no_process_under(&p.pgdata, Duration::ZERO, "processes left in srv1's data directory");
    assert!(!p.standby_signal().exists(), "the refused start wrote standby.signal");
}

/// The former primary `p` (srv1) pointed at the new primary `s` (srv2) and
/// started by the agent: the start (`what`) must succeed after checking
/// `p`'s WAL against `s`'s history (timeline 2), and leave `p` a standby.
#[track_caller]
fn start_following(env: &TestEnv, p: &Instance, s: &Instance, what: &str) {
    env.set_upstream(p, s.port);
    let r = env.agent(p, "start");
    r.expect(OCF_SUCCESS, what);
    assert!(
        r.log.contains("can follow the primary (timeline 2)"),
        "the start must have checked srv1's WAL against srv2's history\n{}",
        r.describe()
    );
    assert!(env.in_recovery(p), "srv1 must be a standby");
}

/// Controlled switchover done by hand: srv1 stopped cleanly by the agent
/// while srv2 streams (srv2 gets the shutdown checkpoint), srv2 promoted.
/// srv1's WAL is part of srv2's history: its start succeeds and it streams
/// from srv2.
pub fn former_primary_after_clean_stop_rejoins(v: u32) {
    let env = env_for!(v, "former_primary_rejoins");
    let (p, s) = two_nodes(&env);
    env.sql_ok(&p, "CREATE TABLE t AS SELECT generate_series(1, 100) AS i");
    env.agent(&p, "stop").expect(OCF_SUCCESS, "stop of the primary");
    assert_eq!(env.cluster_state(&p), "shut down");
    let ckpt =
        env.controldata(&p).remove("Latest checkpoint location").expect("checkpoint location");
    env.wait_sql(&s, &format!("SELECT pg_last_wal_receive_lsn() > '{ckpt}'"), "t");
    env.promote_by_hand(&s);
    env.sql_ok(&s, "INSERT INTO t SELECT generate_series(101, 150)");

    start_following(&env, &p, &s, "start of a former primary whose WAL the new primary has");
    let q = "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'srv1' AND state = 'streaming'";
    assert!(
        eventually(Duration::from_secs(10), || env.sql(&s, q).as_deref() == Ok("1")),
        "srv1 does not stream from srv2 10 s after its start\n--- srv1 log\n{}",
        p.server_log()
    );
    env.wait_sql(&p, "SELECT count(*) FROM t", "150");
    env.agent_env(&p, "monitor", &[interval("16000")])
        .expect(OCF_SUCCESS, "monitor of srv1 as a standby");
}

/// Failover without loss: srv1 crashed after srv2 received all its WAL, srv2
/// was promoted. srv1's WAL is part of srv2's history (its last record
/// precedes the timeline switch): its start must not be refused, and it
/// streams from srv2.
pub fn former_primary_crashed_without_lost_wal_rejoins(v: u32) {
    let env = env_for!(v, "former_primary_crashed_rejoins");
    let (p, s) = two_nodes(&env);
    env.sql_ok(&p, "CREATE TABLE t AS SELECT generate_series(1, 100) AS i");
    env.wait_sql(&p, "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'srv2' AND flush_lsn = pg_current_wal_lsn()", "1");
    env.kill9(&p);
    assert_eq!(env.cluster_state(&p), "in production", "srv1 crashed as a primary");
    env.promote_by_hand(&s);
    env.sql_ok(&s, "INSERT INTO t SELECT generate_series(101, 150)");

    start_following(
        &env,
        &p,
        &s,
        "start of a crashed former primary whose WAL the new primary has",
    );
    env.wait_streaming(&s, &p);
    env.wait_sql(&p, "SELECT count(*) FROM t", "150");
}

// ---------------------------------------------------------------------------
// crashed instances recovered in place

/// kill -9 of a streaming standby: the probe reports the failure, the stop
/// succeeds without touching anything (it is stopped already), the start
/// brings it back streaming.
pub fn crashed_standby_stop_and_start(v: u32) {
    let env = env_for!(v, "crashed_standby_stop_start");
    let (p, s) = two_nodes(&env);
    env.kill9(&s);
    env.agent(&s, "monitor").expect(OCF_ERR_GENERIC, "probe of a crashed standby");
    let before = snapshot(&s.pgdata);
    env.agent(&s, "stop").expect(OCF_SUCCESS, "stop of a crashed standby");
    assert!(!env.is_running(&s), "the stop of a crashed standby started it");
    assert_no_process_under(
        &s.pgdata,
        Duration::ZERO,
        "processes in srv2's data directory after the stop",
    );
    assert_same_snapshot(&before, &snapshot(&s.pgdata), "stop of a crashed standby");
    env.agent(&s, "start").expect(OCF_SUCCESS, "start of a crashed standby");
    assert!(env.in_recovery(&s), "srv2 must be a standby");
    env.sql_ok(&p, "CREATE TABLE t AS SELECT generate_series(1, 100) AS i");
    env.wait_streaming(&p, &s);
    env.wait_sql(&s, "SELECT count(*) FROM t", "100");
    env.agent_env(&s, "monitor", &[interval("16000")])
        .expect(OCF_SUCCESS, "monitor after the start");
}

/// The transition Pacemaker runs after a standby's monitor failed (kill -9):
/// stop and start on the same node, with notifications. pre-stop runs the
/// standby's crash recovery so the stop that follows is a clean one.
pub fn crashed_standby_recovered_in_place(v: u32) {
    let env = env_for!(v, "crashed_standby_in_place");
    let (p, s) = two_nodes(&env);
    env.sql_ok(&p, "CREATE TABLE t AS SELECT generate_series(1, 100) AS i");
    let lsn = env.current_lsn(&p);
    env.wait_replayed(&s, &lsn);
    env.kill9(&s);
    env.agent_env(&s, "monitor", &[interval("16000")])
        .expect(OCF_ERR_GENERIC, "monitor of a crashed standby");

    let mut n = Notify::from_roles("pre", "stop", &["srv1", "srv2"], &["srv1"], &["srv2"]);
    n.stop = names(&["srv2"]);
    n.start = names(&["srv2"]);
    let pm_pid = p.postmaster_pid();
    env.notify_all(&[&p, &s], &n);
    assert_eq!(p.postmaster_pid(), pm_pid, "pre-stop changed nothing on the primary");
    assert!(
        env.is_running(&s),
        "pre-stop of a crashed standby recovered in place must start it (crash recovery)"
    );
    assert!(env.in_recovery(&s), "pre-stop must start it as a standby");

    env.agent(&s, "stop").expect(OCF_SUCCESS, "stop");
    assert!(!env.is_running(&s));
    assert_eq!(
        env.cluster_state(&s),
        "shut down in recovery",
        "the stop after pre-stop must be a clean one"
    );
    env.agent(&s, "monitor").expect(OCF_NOT_RUNNING, "probe after the stop: cleanly stopped");
    env.notify_all(&[&p], n.at("post", "stop"));
    env.notify_all(&[&p], n.at("pre", "start"));
    env.agent(&s, "start").expect(OCF_SUCCESS, "start");
    env.notify_all(&[&p, &s], n.at("post", "start"));
    env.wait_streaming(&p, &s);
    env.sql_ok(&p, "INSERT INTO t SELECT generate_series(101, 110)");
    env.wait_sql(&s, "SELECT count(*) FROM t", "110");
    env.agent_env(&s, "monitor", &[interval("16000")])
        .expect(OCF_SUCCESS, "monitor after the recovery");
}

/// The transition Pacemaker runs after the primary's monitor failed
/// (kill -9), recovering it on the same node: demote, stop, start, promote,
/// with notifications. pre-demote runs its crash recovery (as a primary: no
/// other exists), the promote skips the election, and no committed row is
/// lost.
pub fn crashed_primary_recovered_in_place(v: u32) {
    let env = env_for!(v, "crashed_primary_in_place");
    let (p, s) = two_nodes(&env);
    env.sql_ok(&p, "CREATE TABLE t (i int)");
    for i in 0..10 {
        env.sql_ok(
            &p,
            &format!(
                "SET synchronous_commit = local; INSERT INTO t SELECT generate_series({}, {})",
                i * 100 + 1,
                i * 100 + 100
            ),
        );
    }
    env.kill9(&p);
    env.agent(&p, "monitor").expect(OCF_FAILED_PROMOTED, "probe of a crashed primary");

    let mut n = Notify::from_roles("pre", "demote", &["srv1", "srv2"], &["srv1"], &["srv2"]);
    n.demote = names(&["srv1"]);
    n.stop = names(&["srv1"]);
    n.start = names(&["srv1"]);
    n.promote = names(&["srv1"]);
    let log_before = p.server_log().len();
    env.notify_all(&[&p, &s], &n);
    assert!(
        env.is_running(&p),
        "pre-demote of a primary recovered in place must run its crash recovery"
    );
    assert!(!env.in_recovery(&p), "the crash recovery runs as a primary");
    assert!(
        p.server_log()[log_before..].contains("not properly shut down"),
        "srv1 did not run a crash recovery:\n{}",
        &p.server_log()[log_before..]
    );
    assert_eq!(env.sql_ok(&p, "SELECT count(*) FROM t"), "1000");

    env.agent(&p, "demote").expect(OCF_SUCCESS, "demote");
    assert!(env.in_recovery(&p), "demote leaves a standby");
    env.notify_all(&[&p, &s], n.at("post", "demote"));
    env.notify_all(&[&p, &s], n.at("pre", "stop"));
    env.agent(&p, "stop").expect(OCF_SUCCESS, "stop");
    assert!(!env.is_running(&p));
    env.notify_all(&[&s], n.at("post", "stop"));
    env.notify_all(&[&s], n.at("pre", "start"));
    env.agent(&p, "start").expect(OCF_SUCCESS, "start");
    assert!(env.in_recovery(&p), "start leaves a standby");
    env.notify_all(&[&p, &s], n.at("post", "start"));

    env.notify_all(&[&p, &s], n.at("pre", "promote"));
    assert_eq!(
        env.private_values("srv1", "recover_primary"),
        vec!["1".to_string()],
        "pre-promote must flag srv1's recovery in place"
    );
    for node in ["srv1", "srv2"] {
        assert!(
            env.private_values(node, "lsn_location").is_empty(),
            "no election: {node} must publish no position"
        );
    }
    let r = env.agent(&p, "promote");
    r.expect(OCF_SUCCESS, "promote of the primary recovered in place");
    assert!(r.log.contains("no election"), "the promote must skip the election\n{}", r.describe());
    assert!(!env.in_recovery(&p), "srv1 is the primary again");
    env.notify_all(&[&p, &s], n.at("post", "promote"));
    assert!(
        env.private_values("srv1", "recover_primary").is_empty(),
        "post-promote must clear recover_primary"
    );

    env.agent_env(&p, "monitor", &[interval("15000")])
        .expect(OCF_RUNNING_PROMOTED, "monitor of the recovered primary");
    assert_eq!(
        env.sql_ok(&p, "SELECT count(*) FROM t"),
        "1000",
        "rows committed before the crash were lost"
    );
    env.sql_ok(&p, "INSERT INTO t VALUES (1001)");
    env.wait_streaming(&p, &s);
    env.wait_sql(&s, "SELECT count(*) FROM t", "1001");
}

// ---------------------------------------------------------------------------
// whole-cluster start (src/actions/monitor.rs, bootstrap_score)

/// A recurring monitor of the standby `s` (timeout 10 s) that must
/// succeed (`what`).
#[track_caller]
fn recurring_standby_monitor(env: &TestEnv, s: &Instance, what: &str) -> AgentRun {
    let r = env.agent_env(
        s,
        "monitor",
        &[interval("16000"), ("OCF_RESKEY_CRM_meta_timeout", Some("10000"))],
    );
    r.expect(OCF_SUCCESS, what);
    r
}

/// No primary anywhere and no promotion score in the cluster (every node
/// rebooted): a standby's monitor publishes its position and, when no
/// published position is ahead of it, gives itself score 1 so Pacemaker
/// promotes someone. Once any node has a score, it does nothing.
pub fn standby_monitor_bootstraps_score_without_primary(v: u32) {
    let env = env_for!(v, "bootstrap_score");
    let (p, s) = two_nodes(&env);
    env.sql_ok(&p, "CREATE TABLE t AS SELECT generate_series(1, 100) AS i");
    env.stop(&p, "fast");
    env.wait_sql(&s, "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'", "0");
    env.add_node("srv3"); // a standby elsewhere, ahead of srv2
    env.set_private("srv3", "lsn_location", "1#FF/0");
    let scores = |env: &TestEnv| -> Vec<Option<String>> {
        ["srv1", "srv2", "srv3"].iter().map(|n| env.score(n)).collect()
    };

    let r = recurring_standby_monitor(&env, &s, "monitor of a standby without primary");
    assert_eq!(
        scores(&env),
        vec![None, None, None],
        "srv3 published a better position: no score for srv2\n{}",
        r.describe()
    );
    let published = env.private_values("srv2", "lsn_location");
    assert_eq!(
        published.len(),
        1,
        "srv2 must publish its position: {published:?}\n{}",
        r.describe()
    );
    let (tl, lsn) = published[0]
        .split_once('#')
        .unwrap_or_else(|| panic!("{published:?}: expected <timeline>#<lsn>"));
    assert_eq!(tl, "1", "{published:?}");
    assert_eq!(
        env.sql_ok(&s, &format!("SELECT '{lsn}'::pg_lsn >= pg_last_wal_replay_lsn()")),
        "t",
        "srv2's published position {lsn} is behind what it replayed"
    );

    // nobody ahead of srv2 any more
    env.set_private("srv3", "lsn_location", "");
    let r =
        recurring_standby_monitor(&env, &s, "monitor of the most advanced standby without primary");
    assert_eq!(
        scores(&env),
        vec![None, Some("1".to_string()), None],
        "srv2 must score itself 1\n{}",
        r.describe()
    );
    assert_eq!(env.private_values("srv2", "lsn_location").len(), 1);

    // Stale scores only (the primary died before it scored the standbys
    // that had just connected): srv2 raises itself all the same.
    env.remove_score("srv2");
    env.set_private("srv2", "lsn_location", "");
    env.set_score("srv2", "-1000");
    env.set_score("srv3", "-1000");
    let r =
        recurring_standby_monitor(&env, &s, "monitor of a standby without primary, stale scores");
    assert_eq!(
        scores(&env),
        vec![None, Some("1".to_string()), Some("-1000".to_string())],
        "srv2 must raise itself over stale scores\n{}",
        r.describe()
    );

    // Flagged beyond maxlag by the last primary monitor: never.
    env.set_score("srv2", "-100");
    let r = recurring_standby_monitor(&env, &s, "monitor of a standby flagged beyond maxlag");
    assert_eq!(scores(&env)[1].as_deref(), Some("-100"), "{}", r.describe());

    // A positive score exists somewhere: the monitor only reads the CIB.
    env.set_score("srv2", "-1000");
    env.set_private("srv2", "lsn_location", "");
    env.set_score("srv3", "990");
    env.clear_calls();
    let r = recurring_standby_monitor(
        &env,
        &s,
        "monitor of a standby without primary, a positive score present",
    );
    assert_eq!(
        scores(&env),
        vec![None, Some("-1000".to_string()), Some("990".to_string())],
        "{}",
        r.describe()
    );
    assert_eq!(
        env.calls(),
        vec!["cibadmin --query".to_string()],
        "only the CIB is read\n{}",
        r.describe()
    );
    assert!(env.private_values("srv2", "lsn_location").is_empty());
}

// ---------------------------------------------------------------------------
// maxlag (src/scores.rs, src/election.rs)

/// srv3 lags more than maxlag: the primary's monitor flags it -100. After the
/// primary is lost, the election never promotes another node when the most
/// advanced one carries that flag (it refuses), and promotes the most
/// advanced one when it is not flagged.
pub fn maxlag_flags_standby_and_election_honours_it(v: u32) {
    let env = env_for!(v, "maxlag");
    let (p, s2, s3) = three_nodes(&env);
    env.wait_sql(
        &p,
        "SELECT count(*) FROM pg_stat_replication WHERE application_name IN ('srv2', 'srv3') AND write_lsn = pg_current_wal_lsn()",
        "2",
    );
    let maxlag = [
        ("OCF_RESKEY_maxlag", Some("1024")),
        interval("15000"),
        ("OCF_RESKEY_CRM_meta_timeout", Some("10000")),
    ];
    let r = env.agent_env(&p, "monitor", &maxlag);
    r.expect(OCF_RUNNING_PROMOTED, "monitor of the primary, standbys caught up");
    assert_eq!(
        (env.score("srv2").as_deref(), env.score("srv3").as_deref()),
        (Some("1000"), Some("1000")),
        "{}",
        r.describe()
    );

    env.pause_walreceiver(&s3);
    env.sql_ok(&p, "CREATE TABLE t AS SELECT generate_series(1, 10000) AS i");
    let lsn = env.current_lsn(&p);
    env.wait_received(&s2, &lsn);
    env.wait_written(&p, "srv2", &lsn);
    assert_eq!(
        env.sql_ok(&p, "SELECT pg_current_wal_lsn() - write_lsn > 1024 AND state = 'streaming' FROM pg_stat_replication WHERE application_name = 'srv3'"),
        "t",
        "srv3 must be connected and more than 1024 bytes behind"
    );
    let r = env.agent_env(&p, "monitor", &maxlag);
    r.expect(OCF_RUNNING_PROMOTED, "monitor of the primary, srv3 beyond maxlag");
    let scores = |env: &TestEnv| -> Vec<Option<String>> {
        ["srv1", "srv2", "srv3"].iter().map(|n| env.score(n)).collect()
    };
    let want = |v: &[&str]| v.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>();
    assert_eq!(scores(&env), want(&["1001", "1000", "-100"]), "{}", r.describe());
    assert!(r.log.contains("maxlag"), "the -100 is logged with its reason\n{}", r.describe());

    // the primary is lost; srv3 stays frozen where it was
    env.kill9(&p);
    fs::write(env.fake.join("offline"), "srv1\n").unwrap();
    let mut n = Notify::pre_promote(&["srv1", "srv2", "srv3"], &["srv2", "srv3"], "srv2");
    env.notify_all(&[&s2, &s3], &n);
    let pos = |node: &str| {
        let v = env.private_values(node, "lsn_location");
        assert_eq!(v.len(), 1, "pre-promote published no position for {node}: {v:?}");
        v[0].clone()
    };
    let (p2, p3) = (pos("srv2"), pos("srv3"));
    let lsn_of = |attr: &str| attr.split_once('#').map(|(_, l)| l.to_string()).unwrap();
    assert_eq!(
        env.sql_ok(&s2, &format!("SELECT '{}'::pg_lsn > '{}'::pg_lsn", lsn_of(&p2), lsn_of(&p3))),
        "t",
        "srv2 ({p2}) must be ahead of the frozen srv3 ({p3})"
    );

    // as if srv3 had received more than srv2 before being flagged: the
    // most advanced candidate is beyond maxlag, no promotion is safe
    let ahead =
        format!("1#{}", env.sql_ok(&s2, &format!("SELECT '{}'::pg_lsn + 1048576", lsn_of(&p2))));
    env.set_private("srv3", "lsn_location", &ahead);
    let r = env.agent_env(&s2, "promote", &[("OCF_RESKEY_maxlag", Some("1024"))]);
    expect_promotion_refused(
        &env,
        &r,
        &s2,
        "maxlag",
        "promote of srv2 while the most advanced srv3 is beyond maxlag",
    );
    assert!(r.exit_reasons()[0].contains("srv3"), "{}", r.describe());
    assert_eq!(
        scores(&env),
        want(&["1001", "1000", "-100"]),
        "a refused election hands nothing over\n{}",
        r.describe()
    );

    // real positions again: srv2 is the most advanced, srv3 flagged behind it
    env.notify_all(&[&s2, &s3], &n);
    assert_eq!(pos("srv3"), p3);
    let r = env.agent_env(&s2, "promote", &[("OCF_RESKEY_maxlag", Some("1024"))]);
    r.expect(OCF_SUCCESS, "promote of the most advanced standby srv2");
    assert!(
        r.log.contains("most advanced"),
        "the promote must have run the election\n{}",
        r.describe()
    );
    assert!(!env.in_recovery(&s2), "srv2 is the primary");
    assert_eq!(env.sql_ok(&s2, "SELECT count(*) FROM t"), "10000");
    env.notify_all(&[&s2, &s3], n.at("post", "promote"));
    for node in ["srv2", "srv3"] {
        assert!(
            env.private_values(node, "lsn_location").is_empty(),
            "post-promote must clear {node}'s position"
        );
    }
}

// ---------------------------------------------------------------------------
// every action is bounded by its timeout (src/agent.rs deadline)

/// A primary whose postmaster is stopped (SIGSTOP); returns its pid.
fn paused_primary(env: &TestEnv) -> (Instance, i32) {
    let p = env.init_instance("srv1");
    env.start(&p);
    let pm = p.postmaster_pid().expect("postmaster.pid");
    env.pause(pm);
    (p, pm)
}

/// A recurring monitor of `p` with this timeout (ms), and how long it took.
fn timed_monitor(env: &TestEnv, p: &Instance, timeout_ms: &str) -> (AgentRun, Duration) {
    let t0 = std::time::Instant::now();
    let r = env.agent_env(
        p,
        "monitor",
        &[interval("15000"), ("OCF_RESKEY_CRM_meta_timeout", Some(timeout_ms))],
    );
    (r, t0.elapsed())
}

/// A monitor of the hung `p` with a 3 s timeout: it must fail (`what`)
/// within `limit`.
#[track_caller]
fn hung_monitor_fails_within(env: &TestEnv, p: &Instance, limit: Duration, what: &str) -> AgentRun {
    let (r, wall) = timed_monitor(env, p, "3000");
    r.expect(OCF_ERR_GENERIC, what);
    assert!(wall < limit, "the monitor took {wall:?} with a 3 s timeout\n{}", r.describe());
    r
}

/// A postmaster that accepts connections but never serves them (SIGSTOP:
/// the kernel queues the connection, no backend is forked): the monitor
/// gives up before its timeout, with a reason, instead of hanging until
/// Pacemaker kills it.
pub fn monitor_of_a_hung_postmaster_is_bounded(v: u32) {
    let env = env_for!(v, "monitor_hung_postmaster");
    let (p, pm) = paused_primary(&env);
    hung_monitor_fails_within(
        &env,
        &p,
        Duration::from_millis(3500),
        "monitor of a hung postmaster",
    );
    env.resume(pm);
    timed_monitor(&env, &p, "3000")
        .0
        .expect(OCF_RUNNING_PROMOTED, "monitor once the postmaster runs again");
}

/// A hung postmaster whose listen backlog is full: a connect() to its socket
/// would block in the kernel. The monitor still ends before its timeout,
/// with its own exit reason.
pub fn monitor_with_a_full_listen_backlog_is_bounded(v: u32) {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};
    use std::os::fd::AsRawFd;
    let env = env_for!(v, "monitor_full_backlog");
    let (p, pm) = paused_primary(&env);
    let addr = UnixAddr::new(&env.sock.join(format!(".s.PGSQL.{}", p.port))).unwrap();
    let mut queued = Vec::new();
    loop {
        let fd = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        match connect(fd.as_raw_fd(), &addr) {
            Ok(()) => queued.push(fd),
            Err(nix::errno::Errno::EAGAIN) => break,
            Err(e) => panic!("filling the backlog after {} connections: {e}", queued.len()),
        }
        assert!(queued.len() < 15000, "the listen backlog never filled");
    }
    let r = hung_monitor_fails_within(
        &env,
        &p,
        Duration::from_millis(3000),
        "monitor of a hung postmaster with a full backlog",
    );
    // Its own reason: the connection that could not finish, or, seen first,
    // the stopped postmaster (the hang detection).
    assert!(
        r.exit_reasons()
            .iter()
            .any(|l| l.contains("before the action timeout") || l.contains("hung")),
        "the monitor must give its own reason\n{}",
        r.describe()
    );
    drop(queued);
    env.resume(pm);
}

/// A timeout under a second: the agent finishes within what it was given
/// (no floor above it), and says why in at most 128 bytes.
pub fn monitor_with_a_subsecond_timeout_is_bounded(v: u32) {
    let env = env_for!(v, "monitor_subsecond_timeout");
    let (p, pm) = paused_primary(&env);
    let (r, wall) = timed_monitor(&env, &p, "400");
    r.expect(OCF_ERR_GENERIC, "monitor of a hung postmaster with a 400 ms timeout");
    assert!(wall < Duration::from_millis(400), "took {wall:?}\n{}", r.describe());
    let reasons = r.exit_reasons();
    assert_eq!(reasons.len(), 1, "{}", r.describe());
    assert!(reasons[0].len() <= "ocf-exit-reason:".len() + 128, "{}", reasons[0]);
    env.resume(pm);
}

/// A healthy instance stops well within a short timeout.
pub fn stop_with_short_timeout(v: u32) {
    let env = env_for!(v, "stop_short_timeout");
    let (p, s) = two_nodes(&env);
    for inst in [&s, &p] {
        let t0 = std::time::Instant::now();
        let r = env.agent_env(inst, "stop", &[("OCF_RESKEY_CRM_meta_timeout", Some("3000"))]);
        let wall = t0.elapsed();
        r.expect(OCF_SUCCESS, &format!("stop of {} with a 3 s timeout", inst.node));
        assert!(
            wall < Duration::from_millis(3500),
            "stop of {} took {wall:?}\n{}",
            inst.node,
            r.describe()
        );
        assert!(!env.is_running(inst));
    }
    assert_eq!(
        env.cluster_state(&p),
        "shut down",
        "the primary's stop must be a clean (fast) shutdown"
    );
    assert_eq!(
        env.cluster_state(&s),
        "shut down in recovery",
        "the standby's stop must be a clean (fast) shutdown"
    );
}

/// A fast shutdown that cannot finish in time (the primary waits for a
/// frozen standby to confirm its last WAL, up to wal_sender_timeout): the
/// stop switches to an immediate shutdown and still succeeds in time.
pub fn stop_falls_back_to_immediate_shutdown(v: u32) {
    let env = env_for!(v, "stop_immediate_fallback");
    let (p, s) = two_nodes(&env);
    env.wait_sql(&p, "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'srv2' AND write_lsn = pg_current_wal_lsn()", "1");
    env.pause_walreceiver(&s);
    env.sql_ok(&p, "CREATE TABLE t AS SELECT generate_series(1, 10000) AS i");
    let t0 = std::time::Instant::now();
    let r = env.agent_env(&p, "stop", &[("OCF_RESKEY_CRM_meta_timeout", Some("8000"))]);
    let wall = t0.elapsed();
    r.expect(OCF_SUCCESS, "stop of a primary whose fast shutdown hangs");
    assert!(
        wall < Duration::from_millis(8500),
        "the stop took {wall:?} with an 8 s timeout\n{}",
        r.describe()
    );
    assert!(!env.is_running(&p), "the primary still runs after its stop");
    // Backends of an immediate shutdown exit on their own, within moments.
    assert_no_process_under(&p.pgdata, Duration::from_secs(3), "processes left 3 s after the stop");
    assert!(
        r.log.contains("immediate"),
        "the stop must have used an immediate shutdown\n{}",
        r.describe()
    );
    assert_eq!(
        env.cluster_state(&p),
        "in production",
        "an immediate shutdown leaves a crashed control file"
    );
}

// ---------------------------------------------------------------------------
// synchronous replication (src/syncrep.rs): the record, the guard, the
// primary monitor bounded on a lost synchronous standby

const SYNC_RECORD: &str = "pgsqlms-sync-pgsqld";

fn sync_record(env: &TestEnv) -> Option<String> {
    fs::read_to_string(env.fake.join("crm_config").join(SYNC_RECORD)).ok()
}

fn set_sync_names(env: &TestEnv, p: &Instance, value: &str) {
    let quoted = value.replace('\'', "''");
    env.sql_ok(p, &format!("ALTER SYSTEM SET synchronous_standby_names = '{quoted}'"));
    env.sql_ok(p, "SELECT pg_reload_conf()");
    env.wait_sql(p, "SHOW synchronous_standby_names", value);
}

fn primary_monitor(env: &TestEnv, p: &Instance) -> AgentRun {
    let r = env.agent_env(p, "monitor", &[interval("15000")]);
    r.expect(OCF_RUNNING_PROMOTED, "primary monitor");
    r
}

fn record_writes(env: &TestEnv) -> Vec<String> {
    env.calls().into_iter().filter(|l| l.contains("crm_config")).collect()
}

pub fn sync_record_follows_synchronous_standby_names(v: u32) {
    let env = env_for!(v, "sync_record");
    let (p, _s) = two_nodes(&env);
    env.add_node("srv3");

    primary_monitor(&env, &p);
    assert_eq!(sync_record(&env), None, "asynchronous replication: no record");
    assert_eq!(record_writes(&env), Vec::<String>::new(), "nothing written for async");

    set_sync_names(&env, &p, "FIRST 1 (srv1, srv2, \"SRV3\")");
    primary_monitor(&env, &p);
    assert_eq!(sync_record(&env).as_deref(), Some("FIRST 1 (\"srv2\",\"srv3\")"));
    env.clear_calls();
    primary_monitor(&env, &p);
    assert_eq!(record_writes(&env), Vec::<String>::new(), "an unchanged record is not rewritten");
    let cib = env.calls().iter().filter(|l| l.starts_with("cibadmin")).count();
    assert_eq!(cib, 1, "one cibadmin per primary monitor: {:?}", env.calls());

    set_sync_names(&env, &p, "ANY 1 (*)");
    primary_monitor(&env, &p);
    assert_eq!(sync_record(&env).as_deref(), Some("ANY 1 (\"srv2\",\"srv3\")"));

    set_sync_names(&env, &p, "");
    let r = primary_monitor(&env, &p);
    assert_eq!(sync_record(&env), None, "back to asynchronous: the record is removed");
    assert!(r.log.contains("removing the record"), "{}", r.describe());
}

/// A standby promoted after its primary died inherits the record of who
/// holds the former primary's acknowledged commits. Its own setting names
/// other members; they replace the record only once enough of them have
/// flushed past the start of the new timeline: before that, a member still
/// catching up would count as holding commits it never received.
pub fn inherited_sync_record_kept_until_members_caught_up(v: u32) {
    let env = env_for!(v, "sync_record_inherited");
    let (p, s) = two_nodes(&env);
    env.add_node("srv3");
    set_sync_names(&env, &p, "FIRST 1 (srv1, srv2, srv3)");
    primary_monitor(&env, &p);
    let inherited = "FIRST 1 (\"srv2\",\"srv3\")";
    assert_eq!(sync_record(&env).as_deref(), Some(inherited));

    env.stop(&p, "fast");
    env.promote_by_hand(&s);
    set_sync_names(&env, &s, "FIRST 1 (srv1, srv2, srv3)");
    let r = primary_monitor(&env, &s);
    assert_eq!(sync_record(&env).as_deref(), Some(inherited), "{}", r.describe());
    assert!(r.log.contains("keeping the synchronous replication record"), "{}", r.describe());

    // srv1 follows the new primary and catches up past the switch point.
    env.set_upstream(&p, s.port);
    env.start_standby(&p);
    env.wait_streaming(&s, &p);
    let switch = env.sql_ok(&s, "SELECT pg_current_wal_flush_lsn()");
    env.wait_sql(
        &s,
        &format!("SELECT count(*) FROM pg_stat_replication WHERE flush_lsn >= '{switch}'"),
        "1",
    );
    primary_monitor(&env, &s);
    assert_eq!(sync_record(&env).as_deref(), Some("FIRST 1 (\"srv1\",\"srv3\")"));
}

/// The only synchronous standby is stopped and a client's commit waits for
/// it: the primary's monitor still answers promptly.
pub fn primary_monitor_with_lost_sync_standby(v: u32) {
    let env = env_for!(v, "sync_lost");
    let (p, s) = two_nodes(&env);
    set_sync_names(&env, &p, "srv2");
    env.sql_ok(&p, "CREATE TABLE t (i int)");
    env.stop(&s, "fast");
    psql_in_background(&env, &p, "INSERT INTO t VALUES (1)");
    env.wait_sql(&p, "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'", "1");
    let r = env.agent_env(
        &p,
        "monitor",
        &[interval("15000"), ("OCF_RESKEY_CRM_meta_timeout", Some("10000"))],
    );
    r.expect(OCF_RUNNING_PROMOTED, "primary monitor with its sync standby lost");
    println!("primary monitor with a commit waiting for a lost sync standby: {:?}", r.elapsed);
    assert_eq!(sync_record(&env).as_deref(), Some("FIRST 1 (\"srv2\")"));
}

/// A monitor query that cannot get its lock (here the status query, on a
/// view an operator locked) is cancelled by the server: statement_timeout
/// is below the action's deadline, so the agent reports the server's reason
/// and no backend of the agent is left waiting after the action.
pub fn monitor_queries_are_cancelled_by_the_server(v: u32) {
    let env = env_for!(v, "stmt_timeout");
    let p = env.init_instance("srv1");
    env.start(&p);
    psql_in_background(
        &env,
        &p,
        "BEGIN; LOCK TABLE pg_catalog.pg_stat_wal_receiver IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120);",
    );
    env.wait_sql(
        &p,
        "SELECT count(*) FROM pg_locks WHERE relation = 'pg_catalog.pg_stat_wal_receiver'::regclass AND granted",
        "1",
    );
    let r = env.agent_env(
        &p,
        "monitor",
        &[interval("15000"), ("OCF_RESKEY_CRM_meta_timeout", Some("3000"))],
    );
    assert_ne!(r.code, OCF_RUNNING_PROMOTED, "{}", r.describe());
    assert!(
        p.server_log().contains("canceling statement due to statement timeout"),
        "the server cancelled the query\n{}",
        r.describe()
    );
    // Without the server-side bound, the agent's backends would wait for
    // the lock (2 minutes); the last one's bound ends at most 100 ms after
    // the action.
    env.wait_sql(
        &p,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgsqlms'",
        "0",
    );
}

/// srv1 primary with `synchronous_standby_names = 'FIRST 1 (srv2, srv3)'`
/// is lost together with srv2: srv3 alone cannot prove it has every
/// acknowledged commit. Refused, naming srv2; once srv2 is back, promoted.
pub fn promote_refused_while_sync_standby_absent(v: u32) {
    let env = env_for!(v, "sync_refused");
    let (p, s2, s3) = three_nodes(&env);
    set_sync_names(&env, &p, "FIRST 1 (srv2, srv3)");
    primary_monitor(&env, &p);
    assert_eq!(sync_record(&env).as_deref(), Some("FIRST 1 (\"srv2\",\"srv3\")"));
    env.sql_ok(&p, "CREATE TABLE t AS SELECT generate_series(1, 1000) AS i");

    env.stop(&s2, "immediate");
    env.kill9(&p);
    fs::write(env.fake.join("offline"), "srv1\nsrv2\n").unwrap();
    let mut n = Notify::pre_promote(&["srv1", "srv2", "srv3"], &["srv3"], "srv3");
    env.notify_all(&[&s3], &n);
    let r = env.agent(&s3, "promote");
    r.expect(OCF_ERR_GENERIC, "promote of srv3 without srv2");
    let why = r.exit_reasons()[0];
    assert!(why.contains("bring back srv2") && why.len() < 128, "{}", r.describe());
    assert!(env.in_recovery(&s3), "srv3 must stay a standby");

    // Pacemaker must not retry in a loop (migration-threshold): no score
    // left, and the survivor's monitor does not give itself one.
    for node in ["srv1", "srv2", "srv3"] {
        assert_eq!(env.score(node), None, "score of {node} after the refusal");
    }
    let r = env.agent_env(&s3, "monitor", &[interval("16000")]);
    r.expect(OCF_SUCCESS, "standby monitor of srv3");
    assert_eq!(env.score("srv3"), None, "srv3 alone scores itself\n{}", r.describe());
    assert!(r.log.contains("bring back srv2"), "{}", r.describe());

    // srv2 comes back: both members answer, the most advanced one scores
    // itself, Pacemaker promotes it, and nothing acknowledged is lost.
    fs::write(env.fake.join("offline"), "srv1\n").unwrap();
    env.start(&s2);
    for s in [&s2, &s3, &s2] {
        env.agent_env(s, "monitor", &[interval("16000")]).expect(OCF_SUCCESS, "standby monitor");
    }
    let scored: Vec<&Instance> =
        [&s2, &s3].into_iter().filter(|s| env.score(&s.node).as_deref() == Some("1")).collect();
    assert_eq!(scored.len(), 1, "one standby scores itself: {:?}", env.calls());
    let best = scored[0];
    n.active = names(&["srv2", "srv3"]);
    n.unpromoted = names(&["srv2", "srv3"]);
    n.promote = vec![best.node.clone()];
    env.notify_all(&[&s2, &s3], &n);
    let r = env.agent(best, "promote");
    r.expect(OCF_SUCCESS, "promote once srv2 is back");
    assert!(r.log.contains("holds every commit acknowledged"), "{}", r.describe());
    assert_eq!(env.sql_ok(best, "SELECT count(*) FROM t"), "1000");
}

/// Same loss with `sync_failover=available`: the survivor is promoted and
/// the log says what may be lost, with positions.
pub fn promote_in_availability_mode_warns(v: u32) {
    let env = env_for!(v, "sync_available");
    let (p, s) = two_nodes(&env);
    env.add_node("srv3");
    set_sync_names(&env, &p, "ANY 1 (srv2, srv3)");
    primary_monitor(&env, &p);
    assert_eq!(sync_record(&env).as_deref(), Some("ANY 1 (\"srv2\",\"srv3\")"));
    env.kill9(&p);
    fs::write(env.fake.join("offline"), "srv1\nsrv3\n").unwrap();
    let n = Notify::pre_promote(&["srv1", "srv2", "srv3"], &["srv2"], "srv2");
    env.notify_all(&[&s], &n);
    let r = env.agent(&s, "promote");
    r.expect(OCF_ERR_GENERIC, "safe mode refuses");
    assert!(r.exit_reasons()[0].contains("bring back srv3"), "{}", r.describe());
    let r = env.agent_env(&s, "promote", &[("OCF_RESKEY_sync_failover", Some("available"))]);
    r.expect(OCF_SUCCESS, "availability mode promotes the survivor");
    assert!(
        r.log.contains("sync_failover=available")
            && r.log.contains("srv2 at ")
            && r.log.contains("srv3 (absent) may be lost"),
        "{}",
        r.describe()
    );
    assert!(!env.in_recovery(&s));
}

// ---------------------------------------------------------------------------
// fail closed: a hostile data directory, hostile parameters

/// A dangling link planted by the system user at standby.signal: root must
/// not create its target (that would be a root-owned write anywhere, handed
/// over to postgres); start fails with a reason and nothing runs.
pub fn start_refuses_linked_standby_signal(v: u32) {
    let env = env_for!(v, "start_linked_signal");
    let inst = env.init_instance("srv1");
    let target = env.dir.join("root-would-create-this");
    std::os::unix::fs::symlink(&target, inst.standby_signal()).unwrap();
    let u = pg_user();
    std::os::unix::fs::lchown(inst.standby_signal(), Some(u.uid), Some(u.gid)).unwrap();
    let r = env.agent(&inst, "start");
    r.expect(OCF_ERR_GENERIC, "start with standby.signal linked elsewhere");
    assert!(r.exit_reasons()[0].contains("standby.signal"), "{}", r.describe());
    assert!(!target.exists(), "root created the target of the link");
    assert!(!env.is_running(&inst), "start ran the server without standby.signal");
}

/// A non-UTF-8 parameter: a precise error and ERR_CONFIGURED, not a panic
/// (exit 101). A non-UTF-8 variable the agent does not read is ignored.
pub fn non_utf8_environment(v: u32) {
    use std::os::unix::ffi::OsStrExt;
    let env = env_for!(v, "non_utf8_env");
    let inst = env.init_instance("srv1");
    let run_with = |name: &str| {
        let mut cmd = Command::new(agent_bin());
        cmd.env_clear().arg("monitor").current_dir("/");
        cmd.envs(env.base_env(&inst, "monitor"));
        cmd.env(name, std::ffi::OsStr::from_bytes(b"/srv/\xff\xfe"));
        run(&mut cmd, Duration::from_secs(30), &env.dir)
    };
    let o = run_with("OCF_RESKEY_pgdata");
    assert_eq!(o.code, OCF_ERR_CONFIGURED, "{}", o.stderr);
    assert!(
        o.stderr
            .lines()
            .any(|l| l.starts_with("ocf-exit-reason:OCF_RESKEY_pgdata is not valid UTF-8")),
        "{}",
        o.stderr
    );
    let o = run_with("SOME_OTHER_VARIABLE");
    assert_eq!(o.code, OCF_NOT_RUNNING, "{}", o.stderr);
}

/// start_opts reach a shell (pg_ctl -o): shell syntax is refused before
/// anything runs, in validate-all and in start; a -p that is not pgport too.
pub fn start_opts_with_shell_syntax_refused(v: u32) {
    let Some((env, inst)) = validate_setup(v, "start_opts_shell") else { return };
    let marker = env.dir.join("expanded");
    let bad = [
        format!("-c work_mem=$(touch {})", marker.display()),
        format!("-c work_mem=`touch {}`", marker.display()),
        format!("-c work_mem=4MB; touch {}", marker.display()),
        "-c 'unterminated".to_string(),
        format!("-p {}", inst.port + 1),
    ];
    for opts in &bad {
        expect_validate_failure(
            &env,
            &inst,
            &inst.pgdata,
            &[("OCF_RESKEY_start_opts", Some(opts))],
            RESOURCE_DEFINITION,
            &format!("validate-all, start_opts={opts}"),
        );
        let before = snapshot(&inst.pgdata);
        env.agent_env(&inst, "start", &[("OCF_RESKEY_start_opts", Some(opts))])
            .expect(RESOURCE_DEFINITION, &format!("start, start_opts={opts}"));
        assert_same_snapshot(&before, &snapshot(&inst.pgdata), "start with bad start_opts");
        assert!(!env.is_running(&inst), "start ran with start_opts={opts}");
        assert!(!marker.exists(), "start_opts were expanded by a shell: {opts}");
    }
    // quoted words with spaces are fine, and reach postgres as one value
    let opts = "-c 'application_name=a b' -c work_mem=4MB";
    env.agent_env(&inst, "validate-all", &[("OCF_RESKEY_start_opts", Some(opts))])
        .expect(OCF_SUCCESS, "validate-all with quoted start_opts");
    env.agent_env(&inst, "start", &[("OCF_RESKEY_start_opts", Some(opts))])
        .expect(OCF_SUCCESS, "start with quoted start_opts");
    assert_eq!(env.sql_ok(&inst, "SHOW work_mem"), "4MB");
}

/// A data directory whose path holds a space, a double quote and a `$`:
/// start, monitor and stop work, and nothing is expanded.
pub fn data_path_with_space_and_quote(v: u32) {
    let env = env_for!(v, "data_path_space");
    let first = env.init_instance("srv1");
    let odd = env.dir.join("data \"q\" $HOME");
    fs::rename(&first.pgdata, &odd).unwrap();
    let inst = Instance { pgdata: odd, ..first };
    env.agent(&inst, "validate-all").expect(OCF_SUCCESS, "validate-all, odd path");
    env.agent(&inst, "start").expect(OCF_SUCCESS, "start, odd path");
    assert!(env.in_recovery(&inst));
    env.agent(&inst, "monitor").expect(OCF_SUCCESS, "monitor, odd path");
    env.agent(&inst, "stop").expect(OCF_SUCCESS, "stop, odd path");
    assert!(!env.is_running(&inst));
    env.agent(&inst, "monitor").expect(OCF_NOT_RUNNING, "probe after stop, odd path");

    // pgdata a configuration directory (Debian layout) with an odd path:
    // the config_file= the agent builds reaches pg_ctl's shell quoted.
    let confdir = env.dir.join("conf dir $(touch expanded) 'x'");
    fs::create_dir(&confdir).unwrap();
    for f in ["postgresql.conf", "pg_hba.conf", "pg_ident.conf"] {
        fs::copy(inst.pgdata.join(f), confdir.join(f)).unwrap();
        chown_pg(&confdir.join(f));
    }
    append(
        &confdir.join("postgresql.conf"),
        &format!("data_directory = '{}'\n", inst.pgdata.display().to_string().replace('\'', "''")),
    );
    chown_pg(&confdir);
    let data = inst.pgdata.to_str().unwrap().to_string();
    let split = [
        ("OCF_RESKEY_pgdata", Some(confdir.to_str().unwrap())),
        ("OCF_RESKEY_datadir", Some(data.as_str())),
    ];
    env.agent_env(&inst, "validate-all", &split).expect(OCF_SUCCESS, "validate-all, odd confdir");
    env.agent_env(&inst, "start", &split).expect(OCF_SUCCESS, "start, odd confdir");
    assert!(env.in_recovery(&inst));
    env.agent_env(&inst, "stop", &split).expect(OCF_SUCCESS, "stop, odd confdir");
    assert!(!env.dir.join("expanded").exists() && !Path::new("/expanded").exists());
}

/// A FIFO at global/pg_control and postmaster.pid linked to /dev/zero: the
/// agent neither hangs on the FIFO nor reads the link; the probe ends with
/// a reason well before its timeout, and is never "not running".
pub fn fifo_control_file_is_a_bounded_error(v: u32) {
    let env = env_for!(v, "fifo_control");
    let inst = env.init_instance("srv1");
    let control = inst.pgdata.join("global/pg_control");
    let version = inst.pgdata.join("PG_VERSION");
    let saved = fs::read(&control).unwrap();
    let saved_version = fs::read(&version).unwrap();
    let mkfifo = |p: &Path| {
        fs::remove_file(p).unwrap();
        run_ok(as_postgres("mkfifo", &env.dir).arg(p), Duration::from_secs(10), &env.dir);
    };
    mkfifo(&control);
    std::os::unix::fs::symlink("/dev/zero", inst.pid_file()).unwrap();
    let timeout = [("OCF_RESKEY_CRM_meta_timeout", Some("20000"))];
    let runs = std::panic::catch_unwind(|| {
        let fifo = env.agent_env(&inst, "monitor", &timeout);
        // the real control file back, postmaster.pid still linked
        fs::remove_file(&control).unwrap();
        fs::write(&control, &saved).unwrap();
        chown_pg(&control);
        let linked = env.agent_env(&inst, "monitor", &timeout);
        mkfifo(&version);
        let version_fifo = env.agent_env(&inst, "validate-all", &timeout);
        (fifo, linked, version_fifo)
    });
    // The harness's own cleanup (pg_ctl, reading postmaster.pid) would
    // follow the link: put things back before any assertion.
    fs::remove_file(inst.pid_file()).unwrap();
    let _ = fs::remove_file(&version);
    fs::write(&version, &saved_version).unwrap();
    chown_pg(&version);
    let (fifo, linked, version_fifo) = runs.unwrap_or_else(|e| std::panic::resume_unwind(e));
    fifo.expect(NODE_SETUP, "probe with a FIFO at global/pg_control");
    assert!(fifo.exit_reasons()[0].contains("FIFO"), "{}", fifo.describe());
    assert!(fifo.elapsed < Duration::from_secs(10), "{}", fifo.describe());
    // postmaster.pid is not read through the link: no postmaster, stopped
    linked.expect(OCF_NOT_RUNNING, "probe with postmaster.pid linked to /dev/zero");
    assert!(linked.elapsed < Duration::from_secs(10), "{}", linked.describe());
    version_fifo.expect(NODE_SETUP, "validate-all with a FIFO at PG_VERSION");
    assert!(version_fifo.exit_reasons()[0].contains("FIFO"), "{}", version_fifo.describe());
}

/// A control file that fails its checksum is an error with a reason, not
/// a state: before, the pg_controldata fallback ignored its own CRC warning
/// and the probe said "not running" from garbage.
pub fn corrupt_control_file_is_an_error(v: u32) {
    let env = env_for!(v, "corrupt_control");
    let inst = env.init_instance("srv1");
    let control = inst.pgdata.join("global/pg_control");
    let mut bytes = fs::read(&control).unwrap();
    bytes[33] ^= 0x40; // the checkpoint location: the state still reads
    fs::write(&control, &bytes).unwrap();
    let r = env.agent(&inst, "monitor");
    r.expect(OCF_ERR_GENERIC, "probe of a corrupt control file");
    assert!(r.exit_reasons()[0].contains("CRC"), "{}", r.describe());
    env.agent_env(&inst, "monitor", &[interval("16000")])
        .expect(OCF_ERR_GENERIC, "monitor of a corrupt control file");
}

/// Setups that cannot work are refused by validate-all, each with its code.
pub fn validate_refuses_setups_that_cannot_work(v: u32) {
    let Some((env, inst)) = validate_setup(v, "validate_cannot_work") else { return };
    let no_sock = env.dir.join("no-such-socket-dir");
    expect_validate_failure(
        &env,
        &inst,
        &inst.pgdata,
        &[("OCF_RESKEY_pghost", Some(no_sock.to_str().unwrap()))],
        NODE_SETUP,
        "pghost directory missing",
    );
    // a data directory of another owner: root creates nothing in it
    std::os::unix::fs::chown(&inst.pgdata, Some(0), Some(0)).unwrap();
    let r = env.agent(&inst, "validate-all");
    chown_pg(&inst.pgdata);
    r.expect(NODE_SETUP, "datadir owned by root");
    assert!(r.exit_reasons()[0].contains("not owned by system_user"), "{}", r.describe());
    let conf = inst.conf();
    for bad in ["application_name='srv1'y", "host=x application_name='srv1"] {
        append(&conf, &format!("primary_conninfo = '{}'\n", bad.replace('\'', "''")));
        expect_validate_failure(&env, &inst, &inst.pgdata, &[], NODE_SETUP, bad);
    }
    // binaries of another major version than PG_VERSION: before anything runs
    let other = if v == 15 { 18 } else { 15 };
    // (tests/pgbin.sh through `run`: Pg::get's untracked child could be
    // reaped by the harness's reaper thread at this point of the run)
    let o = run(
        Command::new("bash").arg(repo().join("tests/pgbin.sh")).arg(other.to_string()),
        Duration::from_secs(30),
        &env.dir,
    );
    if o.ok() {
        let bindir = o.stdout.trim().to_string();
        let changes = [("OCF_RESKEY_bindir", Some(bindir.as_str()))];
        expect_validate_failure(&env, &inst, &inst.pgdata, &changes, NOT_INSTALLED, "other bindir");
        for action in ["start", "promote", "demote"] {
            let r = env.agent_env(&inst, action, &changes);
            r.expect(NOT_INSTALLED, &format!("{action} with PostgreSQL {other} binaries"));
            assert!(!env.is_running(&inst), "{action} ran the server");
        }
    }
}

// ---------------------------------------------------------------------------
// fail closed: identity, stop despite configuration, hung servers, secrets

/// postmaster.pid naming the postmaster of ANOTHER running instance (a
/// recycled PID): monitor sees this instance stopped, and stop leaves the
/// other instance alone (pg_ctl stop would have shut it down).
pub fn foreign_postmaster_pid_is_not_ours(v: u32) {
    let env = env_for!(v, "foreign_postmaster_pid");
    let a = env.init_instance("srv1");
    let b = env.init_instance("srv2");
    env.start(&a);
    env.start(&b);
    env.stop(&a, "fast");
    let other = b.postmaster_pid().expect("srv2's postmaster.pid");
    fs::write(a.pid_file(), format!("{other}\n{}\n", a.pgdata.display())).unwrap();
    chown_pg(&a.pid_file());
    env.agent(&a, "monitor").expect(OCF_NOT_RUNNING, "probe of srv1 naming srv2's postmaster");
    env.agent_env(&a, "monitor", &[interval("15000")])
        .expect(OCF_NOT_RUNNING, "monitor of srv1 naming srv2's postmaster");
    env.agent(&a, "stop").expect(OCF_SUCCESS, "stop of srv1 naming srv2's postmaster");
    assert!(pid_alive(other), "stop of srv1 killed srv2's postmaster");
    assert_eq!(b.postmaster_pid(), Some(other));
    assert_eq!(env.sql_ok(&b, "SELECT 1"), "1", "srv2 must still answer");
    // PostgreSQL itself would refuse to start while the PID lives: the
    // stale lock file goes, nothing working in srv1's directory.
    env.agent(&a, "start").expect(OCF_SUCCESS, "start of srv1 over a stale postmaster.pid");
    assert!(env.in_recovery(&a));
    assert_eq!(b.postmaster_pid(), Some(other));
    assert_eq!(env.sql_ok(&b, "SELECT 1"), "1", "srv2 must still answer");
}

/// Every configuration error that makes other actions return 6 (bad meta
/// attributes, recovery_template, an unparsable maxlag): stop still stops
/// and returns 0 (a failed stop would fence the node), and says why.
pub fn stop_despite_configuration_errors(v: u32) {
    let env = env_for!(v, "stop_despite_config");
    let inst = env.init_instance("srv1");
    let bad: [(&str, &str); 4] = [
        ("OCF_RESKEY_CRM_meta_notify", "false"),
        ("OCF_RESKEY_CRM_meta_promoted_max", "2"),
        ("OCF_RESKEY_recovery_template", "/etc/recovery.conf"),
        ("OCF_RESKEY_maxlag", "lots"),
    ];
    for (k, val) in bad {
        env.start(&inst);
        env.agent_env(&inst, "monitor", &[(k, Some(val))])
            .expect(OCF_ERR_CONFIGURED, &format!("monitor with {k}={val}"));
        let r = env.agent_env(&inst, "stop", &[(k, Some(val))]);
        r.expect(OCF_SUCCESS, &format!("stop with {k}={val}"));
        assert!(!env.is_running(&inst), "stop with {k}={val} left PostgreSQL running");
        assert!(
            r.log.contains("configuration error"),
            "stop with {k}={val} must log the configuration error\n{}",
            r.describe()
        );
    }
}

/// bindir pointing nowhere (or an unknown tool set) while the instance
/// runs: stop still stops it, cleanly, by signalling its postmaster.
pub fn stop_without_binaries(v: u32) {
    let env = env_for!(v, "stop_no_binaries");
    let inst = env.init_instance("srv1");
    env.start(&inst);
    env.agent_env(&inst, "stop", &[("OCF_RESKEY_bindir", Some("/nonexistent/bin"))])
        .expect(OCF_SUCCESS, "stop with a wrong bindir");
    assert!(!env.is_running(&inst), "stop with a wrong bindir left PostgreSQL running");
    assert_eq!(env.cluster_state(&inst), "shut down", "a fast shutdown, as pg_ctl's");
}

/// stop where the data directory does not exist: 0 (a node where the
/// resource was never installed), saying what it did not find; but a
/// server still running in a removed data directory is killed first.
pub fn stop_without_data_directory(v: u32) {
    let env = env_for!(v, "stop_no_datadir");
    let inst = env.init_instance("srv1");
    let missing = env.dir.join("never-created");
    let r = env.agent_env(&inst, "stop", &[("OCF_RESKEY_pgdata", Some(missing.to_str().unwrap()))]);
    r.expect(OCF_SUCCESS, "stop with a data directory that never existed");
    assert!(r.log.contains("not found"), "stop must say what it did not find\n{}", r.describe());

    env.start(&inst);
    let pm = inst.postmaster_pid().unwrap();
    fs::remove_dir_all(&inst.pgdata).unwrap();
    assert!(pid_alive(pm), "PostgreSQL keeps running in a removed directory");
    env.agent(&inst, "stop")
        .expect(OCF_SUCCESS, "stop of a server whose data directory was removed");
    reap_orphans();
    assert!(
        eventually(Duration::from_secs(5), || {
            reap_orphans();
            !pid_alive(pm)
        }),
        "the server of the removed data directory still runs"
    );
}

/// SIGSTOP of every process of a primary (a dead disk, a frozen host
/// process): monitor and demote fail at once saying it is hung, demote
/// kills it, and stop of a hung instance kills it and succeeds quickly;
/// nothing committed is lost, the next start recovers it as a standby.
pub fn hung_primary_is_dealt_with_in_seconds(v: u32) {
    let env = env_for!(v, "hung_primary");
    let p = env.init_instance("srv1");
    env.start(&p);
    env.sql_ok(&p, "CREATE TABLE t AS SELECT generate_series(1, 1000) AS i");
    let hang = |env: &TestEnv| {
        for pid in pids_under(&p.pgdata) {
            env.pause(pid);
        }
    };
    let short = ("OCF_RESKEY_CRM_meta_timeout", Some("20000"));

    hang(&env);
    let r = env.agent_env(&p, "monitor", &[interval("15000"), short]);
    r.expect(OCF_ERR_GENERIC, "monitor of a hung primary");
    assert!(r.exit_reasons()[0].contains("hung"), "{}", r.describe());
    assert!(r.elapsed < Duration::from_secs(10), "monitor took {:?}", r.elapsed);
    let monitor_took = r.elapsed;

    let r = env.agent_env(&p, "demote", &[short]);
    r.expect(OCF_ERR_GENERIC, "demote of a hung primary");
    assert!(r.elapsed < Duration::from_secs(10), "demote took {:?}\n{}", r.elapsed, r.describe());
    let demote_took = r.elapsed;
    assert_no_process_under(
        &p.pgdata,
        Duration::from_secs(5),
        "demote of a hung primary must kill it",
    );
    env.agent(&p, "stop").expect(OCF_SUCCESS, "stop after the demote killed it");

    env.agent(&p, "start").expect(OCF_SUCCESS, "start after the kill: crash recovery");
    assert!(env.in_recovery(&p));
    assert_eq!(env.sql_ok(&p, "SELECT count(*) FROM t"), "1000", "committed rows lost");

    hang(&env);
    let r = env.agent_env(&p, "stop", &[short]);
    r.expect(OCF_SUCCESS, "stop of a hung standby");
    assert!(r.elapsed < Duration::from_secs(10), "stop took {:?}\n{}", r.elapsed, r.describe());
    assert_no_process_under(
        &p.pgdata,
        Duration::from_secs(5),
        "stop of a hung instance left processes",
    );
    eprintln!(
        "hung instance: monitor {:?}, demote {:?}, stop {:?} (timeouts 20 s)",
        monitor_took, demote_took, r.elapsed
    );
    env.agent(&p, "start").expect(OCF_SUCCESS, "start after the hung stop");
    assert_eq!(env.sql_ok(&p, "SELECT count(*) FROM t"), "1000");
}

/// A password in primary_conninfo reaches psql (the former primary's
/// divergence check) in its environment, never in its arguments.
pub fn conninfo_password_not_in_arguments(v: u32) {
    let env = env_for!(v, "password_not_in_argv");
    let p = env.init_instance("srv1");
    append(
        &p.conf(),
        &format!(
            "primary_conninfo = 'host={} port={} user=postgres password=s3cretpw application_name=srv1'\n",
            env.sock.display(),
            p.port + 5000
        ),
    );
    // bindir: the real binaries, psql wrapped to record how it was called.
    let record = env.dir.join("psql-calls");
    let bin = bindir_with(
        &env,
        "psql",
        &format!(
            "printf 'argv:%s\\n' \"$*\" >> {rec}\nprintf 'env:%s\\n' \"$PGPASSWORD\" >> {rec}\nexec {real} \"$@\"",
            rec = record.display(),
            real = env.pg.bin("psql").display()
        ),
    );
    // srv2 promoted in the CIB's history: psql asks primary_conninfo even
    // though nothing listens there (with no primary anywhere, a quick probe
    // of the address would spare psql).
    env.set_lrm_op("srv2", "pgsqld_last_0", "promote", 0, 0);
    env.agent_env(&p, "start", &[("OCF_RESKEY_bindir", Some(&bin))])
        .expect(OCF_SUCCESS, "start of a former primary (divergence check through psql)");
    let calls = fs::read_to_string(&record).expect("psql was not called");
    assert!(calls.contains("argv:"), "{calls}");
    assert!(
        !calls.lines().filter(|l| l.starts_with("argv:")).any(|l| l.contains("s3cretpw")),
        "the password is in psql's arguments:\n{calls}"
    );
    assert!(calls.contains("env:s3cretpw"), "psql did not get the password: {calls}");
}

/// logging_collector off and no log file of its own: the server's output
/// goes to <datadir>.server.log (mode 0600, owned by postgres), where its
/// messages after the start can still be read.
pub fn server_output_kept_without_logging_collector(v: u32) {
    let env = env_for!(v, "server_log");
    let p = env.init_instance("srv1");
    append(&p.conf(), "logging_collector = off\n");
    env.agent(&p, "start").expect(OCF_SUCCESS, "start");
    env.sql_ok(&p, "DO $$BEGIN RAISE LOG 'pgsqlms-marker-after-start'; END$$");
    let log = p.pgdata.with_file_name("srv1.server.log");
    assert!(
        eventually(Duration::from_secs(5), || {
            fs::read_to_string(&log).is_ok_and(|l| l.contains("pgsqlms-marker-after-start"))
        }),
        "the server's output after the start is lost (log {}: {:?})",
        log.display(),
        fs::read_to_string(&log)
    );
    let m = fs::symlink_metadata(&log).unwrap();
    assert_eq!(m.mode() & 0o777, 0o600);
    assert_eq!(m.uid(), pg_user().uid);
    env.agent(&p, "stop").expect(OCF_SUCCESS, "stop");

    // A link planted in its place is not followed.
    fs::remove_file(&log).unwrap();
    let victim = env.dir.join("victim");
    fs::write(&victim, "root's\n").unwrap();
    std::os::unix::fs::symlink(&victim, &log).unwrap();
    let r = env.agent(&p, "start");
    r.expect(OCF_SUCCESS, "start with a link in place of the server log");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "root's\n", "the link was followed");
    assert!(r.log.contains("server log"), "the refusal must be logged\n{}", r.describe());
    env.agent(&p, "stop").expect(OCF_SUCCESS, "stop");

    // A file of someone else's in its place is neither used nor given away.
    fs::remove_file(&log).unwrap();
    fs::write(&log, "root's\n").unwrap();
    let r = env.agent(&p, "start");
    r.expect(OCF_SUCCESS, "start with a root file in place of the server log");
    let m = fs::symlink_metadata(&log).unwrap();
    assert_eq!(m.uid(), 0, "root's file was given to postgres");
    assert_eq!(fs::read_to_string(&log).unwrap(), "root's\n", "root's file was written");
    assert!(r.log.contains("server log"), "the refusal must be logged\n{}", r.describe());
}

// ---------------------------------------------------------------------------
// rejoin_policy: diverged former primaries rejoining by themselves
// (src/rejoin_policy.rs, src/actions/rewind.rs)

/// Turns data checksums off in the stopped instance `inst` when they are on
/// (PostgreSQL 18's initdb turns them on): pg_rewind then has neither them
/// nor, unless set, wal_log_hints.
fn disable_checksums(env: &TestEnv, inst: &Instance) {
    if env.controldata(inst).get("Data page checksum version").map(String::as_str) != Some("0") {
        run_ok(
            as_postgres(env.pg.bin("pg_checksums"), &env.dir)
                .arg("--disable")
                .arg("-D")
                .arg(&inst.pgdata),
            Duration::from_secs(60),
            &env.dir,
        );
    }
}

/// srv1 primary and srv2 its standby, srv1 started with `rewindable`
/// (wal_log_hints=on) or with neither wal_log_hints nor data checksums
/// (PostgreSQL 18's initdb turns checksums on: turned off here). Then the
/// failover that loses srv1's last writes (as in
/// diverged_former_primary_start_is_refused): srv1 crashed on timeline 1
/// after WAL srv2 never got, srv2 promoted (timeline 2) and written to,
/// the CIB showing srv2 as the primary, srv1's primary_conninfo to srv2.
fn diverged_pair(env: &TestEnv, rewindable: bool) -> (Instance, Instance) {
    let p = env.init_instance("srv1");
    disable_checksums(env, &p);
    append(&p.conf(), if rewindable { "wal_log_hints = on\n" } else { "wal_log_hints = off\n" });
    // A file of the node's own beside postgresql.conf (the cluster's
    // local.conf): the copy from the primary must not replace it.
    append(&p.conf(), "include_if_exists = 'local.conf'\n");
    std::fs::write(p.pgdata.join("local.conf"), "cluster_name = 'srv1-local'\n").unwrap();
    chown_pg(&p.pgdata.join("local.conf"));
    env.start(&p);
    let s = env.clone_standby(&p, "srv2");
    std::fs::write(s.pgdata.join("local.conf"), "cluster_name = 'srv2-local'\n").unwrap();
    env.start(&s);
    env.wait_streaming(&p, &s);
    diverge(env, &p, &s);
    env.sql_ok(&s, "INSERT INTO t SELECT generate_series(101, 150)");
    env.sql_ok(&s, "CHECKPOINT");
    env.set_score("srv2", "1001");
    env.set_upstream(&p, s.port);
    (p, s)
}

fn assert_nothing_beside(env: &TestEnv) {
    for prefix in ["srv1.diverged-", "srv1.replaced-", "srv1.rejoin-in-progress"] {
        assert!(beside(env, prefix).is_empty(), "{prefix}* written beside srv1's data");
    }
}

/// Entries of the test directory whose name starts with `prefix`.
fn beside(env: &TestEnv, prefix: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(&env.dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

fn rejoin_start(
    env: &TestEnv,
    p: &Instance,
    policy: &str,
    extra: &[(&str, Option<&str>)],
) -> AgentRun {
    let mut changes = vec![("OCF_RESKEY_rejoin_policy", Some(policy))];
    changes.extend_from_slice(extra);
    env.agent_env(p, "start", &changes)
}

/// A start of `p` under rejoin `policy` (`extra` added) that must be
/// refused (`what`) with an exit reason holding `reason`, and leave the
/// data directory as it was.
#[track_caller]
fn expect_rejoin_refused(
    env: &TestEnv,
    p: &Instance,
    policy: &str,
    extra: &[(&str, Option<&str>)],
    what: &str,
    reason: &str,
) {
    let before = snapshot(&p.pgdata);
    let r = rejoin_start(env, p, policy, extra);
    r.expect(OCF_ERR_GENERIC, what);
    assert!(r.exit_reasons()[0].contains(reason), "{}", r.describe());
    assert_same_snapshot(&before, &snapshot(&p.pgdata), what);
}

/// srv1 streams from srv2, has srv2's rows and not its own lost ones, and
/// kept its own configuration (application_name=srv1, its port).
fn assert_rejoined(env: &TestEnv, p: &Instance, s: &Instance, r: &AgentRun) {
    assert!(env.in_recovery(p), "srv1 must be a standby\n{}", r.describe());
    let q = "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'srv1' AND state = 'streaming'";
    assert!(
        eventually(Duration::from_secs(20), || env.sql(s, q).as_deref() == Ok("1")),
        "srv1 does not stream from srv2\n{}\n--- srv1 log\n{}",
        r.describe(),
        p.server_log()
    );
    env.wait_sql(p, "SELECT count(*) FROM t", "150");
    assert_eq!(env.sql_ok(p, "SELECT count(*) FROM pg_class WHERE relname = 'lost'"), "0");
    assert_eq!(env.sql_ok(p, "SHOW cluster_name"), "srv1-local", "srv1's own local.conf");
    assert!(
        beside(env, "srv1.rejoin-in-progress").is_empty(),
        "the marker of the rejoin must be gone once done"
    );
    env.agent_env(p, "monitor", &[interval("16000")])
        .expect(OCF_SUCCESS, "monitor of srv1 as a standby");
}

/// The diverged WAL directory: one, named with the timeline, holding WAL
/// segments pg_waldump reads, where the lost table's creation is.
fn assert_diverged_wal_kept(env: &TestEnv, r: &AgentRun) {
    let kept = beside(env, "srv1.diverged-");
    assert_eq!(kept.len(), 1, "one directory of discarded WAL: {kept:?}\n{}", r.describe());
    let dir = &kept[0];
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.ends_with("-tl1") && name.len() == "srv1.diverged-20261201T000000-tl1".len(),
        "{name}"
    );
    assert!(r.log.contains(&name), "the log must give the path of the kept WAL\n{}", r.describe());
    let segs: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.contains('.'))
        .collect();
    assert!(
        !segs.is_empty() && segs.iter().all(|s| s.len() == 24 && s.starts_with("00000001")),
        "{segs:?}"
    );
    let mut segs = segs;
    segs.sort();
    let o = run(
        as_postgres(env.pg.bin("pg_waldump"), &env.dir)
            .arg("--path")
            .arg(dir)
            .arg(&segs[0])
            .arg(segs.last().unwrap()),
        Duration::from_secs(60),
        &env.dir,
    );
    assert!(
        o.stdout.contains("rmgr: Heap"),
        "pg_waldump reads the kept WAL: {}{}",
        o.stdout.len(),
        o.stderr
    );
    assert!(o.stdout.contains("COMMIT"), "the kept WAL holds the lost commit");
}

/// rejoin_policy=rewind: the diverged former primary is rewound from the
/// primary and streams again, its discarded WAL kept beside its data.
pub fn rejoin_rewind_streams_again(v: u32) {
    let env = env_for!(v, "rejoin_rewind");
    let (p, s) = diverged_pair(&env, true);
    let t0 = std::time::Instant::now();
    let r = rejoin_start(&env, &p, "rewind", &[]);
    r.expect(OCF_SUCCESS, "start of a diverged former primary with rejoin_policy=rewind");
    eprintln!("rewind start took {:?}", t0.elapsed());
    assert!(r.log.contains("pg_rewind done"), "{}", r.describe());
    assert_rejoined(&env, &p, &s, &r);
    assert_diverged_wal_kept(&env, &r);
    let kept = &beside(&env, "srv1.diverged-")[0];
    assert!(
        std::fs::read_to_string(kept.join("postgresql.conf"))
            .unwrap()
            .contains("application_name=srv1"),
        "srv1's own configuration is kept with its WAL"
    );
    assert!(beside(&env, "srv1.replaced-").is_empty(), "a rewind moves nothing aside");
}

/// rejoin_policy=manual (the default) keeps the refusal asking for pg_rewind.
pub fn rejoin_manual_keeps_the_refusal(v: u32) {
    let env = env_for!(v, "rejoin_manual");
    let (p, _s) = diverged_pair(&env, true);
    expect_rejoin_refused(
        &env,
        &p,
        "manual",
        &[],
        "start of a diverged former primary with rejoin_policy=manual",
        "rebuild with pg_rewind",
    );
    assert_nothing_beside(&env);
}

/// rejoin_policy=rewind without wal_log_hints nor checksums: refused with
/// the reason, nothing changed; rewind-or-clone rebuilds with
/// pg_basebackup, the old data directory kept aside.
pub fn rejoin_clone_when_rewind_is_impossible(v: u32) {
    let env = env_for!(v, "rejoin_clone");
    let (p, s) = diverged_pair(&env, false);
    expect_rejoin_refused(
        &env,
        &p,
        "rewind",
        &[],
        "rewind without wal_log_hints nor checksums",
        "pg_rewind impossible",
    );
    assert_nothing_beside(&env);

    let t0 = std::time::Instant::now();
    let r = rejoin_start(&env, &p, "rewind-or-clone", &[]);
    r.expect(OCF_SUCCESS, "start of a diverged former primary with rejoin_policy=rewind-or-clone");
    eprintln!("clone start took {:?}", t0.elapsed());
    assert_rejoined(&env, &p, &s, &r);
    assert_diverged_wal_kept(&env, &r);
    let aside = beside(&env, "srv1.replaced-");
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(aside[0].join("PG_VERSION").exists() && aside[0].join("global/pg_control").exists());
}

/// The primary in the CIB does not answer: refused, nothing changed.
/// No primary in the CIB at all: refused too (nothing to rejoin from).
pub fn rejoin_refused_without_a_reachable_primary(v: u32) {
    let env = env_for!(v, "rejoin_unreachable");
    let (p, s) = diverged_pair(&env, true);
    env.set_upstream(&p, unused_port(s.port));
    expect_rejoin_refused(
        &env,
        &p,
        "rewind-or-clone",
        &[("OCF_RESKEY_CRM_meta_timeout", Some("20000"))],
        "rejoin with the primary unreachable",
        "srv2 is the primary but not reachable",
    );
    // reachable, but the CIB shows no primary
    env.set_upstream(&p, s.port);
    env.set_score("srv2", "1000");
    expect_rejoin_refused(
        &env,
        &p,
        "rewind-or-clone",
        &[],
        "rejoin without a primary in the CIB",
        "no other node is the primary",
    );
    assert_nothing_beside(&env);
    assert!(!env.is_running(&p));
}

/// A bindir where `tool` is replaced by a shell script (`body`), the other
/// binaries being the real ones.
fn bindir_with(env: &TestEnv, tool: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let bin = env.dir.join(format!("bin-{tool}"));
    std::fs::create_dir_all(&bin).unwrap();
    for e in std::fs::read_dir(&env.pg.bindir).unwrap().flatten() {
        if e.file_name() != tool {
            std::os::unix::fs::symlink(e.path(), bin.join(e.file_name())).unwrap();
        }
    }
    std::fs::write(bin.join(tool), format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(bin.join(tool), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&env.dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    bin.display().to_string()
}

/// For a pg_rewind stand-in: the agent's `--dry-run` goes to the real one.
fn dry_run_passthrough(env: &TestEnv) -> String {
    format!(
        "case \" $* \" in *\" --dry-run \"*) exec {} \"$@\";; esac",
        env.pg.bin("pg_rewind").display()
    )
}

fn assert_gone(pidfile: &std::path::Path) {
    let pid = std::fs::read_to_string(pidfile).expect("the stand-in ran").trim().to_string();
    // SIGKILL is sent to the group before the agent returns; the kernel
    // may still be tearing the process down on a busy machine.
    let mut state = String::new();
    let gone = eventually(Duration::from_secs(5), || {
        reap_orphans();
        state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        state.is_empty()
            || state.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
    });
    assert!(gone, "the stopped command's child {pid} still runs: {state}");
}

/// A start of `p` under rejoin `policy` with `bindir`, whose `tool` cannot
/// finish within the start's 20 s timeout: refused, saying so.
#[track_caller]
fn rejoin_cut_by_the_timeout(
    env: &TestEnv,
    p: &Instance,
    policy: &str,
    bindir: &str,
    tool: &str,
) -> AgentRun {
    let r = rejoin_start(
        env,
        p,
        policy,
        &[("OCF_RESKEY_bindir", Some(bindir)), ("OCF_RESKEY_CRM_meta_timeout", Some("20000"))],
    );
    r.expect(OCF_ERR_GENERIC, &format!("a {tool} that cannot finish in time"));
    assert!(
        r.exit_reasons()[0].contains(&format!("{tool} did not finish within the start timeout")),
        "{}",
        r.describe()
    );
    r
}

/// pg_rewind that cannot finish within the start timeout (a stand-in that
/// sleeps): the start stops it (its process group killed) and says so; the
/// next start, with the real pg_rewind, redoes it and srv1 streams.
pub fn rejoin_rewind_cut_by_the_timeout_is_redone(v: u32) {
    let env = env_for!(v, "rejoin_rewind_timeout");
    let (p, s) = diverged_pair(&env, true);
    let pidfile = env.dir.join("sleeper.pid");
    // What a pg_rewind cut short may leave: the target's WAL segments from
    // the fork on removed (pg_rewind removes or replaces them, and leaves
    // older ones), the configuration replaced by the primary's.
    let bindir = bindir_with(
        &env,
        "pg_rewind",
        &format!(
            "{passthrough}\n\
             for f in $(ls {d}.diverged-*/ | grep -v '[.]'); do rm {d}/pg_wal/$f || exit 3; done\n\
             cp {src}/postgresql.conf {d}/postgresql.conf\nsleep 600 &\necho $! > {pf}\nwait",
            passthrough = dry_run_passthrough(&env),
            d = p.pgdata.display(),
            src = s.pgdata.display(),
            pf = pidfile.display()
        ),
    );
    let t0 = std::time::Instant::now();
    let r = rejoin_cut_by_the_timeout(&env, &p, "rewind", &bindir, "pg_rewind");
    assert!(t0.elapsed() < Duration::from_secs(20), "{}", r.describe());
    assert_gone(&pidfile);
    assert!(!env.is_running(&p));
    assert_eq!(beside(&env, "srv1.rejoin-in-progress").len(), 1, "the marker says what to redo");
    assert_diverged_wal_kept(&env, &r);
    let r = rejoin_start(&env, &p, "rewind", &[]);
    r.expect(OCF_SUCCESS, "the next start redoes the rewind");
    assert!(r.log.contains("resuming"), "{}", r.describe());
    assert!(r.log.contains("back in pg_wal"), "{}", r.describe());
    assert_rejoined(&env, &p, &s, &r);
    assert_eq!(beside(&env, "srv1.diverged-").len(), 1, "the WAL is kept once");
}

/// pg_rewind fails (a stand-in exiting 1): rewind refuses with its
/// message; rewind-or-clone rebuilds with pg_basebackup.
pub fn rejoin_failed_rewind_then_clone(v: u32) {
    let env = env_for!(v, "rejoin_rewind_fails");
    let (p, s) = diverged_pair(&env, true);
    let bindir =
        bindir_with(&env, "pg_rewind", "echo 'pg_rewind: error: made to fail' >&2\nexit 1");
    let r = rejoin_start(&env, &p, "rewind", &[("OCF_RESKEY_bindir", Some(&bindir))]);
    r.expect(OCF_ERR_GENERIC, "a failed pg_rewind under rejoin_policy=rewind");
    assert!(
        r.exit_reasons()[0].contains("pg_rewind failed: pg_rewind: error: made to fail"),
        "{}",
        r.describe()
    );
    let r = rejoin_start(&env, &p, "rewind-or-clone", &[("OCF_RESKEY_bindir", Some(&bindir))]);
    r.expect(OCF_SUCCESS, "a failed pg_rewind under rejoin_policy=rewind-or-clone");
    assert!(r.log.contains("rebuilding with pg_basebackup"), "{}", r.describe());
    assert_rejoined(&env, &p, &s, &r);
    assert_eq!(beside(&env, "srv1.replaced-").len(), 1);
}

/// pg_basebackup cut by the timeout after it wrote part of the copy (a
/// stand-in): the start says so; the next start removes the incomplete
/// copy and redoes the clone from the old data kept aside.
pub fn rejoin_clone_cut_by_the_timeout_is_redone(v: u32) {
    let env = env_for!(v, "rejoin_clone_timeout");
    let (p, s) = diverged_pair(&env, false);
    let pidfile = env.dir.join("sleeper.pid");
    let bindir = bindir_with(
        &env,
        "pg_basebackup",
        &format!(
            "mkdir -p {d}/base && echo 15 > {d}/PG_VERSION\nsleep 600 &\necho $! > {pf}\nwait",
            d = p.pgdata.display(),
            pf = pidfile.display()
        ),
    );
    rejoin_cut_by_the_timeout(&env, &p, "rewind-or-clone", &bindir, "pg_basebackup");
    assert_gone(&pidfile);
    assert!(
        p.pgdata.join("base").exists() && !p.pgdata.join("global").exists(),
        "the stand-in's partial copy"
    );
    let r = rejoin_start(&env, &p, "rewind-or-clone", &[]);
    r.expect(OCF_SUCCESS, "the next start redoes the clone");
    assert!(r.log.contains("removing the incomplete copy"), "{}", r.describe());
    assert_rejoined(&env, &p, &s, &r);
    assert_eq!(beside(&env, "srv1.replaced-").len(), 1, "the old data stays aside, once");
}

/// Unmounts a test tmpfs when dropped (lazily: nothing may hold it).
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// validate-all checks what the policy needs, and says exactly what is
/// missing with its code: bad value (6), pg_rewind not installed (5),
/// neither wal_log_hints nor checksums for rewind (2), a primary_conninfo
/// user without pg_rewind's rights (2), no room for a rebuild (2, on a
/// small tmpfs). Nothing changes in the data directory.
pub fn rejoin_validate_prerequisites(v: u32) {
    let env = env_for!(v, "rejoin_validate");
    let p = env.init_instance("srv1");
    disable_checksums(&env, &p);
    env.start(&p);
    let s = env.clone_standby(&p, "srv2");
    let policy = |v: &'static str| ("OCF_RESKEY_rejoin_policy", Some(v));
    let validate = |changes: &[(&str, Option<&str>)]| env.agent_env(&s, "validate-all", changes);
    for ok in ["manual", "rewind-or-clone"] {
        let r = validate(&[policy(ok)]);
        r.expect(OCF_SUCCESS, &format!("validate-all with rejoin_policy={ok}"));
        if ok == "rewind-or-clone" {
            assert!(
                r.log.contains("rebuilt with pg_basebackup"),
                "the warning says what happens\n{}",
                r.describe()
            );
        }
    }
    expect_validate_failure(
        &env,
        &s,
        &s.pgdata,
        &[policy("clone")],
        OCF_ERR_CONFIGURED,
        "rejoin_policy=clone",
    );
    let r = validate(&[policy("rewind")]);
    r.expect(OCF_ERR_ARGS, "rewind without wal_log_hints nor checksums");
    assert!(r.exit_reasons()[0].contains("wal_log_hints"), "{}", r.describe());

    append(&s.conf(), "wal_log_hints = on\n");
    validate(&[policy("rewind")]).expect(OCF_SUCCESS, "rewind with wal_log_hints");
    let bin = env.dir.join("bin-without-pg_rewind");
    std::fs::create_dir_all(&bin).unwrap();
    for e in std::fs::read_dir(&env.pg.bindir).unwrap().flatten() {
        if e.file_name() != "pg_rewind" {
            std::os::unix::fs::symlink(e.path(), bin.join(e.file_name())).unwrap();
        }
    }
    let bindir = bin.display().to_string();
    let r = validate(&[policy("rewind"), ("OCF_RESKEY_bindir", Some(&bindir))]);
    r.expect(OCF_ERR_INSTALLED, "rewind without pg_rewind");
    assert!(r.exit_reasons()[0].contains("pg_rewind"), "{}", r.describe());

    env.sql_ok(&p, "CREATE ROLE norights LOGIN REPLICATION");
    append(
        &s.conf(),
        &format!(
            "primary_conninfo = 'host={} port={} user=norights application_name=srv2'\n",
            env.sock.display(),
            p.port
        ),
    );
    let r = validate(&[policy("rewind")]);
    r.expect(OCF_ERR_ARGS, "rewind with a user that may not run pg_rewind");
    assert!(r.exit_reasons()[0].contains("may not run pg_rewind"), "{}", r.describe());
    env.sql_ok(&p, "GRANT EXECUTE ON FUNCTION pg_ls_dir(text, boolean, boolean), pg_stat_file(text, boolean), pg_read_binary_file(text), pg_read_binary_file(text, bigint, bigint, boolean) TO norights");
    validate(&[policy("rewind")]).expect(OCF_SUCCESS, "rewind with the documented grants");

    // No room for a rebuild: a copy of srv2 on a 96 MB tmpfs.
    let small = env.dir.join("small");
    std::fs::create_dir_all(&small).unwrap();
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=96m,mode=0755", "tmpfs"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(st.success(), "mount a tmpfs");
    let _umount = Mounted(small.clone());
    run_ok(
        std::process::Command::new("cp").arg("-a").arg(&s.pgdata).arg(small.join("srv2")),
        Duration::from_secs(60),
        &env.dir,
    );
    let copy = small.join("srv2").display().to_string();
    let r = validate(&[policy("rewind-or-clone"), ("OCF_RESKEY_pgdata", Some(&copy))]);
    r.expect(OCF_ERR_ARGS, "rewind-or-clone without room for a rebuild");
    assert!(r.exit_reasons()[0].contains("not enough disk"), "{}", r.describe());
    validate(&[policy("rewind"), ("OCF_RESKEY_pgdata", Some(&copy))])
        .expect(OCF_SUCCESS, "a rewind needs no room for a copy");
}

/// rewind-or-clone on a disk without room for a second copy (srv1's data
/// on a tmpfs a little larger than it) and pg_rewind impossible: the start
/// is refused with the reason before anything is written; the data
/// directory is unchanged and nothing is set aside.
pub fn rejoin_clone_refused_without_room(v: u32) {
    let env = env_for!(v, "rejoin_no_room");
    let (p, _s) = diverged_pair(&env, false);
    let du = run_ok(
        std::process::Command::new("du").args(["-sm"]).arg(&p.pgdata),
        Duration::from_secs(30),
        &env.dir,
    );
    let mb: u64 = du.stdout.split_whitespace().next().unwrap().parse().unwrap();
    let small = env.dir.join("small");
    std::fs::create_dir_all(&small).unwrap();
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={}m,mode=0755", mb + 100), "tmpfs"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(st.success(), "mount a tmpfs");
    let _umount = Mounted(small.clone());
    let data = small.join("srv1");
    run_ok(
        std::process::Command::new("cp").arg("-a").arg(&p.pgdata).arg(&data),
        Duration::from_secs(60),
        &env.dir,
    );
    let before = snapshot(&data);
    let pgdata = data.display().to_string();
    let r = rejoin_start(&env, &p, "rewind-or-clone", &[("OCF_RESKEY_pgdata", Some(&pgdata))]);
    r.expect(OCF_ERR_GENERIC, "a rebuild without room");
    assert!(r.exit_reasons()[0].contains("not enough disk to rebuild"), "{}", r.describe());
    assert_same_snapshot(&before, &snapshot(&data), "a rebuild without room");
    let entries: Vec<String> = std::fs::read_dir(&small)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(entries, vec!["srv1".to_string()], "nothing set aside on the small disk");
}

/// A real pg_rewind killed in the middle of its copy (a wrapper kills it
/// with SIGKILL once it has started rewinding, while it copies a 200 MB
/// table the new primary created): the start fails with pg_rewind's
/// failure, the next start puts the kept WAL back and runs pg_rewind again,
/// and srv1 then holds exactly srv2's data (table sums compared).
pub fn rejoin_rewind_killed_mid_copy_is_redone(v: u32) {
    let env = env_for!(v, "rejoin_rewind_killed");
    let (p, s) = diverged_pair(&env, true);
    env.sql_ok(
        &s,
        "CREATE TABLE big AS SELECT g, repeat(md5(g::text), 6) AS t FROM generate_series(1, 800000) g",
    );
    env.sql_ok(&s, "CHECKPOINT");
    let errf = env.dir.join("pg_rewind.err");
    let flag = env.dir.join("pg_rewind.killed");
    let bindir = bindir_with(
        &env,
        "pg_rewind",
        &format!(
            "{passthrough}\n{real} \"$@\" 2> {errf} &\npid=$!\n\
             for i in $(seq 1 400); do grep -q 'rewinding from last common checkpoint' {errf} && break; sleep 0.05; done\n\
             sleep 0.3\nif kill -9 $pid 2>/dev/null; then echo killed > {flag}; fi\nwait $pid\n\
             cat {errf} >&2\nexit 1",
            passthrough = dry_run_passthrough(&env),
            real = env.pg.bin("pg_rewind").display(),
            errf = errf.display(),
            flag = flag.display()
        ),
    );
    let r = rejoin_start(&env, &p, "rewind", &[("OCF_RESKEY_bindir", Some(&bindir))]);
    r.expect(OCF_ERR_GENERIC, "a pg_rewind killed in the middle");
    assert!(r.exit_reasons()[0].contains("pg_rewind failed"), "{}", r.describe());
    assert!(
        flag.exists(),
        "pg_rewind finished before the wrapper could kill it: the case proves nothing\n{}",
        std::fs::read_to_string(&errf).unwrap_or_default()
    );
    reap_orphans();
    let r = rejoin_start(&env, &p, "rewind", &[]);
    r.expect(OCF_SUCCESS, "the next start redoes the rewind");
    assert!(r.log.contains("back in pg_wal"), "{}", r.describe());
    assert_rejoined(&env, &p, &s, &r);
    let lsn = env.current_lsn(&s);
    env.wait_replayed(&p, &lsn);
    for q in [
        "SELECT count(*), sum(hashtext(t)) FROM big",
        "SELECT count(*), sum(i) FROM t",
        "SELECT count(*) FROM pg_class",
    ] {
        assert_eq!(env.sql_ok(&p, q), env.sql_ok(&s, q), "{q} differs between srv1 and srv2");
    }
}

/// The whole cluster starting: no node has the primary's score and no
/// operation in the CIB's history promoted an instance. A former primary
/// does not wait for its primary_conninfo address when nothing listens
/// there (psql is not even run: at a VIP not up yet it would wait for its
/// connect_timeout). While the history shows a promote on srv2, the
/// primary is asked.
pub fn former_primary_start_skips_a_dead_address_when_nobody_is_primary(v: u32) {
    let env = env_for!(v, "former_primary_nobody_primary");
    let (p, s) = two_nodes(&env);
    env.agent(&p, "stop").expect(OCF_SUCCESS, "stop of the primary");
    assert_eq!(env.cluster_state(&p), "shut down");
    // A TCP address where nothing listens (the agent probes TCP only).
    append(
        &p.conf(),
        &format!(
            "primary_conninfo = 'host=127.0.0.1 port={} application_name=srv1'\n",
            unused_port(s.port)
        ),
    );
    let calls = env.dir.join("psql.calls");
    let bindir = bindir_with(
        &env,
        "psql",
        &format!(
            "echo \"$*\" >> {}\nexec {} \"$@\"",
            calls.display(),
            env.pg.bin("psql").display()
        ),
    );
    let start = |env: &TestEnv| {
        env.agent_env(
            &p,
            "start",
            &[("OCF_RESKEY_bindir", Some(&bindir)), ("OCF_RESKEY_CRM_meta_timeout", Some("20000"))],
        )
    };
    // srv2's promote in the history (its score not written yet): asked;
    // unanswered without a score, the start goes on as before.
    env.set_lrm_op("srv2", "pgsqld_last_0", "promote", 0, 0);
    let r = start(&env);
    r.expect(OCF_SUCCESS, "start of a former primary while srv2 was promoted");
    assert!(calls.exists(), "the promoted srv2 was not asked\n{}", r.describe());
    assert!(r.log.contains("no primary reachable through primary_conninfo"), "{}", r.describe());
    std::fs::remove_file(&calls).unwrap();
    // srv1 a former primary again.
    env.sql_ok(&p, "SELECT pg_promote()");
    env.wait_sql(&p, "SELECT pg_is_in_recovery()", "f");
    env.agent(&p, "stop").expect(OCF_SUCCESS, "stop of srv1 as a primary");

    // Nobody is the primary: the dead address is not asked.
    env.clear_lrm_ops("srv2");
    let r = start(&env);
    r.expect(OCF_SUCCESS, "start of a former primary while nobody is the primary");
    assert!(
        r.log.contains("nothing accepts connections at primary_conninfo's address"),
        "{}",
        r.describe()
    );
    assert!(
        !calls.exists(),
        "psql asked a dead address: {}",
        std::fs::read_to_string(&calls).unwrap_or_default()
    );
}
