#!/usr/bin/env bash
# The project's test command (README, CI): dependencies, lint, then pytest in six stages.
#
# Usage: scripts/test.sh [PYTEST ARGS...]   (extra arguments go to every pytest stage)
# Stages: ruff check; unit (-m "not netns and not docker and not cluster and not vm and not
# swarm"); netns (-m netns, needs root); cluster (-m cluster: real etcd members and plugin
# processes on loopback); docker (-m docker; starts dockerd first, and stops it at the end if it
# started it; the tests marked every_engine also run on Debian 13's Engine 26 beside it, see
# tests/e2e/engines.py); vm (-m vm: a QEMU guest with an emulated igb SR-IOV NIC, see
# tests/vm/test_vm.py); swarm (-m swarm: dockerd nodes of its own in a swarm, Debian's Engine
# 20.10; the system engine builds the plugin).
# Every stage runs even if an earlier one failed; the exit status is non-zero if any failed.
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

failed=()
summary=()
started_dockerd_pid=

heading() {
    printf '\n===== %s =====\n' "$1"
}

# run_stage NAME COMMAND...: run one stage, time it, record its result.
run_stage() {
    local name=$1 start status
    shift
    heading "$name"
    start=$SECONDS
    "$@"
    status=$?
    summary+=("$(printf '%-7s %s  %ss' "$name" "$([ "$status" -eq 0 ] && echo ok || echo FAILED)" $((SECONDS - start)))")
    [ "$status" -eq 0 ] || failed+=("$name")
}

# pytest, with its exit status 5 (no tests selected for the marker) counted as a pass.
run_pytest() {
    pytest "$@"
    local status=$?
    [ "$status" -eq 5 ] && return 0
    return "$status"
}

# Stop dockerd if this script started it; the docker tests may have restarted it since,
# so the pid to stop is the one in dockerd's pid file now.
stop_started_dockerd() {
    [ -n "$started_dockerd_pid" ] || return 0
    local pid
    pid=$(cat /var/run/docker.pid 2>/dev/null) || return 0
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 30); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 1
    done
}

start_dockerd() {
    local out
    out=$(scripts/start-dockerd.sh) || return 1
    echo "$out"
    if [[ $out =~ ^dockerd\ started,\ pid\ ([0-9]+) ]]; then
        started_dockerd_pid=${BASH_REMATCH[1]}
    fi
}

docker_stage() {
    start_dockerd || return 1
    run_pytest -m docker "$@"
}

# The guest's plugin rootfs is built with the host's engine before the guest boots.
vm_stage() {
    start_dockerd || return 1
    run_pytest -m vm "$@"
}

# Two guests cabled back to back; the plugin's rootfs is the one the vm stage built, if current.
wire_stage() {
    start_dockerd || return 1
    run_pytest -m wire "$@"
}

swarm_stage() {
    start_dockerd || return 1
    run_pytest -m swarm "$@"
}

heading "dependencies"
if ! scripts/install-deps.sh --test-engines; then
    echo "test.sh: scripts/install-deps.sh --test-engines failed" >&2
    exit 1
fi
export PATH="$repo/.venv/bin:$PATH"
trap stop_started_dockerd EXIT

run_stage ruff ruff check .
run_stage unit run_pytest -m "not netns and not docker and not cluster and not vm and not swarm" "$@"
run_stage netns run_pytest -m netns "$@"
run_stage cluster run_pytest -m cluster "$@"
run_stage docker docker_stage "$@"
run_stage vm vm_stage "$@"
run_stage wire wire_stage "$@"
run_stage swarm swarm_stage "$@"

heading "summary"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -ne 0 ]; then
    echo "failed: ${failed[*]}"
    exit 1
fi
echo "all stages passed"
