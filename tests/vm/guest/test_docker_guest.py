"""The managed plugin inside a real dockerd in the guest, on the igb PF.

dockerd (Debian's docker.io from the host's root) runs with its data root on
tmpfs and --iptables=false; the plugin is created from config.json and the
rootfs/ that scripts/build-plugin.sh built on the host (tests/vm/test_vm.py
builds it before booting); the busybox test image is imported without any
registry (scripts/make-test-image.sh).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from igb import NO_MAC, Pf, run, wait_for

REPO = Path(__file__).resolve().parents[3]
PLUGIN = "sriov:latest"
IMAGE = "sriov-test-busybox:latest"
PLUGIN_DIR = Path("/tmp/sriov-plugin")  # config.json and rootfs/ only: the CLI sends it all
SOCKET = "/run/docker.sock"
RUNS_ON_ONE_VF = 10


def docker(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["docker", "-H", f"unix://{SOCKET}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def enable_plugin(attempts: int = 3) -> None:
    """docker plugin enable; again if the plugin was not answering yet.

    dockerd gives a plugin about 10 s to answer on its socket, and Python under
    TCG on a busy host sometimes needs more for its first start.
    """
    for attempt in range(1, attempts + 1):
        proc = docker("plugin", "enable", PLUGIN, check=False)
        if proc.returncode == 0:
            return
        print(f"docker plugin enable, attempt {attempt}: {proc.stderr.strip()}")
    raise AssertionError(f"docker plugin enable {PLUGIN} failed {attempts} times")


def container_mac(ip_link: str) -> str:
    """The MAC in `ip -o link show eth0` run in the container's network namespace.

    Not /sys/class/net: a container in this guest sees the guest's own sysfs.
    """
    words = ip_link.split()
    return words[words.index("link/ether") + 1]


def timed(what: str, started: float) -> None:
    print(f"{what}: {time.monotonic() - started:.1f} s")


@pytest.fixture(scope="module")
def engine(pf: Pf):
    """dockerd with the sriov plugin enabled and the test image loaded."""
    assert (REPO / "rootfs" / "opt" / "sriov").is_dir(), "build the plugin on the host first"
    log = open("/tmp/dockerd.log", "w")  # noqa: SIM115 (open while dockerd runs)
    started = time.monotonic()
    daemon = subprocess.Popen(
        [
            "dockerd",
            "-H",
            f"unix://{SOCKET}",
            "--iptables=false",
            "--ip-masq=false",
            "--bridge=none",
            "--data-root=/var/lib/docker",
            "--exec-root=/run/docker",
            "--pidfile=/run/docker.pid",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for("dockerd", lambda: docker("version", check=False).returncode == 0, timeout=120)
        timed("dockerd start", started)
        started = time.monotonic()
        env = {**os.environ, "DOCKER_HOST": f"unix://{SOCKET}"}
        subprocess.run([REPO / "scripts/make-test-image.sh", IMAGE], env=env, check=True)
        timed("test image import", started)
        started = time.monotonic()
        (PLUGIN_DIR / "rootfs").mkdir(parents=True)
        (PLUGIN_DIR / "config.json").write_bytes((REPO / "config.json").read_bytes())
        run("mount", "--bind", str(REPO / "rootfs"), str(PLUGIN_DIR / "rootfs"))
        docker("plugin", "create", PLUGIN, str(PLUGIN_DIR))
        timed("docker plugin create", started)
        started = time.monotonic()
        enable_plugin()
        timed("docker plugin enable", started)
        yield
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
        log.close()
        print("dockerd log (tail):\n" + Path("/tmp/dockerd.log").read_text()[-4000:])


@pytest.fixture(scope="module")
def vfnet(engine, pf: Pf):
    """An sriov network on the igb PF, VLAN 300; removed (and VFs disabled) at the end."""
    docker(
        "network", "create", "-d", PLUGIN, "--ipam-driver", PLUGIN,
        "-o", f"pf_iface={pf.name}", "-o", "vlanid=300",
        "--subnet", "10.70.0.0/24", "vfnet",
    )  # fmt: skip
    yield "vfnet"
    docker("network", "rm", "vfnet", check=False)
    pf.set_numvfs(0)


def test_docker_run_gets_an_igbvf_vf_with_its_vlan_and_the_vf_comes_back(vfnet, pf: Pf):
    before = {n: pf.vf(n) for n in range(pf.numvfs)}
    started = time.monotonic()
    docker("run", "-d", "--name", "c1", "--net", vfnet, IMAGE, "sleep", "600")
    timed("docker run -d", started)
    try:
        mac = container_mac(docker("exec", "c1", "ip", "-o", "link", "show", "eth0").stdout)
        leased = [n for n in before if pf.netdev(n) is None]
        assert len(leased) == 1, "exactly one VF left the host namespace"
        assert pf.vf_driver(leased[0]) == "igbvf"
        vf = pf.vf(leased[0])
        assert (vf.mac, vf.vlan) == (mac, 300), "the container's eth0 is that VF, on VLAN 300"
    finally:
        docker("rm", "-f", "c1")
    wait_for("the VF netdev back on the host", lambda: pf.netdev(leased[0]))
    after = pf.vf(leased[0])
    assert (after.mac, after.vlan, after.mtu) == (NO_MAC, 0, before[leased[0]].mtu), (
        pf.ip_link_line(leased[0])
    )


def test_many_containers_in_turn_on_the_same_vf(vfnet, pf: Pf):
    """Bug 4: libnetwork sets the endpoint's MAC on the VF inside the container after Join."""
    failures = []
    macs = set()
    started = time.monotonic()
    for n in range(RUNS_ON_ONE_VF):
        proc = docker(
            "run", "--rm", "--network", f"name={vfnet},driver-opt=vf=3", IMAGE,
            "ip", "-o", "link", "show", "eth0", check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            failures.append(f"run {n}: {proc.stderr.strip()}")
        else:
            macs.add(container_mac(proc.stdout))
        wait_for("VF 3 back on the host", lambda: pf.netdev(3))
    timed(f"{RUNS_ON_ONE_VF} docker runs on VF 3", started)
    overrides = run("dmesg").stdout.count("VF 3 attempted to override")
    assert not failures, "\n".join(failures) + f"\n({overrides} igb override refusals in dmesg)"
    assert len(macs) == RUNS_ON_ONE_VF, "each container got its own admin MAC"
    assert pf.vf(3).mac == NO_MAC, pf.ip_link_line(3)
