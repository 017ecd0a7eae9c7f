#!/usr/bin/env python3
"""Benchmark the IPAM driver through the real plugin process and its unix socket.

Starts ``python -m plugin serve`` on a temporary socket and state directory,
requests one pool (a /16 by default), then allocates every address in it with
one sequential ``IpamDriver.RequestAddress`` per address over one keep-alive
connection, exactly as Docker would send them. Prints the median latency of the
first and last 1,000 allocations, their ratio (a flat cost per request means a
ratio near 1), the median of a trivial call for comparison, the total time and
whether the request after the last address correctly reports exhaustion.

    python3 scripts/bench_ipam.py [--pool 10.0.0.0/16] [--state-dir DIR]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support import PluginProcess

WINDOW = 1000
TRIVIAL_CALLS = 2000
RATIO_TARGET = 1.3
MEDIAN_TARGET_MS = 1.0


class LeanClient:
    """HTTP/1.1 over one keep-alive unix socket, with no more work per call than Docker's.

    Python's http.client adds about 0.1 ms per call of its own; this client
    sends the bytes Docker sends (POST, no Content-Type) and reads the status
    and the Content-Length body, so the figures are the plugin's, not the
    client's.
    """

    def __init__(self, socket_path: Path):
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(str(socket_path))
        self._buffer = b""

    def call(self, method: str, body: dict | None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else b""
        head = f"POST /{method} HTTP/1.1\r\nHost: plugin\r\nContent-Length: {len(data)}\r\n\r\n"
        self._sock.sendall(head.encode() + data)
        status, reply = self.reply()
        return status, json.loads(reply)

    def get(self, path: str) -> bytes:
        """GET ``path`` (the plugin's /status, /metrics); the body of a 200, else exit."""
        self._sock.sendall(f"GET {path} HTTP/1.1\r\nHost: plugin\r\n\r\n".encode())
        status, body = self.reply()
        if status != 200:
            raise SystemExit(f"GET {path} -> {status}")
        return body

    def reply(self) -> tuple[int, bytes]:
        """The next reply's status and its Content-Length body."""
        while b"\r\n\r\n" not in self._buffer:
            self._receive()
        header, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length:")
        )
        while len(self._buffer) < length:
            self._receive()
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        return status, body

    def _receive(self) -> None:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise ConnectionError("the plugin closed the connection")
        self._buffer += chunk

    def ok(self, method: str, body: dict | None) -> dict:
        status, reply = self.call(method, body)
        if status != 200:
            raise SystemExit(f"{method} -> {status} {reply}")
        return reply

    def close(self) -> None:
        self._sock.close()


def timed_call(client: LeanClient, method: str, body: dict | None) -> tuple[float, int, dict]:
    started = time.perf_counter()
    status, reply = client.call(method, body)
    return time.perf_counter() - started, status, reply


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def allocate_every_address(client: LeanClient, pool_id: str, expected: int) -> list[float]:
    """One RequestAddress per usable address; fail loudly on anything but 200."""
    body = {"PoolID": pool_id, "Address": "", "Options": None}
    latencies = []
    for number in range(1, expected + 1):
        elapsed, status, reply = timed_call(client, "IpamDriver.RequestAddress", body)
        if status != 200:
            raise SystemExit(f"RequestAddress #{number} of {expected} -> {status} {reply}")
        latencies.append(elapsed)
        if number % 10000 == 0:
            print(f"  {number} addresses allocated", file=sys.stderr)
    return latencies


def trivial_call_latencies(client: LeanClient) -> list[float]:
    samples = []
    for _ in range(TRIVIAL_CALLS):
        elapsed, status, _ = timed_call(client, "IpamDriver.GetCapabilities", None)
        assert status == 200
        samples.append(elapsed)
    return samples


def print_table(rows: list[tuple[str, str, str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for index, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if index == 0:
            print("  ".join("-" * width for width in widths))


def run(pool: str, state_dir: Path, socket_dir: Path) -> bool:
    network = ipaddress.ip_network(pool)
    usable = network.num_addresses - 2
    env = {
        "SRIOV_SOCKET": str(socket_dir / "sriov.sock"),
        "SRIOV_STATE_DIR": str(state_dir),
    }
    with PluginProcess(env) as plugin:
        client = LeanClient(plugin.socket_path)
        trivial = trivial_call_latencies(client)
        pool_id = client.ok(
            "IpamDriver.RequestPool", {"AddressSpace": "local", "Pool": pool, "V6": False}
        )["PoolID"]
        started = time.perf_counter()
        latencies = allocate_every_address(client, pool_id, usable)
        total = time.perf_counter() - started
        _, status, reply = timed_call(
            client, "IpamDriver.RequestAddress", {"PoolID": pool_id, "Address": ""}
        )
        client.close()
    exhausted = status == 409 and f"no free address in {pool}" in reply.get("Err", "")
    first, last = median_ms(latencies[:WINDOW]), median_ms(latencies[-WINDOW:])
    ratio = last / first
    p99 = statistics.quantiles(latencies, n=100)[98] * 1000
    passed = ratio <= RATIO_TARGET and max(first, last) <= MEDIAN_TARGET_MS and exhausted
    print(f"IPAM benchmark: {usable} sequential RequestAddress on {pool} (state in {state_dir})")
    print_table(
        [
            ("measure", "value", "target"),
            ("RequestAddress median, first 1,000", f"{first:.3f} ms", f"<= {MEDIAN_TARGET_MS} ms"),
            ("RequestAddress median, last 1,000", f"{last:.3f} ms", f"<= {MEDIAN_TARGET_MS} ms"),
            ("ratio last / first", f"{ratio:.2f}", f"<= {RATIO_TARGET}"),
            ("GetCapabilities median", f"{median_ms(trivial):.3f} ms", ""),
            (
                "RequestAddress p99, all",
                f"{p99:.3f} ms",
                "",
            ),
            ("total for all addresses", f"{total:.1f} s ({usable / total:.0f}/s)", ""),
            ("next request", f"{status} {reply.get('Err', reply)}", "409 no free address"),
        ]
    )
    print("PASS" if passed else "MISSED a target")
    return passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", default="10.0.0.0/16", help="IPv4 pool to fill (default /16)")
    parser.add_argument(
        "--state-dir", type=Path, help="where the store lives (default: a temporary directory)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sriov-bench-", dir="/tmp") as scratch:
        state_dir = args.state_dir or Path(scratch) / "state"
        return 0 if run(args.pool, state_dir, Path(scratch)) else 1


if __name__ == "__main__":
    sys.exit(main())
