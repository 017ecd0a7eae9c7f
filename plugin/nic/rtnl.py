"""An rtnetlink socket for the NIC layer: typed link calls, pyroute2's messages underneath.

The NIC layer asks a handful of things of rtnetlink, and ``Rtnl`` has one typed
method for each: a link by name (``link``) or index (``link_at``), a PF with its
VF list (``vf_info``), a VF's settings through its PF (``set_vf``), a link's MTU,
MAC, up/down state and master (``set_mtu``, ``set_address``, ``set_up``,
``set_down``, ``set_master``), a veth pair or a bridge to add (``add_veth``,
``add_bridge``), a link to delete (``delete``). It asks about one VF netdev at
a time (``link_brief``: its index and flags; ``addresses``: the addresses of
that one link), and has two whole-namespace dumps (``get_links``,
``get_addr``) that only the simulated NIC's setup and tests use: a request
never dumps the host, whose cost grows with every veth on it.

pyroute2's ``IPRoute`` (0.9) runs every call through an asyncio event loop,
and importing it brings in its probe, namespace and test-support modules,
``ssl`` among them: about 5 MB of the plugin's resident memory, for which
issue 9 has no room.

pyroute2 still does the netlink work that is hard to get right, here and
nowhere else in the plugin: its request filters turn keyword arguments into
attributes (``vf={...}`` into IFLA_VFINFO_LIST, ``state="up"`` into flags,
``kind``/``peer`` into IFLA_LINKINFO), its ``ifinfmsg``/``ifaddrmsg`` classes
encode and decode, and failures are its ``NetlinkError``. ``request`` is the
general form the typed calls are built on (``IPRoute.link``'s arguments); the
VF settings' kernel codes (``KERNEL_VLAN_PROTOCOLS``, ``KERNEL_LINK_STATES``)
and the request that carries them (``vf_request``) are here too, so callers
speak ``VfSettings``. What is left is the socket: send one request, read its
replies by sequence number.
"""

from __future__ import annotations

import errno
import itertools
import socket
import struct
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import NamedTuple

from pyroute2.netlink import (
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_DUMP_INTR,
    NLM_F_EXCL,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
)
from pyroute2.netlink.exceptions import NetlinkDumpInterrupted, NetlinkError
from pyroute2.netlink.rtnl import (
    RTM_DELLINK,
    RTM_GETADDR,
    RTM_GETLINK,
    RTM_NEWADDR,
    RTM_NEWLINK,
)
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.requests.link import LinkFieldFilter, LinkIPRouteFilter
from pyroute2.requests.main import RequestProcessor

from plugin.nic.base import VfLinkState, VfSettings, VlanProto
from plugin.nic.pyroute2_fixes import pad_vlan_info_to_kernel_size

HEADER = struct.Struct("=IHHII")  # struct nlmsghdr: len, type, flags, seq, pid
IFINFO = struct.Struct("=BxHiII")  # struct ifinfomsg: family, type, index, flags, change
ATTR = struct.Struct("=HH")  # struct nlattr: len, type
IFLA_IFNAME, IFLA_EXT_MASK = 3, 29
RTEXT_FILTER_VF = 1  # a link's reply lists its VFs (IFLA_VFINFO_LIST)
RTEXT_FILTER_SKIP_STATS = 1 << 3  # a link's counters are not wanted: less to build and send
SOL_NETLINK, NETLINK_GET_STRICT_CHK = 270, 12
ERROR_CODE = struct.Struct("=i")  # struct nlmsgerr starts with the negative errno
DUMP_ATTEMPTS = 3  # a dump the kernel marks inconsistent (links changed meanwhile) is redone

# command -> (message type, flags), as iproute2 sends them. A "get" is answered by
# one message, so it asks for no ack; the others end with the kernel's ack.
LINK_COMMANDS = {
    "get": (RTM_GETLINK, NLM_F_REQUEST),
    "set": (RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK),
    "add": (RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL),
    "del": (RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK),
}
REPLY_CLASSES = {RTM_NEWLINK: ifinfmsg, RTM_NEWADDR: ifaddrmsg}

# The kernel's codes for a VF's VLAN protocol (ETH_P_8021Q, ETH_P_8021AD) and
# link state (IFLA_VF_LINK_STATE_AUTO, _ENABLE, _DISABLE), and the reverse.
KERNEL_VLAN_PROTOCOLS = {VlanProto.DOT1Q: 0x8100, VlanProto.DOT1AD: 0x88A8}
KERNEL_LINK_STATES = {VfLinkState.AUTO: 0, VfLinkState.ENABLE: 1, VfLinkState.DISABLE: 2}
VLAN_PROTOCOL_OF_KERNEL_CODE = {code: proto for proto, code in KERNEL_VLAN_PROTOCOLS.items()}
LINK_STATE_OF_KERNEL_CODE = {code: state for state, code in KERNEL_LINK_STATES.items()}

pad_vlan_info_to_kernel_size()  # before any VF request is encoded (see pyroute2_fixes)


class LinkBrief(NamedTuple):
    """What the fixed header of a link's RTM_NEWLINK says: its index and IFF_* flags."""

    index: int
    flags: int


class Rtnl:
    """One NETLINK_ROUTE socket of this network namespace; not shared between threads."""

    def __init__(self, sock: socket.socket | None = None) -> None:
        """``sock``: an open socket that speaks netlink (tests pass a stand-in)."""
        if sock is None:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
            sock.bind((0, 0))
        self._sock = sock
        self._sequence = itertools.count(1)
        self._peek = bytearray(HEADER.size)

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    def request(self, command: str, **arguments: object) -> list[ifinfmsg]:
        """A link request as ``IPRoute.link`` takes it: "get", "set", "add" or "del".

        Returns the link for "get", nothing for the others. A link that does not
        exist is NetlinkError(ENODEV), as the kernel answers it. The typed calls
        below are built on this; the NIC layer uses them, not this.
        """
        if command not in LINK_COMMANDS:
            raise ValueError(f"rtnl link: unknown command {command!r}")
        msg_type, flags = LINK_COMMANDS[command]
        return self._exchange(link_message(command, arguments), msg_type, flags)

    def link(self, name: str) -> ifinfmsg:
        """The RTM_NEWLINK of link ``name`` (the kernel looks it up by name: one
        round trip); NetlinkError(ENODEV) if absent."""
        return self.request("get", ifname=name)[0]

    def link_at(self, index: int) -> ifinfmsg:
        """The RTM_NEWLINK of the link with ``index``; NetlinkError(ENODEV) if absent."""
        return self.request("get", index=index)[0]

    def vf_info(self, pf: str) -> ifinfmsg:
        """The RTM_NEWLINK of PF ``pf`` with its VF list (IFLA_VFINFO_LIST): one
        IFLA_VF_INFO per VF, its settings and IFLA_VF_STATS."""
        return self.request("get", ifname=pf, ext_mask=RTEXT_FILTER_VF)[0]

    def set_vf(self, pf: str, index: int, settings: VfSettings) -> None:
        """Every non-None VF field of ``settings`` for VF ``index``, in one RTM_SETLINK
        on ``pf`` (``vf_request``); the kernel applies them in its own order and
        stops at the first it refuses."""
        self._exchange(vf_request(pf, index, settings), *LINK_COMMANDS["set"])

    def set_mtu(self, name: str, mtu: int) -> None:
        self.request("set", ifname=name, mtu=mtu)

    def set_address(self, name: str, mac: str) -> None:
        self.request("set", ifname=name, address=mac)

    def set_up(self, name: str) -> None:
        self.request("set", ifname=name, state="up")

    def set_down(self, name: str) -> None:
        self.request("set", ifname=name, state="down")

    def set_master(self, name: str, master: int) -> None:
        """Plug link ``name`` into the bridge with index ``master``."""
        self.request("set", ifname=name, master=master)

    def add_veth(self, name: str, peer: str) -> None:
        self.request("add", ifname=name, kind="veth", peer={"ifname": peer})

    def add_bridge(self, name: str) -> None:
        """Create bridge ``name``; NetlinkError(EEXIST) if a link has that name."""
        self.request("add", ifname=name, kind="bridge")

    def delete(self, name: str) -> None:
        """Delete link ``name``; NetlinkError(ENODEV) if absent."""
        self.request("del", ifname=name)

    def link_lookup(self, ifname: str) -> list[int]:
        """``[index]`` of the link named ``ifname`` in this namespace, ``[]`` if there is none."""
        try:
            return [self.link(ifname)["index"]]
        except NetlinkError as err:
            if err.code == errno.ENODEV:
                return []
            raise

    def link_brief(self, name: str) -> LinkBrief:
        """Index and flags of the link named ``name``: one RTM_GETLINK for that link.

        Only the reply's fixed header is read (no pyroute2 decoding of its
        attributes), so asking about every VF netdev of a PF costs microseconds
        each, whatever else the namespace holds. NetlinkError(ENODEV) if absent.
        ``name`` must have passed names.check_ifname.
        """
        encoded = name.encode() + b"\0"
        attrs = _attr(IFLA_IFNAME, encoded) + _attr(
            IFLA_EXT_MASK, struct.pack("=I", RTEXT_FILTER_SKIP_STATS)
        )
        body = IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + attrs
        sequence = self._send(RTM_GETLINK, NLM_F_REQUEST, body)
        for header, data, offset in self._replies(sequence):
            length, reply_type = header[:2]
            if reply_type == NLMSG_ERROR:
                _raise_if_error(data, offset, length)
            elif reply_type == RTM_NEWLINK and length >= HEADER.size + IFINFO.size:
                _family, _type, index, flags, _change = IFINFO.unpack_from(
                    data, offset + HEADER.size
                )
                return LinkBrief(index, flags)
            raise NetlinkError(errno.EBADMSG, f"rtnl: unexpected reply type {reply_type}")
        raise NetlinkError(errno.EBADMSG, "rtnl: no reply")  # _replies never ends without one

    def addresses(self, index: int) -> list[ifaddrmsg]:
        """The addresses of the link with ``index``, and no other link's.

        An address dump that names the link (ifa_index) on a socket with strict
        checking on (NETLINK_GET_STRICT_CHK, Linux 4.20) is filtered by the
        kernel, so its cost is one link's, not the host's. The option is set for
        this request only: strict checking also refuses requests that carry
        fields the kernel does not expect, and pyroute2 builds the others. A
        kernel without the option dumps every address, and the filter is ours.
        """
        strict = self._strict(True)
        try:
            found = self._dump(lambda: _address_request(index), RTM_GETADDR)
        finally:
            if strict:
                self._strict(False)
        return [addr for addr in found if addr["index"] == index]

    def _strict(self, on: bool) -> bool:
        """Turn the socket's strict checking on or off; False where it has none."""
        try:
            self._sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, int(on))
        except OSError:
            return False
        return True

    def get_links(self) -> list[ifinfmsg]:
        """Every link of this namespace, from one dump."""
        return self._dump(ifinfmsg, RTM_GETLINK)

    def get_addr(self) -> list[ifaddrmsg]:
        """Every address of this namespace, from one dump."""
        return self._dump(ifaddrmsg, RTM_GETADDR)

    def _dump(self, make_request: Callable[[], ifinfmsg | ifaddrmsg], msg_type: int) -> list:
        """A dump of ``make_request()``; one the kernel marks inconsistent is asked anew."""
        flags = NLM_F_REQUEST | NLM_F_DUMP
        for _attempt in range(DUMP_ATTEMPTS - 1):
            try:
                return self._exchange(make_request(), msg_type, flags)
            except NetlinkDumpInterrupted:
                continue
        return self._exchange(make_request(), msg_type, flags)

    def _exchange(self, request: ifinfmsg | ifaddrmsg, msg_type: int, flags: int) -> list:
        """Send ``request`` and collect the messages that answer it."""
        sequence = next(self._sequence)
        request["header"]["type"] = msg_type
        request["header"]["flags"] = flags
        request["header"]["sequence_number"] = sequence
        request.encode()
        self._sock.send(request.data)
        replies: list = []
        interrupted = False
        while True:
            for header, data, offset in self._messages(sequence):
                length, reply_type, reply_flags = header[:3]
                interrupted |= bool(reply_flags & NLM_F_DUMP_INTR)
                if reply_type in (NLMSG_ERROR, NLMSG_DONE):
                    _raise_if_error(data, offset, length)
                    if interrupted:
                        raise NetlinkDumpInterrupted()
                    return replies
                replies.append(_decode(reply_type, data, offset, length))
                if not flags & (NLM_F_DUMP | NLM_F_ACK):
                    return replies  # a "get": one message answers it

    def _send(self, msg_type: int, flags: int, body: bytes) -> int:
        """Send one request whose body is already encoded; returns its sequence number."""
        sequence = next(self._sequence)
        self._sock.send(HEADER.pack(HEADER.size + len(body), msg_type, flags, sequence, 0) + body)
        return sequence

    def _replies(self, sequence: int) -> Iterator[tuple[tuple, bytes, int]]:
        """Every message that answers ``sequence``, datagram after datagram."""
        while True:
            yield from self._messages(sequence)

    def _messages(self, sequence: int) -> Iterator[tuple[tuple, bytes, int]]:
        """(header, datagram, offset) of each message of the next datagram that answers
        ``sequence``; replies to an earlier request given up on are skipped."""
        data = self._receive()
        offset = 0
        while offset + HEADER.size <= len(data):
            header = HEADER.unpack_from(data, offset)
            length = header[0]
            if length < HEADER.size or offset + length > len(data):
                raise NetlinkError(errno.EBADMSG, f"rtnl: malformed reply of {length} bytes")
            if header[3] == sequence:
                yield header, data, offset
            offset += (length + 3) & ~3

    def _receive(self) -> bytes:
        """The next datagram, whole: its size is peeked first, as dumps of PFs with
        many VFs exceed any fixed buffer worth keeping per thread."""
        size = self._sock.recv_into(self._peek, 0, socket.MSG_PEEK | socket.MSG_TRUNC)
        return self._sock.recv(max(size, HEADER.size))


def link_message(command: str, arguments: dict[str, object]) -> ifinfmsg:
    """An ifinfmsg for ``command`` built by pyroute2's link request filters from
    ``arguments`` (``index``, ``ifname``, ``mtu``, ``address``, ``state``,
    ``master``, ``vf``, ``kind``, ``peer``, ``ext_mask``...)."""
    processor = RequestProcessor(context=arguments, prime=arguments)
    processor.add_filter(LinkFieldFilter())
    processor.add_filter(LinkIPRouteFilter(command))
    processor.finalize()
    msg = ifinfmsg()
    for name, _fmt in msg.fields:
        msg[name] = processor.get_value(name, default=0, mode="field")
    for key, value in processor.items():
        nla = ifinfmsg.name2nla(key)
        if value is not None and msg.valid_nla(nla):
            msg["attrs"].append([nla, value])
    return msg


def vf_request(pf: str, index: int, settings: VfSettings) -> ifinfmsg:
    """The RTM_SETLINK of PF ``pf`` that gives VF ``index`` the non-None VF fields of
    ``settings`` (the MTU is not one: it is the VF netdev's own)."""
    return link_message("set", {"ifname": pf, "vf": _vf_spec(index, settings)})


def _vf_spec(index: int, s: VfSettings) -> dict:
    """pyroute2's ``vf=`` argument for the non-None VF fields of ``s``."""
    spec: dict = {"vf": index}
    if s.mac is not None:
        spec["mac"] = s.mac
    if s.vlan is not None:
        if s.proto == VlanProto.DOT1AD:  # only IFLA_VF_VLAN_LIST carries the protocol
            spec["vlan"] = [{"vlan": s.vlan, "qos": s.qos, "proto": KERNEL_VLAN_PROTOCOLS[s.proto]}]
        else:  # the classic attribute, which every driver takes
            spec["vlan"] = {"vlan": s.vlan, "qos": s.qos}
    if s.max_tx_rate is not None:
        spec["rate"] = {"min_tx_rate": s.min_tx_rate, "max_tx_rate": s.max_tx_rate}
    if s.spoofchk is not None:
        spec["spoofchk"] = int(s.spoofchk)
    if s.link_state is not None:
        spec["link_state"] = KERNEL_LINK_STATES[s.link_state]
    if s.trust is not None:
        spec["trust"] = int(s.trust)
    return spec


def _address_request(index: int) -> ifaddrmsg:
    request = ifaddrmsg()
    request["index"] = index
    return request


def _attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to four bytes."""
    length = ATTR.size + len(payload)
    return ATTR.pack(length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


def _raise_if_error(data: bytes, offset: int, length: int) -> None:
    """NLMSG_ERROR carries 0 (an ack) or a negative errno; NLMSG_DONE may carry
    a dump's error the same way."""
    if length >= HEADER.size + ERROR_CODE.size:
        (code,) = ERROR_CODE.unpack_from(data, offset + HEADER.size)
        if code < 0:
            raise NetlinkError(-code)


def _decode(msg_type: int, data: bytes, offset: int, length: int) -> ifinfmsg | ifaddrmsg:
    cls = REPLY_CLASSES.get(msg_type)
    if cls is None:
        raise NetlinkError(errno.EBADMSG, f"rtnl: unexpected reply type {msg_type}")
    msg = cls(data[offset : offset + length])
    msg.decode()
    return msg
