#!/usr/bin/env bash
# Prepare the VM stage (scripts/vm/run.sh) on a Debian 12 machine, as root:
#   - QEMU with the emulated Intel 82576 (`-device igb`, QEMU 8+): qemu-system-x86 from
#     bookworm-backports (bookworm's 7.2 lacks igb), added from this machine's own Debian mirror;
#   - a guest kernel: Debian's linux-image-6.1.*-amd64 .deb downloaded (never installed on
#     the host), unpacked under the cache directory, depmod'ed;
#   - a tiny initramfs (busybox-static and the virtio/9p/overlay modules) whose /init is
#     scripts/vm/initramfs-init.sh.
#
# Usage: scripts/vm/setup.sh      (idempotent; a second run downloads nothing)
# Environment: SRIOV_VM_CACHE  cache directory (default /var/cache/sriov-vm)
# Prints the cache directory's kernel, modules and initramfs paths as shell assignments
# on the last lines when run with --print.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${SRIOV_VM_CACHE:-/var/cache/sriov-vm}
apt_opts=(-o DPkg::Lock::Timeout=600 -y -qq --no-install-recommends)
backports_list=/etc/apt/sources.list.d/sriov-bookworm-backports.sources

die() {
    echo "vm/setup.sh: $*" >&2
    exit 1
}

quiet() {
    local log status
    log=$(mktemp)
    "$@" >"$log" 2>&1 && status=0 || status=$?
    [ "$status" -eq 0 ] || cat "$log" >&2
    rm -f "$log"
    return "$status"
}

# The URI of the configured Debian archive that serves "bookworm" (deb822 .sources first,
# then one-line sources.list entries); never a hard-coded host.
debian_mirror() {
    local file
    for file in /etc/apt/sources.list.d/*.sources; do
        [ -f "$file" ] || continue
        awk '
            /^[[:space:]]*$/ { if (uri != "" && ok) print uri; uri = ""; ok = 0; next }
            tolower($1) == "uris:" { uri = $2 }
            tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == "bookworm") ok = 1 }
            END { if (uri != "" && ok) print uri }
        ' "$file"
    done
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$file" ] || continue
        awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /=/) break;
                           if ($(i + 1) == "bookworm") print $i }' "$file"
    done
}

add_backports() {
    [ -f "$backports_list" ] && return
    local mirror
    mirror=$(debian_mirror | sed -n 1p)
    [ -n "$mirror" ] || die "no Debian bookworm mirror found in /etc/apt/sources.list{,.d/}"
    echo "adding bookworm-backports from $mirror"
    cat >"$backports_list" <<SOURCES
# Added by sriov scripts/vm/setup.sh: QEMU with the igb NIC for the VM test stage.
Types: deb
URIs: $mirror
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
    quiet apt-get -o DPkg::Lock::Timeout=600 update -qq
}

qemu_has_igb() {
    command -v qemu-system-x86_64 >/dev/null &&
        qemu-system-x86_64 -device help 2>/dev/null | grep -q '"igb"'
}

install_packages() {
    export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
    local missing=()
    command -v depmod >/dev/null || missing+=(kmod)
    [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || missing+=(busybox-static)
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "installing: ${missing[*]}"
        quiet apt-get -o DPkg::Lock::Timeout=600 update -qq
        quiet apt-get install "${apt_opts[@]}" "${missing[@]}"
    fi
    qemu_has_igb && return
    add_backports
    echo "installing qemu-system-x86 from bookworm-backports"
    quiet apt-get install "${apt_opts[@]}" -t bookworm-backports qemu-system-x86
    qemu_has_igb || die "qemu-system-x86_64 $(qemu-system-x86_64 --version | head -n 1) has no igb device"
}

# The newest linux-image-6.1.0-N-amd64 the archive offers (bookworm's kernel series).
kernel_package() {
    apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' |
        awk '{ print $1 }' | sort -V | tail -n 1
}

fetch_kernel() {
    local ready=$cache/kernel/ready
    [ -f "$ready" ] && return
    local package tmp
    package=$(kernel_package)
    [ -n "$package" ] || die "no linux-image-6.1.0-*-amd64 package in the apt lists"
    echo "downloading $package (unpacked under $cache/kernel, not installed)"
    tmp=$(mktemp -d "$cache/download.XXXXXX")
    (cd "$tmp" && quiet apt-get download "$package")
    rm -rf "$cache/kernel"
    mkdir -p "$cache/kernel"
    dpkg-deb -x "$tmp"/"$package"_*.deb "$cache/kernel"
    rm -rf "$tmp"
    local kver
    kver=${package#linux-image-}
    depmod -b "$cache/kernel" "$kver"
    ln -sf "boot/vmlinuz-$kver" "$cache/kernel/vmlinuz"
    echo "$kver" >"$cache/kernel/kver"
    touch "$ready"
}

# Modules the initramfs loads, in dependency order (modprobe resolves it from modules.dep).
initramfs_modules() {
    local kver=$1 module
    for module in virtio_pci 9pnet_virtio 9p overlay; do
        modprobe -d "$cache/kernel" -S "$kver" --show-depends "$module"
    done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }'
}

build_initramfs() {
    local kver stamp out=$cache/initramfs.cpio.gz
    kver=$(cat "$cache/kernel/kver")
    stamp="$kver $(sha256sum "$here/initramfs-init.sh" /bin/busybox | awk '{ print $1 }' | tr '\n' ' ')"
    [ -f "$out" ] && [ "$(cat "$out.stamp" 2>/dev/null)" = "$stamp" ] && return
    echo "building the initramfs"
    local root module
    root=$(mktemp -d)
    mkdir -p "$root"/{bin,dev,proc,sys,newroot,lower,upper,modules}
    cp /bin/busybox "$root/bin/busybox"
    ln -s busybox "$root/bin/sh"
    cp "$here/initramfs-init.sh" "$root/init"
    chmod 755 "$root/init"
    for module in $(initramfs_modules "$kver"); do
        cp "$module" "$root/modules/"
        basename "$module" >>"$root/modules/order"
    done
    (cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$out.tmp"
    rm -rf "$root"
    mv "$out.tmp" "$out"
    echo "$stamp" >"$out.stamp"
}

[ "$(id -u)" -eq 0 ] || die "must run as root"
mkdir -p "$cache"
install_packages
fetch_kernel
build_initramfs
