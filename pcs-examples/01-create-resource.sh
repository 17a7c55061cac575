#!/bin/bash
# Create the PostgreSQL HA resources with pcs, on a running cluster:
#   - cluster properties (fencing on) and resource defaults
#   - fence devices (FENCING_SCRIPT, platform specific, e.g. fencing-ns.sh)
#   - pgsqld: promotable clone of $AGENT, notify=true
#   - pgsql-vip: IPaddr2, colocated with the Promoted role, started after
#     promote and stopped before demote
# All edits go to an offline copy of the CIB (pcs -f), pushed in one step.
#
# Run it once, as root, on any one node. Everything is a variable:
#   AGENT=ocf:rust:pgsqlms VIP=10.99.1.100 NODES="srv1 srv2 srv3" \
#   FENCING_SCRIPT=./fencing-ns.sh ./01-create-resource.sh
# The namespace test cluster (tests/cluster/up.sh) and a Vagrant setup run
# this same script with their own values.
set -euo pipefail

AGENT=${AGENT:-ocf:rust:pgsqlms}     # or ocf:heartbeat:pgsqlms (PAF)
RSC=${RSC:-pgsqld}
VIP=${VIP:?VIP is required (address of the primary service)}
VIP_CIDR=${VIP_CIDR:-24}
VIP_NIC=${VIP_NIC:-}                 # empty: IPaddr2 finds it from the subnet
PG_MAJOR=${PG_MAJOR:-15}
BINDIR=${BINDIR:-/usr/lib/postgresql/$PG_MAJOR/bin}
PGDATA=${PGDATA:-/var/lib/postgresql/$PG_MAJOR/main}
PGHOST=${PGHOST:-/run/postgresql}
PGPORT=${PGPORT:-5432}
RSC_PARAMS=${RSC_PARAMS:-}           # more agent parameters, e.g. "maxlag=16777216"

# Operation timeouts and intervals. Timeouts are PAF's documented ones;
# PAF's documented monitor intervals are 15s (Promoted) and 16s (Unpromoted):
# the two roles need different intervals.
START_TIMEOUT=${START_TIMEOUT:-60s}
STOP_TIMEOUT=${STOP_TIMEOUT:-60s}
PROMOTE_TIMEOUT=${PROMOTE_TIMEOUT:-30s}
DEMOTE_TIMEOUT=${DEMOTE_TIMEOUT:-120s}
NOTIFY_TIMEOUT=${NOTIFY_TIMEOUT:-60s}
MON_PROMOTED_INTERVAL=${MON_PROMOTED_INTERVAL:-15s}
MON_UNPROMOTED_INTERVAL=${MON_UNPROMOTED_INTERVAL:-16s}
MON_TIMEOUT=${MON_TIMEOUT:-10s}
VIP_MON_INTERVAL=${VIP_MON_INTERVAL:-10s}

# Cluster-wide settings.
STONITH_TIMEOUT=${STONITH_TIMEOUT:-60s}
MIGRATION_THRESHOLD=${MIGRATION_THRESHOLD:-5}
RESOURCE_STICKINESS=${RESOURCE_STICKINESS:-10}
FENCING_SCRIPT=${FENCING_SCRIPT:-}   # sourced with $CIB set; adds stonith devices

CIB=$(mktemp --suffix=.xml)
trap 'rm -f "$CIB"' EXIT
pcs cluster cib "$CIB"

pcs -f "$CIB" property set stonith-enabled=true stonith-timeout="$STONITH_TIMEOUT"
pcs -f "$CIB" resource defaults update \
  migration-threshold="$MIGRATION_THRESHOLD" resource-stickiness="$RESOURCE_STICKINESS"

if [ -n "$FENCING_SCRIPT" ]; then
  # shellcheck source=/dev/null
  . "$FENCING_SCRIPT"
else
  echo "warning: no FENCING_SCRIPT: add fence devices before relying on failover" >&2
fi

# pcs >= 0.11.5 can run the agent's validate-all before adding the resource
# (--agent-validation; opt-in in pcs 0.11 and 0.12). It runs on this node,
# with the parameters but without the clone's meta attributes:
# ocf:rust:pgsqlms then checks the parameters and this node's instance only.
# PAF 2.3 refuses that run (notify unset): never for PAF.
AGENT_VALIDATION=${AGENT_VALIDATION:-auto}
validation=()
if [ "$AGENT_VALIDATION" = auto ] && [ "$AGENT" = ocf:rust:pgsqlms ] &&
   pcs resource create --help 2>&1 | grep -q -- --agent-validation; then
  AGENT_VALIDATION=1
fi
[ "$AGENT_VALIDATION" = 1 ] && validation=(--agent-validation)

# shellcheck disable=SC2086 # RSC_PARAMS is a list of words
pcs -f "$CIB" resource create "$RSC" "$AGENT" "${validation[@]}" \
  bindir="$BINDIR" pgdata="$PGDATA" datadir="$PGDATA" pghost="$PGHOST" pgport="$PGPORT" \
  $RSC_PARAMS \
  op start timeout="$START_TIMEOUT" \
  op stop timeout="$STOP_TIMEOUT" \
  op promote timeout="$PROMOTE_TIMEOUT" \
  op demote timeout="$DEMOTE_TIMEOUT" \
  op notify timeout="$NOTIFY_TIMEOUT" \
  op monitor interval="$MON_PROMOTED_INTERVAL" timeout="$MON_TIMEOUT" role=Promoted \
  op monitor interval="$MON_UNPROMOTED_INTERVAL" timeout="$MON_TIMEOUT" role=Unpromoted \
  promotable notify=true

pcs -f "$CIB" resource create pgsql-vip ocf:heartbeat:IPaddr2 \
  ip="$VIP" cidr_netmask="$VIP_CIDR" ${VIP_NIC:+nic="$VIP_NIC"} \
  op monitor interval="$VIP_MON_INTERVAL"

pcs -f "$CIB" constraint colocation add pgsql-vip with Promoted "$RSC-clone" score=INFINITY
pcs -f "$CIB" constraint order promote "$RSC-clone" "then" start pgsql-vip \
  symmetrical=false kind=Mandatory
pcs -f "$CIB" constraint order demote "$RSC-clone" "then" stop pgsql-vip \
  symmetrical=false kind=Mandatory

# Push everything at once.
pcs cluster cib-push "$CIB" --config
echo "resources created: $RSC-clone ($AGENT), pgsql-vip ($VIP)"
