#!/usr/bin/env bash
# Start Debian's dockerd unless a Docker Engine already answers.
#
# Usage: scripts/start-dockerd.sh
# Environment:
#   DOCKERD_LOG      where dockerd's output goes (default /var/log/sriov-dockerd.log);
#                    a managed plugin's stdout/stderr ends up here too.
#   DOCKERD_TIMEOUT  seconds to wait for `docker info` to answer (default 60).
# Prints "dockerd started, pid N, log FILE" or "dockerd already running".
set -euo pipefail

log=${DOCKERD_LOG:-/var/log/sriov-dockerd.log}
timeout=${DOCKERD_TIMEOUT:-60}

engine_answers() {
    docker info >/dev/null 2>&1
}

if engine_answers; then
    echo "dockerd already running"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "start-dockerd.sh: no Docker Engine answers and starting dockerd needs root" >&2
    exit 1
fi
if ! command -v dockerd >/dev/null; then
    echo "start-dockerd.sh: dockerd not found; run scripts/install-deps.sh (package docker.io)" >&2
    exit 1
fi

mkdir -p "$(dirname "$log")"
# --iptables=false: this host's kernel lacks the netfilter pieces dockerd wants;
# containers then have no NAT, which the tests do not need.
setsid dockerd --iptables=false </dev/null >>"$log" 2>&1 &
pid=$!

for _ in $(seq "$timeout"); do
    if engine_answers; then
        echo "dockerd started, pid $pid, log $log"
        exit 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "start-dockerd.sh: dockerd exited during start; last lines of $log:" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
    sleep 1
done

echo "start-dockerd.sh: dockerd (pid $pid) did not answer within ${timeout}s; see $log" >&2
exit 1
