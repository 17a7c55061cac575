# shellcheck shell=bash
# Fence device of the namespace test cluster (tests/cluster), sourced by
# 01-create-resource.sh with $CIB set to the offline CIB being edited.
#
# One fence_ns device covers every node: fence_ns asks the cluster's
# hypervisor (tests/cluster/hypervisor.py) to power a node off/on. Another
# platform provides its own file instead (fencing-watchdog.sh for the Vagrant
# cluster, fence_ipmilan devices on bare metal...) and passes it as
# FENCING_SCRIPT.
#
# Variables: NODES (space separated node names), HYPERVISOR_SOCKET (optional).
: "${NODES:?NODES is required}"

pcs -f "$CIB" stonith create fence-ns fence_ns \
  pcmk_host_list="$NODES" \
  ${HYPERVISOR_SOCKET:+hypervisor_socket="$HYPERVISOR_SOCKET"} \
  op monitor interval=30s
