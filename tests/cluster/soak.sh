#!/bin/bash
# Seeded fault soak on the namespace cluster (tests/cluster_soak.rs): N faults
# drawn from SEED, each injected while two writers commit through the VIP and
# a poller watches every node; after each one a bounded wait for a steady
# cluster and the checker. The same SEED replays the same fault sequence.
#   soak.sh N SEED              e.g. soak.sh 10 42 (SEED: a number or any text)
#   soak.sh --ci                the CI soak: seed from the commit id (printed),
#                               faults until SOAK_BUDGET_SECS (300) are spent
#   soak.sh --regressions       replay every seed of tests/soak/regressions.txt
#   soak.sh --plan N SEED       print the schedule only (no cluster)
# Settings: SOAK_KINDS=kill_primary,switchover (only those faults),
# SOAK_CONVERGE_SECS (120: bound of the wait for a steady cluster),
# SOAK_BUDGET_SECS (0: none), KEEP_CLUSTER=1 (leave the cluster up).
# Builds the cluster (up.sh) when there is no healthy one, removes it at the
# end. One summary line per soak (also in target/soak-results.txt); evidence
# in target/soak/seed-SEED-TIME/.
# Built optimised: the checker runs over the whole history after every fault,
# and unoptimised it took over a minute per fault once 70 faults were recorded.
set -u
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
need_root
cd "$REPO_DIR" || exit 1
mkdir -p target

soak() {   # N SEED
  echo "==== soak: $1 faults, seed $2, agent $AGENT"
  PGSQLMS_CLUSTER=1 SOAK_FAULTS=$1 SOAK_SEED=$2 AGENT=$AGENT \
    cargo test --locked --release --test cluster_soak soak -- --ignored --nocapture </dev/null 2>&1 |
    tee -a target/soak.log | grep -E '^(SOAK|FAULT|====|  +(evidence|repaired|injection)|\|)'
  return "${PIPESTATUS[0]}"
}

rc=0
case "${1:-}" in
  --ci)
    seed=$(git rev-parse HEAD 2>/dev/null) || seed=$(date +%F)
    echo "CI soak seed: $seed (replay: tests/cluster/soak.sh ${SOAK_CI_FAULTS:-40} $seed)"
    SOAK_BUDGET_SECS=${SOAK_BUDGET_SECS:-300} soak "${SOAK_CI_FAULTS:-40}" "$seed" || rc=1 ;;
  --plan)
    SOAK_FAULTS=${2:?N} SOAK_SEED=${3:?SEED} cargo test --locked --test cluster_soak plan -- \
      --ignored --nocapture 2>&1 | grep -E '^(seed|  )'
    exit ;;
  --regressions)
    while read -r seed n kinds; do
      case "$seed" in ''|'#'*) continue ;; esac
      kinds=${kinds%%#*}
      SOAK_KINDS=${kinds// /} soak "$n" "$seed" || rc=1
    done < tests/soak/regressions.txt ;;
  [0-9]*)
    [ -n "${2:-}" ] || die "usage: ${0##*/} N SEED | --ci | --regressions"
    soak "$1" "$2" || rc=1 ;;
  *) die "usage: ${0##*/} N SEED | --ci | --regressions" ;;
esac
echo "==== soak results"
tail -n 20 target/soak-results.txt 2>/dev/null
if [ "${KEEP_CLUSTER:-0}" != 1 ]; then
  "$HARNESS_DIR/down.sh"
fi
exit "$rc"
