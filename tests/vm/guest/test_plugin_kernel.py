"""The plugin process with SRIOV_NIC=kernel on a real igb PF, driven the way dockerd drives it.

Every setting is read back from the device (the PF's netlink report and the VF
netdev), not from the plugin; Docker's part (move the VF netdev into a
namespace, rename it, set the endpoint's MAC on it, address it, bring it up,
and back) is done for real with `ip`.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import tempfile
import uuid
from pathlib import Path

import pytest
from igb import NO_MAC, Pf, Vf, has_carrier, run, wait_for
from support import PluginProcess, docker_id

GATEWAY = {"RequestAddressType": "com.docker.network.gateway"}
# Python runs many times slower under TCG than on the host: give the plugin time to start.
STARTUP_LIMIT_SECONDS = 60.0


class Dockerd:
    """What dockerd does over the plugin's socket, and in namespaces with `ip`."""

    def __init__(self, pf: Pf, tmp_path: Path, socket_dir: Path):
        self.pf = pf
        self.env = {
            "SRIOV_SOCKET": str(socket_dir / "sriov.sock"),
            "SRIOV_STATE_DIR": str(tmp_path / "state"),
            "SRIOV_SYSFS": "/sys",
            "SRIOV_NIC": "kernel",
        }
        self.plugin = PluginProcess(self.env, startup_limit=STARTUP_LIMIT_SECONDS).start()
        self.namespaces: list[str] = []

    def call(self, method: str, body: dict | None = None) -> tuple[int, dict]:
        return self.plugin.client.call(method, body)

    def ok(self, method: str, body: dict | None = None) -> dict:
        status, reply = self.call(method, body)
        assert status == 200, f"{method} -> {status} {reply}\n{self.plugin.log()[-3000:]}"
        return reply

    def restart_plugin(self) -> None:
        """kill -9, as a crash would end it, and start it again on the same state."""
        self.plugin.kill9()
        self.plugin.close()
        self.plugin = PluginProcess(self.env, startup_limit=STARTUP_LIMIT_SECONDS).start()

    def create_network(self, cidr: str, **options: str) -> tuple[str, str]:
        pool = self.ok(
            "IpamDriver.RequestPool",
            {"AddressSpace": "local", "Pool": cidr, "SubPool": "", "Options": {}, "V6": False},
        )["PoolID"]
        gateway = self.ok(
            "IpamDriver.RequestAddress", {"PoolID": pool, "Address": "", "Options": GATEWAY}
        )["Address"]
        network = docker_id()
        self.ok(
            "NetworkDriver.CreateNetwork",
            {
                "NetworkID": network,
                "Options": {
                    "com.docker.network.enable_ipv6": False,
                    "com.docker.network.generic": {"pf_iface": self.pf.name, **options},
                },
                "IPv4Data": [
                    {
                        "AddressSpace": "local",
                        "Pool": cidr,
                        "Gateway": gateway,
                        "AuxAddresses": None,
                    }
                ],
                "IPv6Data": [],
            },
        )
        # Enabling VFs resets the igb PF; rate limits are refused until its link is back.
        wait_for(f"carrier on {self.pf.name}", lambda: has_carrier(self.pf.name), timeout=60)
        self.pf.mailbox_proven()
        return network, pool

    def create_endpoint(self, network: str, pool: str, options: dict | None = None):
        """RequestAddress + CreateEndpoint; (status, reply, endpoint id, address)."""
        cidr = self.ok(
            "IpamDriver.RequestAddress", {"PoolID": pool, "Address": "", "Options": None}
        )["Address"]
        endpoint = docker_id()
        status, reply = self.call(
            "NetworkDriver.CreateEndpoint",
            {
                "NetworkID": network,
                "EndpointID": endpoint,
                "Interface": {"Address": cidr, "AddressIPv6": "", "MacAddress": ""},
                "Options": options or {},
            },
        )
        return status, reply, endpoint, cidr

    def endpoint(self, network: str, pool: str, options: dict | None = None) -> dict:
        status, reply, endpoint, cidr = self.create_endpoint(network, pool, options)
        assert status == 200, f"CreateEndpoint -> {status} {reply}\n{self.plugin.log()[-3000:]}"
        joined = self.ok(
            "NetworkDriver.Join",
            {
                "NetworkID": network,
                "EndpointID": endpoint,
                "SandboxKey": f"/var/run/docker/netns/{endpoint[:12]}",
                "Options": {},
            },
        )
        info = self.ok(
            "NetworkDriver.EndpointOperInfo", {"NetworkID": network, "EndpointID": endpoint}
        )
        return {
            "id": endpoint,
            "network": network,
            "cidr": cidr,
            "mac": reply["Interface"]["MacAddress"],
            "src": joined["InterfaceName"]["SrcName"],
            "vf": info["Value"]["vf"],
        }

    def plug(self, ep: dict) -> str:
        """Docker after Join: move into a netns, rename, set the endpoint MAC, address, up."""
        ns = f"sriovvm{uuid.uuid4().hex[:8]}"
        run("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        run("ip", "link", "set", ep["src"], "netns", ns)
        run("ip", "-n", ns, "link", "set", ep["src"], "name", "eth0")
        run("ip", "-n", ns, "link", "set", "eth0", "address", ep["mac"])
        run("ip", "-n", ns, "addr", "add", ep["cidr"], "dev", "eth0")
        run("ip", "-n", ns, "link", "set", "eth0", "up")
        return ns

    def unplug(self, ns: str, ep: dict) -> None:
        """Docker on Leave: down, its old name back, then into the host namespace."""
        run("ip", "-n", ns, "link", "set", "eth0", "down")
        run("ip", "-n", ns, "link", "set", "eth0", "name", ep["src"])
        run("ip", "-n", ns, "link", "set", ep["src"], "netns", "1")
        run("ip", "netns", "del", ns)
        self.namespaces.remove(ns)

    def release(self, ep: dict) -> None:
        self.ok("NetworkDriver.Leave", {"NetworkID": ep["network"], "EndpointID": ep["id"]})
        self.ok(
            "NetworkDriver.DeleteEndpoint", {"NetworkID": ep["network"], "EndpointID": ep["id"]}
        )

    def close(self) -> None:
        self.plugin.close()
        for ns in self.namespaces:
            run("ip", "netns", "del", ns, check=False)


def settings(vf: Vf) -> Vf:
    """What the plugin programs and restores: the PF's report and the MTU.

    The netdev's own MAC is left out: the plugin makes the netdev take each
    new admin MAC (Docker sets that MAC on it), and nothing records its first one.
    """
    return dataclasses.replace(vf, netdev_mac=None)


@pytest.fixture(scope="module")
def dockerd(pf, tmp_path_factory):
    """One plugin for the module (it starts slowly under TCG); VFs disabled at the end."""
    with tempfile.TemporaryDirectory(prefix="sriov-", dir="/tmp") as socket_dir:
        d = Dockerd(pf, tmp_path_factory.mktemp("plugin"), Path(socket_dir))
        try:
            yield d
        finally:
            d.close()
            pf.set_numvfs(0)


def test_every_option_igb_supports_is_programmed_read_back_moved_and_restored(dockerd, pf):
    assert pf.numvfs == 0
    network, pool = dockerd.create_network(
        "10.60.0.0/24",
        vlanid="100",
        vlan_qos="3",
        mtu="1400",
        spoofchk="off",
        trust="on",
        max_tx_rate="100",
    )
    assert pf.numvfs == pf.totalvfs == 7, "CreateNetwork enables every VF"
    before = {n: pf.vf(n) for n in range(7)}
    ep = dockerd.endpoint(network, pool)
    vf = pf.vf(ep["vf"])
    assert ep["src"] == pf.netdev(ep["vf"])
    assert (vf.mac, vf.vlan, vf.qos, vf.proto) == (ep["mac"], 100, 3, "802.1Q"), pf.ip_link_line(
        ep["vf"]
    )
    assert (vf.spoofchk, vf.trust, vf.max_tx_rate, vf.mtu) == (False, True, 100, 1400)
    assert vf.netdev_mac == ep["mac"], "the VF netdev carries the admin MAC before Docker moves it"
    line = pf.ip_link_line(ep["vf"])
    assert f"link/ether {ep['mac']}" in line and "vlan 100, qos 3" in line, line
    assert "max_tx_rate 100Mbps" in line and "spoof checking off" in line and "trust on" in line

    ns = dockerd.plug(ep)
    link = wait_for(
        "carrier on the VF in its namespace",
        lambda: (
            (out := run("ip", "-n", ns, "-o", "link", "show", "eth0").stdout)
            and "LOWER_UP" in out
            and out
        ),
        timeout=60,
    )
    assert ep["mac"] in link and "mtu 1400" in link
    assert pf.vf_driver(ep["vf"]) == "igbvf"
    assert pf.netdev(ep["vf"]) is None, "the VF netdev left the host namespace"
    assert pf.vf(ep["vf"]).mac == ep["mac"], "the admin MAC survives the move and up"
    dockerd.unplug(ns, ep)
    dockerd.release(ep)
    after = {n: pf.vf(n) for n in range(7)}
    for n in range(7):
        assert settings(after[n]) == settings(before[n]), (
            f"VF {n} not restored exactly: {pf.ip_link_line(n)}"
        )
    assert after[ep["vf"]].mac == NO_MAC
    dockerd.ok("NetworkDriver.DeleteNetwork", {"NetworkID": network})


def kernel_refusal(pf: Pf, *ip_link_vf_args: str) -> str:
    """The kernel's answer to `ip link set PF vf 2 ...` (iproute2, no plugin code), as text."""
    proc = run("ip", "link", "set", pf.name, "vf", "2", *ip_link_vf_args, check=False)
    assert proc.returncode != 0, f"the kernel took vf 2 {' '.join(ip_link_vf_args)}"
    return proc.stderr.strip()


@pytest.mark.parametrize(
    ("subnet", "options", "setting", "ip_link_vf", "code"),
    [
        (
            "10.61.0.0/24",
            {"link_state": "enable"},
            "link_state",
            ("state", "enable"),
            errno.EOPNOTSUPP,
        ),
        (
            "10.61.1.0/24",
            {"min_tx_rate": "10", "max_tx_rate": "100"},
            "rate to min 10",
            ("min_tx_rate", "10", "max_tx_rate", "100"),
            errno.EINVAL,
        ),
        # EPROTONOSUPPORT, not EINVAL: the plugin's 16-byte ifla_vf_vlan_info passed the
        # kernel's length check and reached igb, which takes only 802.1Q.
        (
            "10.61.2.0/24",
            {"vlanid": "100", "vlan_proto": "802.1ad"},
            "proto 802.1ad",
            ("vlan", "100", "proto", "802.1ad"),
            errno.EPROTONOSUPPORT,
        ),
    ],
)
def test_settings_igb_refuses_fail_naming_the_setting_and_the_kernels_reason(
    dockerd, pf, subnet, options, setting, ip_link_vf, code
):
    network, pool = dockerd.create_network(subnet, mtu="1400", **options)
    try:
        reason = os.strerror(code)
        before = {n: pf.vf(n) for n in range(7)}
        kernel = kernel_refusal(pf, *ip_link_vf)
        assert kernel.endswith(reason), f"the kernel said {kernel!r}, expected {reason!r}"
        status, reply, _endpoint, _ = dockerd.create_endpoint(network, pool, {"vf": "2"})
        assert status == 500, reply
        assert setting in reply["Err"] and "VF 2 of" in reply["Err"], reply["Err"]
        assert reason in reply["Err"], f"the kernel's reason {reason!r} not in {reply['Err']!r}"
        after = {n: pf.vf(n) for n in range(7)}
        for n in range(7):
            assert settings(after[n]) == settings(before[n]), (
                f"VF {n} not left as it was: {pf.ip_link_line(n)}"
            )
    finally:
        dockerd.ok("NetworkDriver.DeleteNetwork", {"NetworkID": network})


def test_pinning_exhaustion_and_kill9_with_a_leased_vf(dockerd, pf):
    network, pool = dockerd.create_network("10.62.0.0/24", vlanid="200")
    pinned = dockerd.endpoint(network, pool, {"vf": "5"})
    assert pinned["vf"] == 5 and pinned["src"] == pf.netdev(5)
    assert pf.vf(5).vlan == 200
    others = [dockerd.endpoint(network, pool) for _ in range(6)]
    assert sorted(ep["vf"] for ep in others) == [0, 1, 2, 3, 4, 6]
    status, reply, _, _ = dockerd.create_endpoint(network, pool)
    assert status == 409 and f"no free VF on {pf.name}" in reply["Err"], reply
    assert "7 of 7 leased" in reply["Err"], reply

    for ep in others:
        dockerd.release(ep)
    ns = dockerd.plug(pinned)
    dockerd.restart_plugin()
    status, reply, _, _ = dockerd.create_endpoint(network, pool, {"vf": "5"})
    assert status == 409 and f"vf 5 of {pf.name} is already leased" in reply["Err"], reply
    again = dockerd.endpoint(network, pool)
    assert again["vf"] != 5
    dockerd.release(again)
    dockerd.unplug(ns, pinned)
    dockerd.release(pinned)
    restored = pf.vf(5)
    assert (restored.mac, restored.vlan) == (NO_MAC, 0), pf.ip_link_line(5)
    dockerd.ok("NetworkDriver.DeleteNetwork", {"NetworkID": network})


def test_a_pf_named_by_pci_address_with_a_vf_range_leases_only_those_vfs(dockerd, pf):
    """One line for a fleet (issue 14) on a real PF: its PCI address and VFs 4-6 of it."""
    pci = Path(f"/sys/class/net/{pf.name}/device").resolve().name
    network, pool = dockerd.create_network("10.63.0.0/24", pf_iface=f"{pci}#4-6", vlanid="210")
    leased = [dockerd.endpoint(network, pool) for _ in range(3)]
    assert sorted(ep["vf"] for ep in leased) == [4, 5, 6]
    assert [pf.vf(ep["vf"]).vlan for ep in leased] == [210, 210, 210]
    status, reply, _, _ = dockerd.create_endpoint(network, pool)
    assert status == 409 and "VFs 4-6" in reply["Err"] and "3 of 3 leased" in reply["Err"], reply
    status, reply, _, _ = dockerd.create_endpoint(network, pool, {"vf": "1"})
    assert status == 400 and "outside this network's VFs 4-6" in reply["Err"], reply
    assert pf.vf(1).vlan == 0
    for ep in leased:
        dockerd.release(ep)
    assert [pf.vf(index).vlan for index in (4, 5, 6)] == [0, 0, 0]
    dockerd.ok("NetworkDriver.DeleteNetwork", {"NetworkID": network})
