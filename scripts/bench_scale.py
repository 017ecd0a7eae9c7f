#!/usr/bin/env python3
"""Benchmark how the plugin's cost grows with the host: links, VFs, leases, parallel containers.

Each part runs ``python -m plugin serve`` over its real socket, in a network
namespace of its own standing for the host, and prints what it measured:

- links: CreateEndpoint + DeleteEndpoint (the median of their sum) and one
  ``GET /status`` with 0, 500 and 2,000 extra links in the host namespace (veth
  pairs on the simulated NIC, where the kernel has no dummy module; dummy links
  in ``--nic kernel`` mode). The target: 2,000 / 0 <= 1.2.
- leases: 8 PFs x 64 VFs (simulated), one network per PF; the six calls of one
  ``docker run`` (RequestAddress, CreateEndpoint, Join, Leave, DeleteEndpoint,
  ReleaseAddress) with nothing leased and then with 400 VFs leased. Target:
  ratio <= 1.3. Also against the links part's one PF of 4 VFs and no extra link.
- status and metrics: one ``GET /status`` and one ``GET /metrics`` with those
  512 VFs (400 leased). Target: <= 50 ms each.
- parallel: 32 containers started at once (RequestAddress, CreateEndpoint, Join)
  by 32 clients, each on its own connection, on a network of one PF with 64
  VFs; every one must get a VF of its own and none may fail. Then the same 32
  one after another, and both wall times.

It draws the figures as a PNG (``--png``; matplotlib, a test dependency). No
test asserts these times; the script exits non-zero when a target is missed.

    python3 scripts/bench_scale.py [--runs 200] [--png docs/bench-scale.png]
    python3 scripts/bench_scale.py --nic kernel --pf A --pf B --pf C --runs 20   # VM guest

``--nic kernel`` runs the links part (and its ``GET /status``) with the kernel
backend on three real PFs, one per link count: each PF and its VFs' netdevs are
moved into the namespace of their host, whose plugin serves them; the namespaces
are deleted at the end, which gives the netdevs back. What the VM stage's guest
can do with ``SRIOV_VM_MORE_PFS=2`` (scripts/vm/bench-scale.sh). Needs root.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ipam import LeanClient
from support import PluginProcess, docker_id

REPO = Path(__file__).resolve().parent.parent
LINK_COUNTS = (0, 500, 2000)
LINKS_RATIO_TARGET = 1.2
LEASES_RATIO_TARGET = 1.3
VIEW_TARGET_MS = 50.0
PFS, VFS_PER_PF, LEASED = 8, 64, 400
PARALLEL = 32
STARTUP_LIMIT_S = 60.0  # a TCG guest takes more than the usual 5 s to import the plugin
WARMUP = [10]  # containers before the timed ones, per target (--warmup)


def run(*args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, input=stdin)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args[:6])} failed: {proc.stderr.strip()[:500]}")
    return proc.stdout


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


@dataclass
class Network:
    """One network through the protocol, and the calls of one container on it."""

    client: LeanClient
    pfs: str
    subnet: str
    vlan: str = ""  # the network's vlanid option; none: untagged
    id: str = field(default_factory=docker_id)
    pool: str = ""

    def create(self) -> Network:
        self.pool = self.client.ok(
            "IpamDriver.RequestPool", {"AddressSpace": "local", "Pool": self.subnet, "V6": False}
        )["PoolID"]
        gateway = self.client.ok(
            "IpamDriver.RequestAddress",
            {"PoolID": self.pool, "Address": "",
             "Options": {"RequestAddressType": "com.docker.network.gateway"}},
        )["Address"]  # fmt: skip
        self.client.ok(
            "NetworkDriver.CreateNetwork",
            {
                "NetworkID": self.id,
                "Options": {"com.docker.network.generic": self.options()},
                "IPv4Data": [{"AddressSpace": "local", "Pool": self.subnet, "Gateway": gateway}],
                "IPv6Data": [],
            },
        )
        return self

    def options(self) -> dict:
        return {"pf_iface": self.pfs, **({"vlanid": self.vlan} if self.vlan else {})}

    def start(self, client: LeanClient | None = None) -> tuple[str, str]:
        """RequestAddress, CreateEndpoint, Join: a container starting. (endpoint, address)"""
        client = client or self.client
        endpoint = docker_id()
        address = client.ok(
            "IpamDriver.RequestAddress", {"PoolID": self.pool, "Address": "", "Options": None}
        )["Address"]
        ids = {"NetworkID": self.id, "EndpointID": endpoint}
        client.ok(
            "NetworkDriver.CreateEndpoint",
            {**ids, "Options": {},
             "Interface": {"Address": address, "AddressIPv6": "", "MacAddress": ""}},
        )  # fmt: skip
        client.ok("NetworkDriver.Join", {**ids, "SandboxKey": f"/run/netns/{endpoint[:12]}"})
        return endpoint, address

    def stop(self, endpoint: str, address: str, client: LeanClient | None = None) -> None:
        """Leave, DeleteEndpoint, ReleaseAddress: the container gone."""
        client = client or self.client
        ids = {"NetworkID": self.id, "EndpointID": endpoint}
        client.ok("NetworkDriver.Leave", ids)
        client.ok("NetworkDriver.DeleteEndpoint", ids)
        client.ok(
            "IpamDriver.ReleaseAddress", {"PoolID": self.pool, "Address": address.split("/")[0]}
        )

    def six_calls(self) -> float:
        """One container's six calls, timed together."""
        started = time.perf_counter()
        endpoint, address = self.start()
        self.stop(endpoint, address)
        return time.perf_counter() - started

    def create_delete(self) -> float:
        """CreateEndpoint + DeleteEndpoint alone (no address, no Join), timed together."""
        ids = {"NetworkID": self.id, "EndpointID": docker_id()}
        body = {**ids, "Options": {}, "Interface": {}}
        return timed(lambda: self.client.ok("NetworkDriver.CreateEndpoint", body)) + timed(
            lambda: self.client.ok("NetworkDriver.DeleteEndpoint", ids)
        )


def median_ms(samples: list[float]) -> float:
    return ms(statistics.median(samples))


class Host:
    """A network namespace standing for the host (or the host itself, ``name`` None)."""

    def __init__(self, name: str | None):
        self.name = name
        self.extra = 0
        self._tag = secrets.token_hex(2)
        self._made: list[str] = []

    def __enter__(self) -> Host:
        if self.name:
            run("ip", "netns", "add", self.name)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.name:
            run("ip", "netns", "del", self.name)  # takes every link made in it along
        elif self.extra:
            self.add_links(0)

    def ip(self) -> list[str]:
        return ["ip", "-n", self.name] if self.name else ["ip"]

    def exec(self) -> list[str]:
        return ["ip", "netns", "exec", self.name] if self.name else []

    def add_links(self, total: int, kind: str = "veth") -> None:
        """Add extra links up to ``total`` (dummies, or veth pairs: two links each); 0 removes
        them all."""
        if total == self.extra:
            return
        if total == 0:
            lines = [f"link del {name}" for name in self._made]
            self._made = []
        else:
            lines = []
            while self.extra + len(lines) * (2 if kind == "veth" else 1) < total:
                name = f"xl{self._tag}n{len(self._made)}"
                peer = f" type veth peer name xl{self._tag}p{len(self._made)}"
                lines.append(f"link add {name}" + (peer if kind == "veth" else " type dummy"))
                self._made.append(name)
        if lines:
            run(*self.ip(), "-batch", "-", stdin="\n".join(lines) + "\n")
        self.extra = total


def plugin_env(scratch: Path, sysfs: Path, nic: str) -> dict:
    return {
        "SRIOV_SOCKET": str(scratch / "sriov.sock"),
        "SRIOV_STATE_DIR": str(scratch / "state"),
        "SRIOV_SYSFS": str(sysfs),
        "SRIOV_NIC": nic,
        "SRIOV_LOG_LEVEL": "warning",
    }


def sim_create(host: Host, sysfs: Path, pf: str, vfs: int, repo: Path = REPO) -> None:
    """A simulated PF of ``vfs`` VFs in ``host``, made by ``repo``'s simulator."""
    run(*host.exec(), "env", f"PYTHONPATH={repo}", sys.executable, "-m", "plugin", "sim",
        "create", "--pf", pf, "--vfs", str(vfs), "--sysfs", str(sysfs))  # fmt: skip


def cpu_seconds(pid: int) -> float:
    """CPU time the process has used, all its threads together (schedstat: nanoseconds).

    Wall times on a machine shared with other work wander with its load; the
    plugin's own CPU time per request does much less, so both are printed.
    """
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as file:
                total += int(file.read().split()[0])
        except FileNotFoundError:
            continue  # a thread that ended meanwhile
    return total / 1e9


@dataclass
class Target:
    """One plugin serving one host, and a network on it; samples of what was measured."""

    host: Host
    plugin: PluginProcess
    client: LeanClient
    network: Network
    wall: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)

    def measure(self, name: str, action: Callable[[], float]) -> None:
        before = cpu_seconds(self.plugin.pid)
        elapsed = action()
        self.cpu.setdefault(name, []).append(cpu_seconds(self.plugin.pid) - before)
        self.wall.setdefault(name, []).append(elapsed)

    def status(self) -> float:
        return timed(lambda: self.client.get("/status"))

    def metrics(self) -> float:
        return timed(lambda: self.client.get("/metrics"))

    def figure(self, name: str) -> tuple[float, float]:
        """(median wall ms, mean plugin CPU ms) of ``name``."""
        return median_ms(self.wall[name]), ms(statistics.fmean(self.cpu[name]))


MEASURES = ("create_delete", "six_calls", "status")


def interleaved(targets: list[Target], runs: int) -> None:
    """Each measure on each target in turn, ``runs`` times: load that comes and goes on the
    machine falls on every target alike."""
    for _ in range(WARMUP[0]):
        for target in targets:
            target.network.create_delete()
            target.network.six_calls()
    for round_ in range(runs):
        for target in targets:
            target.measure("create_delete", target.network.create_delete)
            target.measure("six_calls", target.network.six_calls)
            if round_ % 5 == 0:
                target.measure("status", target.status)


def links_figures(targets: list[Target], counts: list[int]) -> dict:
    figures: dict = {"links": counts}
    for name in MEASURES:
        pairs = [target.figure(name) for target in targets]
        figures[f"{name}_ms"] = [wall for wall, _ in pairs]
        figures[f"{name}_cpu_ms"] = [cpu for _, cpu in pairs]
    for count, target in zip(counts, targets, strict=True):
        wall, cpu = target.figure("create_delete")
        six, six_cpu = target.figure("six_calls")
        status, _ = target.figure("status")
        print(f"  {count:>5} extra links: CreateEndpoint+DeleteEndpoint {wall:.2f} ms "
              f"(plugin CPU {cpu:.2f} ms), six calls {six:.2f} ms (CPU {six_cpu:.2f}), "
              f"GET /status {status:.2f} ms", flush=True)  # fmt: skip
    figures["ratio"] = round(figures["create_delete_ms"][-1] / figures["create_delete_ms"][0], 3)
    figures["cpu_ratio"] = round(
        figures["create_delete_cpu_ms"][-1] / figures["create_delete_cpu_ms"][0], 3
    )
    return figures


def served(
    stack: contextlib.ExitStack,
    host: Host,
    env: dict,
    pf: str,
    vlan: str = "",
    repo: Path = REPO,
) -> Target:
    """The host's own plugin (``repo``'s), started with ``env`` in its namespace, and a
    network on ``pf`` (on ``vlan``, if given)."""
    plugin = stack.enter_context(
        PluginProcess(env, netns=host.name, startup_limit=STARTUP_LIMIT_S, repo=repo)
    )
    client = LeanClient(plugin.socket_path)
    stack.callback(client.close)
    network = Network(client, pf, "10.41.0.0/16", vlan=vlan).create()
    return Target(host, plugin, client, network)


def sim_links_part(scratch: Path, runs: int, kind: str) -> dict:
    """One host per link count, each with a simulated PF of 4 VFs and its own plugin."""
    with contextlib.ExitStack() as stack:
        targets = []
        for count in LINK_COUNTS:
            host = stack.enter_context(Host(f"sriovscale{secrets.token_hex(3)}"))
            pf = f"sl{secrets.token_hex(2)}"
            sysfs = scratch / f"sys-links-{count}"
            sim_create(host, sysfs, pf, 4)
            host.add_links(count, kind)
            targets.append(served(stack, host, plugin_env(scratch / f"l{count}", sysfs, "sim"), pf))
        interleaved(targets, runs)
        return links_figures(targets, list(LINK_COUNTS))


def wait_until(ready: Callable[[], bool], failure: str) -> None:
    """Poll ``ready`` until it is true; exit saying ``failure`` after ``STARTUP_LIMIT_S``."""
    deadline = time.monotonic() + STARTUP_LIMIT_S
    while not ready():
        if time.monotonic() > deadline:
            raise SystemExit(f"{failure} after {STARTUP_LIMIT_S:.0f} s")
        time.sleep(0.2)


def enable_vfs(pf: str) -> list[str]:
    """Enable every VF of the real PF ``pf`` (if none is) and wait for their netdevs; their
    names."""
    device = Path(f"/sys/class/net/{pf}/device")
    if (device / "sriov_numvfs").read_text().strip() == "0":
        (device / "sriov_numvfs").write_text((device / "sriov_totalvfs").read_text())
    virtfns = sorted(device.glob("virtfn*"))
    wait_until(
        lambda: all(list((virtfn / "net").glob("*")) for virtfn in virtfns),
        f"the VFs of {pf} have no netdev",
    )
    return [next((virtfn / "net").iterdir()).name for virtfn in virtfns]


def bring_up(host: Host, pf: str) -> None:
    """Set the PF up and wait for its carrier (its VFs' links follow the PF's)."""
    run(*host.ip(), "link", "set", "dev", pf, "up")
    wait_until(
        lambda: "LOWER_UP" in run(*host.ip(), "-o", "link", "show", "dev", pf),
        f"{pf} has no carrier",
    )


def kernel_links_part(scratch: Path, pfs: list[str], runs: int, kind: str) -> dict:
    """One real PF per link count, moved with its VFs' netdevs into a namespace of its own
    with its own plugin, as on the simulated NIC: the hosts are measured in turn, container
    by container, in one kernel, so what the machine does falls on every count alike."""
    if len(pfs) != len(LINK_COUNTS):
        raise SystemExit(f"--nic kernel needs {len(LINK_COUNTS)} PFs (--pf), one per link "
                         f"count {', '.join(map(str, LINK_COUNTS))}; got {len(pfs)}")  # fmt: skip
    with contextlib.ExitStack() as stack:
        targets = []
        for count, pf in zip(LINK_COUNTS, pfs, strict=True):
            vfs = enable_vfs(pf)
            host = stack.enter_context(Host(f"sriovscale{secrets.token_hex(3)}"))
            for netdev in (pf, *vfs):  # the namespace's end gives them back to the host's
                run("ip", "link", "set", "dev", netdev, "netns", host.name)
            bring_up(host, pf)
            host.add_links(count, kind)
            env = plugin_env(scratch / f"l{count}", Path("/sys"), "kernel")
            targets.append(served(stack, host, env, pf))
        interleaved(targets, runs)
        return links_figures(targets, list(LINK_COUNTS))


def parallel_part(network: Network, socket_path: Path) -> dict:
    """32 containers started by 32 clients at once, then 32 one after another."""
    clients = [LeanClient(socket_path) for _ in range(PARALLEL)]
    barrier = threading.Barrier(PARALLEL + 1)
    started: list[tuple[str, str] | None] = [None] * PARALLEL
    failures: list[str] = []

    def one(index: int) -> None:
        barrier.wait()
        try:
            started[index] = network.start(clients[index])
        except (SystemExit, OSError) as err:  # LeanClient.ok raises SystemExit on a non-200
            failures.append(str(err))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(PARALLEL)]
    for thread in threads:
        thread.start()
    barrier.wait()
    begun = time.perf_counter()
    for thread in threads:
        thread.join()
    parallel_s = time.perf_counter() - begun
    held = [s for s in started if s is not None]
    vfs = [network.client.ok("NetworkDriver.EndpointOperInfo",
                             {"NetworkID": network.id, "EndpointID": ep})["Value"]["pci"]
           for ep, _ in held]  # fmt: skip
    for index, entry in enumerate(started):
        if entry is not None:
            network.stop(*entry, client=clients[index])
    for client in clients:
        client.close()
    begun = time.perf_counter()
    sequential = [network.start() for _ in range(PARALLEL)]
    sequential_s = time.perf_counter() - begun
    for entry in sequential:
        network.stop(*entry)
    return {
        "containers": PARALLEL,
        "failed": len(failures),
        "failures": failures[:3],
        "distinct_vfs": len(set(vfs)),
        "parallel_ms": ms(parallel_s),
        "sequential_ms": ms(sequential_s),
    }


def scale_part(scratch: Path, runs: int) -> dict:
    """8 PFs x 64 VFs twice: one host with 400 VFs leased, one with none, measured in turn;
    then status and metrics on the first, and the parallel start on the second."""
    figures: dict = {"pfs": PFS, "vfs": PFS * VFS_PER_PF}
    with contextlib.ExitStack() as stack:
        targets, networks = [], []
        for name in ("leased", "empty"):
            host = stack.enter_context(Host(f"sriovscale{secrets.token_hex(3)}"))
            sysfs = scratch / f"sys-scale-{name}"
            pfs = [f"sc{secrets.token_hex(2)}{n}" for n in range(PFS)]
            print(f"  {name} host: creating {PFS} simulated PFs x {VFS_PER_PF} VFs", flush=True)
            for pf in pfs:
                sim_create(host, sysfs, pf, VFS_PER_PF)
            env = plugin_env(scratch / f"scale-{name}", sysfs, "sim")
            plugin = stack.enter_context(PluginProcess(env, netns=host.name))
            client = LeanClient(plugin.socket_path)
            stack.callback(client.close)
            nets = [Network(client, pf, f"10.{50 + n}.0.0/16").create() for n, pf in enumerate(pfs)]
            targets.append(Target(host, plugin, client, nets[0]))
            networks.append(nets)
        leased, empty = targets
        per_pf = LEASED // PFS
        figures["leased"] = len([n.start() for n in networks[0] for _ in range(per_pf)])
        interleaved(targets, runs)
        for name, target in (("leased", leased), ("empty", empty)):
            wall, cpu = target.figure("six_calls")
            figures[f"six_calls_{name}_ms"], figures[f"six_calls_{name}_cpu_ms"] = wall, cpu
            figures[f"status_{name}_ms"] = target.figure("status")[0]
        for _ in range(20):
            leased.measure("status_512", leased.status)
            leased.measure("metrics_512", leased.metrics)
        for name in ("status", "metrics"):
            wall, cpu = leased.figure(f"{name}_512")
            figures[f"{name}_ms"], figures[f"{name}_cpu_ms"] = wall, cpu
            figures[f"{name}_max_ms"] = ms(max(leased.wall[f"{name}_512"]))
        view = json.loads(leased.client.get("/status"))
        figures["leased_in_status"] = sum(pf["vf_counts"]["leased"] for pf in view["pfs"])
        figures["parallel"] = parallel_part(networks[1][-1], empty.plugin.socket_path)
    figures["ratio"] = round(figures["six_calls_leased_ms"] / figures["six_calls_empty_ms"], 3)
    figures["cpu_ratio"] = round(
        figures["six_calls_leased_cpu_ms"] / figures["six_calls_empty_cpu_ms"], 3
    )
    return figures


def draw(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    links = results["links"]
    scale = results.get("scale")
    panels = 2 if scale else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 3.8), squeeze=False)
    ax = axes[0][0]
    for key, label in (("create_delete", "CreateEndpoint + DeleteEndpoint"),
                       ("six_calls", "six calls of one container"),
                       ("status", "GET /status")):  # fmt: skip
        line = ax.plot(links["links"], links[f"{key}_ms"], marker="o", label=f"{label}, wall")
        if key != "status":
            ax.plot(links["links"], links[f"{key}_cpu_ms"], marker=".", linestyle="--",
                    color=line[0].get_color(), label=f"{label}, plugin CPU")  # fmt: skip
    ax.set_xlabel(f"extra links in the host namespace ({links['kind']})")
    ax.set_ylabel("ms: wall median, plugin CPU mean")
    ax.set_ylim(bottom=0)
    ax.set_title(f"cost against host links ({results['backend']})", fontsize=10)
    ax.text(0.01, 0.01, results.get("machine", ""), transform=ax.transAxes, fontsize=7)
    ax.legend(fontsize=8)
    if scale:
        ax = axes[0][1]
        leased = [0, scale["leased"]]
        line = ax.plot(leased, [scale["six_calls_empty_ms"], scale["six_calls_leased_ms"]],
                       marker="o", label="six calls of one container, wall")  # fmt: skip
        ax.plot(leased, [scale["six_calls_empty_cpu_ms"], scale["six_calls_leased_cpu_ms"]],
                marker=".", linestyle="--", color=line[0].get_color(),
                label="six calls, plugin CPU")  # fmt: skip
        ax.plot(leased, [scale["status_empty_ms"], scale["status_ms"]], marker="o",
                label="GET /status")  # fmt: skip
        ax.plot([scale["leased"]], [scale["metrics_ms"]], marker="s", linestyle="",
                label="GET /metrics")  # fmt: skip
        ax.plot([scale["leased"]] * 2, [scale["status_cpu_ms"], scale["metrics_cpu_ms"]],
                marker="x", linestyle="", color="black",
                label="status, metrics: plugin CPU")  # fmt: skip
        ax.set_xlabel(f"VFs leased of {scale['vfs']} ({scale['pfs']} PFs)")
        ax.set_ylabel("ms: wall median, plugin CPU mean")
        ax.set_ylim(bottom=0)
        ax.set_title("cost against leased VFs (simulated NIC)", fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"drew {path}")


def verdicts(results: dict) -> list[tuple[str, bool]]:
    links = results["links"]
    found = [(f"links: CreateEndpoint+DeleteEndpoint with {LINK_COUNTS[-1]} / 0 extra links "
              f"{links['ratio']:.2f}, plugin CPU {links['cpu_ratio']:.2f} "
              f"(target <= {LINKS_RATIO_TARGET})",
              links["ratio"] <= LINKS_RATIO_TARGET)]  # fmt: skip
    scale = results.get("scale")
    if scale:
        parallel = scale["parallel"]
        found += [
            (f"leases: six calls with {scale['leased']} leased / none {scale['ratio']:.2f}, plugin "
             f"CPU {scale['cpu_ratio']:.2f} "
             f"(target <= {LEASES_RATIO_TARGET})", scale["ratio"] <= LEASES_RATIO_TARGET),
            (f"status with {scale['vfs']} VFs: {scale['status_ms']:.1f} ms (target <= "
             f"{VIEW_TARGET_MS:.0f})", scale["status_ms"] <= VIEW_TARGET_MS),
            (f"metrics with {scale['vfs']} VFs: {scale['metrics_ms']:.1f} ms (target <= "
             f"{VIEW_TARGET_MS:.0f})", scale["metrics_ms"] <= VIEW_TARGET_MS),
            (f"parallel: {parallel['containers']} containers, {parallel['failed']} failed, "
             f"{parallel['distinct_vfs']} distinct VFs",
             parallel["failed"] == 0 and parallel["distinct_vfs"] == parallel["containers"]),
        ]  # fmt: skip
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="timed containers per figure")
    parser.add_argument("--nic", choices=("sim", "kernel"), default="sim")
    parser.add_argument(
        "--pf",
        action="append",
        default=[],
        help="--nic kernel: a real SR-IOV PF, one per link count (repeat)",
    )
    parser.add_argument("--links", choices=("veth", "dummy"), help="kind of the extra links")
    parser.add_argument("--png", type=Path, help="draw the figures into this PNG")
    parser.add_argument("--json", type=Path, help="write the figures into this JSON file")
    parser.add_argument("--skip-scale", action="store_true", help="only the links part")
    parser.add_argument("--warmup", type=int, default=WARMUP[0], help="untimed containers first")
    parser.add_argument("--from-json", type=Path, help="draw and judge figures saved by --json")
    args = parser.parse_args()
    WARMUP[0] = args.warmup
    if args.from_json:
        results = json.loads(args.from_json.read_text())
        if args.png:
            draw(results, args.png)
        return judge(results)
    kind = args.links or ("veth" if args.nic == "sim" else "dummy")
    results: dict = {
        "backend": "kernel" if args.nic == "kernel" else "simulated NIC",
        "machine": f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at start",
    }
    with tempfile.TemporaryDirectory(prefix="sriov-bench-scale-", dir="/tmp") as scratch_dir:
        scratch = Path(scratch_dir)
        print(f"links ({results['backend']}, {args.runs} runs per figure):", flush=True)
        if args.nic == "kernel":
            results["links"] = kernel_links_part(scratch, args.pf, args.runs, kind)
        else:
            results["links"] = sim_links_part(scratch, args.runs, kind)
            if not args.skip_scale:
                print("leases, status and metrics, parallel (simulated NIC):", flush=True)
                results["scale"] = scale_part(scratch, args.runs)
        results["links"]["kind"] = kind
    if "scale" in results:
        scale = results["scale"]
        small = results["links"]["six_calls_ms"][0]
        scale["ratio_to_small_host"] = round(scale["six_calls_leased_ms"] / small, 3)
        print(
            f"  six calls: {scale['six_calls_empty_ms']:.2f} ms on 8x64 VFs with none leased, "
            f"{scale['six_calls_leased_ms']:.2f} ms with {scale['leased']} leased, "
            f"{small:.2f} ms on one PF of 4 VFs (x{scale['ratio_to_small_host']:.2f})"
        )
        print(
            f"  GET /status {scale['status_ms']:.1f} ms (CPU {scale['status_cpu_ms']:.1f}, max "
            f"{scale['status_max_ms']:.1f}), GET /metrics {scale['metrics_ms']:.1f} ms (CPU "
            f"{scale['metrics_cpu_ms']:.1f}, max {scale['metrics_max_ms']:.1f}) with "
            f"{scale['vfs']} VFs, {scale['leased_in_status']} leased"
        )
        parallel = scale["parallel"]
        print(f"  {parallel['containers']} containers at once: {parallel['parallel_ms']:.0f} ms "
              f"wall, one after another {parallel['sequential_ms']:.0f} ms")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if args.png:
        draw(results, args.png)
    return judge(results)


def judge(results: dict) -> int:
    passed = True
    for text, ok in verdicts(results):
        print(f"{text}: {'ok' if ok else 'MISSED'}")
        passed &= ok
    print("PASS" if passed else "MISSED a target")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
