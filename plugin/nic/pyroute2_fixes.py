"""Every change the plugin makes to pyroute2, each with why and when it can go.

pyroute2 builds, encodes and decodes the plugin's netlink messages; two things
it does are wrong for the plugin, and are changed here and nowhere else.
``tests/unit/test_pyroute2_fixes.py`` fails once pyroute2 does either right by
itself, so the change can then be dropped.

**Its package catalogue** (``register_package_without_catalogue``, at the import
of ``plugin.nic``). pyroute2's ``__init__`` imports every netlink family it
supports (conntrack, nftables, wireguard, nl80211, IPVS, NDB, IPDB, ...) to offer
them as ``pyroute2.X``: 160 modules and about 5 MB of resident memory, of which the
plugin uses the link and address messages, the link request filters and
``NetlinkError`` (see ``plugin.nic.rtnl``). The NIC layer imports those from
their own modules (``pyroute2.netlink.rtnl.ifinfmsg``, ...); this registers
the ``pyroute2`` package without running its ``__init__``, so only they and
what they need load. The first lookup of a name on the package
itself (``from pyroute2 import IPRoute`` elsewhere in the process) runs the
real ``__init__`` then, so nothing else sees a difference.

**The size of IFLA_VF_VLAN_INFO** (``pad_vlan_info_to_kernel_size``, at the
import of the kernel backend). pyroute2 (0.9.7) declares the struct as its 14
bytes of fields, but the kernel checks the attribute against
sizeof(struct ifla_vf_vlan_info), which includes two bytes of tail padding, and
answers EINVAL: no 802.1ad VLAN could ever be set. Adding the padding as a field
fixes encoding and decoding alike; once pyroute2 declares the full size it does
nothing.
"""

from __future__ import annotations

import importlib.util
import struct
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


VLAN_INFO_SIZE = 16  # sizeof(struct ifla_vf_vlan_info): u32 vf, vlan, qos; be16 proto; padding
OUR_PADDING = "sriov_pad"  # the name of the field this module adds


def pad_vlan_info_to_kernel_size() -> None:
    """Make pyroute2 encode IFLA_VF_VLAN_INFO with the kernel's size (see the module doc)."""
    size = pyroute2_vlan_info_size()
    info = _vlan_info()
    if size < VLAN_INFO_SIZE and all(name != OUR_PADDING for name, _fmt in info.fields):
        info.fields = (*info.fields, (OUR_PADDING, f"{VLAN_INFO_SIZE - size}x"))


def pyroute2_vlan_info_size() -> int:
    """The size pyroute2 itself gives IFLA_VF_VLAN_INFO, without this module's padding."""
    fields = [fmt for name, fmt in _vlan_info().fields if name != OUR_PADDING]
    return struct.calcsize("=" + "".join(fmt.lstrip("<>=!") for fmt in fields))


def _vlan_info() -> type:
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg  # after the package is registered

    return ifinfmsg.vflist.vfinfo.vf_vlist.ivvi
