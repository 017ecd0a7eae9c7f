#!/usr/bin/env python3
"""Benchmark the plugin's share of one ``docker run``, on a simulated NIC, over the real socket.

For every container on a network Docker makes six calls to the plugin:
RequestAddress, CreateEndpoint, Join, then, when it stops, Leave, DeleteEndpoint
and ReleaseAddress. This creates a private network namespace standing for the
host, a simulated SR-IOV NIC in it (``python -m plugin sim create``: veths and
bridges with names unique to this run), starts ``python -m plugin serve`` there
with ``SRIOV_NIC=sim``, creates an untagged network and a network on a VLAN, and
drives the six calls for ``--runs`` containers on each, one container at a time
and the two networks interleaved, over one keep-alive connection as Docker
sends them. It prints each call's median and p99 and the total per container,
and exits non-zero when a median total misses the target. Needs root.

    python3 scripts/bench_endpoint.py [--runs 300] [--vfs 4]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ipam import LeanClient
from support import PluginProcess, docker_id

TOTAL_TARGET_MS = 4.0
WARMUP_RUNS = 20
CALLS = (
    "IpamDriver.RequestAddress",
    "NetworkDriver.CreateEndpoint",
    "NetworkDriver.Join",
    "NetworkDriver.Leave",
    "NetworkDriver.DeleteEndpoint",
    "IpamDriver.ReleaseAddress",
)


def run(*args: str) -> str:
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


class Network:
    """One network of the benchmark: its pool, its id and the calls of one container."""

    def __init__(self, client: LeanClient, name: str, subnet: str, vlan: int, pf: str):
        self.client = client
        self.name = name
        self.id = docker_id()
        self.pool = client.ok(
            "IpamDriver.RequestPool", {"AddressSpace": "local", "Pool": subnet, "V6": False}
        )["PoolID"]
        gateway = client.ok(
            "IpamDriver.RequestAddress",
            {"PoolID": self.pool, "Address": "", "Options": {
                "RequestAddressType": "com.docker.network.gateway"}},
        )["Address"]  # fmt: skip
        client.ok(
            "NetworkDriver.CreateNetwork",
            {
                "NetworkID": self.id,
                "Options": {
                    "com.docker.network.enable_ipv6": False,
                    "com.docker.network.generic": {"pf_iface": pf, "vlanid": str(vlan)},
                },
                "IPv4Data": [{"AddressSpace": "local", "Pool": subnet, "Gateway": gateway}],
                "IPv6Data": [],
            },
        )
        self.samples: dict[str, list[float]] = {call: [] for call in CALLS}
        self.totals: list[float] = []

    def container(self, record: bool) -> None:
        """The six calls of one ``docker run --rm --net <this network>``, each timed."""
        endpoint = docker_id()
        times = []
        address = self._timed(
            times,
            "IpamDriver.RequestAddress",
            {"PoolID": self.pool, "Address": "", "Options": None},
        )["Address"]
        ids = {"NetworkID": self.id, "EndpointID": endpoint}
        self._timed(
            times,
            "NetworkDriver.CreateEndpoint",
            {
                **ids,
                "Options": {},
                "Interface": {"Address": address, "AddressIPv6": "", "MacAddress": ""},
            },
        )
        self._timed(
            times,
            "NetworkDriver.Join",
            {**ids, "SandboxKey": f"/var/run/docker/netns/{endpoint[:12]}", "Options": {}},
        )
        self._timed(times, "NetworkDriver.Leave", ids)
        self._timed(times, "NetworkDriver.DeleteEndpoint", ids)
        self._timed(times, "IpamDriver.ReleaseAddress",
                    {"PoolID": self.pool, "Address": address.split("/")[0]})  # fmt: skip
        if record:
            for call, elapsed in zip(CALLS, times, strict=True):
                self.samples[call].append(elapsed)
            self.totals.append(sum(times))

    def _timed(self, times: list[float], method: str, body: dict) -> dict:
        started = time.perf_counter()
        status, reply = self.client.call(method, body)
        times.append(time.perf_counter() - started)
        if status != 200:
            raise SystemExit(f"{self.name}: {method} -> {status} {reply}")
        return reply


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98]


def report(networks: list[Network]) -> bool:
    header = ["call"]
    for net in networks:
        header += [f"{net.name} median ms", f"{net.name} p99 ms"]
    rows = [header]
    for call in CALLS:
        row = [call]
        for net in networks:
            row += [ms(statistics.median(net.samples[call])), ms(p99(net.samples[call]))]
        rows.append(row)
    total = ["total per container"]
    for net in networks:
        total += [ms(statistics.median(net.totals)), ms(p99(net.totals))]
    rows.append(total)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        print("  ".join(cells))
        if index in (0, len(rows) - 2):
            print("  ".join("-" * w for w in widths))
    passed = True
    for net in networks:
        median_total = statistics.median(net.totals) * 1000
        verdict = "ok" if median_total <= TOTAL_TARGET_MS else "MISSED"
        passed &= median_total <= TOTAL_TARGET_MS
        print(f"{net.name}: median total {median_total:.2f} ms (target <= {TOTAL_TARGET_MS} ms) "
              f"{verdict}")  # fmt: skip
    return passed


def benchmark(runs: int, vfs: int, scratch: Path) -> bool:
    tag = secrets.token_hex(3)
    host, pf = f"sriovbench{tag}", f"bp{tag}"
    sysfs = scratch / "sys"
    run("ip", "netns", "add", host)
    try:
        sim = [sys.executable, "-m", "plugin", "sim"]
        run("ip", "netns", "exec", host, *sim, "create", "--pf", pf, "--vfs", str(vfs),
            "--sysfs", str(sysfs))  # fmt: skip
        env = {
            "SRIOV_SOCKET": str(scratch / "sriov.sock"),
            "SRIOV_STATE_DIR": str(scratch / "state"),
            "SRIOV_SYSFS": str(sysfs),
            "SRIOV_NIC": "sim",
            "SRIOV_LOG_LEVEL": "warning",
        }
        with PluginProcess(env, netns=host) as plugin:
            client = LeanClient(plugin.socket_path)
            networks = [
                Network(client, "untagged", "10.31.0.0/16", 0, pf),
                Network(client, "vlan 100", "10.32.0.0/16", 100, pf),
            ]
            for number in range(WARMUP_RUNS + runs):
                for net in networks:
                    net.container(record=number >= WARMUP_RUNS)
            client.close()
    finally:
        run("ip", "netns", "del", host)  # takes the simulated NIC's veths and bridges along
    print(f"plugin calls of one `docker run` on a simulated NIC ({vfs} VFs), "
          f"{runs} containers per network after {WARMUP_RUNS} warm-up runs")  # fmt: skip
    return report(networks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300, help="containers per network")
    parser.add_argument("--vfs", type=int, default=4, help="VFs of the simulated PF")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sriov-bench-ep-", dir="/tmp") as scratch:
        passed = benchmark(args.runs, args.vfs, Path(scratch))
    print("PASS" if passed else "MISSED the target")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
