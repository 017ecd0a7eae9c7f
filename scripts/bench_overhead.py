#!/usr/bin/env python3
"""What the plugin adds to a request: the real plugin against a bare falcon + waitress app.

Starts ``python -m plugin serve`` (default settings, info logging, metrics) on a
temporary socket and state directory, and beside it a bare app: falcon on
waitress on a unix socket, one route that answers ``NetworkDriver.GetCapabilities``
with the same JSON and nothing else (no middleware, schema, log or metrics).
Both get the same trivial call, sequentially over one keep-alive connection each,
in interleaved rounds (plugin, bare, plugin, ...) so that the machine's load
falls on both alike. Prints each one's median per call over all rounds and the
ratio plugin / bare (the target is 1.10 or under), and the same for the CPU time
each server process spent per call (all its threads, from the kernel's
schedstat), which the machine's load moves far less than the wall-clock time.
No test asserts on it: it is a figure to read.

    python3 scripts/bench_overhead.py [--rounds 200] [--calls 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "scripts"))

from bench_ipam import LeanClient, timed_call  # noqa: E402
from support import PluginProcess  # noqa: E402

METHOD = "NetworkDriver.GetCapabilities"
RATIO_TARGET = 1.10


def serve_bare(socket_path: str) -> None:
    """The bare app: what any falcon + waitress plugin costs, the floor for ours."""
    import json

    import falcon
    import waitress

    class Capabilities:
        def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
            req.bounded_stream.read()
            resp.text = json.dumps({"Scope": "local", "ConnectivityScope": "global"})

    app = falcon.App()
    app.add_route(f"/{METHOD}", Capabilities())
    waitress.serve(app, unix_socket=socket_path, threads=8, ident="bare", _quiet=True)


def cpu_ns(pid: int) -> int:
    """Nanoseconds the process ``pid`` has run on a CPU, all its threads together."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except FileNotFoundError:
            continue  # a thread that ended meanwhile
    return total


class BareProcess:
    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> BareProcess:
        self._proc = subprocess.Popen(
            [sys.executable, __file__, "--bare", str(self.socket_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                client = LeanClient(self.socket_path)
                client.ok(METHOD, None)
                client.close()
                return self
            except OSError:
                if time.monotonic() > deadline or self._proc.poll() is not None:
                    raise SystemExit("the bare app did not start") from None
                time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def __exit__(self, *exc: object) -> None:
        self._proc.terminate()
        self._proc.wait(timeout=10)


def one_round(client: LeanClient, calls: int, pid: int) -> tuple[list[float], float]:
    """Each call's wall-clock time, and the server's CPU time per call in the round."""
    samples = []
    cpu_before = cpu_ns(pid)
    for _ in range(calls):
        elapsed, status, _ = timed_call(client, METHOD, None)
        if status != 200:
            raise SystemExit(f"{METHOD} -> {status}")
        samples.append(elapsed)
    return samples, (cpu_ns(pid) - cpu_before) / calls / 1e9


def run(rounds: int, calls: int) -> float:
    with tempfile.TemporaryDirectory(prefix="sriov-bench-overhead-") as tmp:
        tmp_path = Path(tmp)
        env = {"SRIOV_SOCKET": str(tmp_path / "sriov.sock"), "SRIOV_STATE_DIR": str(tmp_path)}
        with PluginProcess(env) as plugin, BareProcess(tmp_path / "bare.sock") as bare:
            ours, theirs = LeanClient(plugin.socket_path), LeanClient(bare.socket_path)
            one_round(ours, calls, plugin.pid)  # warm both up: caches, the metrics' children
            one_round(theirs, calls, bare.pid)
            plugin_all, bare_all, plugin_cpu, bare_cpu = [], [], [], []
            for _ in range(rounds):
                mine, mine_cpu = one_round(ours, calls, plugin.pid)
                base, base_cpu = one_round(theirs, calls, bare.pid)
                plugin_all += mine
                bare_all += base
                plugin_cpu.append(mine_cpu)
                bare_cpu.append(base_cpu)
            ours.close()
            theirs.close()
    plugin_ms = statistics.median(plugin_all) * 1000
    bare_ms = statistics.median(bare_all) * 1000
    ratio = plugin_ms / bare_ms
    plugin_cpu_ms = statistics.median(plugin_cpu) * 1000
    bare_cpu_ms = statistics.median(bare_cpu) * 1000
    print(
        f"{METHOD}, {rounds} interleaved rounds of {calls} calls, keep-alive, "
        f"load {os.getloadavg()[0]:.1f}:"
    )
    print(
        f"  median per call   plugin {plugin_ms:.4f} ms  bare {bare_ms:.4f} ms  "
        f"ratio {ratio:.3f}  (target <= {RATIO_TARGET})"
    )
    print(
        f"  server CPU/call   plugin {plugin_cpu_ms:.4f} ms  bare {bare_cpu_ms:.4f} ms  "
        f"ratio {plugin_cpu_ms / bare_cpu_ms:.3f}"
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--bare", metavar="SOCKET", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        serve_bare(args.bare)
        return
    run(args.rounds, args.calls)


if __name__ == "__main__":
    main()
