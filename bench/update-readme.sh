#!/usr/bin/env bash
# Regenerate the README's "Measured" section: runs bench/actions.sh and
# bench/cluster.sh (unless --no-run, which reuses the newest reports) and
# copies their tables into README.md between the bench markers.
#   sudo bash bench/update-readme.sh [--no-run] [--replace]
# --replace is passed to bench/cluster.sh (tears down a running namespace
# cluster). Run as root; the cluster benchmark takes about 25 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
run=1 replace=()
for a in "$@"; do
  case "$a" in
    --no-run) run=0 ;;
    --replace) replace=(--replace) ;;
    *) echo "usage: ${0##*/} [--no-run] [--replace]" >&2; exit 2 ;;
  esac
done
if [ "$run" = 1 ]; then
  bash bench/actions.sh >/dev/null
  bash bench/cluster.sh "${replace[@]}" >/dev/null
fi
# shellcheck disable=SC2012 # our own file names, dated
actions=$(ls bench/results/actions-*.md | sort | tail -1)
# shellcheck disable=SC2012
cluster=$(ls -d bench/results/cluster-*/ | sort | tail -1)report.md
python3 - "$actions" "$cluster" <<'PY'
import re, sys
readme = open("README.md").read()

report = open(sys.argv[1]).read()
head = report.splitlines()[0].replace("# ", "")
table = re.search(r"^Medians.*?\n\n(\|.*?)\n\n", report, re.S | re.M).group(1)
fakes = "Pacemaker tools were fakes for both agents" if "FAKES" in report else "real Pacemaker tools"
block = (f"<!-- bench:actions:start -->\n{head} ({fakes}; medians, wall and CPU in ms, "
         f"RSS in MiB; `bash bench/update-readme.sh` regenerates this):\n\n{table}\n<!-- bench:actions:end -->")
readme = re.sub(r"<!-- bench:actions:start -->.*?<!-- bench:actions:end -->", lambda _: block, readme, flags=re.S)

report = open(sys.argv[2]).read().strip()
body = report.split("\n", 1)[1].strip()          # without the "# title" line
head = report.splitlines()[0].replace("# ", "")
block = f"<!-- bench:cluster:start -->\n{head}:\n\n{body}\n<!-- bench:cluster:end -->"
readme = re.sub(r"<!-- bench:cluster:start -->.*?<!-- bench:cluster:end -->", lambda _: block, readme, flags=re.S)
open("README.md", "w").write(readme)
PY
echo "README.md updated from $actions and $cluster"
