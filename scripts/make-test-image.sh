#!/usr/bin/env bash
# Import a container image holding only a static busybox and its applets (sh, ip, ping,
# sleep, cat, ...), made from the host's busybox without any container registry.
#
# Usage: scripts/make-test-image.sh [IMAGE]     (default sriov-test-busybox:latest)
# Environment:
#   BUSYBOX  the busybox binary to use (default /bin/busybox, Debian's busybox-static);
#            the image has no libc, so it must be statically linked
#   FORCE=1  re-import even if IMAGE already exists
# Prints "test image IMAGE ready" or "test image IMAGE already exists ...".
set -euo pipefail

image=${1:-sriov-test-busybox:latest}
busybox=${BUSYBOX:-/bin/busybox}

if [ "${FORCE:-0}" != 1 ] && docker image inspect "$image" >/dev/null 2>&1; then
    echo "test image $image already exists (FORCE=1 re-imports it)"
    exit 0
fi

if [ ! -x "$busybox" ]; then
    echo "make-test-image.sh: $busybox not found; install busybox-static (scripts/install-deps.sh)" >&2
    exit 1
fi
# ldd succeeds only on a dynamically linked binary, which would need the libc the image lacks.
if ldd "$busybox" >/dev/null 2>&1; then
    echo "make-test-image.sh: $busybox is dynamically linked; install busybox-static" >&2
    exit 1
fi

root=$(mktemp -d /var/tmp/sriov-test-image.XXXXXX)
trap 'rm -rf "$root"' EXIT

mkdir -p "$root"/{bin,dev,etc,proc,root,sys,tmp}
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done

tar -C "$root" --numeric-owner --owner=0 --group=0 -c . |
    docker import --change 'CMD ["sh"]' --change 'ENV PATH=/bin' - "$image" >/dev/null
echo "test image $image ready"
