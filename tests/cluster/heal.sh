#!/bin/bash
# Undo partition.sh, cut-replication.sh and slow-replication.sh: every cable
# back on the main switch, islands removed, blackhole routes to the VIP and
# shapers removed.
#   heal.sh [NODE...]      default: all nodes
set -u
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
need_args 0 "[NODE...]" "$@"
nodes=${*:-$NODES}
for n in $nodes; do
  check_node "$n"
  ip link set "$(node_veth "$n")" master "$BRIDGE" 2>/dev/null
  ip -n "$(node_netns "$n")" route del blackhole "$VIP/32" 2>/dev/null
  tc qdisc del dev "$(node_veth "$n")" root 2>/dev/null   # slow-replication.sh
done
# Remove islands nobody is plugged into any more.
for island in $(ip -o link show type bridge | awk -F': ' '{ print $2 }' | grep -E '^pgmsi[0-9]+$'); do
  if [ -z "$(ls "/sys/class/net/$island/brif" 2>/dev/null)" ]; then
    ip link del "$island"
  fi
done
log "healed: $nodes"
