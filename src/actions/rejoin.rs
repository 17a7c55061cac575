//! Before a former primary starts as a standby: does its WAL allow it to
//! follow the current primary? Asks the primary over a replication
//! connection (psql, run as system_user with its .pgpass), which only
//! happens on this path, never in a monitor.

use crate::agent::{Agent, Failure};
use crate::controlfile::{ControlData, DbState};
use crate::divergence::{self, Verdict};
use crate::lsn::Lsn;
use crate::process::{Cmd, Output, is_executable};
use crate::scores;
use crate::validate;
use std::time::Duration;
use tokio::time::Instant;

/// What is kept of pg_waldump's output: its last records, the ones wanted.
const WALDUMP_TAIL: usize = 256 * 1024;

/// Proof that this instance's WAL forked from the primary's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Diverged {
    pub timeline: u32,
    pub switchpoint: Lsn,
    pub own_last: Lsn,
}

impl Diverged {
    /// The reason of a start refused for it (rejoin_policy=manual).
    pub fn refusal(&self) -> Failure {
        Failure::generic(crate::rejoin_policy::manual_reason(
            self.timeline,
            self.switchpoint,
            self.own_last,
        ))
    }
}

/// `Ok(None)`: it can follow (or nothing could be asked, and nothing
/// says a primary runs elsewhere); `Ok(Some(_))`: it provably diverged.
pub async fn check(
    agent: &Agent,
    control: &ControlData,
    primary_conninfo: &str,
) -> Result<Option<Diverged>, Failure> {
    let psql = agent.params.bin("psql");
    if !is_executable(&psql) {
        log::warn!(
            "{} missing: cannot check that this former primary can follow the current one",
            psql.display()
        );
        return Ok(None);
    }
    if let Some(why) = nobody_primary(agent).await
        && let Some(eps) = crate::conninfo::endpoints(primary_conninfo)
        && !accepts_connections(&eps, QUICK_PROBE).await
    {
        log::info!(
            "{why}, and nothing accepts connections at primary_conninfo's address ({}) within {} ms: \
             starting as a standby without the divergence check",
            describe(&eps),
            QUICK_PROBE.as_millis()
        );
        return Ok(None);
    }
    // Unanswered questions must not eat the start's time.
    let until = Instant::now() + (agent.time_left() / 4).min(Duration::from_secs(10));
    let conninfo = replication_conninfo(primary_conninfo);
    let Some(primary) = identify_primary(agent, &conninfo, until).await? else {
        return Ok(None);
    };
    let history = if primary.timeline > control.timeline {
        let out = replication_command(
            agent,
            &conninfo,
            &format!("TIMELINE_HISTORY {}", primary.timeline),
            until,
        )
        .await?;
        divergence::parse_history(
            out.stdout.split_once('|').map(|(_, content)| content).unwrap_or(""),
        )
    } else {
        Vec::new()
    };
    let own_last = last_record(agent, control).await?;
    let own_id = control.system_id.to_string();
    match divergence::check(Some(&own_id), control.timeline, own_last, &primary, &history) {
        Verdict::CanFollow => {
            log::info!(
                "former primary (timeline {}, last record {own_last}) can follow the primary (timeline {})",
                control.timeline,
                primary.timeline
            );
            Ok(None)
        }
        Verdict::Diverged { timeline, switchpoint, own_last } => {
            log::error!(
                "this former primary has WAL up to {own_last} on timeline {timeline}, but the current primary's \
                 history leaves timeline {timeline} at {switchpoint}: it cannot follow"
            );
            Ok(Some(Diverged { timeline, switchpoint, own_last }))
        }
        Verdict::Unrelated(why) => Err(Failure::generic(format!(
            "the server behind primary_conninfo is not this instance's primary: {why}"
        ))),
    }
}

/// primary_conninfo (either form) as `key='value'` pairs, in replication
/// mode: appending words to a URI would make it invalid.
pub fn replication_conninfo(primary_conninfo: &str) -> String {
    const OURS: [&str; 3] = ["replication", "dbname", "connect_timeout"];
    let mut params: Vec<(String, String)> = validate::conninfo_params(primary_conninfo)
        .into_iter()
        .filter(|(k, _)| !OURS.contains(&k.as_str()))
        .collect();
    for (k, v) in [("replication", "true"), ("dbname", "replication"), ("connect_timeout", "3")] {
        params.push((k.to_string(), v.to_string()));
    }
    validate::conninfo_string(&params)
}

/// IDENTIFY_SYSTEM on the primary. No answer: fine when no other node is
/// the primary in the CIB (the whole cluster starts); otherwise asked again
/// until `until`, then the check could not run and the start stops.
pub async fn identify_primary(
    agent: &Agent,
    conninfo: &str,
    until: Instant,
) -> Result<Option<divergence::PrimaryIdentity>, Failure> {
    let mut elsewhere: Option<String> = None;
    loop {
        let ident = replication_command(agent, conninfo, "IDENTIFY_SYSTEM", until).await;
        let why = match ident {
            Ok(o) => match divergence::parse_identify_system(&o.stdout).filter(|_| o.success()) {
                Some(p) => return Ok(Some(p)),
                None => o.message(),
            },
            Err(e) => e.reason,
        };
        if elsewhere.is_none() {
            match primary_elsewhere(agent).await? {
                Some(other) => elsewhere = Some(other),
                None => {
                    log::info!(
                        "no primary reachable through primary_conninfo ({why}) and none in the CIB: starting as a standby without the divergence check"
                    );
                    return Ok(None);
                }
            }
        }
        if Instant::now() + Duration::from_millis(500) >= until {
            return Err(Failure::generic(format!(
                "{} is the primary but not reachable through primary_conninfo ({why}): cannot check this former primary's WAL",
                elsewhere.unwrap_or_default()
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// How long a former primary waits for primary_conninfo's address to
/// accept a connection when the CIB shows no primary anywhere
/// (`nobody_primary`). A running server accepts at once (the kernel
/// answers); the VIP of a cluster starting as a whole is not up, and psql
/// would wait for its connect_timeout (2-3 s of every such start, where
/// PAF asks nothing). With nothing accepting, the start goes on unchecked,
/// as it does after psql's full wait when the CIB shows no primary; when
/// something accepts, psql asks it as always.
const QUICK_PROBE: Duration = Duration::from_millis(500);

/// Does any of `eps` accept a TCP connection within `within`? Only
/// connects and closes: nothing is sent. A host name counts as accepting
/// (resolving it runs on a thread the deadline cannot stop, and the runtime
/// would wait for it at exit), and so does a socket directory (root must
/// not connect to whatever socket a database superuser names there; psql,
/// run as system_user, asks it as before).
async fn accepts_connections(eps: &[crate::conninfo::Endpoint], within: Duration) -> bool {
    use crate::conninfo::Endpoint;
    let mut tries = tokio::task::JoinSet::new();
    for e in eps {
        let Endpoint::Tcp { host, port } = e else {
            return true;
        };
        let Ok(ip) = host.parse::<std::net::IpAddr>() else {
            return true;
        };
        let addr = std::net::SocketAddr::new(ip, *port);
        tries.spawn(async move { tokio::net::TcpStream::connect(addr).await.is_ok() });
    }
    let any = async {
        while let Some(done) = tries.join_next().await {
            if done.unwrap_or(false) {
                return true;
            }
        }
        false
    };
    // Dropping the set at the deadline aborts the attempts still pending.
    tokio::time::timeout(within, any).await.unwrap_or(false)
}

fn describe(eps: &[crate::conninfo::Endpoint]) -> String {
    use crate::conninfo::Endpoint;
    eps.iter()
        .map(|e| match e {
            Endpoint::Tcp { host, port } => format!("{host}:{port}"),
            Endpoint::Unix(path) => path.display().to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why the CIB shows no primary anywhere: no other node has the primary's
/// score, and no operation in the history of the resource may have
/// promoted an instance (`cib::op_may_promote`): the whole cluster starts
/// (resource creation, power back on). None when the CIB cannot be read.
async fn nobody_primary(agent: &Agent) -> Option<String> {
    let me = agent.node().await.ok()?;
    let view = agent.pcmk.cluster_view(agent.deadline).await.ok()?;
    let promoted = view.maybe_promoted.iter().any(|n| n != me);
    (view.scored_primary(me).is_none() && !promoted).then(|| {
        format!(
            "no other node is or may be the primary (no promotion score {} nor promoted instance in the CIB)",
            scores::PRIMARY
        )
    })
}

/// Another node that the CIB shows as the primary: its monitor gives it
/// the primary's promotion score.
pub async fn primary_elsewhere(agent: &Agent) -> Result<Option<String>, Failure> {
    let me = agent.node().await?;
    let view = agent.pcmk.cluster_view(agent.deadline).await.map_err(|e| {
        Failure::generic(format!("cannot tell whether a primary runs elsewhere: {e}"))
    })?;
    Ok(view.scored_primary(me).map(str::to_string))
}

/// One replication-protocol command, through psql as system_user.
async fn replication_command(
    agent: &Agent,
    conninfo: &str,
    command: &str,
    until: Instant,
) -> Result<Output, Failure> {
    // Anyone can read a process's arguments: a password in primary_conninfo
    // goes to psql in its environment, which only its owner can read.
    let (conninfo, password) = crate::conninfo::take_password(conninfo);
    let mut cmd = Cmd::new(agent.params.bin("psql"))
        .args(["-X", "-A", "-t", "-F", "|", "-d", &conninfo, "-c", command])
        .run_as(agent.runas()?);
    if let Some(pw) = password {
        cmd = cmd.env("PGPASSWORD", pw);
    }
    Ok(cmd.run(until).await?)
}

/// Start of the last record this instance wrote: its checkpoint after a
/// clean shutdown; after a crash, the last valid record pg_waldump finds.
async fn last_record(agent: &Agent, control: &ControlData) -> Result<Lsn, Failure> {
    if control.state == DbState::ShutDown {
        return Ok(control.checkpoint);
    }
    let p = &agent.params;
    let out = Cmd::new(p.bin("pg_waldump"))
        .args(["--path"])
        .arg(p.datadir.join("pg_wal").display().to_string())
        .args(["--timeline", &control.timeline.to_string(), "--start", &control.redo.to_string()])
        .args(crate::instance::segment_range(&p.datadir, control.timeline, control.redo))
        .run_as(agent.runas()?)
        .stdout_tail(WALDUMP_TAIL)
        .run(Instant::now() + agent.time_left() / 4)
        .await
        .map_err(|e| Failure::generic(format!("reading this instance's WAL: {e}")))?;
    out.stdout
        .lines()
        .filter_map(|l| {
            l.split_once("lsn: ")
                .and_then(|(_, r)| r.split(',').next())
                .and_then(|s| s.trim().parse::<Lsn>().ok())
        })
        .next_back()
        .ok_or_else(|| {
            Failure::generic(format!(
                "pg_waldump found no WAL record after {}: {}",
                control.redo,
                out.message()
            ))
        })
}
