#!/bin/bash
# Start/stop the cluster stack of the node this runs in (what
# `systemctl start corosync pacemaker` does on a real machine).
#   node-services.sh start|stop|status
# Run it inside a node: tests/cluster/on.sh srv2 tests/cluster/node-services.sh start
set -u
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
need_args 1 "start|stop|status" "$@"

running() { pidof -q "$1"; }   # pid namespace of the node: its own processes only

# Start daemons with the environment systemd gives them: no HOME (libpq then
# finds ~postgres/.pgpass through the password database), no TERM, etc.
daemon() { setsid -f env -i PATH="$HOST_PATH" LANG=C.UTF-8 "$@" </dev/null; }

# The load balancers' health service (tests/cluster/haproxy.sh), as its
# systemd unit runs it: as postgres, on the node's address.
start_health() {
  running_health && return 0
  daemon runuser -u postgres -- /usr/lib/ocf/resource.d/rust/pgsqlms health-server \
    --listen "$(node_addr "$(hostname)"):8008" --pghost "$PGSOCKDIR" --pgport "$PGPORT" \
    >>/var/log/postgresql/health-server.log 2>&1
}
running_health() { pgrep -f 'pgsqlms health-server' >/dev/null; }

case "${1:-}" in
  start-health)
    start_health
    ;;
  start)
    if [ -e "$STATE_DIR/health-server" ]; then start_health; fi
    if ! running corosync; then
      daemon corosync -f >>/var/log/corosync/console.log 2>&1
      wait_for 30 "corosync on $(hostname)" corosync-cfgtool -s || exit 1
    fi
    if ! running pacemakerd; then
      daemon pacemakerd >>/var/log/pacemaker/console.log 2>&1
      wait_for 30 "pacemaker CIB on $(hostname)" cibadmin --query --local --scope=nodes || exit 1
    fi
    ;;
  stop)
    # Graceful: pacemakerd stops the resources of this node first.
    if running pacemakerd; then
      kill -TERM "$(pidof pacemakerd)"
      wait_for 600 "pacemaker to stop" sh -c '! pidof -q pacemakerd' || exit 1
    fi
    if running corosync; then
      corosync-cfgtool -H --force >/dev/null 2>&1 || kill -TERM "$(pidof corosync)"
      wait_for 60 "corosync to stop" sh -c '! pidof -q corosync' || exit 1
    fi
    ;;
  status)
    for d in corosync pacemakerd; do
      if running "$d"; then echo "$d: running"; else echo "$d: stopped"; fi
    done
    if running_health; then echo "health-server: running"; fi
    ;;
  *)
    echo "usage: ${0##*/} start|stop|status|start-health" >&2
    exit 2
    ;;
esac
