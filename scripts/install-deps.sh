#!/usr/bin/env bash
# Install what the tests need on a Debian 12 machine, and the project into .venv.
#
# Usage: scripts/install-deps.sh [--test-engines]   (as root when something is missing)
#   --test-engines  also unpack the newer Docker Engines the engine suite runs against
#                   (Debian 13's docker.io 26.1 and Debian unstable's 28.5 with its
#                   Compose 2.40, scripts/install-engine.sh); the demo and users need
#                   only the system's engine.
# Idempotent: runs `apt-get update` only when something is missing, and reinstalls
# the project only when pyproject.toml changed. Quiet when everything is in place.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

# command on PATH -> Debian package that provides it
declare -A command_packages=(
    [dockerd]=docker.io
    [docker-compose]=docker-compose
    [ip]=iproute2
    [ping]=iputils-ping
    [debootstrap]=debootstrap
    [docker-registry]=docker-registry
    [etcd]=etcd-server
    [openssl]=openssl
    [python3]=python3
    [strace]=strace
)

package_installed() {
    dpkg-query -W -f '${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing_packages() {
    local cmd
    for cmd in "${!command_packages[@]}"; do
        command -v "$cmd" >/dev/null || echo "${command_packages[$cmd]}"
    done
    # The test image needs a statically linked busybox; the busybox package's is dynamic.
    package_installed busybox-static || echo busybox-static
    # Debian's python3 makes virtual environments only with python3-venv (ensurepip).
    python3 -c 'import ensurepip, venv' 2>/dev/null || echo python3-venv
}

install_packages() {
    local packages
    packages=$(missing_packages | sort -u | tr '\n' ' ')
    [ -z "$packages" ] && return
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-deps.sh: missing packages ($packages) and not root" >&2
        exit 1
    fi
    echo "installing: $packages"
    export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
    local log
    log=$(mktemp)
    # shellcheck disable=SC2086
    if ! { apt-get -o DPkg::Lock::Timeout=600 update -qq &&
        apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $packages; } \
        >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        echo "install-deps.sh: apt-get failed installing $packages" >&2
        exit 1
    fi
    rm -f "$log"
}

install_project() {
    local stamp=.venv/.sriov-pyproject
    if [ -x .venv/bin/python ] && [ -f "$stamp" ] && cmp -s pyproject.toml "$stamp"; then
        return
    fi
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
        echo "install-deps.sh: python3 is $(python3 -V 2>&1); the project needs 3.11 or newer" >&2
        exit 1
    }
    echo "installing the project into .venv"
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
    cp pyproject.toml "$stamp"
}

case ${1:-} in
"") test_engines=false ;;
--test-engines) test_engines=true ;;
*)
    echo "install-deps.sh: unknown argument '$1' (known: --test-engines)" >&2
    exit 2
    ;;
esac

install_packages
install_project
if $test_engines; then
    bash scripts/install-engine.sh trixie
    bash scripts/install-engine.sh sid
fi
