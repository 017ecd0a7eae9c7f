"""Checks for names that reach sysfs paths or netlink calls.

Nothing a user supplies is joined into a path or sent to the kernel before it
passes one of these checks.
"""

from __future__ import annotations

import re

from plugin.errors import InvalidRequest

IFNAMSIZ = 16  # the kernel's buffer, including the terminating NUL

_PCI_ADDRESS = re.compile(r"[0-9a-f]{4}:[0-9a-f]{2}:[01][0-9a-f]\.[0-7]")


def check_ifname(name: object, what: str = "interface") -> str:
    """Return ``name`` if the kernel would accept it as an interface name.

    The rules are the kernel's (dev_valid_name): 1-15 bytes, not "." or "..",
    no "/", no ":" and no whitespace; and ours: no control character (NUL would
    cut the name short in C, and none belongs in a log line) and nothing that
    is not text. The name is checked as characters before it is encoded, and
    shown escaped as Python's repr does (``'pf\\x00x'``), never raw.
    """
    problem = _ifname_problem(name)
    if problem:
        raise InvalidRequest(f"{what} {name!r} is not a valid interface name: {problem}")
    return name  # type: ignore[return-value]


def _ifname_problem(name: object) -> str | None:
    if not isinstance(name, str):
        return f"expected a string, got {type(name).__name__}"
    if not name:
        return "it is empty"
    for ch in name:
        if ch < " " or ch == "\x7f":
            return f"it contains the control character {ch!r}"
        if "\ud800" <= ch <= "\udfff":
            return f"it contains {ch!r}, a lone surrogate, which is not text"
    if len(name.encode()) >= IFNAMSIZ:
        return f"it is {len(name.encode())} bytes long, the limit is {IFNAMSIZ - 1}"
    if name in (".", ".."):
        return "'.' and '..' are reserved"
    if "/" in name:
        return "it contains '/'"
    if ":" in name:
        return "it contains ':'"
    if any(ch.isspace() for ch in name):
        return "it contains whitespace"
    return None


def check_pci_address(addr: object, what: str = "PCI address") -> str:
    """Return ``addr`` in sysfs form (lower case "0000:3b:02.0") or raise InvalidRequest."""
    if isinstance(addr, str) and _PCI_ADDRESS.fullmatch(addr.lower()):
        return addr.lower()
    raise InvalidRequest(
        f"{what} {addr!r} is not a PCI address: expected domain:bus:device.function "
        "like 0000:3b:02.0"
    )
