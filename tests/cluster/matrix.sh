#!/bin/bash
# The support matrix of README.md, cell by cell: the whole scenario suite
# (tests/cluster/run-scenarios.sh) on every node release and PostgreSQL
# version tested in the cluster. Too long for every commit (about 19 min per
# cell on 2 cores, more when scenarios fail); tests/run.sh runs a subset of
# the Debian 13 and PostgreSQL 18 cells (see README.md, "Continuous
# integration").
#   tests/cluster/matrix.sh                  # every cell
#   tests/cluster/matrix.sh 13/17 12/18      # some cells (DEBIAN/PG_MAJOR)
#   FILTER="s03 s04" tests/cluster/matrix.sh # some scenarios in every cell
# Results: target/cluster-matrix.txt (one line per cell + its SCENARIO lines),
# full logs in target/cluster-matrix-<cell>.log. Run as root, alone (it uses
# the one namespace cluster of the machine).
set -u
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
need_root
cd "$REPO_DIR" || exit 1
mkdir -p target
CELLS=("$@")
[ ${#CELLS[@]} -gt 0 ] || CELLS=(12/15 12/18 13/17 13/18)
out=target/cluster-matrix.txt
echo "# cluster matrix $(date '+%F %T') agent ${AGENT} $(git rev-parse --short HEAD 2>/dev/null)" >> "$out"
rc=0
for cell in "${CELLS[@]}"; do
  deb=${cell%/*} pg=${cell#*/}
  t0=$SECONDS
  # shellcheck disable=SC2086 # FILTER: cargo test name filters
  DEBIAN=$deb PG_MAJOR=$pg "$HARNESS_DIR/run-scenarios.sh" ${FILTER:-} \
    > "target/cluster-matrix-$deb-$pg.log" 2>&1
  r=$?
  pass=$(grep -c ' PASS' target/cluster-scenarios.txt)
  fail=$(grep -c ' FAIL' target/cluster-scenarios.txt)
  skip=$(grep -c ' SKIP' target/cluster-scenarios.txt)
  verdict=PASS; [ "$r" = 0 ] || { verdict=FAIL; rc=1; }
  echo "CELL debian=$deb pg=$pg $verdict pass=$pass fail=$fail skip=$skip $((SECONDS - t0))s" | tee -a "$out"
  sed 's/^/  /' target/cluster-scenarios.txt >> "$out"
done
exit "$rc"
