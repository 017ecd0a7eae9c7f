#!/usr/bin/env bash
# The project's test command (README, CI): dependencies, lint, then pytest in seven stages.
#
# Usage: scripts/test.sh [--stage NAME]... [PYTEST ARGS...]
#   --stage NAME  run only this stage (repeatable; default every stage); the summary names the
#                 stages not run
#   PYTEST ARGS   go to every pytest stage; a stage they select nothing in fails, saying so
# Stages: ruff (check, format --check); unit (-m "not netns and not docker and not cluster and not vm and not
# wire and not swarm"); netns (-m netns, needs root); cluster (-m cluster: real etcd members
# and plugin processes on loopback); docker (-m docker; starts dockerd first, and stops it at
# the end if it started it; the tests marked every_engine also run on Debian 13's Engine 26.1
# and Debian unstable's 28.5 beside it, see tests/e2e/engines.py); vm (-m vm: a QEMU guest
# with an emulated igb SR-IOV NIC, see tests/vm/test_vm.py); wire (-m wire: two such guests
# cabled back to back in a swarm, the cable's pcap read on the host, tests/vm/test_wire.py);
# swarm (-m swarm: dockerd nodes of its own in a swarm, Debian's Engine 20.10; the system
# engine builds the plugin).
# Every stage runs even if an earlier one failed; the exit status is non-zero if any failed.
# A pytest stage passes only if at least one test ran, none failed and every skipped test is
# on tests/allowed_skips.txt (scripts/lib/stages.sh); each test has a per-stage time limit.
# SRIOV_TEST_RUN_ID (default: a fresh random id) goes into every name, socket, bridge,
# address and directory the tests make, so that two runs on one machine never collide.
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

started_dockerd_pid=
STAGES=
while [ "${1:-}" = --stage ]; do
    [ -n "${2:-}" ] || { echo "test.sh: --stage needs a stage name" >&2; exit 2; }
    STAGES+=" $2"
    shift 2
done
EXTRA_PYTEST_ARGS="$*"
SRIOV_TEST_RUN_ID=${SRIOV_TEST_RUN_ID:-$(head -c 3 /dev/urandom | od -An -tx1 | tr -d ' \n')}
if ! [[ $SRIOV_TEST_RUN_ID =~ ^[0-9a-z]{1,6}$ ]]; then
    echo "test.sh: SRIOV_TEST_RUN_ID='$SRIOV_TEST_RUN_ID': want 1 to 6 of 0-9 and a-z" >&2
    exit 2
fi
export SRIOV_TEST_RUN_ID
# The run counts as live for other runs' clean-up while this claim is held (tests/runid.py).
mkdir -p -m 1777 /tmp/sriov-test-claims
exec {run_claim}>"/tmp/sriov-test-claims/run-$SRIOV_TEST_RUN_ID.lock"
if ! flock -n "$run_claim"; then
    echo "test.sh: another live run has the id $SRIOV_TEST_RUN_ID (SRIOV_TEST_RUN_ID)" >&2
    exit 2
fi
echo "test run id: $SRIOV_TEST_RUN_ID"

# shellcheck source=scripts/lib/stages.sh
source "$repo/scripts/lib/stages.sh"
HELD_FDS=$run_claim
# Seconds one test of a stage may take (pytest-timeout): a hang fails with its stack. The
# session fixtures that build the plugin or boot the guest count towards their first test.
stage_timeout=([unit]=120 [netns]=300 [cluster]=600 [docker]=1200 [vm]=2400 [wire]=2400 [swarm]=1200)

# Runs of this script (and the e2e fixtures) that use the system engine register in
# ENGINE_USERS under its lock: the run that started dockerd stops it at its end only when no
# other registered run is still alive; otherwise the engine is left running.
ENGINE_USERS=/run/sriov-engine-users
registered=false

start_dockerd() {
    local out fd status
    mkdir -p "$ENGINE_USERS"
    exec {fd}>"$ENGINE_USERS.lock"
    flock "$fd"
    if ! $registered; then
        echo $$ >"$ENGINE_USERS/$SRIOV_TEST_RUN_ID"
        registered=true
    fi
    out=$(
        HELD_FDS+=" $fd"
        close_held_fds
        exec scripts/start-dockerd.sh
    )
    status=$?
    flock -u "$fd"
    exec {fd}>&-
    [ "$status" -eq 0 ] || return 1
    echo "$out"
    if [[ $out =~ ^dockerd\ started,\ pid\ ([0-9]+) ]]; then
        started_dockerd_pid=${BASH_REMATCH[1]}
    fi
}

# Other live runs registered as users of the system engine.
other_engine_users() {
    local file pid
    for file in "$ENGINE_USERS"/*; do
        [ -f "$file" ] && [ "$(basename "$file")" != "$SRIOV_TEST_RUN_ID" ] || continue
        pid=$(cat "$file" 2>/dev/null) || continue
        if kill -0 "$pid" 2>/dev/null; then
            echo "$(basename "$file") (pid $pid)"
        else
            rm -f "$file"
        fi
    done
}

# At exit: deregister; stop dockerd if this run started it and no other run uses it (the
# docker tests may have restarted it since, so the pid to stop is the one in its pid file).
stop_started_dockerd() {
    $registered || return 0
    local fd pid others
    exec {fd}>"$ENGINE_USERS.lock"
    flock "$fd"
    rm -f "$ENGINE_USERS/$SRIOV_TEST_RUN_ID"
    others=$(other_engine_users)
    if [ -n "$started_dockerd_pid" ] && [ -n "$others" ]; then
        echo "test.sh: leaving the system dockerd running, other test runs use it: $others"
    elif [ -n "$started_dockerd_pid" ] && pid=$(cat /var/run/docker.pid 2>/dev/null) &&
        kill "$pid" 2>/dev/null; then
        for _ in $(seq 30); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 1
        done
    fi
    flock -u "$fd"
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

# The lint stage: ruff's rules, and its formatter's layout.
lint() {
    ruff check . && ruff format --check .
}

run_stage ruff lint
run_stage unit run_pytest -m "not netns and not docker and not cluster and not vm and not wire and not swarm" "$@"
run_stage netns run_pytest -m netns "$@"
run_stage cluster run_pytest -m cluster "$@"
run_stage docker docker_stage "$@"
run_stage vm vm_stage "$@"
run_stage wire wire_stage "$@"
run_stage swarm swarm_stage "$@"

print_summary
