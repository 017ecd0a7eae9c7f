"""KernelBackend against a recording fake of its netlink socket (``plugin.nic.rtnl.Rtnl``).

The fake turns each recorded ``vf={...}`` through the socket's own request
building (``rtnl.link_message``, pyroute2's request filter) into the IFLA_VF_*
attributes that would go to the kernel, encodes them
and checks the bytes the way the kernel's rtnetlink does (every attribute at
least the size of its kernel struct, or EINVAL), applies them to a model of the
PF's VFs, and answers "get" with real encoded-then-decoded RTM_NEWLINK
messages, so parsing is tested against pyroute2's structures. The VF netdev
behaves as igb/igbvf do (seen on the emulated 82576): once the PF has set an
admin MAC, the VF's own MAC change is refused unless it is to the address the VF
got at its last reset, and the VF resets when its link goes down or its MTU
changes while it is down. At a reset the VF asks the PF for its MAC (taking the
admin MAC, if one is set) and registers its netdev's MAC again, which the PF
accepts, and then reports, unless an admin MAC is set and the VF is untrusted.
"""

import copy
import errno
import struct
import threading

import pytest
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from plugin.errors import DeviceError, InvalidRequest
from plugin.nic import netlink
from plugin.nic.base import VF_STATS_FIELDS, NetdevStatus, VfInfo, VfRefused, VfSettings, VfStats
from plugin.nic.kernel import KernelBackend
from plugin.nic.program import program_vf, restore_vf
from plugin.nic.rtnl import link_message

PF_INDEX = 7
VF3 = VfInfo(pf="enp1s0f0", index=3, pci="0000:3b:02.3", netdev="enp1s0f0v3", driver="iavf")


# include/uapi/linux/if_link.h: IFLA_VF_* attribute type -> sizeof its struct.
KERNEL_VF_SIZES = {1: 36, 2: 12, 3: 8, 4: 8, 5: 8, 6: 12, 7: 8, 9: 8, 10: 16, 11: 16}
IFLA_VFINFO_LIST, IFLA_VF_INFO, IFLA_VF_VLAN_LIST, IFLA_VF_VLAN_INFO = 22, 1, 12, 1
VLAN_INFO_SIZE = 16  # sizeof(struct ifla_vf_vlan_info), tail padding included
IFINFOMSG_OFFSET = 32  # struct nlmsghdr (16) + struct ifinfomsg (16)


def attributes(data: bytes):
    """(type, payload) of each netlink attribute in ``data``."""
    offset = 0
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        yield kind & 0x3FFF, data[offset + 4 : offset + length]
        offset += (length + 3) & ~3


def kernel_checks_vf_lengths(data: bytes) -> None:
    """Raise EINVAL where rtnetlink would: a VF attribute shorter than its struct."""
    for kind, payload in attributes(data[IFINFOMSG_OFFSET:]):
        if kind != IFLA_VFINFO_LIST:
            continue
        for _info, vf_attrs in attributes(payload):
            for vf_kind, value in attributes(vf_attrs):
                if vf_kind == IFLA_VF_VLAN_LIST:
                    for _entry, vlan_info in attributes(value):
                        if len(vlan_info) < VLAN_INFO_SIZE:
                            raise NetlinkError(errno.EINVAL, "IFLA_VF_VLAN_INFO too short")
                elif len(value) < KERNEL_VF_SIZES.get(vf_kind, 0):
                    raise NetlinkError(errno.EINVAL, f"IFLA_VF attribute {vf_kind} too short")


def message(attrs, index=0, flags=0):
    """A real RTM_NEWLINK as pyroute2 would hand it over from the kernel."""
    msg = ifinfmsg()
    msg["index"] = index
    msg["flags"] = flags
    msg["attrs"] = attrs
    msg.encode()
    decoded = ifinfmsg(msg.data)
    decoded.decode()
    return decoded


class FakeRtnl:
    """Records every call; models VF state for the PF and links by name.

    It has no ``link_lookup``: the backend names the link in each request, as
    the kernel accepts, so a lookup before a request would fail here."""

    def __init__(self):
        self.calls = []
        self.links = {"enp1s0f0": PF_INDEX, "enp1s0f0v3": 12}
        self.mtu = {12: 1500}
        self.address = {12: "02:00:00:00:00:0c"}  # the VF netdev's own MAC
        self.reset_address = {12: "02:00:00:00:00:0c"}  # what the VF got at its last reset
        self.vf_of_netdev = {12: 3}
        self.resets_on_link_down = True
        self.flags = {12: 0}
        self.addresses = {12: []}
        self.report_trust = True
        self.fail_on = {}  # NLA name (or "mtu") -> errno
        self.vfs = {
            n: {
                "IFLA_VF_MAC": {"mac": "00:00:00:00:00:00"},
                "IFLA_VF_VLAN": {"vlan": 0, "qos": 0},
                "IFLA_VF_VLAN_LIST": vlan_entry(0, 0),
                "IFLA_VF_SPOOFCHK": {"spoofchk": 1},
                "IFLA_VF_TRUST": {"trust": 0},
                "IFLA_VF_LINK_STATE": {"link_state": 0},
                "IFLA_VF_RATE": {"min_tx_rate": 0, "max_tx_rate": 0},
            }
            for n in range(4)
        }
        # IFLA_VF_STATS per VF: the kernel sends them for every VF, zeros when the
        # driver has no ndo_get_vf_stats; None: a kernel that sends none.
        self.stats = {n: dict.fromkeys(STATS_ATTRS, 0) for n in range(4)}
        self.closed = False

    def close(self):
        self.closed = True

    def link(self, command, **kwargs):
        self.calls.append((command, copy.deepcopy(kwargs)))
        if command == "get" and kwargs.get("ext_mask") == 1:
            assert self._index(kwargs) == PF_INDEX  # VF settings are read from the PF
            return [self._pf_message()]
        if command == "get":
            index = self._index(kwargs)
            attrs = [("IFLA_MTU", self.mtu[index]), ("IFLA_ADDRESS", self.address[index])]
            return [message(attrs, index, self.flags[index])]
        if command == "set" and "vf" in kwargs:
            return self._set_vf(kwargs)
        if command == "set" and "state" in kwargs:
            return self._set_state(self._index(kwargs), kwargs["state"])
        if command == "set" and "address" in kwargs:
            return self._set_address(self._index(kwargs), kwargs["address"])
        if command == "set" and "mtu" in kwargs:
            if "mtu" in self.fail_on:
                raise NetlinkError(self.fail_on["mtu"])
            index = self._index(kwargs)
            changed = self.mtu.get(index) != kwargs["mtu"]
            self.mtu[index] = kwargs["mtu"]
            if changed and index in self.vf_of_netdev and not self.flags[index] & 1:
                self._reset_vf(index)  # igbvf_change_mtu on a down VF resets it
            return []
        raise AssertionError(f"unexpected call {command} {kwargs}")

    def _index(self, kwargs):
        """The link a request names, by index or (as the kernel looks it up) by name."""
        index = kwargs["index"] if "index" in kwargs else self.links.get(kwargs["ifname"])
        if index is None:
            raise NetlinkError(errno.ENODEV)
        return index

    def _set_state(self, index, state):
        if state == "up":
            self.flags[index] |= 1
        else:
            self.flags[index] &= ~1
            if self.resets_on_link_down:  # igbvf_down resets the VF
                self._reset_vf(index)
        return []

    def _reset_vf(self, index):
        """igbvf's reset: take the admin MAC if one is set, then register the netdev's MAC."""
        vf = self.vfs[self.vf_of_netdev[index]]
        admin = vf["IFLA_VF_MAC"]["mac"]
        if admin == "00:00:00:00:00:00" or vf["IFLA_VF_TRUST"]["trust"]:
            vf["IFLA_VF_MAC"] = {"mac": self.address[index]}  # accepted: the PF reports it
        else:
            self.address[index] = self.reset_address[index] = admin

    def _set_address(self, index, mac):
        vf = self.vfs[self.vf_of_netdev[index]]
        admin_set = vf["IFLA_VF_MAC"]["mac"] != "00:00:00:00:00:00"
        # igb refuses an untrusted VF's request; igbvf then falls back to its reset address.
        if admin_set and not vf["IFLA_VF_TRUST"]["trust"] and mac != self.reset_address[index]:
            raise NetlinkError(errno.EADDRNOTAVAIL)
        self.address[index] = mac
        return []

    def get_links(self):
        return [
            message([("IFLA_IFNAME", name)], index, self.flags.get(index, 0))
            for name, index in self.links.items()
        ]

    def get_addr(self):
        return [addr for addrs in self.addresses.values() for addr in addrs]

    def _set_vf(self, kwargs):
        assert self._index(kwargs) == PF_INDEX  # VF settings go through the PF
        request = link_message("set", copy.deepcopy(kwargs))
        (nlas,) = [value for name, value in request["attrs"] if name == "IFLA_VFINFO_LIST"]
        (info,) = copy.deepcopy(nlas["attrs"])
        request.encode()
        kernel_checks_vf_lengths(request.data)
        for name, value in sorted(info[1]["attrs"], key=lambda a: KERNEL_ORDER.index(a[0])):
            if name in self.fail_on:  # rtnetlink stops at the first refusal
                raise NetlinkError(self.fail_on[name])
            if name == "IFLA_VF_VLAN_LIST":
                (entry,) = value["attrs"]
                vf = self.vfs[entry[1]["vf"]]
                vf["IFLA_VF_VLAN"] = {"vlan": entry[1]["vlan"], "qos": entry[1]["qos"]}
                vf[name] = vlan_entry(entry[1]["vlan"], entry[1]["qos"], entry[1]["proto"])
                continue
            vf = self.vfs[value.pop("vf")]
            if name == "IFLA_VF_VLAN":
                vf[name] = value
                vf["IFLA_VF_VLAN_LIST"] = vlan_entry(value["vlan"], value["qos"])
            else:
                vf[name] = value
        return []

    def _pf_message(self):
        infos = []
        for n, vf in self.vfs.items():
            attrs = [
                (name, {"vf": n, **value})
                if name != "IFLA_VF_VLAN_LIST"
                else (name, {"attrs": [("IFLA_VF_VLAN_INFO", {"vf": n, **value})]})
                for name, value in vf.items()
                if self.report_trust or name != "IFLA_VF_TRUST"
            ]
            if self.stats is not None:
                counters = [(name, value) for name, value in self.stats[n].items()]
                attrs.append(("IFLA_VF_STATS", {"attrs": counters}))
            infos.append(("IFLA_VF_INFO", {"attrs": attrs}))
        return message(
            [("IFLA_IFNAME", "enp1s0f0"), ("IFLA_VFINFO_LIST", {"attrs": infos})], PF_INDEX
        )


# The order in which rtnetlink's do_setvfinfo applies the attributes of one request.
KERNEL_ORDER = (
    "IFLA_VF_MAC",
    "IFLA_VF_VLAN",
    "IFLA_VF_VLAN_LIST",
    "IFLA_VF_RATE",
    "IFLA_VF_SPOOFCHK",
    "IFLA_VF_LINK_STATE",
    "IFLA_VF_TRUST",
)


# include/uapi/linux/if_link.h, the IFLA_VF_STATS_* a 6.1 kernel sends (PAD aside).
STATS_ATTRS = tuple(
    f"IFLA_VF_STATS_{name}"
    for name in ("RX_PACKETS", "TX_PACKETS", "RX_BYTES", "TX_BYTES", "BROADCAST", "MULTICAST",
                 "RX_DROPPED", "TX_DROPPED")
)  # fmt: skip


def vlan_entry(vlan, qos, proto=0x8100):
    return {"vlan": vlan, "qos": qos, "proto": proto}


@pytest.fixture
def fake():
    return FakeRtnl()


@pytest.fixture
def opened():
    return []


@pytest.fixture
def backend(fake, opened):
    def open_fake():
        opened.append(fake)
        return fake

    return KernelBackend(iproute_factory=open_fake)


def docker_sets_mac(fake, mac):
    """What libnetwork does inside the container after Join: set the endpoint's MAC."""
    fake.link("set", index=12, address=mac)


def link_state_sets(fake):
    return [kw for command, kw in fake.calls if command == "set" and "state" in kw]


def vf_attribute_sets(fake):
    return [kwargs for command, kwargs in fake.calls if command == "set" and "vf" in kwargs]


def vf_sets(fake):
    return [kwargs for command, kwargs in fake.calls if command == "set"]


def test_read_vf_parses_the_pf_report_and_the_netdev_mtu(backend, fake):
    fake.vfs[3].update(
        {
            "IFLA_VF_MAC": {"mac": "02:11:22:33:44:55"},
            "IFLA_VF_VLAN": {"vlan": 100, "qos": 5},
            "IFLA_VF_VLAN_LIST": vlan_entry(100, 5, 0x88A8),
            "IFLA_VF_SPOOFCHK": {"spoofchk": 0},
            "IFLA_VF_TRUST": {"trust": 1},
            "IFLA_VF_LINK_STATE": {"link_state": 2},
            "IFLA_VF_RATE": {"min_tx_rate": 10, "max_tx_rate": 1000},
        }
    )
    fake.mtu[12] = 9000
    assert backend.read_vf(VF3) == VfSettings(
        mac="02:11:22:33:44:55",
        vlan=100,
        qos=5,
        proto="802.1ad",
        spoofchk=False,
        trust=True,
        link_state="disable",
        min_tx_rate=10,
        max_tx_rate=1000,
        mtu=9000,
    )
    assert ("get", {"ifname": VF3.pf, "ext_mask": 1}) in fake.calls


def test_read_vf_reports_unreported_trust_as_none(backend, fake):
    fake.vfs[3]["IFLA_VF_TRUST"] = {"trust": 0xFFFFFFFF}
    assert backend.read_vf(VF3).trust is None
    fake.report_trust = False
    assert backend.read_vf(VF3).trust is None


def test_read_vf_of_a_vf_the_pf_does_not_report(backend):
    missing = VfInfo("enp1s0f0", 9, "0000:3b:03.1", None, "iavf")
    with pytest.raises(DeviceError, match="read VF 9 of enp1s0f0: enp1s0f0 reports no VF 9"):
        backend.read_vf(missing)


def test_netdev_address_is_the_vf_netdevs_own_mac(backend, fake):
    assert backend.netdev_address(VF3) == "02:00:00:00:00:0c"
    assert fake.calls == [("get", {"ifname": "enp1s0f0v3"})]  # by name: one round trip
    assert backend.netdev_address(VfInfo("enp1s0f0", 3, "0000:3b:02.3", None, "iavf")) is None
    gone = VfInfo("enp1s0f0", 5, "0000:3b:02.5", "enp1s0f0v5", "iavf")
    assert backend.netdev_address(gone) is None


def test_read_vf_without_netdev_has_no_mtu(backend):
    assert backend.read_vf(VfInfo("enp1s0f0", 3, "0000:3b:02.3", None, "vfio-pci")).mtu is None


@pytest.mark.parametrize(
    ("settings", "vf_attrs"),
    [
        (VfSettings(vlan=100, qos=0, proto="802.1Q"), {"vlan": {"vlan": 100, "qos": 0}}),
        (
            VfSettings(vlan=100, qos=3, proto="802.1ad"),
            {"vlan": [{"vlan": 100, "qos": 3, "proto": 0x88A8}]},
        ),
        (VfSettings(mac="02:AA:bb:cc:dd:ee"), {"mac": "02:aa:bb:cc:dd:ee"}),
        (
            VfSettings(min_tx_rate=10, max_tx_rate=500),
            {"rate": {"min_tx_rate": 10, "max_tx_rate": 500}},
        ),
        (VfSettings(spoofchk=False), {"spoofchk": 0}),
        (VfSettings(trust=True), {"trust": 1}),
        (VfSettings(link_state="auto"), {"link_state": 0}),
        (VfSettings(link_state="enable"), {"link_state": 1}),
        (VfSettings(link_state="disable"), {"link_state": 2}),
    ],
)
def test_each_setting_becomes_its_vf_attribute_through_the_pf(backend, fake, settings, vf_attrs):
    backend.set_vf(VF3, settings)
    assert vf_attribute_sets(fake) == [{"ifname": VF3.pf, "vf": {"vf": 3, **vf_attrs}}]


def test_the_vf_settings_go_in_one_request(backend, fake):
    """Trust is not among them: program_vf sends it after the rest, see the test below."""
    backend.set_vf(
        VF3,
        VfSettings(
            mac="02:00:00:00:00:03",
            vlan=100,
            qos=2,
            proto="802.1Q",
            spoofchk=False,
            link_state="enable",
            min_tx_rate=0,
            max_tx_rate=100,
        ),
    )
    assert len(vf_attribute_sets(fake)) == 1
    read = backend.read_vf(VF3)
    assert (read.mac, read.vlan, read.qos, read.spoofchk) == ("02:00:00:00:00:03", 100, 2, False)
    assert (read.link_state, read.max_tx_rate) == ("enable", 100)


def test_vlan_list_entries_have_the_kernels_struct_size(backend, fake):
    """pyroute2 alone encodes IFLA_VF_VLAN_INFO as 14 bytes, which the kernel refuses."""
    backend.set_vf(VF3, VfSettings(vlan=100, qos=0, proto="802.1ad"))  # else EINVAL
    assert fake.vfs[3]["IFLA_VF_VLAN_LIST"] == vlan_entry(100, 0, 0x88A8)


def test_kernel_length_check_refuses_a_short_vlan_info():
    short = struct.pack("=HH", 18, IFLA_VF_VLAN_INFO) + bytes(16)  # 14-byte payload, padded
    vlan_list = struct.pack("=HH", 4 + len(short), IFLA_VF_VLAN_LIST) + short
    info = struct.pack("=HH", 4 + len(vlan_list), IFLA_VF_INFO) + vlan_list
    vflist = struct.pack("=HH", 4 + len(info), IFLA_VFINFO_LIST) + info
    with pytest.raises(NetlinkError) as err:
        kernel_checks_vf_lengths(bytes(IFINFOMSG_OFFSET) + vflist)
    assert err.value.code == errno.EINVAL


def test_vlan_protocol_reaches_the_model_through_the_vlan_list(backend, fake):
    backend.set_vf(VF3, VfSettings(vlan=200, qos=1, proto="802.1ad"))
    assert fake.vfs[3]["IFLA_VF_VLAN_LIST"] == vlan_entry(200, 1, 0x88A8)
    read = backend.read_vf(VF3)
    assert (read.vlan, read.qos, read.proto) == (200, 1, "802.1ad")


def test_mtu_is_set_on_the_vf_netdev_not_the_pf(backend, fake):
    backend.set_mtu(VF3, 9000)
    assert vf_sets(fake) == [{"ifname": VF3.netdev, "mtu": 9000}]


def test_netlink_refusal_names_the_vf_and_the_errno(backend, fake):
    fake.fail_on["IFLA_VF_VLAN"] = errno.EOPNOTSUPP
    with pytest.raises(VfRefused) as err:
        backend.set_vf(VF3, VfSettings(vlan=100, qos=0, proto="802.1Q"))
    assert err.value.why == "Operation not supported"
    assert err.value.message == "set VF 3 of enp1s0f0: Operation not supported"


def test_a_refusal_in_a_request_stops_the_later_settings_as_the_kernel_does(backend, fake):
    fake.fail_on["IFLA_VF_LINK_STATE"] = errno.EOPNOTSUPP
    with pytest.raises(VfRefused):
        backend.set_vf(VF3, VfSettings(mac="02:00:00:00:00:03", link_state="enable", trust=True))
    read = backend.read_vf(VF3)
    assert (read.mac, read.link_state, read.trust) == ("02:00:00:00:00:03", "auto", False)


def test_missing_pf_is_reported_as_no_such_device(backend, fake):
    del fake.links["enp1s0f0"]
    with pytest.raises(VfRefused, match="set VF 3 of enp1s0f0: No such device"):
        backend.set_vf(VF3, VfSettings(trust=True))


def test_mtu_failure_names_the_netdev(backend, fake):
    fake.fail_on["mtu"] = errno.EINVAL
    with pytest.raises(DeviceError) as err:
        backend.set_mtu(VF3, 9000)
    assert err.value.message == "set VF 3 of enp1s0f0 mtu to 9000: enp1s0f0v3: Invalid argument"


@pytest.mark.parametrize(
    "call",
    [
        lambda b: b.set_vf(VF3, VfSettings(vlan=4095, qos=0, proto="802.1Q")),
        lambda b: b.set_vf(VF3, VfSettings(vlan=1, qos=0, proto="802.1x")),
        lambda b: b.set_vf(VF3, VfSettings(mac="01:00:5e:00:00:01")),
        lambda b: b.set_vf(VF3, VfSettings(link_state="up")),
        lambda b: b.set_mtu(VF3, 20),
    ],
)
def test_bad_values_never_reach_netlink(backend, fake, call):
    with pytest.raises(InvalidRequest):
        call(backend)
    assert vf_sets(fake) == []


def test_netdev_statuses_idle_busy_absent_from_one_dump(backend, fake):
    names = ["enp1s0f0v3", "enp1s0f0v7"]
    assert backend.netdev_statuses(names) == {
        "enp1s0f0v3": NetdevStatus.IDLE,
        "enp1s0f0v7": NetdevStatus.ABSENT,
    }
    fake.flags[12] = 1  # IFF_UP, but no address yet
    assert backend.netdev_statuses(names)["enp1s0f0v3"] is NetdevStatus.IDLE
    fake.addresses[12] = [message([], 12)]
    fake.addresses[12][0]["family"] = 2
    assert backend.netdev_statuses(names)["enp1s0f0v3"] is NetdevStatus.BUSY
    assert [c for c in fake.calls if c[0] == "get"] == []  # dumps only, no query per netdev


def test_one_netlink_socket_per_thread_is_kept_across_calls(backend, fake, opened):
    backend.read_vf(VF3)
    backend.set_vf(VF3, VfSettings(vlan=100, qos=0, proto="802.1Q"))
    backend.set_mtu(VF3, 9000)
    backend.netdev_statuses(["enp1s0f0v3"])
    assert opened == [fake]
    assert not fake.closed


def test_program_then_restore_sends_exact_attributes_and_returns_to_the_original(backend, fake):
    before = copy.deepcopy(fake.vfs[3])
    desired = VfSettings(mac="02:00:00:00:00:03", vlan=100, spoofchk=False, mtu=9000)
    original = program_vf(backend, VF3, desired)
    assert vf_sets(fake) == [
        {"ifname": VF3.netdev, "mtu": 9000},
        {
            "ifname": VF3.pf,
            "vf": {
                "vf": 3,
                "mac": "02:00:00:00:00:03",
                "vlan": {"vlan": 100, "qos": 0},
                "spoofchk": 0,
            },
        },
        # the netdev takes the admin MAC (igbvf resets when down)
        {"ifname": VF3.netdev, "state": "up"},
        {"ifname": VF3.netdev, "state": "down"},
    ]
    assert original == VfSettings(
        mac="00:00:00:00:00:00", vlan=0, qos=0, proto="802.1Q", spoofchk=True, mtu=1500
    )
    fake.calls.clear()
    restore_vf(backend, VF3, original)
    assert vf_sets(fake) == [
        {"ifname": VF3.netdev, "mtu": 1500},
        {
            "ifname": VF3.pf,
            "vf": {
                "vf": 3,
                "mac": "00:00:00:00:00:00",
                "vlan": {"vlan": 0, "qos": 0},
                "spoofchk": 1,
            },
        },
    ]
    assert fake.vfs[3] == before
    assert fake.mtu[12] == 1500


def test_each_thread_has_its_own_socket_and_a_broken_one_is_replaced():
    made = []

    class Socket:
        closed = False

        def close(self):
            self.closed = True

    def factory():
        made.append(Socket())
        return made[-1]

    sockets = netlink.SocketPerThread(factory)
    with sockets() as first:
        pass
    other = []

    def in_thread():
        with sockets() as ipr:
            other.append(ipr)

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    assert other[0] is not first
    with pytest.raises(OSError), sockets():
        raise OSError(errno.ENOBUFS, "No buffer space available")
    assert first.closed
    with sockets() as again:
        assert again is not first
    with pytest.raises(NetlinkError), sockets():
        raise NetlinkError(errno.EINVAL)
    with sockets() as kept:
        assert kept is again and not again.closed


def test_docker_can_set_the_admin_mac_on_the_vf_netdev_again_and_again(backend, fake):
    """Bug 4: without the link cycle, igb refused Docker's MAC change on every (reused) VF."""
    for n in range(1, 5):
        mac = f"02:00:00:00:00:0{n}"
        original = program_vf(backend, VF3, VfSettings(mac=mac, vlan=100))
        assert fake.address[12] == mac
        docker_sets_mac(fake, mac)
        restore_vf(backend, VF3, original)
    assert fake.vfs[3]["IFLA_VF_MAC"] == {"mac": "00:00:00:00:00:00"}


def test_admin_mac_adoption_keeps_an_up_vf_up_and_skips_a_netdev_that_has_it(backend, fake):
    fake.flags[12] = 1
    backend.set_vf(VF3, VfSettings(mac="02:00:00:00:00:07"))
    assert link_state_sets(fake) == [
        {"ifname": VF3.netdev, "state": "down"},
        {"ifname": VF3.netdev, "state": "up"},
    ]
    assert fake.flags[12] == 1
    fake.calls.clear()
    backend.set_vf(VF3, VfSettings(mac="02:00:00:00:00:07"))
    backend.set_vf(VF3, VfSettings(mac="00:00:00:00:00:00"))
    assert link_state_sets(fake) == []


def test_a_vf_netdev_that_keeps_its_old_mac_fails_the_mac_and_is_undone(backend, fake):
    fake.resets_on_link_down = False
    with pytest.raises(DeviceError) as err:
        program_vf(backend, VF3, VfSettings(mac="02:00:00:00:00:08", vlan=5))
    assert err.value.message.startswith(
        "set VF 3 of enp1s0f0 mac to 02:00:00:00:00:08: "
        "enp1s0f0v3 does not take it: Cannot assign requested address"
    )
    assert fake.vfs[3]["IFLA_VF_MAC"] == {"mac": "00:00:00:00:00:00"}
    assert fake.vfs[3]["IFLA_VF_VLAN"] == {"vlan": 0, "qos": 0}


def test_an_undo_after_a_refusal_leaves_no_admin_mac_even_when_the_mtu_undo_resets_the_vf(
    backend, fake
):
    """Seen on igb: undoing the MTU last reset the VF after its admin MAC was cleared, and
    the VF registered its own MAC, which the PF then reported instead of no admin MAC."""
    fake.fail_on["IFLA_VF_LINK_STATE"] = errno.EOPNOTSUPP
    before = backend.read_vf(VF3)
    desired = VfSettings(mac="02:00:00:00:00:03", link_state="enable", mtu=9000)
    with pytest.raises(DeviceError, match="link_state to enable: Operation not supported"):
        program_vf(backend, VF3, desired)
    assert backend.read_vf(VF3) == before
    assert before.mac == "00:00:00:00:00:00"


def test_trust_set_after_the_mac_keeps_the_admin_mac_through_the_vfs_reset(backend, fake):
    """A trusted VF that resets registers its old MAC over the admin MAC (igb allows it)."""
    desired = VfSettings(mac="02:00:00:00:00:03", trust=True, mtu=9000)
    program_vf(backend, VF3, desired)
    assert backend.read_vf(VF3).mac == "02:00:00:00:00:03"


def test_vf_stats_are_read_for_every_vf_from_one_request_to_the_pf(backend, fake):
    for n in range(4):
        fake.stats[n] = {name: 100 * n + i for i, name in enumerate(STATS_ATTRS)}

    stats = backend.vf_stats("enp1s0f0")

    assert fake.calls == [("get", {"ifname": "enp1s0f0", "ext_mask": 1})]
    assert sorted(stats) == [0, 1, 2, 3]
    assert stats[2] == VfStats(
        rx_packets=200, tx_packets=201, rx_bytes=202, tx_bytes=203,
        broadcast=204, multicast=205, rx_dropped=206, tx_dropped=207,
    )  # fmt: skip


def test_vf_stats_of_a_driver_that_fills_none_are_not_reported(backend, fake):
    """igb has no ndo_get_vf_stats: the kernel sends every counter of every VF as 0."""
    assert backend.vf_stats("enp1s0f0") == {}


def test_one_vf_with_traffic_makes_the_pf_report_for_all_its_vfs(backend, fake):
    fake.stats[1]["IFLA_VF_STATS_TX_PACKETS"] = 1

    stats = backend.vf_stats("enp1s0f0")

    assert stats[1].tx_packets == 1
    assert stats[0] == VfStats(**dict.fromkeys(VF_STATS_FIELDS, 0))


def test_vf_stats_without_dropped_counts_leave_them_unreported(backend, fake):
    """Kernels before 4.20 send no IFLA_VF_STATS_RX_DROPPED / TX_DROPPED."""
    for counters in fake.stats.values():
        del counters["IFLA_VF_STATS_RX_DROPPED"], counters["IFLA_VF_STATS_TX_DROPPED"]
        counters["IFLA_VF_STATS_RX_BYTES"] = 64

    stats = backend.vf_stats("enp1s0f0")

    assert stats[0].reported() == {
        "rx_packets": 0, "tx_packets": 0, "rx_bytes": 64, "tx_bytes": 0,
        "broadcast": 0, "multicast": 0,
    }  # fmt: skip


def test_a_kernel_that_sends_no_vf_stats_reports_none(backend, fake):
    fake.stats = None
    assert backend.vf_stats("enp1s0f0") == {}


def test_vf_stats_of_a_missing_pf_name_the_pf_and_the_errno(backend):
    with pytest.raises(DeviceError) as failed:
        backend.vf_stats("enp9s0")
    assert failed.value.message == "read VF traffic of enp9s0: No such device"
