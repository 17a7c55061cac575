#!/bin/bash
# Let a former primary whose WAL diverged rejoin by itself (rejoin_policy,
# README "Former primaries rejoining"), or go back to PAF's behaviour.
#   ./08-rejoin-policy.sh rewind [START_TIMEOUT]           # pg_rewind
#   ./08-rejoin-policy.sh rewind-or-clone [START_TIMEOUT]  # else pg_basebackup
#   ./08-rejoin-policy.sh manual                           # stay stopped (default)
#   ./08-rejoin-policy.sh kept                             # what was set aside here
#
# rewind*: on the primary's node, grants REPL_USER (default replicator, the
#   primary_conninfo user) the functions pg_rewind reads the primary with
#   (in database postgres; its pg_hba.conf and .pgpass must admit
#   dbname=postgres too), sets the parameter and the start timeout (default
#   300s: what a pg_rewind, or a full copy with rewind-or-clone, may take),
#   then runs validate-all here, which says what is still missing.
# kept: the discarded WAL (<datadir>.diverged-*, read it with pg_waldump)
#   and old data directories (<datadir>.replaced-*) on this node: remove
#   them once read.
set -euo pipefail
. "$(dirname "$(readlink -f "$0")")/common.sh"

policy=${1:-}
timeout=${2:-300s}
REPL_USER=${REPL_USER:-replicator}
usage="usage: ${0##*/} rewind|rewind-or-clone [START_TIMEOUT] | manual | kept"

param() { crm_resource --resource "$RSC" --get-parameter "$1" 2>/dev/null || true; }

case "$policy" in
  rewind|rewind-or-clone|manual) ;;
  kept)
    datadir=$(param datadir)
    [ -n "$datadir" ] || datadir=$(param pgdata)
    [ -n "$datadir" ] || die "cannot read the datadir of $RSC"
    shopt -s nullglob
    set -- "$datadir".diverged-* "$datadir".replaced-*
    if [ $# -eq 0 ]; then
      say "nothing set aside beside $datadir"
    else
      ls -ld "$@"
    fi
    exit 0
    ;;
  *) die "$usage" ;;
esac

if [ "$policy" != manual ]; then
  me=$(crm_node -n)
  primary=$(promoted_node)
  if [ "$primary" = "$me" ]; then
    socket=$(param pghost)
    port=$(param pgport)
    runuser -u postgres -- psql -X -d postgres ${socket:+-h "$socket"} ${port:+-p "$port"} -v ON_ERROR_STOP=1 -c \
      "GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean),
         pg_catalog.pg_stat_file(text, boolean), pg_catalog.pg_read_binary_file(text),
         pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO \"$REPL_USER\""
    say "granted pg_rewind's functions to $REPL_USER on the primary"
  else
    say "not on the primary's node ($primary): run this there for the grants, or make $REPL_USER a superuser"
  fi
  pcs resource update "$RSC" rejoin_policy="$policy" op start timeout="$timeout"
else
  pcs resource update "$RSC" rejoin_policy=manual
fi
settle || true
if [ "$policy" != manual ]; then
  # validate-all with the resource's parameters, on this node; warnings
  # (what rewind-or-clone will do instead) go to the agent's log.
  crm_resource --validate --resource "$RSC" || die "validate-all refuses rejoin_policy=$policy here (reason above)"
fi
crm_mon -1
say "rejoin_policy=$policy"
