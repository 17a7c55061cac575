#!/usr/bin/env bash
# Cost of a load balancer's health check: `pgsqlms health-server` (ours)
# side by side, in the same run and on the same PostgreSQL, with the check
# PAF users put behind HAProxy today (PAF has no health service of its own):
# an xinetd-style script that runs psql once per check and prints the
# answer. A benchmark, not a test: it asserts only that every check got the
# expected answer (a failing check measures nothing).
#
#   sudo bash bench/health.sh
#
# One PostgreSQL 15 primary under $BENCH_DIR (unix socket only, user
# postgres). Checks run one after another, as HAProxy checks one server.
# Measured per check, for each of `GET /primary` and `GET /health` (ours)
# and the psql script:
#   - the checker's CPU: the health server's own (all threads, from
#     /proc/PID/stat), or psql's (bash `times`, children);
#   - PostgreSQL's CPU: the postmaster and the backends it reaped
#     (utime+stime+cutime+cstime, clock ticks), one backend per check in
#     both cases;
#   - wall time per check, as the load balancer waits for it (ours: bash's
#     /dev/tcp, no client process; the script: psql's start included, as
#     xinetd runs it for each check).
# Also printed: CPU seconds a day at HAProxy's default check interval
# (`inter 2s`: 43,200 checks a day per load balancer and server).
#
# Settings (environment):
#   BENCH_CHECKS=1000   checks per kind
#   BENCH_DIR=/tmp/pgsqlms-bench-health   (must contain "pgsqlms-bench": removed)
#   BENCH_PG_BINDIR=/usr/lib/postgresql/15/bin
#   BENCH_PORT=5470     PostgreSQL's port (socket only); the health server
#                       listens on 127.0.0.1:BENCH_PORT+1
#   OURS=/usr/lib/ocf/resource.d/rust/pgsqlms
set -euo pipefail

B=${BENCH_DIR:-/tmp/pgsqlms-bench-health}
N=${BENCH_CHECKS:-1000}
BINDIR=${BENCH_PG_BINDIR:-/usr/lib/postgresql/15/bin}
PORT=${BENCH_PORT:-5470}
HPORT=$((PORT + 1))
OURS=${OURS:-/usr/lib/ocf/resource.d/rust/pgsqlms}
TICK=$(getconf CLK_TCK)

die() { echo "health.sh: $*" >&2; exit 1; }
case "$B" in
  /?*pgsqlms-bench*) ;;
  *) die "BENCH_DIR must be an absolute path containing 'pgsqlms-bench' (it is removed)" ;;
esac
[ "$(id -u)" = 0 ] || die "run as root (PostgreSQL and the health server run as postgres)"
[ -x "$OURS" ] || die "$OURS missing: make install"
cd /

HS_PID=
cleanup() {
  [ -n "$HS_PID" ] && kill "$HS_PID" 2>/dev/null
  if [ -f "$B/data/postmaster.pid" ]; then
    runuser -u postgres -- "$BINDIR/pg_ctl" -D "$B/data" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$B"
}
trap cleanup EXIT
rm -rf "$B"
install -d -o postgres -g postgres -m 0700 "$B" "$B/sock" "$B/rsctmp"
runuser -u postgres -- "$BINDIR/initdb" -D "$B/data" -A peer >/dev/null
runuser -u postgres -- "$BINDIR/pg_ctl" -D "$B/data" -l "$B/pg.log" -w start \
  -o "-c listen_addresses='' -c unix_socket_directories='$B/sock' -p $PORT" >/dev/null
PM=$(head -1 "$B/data/postmaster.pid")

# PostgreSQL's CPU so far, in clock ticks: the postmaster and the backends
# it reaped (fields 14-17 of /proc/PID/stat, counted after the command).
pg_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$PM/stat"; }
# The health server's CPU so far (all its threads), in nanoseconds.
hs_ns() { awk -v t="$TICK" '{ sub(/.*\) /, ""); printf "%.0f", ($12 + $13) * 1e9 / t }' "/proc/$HS_PID/stat"; }

# setpriv execs: $! is the health server itself (runuser would stay its parent).
setpriv --reuid=postgres --regid=postgres --init-groups -- "$OURS" health-server --listen "127.0.0.1:$HPORT" \
  --pghost "$B/sock" --pgport "$PORT" --rsctmp "$B/rsctmp" >"$B/health.log" 2>&1 &
HS_PID=$!
for _ in $(seq 100); do
  [ "$(check /health 2>/dev/null)" = 200 ] && break
  sleep 0.1
done
# /primary answers 200 only where Pacemaker promoted the node: the marker
# promote leaves (see README "Health checks for load balancers").
touch "$B/rsctmp/pgsqlms-pgsqld.promoted"
want_primary=200

# One check as HAProxy makes it: a TCP connection, a request, the status
# line; bash's /dev/tcp, so that no client process start is timed.
check() {
  local status
  exec 3<>"/dev/tcp/127.0.0.1/$HPORT" || return 1
  printf 'GET %s HTTP/1.0\r\n\r\n' "$1" >&3
  read -r _ status _ <&3
  exec 3<&-
  echo "$status"
}

# ours PATH EXPECTED_CODE -> "checker_ns pg_ticks wall_s"
ours() {
  local path=$1 want=$2 ns0 pg0 t0 i code
  ns0=$(hs_ns) pg0=$(pg_ticks) t0=$EPOCHREALTIME
  for ((i = 0; i < N; i++)); do
    code=$(check "$path")
    [ "$code" = "$want" ] || die "GET $path answered '$code', expected $want (see $B/health.log)"
  done
  echo "$(($(hs_ns) - ns0)) $(($(pg_ticks) - pg0)) $(awk -v a="$EPOCHREALTIME" -v b="$t0" 'BEGIN { print a - b }')"
}

# The xinetd-style check: psql once per check, its CPU from bash `times`.
script_check() {
  local pg0 t0 out
  pg0=$(pg_ticks) t0=$EPOCHREALTIME
  # shellcheck disable=SC2016  # expanded by the inner shell
  out=$(runuser -u postgres -- bash -c '
    for ((i = 0; i < $1; i++)); do
      r=$("$2/psql" -X -Atq -h "$3" -p "$4" -d postgres -c "SELECT pg_is_in_recovery()") || exit 1
      [ "$r" = f ] || exit 2
    done
    times' _ "$N" "$BINDIR" "$B/sock" "$PORT") || die "the psql check failed"
  # `times`: second line, children user and system, e.g. 0m1.234s 0m0.567s
  local ns
  ns=$(echo "$out" | sed -n 2p | awk '{
    n = 0
    for (f = 1; f <= 2; f++) { split($f, a, /[ms]/); n += a[1] * 60 + a[2] }
    printf "%.0f", n * 1e9 }')
  echo "$ns $(($(pg_ticks) - pg0)) $(awk -v a="$EPOCHREALTIME" -v b="$t0" 'BEGIN { print a - b }')"
}

# Warm-up (first connections, caches), then the measured runs.
N_REAL=$N; N=20
ours /health 200 >/dev/null; script_check >/dev/null
N=$N_REAL
primary=$(ours /primary "$want_primary")
health=$(ours /health 200)
script=$(script_check)

row() {   # LABEL "checker_ns pg_ticks wall_s"
  local label=$1 ns pg wall
  read -r ns pg wall <<<"$2"
  awk -v l="$label" -v ns="$ns" -v pg="$pg" -v w="$wall" -v n="$N" -v t="$TICK" 'BEGIN {
    c = ns / n / 1e6; p = pg * 1000 / t / n
    printf "| %s | %.2f | %.2f | %.2f | %.1f |\n", l, c, p, w * 1000 / n, (c + p) * 43200 / 1000 }'
}
echo
echo "health checks, $N each, one after another (PostgreSQL $("$BINDIR/postgres" --version | awk '{print $3}'), $(nproc) cores)"
echo
echo "| check | checker CPU ms/check | PostgreSQL CPU ms/check | wall ms/check | CPU s/day at inter 2s |"
echo "| --- | --: | --: | --: | --: |"
row "ours: GET /primary ($want_primary)" "$primary"
row "ours: GET /health" "$health"
row "psql per check (xinetd-style script, PAF users)" "$script"
