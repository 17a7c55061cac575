#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs what a fresh Debian 12
# machine needs, builds and installs the agent, then runs
#   1. unit tests and single-node integration tests on PostgreSQL 15 and 18
#      (cargo test: real servers, fake Pacemaker tools),
#   2. the Debian package, the man page, meta-data against the OCF DTD,
#      `pcs resource describe` and `vagrant validate` of vagrant/Vagrantfile,
#   3. the ocft cases of ocf/pgsqlms.ocft,
#   4. the RPM (rpmbuild -bb, binary prebuilt), the Debian 13 node rootfs
#      (cached) and the .deb installed in it with apt,
#   5. the 3-node namespace cluster scenarios (real Pacemaker + Corosync):
#      all of them on Debian 12 nodes with PostgreSQL 15, a subset on Debian
#      13 nodes (Pacemaker 3.0, pcs 0.12, PostgreSQL 17) and a subset with
#      PostgreSQL 18; unless PGSQLMS_SKIP_CLUSTER=1 (PGSQLMS_SKIP_DEBIAN13=1
#      skips what needs the Debian 13 rootfs). The full matrix is
#      tests/cluster/matrix.sh (README.md, "Continuous integration"); then a
#      bounded seeded fault soak (tests/cluster/soak.sh --ci).
# Run as root. Exits non-zero on the first failing stage.
set -euo pipefail
cd "$(dirname "$0")/.."

stage() { printf '\n=== %s ===\n' "$*"; }

# Cluster scenarios run on every commit besides the full Debian 12 suite
# (cargo test name filters; README.md, "Continuous integration", says why).
CI_SCENARIOS_13=${CI_SCENARIOS_13:-"s01_ s03_ s04_ s14_"}
CI_SCENARIOS_PG18=${CI_SCENARIOS_PG18:-"s03_ s04_ s05_"}

stage "setup"
bash tests/setup.sh

stage "lints (rustfmt, clippy with warnings as errors)"
cargo fmt --check
(cd bench/runner && cargo fmt --check && cargo clippy --locked --all-targets -- -D warnings)
cargo clippy --locked --all-targets -- -D warnings

stage "build the Debian package and install it"
deb=$(bash packaging/build-deb.sh "$(mktemp -d)")
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --reinstall "$deb" >/dev/null
dpkg -L pgsqlms | grep -qx /usr/lib/ocf/resource.d/rust/pgsqlms
man -P cat ocf_rust_pgsqlms | grep -q "maxlag"
echo "installed $(basename "$deb"); man ocf_rust_pgsqlms ok"

stage "unit and single-node integration tests (PostgreSQL 15 and 18)"
cargo test --locked 2>&1

stage "meta-data"
pgsqlms_md=$(mktemp)
/usr/lib/ocf/resource.d/rust/pgsqlms meta-data > "$pgsqlms_md"
# OCF 1.1's schema as pcs ships it (resource-agents' ra-api-1.dtd predates
# the `reloadable` attribute of OCF 1.1).
xmllint --noout --relaxng /usr/share/pcs/data/ocf-1.1.rng "$pgsqlms_md"
rm -f "$pgsqlms_md"
pcs resource describe ocf:rust:pgsqlms | grep -q "maxlag"
echo "meta-data valid against pcs's ocf-1.1.rng; pcs resource describe ok"

stage "Vagrantfile"
# Configuration only: no box, no VM, no network. --ignore-provider: no
# provider (VirtualBox, vagrant-libvirt) needs to be installed. Vagrant's
# state goes to a temporary directory, not to ~/.vagrant.d or vagrant/.vagrant.
vagrant_tmp=$(mktemp -d)
(cd vagrant && VAGRANT_HOME="$vagrant_tmp/home" VAGRANT_DOTFILE_PATH="$vagrant_tmp/dot" \
  vagrant validate --ignore-provider)
rm -rf "$vagrant_tmp"

stage "ocft"
bash tests/ocft.sh 15

stage "RPM (rpmbuild -bb, binary prebuilt)"
rpm_dir=$(mktemp -d)
rpm_file=$(bash packaging/build-rpm.sh "$rpm_dir")
rpm -qpl "$rpm_file" | grep -qx /usr/lib/ocf/resource.d/rust/pgsqlms
rpm -qpR "$rpm_file" | grep -q '^pacemaker-cli >= 2.1'
echo "built $(basename "$rpm_file")"
rm -rf "$rpm_dir"

if [ "${PGSQLMS_SKIP_DEBIAN13:-0}" != 1 ]; then
  stage "Debian 13 node rootfs (mmdebstrap, cached in /var/cache/pgsqlms)"
  t=$SECONDS
  rootfs=$(bash tests/cluster/rootfs.sh build)
  echo "$rootfs ready in $((SECONDS - t)) s"
  stage "Debian package installed with apt on Debian 13"
  bash packaging/test-deb-rootfs.sh "$rootfs" "$deb"
fi

if [ "${PGSQLMS_SKIP_CLUSTER:-0}" != 1 ]; then
  stage "3-node cluster scenarios, Debian 12 nodes, PostgreSQL 15 (all)"
  AGENT=ocf:rust:pgsqlms bash tests/cluster/run-scenarios.sh
  cp target/cluster-scenarios.txt target/cluster-scenarios-12-15.txt
  stage "fault soak (seeded random faults, bounded; seed printed)"
  AGENT=ocf:rust:pgsqlms bash tests/cluster/soak.sh --ci
  if [ "${PGSQLMS_SKIP_DEBIAN13:-0}" != 1 ]; then
    stage "3-node cluster scenarios, Debian 13 nodes (Pacemaker 3.0, pcs 0.12), PostgreSQL 17 (subset)"
    # shellcheck disable=SC2086 # lists of cargo test filters
    DEBIAN=13 AGENT=ocf:rust:pgsqlms bash tests/cluster/run-scenarios.sh $CI_SCENARIOS_13
    cp target/cluster-scenarios.txt target/cluster-scenarios-13-17.txt
  fi
  stage "3-node cluster scenarios, Debian 12 nodes, PostgreSQL 18 (subset)"
  # shellcheck disable=SC2086 # lists of cargo test filters
  PG_MAJOR=18 AGENT=ocf:rust:pgsqlms bash tests/cluster/run-scenarios.sh $CI_SCENARIOS_PG18
  cp target/cluster-scenarios.txt target/cluster-scenarios-12-18.txt
fi
stage "all tests passed"
