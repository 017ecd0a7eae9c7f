"""This test run's id, and the ports, subnets and loopback addresses only this run holds.

Two test runs on one machine (a developer's and CI's, two checkouts) must never take
each other's names or addresses. Every name a run makes on the host carries ``RUN_ID``
(``SRIOV_TEST_RUN_ID``, which scripts/test.sh sets; a fresh one otherwise, set in the
environment so the processes the tests start share it). Numbers that cannot carry a
name are claimed: a run takes an flock on ``CLAIMS/<kind>-<value>.lock`` and keeps it
until its process ends, so no other run takes the same value, and checks that nothing
else on the host uses it (a bind for a port, the routes and addresses for a subnet).
The candidates start at a place derived from the run id, so concurrent runs rarely
even try the same one.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import ipaddress
import json
import os
import re
import secrets
import socket
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

RUN_ID = os.environ.setdefault("SRIOV_TEST_RUN_ID", secrets.token_hex(3))
if not re.fullmatch(r"[0-9a-z]{1,6}", RUN_ID):
    # it goes into interface names, which the kernel limits to 15 characters
    raise ValueError(f"SRIOV_TEST_RUN_ID={RUN_ID!r}: want 1 to 6 of 0-9 and a-z")

CLAIMS = Path(os.environ.get("SRIOV_TEST_CLAIMS", "/tmp/sriov-test-claims"))
_held: dict[str, int] = {}  # claim name -> the open, locked file descriptor


def _start(salt: str, count: int) -> int:
    digest = hashlib.sha256(f"{RUN_ID}/{salt}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % count


def _rotated(values: list, salt: str) -> list:
    start = _start(salt, len(values))
    return values[start:] + values[:start]


def claim(name: str) -> bool:
    """Take the claim ``name`` for this process's lifetime; False if another holds it."""
    if name in _held:
        return False  # this process took it already, for another use
    CLAIMS.mkdir(parents=True, exist_ok=True, mode=0o1777)
    fd = os.open(CLAIMS / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    os.ftruncate(fd, 0)
    os.write(fd, f"run {RUN_ID} pid {os.getpid()}\n".encode())
    _held[name] = fd
    return True


def is_live(run_id: str) -> bool:
    """Whether run ``run_id`` still runs: its test.sh or pytest holds its ``run-`` claim."""
    if run_id == RUN_ID:
        return True
    if not claim(f"run-{run_id}"):
        return True
    release(f"run-{run_id}")
    return False


def release(name: str) -> None:
    fd = _held.pop(name, None)
    if fd is not None:
        os.close(fd)


def _pick(kind: str, candidates: Iterable, usable: Callable[[object], bool]):
    for value in candidates:
        name = f"{kind}-{value}".replace("/", "_")
        if claim(name):
            if usable(value):
                return value
            release(name)
    raise RuntimeError(f"run {RUN_ID}: no free {kind} left to claim")


# ---- ports --------------------------------------------------------------------------------


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def reserve_port(address: str = "127.0.0.1") -> int:
    """A TCP port on loopback that this run alone holds, for a server to listen on.

    It lies below the kernel's ephemeral range (no outgoing connection is ever given
    it), is claimed against every other test run, and nothing listens on it now.
    """
    ports = _rotated(list(range(20000, min(_ephemeral_low(), 32768))), "port")
    return _pick("port", ports, lambda port: _bindable(address, port))


# ---- subnets and loopback addresses ----------------------------------------------------


def _host_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 route's destination and every address's network on the host."""
    found = []
    routes = subprocess.run(
        ["ip", "-4", "-j", "route", "show", "table", "all"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    for route in json.loads(routes or "[]"):
        dst = route.get("dst", "")
        if dst and dst != "default" and route.get("type", "unicast") in ("unicast", "local"):
            with contextlib.suppress(ValueError):
                found.append(ipaddress.ip_network(dst, strict=False))
    addresses = subprocess.run(
        ["ip", "-4", "-j", "addr", "show"], capture_output=True, text=True, check=True
    ).stdout
    for link in json.loads(addresses or "[]"):
        for info in link.get("addr_info", []):
            found.append(ipaddress.ip_network(f"{info['local']}/{info['prefixlen']}", False))
    return [net for net in found if not net.is_loopback]


def subnet16(purpose: str) -> ipaddress.IPv4Network:
    """A 10.X.0.0/16 this run alone holds, overlapping no route or address on the host."""

    def unused(net: ipaddress.IPv4Network) -> bool:
        return not any(net.overlaps(other) for other in _host_networks())

    candidates = [ipaddress.IPv4Network(f"10.{x}.0.0/16") for x in range(150, 250)]
    return _pick("subnet", _rotated(candidates, purpose), unused)


@functools.cache
def default_pool() -> ipaddress.IPv4Network:
    """The 10.X.0.0/16 whose /24s the plugins this run installs give networks created
    without a subnet (with the manifest's 10.128.0.0/9, two runs' engines would give bridge
    networks the same /24 on one host)."""
    return subnet16("default-pools")


def default_pools() -> str:
    """``default_pool`` as SRIOV_DEFAULT_POOLS."""
    return f"{default_pool()}:24"


@functools.cache
def e2e_subnet(index: int) -> ipaddress.IPv4Network:
    """The ``index``-th /24 of the engine suite's 10.X.0.0/16 (claimed on first use)."""
    return list(subnet16("e2e").subnets(new_prefix=24))[index]


def loopback24(purpose: str, ports: Iterable[int] = ()) -> ipaddress.IPv4Network:
    """A 127.X.Y.0/24 this run alone holds, with ``ports`` bindable on its first addresses."""

    def free(net: ipaddress.IPv4Network) -> bool:
        hosts = [str(net.network_address + n) for n in range(1, 4)]
        return all(_bindable(host, port) for host in hosts for port in ports)

    candidates = [
        ipaddress.IPv4Network(f"127.{x}.{y}.0/24") for x in range(100, 120) for y in range(256)
    ]
    return _pick("loopback", _rotated(candidates, purpose), free)


# ---- network namespaces -------------------------------------------------------------------

_NETNS = re.compile(r"sriov-([0-9a-z]{1,6})-")


def netns_name(role: str) -> str:
    """A name for a network namespace this run makes: ``sriov-<run>-<role>-<tag>``."""
    return f"sriov-{RUN_ID}-{role}-{secrets.token_hex(3)}"


def remove_dead_runs_netns() -> list[str]:
    """Delete the network namespaces (``netns_name``) of runs that no longer live, such as
    a killed session's; the names deleted."""
    listing = subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True)
    names = [entry["name"] for entry in json.loads(listing.stdout or "[]")]
    dead = [
        name
        for name in names
        if (match := _NETNS.match(name))
        and match.group(1) != RUN_ID
        and not is_live(match.group(1))
    ]
    for name in dead:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return dead


# While this process runs, the run counts as live for other runs' clean-up (test.sh, which
# sets the id, holds the claim itself; then this one is not needed).
claim(f"run-{RUN_ID}")
