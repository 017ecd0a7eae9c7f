#!/usr/bin/env python3
"""Benchmark a cluster RequestAddress (etcd) beside a local one (SQLite), through the plugin.

Starts real etcd on loopback ports (Debian's etcd-server: one member, then three),
and for each a ``python -m plugin serve`` with SRIOV_CLUSTER_STORE naming every
member. On one keep-alive unix-socket connection, as Docker sends them, it makes
``--requests`` sequential RequestAddress calls on a cluster pool
(``--ipam-opt cluster=true``) and as many on a local pool of the same plugin,
then prints the median and p99 of each. etcd keeps its default durability
(every commit fsynced on a quorum of members), as SQLite keeps synchronous=FULL.

    .venv/bin/python scripts/bench_cluster.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from bench_ipam import LeanClient, print_table  # noqa: E402
from etcdlib import EtcdCluster, etcd_available  # noqa: E402
from support import PluginProcess  # noqa: E402


def latencies(client: LeanClient, pool_id: str, count: int) -> list[float]:
    body = {"PoolID": pool_id, "Address": "", "Options": None}
    samples = []
    for number in range(1, count + 1):
        started = time.perf_counter()
        status, reply = client.call("IpamDriver.RequestAddress", body)
        samples.append(time.perf_counter() - started)
        if status != 200:
            raise SystemExit(f"RequestAddress #{number} on {pool_id} -> {status} {reply}")
    return samples


def figures(samples: list[float]) -> tuple[str, str]:
    median = statistics.median(samples) * 1000
    p99 = statistics.quantiles(samples, n=100)[98] * 1000
    return f"{median:.2f} ms", f"{p99:.2f} ms"


def measure(members: int, count: int, scratch: Path) -> list[tuple[str, str, str]]:
    with EtcdCluster(scratch / f"etcd{members}", size=members) as etcd:
        env = {
            "SRIOV_SOCKET": str(scratch / f"p{members}.sock"),
            "SRIOV_STATE_DIR": str(scratch / f"state{members}"),
            "SRIOV_CLUSTER_STORE": etcd.endpoints,
            "SRIOV_NODE_NAME": "bench",
            "SRIOV_LOG_LEVEL": "warning",
        }
        with PluginProcess(env) as plugin:
            client = LeanClient(plugin.socket_path)
            cluster = client.ok(
                "IpamDriver.RequestPool",
                {"AddressSpace": "local", "Pool": "10.60.0.0/16", "Options": {"cluster": "true"}},
            )["PoolID"]
            local = client.ok(
                "IpamDriver.RequestPool", {"AddressSpace": "local", "Pool": "10.61.0.0/16"}
            )["PoolID"]
            latencies(client, cluster, 50)  # warm-up: connections, caches
            cluster_samples = latencies(client, cluster, count)
            local_samples = latencies(client, local, count)
            client.close()
    name = f"{members} etcd member{'s' if members > 1 else ''}"
    return [
        (f"cluster pool, {name}", *figures(cluster_samples)),
        (f"local pool (SQLite), same plugin, {name} run", *figures(local_samples)),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="per pool and cluster size")
    args = parser.parse_args()
    if not etcd_available():
        print("etcd is not installed (scripts/install-deps.sh installs etcd-server)")
        return 1
    rows = [("RequestAddress, sequential", "median", "p99")]
    with tempfile.TemporaryDirectory(prefix="sriov-bench-etcd-", dir="/tmp") as scratch:
        for members in (1, 3):
            rows += measure(members, args.requests, Path(scratch))
    print(f"cluster IPAM benchmark: {args.requests} RequestAddress per pool, etcd on loopback")
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
