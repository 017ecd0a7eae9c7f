"""The rtnetlink socket (plugin.nic.rtnl) against a scripted kernel, and read-only on the real one.

The scripted kernel is the far end of a SOCK_SEQPACKET pair: datagrams keep their
boundaries and MSG_PEEK|MSG_TRUNC reports a datagram's whole size, as on a
netlink socket. Each test reads the request the socket sent and answers it with
the messages a kernel could send, good or bad. Link changes on the real kernel
are tested in tests/integration/test_rtnl_netns.py, inside a namespace.
"""

import errno
import socket
import struct
import threading

import pytest
from pyroute2.netlink.exceptions import NetlinkDumpInterrupted, NetlinkError
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from rtnetlink_checks import (
    IFINFOMSG_OFFSET,
    IFLA_VF_VLAN_LIST,
    IFLA_VFINFO_LIST,
    VLAN_INFO_SIZE,
    attributes,
    kernel_checks_vf_lengths,
)

import plugin.nic  # noqa: F401  (registers pyroute2 without its catalogue)
from plugin.nic import netlink
from plugin.nic.base import VfSettings
from plugin.nic.rtnl import Rtnl

HEADER = struct.Struct("=IHHII")
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_NEWADDR, RTM_GETADDR = 16, 17, 18, 20, 22
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_DUMP_INTR = 1, 2, 4, 0x10
NLM_F_DUMP, NLM_F_EXCL, NLM_F_CREATE = 0x300, 0x200, 0x400
IFF_UP = 1


class Kernel:
    """The kernel's end of the pair: reads requests, sends scripted datagrams."""

    def __init__(self, sock):
        self.sock = sock

    def request(self):
        """The next request: (header fields, decoded message)."""
        data = self.sock.recv(65536)
        self.last = data  # the request's bytes, as the kernel gets them
        length, kind, flags, seq, _pid = HEADER.unpack_from(data)
        msg = (ifaddrmsg if kind == RTM_GETADDR else ifinfmsg)(data[:length])
        msg.decode()
        return {"type": kind, "flags": flags, "seq": seq}, msg

    def send(self, *messages):
        """One datagram holding ``messages`` (bytes each, already framed)."""
        self.sock.send(b"".join(messages))


def framed(kind, seq, payload=b"", flags=0):
    return HEADER.pack(HEADER.size + len(payload), kind, flags, seq, 0) + payload


def link(seq, index, name, flags=NLM_F_MULTI):
    msg = ifinfmsg()
    msg["index"] = index
    msg["attrs"] = [("IFLA_IFNAME", name), ("IFLA_MTU", 1500)]
    msg["header"]["type"] = RTM_NEWLINK
    msg["header"]["flags"] = flags
    msg["header"]["sequence_number"] = seq
    msg.encode()
    return bytes(msg.data)


def error(seq, code):
    """NLMSG_ERROR: the negative errno (0 acks), then the request's header."""
    return framed(NLMSG_ERROR, seq, struct.pack("=i", -code) + HEADER.pack(0, 0, 0, seq, 0))


def done(seq, code=0):
    return framed(NLMSG_DONE, seq, struct.pack("=i", -code), NLM_F_MULTI)


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    theirs.settimeout(5)
    ours.settimeout(5)
    rtnl = Rtnl(ours)
    yield rtnl, Kernel(theirs)
    rtnl.close()
    theirs.close()


def answer_in_thread(kernel, script):
    """Run ``script(kernel)`` beside the call under test (the pair's buffers are finite)."""
    thread = threading.Thread(target=script, args=(kernel,))
    thread.start()
    return thread


def test_a_lookup_by_name_asks_for_one_link_and_takes_its_index(pair):
    rtnl, kernel = pair
    seen = {}

    def script(k):
        header, msg = k.request()
        seen.update(header, name=msg.get_attr("IFLA_IFNAME"))
        k.send(link(header["seq"], 42, "enp1s0f0", flags=0))

    thread = answer_in_thread(kernel, script)
    assert rtnl.link_lookup(ifname="enp1s0f0") == [42]
    thread.join()
    assert seen["type"] == RTM_GETLINK
    assert seen["flags"] == NLM_F_REQUEST  # a get asks for no ack: its one reply ends it
    assert seen["name"] == "enp1s0f0"


def test_replies_to_an_earlier_request_are_skipped(pair):
    rtnl, kernel = pair

    def script(k):
        header, _msg = k.request()
        k.send(link(header["seq"] + 1000, 7, "stale", flags=0))  # another request's
        k.send(link(header["seq"], 8, "eth0", flags=0))

    thread = answer_in_thread(kernel, script)
    found = rtnl.link_at(8)
    thread.join()
    assert (found["index"], found.get_attr("IFLA_IFNAME")) == (8, "eth0")


def test_no_such_link_is_an_empty_lookup_and_any_other_error_is_raised(pair):
    rtnl, kernel = pair

    def script(k):
        header, _msg = k.request()
        k.send(error(header["seq"], errno.ENODEV))
        header, _msg = k.request()
        k.send(error(header["seq"], errno.EPERM))

    thread = answer_in_thread(kernel, script)
    assert rtnl.link_lookup(ifname="gone0") == []
    with pytest.raises(NetlinkError) as raised:
        rtnl.link_lookup(ifname="eth0")
    thread.join()
    assert raised.value.code == errno.EPERM


def test_a_change_waits_for_the_ack_and_a_refusal_raises_its_errno(pair):
    rtnl, kernel = pair
    seen = []

    def script(k):
        header, msg = k.request()
        seen.append((header, msg["index"], msg["flags"], msg["change"], msg.get_attr("IFLA_MTU")))
        k.send(error(header["seq"], 0))
        header, _msg = k.request()
        k.send(error(header["seq"], errno.EINVAL))

    thread = answer_in_thread(kernel, script)
    assert rtnl.request("set", index=5, state="up", mtu=9000) == []
    with pytest.raises(NetlinkError) as raised:
        rtnl.request("set", index=5, mtu=1)
    thread.join()
    assert raised.value.code == errno.EINVAL
    ((header, index, flags, change, mtu),) = seen
    assert header["type"] == RTM_NEWLINK
    assert header["flags"] == NLM_F_REQUEST | NLM_F_ACK
    assert (index, flags & IFF_UP, change & IFF_UP, mtu) == (5, IFF_UP, IFF_UP, 9000)


def test_add_asks_to_create_exclusively_and_del_names_the_index(pair):
    rtnl, kernel = pair
    seen = []

    def script(k):
        for _ in range(2):
            header, msg = k.request()
            seen.append((header, msg))
            k.send(error(header["seq"], 0))

    thread = answer_in_thread(kernel, script)
    rtnl.add_bridge("sw0")
    rtnl.request("del", index=12)
    thread.join()
    (add, added), (delete, deleted) = seen
    assert add["type"] == RTM_NEWLINK
    assert add["flags"] == NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
    assert added.get_attr("IFLA_IFNAME") == "sw0"
    assert added.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_KIND") == "bridge"
    assert (delete["type"], deleted["index"]) == (RTM_DELLINK, 12)


def test_a_dump_collects_every_datagram_until_done(pair):
    rtnl, kernel = pair

    seen = []

    def script(k):
        header, _msg = k.request()
        seen.append((header["type"], header["flags"]))
        seq = header["seq"]
        k.send(link(seq, 1, "lo"), link(seq, 2, "eth0"))
        k.send(link(seq, 3, "eth1"))
        k.send(done(seq))

    thread = answer_in_thread(kernel, script)
    links = rtnl.get_links()
    thread.join()
    assert seen == [(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP)]
    assert [(x["index"], x.get_attr("IFLA_IFNAME")) for x in links] == [
        (1, "lo"),
        (2, "eth0"),
        (3, "eth1"),
    ]


def test_a_dump_the_kernel_ends_with_an_error_raises_it(pair):
    rtnl, kernel = pair

    def script(k):
        header, _msg = k.request()
        k.send(link(header["seq"], 1, "lo"), done(header["seq"], errno.EMSGSIZE))

    thread = answer_in_thread(kernel, script)
    with pytest.raises(NetlinkError) as raised:
        rtnl.get_links()
    thread.join()
    assert raised.value.code == errno.EMSGSIZE


def test_an_inconsistent_dump_is_redone_and_only_the_consistent_one_returned(pair):
    rtnl, kernel = pair

    def script(k):
        header, _msg = k.request()
        k.send(link(header["seq"], 1, "half", flags=NLM_F_MULTI | NLM_F_DUMP_INTR))
        k.send(done(header["seq"]))
        header, _msg = k.request()
        k.send(link(header["seq"], 1, "lo"), done(header["seq"]))

    thread = answer_in_thread(kernel, script)
    links = rtnl.get_links()
    thread.join()
    assert [x.get_attr("IFLA_IFNAME") for x in links] == ["lo"]


def test_a_dump_that_never_settles_is_an_error(pair):
    rtnl, kernel = pair

    def script(k):
        for _ in range(3):
            header, _msg = k.request()
            k.send(link(header["seq"], 1, "lo", flags=NLM_F_MULTI | NLM_F_DUMP_INTR))
            k.send(done(header["seq"]))

    thread = answer_in_thread(kernel, script)
    with pytest.raises(NetlinkDumpInterrupted) as raised:
        rtnl.get_links()
    thread.join()
    assert netlink.strerror(raised.value) == "dump interrupted"  # not "Unknown error -1"


def test_a_datagram_larger_than_any_usual_buffer_is_read_whole(pair):
    """A PF with many VFs answers a get with one large message; it must not be cut."""
    rtnl, kernel = pair
    names = [f"eth{n}" for n in range(3000)]  # about 130 KB in one datagram

    def script(k):
        header, _msg = k.request()
        seq = header["seq"]
        k.send(*[link(seq, n + 1, name) for n, name in enumerate(names)])
        k.send(done(seq))

    kernel.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    thread = answer_in_thread(kernel, script)
    links = rtnl.get_links()
    thread.join()
    assert [x.get_attr("IFLA_IFNAME") for x in links] == names


def test_the_address_dump_decodes_address_messages(pair):
    rtnl, kernel = pair

    def script(k):
        header, _msg = k.request()
        msg = ifaddrmsg()
        msg["family"], msg["index"], msg["prefixlen"] = socket.AF_INET, 4, 24
        msg["attrs"] = [("IFA_ADDRESS", "10.1.2.3")]
        msg["header"].update(type=RTM_NEWADDR, flags=NLM_F_MULTI, sequence_number=header["seq"])
        msg.encode()
        k.send(bytes(msg.data), done(header["seq"]))
        seen.append(header["type"])

    seen = []
    thread = answer_in_thread(kernel, script)
    (address,) = rtnl.get_addr()
    thread.join()
    assert seen == [RTM_GETADDR]
    assert (address["index"], address.get_attr("IFA_ADDRESS")) == (4, "10.1.2.3")


def address(seq, index, text):
    msg = ifaddrmsg()
    msg["family"], msg["index"], msg["prefixlen"] = socket.AF_INET, index, 24
    msg["attrs"] = [("IFA_ADDRESS", text)]
    msg["header"].update(type=RTM_NEWADDR, flags=NLM_F_MULTI, sequence_number=seq)
    msg.encode()
    return bytes(msg.data)


def test_link_brief_asks_for_one_link_by_name_and_reads_index_and_flags(pair):
    rtnl, kernel = pair
    seen = {}

    def script(k):
        header, msg = k.request()
        seen.update(header, name=msg.get_attr("IFLA_IFNAME"), mask=msg.get_attr("IFLA_EXT_MASK"))
        reply = ifinfmsg()
        reply["index"], reply["flags"] = 42, IFF_UP
        reply["attrs"] = [("IFLA_IFNAME", "enp1s0f0v3")]
        reply["header"].update(type=RTM_NEWLINK, sequence_number=header["seq"])
        reply.encode()
        k.send(bytes(reply.data))
        header, _msg = k.request()
        k.send(error(header["seq"], errno.ENODEV))

    thread = answer_in_thread(kernel, script)
    assert rtnl.link_brief("enp1s0f0v3") == (42, IFF_UP)
    with pytest.raises(NetlinkError) as raised:
        rtnl.link_brief("enp1s0f0v9")
    thread.join()
    assert raised.value.code == errno.ENODEV
    assert seen["type"] == RTM_GETLINK
    assert seen["flags"] == NLM_F_REQUEST  # one link, never a dump
    assert seen["name"] == "enp1s0f0v3"
    assert seen["mask"] == 8  # RTEXT_FILTER_SKIP_STATS: no counters wanted


def test_addresses_of_one_link_name_it_in_the_request_and_return_only_its_own(pair):
    rtnl, kernel = pair
    seen = {}

    def script(k):
        header, msg = k.request()
        seen.update(header, index=msg["index"])
        # A kernel without strict checking ignores the filter and sends every address.
        seq = header["seq"]
        k.send(address(seq, 5, "10.0.0.5"), address(seq, 6, "10.0.0.6"), done(seq))

    thread = answer_in_thread(kernel, script)
    found = rtnl.addresses(5)
    thread.join()
    assert seen["type"] == RTM_GETADDR and seen["index"] == 5
    assert [a.get_attr("IFA_ADDRESS") for a in found] == ["10.0.0.5"]


def test_the_real_kernel_filters_addresses_to_the_link_asked_about():
    """Read-only: loopback's addresses only, through strict checking, which is off again
    after (pyroute2's other requests are not built for it)."""
    with Rtnl() as rtnl:
        found = rtnl.addresses(1)
        assert found and {a["index"] for a in found} == {1}
        assert rtnl._sock.getsockopt(270, 12) == 0  # SOL_NETLINK, NETLINK_GET_STRICT_CHK
        assert rtnl.link_brief("lo").index == 1


def test_set_vf_sends_every_setting_in_one_vfinfo_list_at_the_kernels_sizes(pair):
    """The bytes of a VF request: one RTM_SETLINK naming the PF, each setting once, each
    attribute as long as the kernel's struct (pyroute2 alone makes IFLA_VF_VLAN_INFO short)."""
    rtnl, kernel = pair
    sent = []

    def script(k):
        header, msg = k.request()
        sent.append((header, msg, k.last))
        k.send(error(header["seq"], 0))
        header, _msg = k.request()
        k.send(error(header["seq"], errno.EOPNOTSUPP))

    thread = answer_in_thread(kernel, script)
    settings = VfSettings(
        mac="02:00:00:00:00:01",
        vlan=100,
        qos=2,
        proto="802.1ad",
        min_tx_rate=0,
        max_tx_rate=500,
        spoofchk=True,
        trust=False,
        link_state="disable",
        mtu=9000,  # not a VF attribute: the VF netdev's own
    )
    rtnl.set_vf("enp1s0f0", 3, settings)
    with pytest.raises(NetlinkError) as raised:
        rtnl.set_vf("enp1s0f0", 3, VfSettings(trust=True))
    thread.join()
    assert raised.value.code == errno.EOPNOTSUPP
    ((header, decoded, data),) = sent
    kernel_checks_vf_lengths(data)
    assert (header["type"], header["flags"]) == (RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK)
    assert decoded.get_attr("IFLA_IFNAME") == "enp1s0f0"
    assert decoded.get_attr("IFLA_MTU") is None
    (info,) = decoded.get_attr("IFLA_VFINFO_LIST").get_attrs("IFLA_VF_INFO")
    names = [name for name, _value in info["attrs"]]
    assert sorted(names) == sorted(set(names))  # each setting once
    assert "IFLA_VF_VLAN" not in names  # only the list carries the 802.1ad protocol
    (vlan,) = info.get_attr("IFLA_VF_VLAN_LIST").get_attrs("IFLA_VF_VLAN_INFO")
    assert (vlan["vf"], vlan["vlan"], vlan["qos"], vlan["proto"]) == (3, 100, 2, 0x88A8)
    assert info.get_attr("IFLA_VF_MAC")["mac"] == "02:00:00:00:00:01"
    assert info.get_attr("IFLA_VF_RATE")["max_tx_rate"] == 500
    assert info.get_attr("IFLA_VF_SPOOFCHK")["spoofchk"] == 1
    assert info.get_attr("IFLA_VF_TRUST")["trust"] == 0
    assert info.get_attr("IFLA_VF_LINK_STATE")["link_state"] == 2
    assert {value["vf"] for name, value in info["attrs"] if name != "IFLA_VF_VLAN_LIST"} == {3}
    (vflist,) = [v for kind, v in attributes(data[IFINFOMSG_OFFSET:]) if kind == IFLA_VFINFO_LIST]
    ((_info, vf_attrs),) = attributes(vflist)
    (vlan_list,) = [value for kind, value in attributes(vf_attrs) if kind == IFLA_VF_VLAN_LIST]
    ((_entry, vlan_info),) = attributes(vlan_list)
    assert len(vlan_info) == VLAN_INFO_SIZE


def test_an_8021q_vlan_goes_in_the_classic_attribute_every_driver_takes(pair):
    rtnl, kernel = pair
    sent = []

    def script(k):
        header, msg = k.request()
        sent.append((msg, k.last))
        k.send(error(header["seq"], 0))

    thread = answer_in_thread(kernel, script)
    rtnl.set_vf("enp1s0f0", 1, VfSettings(vlan=7, qos=0, proto="802.1Q"))
    thread.join()
    ((decoded, data),) = sent
    kernel_checks_vf_lengths(data)
    (info,) = decoded.get_attr("IFLA_VFINFO_LIST").get_attrs("IFLA_VF_INFO")
    assert [name for name, _value in info["attrs"]] == ["IFLA_VF_VLAN"]
    vlan = info.get_attr("IFLA_VF_VLAN")
    assert (vlan["vf"], vlan["vlan"], vlan["qos"]) == (1, 7, 0)


def test_each_typed_link_call_sends_the_request_it_names(pair):
    rtnl, kernel = pair
    seen = []

    def script(k):
        for _ in range(10):
            header, msg = k.request()
            seen.append((header["type"], header["flags"], msg))
            if header["type"] == RTM_GETLINK:
                k.send(link(header["seq"], 9, msg.get_attr("IFLA_IFNAME") or "eth9", flags=0))
            else:
                k.send(error(header["seq"], 0))

    thread = answer_in_thread(kernel, script)
    assert rtnl.vf_info("enp1s0f0")["index"] == 9
    assert rtnl.link("eth1").get_attr("IFLA_IFNAME") == "eth1"
    assert rtnl.link_at(9)["index"] == 9
    rtnl.set_mtu("eth1", 9000)
    rtnl.set_address("eth1", "02:11:22:33:44:55")
    rtnl.set_up("eth1")
    rtnl.set_down("eth1")
    rtnl.set_master("eth1", 4)
    rtnl.add_veth("vfa", "vfb")
    rtnl.delete("vfa")
    thread.join()
    get, change = NLM_F_REQUEST, NLM_F_REQUEST | NLM_F_ACK
    add = change | NLM_F_CREATE | NLM_F_EXCL
    (vf_info, by_name, by_index, mtu, address, up, down, master, veth, delete) = seen
    assert vf_info[:2] == (RTM_GETLINK, get)
    assert vf_info[2].get_attr("IFLA_IFNAME") == "enp1s0f0"
    assert vf_info[2].get_attr("IFLA_EXT_MASK") == 1  # RTEXT_FILTER_VF: the VF list
    assert by_name[:2] == (RTM_GETLINK, get) and by_name[2].get_attr("IFLA_EXT_MASK") is None
    assert by_index[2]["index"] == 9 and by_index[2].get_attr("IFLA_IFNAME") is None
    for kind, flags, msg in (mtu, address, up, down, master):
        assert (kind, flags, msg.get_attr("IFLA_IFNAME")) == (RTM_NEWLINK, change, "eth1")
    assert mtu[2].get_attr("IFLA_MTU") == 9000
    assert address[2].get_attr("IFLA_ADDRESS") == "02:11:22:33:44:55"
    assert (up[2]["flags"] & IFF_UP, up[2]["change"] & IFF_UP) == (IFF_UP, IFF_UP)
    assert (down[2]["flags"] & IFF_UP, down[2]["change"] & IFF_UP) == (0, IFF_UP)
    assert master[2].get_attr("IFLA_MASTER") == 4
    assert veth[:2] == (RTM_NEWLINK, add) and veth[2].get_attr("IFLA_IFNAME") == "vfa"
    info = veth[2].get_attr("IFLA_LINKINFO")
    assert info.get_attr("IFLA_INFO_KIND") == "veth"
    peer = info.get_attr("IFLA_INFO_DATA").get_attr("VETH_INFO_PEER")
    assert peer.get_attr("IFLA_IFNAME") == "vfb"
    assert (delete[0], delete[1], delete[2].get_attr("IFLA_IFNAME")) == (RTM_DELLINK, change, "vfa")


def test_an_unknown_command_is_refused_before_anything_is_sent(pair):
    rtnl, kernel = pair
    with pytest.raises(ValueError, match="unknown command 'replace'"):
        rtnl.request("replace", index=1)
    kernel.sock.setblocking(False)
    with pytest.raises(BlockingIOError):
        kernel.sock.recv(100)


def test_the_real_kernel_answers_for_this_namespace():
    """Read-only: loopback is index 1 in every namespace; a missing link is ENODEV."""
    with Rtnl() as rtnl:
        assert rtnl.link_lookup(ifname="lo") == [1]
        assert rtnl.link_lookup(ifname="no-such-link") == []
        names = [x.get_attr("IFLA_IFNAME") for x in rtnl.get_links()]
        assert "lo" in names
        with pytest.raises(NetlinkError) as raised:
            rtnl.link_at(0x7FFFFFF0)
        assert raised.value.code == errno.ENODEV
