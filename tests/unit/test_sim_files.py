"""The simulated NIC's files without its links: the state files and the sysfs tree.

The veths and bridges need root and a namespace (tests/integration/test_sim.py);
what the simulation writes to disk does not.
"""

import json

import pytest

from plugin.errors import Conflict, InvalidRequest
from plugin.nic.base import VfStats
from plugin.nic.sim import device, state, tree
from plugin.nic.sysfs import Sysfs


def pf_state(pf="tps", vfs=2, **extra):
    return {
        "pf": pf,
        "bus": 1,
        "pci": "0000:01:00.0",
        "mtu": 1500,
        "vfs": [
            {
                "index": n,
                "pci": tree.pci_address(1, tree.FIRST_VF_DEVFN + n),
                "netdev": f"{pf}v{n}",
                "peer": f"sabcdef01p{n}",
                **state.FACTORY_SETTINGS,
            }
            for n in range(vfs)
        ],
        **extra,
    }


def test_settings_saved_in_place_read_back_when_the_file_shrinks(tmp_path):
    with state.locked(tmp_path):
        written = pf_state(fabric="tor1")
        written["vfs"][0].update(vlan=4094, max_tx_rate=100000)
        state.write_pf(tmp_path, written)
        loaded = state.load_pf(tmp_path, "tps")
        state.vf_state(loaded, 0).update(vlan=0, max_tx_rate=0)
        state.save_settings(tmp_path, loaded)
        assert state.load_pf(tmp_path, "tps") == loaded
    text = (tmp_path / "sriov-sim/tps.json").read_text()
    assert text.endswith(" ") and json.loads(text) == loaded


def test_a_missing_pf_or_vf_is_named(tmp_path):
    with state.locked(tmp_path):
        assert state.find_pf(tmp_path, "tps") is None
        with pytest.raises(InvalidRequest, match=f"no simulated PF tps under {tmp_path}"):
            state.load_pf(tmp_path, "tps")
        with pytest.raises(InvalidRequest, match="simulated PF tps has no VF 2"):
            state.vf_state(pf_state(), 2)


def test_the_fabric_is_the_pfs_own_or_else_the_roots(tmp_path):
    with state.locked(tmp_path):
        assert state.pf_fabric(tmp_path, pf_state(fabric="tor1")) == "tor1"
        root_id = state.root_ids(tmp_path)["id"]
        assert state.pf_fabric(tmp_path, pf_state()) == root_id


def test_a_root_with_pfs_keeps_its_fabric(tmp_path):
    with state.locked(tmp_path):
        assert state.join_fabric(tmp_path, "tor1")["fabric"] == "tor1"
        state.write_pf(tmp_path, pf_state(fabric="tor1"))
        with pytest.raises(Conflict, match="is on fabric tor1, not tor2"):
            state.join_fabric(tmp_path, "tor2")
        assert state.join_fabric(tmp_path, None)["fabric"] == "tor1"


def test_the_tree_reads_as_the_kernels(tmp_path):
    made = pf_state(vfs=3)
    tree.build_tree(tmp_path, made, numvfs=2)
    sysfs = Sysfs(tmp_path)
    found = sysfs.pf("tps")
    assert (found.pci, found.totalvfs, found.numvfs, found.mtu) == ("0000:01:00.0", 3, 2, 1500)
    assert [(v.index, v.pci, v.netdev, v.driver) for v in sysfs.vfs("tps")] == [
        (0, "0000:01:02.0", "tpsv0", "sim_vf"),
        (1, "0000:01:02.1", "tpsv1", "sim_vf"),
    ]
    assert sysfs.pf_link("tps") == "up"
    tree.write_link(tmp_path, made, up=False)
    assert sysfs.pf_link("tps") == "down"

    tree.remove_tree(tmp_path, made)
    assert not tree.has_netdev(tmp_path, "tps")
    assert list((tmp_path / "class/net").iterdir()) == []
    assert list((tmp_path / tree.PCI_ROOT).iterdir()) == []


# /proc/net/dev as the kernel writes it: two header lines, then "name: " and 16 counters.
PROC_NET_DEV = """\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0
sabcdef01p0:     980      10    0    2    0     0          0         4     1960      20    0    3    0     0       0          0
"""  # noqa: E501


def test_a_vfs_traffic_is_its_switch_ports_counters_the_other_way_round(tmp_path):
    """What the port received the VF sent; a VF whose port is gone has no counters."""
    with state.locked(tmp_path):
        state.write_pf(tmp_path, pf_state())
    proc = tmp_path / "dev"
    proc.write_text(PROC_NET_DEV)

    stats = device.vf_stats(tmp_path, "tps", proc)

    assert stats == {
        0: VfStats(rx_packets=20, tx_packets=10, rx_bytes=1960, tx_bytes=980, rx_dropped=3,
                   tx_dropped=2),
    }  # fmt: skip
    assert stats[0].broadcast is None and stats[0].multicast is None  # a veth counts neither
