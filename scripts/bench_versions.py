#!/usr/bin/env python3
"""Compare other checkouts' plugin with this one's, side by side: one container's six calls.

Figures measured weeks apart on a shared machine say little: the same code measured
3.2 ms per container on one day and 5.6 ms on another. This script puts the versions
side by side instead. Each checkout's plugin (``python -m plugin serve`` from that
checkout) serves a simulated PF of 4 VFs of its own, made by that checkout's
simulator, in a network namespace of its own, with one untagged network and one on
VLAN 100; then the six calls of one ``docker run`` (RequestAddress, CreateEndpoint,
Join, Leave, DeleteEndpoint, ReleaseAddress) go to every version and network in turn,
container by container, so load that comes and goes falls on all alike. It prints, for
each, the median wall time and the plugin's mean CPU time per container, and their
ratio to this checkout's.

    git worktree add /tmp/before <commit>
    python3 scripts/bench_versions.py [--runs 400] /tmp/before    # as root

A checkout qualifies when its ``python -m plugin serve`` and ``python -m plugin sim
create`` take the same settings as this one's (every commit since 3833426 does).
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import sys
import tempfile
from pathlib import Path

import bench_scale
from bench_scale import REPO, Host, Target, interleaved, plugin_env, served, sim_create

NETWORKS = (("untagged", ""), ("VLAN 100", "100"))


def versions_targets(
    stack: contextlib.ExitStack, scratch: Path, repos: list[Path]
) -> dict[tuple[Path, str], Target]:
    """A host per checkout and network, each with its own simulated PF and plugin."""
    targets = {}
    for index, repo in enumerate(repos):
        for name, vlan in NETWORKS:
            host = stack.enter_context(Host(f"sriovver{secrets.token_hex(3)}"))
            pf = f"sv{secrets.token_hex(2)}"
            tag = f"{index}-{vlan or 'untagged'}"
            sysfs = scratch / f"sys-{tag}"
            sim_create(host, sysfs, pf, 4, repo=repo)
            env = plugin_env(scratch / f"p{tag}", sysfs, "sim")
            env["SRIOV_LOG_LEVEL"] = "info"  # the plugin's default, as a user runs it
            targets[repo, name] = served(stack, host, env, pf, vlan=vlan, repo=repo)
    return targets


def report(targets: dict[tuple[Path, str], Target], repos: list[Path]) -> None:
    print(f"{'checkout':<40} {'network':<9} {'wall ms':>8} {'CPU ms':>7} {'wall/this':>9} "
          f"{'CPU/this':>8}")  # fmt: skip
    for name, _ in NETWORKS:
        this_wall, this_cpu = targets[REPO, name].figure("six_calls")
        for repo in repos:
            wall, cpu = targets[repo, name].figure("six_calls")
            print(f"{repo!s:<40} {name:<9} {wall:>8.2f} {cpu:>7.2f} "
                  f"{wall / this_wall:>9.2f} {cpu / this_cpu:>8.2f}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkouts", nargs="+", type=Path, help="other checkouts to compare")
    parser.add_argument("--runs", type=int, default=400, help="timed containers per target")
    parser.add_argument("--warmup", type=int, default=20, help="untimed containers first")
    args = parser.parse_args()
    repos = [REPO, *(path.resolve() for path in args.checkouts)]
    for repo in repos:
        if not (repo / "plugin" / "__main__.py").is_file():
            raise SystemExit(f"{repo}: not a checkout of this project (no plugin/__main__.py)")
    bench_scale.WARMUP[0] = args.warmup
    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sriov-ver-")))
        targets = versions_targets(stack, scratch, repos)
        interleaved(list(targets.values()), args.runs)
        print(f"six calls per container, {args.runs} containers per target, in turn:")
        report(targets, repos)
    return 0


if __name__ == "__main__":
    sys.exit(main())
