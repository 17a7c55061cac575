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

case "${1:-}" in
  start)
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
    ;;
  *)
    echo "usage: ${0##*/} start|stop|status" >&2
    exit 2
    ;;
esac
