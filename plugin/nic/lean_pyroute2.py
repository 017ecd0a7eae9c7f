"""Import pyroute2's modules without its package catalogue, unless someone asks for it.

pyroute2's ``__init__`` imports every netlink family it supports (conntrack,
nftables, wireguard, nl80211, IPVS, NDB, IPDB, ...) to offer them as
``pyroute2.X``: 160 modules and about 5 MB of resident memory, of which the
plugin uses the link and address messages, the link request filters and
``NetlinkError`` (see ``plugin.nic.rtnl``). The NIC layer imports those from
their own modules (``pyroute2.netlink.rtnl.ifinfmsg``, ...); this registers
the ``pyroute2`` package without running its ``__init__``, so only they and
what they need load. The first lookup of a name on the package
itself (``from pyroute2 import IPRoute`` elsewhere in the process) runs the
real ``__init__`` then, so nothing else sees a difference.
"""

from __future__ import annotations

import importlib.util
import sys


def register_package_without_catalogue() -> None:
    """Make ``pyroute2`` an importable package whose ``__init__`` runs on first use only."""
    if "pyroute2" in sys.modules:
        return
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or spec.loader is None:
        return  # not installed: the import that needs it says so
    package = importlib.util.module_from_spec(spec)

    def catalogue_on_first_use(name: str) -> object:
        if importlib.util.find_spec(f"pyroute2.{name}") is not None:
            return importlib.import_module(f"pyroute2.{name}")  # a submodule: no catalogue
        del package.__getattr__
        spec.loader.exec_module(package)
        return getattr(package, name)

    package.__getattr__ = catalogue_on_first_use
    sys.modules["pyroute2"] = package

