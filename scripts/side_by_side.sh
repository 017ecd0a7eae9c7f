#!/usr/bin/env bash
# Two scripts/test.sh runs of the docker and swarm stages at once on this machine, each with
# a run id of its own: both must be green. Shows that runs never collide (names, sockets,
# bridges, subnets, ports, state directories, the system engine's lock and its dockerd).
# A benchmark-style check, not part of .ci/run; as root, like scripts/test.sh.
#
# Usage: scripts/side_by_side.sh [PYTEST ARGS...]   (given to both runs, e.g. --engine system)
# Environment: SIDE_BY_SIDE_STAGES (default "docker swarm"), SIDE_BY_SIDE_LOGS (default: a
# fresh directory under /tmp). Prints each run's summary, its time and where its log is.
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

stages=${SIDE_BY_SIDE_STAGES:-docker swarm}
logs=${SIDE_BY_SIDE_LOGS:-$(mktemp -d /tmp/sriov-side-by-side-XXXXXX)}
mkdir -p "$logs"
stage_args=()
for stage in $stages; do
    stage_args+=(--stage "$stage")
done

declare -A pids=()
for run in a b; do
    id="sbs${run}$(head -c 1 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    (
        start=$SECONDS
        SRIOV_TEST_RUN_ID=$id bash scripts/test.sh "${stage_args[@]}" "$@" \
            </dev/null >"$logs/$run.log" 2>&1
        status=$?
        echo "$status $((SECONDS - start))" >"$logs/$run.status"
        exit "$status"
    ) &
    pids[$run]=$!
    echo "run $run: id $id, log $logs/$run.log"
done

failed=0
for run in a b; do
    wait "${pids[$run]}"
    read -r status seconds <"$logs/$run.status"
    printf '\n===== run %s: exit %s after %ss =====\n' "$run" "$status" "$seconds"
    sed -n '/^===== summary =====$/,$p' "$logs/$run.log"
    [ "$status" -eq 0 ] || failed=1
done

echo
if [ "$failed" -eq 0 ]; then
    echo "side by side: both runs passed (stages: $stages)"
else
    echo "side by side: a run failed (stages: $stages); logs in $logs"
fi
exit "$failed"
