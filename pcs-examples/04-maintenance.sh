#!/bin/bash
# Maintenance mode: Pacemaker stops watching and acting, so PostgreSQL can be
# restarted, reconfigured or upgraded (minor version) by hand.
#   ./04-maintenance.sh on
#   ... work on PostgreSQL (pg_ctl restart, ALTER SYSTEM...) ...
#   ./04-maintenance.sh off
#
# off: first asks Pacemaker to probe every instance again (`resource
# refresh`, which only reads state while in maintenance), then checks that
# roles are what they were: one primary, standbys running. Only then is
# maintenance mode left, so Pacemaker never "repairs" a state it did not
# see coming. Leave every instance where it was before `on` (same primary).
set -euo pipefail
. "$(dirname "$(readlink -f "$0")")/common.sh"

case "${1:-}" in
  on)
    settle || die "the cluster has actions in progress: wait for it to settle first"
    pcs property set maintenance-mode=true
    say "maintenance mode on: Pacemaker no longer monitors or acts on any resource"
    say "primary: $(promoted_node); leave it the primary, then run: ${0##*/} off"
    ;;
  off)
    pcs resource refresh "$CLONE" >/dev/null 2>&1
    # The probes report back; Pacemaker then shows the roles they found.
    settle || true
    roles
    if [ "$(count_role Promoted)" != 1 ] || [ "$(count_role Stopped)" != 0 ]; then
      crm_mon -1
      die "instances are not back as they were (one Promoted, others Unpromoted): maintenance mode left ON; fix PostgreSQL, then run ${0##*/} off again"
    fi
    pcs property set maintenance-mode=false
    settle || true
    crm_mon -1
    say "maintenance mode off; primary: $(promoted_node)"
    ;;
  *) die "usage: ${0##*/} on|off" ;;
esac
