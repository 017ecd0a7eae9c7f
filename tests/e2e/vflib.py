"""Helpers for the network-driver tests under a real engine: VFs as the sim and containers see them.

``sim_vfs`` reads ``sim show`` into one record per VF, so a test can find the VF a
container holds (by the admin MAC the plugin programmed) and compare a VF's
settings before and after a lease. ``eth0_of`` and ``default_route_of`` read
the interface from inside the container.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import dockerlib
from dockerlib import SimNic, docker

# A container command that exits at once on SIGTERM (busybox sh as PID 1 ignores it
# otherwise), so stopping dockerd does not wait out the kill timeout.
QUICK_STOP = ("sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait")

_VF_LINE = re.compile(
    r"^\s*VF (?P<index>\d+) pci (?P<pci>\S+) netdev (?P<netdev>\S+) \((?P<where>\w+)\) "
    r"port \S+ bridge (?P<bridge>.+?) vlan (?P<vlan>\d+) .* mac (?P<mac>\S+) .* mtu (?P<mtu>\S+)$"
)


@dataclass(frozen=True)
class SimVf:
    """One line of ``sim show``: where the VF netdev is and what the NIC records for it."""

    index: int
    pci: str
    netdev: str
    in_host: bool
    bridge: str
    vlan: int
    mac: str
    line: str


def sim_vfs(sim: SimNic) -> dict[int, SimVf]:
    """The VFs of ``sim``'s PF by index, parsed from ``sim show``."""
    vfs: dict[int, SimVf] = {}
    current_pf = None
    for line in sim.show().splitlines():
        if line.startswith("PF "):
            current_pf = line.split()[1]
            continue
        match = _VF_LINE.match(line)
        if current_pf != sim.pf or match is None:
            continue
        vfs[int(match["index"])] = SimVf(
            index=int(match["index"]),
            pci=match["pci"],
            netdev=match["netdev"],
            in_host=match["where"] == "host",
            bridge=match["bridge"],
            vlan=int(match["vlan"]),
            mac=match["mac"],
            line=line.strip(),
        )
    assert vfs, f"sim show lists no VFs of {sim.pf}:\n{sim.show()}"
    return vfs


def vf_with_mac(sim: SimNic, mac: str) -> SimVf:
    """The VF of ``sim`` whose admin MAC is ``mac`` (the one a container's endpoint leased)."""
    matches = [vf for vf in sim_vfs(sim).values() if vf.mac == mac.lower()]
    assert len(matches) == 1, f"{len(matches)} VFs of {sim.pf} have MAC {mac}:\n{sim.show()}"
    return matches[0]


def container_mac(container: str, network: str) -> str:
    """The MAC address Docker reports for ``container`` on ``network``."""
    return _network_setting(container, network, "MacAddress").lower()


def container_ipv6(container: str, network: str) -> str:
    return _network_setting(container, network, "GlobalIPv6Address")


def container_gateway(container: str, network: str) -> str:
    """The IPv4 gateway Docker reports for ``container`` on ``network``."""
    return _network_setting(container, network, "Gateway")


def _network_setting(container: str, network: str, key: str) -> str:
    return docker(
        "inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{network}").{key}}}}}', container
    )


@dataclass(frozen=True)
class Interface:
    """An interface as ``ip`` inside a container shows it."""

    name: str
    mac: str
    mtu: int
    ipv4: list[str]
    ipv6: list[str]


def interface_of(container: str, name: str = "eth0") -> Interface:
    """Read ``name`` inside ``container`` with the container's own ``ip``."""
    link = docker("exec", container, "ip", "-o", "link", "show", name)
    mac = re.search(r"link/ether (\S+)", link)
    mtu = re.search(r"\bmtu (\d+)", link)
    assert mac and mtu, f"cannot read MAC and MTU of {name} in {container}: {link}"
    addrs = docker("exec", container, "ip", "-o", "addr", "show", name)
    return Interface(
        name=name,
        mac=mac[1].lower(),
        mtu=int(mtu[1]),
        ipv4=re.findall(r"\binet (\S+)", addrs),
        ipv6=re.findall(r"\binet6 (\S+)", addrs),
    )


def interface_with_mac(container: str, mac: str) -> str:
    """The name of the interface in ``container`` that has ``mac``."""
    for line in docker("exec", container, "ip", "-o", "link").splitlines():
        if f"link/ether {mac.lower()}" in line.lower():
            return line.split(":")[1].strip().split("@")[0]
    raise AssertionError(f"no interface with MAC {mac} in {container}")


def default_route_of(container: str) -> str:
    """The ``ip route`` line of the container's default route."""
    routes = docker("exec", container, "ip", "route").splitlines()
    defaults = [route for route in routes if route.startswith("default")]
    assert len(defaults) == 1, f"{container} has no single default route: {routes}"
    return defaults[0]


def pings(container: str, address: str) -> bool:
    """Whether ``address`` answers two pings from ``container`` within a few seconds."""
    result = dockerlib.run_docker(
        "exec", container, "ping", "-c", "2", "-W", "2", address, timeout=30
    )
    return result.returncode == 0
