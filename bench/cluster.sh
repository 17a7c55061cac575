#!/usr/bin/env bash
# Cluster-level recovery times of ocf:rust:pgsqlms ("ours") and PAF 2.3
# (ocf:heartbeat:pgsqlms), on the 3-node namespace cluster of tests/cluster
# (real Corosync 3, Pacemaker 2.1, fencing, PostgreSQL 15). A benchmark, not
# a test: it measures and reports, it asserts nothing about the figures.
#
#   sudo bash bench/cluster.sh [--replace] [CONFIG]...
#
# CONFIG is any of (default: all three, in this order)
#   paf          AGENT=ocf:heartbeat:pgsqlms, the harness's settings
#   ours         AGENT=ocf:rust:pgsqlms, the very same settings
#   recommended  ours with the settings of pcs-examples/recommended.env:
#                shorter monitor intervals, which its cheap monitor
#                affords, and Corosync's token without the per-node
#                coefficient
# Every config builds a fresh cluster with tests/cluster/up.sh (the
# harness's Pacemaker and Corosync settings, pcs-examples/01-create-resource.sh)
# and runs, BENCH_REPEAT (3) times each:
#   kill       kill -9 of the primary's postmaster: time until a commit
#              through the VIP succeeds again
#   switchover `pcs resource move-with-constraint pgsqld-clone <standby>
#              --promoted`: time from the command until a commit through the
#              VIP lands on the new primary; then `pcs resource clear`
#   nodeloss   power-off of the primary's node (cable unplugged, every
#              process SIGKILLed): time until a commit through the VIP
#              succeeds again; the lost node, fenced, then comes back
#              without its cluster stack, is rebuilt as a standby with
#              pg_basebackup and rejoins
#   hung       the primary's node hangs (its cgroup frozen: every process,
#              the cluster stack too, as a stuck kernel), longer than the
#              monitor timeout: time until a commit through the VIP
#              succeeds on another node; the node, fenced, is rebuilt
#              as for nodeloss
#   create     resource creation on instances cleanly stopped (the primary
#              first, then the standbys, as up.sh leaves them), on a
#              cluster stack restarted without the resources (no score,
#              no attribute left): time from the CIB push of
#              pcs-examples/01-create-resource.sh's configuration until a
#              commit through the VIP succeeds
#   poweron    every node powered off at once (writes running), then all
#              powered on: time from the power-on until a commit through
#              the VIP succeeds
#   hungpg     (not in the default list) every process of the primary's
#              PostgreSQL SIGSTOPped, the node healthy: time until a
#              commit through the VIP succeeds on another node
# "Writable" is measured from the host by a client that starts a commit
# attempt through the VIP every 0.1 s (a new psql connection each, as app
# user, 1 s timeout per attempt, several in flight while the service is
# down) and logs the start and end time of each attempt and the node that
# committed it (cluster_name). "Writable after an event at T" = the end of
# the first successful commit whose attempt started at or after T. Commits use the
# cluster's settings: synchronous_commit=on with
# synchronous_standby_names='ANY 1 (...)', so after a failover a commit also
# waits for a standby to reconnect to the new primary, as the application's
# would. The event's timestamp is taken on the same clock (the nodes share
# the host's kernel).
#
# It replaces any running namespace cluster: it refuses to start while one
# is up, unless --replace. It removes its clusters at the end (down.sh)
# unless BENCH_KEEP_CLUSTER=1. Results: bench/results/cluster-<date>/
# (report.md, results.tsv, the writers' logs, up.sh logs).
#
# Before the scenarios, each config also measures the monitor action with
# the real Pacemaker tools, inside the nodes (bench/runner: wall, CPU with
# children, forks), on the primary and on a standby: MONITOR_RUNS (20)
# timed runs each, plus one traced run for the process count.
#
# The primary's monitor is measured twice: with the cluster's synchronous
# replication (ANY 1) and with synchronous_standby_names emptied (ALTER
# SYSTEM, reload; reset afterwards), in alternating halves.
#
# DEBIAN=13 (tests/cluster/lib.sh): the nodes run the trixie rootfs
# (Pacemaker 3.0, pcs 0.12, PostgreSQL 17, resource-agents-paf 2.3.0-2);
# the client on the host uses the host's psql. Where a config cannot run
# (up.sh fails, a scenario fails), the report says how, in the table.
#
# Settings: BENCH_REPEAT=3, BENCH_SCENARIOS="kill switchover nodeloss hung
# create poweron", MONITOR_RUNS=20, NODELOSS_LIMIT=60, HUNG_LIMIT=120,
# CREATE_LIMIT=120, POWERON_LIMIT=180, HUNGPG_LIMIT=300 (seconds),
# WRITE_INTERVAL=0.1
# (seconds between commit attempts), WRITE_TIMEOUT=1 (seconds per attempt),
# and those of tests/cluster/lib.sh (taken from the environment or the
# harness's defaults, never from a previous cluster's cluster.env).
# shellcheck source-path=SCRIPTDIR disable=SC2016
set -euo pipefail

REPO=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
H=$REPO/tests/cluster
SELF=$(readlink -f "$0")

replace=0
configs=()
for a in "$@"; do
  case "$a" in
    --replace) replace=1 ;;
    paf|ours|recommended) configs+=("$a") ;;
    *) echo "usage: ${0##*/} [--replace] [paf] [ours] [recommended]" >&2; exit 2 ;;
  esac
done
[ "${#configs[@]}" -gt 0 ] || configs=(paf ours recommended)

if [ -z "${BENCH_CLUSTER_PHASE2:-}" ]; then
  # Phase 1: refuse to replace a running cluster unless told to, then
  # remove it, and start again with the caller's environment only: lib.sh
  # must not pick up the settings the previous cluster saved (cluster.env),
  # so every config below runs with the same ones (environment, else the
  # harness's defaults).
  (
    # shellcheck source=../tests/cluster/lib.sh
    . "$H/lib.sh"
    need_root
    for n in $NODES; do
      if node_is_on "$n" && [ "$replace" = 0 ]; then
        die "a namespace cluster is running (node $n is on): someone may be using it; pass --replace to tear it down"
      fi
    done
    "$H/down.sh"
  ) || exit 1
  # The command as given, with the settings that change what runs: the
  # report shows it.
  cmd="bash bench/cluster.sh"
  [ $# -eq 0 ] || cmd="$cmd $*"
  for v in MONITOR_RUNS BENCH_REPEAT BENCH_SCENARIOS PG_MAJOR DEBIAN; do
    [ -z "${!v:-}" ] || cmd="$v=${!v@Q} $cmd"
  done
  BENCH_CLUSTER_COMMAND="sudo $cmd" BENCH_CLUSTER_PHASE2=1 exec bash "$SELF" "$@"
fi

# shellcheck source=../tests/cluster/lib.sh
. "$H/lib.sh"
need_root
unset LC_ALL
export LC_NUMERIC=C   # $EPOCHREALTIME and awk: a dot as decimal separator

REPEAT=${BENCH_REPEAT:-3}
SCENARIOS=${BENCH_SCENARIOS:-kill switchover nodeloss hung create poweron}
MONITOR_RUNS=${MONITOR_RUNS:-20}
NODELOSS_LIMIT=${NODELOSS_LIMIT:-60}   # seconds; slower counts as failed
HUNG_LIMIT=${HUNG_LIMIT:-120}
HUNGPG_LIMIT=${HUNGPG_LIMIT:-300}
CREATE_LIMIT=${CREATE_LIMIT:-120}
POWERON_LIMIT=${POWERON_LIMIT:-180}
RUNNER=$REPO/bench/runner/target/release/bench-run
WRITE_TIMEOUT=${WRITE_TIMEOUT:-1}
WRITE_INTERVAL=${WRITE_INTERVAL:-0.1}
# The client runs on the host: its own psql (DEBIAN=13 nodes have
# PostgreSQL 17, the Debian 12 host 15; any libpq speaks to both).
PSQL=$PG_BINDIR/psql
if [ ! -x "$PSQL" ]; then
  PSQL=$(find /usr/lib/postgresql -path '*/bin/psql' 2>/dev/null | sort -V | tail -1)
fi
BASE_PROMOTED_INTERVAL=$MON_PROMOTED_INTERVAL
BASE_UNPROMOTED_INTERVAL=$MON_UNPROMOTED_INTERVAL
BASE_COROSYNC_TOKEN=$COROSYNC_TOKEN
BASE_COROSYNC_TOKEN_COEFFICIENT=${COROSYNC_TOKEN_COEFFICIENT:-650}

[ -x "$PSQL" ] || die "$PSQL missing"
if ! cargo build --release --locked --offline -q --manifest-path "$REPO/bench/runner/Cargo.toml" 2>/dev/null; then
  cargo build --release --locked -q --manifest-path "$REPO/bench/runner/Cargo.toml"
fi

OUT=$REPO/bench/results/cluster-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
RESULTS=$OUT/results.tsv
: > "$RESULTS"
say() { log "$*"; echo "$(date +%T) $*" >> "$OUT/progress.log"; }

writer_pid=""
stop_writer() {
  [ -n "$writer_pid" ] || return 0
  touch "$WSTOP"
  wait "$writer_pid" 2>/dev/null || true
  writer_pid=""
}
on_exit() {
  local rc=$?
  stop_writer
  if [ "${BENCH_KEEP_CLUSTER:-0}" != 1 ]; then "$H/down.sh" >/dev/null 2>&1 || true; fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# ---- helpers ----------------------------------------------------------------
CONN="host=$VIP port=$PGPORT dbname=$APP_DB user=$APP_USER connect_timeout=2 sslmode=disable application_name=bench-writer"
app_psql() { PGPASSWORD=$APP_PASSWORD "$PSQL" "$CONN" -XAtq -v ON_ERROR_STOP=1 "$@"; }

roles() { "$H/status.sh" --roles 2>/dev/null; }
primary_node() { roles | awk '$2 == "Promoted" { print $1; exit }'; }
a_standby() { roles | awk '$2 == "Unpromoted" { print $1 }' | sort | head -1; }
other_node() {   # a node that is on and is not $1
  local n
  for n in $NODES; do
    [ "$n" != "$1" ] && node_is_on "$n" && { echo "$n"; return 0; }
  done
  return 1
}
healthy() { "$H/wait-healthy.sh" "${1:-180}" >/dev/null 2>&1; }
cleanup_failures() { on_node "$(other_node none)" pcs resource cleanup >/dev/null 2>&1 || true; }

# The client: every WRITE_INTERVAL seconds a new attempt starts, in the
# background, whatever the previous ones are doing: a new connection
# through the VIP, one INSERT (autocommit), at most WRITE_TIMEOUT seconds.
# One line per attempt, appended when it ends (short appends are atomic):
#   <attempt start> <attempt end> ok|fail <node that committed>
attempt() {
  local t1 t2 node
  t1=$EPOCHREALTIME
  if node=$(PGPASSWORD=$APP_PASSWORD timeout -k 0.5 "$WRITE_TIMEOUT" "$PSQL" "$CONN" -XAtq \
      -v ON_ERROR_STOP=1 \
      -c "INSERT INTO bench_probe(tag) VALUES ('w') RETURNING current_setting('cluster_name')" 2>/dev/null); then
    t2=$EPOCHREALTIME
    echo "$t1 $t2 ok ${node:-?}"
  else
    t2=$EPOCHREALTIME
    echo "$t1 $t2 fail -"
  fi
}
writer() {
  local out=$1 stop=$2
  while [ ! -e "$stop" ]; do
    attempt >> "$out" &
    sleep "$WRITE_INTERVAL"
  done
  wait
}
# The client started in the background, logging to LOGFILE, not waiting for
# a first commit (the service may be down).
start_writer_nowait() {   # LOGFILE
  WLOG=$1
  WSTOP=$WLOG.stop
  rm -f "$WSTOP"
  : > "$WLOG"
  writer "$WLOG" "$WSTOP" &
  writer_pid=$!
}
# The same, then waiting for commits through the VIP (stopped, 1, if none).
start_writer() {   # LOGFILE
  start_writer_nowait "$1"
  if ! wait_for 30 "commits through the VIP" sh -c '[ "$(grep -c " ok " "$1")" -ge 5 ]' sh "$WLOG"; then
    stop_writer
    return 1
  fi
}
# The analysis reads the attempts in the order they ended.
by_end() { sort -s -n -k2,2 "$1"; }
# first_ok_after LOG T [NODE]: "<end> <node>" of the first successful commit
# whose attempt started at or after T (on NODE if given)
first_ok_after() {
  by_end "$1" | awk -v t="$2" -v n="${3:-}" '$3 == "ok" && $1 + 0 >= t + 0 && (n == "" || $4 == n) { print $2, $4; exit }'
}
# last_ok_before LOG T: end of the last successful commit that ended by T
last_ok_before() {
  by_end "$1" | awk -v t="$2" '$3 == "ok" && $2 + 0 <= t + 0 { e = $2 } END { if (e != "") print e }'
}
# max_gap LOG FROM TO: longest time without a successful commit between
# FROM and TO (ends of successful commits)
max_gap() {
  by_end "$1" | awk -v a="$2" -v b="$3" '$3 == "ok" && $2 + 0 >= a + 0 && $2 + 0 <= b + 0 {
      if (p != "") { g = $2 - p; if (g > m) m = g } p = $2 }
    END { printf "%.3f\n", m + 0 }'
}
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", a - b }'; }
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$CFG" "$1" "$REP" "$2" "$3" >> "$RESULTS"; }
# note SCENARIO|* TEXT: why a config or a scenario could not give a figure
# (the report's cells say it instead of a blank)
NOTES=$OUT/notes.tsv
: > "$NOTES"
note() { printf '%s\t%s\t%s\n' "$CFG" "$1" "$(tr '|\t\n' '/  ' <<<"$2" | cut -c1-160)" >> "$NOTES"; }
# The line of a log that says what went wrong: the last error-looking one.
failure_line() {
  local l
  l=$(grep -aE 'rror|die|fail|refus|not |cannot|timeout' "$1" 2>/dev/null | tail -1)
  [ -n "$l" ] || l=$(tail -1 "$1" 2>/dev/null)
  echo "${l#[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9] }"
}

# Wait until a commit started after T succeeds (on NODE if given); prints
# "<end> <node>". Returns 1 after TIMEOUT seconds.
wait_writable() {   # T TIMEOUT [NODE]
  local deadline=$((SECONDS + $2)) r
  while :; do
    r=$(first_ok_after "$WLOG" "$1" "${3:-}")
    [ -n "$r" ] && { echo "$r"; return 0; }
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}
# await_writable SCENARIO T0 LIMIT: wait_writable T0 LIMIT, then the writer
# stopped. Sets WRITABLE to its answer ("<end> <node>"); when no commit
# succeeds within LIMIT seconds, records the failure (results, log, note)
# and returns 1.
await_writable() {
  if ! WRITABLE=$(wait_writable "$2" "$3"); then
    stop_writer; record "$1" time_to_writable fail; say "$1: not writable within $3 s"
    note "$1" "not writable within $3 s"
    return 1
  fi
  stop_writer
}

# A standby of the current primary, from scratch, as up.sh makes them.
rebuild_standby() {   # NODE
  local n=$1
  on_node "$n" runuser -u postgres -- sh -c 'rm -rf "$1" && mkdir -m 0700 "$1"' sh "$PGDATA_NODE"
  on_node "$n" runuser -u postgres -- "$PG_BINDIR/pg_basebackup" -h "$VIP" -p "$PGPORT" \
    -U replicator -D "$PGDATA_NODE" -X stream -c fast --no-password
  write_local_conf "$n"
}
fenced_and_down() {   # NODE: Pacemaker sees it offline and clean
  local live
  live=$(other_node "$1") || return 1
  on_node "$live" crm_mon -1 --output-as=xml 2>/dev/null |
    grep -q "<node name=\"$1\"[^>]* online=\"false\"[^>]* unclean=\"false\""
}

# ---- monitor cost with the real Pacemaker tools -----------------------------
# The agent runs inside NODE with the environment pacemaker-execd gives a
# recurring monitor; the tools it calls (crm_attribute, attrd_updater,
# cibadmin, crm_node...) are the real ones, talking to the live cluster.
monitor_cost() {   # NODE ROLE(primary|standby) INTERVAL [LABEL]
  local node=$1 role=$2 interval_ms expect=0 provider type i label=${4:-monitor, $2}
  interval_ms=$(( ${3%s} * 1000 ))
  [ "$role" = primary ] && expect=8
  IFS=: read -r _ provider type <<<"$AGENT"
  i=$(node_index "$node")
  local -a env=(
    PATH=/usr/sbin:/usr/bin:/sbin:/bin
    OCF_ROOT=/usr/lib/ocf OCF_RA_VERSION_MAJOR=1 OCF_RA_VERSION_MINOR=1
    OCF_RESOURCE_INSTANCE="pgsqld" OCF_RESOURCE_TYPE="$type" OCF_RESOURCE_PROVIDER="$provider"
    OCF_RESKEY_crm_feature_set="$(on_node "$node" cibadmin --query | sed -n '1s/.*crm_feature_set="\([0-9.]*\)".*/\1/p')"
    OCF_RESKEY_CRM_meta_name=monitor OCF_RESKEY_CRM_meta_on_node="$node" OCF_RESKEY_CRM_meta_on_node_uuid="$i"
    OCF_RESKEY_CRM_meta_timeout=10000 OCF_RESKEY_CRM_meta_interval="$interval_ms"
    OCF_RESKEY_CRM_meta_role="$([ "$role" = primary ] && echo Promoted || echo Unpromoted)"
    OCF_RESKEY_CRM_meta_notify=true OCF_RESKEY_CRM_meta_clone=$((i - 1))
    OCF_RESKEY_CRM_meta_clone_max="$(echo "$NODES" | wc -w)" OCF_RESKEY_CRM_meta_clone_node_max=1
    OCF_RESKEY_CRM_meta_globally_unique=false OCF_RESKEY_CRM_meta_promotable=true
    OCF_RESKEY_CRM_meta_promoted_max=1 OCF_RESKEY_CRM_meta_promoted_node_max=1
    OCF_RESKEY_CRM_meta_master_max=1 OCF_RESKEY_CRM_meta_master_node_max=1
    OCF_RESKEY_bindir="$PG_BINDIR" OCF_RESKEY_pgdata="$PGDATA_NODE" OCF_RESKEY_datadir="$PGDATA_NODE"
    OCF_RESKEY_pghost="$PGSOCKDIR" OCF_RESKEY_pgport="$PGPORT"
    HA_LOGFACILITY=none HA_LOGFILE=/dev/null HA_debug=0 HA_RSCTMP=/run/resource-agents
  )
  local agent_path=/usr/lib/ocf/resource.d/$provider/$type
  # The runner writes where the node can: DEBIAN=13 nodes see the
  # repository read-only, the state directory read-write (both at the
  # host's paths). Copied to $OUT afterwards.
  local mdir=$STATE_DIR/bench-monitor
  rm -rf "$mdir"; mkdir -p "$mdir/trace" "$mdir/no-fakes"
  local -a opts=(--label "$label" --agent "$CFG" --results "$mdir/monitor.tsv"
    --expect "$expect" --log "$mdir/runs.log" --timeout-ms 20000)
  local rc=0
  on_node "$node" env -i "${env[@]}" "$RUNNER" run "${opts[@]}" --runs "$MONITOR_RUNS" --warmup 2 -- "$agent_path" monitor || rc=1
  # --tool-dir: where fakes would be; none here, every process counts.
  if [ "$rc" = 0 ]; then
    on_node "$node" env -i "${env[@]}" "$RUNNER" run "${opts[@]}" --forks --server-exe "$PG_BINDIR/postgres" \
      --tool-dir "$mdir/no-fakes" --trace-dir "$mdir/trace" -- "$agent_path" monitor || rc=1
  fi
  [ -r "$mdir/monitor.tsv" ] && cat "$mdir/monitor.tsv" >> "$OUT/monitor.tsv"
  [ -r "$mdir/runs.log" ] && cat "$mdir/runs.log" >> "$OUT/$CFG.monitor-runs.log"
  mkdir -p "$OUT/trace"; cp -r "$mdir/trace/." "$OUT/trace/" 2>/dev/null || true
  rm -rf "$mdir"
  return "$rc"
}

# The primary's monitor with synchronous replication (the cluster's
# setting, ANY 1) and without (synchronous_standby_names emptied with
# ALTER SYSTEM and a reload, reset afterwards).
set_sync() {   # NODE on|off
  local q="ALTER SYSTEM RESET synchronous_standby_names"
  [ "$2" = off ] && q="ALTER SYSTEM SET synchronous_standby_names = ''"
  psql_on "$1" -c "$q" -c "SELECT pg_reload_conf()" >/dev/null
}
# The two modes alternate (sync, async, sync, async; half the runs each
# turn): measured one after the other, the first mode met a cluster still
# busy after its creation and looked 33% dearer than the second.
monitor_costs_primary() {   # NODE INTERVAL
  local round
  for round in 1 2; do
    MONITOR_RUNS=$HALF_RUNS monitor_cost "$1" primary "$2" "monitor, primary" ||
      say "$CFG: primary monitor cost run $round failed"
    if set_sync "$1" off; then
      sleep 2   # the reload reaches the walsenders
      MONITOR_RUNS=$HALF_RUNS monitor_cost "$1" primary "$2" "monitor, primary, async" ||
        say "$CFG: async primary monitor cost run $round failed"
    else
      say "$CFG: could not make replication asynchronous on $1"
    fi
    set_sync "$1" on || say "$CFG: could not reset synchronous_standby_names on $1"
    sleep 2
  done
}
HALF_RUNS=$(( (MONITOR_RUNS + 1) / 2 ))

# record_recovery SCENARIO T0 "END NODE" WHAT: the figures of a fault at T0
# after which a commit ended at END on NODE (wait_writable's answer)
record_recovery() {
  local end node
  read -r end node <<<"$3"
  record "$1" time_to_writable "$(sub "$end" "$2")"
  record "$1" write_outage "$(sub "$end" "$(last_ok_before "$WLOG" "$2")")"
  record "$1" new_primary "$node"
  say "$4: writable after $(sub "$end" "$2") s (on $node)"
}

# ---- scenarios ----------------------------------------------------------------
# primary_and_writer SCENARIO: sets P (the caller's local) to the primary's
# node and starts the writer, logging to $OUT/$CFG.SCENARIO.$REP.writes;
# says why and returns 1 when there is no primary or no commit goes through.
primary_and_writer() {
  P=$(primary_node)
  [ -n "$P" ] || { say "$1: no primary"; return 1; }
  start_writer "$OUT/$CFG.$1.$REP.writes" || { say "$1: no commit through the VIP"; return 1; }
}

scenario_kill() {
  local P pid t0
  primary_and_writer kill || return 1
  pid=$(on_node "$P" head -1 "$PGDATA_NODE/postmaster.pid")
  t0=$(on_node "$P" sh -c 'date +%s.%N; kill -9 "$1"' sh "$pid")
  await_writable kill "$t0" 180 || return 1
  record_recovery kill "$t0" "$WRITABLE" "kill -9 postmaster on $P"
}

scenario_switchover() {
  local P S live t0 r end node before
  P=$(primary_node); S=$(a_standby)
  if [ -z "$P" ] || [ -z "$S" ]; then say "switchover: roles unknown"; return 1; fi
  live=$(other_node none)
  start_writer "$OUT/$CFG.switchover.$REP.writes" || { say "switchover: no commit through the VIP"; return 1; }
  t0=$EPOCHREALTIME
  on_node "$live" pcs resource move-with-constraint pgsqld-clone "$S" --promoted >/dev/null
  if ! r=$(wait_writable "$t0" 180 "$S"); then
    stop_writer; record switchover duration fail; say "switchover: no write on $S within 180 s"
    on_node "$live" pcs resource clear pgsqld-clone >/dev/null 2>&1 || true
    return 1
  fi
  read -r end node <<<"$r"
  # Settled: every standby streams from the new primary and the VIP is there.
  local settled=fail
  if healthy 120; then settled=$(sub "$EPOCHREALTIME" "$t0"); fi
  stop_writer
  before=$(last_ok_before "$WLOG" "$t0")
  record switchover duration "$(sub "$end" "$t0")"
  record switchover write_outage "$(max_gap "$WLOG" "$before" "$end")"
  record switchover settled "$settled"
  say "switchover $P -> $S: writes on $S $(sub "$end" "$t0") s after the command, longest write gap $(max_gap "$WLOG" "$before" "$end") s, healthy after $settled s"
  on_node "$live" pcs resource clear pgsqld-clone >/dev/null
}

scenario_nodeloss() {
  local P t0
  primary_and_writer nodeloss || return 1
  # When fencing reboots it, the node comes back without its cluster stack:
  # its data is rebuilt before it rejoins.
  echo 0 > "$(node_dir "$P")/autostart"
  t0=$EPOCHREALTIME
  "$H/power.sh" off "$P"
  if await_writable nodeloss "$t0" "$NODELOSS_LIMIT"; then
    record_recovery nodeloss "$t0" "$WRITABLE" "power-off of $P"
  fi
  # Bring the node back as a fresh standby.
  wait_for 120 "$P to be fenced" fenced_and_down "$P" || return 1
  restart_as_standby "$P"
}

# Power on a fenced node (it comes back without its cluster stack), rebuild
# its data as a standby of the current primary, then start its stack.
restart_as_standby() {   # NODE
  "$H/power.sh" on "$1" >/dev/null
  rebuild_standby "$1"
  echo 1 > "$(node_dir "$1")/autostart"
  on_node "$1" "$H/node-services.sh" start
}
# Bring a node that went down (fenced, or powered off by hand) back as a
# fresh standby of the current primary, as nodeloss does.
return_as_standby() {   # NODE
  local P=$1
  if ! wait_for 120 "$P to be fenced" fenced_and_down "$P"; then
    # Never fenced: thaw it (a frozen node) and cut its power; the
    # cluster then sees it gone and fences it.
    echo 0 > "$(node_cg "$P")/cgroup.freeze" 2>/dev/null || true
    "$H/power.sh" off "$P" >/dev/null
    wait_for 120 "$P to be fenced" fenced_and_down "$P" || return 1
  fi
  restart_as_standby "$P"
}

scenario_hung() {
  local P t0
  primary_and_writer hung || return 1
  echo 0 > "$(node_dir "$P")/autostart"
  t0=$EPOCHREALTIME
  "$H/crash.sh" --hang "$P"
  # No commit can end on the frozen node: the first one is on another.
  if await_writable hung "$t0" "$HUNG_LIMIT"; then
    record_recovery hung "$t0" "$WRITABLE" "frozen node $P"
  fi
  return_as_standby "$P"
}

# Only PostgreSQL hangs (every process of the primary's instance
# SIGSTOPped, as on a dead disk), the node and its cluster stack stay
# healthy: time until a commit through the VIP succeeds on another node.
# Not in the default list (PAF needs minutes: issue 11).
scenario_hungpg() {
  local P t0 pid
  primary_and_writer hungpg || return 1
  pid=$(node_init_pid "$P")
  t0=$EPOCHREALTIME
  "$H/hang-postgres.sh" "$P" STOP >/dev/null || { stop_writer; say "hungpg: hang-postgres.sh failed"; return 1; }
  if await_writable hungpg "$t0" "$HUNGPG_LIMIT"; then
    record_recovery hungpg "$t0" "$WRITABLE" "PostgreSQL stopped (SIGSTOP) on $P"
  fi
  # Not fenced (same boot): let what is left of that instance go on.
  if [ "$(node_init_pid "$P" 2>/dev/null)" = "$pid" ]; then
    "$H/hang-postgres.sh" "$P" CONT >/dev/null 2>&1 || true
  fi
}

# Create: the resources are removed from a running cluster without
# Pacemaker touching PostgreSQL (maintenance-mode), every instance is
# stopped cleanly, the primary first (its shutdown checkpoint reaches the
# standbys: all end at the same LSN, as up.sh leaves them), the cluster
# stack is restarted (no transient attribute, score or agent state left),
# and the saved configuration (01-create-resource.sh's, with no permanent
# promotion score) is pushed back in one CIB replace, as
# `pcs cluster cib-push --config` does. Timed from that push.
edit_config() {   # IN OUT without|with: the configuration, resources removed or kept
  python3 - "$@" <<'EOF'
import sys, xml.etree.ElementTree as ET
src, dst, mode = sys.argv[1:4]
cfg = ET.parse(src).getroot()
ours = {"pgsqld", "pgsqld-clone", "pgsql-vip"}
# Permanent node attributes left by PAF's crm_master (lifetime forever).
for node in cfg.iter("node"):
    for ia in list(node.findall("instance_attributes")):
        for nv in list(ia):
            if nv.get("name", "").startswith("master-pgsqld"):
                ia.remove(nv)
        if len(ia) == 0:
            node.remove(ia)
props = cfg.find("crm_config")
for ps in props.iter("cluster_property_set"):
    for nv in list(ps):
        if nv.get("name") == "maintenance-mode":
            ps.remove(nv)
if mode == "without":
    res = cfg.find("resources")
    for r in list(res):
        if r.get("id") in ours:
            res.remove(r)
    cons = cfg.find("constraints")
    for c in list(cons):
        if {c.get(k) for k in ("rsc", "with-rsc", "first", "then")} & ours:
            cons.remove(c)
    ps = props.find("cluster_property_set")
    ET.SubElement(ps, "nvpair", {"id": "bench-maintenance-mode", "name": "maintenance-mode", "value": "true"})
ET.ElementTree(cfg).write(dst)
EOF
}
stack_on_all() {   # start|stop, on every node at once
  local n pids=() rc=0
  for n in $NODES; do on_node "$n" "$H/node-services.sh" "$1" & pids+=($!); done
  for n in "${pids[@]}"; do wait "$n" || rc=1; done
  return "$rc"
}
all_online() {   # every node online in a quorate partition
  local n live xml
  live=$(other_node none) || return 1
  xml=$(on_node "$live" crm_mon -1 --output-as=xml 2>/dev/null) || return 1
  grep -q 'with_quorum="true"' <<<"$xml" || return 1
  for n in $NODES; do
    grep -q "<node name=\"$n\"[^>]* online=\"true\"" <<<"$xml" || return 1
  done
}
scenario_create() {
  local P S live d=$STATE_DIR/bench-create t0 n
  P=$(primary_node)
  [ -n "$P" ] || { say "create: no primary"; return 1; }
  live=$(other_node none)
  mkdir -p "$d"
  if ! { on_node "$live" cibadmin --query --scope configuration > "$d/saved.xml" &&
    edit_config "$d/saved.xml" "$d/without.xml" without &&
    edit_config "$d/saved.xml" "$d/with.xml" with; }; then
    say "create: cannot read the configuration"; return 1
  fi
  on_node "$live" crm_attribute --type crm_config --name maintenance-mode --update true >/dev/null ||
    { say "create: cannot set maintenance-mode"; return 1; }
  # Pacemaker leaves everything as it is now: stop PostgreSQL by hand.
  pg_stop_on "$P" || { say "create: cannot stop PostgreSQL on $P"; return 1; }
  for S in $NODES; do
    [ "$S" = "$P" ] || pg_stop_on "$S" || { say "create: cannot stop PostgreSQL on $S"; return 1; }
  done
  on_node "$P" ip addr del "$VIP/$NET_CIDR" dev eth0 2>/dev/null || true
  on_node "$live" cibadmin --replace --scope configuration --xml-file "$d/without.xml" ||
    { say "create: cannot remove the resources"; return 1; }
  stack_on_all stop || { say "create: cluster stack did not stop"; return 1; }
  # shellcheck disable=SC2016 # the node's shell expands it
  for n in $NODES; do on_node "$n" sh -c 'rm -f /run/resource-agents/pgsqlms*' || true; done
  stack_on_all start || { say "create: cluster stack did not start"; return 1; }
  wait_for 120 "every node online" all_online || { say "create: nodes not online"; return 1; }
  sleep 2
  start_writer_nowait "$OUT/$CFG.create.$REP.writes"
  live=$(other_node none)
  t0=$EPOCHREALTIME
  on_node "$live" cibadmin --replace --scope configuration --xml-file "$d/with.xml" ||
    { stop_writer; say "create: cannot create the resources"; note create "cibadmin --replace failed"; return 1; }
  await_writable create "$t0" "$CREATE_LIMIT" || return 1
  record_new_primary create "$t0" "$WRITABLE" "$P"
}
# record_new_primary SCENARIO T0 "END NODE" OLD_PRIMARY
record_new_primary() {
  local end node
  read -r end node <<<"$3"
  record "$1" time_to_writable "$(sub "$end" "$2")"
  record "$1" new_primary "$node"
  record "$1" old_primary_promoted "$([ "$node" = "$4" ] && echo 1 || echo 0)"
  say "$1: writable after $(sub "$end" "$2") s (on $node; primary before: $4)"
}

# Power-on: every node's power cut at once while commits run, 2 s off,
# then all powered on together (each boots its cluster stack). Timed from
# the power-on. Synchronous replication (ANY 1): no standby is ahead of the
# old primary, which holds the most WAL (a standby may hold as much).
scenario_poweron() {
  local P t0 n pids=()
  primary_and_writer poweron || return 1
  for n in $NODES; do "$H/power.sh" off "$n" & pids+=($!); done
  for n in "${pids[@]}"; do wait "$n" || true; done
  sleep 2
  pids=()
  t0=$EPOCHREALTIME
  for n in $NODES; do "$H/power.sh" on "$n" >/dev/null & pids+=($!); done
  for n in "${pids[@]}"; do wait "$n" || true; done
  await_writable poweron "$t0" "$POWERON_LIMIT" || return 1
  record_new_primary poweron "$t0" "$WRITABLE" "$P"
}

# After a scenario: a node that does not come back as a standby (diverged
# after a crash, failed start) is rebuilt from the primary (rebuild.sh).
repair() {
  healthy 120 && return 0
  local P n streaming
  P=$(primary_node)
  [ -n "$P" ] || { say "$CFG: no primary after the scenario"; return 1; }
  streaming=$(psql_on "$P" -At -c "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'" 2>/dev/null) || true
  for n in $NODES; do
    [ "$n" = "$P" ] && continue
    grep -qx "$n" <<<"$streaming" && continue
    say "$CFG: $n does not stream from $P after the scenario: rebuilding it"
    "$H/rebuild.sh" "$n" >> "$OUT/$CFG.repairs.log" 2>&1 || say "$CFG: rebuild of $n failed"
  done
}

# ---- run ----------------------------------------------------------------------
for CFG in "${configs[@]}"; do
  case "$CFG" in
    paf|ours)
      export MON_PROMOTED_INTERVAL=$BASE_PROMOTED_INTERVAL MON_UNPROMOTED_INTERVAL=$BASE_UNPROMOTED_INTERVAL \
        COROSYNC_TOKEN=$BASE_COROSYNC_TOKEN COROSYNC_TOKEN_COEFFICIENT=$BASE_COROSYNC_TOKEN_COEFFICIENT
      if [ "$CFG" = paf ]; then export AGENT=ocf:heartbeat:pgsqlms; else export AGENT=ocf:rust:pgsqlms; fi ;;
    recommended)
      # shellcheck source=../pcs-examples/recommended.env
      set -a; . "$REPO/pcs-examples/recommended.env"; set +a
      export AGENT=ocf:rust:pgsqlms ;;
  esac
  printf '%s\t%s\n' "$CFG" "AGENT=$AGENT, monitors Promoted $MON_PROMOTED_INTERVAL / Unpromoted $MON_UNPROMOTED_INTERVAL, corosync token $COROSYNC_TOKEN ms + $COROSYNC_TOKEN_COEFFICIENT ms per node above 2" >> "$OUT/configs.tsv"
  printf '%s\t%s\t%s\n' "$CFG" "$MON_PROMOTED_INTERVAL" "$MON_UNPROMOTED_INTERVAL" >> "$OUT/intervals.tsv"
  say "== $CFG: $AGENT, monitors $MON_PROMOTED_INTERVAL (Promoted) / $MON_UNPROMOTED_INTERVAL (Unpromoted): building the cluster"
  if ! "$H/up.sh" > "$OUT/$CFG.up.log" 2>&1; then
    say "$CFG: up.sh failed (see $OUT/$CFG.up.log)"
    note "*" "up.sh failed: $(failure_line "$OUT/$CFG.up.log")"
    continue
  fi
  if [ ! -s "$OUT/versions" ]; then
    # shellcheck disable=SC2016 # the node's shell expands it
    on_node "$(other_node none)" sh -c 'echo "$(pacemakerd --version | head -1), pcs $(pcs --version)"' \
      > "$OUT/versions" 2>/dev/null || true
  fi
  if [ "$CFG" != recommended ]; then   # same agent as "ours": same cost per call
    say "$CFG: monitor cost with the real Pacemaker tools"
    monitor_costs_primary "$(primary_node)" "$MON_PROMOTED_INTERVAL"
    monitor_cost "$(a_standby)" standby "$MON_UNPROMOTED_INTERVAL" || say "$CFG: standby monitor cost run failed"
  fi
  app_psql -c "CREATE TABLE IF NOT EXISTS bench_probe (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp(), tag text)"
  broken=0
  for sc in $SCENARIOS; do
    for ((REP = 1; REP <= REPEAT; REP++)); do
      healthy 300 || { say "$CFG: cluster not healthy before $sc #$REP"; note "*" "cluster not healthy before $sc #$REP: stopped"; "$H/status.sh" >> "$OUT/$CFG.failures.log" 2>&1; broken=1; break 2; }
      "scenario_$sc" || { say "$CFG: $sc #$REP failed"; "$H/status.sh" >> "$OUT/$CFG.failures.log" 2>&1; }
      stop_writer
      repair || true
      cleanup_failures
    done
  done
  [ "$broken" = 0 ] || say "$CFG: stopped early"
  # The nodes' Pacemaker logs (agent lines included): up.sh of the next
  # config and down.sh remove them.
  for n in $NODES; do
    gzip -c "$(node_dir "$n")/var-log/pacemaker/pacemaker.log" > "$OUT/$CFG.$n.pacemaker.log.gz" 2>/dev/null || true
  done
done
"$H/down.sh" >/dev/null 2>&1 || true

# ---- report -----------------------------------------------------------------------
summary() {   # SCENARIO METRIC CFG: "median (min–max, n=N)" in seconds
  local why
  why=$(awk -F'\t' -v s="$1" -v c="$3" '$1 == c && ($2 == s || $2 == "*") { w = $3 } END { print w }' "$NOTES")
  awk -F'\t' -v s="$1" -v m="$2" -v c="$3" -v why="$why" '
    $1 == c && $2 == s && $4 == m { if ($5 == "fail") f++; else v[n++] = $5 }
    END {
      if (n == 0) { print (f ? f " failed" : (why != "" ? "not run" : "-")) (why != "" ? ": " why : ""); exit }
      for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
      med = (n % 2) ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2
      printf "%.2f (%.2f–%.2f, n=%d%s)\n", med, v[0], v[n - 1], n, f ? ", " f " failed" : ""
    }' "$RESULTS"
}
# promoted SCENARIO CFG: "<k>/<n> the old primary (<nodes>)"
promoted() {
  awk -F'\t' -v s="$1" -v c="$2" '
    $1 == c && $2 == s && $4 == "old_primary_promoted" { n++; k += $5 }
    $1 == c && $2 == s && $4 == "new_primary" { l = l (l == "" ? "" : " ") $5 }
    END { if (n == 0) print "-"; else printf "%d/%d (%s)\n", k, n, l }' "$RESULTS"
}
# mon_stat CFG LABEL wall|cpu|procs: median (ms) of the timed runs, or the
# process count of the traced run ("-" when absent)
mon_stat() {
  [ -r "$OUT/monitor.tsv" ] || { echo -; return; }
  awk -F'\t' -v c="$1" -v l="$2" -v what="$3" '
    what == "procs" && $1 == "forks" && $2 == c && $3 == l { p = $4 }
    what != "procs" && $1 == "time" && $2 == c && $3 == l {
      v[n++] = (what == "wall") ? $4 / 1000 : ($5 + $6) / 1000 }
    END {
      if (what == "procs") { print (p == "" ? "-" : p); exit }
      if (n == 0) { print "-"; exit }
      for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
      printf "%.1f\n", (n % 2) ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2
    }' "$OUT/monitor.tsv"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.0f×\n", a / b; else print "-" }'; }
# seconds of CPU per hour: per-call CPU (ms) × calls per hour
per_hour() { awk -v ms="$1" -v iv="${2%s}" 'BEGIN { if (ms + 0 > 0) printf "%.1f\n", ms / 1000 * 3600 / iv; else print "-" }'; }
monitor_report() {
  [ -r "$OUT/monitor.tsv" ] || return 0
  echo
  echo "Monitor with the real Pacemaker tools, inside the nodes (median of $MONITOR_RUNS runs; CPU = user+sys"
  echo "of the agent and every process it waited for; processes forked from one traced run):"
  echo
  echo "| monitor | metric | paf | ours | paf/ours |"
  echo "|---|---|--:|--:|--:|"
  local r m a b
  for r in primary "primary, async" standby; do
    for m in wall cpu procs; do
      a=$(mon_stat paf "monitor, $r" "$m"); b=$(mon_stat ours "monitor, $r" "$m")
      local name rt=-
      case $m in wall) name="wall (ms)" ;; cpu) name="CPU (ms)" ;; *) name=processes ;; esac
      [ "$m" = procs ] || rt=$(ratio "$a" "$b")
      printf '| %s | %s | %s | %s | %s |\n' "$r" "$name" "$a" "$b" "$rt"
    done
  done
  echo
  echo "The primary's monitor with synchronous replication (the cluster's ANY 1) against"
  echo "asynchronous (synchronous_standby_names = ''), medians:"
  echo
  echo "| agent | metric | synchronous | asynchronous | sync/async |"
  echo "|---|---|--:|--:|--:|"
  local c
  for c in paf ours; do
    for m in wall cpu; do
      a=$(mon_stat "$c" "monitor, primary" "$m"); b=$(mon_stat "$c" "monitor, primary, async" "$m")
      [ "$a$b" = "--" ] && continue
      printf '| %s | %s | %s | %s | %s |\n' "$c" "$([ "$m" = wall ] && echo "wall (ms)" || echo "CPU (ms)")" "$a" "$b" \
        "$(awk -v a="$a" -v b="$b" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%+.0f%%\n", (a / b - 1) * 100; else print "-" }')"
    done
  done
  echo
  echo "CPU spent by the agent's monitors, seconds per node and hour:"
  echo
  echo "| config | monitor intervals | primary node | standby node |"
  echo "|---|---|--:|--:|"
  local c cost iv_p iv_u
  while IFS=$'\t' read -r c _; do
    cost=$c; [ "$c" = recommended ] && cost=ours
    iv_p=$(awk -F'\t' -v c="$c" '$1 == c { print $2 }' "$OUT/intervals.tsv")
    iv_u=$(awk -F'\t' -v c="$c" '$1 == c { print $3 }' "$OUT/intervals.tsv")
    printf '| %s | %s / %s | %s | %s |\n' "$c" "$iv_p" "$iv_u" \
      "$(per_hour "$(mon_stat "$cost" "monitor, primary" cpu)" "$iv_p")" \
      "$(per_hour "$(mon_stat "$cost" "monitor, standby" cpu)" "$iv_u")"
  done < "$OUT/configs.tsv"
}
{
  echo "# pgsqlms cluster benchmark, Debian $DEBIAN nodes, $(date '+%F %T')"
  echo
  echo "Command: \`${BENCH_CLUSTER_COMMAND:-bash bench/cluster.sh}\`"
  echo
  echo "Namespace cluster of tests/cluster: $(echo "$NODES" | wc -w) nodes on Debian $DEBIAN"
  echo "($(cat "$OUT/versions" 2>/dev/null || echo "versions unknown")), Corosync token ${COROSYNC_TOKEN} ms,"
  echo "fencing fence_ns, PostgreSQL $PG_MAJOR, pcs-examples/01-create-resource.sh defaults. Configs:"
  echo
  while IFS=$'\t' read -r c d; do echo "- $c: $d"; done < "$OUT/configs.tsv"
  echo
  echo "Seconds, median (min–max, n runs). Writable = a commit through the VIP succeeds"
  echo "(an attempt every ${WRITE_INTERVAL} s, new connection each, ${WRITE_TIMEOUT} s timeout, synchronous_commit=on);"
  echo "the first successful attempt started after the event counts."
  echo
  printf '| scenario | metric |'; for c in "${configs[@]}"; do printf ' %s |' "$c"; done; echo
  printf '|---|---|'; for c in "${configs[@]}"; do printf -- '--:|'; done; echo
  # A scenario that did not run (BENCH_SCENARIOS) has no row.
  # table_row CELL LABEL SCENARIO TEXT [METRIC]: a cell per config, each
  # `CELL SCENARIO [METRIC] CFG`.
  table_row() {
    local cell=$1; shift
    case " $SCENARIOS " in *" $2 "*) ;; *) return 0 ;; esac
    printf '| %s | %s |' "$1" "$3"
    for c in "${configs[@]}"; do printf ' %s |' "$("$cell" "$2" "${@:4}" "$c")"; done
    echo
  }
  row() { table_row summary "$@"; }   # LABEL SCENARIO TEXT METRIC: figures
  prow() { table_row promoted "$@"; }   # LABEL SCENARIO TEXT: old primary promoted
  row "primary postmaster kill -9" kill "kill → writable" time_to_writable
  row "" kill "write outage (last commit before → first after)" write_outage
  row "primary node power-off" nodeloss "power-off → writable" time_to_writable
  row "" nodeloss "write outage" write_outage
  row "controlled switchover" switchover "command → writes on the new primary" duration
  row "" switchover "longest gap between commits" write_outage
  row "" switchover "command → cluster healthy (standbys streaming from the new primary)" settled
  row "primary node frozen (cgroup)" hung "freeze → writable on another node" time_to_writable
  row "" hung "write outage" write_outage
  row "primary's PostgreSQL hung (SIGSTOP)" hungpg "hang → writable on another node" time_to_writable
  row "resource creation, instances cleanly stopped" create "CIB push → writable" time_to_writable
  prow "" create "old primary promoted"
  row "whole-cluster power cut" poweron "power-on → writable" time_to_writable
  prow "" poweron "old primary promoted (it holds the most WAL)"
  monitor_report
} > "$OUT/report.md"
cat "$OUT/report.md"
say "results in ${OUT#"$REPO"/}"
