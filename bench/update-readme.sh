#!/usr/bin/env bash
# Regenerate the README's "Measured" section: runs bench/actions.sh and
# bench/cluster.sh (unless --no-run, which reuses the newest reports) and
# copies their tables into README.md between the bench markers.
#   sudo bash bench/update-readme.sh [--no-run] [--replace]
#   bash bench/update-readme.sh --cluster bench/results/cluster-<date>/ --block NAME
# --replace is passed to bench/cluster.sh (tears down a running namespace
# cluster). Run as root; the cluster benchmark takes about 25 minutes.
# --cluster DIR --block NAME copies only that cluster report (no run) into
# the README between <!-- bench:NAME:start --> and <!-- bench:NAME:end -->:
# runs of some scenarios only (BENCH_SCENARIOS) or on Debian 13 nodes have
# blocks of their own (cluster-startup, cluster-debian13), next to the
# full run's (cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
run=1 replace=() only='' block=cluster
usage() { echo "usage: ${0##*/} [--no-run] [--replace] | --cluster DIR --block NAME" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --no-run) run=0 ;;
    --replace) replace=(--replace) ;;
    --cluster) [ $# -ge 2 ] || usage; only=${2%/}/; shift ;;
    --block) [ $# -ge 2 ] || usage; block=$2; shift ;;
    *) usage ;;
  esac
  shift
done
if [ -n "$only" ]; then
  [ -r "${only}report.md" ] || { echo "${0##*/}: no ${only}report.md" >&2; exit 1; }
  grep -q "<!-- bench:$block:start -->" README.md || { echo "${0##*/}: no bench:$block markers in README.md" >&2; exit 1; }
  python3 - "${only}report.md" "$block" <<'PY'
import re, sys
readme = open("README.md").read()
report = open(sys.argv[1]).read().strip()
name = sys.argv[2]
body = report.split("\n", 1)[1].strip()
head = report.splitlines()[0].replace("# ", "")
block = f"<!-- bench:{name}:start -->\n{head}:\n\n{body}\n<!-- bench:{name}:end -->"
readme = re.sub(rf"<!-- bench:{re.escape(name)}:start -->.*?<!-- bench:{re.escape(name)}:end -->",
                lambda _: block, readme, flags=re.S)
open("README.md", "w").write(readme)
PY
  echo "README.md block $block updated from ${only}report.md"
  exit 0
fi
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
