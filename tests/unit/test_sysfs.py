import os

import pytest
from sysfs_trees import PCI_ROOT, Link, build, netdev, pci_function, pf, vf

from plugin.errors import DeviceError, InvalidRequest
from plugin.nic.base import PfInfo, VfInfo
from plugin.nic.sysfs import Sysfs

PF_PCI = "0000:3b:00.0"


def two_vfs():
    return {
        **pf("enp1s0f0", PF_PCI, totalvfs=8, numvfs=2, mtu=9000),
        **vf(PF_PCI, 0, "0000:3b:02.0", "enp1s0f0v0"),
        **vf(PF_PCI, 1, "0000:3b:02.1", "enp1s0f0v1"),
    }


@pytest.fixture
def sysfs(tmp_path):
    def make(tree):
        return Sysfs(build(tmp_path, tree))

    return make


def test_pf_reads_pci_address_counts_and_mtu(sysfs):
    assert sysfs(two_vfs()).pf("enp1s0f0") == PfInfo(
        name="enp1s0f0", pci=PF_PCI, totalvfs=8, numvfs=2, mtu=9000
    )


def test_vfs_are_ordered_by_index_not_by_name(sysfs):
    tree = {**pf("p0", PF_PCI, 16, 11)}
    for i in range(11):
        tree.update(vf(PF_PCI, i, f"0000:3b:{2 + i // 8:02x}.{i % 8}", f"p0v{i}"))
    vfs = sysfs(tree).vfs("p0")
    assert [v.index for v in vfs] == list(range(11))
    assert vfs[10] == VfInfo(pf="p0", index=10, pci="0000:3b:03.2", netdev="p0v10", driver="iavf")


def test_vfs_report_netdev_and_driver(sysfs):
    assert sysfs(two_vfs()).vfs("enp1s0f0") == [
        VfInfo("enp1s0f0", 0, "0000:3b:02.0", "enp1s0f0v0", "iavf"),
        VfInfo("enp1s0f0", 1, "0000:3b:02.1", "enp1s0f0v1", "iavf"),
    ]


def test_vf_on_vfio_has_no_netdev_and_names_its_driver(sysfs):
    tree = {**pf("p0", PF_PCI, 4, 1), **vf(PF_PCI, 0, "0000:3b:02.0", None, "vfio-pci")}
    assert sysfs(tree).vfs("p0") == [VfInfo("p0", 0, "0000:3b:02.0", None, "vfio-pci")]


def test_unbound_vf_has_neither_netdev_nor_driver(sysfs):
    tree = {**pf("p0", PF_PCI, 4, 1), **vf(PF_PCI, 0, "0000:3b:02.0", None, None)}
    assert sysfs(tree).vfs("p0") == [VfInfo("p0", 0, "0000:3b:02.0", None, None)]


def test_numvfs_zero_means_no_vfs(sysfs):
    s = sysfs(pf("p0", PF_PCI, 8, 0))
    assert s.pf("p0").numvfs == 0
    assert s.vfs("p0") == []


def test_virtfn_links_beyond_numvfs_are_not_enabled_vfs(sysfs):
    tree = {**two_vfs()}
    tree[f"{PCI_ROOT}/{PF_PCI}/sriov_numvfs"] = "1\n"
    assert [v.index for v in sysfs(tree).vfs("enp1s0f0")] == [0]


def test_one_vf_reads_as_in_the_list_and_none_when_not_enabled(sysfs):
    tree = {**two_vfs(), **vf(PF_PCI, 2, "0000:3b:02.2", "enp1s0f0v2")}
    s = sysfs(tree)
    assert [s.vf("enp1s0f0", i) for i in (0, 1)] == s.vfs("enp1s0f0")
    assert s.vf("enp1s0f0", 2) is None  # its link is there, but numvfs is 2
    assert s.vf("enp1s0f0", 7) is None


def test_missing_pf_is_a_clear_user_error(sysfs, tmp_path):
    with pytest.raises(InvalidRequest) as err:
        sysfs(two_vfs()).pf("enp9s0")
    assert err.value.message == f"pf_iface enp9s0 not found (no {tmp_path}/class/net/enp9s0)"


def test_pf_without_sriov_is_a_clear_user_error(sysfs):
    tree = {**pci_function(PF_PCI, "e1000e"), **netdev("eno1", PF_PCI)}
    with pytest.raises(InvalidRequest) as err:
        sysfs(tree).pf("eno1")
    assert err.value.message == "pf_iface eno1 has no SR-IOV (no sriov_totalvfs)"


def test_virtual_netdev_is_not_a_pf(sysfs):
    tree = {**two_vfs(), "devices/virtual/net/br0/mtu": "1500\n"}
    tree["class/net/br0"] = Link("../../devices/virtual/net/br0")
    with pytest.raises(InvalidRequest, match=r"pf_iface br0 has no SR-IOV \(no .*br0/device"):
        sysfs(tree).pf("br0")


def test_vf_given_as_pf_names_the_pf(sysfs):
    with pytest.raises(InvalidRequest) as err:
        sysfs(two_vfs()).vfs("enp1s0f0v1")
    assert "pf_iface enp1s0f0v1 is a VF of the PF at 0000:3b:00.0, not a PF" in err.value.message
    assert "enp1s0f0" in err.value.message.split("not a PF")[1]


def test_invalid_pf_name_never_reaches_a_path(sysfs):
    with pytest.raises(InvalidRequest, match="not a valid interface name"):
        sysfs(two_vfs()).pf("../../etc")


def test_physfn_tells_vf_from_non_vf(sysfs):
    s = sysfs(two_vfs())
    assert s.physfn("0000:3b:02.1") == PF_PCI
    assert s.physfn(PF_PCI) is None


def test_broken_physfn_link_is_an_error_not_a_non_vf(sysfs, tmp_path):
    tree = two_vfs()
    tree[f"{PCI_ROOT}/0000:3b:02.1/physfn"] = Link("../0000:3b:09.0")
    with pytest.raises(DeviceError, match=r"physfn: it points to \.\./0000:3b:09.0"):
        sysfs(tree).physfn("0000:3b:02.1")


def test_physfn_that_is_not_a_link_is_an_error(sysfs):
    tree = two_vfs()
    tree[f"{PCI_ROOT}/0000:3b:02.1/physfn"] = "oops"
    with pytest.raises(DeviceError, match=r"read link .*physfn: Invalid argument"):
        sysfs(tree).physfn("0000:3b:02.1")


def test_dangling_virtfn_link_is_reported(sysfs):
    tree = two_vfs()
    tree[f"{PCI_ROOT}/{PF_PCI}/virtfn1"] = Link("../0000:3b:07.7")
    with pytest.raises(DeviceError, match=r"virtfn1: it points to \.\./0000:3b:07.7"):
        sysfs(tree).vfs("enp1s0f0")


def test_unreadable_count_is_a_device_error(sysfs):
    tree = two_vfs()
    tree[f"{PCI_ROOT}/{PF_PCI}/sriov_numvfs"] = "busy\n"
    with pytest.raises(DeviceError, match=r"sriov_numvfs: 'busy' is not a number"):
        sysfs(tree).pf("enp1s0f0")


def test_set_numvfs_writes_the_count(sysfs, tmp_path):
    s = sysfs(pf("p0", PF_PCI, 8, 0))
    s.set_numvfs("p0", 8)
    assert (tmp_path / PCI_ROOT / PF_PCI / "sriov_numvfs").read_text() == "8\n"
    assert s.pf("p0").numvfs == 8


@pytest.mark.parametrize("n", [-1, 9, "8", True])
def test_set_numvfs_refuses_counts_out_of_range_and_writes_nothing(sysfs, tmp_path, n):
    s = sysfs(pf("p0", PF_PCI, 8, 0))
    with pytest.raises(InvalidRequest, match="out of range 0-8 for p0"):
        s.set_numvfs("p0", n)
    assert (tmp_path / PCI_ROOT / PF_PCI / "sriov_numvfs").read_text() == "0\n"


def test_set_numvfs_failure_names_the_file_and_the_error(sysfs, tmp_path):
    s = sysfs(pf("p0", PF_PCI, 8, 0))
    path = tmp_path / PCI_ROOT / PF_PCI / "sriov_numvfs"
    path.unlink()
    # a real read-only sysfs attribute: readable, and writing it fails even for root
    path.symlink_to("/sys/class/net/lo/ifindex")
    with pytest.raises(DeviceError) as err:
        s.set_numvfs("p0", 4)
    assert err.value.message.startswith(f"write 4 to {path}: ")


def test_declared_tree_is_laid_out_like_the_kernel(tmp_path):
    build(tmp_path, two_vfs())
    assert os.readlink(tmp_path / "class/net/enp1s0f0") == f"../../{PCI_ROOT}/{PF_PCI}/net/enp1s0f0"
    assert (tmp_path / "class/net/enp1s0f0/device").resolve().name == PF_PCI
    assert (tmp_path / PCI_ROOT / PF_PCI / "virtfn1" / "physfn").resolve().name == PF_PCI
