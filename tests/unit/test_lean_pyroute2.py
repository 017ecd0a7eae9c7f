"""The NIC layer loads only the pyroute2 modules it uses: no family catalogue, no IPRoute."""

import subprocess
import sys
from pathlib import Path

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
