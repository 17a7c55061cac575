#!/bin/bash
# Manual failover: the primary's node is in trouble (hung, storage errors,
# must go now). Fence it: Pacemaker powers it off (or reboots it, as the
# fence device does), then promotes the most advanced standby.
#   ./05-failover.sh            # the node running the primary
#   ./05-failover.sh NODE       # refuses unless NODE runs the primary
#
# Unlike a switchover, the old primary is not shut down cleanly: WAL it
# wrote that no standby received is lost with it (with synchronous
# replication, nothing that was acknowledged to a client). When it comes
# back, the agent starts it as a standby only if it can still follow the
# new primary; otherwise it stays stopped with an exit reason asking for
# pg_rewind (README, "Troubleshooting").
set -euo pipefail
. "$(dirname "$(readlink -f "$0")")/common.sh"

old=$(promoted_node)
[ -n "$old" ] || die "no Promoted instance of $CLONE"
node=${1:-$old}
[ "$node" = "$old" ] || die "$node does not run the primary ($old does)"
[ "$(count_role Unpromoted)" -ge 1 ] || die "no standby to promote"
[ "$(uname -n)" != "$node" ] || die "run this on another node than $node"

say "fencing $node (primary)"
pcs stonith fence "$node"
new_primary() { p=$(promoted_node); [ -n "$p" ] && [ "$p" != "$old" ]; }
wait_until "a new primary" new_primary || { crm_mon -1; die "no standby was promoted"; }
settle || true
crm_mon -1
say "done: $(promoted_node) is the primary; $node was fenced"
