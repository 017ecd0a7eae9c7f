"""A PF renamed (udev rules, a driver reload) keeps its leases: they are keyed by PCI address.

Networks record their PFs by PCI address; leases used to be counted by the PF's
netdev name, so after a rename a leased VF whose netdev was still in the host
namespace looked free and was leased a second time, status showed the leases
under a PF that no longer exists, and a numvfs reset did not void them.
"""

from __future__ import annotations

import pytest
from fake_nic import FakeNic
from sysfs_trees import build, rename_netdev, swap_netdevs
from test_network import GATEWAY, PF0, PF1, ep_id, net_id, nic_tree, options, pin
from test_reconcile import NUMVFS, FakeClock

from plugin.errors import Conflict
from plugin.nic.sysfs import Sysfs
from plugin.ops.status import StatusService
from plugin.services.inventory import Inventory
from plugin.services.networks import NetworkService
from plugin.services.recovery import HostRecovery
from plugin.state.sqlite import Store


class Host:
    """One plugin's services over a sysfs tree, sharing one inventory as server.py wires them."""

    def __init__(self, tmp_path, tree):
        self.root = build(tmp_path / "sys", tree)
        self.sysfs = Sysfs(self.root)
        self.store = Store(tmp_path / "state")
        self.nic = FakeNic()
        self.inventory = Inventory(self.store, self.sysfs, self.nic)
        self.network = NetworkService(self.store, self.sysfs, FakeNic(), inventory=self.inventory)
        self.status = StatusService(self.store, self.inventory, self.nic)
        self.clock = FakeClock()

    def recovery(self) -> HostRecovery:
        return HostRecovery(
            self.store, self.sysfs, self.inventory, clock=self.clock, sleep=self.clock.sleep
        )

    def leased(self, n: int) -> tuple[str, int, str]:
        info = self.network.endpoint_info(ep_id(n))
        return info.pf, info.vf, info.pci

    def pf_view(self, name: str) -> dict:
        (view,) = [pf for pf in self.status.status()["pfs"] if pf["name"] == name]
        return view


@pytest.fixture
def host(tmp_path):
    return Host(tmp_path, nic_tree(vfs0=2, vfs1=2))


def test_a_leased_vf_is_not_leased_again_after_its_pf_is_renamed(host):
    host.network.create_network(net_id(1), options(pf_iface="pf0"), GATEWAY)
    host.network.create_endpoint(net_id(1), ep_id(1))
    assert host.leased(1) == ("pf0", 0, "0000:3b:02.0")

    rename_netdev(host.root, PF0, "pf0", "ens1f0")  # VF 0's netdev is still in the host
    host.network.create_endpoint(net_id(1), ep_id(2))

    assert host.leased(2) == ("ens1f0", 1, "0000:3b:02.1")
    with pytest.raises(Conflict) as err:
        host.network.create_endpoint(net_id(1), ep_id(3))
    assert err.value.message == "no free VF on ens1f0 (link up): 2 of 2 leased"


def test_a_vf_pinned_by_index_after_a_rename_is_still_leased(host):
    host.network.create_network(net_id(1), options(pf_iface="pf0"), GATEWAY)
    host.network.create_endpoint(net_id(1), ep_id(1))
    rename_netdev(host.root, PF0, "pf0", "ens1f0")
    with pytest.raises(Conflict, match="vf 0 of ens1f0 is already leased to another endpoint"):
        host.network.create_endpoint(net_id(1), ep_id(2), wanted=pin("0"))


def test_two_pfs_that_swap_names_keep_each_their_own_leases(host):
    host.network.create_network(net_id(1), options(pf_iface="pf0"), GATEWAY)
    host.network.create_network(net_id(2), options(pf_iface="pf1"), GATEWAY)
    host.network.create_endpoint(net_id(1), ep_id(1))  # VF 0 of PF0, leased as "pf0" VF 0

    swap_netdevs(host.root, (PF0, "pf0"), (PF1, "pf1"))
    # PF1 is "pf0" now: its VF 0 is free, although "pf0" VF 0 was leased by that name.
    host.network.create_endpoint(net_id(2), ep_id(2))
    host.network.create_endpoint(net_id(1), ep_id(3))

    assert host.leased(1) == ("pf1", 0, "0000:3b:02.0")
    assert host.leased(2) == ("pf0", 0, "0000:3c:02.0")
    assert host.leased(3) == ("pf1", 1, "0000:3b:02.1")


def test_status_shows_the_leases_under_the_pf_as_it_is_named_now(host):
    host.network.create_network(net_id(1), options(pf_iface="pf0"), GATEWAY)
    host.network.create_endpoint(net_id(1), ep_id(1))
    rename_netdev(host.root, PF0, "pf0", "ens1f0")

    view = host.status.status()
    assert [pf["name"] for pf in view["pfs"]] == ["ens1f0"]  # no view of a PF named pf0
    renamed = host.pf_view("ens1f0")
    assert renamed["vf_counts"] == {"free": 1, "leased": 1, "unusable": 0}
    assert renamed["vfs"][0]["lease"]["endpoint"] == ep_id(1)
    assert view["networks"][0]["pfs"] == ["ens1f0"]


def test_a_lease_on_a_renamed_pf_whose_vfs_are_gone_stays_under_that_pf(host):
    host.network.create_network(net_id(1), options(pf_iface="pf0"), GATEWAY)
    host.network.create_endpoint(net_id(1), ep_id(1))
    rename_netdev(host.root, PF0, "pf0", "ens1f0")
    (host.root / NUMVFS).write_text("0\n")  # its VFs went with a driver reload

    renamed = host.pf_view("ens1f0")
    assert renamed["vf_counts"] == {"free": 0, "leased": 1, "unusable": 0}
    assert renamed["vfs"][0]["where"] == "VF not enabled"


def test_a_numvfs_reset_after_a_rename_voids_the_pfs_leases(host):
    host.network.create_network(net_id(1), options(pf_iface="pf0"), GATEWAY)
    host.network.create_network(net_id(2), options(pf_iface="pf1"), GATEWAY)
    host.network.create_endpoint(net_id(1), ep_id(1))
    host.network.create_endpoint(net_id(2), ep_id(2))
    rename_netdev(host.root, PF0, "pf0", "ens1f0")
    (host.root / NUMVFS).write_text("0\n")  # a driver reload renamed the PF and reset its VFs

    host.recovery().at_start()

    assert host.sysfs.pf("ens1f0").numvfs == 2
    with host.store.transaction() as tx:
        assert tx.endpoint(ep_id(1)) is None  # its VF was destroyed: the lease is void
        assert tx.endpoint(ep_id(2)) is not None  # the other PF's lease is untouched
    host.network.create_endpoint(net_id(1), ep_id(3))
    assert host.leased(3) == ("ens1f0", 0, "0000:3b:02.0")
