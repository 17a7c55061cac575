//! Replication slots (parameter replication_slots) against real servers:
//! the primary's monitor keeps one per other node, standbys start with
//! theirs and keep the other nodes' slots advancing, validate-all refuses
//! an unbounded max_slot_wal_keep_size. Shared by every version.

use super::*;
use std::time::Duration;

macro_rules! env_for {
    ($v:expr, $name:expr) => {
        match Pg::get($v) {
            Some(pg) => TestEnv::new(&pg, $name),
            None => return,
        }
    };
}

const SLOTS_ON: (&str, Option<&str>) = ("OCF_RESKEY_replication_slots", Some("true"));

fn grace(s: &str) -> (&'static str, Option<&str>) {
    ("OCF_RESKEY_replication_slots_grace", Some(s))
}

fn monitor_env(interval_ms: &'static str) -> [(&'static str, Option<&'static str>); 2] {
    [
        ("OCF_RESKEY_CRM_meta_interval", Some(interval_ms)),
        ("OCF_RESKEY_CRM_meta_timeout", Some("10000")),
    ]
}

/// The primary's monitor (interval 15 s) with slots on and `extra`.
fn primary_monitor(env: &TestEnv, p: &Instance, extra: &[(&str, Option<&str>)]) -> AgentRun {
    let mut changes: Vec<(&str, Option<&str>)> = monitor_env("15000").to_vec();
    changes.push(SLOTS_ON);
    changes.extend_from_slice(extra);
    let r = env.agent_env(p, "monitor", &changes);
    r.expect(OCF_RUNNING_PROMOTED, "monitor of the primary");
    r
}

fn standby_monitor(env: &TestEnv, s: &Instance) -> AgentRun {
    let mut changes: Vec<(&str, Option<&str>)> = monitor_env("16000").to_vec();
    changes.push(SLOTS_ON);
    let r = env.agent_env(s, "monitor", &changes);
    r.expect(OCF_SUCCESS, "monitor of a standby");
    r
}

/// Slot names of `inst`, sorted.
fn slot_names(env: &TestEnv, inst: &Instance) -> Vec<String> {
    let out = env.sql_ok(inst, "SELECT slot_name FROM pg_replication_slots ORDER BY 1");
    out.lines().map(str::to_string).collect()
}

/// Writes `n` WAL segments' worth of positions (a row, then a switch, each
/// time) and checkpoints twice, so that segments nobody keeps are removed.
fn write_segments(env: &TestEnv, p: &Instance, n: usize) {
    env.sql_ok(p, "CREATE TABLE IF NOT EXISTS w (i int)");
    for i in 0..n {
        env.sql_ok(p, &format!("INSERT INTO w VALUES ({i})"));
        env.sql_ok(p, "SELECT pg_switch_wal()");
    }
    env.sql_ok(p, "CHECKPOINT");
    env.sql_ok(p, "INSERT INTO w VALUES (-1)");
    env.sql_ok(p, "CHECKPOINT");
}

fn lost_attr(env: &TestEnv, node: &str) -> Option<String> {
    fs::read_to_string(env.fake.join("attrs").join(node).join(format!("pgsqlms-slot-lost-{RSC}")))
        .ok()
}

/// A primary whose slots are bounded, started outside the agent.
fn bounded_primary(env: &TestEnv, extra_conf: &str) -> Instance {
    let p = env.init_instance("srv1");
    append(&p.conf(), &format!("max_slot_wal_keep_size = '1GB'\n{extra_conf}"));
    env.start(&p);
    p
}

pub fn slots_primary_monitor_keeps_one_per_node(v: u32) {
    let env = env_for!(v, "slots_primary");
    let p = bounded_primary(&env, "log_statement = 'all'\n");
    env.add_node("srv2");
    env.add_node("srv-3.example"); // a name that is not a valid slot name
    env.sql_ok(&p, "SELECT pg_create_physical_replication_slot('operator_slot')");
    env.sql_ok(&p, "SELECT pg_create_physical_replication_slot('pgsqlms_gone', true)");

    // Off by default: nothing created.
    env.agent_env(&p, "monitor", &monitor_env("15000")).expect(OCF_RUNNING_PROMOTED, "monitor");
    assert_eq!(slot_names(&env, &p), ["operator_slot", "pgsqlms_gone"]);

    let r = primary_monitor(&env, &p, &[grace("3")]);
    let names = slot_names(&env, &p);
    assert_eq!(names.len(), 4, "{names:?}\n{}", r.describe());
    assert!(names.contains(&"pgsqlms_srv2".to_string()), "{names:?}");
    let odd =
        names.iter().find(|n| n.starts_with("pgsqlms_srv_3_example_")).expect("slot of srv-3");
    assert!(!names.contains(&"pgsqlms_srv1".to_string()), "no slot for the primary itself");
    // They reserve WAL from their creation on.
    assert_eq!(
        env.sql_ok(&p, "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'pgsqlms%' AND restart_lsn IS NOT NULL"),
        "3"
    );
    assert!(r.log.contains("belongs to no cluster node"), "{}", r.describe());

    // Nothing changes: nothing logged, no process but the cibadmin every
    // primary monitor runs, and as many statements (log_statement = all)
    // as a monitor without slots: the slot list rides in the same query.
    let statements = |f: &dyn Fn()| {
        let log = p.pgdata.join("log/postgresql.log");
        let before = fs::read_to_string(&log).unwrap_or_default().len();
        f();
        let text = fs::read_to_string(&log).unwrap_or_default();
        text[before.min(text.len())..].matches("statement: ").count()
    };
    let without = statements(&|| {
        env.agent_env(&p, "monitor", &monitor_env("15000"))
            .expect(OCF_RUNNING_PROMOTED, "monitor without slots");
    });
    env.clear_calls();
    let with = statements(&|| {
        let r = primary_monitor(&env, &p, &[grace("3")]);
        assert!(!r.log.contains("created") && !r.log.contains("dropped"), "{}", r.describe());
    });
    assert!(without > 0, "log_statement shows no statement of the monitor");
    assert_eq!(with, without, "statements of a steady monitor with slots vs without");
    assert_eq!(env.calls(), ["cibadmin --query"], "processes of a steady monitor with slots");
    let r = primary_monitor(&env, &p, &[grace("3")]);
    assert!(!r.log.contains("created") && !r.log.contains("dropped"), "{}", r.describe());
    assert!(slot_names(&env, &p).contains(&"pgsqlms_gone".to_string()), "dropped within the grace");

    // After the grace: the orphan goes, the operator's slot stays.
    std::thread::sleep(Duration::from_millis(3200));
    let r = primary_monitor(&env, &p, &[grace("3")]);
    assert!(r.log.contains("dropped replication slot pgsqlms_gone"), "{}", r.describe());
    let names = slot_names(&env, &p);
    assert!(!names.contains(&"pgsqlms_gone".to_string()), "{names:?}");
    assert!(names.contains(&"operator_slot".to_string()), "{names:?}");

    // A node removed from the cluster: its slot goes after the grace.
    env.set_nodes(&["srv1", "srv-3.example"]);
    primary_monitor(&env, &p, &[grace("1")]);
    assert!(slot_names(&env, &p).contains(&"pgsqlms_srv2".to_string()), "dropped at once");
    std::thread::sleep(Duration::from_millis(1200));
    primary_monitor(&env, &p, &[grace("1")]);
    let names = slot_names(&env, &p);
    assert_eq!(names, ["operator_slot".to_string(), odd.clone()], "{names:?}");

    // A node list without this node is not trusted: nothing dropped.
    env.set_nodes(&["srv9"]);
    primary_monitor(&env, &p, &[grace("0")]);
    assert_eq!(slot_names(&env, &p), ["operator_slot".to_string(), odd.clone()]);
}

pub fn slots_invalidated_slot_is_reported(v: u32) {
    let env = env_for!(v, "slots_lost");
    let p = env.init_instance("srv1");
    // The slot may keep 32 MB: a few switched segments exceed it.
    append(&p.conf(), "max_slot_wal_keep_size = '32MB'\nwal_keep_size = 0\n");
    env.start(&p);
    env.add_node("srv2");
    primary_monitor(&env, &p, &[]);
    assert_eq!(slot_names(&env, &p), ["pgsqlms_srv2"]);
    write_segments(&env, &p, 5);
    assert_eq!(
        env.sql_ok(
            &p,
            "SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'pgsqlms_srv2'"
        ),
        "lost"
    );
    let r = primary_monitor(&env, &p, &[]);
    assert!(
        r.log.contains("replication slot pgsqlms_srv2 of srv2 was invalidated")
            && r.log.contains("WARN"),
        "{}",
        r.describe()
    );
    assert_eq!(lost_attr(&env, "srv2").as_deref(), Some("pgsqlms_srv2"));
    // Made again, so a rebuilt srv2 finds a working slot.
    assert_eq!(
        env.sql_ok(
            &p,
            "SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'pgsqlms_srv2'"
        ),
        "reserved"
    );
    // The attribute stays until srv2 streams again.
    primary_monitor(&env, &p, &[]);
    assert_eq!(lost_attr(&env, "srv2").as_deref(), Some("pgsqlms_srv2"));
}

pub fn slots_standby_uses_its_slot_and_advances_the_others(v: u32) {
    let env = env_for!(v, "slots_standby");
    let p = bounded_primary(&env, "");
    let s = env.clone_standby(&p, "srv2");
    let s3 = env.clone_standby(&p, "srv3");
    primary_monitor(&env, &p, &[]);
    assert_eq!(slot_names(&env, &p), ["pgsqlms_srv2", "pgsqlms_srv3"]);

    let conf_before = fs::read_to_string(s.conf()).unwrap();
    let auto_before = fs::read_to_string(s.pgdata.join("postgresql.auto.conf")).unwrap();
    env.agent_env(&s, "start", &[SLOTS_ON]).expect(OCF_SUCCESS, "start of the standby");
    env.agent_env(&s3, "start", &[SLOTS_ON]).expect(OCF_SUCCESS, "start of the other standby");
    env.wait_streaming(&p, &s);
    env.wait_streaming(&p, &s3);
    for slot in ["pgsqlms_srv2", "pgsqlms_srv3"] {
        env.wait_sql(
            &p,
            &format!("SELECT active FROM pg_replication_slots WHERE slot_name = '{slot}'"),
            "t",
        );
    }
    assert_eq!(env.sql_ok(&s, "SHOW primary_slot_name"), "pgsqlms_srv2");
    assert_eq!(fs::read_to_string(s.conf()).unwrap(), conf_before, "postgresql.conf written");
    assert_eq!(
        fs::read_to_string(s.pgdata.join("postgresql.auto.conf")).unwrap(),
        auto_before,
        "postgresql.auto.conf written"
    );
    // Each standby holds the other nodes' slots, not its own.
    assert_eq!(slot_names(&env, &s), ["pgsqlms_srv1", "pgsqlms_srv3"]);
    assert_eq!(slot_names(&env, &s3), ["pgsqlms_srv1", "pgsqlms_srv2"]);

    // They follow its replay.
    write_segments(&env, &p, 2);
    let lsn = env.current_lsn(&p);
    env.wait_replayed(&s, &lsn);
    env.wait_replayed(&s3, &lsn);
    standby_monitor(&env, &s);
    assert_eq!(
        env.sql_ok(
            &s,
            &format!(
                "SELECT count(*) FROM pg_replication_slots WHERE restart_lsn >= '{lsn}' AND NOT active"
            )
        ),
        "2",
        "slots advanced to the replayed position"
    );

    // A failover: the new primary already holds a slot for the others, and
    // the other standby streams from it through its slot.
    env.stop(&p, "fast");
    env.agent_env(&s, "promote", &[SLOTS_ON]).expect(OCF_SUCCESS, "promote of the standby");
    assert_eq!(slot_names(&env, &s), ["pgsqlms_srv1", "pgsqlms_srv3"]);
    primary_monitor(&env, &s, &[]);
    assert_eq!(slot_names(&env, &s), ["pgsqlms_srv1", "pgsqlms_srv3"]);
    env.set_upstream(&s3, s.port);
    env.agent_env(&s3, "stop", &[SLOTS_ON]).expect(OCF_SUCCESS, "stop of the other standby");
    env.agent_env(&s3, "start", &[SLOTS_ON]).expect(OCF_SUCCESS, "start on the new primary");
    env.wait_streaming(&s, &s3);
    env.wait_sql(
        &s,
        "SELECT active FROM pg_replication_slots WHERE slot_name = 'pgsqlms_srv3'",
        "t",
    );
    env.sql_ok(&s, "INSERT INTO w VALUES (42)");
    let lsn = env.current_lsn(&s);
    env.wait_replayed(&s3, &lsn);
}

pub fn slots_validate_refuses_unbounded_wal(v: u32) {
    let env = env_for!(v, "slots_validate");
    let inst = env.init_instance("srv1");
    let r = env.agent_env(&inst, "validate-all", &[SLOTS_ON]);
    r.expect(OCF_ERR_ARGS, "validate-all with slots and max_slot_wal_keep_size = -1");
    assert!(
        r.exit_reasons().iter().any(|l| l.contains("max_slot_wal_keep_size is -1")),
        "{}",
        r.describe()
    );
    let r = env.agent_env(&inst, "start", &[SLOTS_ON]);
    r.expect(OCF_ERR_ARGS, "start with slots and max_slot_wal_keep_size = -1");
    assert!(!env.is_running(&inst), "started despite an unbounded max_slot_wal_keep_size");
    append(&inst.conf(), "max_slot_wal_keep_size = 0\n");
    env.agent_env(&inst, "validate-all", &[SLOTS_ON])
        .expect(OCF_ERR_ARGS, "validate-all with max_slot_wal_keep_size = 0");
    append(&inst.conf(), "max_slot_wal_keep_size = '2GB'\n");
    env.agent_env(&inst, "validate-all", &[SLOTS_ON])
        .expect(OCF_SUCCESS, "validate-all with a bounded max_slot_wal_keep_size");
    // Off: not checked.
    append(&inst.conf(), "max_slot_wal_keep_size = -1\n");
    env.agent(&inst, "validate-all").expect(OCF_SUCCESS, "validate-all without slots");
}

/// A standby stopped while the primary writes several times wal_keep_size:
/// with `slots` it streams again; without, its monitor says why not.
fn standby_behind_recycled_wal(v: u32, name: &str, slots: bool) {
    let env = env_for!(v, name);
    let p = bounded_primary(&env, "wal_keep_size = '32MB'\n");
    let s = env.clone_standby(&p, "srv2");
    let on: &[(&str, Option<&str>)] = if slots { &[SLOTS_ON] } else { &[] };
    if slots {
        primary_monitor(&env, &p, &[]);
    }
    env.agent_env(&s, "start", on).expect(OCF_SUCCESS, "start of the standby");
    env.wait_streaming(&p, &s);
    env.agent_env(&s, "stop", on).expect(OCF_SUCCESS, "stop of the standby");
    write_segments(&env, &p, 8); // 128 MB: four times wal_keep_size
    let lsn = env.current_lsn(&p);
    env.agent_env(&s, "start", on).expect(OCF_SUCCESS, "start of the standby behind");
    if slots {
        env.wait_streaming(&p, &s);
        env.wait_replayed(&s, &lsn);
        return;
    }
    // The WAL it needs is gone: it never streams, and its monitor says why.
    let mut last = String::new();
    let t0 = std::time::Instant::now();
    while t0.elapsed() < Duration::from_secs(30) {
        let mut changes: Vec<(&str, Option<&str>)> = monitor_env("16000").to_vec();
        changes.extend_from_slice(on);
        let r = env.agent_env(&s, "monitor", &changes);
        r.expect(OCF_SUCCESS, "monitor of the standby that cannot catch up");
        if r.log.contains("cannot catch up") {
            assert!(
                r.log.contains("already removed WAL segment 0000000100000000000000")
                    && r.log.contains("replication_slots=true")
                    && r.log.contains("rebuild"),
                "{}",
                r.describe()
            );
            assert_eq!(
                env.sql_ok(
                    &p,
                    "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
                ),
                "0"
            );
            return;
        }
        last = r.describe();
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("the standby's monitor never said why it does not stream\n{last}");
}

pub fn slots_stopped_standby_catches_up(v: u32) {
    standby_behind_recycled_wal(v, "slots_catch_up", true);
}

pub fn no_slots_stopped_standby_says_why_it_cannot_catch_up(v: u32) {
    standby_behind_recycled_wal(v, "no_slots_behind", false);
}

/// replication_slots turned on while a standby runs: it streams without
/// its slot until restarted. Its slot follows it meanwhile (an unused slot
/// would keep WAL until it is invalidated), and its monitor says to
/// restart it.
pub fn slots_turned_on_under_a_running_standby(v: u32) {
    let env = env_for!(v, "slots_late");
    let p = bounded_primary(&env, "");
    let s = env.clone_standby(&p, "srv2");
    env.agent(&s, "start").expect(OCF_SUCCESS, "start without slots");
    env.wait_streaming(&p, &s);
    primary_monitor(&env, &p, &[]);
    let created = env.sql_ok(&p, "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'pgsqlms_srv2' AND NOT active");
    assert!(!created.is_empty(), "slot of srv2 not created, or in use");
    write_segments(&env, &p, 2);
    let lsn = env.current_lsn(&p);
    env.wait_written(&p, "srv2", &lsn);
    let r = primary_monitor(&env, &p, &[("HA_debug", Some("1"))]);
    assert!(r.log.contains("streams without it"), "{}", r.describe());
    assert_eq!(
        env.sql_ok(&p, &format!("SELECT restart_lsn >= '{lsn}' FROM pg_replication_slots WHERE slot_name = 'pgsqlms_srv2'")),
        "t"
    );
    let r = standby_monitor(&env, &s);
    assert!(r.log.contains("restart it to use its slot"), "{}", r.describe());
    // Restarted with the parameter: it uses its slot.
    env.agent(&s, "stop").expect(OCF_SUCCESS, "stop");
    env.agent_env(&s, "start", &[SLOTS_ON]).expect(OCF_SUCCESS, "start with slots");
    env.wait_sql(
        &p,
        "SELECT active FROM pg_replication_slots WHERE slot_name = 'pgsqlms_srv2'",
        "t",
    );
    let r = standby_monitor(&env, &s);
    assert!(!r.log.contains("restart it"), "{}", r.describe());
}
