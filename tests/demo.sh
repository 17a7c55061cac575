#!/usr/bin/env bash
# README's first command: install what is needed, build and install the agent,
# bring up the 3-node namespace cluster running ocf:rust:pgsqlms, print
# `crm_mon -1`. Tear it down with tests/cluster/down.sh.
#   sudo bash tests/demo.sh                 # Debian 12 nodes (the host's packages)
#   sudo DEBIAN=13 bash tests/demo.sh       # Debian 13 nodes: Pacemaker 3.0, PostgreSQL 17
#                                           # (first run builds the rootfs, ~6 min)
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup.sh
make install >/dev/null
exec bash tests/cluster/up.sh "$@"
