#!/bin/bash
# The cluster's network (host side).
#   net.sh create    bridge $BRIDGE with the host on $HOST_ADDR, and for each
#                    node a network namespace pgms-<node> whose eth0 is one
#                    end of a veth pair plugged into the bridge
#   net.sh destroy   remove all of it (whatever is left; idempotent)
#
# Addresses inside a node's namespace are set at each boot (power.sh), not
# here. Nothing is routed or NATed: traffic stays on the bridge.
set -u
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
need_args 1 "create|destroy" "$@"

create() {
  local n ns veth
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge forward_delay 0 stp_state 0
  fi
  sysctl -qw "net.ipv6.conf.$BRIDGE.disable_ipv6=1"
  ip addr replace "$HOST_ADDR/$NET_CIDR" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  for n in $NODES; do
    ns=$(node_netns "$n")
    veth=$(node_veth "$n")
    ip netns add "$ns" 2>/dev/null || ip netns exec "$ns" true || die "netns $ns"
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
      net.ipv6.conf.default.disable_ipv6=1
    if ! ip link show "$veth" >/dev/null 2>&1; then
      ip link add "$veth" type veth peer name eth0 netns "$ns"
    fi
    sysctl -qw "net.ipv6.conf.$veth.disable_ipv6=1"
    ip link set "$veth" master "$BRIDGE"
    ip link set "$veth" down          # unplugged until the node boots
    ip -n "$ns" link set lo up
  done
}

destroy() {
  local ns l
  for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^pgms-/ { print $1 }'); do
    ip netns del "$ns"
  done
  for l in $(ip -o link show 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' |
             grep -E '^pgms(v[0-9]+|i[0-9]+|0)$'); do
    ip link del "$l" 2>/dev/null
  done
  return 0
}

case "${1:-}" in
  create) create ;;
  destroy) destroy ;;
  *) die "usage: ${0##*/} create|destroy" ;;
esac
