"""A VF lease: which VF an endpoint holds, what it was given, and what to restore."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from plugin.nic.base import VfSettings


class EndpointState(enum.StrEnum):
    """A lease's VF is being programmed (or a crash cut that short), or handed out."""

    PROGRAMMING = "programming"
    READY = "ready"


@dataclass(frozen=True)
class EndpointRow:
    """A VF lease: which VF, the MAC and addresses it was given, and what to restore."""

    id: str
    network_id: str
    pf: str
    vf: int
    pci: str
    netdev: str
    mac: str
    address: str | None  # the endpoint's IPv4 address (CIDR) as Docker gave it, for status
    address6: str | None
    original: VfSettings  # the VF's values of the fields programming changes (others None)
    state: EndpointState
    restore_error: str | None = None  # why the VF could not be restored; the lease is kept
    sandbox: str | None = None  # the SandboxKey of the Join
