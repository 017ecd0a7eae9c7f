"""Two Docker Engines as two hosts, one cluster subnet: containers get distinct addresses.

Each "host" is a dockerd of this test's own (own data root, exec root, socket,
pid file and pre-created bridge, ``--iptables=false``; nothing shared with the
system's Docker Engine, so no lock is needed) and a plugin process of its own,
registered as a legacy plugin by its socket in the run's own plugin directory,
which each test dockerd sees as /run/docker/plugins in a mount namespace of its
own (the system engine never sees these sockets). Names carry the run's id
(tests/runid.py), and the subnet is a /24 of a 10.X.0.0/16 the run claimed and no
route uses. Both plugins use one etcd member. Each engine creates a bridge network
on that subnet with ``--ipam-opt cluster=true`` and no ``--ip-range``; the
containers of both must get distinct addresses from it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import runid
from etcdlib import EtcdCluster, etcd_available
from support import REPO_ROOT, PluginProcess
from test_cluster import held_in_etcd, pools_in_etcd

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(not etcd_available(), reason="etcd (Debian's etcd-server) is not installed"),
    pytest.mark.skipif(shutil.which("dockerd") is None, reason="dockerd is not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="starting dockerd needs root"),
]

IMAGE = "sriov-test-busybox:latest"
DOCKER_PLUGIN_DIR = "/run/docker/plugins"  # where dockerd finds legacy plugins' sockets
START_LIMIT_S = 60


class Engine:
    """A dockerd of this test's own, named ``etc<tag>`` everywhere it leaves a name."""

    def __init__(self, tag: str, plugin_dir: Path):
        self.tag = tag
        self.plugin_dir = plugin_dir
        self.data_root = Path(f"/var/lib/{tag}-docker")
        self.exec_root = Path(f"/run/{tag}")
        self.socket = self.exec_root / "docker.sock"
        self.pidfile = self.exec_root / "dockerd.pid"
        self.bridge = f"{tag}br"
        self.network_bridge = f"{tag}n"
        self.log_path = Path(f"/tmp/{tag}-dockerd.log")
        self.proc: subprocess.Popen | None = None

    def attempt(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "-H", f"unix://{self.socket}", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )

    def docker(self, *args: str, check: bool = True) -> str:
        result = self.attempt(*args)
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} on {self.tag}: {result.stderr}")
        return result.stdout.strip()

    def start(self) -> None:
        self.exec_root.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ip", "link", "add", self.bridge, "type", "bridge"], check=True)
        subprocess.run(["ip", "link", "set", self.bridge, "up"], check=True)
        # dockerd looks for legacy plugins only in fixed places: bind the run's own directory
        # over /run/docker/plugins in a mount namespace of this dockerd's own
        command = [
            "unshare", "--mount", "--propagation", "private", "sh", "-c",
            f'mount --bind "$0" {DOCKER_PLUGIN_DIR} && exec "$@"', str(self.plugin_dir),
            "dockerd",
            "--data-root", str(self.data_root),
            "--exec-root", str(self.exec_root),
            "--pidfile", str(self.pidfile),
            "-H", f"unix://{self.socket}",
            "-b", self.bridge,
            "--iptables=false",
            "--ip-masq=false",
            "--log-level=warn",
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_LIMIT_S
        while self.docker("version", check=False) == "":
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dockerd {self.tag} did not start:\n{self.log()}")
            time.sleep(0.2)
        env = {**os.environ, "DOCKER_HOST": f"unix://{self.socket}"}
        subprocess.run(
            [str(REPO_ROOT / "scripts/make-test-image.sh"), IMAGE],
            env=env,
            check=True,
            capture_output=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            for container in self.docker("ps", "-aq", check=False).split():
                self.docker("rm", "-f", container, check=False)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # the engine's bridge, and the network's if a failed test left the network behind
        for bridge in (self.bridge, self.network_bridge):
            subprocess.run(["ip", "link", "del", bridge], capture_output=True)
        shutil.rmtree(self.data_root, ignore_errors=True)
        shutil.rmtree(self.exec_root, ignore_errors=True)
        self.log_path.unlink(missing_ok=True)


@pytest.fixture
def etcd(tmp_path):
    with EtcdCluster(tmp_path / "etcd", size=1) as cluster:
        yield cluster


@pytest.fixture
def hosts(etcd, tmp_path):
    """Two (engine, plugin name) pairs; everything stopped and removed afterwards."""
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    made = []
    try:
        for letter in "ab":
            tag = f"etc{letter}{runid.RUN_ID}"
            plugin = PluginProcess(
                {
                    "SRIOV_SOCKET": str(plugin_dir / f"{tag}.sock"),
                    "SRIOV_STATE_DIR": str(tmp_path / tag),
                    "SRIOV_CLUSTER_STORE": etcd.endpoints,
                    "SRIOV_NODE_NAME": f"host-{letter}",
                    "SRIOV_LOG_LEVEL": "warning",
                }
            )
            engine = Engine(tag, plugin_dir)
            made.append((engine, plugin))
            plugin.start()
            engine.start()
        yield [(engine, plugin.socket_path.stem) for engine, plugin in made]
    finally:
        for engine, plugin in made:
            engine.stop()
            plugin.close()
            plugin.socket_path.unlink(missing_ok=True)


@pytest.fixture
def subnet() -> ipaddress.IPv4Network:
    """The first /24 of a 10.X.0.0/16 this run claimed and no route or address uses."""
    return next(runid.subnet16("cluster-engine").subnets(new_prefix=24))


def test_containers_on_two_engines_share_one_cluster_subnet(hosts, etcd, subnet):
    aux = str(subnet.network_address + 250)  # --aux-address on both networks: one reservation
    static = str(subnet.network_address + 100)
    addresses = {}
    for engine, driver in hosts:
        engine.docker(
            "network", "create", "-d", "bridge", "--ipam-driver", driver,
            "--ipam-opt", "cluster=true", "--subnet", str(subnet), "--aux-address",
            f"router={aux}", "-o", f"com.docker.network.bridge.name={engine.network_bridge}",
            "clusternet",
        )  # fmt: skip
        for number in range(3):
            name = f"{engine.tag}-c{number}"
            engine.docker(
                "run", "-d", "--name", name, "--net", "clusternet", IMAGE,
                "sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait",
            )  # fmt: skip
            networks = json.loads(
                engine.docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", name)
            )
            addresses[name] = networks["clusternet"]["IPAddress"]
    # a container's --ip taken on one engine is refused on the other
    (engine_a, _), (engine_b, _) = hosts
    engine_a.docker("run", "-d", "--name", f"{engine_a.tag}-ip", "--net", "clusternet",
                    "--ip", static, IMAGE, "sleep", "3600")  # fmt: skip
    refused = engine_b.attempt("run", "-d", "--name", f"{engine_b.tag}-ip", "--net",
                               "clusternet", "--ip", static, IMAGE, "sleep", "3600")  # fmt: skip
    assert refused.returncode != 0
    assert f"{static} in {subnet} is already in use" in refused.stderr
    engine_b.docker("rm", "-f", f"{engine_b.tag}-ip", check=False)
    engine_a.docker("rm", "-f", f"{engine_a.tag}-ip")
    values = list(addresses.values())
    assert len(set(values)) == 6, addresses
    assert aux not in values
    gateway = str(subnet.network_address + 1)
    assert all(ipaddress.ip_address(a) in subnet and a != gateway for a in values)
    held = held_in_etcd(etcd)
    for name, address in addresses.items():
        expected = "host-a" if name.startswith(engine_a.tag) else "host-b"
        assert held[address]["node"] == expected
    assert held[gateway]["kind"] == "gateway"
    assert held[aux]["kind"] == "aux"
    assert static not in held
    [pool] = pools_in_etcd(etcd)
    assert pool["holders"] == {"host-a": 1, "host-b": 1}

    for engine, _ in hosts:
        for number in range(3):
            engine.docker("rm", "-f", f"{engine.tag}-c{number}")
        engine.docker("network", "rm", "clusternet")
    assert pools_in_etcd(etcd) == []
    assert held_in_etcd(etcd) == {}
