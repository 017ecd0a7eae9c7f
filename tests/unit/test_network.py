"""NetworkService over a temporary sysfs tree, a real SQLite store and a fake NIC backend.

The fake stands in only for the VF programming calls (no SR-IOV hardware here);
sysfs parsing, option checks, leases and the store are the real ones.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
import threading

import pytest
from fake_nic import FACTORY, FakeNic
from sysfs_trees import (
    bind_to_vfio,
    build,
    link_files,
    pf,
    rename_netdev,
    swap_netdevs,
    vf,
)

from plugin.errors import Conflict, DeviceError, InvalidRequest
from plugin.model.networks import NetworkPf, network_settings
from plugin.model.options import (
    EndpointOptions,
    NetworkOptions,
    parse_endpoint_options,
    parse_network_options,
)
from plugin.nic.base import NetdevStatus
from plugin.nic.sysfs import Sysfs
from plugin.services.networks import (
    EndpointCreated,
    JoinInfo,
    NetworkService,
    check_mac,
    random_mac,
    with_prefix,
)
from plugin.state.sqlite import Store

PF0, PF1 = "0000:3b:00.0", "0000:3c:00.0"


def nic_tree(vfs0=4, vfs1=0, numvfs0=None, mtu=1500):
    tree = {**pf("pf0", PF0, vfs0, vfs0 if numvfs0 is None else numvfs0, mtu)}
    for i in range(vfs0):
        tree.update(vf(PF0, i, f"0000:3b:02.{i}", f"pf0v{i}"))
    if vfs1:
        tree.update(pf("pf1", PF1, vfs1, vfs1, mtu))
        for i in range(vfs1):
            tree.update(vf(PF1, i, f"0000:3c:02.{i}", f"pf1v{i}"))
    return tree


def numvfs_of_pf0(tmp_path) -> int:
    """sriov_numvfs of pf0, read from the tree as the kernel would show it."""
    return int((tmp_path / "sys/class/net/pf0/device/sriov_numvfs").read_text())


def write_behind_the_plugin(store: Store, *statements) -> None:
    """Change the state file with a connection of our own, as another version or a crash would."""
    db = sqlite3.connect(store.path)
    try:
        with db:
            for statement in statements:
                sql, args = statement if isinstance(statement, tuple) else (statement, ())
                db.execute(sql, args)
    finally:
        db.close()


def net_id(n: int) -> str:
    return f"{n:064x}"


def ep_id(n: int) -> str:
    return f"e{n:063x}"


def wire_options(**flags) -> dict:
    """CreateNetwork ``Options`` as Docker sends them for ``-o key=value ...``."""
    return {"com.docker.network.generic": {k: str(v) for k, v in flags.items()}}


def options(internal: bool = False, **flags) -> NetworkOptions:
    """The network options of ``-o key=value ...`` (and ``--internal``)."""
    given = wire_options(**flags) | {"com.docker.network.internal": internal}
    return parse_network_options(given)


def pin(vf: str) -> EndpointOptions:
    """The endpoint option ``--driver-opt vf=...``."""
    return parse_endpoint_options({"vf": vf})


IPV4 = [{"AddressSpace": "local", "Pool": "10.1.0.0/24", "Gateway": "10.1.0.1/24"}]
GATEWAY = "10.1.0.1"  # IPV4's gateway as NetworkService takes it


@pytest.fixture
def make(tmp_path):
    """Build a service over ``tree``; returns (service, fake nic, store)."""

    def build_service(tree=None, macs=None):
        sysfs = Sysfs(build(tmp_path / "sys", tree or nic_tree()))
        nic = FakeNic()
        store = Store(tmp_path / "state")
        new_mac = iter(macs).__next__ if macs else random_mac
        return NetworkService(store, sysfs, nic, new_mac), nic, store

    return build_service


def test_endpoint_programs_vf_in_driver_order_and_returns_generated_mac(make):
    svc, nic, _ = make(macs=["02:00:00:00:00:01"])
    opts = options(pf_iface="pf0", vlanid=100, spoofchk="off", mtu=1400)
    svc.create_network(net_id(1), opts, GATEWAY)
    created = svc.create_endpoint(net_id(1), ep_id(1), address="10.1.0.2/24")
    assert created == EndpointCreated(mac="02:00:00:00:00:01")
    assert [c[0] for c in nic.calls] == ["read", "mtu", "mac", "vlan", "spoofchk", "read"]
    assert nic.by_vf[("pf0", 0)] == dataclasses.replace(
        FACTORY, mac="02:00:00:00:00:01", vlan=100, spoofchk=False, mtu=1400
    )


def test_docker_given_mac_is_used(make):
    svc, nic, _ = make()
    svc.create_network(net_id(1), options(pf_iface="pf0"), GATEWAY)
    created = svc.create_endpoint(net_id(1), ep_id(1), mac="02:42:0A:01:00:09")
    assert created == EndpointCreated(mac="02:42:0a:01:00:09")
    assert nic.by_vf[("pf0", 0)].mac == "02:42:0a:01:00:09"


def test_delete_endpoint_restores_exactly_the_changed_settings(make):
    svc, nic, _ = make()
    before = dataclasses.replace(FACTORY, trust=True, max_tx_rate=0, mtu=1400)
    nic.by_vf[("pf0", 0)] = before
    svc.create_network(net_id(1), options(pf_iface="pf0", vlanid=7, mtu=1300), GATEWAY)
    svc.create_endpoint(net_id(1), ep_id(1))
    nic.calls.clear()
    svc.delete_endpoint(ep_id(1))
    assert nic.by_vf[("pf0", 0)] == before
    assert {c[0] for c in nic.calls if c[0] != "read"} == {
        "vlan",
        "mac",
        "mtu",
    }  # trust was never touched


def test_released_vf_is_leased_again(make):
    svc, _, _ = make(nic_tree(vfs0=1))
    svc.create_network(net_id(1), options(pf_iface="pf0"), GATEWAY)
    svc.create_endpoint(net_id(1), ep_id(1))
    with pytest.raises(Conflict, match=r"no free VF on pf0 \(link up\): 1 of 1 leased"):
        svc.create_endpoint(net_id(1), ep_id(2))
    svc.delete_endpoint(ep_id(1))
    svc.create_endpoint(net_id(1), ep_id(2))
    assert svc.endpoint_info(ep_id(2)).vf == 0


def test_lowest_free_vf_skips_busy_absent_and_vfio(make):
    tree = nic_tree(vfs0=4)
    tree.update(vf(PF0, 0, "0000:3b:02.0", None, "vfio-pci"))
    del tree["devices/pci0000:00/0000:3b:02.0/net/pf0v0/mtu"]
    del tree["devices/pci0000:00/0000:3b:02.0/net/pf0v0/device"]
    del tree["class/net/pf0v0"]
    svc, nic, _ = make(tree)
    nic.status = {"pf0v1": NetdevStatus.BUSY, "pf0v2": NetdevStatus.ABSENT}
    svc.create_network(net_id(1), options(pf_iface="pf0"), GATEWAY)
    svc.create_endpoint(net_id(1), ep_id(1))
    assert svc.endpoint_info(ep_id(1)).vf == 3
    with pytest.raises(Conflict) as err:
        svc.create_endpoint(net_id(1), ep_id(2))
    assert "pf0 (link up): 1 of 4 leased, 3 unusable" in err.value.message


def test_create_endpoint_asks_about_the_netdev_of_the_vf_it_leases_and_no_other(make):
    """The cost of CreateEndpoint must not grow with the VFs a PF has, nor with the host."""
    svc, nic, _ = make(nic_tree(vfs0=8))
    svc.create_network(net_id(1), options(pf_iface="pf0"), GATEWAY)
    nic.status = {"pf0v0": NetdevStatus.BUSY}
    svc.create_endpoint(net_id(1), ep_id(1))
    assert nic.asked == ["pf0v0", "pf0v1"]  # VF 0 is busy; VF 1 is leased
    nic.asked.clear()
    svc.create_endpoint(net_id(1), ep_id(2))
    assert nic.asked == ["pf0v0", "pf0v2"]


def test_several_pfs_draw_from_the_one_with_most_free_vfs(make):
    svc, _, _ = make(nic_tree(vfs0=2, vfs1=3))
    svc.create_network(net_id(1), options(pf_iface="pf0,pf1"), GATEWAY)
    leased = []
    for n in range(5):
        svc.create_endpoint(net_id(1), ep_id(n))
        info = svc.endpoint_info(ep_id(n))
        leased.append((info.pf, info.vf))
    assert leased == [("pf1", 0), ("pf0", 0), ("pf1", 1), ("pf0", 1), ("pf1", 2)]
    with pytest.raises(
        Conflict, match=r"pf0 \(link up\): 2 of 2 leased; pf1 \(link up\): 3 of 3 leased"
    ):
        svc.create_endpoint(net_id(1), ep_id(9))


def test_vf_option_pins_by_index_and_by_pci(make):
    svc, _, _ = make()
    svc.create_network(net_id(1), options(pf_iface="pf0"), GATEWAY)
    svc.create_endpoint(net_id(1), ep_id(1), wanted=pin("2"))
    svc.create_endpoint(net_id(1), ep_id(2), wanted=pin("0000:3b:02.3"))
    assert svc.endpoint_info(ep_id(1)).vf == 2
    assert svc.endpoint_info(ep_id(2)).pci == "0000:3b:02.3"
    with pytest.raises(Conflict, match="already leased"):
        svc.create_endpoint(net_id(1), ep_id(3), wanted=pin("2"))
    with pytest.raises(InvalidRequest, match="not an enabled VF"):
        svc.create_endpoint(net_id(1), ep_id(3), wanted=pin("9"))


def test_failed_step_undoes_earlier_steps_and_releases_the_lease(make):
    svc, nic, _ = make(nic_tree(vfs0=1))
    nic.fail.add("spoofchk")
    svc.create_network(net_id(1), options(pf_iface="pf0", vlanid=5, spoofchk="off"), GATEWAY)
    with pytest.raises(DeviceError, match="spoofchk"):
        svc.create_endpoint(net_id(1), ep_id(1))
    assert nic.by_vf[("pf0", 0)] == FACTORY
    nic.fail.clear()
    svc.create_endpoint(net_id(1), ep_id(2))  # the VF was released
    assert nic.by_vf[("pf0", 0)].vlan == 5


def test_repeated_create_endpoint_returns_the_same_answer_and_leaks_nothing(make):
    svc, _, _ = make(nic_tree(vfs0=2), macs=["02:00:00:00:00:01", "02:00:00:00:00:02"])
    svc.create_network(net_id(1), options(pf_iface="pf0"), GATEWAY)
    first = svc.create_endpoint(net_id(1), ep_id(1))
    assert svc.create_endpoint(net_id(1), ep_id(1)) == first
    svc.create_endpoint(net_id(1), ep_id(2))  # VF 1 is still free


def test_join_names_the_vf_netdev_and_gateways(make):
    svc, _, _ = make()
    svc.create_network(net_id(1), options(pf_iface="pf0"), GATEWAY, "fd00::1")
    svc.create_endpoint(net_id(1), ep_id(1))
    assert svc.join(net_id(1), ep_id(1)) == JoinInfo("pf0v0", "10.1.0.1", "fd00::1")


def test_internal_network_has_no_gateway(make):
    svc, _, _ = make()
    svc.create_network(net_id(1), options(pf_iface="pf0", internal=True), GATEWAY, "fd00::1")
    svc.create_endpoint(net_id(1), ep_id(1))
    assert svc.join(net_id(1), ep_id(1)) == JoinInfo("pf0v0", None, None)


def test_same_pf_and_vlan_in_two_networks_conflicts_and_changes_nothing(make):
    svc, _, store = make()
    svc.create_network(net_id(1), options(pf_iface="pf0", vlanid=10), GATEWAY)
    with pytest.raises(
        Conflict, match=f"PF pf0 VLAN 10 is already used by network {net_id(1)[:12]}"
    ):
        svc.create_network(net_id(2), options(pf_iface="pf0", vlanid=10), GATEWAY)
    with store.transaction() as tx:
        assert tx.network(net_id(2)) is None
    svc.create_network(net_id(3), options(pf_iface="pf0", vlanid=11), GATEWAY)


def test_create_network_rejects_bad_pf_and_mtu_before_any_change(make, tmp_path):
    svc, _, store = make(nic_tree(numvfs0=0))
    with pytest.raises(InvalidRequest, match="pf9"):
        svc.create_network(net_id(1), options(pf_iface="pf0,pf9"), GATEWAY)
    with pytest.raises(InvalidRequest, match="mtu 9000 is above the MTU 1500 of PF pf0"):
        svc.create_network(net_id(1), options(pf_iface="pf0", mtu=9000), GATEWAY)
    assert numvfs_of_pf0(tmp_path) == 0
    with store.transaction() as tx:
        assert tx.network(net_id(1)) is None


def test_create_network_enables_vfs_when_numvfs_is_zero(make, tmp_path):
    svc, _, _ = make(nic_tree(numvfs0=0))
    svc.create_network(net_id(1), options(pf_iface="pf0"), GATEWAY)
    assert numvfs_of_pf0(tmp_path) == 4


def test_unknown_network_and_unknown_endpoint(make):
    svc, _, _ = make()
    with pytest.raises(InvalidRequest, match="not an sriov network"):
        svc.create_endpoint(net_id(5), ep_id(1))
    svc.delete_endpoint(ep_id(7))  # unknown: succeeds
    svc.delete_network(net_id(7))


def test_delete_network_releases_endpoints_docker_left_behind(make):
    svc, nic, store = make()
    svc.create_network(net_id(1), options(pf_iface="pf0", vlanid=3), GATEWAY)
    svc.create_endpoint(net_id(1), ep_id(1))
    svc.delete_network(net_id(1))
    assert nic.by_vf[("pf0", 0)] == FACTORY
    with store.transaction() as tx:
        assert tx.leased_vfs("pf0") == set()


def test_recover_undoes_an_endpoint_interrupted_while_programming(make):
    svc, nic, store = make()
    svc.create_network(net_id(1), options(pf_iface="pf0", vlanid=3), GATEWAY)
    svc.create_endpoint(net_id(1), ep_id(1))
    # as if the plugin died between lease and finish
    write_behind_the_plugin(store, "UPDATE endpoints SET state = 'programming'")
    svc.recover()
    assert nic.by_vf[("pf0", 0)] == FACTORY
    with store.transaction() as tx:
        assert tx.endpoint(ep_id(1)) is None


def test_concurrent_create_endpoint_never_leases_a_vf_twice(make):
    svc, _, _ = make(nic_tree(vfs0=4))
    svc.create_network(net_id(1), options(pf_iface="pf0"), GATEWAY)
    outcomes = []

    def create(n):
        try:
            svc.create_endpoint(net_id(1), ep_id(n))
            outcomes.append(("ok", svc.endpoint_info(ep_id(n)).vf))
        except Conflict as exc:
            outcomes.append(("conflict", exc.message))

    threads = [threading.Thread(target=create, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    leased = sorted(v for kind, v in outcomes if kind == "ok")
    assert leased == [0, 1, 2, 3]
    assert sum(kind == "conflict" for kind, _ in outcomes) == 12


def test_mac_checks():
    assert check_mac("02:42:AC:11:00:02") == "02:42:ac:11:00:02"
    for bad in ("01:00:5e:00:00:01", "00:00:00:00:00:00", "zz:42:ac:11:00:02"):
        with pytest.raises(InvalidRequest):
            check_mac(bad)
    mac = random_mac()
    assert int(mac[:2], 16) & 0x03 == 0x02  # unicast, locally administered


def test_no_backend_call_runs_while_a_store_transaction_is_open(make):
    """Other requests wait on an open transaction: netlink must not run inside one."""
    svc, nic, store = make(nic_tree(vfs0=2))
    svc.create_network(net_id(1), options(pf_iface="pf0", vlanid=7), GATEWAY)
    inside = []

    def store_is_free() -> bool:
        done = threading.Event()

        def take():
            with store.transaction():
                done.set()

        threading.Thread(target=take, daemon=True).start()
        return done.wait(timeout=5)

    for name in ("read_vf", "set_vf", "set_mtu", "netdev_statuses", "netdev_address"):
        call = getattr(nic, name)

        def checked(*args, _call=call, _name=name):
            if not store_is_free():
                inside.append(_name)
            return _call(*args)

        setattr(nic, name, checked)
    svc.create_endpoint(net_id(1), ep_id(1))
    svc.delete_endpoint(ep_id(1))
    assert [c[0] for c in nic.calls] == ["read", "mac", "vlan", "read", "mac", "vlan"]
    assert inside == []


def test_a_cleared_admin_mac_is_not_mistaken_for_an_admin_mac_on_the_next_lease(make):
    """igb reports the MAC a VF registers itself once its admin MAC is cleared."""
    svc, nic, _ = make(nic_tree(vfs0=1), macs=["02:00:00:00:00:01", "02:00:00:00:00:02"])
    svc.create_network(net_id(1), options(pf_iface="pf0"), GATEWAY)
    svc.create_endpoint(net_id(1), ep_id(1))
    svc.delete_endpoint(ep_id(1))
    vf0 = ("pf0", 0)
    assert nic.by_vf[vf0].mac == "00:00:00:00:00:00"
    # The VF resets and registers its own address; the PF now reports that.
    nic.by_vf[vf0] = dataclasses.replace(nic.by_vf[vf0], mac="02:00:00:00:00:01")
    nic.addresses["pf0v0"] = "02:00:00:00:00:01"
    svc.create_endpoint(net_id(1), ep_id(2))
    nic.calls.clear()
    svc.delete_endpoint(ep_id(2))
    assert ("mac", "00:00:00:00:00:00") in nic.calls
    assert nic.by_vf[vf0].mac == "00:00:00:00:00:00"


def test_an_admin_mac_set_by_someone_else_is_restored_as_it_was(make):
    svc, nic, _ = make(nic_tree(vfs0=1), macs=["02:00:00:00:00:01", "02:00:00:00:00:02"])
    svc.create_network(net_id(1), options(pf_iface="pf0"), GATEWAY)
    vf0 = ("pf0", 0)
    # Never released by us: a MAC the PF reports is an operator's admin MAC.
    nic.by_vf[vf0] = dataclasses.replace(FACTORY, mac="02:aa:00:00:00:01")
    nic.addresses["pf0v0"] = "02:aa:00:00:00:01"
    svc.create_endpoint(net_id(1), ep_id(1))
    svc.delete_endpoint(ep_id(1))
    assert nic.by_vf[vf0].mac == "02:aa:00:00:00:01"
    # After our release cleared nothing, an admin MAC set since is also kept.
    svc.create_endpoint(net_id(1), ep_id(2))
    svc.delete_endpoint(ep_id(2))
    assert nic.by_vf[vf0].mac == "02:aa:00:00:00:01"


def test_an_admin_mac_set_after_our_release_cleared_one_is_kept(make):
    svc, nic, _ = make(nic_tree(vfs0=1), macs=["02:00:00:00:00:01", "02:00:00:00:00:02"])
    svc.create_network(net_id(1), options(pf_iface="pf0"), GATEWAY)
    svc.create_endpoint(net_id(1), ep_id(1))
    svc.delete_endpoint(ep_id(1))
    vf0 = ("pf0", 0)
    # An operator sets an admin MAC; the VF netdev has not taken it yet.
    nic.by_vf[vf0] = dataclasses.replace(nic.by_vf[vf0], mac="02:aa:00:00:00:09")
    nic.addresses["pf0v0"] = "02:00:00:00:00:01"
    svc.create_endpoint(net_id(1), ep_id(2))
    svc.delete_endpoint(ep_id(2))
    assert nic.by_vf[vf0].mac == "02:aa:00:00:00:09"


# --- VF ranges ------------------------------------------------------------------------------


def leased_vf(svc, n: int) -> tuple[str, int]:
    info = svc.endpoint_info(ep_id(n))
    return info.pf, info.vf


def test_vfs_range_limits_every_pf_of_the_network(make):
    svc, _, _ = make(nic_tree(vfs0=4, vfs1=4))
    svc.create_network(net_id(1), options(pf_iface="pf0,pf1", vfs="1,3"), GATEWAY)
    got = []
    for n in range(4):
        svc.create_endpoint(net_id(1), ep_id(n))
        got.append(leased_vf(svc, n))
    assert sorted(got) == [("pf0", 1), ("pf0", 3), ("pf1", 1), ("pf1", 3)]
    with pytest.raises(Conflict) as err:
        svc.create_endpoint(net_id(1), ep_id(9))
    assert err.value.message == (
        "no free VF on pf0 (VFs 1,3, link up): 2 of 2 leased; pf1 (VFs 1,3, link up): 2 of 2 leased"
    )


def test_two_vlans_split_one_pf_with_per_pf_ranges(make):
    svc, nic, _ = make(nic_tree(vfs0=4))
    svc.create_network(net_id(1), options(pf_iface="pf0#0-1", vlanid=10), GATEWAY)
    svc.create_network(net_id(2), options(pf_iface="pf0#2-3", vlanid=20), GATEWAY)
    for n in range(2):
        svc.create_endpoint(net_id(2), ep_id(20 + n))
        svc.create_endpoint(net_id(1), ep_id(10 + n))
    assert [leased_vf(svc, n)[1] for n in (10, 11)] == [0, 1]
    assert [leased_vf(svc, n)[1] for n in (20, 21)] == [2, 3]
    assert [nic.by_vf[("pf0", i)].vlan for i in range(4)] == [10, 10, 20, 20]
    with pytest.raises(Conflict, match=r"pf0 \(VFs 0-1, link up\): 2 of 2 leased"):
        svc.create_endpoint(net_id(1), ep_id(12))


def test_overlapping_ranges_compete_and_a_vf_is_leased_once(make):
    svc, _, _ = make(nic_tree(vfs0=4))
    svc.create_network(net_id(1), options(pf_iface="pf0#0-2", vlanid=10), GATEWAY)
    svc.create_network(net_id(2), options(pf_iface="pf0", vfs="1-3", vlanid=20), GATEWAY)
    svc.create_endpoint(net_id(2), ep_id(1))  # VF 1, in both ranges
    svc.create_endpoint(net_id(1), ep_id(2))
    svc.create_endpoint(net_id(1), ep_id(3))
    assert [leased_vf(svc, n)[1] for n in (1, 2, 3)] == [1, 0, 2]
    with pytest.raises(Conflict, match=r"pf0 \(VFs 0-2, link up\): 3 of 3 leased"):
        svc.create_endpoint(net_id(1), ep_id(4))  # the other network holds VF 1
    svc.create_endpoint(net_id(2), ep_id(5))
    assert leased_vf(svc, 5) == ("pf0", 3)


def test_same_pf_and_vlan_conflicts_even_with_disjoint_ranges(make):
    svc, _, _ = make()
    svc.create_network(net_id(1), options(pf_iface="pf0#0-1", vlanid=10), GATEWAY)
    with pytest.raises(Conflict, match="PF pf0 VLAN 10 is already used by network"):
        svc.create_network(net_id(2), options(pf_iface="pf0#2-3", vlanid=10), GATEWAY)


def test_pinned_vf_must_be_in_the_range(make):
    svc, _, _ = make()
    svc.create_network(net_id(1), options(pf_iface="pf0#1-2"), GATEWAY)
    with pytest.raises(InvalidRequest) as err:
        svc.create_endpoint(net_id(1), ep_id(1), wanted=pin("3"))
    assert err.value.message == (
        "vf 3 of pf0 is outside this network's VFs 1-2 on pf0 (its vfs or pf_iface range)"
    )
    with pytest.raises(
        InvalidRequest,
        match=r"vf 0000:3b:02\.0 \(VF 0 of pf0\) is outside this network's VFs 1-2 on pf0",
    ):
        svc.create_endpoint(net_id(1), ep_id(1), wanted=pin("0000:3b:02.0"))
    svc.create_endpoint(net_id(1), ep_id(1), wanted=pin("2"))
    assert leased_vf(svc, 1) == ("pf0", 2)


def test_range_beyond_the_pfs_vfs_is_refused_at_create_and_changes_nothing(make, tmp_path):
    svc, _, store = make(nic_tree(vfs0=4, numvfs0=0))
    with pytest.raises(InvalidRequest) as err:
        svc.create_network(net_id(1), options(pf_iface="pf0", vfs="2-4"), GATEWAY)
    assert err.value.message == (
        "vfs '2-4' reaches VF 4, but PF pf0 has VFs 0-3 (sriov_totalvfs 4)"
    )
    with pytest.raises(InvalidRequest, match=r"pf_iface 'pf0#7' reaches VF 7, but PF pf0"):
        svc.create_network(net_id(1), options(pf_iface="pf0#7"), GATEWAY)
    assert numvfs_of_pf0(tmp_path) == 0
    with store.transaction() as tx:
        assert tx.network(net_id(1)) is None


# --- PFs by PCI address ------------------------------------------------------------------------


def test_pf_by_pci_address_is_recorded_by_address_and_survives_a_rename(make, tmp_path):
    svc, _, store = make(nic_tree(vfs0=2))
    svc.create_network(net_id(1), options(pf_iface=f"{PF0}#1"), GATEWAY)
    with store.transaction() as tx:
        assert tx.network(net_id(1)).pfs == (NetworkPf(PF0, "pf0", ((1, 1),)),)
    # After a reboot the PF comes up as "ens1f0": same PCI function, new netdev name.
    rename_netdev(tmp_path / "sys", PF0, "pf0", "ens1f0")
    svc.create_endpoint(net_id(1), ep_id(1))
    assert leased_vf(svc, 1) == ("ens1f0", 1)


def test_a_pf_named_by_netdev_and_by_address_is_one_pf(make):
    svc, _, _ = make()
    with pytest.raises(InvalidRequest) as err:
        svc.create_network(net_id(1), options(pf_iface=f"pf0,{PF0}"), GATEWAY)
    assert err.value.message == (
        f"pf_iface names PF pf0 ({PF0}) twice: as pf0 and as {PF0}; give it once"
    )
    svc.create_network(net_id(1), options(pf_iface="pf0", vlanid=5), GATEWAY)
    with pytest.raises(Conflict, match="PF pf0 VLAN 5 is already used by network"):
        svc.create_network(net_id(2), options(pf_iface=PF0, vlanid=5), GATEWAY)


def test_unknown_pci_address_is_refused_at_create(make, tmp_path):
    svc, _, _ = make()
    with pytest.raises(InvalidRequest) as err:
        svc.create_network(net_id(1), options(pf_iface="0000:99:00.0"), GATEWAY)
    assert err.value.message == (
        f"pf_iface 0000:99:00.0 not found (no {tmp_path}/sys/bus/pci/devices/0000:99:00.0)"
    )


def test_network_recorded_with_bare_pf_names_still_leases(make):
    """Networks stored before PFs were kept by PCI address hold a list of names."""
    svc, _, store = make()
    svc.create_network(net_id(1), options(pf_iface="pf0"), GATEWAY)
    with store.transaction() as tx:
        row = tx.network(net_id(1))
        old = network_settings(row) | {"pfs": ["pf0"]}
        del old["mac_prefix"], old["require_pf_link"]
    write_behind_the_plugin(  # as an earlier version wrote them
        store,
        ("UPDATE networks SET options = ?", (json.dumps(old),)),
        "UPDATE network_ports SET pf = 'pf0'",
    )
    svc.create_endpoint(net_id(1), ep_id(1))
    assert leased_vf(svc, 1) == ("pf0", 0)
    with pytest.raises(Conflict, match="PF pf0 VLAN 0 is already used by network"):
        svc.create_network(net_id(2), options(pf_iface=PF0), GATEWAY)


# --- link health -------------------------------------------------------------------------------


def two_pfs(link0: str, link1: str) -> dict:
    tree = nic_tree(vfs0=2, vfs1=2)
    tree.update(link_files("pf0", PF0, link0))
    tree.update(link_files("pf1", PF1, link1))
    return tree


def test_pfs_with_link_are_preferred(make):
    svc, _, _ = make(two_pfs("down", "up"))
    svc.create_network(net_id(1), options(pf_iface="pf0,pf1"), GATEWAY)
    svc.create_endpoint(net_id(1), ep_id(1))
    svc.create_endpoint(net_id(1), ep_id(2))
    # pf1 has link: it gives both its VFs before pf0 is even considered
    assert [leased_vf(svc, n) for n in (1, 2)] == [("pf1", 0), ("pf1", 1)]


def test_down_pf_still_serves_with_a_warning_when_the_pfs_with_link_are_full(make, caplog):
    svc, _, _ = make(two_pfs("down", "up"))
    svc.create_network(net_id(1), options(pf_iface="pf0,pf1"), GATEWAY)
    for n in range(2):
        svc.create_endpoint(net_id(1), ep_id(n))
    with caplog.at_level(logging.WARNING, logger="sriov"):
        svc.create_endpoint(net_id(1), ep_id(3))
    assert leased_vf(svc, 3) == ("pf0", 0)
    assert f"network {net_id(1)[:12]}: leased VF 0 of pf0 although that PF has no link" in (
        caplog.text
    )
    assert "pf0 (link down): 0 of 2 leased; pf1 (link up): 2 of 2 leased" in caplog.text


def test_every_pf_down_still_hands_out_a_vf_and_warns(make, caplog):
    svc, _, _ = make(two_pfs("down", "down"))
    with caplog.at_level(logging.WARNING, logger="sriov"):
        svc.create_network(net_id(1), options(pf_iface="pf0,pf1"), GATEWAY)
    assert f"network {net_id(1)[:12]}: no PF has link (pf0 link down, pf1 link down)" in (
        caplog.text
    )
    with caplog.at_level(logging.WARNING, logger="sriov"):
        svc.create_endpoint(net_id(1), ep_id(1))
    assert leased_vf(svc, 1) == ("pf0", 0)
    assert "although that PF has no link" in caplog.text
    assert svc.endpoint_info(ep_id(1)).pf_link == "down"


def test_require_pf_link_refuses_a_vf_without_link_and_leases_nothing(make):
    svc, _, store = make(two_pfs("down", "up"))
    opts = options(pf_iface="pf0,pf1", require_pf_link="on")
    svc.create_network(net_id(1), opts, GATEWAY)
    for n in range(2):
        svc.create_endpoint(net_id(1), ep_id(n))
    with pytest.raises(Conflict) as err:
        svc.create_endpoint(net_id(1), ep_id(3))
    assert err.value.message == (
        "no free VF on a PF with link (require_pf_link=on): "
        "pf0 (link down): 0 of 2 leased; pf1 (link up): 2 of 2 leased"
    )
    with pytest.raises(Conflict) as err:
        svc.create_endpoint(net_id(1), ep_id(4), wanted=pin("0000:3b:02.1"))
    assert err.value.message == (
        "vf 1 of pf0 is on a PF without link (link down) and the network has require_pf_link=on"
    )
    with store.transaction() as tx:
        assert tx.leased_vfs("pf0") == set()


def test_endpoint_info_reports_the_pf_link_as_it_is_now(make, tmp_path):
    svc, _, _ = make()
    svc.create_network(net_id(1), options(pf_iface="pf0"), GATEWAY)
    svc.create_endpoint(net_id(1), ep_id(1))
    assert svc.endpoint_info(ep_id(1)).pf_link == "up"
    (tmp_path / "sys/class/net/pf0/carrier").write_text("0\n")
    (tmp_path / "sys/class/net/pf0/operstate").write_text("down\n")
    assert svc.endpoint_info(ep_id(1)).pf_link == "down"


# --- MAC prefix --------------------------------------------------------------------------------


def test_generated_macs_carry_the_prefix(make):
    svc, nic, _ = make(macs=["36:11:22:33:44:55", "36:11:22:33:44:56"])
    svc.create_network(net_id(1), options(pf_iface="pf0", mac_prefix="02:A0:00"), GATEWAY)
    created = svc.create_endpoint(net_id(1), ep_id(1))
    assert created == EndpointCreated(mac="02:a0:00:33:44:55")
    assert nic.by_vf[("pf0", 0)].mac == "02:a0:00:33:44:55"


def test_a_mac_given_by_docker_wins_over_the_prefix(make):
    svc, nic, _ = make()
    svc.create_network(net_id(1), options(pf_iface="pf0", mac_prefix="02:a0:00"), GATEWAY)
    assert svc.create_endpoint(net_id(1), ep_id(1), mac="02:42:0a:01:00:09").mac == (
        "02:42:0a:01:00:09"
    )
    assert nic.by_vf[("pf0", 0)].mac == "02:42:0a:01:00:09"


def test_a_generated_mac_the_network_already_holds_is_drawn_again(make):
    macs = ["36:00:00:00:00:07", "36:00:00:00:00:07", "36:00:00:00:00:08"]
    svc, _, _ = make(macs=macs)
    svc.create_network(net_id(1), options(pf_iface="pf0", mac_prefix="02:a0:00:00:00"), GATEWAY)
    svc.create_endpoint(net_id(1), ep_id(1))
    svc.create_endpoint(net_id(1), ep_id(2))
    assert [svc.endpoint_info(ep_id(n)).mac for n in (1, 2)] == [
        "02:a0:00:00:00:07",
        "02:a0:00:00:00:08",
    ]


def test_with_prefix_keeps_the_random_tail():
    assert with_prefix("00:1b", "36:ab:cd:ef:01:23") == "00:1b:cd:ef:01:23"
    assert with_prefix(None, "36:ab:cd:ef:01:23") == "36:ab:cd:ef:01:23"


def test_pinned_vf_on_a_pf_without_link_is_leased_with_a_warning(make, caplog):
    svc, _, _ = make(two_pfs("down", "up"))
    svc.create_network(net_id(1), options(pf_iface="pf0,pf1"), GATEWAY)
    with caplog.at_level(logging.WARNING, logger="sriov"):
        svc.create_endpoint(net_id(1), ep_id(1), wanted=pin("0000:3b:02.1"))
    assert leased_vf(svc, 1) == ("pf0", 1)
    assert "leased VF 1 of pf0 although that PF has no link" in caplog.text


def test_an_admin_mac_cleared_by_the_undo_of_a_failed_endpoint_is_not_taken_for_one(make):
    svc, nic, _ = make(nic_tree(vfs0=1), macs=["02:00:00:00:00:01", "02:00:00:00:00:02"])
    svc.create_network(net_id(1), options(pf_iface="pf0", link_state="enable"), GATEWAY)
    nic.fail.add("link_state")
    with pytest.raises(DeviceError):
        svc.create_endpoint(net_id(1), ep_id(1))
    vf0 = ("pf0", 0)
    # The VF resets later and registers its netdev's address, which the PF then reports.
    nic.by_vf[vf0] = dataclasses.replace(nic.by_vf[vf0], mac="02:00:00:00:00:01")
    nic.addresses["pf0v0"] = "02:00:00:00:00:01"
    nic.fail.clear()
    svc.create_endpoint(net_id(1), ep_id(2))
    svc.delete_endpoint(ep_id(2))
    assert nic.by_vf[vf0].mac == "00:00:00:00:00:00"


class ResettingSysfs(Sysfs):
    """Enabling VFs resets the PF, as igb does: its carrier drops and returns later.

    operstate still says "up" for a moment (the kernel's link watch lags the carrier).
    """

    def set_numvfs(self, pf_name: str, n: int) -> None:
        super().set_numvfs(pf_name, n)
        (self.root / f"class/net/{pf_name}/carrier").write_text("0\n")


def test_create_network_waits_for_the_link_that_enabling_vfs_took_down(tmp_path):
    sysfs = ResettingSysfs(build(tmp_path / "sys", nic_tree(vfs0=2, numvfs0=0)))
    carrier = sysfs.root / "class/net/pf0/carrier"
    naps = []

    def sleep(seconds):  # the link returns after the third wait
        naps.append(seconds)
        if len(naps) == 3:
            carrier.write_text("1\n")

    svc = NetworkService(Store(tmp_path / "state"), sysfs, FakeNic(), sleep=sleep)
    svc.create_network(net_id(1), options(pf_iface="pf0", max_tx_rate=100), GATEWAY)
    assert len(naps) == 3
    assert carrier.read_text() == "1\n"


def test_create_network_stops_waiting_for_a_link_that_does_not_return(tmp_path, caplog):
    sysfs = ResettingSysfs(build(tmp_path / "sys", nic_tree(vfs0=2, numvfs0=0)))
    now = [0.0]
    svc = NetworkService(
        Store(tmp_path / "state"),
        sysfs,
        FakeNic(),
        clock=lambda: now[0],
        sleep=lambda seconds: now.__setitem__(0, now[0] + seconds),
    )
    svc.create_network(net_id(1), options(pf_iface="pf0"), GATEWAY)
    assert 10 <= now[0] < 10.2
    assert "pf0: no link 10 s after enabling VFs" in caplog.text
    svc.create_network(net_id(2), options(pf_iface="pf0", vlanid=5), GATEWAY)
    assert now[0] < 10.2  # VFs already enabled: nothing to wait for


# --- a VF is found by its PCI address, never by a name remembered from its lease ---------------


def test_release_after_netdev_names_swapped_works_on_each_vfs_own_netdev(make, tmp_path):
    """Kata gives VFs back to their driver in reverse order: their ethN names come back swapped.

    The release of VF 0 must act on the netdev VF 0 has now (the name VF 1 had at
    lease time) and never touch VF 1, which another container still holds.
    """
    svc, nic, _ = make(nic_tree(vfs0=2), macs=["02:00:00:00:00:01", "02:00:00:00:00:02"])
    svc.create_network(net_id(1), options(pf_iface="pf0", vlanid=10, mtu=1400), GATEWAY)
    svc.create_endpoint(net_id(1), ep_id(1))
    svc.create_endpoint(net_id(1), ep_id(2))
    held_by_2 = nic.by_vf[("pf0", 1)]
    swap_netdevs(tmp_path / "sys", ("0000:3b:02.0", "pf0v0"), ("0000:3b:02.1", "pf0v1"))
    nic.targets.clear()

    assert svc.join(net_id(1), ep_id(1)).netdev == "pf0v1"
    assert svc.endpoint_info(ep_id(1)).netdev == "pf0v1"
    svc.delete_endpoint(ep_id(1))

    assert set(nic.targets) == {("pf0", 0, "pf0v1")}
    assert nic.by_vf[("pf0", 0)] == FACTORY
    assert nic.by_vf[("pf0", 1)] == held_by_2
    assert svc.endpoint_info(ep_id(2)).netdev == "pf0v0"


def test_a_vf_bound_to_vfio_pci_at_release_is_restored_through_its_pf_and_released(make, tmp_path):
    """Kata moved the VF into its VM (vfio-pci) and the container ended before it gave it back."""
    svc, nic, store = make(nic_tree(vfs0=1))
    svc.create_network(net_id(1), options(pf_iface="pf0", vlanid=10, mtu=1400), GATEWAY)
    svc.create_endpoint(net_id(1), ep_id(1))
    bind_to_vfio(tmp_path / "sys", "0000:3b:02.0")
    nic.calls.clear()

    svc.delete_endpoint(ep_id(1))

    assert ("mtu", 1500) not in nic.calls  # no netdev to carry an MTU
    assert nic.by_vf[("pf0", 0)].mac == FACTORY.mac
    assert nic.by_vf[("pf0", 0)].vlan == 0
    with store.transaction() as tx:
        assert tx.endpoint(ep_id(1)) is None


def test_a_lease_whose_vf_is_gone_is_released_without_touching_the_nic(make, tmp_path):
    svc, nic, store = make(nic_tree(vfs0=2))
    svc.create_network(net_id(1), options(pf_iface="pf0"), GATEWAY)
    svc.create_endpoint(net_id(1), ep_id(1))
    sys_root = tmp_path / "sys"
    (sys_root / "bus/pci/devices/0000:3b:02.0").unlink()  # sriov_numvfs went to 0 and back
    nic.calls.clear()

    svc.delete_endpoint(ep_id(1))

    assert nic.calls == []
    with store.transaction() as tx:
        assert tx.endpoint(ep_id(1)) is None
