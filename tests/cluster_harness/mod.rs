//! What the cluster scenarios and the soak share: the settings of
//! tests/cluster/lib.sh, its scripts and pcs-examples/ run with a deadline,
//! the roles Pacemaker shows, the fences the hypervisor logged, SQL
//! connections to the VIP and to each node.

// Each test crate (cluster_scenarios, cluster_soak) uses a part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::process::Command;
use tokio::time::timeout;
use tokio_postgres::{Client, NoTls};

pub const HARNESS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cluster");
pub const RECIPES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/pcs-examples");

pub fn say(msg: &str) {
    // Straight to the process's stderr: libtest does not capture this, so a
    // skipped test says so even without --nocapture.
    let _ = writeln!(std::io::stderr(), "{msg}");
}

pub fn clock() -> String {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let s = d.as_secs() % 86400;
    format!("{:02}:{:02}:{:02}.{:03}", s / 3600, s / 60 % 60, s % 60, d.subsec_millis())
}

// ---------------------------------------------------------------------------
// Settings of tests/cluster/lib.sh
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct Settings {
    pub nodes: Vec<String>,
    pub vip: String,
    pub port: u16,
    /// Where clients connect: the VIP's port, or HAProxy's write port.
    pub client_port: u16,
    pub sockdir: String,
    pub app_user: String,
    pub app_password: String,
    pub app_db: String,
    pub cg_root: String,
    pub state_dir: String,
    pub agent: String,
    pub pg_major: String,
    pub sbin_extra: String,
    pub debian: String,
}

impl Settings {
    pub async fn load() -> Settings {
        let out = run(
            "bash",
            &[
                "-c",
                &format!(
                    ". {HARNESS}/lib.sh && printf '%s\\n' \"$NODES\" \"$VIP\" \"$PGPORT\" \
                     \"$PGSOCKDIR\" \"$APP_USER\" \"$APP_PASSWORD\" \"$APP_DB\" \"$CG_ROOT\" \
                     \"$STATE_DIR\" \"$AGENT\" \"$PG_MAJOR\" \"$SBIN_EXTRA\" \"$DEBIAN\""
                ),
            ],
            Duration::from_secs(10),
        )
        .await;
        let v: Vec<&str> = out.stdout.lines().collect();
        assert!(v.len() >= 11 && out.ok, "cannot read lib.sh settings: {}", out.stderr);
        Settings {
            nodes: v[0].split_whitespace().map(String::from).collect(),
            vip: v[1].into(),
            port: v[2].parse().expect("PGPORT"),
            client_port: v[2].parse().expect("PGPORT"),
            sockdir: v[3].into(),
            app_user: v[4].into(),
            app_password: v[5].into(),
            app_db: v[6].into(),
            cg_root: v[7].into(),
            state_dir: v[8].into(),
            agent: v[9].into(),
            pg_major: v[10].into(),
            sbin_extra: v.get(11).copied().unwrap_or("").into(),
            debian: v.get(12).copied().filter(|d| !d.is_empty()).unwrap_or("12").into(),
        }
    }

    /// The first node that is on (its init runs), in the settings' order.
    pub fn first_node_on(&self) -> Option<&String> {
        self.nodes.iter().find(|n| self.init_pid(n).is_some())
    }

    /// Host pid of the node's init (pid 1 of its pid namespace).
    pub fn init_pid(&self, node: &str) -> Option<u32> {
        let procs =
            std::fs::read_to_string(format!("{}/{node}/cgroup.procs", self.cg_root)).ok()?;
        for p in procs.lines() {
            let Ok(status) = std::fs::read_to_string(format!("/proc/{p}/status")) else {
                continue;
            };
            if let Some(l) = status.lines().find(|l| l.starts_with("NSpid:")) {
                let f: Vec<&str> = l.split_whitespace().collect();
                if f.len() == 3 && f[2] == "1" {
                    return p.parse().ok();
                }
            }
        }
        None
    }

    pub fn hypervisor_log(&self) -> String {
        format!("{}/hypervisor.log", self.state_dir)
    }

    /// Fencing actions (reboot/off) the hypervisor carried out, per node.
    pub fn fences(&self) -> BTreeMap<String, usize> {
        let mut m: BTreeMap<String, usize> = self.nodes.iter().map(|n| (n.clone(), 0)).collect();
        let log = std::fs::read_to_string(self.hypervisor_log()).unwrap_or_default();
        for node in parse_fences(&log) {
            *m.entry(node).or_default() += 1;
        }
        m
    }

    /// Fences logged after byte `offset`; returns them and the new offset.
    pub fn fences_since(&self, offset: u64) -> (Vec<String>, u64) {
        let log = std::fs::read(self.hypervisor_log()).unwrap_or_default();
        let start = (offset as usize).min(log.len());
        (parse_fences(&String::from_utf8_lossy(&log[start..])), log.len() as u64)
    }
}

/// Nodes powered off or rebooted successfully, from hypervisor.py's log
/// lines ("HH:MM:SS reboot srv1: rc=0 ...").
pub fn parse_fences(text: &str) -> Vec<String> {
    let mut fenced = Vec::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() >= 4 && (f[1] == "reboot" || f[1] == "off") && f[3] == "rc=0" {
            fenced.push(f[2].trim_end_matches(':').to_string());
        }
    }
    fenced
}

// ---------------------------------------------------------------------------
// Commands and scripts
// ---------------------------------------------------------------------------

pub struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

pub async fn run(prog: &str, args: &[&str], limit: Duration) -> Out {
    run_env(prog, args, &[], limit).await
}

pub async fn run_env(prog: &str, args: &[&str], env: &[(&str, &str)], limit: Duration) -> Out {
    let child = Command::new(prog)
        .args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match timeout(limit, child).await {
        Ok(Ok(o)) => Out {
            ok: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        },
        Ok(Err(e)) => Out { ok: false, stdout: String::new(), stderr: e.to_string() },
        Err(_) => Out {
            ok: false,
            stdout: String::new(),
            stderr: format!("{prog} {}: timed out after {limit:?}", args.join(" ")),
        },
    }
}

/// Run tests/cluster/<name> ARGS, logging it.
pub async fn script(name: &str, args: &[&str], limit: Duration) -> Out {
    script_env(name, args, &[], limit).await
}

pub async fn script_env(name: &str, args: &[&str], env: &[(&str, &str)], limit: Duration) -> Out {
    say(&format!("    {} $ {name} {}", clock(), args.join(" ")));
    let out = run_env(&format!("{HARNESS}/{name}"), args, env, limit).await;
    if !out.ok {
        say(&format!("    {name} failed: {}", out.stderr.trim()));
    }
    out
}

/// Run pcs-examples/RECIPE ARGS on NODE, as an operator would; its output
/// goes to the test log.
pub async fn recipe(node: &str, name: &str, args: &[&str]) -> Out {
    recipe_with(node, &[], name, args).await
}

/// `recipe` with the recipe's variables (`NAME=value`) set, as an operator
/// sets them on its command line.
pub async fn recipe_with(node: &str, vars: &[&str], name: &str, args: &[&str]) -> Out {
    let path = format!("{RECIPES}/{name}");
    let mut all = vec![node, "env"];
    all.extend_from_slice(vars);
    all.push(path.as_str());
    all.extend_from_slice(args);
    let out = script("on.sh", &all, Duration::from_secs(300)).await;
    for l in out.stdout.lines().filter(|l| l.starts_with(name)) {
        say(&format!("      {l}"));
    }
    out
}

pub async fn wait_healthy(secs: u64) -> bool {
    script("wait-healthy.sh", &[&secs.to_string()], Duration::from_secs(secs + 30)).await.ok
}

/// Copies every node's logs, the hypervisor's log and status.sh's view into
/// `dir`, then runs `more` (harness shell, lib.sh loaded).
pub async fn copy_cluster_logs(dir: &str, more: &str, limit: Duration) -> Out {
    run(
        "bash",
        &[
            "-c",
            &format!(
                ". {HARNESS}/lib.sh && mkdir -p {dir} && \
                 for n in $NODES; do cp -a \"$NODES_DIR/$n/var-log\" {dir}/$n 2>/dev/null; \
                 cp \"$NODES_DIR/$n/boot.log\" {dir}/$n/ 2>/dev/null; done; \
                 cp \"$STATE_DIR/hypervisor.log\" {dir}/ 2>/dev/null; \
                 {HARNESS}/status.sh > {dir}/status.txt 2>&1; {more} true"
            ),
        ],
        limit,
    )
    .await
}

#[derive(Debug, Default, Clone)]
pub struct Roles {
    pub promoted: Vec<String>,
    pub unpromoted: Vec<String>,
    pub vip: Option<String>,
}

pub async fn roles() -> Roles {
    let out = run(&format!("{HARNESS}/status.sh"), &["--roles"], Duration::from_secs(20)).await;
    let mut r = Roles::default();
    for l in out.stdout.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.as_slice() {
            ["vip", n] => r.vip = Some(n.to_string()),
            [n, "Promoted"] => r.promoted.push(n.to_string()),
            [n, "Unpromoted"] => r.unpromoted.push(n.to_string()),
            _ => {}
        }
    }
    r.unpromoted.sort();
    r
}

// ---------------------------------------------------------------------------
// SQL connections
// ---------------------------------------------------------------------------

pub async fn connect(conninfo: &str) -> Result<Client, String> {
    let (client, conn) = timeout(Duration::from_secs(3), tokio_postgres::connect(conninfo, NoTls))
        .await
        .map_err(|_| "connect: timeout".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// The application's view: TCP to the VIP (or HAProxy), as `name`.
pub async fn connect_vip(s: &Settings, name: &str) -> Result<Client, String> {
    connect(&format!(
        "host={} port={} user={} password={} dbname={} connect_timeout=2 application_name={name}",
        s.vip, s.client_port, s.app_user, s.app_password, s.app_db
    ))
    .await
}

/// The operator's view: the node's unix socket, through its mount namespace
/// (/proc/PID/root), as root (peer authentication, role root). Returns the
/// pid of the node's init with the session.
pub async fn connect_node(s: &Settings, node: &str) -> Result<(u32, Client), String> {
    let pid = s.init_pid(node).ok_or_else(|| format!("{node} is off"))?;
    let c = connect(&format!(
        "host=/proc/{pid}/root{} port={} user=root dbname={} connect_timeout=2 \
         application_name=cluster-observer",
        s.sockdir, s.port, s.app_db
    ))
    .await?;
    Ok((pid, c))
}

/// One INSERT of one row, committed (autocommit) within 5 s: Ok only once
/// the server acknowledged the commit.
pub async fn insert_one(
    c: &Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<(), String> {
    match timeout(Duration::from_secs(5), c.execute(sql, params)).await {
        Ok(Ok(1)) => Ok(()),
        Ok(Ok(n)) => Err(format!("insert returned {n} rows")),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("commit: no answer within 5s".into()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fences_are_successful_reboots_and_offs() {
        let log = "23:27:31 listening on /x for srv1 srv2 srv3\n\
                   23:27:32 reboot srv3: rc=0 \n\
                   23:27:33 status srv3: rc=0 on\n\
                   23:27:34 off srv2: rc=1 boom\n\
                   23:27:35 on srv2: rc=0\n\
                   23:27:36 off srv1: rc=0\n";
        assert_eq!(super::parse_fences(log), vec!["srv3", "srv1"]);
    }
}
