#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs what a fresh Debian 12
# machine needs, builds and installs the agent, then runs
#   1. unit tests and single-node integration tests on PostgreSQL 15 and 18
#      (cargo test: real servers, fake Pacemaker tools),
#   2. the Debian package, the man page, meta-data against the OCF DTD,
#      `pcs resource describe` and `vagrant validate` of vagrant/Vagrantfile,
#   3. the ocft cases of ocf/pgsqlms.ocft,
#   4. the 3-node namespace cluster scenarios (real Pacemaker + Corosync),
#      then a bounded seeded fault soak (tests/cluster/soak.sh --ci),
#      unless PGSQLMS_SKIP_CLUSTER=1.
# Run as root. Exits non-zero on the first failing stage.
set -euo pipefail
cd "$(dirname "$0")/.."

stage() { printf '\n=== %s ===\n' "$*"; }

stage "setup"
bash tests/setup.sh

stage "lints (rustfmt, clippy with warnings as errors)"
cargo fmt --check
(cd bench/runner && cargo fmt --check)
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
(cd /usr/share/resource-agents && xmllint --noout --dtdvalid ra-api-1.dtd "$pgsqlms_md")
rm -f "$pgsqlms_md"
pcs resource describe ocf:rust:pgsqlms | grep -q "maxlag"
echo "meta-data valid against ra-api-1.dtd; pcs resource describe ok"

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

if [ "${PGSQLMS_SKIP_CLUSTER:-0}" != 1 ]; then
  stage "3-node cluster scenarios (real Pacemaker, Corosync, fencing)"
  AGENT=ocf:rust:pgsqlms bash tests/cluster/run-scenarios.sh
  stage "fault soak (seeded random faults, ~10 min; seed printed)"
  AGENT=ocf:rust:pgsqlms bash tests/cluster/soak.sh --ci
fi
stage "all tests passed"
