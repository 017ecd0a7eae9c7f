#!/usr/bin/env bash
# Build a minimal Debian bookworm image with python3, standing in for the official
# python:3.11-slim-bookworm image where no container registry is reachable.
#
# Usage: scripts/make-base-image.sh [IMAGE]     (default sriov-base:bookworm)
# Environment:
#   DEBIAN_MIRROR  apt mirror for debootstrap (default http://deb.debian.org/debian)
#   FORCE=1        rebuild even if IMAGE already exists
set -euo pipefail

image=${1:-sriov-base:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if [ "${FORCE:-0}" != 1 ] && docker image inspect "$image" >/dev/null 2>&1; then
    echo "base image $image already exists (FORCE=1 rebuilds it)"
    exit 0
fi

work=$(mktemp -d /var/tmp/sriov-base.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root

echo "debootstrap bookworm (minbase + python3) from $mirror ..."
if ! debootstrap --variant=minbase --include=python3 bookworm "$root" "$mirror" \
    >"$work/debootstrap.log" 2>&1; then
    echo "make-base-image.sh: debootstrap failed; last lines of its log:" >&2
    tail -n 20 "$work/debootstrap.log" >&2
    exit 1
fi

# Drop what a runtime never reads, like the official slim images do, plus
# glibc's iconv modules (Python has its own codecs), the leap-second time zones
# and Python's regression tests and pydoc topics. apt and dpkg stay usable.
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
    "$root"/usr/share/locale/* "$root"/usr/share/lintian "$root"/usr/share/linda \
    "$root"/usr/lib/*-linux-gnu/gconv "$root"/usr/share/zoneinfo/right \
    "$root"/usr/lib/python3.11/test "$root"/usr/lib/python3.11/pydoc_data \
    "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
    "$root"/var/log/* "$root"/tmp/* "$root"/debootstrap

tar -C "$root" --numeric-owner -c . |
    docker import --change 'CMD ["python3"]' --message "debootstrap bookworm minbase + python3" - "$image" >/dev/null
echo "base image $image: $(docker image inspect -f '{{.Size}}' "$image" | numfmt --to=si)B"
