//! Reading `pg_waldump` output for the switchover check: did this standby
//! receive the old primary's shutdown checkpoint? Pure.

use crate::lsn::Lsn;

/// A `CHECKPOINT_SHUTDOWN` record found in the dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownCheckpoint {
    pub lsn: Lsn,
    pub redo: Lsn,
    pub timeline: u32,
    /// No record follows it in the dump: nothing was written after the
    /// old primary shut down.
    pub is_last_record: bool,
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(key)? + key.len();
    let rest = line[start..].trim_start();
    Some(rest.split([',', ';', ' ']).next().unwrap_or(""))
}

/// The last shutdown checkpoint record on `timeline` in the dump, if any.
/// Lines look like (15 and 18 alike, 18 adds fields inside the description):
/// `rmgr: XLOG len (rec/tot): 114/ 114, tx: 0, lsn: 0/03000028, prev 0/..., desc: CHECKPOINT_SHUTDOWN redo 0/3000028; tli 1; prev tli 1; ...; shutdown`
pub fn find_shutdown_checkpoint(output: &str, timeline: u32) -> Option<ShutdownCheckpoint> {
    let records: Vec<&str> = output.lines().filter(|l| l.starts_with("rmgr: ")).collect();
    let mut found = None;
    for (i, line) in records.iter().enumerate() {
        if !line.starts_with("rmgr: XLOG") {
            continue;
        }
        let Some(desc) = line.split_once("desc: ").map(|(_, d)| d) else { continue };
        if !desc.starts_with("CHECKPOINT_SHUTDOWN ") {
            continue;
        }
        let tli = field(desc, "; tli ").and_then(|t| t.parse::<u32>().ok());
        let (Some(lsn), Some(redo)) = (
            field(line, "lsn: ").and_then(|l| l.parse::<Lsn>().ok()),
            field(desc, "redo ").and_then(|l| l.parse::<Lsn>().ok()),
        ) else {
            continue;
        };
        if tli == Some(timeline) {
            found = Some(ShutdownCheckpoint {
                lsn,
                redo,
                timeline,
                is_last_record: i + 1 == records.len(),
            });
        }
    }
    found
}

/// What the dump says of the old primary's own shutdown checkpoint, the
/// one at `lsn` on `timeline` (recorded when it was demoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// It is there, and it is the last record: nothing was lost after it.
    Last(ShutdownCheckpoint),
    /// It is there, but other records follow it.
    NotLast(ShutdownCheckpoint),
    /// Not in the dump (another shutdown checkpoint, from an earlier
    /// restart of the primary, does not count).
    Missing,
}

pub fn received_checkpoint(output: &str, lsn: Lsn, timeline: u32) -> Received {
    let records: Vec<&str> = output.lines().filter(|l| l.starts_with("rmgr: ")).collect();
    let Some(i) = records
        .iter()
        .position(|l| field(l, "lsn: ").and_then(|v| v.parse::<Lsn>().ok()) == Some(lsn))
    else {
        return Received::Missing;
    };
    match find_shutdown_checkpoint(records[i], timeline) {
        Some(mut c) if c.lsn == lsn => {
            c.is_last_record = i + 1 == records.len();
            if c.is_last_record { Received::Last(c) } else { Received::NotLast(c) }
        }
        _ => Received::Missing,
    }
}

/// Where to start reading for the record that ends at `end`: far enough
/// back to hold a shutdown checkpoint record (about 120 bytes, two WAL page
/// headers at most on the way), short enough to read in a few milliseconds,
/// and within the WAL segment of `end` (16 MB, the default; with larger
/// segments that is still inside one): an older segment may belong to an
/// older timeline, under another file name. A record that starts in the
/// previous segment is not found from there: callers fall back to a longer
/// read.
pub fn tail_window_start(end: Lsn) -> Lsn {
    const WINDOW: u64 = 16 * 1024;
    const SEGMENT: u64 = 16 * 1024 * 1024;
    let segment_start = end.0.saturating_sub(1) / SEGMENT * SEGMENT;
    Lsn(end.0.saturating_sub(WINDOW).max(segment_start))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const PG15: &str = "rmgr: Standby     len (rec/tot):     50/    50, tx:          0, lsn: 0/03000028, prev 0/030000F0, desc: RUNNING_XACTS nextXid 735 latestCompletedXid 734 oldestRunningXid 735\n\
rmgr: XLOG        len (rec/tot):    114/   114, tx:          0, lsn: 0/03000060, prev 0/03000028, desc: CHECKPOINT_SHUTDOWN redo 0/3000060; tli 1; prev tli 1; fpw true; xid 0:735; oid 16384; multi 1; offset 0; oldest xid 716 in DB 1; oldest multi 1 in DB 1; oldest/newest commit timestamp xid: 0/0; oldest running xid 0; shutdown\n";

    #[test]
    fn finds_the_shutdown_checkpoint() {
        let c = find_shutdown_checkpoint(PG15, 1).unwrap();
        assert_eq!(c.lsn.to_string(), "0/3000060");
        assert_eq!(c.redo.to_string(), "0/3000060");
        assert!(c.is_last_record);
        assert_eq!(find_shutdown_checkpoint(PG15, 2), None);
    }

    #[test]
    fn online_checkpoints_and_other_records_do_not_count() {
        let online = PG15
            .replace("CHECKPOINT_SHUTDOWN", "CHECKPOINT_ONLINE")
            .replace("; shutdown", "; online");
        assert_eq!(find_shutdown_checkpoint(&online, 1), None);
        let followed = format!(
            "{PG15}rmgr: Heap        len (rec/tot):     59/    59, tx:        736, lsn: 0/030000D8, prev 0/03000060, desc: INSERT off 2 flags 0x00\n"
        );
        assert!(!find_shutdown_checkpoint(&followed, 1).unwrap().is_last_record);
        assert_eq!(find_shutdown_checkpoint("pg_waldump: error: could not find file\n", 1), None);
    }

    /// Real output of PostgreSQL 15 and 18 (tests/fixtures/generate.sh).
    #[test]
    fn real_waldump_output_of_15_and_18() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        for v in ["pg15", "pg18"] {
            let ok =
                std::fs::read_to_string(root.join(v).join("waldump-switchover-ok.txt")).unwrap();
            let tl =
                ok.lines().find_map(|l| field(l, "; tli ")).and_then(|t| t.parse().ok()).unwrap();
            let c = find_shutdown_checkpoint(&ok, tl)
                .unwrap_or_else(|| panic!("{v}: no shutdown checkpoint"));
            assert!(c.is_last_record, "{v}");
            let bad =
                std::fs::read_to_string(root.join(v).join("waldump-no-shutdown-checkpoint.txt"))
                    .unwrap();
            assert_eq!(find_shutdown_checkpoint(&bad, tl), None, "{v}");
        }
    }

    #[test]
    fn only_the_recorded_checkpoint_as_last_record_counts() {
        let lsn = Lsn(0x0300_0060);
        assert!(matches!(received_checkpoint(PG15, lsn, 1), Received::Last(c) if c.lsn == lsn));
        assert_eq!(received_checkpoint(PG15, lsn, 2), Received::Missing);
        // an earlier restart's shutdown checkpoint is not the one of the demote
        assert_eq!(received_checkpoint(PG15, Lsn(0x0300_0100), 1), Received::Missing);
        // the right LSN on a record that is not a shutdown checkpoint
        assert_eq!(received_checkpoint(PG15, Lsn(0x0300_0028), 1), Received::Missing);
        let followed = format!(
            "{PG15}rmgr: Heap        len (rec/tot):     59/    59, tx:        736, lsn: 0/030000D8, prev 0/03000060, desc: INSERT off 2 flags 0x00\n"
        );
        assert!(matches!(received_checkpoint(&followed, lsn, 1), Received::NotLast(_)));
    }

    #[test]
    fn tail_window_holds_the_last_record_within_its_segment() {
        // mid-segment: 16 kB back
        assert_eq!(tail_window_start(Lsn(0x0300_8000)), Lsn(0x0300_4000));
        let end = Lsn(0x0300_80A0);
        assert!(
            tail_window_start(end).0 < end.0 - 114 - 2 * 40,
            "a checkpoint record and two page headers fit"
        );
        // near the start of a segment: not before it
        assert_eq!(tail_window_start(Lsn(0x0400_0230)), Lsn(0x0400_0000));
        // a record ending exactly at a segment boundary belongs to the one before
        assert_eq!(tail_window_start(Lsn(0x0400_0000)), Lsn(0x03FF_C000));
        assert_eq!(tail_window_start(Lsn(100)), Lsn(0));
        assert_eq!(tail_window_start(Lsn(0)), Lsn(0));
    }

    proptest::proptest! {
        /// A shutdown checkpoint record as pg_waldump prints it is found,
        /// with its positions, as the last record.
        #[test]
        fn printed_checkpoints_read_back(lsn: u64, redo: u64, tli in 1u32.., prev: u64) {
            let (lsn, redo, prev) = (Lsn(lsn), Lsn(redo), Lsn(prev));
            let line = format!(
                "rmgr: XLOG        len (rec/tot):    114/   114, tx:          0, lsn: {lsn}, prev {prev}, desc: CHECKPOINT_SHUTDOWN redo {redo}; tli {tli}; prev tli {tli}; fpw true; xid 0:735; shutdown\n"
            );
            let want = ShutdownCheckpoint { lsn, redo, timeline: tli, is_last_record: true };
            proptest::prop_assert_eq!(find_shutdown_checkpoint(&line, tli), Some(want.clone()));
            proptest::prop_assert_eq!(received_checkpoint(&line, lsn, tli), Received::Last(want));
        }

        #[test]
        fn any_output_is_read_without_panic(s in "(rmgr: XLOG|lsn: |desc: CHECKPOINT_SHUTDOWN |redo |; tli |\\PC|\n){0,60}", lsn: u64, tli: u32) {
            let _ = find_shutdown_checkpoint(&s, tli);
            let _ = received_checkpoint(&s, Lsn(lsn), tli);
            let _ = tail_window_start(Lsn(lsn));
        }
    }
}
