# shellcheck shell=bash
# Helpers of vagrant/provision/*.sh (sourced, not run).
#
# Those scripts run as root ON one node: a Vagrant VM (vagrant/Vagrantfile)
# or a node of the namespace cluster (tests/cluster/up.sh runs them inside
# the node with on_node). They read environment variables only, never a
# file of settings, so both callers drive them the same way; each script
# lists the variables it reads.

die() { echo "${0##*/}: $*" >&2; exit 1; }
log() { echo "${0##*/}: $*"; }

# require VAR...: fail unless every VAR is set and not empty.
require() {
  local v
  for v; do
    [ -n "${!v:-}" ] || die "$v is required (see the top of ${0##*/})"
  done
}

# Node k (1-based position in $NODES) has address $NET_PREFIX.(NODE_ADDR_BASE+k).
node_index() {
  local i=1 n
  for n in $NODES; do
    [ "$n" = "$1" ] && { echo "$i"; return 0; }
    i=$((i + 1))
  done
  return 1
}
node_addr() {
  local i
  i=$(node_index "$1") || die "node '$1' is not in NODES ($NODES)"
  echo "$NET_PREFIX.$((NODE_ADDR_BASE + i))"
}

# write_file MODE OWNER[:GROUP] PATH < content
# The content goes to a private temporary file of the same directory, renamed
# over PATH once complete: no reader sees a partial file, no secret is ever
# world-readable. Not for a file that is a mount point (see corosync.sh).
write_file() {
  local mode=$1 owner=$2 path=$3 tmp
  tmp=$(mktemp "$path.XXXXXX")
  cat > "$tmp"
  chown "$owner" "$tmp"
  chmod "$mode" "$tmp"
  mv -f "$tmp" "$path"
}

as_postgres() { runuser -u postgres -- "$@"; }

# wait_until SECONDS COMMAND...: poll COMMAND every 0.2 s; 1 on timeout.
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}
