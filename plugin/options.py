"""Parsing and checking of network (``-o``) and endpoint (``--driver-opt``) options.

Everything here is pure: it turns the option maps Docker passes in CreateNetwork
and CreateEndpoint into frozen values, or raises InvalidRequest naming the
option, the value and what is allowed, before anything is touched. Values come
as strings from the CLI and may be ints or bools from API clients; both are
accepted where they make sense.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass

from plugin.errors import InvalidRequest
from plugin.nic.names import check_ifname, check_pci_address

GENERIC = "com.docker.network.generic"
ENABLE_IPV6 = "com.docker.network.enable_ipv6"
INTERNAL = "com.docker.network.internal"
DOCKER_MTU = "com.docker.network.driver.mtu"
DOCKER_PREFIX = "com.docker."

NETWORK_OPTIONS = (
    "pf_iface",
    "netdevice",
    "vlanid",
    "vlan_qos",
    "vlan_proto",
    "mtu",
    DOCKER_MTU,
    "spoofchk",
    "trust",
    "link_state",
    "min_tx_rate",
    "max_tx_rate",
)
ENDPOINT_OPTIONS = ("vf",)

VLAN_MAX = 4094
QOS_MAX = 7
MTU_MIN = 68
MTU_MAX = 65535  # ETH_MAX_MTU: no Ethernet netdev goes higher
RATE_MAX = 2**32 - 1  # IFLA_VF_RATE carries u32 Mbit/s
VF_INDEX_MAX = 65535  # TotalVFs is a 16-bit field in the SR-IOV capability

PROTOS = {"802.1q": "802.1Q", "802.1ad": "802.1ad"}
LINK_STATES = {"auto": "auto", "enable": "enable", "disable": "disable"}
SWITCH_WORDS = {"on": True, "off": False, "true": True, "false": False}

_INTEGER = re.compile(r"-?[0-9]+")


@dataclass(frozen=True)
class NetworkOptions:
    """What a network asks of its VFs. None means "leave the VF's own setting"."""

    pfs: tuple[str, ...]
    vlan: int = 0
    qos: int = 0
    proto: str = "802.1Q"
    mtu: int | None = None
    spoofchk: bool | None = None
    trust: bool | None = None
    link_state: str | None = None
    min_tx_rate: int | None = None
    max_tx_rate: int | None = None
    ipv6: bool = False
    internal: bool = False


@dataclass(frozen=True)
class EndpointOptions:
    """Which VF an endpoint asks for: by index on the network's PF, or by PCI address."""

    vf_index: int | None = None
    vf_pci: str | None = None


def parse_network_options(options: Mapping | None) -> NetworkOptions:
    """Check CreateNetwork ``Options`` and return them as NetworkOptions.

    The user's ``-o`` flags are under ``com.docker.network.generic``; Docker's
    own IPv6 and internal flags are top-level booleans.
    """
    top = _mapping(options, "network Options")
    flags = _mapping(top.get(GENERIC), GENERIC)
    _reject_unknown(flags, NETWORK_OPTIONS, "option")
    pfs = _pf_names(flags)
    vlan = _optional_integer(flags, "vlanid", 0, VLAN_MAX) or 0
    qos = _optional_integer(flags, "vlan_qos", 0, QOS_MAX) or 0
    proto = _optional_choice(flags, "vlan_proto", PROTOS) or PROTOS["802.1q"]
    _check_vlan_needed(vlan, qos, proto)
    min_rate = _optional_integer(flags, "min_tx_rate", 0, RATE_MAX)
    max_rate = _optional_integer(flags, "max_tx_rate", 0, RATE_MAX)
    _check_rates(min_rate, max_rate)
    return NetworkOptions(
        pfs=pfs,
        vlan=vlan,
        qos=qos,
        proto=proto,
        mtu=_mtu(flags),
        spoofchk=_optional_switch(flags, "spoofchk"),
        trust=_optional_switch(flags, "trust"),
        link_state=_optional_choice(flags, "link_state", LINK_STATES),
        min_tx_rate=min_rate,
        max_tx_rate=max_rate,
        ipv6=_optional_switch(top, ENABLE_IPV6) or False,
        internal=_optional_switch(top, INTERNAL) or False,
    )


def parse_endpoint_options(options: Mapping | None) -> EndpointOptions:
    """Check CreateEndpoint ``Options`` and return the ones meant for us.

    Docker puts ``--driver-opt`` values there as flat keys, next to its own keys
    under ``com.docker.``, which are not ours to judge and are skipped.
    """
    given = _mapping(options, "endpoint Options")
    ours = {key: value for key, value in given.items() if not key.startswith(DOCKER_PREFIX)}
    _reject_unknown(ours, ENDPOINT_OPTIONS, "endpoint option")
    if "vf" not in ours:
        return EndpointOptions()
    return _vf_choice(ours["vf"])


def _mapping(value: object, what: str) -> Mapping:
    """An options map; Docker sends null for "none"."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidRequest(f"{what} must be an object, got {type(value).__name__}")
    return value


def _reject_unknown(given: Mapping, known: tuple[str, ...], what: str) -> None:
    for key in given:
        if key not in known:
            raise InvalidRequest(f"unknown {what} {key!r} (known: {', '.join(known)})")


def _pf_names(flags: Mapping) -> tuple[str, ...]:
    """The PF netdevs from ``pf_iface`` (or its alias ``netdevice``), in the given order."""
    if "pf_iface" in flags and "netdevice" in flags:
        raise InvalidRequest(
            "options pf_iface and netdevice name the same thing (netdevice is an alias); "
            "give only pf_iface"
        )
    option = "netdevice" if "netdevice" in flags else "pf_iface"
    if option not in flags:
        raise InvalidRequest(
            "option pf_iface is required (the PF netdev(s) to draw VFs from, "
            "e.g. -o pf_iface=enp1s0f0)"
        )
    value = flags[option]
    if not isinstance(value, str):
        raise InvalidRequest(
            f"{option} {value!r} is not a list of interface names (e.g. enp1s0f0,enp1s0f1)"
        )
    names = tuple(name.strip() for name in value.split(","))
    for name in names:
        check_ifname(name, option)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidRequest(f"{option} {value!r} names {', '.join(repeated)} more than once")
    return names


def _mtu(flags: Mapping) -> int | None:
    """The MTU from ``mtu`` or Docker's ``com.docker.network.driver.mtu``; they must agree."""
    ours = _optional_integer(flags, "mtu", MTU_MIN, MTU_MAX)
    dockers = _optional_integer(flags, DOCKER_MTU, MTU_MIN, MTU_MAX)
    if ours is not None and dockers is not None and ours != dockers:
        raise InvalidRequest(f"mtu {ours} and {DOCKER_MTU} {dockers} disagree; give one of them")
    return ours if ours is not None else dockers


def _check_vlan_needed(vlan: int, qos: int, proto: str) -> None:
    """QoS bits and the 802.1ad tag only exist on a tagged VF."""
    if vlan > 0:
        return
    if qos:
        raise InvalidRequest(
            f"vlan_qos {qos} needs a vlanid from 1 to {VLAN_MAX} (the priority travels in the tag)"
        )
    if proto != PROTOS["802.1q"]:
        raise InvalidRequest(f"vlan_proto {proto} needs a vlanid from 1 to {VLAN_MAX}")


def _check_rates(min_rate: int | None, max_rate: int | None) -> None:
    """A guaranteed rate above the cap makes no sense; max 0 means "no cap"."""
    if min_rate is not None and max_rate and min_rate > max_rate:
        raise InvalidRequest(
            f"min_tx_rate {min_rate} is above max_tx_rate {max_rate} "
            "(Mbit/s; use max_tx_rate 0 for no cap)"
        )


def _optional_integer(flags: Mapping, name: str, low: int, high: int) -> int | None:
    if name not in flags:
        return None
    return _integer(name, flags[name], low, high)


def _integer(name: str, value: object, low: int, high: int) -> int:
    """A whole number from an int or a decimal string, within [low, high]."""
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        number = int(value.strip())
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise InvalidRequest(f"{name} {value!r} is not an integer in range {low}-{high}")
    if not low <= number <= high:
        raise InvalidRequest(f"{name} {number} out of range {low}-{high}")
    return number


def _optional_switch(flags: Mapping, name: str) -> bool | None:
    """A bool from true/false, or on/off and true/false in any case; None if absent."""
    if name not in flags:
        return None
    value = flags[name]
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in SWITCH_WORDS:
        return SWITCH_WORDS[value.strip().lower()]
    raise InvalidRequest(f"{name} {value!r} is not one of {', '.join(SWITCH_WORDS)}")


def _optional_choice(flags: Mapping, name: str, choices: dict[str, str]) -> str | None:
    """One of ``choices`` (matched without regard to case), normalized; None if absent."""
    if name not in flags:
        return None
    value = flags[name]
    if isinstance(value, str) and value.strip().lower() in choices:
        return choices[value.strip().lower()]
    raise InvalidRequest(f"{name} {value!r} is not one of {', '.join(choices.values())}")


def _vf_choice(value: object) -> EndpointOptions:
    """``vf`` is a VF index on the network's PF, or a VF's PCI address."""
    wrong = (
        f"vf {value!r} is neither a VF index (0-{VF_INDEX_MAX}) nor a PCI address like 0000:3b:02.3"
    )
    if isinstance(value, int) and not isinstance(value, bool):
        return EndpointOptions(vf_index=_integer("vf", value, 0, VF_INDEX_MAX))
    if not isinstance(value, str):
        raise InvalidRequest(wrong)
    if _INTEGER.fullmatch(value.strip()):
        return EndpointOptions(vf_index=_integer("vf", value, 0, VF_INDEX_MAX))
    try:
        return EndpointOptions(vf_pci=check_pci_address(value.strip(), "vf"))
    except InvalidRequest:
        raise InvalidRequest(wrong) from None
