#!/bin/bash
# Build and start the namespace cluster from scratch (tears down any previous
# one first), with the agent $AGENT, then wait for one Promoted and N-1
# Unpromoted instances and print `crm_mon -1`.
#
#   tests/cluster/up.sh                           # default agent (see lib.sh)
#   AGENT=ocf:heartbeat:pgsqlms tests/cluster/up.sh   # PAF 2.3
#   PG_MAJOR=18 CLUSTER_SIZE=5 tests/cluster/up.sh
#   RESOURCES=0 tests/cluster/up.sh     # stop before creating the resources
#                                       # (run pcs-examples/ by hand, see README)
#
# Steps: network (net.sh) -> node disks (directories bind-mounted by
# node-init.sh, seed CIB) -> hypervisor -> boot nodes without the cluster
# stack -> inside each node, the provisioning scripts the Vagrant VMs run
# (vagrant/provision): corosync.sh (corosync.conf, authkey, /etc/hosts), then
# postgresql.sh: initdb on the first node, pg_basebackup on the others, one
# clean start/stop so every instance is cleanly shut down -> start corosync +
# pacemaker everywhere -> pcs-examples/01-create-resource.sh on the first node.
set -euo pipefail
PGSQLMS_CLUSTER_NEW=1    # settings from the environment and defaults only
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
need_root
unset PGSQLMS_CLUSTER_NEW

t0=$SECONDS
FIRST=${NODES%% *}

# ---- checks -----------------------------------------------------------------
agent_path=/usr/lib/ocf/resource.d/$(echo "$AGENT" | cut -d: -f2)/$(echo "$AGENT" | cut -d: -f3)
[ -x "$agent_path" ] || die "agent $AGENT not installed ($agent_path)"
if [ -n "$NODE_ROOTFS" ]; then   # DEBIAN=13: nodes run the trixie rootfs
  command -v mmdebstrap >/dev/null || die "mmdebstrap not installed (tests/setup.sh)"
else
  [ -x "$PG_BINDIR/postgres" ] || die "no PostgreSQL binaries in $PG_BINDIR"
fi
for t in corosync pacemakerd pcs cibadmin crm_mon python3 tc; do
  command -v "$t" >/dev/null || die "$t not installed (tests/setup.sh)"
done
[ -n "$(cgroup2_mount)" ] || die "no cgroup v2 hierarchy mounted"

# ---- clean slate ------------------------------------------------------------
"$HARNESS_DIR/down.sh"
if [ -n "$NODE_ROOTFS" ]; then
  # Built once and cached (rebuilt when rootfs.sh changes); the cluster is
  # down now, so an out-of-date one can be replaced.
  "$HARNESS_DIR/rootfs.sh" build >/dev/null || die "cannot build the Debian $DEBIAN rootfs"
  [ -x "$NODE_ROOTFS$PG_BINDIR/postgres" ] || [ -x "$PG_BINDIR/postgres" ] ||
    die "no PostgreSQL binaries in $PG_BINDIR (rootfs $NODE_ROOTFS)"
fi
mkdir -p "$NODES_DIR" "$CG_ROOT"
chmod 755 "$STATE_DIR"

# Save the settings for the helpers (on.sh, power.sh, fence_ns...).
{
  echo "# written by up.sh $(date '+%F %T')"
  for v in DEBIAN CLUSTER_NAME NODES NET_PREFIX NET_CIDR HOST_ADDR VIP NODE_ADDR_BASE \
           AGENT PG_MAJOR PG_BINDIR PGPORT PGDATA_NODE PGSOCKDIR REPL_PASSWORD \
           APP_USER APP_PASSWORD APP_DB COROSYNC_TOKEN COROSYNC_TOKEN_COEFFICIENT DC_DEADTIME \
           RECHECK_INTERVAL STONITH_TIMEOUT MON_PROMOTED_INTERVAL \
           MON_UNPROMOTED_INTERVAL SBIN_EXTRA; do
    printf '%s=%q\n' "$v" "${!v}"
  done
} > "$STATE_DIR/cluster.env"

# ---- network ----------------------------------------------------------------
log "network: bridge $BRIDGE ($HOST_ADDR/$NET_CIDR), nodes: $NODES"
"$HARNESS_DIR/net.sh" create

# ---- node disks -------------------------------------------------------------
# What node-init.sh bind-mounts; their content comes from vagrant/provision
# once the nodes are up.
cib_seed=$STATE_DIR/cib-seed.xml
cibadmin --empty > "$cib_seed"
for prop in "dc-deadtime=$DC_DEADTIME" "cluster-recheck-interval=$RECHECK_INTERVAL"; do
  CIB_file=$cib_seed crm_attribute --type crm_config --name "${prop%%=*}" \
    --update "${prop#*=}" >/dev/null
done

for n in $NODES; do
  nd=$(node_dir "$n")
  mkdir -p "$nd"
  # /etc/corosync (corosync.sh writes corosync.conf and authkey into it)
  cp -a "$NODE_ROOTFS/etc/corosync" "$nd/etc-corosync"
  # /var/lib/corosync, /var/lib/pacemaker (with the seed CIB)
  install -d -m 0755 "$nd/var-lib-corosync"
  cp -a "$NODE_ROOTFS/var/lib/pacemaker" "$nd/var-lib-pacemaker"
  find "$nd/var-lib-pacemaker" -mindepth 2 -delete
  install -m 0600 -o hacluster -g haclient "$cib_seed" "$nd/var-lib-pacemaker/cib/cib.xml"
  # /var/log
  install -d -m 0755 "$nd/var-log"
  install -d -m 0770 -o hacluster -g haclient "$nd/var-log/pacemaker" "$nd/var-log/pacemaker/bundles"
  install -d -m 0755 "$nd/var-log/corosync"
  install -d -m 1775 -o root -g postgres "$nd/var-log/postgresql"
  # /var/lib/postgresql: the postgres user's home (.pgpass: postgresql.sh)
  # and the data directory
  install -d -m 0755 -o postgres -g postgres "$nd/var-lib-postgresql" \
    "$nd/var-lib-postgresql/$PG_MAJOR"
  # /etc/hosts of a fresh machine (a bind-mounted file: it must exist before
  # boot); corosync.sh adds the nodes and the VIP.
  echo "127.0.0.1 localhost" > "$nd/etc-hosts"
  echo 0 > "$nd/autostart"           # no cluster stack until PostgreSQL is ready
done

# ---- hypervisor (power controller for fence_ns) -----------------------------
mkdir -p "$CG_ROOT/hypervisor"
# shellcheck disable=SC2016,SC2086 # $$ and "$@" are the child's; one argument per node
setsid -f env -i PATH="$HOST_PATH" LANG=C.UTF-8 PGSQLMS_CLUSTER_STATE="$STATE_DIR" \
  bash -c 'echo $$ > "$0/cgroup.procs" && exec /usr/bin/python3 "$@"' \
  "$CG_ROOT/hypervisor" "$HARNESS_DIR/hypervisor.py" "$HV_SOCK" \
  "$HARNESS_DIR/power.sh" $NODES </dev/null >>"$STATE_DIR/hypervisor.log" 2>&1
wait_for 10 "hypervisor socket" test -S "$HV_SOCK"

# ---- boot -------------------------------------------------------------------
for n in $NODES; do "$HARNESS_DIR/power.sh" on "$n"; done
log "nodes booted ($((SECONDS - t0))s)"

# ---- node configuration (vagrant/provision/corosync.sh) ----------------------
# One authkey for every node.
authkey_b64=$(head -c 256 /dev/urandom | base64 -w0)
for n in $NODES; do
  provision_on "$n" corosync.sh -- COROSYNC_AUTHKEY_B64="$authkey_b64"
done
unset authkey_b64

# ---- PostgreSQL (vagrant/provision/postgresql.sh) ----------------------------
# The primary is left running; standbys are cloned from it and started: their
# primary_conninfo points at the VIP, which does not exist yet, so for this
# first start they stream from the first node's own address.
provision_on "$FIRST" postgresql.sh primary >/dev/null
for n in $NODES; do
  [ "$n" = "$FIRST" ] && continue
  provision_on "$n" postgresql.sh standby >/dev/null
  provision_on "$n" postgresql.sh start
done
nstandbys=$(($(echo "$NODES" | wc -w) - 1))
provision_on "$FIRST" postgresql.sh wait-standbys "$nstandbys" 60 || die "standbys do not stream"
# Stop the primary first: its shutdown checkpoint reaches every standby, so
# all instances end cleanly shut down at the same LSN.
provision_on "$FIRST" postgresql.sh stop
for n in $NODES; do [ "$n" = "$FIRST" ] || provision_on "$n" postgresql.sh stop; done
log "PostgreSQL $PG_MAJOR ready on $NODES ($((SECONDS - t0))s)"

# ---- cluster stack ----------------------------------------------------------
for n in $NODES; do echo 1 > "$(node_dir "$n")/autostart"; done
pids=()
for n in $NODES; do
  on_node "$n" "$HARNESS_DIR/node-services.sh" start & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
has_dc() { on_node "$FIRST" crm_mon -1 2>/dev/null | grep -q 'Current DC: .* partition with quorum'; }
wait_for 90 "a DC with quorum" has_dc || die "no DC elected"
log "cluster stack up, DC elected ($((SECONDS - t0))s)"

# ---- resources --------------------------------------------------------------
if [ "${RESOURCES:-1}" = 0 ]; then
  log "RESOURCES=0: cluster up without resources ($((SECONDS - t0))s)"
  on_node "$FIRST" crm_mon -1
  exit 0
fi
on_node "$FIRST" env \
  AGENT="$AGENT" NODES="$NODES" VIP="$VIP" VIP_CIDR="$NET_CIDR" \
  PGDATA="$PGDATA_NODE" BINDIR="$PG_BINDIR" PGHOST="$PGSOCKDIR" PGPORT="$PGPORT" \
  MON_PROMOTED_INTERVAL="$MON_PROMOTED_INTERVAL" \
  MON_UNPROMOTED_INTERVAL="$MON_UNPROMOTED_INTERVAL" \
  STONITH_TIMEOUT="$STONITH_TIMEOUT" \
  FENCING_SCRIPT="$REPO_DIR/pcs-examples/fencing-ns.sh" \
  HYPERVISOR_SOCKET="$HV_SOCK" \
  bash "$REPO_DIR/pcs-examples/01-create-resource.sh"

"$HARNESS_DIR/wait-healthy.sh" 180 || { on_node "$FIRST" crm_mon -1; die "cluster not healthy"; }
log "cluster healthy ($((SECONDS - t0))s)"
on_node "$FIRST" crm_mon -1
