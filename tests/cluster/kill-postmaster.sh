#!/bin/bash
# kill -9 the postmaster of a node's PostgreSQL instance (its children stay
# until they notice; nothing is cleaned up: postmaster.pid and shared memory
# remain, as after a real crash of the postmaster).
#   kill-postmaster.sh NODE [SIGNAL=KILL]
set -u
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
need_args 1 "NODE [SIGNAL]" "$@"
node=$1
check_node "$node"
sig=${2:-KILL}
# shellcheck disable=SC2016  # expanded by the inner shell
on_node "$node" sh -c '
  pid=$(head -n 1 "$1/postmaster.pid" 2>/dev/null) || { echo "no postmaster.pid in $1" >&2; exit 1; }
  kill -s "$2" "$pid" && echo "killed postmaster $pid (SIG$2) on $(hostname)"' \
  sh "$PGDATA_NODE" "$sig"
