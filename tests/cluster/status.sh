#!/bin/bash
# Summary of the namespace cluster, seen from the host.
#   status.sh           power state of each node, pgsqld roles, VIP, and for
#                       each running instance: recovery state, replication
#   status.sh --roles   machine-readable: "<node> Promoted|Unpromoted|Stopped"
#                       lines and "vip <node>" (from crm_mon on a live node)
#   status.sh --failcounts   "<node> <fail-count attribute> <value>" lines
set -u
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
need_args 0 "[--roles|--failcounts]" "$@"

# Ask a node of the quorate partition; else any node that is on.
live=$(quorate_node) || live=""
if [ -z "$live" ]; then
  for n in $NODES; do node_is_on "$n" && { live=$n; break; }; done
fi

roles() {
  [ -n "$live" ] || return 1
  local xml
  xml=$(on_node "$live" crm_mon -1 --output-as=xml 2>/dev/null) || return 1
  # Pacemaker 2.1 XML may still say Master/Slave; normalize.
  awk '
    /<resources>/              { inres = 1 }
    /<\/resources>/            { inres = 0 }
    /<clone id="pgsqld-clone"/ { inclone = 1 }
    /<\/clone>/               { inclone = 0 }
    /<resource / {
      id = $0;   sub(/.* id="/, "", id);     sub(/".*/, "", id)
      role = $0; sub(/.* role="/, "", role); sub(/".*/, "", role)
      if (role == "Master") role = "Promoted"
      if (role == "Slave") role = "Unpromoted"
    }
    inres && /<node name="/ {
      node = $0; sub(/.*<node name="/, "", node); sub(/".*/, "", node)
      if (inclone && id == "pgsqld") print node, role
      else if (id == "pgsql-vip") print "vip", node
    }' <<<"$xml"
  return 0
}

if [ "${1:-}" = --roles ]; then
  roles
  exit
fi
if [ "${1:-}" = --failcounts ]; then
  [ -n "$live" ] || exit 1
  on_node "$live" cibadmin --query --scope status 2>/dev/null | awk '
    /<node_state / { n = $0; sub(/.* uname="/, "", n); sub(/".*/, "", n) }
    /name="fail-count-/ {
      a = $0; sub(/.* name="/, "", a); sub(/".*/, "", a)
      v = $0; sub(/.* value="/, "", v); sub(/".*/, "", v)
      print n, a, v
    }'
  exit 0
fi

echo "nodes:"
for n in $NODES; do
  if node_is_on "$n"; then
    s="on"
    pid=$(node_init_pid "$n") && s="on (init pid $pid)"
  else
    s="off"
  fi
  printf '  %-6s %-15s %s\n' "$n" "$(node_addr "$n")" "$s"
done
echo "pacemaker (seen from ${live:-nobody}):"
roles 2>/dev/null | sed 's/^/  /'
echo "postgresql:"
for n in $NODES; do
  node_is_on "$n" || continue
  r=$(on_node "$n" psql -XAt -c "SELECT CASE WHEN pg_is_in_recovery() THEN 'standby' ELSE 'primary' END
      || ' lsn=' || CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text ELSE pg_current_wal_lsn()::text END
      || coalesce(' receiver=' || (SELECT status FROM pg_stat_wal_receiver), '')
      || coalesce(' standbys=' || (SELECT string_agg(application_name || ':' || state || ':' || sync_state, ',') FROM pg_stat_replication), '')" 2>/dev/null) || r="not running"
  printf '  %-6s %s\n' "$n" "$r"
done
