#!/usr/bin/env bash
# Regenerate the README's "Measured" section: runs bench/actions.sh (unless
# --no-run, which reuses the newest report) and copies its main table into
# README.md between the bench markers.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${1:-}" = "--no-run" ] || bash bench/actions.sh >/dev/null
report=$(ls -t bench/results/actions-*.md | head -1)
python3 - "$report" <<'PY'
import re, sys
report = open(sys.argv[1]).read()
head = report.splitlines()[0].replace("# ", "")
table = re.search(r"^Medians.*?\n\n(\|.*?)\n\n", report, re.S | re.M).group(1)
fakes = "Pacemaker tools were fakes for both agents" if "FAKES" in report else "real Pacemaker tools"
block = (f"<!-- bench:actions:start -->\n{head} ({fakes}; medians, wall and CPU in ms, "
         f"RSS in MiB; `bash bench/update-readme.sh` regenerates this):\n\n{table}\n<!-- bench:actions:end -->")
readme = open("README.md").read()
readme = re.sub(r"<!-- bench:actions:start -->.*?<!-- bench:actions:end -->", lambda _: block, readme, flags=re.S)
open("README.md", "w").write(readme)
PY
echo "README.md updated from $report"
