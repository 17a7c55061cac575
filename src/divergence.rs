//! Can a former primary follow the current one? Pure.
//!
//! A primary that stopped (or crashed) after WAL the new primary never
//! received has diverged: started as a standby it would sit there without
//! replicating (PostgreSQL refuses a timeline that forked before its own
//! position), while looking healthy. The agent compares the end of its own
//! WAL with the point where the new primary's history left its timeline, and
//! refuses the start with instructions instead.

use crate::lsn::Lsn;

/// `IDENTIFY_SYSTEM` row: `systemid|timeline|xlogpos|dbname`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimaryIdentity {
    pub system_id: String,
    pub timeline: u32,
    pub position: Lsn,
}

pub fn parse_identify_system(out: &str) -> Option<PrimaryIdentity> {
    let line = out.lines().find(|l| !l.trim().is_empty())?;
    let mut f = line.split('|');
    Some(PrimaryIdentity {
        system_id: f.next()?.trim().to_string(),
        timeline: f.next()?.trim().parse().ok()?,
        position: f.next()?.trim().parse().ok()?,
    })
}

/// Timeline history file lines: `<parent tli>\t<switchpoint>\t<reason>`.
/// Returns (parent timeline, switchpoint) pairs.
pub fn parse_history(text: &str) -> Vec<(u32, Lsn)> {
    let text = decode_bytea(text);
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .collect()
}

/// psql may print the bytea `content` column as `\x<hex>`.
fn decode_bytea(s: &str) -> String {
    let t = s.trim();
    let Some(hex) = t.strip_prefix("\\x") else { return s.to_string() };
    let bytes: Option<Vec<u8>> =
        (0..hex.len() / 2).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()).collect();
    bytes.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// This instance's WAL is contained in the primary's history.
    CanFollow,
    Diverged {
        timeline: u32,
        switchpoint: Lsn,
        own_last: Lsn,
    },
    /// Another cluster, or a history that does not mention our timeline.
    Unrelated(String),
}

/// `own_last`: start of the last WAL record this instance wrote on
/// `own_timeline` (its shutdown checkpoint after a clean stop).
pub fn check(
    own_system_id: Option<&str>,
    own_timeline: u32,
    own_last: Lsn,
    primary: &PrimaryIdentity,
    history: &[(u32, Lsn)],
) -> Verdict {
    if let Some(id) = own_system_id
        && id != primary.system_id
    {
        return Verdict::Unrelated(format!(
            "system identifier {} differs from this instance's {id}",
            primary.system_id
        ));
    }
    if primary.timeline == own_timeline {
        return if own_last <= primary.position {
            Verdict::CanFollow
        } else {
            Verdict::Diverged { timeline: own_timeline, switchpoint: primary.position, own_last }
        };
    }
    if primary.timeline < own_timeline {
        return Verdict::Unrelated(format!(
            "the primary is on timeline {}, behind this instance's timeline {own_timeline}",
            primary.timeline
        ));
    }
    match history.iter().find(|(tli, _)| *tli == own_timeline) {
        None => {
            Verdict::Unrelated(format!("timeline {own_timeline} is not in the primary's history"))
        }
        Some((_, switchpoint)) if own_last < *switchpoint => Verdict::CanFollow,
        Some((_, switchpoint)) => {
            Verdict::Diverged { timeline: own_timeline, switchpoint: *switchpoint, own_last }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(s: &str) -> Lsn {
        s.parse().unwrap()
    }

    fn primary(tl: u32, pos: &str) -> PrimaryIdentity {
        PrimaryIdentity { system_id: "7300".into(), timeline: tl, position: l(pos) }
    }

    #[test]
    fn parses_identify_system_and_history() {
        assert_eq!(parse_identify_system("7300|2|0/5000148|\n"), Some(primary(2, "0/5000148")));
        assert_eq!(parse_identify_system("garbage"), None);
        let h = "1\t0/3000108\tno recovery target specified\n\n2\t0/5000000\tno recovery target specified\n";
        assert_eq!(parse_history(h), vec![(1, l("0/3000108")), (2, l("0/5000000"))]);
        let hex = "\\x310930\x2f3330303031303809";
        assert_eq!(parse_history(&hex.replace("\x2f", "2f")), vec![(1, l("0/3000108"))]);
    }

    #[test]
    fn clean_switchover_can_follow() {
        // Old primary's shutdown checkpoint at 0/3000028 (ends 0/30000A0);
        // the new primary forked right after it.
        let h = [(1, l("0/30000A0"))];
        assert_eq!(
            check(Some("7300"), 1, l("0/3000028"), &primary(2, "0/4000000"), &h),
            Verdict::CanFollow
        );
    }

    #[test]
    fn failover_with_unreplicated_wal_diverges() {
        let h = [(1, l("0/3000000"))];
        let v = check(Some("7300"), 1, l("0/3500000"), &primary(2, "0/4000000"), &h);
        assert_eq!(
            v,
            Verdict::Diverged {
                timeline: 1,
                switchpoint: l("0/3000000"),
                own_last: l("0/3500000")
            }
        );
        // Exactly at the switchpoint: our record starts where theirs diverge.
        assert!(matches!(
            check(None, 1, l("0/3000000"), &primary(2, "0/4000000"), &h),
            Verdict::Diverged { .. }
        ));
    }

    #[test]
    fn several_promotions_later() {
        let h = [(1, l("0/3000000")), (2, l("0/5000000")), (3, l("0/7000000"))];
        assert_eq!(
            check(None, 2, l("0/4000000"), &primary(4, "0/8000000"), &h),
            Verdict::CanFollow
        );
        assert!(matches!(
            check(None, 2, l("0/6000000"), &primary(4, "0/8000000"), &h),
            Verdict::Diverged { timeline: 2, .. }
        ));
    }

    #[test]
    fn same_timeline_and_unrelated_cases() {
        assert_eq!(check(None, 1, l("0/100"), &primary(1, "0/200"), &[]), Verdict::CanFollow);
        assert!(matches!(
            check(None, 1, l("0/300"), &primary(1, "0/200"), &[]),
            Verdict::Diverged { .. }
        ));
        assert!(
            matches!(check(Some("1"), 1, l("0/1"), &primary(2, "0/2"), &[]), Verdict::Unrelated(m) if m.contains("identifier"))
        );
        assert!(matches!(check(None, 3, l("0/1"), &primary(2, "0/2"), &[]), Verdict::Unrelated(_)));
        assert!(matches!(
            check(None, 1, l("0/1"), &primary(3, "0/2"), &[(2, l("0/1"))]),
            Verdict::Unrelated(_)
        ));
    }
}
