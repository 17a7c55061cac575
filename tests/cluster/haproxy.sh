#!/bin/bash
# Clients without a virtual IP: HAProxy on a host of its own (network
# namespace pgms-lb, $LB_ADDR on the cluster's bridge) routing by the
# nodes' health service (`pgsqlms health-server` on <node>:8008).
#   haproxy.sh up      health service on every node (and at each node boot),
#                      then HAProxy: writes on $LB_ADDR:5000 (GET /primary),
#                      reads on $LB_ADDR:5001 (GET /replica?lag=16 MB)
#   haproxy.sh down    stop HAProxy, leave the health services
#   haproxy.sh config  print the HAProxy configuration
# The configuration is pcs-examples/haproxy.cfg with this cluster's addresses.
set -u
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
need_root

LB_NS=pgms-lb
LB_VETH=pgmsv90
LB_ADDR=${LB_ADDR:-$NET_PREFIX.5}
LB_DIR=$STATE_DIR/haproxy
HEALTH_FLAG=$STATE_DIR/health-server   # node-services.sh starts the service when present

config() {
  local n servers=""
  for n in $NODES; do
    servers+="    server $n $(node_addr "$n"):$PGPORT check port 8008\n"
  done
  awk -v lb="$LB_ADDR" -v servers="$servers" '
    /@SERVERS@/ { printf "%s", servers; next }
    { gsub(/@LB_ADDR@/, lb); print }' "$REPO_DIR/pcs-examples/haproxy.cfg"
}

up() {
  command -v haproxy >/dev/null || die "haproxy not installed (tests/setup.sh)"
  touch "$HEALTH_FLAG"
  local n
  for n in $NODES; do
    node_is_on "$n" && on_node "$n" "$HARNESS_DIR/node-services.sh" start-health
  done
  if ! ip netns exec "$LB_NS" true 2>/dev/null; then
    ip netns add "$LB_NS"
    ip link add "$LB_VETH" type veth peer name eth0 netns "$LB_NS"
    ip link set "$LB_VETH" master "$BRIDGE" up
    ip -n "$LB_NS" link set lo up
    ip -n "$LB_NS" addr add "$LB_ADDR/$NET_CIDR" dev eth0
    ip -n "$LB_NS" link set eth0 up
  fi
  mkdir -p "$LB_DIR"
  config > "$LB_DIR/haproxy.cfg"
  haproxy -c -q -f "$LB_DIR/haproxy.cfg" || die "invalid HAProxy configuration"
  down_haproxy
  # A daemon must not keep the caller's descriptors (a flock held around
  # the test run would stay locked as long as HAProxy lives); in a cgroup of
  # the cluster's, down.sh ends it with the nodes.
  mkdir -p "$CG_ROOT/lb"
  (
    echo "$BASHPID" > "$CG_ROOT/lb/cgroup.procs"
    for fd in /proc/$BASHPID/fd/*; do
      fd=${fd##*/}
      [ "$fd" -gt 2 ] && eval "exec $fd>&-"
    done
    exec ip netns exec "$LB_NS" haproxy -D -p "$LB_DIR/haproxy.pid" -f "$LB_DIR/haproxy.cfg"
  ) || die "haproxy did not start"
  log "HAProxy on $LB_ADDR: writes :5000, reads :5001"
}

down_haproxy() {
  local pid
  pid=$(cat "$LB_DIR/haproxy.pid" 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null
  rm -f "$LB_DIR/haproxy.pid"
}

case "${1:-}" in
  up) up ;;
  down) down_haproxy; rm -f "$HEALTH_FLAG" ;;
  config) config ;;
  *) die "usage: ${0##*/} up|down|config" ;;
esac
