#!/bin/bash
# PostgreSQL instance of a node, streaming replication ready. Run as root.
#
#   postgresql.sh primary     initdb (checksums; peer locally, scram-sha-256
#                             over the network), the settings block appended
#                             to postgresql.conf, pg_hba.conf, local.conf,
#                             ~postgres/.pgpass; starts the instance (roles
#                             need it) and creates the roles replicator, root
#                             (superuser, peer) and APP_USER with database
#                             APP_DB. Leaves it running: standbys clone it.
#   postgresql.sh standby     pg_basebackup from PRIMARY_HOST, local.conf,
#                             standby.signal, ~postgres/.pgpass. Left stopped.
#   postgresql.sh local-conf  (re)writes local.conf only
#   postgresql.sh start       pg_ctl start; a standby streams from
#                             PRIMARY_HOST for this run (its local.conf names
#                             the VIP, which does not exist before Pacemaker
#                             runs)
#   postgresql.sh stop        pg_ctl stop -m fast
#   postgresql.sh wait-standbys N [SECONDS]   on the primary: until N
#                             standbys stream (default 60 s)
#   postgresql.sh wait-streaming [SECONDS]    on a standby: until it streams
#
# Sequencing (start, wait, stop) belongs to the caller. Idempotent: an
# existing data directory is neither initialized nor cloned again. Every
# action but local-conf refuses to run while Pacemaker runs on the node: it
# owns PostgreSQL then.
#
# Environment:
#   NODE            this node's name (default: hostname): cluster_name and
#                   application_name in primary_conninfo
#   NODES           all node names, space separated (synchronous_standby_names)
#   NET_PREFIX, NODE_ADDR_BASE, NET_CIDR
#                   node k of NODES is NET_PREFIX.(NODE_ADDR_BASE + k);
#                   pg_hba.conf admits NET_PREFIX.0/NET_CIDR
#   VIP             address of the primary service: primary_conninfo host
#   REPL_PASSWORD   password of the role replicator (~postgres/.pgpass)
#   APP_USER, APP_PASSWORD, APP_DB   (primary) application role and database
#   PG_MAJOR        default 15
#   PG_BINDIR       default /usr/lib/postgresql/$PG_MAJOR/bin
#   PGDATA_NODE     data directory, default /var/lib/postgresql/$PG_MAJOR/main
#   PGSOCKDIR       unix socket directory, default /run/postgresql
#   PGPORT          default 5432
#   PRIMARY_HOST    address the standbys clone from and stream from at their
#                   first start; default: the first node of NODES
#   CLONE_TIMEOUT   (standby) seconds to keep retrying pg_basebackup while
#                   the primary is not ready yet; default 0: one attempt
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$(readlink -f "$0")")/common.sh"

NODE=${NODE:-$(hostname)}
PG_MAJOR=${PG_MAJOR:-15}
PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/$PG_MAJOR/bin}
PGDATA_NODE=${PGDATA_NODE:-/var/lib/postgresql/$PG_MAJOR/main}
PGSOCKDIR=${PGSOCKDIR:-/run/postgresql}
PGPORT=${PGPORT:-5432}
CLONE_TIMEOUT=${CLONE_TIMEOUT:-0}
PGD=$PGDATA_NODE
# Marks the settings block: appended once.
CONF_MARK="# ---- vagrant/provision/postgresql.sh ----"

primary_host() {
  if [ -n "${PRIMARY_HOST:-}" ]; then
    echo "$PRIMARY_HOST"
  else
    require NODES NET_PREFIX NODE_ADDR_BASE
    node_addr "${NODES%% *}"
  fi
}
ctl() { as_postgres "$PG_BINDIR/pg_ctl" -D "$PGD" "$@"; }
running() { ctl status >/dev/null 2>&1; }
psql_local() {
  as_postgres "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$PGSOCKDIR" -p "$PGPORT" -d postgres "$@"
}
not_under_pacemaker() {
  ! pidof -q pacemakerd || die "Pacemaker runs on this node: it owns PostgreSQL, not $1"
}
parent_dir() {            # the data directory's parent (namespace: made by up.sh)
  local d
  d=$(dirname "$PGD")
  [ -d "$d" ] || install -d -m 0755 -o postgres -g postgres "$d"
}

write_pgpass() {
  require REPL_PASSWORD
  local home
  home=$(getent passwd postgres | cut -d: -f6)
  printf '*:*:replication:replicator:%s\n*:*:postgres:replicator:%s\n' \
    "$REPL_PASSWORD" "$REPL_PASSWORD" | write_file 0600 postgres:postgres "$home/.pgpass"
}

# Node-specific settings, included by postgresql.conf. application_name must
# be the node name (PAF and this agent find standbys by it).
write_local_conf() {
  require VIP
  write_file 0600 postgres:postgres "$PGD/local.conf" <<EOF
# node-specific settings of $NODE (vagrant/provision/postgresql.sh)
cluster_name = '$NODE'
# tcp_user_timeout: a primary that vanished (power, network) leaves this
# connection half-open; without it, unacknowledged status messages are
# retransmitted with exponential backoff and the standby may notice the new
# primary behind the VIP seconds late.
primary_conninfo = 'host=$VIP port=$PGPORT user=replicator application_name=$NODE connect_timeout=5 tcp_user_timeout=2000'
EOF
}

settings() {
  local sync_names
  sync_names=$(echo "$NODES" | tr ' ' ',')
  cat <<EOF

$CONF_MARK
listen_addresses = '*'
port = $PGPORT
unix_socket_directories = '$PGSOCKDIR'
max_connections = 50
shared_buffers = 32MB
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = 256MB
hot_standby = on
hot_standby_feedback = on
wal_receiver_status_interval = 1s
wal_sender_timeout = 15s
wal_receiver_timeout = 15s
# a standby whose primary went away retries after this long (default 5s):
# after a failover or switchover it reconnects through the VIP sooner
wal_retrieve_retry_interval = 1s
synchronous_standby_names = 'ANY 1 ($sync_names)'
synchronous_commit = on
recovery_target_timeline = 'latest'
logging_collector = on
log_directory = '/var/log/postgresql'
log_filename = 'postgresql.log'
log_file_mode = 0640
log_line_prefix = '%m [%p] %q%u@%d '
log_checkpoints = off
# per-node settings: primary_conninfo (application_name=<node name>)
include_if_exists = 'local.conf'
EOF
}

pg_hba() {
  cat <<EOF
# TYPE  DATABASE     USER        ADDRESS                METHOD
local   all          all                                peer
host    all          all         127.0.0.1/32           scram-sha-256
host    replication  replicator  $NET_PREFIX.0/$NET_CIDR  scram-sha-256
host    all          all         $NET_PREFIX.0/$NET_CIDR  scram-sha-256
EOF
}

start() {
  not_under_pacemaker start
  if running; then
    log "PostgreSQL already running in $PGD"
    return 0
  fi
  local opts=() from
  if [ -e "$PGD/standby.signal" ]; then
    from=$(primary_host)
    opts=(-o "-c primary_conninfo='host=$from port=$PGPORT user=replicator application_name=$NODE'")
  fi
  ctl -w -t 60 -l /var/log/postgresql/startup.log "${opts[@]}" start >/dev/null
}

stop() {
  not_under_pacemaker stop
  running || return 0
  ctl -w -t 60 -m fast stop >/dev/null
}

primary() {
  require NODES NET_PREFIX NET_CIDR VIP REPL_PASSWORD APP_USER APP_PASSWORD APP_DB
  not_under_pacemaker primary
  [ ! -e "$PGD/standby.signal" ] || die "$PGD is a standby"
  write_pgpass
  if [ ! -e "$PGD/PG_VERSION" ]; then
    parent_dir
    as_postgres "$PG_BINDIR/initdb" -D "$PGD" --data-checksums -U postgres \
      --auth-local=peer --auth-host=scram-sha-256 >/dev/null
    log "initialized $PGD"
  fi
  # In place: the files stay postgres's, with initdb's modes.
  grep -qxF "$CONF_MARK" "$PGD/postgresql.conf" || settings >> "$PGD/postgresql.conf"
  pg_hba > "$PGD/pg_hba.conf"
  write_local_conf
  start
  # Nothing is connected yet: commit locally (synchronous_standby_names).
  psql_local -v repl_password="$REPL_PASSWORD" -v app_user="$APP_USER" \
    -v app_password="$APP_PASSWORD" -v app_db="$APP_DB" <<'EOF'
SET synchronous_commit = local;
SELECT format('CREATE ROLE replicator LOGIN REPLICATION PASSWORD %L', :'repl_password')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'replicator') \gexec
SELECT 'CREATE ROLE root LOGIN SUPERUSER'
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'root') \gexec
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'app_user', :'app_password')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_user') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'app_db', :'app_user')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'app_db') \gexec
EOF
  log "primary ready on $NODE ($PGD)"
}

standby() {
  require VIP REPL_PASSWORD
  not_under_pacemaker standby
  write_pgpass
  if [ -e "$PGD/PG_VERSION" ]; then
    log "$PGD exists: not cloned again"
  else
    parent_dir
    local from deadline
    from=$(primary_host)
    deadline=$((SECONDS + CLONE_TIMEOUT))
    until as_postgres "$PG_BINDIR/pg_basebackup" -h "$from" -p "$PGPORT" \
        -U replicator -D "$PGD" -X stream -c fast --no-password; do
      [ "$SECONDS" -lt "$deadline" ] || die "pg_basebackup from $from failed"
      log "primary $from not ready, retrying in 5 s"
      sleep 5
    done
    as_postgres touch "$PGD/standby.signal"
    log "cloned $PGD from $from"
  fi
  write_local_conf
}

replicas_streaming() {
  [ "$(psql_local -At -c "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" -ge "$1" ]
}
receiver_streaming() {
  [ "$(psql_local -At -c 'SELECT status FROM pg_stat_wal_receiver')" = streaming ]
}

case "${1:-}" in
  primary)    primary ;;
  standby)    standby ;;
  local-conf) write_local_conf ;;
  start)      start ;;
  stop)       stop ;;
  wait-standbys)
    [ -n "${2:-}" ] || die "usage: ${0##*/} wait-standbys N [SECONDS]"
    wait_until "${3:-60}" replicas_streaming "$2" || die "fewer than $2 standbys streaming after ${3:-60} s"
    ;;
  wait-streaming)
    wait_until "${2:-60}" receiver_streaming || die "$NODE not streaming after ${2:-60} s"
    ;;
  *)
    echo "usage: ${0##*/} primary|standby|local-conf|start|stop|wait-standbys N [SECONDS]|wait-streaming [SECONDS]" >&2
    exit 2
    ;;
esac
