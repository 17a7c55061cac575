#!/bin/bash
# Switch an existing PAF resource (ocf:heartbeat:pgsqlms) to ocf:rust:pgsqlms
# in place: PostgreSQL keeps running, nothing restarts, the primary stays
# where it is.
#   1. install the pgsqlms package on EVERY node (the agent must exist
#      everywhere before Pacemaker runs it anywhere)
#   2. ./07-migrate-from-paf.sh        (on any one node)
#
# How: maintenance mode on (Pacemaker stops acting), the primitive's provider
# changes from heartbeat to rust (same agent name, same parameters: ours
# reads PAF's), Pacemaker re-probes every instance with the new agent, and
# maintenance mode is left only if the probes found what PAF had: one
# primary, the others standbys, on the same nodes. Otherwise it stays on and
# the script says what differs. PAF's recovery_template parameter has no use
# from PostgreSQL 12 on (standby.signal) and our agent refuses it: it is
# removed on the way.
set -euo pipefail
. "$(dirname "$(readlink -f "$0")")/common.sh"

NEW_PROVIDER=${NEW_PROVIDER:-rust}
agent_of() {
  cibadmin --query --xpath "//primitive[@id='$RSC']" 2>/dev/null |
    sed -n 's/.*<primitive \([^>]*\)>.*/\1/p' | head -1 |
    awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); gsub(/"/, "", kv[2]); a[kv[1]] = kv[2] } }
         END { print a["class"] ":" a["provider"] ":" a["type"] }'
}

agent=$(agent_of)
case "$agent" in
  "ocf:$NEW_PROVIDER:pgsqlms") say "$RSC already uses ocf:$NEW_PROVIDER:pgsqlms"; exit 0 ;;
  ocf:heartbeat:pgsqlms) ;;
  *) die "$RSC uses '$agent', not PAF's ocf:heartbeat:pgsqlms" ;;
esac
[ -x "/usr/lib/ocf/resource.d/$NEW_PROVIDER/pgsqlms" ] ||
  die "ocf:$NEW_PROVIDER:pgsqlms is not installed on this node (install the package on every node)"
settle || die "the cluster has actions in progress: wait for it to settle first"
before=$(roles | sort)
[ "$(count_role Promoted)" = 1 ] || die "expected one Promoted instance before migrating:"$'\n'"$before"

say "maintenance mode on"
pcs property set maintenance-mode=true
if cibadmin --query --xpath "//primitive[@id='$RSC']//nvpair[@name='recovery_template']" >/dev/null 2>&1; then
  say "removing PAF's recovery_template (not used from PostgreSQL 12 on)"
  crm_resource --resource "$RSC" --delete-parameter recovery_template >/dev/null
fi
say "$RSC: ocf:heartbeat:pgsqlms -> ocf:$NEW_PROVIDER:pgsqlms"
cibadmin --modify --xml-text "<primitive id=\"$RSC\" class=\"ocf\" provider=\"$NEW_PROVIDER\" type=\"pgsqlms\"/>"
pcs resource refresh "$CLONE" >/dev/null 2>&1
settle || true
after=$(roles | sort)
if [ "$after" != "$before" ]; then
  crm_mon -1
  printf 'before:\n%s\nafter the probes with ocf:%s:pgsqlms:\n%s\n' "$before" "$NEW_PROVIDER" "$after" >&2
  die "the new agent does not see the instances as PAF did: maintenance mode left ON. Read the exit reasons above; to go back: cibadmin --modify --xml-text '<primitive id=\"$RSC\" provider=\"heartbeat\"/>'"
fi
say "roles confirmed by the new agent; maintenance mode off"
pcs property set maintenance-mode=false
settle || true
crm_mon -1
say "done: $RSC runs ocf:$NEW_PROVIDER:pgsqlms, primary still on $(promoted_node)"
