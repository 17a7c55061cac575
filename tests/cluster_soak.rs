//! Seeded fault soak against the namespace cluster of tests/cluster.
//!
//! `tests/cluster/soak.sh N SEED` runs N faults drawn from SEED (SplitMix64:
//! the same seed replays the same sequence), each injected while two writers
//! append rows through the VIP and a poller asks every node five times a
//! second whether it accepts writes; after each fault the harness waits for a
//! steady cluster (bounded) and runs the checker over the recorded history.
//! Evidence (schedule, faults.log, history.json, report.md, logs of the
//! faults that failed) goes to target/soak/seed-SEED-TIME/.
//!
//! ```text
//! tests/cluster/soak.sh 10 42                       # up if needed, soak, down
//! tests/cluster/soak.sh --regressions               # the seeds of tests/soak/regressions.txt
//! PGSQLMS_CLUSTER=1 SOAK_FAULTS=10 SOAK_SEED=42 cargo test --test cluster_soak soak -- --ignored --nocapture
//! SOAK_RECHECK=target/soak/.../history.json cargo test --test cluster_soak recheck -- --ignored --nocapture
//! ```
//!
//! The unit tests of the schedule and of the checker (crafted histories, one
//! per violated property) run with a plain `cargo test`.

mod cluster_harness;
mod soak;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use soak::driver::{self, say};
use soak::plan::{Kind, describe, schedule};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v}: not a number")))
}

#[test]
#[ignore = "needs the namespace cluster: tests/cluster/soak.sh"]
fn soak() {
    if std::env::var("PGSQLMS_CLUSTER").as_deref() != Ok("1") {
        panic!("cluster_soak: set PGSQLMS_CLUSTER=1 (see tests/cluster/soak.sh)");
    }
    if !nix::unistd::geteuid().is_root() {
        panic!("the soak must run as root");
    }
    let n = env_u64("SOAK_FAULTS").unwrap_or(10) as usize;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let seed = seed_of(&std::env::var("SOAK_SEED").unwrap_or_default(), now);
    let faults = schedule(seed, n, &kinds());
    let evidence = format!(
        "{}/seed-{seed}-{now}",
        std::env::var("SOAK_DIR").unwrap_or_else(|_| concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/soak"
        )
        .into())
    );
    say(&format!("SOAK seed={seed} faults={n} evidence={evidence}"));
    for f in &faults {
        say(&format!("  {}", describe(f)));
    }
    let o = driver::Options {
        seed,
        faults,
        budget: env_u64("SOAK_BUDGET_SECS").filter(|b| *b > 0).map(Duration::from_secs),
        converge_secs: env_u64("SOAK_CONVERGE_SECS").unwrap_or(120),
        evidence,
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio");
    let (h, report) = rt.block_on(driver::soak(o));
    let line = report.summary_line(h.seed, h.planned);
    let results = concat!(env!("CARGO_MANIFEST_DIR"), "/target/soak-results.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(results) {
        use std::io::Write as _;
        let _ = writeln!(f, "{line}");
    }
    say(&report.markdown());
    assert!(report.ok(), "{line}");
}

/// The schedule a seed gives, without a cluster (soak.sh --plan N SEED).
#[test]
#[ignore = "prints the schedule of SOAK_SEED, SOAK_FAULTS"]
fn plan() {
    let n = env_u64("SOAK_FAULTS").unwrap_or(10) as usize;
    let seed = seed_of(&std::env::var("SOAK_SEED").unwrap_or_default(), 0);
    say(&format!("seed {seed}"));
    for f in schedule(seed, n, &kinds()) {
        say(&format!("  {}", describe(&f)));
    }
}

/// A number, or any text (a commit id, a date) hashed into one.
fn seed_of(v: &str, default: u64) -> u64 {
    if v.is_empty() { default } else { v.parse().unwrap_or_else(|_| soak::prng::seed_from_text(v)) }
}

fn kinds() -> Vec<Kind> {
    std::env::var("SOAK_KINDS")
        .unwrap_or_default()
        .split(',')
        .filter(|k| !k.is_empty())
        .map(|k| Kind::from_name(k).unwrap_or_else(|| panic!("SOAK_KINDS: unknown fault {k}")))
        .collect()
}

/// The checker again over a saved history.json.
#[test]
#[ignore = "reads SOAK_RECHECK=path/to/history.json"]
fn recheck() {
    let path = std::env::var("SOAK_RECHECK").expect("SOAK_RECHECK=path/to/history.json");
    let text = std::fs::read_to_string(&path).expect("history.json");
    let h: soak::history::History = serde_json::from_str(&text).expect("a soak history");
    let report = soak::checker::check(&h);
    say(&report.summary_line(h.seed, h.planned));
    say(&report.markdown());
}
