//! What a soak records (plain data, saved as history.json in the evidence
//! directory): the checker reads only this. Times are milliseconds since the
//! Unix epoch (wall clock of the host, the one clock every recorder shares).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Rows present on a node, per writer: sorted, disjoint, inclusive id ranges.
pub type RowSet = BTreeMap<u32, Vec<(i64, i64)>>;

/// Ranges from a sorted list of ids.
pub fn to_ranges(ids: &[i64]) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    for &id in ids {
        match out.last_mut() {
            Some((_, hi)) if *hi + 1 == id => *hi = id,
            Some((_, hi)) if *hi >= id => {}
            _ => out.push((id, id)),
        }
    }
    out
}

pub fn contains(set: &RowSet, writer: u32, id: i64) -> bool {
    set.get(&writer).is_some_and(|r| {
        let i = r.partition_point(|(_, hi)| *hi < id);
        i < r.len() && r[i].0 <= id
    })
}

/// A commit the server acknowledged (its COMMIT returned success).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    pub writer: u32,
    pub id: i64,
    pub t: u64,
}

/// A statement or connection that failed (the outcome of that row unknown).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WriteError {
    pub writer: u32,
    pub t: u64,
    pub error: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeState {
    /// not in recovery, transaction_read_only off, and txid_current()
    /// (a write) succeeded
    Writable,
    /// answered, but in recovery or read only
    ReadOnly,
    /// off, not running, or no answer within the poll timeout
    Unreachable,
}

/// One answer of the poller about one node: the question was sent at
/// `sent`, the answer came at `recv`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub node: String,
    pub sent: u64,
    pub recv: u64,
    pub state: NodeState,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    pub index: usize,
    pub kind: String,
    /// nodes hit, in the order of the fault's description
    pub targets: Vec<String>,
    pub secs: u64,
    pub start: u64,
    /// injection over (e.g. partition healed, node unstandby'd)
    pub injected: u64,
    /// steady again, or the convergence deadline
    pub end: u64,
    pub converged: bool,
    /// administrator's repairs the harness made to converge (rebuild of a
    /// diverged old primary), or after a non-converged fault
    pub repairs: Vec<String>,
    /// nodes fenced (hypervisor log) between start and end
    pub fences: Vec<String>,
    /// nodes whose fencing this fault justifies
    pub allowed_fences: Vec<String>,
    /// any fence is justified (whole-cluster power cut)
    pub any_fence_ok: bool,
    /// checksum of the soak table on each node once steady (writers paused,
    /// standbys caught up); None: the node did not answer
    pub checksums: BTreeMap<String, Option<String>>,
    /// rows on the primary once steady, and when they were read
    pub rows: Option<RowSet>,
    pub rows_at: u64,
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub seed: u64,
    pub planned: usize,
    pub agent: String,
    pub nodes: Vec<String>,
    pub started: u64,
    pub finished: u64,
    pub faults: Vec<FaultRecord>,
    pub acks: Vec<Ack>,
    pub write_errors: Vec<WriteError>,
    pub samples: Vec<Sample>,
    /// the cluster had to be built anew (up.sh): rows acknowledged before
    /// are gone with it and cannot be checked
    pub resets: Vec<u64>,
    pub final_primary: Option<String>,
    pub final_rows: Option<RowSet>,
    pub final_rows_at: u64,
    pub final_checksums: BTreeMap<String, Option<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_membership() {
        let r = to_ranges(&[1, 2, 3, 5, 7, 8]);
        assert_eq!(r, vec![(1, 3), (5, 5), (7, 8)]);
        let set: RowSet = [(1, r)].into();
        for (id, inside) in [
            (0, false),
            (1, true),
            (3, true),
            (4, false),
            (5, true),
            (6, false),
            (8, true),
            (9, false),
        ] {
            assert_eq!(contains(&set, 1, id), inside, "id {id}");
        }
        assert!(!contains(&set, 2, 1));
        assert_eq!(to_ranges(&[]), vec![]);
    }
}
