"""HostRecovery over sysfs trees: VFs back after a reboot, void leases dropped, waits bounded."""

from __future__ import annotations

import pytest
from fake_nic import FakeNic
from sysfs_trees import build
from test_network import GATEWAY, ep_id, net_id, nic_tree, options

from plugin.errors import DeviceError
from plugin.model.networks import NetworkPf, NetworkRow
from plugin.nic.sysfs import Sysfs
from plugin.services.networks import NetworkService
from plugin.services.recovery import HostRecovery, read_boot_id
from plugin.state.sqlite import Store

NUMVFS = "devices/pci0000:00/0000:3b:00.0/sriov_numvfs"


class FakeClock:
    """Time that passes only when the code sleeps."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def make(tmp_path, tree):
    root = build(tmp_path / "sys", tree)
    sysfs = Sysfs(root)
    store = Store(tmp_path / "state")
    clock = FakeClock()
    return (
        root,
        sysfs,
        store,
        HostRecovery(
            store, sysfs, NetworkService(store, sysfs, FakeNic()), clock=clock, sleep=clock.sleep
        ),
        clock,
    )


def test_after_a_reboot_start_enables_vfs_and_drops_leases_of_destroyed_vfs(tmp_path):
    root, sysfs, store, recovery, _ = make(tmp_path, nic_tree(vfs0=4))
    network = NetworkService(store, sysfs, FakeNic())
    network.create_network(net_id(1), options(pf_iface="pf0", vlanid=5), GATEWAY)
    network.create_endpoint(net_id(1), ep_id(1))
    network.create_endpoint(net_id(1), ep_id(2))
    (root / NUMVFS).write_text("0\n")  # the reboot, as the plugin sees it

    recovery.at_start()

    assert sysfs.pf("pf0").numvfs == 4
    with store.transaction() as tx:
        assert tx.leased_vfs("pf0") == set()
    network.delete_endpoint(ep_id(1))  # Docker's clean-up of the old endpoint: nothing to do
    network.create_endpoint(net_id(1), ep_id(3))
    assert network.endpoint_info(ep_id(3)).vf == 0


def test_leases_on_a_pf_with_its_vfs_stay_when_nothing_was_lost(tmp_path):
    _, sysfs, store, recovery, _ = make(tmp_path, nic_tree(vfs0=2))
    network = NetworkService(store, sysfs, FakeNic())
    network.create_network(net_id(1), options(pf_iface="pf0"), GATEWAY)
    network.create_endpoint(net_id(1), ep_id(1))

    recovery.at_start()
    recovery.before_endpoint(net_id(1))

    with store.transaction() as tx:
        assert tx.leased_vfs("pf0") == {0}


BOOT_A, BOOT_B = "0a0a0a0a-0000-4000-8000-00000000000a", "0b0b0b0b-0000-4000-8000-00000000000b"


def start_in_boot(store, sysfs, boot_id):
    """The plugin starting in the boot ``boot_id``: a new HostRecovery, at_start."""
    network = NetworkService(store, sysfs, FakeNic(), sync_leases=False)
    HostRecovery(store, sysfs, network, boot_id=boot_id).at_start()
    return network


def test_leases_of_an_earlier_boot_end_even_where_the_host_enables_vfs_at_boot(tmp_path, caplog):
    _, sysfs, store, _, _ = make(tmp_path, nic_tree(vfs0=4))
    network = start_in_boot(store, sysfs, BOOT_A)
    network.create_network(net_id(1), options(pf_iface="pf0"), GATEWAY)
    network.create_endpoint(net_id(1), ep_id(1))
    network.create_endpoint(net_id(1), ep_id(2))
    network.delete_endpoint(ep_id(2))  # its VF's admin MAC cleared: noted by PCI address
    with store.transaction() as tx:
        assert tx.vfs_without_admin_mac() == {"0000:3b:02.1"}

    start_in_boot(store, sysfs, BOOT_A)  # a restart of the plugin, or of dockerd
    with store.transaction() as tx:
        assert tx.leased_vfs("pf0") == {0}

    network = start_in_boot(store, sysfs, BOOT_B)  # sriov_numvfs is 4 again: no other sign
    with store.transaction() as tx:
        assert tx.leased_vfs("pf0") == set()
        assert tx.vfs_without_admin_mac() == set()
        assert tx.leases_boot() == BOOT_B
    assert f"endpoint {ep_id(1)[:12]}: VF 0 of pf0 was leased before the host rebooted" in (
        caplog.text
    )
    network.delete_endpoint(ep_id(1))  # Docker's clean-up of the old endpoint: nothing to do
    network.create_endpoint(net_id(1), ep_id(3))
    assert network.endpoint_info(ep_id(3)).vf == 0


def test_without_a_boot_id_leases_stay_until_numvfs_says_otherwise(tmp_path):
    _, sysfs, store, _, _ = make(tmp_path, nic_tree(vfs0=2))
    network = start_in_boot(store, sysfs, BOOT_A)
    network.create_network(net_id(1), options(pf_iface="pf0"), GATEWAY)
    network.create_endpoint(net_id(1), ep_id(1))
    start_in_boot(store, sysfs, None)
    with store.transaction() as tx:
        assert tx.leased_vfs("pf0") == {0}
        assert tx.leases_boot() == BOOT_A


def test_the_boot_id_is_read_from_procfs_and_missing_is_not_an_error(tmp_path):
    path = tmp_path / "boot_id"
    path.write_text(BOOT_A + "\n")
    assert read_boot_id(path) == BOOT_A
    assert read_boot_id(tmp_path / "missing") is None
    assert read_boot_id() not in (None, BOOT_A)  # this host's own


def test_create_endpoint_enables_vfs_that_went_away_after_start(tmp_path):
    root, sysfs, store, recovery, _ = make(tmp_path, nic_tree(vfs0=2))
    NetworkService(store, sysfs, FakeNic()).create_network(
        net_id(1), options(pf_iface="pf0"), GATEWAY
    )
    recovery.at_start()
    (root / NUMVFS).write_text("0\n")

    recovery.before_endpoint(net_id(1))

    assert sysfs.pf("pf0").numvfs == 2
    recovery.before_endpoint("unknown-network")  # CreateEndpoint refuses that one itself


def test_vf_netdevs_that_never_appear_fail_create_endpoint_naming_pf_and_time(tmp_path):
    tree = nic_tree(vfs0=2, numvfs0=0)
    for name in [k for k in tree if "/net/pf0v1" in k or k == "class/net/pf0v1"]:
        del tree[name]  # VF 1's driver never makes its netdev
    _, sysfs, store, recovery, clock = make(tmp_path, tree)
    with store.transaction() as tx:
        pfs = (NetworkPf(pci=None, name="pf0"),)  # recorded before PFs were kept by address
        tx.insert_network(NetworkRow(net_id(1), options(pf_iface="pf0"), pfs, None, None))
    started = clock.now

    recovery.at_start(wait_s=5)  # logs, does not raise: the plugin must come up

    assert sysfs.pf("pf0").numvfs == 2
    assert clock.now - started == pytest.approx(5, abs=0.2)
    with pytest.raises(DeviceError) as failed:
        recovery.before_endpoint(net_id(1), wait_s=20)
    assert failed.value.message == (
        "enable VFs of pf0: 1 of 2 VF netdevs appeared within 25.0 s after "
        "writing sriov_numvfs; check the VF driver (dmesg)"
    )
    before = clock.now
    recovery.before_endpoint(net_id(1))  # said once; then VF 1 is just not free
    assert clock.now == before
