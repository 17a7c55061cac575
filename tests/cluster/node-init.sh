#!/bin/bash
# pid 1 of a namespace node: the node's "operating system".
#
# power.sh starts it in the node's cgroup and network namespace, in fresh
# mount, UTS, IPC and PID namespaces. It builds the node's private filesystem
# view (what a real machine has on its own disk or in RAM), starts the cluster
# stack when the node is set to do so at boot, then reaps orphans forever.
# It is only ever stopped by SIGKILL (power off): pid 1 of a PID namespace
# ignores every other signal it has no handler for.
set -u
NODE=$1
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
ND=$(node_dir "$NODE")

fail() { echo "node-init[$NODE]: $*" >&2; exit 1; }

hostname "$NODE" || fail "hostname"

# RAM-backed directories: lost at power off, as on a real machine.
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run || fail "mount /run"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm || fail "mount /dev/shm"
# sysfs shows the devices of the mounting process's network namespace:
# IPaddr2 reads /sys/class/net.
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys || fail "mount /sys"

# The node's "disk".
for pair in \
  "etc-corosync:/etc/corosync" \
  "var-lib-corosync:/var/lib/corosync" \
  "var-lib-pacemaker:/var/lib/pacemaker" \
  "var-log:/var/log" \
  "var-lib-postgresql:/var/lib/postgresql" \
  "etc-hosts:/etc/hosts"; do
  mount --bind "$ND/${pair%%:*}" "${pair#*:}" || fail "bind ${pair#*:}"
done

# Pacemaker looks for fence agents in /usr/sbin only: add ours on top of it.
mount -t overlay overlay -o "lowerdir=${SBIN_EXTRA:+$SBIN_EXTRA:}$SBIN_OVERLAY:/usr/sbin" /usr/sbin ||
  fail "overlay /usr/sbin"

# What systemd-tmpfiles would create at boot.
install -d -m 2775 -o postgres -g postgres /run/postgresql
install -d -m 1755 /run/resource-agents
install -d -m 1777 /run/lock

if [ "$(cat "$ND/autostart" 2>/dev/null)" = 1 ]; then
  "$HARNESS_DIR/node-services.sh" start
fi

touch /run/pgsqlms-node-ready
echo "node-init[$NODE]: up ($(date +%T.%3N))"

# Reap orphans (bash reaps any child on SIGCHLD, adopted ones included).
while :; do
  sleep 3600 &
  wait
done
