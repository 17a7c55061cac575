//! Synchronous replication: who may hold acknowledged commits, and whether a
//! set of surviving standbys provably holds every one of them. Pure.
//!
//! The primary's monitor turns `synchronous_standby_names` into a [`Record`]
//! (the rule and its members, the primary itself left out, `*` expanded to
//! the cluster's other nodes) and keeps it in the CIB, where it outlives the
//! primary. At promotion time [`check`] decides from the record and the
//! positions the surviving standbys published.
//!
//! Why the rule is sound. With `FIRST n (L)` or `ANY n (L)`, a commit is
//! acknowledged only once at least `n` members of `L` flushed its WAL
//! (`FIRST` picks which ones by priority, `ANY` takes any `n`; either way
//! at least `n` members of `L` have it). Which members were synchronous may
//! change from one commit to the next; the argument never uses it. Let `c`
//! be the last acknowledged commit, flushed by a set `A` of members,
//! `|A| >= n`, and let `S` be the surviving members, `|S| >= |L| - n + 1`.
//! Then `|A ∩ S| >= |A| + |S| - |L| >= 1`: some survivor flushed `c`, so its
//! position is at or beyond `c`, and so is the most advanced surviving
//! member's, hence it holds `c` and every acknowledged commit before it
//! (WAL is a single stream: a position includes everything before it).
//! Conversely with fewer survivors, the absent members may number `n` or
//! more, and a commit acknowledged by exactly those is on no survivor: the
//! rule is also the weakest one that is sound without more knowledge.
//! No refinement from the set of standbys observed synchronous at the last
//! monitor: that set may change between two monitors (a standby reconnects,
//! another takes its place for a few commits), so it proves nothing.
//!
//! Limits (documented in the README): the guarantee covers commits made
//! with `synchronous_commit` = `on` or `remote_apply` (standby flushed);
//! `remote_write` survives a crash of PostgreSQL on the standbys but not of
//! their operating system; `local` and `off` transactions wait for no
//! standby and are not covered. `n` greater than the number of members
//! (commits would wait forever) is taken as every member. A change of the
//! setting reaches the record at the next monitor of the primary. The
//! argument takes a survivor's published position to cover all the WAL it
//! flushed: a standby that just restarted and is still replaying its local
//! WAL must publish its on-disk end of WAL, not its replay position.

use crate::election::Position;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `FIRST n (...)`, `n (...)` and the plain list (`FIRST 1`).
    First,
    /// `ANY n (...)`: quorum commit.
    Any,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::First => "FIRST",
            Method::Any => "ANY",
        }
    }
}

/// `synchronous_standby_names` as PostgreSQL parses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub method: Method,
    pub num: u32,
    /// Standby names as written (unquoted); `*` matches every standby.
    pub names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Num(String),
    /// `quoted`: a quoted name is never a keyword.
    Name {
        text: String,
        quoted: bool,
    },
    Comma,
    Open,
    Close,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || !c.is_ascii()
}

fn is_ident_cont(c: char) -> bool {
    is_ident_start(c) || c.is_ascii_digit() || c == '$'
}

/// PostgreSQL's syncrep scanner: identifiers, numbers, `"quoted ""names"""`,
/// `*`, `,`, `(`, `)`; white space between tokens.
fn tokens(s: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut it = s.chars().peekable();
    while let Some(&c) = it.peek() {
        if c.is_ascii_whitespace() || c == '\x0b' {
            it.next();
        } else if c.is_ascii_digit() {
            let mut t = String::new();
            while let Some(&d) = it.peek().filter(|d| d.is_ascii_digit()) {
                t.push(d);
                it.next();
            }
            out.push(Token::Num(t));
        } else if is_ident_start(c) {
            let mut t = String::new();
            while let Some(&d) = it.peek().filter(|d| is_ident_cont(**d)) {
                t.push(d);
                it.next();
            }
            out.push(Token::Name { text: t, quoted: false });
        } else if c == '"' {
            it.next();
            let mut t = String::new();
            loop {
                match it.next() {
                    None => return Err("unterminated quoted name".into()),
                    Some('"') if it.peek() == Some(&'"') => {
                        it.next();
                        t.push('"');
                    }
                    Some('"') => break,
                    Some(d) => t.push(d),
                }
            }
            out.push(Token::Name { text: t, quoted: true });
        } else {
            it.next();
            out.push(match c {
                '*' => Token::Name { text: "*".into(), quoted: false },
                ',' => Token::Comma,
                '(' => Token::Open,
                ')' => Token::Close,
                _ => return Err(format!("unexpected character {c:?}")),
            });
        }
    }
    Ok(out)
}

fn keyword(t: &Token, kw: &str) -> bool {
    matches!(t, Token::Name { text, quoted: false } if text.eq_ignore_ascii_case(kw))
}

fn number(t: Option<&Token>) -> Result<u32, String> {
    match t {
        Some(Token::Num(n)) => match n.parse::<u32>() {
            Ok(0) => Err("the number of synchronous standbys must be greater than zero".into()),
            Ok(v) => Ok(v),
            Err(_) => Err(format!("number of synchronous standbys out of range: {n}")),
        },
        _ => Err("expected the number of synchronous standbys".into()),
    }
}

/// `name [, name ...]`, where a name is an identifier (not FIRST or ANY
/// unless quoted), a number, a quoted name or `*`.
fn name_list(ts: &[Token]) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut want_name = true;
    for t in ts {
        match (want_name, t) {
            (true, Token::Num(n)) => names.push(n.clone()),
            (true, Token::Name { text, quoted }) => {
                if !quoted && (keyword(t, "FIRST") || keyword(t, "ANY")) {
                    return Err(format!("{text} is a keyword, not a standby name"));
                }
                names.push(text.clone());
            }
            (false, Token::Comma) => {}
            _ => return Err("malformed list of standby names".into()),
        }
        want_name = !want_name;
    }
    if want_name {
        return Err("malformed list of standby names".into());
    }
    Ok(names)
}

/// Parses `synchronous_standby_names`; `Ok(None)`: empty, asynchronous.
pub fn parse(s: &str) -> Result<Option<Setting>, String> {
    let ts = tokens(s)?;
    if ts.is_empty() {
        return Ok(None);
    }
    let (method, num, rest) = if keyword(&ts[0], "FIRST") || keyword(&ts[0], "ANY") {
        let method = if keyword(&ts[0], "ANY") { Method::Any } else { Method::First };
        (method, number(ts.get(1))?, &ts[2..])
    } else if matches!(ts[0], Token::Num(_)) && ts.get(1) == Some(&Token::Open) {
        (Method::First, number(ts.first())?, &ts[1..])
    } else {
        return Ok(Some(Setting { method: Method::First, num: 1, names: name_list(&ts)? }));
    };
    match rest {
        [Token::Open, list @ .., Token::Close] => {
            Ok(Some(Setting { method, num, names: name_list(list)? }))
        }
        _ => Err("expected a parenthesized list of standby names".into()),
    }
}

/// The cluster-wide record: at least `num` of `members` flushed every
/// acknowledged commit. Members are cluster node names (spelled as the
/// cluster does) or other standby names, which never count as survivors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub method: Method,
    pub num: u32,
    pub members: Vec<String>,
}

impl Record {
    /// The record for `setting` on the primary `primary`: the primary never
    /// acknowledges its own commits as a standby; `*` stands for every other
    /// cluster node. Names match case-insensitively, as in PostgreSQL.
    /// `None` when no standby can be synchronous.
    pub fn from_setting(setting: &Setting, primary: &str, cluster: &[String]) -> Option<Record> {
        let mut members: Vec<String> = Vec::new();
        let mut add = |name: &str| {
            if name.eq_ignore_ascii_case(primary)
                || members.iter().any(|m| m.eq_ignore_ascii_case(name))
            {
                return;
            }
            let spelled = cluster.iter().find(|c| c.eq_ignore_ascii_case(name));
            members.push(spelled.map_or(name, |c| c.as_str()).to_string());
        };
        for n in &setting.names {
            if n == "*" {
                cluster.iter().for_each(|c| add(c));
            } else {
                add(n);
            }
        }
        (!members.is_empty()).then_some(Record {
            method: setting.method,
            num: setting.num,
            members,
        })
    }

    /// Members that must survive: `|L| - n + 1`, `n` capped at `|L|`.
    pub fn quorum(&self) -> usize {
        let l = self.members.len();
        l - (self.num as usize).min(l) + 1
    }

    /// The value kept in the CIB, in `synchronous_standby_names` syntax so
    /// that one parser reads both: `FIRST 1 ("srv2","srv3")`.
    pub fn to_value(&self) -> String {
        let names: Vec<String> =
            self.members.iter().map(|m| format!("\"{}\"", m.replace('"', "\"\""))).collect();
        format!("{} {} ({})", self.method.as_str(), self.num, names.join(","))
    }

    pub fn from_value(v: &str) -> Result<Record, String> {
        match parse(v)? {
            Some(s) if !s.names.iter().any(|n| n == "*") => {
                Ok(Record { method: s.method, num: s.num, members: s.names })
            }
            _ => Err(format!("not a synchronous replication record: \"{v}\"")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `node`, the most advanced surviving member, holds every acknowledged
    /// commit: so does any standby at or beyond `position`.
    Safe { node: String, position: Position },
    /// Too few members survive: `more` of `absent` must come back.
    Unsafe { more: usize, absent: Vec<String> },
}

/// Whether the `survivors` (standbys that published a position) provably
/// hold every commit acknowledged under `record`.
pub fn check(record: &Record, survivors: &[(String, Position)]) -> Verdict {
    let member = |n: &str| record.members.iter().any(|m| m.eq_ignore_ascii_case(n));
    let alive: Vec<&(String, Position)> = survivors.iter().filter(|(n, _)| member(n)).collect();
    let count = record
        .members
        .iter()
        .filter(|m| alive.iter().any(|(n, _)| n.eq_ignore_ascii_case(m)))
        .count();
    if count >= record.quorum()
        && let Some((node, position)) = alive.iter().max_by_key(|(_, p)| *p)
    {
        return Verdict::Safe { node: node.clone(), position: *position };
    }
    let absent: Vec<String> = record
        .members
        .iter()
        .filter(|m| !alive.iter().any(|(n, _)| n.eq_ignore_ascii_case(m)))
        .cloned()
        .collect();
    Verdict::Unsafe { more: record.quorum() - count, absent }
}

/// The cause-first exit reason of a refused promotion (kept under 128
/// characters: long lists of names are cut).
pub fn refusal(more: usize, absent: &[String]) -> String {
    let mut names = absent.join(", ");
    if names.len() > 48 {
        let cut = (0..=48).rev().find(|i| names.is_char_boundary(*i)).unwrap_or(0);
        names.truncate(cut);
        names.push_str("...");
    }
    let which = if more == absent.len() { names } else { format!("{more} of {names}") };
    format!("acknowledged commits may be only on absent sync standbys: bring back {which}")
}

/// What the primary's monitor keeps in the CIB for the setting in effect:
/// `None` when no record is needed (asynchronous, or no standby can ever be
/// synchronous, so no commit is acknowledged). A setting this parser cannot
/// read gives a value no reader accepts: promotions are then refused in
/// `safe` mode rather than judged on a guess.
pub fn wanted_value(setting: &str, primary: &str, cluster: &[String]) -> Option<String> {
    match parse(setting) {
        Ok(None) => None,
        Ok(Some(s)) => Record::from_setting(&s, primary, cluster).map(|r| r.to_value()),
        Err(e) => Some(format!("!unreadable synchronous_standby_names ({e})")),
    }
}

/// The write the monitor does: none when the CIB already holds the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Keep,
    Write(String),
    Remove,
}

pub fn change(current: Option<&str>, wanted: Option<String>) -> Change {
    match (current, wanted) {
        (c, Some(w)) if c == Some(w.as_str()) => Change::Keep,
        (_, Some(w)) => Change::Write(w),
        (Some(_), None) => Change::Remove,
        (None, None) => Change::Keep,
    }
}

/// Whether a new primary may replace the record it inherited by the one of
/// its own setting (`new_value`). The inherited record says who holds the
/// commits the former primary acknowledged; they all lie before `switch`,
/// where this primary's timeline began. The new record covers them only once
/// at least `n` of its members have flushed past that point (`caught_up`,
/// from pg_stat_replication): until then a member that is still catching
/// up could be counted as holding commits it never received. A value no
/// reader accepts replaces the record at once (promotions are refused on
/// it, which is never less safe).
pub fn may_replace_inherited(new_value: &str, caught_up: &[String]) -> bool {
    let Ok(record) = Record::from_value(new_value) else { return true };
    let have = record
        .members
        .iter()
        .filter(|m| caught_up.iter().any(|c| c.eq_ignore_ascii_case(m)))
        .count();
    have >= (record.num as usize).min(record.members.len())
}

/// `sync_failover`: what a promotion does when the survivors may miss
/// acknowledged commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failover {
    /// Refuse, until enough members come back.
    Safe,
    /// Promote the most advanced survivor, with a warning.
    Available,
}

/// The decision at promotion time, over the record (`None`: asynchronous).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// Asynchronous replication: the election alone decides.
    NoRecord,
    /// A survivor holds every acknowledged commit (log line).
    Allow(String),
    /// Availability mode over a possible loss (warning).
    Warn(String),
    /// Safe mode: the exit reason.
    Refuse(String),
}

pub fn guard(record: Option<&str>, mode: Failover, survivors: &[(String, Position)]) -> Guard {
    let Some(value) = record else { return Guard::NoRecord };
    let best = survivors
        .iter()
        .max_by_key(|(_, p)| *p)
        .map(|(n, p)| format!("{n} at {}#{}", p.timeline, p.lsn))
        .unwrap_or_else(|| "none".into());
    let record = match Record::from_value(value) {
        Ok(r) => r,
        Err(e) => {
            return match mode {
                Failover::Safe => {
                    Guard::Refuse(format!("cannot tell who holds acknowledged commits: {e}"))
                }
                Failover::Available => Guard::Warn(format!(
                    "sync_failover=available: promoting the most advanced standby ({best}) \
                     without knowing who holds acknowledged commits ({e})"
                )),
            };
        }
    };
    match check(&record, survivors) {
        Verdict::Safe { node, position } => Guard::Allow(format!(
            "{node} ({}#{}) holds every commit acknowledged under {}",
            position.timeline,
            position.lsn,
            record.to_value()
        )),
        Verdict::Unsafe { more, absent } => match mode {
            Failover::Safe => Guard::Refuse(refusal(more, &absent)),
            Failover::Available => Guard::Warn(format!(
                "sync_failover=available: promoting the most advanced standby ({best}); \
                 commits acknowledged under {} by {} (absent) may be lost",
                record.to_value(),
                absent.join(", ")
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsn::Lsn;
    use proptest::prelude::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn setting(method: Method, num: u32, n: &[&str]) -> Option<Setting> {
        Some(Setting { method, num, names: names(n) })
    }

    #[test]
    fn an_inherited_record_is_replaced_once_n_members_caught_up() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let first1 = "FIRST 1 (\"srv1\",\"srv3\")";
        assert!(!may_replace_inherited(first1, &[]));
        assert!(!may_replace_inherited(first1, &names(&["srv4"])), "not a member");
        assert!(may_replace_inherited(first1, &names(&["SRV3"])));
        let any2 = "ANY 2 (\"a\",\"b\",\"c\",\"d\")";
        assert!(!may_replace_inherited(any2, &names(&["a", "a", "x"])), "one member, twice");
        assert!(may_replace_inherited(any2, &names(&["a", "c"])));
        // More required than listed: every member.
        let all = "ANY 3 (\"a\",\"b\")";
        assert!(!may_replace_inherited(all, &names(&["a"])));
        assert!(may_replace_inherited(all, &names(&["a", "b"])));
        assert!(may_replace_inherited("!unreadable synchronous_standby_names (x)", &[]));
    }

    #[test]
    fn parses_every_form_postgresql_accepts() {
        use Method::*;
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("   "), Ok(None));
        assert_eq!(parse("srv2"), Ok(setting(First, 1, &["srv2"])));
        assert_eq!(parse("srv2, srv3"), Ok(setting(First, 1, &["srv2", "srv3"])));
        assert_eq!(parse("*"), Ok(setting(First, 1, &["*"])));
        assert_eq!(parse("2 (a, b, c)"), Ok(setting(First, 2, &["a", "b", "c"])));
        assert_eq!(parse("FIRST 2 (a,b,c)"), Ok(setting(First, 2, &["a", "b", "c"])));
        assert_eq!(parse("first 1(a)"), Ok(setting(First, 1, &["a"])));
        assert_eq!(parse("ANY 2 (a, \"B c\", *)"), Ok(setting(Any, 2, &["a", "B c", "*"])));
        assert_eq!(parse("any 1 (\"first\")"), Ok(setting(Any, 1, &["first"])));
        assert_eq!(parse("\"a\"\"b\", 12"), Ok(setting(First, 1, &["a\"b", "12"])));
        assert_eq!(parse("s$1, _x, é"), Ok(setting(First, 1, &["s$1", "_x", "é"])));
        assert_eq!(parse("\tANY\n3 ( a , b , c )  "), Ok(setting(Any, 3, &["a", "b", "c"])));
    }

    #[test]
    fn refuses_what_postgresql_refuses() {
        for bad in [
            "first",
            "ANY (a)",
            "ANY 0 (a)",
            "FIRST 1 a",
            "FIRST 1 (a",
            "FIRST 1 ()",
            "a,,b",
            "a b",
            ",a",
            "a,",
            "\"open",
            "a; b",
            "any, b",
            "ANY 99999999999 (a)",
            "1 (a) b",
            "(a)",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} -> {:?}", parse(bad));
        }
    }

    fn rec(method: Method, num: u32, m: &[&str]) -> Record {
        Record { method, num, members: names(m) }
    }

    #[test]
    fn record_leaves_out_the_primary_and_expands_the_star() {
        let cluster = names(&["srv1", "srv2", "srv3"]);
        let r = |s: &str| Record::from_setting(&parse(s).unwrap().unwrap(), "srv1", &cluster);
        assert_eq!(r("FIRST 1 (srv1, srv2, srv3)"), Some(rec(Method::First, 1, &["srv2", "srv3"])));
        assert_eq!(r("*"), Some(rec(Method::First, 1, &["srv2", "srv3"])));
        assert_eq!(r("ANY 1 (SRV3, \"Srv2\", srv3)"), Some(rec(Method::Any, 1, &["srv3", "srv2"])));
        assert_eq!(r("ANY 2 (backup, *)"), Some(rec(Method::Any, 2, &["backup", "srv2", "srv3"])));
        assert_eq!(r("srv1"), None);
        assert_eq!(r("SRV1"), None);
    }

    #[test]
    fn record_value_round_trips() {
        for r in [
            rec(Method::First, 1, &["srv2"]),
            rec(Method::Any, 3, &["a", "b\"c", "d e", "FIRST", "*x", "12"]),
        ] {
            assert_eq!(Record::from_value(&r.to_value()), Ok(r.clone()), "{}", r.to_value());
        }
        assert_eq!(rec(Method::Any, 2, &["a", "b"]).to_value(), "ANY 2 (\"a\",\"b\")");
        assert!(Record::from_value("").is_err());
        assert!(Record::from_value("*").is_err());
        assert!(Record::from_value("junk(").is_err());
    }

    fn pos(lsn: u64) -> Position {
        Position { timeline: 1, lsn: Lsn(lsn) }
    }

    /// Every rule (FIRST/ANY, n from 1 to |L|+1) over member lists of 1 to
    /// 5 nodes, every set of survivors, every set of members that may have
    /// acknowledged the last commit: the rule says Safe exactly when every
    /// possible acknowledging set has a survivor, and then picks one that
    /// holds the commit.
    #[test]
    fn exhaustive_up_to_five_members() {
        let all = ["n1", "n2", "n3", "n4", "n5"];
        for size in 1..=5usize {
            let members = &all[..size];
            for method in [Method::First, Method::Any] {
                for num in 1..=(size as u32 + 1) {
                    let r = rec(method, num, members);
                    let needed = (num as usize).min(size);
                    for alive_mask in 0u32..(1 << size) {
                        let alive = |i: usize| alive_mask & (1 << i) != 0;
                        // Is there a set of >= needed members, none alive?
                        let dead = (0..size).filter(|i| !alive(*i)).count();
                        let loss_possible = dead >= needed;
                        for ack_mask in 0u32..(1 << size) {
                            if (ack_mask.count_ones() as usize) < needed {
                                continue;
                            }
                            // The commit at 100: ackers have it, others not.
                            let survivors: Vec<(String, Position)> = (0..size)
                                .filter(|i| alive(*i))
                                .map(|i| {
                                    let has = ack_mask & (1 << i) != 0;
                                    let p = if has { 100 + i as u64 } else { 90 - i as u64 };
                                    (members[i].to_string(), pos(p))
                                })
                                .chain([("other".to_string(), pos(50))])
                                .collect();
                            match check(&r, &survivors) {
                                Verdict::Safe { node, position } => {
                                    assert!(!loss_possible, "{r:?} alive {alive_mask:b}");
                                    assert!(position >= pos(100), "{r:?} {alive_mask:b} {node}");
                                    assert!(members.contains(&node.as_str()));
                                }
                                Verdict::Unsafe { more, absent } => {
                                    assert!(loss_possible, "{r:?} alive {alive_mask:b}");
                                    assert_eq!(absent.len(), dead);
                                    assert_eq!(more, r.quorum() - (size - dead));
                                    assert!(more >= 1 && more <= absent.len());
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn first_one_of_two_standbys_after_losing_the_primary_and_one() {
        let r = rec(Method::First, 1, &["srv2", "srv3"]);
        let v = check(&r, &[("srv3".into(), pos(10))]);
        assert_eq!(v, Verdict::Unsafe { more: 1, absent: names(&["srv2"]) });
        let Verdict::Unsafe { more, absent } = v else { unreachable!() };
        let why = refusal(more, &absent);
        assert_eq!(
            why,
            "acknowledged commits may be only on absent sync standbys: bring back srv2"
        );
        assert_eq!(
            check(&r, &[("srv3".into(), pos(10)), ("SRV2".into(), pos(20))]),
            Verdict::Safe { node: "SRV2".into(), position: pos(20) }
        );
    }

    #[test]
    fn the_monitor_writes_only_changes() {
        let cluster = names(&["srv1", "srv2", "srv3"]);
        let w = |s: &str| wanted_value(s, "srv1", &cluster);
        assert_eq!(w(""), None);
        assert_eq!(w("srv1"), None);
        assert_eq!(w("ANY 1 (*)").as_deref(), Some("ANY 1 (\"srv2\",\"srv3\")"));
        let bad = w("FIRST (").unwrap();
        assert!(Record::from_value(&bad).is_err(), "{bad}");
        let v = w("srv2").unwrap();
        assert_eq!(change(None, Some(v.clone())), Change::Write(v.clone()));
        assert_eq!(change(Some(&v), Some(v.clone())), Change::Keep);
        assert_eq!(change(Some("x"), Some(v.clone())), Change::Write(v.clone()));
        assert_eq!(change(Some(&v), None), Change::Remove);
        assert_eq!(change(None, None), Change::Keep);
    }

    #[test]
    fn guard_in_both_modes() {
        let r = rec(Method::First, 1, &["srv2", "srv3"]).to_value();
        let alone = [("srv3".to_string(), pos(0x500))];
        let both = [("srv3".to_string(), pos(0x500)), ("srv2".to_string(), pos(0x600))];
        assert_eq!(guard(None, Failover::Safe, &alone), Guard::NoRecord);
        assert!(
            matches!(guard(Some(&r), Failover::Safe, &alone), Guard::Refuse(m) if m.ends_with("bring back srv2"))
        );
        assert!(matches!(guard(Some(&r), Failover::Available, &alone),
            Guard::Warn(m) if m.contains("srv3 at 1#0/500") && m.contains("srv2 (absent)")));
        assert!(
            matches!(guard(Some(&r), Failover::Safe, &both), Guard::Allow(m) if m.starts_with("srv2 (1#0/600)"))
        );
        assert!(
            matches!(guard(Some("!junk"), Failover::Safe, &both), Guard::Refuse(m) if m.len() < 128)
        );
        assert!(matches!(guard(Some("!junk"), Failover::Available, &both), Guard::Warn(_)));
    }

    #[test]
    fn refusal_stays_short_and_says_how_many() {
        let many: Vec<String> = (0..40).map(|i| format!("node-with-a-long-name-{i}")).collect();
        let why = refusal(3, &many);
        assert!(why.len() < 128, "{} {why}", why.len());
        assert!(why.contains("bring back 3 of node-with-a-long-name-0"));
    }

    /// A random history: commits with increasing LSNs, each flushed by at
    /// least `num` members (the rest may have it or not, positions only
    /// move forward); random survivors among members and non-members.
    fn history() -> impl Strategy<Value = (Record, Vec<(String, Position)>, u64)> {
        (1usize..=6, any::<bool>(), 1u32..=7)
            .prop_flat_map(|(size, any_method, num)| {
                let commits =
                    prop::collection::vec(prop::collection::vec(any::<bool>(), size), 0..8);
                let extra = prop::collection::vec(0u64..50, size);
                let alive = prop::collection::vec(any::<bool>(), size);
                let others = prop::collection::vec(0u64..1000, 0..3);
                (Just((size, any_method, num)), commits, extra, alive, others)
            })
            .prop_map(|((size, any_method, num), commits, extra, alive, others)| {
                let members: Vec<String> = (0..size).map(|i| format!("m{i}")).collect();
                let method = if any_method { Method::Any } else { Method::First };
                let r = Record { method, num, members: members.clone() };
                let needed = (num as usize).min(size);
                let mut flushed = vec![0u64; size];
                let mut last_acked = 0u64;
                for (k, acks) in commits.iter().enumerate() {
                    let lsn = 100 * (k as u64 + 1);
                    // Make sure at least `needed` members flushed it.
                    let mut who: Vec<usize> = (0..size).filter(|i| acks[*i]).collect();
                    for i in 0..size {
                        if who.len() >= needed {
                            break;
                        }
                        if !who.contains(&i) {
                            who.push(i);
                        }
                    }
                    for i in who {
                        flushed[i] = lsn;
                    }
                    last_acked = lsn;
                }
                let mut survivors: Vec<(String, Position)> = (0..size)
                    .filter(|i| alive[*i])
                    .map(|i| (members[i].clone(), pos(flushed[i] + extra[i])))
                    .collect();
                for (j, p) in others.into_iter().enumerate() {
                    survivors.push((format!("other{j}"), pos(p)));
                }
                (r, survivors, last_acked)
            })
    }

    proptest! {
        #[test]
        fn never_picks_a_node_missing_an_acknowledged_commit(
            (r, survivors, last_acked) in history()
        ) {
            if let Verdict::Safe { position, .. } = check(&r, &survivors) {
                prop_assert!(position >= pos(last_acked));
                // The election promotes the most advanced survivor: safe too.
                let best = survivors.iter().map(|(_, p)| *p).max().unwrap();
                prop_assert!(best >= pos(last_acked));
            }
        }

        #[test]
        fn parser_never_panics(s in "\\PC{0,40}") {
            let _ = parse(&s);
            let _ = Record::from_value(&s);
        }

        #[test]
        fn parser_reads_what_postgresql_would(
            any_method in any::<bool>(),
            form in 0u8..3,
            num in 1u32..10,
            list in prop::collection::vec("[a-zA-Z_][a-zA-Z0-9_$]{0,8}|\"[^\"]{0,6}\"|\\*|[0-9]{1,3}", 1..5),
            upper in any::<bool>(),
            sp in "[ \t]{0,2}",
        ) {
            let is_kw = |s: &str| s.eq_ignore_ascii_case("first") || s.eq_ignore_ascii_case("any");
            prop_assume!(!list.iter().any(|n| is_kw(n)));
            let joined = list.join(&format!("{sp},{sp}"));
            let kw = if any_method { "any" } else { "first" };
            let kw = if upper { kw.to_uppercase() } else { kw.to_string() };
            let (text, method, n) = match form {
                0 if !any_method => (joined.clone(), Method::First, 1),
                1 if !any_method => (format!("{sp}{num}{sp}({sp}{joined}{sp}){sp}"), Method::First, num),
                _ => (
                    format!("{sp}{kw} {num}{sp}({joined}){sp}"),
                    if any_method { Method::Any } else { Method::First },
                    num,
                ),
            };
            let unquote = |s: &String| s.strip_prefix('"').and_then(|s| s.strip_suffix('"')).map_or(s.clone(), str::to_string);
            let want: Vec<String> = list.iter().map(unquote).collect();
            prop_assert_eq!(parse(&text), Ok(Some(Setting { method, num: n, names: want })));
        }
    }
}
