//! What a former primary whose WAL diverged does at start: the rejoin
//! policy (`rejoin_policy` parameter). Pure: the decisions, the rules on
//! free space, which WAL segments hold what a rewind discards, and the
//! names of the directories kept beside the data directory. The I/O is in
//! `actions::rewind`.

use crate::lsn::Lsn;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Stay stopped with a reason (PAF's behaviour, the default).
    Manual,
    /// pg_rewind from the current primary, then start as a standby.
    Rewind,
    /// Rewind; when pg_rewind is impossible or fails, rebuild with
    /// pg_basebackup (the old data directory moved aside).
    RewindOrClone,
}

pub const DEFAULT: &str = "manual";

impl Policy {
    pub fn parse(s: &str) -> Result<Policy, String> {
        match s.trim() {
            "manual" => Ok(Policy::Manual),
            "rewind" => Ok(Policy::Rewind),
            "rewind-or-clone" => Ok(Policy::RewindOrClone),
            other => Err(format!(
                "rejoin_policy must be manual, rewind or rewind-or-clone, got \"{other}\""
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Manual => "manual",
            Policy::Rewind => "rewind",
            Policy::RewindOrClone => "rewind-or-clone",
        }
    }

    pub fn may_clone(self) -> bool {
        self == Policy::RewindOrClone
    }
}

/// What the CIB and the network say of the current primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Primary {
    /// No other node is promoted in the CIB.
    NotInCib,
    /// `node` is promoted, but did not answer through primary_conninfo.
    Unreachable(String),
    /// `node` is promoted and answered.
    Answers(String),
}

/// An operation a previous start began and did not finish (its marker
/// beside the data directory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    Rewind,
    Clone,
}

/// Everything the decision reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub policy: Policy,
    /// This start's divergence check proved the WAL diverged (or a previous
    /// start proved it and left `pending`).
    pub diverged: bool,
    pub pending: Option<Pending>,
    pub primary: Primary,
    /// The control file says wal_log_hints was on, or data checksums are.
    pub rewindable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do here: the normal start goes on.
    Start,
    Refuse(String),
    Rewind,
    Clone,
}

/// The reason of a refused start of a diverged former primary, as short as
/// Pacemaker's 128 characters need: what to do first.
pub fn manual_reason(timeline: u32, switchpoint: Lsn, own_last: Lsn) -> String {
    format!(
        "diverged from the primary: rebuild with pg_rewind, then pcs resource cleanup (TL {timeline} forked at {switchpoint}, here {own_last})"
    )
}

pub fn decide(f: &Facts) -> Action {
    if !f.diverged && f.pending.is_none() {
        return Action::Start;
    }
    let what = match f.pending {
        Some(Pending::Clone) => "interrupted clone: datadir incomplete",
        Some(Pending::Rewind) => "interrupted pg_rewind",
        None => "diverged from the primary",
    };
    if f.policy == Policy::Manual {
        return Action::Refuse(match f.pending {
            None => format!("{what}: rebuild with pg_rewind, then pcs resource cleanup"),
            Some(_) => format!(
                "{what}; rejoin_policy=manual: rebuild by hand, remove <datadir>.rejoin-in-progress, cleanup"
            ),
        });
    }
    match &f.primary {
        Primary::NotInCib => {
            return Action::Refuse(format!(
                "{what}, and no other node is the primary in the CIB: nothing to rejoin from"
            ));
        }
        Primary::Unreachable(n) => {
            return Action::Refuse(format!(
                "{what}; the primary {n} does not answer through primary_conninfo: not rejoining"
            ));
        }
        Primary::Answers(_) => {}
    }
    match (f.pending, f.policy, f.rewindable) {
        // A half-done clone can only be redone, and only a clone may
        // have left one.
        (Some(Pending::Clone), Policy::RewindOrClone, _) => Action::Clone,
        (Some(Pending::Clone), _, _) => Action::Refuse(format!(
            "{what}; rejoin_policy={} does not clone: set rewind-or-clone or rebuild by hand",
            f.policy.as_str()
        )),
        (_, _, true) => Action::Rewind,
        (_, Policy::RewindOrClone, false) => Action::Clone,
        (_, _, false) => Action::Refuse(format!(
            "{what}; pg_rewind impossible (no wal_log_hints, no checksums): use rewind-or-clone or rebuild by hand"
        )),
    }
}

/// After pg_rewind failed (`why`): clone when the policy allows it.
pub fn after_failed_rewind(policy: Policy, why: &str) -> Action {
    if policy.may_clone() {
        Action::Clone
    } else {
        Action::Refuse(format!("pg_rewind failed: {why}"))
    }
}

/// Room a rebuild needs: the new copy (about the size of the old data
/// directory, the primary's being unknown before the copy) with a tenth
/// more and 256 MB of margin, the old one staying where it is (renamed).
pub fn clone_room(free: u64, old_size: u64) -> Result<(), String> {
    let need = old_size.saturating_add(old_size / 10).saturating_add(256 << 20);
    if free >= need {
        Ok(())
    } else {
        Err(format!(
            "not enough disk to rebuild while keeping the old data directory: {} MB free, {} MB needed",
            free >> 20,
            need.div_ceil(1 << 20)
        ))
    }
}

/// Room the copy of the discarded WAL needs: its size and 64 MB of margin
/// (PostgreSQL must still be able to write its own WAL afterwards).
pub fn wal_copy_room(free: u64, bytes: u64) -> Result<(), String> {
    let need = bytes.saturating_add(64 << 20);
    if free >= need {
        Ok(())
    } else {
        Err(format!(
            "not enough disk to keep the discarded WAL: {} MB free, {} MB needed",
            free >> 20,
            need.div_ceil(1 << 20)
        ))
    }
}

/// The WAL segment files (names) of `timeline` holding records from
/// `fork` to `last` (the last record written): the ones a rewind replaces.
/// Names that are not segments of that timeline, and segments recycled
/// ahead of `last`, are ignored; sorted.
pub fn diverged_segments(
    names: &[String],
    timeline: u32,
    fork: Lsn,
    last: Lsn,
    seg_size: u64,
) -> Vec<String> {
    let prefix = format!("{timeline:08X}");
    let mut out: Vec<String> = names
        .iter()
        .filter(|n| n.len() == 24 && n.starts_with(&prefix))
        .filter(|n| {
            crate::waldump::segment_start(n, seg_size)
                .is_some_and(|start| start.0.saturating_add(seg_size) > fork.0 && start.0 <= last.0)
        })
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `<datadir>.diverged-<YYYYmmddTHHMMSS>-tl<N>`: where the discarded WAL
/// goes, beside the data directory.
pub fn diverged_dir_name(datadir_name: &str, stamp: &str, timeline: u32) -> String {
    format!("{datadir_name}.diverged-{stamp}-tl{timeline}")
}

/// `<datadir>.replaced-<YYYYmmddTHHMMSS>`: the old data directory after a
/// rebuild.
pub fn replaced_dir_name(datadir_name: &str, stamp: &str) -> String {
    format!("{datadir_name}.replaced-{stamp}")
}

/// `<datadir>.rejoin-in-progress`: the marker of an unfinished operation.
pub fn marker_name(datadir_name: &str) -> String {
    format!("{datadir_name}.rejoin-in-progress")
}

/// The marker's content: the operation and a directory beside the data
/// directory: for a clone, where the old data went (its configuration files
/// are restored from there); for a rewind, where the diverged WAL was kept
/// (put back in pg_wal before pg_rewind runs again: an interrupted
/// pg_rewind may have removed or replaced it there, and a second run
/// reading what is left would miss blocks the first one changed).
pub fn marker_text(p: Pending, aside: Option<&str>) -> String {
    let op = match p {
        Pending::Rewind => "rewind",
        Pending::Clone => "clone",
    };
    match aside {
        Some(a) => format!("{op} {a}\n"),
        None => format!("{op}\n"),
    }
}

pub fn parse_marker(text: &str) -> Option<(Pending, Option<String>)> {
    let line = text.lines().next()?.trim();
    let op = |w: &str| match w {
        "rewind" => Some(Pending::Rewind),
        "clone" => Some(Pending::Clone),
        _ => None,
    };
    match line.split_once(' ') {
        None => Some((op(line)?, None)),
        Some((w, a)) => {
            let a = a.trim();
            let plain = !a.is_empty() && !a.contains('/') && a != "." && a != "..";
            plain.then_some((op(w)?, Some(a.to_string())))
        }
    }
}

/// Configuration files every data directory may hold: put back as they
/// were (present or absent) after a copy from the primary.
pub const CONFIG_FILES: [&str; 4] =
    ["postgresql.conf", "postgresql.auto.conf", "pg_hba.conf", "pg_ident.conf"];

/// Files at the top of a data directory that are PostgreSQL's state, not
/// this node's configuration: the copy's own are the right ones.
const STATE_FILES: [&str; 10] = [
    "PG_VERSION",
    "backup_label",
    "backup_label.old",
    "tablespace_map",
    "tablespace_map.old",
    "postmaster.pid",
    "postmaster.opts",
    "current_logfiles",
    "standby.signal",
    "recovery.signal",
];

/// At most this many node files are kept.
pub const MAX_NODE_FILES: usize = 64;

/// Which of the regular files at the top of a data directory (or of the
/// directory they were kept in) are this node's own and must survive a copy
/// from the primary: the configuration files, and any other file an
/// operator put there (`local.conf` included by postgresql.conf,
/// certificates), not PostgreSQL's state files nor WAL segments. Sorted,
/// the CONFIG_FILES always in (absent ones are removed after the copy).
pub fn node_files(regular: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = CONFIG_FILES.iter().map(|s| s.to_string()).collect();
    for n in regular {
        let segment = n.len() == 24 && n.bytes().all(|b| b.is_ascii_hexdigit());
        if !segment && !STATE_FILES.contains(&n.as_str()) && !n.contains('/') && !out.contains(n) {
            out.push(n.clone());
        }
    }
    if out.len() > MAX_NODE_FILES {
        return Err(format!(
            "{} files at the top of the data directory: more than the {MAX_NODE_FILES} the agent keeps across a copy",
            out.len()
        ));
    }
    out.sort();
    Ok(out)
}

/// The last common checkpoint pg_rewind (--dry-run too) names:
/// `pg_rewind: rewinding from last common checkpoint at 0/2000060 on timeline 1`.
pub fn parse_common_checkpoint(output: &str) -> Option<Lsn> {
    const KEY: &str = "rewinding from last common checkpoint at ";
    let i = output.find(KEY)?;
    output[i + KEY.len()..].split_whitespace().next()?.parse().ok()
}

/// UTC time as `YYYYmmddTHHMMSS`, from seconds since the epoch.
pub fn stamp(unix: u64) -> String {
    let days = (unix / 86400) as i64;
    let secs = unix % 86400;
    // Howard Hinnant's civil_from_days
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// What pg_rewind needs of the target, from pg_controldata's output:
/// wal_log_hints on at its last run, or data checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RewindFacts {
    pub wal_log_hints: bool,
    pub checksums: bool,
    pub segment_size: u64,
}

pub fn parse_controldata(text: &str) -> Option<RewindFacts> {
    let get = |k: &str| {
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(key, _)| key.trim() == k)
            .map(|(_, v)| v.trim())
    };
    Some(RewindFacts {
        wal_log_hints: get("wal_log_hints setting")? == "on",
        checksums: get("Data page checksum version")?.parse::<u32>().ok()? != 0,
        segment_size: get("Bytes per WAL segment")?
            .parse()
            .ok()
            .filter(|s: &u64| s.is_power_of_two())?,
    })
}

/// What validate-all found on this node for the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prerequisites {
    /// Binaries of the policy not found in bindir.
    pub missing_binaries: Vec<String>,
    /// wal_log_hints as the server will run (postgres -C).
    pub wal_log_hints: bool,
    /// Data checksums (control file).
    pub checksums: bool,
    /// Whether the primary_conninfo user may run pg_rewind on the primary;
    /// None: the primary could not be asked now.
    pub rewind_rights: Option<bool>,
    /// Free bytes beside the data directory and the data directory's size;
    /// None: not measured.
    pub room: Option<(u64, u64)>,
}

/// The binaries a policy runs.
pub fn binaries(policy: Policy) -> &'static [&'static str] {
    match policy {
        Policy::Manual => &[],
        Policy::Rewind => &["pg_rewind"],
        Policy::RewindOrClone => &["pg_rewind", "pg_basebackup"],
    }
}

/// validate-all's verdict: the first prerequisite missing, with its code,
/// or warnings (what rewind-or-clone will do instead of a rewind).
pub fn check_prerequisites(
    policy: Policy,
    p: &Prerequisites,
) -> Result<Vec<String>, crate::validate::Problem> {
    use crate::exit::OcfExit;
    let fail = |code, reason: String| Err(crate::validate::Problem { code, reason });
    let name = policy.as_str();
    if policy == Policy::Manual {
        return Ok(Vec::new());
    }
    if !p.missing_binaries.is_empty() {
        return fail(
            OcfExit::ErrInstalled,
            format!(
                "rejoin_policy={name} needs {} in bindir: not found",
                p.missing_binaries.join(", ")
            ),
        );
    }
    let mut warnings = Vec::new();
    if !p.wal_log_hints && !p.checksums {
        let why =
            "pg_rewind needs wal_log_hints = on or data checksums, and this instance has neither";
        if policy == Policy::Rewind {
            return fail(
                OcfExit::ErrArgs,
                format!(
                    "rejoin_policy=rewind: {why}: set wal_log_hints = on (restart) or use rewind-or-clone"
                ),
            );
        }
        warnings
            .push(format!("{why}: a diverged former primary will be rebuilt with pg_basebackup"));
    }
    match p.rewind_rights {
        Some(true) => {}
        Some(false) => {
            let why = "the primary_conninfo user may not run pg_rewind on the primary: make it superuser or grant EXECUTE on pg_ls_dir, pg_stat_file and pg_read_binary_file (pg_rewind manual)";
            if policy == Policy::Rewind {
                return fail(OcfExit::ErrArgs, format!("rejoin_policy=rewind: {why}"));
            }
            warnings.push(format!("{why}; a rejoin will be a rebuild"));
        }
        None => warnings.push(
            "the primary could not be asked through primary_conninfo whether its user may run pg_rewind: checked again at each rejoin".to_string(),
        ),
    }
    if policy.may_clone() {
        match p.room {
            Some((free, size)) => {
                if let Err(why) = clone_room(free, size) {
                    return fail(OcfExit::ErrArgs, format!("rejoin_policy={name}: {why}"));
                }
            }
            None => warnings.push("the room a rebuild needs could not be measured in time".into()),
        }
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICIES: [Policy; 3] = [Policy::Manual, Policy::Rewind, Policy::RewindOrClone];

    fn primaries() -> [Primary; 3] {
        [Primary::NotInCib, Primary::Unreachable("srv2".into()), Primary::Answers("srv2".into())]
    }

    #[test]
    fn policy_values() {
        for p in POLICIES {
            assert_eq!(Policy::parse(p.as_str()), Ok(p));
        }
        assert_eq!(Policy::parse(" rewind "), Ok(Policy::Rewind));
        for bad in ["", "Rewind", "clone", "rewind_or_clone", "auto"] {
            let e = Policy::parse(bad).unwrap_err();
            assert!(e.contains("rejoin_policy") && e.contains(bad), "{e}");
        }
        assert_eq!(Policy::parse(DEFAULT), Ok(Policy::Manual));
    }

    /// Every combination of the facts, each with the one expected action.
    #[test]
    fn decision_table_is_exhaustive() {
        let pendings = [None, Some(Pending::Rewind), Some(Pending::Clone)];
        let mut seen = 0;
        for policy in POLICIES {
            for diverged in [false, true] {
                for pending in pendings {
                    for primary in primaries() {
                        for rewindable in [false, true] {
                            let f = Facts {
                                policy,
                                diverged,
                                pending,
                                primary: primary.clone(),
                                rewindable,
                            };
                            let got = decide(&f);
                            let want = expected(&f);
                            assert_eq!(
                                std::mem::discriminant(&got),
                                std::mem::discriminant(&want),
                                "{f:?}: {got:?}"
                            );
                            if let Action::Refuse(r) = &got {
                                assert!(r.len() <= 128, "{} {r}", r.len());
                            }
                            seen += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(seen, 3 * 2 * 3 * 3 * 2);
    }

    /// The rules, written a second way.
    fn expected(f: &Facts) -> Action {
        let something_to_do = f.diverged || f.pending.is_some();
        if !something_to_do {
            return Action::Start;
        }
        let answers = matches!(f.primary, Primary::Answers(_));
        if f.policy == Policy::Manual || !answers {
            return Action::Refuse(String::new());
        }
        if f.pending == Some(Pending::Clone) {
            return if f.policy == Policy::RewindOrClone {
                Action::Clone
            } else {
                Action::Refuse(String::new())
            };
        }
        if f.rewindable {
            Action::Rewind
        } else if f.policy == Policy::RewindOrClone {
            Action::Clone
        } else {
            Action::Refuse(String::new())
        }
    }

    #[test]
    fn refusals_say_why() {
        let f = |policy, primary, rewindable| Facts {
            policy,
            diverged: true,
            pending: None,
            primary,
            rewindable,
        };
        let r = |a: Action| match a {
            Action::Refuse(r) => r,
            a => panic!("{a:?}"),
        };
        assert!(
            r(decide(&f(Policy::Manual, Primary::Answers("n".into()), true))).contains("pg_rewind")
        );
        assert!(
            r(decide(&f(Policy::Rewind, Primary::Unreachable("srv2".into()), true)))
                .contains("srv2 does not answer")
        );
        assert!(r(decide(&f(Policy::Rewind, Primary::NotInCib, true))).contains("no other node"));
        assert!(
            r(decide(&f(Policy::Rewind, Primary::Answers("n".into()), false)))
                .contains("wal_log_hints")
        );
        assert_eq!(
            decide(&f(Policy::RewindOrClone, Primary::Answers("n".into()), false)),
            Action::Clone
        );
        assert!(manual_reason(1, Lsn(1), Lsn(2)).len() <= 128);
    }

    #[test]
    fn prerequisites_of_each_policy() {
        use crate::exit::OcfExit;
        let good = Prerequisites {
            missing_binaries: vec![],
            wal_log_hints: true,
            checksums: false,
            rewind_rights: Some(true),
            room: Some((10 << 30, 1 << 30)),
        };
        for policy in POLICIES {
            assert_eq!(check_prerequisites(policy, &good), Ok(vec![]), "{policy:?}");
            assert_eq!(binaries(policy).len(), policy as usize);
        }
        let code = |policy, p: &Prerequisites| check_prerequisites(policy, p).map_err(|e| e.code);
        let reason = |policy, p: &Prerequisites| check_prerequisites(policy, p).unwrap_err().reason;
        let missing =
            Prerequisites { missing_binaries: vec!["/usr/bin/pg_rewind".into()], ..good.clone() };
        assert_eq!(code(Policy::Rewind, &missing), Err(OcfExit::ErrInstalled));
        assert!(reason(Policy::RewindOrClone, &missing).contains("/usr/bin/pg_rewind"));
        assert_eq!(code(Policy::Manual, &missing), Ok(vec![]));
        let no_hints = Prerequisites { wal_log_hints: false, ..good.clone() };
        assert_eq!(code(Policy::Rewind, &no_hints), Err(OcfExit::ErrArgs));
        assert!(reason(Policy::Rewind, &no_hints).contains("wal_log_hints"));
        assert_eq!(check_prerequisites(Policy::RewindOrClone, &no_hints).unwrap().len(), 1);
        let checksums = Prerequisites { checksums: true, ..no_hints.clone() };
        assert_eq!(code(Policy::Rewind, &checksums), Ok(vec![]));
        let no_rights = Prerequisites { rewind_rights: Some(false), ..good.clone() };
        assert!(reason(Policy::Rewind, &no_rights).contains("may not run pg_rewind"));
        assert_eq!(check_prerequisites(Policy::RewindOrClone, &no_rights).unwrap().len(), 1);
        let unknown = Prerequisites { rewind_rights: None, room: None, ..good.clone() };
        assert_eq!(check_prerequisites(Policy::Rewind, &unknown).unwrap().len(), 1);
        assert_eq!(check_prerequisites(Policy::RewindOrClone, &unknown).unwrap().len(), 2);
        let full = Prerequisites { room: Some((1 << 30, 1 << 30)), ..good.clone() };
        assert_eq!(code(Policy::Rewind, &full), Ok(vec![]), "a rewind needs no room for a copy");
        assert_eq!(code(Policy::RewindOrClone, &full), Err(OcfExit::ErrArgs));
        assert!(reason(Policy::RewindOrClone, &full).contains("not enough disk"));
    }

    #[test]
    fn a_failed_rewind_clones_only_when_allowed() {
        assert_eq!(after_failed_rewind(Policy::RewindOrClone, "x"), Action::Clone);
        assert!(
            matches!(after_failed_rewind(Policy::Rewind, "boom"), Action::Refuse(r) if r.contains("boom"))
        );
    }

    #[test]
    fn free_space_rules() {
        const MB: u64 = 1 << 20;
        // 1000 MB data: 1000 + 100 + 256 needed
        assert!(clone_room(1356 * MB, 1000 * MB).is_ok());
        let e = clone_room(1355 * MB, 1000 * MB).unwrap_err();
        assert!(e.contains("1355 MB free") && e.contains("1356 MB needed"), "{e}");
        assert!(clone_room(0, 0).is_err());
        assert!(clone_room(u64::MAX - 1, u64::MAX).is_err());
        assert!(clone_room(u64::MAX, u64::MAX / 2).is_ok());
        assert!(wal_copy_room(64 * MB + 16 * MB, 16 * MB).is_ok());
        assert!(wal_copy_room(64 * MB + 16 * MB - 1, 16 * MB).is_err());
        assert!(wal_copy_room(u64::MAX - 1, u64::MAX).is_err());
    }

    #[test]
    fn diverged_segments_from_the_fork_on() {
        let names: Vec<String> = [
            "000000010000000000000001",
            "000000010000000000000002",
            "000000010000000000000003",
            "000000010000000000000004",
            "000000020000000000000003",
            "00000002.history",
            "000000010000000000000003.partial",
            "archive_status",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let seg = 16 << 20;
        // fork inside segment 3 of timeline 1
        let fork: Lsn = "0/3000108".parse().unwrap();
        let last: Lsn = "0/4000200".parse().unwrap();
        assert_eq!(
            diverged_segments(&names, 1, fork, last, seg),
            vec!["000000010000000000000003", "000000010000000000000004"]
        );
        // exactly at a segment boundary: the previous one holds nothing after it
        let fork: Lsn = "0/4000000".parse().unwrap();
        assert_eq!(diverged_segments(&names, 1, fork, last, seg), vec!["000000010000000000000004"]);
        // a segment recycled ahead of the last record holds nothing of it
        let last: Lsn = "0/3FFFFFF".parse().unwrap();
        assert_eq!(
            diverged_segments(&names, 1, "0/3000108".parse().unwrap(), last, seg),
            vec!["000000010000000000000003"]
        );
        assert!(diverged_segments(&names, 3, Lsn(0), Lsn(u64::MAX), seg).is_empty());
    }

    #[test]
    fn names_beside_the_data_directory() {
        assert_eq!(stamp(0), "19700101T000000");
        assert_eq!(stamp(1_795_000_000), "20261118T110640");
        assert_eq!(stamp(951_782_400), "20000229T000000");
        assert_eq!(
            diverged_dir_name("main", "20261201T021500", 1),
            "main.diverged-20261201T021500-tl1"
        );
        assert_eq!(replaced_dir_name("data", "x"), "data.replaced-x");
        assert_eq!(marker_name("data"), "data.rejoin-in-progress");
        for (p, a) in [
            (Pending::Rewind, None),
            (Pending::Rewind, Some("data.diverged-x-tl1")),
            (Pending::Clone, Some("data.replaced-x")),
            (Pending::Clone, None),
        ] {
            assert_eq!(parse_marker(&marker_text(p, a)), Some((p, a.map(str::to_string))));
        }
        for bad in ["", "clone ../etc", "rebuild", "clone /x", "rewind ..", "rebuild x"] {
            assert_eq!(parse_marker(bad), None, "{bad}");
        }
    }

    #[test]
    fn node_files_survive_a_copy() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            node_files(&v(&[
                "PG_VERSION",
                "local.conf",
                "postgresql.conf",
                "backup_label",
                "server.key",
                "standby.signal",
                "000000010000000000000003",
                "postmaster.pid"
            ]))
            .unwrap(),
            v(&[
                "local.conf",
                "pg_hba.conf",
                "pg_ident.conf",
                "postgresql.auto.conf",
                "postgresql.conf",
                "server.key"
            ])
        );
        assert_eq!(node_files(&[]).unwrap().len(), 4);
        let many: Vec<String> = (0..60).map(|i| format!("f{i}")).collect();
        assert_eq!(node_files(&many).unwrap().len(), MAX_NODE_FILES);
        let many: Vec<String> = (0..61).map(|i| format!("f{i}")).collect();
        assert!(node_files(&many).unwrap_err().contains("65 files"));
    }

    #[test]
    fn common_checkpoint_from_pg_rewind() {
        let out = "pg_rewind: servers diverged at WAL location 0/3019918 on timeline 1\n\
                   pg_rewind: rewinding from last common checkpoint at 0/2000060 on timeline 1\n\
                   pg_rewind: Done!\n";
        assert_eq!(parse_common_checkpoint(out), Some("0/2000060".parse().unwrap()));
        assert_eq!(parse_common_checkpoint("pg_rewind: no rewind required"), None);
        assert_eq!(parse_common_checkpoint("rewinding from last common checkpoint at x"), None);
    }

    #[test]
    fn controldata_prerequisites() {
        let text = "wal_log_hints setting:                off\nData page checksum version:           1\nBytes per WAL segment:                16777216\n";
        assert_eq!(
            parse_controldata(text),
            Some(RewindFacts { wal_log_hints: false, checksums: true, segment_size: 16 << 20 })
        );
        let text =
            text.replace("off", "on").replace("version:           1", "version:           0");
        assert_eq!(
            parse_controldata(&text),
            Some(RewindFacts { wal_log_hints: true, checksums: false, segment_size: 16 << 20 })
        );
        assert_eq!(parse_controldata("garbage"), None);
        assert_eq!(parse_controldata(&text.replace("16777216", "1000")), None);
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC*") {
            let _ = parse_controldata(&s);
            let _ = parse_marker(&s);
            let _ = Policy::parse(&s);
            let _ = parse_common_checkpoint(&s);
        }
    }
}
