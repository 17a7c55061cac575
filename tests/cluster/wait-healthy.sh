#!/bin/bash
# Wait until the cluster is healthy: every node online, one Promoted and N-1
# Unpromoted pgsqld instances, the VIP on the Promoted node, every standby
# streaming from the primary and holding a positive promotion score (the
# primary's monitor has seen it: a failover could pick it).
#   wait-healthy.sh [TIMEOUT_SECONDS=120]      exit 0 healthy, 1 timeout
set -u
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
need_args 0 "[TIMEOUT_SECONDS]" "$@"
timeout=${1:-120}
nnodes=$(echo "$NODES" | wc -w)

healthy() {
  local out promoted unpromoted vip_node streaming
  out=$("$HARNESS_DIR/status.sh" --roles 2>/dev/null) || return 1
  promoted=$(awk '$2 == "Promoted" { print $1 }' <<<"$out")
  unpromoted=$(awk '$2 == "Unpromoted"' <<<"$out" | wc -l)
  vip_node=$(awk '$1 == "vip" { print $2 }' <<<"$out")
  [ "$(wc -w <<<"$promoted")" = 1 ] && [ "$unpromoted" = $((nnodes - 1)) ] || return 1
  [ "$vip_node" = "$promoted" ] || return 1
  streaming=$(on_node "$promoted" psql -XAt -c \
    "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'" 2>/dev/null)
  [ "$streaming" = $((nnodes - 1)) ] || return 1
  local node score
  for node in $NODES; do
    [ "$node" = "$promoted" ] && continue
    # ours: transient (lifetime reboot); PAF's crm_master: lifetime forever
    score=$(on_node "$promoted" crm_attribute --promotion=pgsqld --node "$node" --query --quiet 2>/dev/null) ||
      score=$(on_node "$promoted" crm_attribute --promotion=pgsqld --node "$node" --lifetime forever --query --quiet 2>/dev/null) ||
      return 1
    [ -n "$score" ] && [ "$score" -gt 0 ] 2>/dev/null || return 1
  done
}
wait_for "$timeout" "a healthy cluster" healthy
