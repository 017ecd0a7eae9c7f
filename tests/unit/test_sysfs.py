import os

import pytest
from sysfs_trees import (
    PCI_ROOT,
    Link,
    build,
    netdev,
    pci_function,
    pf,
    rename_netdev,
    swap_netdevs,
    vf,
)

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


def test_vf_by_pci_reads_the_vf_as_it_is_now(sysfs, tmp_path):
    s = sysfs({**two_vfs(), **vf(PF_PCI, 2, "0000:3b:02.2", "enp1s0f0v2")})
    assert s.vf_by_pci("0000:3B:02.1") == s.vf("enp1s0f0", 1)
    swap_netdevs(tmp_path, ("0000:3b:02.0", "enp1s0f0v0"), ("0000:3b:02.1", "enp1s0f0v1"))
    rename_netdev(tmp_path, PF_PCI, "enp1s0f0", "ens1f0")
    assert s.vf_by_pci("0000:3b:02.1") == VfInfo("ens1f0", 1, "0000:3b:02.1", "enp1s0f0v0", "iavf")
    assert s.vf_by_pci("0000:3b:02.2") is None  # its link is there, but numvfs is 2
    assert s.vf_by_pci("0000:3b:07.0") is None  # no such function
    assert s.vf_by_pci(PF_PCI) is None  # a PF is no VF


def test_vf_by_pci_checks_the_address_before_any_path(sysfs):
    with pytest.raises(InvalidRequest, match=r"VF '\.\./\.\./x' is not a PCI address"):
        sysfs(two_vfs()).vf_by_pci("../../x")


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


@pytest.mark.parametrize(
    ("physfn", "error"),
    [
        (Link("../0000:3b:09.0"), r"physfn: it points to \.\./0000:3b:09.0"),
        ("oops", r"read link .*physfn: Invalid argument"),  # a file, not a link
    ],
)
def test_broken_physfn_is_an_error_not_a_non_vf(sysfs, physfn, error):
    tree = two_vfs()
    tree[f"{PCI_ROOT}/0000:3b:02.1/physfn"] = physfn
    with pytest.raises(DeviceError, match=error):
        sysfs(tree).pf("enp1s0f0v1")


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


# --- PFs by PCI address -------------------------------------------------------------------


def test_pf_by_pci_finds_the_pf_by_its_netdev(sysfs):
    assert sysfs(two_vfs()).pf_by_pci("0000:3B:00.0") == PfInfo(
        name="enp1s0f0", pci=PF_PCI, totalvfs=8, numvfs=2, mtu=9000
    )


def test_pf_by_pci_follows_a_rename(sysfs):
    tree = {**pf("ens1f0np0", PF_PCI, totalvfs=4, numvfs=0)}
    assert sysfs(tree).pf_by_pci(PF_PCI).name == "ens1f0np0"


def test_pf_by_pci_checks_the_address_before_any_path(sysfs):
    with pytest.raises(InvalidRequest) as err:
        sysfs(two_vfs()).pf_by_pci("../../../etc")
    assert err.value.message == (
        "pf_iface '../../../etc' is not a PCI address: expected domain:bus:device.function "
        "like 0000:3b:02.0"
    )


def test_pf_by_pci_of_a_missing_device(sysfs, tmp_path):
    with pytest.raises(InvalidRequest) as err:
        sysfs(two_vfs()).pf_by_pci("0000:5e:00.1")
    assert err.value.message == (
        f"pf_iface 0000:5e:00.1 not found (no {tmp_path}/bus/pci/devices/0000:5e:00.1)"
    )


def test_pf_by_pci_without_a_netdev(sysfs, tmp_path):
    tree = {**two_vfs(), **pci_function("0000:5e:00.0", "vfio-pci")}
    with pytest.raises(InvalidRequest) as err:
        sysfs(tree).pf_by_pci("0000:5e:00.0")
    assert err.value.message == (
        f"pf_iface 0000:5e:00.0 has no netdev (no {tmp_path}/bus/pci/devices/0000:5e:00.0/net): "
        "no network driver is bound, or it is not a network device"
    )


def test_pf_by_pci_with_two_netdevs_asks_for_the_name(sysfs):
    tree = {**two_vfs(), **netdev("enp1s0d1", PF_PCI)}
    with pytest.raises(InvalidRequest) as err:
        sysfs(tree).pf_by_pci(PF_PCI)
    assert err.value.message == (
        f"pf_iface {PF_PCI} has several netdevs (enp1s0d1, enp1s0f0); "
        "give the PF's interface name instead"
    )


def test_pf_by_pci_of_a_vf_names_its_pf(sysfs):
    with pytest.raises(InvalidRequest, match=r"enp1s0f0v1 is a VF of the PF at 0000:3b:00\.0"):
        sysfs(two_vfs()).pf_by_pci("0000:3b:02.1")


# --- link state ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operstate", "carrier", "link"),
    [
        ("up", "1", "up"),
        ("down", "0", "down"),
        ("lowerlayerdown", "0", "down"),
        ("notpresent", None, "down"),
        ("unknown", "1", "up"),  # drivers that do not track operstate
        ("unknown", "0", "down"),
        ("dormant", None, "unknown"),
        (None, None, "unknown"),
        ("up", "0", "down"),  # just after a PF reset: operstate lags the carrier
        ("down", "1", "up"),  # and the other way round, as the link returns
        ("up", None, "up"),  # no carrier file: operstate alone
    ],
)
def test_pf_link_from_carrier_then_operstate(sysfs, operstate, carrier, link):
    tree = pf("p0", PF_PCI, 4, 0, link=None)
    netdir = f"{PCI_ROOT}/{PF_PCI}/net/p0"
    if operstate:
        tree[f"{netdir}/operstate"] = f"{operstate}\n"
    if carrier:
        tree[f"{netdir}/carrier"] = f"{carrier}\n"
    assert sysfs(tree).pf_link("p0") == link


def test_pf_link_when_the_kernel_refuses_carrier(sysfs):
    """The kernel answers EINVAL for carrier of a netdev that is administratively down."""
    tree = pf("p0", PF_PCI, 4, 0, link=None)
    tree[f"{PCI_ROOT}/{PF_PCI}/net/p0/operstate"] = "unknown\n"
    tree[f"{PCI_ROOT}/{PF_PCI}/net/p0/carrier"] = Link("/proc/self/mem")  # read() fails: EIO
    assert sysfs(tree).pf_link("p0") == "unknown"


def test_pf_link_checks_the_name(sysfs):
    with pytest.raises(InvalidRequest, match="not a valid interface name"):
        sysfs(two_vfs()).pf_link("../x")


def test_a_pf_whose_class_net_entry_is_a_directory_is_still_found(sysfs, tmp_path):
    """class/net/<pf> is a link on every kernel we know; a real directory is read the long way."""
    tree = two_vfs()
    del tree["class/net/enp1s0f0"]
    tree["class/net/enp1s0f0/device"] = Link(f"../../../{PCI_ROOT}/{PF_PCI}")
    tree["class/net/enp1s0f0/mtu"] = "9000\n"
    s = sysfs(tree)
    assert s.pf("enp1s0f0").pci == PF_PCI
    assert [v.index for v in s.vfs("enp1s0f0")] == [0, 1]


def test_a_pf_reached_through_a_root_that_is_itself_a_link(tmp_path):
    build(tmp_path / "real", two_vfs())
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    assert Sysfs(tmp_path / "alias").pf("enp1s0f0").numvfs == 2
