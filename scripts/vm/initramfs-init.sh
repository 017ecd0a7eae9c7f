#!/bin/sh
# /init of the VM stage's initramfs (built by scripts/vm/setup.sh; busybox sh, PID 1).
# Mounts the host's root filesystem (9p tag "hostroot") read-only under a tmpfs overlay,
# the guest kernel's modules over /lib/modules (sriov_modules= on the kernel command line,
# a host path without spaces), the repository at its host path (sriov_repo=, likewise) under
# an overlay of its own, and the run's writable share (9p tag "io") at /sriov-io;
# and, if the guest has one, the share that several guests meet in (9p tag "shared") at
# /sriov-shared; sets the hostname (sriov_hostname=, default sriov-vm);
# switches to that root (switch_root, as a normal boot does: see below) and
# runs /sriov-io/cmd in it with sh, writes its output to /sriov-io/out, its exit
# status to /sriov-io/status and the kernel log to /sriov-io/dmesg, then powers off.
export PATH=/bin

fail() {
    echo "initramfs: $*" >&2
    poweroff -f
}

/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

while read -r module; do
    insmod "/modules/$module" || fail "insmod $module"
done </modules/order

modules=
repo=
name=sriov-vm
for arg in $(cat /proc/cmdline); do
    case $arg in
        sriov_modules=*) modules=${arg#sriov_modules=} ;;
        sriov_repo=*) repo=${arg#sriov_repo=} ;;
        sriov_hostname=*) name=${arg#sriov_hostname=} ;;
    esac
done

# msize: the largest a virtio 9p transport takes (the default 8 KiB makes reads slow).
ninep="trans=virtio,version=9p2000.L,msize=512000"
mount -t 9p -o "$ninep,ro,cache=loose" hostroot /lower || fail "mount the host root over 9p"
mount -t tmpfs -o mode=755 tmpfs /upper
mkdir -p /upper/upper /upper/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/upper,workdir=/upper/work /newroot ||
    fail "mount the overlay root"

r=/newroot
mount -t proc proc $r/proc
mount -t sysfs sysfs $r/sys
mount -t cgroup2 cgroup2 $r/sys/fs/cgroup
mount -t devtmpfs devtmpfs $r/dev
mkdir -p $r/dev/pts $r/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts $r/dev/pts
mount -t tmpfs tmpfs $r/dev/shm
for dir in run tmp var/tmp var/lib/docker var/lib/containerd var/log; do
    mkdir -p $r/$dir && mount -t tmpfs -o mode=755 tmpfs $r/$dir || fail "mount tmpfs on /$dir"
done
chmod 1777 $r/tmp $r/var/tmp
if [ -n "$modules" ]; then
    mkdir -p $r/lib/modules
    mount --bind "$r$modules" $r/lib/modules || fail "bind $modules over /lib/modules"
fi
# The repository (with its .venv) may live under a directory that the tmpfs mounts above
# cover, e.g. a checkout in /tmp: it gets an overlay of its own on the host's copy.
if [ -n "$repo" ]; then
    mkdir -p /upper/repo /upper/repo-work "$r$repo"
    mount -t overlay overlay -o "lowerdir=/lower$repo,upperdir=/upper/repo,workdir=/upper/repo-work" \
        "$r$repo" || fail "mount the repository $repo"
fi
mkdir -p $r/sriov-io
mount -t 9p -o "$ninep,cache=none" io $r/sriov-io || fail "mount the io share"
if cat /sys/bus/virtio/drivers/9pnet_virtio/*/mount_tag | grep -q shared; then
    mkdir -p $r/sriov-shared
    mount -t 9p -o "$ninep,cache=none" shared $r/sriov-shared || fail "mount the shared share"
fi

hostname "$name"
echo "$name" >$r/etc/hostname
ip link set lo up
echo "sriov-vm: booted, running /sriov-io/cmd"

# PID 1 switches to the guest's root as a normal boot does (the initramfs emptied, the new
# root moved onto /, PID 1 chrooted into it), not a chroot below this initramfs, for two things:
# - the kernel runs its on-demand module loads (/proc/sys/kernel/modprobe: veth and bridge
#   for a docker network; nf_tables, nft_chain_nat, xt_nat for the rules that send a
#   container's 127.0.0.11:53 to Docker's embedded DNS; ...) in PID 1's root;
# - `docker exec` joins the container's mount namespace at the mount on its "/", which is
#   the container's root only if the guest's root was there.
# Under a chroot, each module load failed silently and `docker exec` ran in this initramfs,
# without the container's /etc/resolv.conf: no name resolved in a container.
# From here on only /bin/busybox (busybox-static, which setup.sh requires on the host).
exec switch_root $r /bin/busybox sh -c '
    busybox env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root TERM=dumb /bin/sh /sriov-io/cmd >/sriov-io/out 2>&1 </dev/null
    echo $? >/sriov-io/status
    busybox dmesg >/sriov-io/dmesg
    busybox sync
    busybox poweroff -f'
