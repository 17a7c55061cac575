#!/usr/bin/env bash
# Runs the ocft cases of ocf/pgsqlms.ocft against a fresh PostgreSQL instance.
# Usage: tests/ocft.sh [15|18]        (default 15; run as root)
# Builds the agent (debug profile; PGSQLMS_OCFT_PROFILE=release for release;
# PGSQLMS_OCFT_CONFIG=FILE runs another ocft configuration),
# initdb's an instance in /tmp/pgsqlms-ocft-pg<ver>, then
# `ocft make -d <dir> pgsqlms` and `ocft test pgsqlms`. Exits non-zero when a
# case fails. Pacemaker tools are the fakes of tests/fakes. Everything it
# creates is removed on exit (ocft's own logs stay in
# /var/lib/resource-agents/ocft/cases/logs/pgsqlms.log). PGSQLMS_OCFT_KEEP=1
# keeps the directory (server stopped) to read the logs.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
VER="${1:-15}"
PROFILE="${PGSQLMS_OCFT_PROFILE:-debug}"
PGBIN="$(bash "$REPO/tests/pgbin.sh" "$VER")"
BASE="/tmp/pgsqlms-ocft-pg$VER"
PORT=$((54900 + VER))

[ "$(id -u)" = 0 ] || { echo "ocft.sh: run as root (ocft requires it)" >&2; exit 1; }
command -v ocft >/dev/null || { echo "ocft.sh: ocft not installed (resource-agents)" >&2; exit 1; }

stop_instance() {
  if [ -f "$BASE/data/postmaster.pid" ]; then
    timeout 90 runuser -u postgres -- "$PGBIN/pg_ctl" -D "$BASE/data" -w -t 60 -m immediate stop >/dev/null 2>&1 || true
  fi
}
cleanup() {
  stop_instance
  ocft clean pgsqlms >/dev/null 2>&1 || true
  rm -rf "$BASE"
}
cleanup
if [ "${PGSQLMS_OCFT_KEEP:-0}" = 1 ]; then
  trap stop_instance EXIT   # keep $BASE to look at the logs
else
  trap cleanup EXIT
fi

# -- the agent
if [ "$PROFILE" = release ]; then
  (cd "$REPO" && timeout 1200 cargo build --release --locked --bin pgsqlms)
else
  (cd "$REPO" && timeout 1200 cargo build --locked --bin pgsqlms)
fi
mkdir -p "$BASE/agent" "$BASE/configs" "$BASE/sock" /run/resource-agents
install -m 0755 "$REPO/target/$PROFILE/pgsqlms" "$BASE/agent/pgsqlms"

# -- the instance: never started, configured as the agent requires
chown postgres "$BASE" "$BASE/sock"
timeout 180 runuser -u postgres -- "$PGBIN/initdb" -D "$BASE/data" -A trust -U postgres \
  -E UTF8 --locale=C --no-sync >/dev/null
cat >> "$BASE/data/postgresql.conf" <<CONF
# --- tests/ocft.sh
listen_addresses = ''
port = $PORT
unix_socket_directories = '$BASE/sock'
wal_level = replica
hot_standby = on
recovery_target_timeline = 'latest'
fsync = off
logging_collector = on
log_directory = 'log'
log_filename = 'postgresql.log'
# a primary nobody runs: the "virtual IP" is nowhere while testing one node
primary_conninfo = 'host=$BASE/sock port=$((PORT + 1)) application_name=ocft1'
CONF
printf 'local all all trust\nlocal replication all trust\n' > "$BASE/data/pg_hba.conf"

# -- ocft
cp "${PGSQLMS_OCFT_CONFIG:-$REPO/ocf/pgsqlms.ocft}" "$BASE/configs/pgsqlms"
export PGSQLMS_OCFT_AGENT_ROOT="$BASE/agent"
export PGSQLMS_OCFT_PGBIN="$PGBIN"
export PGSQLMS_OCFT_DIR="$BASE"
export PGSQLMS_OCFT_PGPORT="$PORT"
export PGSQLMS_OCFT_FAKES="$REPO/tests/fakes"
ocft make -d "$BASE/configs" pgsqlms

set +e
timeout 1800 ocft test pgsqlms 2>&1 | tee "$BASE/ocft.out"
rc=${PIPESTATUS[0]}
set -e

# one line per case starts with "pgsqlms: <case> - "
cases=$(grep -c '^pgsqlms: .* - ' "$BASE/ocft.out" || true)
failed=$(grep -cE '^pgsqlms: .* - .*(FAILED|ERROR)' "$BASE/ocft.out" || true)
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1
fi
echo "ocft: $((cases - failed)) passed, $failed failed"
if [ "$rc" -ne 0 ] || [ "$failed" -ne 0 ]; then
  echo "ocft.sh: FAILED (ocft rc=$rc); agent log:" >&2
  tail -50 "$BASE/agent.log" 2>/dev/null >&2 || true
  exit 1
fi
