#!/bin/bash
# Packages of a cluster node (Debian 12): PostgreSQL, Corosync, Pacemaker,
# pcs, resource-agents (IPaddr2), PAF (ocf:heartbeat:pgsqlms, for
# comparison) and, optionally, this project's agent from a .deb.
# Idempotent: installs what is missing. Run as root.
#
# Environment:
#   PG_MAJOR             PostgreSQL major version packaged by Debian (default 15)
#   PGSQLMS_DEB          optional: a pgsqlms_<version>_<arch>.deb (from
#                        packaging/build-deb.sh) to install, again on every run
#   DROP_DEBIAN_CLUSTER  1 on a machine of its own (a VM): Debian must not
#                        create or start its "main" cluster, and
#                        postgresql.service is disabled and masked, since
#                        Pacemaker owns PostgreSQL. Default 0: never on a
#                        shared host (the namespace nodes share the host's
#                        /etc/postgresql and its Debian cluster, if any).
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$(readlink -f "$0")")/common.sh"

PG_MAJOR=${PG_MAJOR:-15}
DROP_DEBIAN_CLUSTER=${DROP_DEBIAN_CLUSTER:-0}
PKGS=(
  "postgresql-$PG_MAJOR"
  corosync pacemaker pacemaker-cli-utils pcs resource-agents resource-agents-paf
  iproute2 procps psmisc util-linux
)

export DEBIAN_FRONTEND=noninteractive
updated=0
apt_install() {           # apt_install PKG...: install those not installed yet
  local p missing=()
  for p; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ "${#missing[@]}" -gt 0 ] || return 0
  if [ "$updated" = 0 ]; then
    apt-get update -qq
    updated=1
  fi
  log "installing ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

if [ "$DROP_DEBIAN_CLUSTER" = 1 ]; then
  # postgresql-common first, told not to create a cluster when the server
  # package is installed.
  apt_install postgresql-common
  sed -i -E 's/^[#[:space:]]*create_main_cluster[[:space:]]*=.*/create_main_cluster = false/' \
    /etc/postgresql-common/createcluster.conf
fi

apt_install "${PKGS[@]}"

if [ "$DROP_DEBIAN_CLUSTER" = 1 ]; then
  # A main cluster made before createcluster.conf said no (e.g. packages
  # preinstalled in the box). Ours has its configuration in its data
  # directory, Debian's in /etc/postgresql: never drop ours.
  if [ -d "/etc/postgresql/$PG_MAJOR/main" ]; then
    [ ! -e "/var/lib/postgresql/$PG_MAJOR/main/postgresql.conf" ] ||
      die "/var/lib/postgresql/$PG_MAJOR/main has its own postgresql.conf: not dropping it"
    log "dropping Debian's cluster $PG_MAJOR/main"
    pg_dropcluster --stop "$PG_MAJOR" main
  fi
  systemctl -q disable --now postgresql.service || true
  systemctl -q mask postgresql.service
fi

if [ -n "${PGSQLMS_DEB:-}" ]; then
  [ -r "$PGSQLMS_DEB" ] || die "PGSQLMS_DEB: cannot read $PGSQLMS_DEB"
  log "installing $(basename "$PGSQLMS_DEB")"
  # apt takes a local file when the argument contains a slash.
  apt-get install -y -qq --reinstall "$(readlink -f "$PGSQLMS_DEB")" >/dev/null
fi
