//! Reading `pg_waldump` output: did this standby receive the old primary's
//! shutdown checkpoint (switchover check), and where does the valid WAL a
//! node holds on disk end (election and cold start)? Pure.

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

/// Where `pg_waldump --quiet` stopped reading the valid WAL in a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalStop {
    /// The record starting here is the last valid one (`error in WAL record
    /// at <lsn>: ...`): the end is that record's end.
    LastRecordAt(Lsn),
    /// The valid WAL ends here: at a segment's end (the next segment's file
    /// does not exist), or at the start of the read when no valid record
    /// follows it (the start is where a standby's received WAL ends).
    End(Lsn),
}

/// Where the valid WAL ends, from what `pg_waldump --quiet` prints when it
/// stops. `segment_size` turns a missing file's name into a position.
/// `None`: the output says neither (a read error, no WAL at the start):
/// the caller cannot know the end.
pub fn end_of_valid_wal(stderr: &str, segment_size: u64) -> Option<WalStop> {
    const RECORD: &str = "error in WAL record at ";
    if let Some(i) = stderr.find(RECORD) {
        return lsns_in(stderr[i + RECORD.len()..].lines().next().unwrap_or(""))
            .next()
            .map(WalStop::LastRecordAt);
    }
    const NO_RECORD: &str = "could not find a valid record after ";
    if let Some(i) = stderr.find(NO_RECORD) {
        return lsns_in(stderr[i + NO_RECORD.len()..].lines().next().unwrap_or(""))
            .next()
            .map(WalStop::End);
    }
    const MISSING: &str = "could not find file \"";
    let i = stderr.find(MISSING)?;
    let name = stderr[i + MISSING.len()..].split('"').next()?;
    segment_start(name, segment_size).map(WalStop::End)
}

/// Where the valid WAL ends when pg_waldump read the segments STARTSEG to
/// `last_segment` (the newest file of the timeline): as `end_of_valid_wal`,
/// and a read that ended without any error went through the whole of
/// `last_segment`, so the valid WAL ends where the next segment would begin.
pub fn end_of_valid_wal_in_range(
    stderr: &str,
    clean_exit: bool,
    last_segment: &str,
    segment_size: u64,
) -> Option<WalStop> {
    if let Some(stop) = end_of_valid_wal(stderr, segment_size) {
        return Some(stop);
    }
    if !clean_exit || stderr.contains("error") {
        return None;
    }
    let start = segment_start(last_segment, segment_size)?;
    start.0.checked_add(segment_size).map(|end| WalStop::End(Lsn(end)))
}

/// Start and total length of the first record of a dump:
/// `rmgr: Transaction len (rec/tot):    405/   405, tx: 724, lsn: 0/01526058, ...`
pub fn first_record(output: &str) -> Option<(Lsn, u64)> {
    let line = output.lines().find(|l| l.starts_with("rmgr: "))?;
    let lsn = field(line, "lsn: ")?.parse().ok()?;
    let lens = line.split_once("len (rec/tot):")?.1;
    let total = lens.split_once('/')?.1.split(',').next()?.trim().parse().ok()?;
    Some((lsn, total))
}

/// WAL page size (XLOG_BLCKSZ, 8 kB unless PostgreSQL was built otherwise)
/// and the sizes of a page header: long at a segment's start, short else.
const PAGE: u64 = 8192;
const LONG_HEADER: u64 = 40;
const SHORT_HEADER: u64 = 24;

/// Where a record of `total` bytes starting at `start` ends, as PostgreSQL
/// counts it (`pg_last_wal_replay_lsn()`, the receive and insert
/// positions): its bytes plus the headers of the pages it continues on,
/// aligned to 8 bytes (MAXALIGN), where the next record would start.
pub fn record_end(start: Lsn, total: u64, segment_size: u64) -> Lsn {
    let align = |p: u64| p.checked_add(7).map_or(p, |v| v & !7);
    let (mut pos, mut left) = (start.0, total);
    while left > 0 {
        let room = PAGE - pos % PAGE;
        if left <= room {
            return Lsn(align(pos.saturating_add(left)));
        }
        left -= room;
        pos = pos.saturating_add(room);
        pos = pos.saturating_add(if segment_size > 0 && pos % segment_size == 0 {
            LONG_HEADER
        } else {
            SHORT_HEADER
        });
    }
    Lsn(pos)
}

/// Every `<hex>/<hex>` token of a message.
fn lsns_in(msg: &str) -> impl Iterator<Item = Lsn> + '_ {
    msg.split(|c: char| c.is_whitespace() || c == ',' || c == ':' || c == ';' || c == '"')
        .filter(|w| w.contains('/'))
        .filter_map(|w| w.parse::<Lsn>().ok())
}

/// Start of the WAL segment file `name` (24 hex digits: timeline, then the
/// segment number split in "xlogid" and segment within it).
pub fn segment_start(name: &str, segment_size: u64) -> Option<Lsn> {
    if name.len() != 24
        || !name.bytes().all(|b| b.is_ascii_hexdigit())
        || !segment_size.is_power_of_two()
        || !(1 << 20..=1 << 30).contains(&segment_size)
    {
        return None;
    }
    let hi = u64::from_str_radix(&name[8..16], 16).ok()?;
    let lo = u64::from_str_radix(&name[16..24], 16).ok()?;
    if hi > u64::from(u32::MAX) || lo >= (1u64 << 32) / segment_size {
        return None;
    }
    Some(Lsn((hi << 32) | (lo * segment_size)))
}

/// The WAL segment file holding `lsn` on `timeline` (PostgreSQL's
/// `XLogFileName`), for a power-of-two segment size of 1 MB to 1 GB.
pub fn segment_file_name(timeline: u32, lsn: Lsn, segment_size: u64) -> Option<String> {
    if !segment_size.is_power_of_two() || !(1 << 20..=1 << 30).contains(&segment_size) {
        return None;
    }
    let segno = lsn.0 / segment_size;
    let per_id = (1u64 << 32) / segment_size;
    Some(format!("{timeline:08X}{:08X}{:08X}", segno / per_id, segno % per_id))
}

/// Where timeline `tli` begins, from its history file (`<tli>.history`):
/// its last line names the parent timeline and the switch point,
/// `<parent>\t<lsn>\t<reason>`. Comments and blank lines are skipped.
pub fn timeline_start(history: &str) -> Option<Lsn> {
    history
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with('#'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|l| l.parse().ok())
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

    const SEG: u64 = 16 * 1024 * 1024;

    /// What pg_waldump 15 and 18 print where the valid WAL ends.
    #[test]
    fn a_clean_read_of_a_range_ends_at_its_last_segment() {
        let seg = 16 << 20;
        let last = "000000010000000000000001";
        // Read to the end of the newest file, no error: the next segment.
        assert_eq!(
            end_of_valid_wal_in_range("", true, last, seg),
            Some(WalStop::End("0/2000000".parse().unwrap()))
        );
        // An end of WAL inside the range is read as without a range.
        let msg = "pg_waldump: error: error in WAL record at 0/2154890: invalid record length";
        assert_eq!(
            end_of_valid_wal_in_range(msg, false, last, seg),
            Some(WalStop::LastRecordAt("0/2154890".parse().unwrap()))
        );
        // A failed run that says nothing useful, or a bad name: unknown.
        assert_eq!(end_of_valid_wal_in_range("", false, last, seg), None);
        let denied = "pg_waldump: error: could not read file \"x\": Permission denied";
        assert_eq!(end_of_valid_wal_in_range(denied, true, last, seg), None);
        assert_eq!(end_of_valid_wal_in_range("", true, "garbage", seg), None);
    }

    #[test]
    fn end_of_valid_wal_from_real_messages() {
        use WalStop::*;
        let l = |s: &str| s.parse::<Lsn>().unwrap();
        let cases = [
            (
                "pg_waldump: error: error in WAL record at 0/1526058: invalid record length at 0/15261F0: wanted 24, got 0",
                Some(LastRecordAt(l("0/1526058"))),
            ),
            (
                "pg_waldump: error: error in WAL record at 0/5FFFF88: unexpected pageaddr 0/1000000 in WAL segment 000000010000000000000006, LSN 0/6000000, offset 0",
                Some(LastRecordAt(l("0/5FFFF88"))),
            ),
            (
                "pg_waldump: error: could not find file \"000000010000000000000002\": No such file or directory",
                Some(End(l("0/2000000"))),
            ),
            (
                "pg_waldump: error: could not find file \"0000000300000001000000FF\": No such file or directory",
                Some(End(l("1/FF000000"))),
            ),
            (
                "first record is after 0/1526100, at 0/15261F0, skipping over 240 bytes\npg_waldump: error: could not find a valid record after 0/1526100",
                Some(End(l("0/1526100"))),
            ),
            ("pg_waldump: error: could not read file \"x\": Permission denied", None),
            ("", None),
        ];
        for (msg, want) in cases {
            assert_eq!(end_of_valid_wal(msg, SEG), want, "{msg}");
        }
    }

    #[test]
    fn first_record_of_a_dump() {
        let line = "rmgr: Transaction len (rec/tot):    405/   405, tx:        724, lsn: 0/01526058, prev 0/01526018, desc: COMMIT";
        assert_eq!(first_record(line), Some(("0/1526058".parse().unwrap(), 405)));
        assert_eq!(first_record(PG15), Some(("0/3000028".parse().unwrap(), 50)));
        assert_eq!(first_record("pg_waldump: error: x"), None);
    }

    /// The record seen in the real dump above ends where PostgreSQL's
    /// invalid-record message put the next one (0/15261F0, aligned).
    #[test]
    fn record_ends_across_pages_and_segments() {
        assert_eq!(record_end(Lsn(0x1526058), 405, SEG), Lsn(0x15261F0));
        // fits exactly in its page: no header counted
        assert_eq!(record_end(Lsn(8192 - 104), 104, SEG), Lsn(8192));
        assert_eq!(record_end(Lsn(8192 - 104), 100, SEG), Lsn(8192));
        // one byte on the next page: a short header
        assert_eq!(record_end(Lsn(8192 - 104), 105, SEG), Lsn(8192 + 32));
        // on into the next segment: a long header
        assert_eq!(record_end(Lsn(SEG - 16), 24, SEG), Lsn(SEG + 40 + 8));
        // over two page boundaries
        assert_eq!(record_end(Lsn(104), 2 * 8192, SEG), Lsn(104 + 2 * 8192 + 2 * 24));
        let _ = record_end(Lsn(u64::MAX - 5), 100, SEG);
    }

    #[test]
    fn segment_names_and_sizes() {
        assert_eq!(segment_start("000000010000000000000002", SEG), Some(Lsn(0x0200_0000)));
        assert_eq!(segment_start("000000010000000000000002", 1 << 30), Some(Lsn(1 << 31)));
        assert_eq!(segment_start("000000010000000000000100", SEG), None, "beyond an xlogid");
        for bad in
            ["", "00000001000000000000000", "00000001000000000000000G", "0000000100000000000000020"]
        {
            assert_eq!(segment_start(bad, SEG), None, "{bad}");
        }
        assert_eq!(segment_start("000000010000000000000002", 3 << 20), None);
        assert_eq!(segment_start("000000010000000000000002", 1 << 19), None);
    }

    #[test]
    fn segment_file_names() {
        let l = |s: &str| s.parse::<Lsn>().unwrap();
        assert_eq!(
            segment_file_name(1, l("0/2000000"), SEG).as_deref(),
            Some("000000010000000000000002")
        );
        assert_eq!(
            segment_file_name(1, l("0/2FFFFFF"), SEG).as_deref(),
            Some("000000010000000000000002")
        );
        assert_eq!(
            segment_file_name(3, l("1/FF000028"), SEG).as_deref(),
            Some("0000000300000001000000FF")
        );
        assert_eq!(
            segment_file_name(1, l("0/80000000"), 1 << 30).as_deref(),
            Some("000000010000000000000002")
        );
        assert_eq!(segment_file_name(1, Lsn(0), 3 << 20), None);
    }

    proptest::proptest! {
        /// The name of the segment holding an LSN gives back the start of
        /// that segment.
        #[test]
        fn segment_names_round_trip(lsn in 0u64..u64::MAX, tli in 1u32.., shift in 20u32..=30) {
            let size = 1u64 << shift;
            let name = segment_file_name(tli, Lsn(lsn), size).unwrap();
            proptest::prop_assert_eq!(segment_start(&name, size), Some(Lsn(lsn - lsn % size)));
        }
    }

    #[test]
    fn timeline_start_is_the_last_switch_point() {
        let h = "1\t0/3000108\tno recovery target specified\n\n2\t0/5000A0\tno recovery target specified\n";
        assert_eq!(timeline_start(h), Some("0/5000A0".parse().unwrap()));
        assert_eq!(timeline_start("# comment\n1\t0/30\tx"), Some(Lsn(0x30)));
        assert_eq!(timeline_start(""), None);
        assert_eq!(timeline_start("1 garbage"), None);
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC*", size in proptest::num::u64::ANY) {
            let _ = end_of_valid_wal(&s, size);
            let _ = segment_start(&s, size);
            let _ = timeline_start(&s);
        }

        /// A record's end is past its start, never before its bytes.
        #[test]
        fn a_record_ends_after_its_bytes(start in 0u64..1 << 40, total in 1u64..1 << 20) {
            let end = record_end(Lsn(start), total, SEG).0;
            proptest::prop_assert!(end >= start + total);
            proptest::prop_assert!(end.is_multiple_of(8));
            proptest::prop_assert!(end <= start + total + (total / (PAGE - 40) + 1) * 40 + 7);
        }
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
