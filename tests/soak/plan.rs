//! The fault schedule: N faults drawn from a seed, each with its targets
//! given by role (the primary, the k-th standby in name order) so that a
//! replay hits the same roles even when elections put them on other nodes.

use super::prng::SplitMix64;

/// Which node a fault hits, resolved against the roles seen just before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Target {
    Primary,
    /// standbys (sorted by name)[k % count]
    Standby(u64),
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// kill -9 of the primary's postmaster
    KillPrimary,
    /// kill -9 of a standby's postmaster
    KillStandby,
    /// power loss of the primary's node (crash.sh): fenced, reboots
    PowerOffPrimary,
    PowerOffStandby,
    /// the node alone on its own switch, processes alive; healed once it is
    /// fenced (or after a while)
    PartitionPrimary,
    PartitionStandby,
    /// pcs-examples/02-switchover.sh to a standby
    Switchover,
    /// pcs node standby, then unstandby (pcs-examples/03-node-standby.sh)
    NodeStandbyPrimary,
    NodeStandbyStandby,
    /// a standby's replication link cut (cut-replication.sh) for `secs`
    CutReplication,
    /// every node powered off at once, then booted
    ClusterPowerCut,
    /// the primary's node cgroup frozen for `secs` (> monitor timeout), then
    /// thawed unless fenced meanwhile
    FreezePrimary,
    /// SIGSTOP of every PostgreSQL process of the primary for `secs`, then
    /// SIGCONT unless fenced meanwhile
    HangPostgresPrimary,
    /// a standby's node powered off, then at once kill -9 of the primary's
    /// postmaster
    DoubleFault,
}

/// Kinds and their weights (relative frequencies).
pub const WEIGHTS: &[(Kind, u64)] = &[
    (Kind::KillPrimary, 12),
    (Kind::KillStandby, 10),
    (Kind::PowerOffPrimary, 8),
    (Kind::PowerOffStandby, 6),
    (Kind::PartitionPrimary, 6),
    (Kind::PartitionStandby, 4),
    (Kind::Switchover, 10),
    (Kind::NodeStandbyPrimary, 5),
    (Kind::NodeStandbyStandby, 3),
    (Kind::CutReplication, 6),
    (Kind::ClusterPowerCut, 3),
    (Kind::FreezePrimary, 4),
    (Kind::HangPostgresPrimary, 4),
    (Kind::DoubleFault, 4),
];

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::KillPrimary => "kill_primary",
            Kind::KillStandby => "kill_standby",
            Kind::PowerOffPrimary => "power_off_primary",
            Kind::PowerOffStandby => "power_off_standby",
            Kind::PartitionPrimary => "partition_primary",
            Kind::PartitionStandby => "partition_standby",
            Kind::Switchover => "switchover",
            Kind::NodeStandbyPrimary => "node_standby_primary",
            Kind::NodeStandbyStandby => "node_standby_standby",
            Kind::CutReplication => "cut_replication",
            Kind::ClusterPowerCut => "cluster_power_cut",
            Kind::FreezePrimary => "freeze_primary",
            Kind::HangPostgresPrimary => "hang_postgres_primary",
            Kind::DoubleFault => "double_fault",
        }
    }

    pub fn from_name(s: &str) -> Option<Kind> {
        WEIGHTS.iter().map(|(k, _)| *k).find(|k| k.name() == s)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FaultSpec {
    pub index: usize,
    pub kind: Kind,
    /// the node hit (for DoubleFault: the standby powered off; the primary
    /// is the second one)
    pub target: Target,
    /// how long the fault lasts where that applies (cut, freeze, hang,
    /// node standby), seconds
    pub secs: u64,
}

/// The schedule of `n` faults for `seed`, optionally restricted to some
/// kinds (their relative weights kept).
pub fn schedule(seed: u64, n: usize, only: &[Kind]) -> Vec<FaultSpec> {
    let table: Vec<(Kind, u64)> =
        WEIGHTS.iter().copied().filter(|(k, _)| only.is_empty() || only.contains(k)).collect();
    let weights: Vec<u64> = table.iter().map(|(_, w)| *w).collect();
    let mut g = SplitMix64::new(seed);
    (0..n)
        .map(|index| {
            let kind = table[g.weighted(&weights)].0;
            // Always draw the same number of values per fault: a kind's
            // parameters never shift the draws of the faults after it.
            let pick = g.below(1 << 16);
            let secs_draw = g.next_u64();
            let target = match kind {
                Kind::KillPrimary
                | Kind::PowerOffPrimary
                | Kind::PartitionPrimary
                | Kind::NodeStandbyPrimary
                | Kind::FreezePrimary
                | Kind::HangPostgresPrimary
                | Kind::ClusterPowerCut => Target::Primary,
                _ => Target::Standby(pick),
            };
            let (lo, hi) = match kind {
                Kind::CutReplication => (3, 15),
                Kind::FreezePrimary => (12, 20),
                Kind::HangPostgresPrimary => (15, 30),
                Kind::NodeStandbyPrimary | Kind::NodeStandbyStandby => (3, 10),
                _ => (0, 0),
            };
            let secs = lo + secs_draw % (hi - lo + 1);
            FaultSpec { index, kind, target, secs }
        })
        .collect()
}

/// One line per fault, the evidence's schedule.txt.
pub fn describe(spec: &FaultSpec) -> String {
    let t = match spec.target {
        Target::Primary => "primary".to_string(),
        Target::Standby(k) => format!("standby#{k}"),
    };
    format!("{:>3} {:<22} target={t} secs={}", spec.index, spec.kind.name(), spec.secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_exactly_and_seeds_differ() {
        assert_eq!(schedule(7, 50, &[]), schedule(7, 50, &[]));
        assert_ne!(schedule(7, 50, &[]), schedule(8, 50, &[]));
        // a prefix of a longer run is the shorter run
        assert_eq!(schedule(7, 50, &[])[..20], schedule(7, 20, &[])[..]);
    }

    #[test]
    fn every_kind_is_drawn_and_parameters_stay_in_bounds() {
        let s = schedule(1, 2000, &[]);
        for (k, _) in WEIGHTS {
            assert!(s.iter().any(|f| f.kind == *k), "{k:?} never drawn");
        }
        for f in &s {
            match f.kind {
                Kind::CutReplication => assert!((3..=15).contains(&f.secs)),
                Kind::FreezePrimary => assert!((12..=20).contains(&f.secs)),
                Kind::HangPostgresPrimary => assert!((15..=30).contains(&f.secs)),
                Kind::KillPrimary => assert_eq!((f.target, f.secs), (Target::Primary, 0)),
                Kind::KillStandby => assert!(matches!(f.target, Target::Standby(_))),
                _ => {}
            }
        }
    }

    #[test]
    fn a_restriction_keeps_only_those_kinds() {
        let s = schedule(3, 100, &[Kind::Switchover, Kind::KillStandby]);
        assert!(s.iter().all(|f| matches!(f.kind, Kind::Switchover | Kind::KillStandby)));
        assert!(s.iter().any(|f| f.kind == Kind::Switchover));
    }

    #[test]
    fn names_round_trip() {
        for (k, _) in WEIGHTS {
            assert_eq!(Kind::from_name(k.name()), Some(*k));
        }
        assert_eq!(Kind::from_name("nope"), None);
    }
}
