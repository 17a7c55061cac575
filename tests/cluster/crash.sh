#!/bin/bash
# Crash a node: pull its power cord (every process SIGKILLed at once through
# cgroup.kill, cable unplugged). It stays off until the cluster fences it
# (fence_ns "reboot" boots it again) or until `power.sh on NODE`.
#   crash.sh NODE            power loss
#   crash.sh --hang NODE     freeze every process of the node (cgroup.freeze):
#                            a hung kernel; fencing power-cycles it
set -u
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
mode=off
[ "${1:-}" = --hang ] && { mode=hang; shift; }
need_args 1 "[--hang] NODE" "$@"
node=$1
check_node "$node"
node_is_on "$node" || die "$node is already off"
case $mode in
  off)  exec "$HARNESS_DIR/power.sh" off "$node" ;;
  hang) echo 1 > "$(node_cg "$node")/cgroup.freeze" ;;
esac
