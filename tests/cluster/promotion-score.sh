#!/bin/bash
# Print the promotion score (attribute master-<rsc>) of a node, as seen from a
# quorate node: the transient one (lifetime reboot, crm_attribute --promotion)
# if any, else the permanent one (lifetime forever, what PAF's crm_master
# sets). Prints nothing when the node has no score.
#   promotion-score.sh NODE [RSC=pgsqld]
set -u
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
need_args 1 "NODE [RSC]" "$@"
node=$1
rsc=${2:-pgsqld}
peer=$(quorate_node) || die "no quorate node"
for lifetime in reboot forever; do
  v=$(on_node "$peer" crm_attribute --promotion="$rsc" --node "$node" --lifetime "$lifetime" \
      --query --quiet 2>/dev/null) && [ -n "$v" ] && { echo "$v"; exit 0; }
done
exit 0
