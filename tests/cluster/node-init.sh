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

# DEBIAN=13: the node runs the trixie userland of rootfs.sh. Its root is an
# overlay: the shared rootfs (read-only lower) + an upper directory of its own
# on its "disk" (what packages or tools write under /etc, /var... survives
# reboots, as on a real disk). pivot_root into it, with what must be seen at
# the same paths as on the host: /dev, the repository (read-only: scripts,
# fence_ns), the state directory (hypervisor socket, the node directories
# bind-mounted below), the agent under test built on the host
# (/usr/lib/ocf/resource.d/rust, read-only) and /opt/pgsqlms (PostgreSQL 18).
# Then everything below runs as for a Debian 12 node, with trixie's tools.
if [ -n "$NODE_ROOTFS" ]; then
  R=$ND/root
  [ -r "$NODE_ROOTFS/.pgsqlms-rootfs-stamp" ] || fail "no rootfs in $NODE_ROOTFS (rootfs.sh)"
  mkdir -p "$R" "$ND/rootfs-upper" "$ND/rootfs-work"
  mount -t overlay overlay \
    -o "lowerdir=$NODE_ROOTFS,upperdir=$ND/rootfs-upper,workdir=$ND/rootfs-work" "$R" ||
    fail "overlay root"
  mount --rbind /dev "$R/dev" || fail "bind /dev"
  mount -t proc -o nosuid,nodev,noexec proc "$R/proc" || fail "mount /proc"
  ro_binds=("$REPO_DIR")
  for d in /usr/lib/ocf/resource.d/rust /opt/pgsqlms; do
    [ -d "$d" ] && ro_binds+=("$d")
  done
  for d in "${ro_binds[@]}" "$STATE_DIR"; do
    mkdir -p "$R$d"
    mount --bind "$d" "$R$d" || fail "bind $d"
  done
  for d in "${ro_binds[@]}"; do
    mount -o remount,bind,ro "$R$d" || fail "read-only $d"
  done
  cd "$R" || fail "cd $R"
  mkdir -p .old-root
  pivot_root . .old-root || fail "pivot_root"
  cd / || fail "cd /"
  umount -l /.old-root || fail "umount old root"
  rmdir /.old-root
fi

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
  if [ ! -e "${pair#*:}" ]; then     # a fresh rootfs may lack one
    if [ -d "$ND/${pair%%:*}" ]; then mkdir -p "${pair#*:}"; else touch "${pair#*:}"; fi
  fi
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
