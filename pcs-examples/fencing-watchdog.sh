# shellcheck shell=bash
# Watchdog fencing (diskless SBD), sourced by 01-create-resource.sh with $CIB
# set to the offline CIB being edited. Used by the Vagrant cluster
# (vagrant/provision/sbd.sh sets SBD up on every node beforehand).
#
# No fence device: with stonith-watchdog-timeout set, Pacemaker considers a
# node it has to fence as reset once that time has passed, because that
# node's sbd stopped feeding its watchdog. It must exceed
# SBD_WATCHDOG_TIMEOUT (pcs checks it); twice that value is the usual choice.
# Set it only once sbd runs on every node: Pacemaker stops on a node without
# it. Needs 3 nodes or more: a node without quorum resets itself.
#
# Variables: SBD_WATCHDOG_TIMEOUT (default: read from /etc/default/sbd, else
# 5), STONITH_WATCHDOG_TIMEOUT (default: 2 x SBD_WATCHDOG_TIMEOUT, in s).
_sbd_timeout=${SBD_WATCHDOG_TIMEOUT:-$(sed -n 's/^SBD_WATCHDOG_TIMEOUT=\([0-9][0-9]*\).*/\1/p' /etc/default/sbd 2>/dev/null || true)}
_sbd_timeout=${_sbd_timeout:-5}

pcs -f "$CIB" property set \
  stonith-watchdog-timeout="${STONITH_WATCHDOG_TIMEOUT:-$((2 * _sbd_timeout))s}"
unset _sbd_timeout
