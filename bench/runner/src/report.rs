//! The `report` subcommand: the tables of the action benchmark, per label
//! the median and min–max over the runs of each agent ("ours" and "paf").

use crate::cli::ReportArgs;
use std::collections::BTreeMap;
use std::fs;

/// One agent's figures for one label.
#[derive(Default)]
struct Series {
    wall_us: Vec<f64>,
    cpu_us: Vec<f64>,
    own_cpu_us: Vec<f64>,
    rss_kb: Vec<f64>,
    calls: Vec<f64>,
    exits: Vec<i32>,
    procs: Vec<f64>,
    procs_all: Vec<f64>,
    threads: Vec<f64>,
    execs: Vec<f64>,
}

impl Series {
    /// The exit codes seen, "0" or "0/7".
    fn exit_codes(&self) -> String {
        let mut e = self.exits.clone();
        e.sort();
        e.dedup();
        e.iter().map(|c| c.to_string()).collect::<Vec<_>>().join("/")
    }
}

/// Series per (label, agent), and the labels in the order to show them.
fn parse(text: &str, first: &[String]) -> (BTreeMap<(String, String), Series>, Vec<String>) {
    let mut order: Vec<String> = first.to_vec();
    let mut data: BTreeMap<(String, String), Series> = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 9 {
            continue;
        }
        let (kind, agent, label) = (f[0], f[1].to_string(), f[2].to_string());
        if label.starts_with('_') {
            continue;
        }
        if !order.contains(&label) {
            order.push(label.clone());
        }
        let n = |i: usize| f[i].parse::<f64>().unwrap_or(f64::NAN);
        let s = data.entry((label, agent)).or_default();
        match kind {
            "time" => {
                s.wall_us.push(n(3));
                s.cpu_us.push(n(4) + n(5));
                s.rss_kb.push(n(6));
                s.exits.push(f[7].parse().unwrap_or(-1));
                if n(8) >= 0.0 {
                    s.calls.push(n(8));
                }
                if f.len() > 9 && n(9) >= 0.0 {
                    s.own_cpu_us.push(n(4) + n(5) - n(9));
                }
            }
            "forks" => {
                s.procs.push(n(3));
                s.procs_all.push(n(4));
                s.threads.push(n(5));
                s.execs.push(n(6));
                s.exits.push(f[7].parse().unwrap_or(-1));
            }
            _ => {}
        }
    }
    order.retain(|l| data.keys().any(|(dl, _)| dl == l));
    (data, order)
}

pub fn report(a: &ReportArgs) -> Result<(), String> {
    let text = fs::read_to_string(&a.file).map_err(|e| format!("{}: {e}", a.file.display()))?;
    let (data, order) = parse(&text, &a.labels);
    let empty = Series::default();
    let get = |label: &str, agent: &str| {
        data.get(&(label.to_string(), agent.to_string())).unwrap_or(&empty)
    };
    // One table: a title, a header whose first `left` columns are left
    // aligned, and one row per label from the figures of ours and PAF.
    let table =
        |title: &str, head: &[&str], left: usize, row: &dyn Fn(&Series, &Series) -> Vec<String>| {
            println!("{title}");
            println!();
            println!("| {} |", head.join(" | "));
            println!("|{}{}", "---|".repeat(left), "--:|".repeat(head.len() - left));
            for l in &order {
                println!("| {l} | {} |", row(get(l, "ours"), get(l, "paf")).join(" | "));
            }
        };

    table(
        "Medians (wall and CPU in ms, peak RSS in MiB; forks: processes created, see below)",
        &[
            "action",
            "runs ours/PAF",
            "rc",
            "ours wall",
            "ours CPU",
            "ours forks",
            "ours RSS",
            "PAF wall",
            "PAF CPU",
            "PAF forks",
            "PAF RSS",
            "PAF/ours wall",
            "PAF/ours CPU",
            "PAF/ours forks",
        ],
        3,
        &|o, p| {
            vec![
                format!("{}/{}", o.wall_us.len(), p.wall_us.len()),
                match (o.exit_codes(), p.exit_codes()) {
                    (a, b) if a == b || b.is_empty() => a,
                    (a, b) if a.is_empty() => b,
                    (a, b) => format!("{a} vs {b}"),
                },
                fmt_num(median(&o.wall_us), 1e3),
                fmt_num(median(&o.cpu_us), 1e3),
                fmt_int(median(&o.procs)),
                fmt_num(median(&o.rss_kb), 1024.0),
                fmt_num(median(&p.wall_us), 1e3),
                fmt_num(median(&p.cpu_us), 1e3),
                fmt_int(median(&p.procs)),
                fmt_num(median(&p.rss_kb), 1024.0),
                ratio(median(&p.wall_us), median(&o.wall_us)),
                ratio(median(&p.cpu_us), median(&o.cpu_us)),
                ratio(median(&p.procs), median(&o.procs)),
            ]
        },
    );
    println!();
    table(
        "Spread: min–max over the runs (wall and CPU in ms, peak RSS in MiB)",
        &["action", "ours wall", "ours CPU", "ours RSS", "PAF wall", "PAF CPU", "PAF RSS"],
        1,
        &|o, p| {
            vec![
                fmt_range(&o.wall_us, 1e3),
                fmt_range(&o.cpu_us, 1e3),
                fmt_range(&o.rss_kb, 1024.0),
                fmt_range(&p.wall_us, 1e3),
                fmt_range(&p.cpu_us, 1e3),
                fmt_range(&p.rss_kb, 1024.0),
            ]
        },
    );
    println!();
    table(
        "Without the fake tools: CPU minus what the fake Pacemaker tools spent (ms, median and \
         min–max), and tool calls per run",
        &[
            "action",
            "ours CPU w/o fakes",
            "ours min–max",
            "ours tool calls",
            "PAF CPU w/o fakes",
            "PAF min–max",
            "PAF tool calls",
            "PAF/ours CPU w/o fakes",
        ],
        1,
        &|o, p| {
            vec![
                fmt_num(median(&o.own_cpu_us), 1e3),
                fmt_range(&o.own_cpu_us, 1e3),
                fmt_int(median(&o.calls)),
                fmt_num(median(&p.own_cpu_us), 1e3),
                fmt_range(&p.own_cpu_us, 1e3),
                fmt_int(median(&p.calls)),
                ratio(median(&p.own_cpu_us), median(&o.own_cpu_us)),
            ]
        },
    );
    println!();
    table(
        "Processes created, from one traced run per agent and action",
        &[
            "action",
            "ours forks",
            "ours forks incl. fake-tool internals",
            "ours threads",
            "ours programs run",
            "PAF forks",
            "PAF forks incl. fake-tool internals",
            "PAF threads",
            "PAF programs run",
        ],
        1,
        &|o, p| {
            [o, p]
                .iter()
                .flat_map(|s| [&s.procs, &s.procs_all, &s.threads, &s.execs])
                .map(|v| fmt_int(median(v)))
                .collect()
        },
    );
    Ok(())
}

fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Some(if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 })
}

fn fmt_num(x: Option<f64>, scale: f64) -> String {
    match x {
        None => "-".into(),
        Some(v) => {
            let v = v / scale;
            if v >= 100.0 {
                format!("{v:.0}")
            } else if v >= 10.0 {
                format!("{v:.1}")
            } else {
                format!("{v:.2}")
            }
        }
    }
}

fn fmt_int(x: Option<f64>) -> String {
    x.map(|v| if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.1}") })
        .unwrap_or_else(|| "-".into())
}

fn fmt_range(v: &[f64], scale: f64) -> String {
    let min = v.iter().copied().reduce(f64::min);
    let max = v.iter().copied().reduce(f64::max);
    if v.is_empty() {
        return "-".into();
    }
    format!("{}–{}", fmt_num(min, scale), fmt_num(max, scale))
}

fn ratio(paf: Option<f64>, ours: Option<f64>) -> String {
    match (paf, ours) {
        (Some(p), Some(o)) if o > 0.0 => {
            let r = p / o;
            if r >= 10.0 {
                format!("{r:.0}×")
            } else {
                format!("{r:.1}×")
            }
        }
        _ => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        // An unparsable field (NaN) sorts last instead of panicking.
        assert_eq!(median(&[f64::NAN, 1.0, 2.0]), Some(2.0));
    }

    #[test]
    fn labels_given_first_then_as_met_and_hidden_ones_never() {
        let t = "time\tours\tb\t1\t2\t3\t4\t0\t-1\t-1\n\
                 time\tpaf\t_warm\t1\t2\t3\t4\t0\t-1\t-1\n\
                 forks\tpaf\ta\t1\t2\t0\t1\t0\t3\n\
                 time\tours\tc\t1\t2\t3\t4\t7\t5\t1\n\
                 short\tline\n";
        let (data, order) = parse(t, &["c".to_string(), "missing".to_string()]);
        assert_eq!(order, vec!["c", "b", "a"]);
        let c = &data[&("c".to_string(), "ours".to_string())];
        assert_eq!(
            (c.cpu_us.clone(), c.own_cpu_us.clone(), c.calls.clone()),
            (vec![5.0], vec![4.0], vec![5.0])
        );
        assert_eq!(data[&("b".to_string(), "ours".to_string())].own_cpu_us, Vec::<f64>::new());
        assert_eq!(data[&("a".to_string(), "paf".to_string())].exit_codes(), "0");
    }
}
