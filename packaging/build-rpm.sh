#!/usr/bin/env bash
# Build the RPM from packaging/pgsqlms.spec with the binary prebuilt here
# (`make install DESTDIR=...`): ./pgsqlms-<version>-1.<arch>.rpm in the
# repository root (or in $1). Runs on Debian with its `rpm` package
# (tests/setup.sh installs it): --nodeps, since the BuildRequires (cargo,
# rust) are Debian packages rpm does not know about; the spec's own %build
# (cargo) is what an RPM distribution runs from the source tarball. No
# brp-compress: the man page is compressed already, and Debian's copy of
# that script needs bash where rpm runs it with /bin/sh.
#   bash packaging/build-rpm.sh && rpm -qpl pgsqlms-*.rpm
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-$PWD}
mkdir -p "$OUT"
TOP=$(mktemp -d)
trap 'rm -rf "$TOP"' EXIT
make install DESTDIR="$TOP/stage" PREFIX=/usr UNIT_DIR=/usr/lib/systemd/system DEFAULT_DIR=/etc/sysconfig >/dev/null
rpmbuild -bb --nodeps --quiet \
  --define "_topdir $TOP/rpmbuild" \
  --define "pgsqlms_prebuilt $TOP/stage" \
  --define "pgsqlms_srcdir $PWD" \
  --define "__brp_compress %{nil}" \
  packaging/pgsqlms.spec >/dev/null
rpm=$(find "$TOP/rpmbuild/RPMS" -name 'pgsqlms-*.rpm' | head -1)
[ -n "$rpm" ] || { echo "build-rpm.sh: no RPM built" >&2; exit 1; }
cp "$rpm" "$OUT/"
echo "$OUT/$(basename "$rpm")"
