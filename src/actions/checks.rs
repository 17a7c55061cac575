//! The machine-side checks of validate-all, shared with the actions that
//! need a subset of them. Facts are gathered here; verdicts are in `validate`.

use crate::agent::{Agent, Failure};
use crate::exit::OcfExit;
use crate::process::{Cmd, is_executable};
use crate::validate::{self, Settings};
use std::os::unix::fs::MetadataExt;

pub const BINARIES: &[&str] = &["pg_ctl", "postgres", "pg_controldata", "pg_waldump"];

/// Binaries present and the system user known: cheap stat calls only.
pub fn binaries_and_user(agent: &Agent) -> Result<(), Failure> {
    let missing: Vec<String> = BINARIES
        .iter()
        .map(|b| agent.params.bin(b))
        .filter(|p| !is_executable(p))
        .map(|p| p.display().to_string())
        .collect();
    if !missing.is_empty() {
        return Err(Failure::new(
            OcfExit::ErrInstalled,
            format!(
                "PostgreSQL binaries missing: {} (check the bindir parameter)",
                missing.join(", ")
            ),
        ));
    }
    agent.runas()?;
    Ok(())
}

/// Everything a start needs; with `settings`, also the replication settings
/// as postgres itself reads them (`postgres -C`).
pub async fn local(agent: &Agent, settings: bool) -> Result<Option<Settings>, Failure> {
    binaries_and_user(agent)?;
    let p = &agent.params;
    for (what, dir) in [("pgdata", &p.pgdata), ("datadir", &p.datadir)] {
        if !dir.is_dir() {
            return Err(Failure::new(
                OcfExit::ErrArgs,
                format!("{what} {} is not a directory", dir.display()),
            ));
        }
    }
    let pg_version = p.datadir.join("PG_VERSION");
    let content = std::fs::read_to_string(&pg_version).map_err(|e| {
        Failure::new(
            OcfExit::ErrArgs,
            format!(
                "{} is unreadable ({e}): datadir is not a PostgreSQL data directory",
                pg_version.display()
            ),
        )
    })?;
    let major = validate::check_pg_version(&content)?;
    log::debug!("PostgreSQL {major} data directory");
    let runas = agent.runas()?;
    let owner = std::fs::metadata(&p.datadir).map(|m| m.uid()).unwrap_or(u32::MAX);
    if owner != runas.uid.as_raw() {
        return Err(Failure::new(
            OcfExit::ErrArgs,
            format!(
                "datadir {} is not owned by system_user {} (uid {owner})",
                p.datadir.display(),
                runas.name
            ),
        ));
    }
    if settings {
        let s = Settings {
            wal_level: setting(agent, "wal_level").await?,
            recovery_target_timeline: setting(agent, "recovery_target_timeline").await?,
            primary_conninfo: setting(agent, "primary_conninfo").await?,
        };
        let node = agent.node().await?;
        validate::check_settings(&s, node)?;
        return Ok(Some(s));
    }
    Ok(None)
}

async fn setting(agent: &Agent, name: &str) -> Result<String, Failure> {
    let p = &agent.params;
    let mut cmd =
        Cmd::new(p.bin("postgres")).args(["-C", name, "-D"]).arg(p.pgdata.display().to_string());
    // start_opts may point postgres at another configuration file.
    cmd = cmd.args(p.start_opts.split_whitespace());
    if p.datadir != p.pgdata && !p.start_opts.contains("config_file") {
        cmd = cmd.arg("-c").arg(format!("config_file={}/postgresql.conf", p.pgdata.display()));
    }
    let out = cmd
        .run_as(agent.runas()?)
        .run(agent.deadline)
        .await
        .map_err(|e| Failure::generic(e.to_string()))?;
    if !out.success() {
        return Err(Failure::new(
            OcfExit::ErrArgs,
            format!("postgres -C {name} failed: {}", out.message()),
        ));
    }
    Ok(out.stdout.trim().to_string())
}
