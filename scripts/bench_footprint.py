#!/usr/bin/env python3
"""Print the plugin's footprint: root filesystem size, resident memory, time to first answer.

- root filesystem: the size of ``rootfs/`` as scripts/build-plugin.sh leaves it
  (the managed plugin's root filesystem; build it first), target at most 80 MB;
- resident memory: ``python -m plugin serve`` on a temporary socket and state
  directory, VmRSS once it answers and after 5,000 requests (RequestAddress and
  ReleaseAddress in turn, over one keep-alive connection), target at most 45 MB.
  Measured twice: as the managed plugin runs, with the interpreter and
  libraries of its root filesystem (a chroot into an overlay of ``rootfs/`` with
  this checkout's ``plugin/`` mounted over the built one, so no rebuild is
  needed; needs root), which the target is for; and with this checkout's
  virtual environment, for comparison;
- start: spawn to the first ``Plugin.Activate`` answered, over several starts,
  target under 1 s.

    python3 scripts/bench_footprint.py [--rootfs DIR] [--requests 5000] [--starts 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_endpoint import run
from bench_ipam import LeanClient
from support import REPO_ROOT, PluginProcess

ROOTFS_TARGET_MB = 80
RSS_TARGET_MB = 45
START_TARGET_S = 1.0


def tree_megabytes(root: Path) -> float:
    """Apparent size of the files under ``root`` (what ``du --apparent-size`` counts)."""
    total = 0
    for directory, _dirs, files in os.walk(root):
        for name in files:
            path = Path(directory) / name
            if not path.is_symlink():
                total += path.stat().st_size
    return total / 1e6


def resident_megabytes(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no VmRSS for process {pid}")


def plugin_env(scratch: Path) -> dict:
    return {
        "SRIOV_SOCKET": str(scratch / "sriov.sock"),
        "SRIOV_STATE_DIR": str(scratch / "state"),
        "SRIOV_LOG_LEVEL": "warning",
    }


def memory_after_requests(requests: int) -> tuple[float, float]:
    """VmRSS (MB) of the plugin on this checkout's interpreter: at first answer, after requests."""
    with (
        tempfile.TemporaryDirectory(prefix="sriov-footprint-", dir="/tmp") as scratch,
        PluginProcess(plugin_env(Path(scratch))) as plugin,
    ):
        return memory_of(plugin.pid, plugin.socket_path, requests)


def memory_in_rootfs(rootfs: Path, requests: int) -> tuple[float, float]:
    """The same, run as the managed plugin runs: chrooted into its root filesystem."""
    with tempfile.TemporaryDirectory(prefix="sriov-footprint-", dir="/tmp") as scratch:
        root = Path(scratch) / "root"
        for name in ("upper", "work", "root"):
            (Path(scratch) / name).mkdir()
        run(
            "mount", "-t", "overlay", "overlay", "-o",
            f"lowerdir={rootfs},upperdir={scratch}/upper,workdir={scratch}/work", str(root),
        )  # fmt: skip
        package = f"{root}/opt/sriov/plugin"
        try:
            run("mount", "--bind", "-o", "ro", str(REPO_ROOT / "plugin"), package)
            try:
                return memory_of_chrooted(root, requests)
            finally:
                run("umount", package)
        finally:
            run("umount", str(root))


def memory_of_chrooted(root: Path, requests: int) -> tuple[float, float]:
    env = {**plugin_env(Path("/tmp")), "PYTHONPATH": "/opt/sriov", "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(
        [shutil.which("chroot") or "chroot", str(root), "python3", "-m", "plugin", "serve"],
        env=env, cwd="/", stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        socket_path = root / env["SRIOV_SOCKET"].lstrip("/")
        deadline = time.monotonic() + 10
        while not socket_path.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"plugin in {root} did not start: {proc.stderr.read()}")
            time.sleep(0.02)
        return memory_of(proc.pid, socket_path, requests)
    finally:
        proc.terminate()
        proc.wait()


def memory_of(pid: int, socket_path: Path, requests: int) -> tuple[float, float]:
    """VmRSS (MB) of ``pid`` now, and after ``requests`` IPAM requests on ``socket_path``."""
    client = LeanClient(socket_path)
    try:
        client.ok("Plugin.Activate", None)
        at_start = resident_megabytes(pid)
        pool = client.ok(
            "IpamDriver.RequestPool", {"AddressSpace": "local", "Pool": "10.40.0.0/16"}
        )["PoolID"]
        for _ in range(requests // 2):
            address = client.ok(
                "IpamDriver.RequestAddress", {"PoolID": pool, "Address": "", "Options": None}
            )["Address"]
            client.ok(
                "IpamDriver.ReleaseAddress", {"PoolID": pool, "Address": address.split("/")[0]}
            )
        return at_start, resident_megabytes(pid)
    finally:
        client.close()


def start_times(starts: int) -> list[float]:
    samples = []
    for _ in range(starts):
        with (
            tempfile.TemporaryDirectory(prefix="sriov-footprint-", dir="/tmp") as scratch,
            PluginProcess(plugin_env(Path(scratch))) as plugin,
        ):
            samples.append(plugin.startup_seconds)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rootfs", type=Path, default=REPO_ROOT / "rootfs")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args()
    passed = True
    if args.rootfs.is_dir():
        size = tree_megabytes(args.rootfs)
        passed &= size <= ROOTFS_TARGET_MB
        print(f"root filesystem ({args.rootfs}): {size:.1f} MB (target <= {ROOTFS_TARGET_MB} MB)")
    else:
        print(f"root filesystem: no {args.rootfs}; build it with scripts/build-plugin.sh")
        passed = False
    if args.rootfs.is_dir() and os.geteuid() == 0:
        at_start, after = memory_in_rootfs(args.rootfs, args.requests)
        passed &= after <= RSS_TARGET_MB
        print(
            f"resident memory in the plugin's root filesystem: {at_start:.1f} MB at first "
            f"answer, {after:.1f} MB after {args.requests} requests (target <= {RSS_TARGET_MB} MB)"
        )
    else:
        print("resident memory in the plugin's root filesystem: needs root and a built rootfs")
        passed = False
    at_start, after = memory_after_requests(args.requests)
    print(
        f"resident memory on {sys.executable}: {at_start:.1f} MB at first answer, "
        f"{after:.1f} MB after {args.requests} requests (for comparison)"
    )
    samples = start_times(args.starts)
    passed &= max(samples) < START_TARGET_S
    print(
        f"start to first answer: median {statistics.median(samples):.3f} s, "
        f"max {max(samples):.3f} s over {args.starts} starts (target < {START_TARGET_S} s)"
    )
    print("PASS" if passed else "MISSED a target")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
