#!/usr/bin/env bash
# Long fault soak on the namespace cluster (tests/cluster/soak.sh; default 100
# faults) and the README's "Fault soak" section, between the soak markers.
#   sudo bash bench/soak.sh [N [SEED]]     run, then update README.md
#   sudo bash bench/soak.sh --no-run       README.md from the newest report
#   sudo bash bench/soak.sh --from DIR     README.md from a soak's evidence
#                                          directory (target/soak/seed-...)
# SEED defaults to today's date (printed; the same SEED replays the same
# faults). Reports: bench/results/soak-*.md (not committed); evidence of the
# run under target/soak/. About 1 minute per fault.
set -euo pipefail
cd "$(dirname "$0")/.."
run=1 args=() ev=
usage() { echo "usage: ${0##*/} [N [SEED]] | --no-run | --from EVIDENCE_DIR" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --no-run) run=0 ;;
    --from) run=0; ev=${2:-}; [ -d "$ev" ] || usage; shift ;;
    -*) usage ;;
    *) args+=("$1") ;;
  esac
  shift
done
n=${args[0]:-100}
seed=${args[1]:-$(date +%F)}
mkdir -p bench/results
if [ "$run" = 1 ]; then
  start=$(date +%s)
  bash tests/cluster/soak.sh "$n" "$seed" || true     # a failing soak is a result too
  # shellcheck disable=SC2012 # our own directory names
  ev=$(ls -td target/soak/seed-*/ | head -1)
  [ "$(stat -c %Y "$ev")" -ge "$start" ] || { echo "no soak evidence newer than this run" >&2; exit 1; }
fi
if [ -n "$ev" ]; then                 # a report from the soak's evidence
  summary=$(sed 's/ evidence=.*//' "$ev/summary.txt")
  {
    echo "# pgsqlms fault soak, $(date -r "$ev/summary.txt" '+%F %T'), seed $(sed -n 's/^Soak seed \([0-9]*\).*/\1/p' "$ev/report.md"), $(grep -o 'faults=[0-9/]*' <<<"$summary")"
    echo
    echo "\`$summary\`"
    echo
    sed 1,2d "$ev/report.md"
  } > "bench/results/soak-$(date -r "$ev/summary.txt" +%Y%m%d-%H%M%S).md"
fi
# shellcheck disable=SC2012
report=$(ls bench/results/soak-*.md | sort | tail -1)
python3 - "$report" <<'PY'
import re, sys
readme = open("README.md").read()
report = open(sys.argv[1]).read().strip()
head = report.splitlines()[0].replace("# ", "")
body = report.split("\n", 1)[1].strip()
block = (f"<!-- soak:start -->\n{head} (`sudo bash bench/soak.sh` regenerates this):\n\n"
         f"{body}\n<!-- soak:end -->")
if "<!-- soak:start -->" not in readme:
    sys.exit("README.md has no <!-- soak:start --> marker")
readme = re.sub(r"<!-- soak:start -->.*?<!-- soak:end -->", lambda _: block, readme, flags=re.S)
open("README.md", "w").write(readme)
PY
echo "README.md updated from $report"
