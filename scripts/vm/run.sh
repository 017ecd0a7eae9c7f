#!/usr/bin/env bash
# Boot the VM stage's guest and run one command in it; exit with that command's status.
#
# Usage: scripts/vm/run.sh COMMAND [ARG...]
#   The command runs with /bin/sh in the repository's directory, as root, in a guest that
#   sees the host's root filesystem read-only under a tmpfs overlay (so the project's .venv
#   and Debian's docker.io work there), the guest kernel's modules at /lib/modules, and an
#   emulated Intel 82576 (QEMU `-device igb`, 7 VFs, real igb/igbvf drivers) alone on an
#   isolated QEMU hub: the guest has no route anywhere. Its output is printed here.
# Environment:
#   SRIOV_VM_CACHE    what scripts/vm/setup.sh prepared (default /var/cache/sriov-vm)
#   SRIOV_VM_OUT      directory for this run's files (default: a temporary one, removed):
#                     cmd, out, status, dmesg (the guest's kernel log), console.log (serial)
#   SRIOV_VM_TIMEOUT  seconds before the guest is killed (default 900)
#   SRIOV_VM_MEM      guest memory in MiB (default 2048; at most 2560, see below)
#   SRIOV_VM_CPUS     guest CPUs (default 2)
#   SRIOV_VM_BOOT_TIMEOUT  seconds to wait for the guest to reach its command (default 120);
#                     a guest that did not is killed and booted once more
#   SRIOV_VM_NAME     the guest's hostname (default sriov-vm)
#   SRIOV_VM_NETDEV   what the igb's port is cabled to, as QEMU -netdev options after its
#                     id (default: an isolated hub, "hubport,hubid=0"); e.g. one end of a
#                     cable to another guest: "stream,server=on,addr.type=unix,addr.path=P"
#   SRIOV_VM_MAC      the igb PF's MAC (default QEMU's; two guests on one cable need their own)
#   SRIOV_VM_PCAP     record every frame of the igb's port in this pcap file (QEMU filter-dump)
#   SRIOV_VM_SHARE    a host directory mounted read-write at /sriov-shared in the guest
#                     (several guests given the same one use it to meet)
#   SRIOV_VM_IOMMU    1: an emulated Intel IOMMU (-device intel-iommu), so that the guest
#                     can bind a VF to vfio-pci
#   SRIOV_VM_MORE_PFS N more igb PFs (default 0), each alone on an isolated hub of its
#                     own (scripts/vm/bench-scale.sh compares hosts side by side on them)
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cache=${SRIOV_VM_CACHE:-/var/cache/sriov-vm}
timeout=${SRIOV_VM_TIMEOUT:-900}
mem=${SRIOV_VM_MEM:-2048}
cpus=${SRIOV_VM_CPUS:-2}
boot_timeout=${SRIOV_VM_BOOT_TIMEOUT:-120}
name=${SRIOV_VM_NAME:-sriov-vm}
netdev=${SRIOV_VM_NETDEV:-hubport,hubid=0}

die() {
    echo "vm/run.sh: $*" >&2
    exit 2
}

[ "$#" -gt 0 ] || die "usage: scripts/vm/run.sh COMMAND [ARG...]"
[ "$(id -u)" -eq 0 ] || die "must run as root"
# With more than 2.5 GiB the emulated igb's VF-to-PF mailbox never works ("PF still
# resetting"): the driver then refuses nothing and every test would pass for the wrong reason.
[ "$mem" -le 2560 ] || die "SRIOV_VM_MEM=$mem: at most 2560 MiB (the igb VF mailbox dies above)"
[ -f "$cache/kernel/ready" ] && [ -f "$cache/initramfs.cpio.gz" ] ||
    die "no guest kernel in $cache: run scripts/vm/setup.sh first"
modules=$cache/kernel/lib/modules
# The initramfs reads these paths from the kernel command line, which splits on spaces.
[[ $modules != *[[:space:]]* ]] || die "SRIOV_VM_CACHE must not contain whitespace: $cache"
[[ $repo != *[[:space:]]* ]] || die "the repository's path must not contain whitespace: $repo"
[[ $name =~ ^[a-z0-9][a-z0-9-]{0,62}$ ]] || die "SRIOV_VM_NAME=$name: not a hostname"

if [ -n "${SRIOV_VM_OUT:-}" ]; then
    out=$SRIOV_VM_OUT
    mkdir -p "$out"
    rm -f "$out"/{cmd,out,status,dmesg,console.log}
else
    out=$(mktemp -d /tmp/sriov-vm.XXXXXX)
    trap 'rm -rf "$out"' EXIT
fi

# sh-quote each argument: 'a'\''b'
quote() {
    local arg
    for arg in "$@"; do
        printf "'%s' " "${arg//\'/\'\\\'\'}"
    done
}
printf 'cd %s || exit 2\nexec %s\n' "$(quote "$repo")" "$(quote "$@")" >"$out/cmd"

# QEMU's -fsdev path= takes a comma only doubled.
qemu_path() {
    printf '%s' "${1//,/,,}"
}

# The igb's cable, and what goes with it.
nic_args=(-netdev "$netdev,id=igbnet")
if [ -n "${SRIOV_VM_PCAP:-}" ]; then
    nic_args+=(-object "filter-dump,id=igbdump,netdev=igbnet,file=$(qemu_path "$SRIOV_VM_PCAP")")
fi
nic_args+=(-device pcie-root-port,id=igbport,chassis=1)
nic_args+=(-device "igb,netdev=igbnet,bus=igbport${SRIOV_VM_MAC:+,mac=$SRIOV_VM_MAC}")
more_pfs=${SRIOV_VM_MORE_PFS:-0}
[[ $more_pfs =~ ^[0-9]$ ]] || die "SRIOV_VM_MORE_PFS=$more_pfs: a number of PFs from 0 to 9"
for ((n = 1; n <= more_pfs; n++)); do
    nic_args+=(-netdev "hubport,hubid=$n,id=igbnet$n")
    nic_args+=(-device "pcie-root-port,id=igbport$n,chassis=$((n + 1))")
    nic_args+=(-device "igb,netdev=igbnet$n,bus=igbport$n")
done
share_args=()
if [ -n "${SRIOV_VM_SHARE:-}" ]; then
    share_args=(-fsdev "local,id=shared,path=$(qemu_path "$SRIOV_VM_SHARE"),security_model=none"
        -device virtio-9p-pci,fsdev=shared,mount_tag=shared)
fi
# The IOMMU comes first: it must exist before the PCI devices it translates for.
iommu_args=()
[ "${SRIOV_VM_IOMMU:-0}" = 1 ] && iommu_args=(-device intel-iommu)

# /dev/kvm exists on these machines but a KVM guest hangs in early boot (nested
# virtualisation); TCG boots in a few seconds. q35 because SR-IOV needs PCI Express.
# -cpu qemu64: with -cpu max a guest on a busy host sometimes never got a timer tick
# (RCU stalls, "timer wakeup didn't happen") and never finished booting.
start_qemu() {
    rm -f "$out/console.log"
    timeout --kill-after=10 "$timeout" qemu-system-x86_64 \
        -accel tcg -machine q35 -cpu qemu64 -smp "$cpus" -m "$mem" \
        -nodefaults -no-user-config -display none -no-reboot "${iommu_args[@]}" \
        -serial "file:$(qemu_path "$out/console.log")" \
        -kernel "$cache/kernel/vmlinuz" -initrd "$cache/initramfs.cpio.gz" \
        -append "console=ttyS0 panic=-1 loglevel=4 sriov_modules=$modules sriov_repo=$repo sriov_hostname=$name" \
        -fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap \
        -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
        -fsdev "local,id=io,path=$(qemu_path "$out"),security_model=none" \
        -device virtio-9p-pci,fsdev=io,mount_tag=io "${share_args[@]}" "${nic_args[@]}" \
        2> >(grep -v -E 'hub [0-9]+ is not connected to host network' >&2) &
    qemu_pid=$!
}

# True once the initramfs has said it runs the command, false if QEMU ended or time ran out.
booted() {
    local deadline=$((SECONDS + boot_timeout))
    while [ "$SECONDS" -lt "$deadline" ]; do
        grep -q '^sriov-vm: booted' "$out/console.log" 2>/dev/null && return 0
        kill -0 "$qemu_pid" 2>/dev/null || return 1
        sleep 1
    done
    return 1
}

status=0
for attempt in 1 2; do
    start_qemu
    if booted; then
        wait "$qemu_pid" || status=$?
        break
    fi
    kill "$qemu_pid" 2>/dev/null || true
    wait "$qemu_pid" 2>/dev/null || true
    echo "vm/run.sh: the guest did not boot within $boot_timeout s (attempt $attempt)" >&2
    tail -n 5 "$out/console.log" >&2 2>/dev/null || true
    status=125
done

[ -f "$out/out" ] && cat "$out/out"
guest_status=$(cat "$out/status" 2>/dev/null || true)
if ! [[ $guest_status =~ ^[0-9]+$ ]]; then
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        echo "vm/run.sh: the guest did not finish within $timeout s" >&2
    else
        echo "vm/run.sh: the guest ended without an exit status (qemu: $status)" >&2
    fi
    tail -n 40 "$out/console.log" >&2 2>/dev/null || true
    exit 125
fi
exit "$guest_status"
