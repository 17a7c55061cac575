#!/bin/bash
# Hang a node's PostgreSQL instance while the node stays healthy: SIGSTOP to
# its postmaster and every process under it, as when its disk stops
# answering. CONT resumes them.
#   hang-postgres.sh NODE [STOP|CONT]
set -u
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
need_root
node=${1:-}
[ -n "$node" ] || die "usage: ${0##*/} NODE [STOP|CONT]"
check_node "$node"
sig=${2:-STOP}
# shellcheck disable=SC2016  # expanded by the sh on the node
on_node "$node" sh -c '
  pm=$(head -n 1 "$1/postmaster.pid" 2>/dev/null) || { echo "no postmaster.pid in $1" >&2; exit 1; }
  # the postmaster first: it forks nothing new once stopped
  pids="$pm $(pgrep -P "$pm" | tr "\n" " ")"
  kill -s "$2" $pids && echo "SIG$2 to $(echo $pids | wc -w) processes of postmaster $pm on $(hostname)"' \
  sh "$PGDATA_NODE" "$sig"
