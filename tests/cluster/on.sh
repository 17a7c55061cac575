#!/bin/bash
# Run a command on a node, as root, inside all its namespaces and its cgroup
# (a power-off kills it too). Without a command: an interactive shell.
#   on.sh srv2 crm_mon -1
#   on.sh srv1 psql -c 'select pg_is_in_recovery()'     (runs as root: role root)
#   on.sh srv3 runuser -u postgres -- pg_controldata /var/lib/postgresql/15/main
set -u
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
need_args 1 "NODE [COMMAND [ARG]...]" "$@"
node=$1
check_node "$node"
shift
[ $# -gt 0 ] || set -- bash -i
on_node "$node" "$@"
