"""Real clients drive the plugin: Docker Compose (v2 and v1) and the Docker SDK for Python.

(The file sorts after test_demo.py, which removes ``sriov:latest`` when it cleans up.)

Each builds the same project through its own code path to the engine: two sriov networks on
one simulated PF (one with driver options, IPAM config with subnet, ip_range, gateway and
aux_addresses, and IPv6; one internal), and containers with static addresses and MACs.
What the containers see inside and what the NIC records must match the file, after
``up``, and again after ``down`` and ``up``.

- Compose 2.40 is Debian unstable's (``Engine.compose``, run standalone with DOCKER_HOST),
  against the engine it ships with, 28.5; it writes the MAC per network.
- Compose 1.29 is Debian 12's ``docker-compose``, against Debian 12's engine; its file
  format (2.4) has one MAC per service.
- The SDK (``docker`` from PyPI) runs on every engine whose API has per-endpoint MACs (1.44).
"""

from __future__ import annotations

import ipaddress
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dockerlib
import pytest
from dockerlib import NAME_PREFIX, PLUGIN, TEST_IMAGE, SimNic, docker, docker_fails
from engines import Engine
from vflib import QUICK_STOP, default_route_of, interface_of, interface_with_mac, sim_vfs

COMPOSE_V1 = Path("/usr/bin/docker-compose")  # Debian 12's docker-compose 1.29

# The project every client builds: addresses, MACs and VLANs to find again.
DATA_VLAN, INTERNAL_VLAN = 2901, 2902
SUBNET, SUBNET6 = "10.96.1.0/24", "fd96:1::/64"
IP_RANGE, GATEWAY, AUX = "10.96.1.64/26", "10.96.1.254", "10.96.1.65"
INTERNAL_SUBNET = "10.96.2.0/24"
MTU = 1400


@dataclass(frozen=True)
class Member:
    """A container of the project as the file describes it."""

    service: str
    ip: str | None  # static IPv4 on the data network, None for one from ip_range
    ip6: str | None
    mac: str | None  # on the data network
    internal_ip: str | None  # None: not on the internal network


APP = Member("app", "10.96.1.70", "fd96:1::70", "02:96:01:00:00:70", "10.96.2.70")
DB = Member("db", "10.96.1.71", None, "02:96:01:00:00:71", None)
WORKER = Member("worker", None, None, None, None)
MEMBERS = (APP, DB, WORKER)


def compose_file(pf: str, version: int) -> str:
    """The project as a Compose file; version 1 has a MAC per service, 2 per network."""
    lines = ['version: "2.4"'] if version == 1 else []
    lines.append("services:")
    for member in MEMBERS:
        lines += [
            f"  {member.service}:",
            f"    image: {TEST_IMAGE}",
            f'    command: ["sh", "-c", "{QUICK_STOP[2]}"]',
        ]
        if member.mac and version == 1:
            lines.append(f"    mac_address: {member.mac}")
        lines += ["    networks:", "      data:"]
        if version == 1:
            # 1.29 creates the container on its first network by priority (then by name,
            # "back" before "data") and connects the rest: the service's one MAC goes to
            # that first endpoint, so the data network must come first.
            lines.append("        priority: 10")
        if member.ip:
            lines.append(f"        ipv4_address: {member.ip}")
        if member.ip6:
            lines.append(f"        ipv6_address: {member.ip6}")
        if member.mac and version == 2:
            lines.append(f"        mac_address: {member.mac}")
        if member.internal_ip:
            lines += ["      back:", f"        ipv4_address: {member.internal_ip}"]
    lines += [
        "networks:",
        "  data:",
        f"    driver: {PLUGIN}",
        "    driver_opts:",
        f"      pf_iface: {pf}",
        f'      vlanid: "{DATA_VLAN}"',
        f'      mtu: "{MTU}"',
        "    enable_ipv6: true",
        "    ipam:",
        f"      driver: {PLUGIN}",
        "      config:",
        f"        - subnet: {SUBNET}",
        f"          ip_range: {IP_RANGE}",
        f"          gateway: {GATEWAY}",
        "          aux_addresses:",
        f"            router2: {AUX}",
        f"        - subnet: {SUBNET6}",
        "  back:",
        f"    driver: {PLUGIN}",
        "    internal: true",
        "    driver_opts:",
        f"      pf_iface: {pf}",
        f'      vlanid: "{INTERNAL_VLAN}"',
        "    ipam:",
        f"      driver: {PLUGIN}",
        "      config:",
        f"        - subnet: {INTERNAL_SUBNET}",
    ]
    return "\n".join(lines) + "\n"


class Compose:
    """One Compose project: ``compose up -d`` / ``down`` with a given binary."""

    def __init__(self, binary: Path, directory: Path, pf: str, version: int):
        self.binary = binary
        self.project = f"{NAME_PREFIX}compose-{uuid.uuid4().hex[:8]}"
        self.file = directory / "compose.yaml"
        self.file.write_text(compose_file(pf, version))

    def __call__(self, *args: str) -> str:
        command = [str(self.binary), "-f", str(self.file), "-p", self.project, *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"{' '.join(command)}: {result.stderr}"
        return result.stdout

    def container(self, service: str) -> str:
        (name,) = docker(
            "ps", "-q", "--filter", f"label=com.docker.compose.project={self.project}",
            "--filter", f"label=com.docker.compose.service={service}",
        ).split()  # fmt: skip
        return name

    def network(self, key: str) -> str:
        return f"{self.project}_{key}"


def check_project(sim: SimNic, container: Callable[[str], str], data: str, back: str) -> None:
    """What each member sees inside, and what the NIC records, match the project."""
    vfs = {vf.mac: vf for vf in sim_vfs(sim).values()}
    dynamic: set[ipaddress.IPv4Address] = set()
    for member in MEMBERS:
        name = container(member.service)
        mac = docker(
            "inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{data}").MacAddress}}}}', name
        ).lower()  # fmt: skip
        if member.mac:
            assert mac == member.mac, f"{member.service}: MAC {mac}, not {member.mac}"
        inside = interface_of(name, interface_with_mac(name, mac))
        (cidr,) = inside.ipv4
        address = ipaddress.IPv4Interface(cidr)
        assert address.network == ipaddress.IPv4Network(SUBNET), cidr
        if member.ip:
            assert str(address.ip) == member.ip, cidr
        else:
            assert address.ip in ipaddress.IPv4Network(IP_RANGE), cidr
            assert str(address.ip) != AUX, f"{member.service} got the aux address {AUX}"
            dynamic.add(address.ip)
        global6 = [a for a in inside.ipv6 if not a.startswith("fe80:")]
        assert len(global6) == 1 and ipaddress.IPv6Interface(global6[0]) in ipaddress.IPv6Network(
            SUBNET6
        ), inside
        if member.ip6:
            assert global6 == [f"{member.ip6}/64"], inside
        assert inside.mtu == MTU, inside
        assert default_route_of(name).startswith(f"default via {GATEWAY} dev {inside.name}")
        vf = vfs[mac]
        assert (vf.vlan, vf.in_host) == (DATA_VLAN, False), vf.line
        if member.internal_ip:
            back_mac = docker(
                "inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{back}").MacAddress}}}}',
                name,
            ).lower()  # fmt: skip
            back_if = interface_of(name, interface_with_mac(name, back_mac))
            assert back_if.ipv4 == [f"{member.internal_ip}/24"], back_if
            assert (vfs[back_mac].vlan, vfs[back_mac].in_host) == (INTERNAL_VLAN, False)
    # The aux address is the IPAM's: no container may take it.
    name = dockerlib.unique_name("ctr")
    try:
        refused = docker_fails("run", "-d", "--name", name, "--net", data, "--ip", AUX, TEST_IMAGE)
    finally:
        dockerlib.run_docker("rm", "-f", name)
    assert AUX in refused, f"the aux address was handed out: {refused}"


def all_vfs_home(sim: SimNic) -> None:
    vfs = sim_vfs(sim).values()
    assert all(vf.in_host for vf in vfs), "\n".join(vf.line for vf in vfs)


def run_compose(compose: Compose, sim: SimNic) -> None:
    """up, check; down: VFs home, networks gone; up again, check; down."""
    networks = compose.network("data"), compose.network("back")
    try:
        compose("up", "-d")
        check_project(sim, compose.container, *networks)
        compose("down")
        all_vfs_home(sim)
        for network in networks:
            assert dockerlib.run_docker("network", "inspect", network).returncode, network
        compose("up", "-d")
        check_project(sim, compose.container, *networks)
    finally:
        compose("down")
    all_vfs_home(sim)


@pytest.mark.every_engine
@pytest.mark.min_engine_api(1, 48)
def test_compose_v2_builds_sriov_networks_with_ipam_config_and_per_network_macs(
    engine: Engine, resources, sim_nic, tmp_path
):
    assert engine.compose is not None, f"{engine.id} ships no Compose v2"
    sim = sim_nic(vfs=6)
    run_compose(Compose(engine.compose, tmp_path, sim.pf, version=2), sim)


def test_compose_v1_builds_the_same_project_on_debian_12s_engine(resources, sim_nic, tmp_path):
    assert COMPOSE_V1.is_file(), f"{COMPOSE_V1} is missing: scripts/install-deps.sh installs it"
    sim = sim_nic(vfs=6)
    run_compose(Compose(COMPOSE_V1, tmp_path, sim.pf, version=1), sim)


class SdkProject:
    """The same project through the Docker SDK for Python's low-level API client."""

    def __init__(self, client, pf: str):  # client: docker.APIClient
        self.api = client
        self.pf = pf
        self.prefix = f"{NAME_PREFIX}sdk-{uuid.uuid4().hex[:8]}"
        self.names: dict[str, str] = {}

    def network(self, key: str) -> str:
        return f"{self.prefix}_{key}"

    def up(self) -> None:
        from docker.types import IPAMConfig, IPAMPool

        self.api.create_network(
            self.network("data"),
            driver=PLUGIN,
            options={"pf_iface": self.pf, "vlanid": str(DATA_VLAN), "mtu": str(MTU)},
            enable_ipv6=True,
            ipam=IPAMConfig(
                driver=PLUGIN,
                pool_configs=[
                    IPAMPool(
                        subnet=SUBNET, iprange=IP_RANGE, gateway=GATEWAY,
                        aux_addresses={"router2": AUX},
                    ),
                    IPAMPool(subnet=SUBNET6),
                ],
            ),
        )  # fmt: skip
        self.api.create_network(
            self.network("back"),
            driver=PLUGIN,
            internal=True,
            options={"pf_iface": self.pf, "vlanid": str(INTERNAL_VLAN)},
            ipam=IPAMConfig(driver=PLUGIN, pool_configs=[IPAMPool(subnet=INTERNAL_SUBNET)]),
        )
        for member in MEMBERS:
            endpoints = {
                self.network("data"): self.api.create_endpoint_config(
                    ipv4_address=member.ip, ipv6_address=member.ip6, mac_address=member.mac
                )
            }
            if member.internal_ip:
                endpoints[self.network("back")] = self.api.create_endpoint_config(
                    ipv4_address=member.internal_ip
                )
            name = f"{self.prefix}-{member.service}"
            self.api.create_container(
                TEST_IMAGE,
                command=list(QUICK_STOP),
                name=name,
                networking_config=self.api.create_networking_config(endpoints),
            )
            self.api.start(name)
            self.names[member.service] = name

    def down(self) -> None:
        for name in self.names.values():
            self.api.remove_container(name, force=True)
        self.names.clear()
        for key in ("data", "back"):
            if self.api.networks(names=[self.network(key)]):
                self.api.remove_network(self.network(key))


@pytest.mark.every_engine
@pytest.mark.min_engine_api(1, 44)
def test_docker_sdk_builds_the_same_project_through_the_api(engine, resources, sim_nic):
    import docker as docker_sdk

    sim = sim_nic(vfs=6)
    client = docker_sdk.APIClient(base_url=engine.host, version="auto")
    project = SdkProject(client, sim.pf)
    try:
        for _ in range(2):
            project.up()
            networks = project.network("data"), project.network("back")
            check_project(sim, project.names.__getitem__, *networks)
            project.down()
            all_vfs_home(sim)
    finally:
        project.down()
        client.close()
