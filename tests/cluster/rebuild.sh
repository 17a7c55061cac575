#!/bin/bash
# Rebuild a node's PostgreSQL instance from the current primary, the way an
# administrator does after a failover when the old primary cannot rejoin
# (diverged timeline, fence loop...):
#   1. keep the node's cluster stack from starting at boot, power the node off
#      and let the cluster fence it (it boots without the cluster stack);
#   2. pg_basebackup from the primary (through the VIP), start the copy once
#      so it ends cleanly shut down in recovery;
#   3. start the cluster stack, clean up pgsqld's failures on the node, wait
#      for a healthy cluster.
#   rebuild.sh NODE [--no-wait]
# --no-wait: skip the final wait for a healthy cluster (another node still
# needs its own rebuild before the cluster can be healthy).
set -u
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
need_args 1 "NODE [--no-wait]" "$@"
node=$1
wait_healthy=1
[ "${2:-}" = --no-wait ] && wait_healthy=0
check_node "$node"
ND=$(node_dir "$node")

other() {                          # a quorate node other than $node
  local n
  for n in $NODES; do
    [ "$n" = "$node" ] && continue
    node_is_on "$n" || continue
    [ "$(on_node "$n" crm_node --quorum 2>/dev/null)" = 1 ] && { echo "$n"; return 0; }
  done
  return 1
}
# A node whose stack was just started may not have joined the membership
# yet: give the partition time to form before giving up.
has_other() { other >/dev/null; }
wait_for 60 "a quorate node besides $node" has_other || die "no quorate node besides $node"
peer=$(other) || die "no quorate node besides $node"

echo 0 > "$ND/autostart"
"$HARNESS_DIR/power.sh" off "$node"
clean_offline() {
  on_node "$peer" crm_mon -1 --output-as=xml 2>/dev/null |
    grep -E "<node name=\"$node\" " | grep -q 'online="false".*unclean="false"'
}
wait_for 60 "$node fenced (offline, clean)" clean_offline || die "$node not fenced"
node_is_on "$node" || "$HARNESS_DIR/power.sh" on "$node"   # fencing may have booted it already
log "$node: off the cluster, rebuilding from the primary"

# shellcheck disable=SC2016  # expanded by the inner shell
as_pg "$node" bash -c 'rm -rf "$0" && mkdir -m 0700 "$0"' "$PGDATA_NODE"
as_pg "$node" "$PG_BINDIR/pg_basebackup" -h "$VIP" -p "$PGPORT" -U replicator \
  -D "$PGDATA_NODE" -X stream -c fast --no-password || die "pg_basebackup failed"
write_local_conf "$node"
as_pg "$node" touch "$PGDATA_NODE/standby.signal"
pg_start_on "$node"
streaming() { [ "$(psql_on "$node" -At -c 'SELECT status FROM pg_stat_wal_receiver')" = streaming ]; }
wait_for 60 "$node streaming" streaming || die "$node does not stream"
pg_stop_on "$node"

echo 1 > "$ND/autostart"
on_node "$node" "$HARNESS_DIR/node-services.sh" start
on_node "$peer" crm_resource --cleanup --resource pgsqld --node "$node" >/dev/null
if [ "$wait_healthy" = 1 ]; then
  "$HARNESS_DIR/wait-healthy.sh" 120 || die "cluster not healthy after rebuilding $node"
fi
log "$node rebuilt"
