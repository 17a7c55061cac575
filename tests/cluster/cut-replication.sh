#!/bin/bash
# Cut a standby off the VIP only (its walreceiver cannot reach the primary),
# leaving corosync alone: the node stays in the cluster and lags behind.
# Implemented as a blackhole route inside the node (lost if it reboots).
# heal.sh (or heal.sh NODE) restores it.
#   cut-replication.sh NODE
set -u
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
need_args 1 "NODE" "$@"
node=$1
check_node "$node"
ip -n "$(node_netns "$node")" route replace blackhole "$VIP/32"
# Drop the established walreceiver connection now rather than at
# wal_receiver_timeout: its packets to the VIP are blackholed from here on.
on_node "$node" ss -K dst "$VIP" >/dev/null 2>&1 || true
log "$node: replication cut (blackhole $VIP)"
