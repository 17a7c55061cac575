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
# Settings: BENCH_REPEAT=3, BENCH_SCENARIOS="kill switchover nodeloss",
# MONITOR_RUNS=20, NODELOSS_LIMIT=60 (seconds), WRITE_INTERVAL=0.1
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
  BENCH_CLUSTER_PHASE2=1 exec bash "$SELF" "$@"
fi

# shellcheck source=../tests/cluster/lib.sh
. "$H/lib.sh"
need_root
unset LC_ALL
export LC_NUMERIC=C   # $EPOCHREALTIME and awk: a dot as decimal separator

REPEAT=${BENCH_REPEAT:-3}
SCENARIOS=${BENCH_SCENARIOS:-kill switchover nodeloss}
MONITOR_RUNS=${MONITOR_RUNS:-20}
NODELOSS_LIMIT=${NODELOSS_LIMIT:-60}   # seconds; slower counts as failed
RUNNER=$REPO/bench/runner/target/release/bench-run
WRITE_TIMEOUT=${WRITE_TIMEOUT:-1}
WRITE_INTERVAL=${WRITE_INTERVAL:-0.1}
PSQL=$PG_BINDIR/psql
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
start_writer() {   # LOGFILE
  WLOG=$1
  WSTOP=$WLOG.stop
  rm -f "$WSTOP"
  : > "$WLOG"
  writer "$WLOG" "$WSTOP" &
  writer_pid=$!
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
monitor_cost() {   # NODE ROLE(primary|standby) INTERVAL
  local node=$1 role=$2 interval_ms expect=0 provider type i
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
  local -a opts=(--label "monitor, $role" --agent "$CFG" --results "$OUT/monitor.tsv"
    --expect "$expect" --log "$OUT/$CFG.monitor-runs.log" --timeout-ms 20000)
  on_node "$node" env -i "${env[@]}" "$RUNNER" run "${opts[@]}" --runs "$MONITOR_RUNS" --warmup 2 -- "$agent_path" monitor
  # --tool-dir: where fakes would be; none here, every process counts.
  mkdir -p "$OUT/trace" "$OUT/no-fakes"
  on_node "$node" env -i "${env[@]}" "$RUNNER" run "${opts[@]}" --forks --server-exe "$PG_BINDIR/postgres" \
    --tool-dir "$OUT/no-fakes" --trace-dir "$OUT/trace" -- "$agent_path" monitor
}

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
scenario_kill() {
  local P pid t0 r
  P=$(primary_node)
  [ -n "$P" ] || { say "kill: no primary"; return 1; }
  start_writer "$OUT/$CFG.kill.$REP.writes" || { say "kill: no commit through the VIP"; return 1; }
  pid=$(on_node "$P" head -1 "$PGDATA_NODE/postmaster.pid")
  t0=$(on_node "$P" sh -c 'date +%s.%N; kill -9 "$1"' sh "$pid")
  if ! r=$(wait_writable "$t0" 180); then
    stop_writer; record kill time_to_writable fail; say "kill: not writable within 180 s"; return 1
  fi
  stop_writer
  record_recovery kill "$t0" "$r" "kill -9 postmaster on $P"
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
  local P t0 r
  P=$(primary_node)
  [ -n "$P" ] || { say "nodeloss: no primary"; return 1; }
  start_writer "$OUT/$CFG.nodeloss.$REP.writes" || { say "nodeloss: no commit through the VIP"; return 1; }
  # When fencing reboots it, the node comes back without its cluster stack:
  # its data is rebuilt before it rejoins.
  echo 0 > "$(node_dir "$P")/autostart"
  t0=$EPOCHREALTIME
  "$H/power.sh" off "$P"
  if ! r=$(wait_writable "$t0" "$NODELOSS_LIMIT"); then
    stop_writer; record nodeloss time_to_writable fail; say "nodeloss: not writable within $NODELOSS_LIMIT s"
  else
    stop_writer
    record_recovery nodeloss "$t0" "$r" "power-off of $P"
  fi
  # Bring the node back as a fresh standby.
  wait_for 120 "$P to be fenced" fenced_and_down "$P" || return 1
  "$H/power.sh" on "$P" >/dev/null
  rebuild_standby "$P"
  echo 1 > "$(node_dir "$P")/autostart"
  on_node "$P" "$H/node-services.sh" start
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
    say "$CFG: up.sh failed (see $OUT/$CFG.up.log)"; continue
  fi
  if [ "$CFG" != recommended ]; then   # same agent as "ours": same cost per call
    say "$CFG: monitor cost with the real Pacemaker tools"
    monitor_cost "$(primary_node)" primary "$MON_PROMOTED_INTERVAL" || say "$CFG: primary monitor cost run failed"
    monitor_cost "$(a_standby)" standby "$MON_UNPROMOTED_INTERVAL" || say "$CFG: standby monitor cost run failed"
  fi
  app_psql -c "CREATE TABLE IF NOT EXISTS bench_probe (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp(), tag text)"
  broken=0
  for sc in $SCENARIOS; do
    for ((REP = 1; REP <= REPEAT; REP++)); do
      healthy 300 || { say "$CFG: cluster not healthy before $sc #$REP"; "$H/status.sh" >> "$OUT/$CFG.failures.log" 2>&1; broken=1; break 2; }
      "scenario_$sc" || { say "$CFG: $sc #$REP failed"; "$H/status.sh" >> "$OUT/$CFG.failures.log" 2>&1; }
      stop_writer
      healthy 300 || true
      cleanup_failures
    done
  done
  [ "$broken" = 0 ] || say "$CFG: stopped early"
done
"$H/down.sh" >/dev/null 2>&1 || true

# ---- report -----------------------------------------------------------------------
summary() {   # SCENARIO METRIC CFG: "median (min–max, n=N)" in seconds
  awk -F'\t' -v s="$1" -v m="$2" -v c="$3" '
    $1 == c && $2 == s && $4 == m { if ($5 == "fail") f++; else v[n++] = $5 }
    END {
      if (n == 0) { print (f ? f " failed" : "-"); exit }
      for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
      med = (n % 2) ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2
      printf "%.2f (%.2f–%.2f, n=%d%s)\n", med, v[0], v[n - 1], n, f ? ", " f " failed" : ""
    }' "$RESULTS"
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
  for r in primary standby; do
    for m in wall cpu procs; do
      a=$(mon_stat paf "monitor, $r" "$m"); b=$(mon_stat ours "monitor, $r" "$m")
      local name rt=-
      case $m in wall) name="wall (ms)" ;; cpu) name="CPU (ms)" ;; *) name=processes ;; esac
      [ "$m" = procs ] || rt=$(ratio "$a" "$b")
      printf '| %s | %s | %s | %s | %s |\n' "$r" "$name" "$a" "$b" "$rt"
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
  echo "# pgsqlms cluster benchmark, $(date '+%F %T')"
  echo
  echo "Namespace cluster of tests/cluster: $(echo "$NODES" | wc -w) nodes, Corosync token ${COROSYNC_TOKEN} ms,"
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
  row() {
    printf '| %s | %s |' "$1" "$3"
    for c in "${configs[@]}"; do printf ' %s |' "$(summary "$2" "$4" "$c")"; done
    echo
  }
  row "primary postmaster kill -9" kill "kill → writable" time_to_writable
  row "" kill "write outage (last commit before → first after)" write_outage
  row "primary node power-off" nodeloss "power-off → writable" time_to_writable
  row "" nodeloss "write outage" write_outage
  row "controlled switchover" switchover "command → writes on the new primary" duration
  row "" switchover "longest gap between commits" write_outage
  row "" switchover "command → cluster healthy (standbys streaming from the new primary)" settled
  monitor_report
} > "$OUT/report.md"
cat "$OUT/report.md"
say "results in ${OUT#"$REPO"/}"
