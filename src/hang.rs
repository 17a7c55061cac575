//! Whether a running instance can still make progress, from the state
//! letters /proc gives its processes (postmaster first) over a few samples.
//! A server whose processes are all stopped (SIGSTOP, a frozen cgroup) or
//! all stuck in uninterruptible sleep (a dead disk) will never answer:
//! waiting out an action's timeout for it only delays the failover.

/// What the samples say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// Something can run: ask the server as usual.
    Alive,
    /// Will never answer: the reason, for the log and the exit reason.
    Hung(String),
}

/// Stopped by a signal or a debugger: no progress until SIGCONT.
fn stopped(state: char) -> bool {
    matches!(state, 'T' | 't')
}

/// `samples`: one list of state letters per look, the postmaster's first.
/// - a stopped postmaster accepts no connection and forks nothing: hung at
///   the first look (a stop only ends with SIGCONT);
/// - every process in uninterruptible sleep or stopped at every look, over
///   at least two looks: hung (D is normally a brief wait for the disk).
pub fn judge(samples: &[Vec<char>]) -> Liveness {
    let Some(first) = samples.first() else { return Liveness::Alive };
    let Some(&pm) = first.first() else { return Liveness::Alive };
    if stopped(pm) {
        return Liveness::Hung(format!(
            "postmaster stopped (state {pm}), {}/{} processes stopped",
            first.iter().filter(|s| stopped(**s)).count(),
            first.len()
        ));
    }
    let stuck = |s: &Vec<char>| !s.is_empty() && s.iter().all(|c| *c == 'D' || stopped(*c));
    if samples.len() >= 2 && samples.iter().all(stuck) {
        return Liveness::Hung(format!(
            "all {} processes in uninterruptible sleep (D) or stopped over {} looks",
            samples.last().map(Vec::len).unwrap_or(0),
            samples.len()
        ));
    }
    Liveness::Alive
}

/// One look at the process tree: state letter and CPU ticks used so far of
/// each process, the postmaster first.
pub type Look = Vec<(char, u64)>;

/// A server that has not answered (a connection, a query, a shutdown) over
/// `looks` taken at regular intervals: stalled when it used no CPU at all
/// meanwhile, nothing was runnable, and some process waited on the disk
/// (D) at every look, as when its disk stops answering while the
/// postmaster itself sleeps. Asked only about a server that did not answer:
/// an idle one answers at once.
pub fn stalled(looks: &[Look]) -> Option<String> {
    let (first, last) = (looks.first()?, looks.last()?);
    let cpu = |l: &Look| l.iter().map(|(_, c)| *c).sum::<u64>();
    let steady = looks.iter().all(|l| l.len() == first.len() && !l.is_empty());
    let in_d = looks.iter().all(|l| l.iter().any(|(s, _)| *s == 'D'));
    let none_runs = looks.iter().all(|l| l.iter().all(|(s, _)| *s != 'R'));
    (looks.len() >= 2 && steady && in_d && none_runs && cpu(first) == cpu(last)).then(|| {
        format!(
            "no CPU used by its {} processes over {} looks, some in uninterruptible sleep (D) throughout",
            last.len(),
            looks.len()
        )
    })
}

/// Whether one look is worth confirming with more (cheap first test).
pub fn suspicious(sample: &[char]) -> bool {
    sample.first().is_some_and(|pm| *pm == 'D' || stopped(*pm))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hung(samples: &[&str]) -> bool {
        let s: Vec<Vec<char>> = samples.iter().map(|x| x.chars().collect()).collect();
        matches!(judge(&s), Liveness::Hung(_))
    }

    #[test]
    fn a_stopped_postmaster_is_hung_at_once() {
        assert!(hung(&["TTTT"]));
        assert!(hung(&["tSSS"]));
        assert!(hung(&["TSRS", "TSSS"]));
    }

    #[test]
    fn stuck_in_d_needs_every_process_over_two_looks() {
        assert!(!hung(&["DDDD"]), "one look at D is a disk wait, not a hang");
        assert!(hung(&["DDDD", "DDTD"]));
        assert!(hung(&["DDD", "DDD", "DDD"]));
        assert!(!hung(&["DDDD", "DDSD"]), "a process ran in between");
        assert!(!hung(&["DDSD", "DDDD"]));
    }

    #[test]
    fn running_servers_are_alive() {
        for s in ["SSSS", "RSSS", "SDDD", "S", "RRRR", "ZSSS"] {
            assert!(!hung(&[s, s, s]), "{s}");
        }
        assert!(!hung(&[]));
        assert!(!hung(&[""]));
    }

    #[test]
    fn exhaustive_small_states() {
        // Every pair of two-process looks over the letters /proc uses.
        let letters = ['R', 'S', 'D', 'T', 't', 'Z', 'I', 'X'];
        for a in letters {
            for b in letters {
                for c in letters {
                    for d in letters {
                        let s = vec![vec![a, b], vec![c, d]];
                        let expected =
                            stopped(a) || ([a, b, c, d].iter().all(|x| *x == 'D' || stopped(*x)));
                        assert_eq!(matches!(judge(&s), Liveness::Hung(_)), expected, "{s:?}");
                    }
                }
            }
        }
    }

    fn looks(v: &[&[(char, u64)]]) -> Vec<Look> {
        v.iter().map(|l| l.to_vec()).collect()
    }

    #[test]
    fn a_server_stuck_on_its_disk_is_stalled() {
        let stuck: &[(char, u64)] = &[('S', 5), ('D', 40), ('D', 7), ('S', 1)];
        assert!(stalled(&looks(&[stuck, stuck, stuck])).is_some());
        // Any CPU used in between: progress (a slow disk, not a dead one).
        let later: &[(char, u64)] = &[('S', 5), ('D', 41), ('D', 7), ('S', 1)];
        assert!(stalled(&looks(&[stuck, stuck, later])).is_none());
        // Nobody waits on the disk: a server blocked elsewhere, not this.
        let idle: &[(char, u64)] = &[('S', 5), ('S', 40)];
        assert!(stalled(&looks(&[idle, idle, idle])).is_none());
        // Runnable, or a process came or went: not stalled.
        let runs: &[(char, u64)] = &[('S', 5), ('D', 40), ('R', 7), ('S', 1)];
        assert!(stalled(&looks(&[stuck, runs, stuck])).is_none());
        let fewer: &[(char, u64)] = &[('S', 5), ('D', 40), ('D', 7)];
        assert!(stalled(&looks(&[stuck, fewer])).is_none());
        assert!(stalled(&looks(&[stuck])).is_none());
        assert!(stalled(&[]).is_none());
        assert!(stalled(&looks(&[&[], &[]])).is_none());
    }

    #[test]
    fn only_d_or_stopped_postmasters_are_worth_a_second_look() {
        assert!(suspicious(&['D', 'S']));
        assert!(suspicious(&['T']));
        assert!(!suspicious(&['S', 'D']));
        assert!(!suspicious(&[]));
    }
}
