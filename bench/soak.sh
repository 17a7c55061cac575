#!/usr/bin/env bash
# Long fault soak on the namespace cluster (tests/cluster/soak.sh; default 100
# faults) and the README's "Fault soak" section, between the soak markers.
#   sudo bash bench/soak.sh [N [SEED]]     run, then update README.md
#   sudo bash bench/soak.sh --no-run       README.md from the newest report
# SEED defaults to today's date (printed; the same SEED replays the same
# faults). Reports: bench/results/soak-*.md (not committed); evidence of the
# run under target/soak/. About 1 minute per fault.
set -euo pipefail
cd "$(dirname "$0")/.."
run=1 args=()
for a in "$@"; do
  case "$a" in
    --no-run) run=0 ;;
    -*) echo "usage: ${0##*/} [N [SEED]] | --no-run" >&2; exit 2 ;;
    *) args+=("$a") ;;
  esac
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
  {
    echo "# pgsqlms fault soak, $(date '+%F %T'), seed \`$seed\`, $n faults"
    echo
    sed 's/ evidence=.*//' "$ev/summary.txt"
    echo
    sed 1,2d "$ev/report.md"
  } > "bench/results/soak-$(date +%Y%m%d-%H%M%S).md"
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
