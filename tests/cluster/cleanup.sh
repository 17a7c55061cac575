#!/bin/bash
# Forget resource failures (fail counts, failed actions) cluster-wide, as
# `pcs resource cleanup` does, from a quorate node.
#   cleanup.sh [RSC]
set -u
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
need_args 0 "[RSC]" "$@"
peer=$(quorate_node) || die "no quorate node"
on_node "$peer" crm_resource --cleanup ${1:+--resource "$1"}
