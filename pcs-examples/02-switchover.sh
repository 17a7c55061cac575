#!/bin/bash
# Controlled switchover: make the standby on TARGET the primary.
#   ./02-switchover.sh TARGET
#
# Pacemaker demotes the primary (clean shutdown, restarted as a standby),
# then promotes TARGET. Before promoting, the agent checks with pg_waldump
# that TARGET received everything the old primary wrote, up to its shutdown
# checkpoint; if not, the promotion fails, nothing is lost and the old
# primary is promoted again: see README, "Data protection".
# pcs 0.11 `resource move` puts a temporary location constraint and removes
# it once the move is done; `resource clear` removes one left behind by an
# interrupted move, so the cluster is free to fail over again afterwards.
set -euo pipefail
. "$(dirname "$(readlink -f "$0")")/common.sh"

target=${1:?usage: ${0##*/} TARGET (the node to promote)}
current=$(promoted_node)
[ -n "$current" ] || die "no Promoted instance of $CLONE: nothing to switch over"
[ "$current" != "$target" ] || { say "$target is already the primary"; exit 0; }
[ "$(role_of "$target")" = Unpromoted ] ||
  die "$target does not run a standby of $CLONE (role: $(role_of "$target"))"

say "switchover $current -> $target"
rc=0
pcs resource move "$CLONE" "$target" --promoted --wait="$WAIT" || rc=$?
pcs resource clear "$CLONE" >/dev/null 2>&1 || true
settle || true
now=$(promoted_node)
crm_mon -1
if [ "$rc" != 0 ] || [ "$now" != "$target" ]; then
  die "switchover failed: primary is now '${now:-none}' (see the failed actions above and the exit reason)"
fi
say "done: $target is the primary, $current a standby"
