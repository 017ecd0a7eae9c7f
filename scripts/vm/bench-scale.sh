#!/bin/sh
# Run inside the VM: SRIOV_VM_MORE_PFS=2 scripts/vm/run.sh scripts/vm/bench-scale.sh [ARGS...]
# scripts/bench_scale.py --nic kernel on the guest's three emulated igb PFs (real igb/igbvf
# drivers, the kernel backend), one per link count, with dummy links as the host's extra
# links. SRIOV_BENCH_REPO names another checkout whose bench_scale.py and plugin to run
# instead (to compare two versions).
set -eu
modprobe -a igb igbvf dummy
pfs=
for entry in /sys/class/net/*/device/sriov_totalvfs; do
    [ -e "$entry" ] && pfs="$pfs --pf $(basename "$(dirname "$(dirname "$entry")")")"
done
[ -n "$pfs" ] || { echo "bench-scale.sh: no SR-IOV PF in the guest" >&2; exit 2; }
repo=${SRIOV_BENCH_REPO:-.}
echo "bench-scale.sh:$pfs, $(nproc) CPUs, kernel $(uname -r), plugin from $repo"
# shellcheck disable=SC2086 # $pfs is a list of options
exec "$PWD/.venv/bin/python" "$repo/scripts/bench_scale.py" --nic kernel $pfs "$@"
