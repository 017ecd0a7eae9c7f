#!/usr/bin/env bash
# Build the sriov managed plugin and create it in the local Docker Engine.
#
# Usage: scripts/build-plugin.sh [NAME]          (default sriov:latest)
# Environment:
#   BASE_IMAGE  base image for the Dockerfile; default: python:3.11-slim-bookworm if it is
#               present or can be pulled, otherwise sriov-base:bookworm from make-base-image.sh.
#
# Steps: vendor the runtime dependencies into build/plugin-deps, build the image,
# export it to rootfs/ (the plugin's root filesystem, beside config.json), replace any
# plugin called NAME, and `docker plugin create` it (disabled; enable with
# `docker plugin enable`). One build at a time: a lock serialises concurrent runs.
set -euo pipefail

name=${1:-sriov:latest}
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

official_base=python:3.11-slim-bookworm
fallback_base=sriov-base:bookworm
deps_dir=build/plugin-deps
plugin_dir=build/plugin
lock_file=build/.build-plugin.lock
build_image=sriov-plugin-build:latest
export DOCKER_BUILDKIT=0

host_python() {
    if [ -x .venv/bin/python ]; then echo .venv/bin/python; else echo python3; fi
}

# The dependency list comes from pyproject.toml, the one place it is declared.
runtime_requirements() {
    "$(host_python)" -c '
import tomllib
with open("pyproject.toml", "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["dependencies"]))'
}

# Wheels for CPython 3.11 on this architecture, whatever Python runs pip here.
vendor_dependencies() {
    local requirements stamp
    requirements=$(runtime_requirements)
    stamp="$deps_dir/.requirements"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$requirements" ]; then
        echo "dependencies already vendored in $deps_dir"
        return
    fi
    echo "vendoring dependencies into $deps_dir:" $requirements
    rm -rf "$deps_dir"
    mkdir -p "$deps_dir"
    local arch
    arch=$(uname -m)
    # shellcheck disable=SC2086
    "$(host_python)" -m pip install --quiet --no-warn-script-location --root-user-action=ignore \
        --target "$deps_dir" --only-binary=:all: \
        --implementation cp --python-version 3.11 --abi cp311 \
        --platform "manylinux2014_$arch" --platform "manylinux_2_17_$arch" \
        $requirements 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
    rm -rf "$deps_dir/bin"
    echo "$requirements" >"$stamp"
}

choose_base() {
    if [ -n "${BASE_IMAGE:-}" ]; then
        echo "$BASE_IMAGE"
    elif docker image inspect "$official_base" >/dev/null 2>&1 ||
        timeout 60 docker pull -q "$official_base" >/dev/null 2>&1; then
        echo "$official_base"
    else
        echo "cannot pull $official_base; using $fallback_base" >&2
        "$repo/scripts/make-base-image.sh" "$fallback_base" >&2
        echo "$fallback_base"
    fi
}

export_rootfs() {
    local container
    rm -rf rootfs
    mkdir -p rootfs
    container=$(docker create "$build_image")
    docker export "$container" | tar -C rootfs -x
    docker rm "$container" >/dev/null
}

# `docker plugin create` sends its whole directory to the engine: give it one that
# holds only config.json and rootfs/ (moved in and back, a rename on the same disk).
create_plugin() {
    rm -rf "$plugin_dir"
    mkdir -p "$plugin_dir"
    cp config.json "$plugin_dir/config.json"
    mv rootfs "$plugin_dir/rootfs"
    local status=0
    docker plugin create "$name" "$plugin_dir" >/dev/null || status=$?
    mv "$plugin_dir/rootfs" rootfs
    return "$status"
}

networks_using() {
    local net
    for net in $(docker network ls -q); do
        docker network inspect -f '{{.Name}} {{.Driver}} {{.IPAM.Driver}}' "$net"
    done | awk -v p="$1" '$2 == p || $3 == p { print $1 }'
}

remove_old_plugin() {
    docker plugin inspect "$name" >/dev/null 2>&1 || return 0
    local users
    users=$(networks_using "$name" | tr '\n' ' ')
    if [ -n "$users" ]; then
        echo "build-plugin.sh: cannot replace $name: networks still use it: $users" >&2
        echo "remove them first (docker network rm $users)" >&2
        exit 1
    fi
    echo "replacing plugin $name"
    if [ "$(docker plugin inspect -f '{{.Enabled}}' "$name")" = true ]; then
        docker plugin disable "$name" >/dev/null
    fi
    docker plugin rm "$name" >/dev/null
}

mkdir -p build
exec 9>"$lock_file"
flock 9
vendor_dependencies
base=$(choose_base)
echo "building plugin image from $base"
previous_image=$(docker image inspect -f '{{.Id}}' "$build_image" 2>/dev/null || true)
docker build --quiet --build-arg BASE="$base" -t "$build_image" . >/dev/null
# The rebuilt image takes the tag; drop the one it replaced rather than leave it dangling.
if [ -n "$previous_image" ] &&
    [ "$previous_image" != "$(docker image inspect -f '{{.Id}}' "$build_image")" ]; then
    docker rmi "$previous_image" >/dev/null 2>&1 || true
fi
export_rootfs
echo "rootfs: $(du -s --apparent-size --block-size=1M rootfs | cut -f1) MB in rootfs/"
remove_old_plugin
create_plugin
echo "created plugin $name (disabled): docker plugin enable $name"
