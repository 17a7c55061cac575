#!/bin/bash
# Tear the namespace cluster down: every process (nodes, hypervisor, commands
# run with on.sh), cgroup, network namespace, veth, bridge and mount it made,
# and its state directory. Idempotent: safe after a failed or partial run.
#   down.sh [--keep-state]    --keep-state: keep $STATE_DIR (logs, data)
set -u
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
need_args 0 "[--keep-state]" "$@"

keep=0
[ "${1:-}" = --keep-state ] && keep=1

# 1. Processes: kill every cgroup below ours at once, deepest first.
if [ -d "$CG_ROOT" ]; then
  find "$CG_ROOT" -mindepth 1 -depth -type d | while read -r cg; do
    echo 1 > "$cg/cgroup.kill" 2>/dev/null
  done
  echo 1 > "$CG_ROOT/cgroup.kill" 2>/dev/null
  for ((i = 0; i < 200; i++)); do
    grep -q '^populated 1' "$CG_ROOT/cgroup.events" 2>/dev/null || break
    sleep 0.05
  done
  grep -q '^populated 1' "$CG_ROOT/cgroup.events" 2>/dev/null &&
    log "warning: processes left in $CG_ROOT"
  find "$CG_ROOT" -depth -type d -exec rmdir {} \; 2>/dev/null
fi

# 2. Network: namespaces (with the node ends of the veths), bridges.
"$HARNESS_DIR/net.sh" destroy

# 3. Mounts: the nodes' mounts died with their mount namespaces; nothing is
#    mounted on the host except the netns files ip-netns removed above.
#    Clean anything left under the state directory all the same.
if [ -d "$STATE_DIR" ]; then
  awk -v d="$STATE_DIR" 'index($2, d) == 1 { print $2 }' /proc/self/mounts |
    sort -r | while read -r m; do umount -l "$m"; done
fi

# 4. State.
if [ "$keep" = 0 ]; then
  rm -rf "$STATE_DIR"
fi
exit 0
