"""plugin.nic.pyroute2_fixes: each change to pyroute2 works, and is still needed.

The NIC layer loads only the pyroute2 modules it uses (no family catalogue, no
IPRoute), and IFLA_VF_VLAN_INFO is encoded at the kernel's size. The tests named
``..._still_...`` fail once pyroute2 gets it right by itself: then drop that fix.
"""

import subprocess
import sys
from pathlib import Path

from plugin.nic.pyroute2_fixes import (
    VLAN_INFO_SIZE,
    pad_vlan_info_to_kernel_size,
    pyroute2_vlan_info_size,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    )
    return proc.stdout.strip()


def test_the_kernel_backend_loads_no_netlink_family_it_does_not_use():
    loaded = run_python(
        "import sys, plugin.nic.kernel, plugin.nic.sim.backend, plugin.nic.sim.cli\n"
        "print(sorted(m for m in sys.modules if m.startswith(('pyroute2.ndb', 'pyroute2.ipdb',"
        " 'pyroute2.nftables', 'pyroute2.wiset', 'pyroute2.netlink.nl80211'))))"
    )
    assert loaded == "[]"


def test_the_nic_layer_loads_no_iproute_asyncio_or_ssl():
    """plugin.nic.rtnl sends pyroute2's messages itself: IPRoute's event loop, TLS
    support (pyroute2's probes import ssl) and test helpers cost ~4 MB resident."""
    loaded = run_python(
        "import sys, plugin.nic.kernel, plugin.nic.sim.backend, plugin.nic.sim.cli\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ssl', 'asyncio', 'unittest')"
        " or m.startswith('pyroute2.iproute')))"
    )
    assert loaded == "[]"


def test_the_package_catalogue_still_loads_for_code_that_asks_for_it():
    answer = run_python(
        "import plugin.nic.kernel\n"
        "from pyroute2.iproute.linux import IPRoute as lean\n"
        "from pyroute2 import IPRoute, NDB, NetlinkError\n"
        "from pyroute2.netlink.exceptions import NetlinkError as direct\n"
        "print(IPRoute is lean, NetlinkError is direct, NDB.__name__)"
    )
    assert answer == "True True NDB"


def test_a_submodule_named_on_the_package_loads_alone():
    answer = run_python(
        "import sys, plugin.nic\n"
        "import pyroute2\n"
        "config = pyroute2.config\n"
        "print(config.__name__, 'pyroute2.ndb.main' in sys.modules)"
    )
    assert answer == "pyroute2.config False"


def test_pyroute2_still_imports_its_whole_catalogue_on_its_own():
    """Fails once a plain ``import pyroute2`` stops loading every family: drop the fix."""
    loaded = run_python(
        "import sys, pyroute2\n"
        "print(sum(m.startswith('pyroute2.') for m in sys.modules),"
        " 'pyroute2.ndb.main' in sys.modules)"
    )
    count, ndb = loaded.split()
    assert (int(count) > 100, ndb) == (True, "True")


def test_pyroute2_still_declares_vlan_info_shorter_than_the_kernel():
    """Fails once pyroute2 declares struct ifla_vf_vlan_info at its full size: drop the fix."""
    assert pyroute2_vlan_info_size() < VLAN_INFO_SIZE


def test_vlan_info_is_encoded_at_the_kernels_size():
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    pad_vlan_info_to_kernel_size()
    pad_vlan_info_to_kernel_size()  # applying it again changes nothing
    msg = ifinfmsg()
    vlan_info = ("IFLA_VF_VLAN_INFO", {"vf": 1, "vlan": 100, "qos": 0, "proto": 0x88A8})
    msg["attrs"] = [
        nested("IFLA_VFINFO_LIST", nested("IFLA_VF_INFO", nested("IFLA_VF_VLAN_LIST", vlan_info)))
    ]
    msg.encode()
    decoded = ifinfmsg(msg.data)
    decoded.decode()
    (info,) = decoded.get_attr("IFLA_VFINFO_LIST").get_attrs("IFLA_VF_INFO")
    (vlan,) = info.get_attr("IFLA_VF_VLAN_LIST").get_attrs("IFLA_VF_VLAN_INFO")
    assert vlan.length == 4 + VLAN_INFO_SIZE  # the attribute header, then the struct
    assert (vlan["vf"], vlan["vlan"], vlan["proto"]) == (1, 100, 0x88A8)


def nested(name: str, *attrs: tuple) -> tuple:
    return (name, {"attrs": list(attrs)})
