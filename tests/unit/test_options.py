"""Network (-o) and endpoint (--driver-opt) options: defaults, aliases, conflicts, messages."""

import re

import pytest

from plugin.errors import InvalidRequest
from plugin.model.options import (
    EndpointOptions,
    NetworkOptions,
    PfChoice,
    format_vf_spans,
    in_vf_spans,
    parse_endpoint_options,
    parse_network_options,
    parse_vf_spans,
)
from plugin.nic.base import VfSettings

KNOWN = (
    "pf_iface, netdevice, vlanid, vlan_qos, vlan_proto, mtu, com.docker.network.driver.mtu, "
    "spoofchk, trust, link_state, min_tx_rate, max_tx_rate, vfs, require_pf_link, mac_prefix"
)


def network(**flags):
    """CreateNetwork Options as Docker sends them for `-o key=value ...`."""
    return {
        "com.docker.network.enable_ipv6": False,
        "com.docker.network.generic": {"pf_iface": "enp1s0f0", **flags},
    }


def parsed(**flags) -> NetworkOptions:
    return parse_network_options(network(**flags))


def refs(options: NetworkOptions) -> tuple[str, ...]:
    return tuple(choice.ref for choice in options.pfs)


def rejected(options) -> str:
    with pytest.raises(InvalidRequest) as caught:
        parse_network_options(options)
    assert caught.value.status == 400
    return caught.value.message


# --- defaults and the whole shape ---------------------------------------------------------


def test_only_pf_iface_gives_all_defaults():
    assert parsed() == NetworkOptions(
        pfs=(PfChoice("enp1s0f0"),),
        vf=VfSettings(
            mac=None,
            vlan=0,
            qos=0,
            proto="802.1Q",
            mtu=None,
            spoofchk=None,
            trust=None,
            link_state=None,
            min_tx_rate=None,
            max_tx_rate=None,
        ),
        require_pf_link=False,
        mac_prefix=None,
        internal=False,
    )


def test_every_option_from_cli_strings():
    options = network(
        vlanid="100",
        vlan_qos="5",
        vlan_proto="802.1AD",
        mtu="9000",
        spoofchk="off",
        trust="on",
        link_state="Enable",
        min_tx_rate="100",
        max_tx_rate="1000",
    )
    options["com.docker.network.enable_ipv6"] = True
    options["com.docker.network.internal"] = True
    assert parse_network_options(options) == NetworkOptions(
        pfs=(PfChoice("enp1s0f0"),),
        vf=VfSettings(
            vlan=100,
            qos=5,
            proto="802.1ad",
            mtu=9000,
            spoofchk=False,
            trust=True,
            link_state="enable",
            min_tx_rate=100,
            max_tx_rate=1000,
        ),
        internal=True,
    )


def test_api_clients_may_send_ints_and_bools():
    got = parsed(vlanid=7, vlan_qos=1, mtu=1500, spoofchk=True, trust=False, max_tx_rate=0)
    assert (
        got.vf.vlan,
        got.vf.qos,
        got.vf.mtu,
        got.vf.spoofchk,
        got.vf.trust,
        got.vf.max_tx_rate,
    ) == (
        7,
        1,
        1500,
        True,
        False,
        0,
    )


def test_result_is_frozen():
    with pytest.raises(AttributeError):
        parsed().vf = VfSettings()  # type: ignore[misc]


@pytest.mark.parametrize("options", [None, {}, {"com.docker.network.generic": None}])
def test_no_flags_at_all_asks_for_pf_iface(options):
    assert rejected(options) == (
        "option pf_iface is required (the PF netdev(s) or PCI address(es) to draw VFs from, "
        "e.g. -o pf_iface=enp1s0f0 or -o pf_iface=0000:3b:00.0)"
    )


def test_internal_defaults_to_false_when_docker_omits_it():
    got = parse_network_options({"com.docker.network.generic": {"pf_iface": "eth1"}})
    assert got.internal is False


# --- pf_iface and its alias -----------------------------------------------------------


def test_pf_iface_list_keeps_order_and_trims_spaces():
    assert refs(parsed(pf_iface="enp1s0f1, enp1s0f0")) == ("enp1s0f1", "enp1s0f0")


def test_netdevice_is_an_alias_for_pf_iface():
    options = {"com.docker.network.generic": {"netdevice": "ens2f0,ens2f1"}}
    assert refs(parse_network_options(options)) == ("ens2f0", "ens2f1")


def test_pf_iface_and_netdevice_together_are_rejected():
    assert rejected(network(netdevice="enp1s0f0")) == (
        "options pf_iface and netdevice name the same thing (netdevice is an alias); "
        "give only pf_iface"
    )


def test_duplicate_pf_is_rejected():
    assert rejected(network(pf_iface="enp1s0f0,enp1s0f1,enp1s0f0")) == (
        "pf_iface 'enp1s0f0,enp1s0f1,enp1s0f0' names enp1s0f0 more than once"
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("enp1s0f0,", "pf_iface '' is not a valid interface name: it is empty"),
        ("../../etc", "pf_iface '../../etc' is not a valid interface name: it contains '/'"),
        ("a" * 16, f"pf_iface '{'a' * 16}' is not a valid interface name: it is 16 bytes long"),
    ],
)
def test_pf_names_follow_kernel_rules(value, problem):
    assert rejected(network(pf_iface=value)).startswith(problem)


def test_netdevice_errors_name_netdevice():
    options = {"com.docker.network.generic": {"netdevice": "bad/name"}}
    assert rejected(options).startswith("netdevice 'bad/name' is not a valid interface name")


def test_pf_iface_must_be_a_string():
    assert rejected(network(pf_iface=3)) == (
        "pf_iface 3 is not a list of interface names or PCI addresses "
        "(e.g. enp1s0f0,enp1s0f1 or 0000:3b:00.0)"
    )


# --- unknown options ----------------------------------------------------------------------


def test_unknown_option_lists_the_known_ones():
    assert rejected(network(vlan="100")) == f"unknown option 'vlan' (known: {KNOWN})"


def test_unknown_option_is_reported_before_a_missing_pf_iface():
    options = {"com.docker.network.generic": {"parent": "eth0"}}
    assert rejected(options).startswith("unknown option 'parent'")


@pytest.mark.parametrize("value", [[], "x", 3])
def test_generic_options_must_be_a_map(value):
    message = rejected({"com.docker.network.generic": value})
    assert message == (f"com.docker.network.generic must be an object, got {type(value).__name__}")


def test_options_must_be_a_map():
    assert rejected([]) == "network Options must be an object, got list"


# --- vlan, qos, proto ---------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "1", "4094", 4094])
def test_vlanid_range_is_accepted(value):
    assert parsed(vlanid=value).vf.vlan == int(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("5000", "vlanid 5000 out of range 0-4094"),
        ("4095", "vlanid 4095 out of range 0-4094"),
        ("-1", "vlanid -1 out of range 0-4094"),
        ("abc", "vlanid 'abc' is not an integer in range 0-4094"),
        ("1.5", "vlanid '1.5' is not an integer in range 0-4094"),
        ("", "vlanid '' is not an integer in range 0-4094"),
        ("١٢", "vlanid '١٢' is not an integer in range 0-4094"),
        (True, "vlanid True is not an integer in range 0-4094"),
        (None, "vlanid None is not an integer in range 0-4094"),
        (10.0, "vlanid 10.0 is not an integer in range 0-4094"),
    ],
)
def test_bad_vlanid(value, message):
    assert rejected(network(vlanid=value)) == message


def test_qos_with_vlan():
    assert parsed(vlanid="10", vlan_qos="7").vf.qos == 7


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("8", "vlan_qos 8 out of range 0-7"),
        ("-1", "vlan_qos -1 out of range 0-7"),
        ("high", "vlan_qos 'high' is not an integer in range 0-7"),
    ],
)
def test_bad_qos(value, message):
    assert rejected(network(vlanid="10", vlan_qos=value)) == message


def test_qos_without_vlan_is_rejected():
    assert rejected(network(vlan_qos="3")) == (
        "vlan_qos 3 needs a vlanid from 1 to 4094 (the priority travels in the tag)"
    )


def test_qos_zero_without_vlan_is_fine():
    assert parsed(vlan_qos="0").vf.qos == 0


@pytest.mark.parametrize(
    ("value", "normal"),
    [("802.1Q", "802.1Q"), ("802.1q", "802.1Q"), ("802.1ad", "802.1ad"), ("802.1AD", "802.1ad")],
)
def test_proto_is_case_insensitive_and_normalized(value, normal):
    assert parsed(vlanid="100", vlan_proto=value).vf.proto == normal


def test_802_1q_without_vlan_is_fine():
    assert parsed(vlan_proto="802.1q").vf.proto == "802.1Q"


def test_802_1ad_without_vlan_is_rejected():
    assert rejected(network(vlan_proto="802.1ad")) == (
        "vlan_proto 802.1ad needs a vlanid from 1 to 4094"
    )


@pytest.mark.parametrize("value", ["qinq", "8021q", 1])
def test_bad_proto_lists_allowed_values(value):
    assert rejected(network(vlanid="5", vlan_proto=value)) == (
        f"vlan_proto {value!r} is not one of 802.1Q, 802.1ad"
    )


# --- mtu ------------------------------------------------------------------------------------


def test_mtu_from_our_option():
    assert parsed(mtu="9000").vf.mtu == 9000


def test_mtu_from_dockers_generic_option():
    assert parsed(**{"com.docker.network.driver.mtu": "1400"}).vf.mtu == 1400


def test_both_mtu_options_may_agree():
    assert parsed(mtu="1400", **{"com.docker.network.driver.mtu": 1400}).vf.mtu == 1400


def test_both_mtu_options_must_agree():
    assert rejected(network(mtu="1500", **{"com.docker.network.driver.mtu": "9000"})) == (
        "mtu 1500 and com.docker.network.driver.mtu 9000 disagree; give one of them"
    )


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("mtu", "67", "mtu 67 out of range 68-65535"),
        ("mtu", "68", None),
        ("mtu", "65536", "mtu 65536 out of range 68-65535"),
        ("mtu", "jumbo", "mtu 'jumbo' is not an integer in range 68-65535"),
        (
            "com.docker.network.driver.mtu",
            "0",
            "com.docker.network.driver.mtu 0 out of range 68-65535",
        ),
    ],
)
def test_mtu_bounds(option, value, message):
    if message is None:
        assert parsed(**{option: value}).vf.mtu == int(value)
    else:
        assert rejected(network(**{option: value})) == message


# --- spoofchk, trust, link_state ----------------------------------------------------------


@pytest.mark.parametrize("option", ["spoofchk", "trust"])
@pytest.mark.parametrize(
    ("value", "expected"),
    [("on", True), ("ON", True), ("true", True), ("off", False), ("False", False), (True, True)],
)
def test_switches(option, value, expected):
    assert getattr(parsed(**{option: value}).vf, option) is expected


@pytest.mark.parametrize("option", ["spoofchk", "trust"])
@pytest.mark.parametrize("value", ["yes", "1", 1, ""])
def test_bad_switch_lists_allowed_values(option, value):
    assert rejected(network(**{option: value})) == (
        f"{option} {value!r} is not one of on, off, true, false"
    )


@pytest.mark.parametrize("value", ["auto", "enable", "disable", "AUTO"])
def test_link_state(value):
    assert parsed(link_state=value).vf.link_state == value.lower()


def test_bad_link_state_lists_allowed_values():
    assert rejected(network(link_state="up")) == (
        "link_state 'up' is not one of auto, enable, disable"
    )


# --- rates ----------------------------------------------------------------------------------


def test_rates_default_to_none():
    got = parsed()
    assert (got.vf.min_tx_rate, got.vf.max_tx_rate) == (None, None)


def test_min_rate_alone_is_fine():
    assert parsed(min_tx_rate="500").vf.min_tx_rate == 500


def test_min_above_uncapped_max_is_fine():
    got = parsed(min_tx_rate="500", max_tx_rate="0")
    assert (got.vf.min_tx_rate, got.vf.max_tx_rate) == (500, 0)


def test_min_equal_max_is_fine():
    got = parsed(min_tx_rate="100", max_tx_rate="100")
    assert (got.vf.min_tx_rate, got.vf.max_tx_rate) == (100, 100)


def test_min_above_max_is_rejected():
    assert rejected(network(min_tx_rate="500", max_tx_rate="100")) == (
        "min_tx_rate 500 is above max_tx_rate 100 (Mbit/s; use max_tx_rate 0 for no cap)"
    )


@pytest.mark.parametrize("option", ["min_tx_rate", "max_tx_rate"])
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1", "{} -1 out of range 0-4294967295"),
        ("4294967296", "{} 4294967296 out of range 0-4294967295"),
        ("10G", "{} '10G' is not an integer in range 0-4294967295"),
    ],
)
def test_bad_rates(option, value, message):
    assert rejected(network(**{option: value})) == message.format(option)


# --- Docker's top-level flags -------------------------------------------------------------


def test_docker_flags_must_be_booleans():
    options = network()
    options["com.docker.network.internal"] = "maybe"
    assert rejected(options) == (
        "com.docker.network.internal 'maybe' is not one of on, off, true, false"
    )


def test_other_docker_top_level_keys_are_ignored():
    options = network()
    options["com.docker.network.enable_ipv4"] = True
    assert refs(parse_network_options(options)) == ("enp1s0f0",)


def test_parsing_does_not_change_the_input():
    options = network(pf_iface=" enp1s0f0 ", vlan_proto="802.1AD", vlanid="3")
    before = repr(options)
    parse_network_options(options)
    assert repr(options) == before


# --- PFs by PCI address ---------------------------------------------------------------------


def test_pf_by_pci_address_is_kept_in_sysfs_form():
    got = parsed(pf_iface="0000:3B:00.0, enp1s0f1")
    assert got.pfs == (PfChoice("0000:3b:00.0"), PfChoice("enp1s0f1"))
    assert [choice.by_pci for choice in got.pfs] == [True, False]


@pytest.mark.parametrize(
    "value",
    ["3b:00.0", "0000:3b:00", "0000:3b:00.8", "0000:3b:20.0", "0000:3b:00.0/..", "0:3b:0.0"],
)
def test_pf_pci_address_must_be_the_full_sysfs_form(value):
    assert rejected(network(pf_iface=value)) == (
        f"pf_iface {value!r} is not a PCI address: expected domain:bus:device.function "
        "like 0000:3b:02.0"
    )


def test_same_pci_address_twice_is_rejected_in_any_case():
    assert rejected(network(pf_iface="0000:3b:00.0,0000:3B:00.0")) == (
        "pf_iface '0000:3b:00.0,0000:3B:00.0' names 0000:3b:00.0 more than once"
    )


# --- VF ranges --------------------------------------------------------------------------------


def test_vfs_applies_one_range_list_to_every_pf():
    got = parsed(pf_iface="enp1s0f0,0000:3c:00.0", vfs="7, 0-3,2-4")
    assert got.pfs == (
        PfChoice("enp1s0f0", ((0, 4), (7, 7)), "vfs '7, 0-3,2-4'"),
        PfChoice("0000:3c:00.0", ((0, 4), (7, 7)), "vfs '7, 0-3,2-4'"),
    )


def test_per_pf_range_in_pf_iface_like_the_device_plugin():
    got = parsed(pf_iface="ens1f0#0-3,ens1f1#4-7,0000:3d:00.0#5,ens1f2")
    assert got.pfs == (
        PfChoice("ens1f0", ((0, 3),), "pf_iface 'ens1f0#0-3'"),
        PfChoice("ens1f1", ((4, 7),), "pf_iface 'ens1f1#4-7'"),
        PfChoice("0000:3d:00.0", ((5, 5),), "pf_iface '0000:3d:00.0#5'"),
        PfChoice("ens1f2"),
    )


def test_adjacent_spans_merge():
    assert parsed(vfs="4-5,0-1,2-3,9").pfs[0].vfs == ((0, 5), (9, 9))


def test_api_clients_may_send_one_vf_as_int():
    assert parsed(vfs=3).pfs[0].vfs == ((3, 3),)


@pytest.mark.parametrize("value", ["", "3-1", "0-3,", "a-b", "-1", "0-65536", "1..3", "0-3 7"])
def test_bad_vfs_name_the_option_value_and_form(value):
    assert rejected(network(vfs=value)) == (
        f"vfs {value!r} is not a list of VF indexes and ranges like 0-3,7 "
        "(indexes 0-65535, first <= last)"
    )


@pytest.mark.parametrize("entry", ["ens1f0#", "ens1f0#x", "ens1f0#0-3;7", "ens1f0#0-3#4"])
def test_per_pf_range_must_be_one_span(entry):
    assert rejected(network(pf_iface=entry)) == (
        f"pf_iface {entry!r}: the range after # must be one VF index or one range "
        "first-last (0-65535), e.g. ens1f0#0-3; for a list of ranges use -o vfs=0-3,7"
    )


def test_a_range_list_in_pf_iface_is_not_taken_for_a_pf_named_7():
    assert rejected(network(pf_iface="ens1f0#0-3,7")) == (
        "pf_iface 'ens1f0#0-3,7': '7' is a VF range, not a PF; give one range per PF "
        "(ens1f0#0-3) or a list for every PF in vfs (-o vfs=0-3,7)"
    )


def test_backwards_per_pf_range_is_rejected():
    assert rejected(network(pf_iface="ens1f0#3-1")) == (
        "pf_iface 'ens1f0#3-1': '3-1' is not a list of VF indexes and ranges like 0-3,7 "
        "(indexes 0-65535, first <= last)"
    )


def test_vfs_and_a_per_pf_range_together_are_rejected():
    assert rejected(network(pf_iface="ens1f0#0-3,ens1f1", vfs="4-7")) == (
        "vfs '4-7' and pf_iface 'ens1f0#0-3' both limit the VFs of ens1f0; give the range "
        "either per PF in pf_iface (PF#first-last) or for every PF in vfs"
    )


def test_range_helpers_round_trip():
    spans = parse_vf_spans("0-3,7,9-10", "vfs")
    assert format_vf_spans(spans) == "0-3,7,9-10"
    assert [i for i in range(12) if in_vf_spans(i, spans)] == [0, 1, 2, 3, 7, 9, 10]
    assert in_vf_spans(500, None)
    assert in_vf_spans(2, [[0, 3]])  # as read back from JSON


# --- link and MAC prefix ----------------------------------------------------------------------


def test_require_pf_link_is_a_switch():
    assert parsed().require_pf_link is False
    assert parsed(require_pf_link="on").require_pf_link is True
    assert rejected(network(require_pf_link="always")) == (
        "require_pf_link 'always' is not one of on, off, true, false"
    )


@pytest.mark.parametrize(
    ("value", "prefix"),
    [("02:A0:00", "02:a0:00"), ("00", "00"), (" 00:1b:21:0a:0b ", "00:1b:21:0a:0b")],
)
def test_mac_prefix_of_one_to_five_octets(value, prefix):
    assert parsed(mac_prefix=value).mac_prefix == prefix


@pytest.mark.parametrize(
    "value", ["", "02:a0:00:00:00:01", "2:a0", "02-a0-00", "02:a0:", "zz", "02:a0:0g", 2]
)
def test_bad_mac_prefix_names_the_form(value):
    assert rejected(network(mac_prefix=value)) == (
        f"mac_prefix {value!r} is not 1 to 5 hex octets separated by ':' (e.g. 02:a0:00)"
    )


def test_multicast_mac_prefix_is_rejected_with_the_unicast_neighbour():
    assert rejected(network(mac_prefix="03:a0:00")) == (
        "mac_prefix 03:a0:00 makes multicast addresses (the low bit of the first octet is set); "
        "a VF needs a unicast MAC, e.g. 02:a0:00"
    )


# --- endpoint options -----------------------------------------------------------------------


DOCKER_ENDPOINT_KEYS = {
    "com.docker.network.endpoint.exposedports": [{"Proto": 6, "Port": 80}],
    "com.docker.network.portmap": [],
    "com.docker.network.endpoint.macaddress": "AkLAqAAK",
    # sent by engines after 26.1 (moby libnetwork netlabel)
    "com.docker.network.endpoint.name": "web",
    "com.docker.network.endpoint.ifname": "eth3",
    "com.docker.network.endpoint.sysctls": "net.ipv4.conf.IFNAME.forwarding=1",
}


@pytest.mark.parametrize("options", [None, {}, DOCKER_ENDPOINT_KEYS])
def test_no_vf_choice(options):
    assert parse_endpoint_options(options) == EndpointOptions(vf_index=None, vf_pci=None)


@pytest.mark.parametrize(("value", "index"), [("0", 0), ("3", 3), (12, 12), ("65535", 65535)])
def test_vf_by_index(value, index):
    got = parse_endpoint_options({**DOCKER_ENDPOINT_KEYS, "vf": value})
    assert got == EndpointOptions(vf_index=index, vf_pci=None)


@pytest.mark.parametrize(
    ("value", "pci"),
    [("0000:3b:02.3", "0000:3b:02.3"), ("0000:AF:10.7", "0000:af:10.7")],
)
def test_vf_by_pci_address(value, pci):
    assert parse_endpoint_options({"vf": value}) == EndpointOptions(vf_index=None, vf_pci=pci)


NEITHER = "is neither a VF index (0-65535) nor a PCI address like 0000:3b:02.3"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1", "vf -1 out of range 0-65535"),
        ("65536", "vf 65536 out of range 0-65535"),
        (-2, "vf -2 out of range 0-65535"),
        ("3b:02.3", f"vf '3b:02.3' {NEITHER}"),
        ("0000:3b:02.8", f"vf '0000:3b:02.8' {NEITHER}"),
        ("0000:3b:02.3/../x", f"vf '0000:3b:02.3/../x' {NEITHER}"),
        ("eth0", f"vf 'eth0' {NEITHER}"),
        ("", f"vf '' {NEITHER}"),
        (True, f"vf True {NEITHER}"),
        (None, f"vf None {NEITHER}"),
        ([3], f"vf [3] {NEITHER}"),
    ],
)
def test_bad_vf(value, message):
    with pytest.raises(InvalidRequest) as caught:
        parse_endpoint_options({"vf": value})
    assert caught.value.message == message


def test_unknown_endpoint_option_lists_the_known_ones():
    with pytest.raises(
        InvalidRequest, match=re.escape("unknown endpoint option 'vf_index' (known: vf)")
    ):
        parse_endpoint_options({**DOCKER_ENDPOINT_KEYS, "vf_index": "3"})


def test_endpoint_options_must_be_a_map():
    with pytest.raises(InvalidRequest, match=r"^endpoint Options must be an object, got str$"):
        parse_endpoint_options("vf=3")
