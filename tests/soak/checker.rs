//! The soak's verdict: a pure function of the recorded history.
//!
//! Properties (each violation is reported with the fault it belongs to):
//! - every acknowledged row is on the primary read after each fault and on
//!   the final primary (rows acknowledged before a rebuild of the whole
//!   cluster are counted apart, as unverifiable);
//! - never two nodes writable at the same moment;
//! - once steady, every node holds the same content (checksums equal);
//! - no fence after a fault that only crashed PostgreSQL or was a planned
//!   operation (more generally: no fence of a node the fault does not
//!   justify);
//! - every fault converged (a steady cluster within the bound);
//! - per fault kind, time from the fault to the first acknowledged commit
//!   after the outage: median and max.

use std::collections::{BTreeMap, BTreeSet};

use super::history::{History, NodeState, contains};

#[derive(Clone, Debug, PartialEq)]
pub struct Lost {
    pub writer: u32,
    pub id: i64,
    pub acked_at: u64,
    /// the first fault after which it was missing; None: final check only
    pub fault: Option<usize>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Double {
    pub nodes: (String, String),
    /// the moment both were surely writable
    pub from: u64,
    pub to: u64,
    pub fault: Option<usize>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct BadFence {
    pub fault: usize,
    pub kind: String,
    pub node: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Divergence {
    /// None: the final check
    pub fault: Option<usize>,
    pub checksums: BTreeMap<String, Option<String>>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct KindStats {
    pub count: usize,
    pub not_converged: usize,
    pub fences: usize,
    /// seconds to writable of the faults that had an outage and ended it
    pub writable: Vec<f64>,
    /// faults with no failed commit at all
    pub no_outage: usize,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    pub faults: usize,
    pub acked: usize,
    pub unverifiable: usize,
    pub lost: Vec<Lost>,
    pub doubles: Vec<Double>,
    pub divergences: Vec<Divergence>,
    pub bad_fences: Vec<BadFence>,
    pub not_converged: Vec<usize>,
    pub repairs: usize,
    pub fences: usize,
    /// per fault: seconds from its start to writable (Some(0.0): no outage)
    pub writable_after: Vec<Option<f64>>,
    pub by_kind: BTreeMap<String, KindStats>,
}

pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    Some(if s.len() % 2 == 1 { s[m] } else { (s[m - 1] + s[m]) / 2.0 })
}

pub fn max(v: &[f64]) -> Option<f64> {
    v.iter().copied().reduce(f64::max)
}

impl Report {
    pub fn ok(&self) -> bool {
        self.lost.is_empty()
            && self.doubles.is_empty()
            && self.divergences.is_empty()
            && self.bad_fences.is_empty()
            && self.not_converged.is_empty()
    }

    /// Faults some violation is attributed to.
    pub fn failed_faults(&self) -> BTreeSet<usize> {
        let mut s: BTreeSet<usize> = self.not_converged.iter().copied().collect();
        s.extend(self.lost.iter().filter_map(|l| l.fault));
        s.extend(self.doubles.iter().filter_map(|d| d.fault));
        s.extend(self.divergences.iter().filter_map(|d| d.fault));
        s.extend(self.bad_fences.iter().map(|b| b.fault));
        s
    }

    pub fn summary_line(&self, seed: u64, planned: usize) -> String {
        format!(
            "SOAK seed={seed} faults={}/{planned} acked={} lost={} double_primary={} \
             diverged={} bad_fences={} not_converged={} fences={} repairs={} unverifiable={} {}",
            self.faults,
            self.acked,
            self.lost.len(),
            self.doubles.len(),
            self.divergences.len(),
            self.bad_fences.len(),
            self.not_converged.len(),
            self.fences,
            self.repairs,
            self.unverifiable,
            if self.ok() { "PASS" } else { "FAIL" }
        )
    }

    /// Markdown: the per-kind table and the violations.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        s.push_str(
            "| fault | n | not converged | fences | no outage | writable after, median | max |\n\
             |---|--:|--:|--:|--:|--:|--:|\n",
        );
        let f = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.1} s"));
        for (k, st) in &self.by_kind {
            s.push_str(&format!(
                "| {k} | {} | {} | {} | {} | {} | {} |\n",
                st.count,
                st.not_converged,
                st.fences,
                st.no_outage,
                f(median(&st.writable)),
                f(max(&st.writable))
            ));
        }
        s.push_str(&format!(
            "\nRows acknowledged: {}, lost: {}, unverifiable (before a rebuild of the cluster): {}. \
             Moments with two writable nodes: {}. Nodes not converged to the same content: {}. \
             Fences: {} ({} not justified by their fault). Faults not converged: {}. \
             Repairs by the harness: {}.\n",
            self.acked,
            self.lost.len(),
            self.unverifiable,
            self.doubles.len(),
            self.divergences.len(),
            self.fences,
            self.bad_fences.len(),
            self.not_converged.len(),
            self.repairs
        ));
        for l in self.lost.iter().take(20) {
            s.push_str(&format!(
                "- lost: writer {} id {} acknowledged at {} (missing after fault {:?})\n",
                l.writer, l.id, l.acked_at, l.fault
            ));
        }
        for d in &self.doubles {
            s.push_str(&format!(
                "- two writable: {} and {} from {} to {} (fault {:?})\n",
                d.nodes.0, d.nodes.1, d.from, d.to, d.fault
            ));
        }
        for d in &self.divergences {
            s.push_str(&format!("- content differs (fault {:?}): {:?}\n", d.fault, d.checksums));
        }
        for b in &self.bad_fences {
            s.push_str(&format!("- {} fenced after fault {} ({})\n", b.node, b.fault, b.kind));
        }
        for i in &self.not_converged {
            s.push_str(&format!("- fault {i} did not converge\n"));
        }
        s
    }
}

/// The fault whose window [start, end] holds t.
fn fault_at(h: &History, t: u64) -> Option<usize> {
    h.faults.iter().find(|f| f.start <= t && t <= f.end).map(|f| f.index)
}

/// Writable intervals per node: maximal runs of Writable samples. A run of
/// two samples or more is surely writable from the first answer to the last
/// question; a single sample only somewhere in [sent, recv].
fn writable_runs(h: &History) -> BTreeMap<String, Vec<(u64, u64, bool)>> {
    let mut by_node: BTreeMap<&str, Vec<&super::history::Sample>> = BTreeMap::new();
    for s in &h.samples {
        by_node.entry(&s.node).or_default().push(s);
    }
    let mut out = BTreeMap::new();
    for (node, mut v) in by_node {
        v.sort_by_key(|s| s.sent);
        let mut runs = Vec::new();
        let mut cur: Vec<&super::history::Sample> = Vec::new();
        let mut close = |cur: &mut Vec<&super::history::Sample>| {
            match cur.len() {
                0 => {}
                1 => runs.push((cur[0].sent, cur[0].recv, false)),
                _ => {
                    let (a, b) = (cur[0].recv, cur[cur.len() - 1].sent);
                    if a <= b {
                        runs.push((a, b, true));
                    } else {
                        runs.push((cur[0].sent, cur[cur.len() - 1].recv, false));
                    }
                }
            }
            cur.clear();
        };
        for s in v {
            if s.state == NodeState::Writable {
                cur.push(s);
            } else {
                close(&mut cur);
            }
        }
        close(&mut cur);
        out.insert(node.to_string(), runs);
    }
    out
}

pub fn check(h: &History) -> Report {
    let mut r = Report { faults: h.faults.len(), acked: h.acks.len(), ..Report::default() };
    let last_reset = h.resets.iter().copied().max().unwrap_or(0);

    // ---- acknowledged rows
    let mut lost: BTreeMap<(u32, i64), Lost> = BTreeMap::new();
    for f in &h.faults {
        let Some(rows) = &f.rows else { continue };
        let reset_before = h.resets.iter().copied().filter(|t| *t <= f.rows_at).max().unwrap_or(0);
        for a in h.acks.iter().filter(|a| a.t > reset_before && a.t <= f.rows_at) {
            if !contains(rows, a.writer, a.id) {
                lost.entry((a.writer, a.id)).or_insert(Lost {
                    writer: a.writer,
                    id: a.id,
                    acked_at: a.t,
                    fault: Some(f.index),
                });
            }
        }
    }
    r.unverifiable = h.acks.iter().filter(|a| a.t <= last_reset).count();
    match &h.final_rows {
        Some(rows) => {
            for a in h.acks.iter().filter(|a| a.t > last_reset) {
                if !contains(rows, a.writer, a.id) {
                    lost.entry((a.writer, a.id)).or_insert(Lost {
                        writer: a.writer,
                        id: a.id,
                        acked_at: a.t,
                        fault: None,
                    });
                }
            }
        }
        // No final primary to read from: nothing acknowledged is verified.
        None => r.unverifiable = h.acks.len(),
    }
    r.lost = lost.into_values().collect();

    // ---- two writable nodes at once
    let runs = writable_runs(h);
    let nodes: Vec<&String> = runs.keys().collect();
    for (i, a) in nodes.iter().enumerate() {
        for b in &nodes[i + 1..] {
            for &(a0, a1, a_sure) in &runs[*a] {
                for &(b0, b1, b_sure) in &runs[*b] {
                    // Both surely writable over an interval, or one's single
                    // answer inside the other's sure interval.
                    let hit = match (a_sure, b_sure) {
                        (true, true) => a0.max(b0) <= a1.min(b1),
                        (false, true) => b0 <= a0 && a1 <= b1,
                        (true, false) => a0 <= b0 && b1 <= a1,
                        (false, false) => false,
                    };
                    if hit {
                        let from = a0.max(b0);
                        r.doubles.push(Double {
                            nodes: ((*a).clone(), (*b).clone()),
                            from,
                            to: a1.min(b1),
                            fault: fault_at(h, from),
                        });
                    }
                }
            }
        }
    }
    r.doubles.sort_by_key(|d| d.from);

    // ---- same content everywhere once steady
    let differs = |c: &BTreeMap<String, Option<String>>| {
        let vals: BTreeSet<&Option<String>> = c.values().collect();
        vals.len() > 1 || vals.iter().any(|v| v.is_none())
    };
    for f in h.faults.iter().filter(|f| f.converged && !f.checksums.is_empty()) {
        if differs(&f.checksums) {
            r.divergences.push(Divergence { fault: Some(f.index), checksums: f.checksums.clone() });
        }
    }
    if !h.final_checksums.is_empty() && differs(&h.final_checksums) {
        r.divergences.push(Divergence { fault: None, checksums: h.final_checksums.clone() });
    }

    // ---- fences, convergence, time to writable
    for f in &h.faults {
        let st = r.by_kind.entry(f.kind.clone()).or_default();
        st.count += 1;
        st.fences += f.fences.len();
        r.fences += f.fences.len();
        r.repairs += f.repairs.len();
        if !f.converged {
            st.not_converged += 1;
            r.not_converged.push(f.index);
        }
        if !f.any_fence_ok {
            for n in f.fences.iter().filter(|n| !f.allowed_fences.contains(n)) {
                r.bad_fences.push(BadFence {
                    fault: f.index,
                    kind: f.kind.clone(),
                    node: n.clone(),
                });
            }
        }
        let w = writable_after(h, f);
        match w {
            Some(0.0) => st.no_outage += 1,
            Some(v) => st.writable.push(v),
            None => {}
        }
        r.writable_after.push(w);
    }
    r
}

/// Seconds from the fault's start to the first commit a writer got
/// acknowledged after its own first failure in the fault's window (the
/// earliest over writers); Some(0.0) when no commit failed; None when the
/// outage did not end within the window.
pub fn writable_after(h: &History, f: &super::history::FaultRecord) -> Option<f64> {
    let writers: BTreeSet<u32> = h.acks.iter().map(|a| a.writer).collect();
    let mut best: Option<u64> = None;
    let mut any_failure = false;
    for w in writers.iter().copied().chain(h.write_errors.iter().map(|e| e.writer)) {
        let Some(e) = h
            .write_errors
            .iter()
            .filter(|e| e.writer == w && e.t >= f.start && e.t <= f.end)
            .map(|e| e.t)
            .min()
        else {
            continue;
        };
        any_failure = true;
        if let Some(a) =
            h.acks.iter().filter(|a| a.writer == w && a.t > e && a.t <= f.end).map(|a| a.t).min()
        {
            best = Some(best.map_or(a, |b| b.min(a)));
        }
    }
    if !any_failure {
        return Some(0.0);
    }
    best.map(|t| (t - f.start) as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::super::history::{
        Ack, FaultRecord, History, NodeState, Sample, WriteError, to_ranges,
    };
    use super::*;

    fn sample(node: &str, sent: u64, state: NodeState) -> Sample {
        Sample { node: node.into(), sent, recv: sent + 20, state }
    }

    /// A clean history: one kill_primary fault, two writers, srv1 primary
    /// until 2000, srv2 from 6000, every row present, same checksums.
    fn clean() -> History {
        let mut h = History {
            seed: 1,
            planned: 1,
            nodes: vec!["srv1".into(), "srv2".into()],
            ..History::default()
        };
        for (i, t) in [100u64, 500, 900, 6500, 7000].into_iter().enumerate() {
            h.acks.push(Ack { writer: 1, id: i as i64 + 1, t });
            h.acks.push(Ack { writer: 2, id: i as i64 + 1, t: t + 50 });
        }
        h.write_errors.push(WriteError {
            writer: 1,
            t: 1100,
            error: "terminating connection".into(),
        });
        h.write_errors.push(WriteError {
            writer: 2,
            t: 1200,
            error: "terminating connection".into(),
        });
        for t in (0..10_000).step_by(200) {
            let s1 = if t <= 2000 { NodeState::Writable } else { NodeState::Unreachable };
            let s2 = if t >= 6000 { NodeState::Writable } else { NodeState::ReadOnly };
            h.samples.push(sample("srv1", t, s1));
            h.samples.push(sample("srv2", t, s2));
        }
        let all: super::super::history::RowSet =
            [(1, to_ranges(&[1, 2, 3, 4, 5])), (2, to_ranges(&[1, 2, 3, 4, 5]))].into();
        h.faults.push(FaultRecord {
            index: 0,
            kind: "kill_primary".into(),
            targets: vec!["srv1".into()],
            start: 1000,
            injected: 1000,
            end: 9000,
            converged: true,
            checksums: [
                ("srv1".to_string(), Some("5:abc".to_string())),
                ("srv2".to_string(), Some("5:abc".to_string())),
            ]
            .into(),
            rows: Some(all.clone()),
            rows_at: 9000,
            ..FaultRecord::default()
        });
        h.final_rows = Some(all);
        h.final_rows_at = 9500;
        h.final_checksums = h.faults[0].checksums.clone();
        h
    }

    #[test]
    fn a_clean_history_passes_and_measures_time_to_writable() {
        let r = check(&clean());
        assert!(r.ok(), "{r:?}");
        assert_eq!(r.acked, 10);
        // writer 1 failed at 1100, next ack at 6500: 5.5 s after the fault
        assert_eq!(r.writable_after, vec![Some(5.5)]);
        let k = &r.by_kind["kill_primary"];
        assert_eq!((k.count, k.writable.clone(), k.no_outage), (1, vec![5.5], 0));
        assert!(r.summary_line(1, 1).ends_with("PASS"), "{}", r.summary_line(1, 1));
        assert!(
            r.markdown().contains("| kill_primary | 1 | 0 | 0 | 0 | 5.5 s | 5.5 s |"),
            "{}",
            r.markdown()
        );
    }

    #[test]
    fn an_acknowledged_row_missing_on_the_final_primary_is_lost() {
        let mut h = clean();
        h.final_rows =
            Some([(1, to_ranges(&[1, 2, 4, 5])), (2, to_ranges(&[1, 2, 3, 4, 5]))].into());
        let r = check(&h);
        assert_eq!(r.lost, vec![Lost { writer: 1, id: 3, acked_at: 900, fault: None }]);
        assert!(!r.ok());
        assert!(r.summary_line(1, 1).contains("lost=1"));
    }

    #[test]
    fn a_row_missing_after_a_fault_is_attributed_to_it() {
        let mut h = clean();
        h.faults[0].rows =
            Some([(1, to_ranges(&[1, 2, 3, 4, 5])), (2, to_ranges(&[1, 3, 4, 5]))].into());
        let r = check(&h);
        assert_eq!(r.lost, vec![Lost { writer: 2, id: 2, acked_at: 550, fault: Some(0) }]);
        assert_eq!(r.failed_faults(), BTreeSet::from([0]));
    }

    #[test]
    fn rows_before_a_cluster_rebuild_are_unverifiable_not_lost() {
        let mut h = clean();
        h.resets.push(1000);
        h.final_rows = Some([(1, to_ranges(&[4, 5])), (2, to_ranges(&[4, 5]))].into());
        h.faults[0].rows = h.final_rows.clone();
        let r = check(&h);
        assert!(r.lost.is_empty(), "{:?}", r.lost);
        assert_eq!(r.unverifiable, 6);
    }

    #[test]
    fn no_final_primary_makes_every_row_unverifiable() {
        let mut h = clean();
        h.final_rows = None;
        assert_eq!(check(&h).unverifiable, 10);
    }

    #[test]
    fn two_writable_nodes_at_once_are_reported_with_their_fault() {
        let mut h = clean();
        // srv2 writable from 1600 to 2400 while srv1 still is (until 2000)
        for s in
            h.samples.iter_mut().filter(|s| s.node == "srv2" && (1600..=2400).contains(&s.sent))
        {
            s.state = NodeState::Writable;
        }
        let r = check(&h);
        assert_eq!(r.doubles.len(), 1, "{:?}", r.doubles);
        let d = &r.doubles[0];
        assert_eq!(d.nodes, ("srv1".to_string(), "srv2".to_string()));
        assert_eq!((d.from, d.to, d.fault), (1620, 2000, Some(0)));
        assert!(!r.ok());
    }

    #[test]
    fn a_single_answer_inside_the_other_nodes_writable_run_counts() {
        let mut h = clean();
        h.samples.iter_mut().find(|s| s.node == "srv2" && s.sent == 1000).unwrap().state =
            NodeState::Writable;
        assert_eq!(check(&h).doubles.len(), 1);
    }

    #[test]
    fn a_handover_between_two_polls_is_not_a_double() {
        let mut h = clean();
        // srv1 writable until its sample at 2000, srv2 from its sample at 2200
        for s in h.samples.iter_mut().filter(|s| s.node == "srv2" && s.sent >= 2200) {
            s.state = NodeState::Writable;
        }
        // srv1 still answered "writable" to the question sent at 2200, the
        // same instant srv2 was asked: each answered before the other's
        // sure interval starts
        h.samples.iter_mut().find(|s| s.node == "srv1" && s.sent == 2200).unwrap().state =
            NodeState::Writable;
        let r = check(&h);
        assert!(r.doubles.is_empty(), "{:?}", r.doubles);
    }

    #[test]
    fn different_checksums_or_a_silent_node_are_divergences() {
        let mut h = clean();
        h.faults[0].checksums.insert("srv2".into(), Some("4:abd".into()));
        let r = check(&h);
        assert_eq!(r.divergences.len(), 1);
        assert_eq!(r.divergences[0].fault, Some(0));
        let mut h = clean();
        h.final_checksums.insert("srv2".into(), None);
        let r = check(&h);
        assert_eq!(r.divergences.len(), 1);
        assert_eq!(r.divergences[0].fault, None);
    }

    #[test]
    fn a_fence_after_a_postgresql_crash_is_reported() {
        let mut h = clean();
        h.faults[0].fences = vec!["srv1".into()];
        let r = check(&h);
        assert_eq!(
            r.bad_fences,
            vec![BadFence { fault: 0, kind: "kill_primary".into(), node: "srv1".into() }]
        );
        assert_eq!(r.fences, 1);
        // the same fence after a power loss of srv1 is justified
        let mut h = clean();
        h.faults[0].kind = "power_off_primary".into();
        h.faults[0].fences = vec!["srv1".into()];
        h.faults[0].allowed_fences = vec!["srv1".into()];
        assert!(check(&h).ok());
        // a whole-cluster power cut justifies any fence
        h.faults[0].fences = vec!["srv2".into()];
        assert!(!check(&h).ok());
        h.faults[0].any_fence_ok = true;
        assert!(check(&h).ok());
    }

    #[test]
    fn a_fault_that_did_not_converge_is_reported() {
        let mut h = clean();
        h.faults[0].converged = false;
        let r = check(&h);
        assert_eq!(r.not_converged, vec![0]);
        assert_eq!(r.by_kind["kill_primary"].not_converged, 1);
        assert!(r.summary_line(1, 1).contains("not_converged=1"));
        assert!(r.summary_line(1, 1).ends_with("FAIL"));
    }

    #[test]
    fn time_to_writable_without_outage_and_without_recovery() {
        let mut h = clean();
        h.write_errors.clear();
        assert_eq!(check(&h).writable_after, vec![Some(0.0)]);
        assert_eq!(check(&h).by_kind["kill_primary"].no_outage, 1);
        let mut h = clean();
        h.acks.retain(|a| a.t < 1000);
        h.final_rows = Some([(1, to_ranges(&[1, 2, 3])), (2, to_ranges(&[1, 2, 3]))].into());
        h.faults[0].rows = h.final_rows.clone();
        assert_eq!(check(&h).writable_after, vec![None]);
    }

    #[test]
    fn median_and_max() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(max(&[1.0, 7.5, 2.0]), Some(7.5));
    }

    #[test]
    fn a_history_survives_json() {
        let h = clean();
        let j = serde_json::to_string(&h).unwrap();
        let back: History = serde_json::from_str(&j).unwrap();
        assert_eq!(back, h);
        assert_eq!(check(&back), check(&h));
    }
}
