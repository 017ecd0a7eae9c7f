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

import plugin.nic  # noqa: F401  (registers pyroute2 without its catalogue)
from plugin.nic import netlink
from plugin.nic.pyroute2_fixes import pad_vlan_info_to_kernel_size
from plugin.nic.rtnl import Rtnl, link_message

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
    (found,) = rtnl.link("get", index=8)
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
    assert rtnl.link("set", index=5, state="up", mtu=9000) == []
    with pytest.raises(NetlinkError) as raised:
        rtnl.link("set", index=5, mtu=1)
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
    rtnl.link("add", ifname="sw0", kind="bridge")
    rtnl.link("del", index=12)
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


def test_a_vf_request_carries_every_setting_in_one_vfinfo_list():
    pad_vlan_info_to_kernel_size()
    msg = link_message(
        "set",
        {
            "index": 7,
            "vf": {
                "vf": 3,
                "mac": "02:00:00:00:00:01",
                "vlan": [{"vlan": 100, "qos": 2, "proto": 0x88A8}],
                "rate": {"min_tx_rate": 0, "max_tx_rate": 500},
                "spoofchk": 1,
                "trust": 0,
                "link_state": 2,
            },
        },
    )
    msg.encode()
    decoded = ifinfmsg(msg.data)
    decoded.decode()
    (info,) = decoded.get_attr("IFLA_VFINFO_LIST").get_attrs("IFLA_VF_INFO")
    (vlan,) = info.get_attr("IFLA_VF_VLAN_LIST").get_attrs("IFLA_VF_VLAN_INFO")
    assert decoded["index"] == 7
    assert info.get_attr("IFLA_VF_MAC")["mac"] == "02:00:00:00:00:01"
    assert (vlan["vf"], vlan["vlan"], vlan["qos"], vlan["proto"]) == (3, 100, 2, 0x88A8)
    assert info.get_attr("IFLA_VF_RATE")["max_tx_rate"] == 500
    assert info.get_attr("IFLA_VF_SPOOFCHK")["spoofchk"] == 1
    assert info.get_attr("IFLA_VF_TRUST")["trust"] == 0
    assert info.get_attr("IFLA_VF_LINK_STATE")["link_state"] == 2


def test_an_unknown_command_is_refused_before_anything_is_sent(pair):
    rtnl, kernel = pair
    with pytest.raises(ValueError, match="unknown command 'replace'"):
        rtnl.link("replace", index=1)
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
            rtnl.link("get", index=0x7FFFFFF0)
        assert raised.value.code == errno.ENODEV
