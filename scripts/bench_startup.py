#!/usr/bin/env python3
"""Benchmark how soon the plugin answers after it is started.

Docker disables a managed plugin that does not answer within about 10 s, and
the plugin promises to answer within 1 s. This starts ``python -m plugin serve``
several times on a fresh temporary socket and state directory and prints the
time from spawning the process to the first ``Plugin.Activate`` answered 200.

    python3 scripts/bench_startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support import PluginProcess

TARGET_SECONDS = 1.0


def time_to_first_answer(scratch: Path) -> float:
    env = {"SRIOV_SOCKET": str(scratch / "sriov.sock"), "SRIOV_STATE_DIR": str(scratch / "state")}
    with PluginProcess(env) as plugin:
        return plugin.startup_seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="how many starts (default 10)")
    args = parser.parse_args()
    samples = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="sriov-start-", dir="/tmp") as scratch:
            samples.append(time_to_first_answer(Path(scratch)))
    median, worst = statistics.median(samples), max(samples)
    print(f"plugin start to first Plugin.Activate answer, {args.runs} starts")
    print(f"  median {median:.3f} s, max {worst:.3f} s (target < {TARGET_SECONDS} s)")
    passed = worst < TARGET_SECONDS
    print("PASS" if passed else "MISSED the target")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
