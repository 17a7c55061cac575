//! The machine-side checks of validate-all, shared with the actions that
//! need a subset of them. Facts are gathered here; verdicts are in `validate`.

use crate::agent::{Agent, Failure};
use crate::exit::OcfExit;
use crate::process::{Cmd, is_executable};
use crate::safefs;
use crate::validate::{self, Settings};

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

/// What start, promote and demote need before they act: binaries of the
/// data directory's version, a system user that is not root and owns the
/// data directory, start_opts without shell syntax, the socket directory.
/// Returns the major version.
pub async fn setup(agent: &Agent) -> Result<u32, Failure> {
    let p = &agent.params;
    // Pure checks first: a refused value runs nothing.
    validate::check_start_opts(p)?;
    binaries_and_user(agent)?;
    let runas = agent.runas()?;
    validate::check_system_user_uid(&runas.name, runas.uid.as_raw())?;
    for (what, dir) in [("pgdata", &p.pgdata), ("datadir", &p.datadir)] {
        if !dir.is_dir() {
            return Err(Failure::new(
                OcfExit::ErrArgs,
                format!("{what} {} is not a directory", dir.display()),
            ));
        }
    }
    let datadir = safefs::Dir::open_owned_by(&p.datadir, runas.uid).map_err(|e| {
        let why = match e {
            safefs::FsError::DirOwner(uid) => {
                format!("is not owned by system_user {} (uid {uid})", runas.name)
            }
            e => e.to_string(),
        };
        Failure::new(OcfExit::ErrArgs, format!("datadir {} {why}", p.datadir.display()))
    })?;
    let content = datadir.read("PG_VERSION", safefs::SMALL).map_err(|e| {
        Failure::new(
            OcfExit::ErrArgs,
            format!(
                "{}/PG_VERSION {e}: datadir is not a PostgreSQL data directory",
                p.datadir.display()
            ),
        )
    })?;
    let major = validate::check_pg_version(&String::from_utf8_lossy(&content))?;
    log::debug!("PostgreSQL {major} data directory");
    let out = Cmd::new(p.bin("postgres"))
        .arg("--version")
        .run_as(runas)
        .run(agent.deadline)
        .await
        .map_err(|e| Failure::new(OcfExit::ErrInstalled, e.to_string()))?;
    validate::check_binaries_version(&out.stdout, major)?;
    if p.pghost.starts_with('/') && !std::path::Path::new(&p.pghost).is_dir() {
        return Err(Failure::new(
            OcfExit::ErrArgs,
            format!(
                "pghost {} is not a directory: it must be the server's unix socket directory (unix_socket_directories)",
                p.pghost
            ),
        ));
    }
    Ok(major)
}

/// Everything a start needs; with `settings`, also the replication settings
/// as postgres itself reads them (`postgres -C`).
pub async fn local(agent: &Agent, settings: bool) -> Result<Option<Settings>, Failure> {
    let major = setup(agent).await?;
    if settings {
        let s = Settings {
            wal_level: setting(agent, "wal_level").await?,
            recovery_target_timeline: setting(agent, "recovery_target_timeline").await?,
            primary_conninfo: setting(agent, "primary_conninfo").await?,
        };
        let node = agent.node().await?;
        validate::check_settings(&s, node)?;
        if agent.params.replication_slots {
            let keep = match major {
                13.. => Some(setting(agent, "max_slot_wal_keep_size").await?),
                _ => None,
            };
            validate::check_slot_settings(major, keep.as_deref())?;
        }
        return Ok(Some(s));
    }
    Ok(None)
}

async fn setting(agent: &Agent, name: &str) -> Result<String, Failure> {
    setting_in(agent, &agent.params.pgdata, name).await
}

/// A setting as postgres reads it from the configuration in `confdir`.
pub async fn setting_in(
    agent: &Agent,
    confdir: &std::path::Path,
    name: &str,
) -> Result<String, Failure> {
    let p = &agent.params;
    let mut cmd =
        Cmd::new(p.bin("postgres")).args(["-C", name, "-D"]).arg(confdir.display().to_string());
    // start_opts may point postgres at another configuration file: the
    // same words the server gets at start.
    let words = validate::check_start_opts(p)?;
    cmd = cmd.args(config_file_opts(agent, &words));
    let out = cmd.run_as(agent.runas()?).run(agent.deadline).await?;
    if !out.success() {
        return Err(Failure::new(
            OcfExit::ErrArgs,
            format!("postgres -C {name} failed: {}", out.message()),
        ));
    }
    Ok(out.stdout.trim().to_string())
}

/// The postgres options of a start, as words: the configuration file when
/// pgdata only holds the configuration, then start_opts.
pub fn config_file_opts(agent: &Agent, start_opts: &[String]) -> Vec<String> {
    let p = &agent.params;
    let mut words = Vec::new();
    if p.datadir != p.pgdata && !start_opts.iter().any(|w| w.contains("config_file")) {
        words.push("-c".to_string());
        words.push(format!("config_file={}", p.pgdata.join("postgresql.conf").display()));
    }
    words.extend(start_opts.iter().cloned());
    words
}
