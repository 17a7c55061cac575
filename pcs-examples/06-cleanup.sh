#!/bin/bash
# After a failure has been dealt with: forget the failed actions and fail
# counts of the resource, so `crm_mon` is clean again and the node is not
# banned once migration-threshold failures pile up. Pacemaker re-probes the
# instances it cleans up.
#   ./06-cleanup.sh             # every node
#   ./06-cleanup.sh NODE        # one node
set -euo pipefail
. "$(dirname "$(readlink -f "$0")")/common.sh"

node=${1:-}
echo "failed actions before:"
failures | sed 's/^/  /' || echo "  none"
pcs resource cleanup "$RSC" ${node:+node="$node"}
settle || true
left=$(failures | { if [ -n "$node" ]; then grep "node=\"$node\""; else cat; fi; } || true)
crm_mon -1
[ -z "$left" ] || die "failures remain (the instance fails again: read its exit reason)"
say "clean"
