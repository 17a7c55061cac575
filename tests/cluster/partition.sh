#!/bin/bash
# Network partition: move the listed nodes' cables to a separate switch (a
# bridge of their own, "island"). They keep talking to each other and lose
# everyone else, the host (clients, test runner) included. The partition is
# outside the nodes: it survives their reboots. heal.sh undoes it.
#   partition.sh NODE...          e.g. partition.sh srv1
set -u
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
need_args 1 "NODE..." "$@"
for n in "$@"; do check_node "$n"; done
k=1
while ip link show "pgmsi$k" >/dev/null 2>&1; do k=$((k + 1)); done
island=pgmsi$k
ip link add "$island" type bridge forward_delay 0 stp_state 0
sysctl -qw "net.ipv6.conf.$island.disable_ipv6=1"
ip link set "$island" up
for n in "$@"; do
  ip link set "$(node_veth "$n")" master "$island"
done
log "partitioned: [$*] on $island"
