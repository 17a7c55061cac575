#!/usr/bin/env bash
# Build the Debian package: ./pgsqlms_<version>_<arch>.deb in the repository
# root (or in $1). Installs the agent where Pacemaker finds ocf:rust:pgsqlms,
# and the ocf_rust_pgsqlms(7) manual page.
#   bash packaging/build-deb.sh && sudo apt install ./pgsqlms_*.deb
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-$PWD}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
ARCH=$(dpkg --print-architecture)
STAGE=$(mktemp -d)
chmod 0755 "$STAGE"
trap 'rm -rf "$STAGE"' EXIT

make install DESTDIR="$STAGE" >/dev/null
install -d "$STAGE/usr/share/doc/pgsqlms" "$STAGE/DEBIAN"
install -m 0644 README.md "$STAGE/usr/share/doc/pgsqlms/README.md"
cp -r pcs-examples "$STAGE/usr/share/doc/pgsqlms/pcs-examples"
# The license text of LICENSE (from "Permission"), as a DEP-5 paragraph.
{
  printf 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n'
  printf 'Upstream-Name: pgsqlms\n\nFiles: *\nCopyright: 2026 pgsqlms developers\nLicense: PostgreSQL\n'
  tail -n +5 LICENSE | sed -e 's/^$/./' -e 's/^/ /'
} > "$STAGE/usr/share/doc/pgsqlms/copyright"
printf 'pgsqlms (%s) unstable; urgency=medium\n\n  * Release %s.\n\n -- pgsqlms maintainers <pgsqlms@localhost>  %s\n' \
  "$VERSION" "$VERSION" "$(date -R -d @"${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")" \
  | gzip -9n > "$STAGE/usr/share/doc/pgsqlms/changelog.Debian.gz"
echo /etc/default/pgsqlms-health > "$STAGE/DEBIAN/conffiles"
SIZE=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
cat > "$STAGE/DEBIAN/control" <<EOC
Package: pgsqlms
Version: $VERSION
Architecture: $ARCH
Maintainer: pgsqlms maintainers <pgsqlms@localhost>
Installed-Size: $SIZE
Depends: libc6 (>= 2.34), libgcc-s1, pacemaker-cli-utils (>= 2.1)
Recommends: pacemaker, corosync, pcs, postgresql (>= 12) | postgresql-common
Section: admin
Priority: optional
Description: PostgreSQL high availability for Pacemaker (OCF agent ocf:rust:pgsqlms)
 Resource agent running PostgreSQL 12+ as a Pacemaker promotable clone: one
 primary, hot standbys in streaming replication, automatic failover with an
 election of the most advanced standby, safe switchover, and cheap monitors.
 Drop-in replacement for PAF (ocf:heartbeat:pgsqlms).
EOC
DEB="$OUT/pgsqlms_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$DEB" >/dev/null
echo "$DEB"
