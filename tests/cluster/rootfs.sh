#!/bin/bash
# Build (or reuse) the Debian root filesystem the namespace nodes run on when
# DEBIAN=13: a trixie userland (Pacemaker 3.0, Corosync 3.1, pcs 0.12,
# PostgreSQL 17, resource-agents, resource-agents-paf) made from Debian's
# packages with mmdebstrap. The host stays Debian 12; node-init.sh mounts an
# overlay of this tree (read-only lower) and a per-node upper directory, and
# pivots into it.
#
#   tests/cluster/rootfs.sh [build|path|check]     (default: build)
#     build   build it unless the cached one is current; print its path
#     path    print the path (no build)
#     check   exit 0 when the cache is current, 1 otherwise
#
# Cache: $ROOTFS_CACHE/rootfs-<suite> (default /var/cache/pgsqlms). It is
# current when its stamp matches the hash of this script (the package list
# and every build step live here: changing them rebuilds) and of the mirror.
# A build goes to a new directory, renamed over the old one once complete;
# never while a cluster has it mounted.
#
# Environment: DEBIAN_SUITE (trixie), DEBIAN_MIRROR (http://deb.debian.org/debian),
# ROOTFS_CACHE.
set -euo pipefail
HERE=$(dirname "$(readlink -f "$0")")

SUITE=${DEBIAN_SUITE:-trixie}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${ROOTFS_CACHE:-/var/cache/pgsqlms}
ROOTFS=$CACHE/rootfs-$SUITE
STAMP=$ROOTFS/.pgsqlms-rootfs-stamp

# What a node runs. mount, pidof (sysvinit-utils) and hostname are no longer
# essential in trixie.
PKGS=(
  postgresql-17 postgresql-common
  corosync pacemaker pacemaker-cli-utils pcs resource-agents resource-agents-paf
  iproute2 procps psmisc util-linux mount sysvinit-utils hostname python3 ca-certificates
  strace  # bench/runner --forks counts the monitor's processes under strace
)

# The host's ids of the users and groups the node directories are owned by
# (up.sh creates them on the host with chown): the rootfs must use the same
# numbers. They are added after the essential packages, before the others,
# so the packages' own adduser calls find them.
SHARED_USERS=(postgres hacluster)
SHARED_GROUPS=(postgres haclient ssl-cert)

want_stamp() {
  { sha256sum "$HERE/rootfs.sh" | cut -d' ' -f1; echo "$SUITE $MIRROR"
    for u in "${SHARED_USERS[@]}"; do getent passwd "$u"; done
    for g in "${SHARED_GROUPS[@]}"; do getent group "$g" | cut -d: -f1-3; done
  } | sha256sum | cut -d' ' -f1
}
is_current() { [ -r "$STAMP" ] && [ "$(cat "$STAMP")" = "$(want_stamp)" ]; }

case "${1:-build}" in
  path) echo "$ROOTFS"; exit 0 ;;
  check) is_current; exit $? ;;
  build) ;;
  *) echo "usage: ${0##*/} [build|path|check]" >&2; exit 2 ;;
esac

[ "$(id -u)" = 0 ] || { echo "${0##*/}: must run as root" >&2; exit 1; }
if is_current; then
  echo "$ROOTFS"
  exit 0
fi
if grep -qF "lowerdir=$ROOTFS" /proc/self/mounts 2>/dev/null ||
   grep -qsF "$ROOTFS" /proc/*/mountinfo 2>/dev/null; then
  echo "${0##*/}: $ROOTFS is out of date but in use (tests/cluster/down.sh first)" >&2
  exit 1
fi
command -v mmdebstrap >/dev/null || { echo "${0##*/}: mmdebstrap missing (tests/setup.sh)" >&2; exit 1; }

mkdir -p "$CACHE"
NEW=$ROOTFS.new
rm -rf "$NEW"
mkdir -p "$NEW"
t0=$SECONDS
echo "${0##*/}: building $ROOTFS ($SUITE from $MIRROR) ..." >&2

# Essential hook: the shared users and groups, with the host's ids.
ids_hook=$(mktemp)
trap 'rm -f "$ids_hook"' EXIT
{
  echo 'set -e; r=$1'
  for g in "${SHARED_GROUPS[@]}"; do
    line=$(getent group "$g" | cut -d: -f1-3)
    [ -n "$line" ] || continue
    echo "grep -q '^$g:' \"\$r/etc/group\" || { echo '$line:' >> \"\$r/etc/group\"; echo '$g:!::' >> \"\$r/etc/gshadow\"; }"
  done
  for u in "${SHARED_USERS[@]}"; do
    line=$(getent passwd "$u")
    [ -n "$line" ] || continue
    echo "grep -q '^$u:' \"\$r/etc/passwd\" || { echo '$line' >> \"\$r/etc/passwd\"; echo '$u:!:19000::::::' >> \"\$r/etc/shadow\"; }"
  done
  # postgres is in ssl-cert on Debian
  echo "sed -i -E '/^ssl-cert:/{/[:,]postgres(,|\$)/!{s/:\$/:postgres/;t;s/\$/,postgres/}}' \"\$r/etc/group\""
} > "$ids_hook"

# Customize hook: no Debian "main" cluster (Pacemaker owns PostgreSQL; the
# node's /var/lib/postgresql is its own disk anyway), the directory the host's
# agent binary is bind-mounted on, and no package cache.
# shellcheck disable=SC2016 # expanded by mmdebstrap's shell
mmdebstrap --variant=apt --mode=root --components=main \
  --aptopt='APT::Install-Recommends "false"' \
  --include="$(IFS=,; echo "${PKGS[*]}")" \
  --essential-hook="bash $ids_hook \"\$1\"" \
  --customize-hook='chroot "$1" sh -c "pg_lsclusters -h | while read v c _; do pg_dropcluster \$v \$c; done"' \
  --customize-hook='mkdir -p "$1/usr/lib/ocf/resource.d/rust"' \
  --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb' \
  "$SUITE" "$NEW" "$MIRROR" >&2

for u in "${SHARED_USERS[@]}"; do
  [ "$(chroot "$NEW" id -u "$u")" = "$(id -u "$u")" ] ||
    { echo "${0##*/}: $u has another uid in the rootfs" >&2; exit 1; }
done
chroot "$NEW" sh -c 'command -v pidof && command -v hostname && command -v pcs && pacemakerd --version | head -1' >&2

want_stamp > "$NEW/.pgsqlms-rootfs-stamp"
rm -rf "$ROOTFS.old"
[ ! -e "$ROOTFS" ] || mv "$ROOTFS" "$ROOTFS.old"
mv "$NEW" "$ROOTFS"
rm -rf "$ROOTFS.old"
echo "${0##*/}: built $ROOTFS in $((SECONDS - t0))s ($(du -sh "$ROOTFS" | cut -f1))" >&2
echo "$ROOTFS"
