"""The managed plugin inside a real dockerd in the guest, on the igb PF (see engine.py)."""

from __future__ import annotations

import dataclasses
import errno
import os
import time

import pytest
import vfio
from engine import IMAGE, PLUGIN, container_mac, docker, timed
from engine import engine as guest_engine
from igb import NO_MAC, Pf, Vf, run, wait_for

RUNS_ON_ONE_VF = 10


@pytest.fixture(scope="module")
def engine(pf: Pf):
    """dockerd with the sriov plugin enabled and the test image loaded."""
    with guest_engine():
        yield


@pytest.fixture(scope="module")
def vfnet(engine, pf: Pf):
    """An sriov network on the igb PF, VLAN 300; removed (and VFs disabled) at the end."""
    docker(
        "network", "create", "-d", PLUGIN, "--ipam-driver", PLUGIN,
        "-o", f"pf_iface={pf.name}", "-o", "vlanid=300",
        "--subnet", "10.70.0.0/24", "vfnet",
    )  # fmt: skip
    pf.mailbox_proven()
    yield "vfnet"
    docker("network", "rm", "vfnet", check=False)
    pf.set_numvfs(0)


def test_docker_run_gets_an_igbvf_vf_with_its_vlan_and_the_vf_comes_back(vfnet, pf: Pf):
    before = {n: pf.vf(n) for n in range(pf.numvfs)}
    started = time.monotonic()
    docker("run", "-d", "--name", "c1", "--net", vfnet, IMAGE, "sleep", "600")
    timed("docker run -d", started)
    try:
        mac = container_mac(docker("exec", "c1", "ip", "-o", "link", "show", "eth0").stdout)
        leased = [n for n in before if pf.netdev(n) is None]
        assert len(leased) == 1, "exactly one VF left the host namespace"
        assert pf.vf_driver(leased[0]) == "igbvf"
        vf = pf.vf(leased[0])
        assert (vf.mac, vf.vlan) == (mac, 300), "the container's eth0 is that VF, on VLAN 300"
    finally:
        docker("rm", "-f", "c1")
    wait_for("the VF netdev back on the host", lambda: pf.netdev(leased[0]))
    after = pf.vf(leased[0])
    assert (after.mac, after.vlan, after.mtu) == (NO_MAC, 0, before[leased[0]].mtu), (
        pf.ip_link_line(leased[0])
    )


def test_many_containers_in_turn_on_the_same_vf(vfnet, pf: Pf):
    """Bug 4: libnetwork sets the endpoint's MAC on the VF inside the container after Join."""
    failures = []
    macs = set()
    started = time.monotonic()
    for n in range(RUNS_ON_ONE_VF):
        proc = docker(
            "run", "--rm", "--network", f"name={vfnet},driver-opt=vf=3", IMAGE,
            "ip", "-o", "link", "show", "eth0", check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            failures.append(f"run {n}: {proc.stderr.strip()}")
        else:
            macs.add(container_mac(proc.stdout))
        wait_for("VF 3 back on the host", lambda: pf.netdev(3))
    timed(f"{RUNS_ON_ONE_VF} docker runs on VF 3", started)
    overrides = run("dmesg").stdout.count("VF 3 attempted to override")
    assert not failures, "\n".join(failures) + f"\n({overrides} igb override refusals in dmesg)"
    assert len(macs) == RUNS_ON_ONE_VF, "each container got its own admin MAC"
    assert pf.vf(3).mac == NO_MAC, pf.ip_link_line(3)


def test_docker_run_on_a_setting_igb_refuses_says_the_kernels_reason(vfnet, pf: Pf):
    """The user reads igb's EOPNOTSUPP for link_state in `docker run`'s error, and the VF is
    left as it was."""
    docker(
        "network", "create", "-d", PLUGIN, "--ipam-driver", PLUGIN,
        "-o", f"pf_iface={pf.name}", "-o", "link_state=enable",
        "--subnet", "10.71.0.0/24", "statenet",
    )  # fmt: skip
    try:
        before = dataclasses.replace(pf.vf(4), netdev_mac=None)
        proc = docker(
            "run", "--rm", "--network", "name=statenet,driver-opt=vf=4", IMAGE, "true",
            check=False,
        )  # fmt: skip
        assert proc.returncode != 0, proc.stdout
        assert "link_state" in proc.stderr and "VF 4 of" in proc.stderr, proc.stderr
        assert os.strerror(errno.EOPNOTSUPP) in proc.stderr, proc.stderr
        assert dataclasses.replace(pf.vf(4), netdev_mac=None) == before, pf.ip_link_line(4)
    finally:
        docker("network", "rm", "statenet", check=False)


def settings(vf: Vf) -> Vf:
    """What the plugin programs and restores through the PF, and the netdev's MTU."""
    return dataclasses.replace(vf, netdev_mac=None)


@pytest.fixture(scope="module")
def katanet(engine, pf: Pf):
    """A network setting everything igb keeps per VF, for containers whose VF Kata takes."""
    docker(
        "network", "create", "-d", PLUGIN, "--ipam-driver", PLUGIN, "-o", f"pf_iface={pf.name}",
        "-o", "vlanid=400", "-o", "vlan_qos=4", "-o", "max_tx_rate=50", "-o", "trust=on",
        "-o", "spoofchk=off", "-o", "mtu=1400", "--subnet", "10.72.0.0/24", "katanet",
    )  # fmt: skip
    pf.mailbox_proven()
    yield "katanet"
    docker("network", "rm", "katanet", check=False)


def kata_container(pf: Pf, name: str, vf: int) -> Vf:
    """docker run on katanet pinned to ``vf``; what the PF then reports for it."""
    docker("run", "-d", "--name", name, "--network", f"name=katanet,driver-opt=vf={vf}",
           IMAGE, "sleep", "600")  # fmt: skip
    leased = pf.vf(vf)
    assert pf.netdev(vf) is None, f"VF {vf}'s netdev is in the container"
    assert (leased.vlan, leased.qos, leased.max_tx_rate) == (400, 4, 50), pf.ip_link_line(vf)
    assert (leased.trust, leased.spoofchk) == (True, False), pf.ip_link_line(vf)
    return leased


def kata_takes(pf: Pf, vf: int) -> None:
    """Kata starts its VM: the VF leaves igbvf for vfio-pci and is opened (and reset)."""
    admin = pf.vf(vf)
    pci = pf.vf_pci(vf)
    vfio.rebind(pci, "vfio-pci")
    with vfio.opened_as_a_vm_would(pci) as info:
        assert info["pci"] and info["regions"] > 0, info
        held = pf.vf(vf)
        assert (held.mac, held.vlan, held.qos) == (admin.mac, admin.vlan, admin.qos), (
            f"the VM finds the VF by its admin MAC: {pf.ip_link_line(vf)}"
        )


def kata_gives_back(pf: Pf, vf: int) -> str:
    """Kata's cleanup: the VF back on igbvf; its netdev comes back in the host namespace."""
    vfio.rebind(pf.vf_pci(vf), "igbvf")
    return wait_for(f"VF {vf}'s netdev back on the host", lambda: pf.netdev(vf))


def kernel_log_during(action) -> list[str]:
    """The kernel log lines written while ``action()`` ran."""
    before = len(run("dmesg").stdout.splitlines())
    action()
    return run("dmesg").stdout.splitlines()[before:]


def test_a_vf_kata_takes_and_gives_back_is_released_restored_and_handed_out_again(katanet, pf):
    before = {n: settings(pf.vf(n)) for n in range(pf.numvfs)}
    kata_container(pf, "kata1", 1)
    kata_takes(pf, 1)
    kata_gives_back(pf, 1)
    docker("rm", "-f", "kata1")
    for n in range(pf.numvfs):
        assert settings(pf.vf(n)) == before[n], f"VF {n} not restored: {pf.ip_link_line(n)}"
    again = docker("run", "--rm", "--network", "name=katanet,driver-opt=vf=1", IMAGE,
                   "ip", "-o", "link", "show", "eth0")  # fmt: skip
    assert "mtu 1400" in again.stdout, again.stdout
    assert settings(pf.vf(1)) == before[1], pf.ip_link_line(1)


def test_a_container_ending_while_its_vf_is_on_vfio_pci_releases_it_and_restores_the_pf_side(
    katanet, pf
):
    before = {n: settings(pf.vf(n)) for n in range(pf.numvfs)}
    kata_container(pf, "kata2", 2)
    kata_takes(pf, 2)
    assert vfio.driver(pf.vf_pci(2)) == "vfio-pci"
    docker("rm", "-f", "kata2")
    # Its netdev is gone (no MTU to restore); everything the PF keeps is restored.
    assert settings(pf.vf(2)) == dataclasses.replace(before[2], mtu=None), pf.ip_link_line(2)
    refused = docker("run", "--rm", "--network", "name=katanet,driver-opt=vf=2", IMAGE, "true",
                     check=False)  # fmt: skip
    assert refused.returncode != 0 and "vf 2 of" in refused.stderr.lower(), refused.stderr
    kata_gives_back(pf, 2)
    # With no admin MAC, igbvf registers a MAC of its own when it binds: the PF reports it.
    back = pf.vf(2)
    assert back.mac in (NO_MAC, back.netdev_mac), pf.ip_link_line(2)
    assert dataclasses.replace(settings(back), mac=NO_MAC) == before[2], pf.ip_link_line(2)
    docker("run", "--rm", "--network", "name=katanet,driver-opt=vf=2", IMAGE, "true")
    for n in range(pf.numvfs):
        assert settings(pf.vf(n)) == before[n], f"VF {n} not restored: {pf.ip_link_line(n)}"


def test_two_kata_vfs_given_back_in_reverse_order_swap_names_and_each_release_hits_its_own_vf(
    katanet, pf
):
    """The kernel names a returning VF's netdev anew (lowest free ethN): the plugin must find
    each VF's netdev by its PCI address now, not by the name it had when leased."""
    before = {n: settings(pf.vf(n)) for n in range(pf.numvfs)}
    names = {4: pf.netdev(4), 5: pf.netdev(5)}
    kata_container(pf, "kata4", 4)
    kata_container(pf, "kata5", 5)
    kata_takes(pf, 4)
    kata_takes(pf, 5)
    kata_gives_back(pf, 5)
    kata_gives_back(pf, 4)
    assert (pf.netdev(4), pf.netdev(5)) == (names[5], names[4]), "the kernel swapped the names"
    held = pf.vf(5)
    released = kernel_log_during(lambda: docker("rm", "-f", "kata4"))
    assert settings(pf.vf(4)) == before[4], pf.ip_link_line(4)
    assert settings(pf.vf(5)) == settings(held), f"VF 5 was disturbed: {pf.ip_link_line(5)}"
    # The bug this guards against cycled VF 5's link and set VF 4's MAC on it.
    assert not [line for line in released if "VF 5 " in line or pf.vf_pci(5) in line], released
    docker("rm", "-f", "kata5")
    for n in range(pf.numvfs):
        assert settings(pf.vf(n)) == before[n], f"VF {n} not restored: {pf.ip_link_line(n)}"
    for vf in (4, 5):
        docker("run", "--rm", "--network", f"name=katanet,driver-opt=vf={vf}", IMAGE, "true")
