"""A network as recorded: its options, its PFs (by PCI address) with their VF ranges, gateways."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from plugin.model.options import NetworkOptions, VfSpans


@dataclass(frozen=True)
class NetworkPf:
    """A PF of a network as recorded: by PCI address, named as it was then, and its VF range.

    ``pci`` is None in networks recorded before PFs were kept by address; they
    are found by ``name``. ``vfs`` None means every VF.
    """

    pci: str | None
    name: str
    vfs: VfSpans | None = None

    @property
    def key(self) -> str:
        """How the network's ports (PF, VLAN) name this PF."""
        return self.pci or self.name


@dataclass(frozen=True)
class NetworkRow:
    """A network: its settings, its PFs, and the gateways Join answers."""

    id: str
    options: NetworkOptions
    pfs: tuple[NetworkPf, ...]
    gateway: str | None
    gateway6: str | None


def network_settings(network: NetworkRow) -> dict:
    """The network's options and PFs as the ``options`` column holds them (and status shows).

    One flat object: the VF settings (but the MAC, which is each endpoint's)
    beside the other options, as networks were always stored.
    """
    flat = dataclasses.asdict(network.options)
    vf = flat.pop("vf")
    del vf["mac"]
    return {**vf, **flat, "pfs": [dataclasses.asdict(pf) for pf in network.pfs]}
