# Shared code of the fake Pacemaker tools (sourced, not run).
#
# Store, under $PGSQLMS_FAKE_DIR:
#   nodes               cluster node names, one a line (node id = line number)
#   offline             optional: names of nodes that are down (not in the
#                       partition; in_ccm="false" crmd="offline" in the CIB)
#   local_node          optional: what `crm_node --name` prints when
#                       OCF_RESKEY_CRM_meta_on_node is unset (default: uname -n)
#   attrs/<node>/<name>     CIB transient node attributes (status section)
#   perm/<node>/<name>      permanent node attributes (configuration section)
#   crm_config/<name>       cluster properties (crm_attribute --type crm_config)
#   private/<node>/<name>   attrd-only (--private) attributes; an empty file is
#                           a deleted value that attrd still lists (value="")
#   fail/<tool>         optional: make <tool> fail; the file holds the exit
#                       code (default 1), the tool prints an error and does
#                       nothing (the call is still logged)
#   calls.log           one line per invocation: tool name and its arguments
#                       (shell-quoted with printf %q)
#   num_updates         counter bumped by every change of the CIB
set -u

if [ -z "${PGSQLMS_FAKE_DIR:-}" ]; then
  echo "${0##*/}: PGSQLMS_FAKE_DIR is not set" >&2
  exit 1
fi
FAKE_DIR="$PGSQLMS_FAKE_DIR"
FAKE_TOOL="${0##*/}"

fake_log_call() {
  local line=""
  if [ "$#" -gt 0 ]; then
    printf -v line ' %q' "$@"
  fi
  # one write(2) of a short line with O_APPEND: atomic between processes
  printf '%s%s\n' "$FAKE_TOOL" "$line" >> "$FAKE_DIR/calls.log"
}

fake_maybe_fail() {
  local f="$FAKE_DIR/fail/$FAKE_TOOL" rc
  [ -e "$f" ] || return 0
  rc="$(cat "$f" 2>/dev/null)"
  [[ "$rc" =~ ^[0-9]+$ ]] || rc=1
  echo "$FAKE_TOOL: injected failure (exit $rc)" >&2
  exit "$rc"
}

# cluster node names, in file order
fake_nodes() {
  [ -f "$FAKE_DIR/nodes" ] || return 0
  sed -e 's/#.*//' -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' -e '/^$/d' "$FAKE_DIR/nodes"
}

fake_is_node() {
  fake_nodes | grep -qxF -- "$1"
}

fake_node_id() {
  fake_nodes | grep -nxF -- "$1" | head -1 | cut -d: -f1
}

fake_is_online() {
  fake_is_node "$1" || return 1
  [ -f "$FAKE_DIR/offline" ] && grep -qxF -- "$1" "$FAKE_DIR/offline" && return 1
  return 0
}

fake_local_node() {
  if [ -n "${OCF_RESKEY_CRM_meta_on_node:-}" ]; then
    printf '%s\n' "$OCF_RESKEY_CRM_meta_on_node"
  elif [ -s "$FAKE_DIR/local_node" ]; then
    head -1 "$FAKE_DIR/local_node"
  else
    uname -n
  fi
}

fake_check_name() {
  case "$1" in
    ""|*/*|.|..) echo "$FAKE_TOOL: invalid name '$1'" >&2; exit 64 ;;
  esac
}

# fake_write FILE VALUE: atomic replace
fake_write() {
  local f="$1" tmp
  mkdir -p "${f%/*}"
  tmp="$(mktemp "${f%/*}/.tmp.XXXXXX")"
  printf '%s' "$2" > "$tmp"
  mv -f "$tmp" "$f"
}

fake_bump_updates() {
  local n=0
  [ -f "$FAKE_DIR/num_updates" ] && n="$(cat "$FAKE_DIR/num_updates")"
  fake_write "$FAKE_DIR/num_updates" "$((n + 1))"
}

xml_escape() {
  local s="$1"
  # bash 5.2: '&' in a replacement means the match, unless this is off
  shopt -u patsub_replacement 2>/dev/null || true
  s="${s//&/&amp;}"; s="${s//</&lt;}"; s="${s//>/&gt;}"; s="${s//\"/&quot;}"
  printf '%s' "$s"
}
