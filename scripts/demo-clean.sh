#!/usr/bin/env bash
# Undo scripts/demo.sh: remove the demo's containers and networks, destroy its simulated NIC.
#
# Usage: scripts/demo-clean.sh [--all]
#   --all  also disable and remove the plugin, the test image and the demo directory
#          (the plugin only if no other network uses it; Docker refuses otherwise)
# Environment (the same as demo.sh):
#   DEMO_PF      simulated PF name (default simpf0)
#   DEMO_DIR     directory of the simulated sysfs and the plugin state (default /var/lib/sriov-demo)
#   DEMO_PLUGIN  plugin name (default sriov:latest)
# Only containers and networks labelled sriov-demo are touched. The plugin stays enabled
# without --all; the Docker Engine and the build-plugin.sh images (sriov-base, sriov-plugin-build:
# build caches) stay either way. Idempotent.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
pf=${DEMO_PF:-simpf0}
dir=${DEMO_DIR:-/var/lib/sriov-demo}
plugin=${DEMO_PLUGIN:-sriov:latest}
image=sriov-test-busybox:latest
label=sriov-demo

usage() {
    echo "usage: $0 [--all]" >&2
    exit 2
}

python() {
    if [ -x "$repo/.venv/bin/python" ]; then
        "$repo/.venv/bin/python" "$@"
    else
        python3 "$@"
    fi
}

remove_containers() {
    local containers
    containers=$(docker ps -aq --filter "label=$label")
    if [ -z "$containers" ]; then
        echo "no demo containers"
        return
    fi
    # shellcheck disable=SC2086
    docker rm -f $containers >/dev/null
    echo "removed demo containers: $(wc -w <<<"$containers")"
}

remove_networks() {
    local networks
    networks=$(docker network ls -q --filter "label=$label")
    if [ -z "$networks" ]; then
        echo "no demo networks"
        return
    fi
    local names
    # shellcheck disable=SC2086
    names=$(docker network inspect -f '{{.Name}}' $networks | paste -sd ' ')
    # shellcheck disable=SC2086
    docker network rm $networks >/dev/null
    echo "removed demo networks: $names"
}

destroy_sim() {
    if [ ! -d "$dir/sys" ]; then
        echo "no simulated NIC under $dir/sys"
        return
    fi
    if ! (cd "$repo" && python -m plugin sim show --sysfs "$dir/sys") | grep -q "^PF $pf "; then
        echo "no simulated PF $pf under $dir/sys"
        return
    fi
    (cd "$repo" && python -m plugin sim destroy --pf "$pf" --sysfs "$dir/sys")
    echo "destroyed simulated PF $pf (its VFs and VLAN bridges) under $dir/sys"
}

remove_plugin_and_image() {
    if docker plugin inspect "$plugin" >/dev/null 2>&1; then
        if [ "$(docker plugin inspect -f '{{.Enabled}}' "$plugin")" = true ]; then
            docker plugin disable "$plugin" >/dev/null
        fi
        docker plugin rm "$plugin" >/dev/null
        echo "removed plugin $plugin"
    fi
    if docker image inspect "$image" >/dev/null 2>&1; then
        docker image rm "$image" >/dev/null
        echo "removed image $image"
    fi
    if [ -e "$dir" ]; then
        rm -rf "$dir"
        echo "removed $dir"
    fi
}

all=0
case "${1:-}" in
    "") ;;
    --all) all=1 ;;
    *) usage ;;
esac
[ $# -le 1 ] || usage

if [ "$(id -u)" -ne 0 ]; then
    echo "demo-clean.sh: must run as root (it deletes network interfaces)" >&2
    exit 1
fi

if docker info >/dev/null 2>&1; then
    remove_containers
    remove_networks
else
    echo "no Docker Engine answers: no containers or networks to remove"
fi
destroy_sim
if [ "$all" = 1 ]; then
    if docker info >/dev/null 2>&1; then
        remove_plugin_and_image
    else
        echo "demo-clean.sh: --all needs a running Docker Engine to remove $plugin" >&2
        exit 1
    fi
fi
