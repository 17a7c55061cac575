#!/usr/bin/env bash
# Install a pgsqlms .deb with apt in a throw-away copy of a Debian root
# filesystem (tests/cluster/rootfs.sh: Debian 13, Pacemaker 3.0, pcs 0.12)
# and check it there: files in place, the agent runs (meta-data), pcs reads
# its meta-data, the man page. The rootfs itself is untouched (an overlay
# with a temporary upper directory, in a private mount namespace).
#   packaging/test-deb-rootfs.sh ROOTFS DEB
set -euo pipefail
ROOTFS=${1:?usage: test-deb-rootfs.sh ROOTFS DEB}
DEB=$(readlink -f "${2:?usage: test-deb-rootfs.sh ROOTFS DEB}")
[ -r "$ROOTFS/etc/debian_version" ] || { echo "no Debian rootfs in $ROOTFS" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir "$TMP/upper" "$TMP/work" "$TMP/root"
cp "$DEB" "$TMP/pgsqlms.deb"
# shellcheck disable=SC2016 # expanded by the inner shell
unshare --mount --propagation private -- bash -euo pipefail -c '
  TMP=$1 ROOTFS=$2
  R=$TMP/root
  mount -t overlay overlay -o "lowerdir=$ROOTFS,upperdir=$TMP/upper,workdir=$TMP/work" "$R"
  mount -t proc proc "$R/proc"
  mount --rbind /dev "$R/dev"
  mkdir -p "$R/tmp/deb" && mount --bind "$TMP" "$R/tmp/deb"
  in_root() { chroot "$R" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
  echo "Debian $(cat "$R/etc/debian_version"), $(in_root pacemakerd --version | head -1), pcs $(in_root pcs --version)"
  # apt resolves the dependencies against the rootfs packages (all there:
  # nothing to download; else apt gets them from trixie, or says what is missing).
  in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    /tmp/deb/pgsqlms.deb | tail -3
  in_root dpkg -L pgsqlms | grep -qx /usr/lib/ocf/resource.d/rust/pgsqlms
  in_root /usr/lib/ocf/resource.d/rust/pgsqlms meta-data | grep -q "<resource-agent name=\"pgsqlms\""
  in_root pcs resource describe ocf:rust:pgsqlms | grep -q maxlag
  in_root sh -c "zcat /usr/share/man/man7/ocf_rust_pgsqlms.7.gz | grep -q maxlag"
  echo "pgsqlms $(in_root dpkg-query -W -f "\${Version}" pgsqlms) installed with apt, meta-data, pcs describe and man page ok"
' inner "$TMP" "$ROOTFS"
