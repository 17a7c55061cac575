#!/bin/bash
# Slow down the WAL stream toward a standby without disconnecting it: the
# switch port of the node (host end of its veth) gets an HTB shaper that
# limits traffic coming from PostgreSQL's port (the walsender) to RATE.
# Corosync and everything else are untouched. The standby stays connected
# (state streaming in pg_stat_replication) and lags behind under write load.
# heal.sh removes it. Survives reboots of the node (it is on the switch).
#   slow-replication.sh NODE [RATE=256kbit]
set -u
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
need_args 1 "NODE [RATE]" "$@"
node=$1
check_node "$node"
rate=${2:-256kbit}
dev=$(node_veth "$node")
tc qdisc del dev "$dev" root 2>/dev/null
tc qdisc add dev "$dev" root handle 1: htb default 10 r2q 1000
tc class add dev "$dev" parent 1: classid 1:10 htb rate 10gbit
tc class add dev "$dev" parent 1: classid 1:30 htb rate "$rate" ceil "$rate"
tc filter add dev "$dev" parent 1: protocol ip prio 1 u32 \
  match ip sport "$PGPORT" 0xffff flowid 1:30
log "$node: replication stream limited to $rate"
