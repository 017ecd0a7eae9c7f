"""An rtnetlink socket for the NIC layer: pyroute2's messages on a plain netlink socket.

The NIC layer makes a handful of link requests (get a link or a PF's VF list,
set MTU, MAC, up/down, master or VF settings, add a veth or a bridge, delete a
link), asks about one VF netdev at a time (``link_brief``: its index and flags;
``addresses``: the addresses of that one link), and has two whole-namespace
dumps (links, addresses) that only the simulated NIC's setup and tests use: a
request never dumps the host, whose cost grows with every veth on it.

pyroute2's ``IPRoute`` (0.9) runs every call through an asyncio event loop,
and importing it brings in its probe, namespace and test-support modules,
``ssl`` among them: about 5 MB of the plugin's resident memory, for which
issue 9 has no room.

``Rtnl`` takes the same calls as ``IPRoute`` for that subset (``link``,
``link_lookup``, ``get_links``, ``get_addr``, ``close``), plus the two typed
reads above, so the backends and their recording fakes speak one interface.
pyroute2 still does all the netlink work that is hard to get right: its
request filters turn the keyword arguments into attributes (``vf={...}`` into
IFLA_VFINFO_LIST, ``state="up"`` into flags, ``kind``/``peer`` into
IFLA_LINKINFO), its ``ifinfmsg``/``ifaddrmsg`` classes encode and decode, and
failures are its ``NetlinkError``. What is left here is the socket: send one
request, read its replies by sequence number.
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

HEADER = struct.Struct("=IHHII")  # struct nlmsghdr: len, type, flags, seq, pid
IFINFO = struct.Struct("=BxHiII")  # struct ifinfomsg: family, type, index, flags, change
ATTR = struct.Struct("=HH")  # struct nlattr: len, type
IFLA_IFNAME, IFLA_EXT_MASK = 3, 29
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

    def link(self, command: str, **arguments: object) -> list[ifinfmsg]:
        """A link request as ``IPRoute.link`` takes it: "get", "set", "add" or "del".

        Returns the link for "get", nothing for the others. A link that does not
        exist is NetlinkError(ENODEV), as the kernel answers it.
        """
        if command not in LINK_COMMANDS:
            raise ValueError(f"rtnl link: unknown command {command!r}")
        msg_type, flags = LINK_COMMANDS[command]
        request = link_message(command, arguments)
        return self._exchange(request, msg_type, flags)

    def link_lookup(self, ifname: str) -> list[int]:
        """``[index]`` of the link named ``ifname`` in this namespace, ``[]`` if there is none."""
        try:
            links = self.link("get", ifname=ifname)
        except NetlinkError as err:
            if err.code == errno.ENODEV:
                return []
            raise
        return [link["index"] for link in links]

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
