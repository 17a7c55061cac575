# shellcheck shell=bash
# Helpers shared by the pcs-examples recipes (sourced, not run). They only
# read the cluster's state with Pacemaker's own tools, on the node they run on.
#
# Variables: RSC (pgsqld), CLONE ($RSC-clone), WAIT (seconds a recipe waits
# for the cluster to settle, 120).
RSC=${RSC:-pgsqld}
CLONE=${CLONE:-$RSC-clone}
WAIT=${WAIT:-120}

die()  { echo "${0##*/}: $*" >&2; exit 1; }
say()  { echo "${0##*/}: $*"; }

# "<node> <role>" for each instance of $CLONE, role one of Promoted,
# Unpromoted, Stopped (Pacemaker 2.1 may still print Master/Slave in XML).
roles() {
  crm_mon -1 --output-as=xml 2>/dev/null | awk -v clone="$CLONE" '
    $0 ~ "<clone id=\"" clone "\"" { inclone = 1 }
    inclone && /<\/clone>/         { inclone = 0 }
    inclone && /<resource / {
      role = $0; sub(/.* role="/, "", role); sub(/".*/, "", role)
      if (role == "Master") role = "Promoted"
      if (role == "Slave") role = "Unpromoted"
    }
    inclone && /<node name="/ {
      node = $0; sub(/.*<node name="/, "", node); sub(/".*/, "", node)
      print node, role
    }'
}
role_of()       { roles | awk -v n="$1" '$1 == n { print $2; exit }'; }
promoted_node() { roles | awk '$2 == "Promoted" { print $1 }'; }
count_role()    { roles | awk -v r="$1" '$2 == r { c++ } END { print c + 0 }'; }

# wait_until DESCRIPTION COMMAND...: poll every half second for $WAIT seconds.
wait_until() {
  local what=$1 deadline=$((SECONDS + WAIT))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "${0##*/}: timed out after ${WAIT}s waiting for $what" >&2; return 1; }
    sleep 0.5
  done
}

# Wait (at most $WAIT seconds) until the cluster has nothing left to do.
settle() { crm_resource --wait --timeout="${WAIT}s" >/dev/null; }

# Failed operations recorded for $RSC (fail counts), one line each.
failures() { crm_mon -1 --include=failcounts --output-as=xml 2>/dev/null | grep -o "<failure op_key=\"${RSC}_[^>]*"; }
