#!/bin/bash
# Replication slots on a running cluster (parameter replication_slots of
# ocf:rust:pgsqlms; README "Replication slots"):
#   ./09-replication-slots.sh check     # this node: max_slot_wal_keep_size > 0?
#   ./09-replication-slots.sh on        # turn them on, restart each standby
#   ./09-replication-slots.sh off       # turn them off, restart each standby
#   ./09-replication-slots.sh drop      # this node: drop the agent's unused slots
#
# Before `on`, set max_slot_wal_keep_size on EVERY node (a dead node's slot
# keeps WAL up to that much, never more), e.g. as postgres on each node:
#   psql -c "ALTER SYSTEM SET max_slot_wal_keep_size = '10GB'" -c "SELECT pg_reload_conf()"
# and run `check` there. The agent refuses to start an instance without it.
# Standbys use their slot from their next start (-c primary_slot_name on the
# postmaster's command line, nothing written in postgresql.conf): `on` and
# `off` restart each standby, one at a time; the primary is not restarted.
# After `off`, run `drop` on every node: the agent no longer looks after the
# slots, and an unused slot keeps WAL.
set -euo pipefail
. "$(dirname "$(readlink -f "$0")")/common.sh"

PGPORT=${PGPORT:-5432}
PGHOST=${PGHOST:-/run/postgresql}
GRACE=${GRACE:-600}                  # replication_slots_grace, seconds

psql_local() {
  runuser -u postgres -- psql -X -Atq -h "$PGHOST" -p "$PGPORT" -d postgres -c "$1"
}

check_local() {
  local v
  v=$(psql_local "SHOW max_slot_wal_keep_size") || die "cannot ask the local instance"
  case "$v" in
    -1|0|"") die "max_slot_wal_keep_size is '$v' on $(crm_node --name): set it > 0 on every node first" ;;
  esac
  say "max_slot_wal_keep_size = $v on $(crm_node --name)"
}

restart_standbys() {
  local n
  for n in $(roles | awk '$2 == "Unpromoted" { print $1 }'); do
    say "restarting the standby on $n"
    pcs resource restart "$CLONE" "$n" --wait="$WAIT"
    settle || true
  done
}

case "${1:-}" in
  check) check_local ;;
  on)
    check_local
    pcs resource update "$RSC" replication_slots=true replication_slots_grace="$GRACE"
    settle || true
    restart_standbys
    crm_mon -1
    if [ "$(role_of "$(crm_node --name)")" = Promoted ]; then
      psql_local "SELECT slot_name, active, wal_status FROM pg_replication_slots WHERE slot_name LIKE 'pgsqlms\_%' ORDER BY 1"
      inactive=$(psql_local "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'pgsqlms\_%' AND NOT active")
      [ "$inactive" = 0 ] || say "note: $inactive slot(s) unused: their node is down or not a standby yet"
    fi
    say "replication slots on"
    ;;
  off)
    pcs resource update "$RSC" replication_slots=false
    settle || true
    restart_standbys
    crm_mon -1
    say "replication slots off: now run '$0 drop' on every node"
    ;;
  drop)
    psql_local "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'pgsqlms\_%' AND NOT active" >/dev/null
    left=$(psql_local "SELECT string_agg(slot_name, ' ') FROM pg_replication_slots WHERE slot_name LIKE 'pgsqlms\_%'")
    [ -z "$left" ] || die "still in use: $left (restart the standby using it first)"
    say "no slot of the agent left on $(crm_node --name)"
    ;;
  *) die "usage: $0 check|on|off|drop" ;;
esac
