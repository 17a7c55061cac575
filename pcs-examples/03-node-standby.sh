#!/bin/bash
# Take a node out of service (maintenance of the machine, kernel update...)
# and put it back.
#   ./03-node-standby.sh standby NODE
#   ./03-node-standby.sh unstandby NODE
#
# standby: Pacemaker stops every resource on NODE. If NODE runs the
#   primary, that is a switchover first (demote, promote the best standby,
#   the VIP follows), then PostgreSQL is stopped cleanly on NODE.
# unstandby: NODE takes resources again: its instance starts as a standby
#   and follows the current primary (primary_conninfo through the VIP). The
#   primary does not move back (resource-stickiness).
set -euo pipefail
. "$(dirname "$(readlink -f "$0")")/common.sh"

action=${1:-}
node=${2:-}
case "$action" in
  standby|unstandby) [ -n "$node" ] || die "usage: ${0##*/} standby|unstandby NODE" ;;
  *) die "usage: ${0##*/} standby|unstandby NODE" ;;
esac

pcs node "$action" "$node" --wait="$WAIT"
settle || true
crm_mon -1
case "$action" in
  standby)
    [ "$(role_of "$node")" != Promoted ] || die "$node still runs the primary"
    [ "$(count_role Promoted)" = 1 ] || die "no primary after putting $node in standby"
    say "$node is in standby; primary on $(promoted_node)" ;;
  unstandby)
    [ "$(role_of "$node")" = Unpromoted ] || [ "$(role_of "$node")" = Promoted ] ||
      die "$node did not start its instance (see the failed actions above)"
    say "$node is back: $(role_of "$node")" ;;
esac
