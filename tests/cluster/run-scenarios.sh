#!/bin/bash
# Run the failure scenarios of tests/cluster_scenarios.rs against the
# namespace cluster, then tear the cluster down (KEEP_CLUSTER=1 keeps it).
#   tests/cluster/run-scenarios.sh [cargo test filters...]
#   AGENT=ocf:heartbeat:pgsqlms tests/cluster/run-scenarios.sh
#   tests/cluster/run-scenarios.sh s03_crash_primary s04_switchover
# Results: one SCENARIO line per scenario, also in target/cluster-scenarios.txt;
# full output in target/cluster-scenarios.log; logs of failed scenarios in
# target/cluster-logs/.
set -u
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
need_args 0 "[cargo test filters...]" "$@"
cd "$REPO_DIR" || exit 1
mkdir -p target
: > target/cluster-scenarios.txt
export PGSQLMS_CLUSTER=1 AGENT DEBIAN PG_MAJOR
t0=$SECONDS
cargo test --locked --test cluster_scenarios -- --ignored --nocapture --test-threads=1 "$@" 2>&1 |
  tee target/cluster-scenarios.log
rc=${PIPESTATUS[0]}
echo
echo "==== results ($((SECONDS - t0)) s, agent $AGENT)"
cat target/cluster-scenarios.txt
if [ "${KEEP_CLUSTER:-0}" != 1 ]; then
  "$HARNESS_DIR/down.sh"
fi
exit "$rc"
