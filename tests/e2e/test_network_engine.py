"""The NetworkDriver under a real Docker Engine: containers get simulated VFs as eth0.

All tests share one simulated sysfs root, which the plugin is pointed at once
per module (each reconfiguration is a disable/enable); every test makes its own
PF under that root, so their VFs, VLANs and leases do not mix. What a test
makes is removed after it, pass or fail: containers, then networks, then its PF.
"""

from __future__ import annotations

import ipaddress
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import dockerlib
import pytest
from dockerlib import PLUGIN, Resources, SimNic, container_ip, docker, docker_fails
from vflib import (
    QUICK_STOP,
    container_gateway,
    container_ipv6,
    container_mac,
    default_route_of,
    interface_of,
    interface_with_mac,
    pings,
    sim_vfs,
    vf_with_mac,
)

# Everything here crosses the protocol: create, run, options, MAC, IPv6, restart.
pytestmark = [pytest.mark.docker, pytest.mark.every_engine]

SIM_SETTINGS = ("sysfs.source", "SRIOV_NIC")


class Lab:
    """One test's containers and networks (a harness Resources) and its simulated PFs."""

    def __init__(self, resources: Resources, root: Path):
        self.resources = resources
        self.root = root
        self.sims: list[SimNic] = []

    def pf(self, vfs: int) -> SimNic:
        """A new simulated PF with ``vfs`` VFs under the shared root the plugin reads."""
        sim = SimNic(pf=f"en{uuid.uuid4().hex[:6]}", vfs=vfs, sysfs=self.root)
        self.sims.append(sim)
        sim.create()
        return sim

    def network(self, sim: SimNic, vlan: int, *args: str, pf_iface: str = "") -> str:
        """An sriov network (driver and IPAM) on ``sim``'s PF (or ``pf_iface``) and ``vlan``."""
        return self.resources.network(
            "-d",
            PLUGIN,
            "--ipam-driver",
            PLUGIN,
            "-o",
            f"pf_iface={pf_iface or sim.pf}",
            "-o",
            f"vlanid={vlan}",
            *args,
        )

    def run(self, network: str, *args: str, command: tuple[str, ...] = QUICK_STOP) -> str:
        return self.resources.run("--network", network, *args, command=command)

    def cleanup(self) -> None:
        try:
            self.resources.cleanup()
        finally:
            while self.sims:
                self.sims.pop().destroy()


@pytest.fixture(scope="module")
def sim_root(plugin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A simulated sysfs root the plugin uses (SRIOV_NIC=sim) for the whole module."""
    root = tmp_path_factory.mktemp("sim-sysfs")
    current = dockerlib.plugin_settings(plugin)
    dockerlib.configure_plugin({"sysfs.source": str(root), "SRIOV_NIC": "sim"}, plugin)
    yield root
    dockerlib.configure_plugin({key: current[key] for key in SIM_SETTINGS}, plugin)


@pytest.fixture
def lab(plugin: str, test_image: str, sim_root: Path) -> Iterator[Lab]:
    made = Lab(Resources(plugin=plugin), sim_root)
    yield made
    made.cleanup()


def create_fails(*args: str) -> str:
    """``docker network create`` that must fail; return the error and check no network stayed."""
    name = dockerlib.unique_name("net")
    error = docker_fails("network", "create", "-d", PLUGIN, "--ipam-driver", PLUGIN, *args, name)
    assert dockerlib.run_docker("network", "inspect", name).returncode != 0, (
        f"failed create left network {name} behind"
    )
    return error


def test_bad_options_fail_at_create_time_and_leave_no_network_or_pool(lab):
    sim = lab.pf(vfs=2)
    subnet = "10.91.1.0/24"
    pf = f"pf_iface={sim.pf}"
    wrong = [
        (("-o", pf, "-o", "vlanid=5000"), "vlanid 5000 out of range 0-4094"),
        (("-o", pf, "-o", "colour=blue"), "unknown option 'colour'"),
        (("-o", "vlanid=100"), "option pf_iface is required"),
        (("-o", "pf_iface=ennosuchpf"), "pf_iface ennosuchpf not found"),
        (("-o", pf, "-o", "mtu=9000"), f"mtu 9000 is above the MTU 1500 of PF {sim.pf}"),
    ]
    for args, message in wrong:
        error = create_fails(*args, "--subnet", subnet)
        assert message in error, f"{args}: {message!r} not in {error!r}"

    net = lab.network(sim, 100, "--subnet", subnet)

    assert docker("network", "inspect", "-f", "{{.Driver}} {{.IPAM.Driver}}", net) == (
        f"{PLUGIN} {PLUGIN}"
    )
    assert dockerlib.network_subnets(net) == [ipaddress.ip_network(subnet)]
    taken = create_fails("-o", pf, "-o", "vlanid=100", "--subnet", "10.91.11.0/24")
    assert f"PF {sim.pf} VLAN 100 is already used by network" in taken
    assert lab.network(sim, 101, "--subnet", "10.91.11.0/24")


def test_container_gets_its_vf_as_eth0_on_its_vlan_only(lab):
    sim = lab.pf(vfs=4)
    net = lab.network(sim, 100, "-o", "mtu=1400", "--subnet", "10.91.2.0/24")
    first, second = lab.run(net), lab.run(net)

    for container in (first, second):
        mac = container_mac(container, net)
        vf = vf_with_mac(sim, mac)
        assert not vf.in_host, f"{vf.netdev} of {container} is still in the host: {vf.line}"
        assert vf.vlan == 100, vf.line
        eth0 = interface_of(container)
        assert eth0.mac == mac
        assert eth0.mtu == 1400
        assert eth0.ipv4 == [f"{container_ip(container, net)}/24"]
        gateway = container_gateway(container, net)
        assert ipaddress.IPv4Address(gateway) in ipaddress.IPv4Network("10.91.2.0/24")
        assert default_route_of(container).startswith(f"default via {gateway} dev eth0")
    first_ip = str(container_ip(first, net))
    assert pings(second, first_ip), f"{second} cannot reach {first} on the same VLAN"

    # Another VLAN on the same PF. Its containers take addresses of the first subnet
    # by hand: they reach each other (their own VLAN) but not the first VLAN.
    other_net = lab.network(sim, 200, "--subnet", "10.91.3.0/24")
    strangers = [lab.run(other_net, "--cap-add", "NET_ADMIN") for _ in range(2)]
    for stranger, address in zip(strangers, ("10.91.2.250/24", "10.91.2.251/24"), strict=True):
        stranger_vf = vf_with_mac(sim, container_mac(stranger, other_net))
        assert stranger_vf.vlan == 200
        assert stranger_vf.bridge != vf_with_mac(sim, container_mac(first, net)).bridge
        docker("exec", stranger, "ip", "addr", "add", address, "dev", "eth0")
    assert pings(strangers[0], "10.91.2.251"), "VLAN 200 containers cannot reach each other"
    assert not pings(strangers[0], first_ip), f"VLAN 200 reached {first_ip} on VLAN 100"


def test_released_vf_returns_unchanged_and_exhaustion_names_the_pf(lab):
    sim = lab.pf(vfs=3)
    net = lab.network(sim, 300, "-o", "mtu=1400", "--subnet", "10.91.4.0/24")
    before = sim_vfs(sim)
    containers = [lab.run(net) for _ in range(3)]
    leased = [vf_with_mac(sim, container_mac(c, net)) for c in containers]
    assert sorted(vf.index for vf in leased) == [0, 1, 2]
    assert not any(vf.in_host for vf in leased)

    error = lab.resources.run_fails("--network", net)
    assert f"no free VF on {sim.pf} (link up): 3 of 3 leased" in error

    freed = leased[1]
    docker("rm", "-f", containers[1])
    after = sim_vfs(sim)[freed.index]
    assert after.in_host, f"{freed.netdev} did not come back to the host: {after.line}"
    assert after.line == before[freed.index].line
    newcomer = lab.run(net)
    assert vf_with_mac(sim, container_mac(newcomer, net)).index == freed.index


def test_pinned_vf_and_requested_address_and_mac(lab):
    sim = lab.pf(vfs=4)
    net = lab.network(sim, 400, "--subnet", "10.91.5.0/24")
    # Docker refuses to connect a container on "none" to anything: start on another VLAN.
    first_net = lab.network(sim, 401, "--subnet", "10.91.15.0/24")
    container = lab.run(first_net)

    docker("network", "connect", "--driver-opt", "vf=2", net, container)

    vf2 = sim_vfs(sim)[2]
    assert not vf2.in_host, vf2.line
    assert vf2.mac == container_mac(container, net)
    assert interface_with_mac(container, vf2.mac) == "eth1"
    other = lab.run(first_net)
    error = docker_fails("network", "connect", "--driver-opt", "vf=2", net, other)
    assert f"vf 2 of {sim.pf} is already leased to another endpoint" in error

    mac = "02:91:05:00:00:77"
    exact = lab.run(net, "--mac-address", mac, "--ip", "10.91.5.77")
    assert str(container_ip(exact, net)) == "10.91.5.77"
    assert container_mac(exact, net) == mac
    eth0 = interface_of(exact)
    assert (eth0.mac, eth0.ipv4) == (mac, ["10.91.5.77/24"])
    assert not vf_with_mac(sim, mac).in_host


def held_by(sim: SimNic, containers: list[str], net: str) -> tuple[set[int], set[str]]:
    """The VF indexes and IPv4 addresses ``containers`` hold on ``net``."""
    vfs = {vf_with_mac(sim, container_mac(c, net)).index for c in containers}
    ips = {str(container_ip(c, net)) for c in containers}
    assert len(vfs) == len(ips) == len(containers), f"shared VF or address: {vfs} {ips}"
    return vfs, ips


def running(containers: list[str]) -> bool:
    states = [docker("inspect", "-f", "{{.State.Running}}", c) for c in containers]
    return states == ["true"] * len(containers)


def test_leases_survive_plugin_disable_enable_and_dockerd_restart(lab):
    sim = lab.pf(vfs=6)
    net = lab.network(sim, 500, "--subnet", "10.91.6.0/24")
    survivors = [lab.run(net, "--restart", "always") for _ in range(2)]
    vfs, ips = held_by(sim, survivors, net)

    dockerlib.configure_plugin({}, PLUGIN)  # docker plugin disable -f, then enable

    newcomer = lab.run(net)
    new_vfs, new_ips = held_by(sim, [newcomer], net)
    assert not new_vfs & vfs and not new_ips & ips, (new_vfs, new_ips, vfs, ips)
    assert pings(survivors[0], next(iter(ips - {str(container_ip(survivors[0], net))})))

    dockerlib.restart_dockerd()
    dockerlib.wait_until(lambda: dockerlib.plugin_enabled(PLUGIN), 60, "the plugin to be enabled")
    dockerlib.wait_until(lambda: running(survivors), 60, "the --restart always containers")

    assert dockerlib.network_subnets(net) == [ipaddress.ip_network("10.91.6.0/24")]
    vfs, ips = held_by(sim, survivors, net)
    # 6 VFs: survivors 2, late 2, newcomer 1. Had the survivors' endpoints from
    # before the restart leaked their VFs, the last of these would find none free.
    late = [lab.run(net) for _ in range(2)]
    late_vfs, late_ips = held_by(sim, late, net)
    assert not late_vfs & vfs and not late_ips & ips, (late_vfs, late_ips, vfs, ips)
    docker("restart", newcomer)
    held_by(sim, survivors + late + [newcomer], net)


def test_ipv6_network_gives_both_addresses(lab):
    sim = lab.pf(vfs=2)
    net = lab.network(sim, 600, "--ipv6", "--subnet", "10.91.7.0/24", "--subnet", "fd00:91:7::/64")
    container = lab.run(net)

    ipv6 = container_ipv6(container, net)
    assert ipaddress.IPv6Address(ipv6) in ipaddress.IPv6Network("fd00:91:7::/64")
    eth0 = interface_of(container)
    assert f"{ipv6}/64" in eth0.ipv6, eth0
    assert eth0.ipv4 == [f"{container_ip(container, net)}/24"]


# ---- choosing VFs: ranges, PFs by PCI address, link, MAC prefix ---------------------------------


def pf_pci(sim: SimNic) -> str:
    """The PCI address of ``sim``'s PF, from the ``PF <name> pci <address> ...`` line."""
    for line in sim.show().splitlines():
        words = line.split()
        if words[:2] == ["PF", sim.pf]:
            return words[3]
    raise AssertionError(f"sim show has no PF {sim.pf}:\n{sim.show()}")


def test_vf_ranges_split_one_pf_between_two_vlans(lab):
    sim = lab.pf(vfs=4)
    low = lab.network(sim, 700, "--subnet", "10.91.20.0/24", pf_iface=f"{sim.pf}#0-1")
    high = lab.network(sim, 701, "-o", "vfs=2-3", "--subnet", "10.91.21.0/24")
    assert "vfs '2-4' reaches VF 4, but PF" in create_fails(
        "-o", f"pf_iface={sim.pf}", "-o", "vfs=2-4", "-o", "vlanid=702"
    )

    on_low = [lab.run(low) for _ in range(2)]
    assert {vf_with_mac(sim, container_mac(c, low)).index for c in on_low} == {0, 1}
    error = lab.resources.run_fails("--network", low)
    assert f"no free VF on {sim.pf} (VFs 0-1, link up): 2 of 2 leased" in error

    first_net = lab.network(sim, 703, "--subnet", "10.91.23.0/24", "-o", "vfs=3")
    container = lab.run(first_net)
    error = docker_fails("network", "connect", "--driver-opt", "vf=0", high, container)
    assert f"vf 0 of {sim.pf} is outside this network's VFs 2-3 on {sim.pf}" in error
    on_high = lab.run(high)
    assert vf_with_mac(sim, container_mac(on_high, high)).index == 2
    assert vf_with_mac(sim, container_mac(on_high, high)).vlan == 701


def test_pf_named_by_pci_address_is_the_same_pf_as_by_name(lab):
    sim = lab.pf(vfs=2)
    address = pf_pci(sim)
    net = lab.network(sim, 710, "--subnet", "10.91.24.0/24", pf_iface=address)
    container = lab.run(net)
    vf = vf_with_mac(sim, container_mac(container, net))
    assert (vf.vlan, vf.in_host) == (710, False), vf.line

    taken = create_fails("-o", f"pf_iface={sim.pf}", "-o", "vlanid=710")
    assert f"PF {sim.pf} VLAN 710 is already used by network" in taken
    assert "pf_iface '0000:3b:00' is not a PCI address" in create_fails("-o", "pf_iface=0000:3b:00")
    assert "pf_iface 0000:ee:00.0 not found" in create_fails("-o", "pf_iface=0000:ee:00.0")


def test_pfs_with_link_are_preferred_and_require_pf_link_refuses(lab):
    dead, alive = lab.pf(vfs=2), lab.pf(vfs=1)
    dead.link("down")
    both = lab.network(dead, 720, "--subnet", "10.91.25.0/24", pf_iface=f"{dead.pf},{alive.pf}")
    first = lab.run(both)
    assert not vf_with_mac(alive, container_mac(first, both)).in_host  # the PF with link
    # The PF with link is full: the next container still gets a VF, of the PF without link.
    second = lab.run(both)
    assert not vf_with_mac(dead, container_mac(second, both)).in_host

    strict = lab.network(dead, 721, "-o", "require_pf_link=on", "--subnet", "10.91.26.0/24")
    error = lab.resources.run_fails("--network", strict)
    assert "no free VF on a PF with link (require_pf_link=on)" in error
    assert f"{dead.pf} (link down): 1 of 2 leased" in error
    dead.link("up")
    assert not vf_with_mac(dead, container_mac(lab.run(strict), strict)).in_host


def test_mac_prefix_for_generated_macs_and_the_containers_own_mac_wins(lab):
    sim = lab.pf(vfs=2)
    assert "mac_prefix '02:a0:00:00:00:01' is not 1 to 5 hex octets" in create_fails(
        "-o", f"pf_iface={sim.pf}", "-o", "mac_prefix=02:a0:00:00:00:01"
    )
    assert "mac_prefix 03:a0 makes multicast addresses" in create_fails(
        "-o", f"pf_iface={sim.pf}", "-o", "mac_prefix=03:a0"
    )
    net = lab.network(sim, 730, "-o", "mac_prefix=02:A0:00", "--subnet", "10.91.27.0/24")
    generated = container_mac(lab.run(net), net)
    assert generated.startswith("02:a0:00:"), generated
    assert not vf_with_mac(sim, generated).in_host
    own = lab.run(net, "--mac-address", "02:91:27:00:00:05")
    assert container_mac(own, net) == "02:91:27:00:00:05"
    assert interface_of(own).mac == "02:91:27:00:00:05"
    assert not vf_with_mac(sim, "02:91:27:00:00:05").in_host


@pytest.mark.min_engine_api(1, 44)
def test_one_run_on_two_networks_gives_each_vf_its_own_mac(lab):
    """Since API 1.44 (Engine 25) the MAC is an endpoint setting: one per network.

    The engine passes each as that endpoint's ``Interface.MacAddress``, and each
    becomes the admin MAC of the VF the endpoint leases. Engine 20.10 has one MAC
    per container and attaches one network at ``docker run``.
    """
    sim = lab.pf(vfs=4)
    red = lab.network(sim, 740, "--subnet", "10.91.8.0/24")
    blue = lab.network(sim, 741, "--subnet", "10.91.9.0/24")
    red_mac, blue_mac = "02:91:08:00:00:07", "02:91:09:00:00:07"
    before = sim_vfs(sim)

    container = lab.resources.run(
        "--network", f"name={red},mac-address={red_mac},driver-opt=vf=3",
        "--network", f"name={blue},mac-address={blue_mac}",
        command=QUICK_STOP,
    )  # fmt: skip

    red_vf, blue_vf = vf_with_mac(sim, red_mac), vf_with_mac(sim, blue_mac)
    assert (red_vf.index, red_vf.vlan, red_vf.in_host) == (3, 740, False), red_vf.line
    assert (blue_vf.vlan, blue_vf.in_host) == (741, False), blue_vf.line
    assert (container_mac(container, red), container_mac(container, blue)) == (red_mac, blue_mac)
    for mac, net in ((red_mac, red), (blue_mac, blue)):
        inside = interface_of(container, interface_with_mac(container, mac))
        assert inside.ipv4 == [f"{container_ip(container, net)}/24"], inside

    docker("rm", "-f", container)
    after = sim_vfs(sim)
    for vf in (red_vf, blue_vf):
        assert after[vf.index].line == before[vf.index].line, "VF not restored on release"


# ---- Engine 28 (API 1.48+): IPv6-only, gateways, names, priorities, its own keys -------------


def ip_lines(container: str, *args: str) -> list[str]:
    return docker("exec", container, "ip", *args).splitlines()


def pool_cidrs() -> list[str]:
    """The pools the plugin's IPAM holds, as its status on the managed plugin's socket says."""
    from test_operate import status_command

    return [pool["cidr"] for pool in json.loads(status_command("--json"))["pools"]]


@pytest.mark.min_engine_api(1, 48)
def test_ipv6_only_network_gives_only_ipv6_and_asks_for_no_ipv4_pool(lab):
    """``--ipv4=false``: IPv4Data is empty, no IPv4 pool is requested, the VF has no IPv4."""
    sim = lab.pf(vfs=2)
    before = pool_cidrs()
    net = lab.network(sim, 2801, "--ipv4=false", "--ipv6", "--subnet", "fd28:1::/64")
    container = lab.run(net)

    eth0 = interface_of(container)
    assert eth0.mac == container_mac(container, net)
    assert eth0.ipv4 == [], eth0
    assert f"{container_ipv6(container, net)}/64" in eth0.ipv6, eth0
    assert container_ip(container, net) is None
    assert ip_lines(container, "-4", "route") == []
    assert ip_lines(container, "-6", "route", "show", "default")[0].startswith(
        "default via fd28:1::1 dev eth0"
    )
    added = [cidr for cidr in pool_cidrs() if cidr not in before]
    assert added == ["fd28:1::/64"], added


@pytest.mark.min_engine_api(1, 48)
def test_reserve_gateway_off_leaves_the_gateway_to_the_user(lab):
    """GwAllocCheck: without --gateway Docker reserves no address (so .1 is a container's)
    and containers get no default route; a --gateway (the site's router) is still used."""
    sim = lab.pf(vfs=5)
    bare = lab.network(sim, 2802, "-o", "reserve_gateway=off", "--subnet", "10.95.2.0/24")
    first = lab.run(bare, "--ip", "10.95.2.1")
    assert interface_of(first).ipv4 == ["10.95.2.1/24"]
    assert not any(line.startswith("default") for line in ip_lines(first, "route"))

    routed = lab.network(
        sim, 2803, "-o", "reserve_gateway=off", "--subnet", "10.95.3.0/24",
        "--gateway", "10.95.3.254",
    )  # fmt: skip
    assert default_route_of(lab.run(routed)).startswith("default via 10.95.3.254 dev eth0")
    assert "10.95.3.254" in lab.resources.run_fails("--network", routed, "--ip", "10.95.3.254")

    usual = lab.network(sim, 2804, "--subnet", "10.95.4.0/24")  # Docker's usual: .1 reserved
    assert default_route_of(lab.run(usual)).startswith("default via 10.95.4.1 dev eth0")
    # An internal network routes nowhere: no address is set aside for a gateway either.
    inside = lab.network(sim, 2805, "--internal", "--subnet", "10.95.5.0/24")
    assert interface_of(lab.run(inside, "--ip", "10.95.5.1")).ipv4 == ["10.95.5.1/24"]


@pytest.mark.min_engine_api(1, 48)
def test_gw_priority_picks_the_default_route_across_two_sriov_networks(lab):
    """Join answers each network's gateway, so both endpoints can be the gateway one."""
    sim = lab.pf(vfs=4)
    low = lab.network(sim, 2806, "--subnet", "10.95.6.0/24")
    high = lab.network(sim, 2807, "--subnet", "10.95.7.0/24")
    for (first, first_priority), (second, second_priority), gateway in (
        ((low, 1), (high, 10), "10.95.7.1"),
        ((low, 10), (high, 1), "10.95.6.1"),
    ):
        container = lab.resources.run(
            "--network", f"name={first},gw-priority={first_priority}",
            "--network", f"name={second},gw-priority={second_priority}",
            command=QUICK_STOP,
        )  # fmt: skip
        route = default_route_of(container)
        assert route.startswith(f"default via {gateway} dev "), route
        device = route.split(" dev ")[1].split()[0]
        gateway_net = high if gateway == "10.95.7.1" else low
        assert interface_of(container, device).mac == container_mac(container, gateway_net)


def test_ifname_driver_opt_names_the_vf_in_the_container(lab):
    """Join answers DstPrefix "data" for ifname data0: the engine numbers it data0."""
    sim = lab.pf(vfs=2)
    net = lab.network(sim, 2808, "--subnet", "10.95.8.0/24")
    container = lab.resources.run(
        "--network", f"name={net},driver-opt=com.docker.network.endpoint.ifname=data0",
        command=QUICK_STOP,
    )  # fmt: skip
    mac = container_mac(container, net)
    assert interface_with_mac(container, mac) == "data0"
    assert interface_of(container, "data0").ipv4 == [f"{container_ip(container, net)}/24"]
    assert not vf_with_mac(sim, mac).in_host


CONNECT_MAC_API = (1, 54)  # Docker 29.3: connect applies EndpointSettings.MacAddress


@pytest.mark.min_engine_api(1, 44)
def test_connect_gives_the_vf_the_mac_the_container_has_on_that_network(lab, engine):
    """``network connect`` with a MAC: the API has the field since 1.44, but engines before
    API 1.54 drop it, so CreateEndpoint gets no MAC and the plugin's own one must be the
    container's; from 1.54 the engine sends it and it becomes the VF's admin MAC."""
    import docker as docker_sdk

    sim = lab.pf(vfs=3)
    first = lab.network(sim, 2809, "--subnet", "10.95.9.0/24")
    second = lab.network(sim, 2810, "--subnet", "10.95.10.0/24")
    container = lab.run(first)
    asked = "02:95:10:00:00:09"
    client = docker_sdk.from_env()
    try:
        client.api.connect_container_to_network(container, second, mac_address=asked)
    finally:
        client.close()
    mac = container_mac(container, second)
    assert (mac == asked) == (engine.api >= CONNECT_MAC_API), mac
    inside = interface_of(container, interface_with_mac(container, mac))
    assert inside.ipv4 == [f"{container_ip(container, second)}/24"], inside
    vf = vf_with_mac(sim, mac)
    assert (vf.vlan, vf.in_host) == (2810, False), vf.line


@pytest.mark.min_engine_api(1, 48)
def test_engine_28_keys_are_accepted_and_applied_by_the_engine(lab):
    """Unsolicited ARP/NA tuning (-o) and per-endpoint sysctls (--driver-opt) reach the
    plugin's options; it lets them through and the engine applies them."""
    sim = lab.pf(vfs=2)
    net = lab.network(
        sim, 2811, "--subnet", "10.95.11.0/24",
        "-o", "com.docker.network.advertise_addr_nmsgs=1",
        "-o", "com.docker.network.advertise_addr_ms=100",
    )  # fmt: skip
    sysctl = "com.docker.network.endpoint.sysctls=net.ipv4.conf.IFNAME.log_martians=1"
    container = lab.resources.run(
        "--network", f"name={net},driver-opt={sysctl}", command=QUICK_STOP
    )
    assert docker("exec", container, "cat", "/proc/sys/net/ipv4/conf/eth0/log_martians") == "1"
