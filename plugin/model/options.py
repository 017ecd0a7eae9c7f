"""Parsing and checking of network (``-o``) and endpoint (``--driver-opt``) options.

Everything here is pure: it turns the option maps Docker passes in CreateNetwork
and CreateEndpoint into frozen values, or raises InvalidRequest naming the
option, the value and what is allowed, before anything is touched. Values come
as strings from the CLI and may be ints or bools from API clients; both are
accepted where they make sense.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

from plugin.errors import InvalidRequest
from plugin.nic.base import (
    MTU_RANGE,
    QOS_RANGE,
    RATE_RANGE,
    VLAN_RANGE,
    Range,
    VfLinkState,
    VfSettings,
    VlanProto,
    is_multicast,
)
from plugin.nic.names import check_ifname, check_pci_address

GENERIC = "com.docker.network.generic"
INTERNAL = "com.docker.network.internal"
DOCKER_MTU = "com.docker.network.driver.mtu"
DOCKER_PREFIX = "com.docker."  # Docker's own option keys, never the user's

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
    "vfs",
    "require_pf_link",
    "mac_prefix",
)
ENDPOINT_OPTIONS = ("vf",)

VF_INDEX_MAX = 65535  # TotalVFs is a 16-bit field in the SR-IOV capability

SWITCH_WORDS = {"on": True, "off": False, "true": True, "false": False}

_INTEGER = re.compile(r"-?[0-9]+")
_VF_SPAN = re.compile(r"([0-9]+)(?:-([0-9]+))?")
_OCTET = re.compile(r"[0-9a-f]{2}")
RANGE_MARK = "#"  # pf_iface=ens1f0#0-3, the SR-IOV network device plugin's spelling
MAC_PREFIX_OCTETS = (1, 5)

VfSpans = tuple[tuple[int, int], ...]  # sorted, disjoint (first, last) index pairs
E = TypeVar("E", VlanProto, VfLinkState)


@dataclass(frozen=True)
class PfChoice:
    """One PF of a network as the user named it, and which of its VFs the network may use.

    ``ref`` is a netdev name or a PCI address in sysfs form (a name never holds
    ":", so the two cannot be confused). ``vfs`` None means every VF; ``vfs_from``
    is the option and value that set it, for error messages.
    """

    ref: str
    vfs: VfSpans | None = None
    vfs_from: str = ""

    @property
    def by_pci(self) -> bool:
        return ":" in self.ref


UNTAGGED = VfSettings(vlan=0, qos=0, proto=VlanProto.DOT1Q)  # a network with no VLAN options


@dataclass(frozen=True)
class NetworkOptions:
    """What a network asks of its PFs and of every VF it leases.

    ``vf`` holds the VF settings (a field that is None: "leave the VF's own");
    its ``mac`` is None, as each endpoint has its own.
    """

    pfs: tuple[PfChoice, ...]
    vf: VfSettings = UNTAGGED
    require_pf_link: bool = False
    mac_prefix: str | None = None
    internal: bool = False

    def vf_settings(self, mac: str) -> VfSettings:
        """What the network asks of each of its VFs, with an endpoint's admin MAC."""
        return replace(self.vf, mac=mac)


@dataclass(frozen=True)
class EndpointOptions:
    """Which VF an endpoint asks for: by index on the network's PF, or by PCI address."""

    vf_index: int | None = None
    vf_pci: str | None = None


ANY_VF = EndpointOptions()  # no ``vf`` option: any free VF of the network


def parse_network_options(options: Mapping | None) -> NetworkOptions:
    """Check CreateNetwork ``Options`` and return them as NetworkOptions.

    The user's ``-o`` flags are under ``com.docker.network.generic``; Docker's
    own flags are top-level (of those, only ``internal`` matters here: an internal
    network has no gateway).
    """
    top = _mapping(options, "network Options")
    flags = _mapping(top.get(GENERIC), GENERIC)
    _reject_unknown(flags, NETWORK_OPTIONS, "option")
    pfs = _pf_choices(flags)
    vlan = _optional_integer(flags, "vlanid", VLAN_RANGE) or 0
    qos = _optional_integer(flags, "vlan_qos", QOS_RANGE) or 0
    proto = _optional_choice(flags, "vlan_proto", VlanProto) or VlanProto.DOT1Q
    _check_vlan_needed(vlan, qos, proto)
    vf = VfSettings(  # checks what the messages above do not: min_tx_rate <= max_tx_rate
        vlan=vlan,
        qos=qos,
        proto=proto,
        mtu=_mtu(flags),
        spoofchk=_optional_switch(flags, "spoofchk"),
        trust=_optional_switch(flags, "trust"),
        link_state=_optional_choice(flags, "link_state", VfLinkState),
        min_tx_rate=_optional_integer(flags, "min_tx_rate", RATE_RANGE),
        max_tx_rate=_optional_integer(flags, "max_tx_rate", RATE_RANGE),
    )
    return NetworkOptions(
        pfs=pfs,
        vf=vf,
        require_pf_link=_optional_switch(flags, "require_pf_link") or False,
        mac_prefix=_mac_prefix(flags),
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
        return ANY_VF
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


def _pf_choices(flags: Mapping) -> tuple[PfChoice, ...]:
    """The PFs from ``pf_iface`` (or its alias ``netdevice``) in the given order, with ranges.

    Each entry is a netdev name or a PCI address, optionally followed by
    ``#first-last`` (or ``#index``); ``vfs`` gives one range list to every PF
    that has none of its own, and a PF may not have both.
    """
    option = _pf_option(flags)
    value = flags[option]
    if not isinstance(value, str):
        raise InvalidRequest(
            f"{option} {value!r} is not a list of interface names or PCI addresses "
            "(e.g. enp1s0f0,enp1s0f1 or 0000:3b:00.0)"
        )
    shared = flags.get("vfs")
    shared_spans = None if shared is None else parse_vf_spans(shared, "vfs")
    choices = []
    for entry in (part.strip() for part in value.split(",")):
        ref, mark, own = entry.partition(RANGE_MARK)
        if _VF_SPAN.fullmatch(ref.strip()):
            raise InvalidRequest(
                f"{option} {value!r}: {entry!r} is a VF range, not a PF; give one range per PF "
                f"(ens1f0#0-3) or a list for every PF in vfs (-o vfs=0-3,7)"
            )
        ref = _pf_ref(ref.strip(), option)
        if mark and shared is not None:
            raise InvalidRequest(
                f"vfs {shared!r} and {option} {entry!r} both limit the VFs of {ref}; "
                f"give the range either per PF in {option} (PF#first-last) or for every PF in vfs"
            )
        if mark:
            choices.append(PfChoice(ref, _per_pf_span(own, entry, option), f"{option} {entry!r}"))
        else:
            choices.append(PfChoice(ref, shared_spans, "" if shared is None else f"vfs {shared!r}"))
    refs = [choice.ref for choice in choices]
    repeated = sorted({ref for ref in refs if refs.count(ref) > 1})
    if repeated:
        raise InvalidRequest(f"{option} {value!r} names {', '.join(repeated)} more than once")
    return tuple(choices)


def _pf_option(flags: Mapping) -> str:
    """``pf_iface``, or ``netdevice`` (its alias) when that is the one given."""
    if "pf_iface" in flags and "netdevice" in flags:
        raise InvalidRequest(
            "options pf_iface and netdevice name the same thing (netdevice is an alias); "
            "give only pf_iface"
        )
    option = "netdevice" if "netdevice" in flags else "pf_iface"
    if option not in flags:
        raise InvalidRequest(
            "option pf_iface is required (the PF netdev(s) or PCI address(es) to draw VFs "
            "from, e.g. -o pf_iface=enp1s0f0 or -o pf_iface=0000:3b:00.0)"
        )
    return option


def _pf_ref(ref: str, option: str) -> str:
    """A PF netdev name, or (anything with ":") a PCI address checked and in sysfs form."""
    if ":" in ref:
        return check_pci_address(ref, option)
    return check_ifname(ref, option)


def _per_pf_span(text: str, entry: str, option: str) -> VfSpans:
    """The device plugin's per-PF form: one index or one first-last range after "#"."""
    if "," in text or not _VF_SPAN.fullmatch(text.strip()):
        raise InvalidRequest(
            f"{option} {entry!r}: the range after {RANGE_MARK} must be one VF index or "
            f"one range first-last (0-{VF_INDEX_MAX}), e.g. ens1f0#0-3; "
            "for a list of ranges use -o vfs=0-3,7"
        )
    return parse_vf_spans(text, f"{option} {entry!r}:")


def parse_vf_spans(value: object, what: str) -> VfSpans:
    """VF indexes from "0-3,7" (ranges first-last and single indexes, comma-separated).

    Returns sorted, merged (first, last) pairs; overlapping parts are allowed.
    """
    wrong = (
        f"{what} {value!r} is not a list of VF indexes and ranges "
        f"like 0-3,7 (indexes 0-{VF_INDEX_MAX}, first <= last)"
    )
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(wrong)
    spans = []
    for part in value.split(","):
        match = _VF_SPAN.fullmatch(part.strip())
        if match is None:
            raise InvalidRequest(wrong)
        first = int(match[1])
        last = first if match[2] is None else int(match[2])
        if first > last or last > VF_INDEX_MAX:
            raise InvalidRequest(wrong)
        spans.append((first, last))
    return _merged(sorted(spans))


def _merged(spans: list[tuple[int, int]]) -> VfSpans:
    merged: list[tuple[int, int]] = []
    for first, last in spans:
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(last, merged[-1][1]))
        else:
            merged.append((first, last))
    return tuple(merged)


def format_vf_spans(spans: VfSpans) -> str:
    """ "0-3,7" for ((0, 3), (7, 7)); the inverse of parse_vf_spans."""
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans)


def in_vf_spans(index: int, spans: VfSpans | None) -> bool:
    """Whether VF ``index`` is in ``spans``; None (no range) holds every VF."""
    return spans is None or any(first <= index <= last for first, last in spans)


def _mac_prefix(flags: Mapping) -> str | None:
    """``mac_prefix``: 1-5 octets (02:a0:00) that generated admin MACs start with; unicast."""
    if "mac_prefix" not in flags:
        return None
    value = flags["mac_prefix"]
    low, high = MAC_PREFIX_OCTETS
    octets = value.strip().lower().split(":") if isinstance(value, str) else []
    if not low <= len(octets) <= high or not all(_OCTET.fullmatch(o) for o in octets):
        raise InvalidRequest(
            f"mac_prefix {value!r} is not {low} to {high} hex octets separated by ':' "
            "(e.g. 02:a0:00)"
        )
    if is_multicast(octets[0]):
        raise InvalidRequest(
            f"mac_prefix {value} makes multicast addresses (the low bit of the first octet "
            f"is set); a VF needs a unicast MAC, e.g. {int(octets[0], 16) & 0xFE:02x}"
            f"{value.strip().lower()[2:]}"
        )
    return ":".join(octets)


def _mtu(flags: Mapping) -> int | None:
    """The MTU from ``mtu`` or Docker's ``com.docker.network.driver.mtu``; they must agree."""
    ours = _optional_integer(flags, "mtu", MTU_RANGE)
    dockers = _optional_integer(flags, DOCKER_MTU, MTU_RANGE)
    if ours is not None and dockers is not None and ours != dockers:
        raise InvalidRequest(f"mtu {ours} and {DOCKER_MTU} {dockers} disagree; give one of them")
    return ours if ours is not None else dockers


def _check_vlan_needed(vlan: int, qos: int, proto: VlanProto) -> None:
    """QoS bits and the 802.1ad tag only exist on a tagged VF."""
    if vlan > 0:
        return
    if qos:
        raise InvalidRequest(
            f"vlan_qos {qos} needs a vlanid from 1 to {VLAN_RANGE.high} "
            "(the priority travels in the tag)"
        )
    if proto != VlanProto.DOT1Q:
        raise InvalidRequest(f"vlan_proto {proto} needs a vlanid from 1 to {VLAN_RANGE.high}")


def _optional_integer(flags: Mapping, name: str, allowed: Range) -> int | None:
    if name not in flags:
        return None
    return _integer(name, flags[name], allowed.low, allowed.high)


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


def _optional_choice(flags: Mapping, name: str, kind: type[E]) -> E | None:
    """A member of ``kind`` by its spelling (matched without regard to case); None if absent."""
    if name not in flags:
        return None
    value = flags[name]
    spelled = value.strip().lower() if isinstance(value, str) else None
    for member in kind:
        if member.lower() == spelled:
            return member
    raise InvalidRequest(f"{name} {value!r} is not one of {', '.join(kind)}")


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
