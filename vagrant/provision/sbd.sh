#!/bin/bash
# Diskless SBD (watchdog self-fencing) on a node: installs sbd, loads the
# softdog watchdog now and at every boot, writes /etc/default/sbd without
# SBD_DEVICE (diskless) and enables sbd.service, which then starts with
# Corosync and Pacemaker (RequiredBy= both). A node that loses quorum, whose
# Pacemaker dies, or that the cluster wants fenced stops feeding the watchdog
# and is reset within SBD_WATCHDOG_TIMEOUT. The cluster side is
# pcs-examples/fencing-watchdog.sh (stonith-watchdog-timeout).
#
# VMs only: a namespace node has no kernel, hence no watchdog, of its own.
# Changes take effect at the next start of the cluster stack. Run as root.
#
# Environment:
#   SBD_WATCHDOG_DEV      default /dev/watchdog
#   SBD_WATCHDOG_TIMEOUT  seconds, default 5 (sbd's default)
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$(readlink -f "$0")")/common.sh"

SBD_WATCHDOG_DEV=${SBD_WATCHDOG_DEV:-/dev/watchdog}
SBD_WATCHDOG_TIMEOUT=${SBD_WATCHDOG_TIMEOUT:-5}
case "$SBD_WATCHDOG_TIMEOUT" in ''|*[!0-9]*) die "SBD_WATCHDOG_TIMEOUT: seconds expected" ;; esac

if ! dpkg-query -W -f='${Status}' sbd 2>/dev/null | grep -q "install ok installed"; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends sbd >/dev/null
fi

# softdog: a watchdog in the kernel, so no hypervisor device is needed; it
# still resets the VM when sbd stops feeding it.
echo softdog > /etc/modules-load.d/softdog.conf
modprobe softdog
[ -c "$SBD_WATCHDOG_DEV" ] || die "no watchdog device $SBD_WATCHDOG_DEV"

write_file 0644 root:root /etc/default/sbd <<EOF
# Written by vagrant/provision/sbd.sh: diskless SBD, no SBD_DEVICE.
SBD_PACEMAKER=yes
SBD_STARTMODE=always
SBD_DELAY_START=no
SBD_WATCHDOG_DEV=$SBD_WATCHDOG_DEV
SBD_WATCHDOG_TIMEOUT=$SBD_WATCHDOG_TIMEOUT
SBD_TIMEOUT_ACTION=flush,reboot
SBD_MOVE_TO_ROOT_CGROUP=auto
SBD_SYNC_RESOURCE_STARTUP=yes
SBD_OPTS=
EOF

systemctl -q enable sbd.service
log "sbd enabled: watchdog $SBD_WATCHDOG_DEV, timeout ${SBD_WATCHDOG_TIMEOUT}s"
