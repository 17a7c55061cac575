//! Before a former primary starts as a standby: does its WAL allow it to
//! follow the current primary? Asks the primary over a replication
//! connection (psql, run as system_user with its .pgpass), which only
//! happens on this path, never in a monitor.

use crate::agent::{Agent, Failure};
use crate::controlfile::{ControlData, DbState};
use crate::divergence::{self, Verdict};
use crate::lsn::Lsn;
use crate::process::{Cmd, Output, is_executable};
use std::time::Duration;
use tokio::time::Instant;

pub async fn check(
    agent: &Agent,
    control: &ControlData,
    primary_conninfo: &str,
) -> Result<(), Failure> {
    let psql = agent.params.bin("psql");
    if !is_executable(&psql) {
        log::warn!(
            "{} missing: cannot check that this former primary can follow the current one",
            psql.display()
        );
        return Ok(());
    }
    // Unanswered questions must not eat the start's time.
    let until = Instant::now() + (agent.time_left() / 4).min(Duration::from_secs(10));
    let conninfo =
        format!("{primary_conninfo} replication=true dbname=replication connect_timeout=3");
    let ident = replication_command(agent, &conninfo, "IDENTIFY_SYSTEM", until).await?;
    let Some(primary) =
        divergence::parse_identify_system(&ident.stdout).filter(|_| ident.success())
    else {
        log::info!(
            "no primary reachable through primary_conninfo ({}): starting as a standby without the divergence check",
            ident.message()
        );
        return Ok(());
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
            Ok(())
        }
        Verdict::Diverged { timeline, switchpoint, own_last } => {
            log::error!(
                "this former primary has WAL up to {own_last} on timeline {timeline}, but the current primary's \
                 history leaves timeline {timeline} at {switchpoint}: it cannot follow"
            );
            // Pacemaker keeps 128 characters of an exit reason: what to do first.
            Err(Failure::generic(format!(
                "diverged from the primary: rebuild with pg_rewind, then pcs resource cleanup (TL {timeline} forked at {switchpoint}, here {own_last})"
            )))
        }
        Verdict::Unrelated(why) => Err(Failure::generic(format!(
            "the server behind primary_conninfo is not this instance's primary: {why}"
        ))),
    }
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
    cmd.run(until).await.map_err(|e| Failure::generic(e.to_string()))
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
        .run_as(agent.runas()?)
        .run(agent.deadline)
        .await
        .map_err(|e| Failure::generic(e.to_string()))?;
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
