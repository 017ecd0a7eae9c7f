"""The NetworkDriver for real: the plugin process on a simulated NIC in a private namespace.

A namespace stands for the host: the simulated NIC's veths and bridges live in
it and so does the plugin. The test speaks the protocol over the socket the way
Docker does, then does with each answer what Docker would do (move the VF netdev
into a container namespace, rename it, address it, bring it up) and checks what
crosses the wire.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import runid
from support import PluginClient, PluginProcess, docker_id

pytestmark = pytest.mark.netns

PF = "tpf0"
VFS = 4


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


class Lab:
    """A host namespace with a simulated NIC, the plugin, and container namespaces."""

    def __init__(self, tmp_path, socket_dir):
        self.host = runid.netns_name("host")
        self.sysfs = tmp_path / "sys"
        self.containers: list[str] = []
        self.env = {
            "SRIOV_SOCKET": str(socket_dir / "sriov.sock"),
            "SRIOV_STATE_DIR": str(tmp_path / "state"),
            "SRIOV_SYSFS": str(self.sysfs),
            "SRIOV_NIC": "sim",
        }
        self.plugin = PluginProcess(self.env, netns=self.host)
        run("ip", "netns", "add", self.host)
        try:
            self.sim("create", "--pf", PF, "--vfs", str(VFS))
            self.plugin.start()
        except BaseException:
            self.close()  # no namespace left behind by a lab that never started
            raise

    def sim(self, *args: str) -> str:
        command = [sys.executable, "-m", "plugin", "sim", *args, "--sysfs", str(self.sysfs)]
        return run("ip", "netns", "exec", self.host, *command).stdout

    def restart_plugin(self, kill: bool) -> None:
        if kill:
            self.plugin.kill9()
        self.plugin.close()
        self.plugin = PluginProcess(self.env, netns=self.host).start()

    def ok(self, method: str, body: dict | None = None) -> dict:
        status, reply = self.plugin.client.call(method, body)
        assert status == 200, f"{method} -> {status} {reply}\n{self.plugin.log()[-3000:]}"
        return reply

    def container(self) -> str:
        name = runid.netns_name(f"c{len(self.containers)}")
        run("ip", "netns", "add", name)
        self.containers.append(name)
        return name

    def plug(self, container: str, src: str, address: str) -> None:
        """What Docker does after Join: move, rename, address, bring up."""
        run("ip", "-n", self.host, "link", "set", src, "netns", container)
        run("ip", "-n", container, "link", "set", src, "name", "eth0")
        run("ip", "-n", container, "addr", "add", address, "dev", "eth0")
        run("ip", "-n", container, "link", "set", "eth0", "up")

    def unplug(self, container: str, src: str) -> None:
        """What Docker does on Leave: the netdev goes home under its old name."""
        run("ip", "-n", container, "link", "set", "eth0", "down")
        run("ip", "-n", container, "link", "set", "eth0", "netns", self.host)
        run("ip", "-n", self.host, "link", "set", "eth0", "name", src)

    def pings(self, container: str, address: str) -> bool:
        proc = run(
            "ip",
            "netns",
            "exec",
            container,
            "ping",
            "-c",
            "2",
            "-W",
            "1",
            "-i",
            "0.2",
            address,
            check=False,
        )
        return proc.returncode == 0

    def close(self) -> None:
        self.plugin.close()
        for name in self.containers:
            run("ip", "netns", "del", name, check=False)
        run(
            "ip",
            "netns",
            "exec",
            self.host,
            sys.executable,
            "-m",
            "plugin",
            "sim",
            "destroy",
            "--pf",
            PF,
            "--sysfs",
            str(self.sysfs),
            check=False,
        )
        run("ip", "netns", "del", self.host, check=False)


@pytest.fixture
def lab(tmp_path, socket_dir):
    lab = Lab(tmp_path, socket_dir)
    try:
        yield lab
    finally:
        lab.close()


def make_network(lab: Lab, space: str, cidr: str, vlan: int, **flags) -> tuple[str, str, str]:
    """RequestPool, gateway RequestAddress and CreateNetwork as Docker sends them."""
    pool = lab.ok(
        "IpamDriver.RequestPool",
        {"AddressSpace": space, "Pool": cidr, "SubPool": "", "Options": {}, "V6": False},
    )
    gateway = lab.ok(
        "IpamDriver.RequestAddress",
        {
            "PoolID": pool["PoolID"],
            "Address": "",
            "Options": {"RequestAddressType": "com.docker.network.gateway"},
        },
    )["Address"]
    network_id = docker_id()
    generic = {"pf_iface": PF, "vlanid": str(vlan), **flags}
    lab.ok(
        "NetworkDriver.CreateNetwork",
        {
            "NetworkID": network_id,
            "Options": {
                "com.docker.network.enable_ipv6": False,
                "com.docker.network.generic": generic,
            },
            "IPv4Data": [
                {"AddressSpace": space, "Pool": cidr, "Gateway": gateway, "AuxAddresses": None}
            ],
            "IPv6Data": [],
        },
    )
    return network_id, pool["PoolID"], gateway


def make_endpoint(lab: Lab, network_id: str, pool_id: str, address: str = "") -> dict:
    """RequestAddress, CreateEndpoint and Join; returns ids, address, MAC and VF netdev."""
    cidr = lab.ok(
        "IpamDriver.RequestAddress", {"PoolID": pool_id, "Address": address, "Options": None}
    )["Address"]
    endpoint_id = docker_id()
    created = lab.ok(
        "NetworkDriver.CreateEndpoint",
        {
            "NetworkID": network_id,
            "EndpointID": endpoint_id,
            "Interface": {"Address": cidr, "AddressIPv6": "", "MacAddress": ""},
            "Options": {},
        },
    )
    joined = lab.ok(
        "NetworkDriver.Join",
        {
            "NetworkID": network_id,
            "EndpointID": endpoint_id,
            "SandboxKey": f"/var/run/docker/netns/{endpoint_id[:12]}",
            "Options": {},
        },
    )
    assert joined["InterfaceName"]["DstPrefix"] == "eth"
    return {
        "id": endpoint_id,
        "network": network_id,
        "cidr": cidr,
        "ip": cidr.split("/")[0],
        "mac": created["Interface"]["MacAddress"],
        "src": joined["InterfaceName"]["SrcName"],
        "gateway": joined.get("Gateway"),
    }


def vf_line(show: str, netdev: str) -> str:
    lines = [line for line in show.splitlines() if netdev in line]
    assert lines, f"{netdev} not in sim show:\n{show}"
    return "\n".join(lines)


def test_same_vlan_reaches_other_vlan_does_not_and_release_restores(lab):
    before = lab.sim("show")
    red, red_pool, red_gw = make_network(lab, "local", "10.1.0.0/24", vlan=100, mtu="1400")
    # The same subnet in another address space on another VLAN: only L2 isolation keeps
    # these apart, so a ping that crosses proves the VLANs leak.
    blue, blue_pool, _ = make_network(lab, "global", "10.1.0.0/24", vlan=200)

    a = make_endpoint(lab, red, red_pool)
    b = make_endpoint(lab, red, red_pool)
    c = make_endpoint(lab, blue, blue_pool, address="10.1.0.50")
    assert a["gateway"] == red_gw.split("/")[0] == "10.1.0.1"
    assert len({a["src"], b["src"], c["src"]}) == 3
    containers = {}
    for ep in (a, b, c):
        containers[ep["id"]] = lab.container()
        lab.plug(containers[ep["id"]], ep["src"], ep["cidr"])

    link = run("ip", "-n", containers[a["id"]], "-o", "link", "show", "eth0").stdout
    assert a["mac"] in link and "mtu 1400" in link
    assert lab.pings(containers[a["id"]], b["ip"])
    assert not lab.pings(containers[c["id"]], a["ip"])
    assert not lab.pings(containers[c["id"]], b["ip"])

    info = lab.ok("NetworkDriver.EndpointOperInfo", {"NetworkID": red, "EndpointID": a["id"]})
    assert info["Value"]["vlan"] == 100 and info["Value"]["mac"] == a["mac"]
    assert info["Value"]["pf_link"] == "up"

    for ep in (a, b, c):
        lab.unplug(containers[ep["id"]], ep["src"])
        lab.ok("NetworkDriver.Leave", {"NetworkID": ep["network"], "EndpointID": ep["id"]})
        lab.ok("NetworkDriver.DeleteEndpoint", {"NetworkID": ep["network"], "EndpointID": ep["id"]})
    after = lab.sim("show")
    for ep in (a, b, c):
        assert vf_line(after, ep["src"]) == vf_line(before, ep["src"])
    lab.ok("NetworkDriver.DeleteNetwork", {"NetworkID": red})
    lab.ok("NetworkDriver.DeleteNetwork", {"NetworkID": blue})


def test_concurrent_create_endpoint_leases_each_vf_once_and_survives_kill(lab):
    network_id, pool_id, _ = make_network(lab, "local", "10.3.0.0/24", vlan=300)
    results = []
    lock = threading.Lock()

    def create(_):
        client = PluginClient(lab.env["SRIOV_SOCKET"])
        endpoint_id = docker_id()
        status, reply = client.call(
            "NetworkDriver.CreateEndpoint",
            {
                "NetworkID": network_id,
                "EndpointID": endpoint_id,
                "Interface": {"Address": "", "AddressIPv6": "", "MacAddress": ""},
                "Options": None,
            },
        )
        client.close()
        with lock:
            results.append((status, reply, endpoint_id))

    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(create, range(32)))

    leased = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] != 200]
    assert len(leased) == VFS
    assert len(refused) == 32 - VFS
    for status, reply, _ in refused:
        assert status == 409 and reply["Err"].startswith("no free VF on tpf0")

    def vf_of(endpoint_id: str) -> int:
        return lab.ok(
            "NetworkDriver.EndpointOperInfo", {"NetworkID": network_id, "EndpointID": endpoint_id}
        )["Value"]["vf"]

    held = {endpoint_id: vf_of(endpoint_id) for _, _, endpoint_id in leased}
    assert sorted(held.values()) == list(range(VFS))

    lab.restart_plugin(kill=True)
    assert {endpoint_id: vf_of(endpoint_id) for endpoint_id in held} == held
    status, reply = lab.plugin.client.call(
        "NetworkDriver.CreateEndpoint",
        {
            "NetworkID": network_id,
            "EndpointID": docker_id(),
            "Interface": None,
            "Options": None,
        },
    )
    assert status == 409 and f"{VFS} of {VFS} leased" in reply["Err"]
    assert lab.ok("IpamDriver.RequestAddress", {"PoolID": pool_id, "Address": "", "Options": None})
