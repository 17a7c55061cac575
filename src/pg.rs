//! Talking to the local PostgreSQL over its protocol (tokio-postgres): no
//! psql or pg_isready fork in the monitor.
//!
//! Over a unix socket the connection is opened with the effective uid of
//! system_user, so `peer` authentication in pg_hba.conf sees that user (the
//! agent itself runs as root). The runtime is single-threaded, so switching
//! the effective uid around `connect()` affects nothing else.

use crate::lsn::Lsn;
use crate::process::RunAs;
use crate::role::{Contact, Refusal};
use crate::scores::ReplicationRow;
use crate::slots::Slot;
use std::path::PathBuf;
use tokio::time::Instant;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

pub struct Target<'a> {
    pub host: &'a str,
    pub port: u16,
    pub user: &'a RunAs,
}

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// Could not get a session: why, as the role decision needs it.
    #[error("{0}")]
    Contact(Contact),
    /// Connected, but a query failed.
    #[error("query failed: {0}")]
    Query(String),
    #[error("PostgreSQL did not answer before the action timeout")]
    TimedOut,
}

/// A session or query that failed.
impl crate::agent::EdgeError for PgError {
    const CODE: crate::exit::OcfExit = crate::exit::OcfExit::ErrGeneric;
}

fn socket_path(t: &Target) -> PathBuf {
    PathBuf::from(t.host).join(format!(".s.PGSQL.{}", t.port))
}

fn classify(e: &tokio_postgres::Error) -> Contact {
    if let Some(db) = e.as_db_error() {
        let text = match db.detail() {
            Some(d) => format!("{} ({d})", db.message()),
            None => db.message().to_string(),
        };
        let code = db.code();
        return if *code == SqlState::CANNOT_CONNECT_NOW {
            if db.detail().is_some_and(|d| d.contains("Hot standby mode is disabled")) {
                Contact::Refused(Refusal::HotStandbyOff)
            } else {
                Contact::Refused(Refusal::NotYet(text))
            }
        } else if code.code().starts_with("28")
            || *code == SqlState::INVALID_CATALOG_NAME
            || *code == SqlState::INSUFFICIENT_PRIVILEGE
        {
            Contact::Refused(Refusal::Denied(text))
        } else {
            Contact::Refused(Refusal::Other(text))
        };
    }
    // No server message: the socket closed or was refused.
    Contact::Unreachable
}

fn config(t: &Target) -> tokio_postgres::Config {
    let mut c = tokio_postgres::Config::new();
    c.user(&t.user.name).dbname("postgres").application_name("pgsqlms");
    c
}

/// One non-blocking `connect()` with system_user's effective uid (the
/// server reads the peer's credentials at connect time). `None`: the
/// listen backlog is full (EAGAIN), try again later. A blocking connect
/// would wait there beyond any deadline on this single-threaded runtime.
fn try_connect_unix_as(
    path: &std::path::Path,
    user: &RunAs,
) -> std::io::Result<Option<std::os::unix::net::UnixStream>> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, socket};
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let addr = UnixAddr::new(path)?;
    let root = nix::unistd::geteuid();
    let switch = root.is_root() && user.uid != root;
    if switch {
        nix::unistd::seteuid(user.uid)?;
    }
    let r = nix::sys::socket::connect(fd.as_raw_fd(), &addr);
    if switch {
        nix::unistd::seteuid(root).expect("getting back the effective uid we had");
    }
    match r {
        // EINPROGRESS does not happen on unix sockets; handled as tokio
        // would (wait for writability) should a kernel ever return it.
        Ok(()) | Err(nix::errno::Errno::EINPROGRESS) => Ok(Some(fd.into())),
        Err(nix::errno::Errno::EAGAIN) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Connect to the unix socket, retrying while its backlog is full; the
/// caller bounds the whole by the deadline.
async fn connect_unix_as(
    path: &std::path::Path,
    user: &RunAs,
) -> std::io::Result<tokio::net::UnixStream> {
    let mut pause = std::time::Duration::from_millis(5);
    let std_stream = loop {
        match try_connect_unix_as(path, user)? {
            Some(s) => break s,
            None => {
                log::debug!("{}: listen backlog full, connecting again", path.display());
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_millis(100));
            }
        }
    };
    let stream = tokio::net::UnixStream::from_std(std_stream)?;
    stream.writable().await?;
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    Ok(stream)
}

/// Server-side bound of every statement of a session opened with `left`
/// before the action's deadline: a query the server cannot answer (a lock,
/// a lost synchronous standby) is cancelled by the server itself, before the
/// agent's own timeout gives up on it, so that no backend is left working.
pub fn statement_timeout(left: std::time::Duration) -> std::time::Duration {
    left.saturating_sub(left / 10).max(std::time::Duration::from_millis(100))
}

pub async fn connect(t: &Target<'_>, deadline: Instant) -> Result<Client, PgError> {
    let bound = statement_timeout(deadline.saturating_duration_since(Instant::now()));
    let options = format!("-c statement_timeout={}", bound.as_millis());
    let config = || {
        let mut c = config(t);
        c.options(&options);
        c
    };
    let work = async {
        if t.host.starts_with('/') {
            let path = socket_path(t);
            let stream = match connect_unix_as(&path, t.user).await {
                Ok(s) => s,
                Err(_) => return Err(PgError::Contact(Contact::Unreachable)),
            };
            let (client, conn) = config()
                .connect_raw(stream, NoTls)
                .await
                .map_err(|e| PgError::Contact(classify(&e)))?;
            tokio::spawn(conn);
            Ok(client)
        } else {
            let mut c = config();
            c.host(t.host).port(t.port);
            let (client, conn) =
                c.connect(NoTls).await.map_err(|e| PgError::Contact(classify(&e)))?;
            tokio::spawn(conn);
            Ok(client)
        }
    };
    tokio::time::timeout_at(deadline, work).await.map_err(|_| PgError::TimedOut)?
}

/// One simple-protocol round trip, bounded by `deadline`; the server's own
/// message on an error.
async fn simple_query(
    client: &Client,
    sql: &str,
    deadline: Instant,
) -> Result<Vec<tokio_postgres::SimpleQueryMessage>, PgError> {
    tokio::time::timeout_at(deadline, client.simple_query(sql))
        .await
        .map_err(|_| PgError::TimedOut)?
        .map_err(|e| {
            PgError::Query(
                e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string()),
            )
        })
}

/// Rows of a simple-protocol query as text (one round trip, no prepare).
pub async fn rows(
    client: &Client,
    sql: &str,
    deadline: Instant,
) -> Result<Vec<Vec<Option<String>>>, PgError> {
    let msgs = simple_query(client, sql, deadline).await?;
    Ok(msgs
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect())
}

/// What one monitor needs to know, in one round trip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub in_recovery: bool,
    /// Primary: current WAL insert position. Standby: last received (or replayed).
    pub lsn: Option<Lsn>,
    /// Standby: the WAL receiver's state (`streaming`...), if it runs.
    pub receiver: Option<String>,
    /// Standby: timeline of the WAL being received, if it runs.
    pub received_tli: Option<u32>,
}

const STATUS_SQL: &str = "SELECT pg_is_in_recovery(), \
 CASE WHEN pg_is_in_recovery() THEN greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) ELSE pg_current_wal_lsn() END, \
 (SELECT status FROM pg_stat_wal_receiver LIMIT 1), \
 (SELECT received_tli FROM pg_stat_wal_receiver LIMIT 1)";

fn parse_lsn(v: &Option<String>) -> Option<Lsn> {
    v.as_deref().and_then(|s| s.parse().ok())
}

pub async fn status(client: &Client, deadline: Instant) -> Result<Status, PgError> {
    let r = rows(client, STATUS_SQL, deadline).await?;
    let row = r.first().ok_or_else(|| PgError::Query("status query returned no row".into()))?;
    Ok(Status {
        in_recovery: row[0].as_deref() == Some("t"),
        lsn: parse_lsn(&row[1]),
        receiver: row[2].clone(),
        received_tli: row[3].as_deref().and_then(|s| s.parse().ok()),
    })
}

/// The primary's view of its replication: `pg_stat_replication`, the
/// `synchronous_standby_names` in effect and, when asked, the replication
/// slots, in one round trip.
pub struct Replication {
    pub rows: Vec<ReplicationRow>,
    pub synchronous_standby_names: String,
    /// `pg_replication_slots`, when asked for.
    pub slots: Option<Vec<Slot>>,
}

/// Every slot, as `slots::plan` reads them (wal_status: PostgreSQL 13+).
const SLOTS_SQL: &str = "SELECT slot_name, slot_type, temporary, active, wal_status, restart_lsn \
 FROM pg_replication_slots";

/// Result sets of a simple-protocol query holding several statements (one
/// round trip), in order.
async fn result_sets(
    client: &Client,
    sql: &str,
    deadline: Instant,
) -> Result<Vec<Vec<Vec<Option<String>>>>, PgError> {
    let msgs = simple_query(client, sql, deadline).await?;
    let mut sets = vec![Vec::new()];
    for m in msgs {
        match m {
            SimpleQueryMessage::Row(r) => sets
                .last_mut()
                .expect("never empty")
                .push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect()),
            SimpleQueryMessage::CommandComplete(_) => sets.push(Vec::new()),
            _ => {}
        }
    }
    sets.pop();
    Ok(sets)
}

fn parse_slots(rows: &[Vec<Option<String>>]) -> Vec<Slot> {
    rows.iter()
        .filter(|r| r.len() >= 6)
        .filter_map(|r| {
            Some(Slot {
                name: r[0].clone()?,
                physical: r[1].as_deref() == Some("physical"),
                temporary: r[2].as_deref() == Some("t"),
                active: r[3].as_deref() == Some("t"),
                wal_status: r[4].clone(),
                restart_lsn: parse_lsn(&r[5]),
            })
        })
        .collect()
}

pub async fn replication(
    client: &Client,
    with_slots: bool,
    deadline: Instant,
) -> Result<Replication, PgError> {
    // The left join gives one row (NULL columns) when no standby is connected.
    let mut sql = String::from(
        "SELECT current_setting('synchronous_standby_names'), r.application_name, r.state, \
         r.write_lsn FROM (SELECT 1) AS one LEFT JOIN pg_stat_replication r ON true",
    );
    if with_slots {
        sql.push_str("; ");
        sql.push_str(SLOTS_SQL);
    }
    let mut sets = result_sets(client, &sql, deadline).await?.into_iter();
    let r = sets.next().unwrap_or_default();
    let slots = if with_slots {
        Some(parse_slots(&sets.next().ok_or_else(|| {
            PgError::Query("the replication slots query returned nothing".into())
        })?))
    } else {
        None
    };
    let synchronous_standby_names = r.first().and_then(|row| row[0].clone()).unwrap_or_default();
    let rows = r
        .into_iter()
        .filter(|row| row[1].is_some())
        .map(|row| ReplicationRow {
            application_name: row[1].clone().unwrap_or_default(),
            state: row[2].clone().unwrap_or_default(),
            write_lsn: parse_lsn(&row[3]),
        })
        .collect();
    Ok(Replication { rows, synchronous_standby_names, slots })
}

pub async fn slots(client: &Client, deadline: Instant) -> Result<Vec<Slot>, PgError> {
    Ok(parse_slots(&rows(client, SLOTS_SQL, deadline).await?))
}

/// A slot name the agent made (`slots::is_owned`): only those are ever put
/// in a statement, so no quoting question arises.
fn owned(name: &str) -> Result<&str, PgError> {
    if crate::slots::is_owned(name) {
        Ok(name)
    } else {
        Err(PgError::Query(format!("refusing to touch slot {name:?}: not one of the agent's")))
    }
}

/// A physical slot that reserves WAL from now on (on a standby: from the
/// replayed position).
pub async fn create_slot(client: &Client, name: &str, deadline: Instant) -> Result<(), PgError> {
    let sql = format!("SELECT pg_create_physical_replication_slot('{}', true)", owned(name)?);
    rows(client, &sql, deadline).await.map(|_| ())
}

pub async fn drop_slot(client: &Client, name: &str, deadline: Instant) -> Result<(), PgError> {
    let sql = format!("SELECT pg_drop_replication_slot('{}')", owned(name)?);
    rows(client, &sql, deadline).await.map(|_| ())
}

/// Move an unused slot forward to `to`.
pub async fn advance_slot(
    client: &Client,
    name: &str,
    to: Lsn,
    deadline: Instant,
) -> Result<(), PgError> {
    let sql = format!("SELECT pg_replication_slot_advance('{}', '{to}')", owned(name)?);
    rows(client, &sql, deadline).await.map(|_| ())
}

/// On a standby, in one round trip: the `primary_slot_name` it runs with,
/// and every unused slot of the agent moved up to the replayed position
/// (returns their names). Slots without a position (invalidated, or never
/// reserved) cannot move.
pub async fn advance_owned_slots(
    client: &Client,
    deadline: Instant,
) -> Result<(String, Vec<String>), PgError> {
    let mut sets = result_sets(
        client,
        "SELECT current_setting('primary_slot_name'); \
         SELECT s.slot_name, (pg_replication_slot_advance(s.slot_name, pg_last_wal_replay_lsn())).end_lsn \
         FROM pg_replication_slots s \
         WHERE s.slot_type = 'physical' AND NOT s.temporary AND NOT s.active \
         AND s.slot_name LIKE 'pgsqlms\\_%' AND s.restart_lsn < pg_last_wal_replay_lsn()",
        deadline,
    )
    .await?
    .into_iter();
    let used = sets
        .next()
        .and_then(|r| r.into_iter().next())
        .and_then(|r| r.into_iter().next().flatten())
        .unwrap_or_default();
    let moved = sets
        .next()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|row| row.first().cloned().flatten())
        .collect();
    Ok((used, moved))
}

/// A restartpoint (on a standby) that may not take longer than `max`: the
/// checkpointer goes on by itself; only our wait is cut short. Returns
/// whether it completed.
pub async fn bounded_checkpoint(
    client: &Client,
    max: std::time::Duration,
    deadline: Instant,
) -> bool {
    let ms = max.as_millis().max(1);
    let sql = format!("SET statement_timeout = {ms}; CHECKPOINT; RESET statement_timeout");
    match rows(client, &sql, deadline).await {
        Ok(_) => true,
        Err(e) => {
            log::info!("CHECKPOINT not completed within {ms} ms ({e}); going on with the last one");
            let _ = rows(client, "RESET statement_timeout", deadline).await;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn slot_rows_read_as_pg_replication_slots_prints_them() {
        let row = |v: &[Option<&str>]| v.iter().map(|c| c.map(str::to_string)).collect::<Vec<_>>();
        let rows = vec![
            row(&[
                Some("pgsqlms_srv2"),
                Some("physical"),
                Some("f"),
                Some("t"),
                Some("reserved"),
                Some("0/3000060"),
            ]),
            row(&[Some("lost_one"), Some("physical"), Some("f"), Some("f"), Some("lost"), None]),
            row(&[Some("sub"), Some("logical"), Some("t"), Some("f"), None, Some("junk")]),
            row(&[None, Some("physical"), Some("f"), Some("f"), None, None]),
            row(&[Some("short")]),
        ];
        let s = parse_slots(&rows);
        assert_eq!(s.len(), 3);
        assert!(s[0].physical && !s[0].temporary && s[0].active && !s[0].lost());
        assert_eq!(s[0].restart_lsn, Some(Lsn(0x3000060)));
        assert!(s[1].lost() && s[1].restart_lsn.is_none());
        assert!(!s[2].physical && s[2].temporary && s[2].restart_lsn.is_none());
    }

    #[test]
    fn statements_end_before_the_action() {
        assert_eq!(statement_timeout(Duration::from_secs(10)), Duration::from_secs(9));
        assert_eq!(statement_timeout(Duration::from_millis(50)), Duration::from_millis(100));
        assert_eq!(statement_timeout(Duration::ZERO), Duration::from_millis(100));
        for ms in [200u64, 1_000, 9_500, 60_000] {
            assert!(statement_timeout(Duration::from_millis(ms)) < Duration::from_millis(ms));
        }
    }

    use nix::sys::socket::{
        AddressFamily, Backlog, SockFlag, SockType, UnixAddr, bind, connect as raw_connect, listen,
        socket,
    };
    use std::os::fd::{AsRawFd, OwnedFd};

    fn stream_socket(flags: SockFlag) -> OwnedFd {
        socket(AddressFamily::Unix, SockType::Stream, flags | SockFlag::SOCK_CLOEXEC, None).unwrap()
    }

    /// A socket that never accepts, its backlog filled by other clients.
    fn full_listener(dir: &std::path::Path, port: u16) -> (OwnedFd, Vec<OwnedFd>) {
        let path = dir.join(format!(".s.PGSQL.{port}"));
        let addr = UnixAddr::new(&path).unwrap();
        let l = stream_socket(SockFlag::empty());
        bind(l.as_raw_fd(), &addr).unwrap();
        listen(&l, Backlog::new(1).unwrap()).unwrap();
        let mut queued = Vec::new();
        for _ in 0..64 {
            let c = stream_socket(SockFlag::SOCK_NONBLOCK);
            match raw_connect(c.as_raw_fd(), &addr) {
                Ok(()) => queued.push(c),
                Err(nix::errno::Errno::EAGAIN) => return (l, queued),
                Err(e) => panic!("filling the backlog: {e}"),
            }
        }
        panic!("the backlog never filled");
    }

    #[test]
    fn a_full_listen_backlog_does_not_outlast_the_deadline() {
        let dir = std::env::temp_dir().join(format!("pgsqlms-pg-backlog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (_listener, _queued) = full_listener(&dir, 5999);
        let me = nix::unistd::User::from_uid(nix::unistd::geteuid()).unwrap().unwrap();
        let user = RunAs::lookup(&me.name).unwrap();
        let host = dir.display().to_string();
        let t = Target { host: &host, port: 5999, user: &user };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let start = std::time::Instant::now();
        let r = rt.block_on(connect(&t, Instant::now() + Duration::from_millis(300)));
        let took = start.elapsed();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(r, Err(PgError::TimedOut)), "{r:?}");
        assert!(took < Duration::from_secs(2), "connect took {took:?}");
    }
}
