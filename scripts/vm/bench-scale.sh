#!/bin/sh
# Run inside the VM: scripts/vm/run.sh scripts/vm/bench-scale.sh [BENCH_SCALE ARGS...]
# scripts/bench_scale.py --nic kernel on the guest's emulated igb PF (real igb/igbvf drivers,
# the kernel backend), with dummy links as the host's extra links. SRIOV_BENCH_REPO names
# another checkout whose bench_scale.py and plugin to run instead (to compare two versions).
set -eu
modprobe -a igb igbvf dummy
pf=
for entry in /sys/class/net/*/device/sriov_totalvfs; do
    [ -e "$entry" ] && pf=$(basename "$(dirname "$(dirname "$entry")")")
done
[ -n "$pf" ] || { echo "bench-scale.sh: no SR-IOV PF in the guest" >&2; exit 2; }
ip link set "$pf" up
tries=0
until [ "$(cat "/sys/class/net/$pf/carrier" 2>/dev/null)" = 1 ]; do
    tries=$((tries + 1))
    [ "$tries" -le 300 ] || { echo "bench-scale.sh: $pf has no link after 30 s" >&2; exit 2; }
    sleep 0.1
done
repo=${SRIOV_BENCH_REPO:-.}
echo "bench-scale.sh: PF $pf, $(nproc) CPUs, kernel $(uname -r), plugin from $repo"
exec "$PWD/.venv/bin/python" "$repo/scripts/bench_scale.py" --nic kernel --pf "$pf" "$@"
