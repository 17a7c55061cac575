#!/usr/bin/env bash
# Cost of each OCF action of ocf:rust:pgsqlms (this project, "ours") side by
# side with PAF 2.3 (ocf:heartbeat:pgsqlms), in the same run, on the same
# three PostgreSQL instances. A benchmark, not a test: nothing is asserted
# about the figures, but every measured action must return the expected OCF
# code (0, 7 or 8) or the run stops: a failing action measures nothing.
#
#   sudo bash bench/actions.sh
#
# What it does (bench/README.md has the details):
#   1. builds the measuring runner (bench/runner, its own small crate);
#   2. sets up under $BENCH_DIR (/tmp/pgsqlms-bench) a PostgreSQL primary
#      (srv1) and two streaming standbys (srv2, srv3), run by user postgres,
#      unix sockets only, one port each; standbys stream from a "VIP": a
#      socket symlink $BENCH_DIR/vip/.s.PGSQL.<port> pointing at the
#      primary's socket, moved at each switchover as Pacemaker moves an IP;
#   3. runs each action with both agents, alternating them, with the same
#      OCF environment and the same fake Pacemaker tools (tests/fakes plus
#      bench/fakes/crm_master and crm_resource, which PAF needs), one fake
#      store per agent; timed runs first, then one run under strace to count
#      the processes created;
#   4. prints the tables (bench-run report) and saves them with the raw
#      figures in bench/results/;
#   5. stops every instance it started (by pid file) and removes $BENCH_DIR.
#
# Settings (environment):
#   BENCH_RUNS=30     timed runs per agent of each read-only action
#   BENCH_CYCLES=8    timed runs per agent of start, stop, demote, promote
#   BENCH_DIR=/tmp/pgsqlms-bench     (must contain "pgsqlms-bench": removed)
#   BENCH_PG_BINDIR=/usr/lib/postgresql/15/bin
#   BENCH_PORT_BASE=5440  "VIP" port; srvN listens on BENCH_PORT_BASE+N
#   BENCH_KEEP=1      keep $BENCH_DIR (agent and PostgreSQL logs) instead of removing it
#   OURS_RA, PAF_RA   agent paths (default: the installed ones)
set -euo pipefail

REPO=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
B=${BENCH_DIR:-/tmp/pgsqlms-bench}
RUNS=${BENCH_RUNS:-30}
CYCLES=${BENCH_CYCLES:-8}
BINDIR=${BENCH_PG_BINDIR:-/usr/lib/postgresql/15/bin}
PORT_BASE=${BENCH_PORT_BASE:-5440}
OURS_RA=${OURS_RA:-/usr/lib/ocf/resource.d/rust/pgsqlms}
PAF_RA=${PAF_RA:-/usr/lib/ocf/resource.d/heartbeat/pgsqlms}
NODES=(srv1 srv2 srv3)
RUNNER=$REPO/bench/runner/target/release/bench-run
RESULTS=$B/results.tsv
T0=$SECONDS
cd /   # as pacemaker-execd; and postgres may not enter the caller's directory

log() { printf '%s [%3ds] %s\n' "$(date +%T)" $((SECONDS - T0)) "$*" >&2; }
die() { echo "actions.sh: $*" >&2; exit 1; }

case "$B" in
  /?*pgsqlms-bench*) ;;
  *) die "BENCH_DIR must be an absolute path containing 'pgsqlms-bench' (it is removed)" ;;
esac
[ "$(id -u)" = 0 ] || die "run as root (the agents run as root, PostgreSQL as postgres)"
[ -x "$OURS_RA" ] || die "$OURS_RA missing: make install"
[ -x "$PAF_RA" ] || die "$PAF_RA missing: apt-get install resource-agents-paf (tests/setup.sh)"
for b in postgres pg_ctl initdb pg_basebackup psql pg_isready pg_controldata pg_waldump; do
  [ -x "$BINDIR/$b" ] || die "$BINDIR/$b missing (PostgreSQL 15: apt-get install postgresql-15)"
done
command -v strace >/dev/null || die "strace missing: apt-get install strace"
id postgres >/dev/null 2>&1 || die "no user postgres"

# ---- the runner -------------------------------------------------------------
log "building the runner (bench/runner)"
if ! cargo build --release --locked --offline -q --manifest-path "$REPO/bench/runner/Cargo.toml" 2>/dev/null; then
  cargo build --release --locked -q --manifest-path "$REPO/bench/runner/Cargo.toml"
fi

# ---- instances --------------------------------------------------------------
port() { echo $((PORT_BASE + ${1#srv})); }
as_pg() { runuser -u postgres -- "$@"; }
psql_on() { as_pg "$BINDIR/psql" -h "$B/sock" -p "$(port "$1")" -d postgres -XAtq "${@:2}"; }

# Stop what a run (this one or an interrupted one) left: pg_ctl by data
# directory, then the postmaster's pid from its pid file if it survived.
stop_instances() {
  local n d pid
  for n in "${NODES[@]}"; do
    d=$B/$n
    [ -f "$d/postmaster.pid" ] || continue
    as_pg "$BINDIR/pg_ctl" -D "$d" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    pid=$(head -1 "$d/postmaster.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$d" ]; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_instances
  if [ "${BENCH_KEEP:-0}" = 1 ]; then
    log "kept $B"
  else
    rm -rf "$B"
  fi
  exit "$rc"
}

wait_for() {   # wait_for SECONDS WHAT COMMAND...
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "timeout waiting for $what"
    sleep 0.1
  done
}
streaming() {  # streaming PRIMARY: both other nodes stream from it
  [ "$(psql_on "$1" -c "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" = 2 ]
}
in_recovery() {  # in_recovery NODE t|f: the instance answers, as a standby (t) or a primary (f)
  [ "$(psql_on "$1" -c "SELECT pg_is_in_recovery()" 2>/dev/null)" = "$2" ] ||
    die "$1 is not running as a $([ "$2" = t ] && echo standby || echo primary) after an agent said so"
}
stopped() {
  [ ! -e "$B/$1/postmaster.pid" ] || die "$1 still has a postmaster.pid after a successful stop"
}
asks_for_wal() {  # a standby whose startup process has requested streaming
  [ "$(psql_on "$1" -c "SELECT pg_last_wal_receive_lsn() IS NOT NULL")" = t ]
}
vip_to() {     # point the "VIP" socket at NODE's socket (empty: remove it)
  local link=$B/vip/.s.PGSQL.$PORT_BASE
  if [ -z "${1:-}" ]; then rm -f "$link"; return; fi
  ln -s "$B/sock/.s.PGSQL.$(port "$1")" "$B/vip/.tmp" && mv -T "$B/vip/.tmp" "$link"
}

stop_instances
rm -rf "$B"
trap cleanup EXIT
trap 'exit 130' INT TERM
install -d -m 0755 "$B" "$B/sbin" "$B/log" "$B/trace" "$B/rsctmp"
install -d -m 0755 -o postgres -g postgres "$B/sock" "$B/vip" "$B/pglog"
install -d -m 0700 -o postgres -g postgres "$B/srv1" "$B/srv2" "$B/srv3"

log "PostgreSQL $("$BINDIR/postgres" -V | awk '{print $3}'): primary srv1, standbys srv2 srv3 (ports $(port srv1)-$(port srv3), sockets in $B/sock)"
as_pg "$BINDIR/initdb" -D "$B/srv1" -U postgres --auth-local=peer --auth-host=reject -N >/dev/null
as_pg tee -a "$B/srv1/postgresql.conf" >/dev/null <<EOF

# ---- bench/actions.sh ----
listen_addresses = ''
unix_socket_directories = '$B/sock'
max_connections = 20
shared_buffers = 16MB
wal_level = replica
max_wal_senders = 10
wal_keep_size = 128MB
hot_standby = on
recovery_target_timeline = 'latest'
wal_retrieve_retry_interval = 200ms
wal_receiver_status_interval = 1s
logging_collector = on
log_directory = 'log'
log_filename = 'postgresql.log'
log_line_prefix = '%m [%p] '
# per node: port, cluster_name, primary_conninfo (application_name=<node>)
include_if_exists = 'local.conf'
EOF
local_conf() {
  as_pg tee "$B/$1/local.conf" >/dev/null <<EOF
port = $(port "$1")
cluster_name = '$1'
primary_conninfo = 'host=$B/vip port=$PORT_BASE user=postgres application_name=$1'
EOF
}
pg_start() { as_pg "$BINDIR/pg_ctl" -D "$B/$1" -w -t 60 -l "$B/pglog/$1.pg_ctl.log" start >/dev/null; }
local_conf srv1
pg_start srv1
vip_to srv1
for n in srv2 srv3; do
  as_pg "$BINDIR/pg_basebackup" -h "$B/sock" -p "$(port srv1)" -U postgres -D "$B/$n" -X stream -c fast -N
  local_conf "$n"
  as_pg touch "$B/$n/standby.signal"
  pg_start "$n"
done
wait_for 30 "srv2 and srv3 streaming from srv1" streaming srv1

# ---- fake Pacemaker tools, the same for both agents --------------------------
# The stand-ins for Pacemaker's C tools run the fake as is (sourced), and at
# exit append their CPU time (bash `times`: own and children's user and sys)
# to the store's cpu.log: the report subtracts it to show the agents' own
# CPU. crm_master is a shell script in Pacemaker too: it is not subtracted.
fake_wrapper() {  # TOOL FAKE
  {
    echo '#!/usr/bin/env bash'
    echo "# $2 as is, recording its CPU time (generated by bench/actions.sh)"
    # shellcheck disable=SC2016 # written as is into the wrapper
    echo 'trap '"'"'times >> "$PGSQLMS_FAKE_DIR/cpu.log"'"'"' EXIT'
    printf '. %q\n' "$2"
  } > "$B/sbin/$1"
  chmod 0755 "$B/sbin/$1"
}
for t in attrd_updater cibadmin crm_attribute crm_node; do fake_wrapper "$t" "$REPO/tests/fakes/$t"; done
fake_wrapper crm_resource "$REPO/bench/fakes/crm_resource"
ln -s "$REPO/tests/fakes/_fakelib.sh" "$B/sbin/_fakelib.sh"
ln -s "$REPO/bench/fakes/crm_master" "$B/sbin/crm_master"
for a in ours paf; do
  install -d "$B/fake-$a/meta/pgsqld"
  printf '%s\n' "${NODES[@]}" > "$B/fake-$a/nodes"
  echo true > "$B/fake-$a/meta/pgsqld/notify"
  : > "$B/fake-$a/calls.log"
  : > "$B/fake-$a/cpu.log"
done

# ---- running an agent -------------------------------------------------------
agent_path() { if [ "$1" = ours ]; then echo "$OURS_RA"; else echo "$PAF_RA"; fi; }

# run_agent AGENT LABEL EXPECT NODE ACTION INTERVAL_MS TIMEOUT_MS MODE [VAR=VALUE]...
#   MODE: time:RUNS:WARMUP (timed runs) or forks (one run under strace)
# The environment is what pacemaker-execd 2.1.5 gives a promotable clone
# instance, plus HA_SBIN_DIR/PATH pointing at the fakes and PGSQLMS_FAKE_DIR.
run_agent() {
  local agent=$1 label=$2 expect=$3 node=$4 action=$5 interval=$6 timeout=$7 mode=$8
  shift 8
  local i=${node#srv} fake=$B/fake-$agent runs warm provider=rust
  if [ "$agent" = paf ]; then provider=heartbeat; fi
  # PAF asks `crm_node -n` (through PATH) for the node name, ours reads
  # OCF_RESKEY_CRM_meta_on_node: the fake answers both with this node.
  echo "$node" > "$fake/local_node"
  local -a env=(
    PATH="$B/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
    OCF_ROOT=/usr/lib/ocf OCF_RA_VERSION_MAJOR=1 OCF_RA_VERSION_MINOR=1
    OCF_RESOURCE_INSTANCE=pgsqld OCF_RESOURCE_TYPE=pgsqlms OCF_RESOURCE_PROVIDER="$provider"
    OCF_RESKEY_crm_feature_set=3.16.2
    OCF_RESKEY_CRM_meta_name="$action"
    OCF_RESKEY_CRM_meta_on_node="$node" OCF_RESKEY_CRM_meta_on_node_uuid="$i"
    OCF_RESKEY_CRM_meta_timeout="$timeout" OCF_RESKEY_CRM_meta_interval="$interval"
    OCF_RESKEY_CRM_meta_notify=true
    OCF_RESKEY_CRM_meta_clone=$((i - 1)) OCF_RESKEY_CRM_meta_clone_max=3
    OCF_RESKEY_CRM_meta_clone_node_max=1 OCF_RESKEY_CRM_meta_globally_unique=false
    OCF_RESKEY_CRM_meta_promotable=true
    OCF_RESKEY_CRM_meta_promoted_max=1 OCF_RESKEY_CRM_meta_promoted_node_max=1
    OCF_RESKEY_CRM_meta_master_max=1 OCF_RESKEY_CRM_meta_master_node_max=1
    OCF_RESKEY_bindir="$BINDIR" OCF_RESKEY_pgdata="$B/$node"
    OCF_RESKEY_pghost="$B/sock" OCF_RESKEY_pgport="$(port "$node")"
    OCF_RESKEY_system_user=postgres
    HA_SBIN_DIR="$B/sbin" HA_LOGFACILITY=none HA_LOGFILE="$B/log/agent-$agent.log" HA_debug=0
    HA_RSCTMP="$B/rsctmp"
    PGSQLMS_FAKE_DIR="$fake"
    "$@"
  )
  local -a opts=(--label "$label" --agent "$agent" --results "$RESULTS" --expect "$expect"
    --log "$B/log/run-$agent.log" --timeout-ms $((timeout + 15000)) --count-lines "$fake/calls.log" --fake-cpu "$fake/cpu.log")
  case "$mode" in
    forks) opts+=(--forks --server-exe "$BINDIR/postgres" --tool-dir "$B/sbin" --trace-dir "$B/trace") ;;
    time:*) IFS=: read -r _ runs warm <<<"$mode"; opts+=(--runs "$runs" --warmup "$warm") ;;
    *) die "run_agent: bad mode $mode" ;;
  esac
  printf '== %s %s %s on %s (%s)\n' "$(date +%T.%3N)" "$agent" "$action" "$node" "$label" >> "$B/log/run-$agent.log"
  env -i "${env[@]}" "$RUNNER" run "${opts[@]}" -- "$(agent_path "$agent")" "$action"
}

# Read-only action: 2 unrecorded warm-up runs per agent, RUNS timed runs per
# agent alternating the agents (ABBA...), then one traced run per agent.
bench_repeat() {   # LABEL EXPECT NODE ACTION INTERVAL_MS TIMEOUT_MS
  local label=$1 expect=$2 node=$3 action=$4 interval=$5 timeout=$6 k a
  local -a order
  log "$label: $RUNS runs per agent"
  for a in ours paf; do
    run_agent "$a" "$label" "$expect" "$node" "$action" "$interval" "$timeout" time:0:2
  done
  for ((k = 0; k < RUNS; k++)); do
    if ((k % 2 == 0)); then order=(ours paf); else order=(paf ours); fi
    for a in "${order[@]}"; do
      run_agent "$a" "$label" "$expect" "$node" "$action" "$interval" "$timeout" time:1:0
    done
  done
  for a in ours paf; do
    run_agent "$a" "$label" "$expect" "$node" "$action" "$interval" "$timeout" forks
  done
}

# ---- 1. read-only actions, srv1 primary, srv2 and srv3 streaming -------------
bench_repeat "meta-data" 0 srv1 meta-data 0 5000
bench_repeat "validate-all (standby)" 0 srv2 validate-all 0 5000
bench_repeat "monitor, standby (16s)" 0 srv2 monitor 16000 10000
bench_repeat "monitor, primary + 2 standbys (15s)" 8 srv1 monitor 15000 10000
streaming srv1 || die "srv2 and srv3 no longer stream from srv1"

# ---- 2. probe, start, stop on srv3 ------------------------------------------
as_pg "$BINDIR/pg_ctl" -D "$B/srv3" -m fast -w stop >/dev/null
bench_repeat "probe, stopped instance" 7 srv3 monitor 0 10000
log "start and stop of standby srv3: $CYCLES timed cycles per agent (+1 traced)"
for ((c = 0; c <= CYCLES; c++)); do
  if ((c == 0)); then mode=forks; else mode=time:1:0; fi
  if ((c % 2 == 0)); then order=(ours paf); else order=(paf ours); fi
  for a in "${order[@]}"; do
    run_agent "$a" "start (standby)" 0 srv3 start 0 60000 "$mode"
    in_recovery srv3 t
    run_agent "$a" "stop (standby)" 0 srv3 stop 0 60000 "$mode"
    stopped srv3
  done
done
pg_start srv3
wait_for 30 "srv2 and srv3 streaming from srv1" streaming srv1

# ---- 3. switchovers: demote, notifications, promote --------------------------
# As Pacemaker runs a switchover P -> S (T the third node): the VIP stops,
# demote P, pre-promote notification on every node, promote S, the VIP
# starts on S, post-promote notification on every node. Roles rotate
# srv1 -> srv2 -> srv3 -> srv1; agents alternate from one switchover to the
# next, each agent's first one traced.
rsc_of() { local r="" n; for n in "$@"; do r+="${r:+ }pgsqld:$((${n#srv} - 1))"; done; echo "$r"; }
notify_env() {  # TYPE OP PROMOTE DEMOTE PROMOTED "UNPROMOTED..." "ACTIVE..."
  local -A l=([start]="" [stop]="" [promote]=$3 [demote]=$4 [promoted]=$5 [master]=$5
              [unpromoted]=$6 [slave]=$6 [active]=$7)
  local k
  echo "OCF_RESKEY_CRM_meta_notify_type=$1"
  echo "OCF_RESKEY_CRM_meta_notify_operation=$2"
  for k in "${!l[@]}"; do
    echo "OCF_RESKEY_CRM_meta_notify_${k}_uname=${l[$k]}"
    # shellcheck disable=SC2086 # a list of node names
    echo "OCF_RESKEY_CRM_meta_notify_${k}_resource=$(rsc_of ${l[$k]})"
  done
  echo "OCF_RESKEY_CRM_meta_notify_inactive_resource="
  echo "OCF_RESKEY_CRM_meta_notify_available_uname=${NODES[*]}"
  echo "OCF_RESKEY_CRM_meta_notify_all_uname=${NODES[*]}"
  echo "OCF_RESKEY_CRM_meta_notify_all_hosts=${NODES[*]}"
}
next_node() { case "$1" in srv1) echo srv2 ;; srv2) echo srv3 ;; srv3) echo srv1 ;; esac; }

primary=srv1
switchover() {  # AGENT MODE
  local a=$1 mode=$2 P=$primary S T n label
  S=$(next_node "$P"); T=$(next_node "$S")
  wait_for 30 "$S and $T streaming from $P" streaming "$P"
  vip_to ""
  run_agent "$a" "demote (primary)" 0 "$P" demote 0 120000 "$mode"
  in_recovery "$P" t
  # What the transition's post-demote notification leaves time for: the
  # demoted node's startup process asks for WAL (PAF's pre-promote needs
  # pg_last_wal_receive_lsn() to be set there).
  wait_for 10 "$P to ask for WAL" asks_for_wal "$P"
  local -a pre post
  mapfile -t pre < <(notify_env pre promote "$S" "$P" "$P" "$S $T" "${NODES[*]}")
  mapfile -t post < <(notify_env post promote "$S" "$P" "$P" "$S $T" "${NODES[*]}")
  for n in "$P" "$T" "$S"; do
    label="notify pre-promote, other node"
    if [ "$n" = "$S" ]; then label="notify pre-promote, switchover target"; fi
    run_agent "$a" "$label" 0 "$n" notify 0 60000 "$mode" "${pre[@]}"
  done
  run_agent "$a" "promote (switchover target)" 0 "$S" promote 0 30000 "$mode"
  in_recovery "$S" f
  vip_to "$S"
  for n in "$P" "$T" "$S"; do
    run_agent "$a" "notify post-promote" 0 "$n" notify 0 60000 "$mode" "${post[@]}"
  done
  primary=$S
  wait_for 30 "$P and $T streaming from $S" streaming "$S"
  # Both agents' promotion scores follow the new primary (not reported).
  for n in ours paf; do run_agent "$n" "_monitor after switchover" 8 "$S" monitor 15000 10000 time:1:0; done
}
log "switchovers: $CYCLES timed per agent (+1 traced)"
for ((c = 0; c < 2 * (CYCLES + 1); c++)); do
  if ((c % 2 == 0)); then a=ours; else a=paf; fi
  if ((c < 2)); then mode=forks; else mode=time:1:0; fi
  switchover "$a" "$mode"
done

# ---- report -----------------------------------------------------------------
stamp=$(date +%Y%m%d-%H%M%S)
mkdir -p "$REPO/bench/results"
report=$REPO/bench/results/actions-$stamp.md
{
  echo "# pgsqlms action benchmark, $(date '+%F %T')"
  echo
  echo "- host: $(uname -n), $(uname -r), $(nproc) CPU ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo))"
  echo "- PostgreSQL $("$BINDIR/postgres" -V | awk '{print $3}') ($BINDIR): primary + 2 streaming standbys on unix sockets"
  echo "- ours: $OURS_RA ($("$OURS_RA" --version 2>/dev/null || echo '?'))"
  echo "- PAF: $PAF_RA ($(dpkg-query -W -f='resource-agents-paf ${Version}' resource-agents-paf 2>/dev/null || echo '?'))"
  echo "- Pacemaker tools were FAKES for both agents: shell scripts over a directory store"
  echo "  (tests/fakes: cibadmin crm_attribute attrd_updater crm_node; bench/fakes: crm_master"
  echo "  as Pacemaker's own wrapper script, crm_resource). Their cost is included in wall/CPU."
  echo "- runs per agent: $RUNS (read-only actions), $CYCLES (start, stop, switchovers); agents alternate"
  echo "- wall: fork to wait4; CPU: user+sys of the agent and every descendant it waited for"
  echo "  (not the postmaster pg_ctl starts, not the server backends answering its queries);"
  echo "  RSS: ru_maxrss, the largest single process of that tree; forks: processes created"
  echo "  by the agent's tree in one traced run, not counting PostgreSQL server children nor"
  echo "  processes forked inside the fake tools (the real tools are C programs)."
  echo "- CPU w/o fakes: CPU minus what the fake stand-ins of Pacemaker's C tools spent"
  echo "  (bash \`times\` of each invocation); crm_master, a script in Pacemaker too, stays in."
  echo "- every timed and traced run returned the expected code (rc column), and the outcome"
  echo "  was checked (standby after start and demote, primary after promote, stopped after stop)."
  echo
  "$RUNNER" report "$RESULTS" "meta-data" "validate-all (standby)" "probe, stopped instance" \
    "monitor, standby (16s)" "monitor, primary + 2 standbys (15s)" "start (standby)" \
    "stop (standby)" "promote (switchover target)" "demote (primary)"
} > "$report"
cp "$RESULTS" "$REPO/bench/results/actions-$stamp.tsv"
cat "$report"
echo
log "done; report saved as ${report#"$REPO"/} (raw figures: .tsv next to it)"
