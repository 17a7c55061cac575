#!/bin/bash
# The "power switch" of the namespace nodes (host side).
#   power.sh on|off|reboot|status NODE
#
# off    : unplug the node's cable (host end of its veth down), then SIGKILL
#          every process of the node at once through cgroup.kill, and wait
#          until its cgroup is empty. Its RAM (tmpfs /run, /dev/shm) and
#          namespaces vanish with its last process; its disk stays.
# on     : boot: reset the node's network namespace as a reboot would (only
#          its own address, no leftover VIP, empty neighbour cache), plug the
#          cable back, start pid 1 (node-init.sh) in fresh mount/UTS/IPC/PID
#          namespaces. Returns once the node's filesystems are ready; the
#          cluster stack (when autostart is set) then starts in background.
# reboot : off then on, without waiting for the boot: a power switch (IPMI,
#          a hypervisor) reports a reboot done once power is back, not once
#          the operating system is up, and Pacemaker's fencing returns then.
#          The node's "firmware" then takes FIRMWARE_DELAY seconds (lib.sh)
#          before its operating system starts, as a real machine's POST
#          does: an instant boot let Pacemaker 3.0 on the fenced node join
#          before the fencing result reached it ("We were allegedly just
#          fenced"), which no real fence device does.
# status : prints on|off (exit 0 when on, 2 when off, as fence agents do).
#
# The hypervisor (hypervisor.py) runs this for fence_ns; crash.sh runs `off`.
set -u
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"

power_off() {
  local node=$1 cg i
  cg=$(node_cg "$node")
  ip link set "$(node_veth "$node")" down 2>/dev/null
  [ -e "$cg/cgroup.kill" ] || return 0
  echo 1 > "$cg/cgroup.kill"
  echo 0 > "$cg/cgroup.freeze"      # crash.sh --hang; SIGKILL gets through anyway
  for ((i = 0; i < 200; i++)); do
    node_is_on "$node" || return 0
    sleep 0.05
  done
  log "$node: processes still alive 10s after cgroup.kill"
  return 1
}

reset_netns() {
  local node=$1 ns addr
  ns=$(node_netns "$node")
  addr=$(node_addr "$node")
  ip netns exec "$ns" true 2>/dev/null || die "$node: no network namespace $ns (run up.sh)"
  ip -n "$ns" link set eth0 down
  ip -n "$ns" addr flush dev eth0
  ip -n "$ns" neigh flush dev eth0 2>/dev/null
  ip -n "$ns" route flush table main 2>/dev/null
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$addr/$NET_CIDR" dev eth0
  ip -n "$ns" link set eth0 up
}

power_on() {   # NODE [nowait [FIRMWARE_SECONDS]]
  local node=$1 wait=${2:-wait} firmware=${3:-0} nd cg pid i
  nd=$(node_dir "$node")
  cg=$(node_cg "$node")
  if node_is_on "$node"; then
    echo "$node: already on"
    return 0
  fi
  [ -d "$nd" ] || die "$node: no node directory $nd (run up.sh)"
  reset_netns "$node"
  ip link set "$(node_veth "$node")" up
  mkdir -p "$cg"
  # setsid -f: the node must not belong to the caller's session or job.
  # The firmware's wait runs inside the node's cgroup: the node counts as
  # on (status) and a power-off during it kills it.
  # shellcheck disable=SC2016  # expanded by the inner shell
  setsid -f env -i PATH="$HOST_PATH" HOME=/root LANG=C.UTF-8 \
    PGSQLMS_CLUSTER_STATE="$STATE_DIR" \
    bash -c 'echo $$ > "$0/cgroup.procs" || exit 1
             [ "$4" = 0 ] || { echo "---- power on, firmware ${4}s"; sleep "$4"; }
             echo "---- boot $(date "+%F %T.%3N")"
             exec nsenter --net="/run/netns/$1" -- \
               unshare --mount --uts --ipc --pid --fork --mount-proc \
                 --propagation private -- "$2" "$3"' \
    "$cg" "$(node_netns "$node")" "$HARNESS_DIR/node-init.sh" "$node" "$firmware" \
    </dev/null >>"$nd/boot.log" 2>&1
  [ "$wait" = wait ] || return 0
  for ((i = 0; i < 300; i++)); do
    if pid=$(node_init_pid "$node") && [ -e "/proc/$pid/root/run/pgsqlms-node-ready" ]; then
      return 0
    fi
    sleep 0.1
  done
  log "$node: did not boot within 30s (see $nd/boot.log)"
  return 1
}

need_args 2 "on|off|reboot|status NODE" "$@"
action=$1
node=$2
check_node "$node"

case "$action" in
  on)     power_on "$node" ;;
  off)    power_off "$node" ;;
  reboot) power_off "$node" && power_on "$node" nowait "$FIRMWARE_DELAY" ;;
  status)
    if node_is_on "$node"; then echo on; exit 0; else echo off; exit 2; fi ;;
  *) die "unknown action '$action'" ;;
esac
