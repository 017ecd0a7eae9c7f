"""A real multi-node Docker swarm on one machine, each node with the plugin and a NIC of its own.

Every node is a dockerd of its own (Debian's docker.io): own data root, short exec
root, ``-H`` socket, pid file and default bridge (``-b``, made here: ``--bridge=none``
would delete the host's docker0), its own ``docker_gwbridge`` made before it
joins (else swarm rewrites the host's), a hostname of its own (``unshare --uts``)
and a loopback address of its own for the swarm ports (the gossip port 7946 is
fixed per address). The managed plugin is built once on the system engine and
loaded into each node with ``docker plugin create`` from config.json + rootfs/; the
busybox test image is imported into each node. Each node gets a simulated PF under
a sysfs root of its own, all on one simulated fabric (``sim create --fabric``), so
VFs of different nodes on one VLAN reach each other as through one switch.

Everything made on the host is named with ``sw`` and the run's id (tests/runid.py), and
the host addresses are the run's own: the node bridges' and docker_gwbridges' subnets lie
in a 10.X.0.0/16 and the swarm addresses in a 127.X.Y.0/24 that this run claimed and that
nothing else on the host uses. ``Node.stop`` and ``remove_leftovers`` undo what this run
made (also after a killed session of the same run id), and nothing of another run.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import dockerlib
import runid
import vflib
from dockerlib import PLUGIN, REPO, SCRIPTS, STATE_SUBDIR, TEST_IMAGE, SimNic

RUN = runid.RUN_ID
# per node: data root, sysfs root of its NIC, plugin state
WORK = Path("/var/lib/swsriov") / RUN
# config.json + rootfs/, what `docker plugin create` reads: in the checkout's build/, on the
# filesystem of rootfs/, so that its copy can be hard links.
PLUGIN_DIR = REPO / "build" / f"swarm-plugin-{RUN}"
BUILD_NAME = f"swsriov{RUN}:latest"  # the plugin's name on the system engine while it is built
FABRIC = f"f{RUN}"  # the simulated top-of-rack switch every node's PF is plugged into
SWARM_PORTS = (2377, 7946)  # the manager port and the gossip port, on each node's address


@functools.cache
def host_subnet() -> ipaddress.IPv4Network:
    """This run's 10.X.0.0/16: node N's bridge 10.X.N.1/24, its docker_gwbridge 10.X.(100+N)."""
    return runid.subnet16("swarm")


@functools.cache
def loopback_net() -> ipaddress.IPv4Network:
    """This run's 127.X.Y.0/24: node N listens on 127.X.Y.N."""
    return runid.loopback24("swarm", SWARM_PORTS)


QUICK_STOP = vflib.QUICK_STOP
FACTORY_MAC = "00:00:00:00:00:00"


def build_plugin_dir() -> Path:
    """Build the plugin on the system engine and keep config.json + rootfs/ in PLUGIN_DIR.

    scripts/build-plugin.sh leaves the root filesystem in the checkout's rootfs/ and
    creates the plugin on the system engine, where it is removed again at once. Like
    the docker stage, it holds the system engine's lock while it uses it.
    """
    with dockerlib.system_engine_session():
        dockerlib.run_script("build-plugin.sh", BUILD_NAME)
        dockerlib.docker("plugin", "rm", BUILD_NAME)
    shutil.rmtree(PLUGIN_DIR, ignore_errors=True)
    PLUGIN_DIR.mkdir(parents=True)
    shutil.copy(REPO / "config.json", PLUGIN_DIR / "config.json")
    # A copy of hard links (build-plugin.sh replaces rootfs/ and never writes into its files;
    # never shutil: rootfs/dev holds device nodes such as zero), under build-plugin.sh's own
    # lock so that a concurrent build cannot replace rootfs/ mid-copy.
    subprocess.run(
        [
            "flock",
            str(REPO / "build/.build-plugin.lock"),
            "cp",
            "-a",
            "--link",
            str(REPO / "rootfs"),
            str(PLUGIN_DIR / "rootfs"),
        ],
        check=True,
        timeout=300,
    )
    return PLUGIN_DIR


class FabricSimNic(SimNic):
    """A simulated NIC whose switch is the shared fabric FABRIC."""

    def create(self) -> None:
        self._sim("create", "--pf", self.pf, "--vfs", str(self.vfs), "--fabric", FABRIC)


@dataclass
class Node:
    """One dockerd of the swarm, with its plugin, test image and simulated PF."""

    index: int
    vfs: int = 2
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return f"sw{RUN}n{self.index}"

    @property
    def address(self) -> str:
        return str(loopback_net().network_address + self.index)

    @property
    def dir(self) -> Path:
        return WORK / self.name

    @property
    def host(self) -> str:
        return f"unix:///run/{self.name}.sock"

    @property
    def bridge(self) -> str:
        return f"{self.name}br0"

    @property
    def gwbridge(self) -> str:
        return f"{self.name}gw"

    @property
    def sim(self) -> FabricSimNic:
        return FabricSimNic(pf=f"sw{RUN}p{self.index}", vfs=self.vfs, sysfs=self.dir / "sysfs")

    @property
    def state_db(self) -> Path:
        return self.dir / "state" / STATE_SUBDIR / "sriov.db"

    # ---- docker on this node ----------------------------------------------------

    def run_docker(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return dockerlib.run_docker("-H", self.host, *args, timeout=timeout)

    def docker(self, *args: str, check: bool = True, timeout: float = 180) -> str:
        return dockerlib.docker("-H", self.host, *args, check=check, timeout=timeout)

    def answers(self) -> bool:
        return self.run_docker("info", timeout=30).returncode == 0

    # ---- life cycle ---------------------------------------------------------------

    def start(self) -> None:
        """Start the node's dockerd on a fresh data root, with its own docker_gwbridge."""
        self.dir.mkdir(parents=True)
        subprocess.run(["ip", "link", "add", self.bridge, "type", "bridge"], check=True)
        subprocess.run(
            [
                "ip",
                "addr",
                "add",
                f"{self._subnet(self.index).network_address + 1}/24",
                "dev",
                self.bridge,
            ],
            check=True,
        )
        subprocess.run(["ip", "link", "set", self.bridge, "up"], check=True)
        dockerd = (
            f"hostname {self.name} && exec dockerd --data-root {self.dir}/data"
            f" --exec-root /run/{self.name} -H {self.host} --pidfile /run/{self.name}.pid"
            f" --iptables=false --ip6tables=false -b {self.bridge}"
        )
        with open(self.dir / "dockerd.log", "ab") as log:
            self.process = subprocess.Popen(
                ["unshare", "--uts", "sh", "-c", dockerd],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        dockerlib.wait_until(
            lambda: self.process.poll() is not None or self.answers(), 60, f"{self.name} to answer"
        )
        assert self.process.poll() is None, f"{self.name} exited; see {self.dir}/dockerd.log"
        self.docker(
            "network",
            "create",
            "--subnet",
            str(self._subnet(100 + self.index)),
            "-o",
            f"com.docker.network.bridge.name={self.gwbridge}",
            "-o",
            "com.docker.network.bridge.enable_icc=false",
            "-o",
            "com.docker.network.bridge.enable_ip_masquerade=false",
            "docker_gwbridge",
        )

    @staticmethod
    def _subnet(third: int) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network((int(host_subnet().network_address) + (third << 8), 24))

    def install(self, plugin_dir: Path) -> None:
        """Load the plugin (on this node's PF and state dir) and the test image."""
        self.sim.create()
        (self.dir / "state").mkdir()
        self.docker("plugin", "create", PLUGIN, str(plugin_dir), timeout=300)
        self.docker(
            "plugin",
            "set",
            PLUGIN,
            f"sysfs.source={self.dir / 'sysfs'}",
            f"state.source={self.dir / 'state'}",
            "SRIOV_NIC=sim",
        )
        self.docker("plugin", "enable", PLUGIN)
        subprocess.run(
            ["bash", str(SCRIPTS / "make-test-image.sh"), TEST_IMAGE],
            env={**os.environ, "DOCKER_HOST": self.host},
            check=True,
            capture_output=True,
            timeout=300,
        )

    def stop(self) -> list[str]:
        """Stop dockerd and remove all the node made on the host; return what failed."""
        errors = []
        pid = self._dockerd_pid()
        if pid is None and self.process is not None and self.process.poll() is None:
            pid = self.process.pid  # started, but no pid file (yet)
        if pid is not None:
            try:
                dockerlib.stop_dockerd(pid)
            except AssertionError as exc:
                errors.append(str(exc))
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=30)
        with contextlib.suppress(AssertionError):
            self.sim.destroy()
        for link in (self.bridge, self.gwbridge):
            subprocess.run(["ip", "link", "del", link], capture_output=True, check=False)
        _unmount_below(self.dir)
        _unmount_below(Path(f"/run/{self.name}"))
        shutil.rmtree(self.dir, ignore_errors=True)
        shutil.rmtree(f"/run/{self.name}", ignore_errors=True)
        return errors

    def _dockerd_pid(self) -> int | None:
        """The pid in the node's pid file, if that process is still this node's dockerd."""
        try:
            pid = int(Path(f"/run/{self.name}.pid").read_text().strip())
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        return pid if self.host.encode() in argv else None

    # ---- what the node holds --------------------------------------------------------

    def vfs_now(self) -> dict[int, vflib.SimVf]:
        return vflib.sim_vfs(self.sim)

    def leases(self) -> dict[str, int]:
        """Rows in the node's plugin store: networks, endpoints (VF leases), pools, addresses."""
        db = sqlite3.connect(f"file:{self.state_db}?mode=ro", uri=True, timeout=10)
        try:
            return {
                table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("networks", "endpoints", "pools", "addresses")
            }
        finally:
            db.close()

    def task_containers(self, service: str) -> list[str]:
        """Names of the running containers of ``service``'s tasks on this node."""
        return self.docker(
            "ps",
            "--filter",
            f"label=com.docker.swarm.service.name={service}",
            "--format",
            "{{.Names}}",
        ).split()

    def endpoint(self, container: str, network: str) -> dict:
        """The container's endpoint settings on ``network`` (IPAddress, MacAddress, ...)."""
        return json.loads(
            self.docker(
                "inspect",
                "-f",
                f'{{{{json (index .NetworkSettings.Networks "{network}")}}}}',
                container,
            )
        )

    def pings(self, container: str, target: str) -> bool:
        result = self.run_docker("exec", container, "ping", "-c", "1", "-W", "2", target)
        return result.returncode == 0

    def resolves(self, container: str, name: str) -> set[str]:
        """IPv4 addresses ``name`` resolves to inside ``container`` (Docker's embedded DNS)."""
        result = self.run_docker("exec", container, "nslookup", name, "127.0.0.11")
        answer = result.stdout.split(f"Name:\t{name}", 1)
        lines = answer[1].splitlines() if len(answer) == 2 else []
        return {
            line.split()[-1]
            for line in lines
            if line.startswith("Address") and ":" not in line.split()[-1]
        }


def _unmount_below(path: Path) -> None:
    """Lazily unmount whatever a killed dockerd left mounted under ``path``."""
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(f"{path}/")), reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True, check=False)


# ---- the swarm ----------------------------------------------------------------------------


def form_swarm(manager: Node, workers: list[Node]) -> None:
    """``swarm init`` on ``manager``, drop ingress, then join ``workers``.

    Every node's ingress network would use the same VXLAN id on one kernel, and
    dnsrr services need no routing mesh, so it goes before anyone joins.
    """
    manager.docker(
        "swarm",
        "init",
        "--listen-addr",
        f"{manager.address}:2377",
        "--advertise-addr",
        f"{manager.address}:2377",
    )
    subprocess.run(
        ["docker", "-H", manager.host, "network", "rm", "ingress"],
        input="y\n",
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    dockerlib.wait_until(
        lambda: manager.run_docker("network", "inspect", "ingress").returncode != 0,
        60,
        "ingress to go",
    )
    token = manager.docker("swarm", "join-token", "-q", "worker")
    for node in workers:
        node.docker(
            "swarm",
            "join",
            "--token",
            token,
            "--listen-addr",
            f"{node.address}:2377",
            "--advertise-addr",
            f"{node.address}:2377",
            f"{manager.address}:2377",
        )
    dockerlib.wait_until(
        lambda: ready_nodes(manager) == {n.name for n in [manager, *workers]},
        60,
        "every node to be ready",
    )


def create_service(manager: Node, name: str, network: str, replicas: int, *args: str) -> None:
    """A dnsrr service of the idle test image on ``network``; failed tasks retry after 1 s."""
    manager.docker(
        *("service", "create", "--detach", "--name", name, "--endpoint-mode", "dnsrr"),
        *("--no-resolve-image", "--network", network, "--replicas", str(replicas)),
        *("--restart-delay", "1s", *args, TEST_IMAGE, *QUICK_STOP),
    )


def ready_nodes(manager: Node) -> set[str]:
    lines = manager.docker("node", "ls", "--format", "{{.Hostname}} {{.Status}}").splitlines()
    return {line.split()[0] for line in lines if line.endswith(" Ready")}


def leave_swarm(nodes: list[Node]) -> None:
    """Every node leaves (workers first); the swarm's networks go with it."""
    for node in reversed(nodes):
        node.run_docker("swarm", "leave", "--force", timeout=60)


@dataclass(frozen=True)
class Task:
    """One line of ``docker service ps --no-trunc``."""

    id: str
    node: str
    desired: str
    state: str
    error: str


def tasks(manager: Node, service: str) -> list[Task]:
    lines = manager.docker(
        "service", "ps", "--no-trunc", "--format", "{{json .}}", service
    ).splitlines()
    rows = [json.loads(line) for line in lines]
    return [
        Task(r["ID"], r["Node"], r["DesiredState"], r["CurrentState"], r["Error"]) for r in rows
    ]


def running_by_node(nodes: list[Node], service: str) -> dict[str, list[str]]:
    """The running containers of ``service`` on every node, by node name."""
    return {node.name: node.task_containers(service) for node in nodes}


def wait_for_running(nodes: list[Node], service: str, count: int, timeout: float = 90) -> None:
    """Wait until ``count`` containers of ``service`` run across ``nodes``."""

    def done() -> bool:
        return sum(len(c) for c in running_by_node(nodes, service).values()) == count

    dockerlib.wait_until(done, timeout, f"{count} running tasks of {service}", interval=0.5)


def says_no_free_vf(error: str, pf: str, vfs: int) -> bool:
    """Whether a task error is the plugin's "no free VF on PF (...): N of N leased"."""
    return re.search(rf"no free VF on {pf}\b[^:]*: {vfs} of {vfs} leased", error) is not None


def vf_is_free_and_restored(vf: vflib.SimVf) -> bool:
    """Back in the host, on the untagged VLAN, with the factory (unset) admin MAC."""
    return vf.in_host and vf.vlan == 0 and vf.mac == FACTORY_MAC


def remove_leftovers(count: int) -> None:
    """Stop dockerds and remove links and directories a killed session left (``sw`` names)."""
    for index in range(1, count + 1):
        Node(index).stop()
