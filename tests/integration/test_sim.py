"""The simulated NIC for real: veths, bridges and sysfs tree in a private namespace.

A fresh network namespace stands for the host, so the fabric's links never meet
the real host's. Code runs in it through ``ip netns exec`` subprocesses (the
pytest process never changes namespace); each VF netdev is then moved into a
namespace of its own, standing for a container, and pinged across the fabric.
Every namespace is deleted in teardown, which also removes any link left in it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import runid

pytestmark = pytest.mark.netns

REPO = Path(__file__).resolve().parents[2]


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr}")
    return proc


class Namespaces:
    """Named network namespaces made for one test and deleted after it."""

    def __init__(self):
        self.names: list[str] = []

    def add(self, role: str) -> str:
        name = runid.netns_name(f"sim{role}")
        run("ip", "netns", "add", name)
        self.names.append(name)
        return name

    def exec(self, ns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        return run("ip", "netns", "exec", ns, *argv, check=check)

    def python(self, ns: str, code: str) -> object:
        """Run ``code`` in ``ns``; it prints one JSON value, which is returned."""
        out = self.exec(ns, sys.executable, "-c", textwrap.dedent(code)).stdout
        return json.loads(out)

    def links(self, ns: str) -> set[str]:
        return {link["ifname"] for link in json.loads(self.exec(ns, "ip", "-j", "link").stdout)}

    def delete_all(self) -> None:
        for name in self.names:
            run("ip", "netns", "del", name, check=False)


@pytest.fixture
def namespaces():
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")
    spaces = Namespaces()
    try:
        yield spaces
    finally:
        spaces.delete_all()


def sim(namespaces: Namespaces, host: str, *args: str, check: bool = True):
    code = "import sys; from plugin.nic.sim.cli import run_cli; sys.exit(run_cli(sys.argv[1:]))"
    return namespaces.exec(host, sys.executable, "-c", code, *args, check=check)


def program(namespaces, host, root, pf, index, **settings):
    """Apply ``settings`` to a VF through SimBackend in ``host``; return what read_vf says."""
    return namespaces.python(
        host,
        f"""
        import dataclasses, json
        from plugin.nic.base import VfSettings
        from plugin.nic.program import program_vf
        from plugin.nic.sim.backend import SimBackend
        from plugin.nic.sysfs import Sysfs
        sysfs = Sysfs({str(root)!r})
        backend = SimBackend(sysfs.root)
        vf = sysfs.vfs({pf!r})[{index}]
        program_vf(backend, vf, VfSettings(**{settings!r}))
        print(json.dumps(dataclasses.asdict(backend.read_vf(vf))))
        """,
    )


def into_container(namespaces, host, netdev, address):
    """Do what Docker does with a VF: move its netdev into a namespace, address it, up."""
    container = namespaces.add(netdev[-3:])
    namespaces.exec(host, "ip", "link", "set", netdev, "netns", container)
    namespaces.exec(container, "ip", "addr", "add", f"{address}/24", "dev", netdev)
    namespaces.exec(container, "ip", "link", "set", netdev, "up")
    return container


def pings(namespaces, ns, address) -> bool:
    proc = namespaces.exec(ns, "ping", "-c", "1", "-W", "2", address, check=False)
    return proc.returncode == 0


def test_two_pfs_share_one_fabric_and_vlans_separate_vfs(namespaces, tmp_path):
    host = namespaces.add("h")
    root = tmp_path / "sys"
    sim(namespaces, host, "create", "--pf", "tpa", "--vfs", "2", "--sysfs", str(root))
    sim(namespaces, host, "create", "--pf", "tpb", "--vfs", "2", "--sysfs", str(root))

    parsed = namespaces.python(
        host,
        f"""
        import dataclasses, json
        from plugin.nic.sysfs import Sysfs
        s = Sysfs({str(root)!r})
        print(json.dumps({{pf: [dataclasses.asdict(s.pf(pf)),
                               [dataclasses.asdict(v) for v in s.vfs(pf)]]
                          for pf in ("tpa", "tpb")}}))
        """,
    )
    pf_a, vfs_a = parsed["tpa"]
    pf_b, vfs_b = parsed["tpb"]
    assert (pf_a["totalvfs"], pf_a["numvfs"], pf_a["mtu"]) == (2, 2, 1500)
    assert pf_a["pci"] != pf_b["pci"]
    assert [v["netdev"] for v in vfs_a + vfs_b] == ["tpav0", "tpav1", "tpbv0", "tpbv1"]
    assert len({v["pci"] for v in vfs_a + vfs_b}) == 4
    assert {v["driver"] for v in vfs_a + vfs_b} == {"sim_vf"}

    a0 = program(namespaces, host, root, "tpa", 0, vlan=100, mac="02:00:00:00:0a:00", mtu=9000)
    assert (a0["vlan"], a0["mac"], a0["mtu"], a0["spoofchk"]) == (
        100,
        "02:00:00:00:0a:00",
        9000,
        True,
    )
    b0 = program(namespaces, host, root, "tpb", 0, vlan=100, spoofchk=False, trust=True)
    assert (b0["vlan"], b0["spoofchk"], b0["trust"]) == (100, False, True)
    a1 = program(namespaces, host, root, "tpa", 1, vlan=200, qos=3, proto="802.1ad")
    assert (a1["vlan"], a1["qos"], a1["proto"]) == (200, 3, "802.1ad")

    ca0 = into_container(namespaces, host, "tpav0", "10.77.0.1")
    cb0 = into_container(namespaces, host, "tpbv0", "10.77.0.2")
    ca1 = into_container(namespaces, host, "tpav1", "10.77.0.3")
    mac = json.loads(namespaces.exec(ca0, "ip", "-j", "link", "show", "tpav0").stdout)[0]
    assert mac["address"] == "02:00:00:00:0a:00"

    assert pings(namespaces, ca0, "10.77.0.2"), "same VLAN, different PFs: must reach"
    assert not pings(namespaces, ca0, "10.77.0.3"), "different VLANs: must not reach"

    # The VF netdev is in a container; its switch port is not, so the VLAN still changes.
    moved = program(namespaces, host, root, "tpa", 1, vlan=100, link_state="enable")
    assert (moved["vlan"], moved["link_state"], moved["mtu"]) == (100, "enable", None)
    assert pings(namespaces, ca1, "10.77.0.1")

    shown = sim(namespaces, host, "show", "--sysfs", str(root)).stdout
    assert "PF tpa pci 0000:01:00.0 totalvfs 2 numvfs 2 mtu 1500" in shown
    lines = {line.split()[5]: line for line in shown.splitlines() if line.startswith("  VF")}
    assert "(absent)" in lines["tpav0"] and "vlan 100" in lines["tpav0"]
    assert "mac 02:00:00:00:0a:00" in lines["tpav0"]
    assert "spoofchk off trust on" in lines["tpbv0"]
    assert "qos 3 proto 802.1ad" in lines["tpav1"] and "link_state enable" in lines["tpav1"]
    bridges = {vf: line.split(" bridge ")[1].split()[0] for vf, line in lines.items()}
    assert bridges["tpav0"] == bridges["tpav1"] == bridges["tpbv0"] != bridges["tpbv1"]

    sim(namespaces, host, "destroy", "--pf", "tpa", "--sysfs", str(root))
    assert "tpbv1" in namespaces.links(host)
    assert namespaces.links(ca1) == {"lo"}, "the VF end went with its port, even in a container"
    assert not (root / "class/net/tpa").exists()
    assert program(namespaces, host, root, "tpb", 1, vlan=0)["vlan"] == 0
    sim(namespaces, host, "destroy", "--pf", "tpb", "--sysfs", str(root))
    sim(namespaces, host, "destroy", "--pf", "tpb", "--sysfs", str(root))  # idempotent
    assert namespaces.links(host) == {"lo"}
    for container in (ca0, cb0, ca1):
        assert namespaces.links(container) == {"lo"}
    assert sorted(p.name for p in (root / "sriov-sim").iterdir()) == ["fabric.json", "lock"]
    assert list((root / "class/net").iterdir()) == []
    assert list((root / "devices/pci0000:00").iterdir()) == []


def test_numvfs_zero_hides_vfs_until_written(namespaces, tmp_path):
    host = namespaces.add("h")
    root = tmp_path / "sys"
    sim(
        namespaces,
        host,
        "create",
        "--pf",
        "tpz",
        "--vfs",
        "3",
        "--numvfs",
        "0",
        "--sysfs",
        str(root),
    )
    counts = namespaces.python(
        host,
        f"""
        import json
        from plugin.nic.sysfs import Sysfs
        s = Sysfs({str(root)!r})
        before = len(s.vfs("tpz"))
        s.set_numvfs("tpz", s.pf("tpz").totalvfs)
        print(json.dumps([before, [v.netdev for v in s.vfs("tpz")]]))
        """,
    )
    assert counts == [0, ["tpzv0", "tpzv1", "tpzv2"]]


def test_create_refuses_bad_input_and_leaves_nothing(namespaces, tmp_path):
    host = namespaces.add("h")
    root = tmp_path / "sys"
    too_long = sim(
        namespaces,
        host,
        "create",
        "--pf",
        "abcdefghijklm",
        "--vfs",
        "12",
        "--sysfs",
        str(root),
        check=False,
    )
    assert too_long.returncode == 1
    assert "'abcdefghijklmv10' is not a valid interface name" in too_long.stderr
    sim(namespaces, host, "create", "--pf", "tpd", "--vfs", "1", "--sysfs", str(root))
    made = namespaces.links(host)
    again = sim(
        namespaces, host, "create", "--pf", "tpd", "--vfs", "1", "--sysfs", str(root), check=False
    )
    assert again.returncode == 1 and "already exists" in again.stderr
    assert namespaces.links(host) == made
    # a link that takes a VF's name makes create fail before any change, nothing leaks
    namespaces.exec(host, "ip", "link", "add", "tpev0", "type", "bridge")
    clash = sim(
        namespaces, host, "create", "--pf", "tpe", "--vfs", "1", "--sysfs", str(root), check=False
    )
    assert clash.returncode == 1 and "links tpev0 exist" in clash.stderr
    assert not (root / "class/net/tpe").exists()
    assert not (root / "sriov-sim/tpe.json").exists()
    assert namespaces.links(host) == made | {"tpev0"}


def test_two_roots_never_share_link_names(namespaces, tmp_path):
    host = namespaces.add("h")
    sim(namespaces, host, "create", "--pf", "tpf", "--vfs", "1", "--sysfs", str(tmp_path / "one"))
    before = namespaces.links(host)
    sim(namespaces, host, "create", "--pf", "tpg", "--vfs", "1", "--sysfs", str(tmp_path / "two"))
    added = namespaces.links(host) - before
    assert len(added) == 3  # VF, its port, and a VLAN 0 bridge of its own
    sim(namespaces, host, "destroy", "--pf", "tpg", "--sysfs", str(tmp_path / "two"))
    assert namespaces.links(host) == before


def test_root_seen_at_another_path_still_drives_the_same_fabric(namespaces, tmp_path):
    """The plugin may see the root bind-mounted elsewhere: nothing may depend on its path."""
    host = namespaces.add("h")
    root = tmp_path / "sys"
    sim(namespaces, host, "create", "--pf", "tpm", "--vfs", "2", "--sysfs", str(root))
    state = (root / "sriov-sim/tpm.json").read_text()
    assert str(tmp_path) not in state
    links = namespaces.links(host)
    elsewhere = tmp_path / "mounted-elsewhere"
    root.rename(elsewhere)
    assert program(namespaces, host, elsewhere, "tpm", 1, vlan=42)["vlan"] == 42
    bridges = namespaces.links(host) - links
    assert len(bridges) == 1 and next(iter(bridges)).endswith("b42")
    sim(namespaces, host, "destroy", "--pf", "tpm", "--sysfs", str(elsewhere))
    assert namespaces.links(host) == {"lo"}


def test_a_refused_vlan_keeps_the_mac_that_took_effect(namespaces, tmp_path):
    """set_vf stops at the first setting that fails and records those before it, as a NIC does."""
    host = namespaces.add("h")
    root = tmp_path / "sys"
    sim(namespaces, host, "create", "--pf", "tpr", "--vfs", "1", "--sysfs", str(root))
    peer = json.loads((root / "sriov-sim/tpr.json").read_text())["vfs"][0]["peer"]
    namespaces.exec(host, "ip", "link", "del", peer)  # the switch port, and the VF with it
    failed, recorded = namespaces.python(
        host,
        f"""
        import json
        from plugin.nic.sim import device
        try:
            device.set_vf({str(root)!r}, "tpr", 0, {{"mac": "02:00:00:00:00:07", "vlan": 7}})
            failed = None
        except Exception as err:
            failed = type(err).__name__
        print(json.dumps([failed, device.read_vf({str(root)!r}, "tpr", 0)]))
        """,
    )
    assert failed == "NetlinkError"
    assert (recorded["mac"], recorded["vlan"]) == ("02:00:00:00:00:07", 0)


def test_concurrent_updates_of_one_pf_lose_nothing(namespaces, tmp_path):
    host = namespaces.add("h")
    root = tmp_path / "sys"
    sim(namespaces, host, "create", "--pf", "tpc", "--vfs", "2", "--sysfs", str(root))
    code = textwrap.dedent(
        f"""
        import sys
        from plugin.nic.sim import device
        index = int(sys.argv[1])
        for rate in range(1, 41):
            device.set_vf({str(root)!r}, "tpc", index, {{"max_tx_rate": rate * (index + 1)}})
            device.set_vf({str(root)!r}, "tpc", index, {{"vlan": 10 + index}})
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    workers = [
        subprocess.Popen(["ip", "netns", "exec", host, sys.executable, "-c", code, str(i)], env=env)
        for i in (0, 1)
    ]
    assert [w.wait() for w in workers] == [0, 0]
    vfs = json.loads((root / "sriov-sim/tpc.json").read_text())["vfs"]
    assert [(vf["max_tx_rate"], vf["vlan"]) for vf in vfs] == [(40, 10), (80, 11)]


def test_a_vlan_move_reuses_the_bridges_and_destroy_removes_them(namespaces, tmp_path):
    """A VF going back and forth between VLANs moves its port; bridges are made once."""
    host = namespaces.add("h")
    root = tmp_path / "sys"
    sim(namespaces, host, "create", "--pf", "tpv", "--vfs", "2", "--sysfs", str(root))
    before = namespaces.links(host)

    def bridge_indexes() -> dict[str, int]:
        links = json.loads(
            namespaces.exec(host, "ip", "-j", "link", "show", "type", "bridge").stdout
        )
        return {link["ifname"]: link["ifindex"] for link in links}

    assert program(namespaces, host, root, "tpv", 0, vlan=42)["vlan"] == 42
    made = bridge_indexes()
    assert program(namespaces, host, root, "tpv", 0, vlan=0)["vlan"] == 0
    assert program(namespaces, host, root, "tpv", 0, vlan=42, mac="02:00:00:00:00:42")["vlan"] == 42
    assert bridge_indexes() == made  # nothing deleted and made again
    shown = {
        line.split()[1]: line
        for line in sim(namespaces, host, "show", "--sysfs", str(root)).stdout.splitlines()
        if line.startswith("  VF")
    }
    assert " bridge " + next(b for b in made if b.endswith("b42")) in shown["0"]
    assert " bridge " + next(b for b in made if b.endswith("b0")) in shown["1"]
    # the state file was rewritten in place, smaller than before: still one JSON document
    state = json.loads((root / "sriov-sim/tpv.json").read_text())
    assert state["vfs"][0]["mac"] == "02:00:00:00:00:42"
    assert namespaces.links(host) == before | {next(b for b in made if b.endswith("b42"))}
    sim(namespaces, host, "destroy", "--pf", "tpv", "--sysfs", str(root))
    assert namespaces.links(host) == {"lo"}


def test_pf_link_is_set_from_the_cli_and_read_through_sysfs(namespaces, tmp_path):
    host = namespaces.add("h")
    root = tmp_path / "sys"
    sim(namespaces, host, "create", "--pf", "tpl", "--vfs", "1", "--sysfs", str(root))
    read_link = f"""
        import json
        from plugin.nic.sysfs import Sysfs
        print(json.dumps(Sysfs({str(root)!r}).pf_link("tpl")))
        """
    assert namespaces.python(host, read_link) == "up"

    sim(namespaces, host, "link", "--pf", "tpl", "--sysfs", str(root), "down")
    assert namespaces.python(host, read_link) == "down"
    assert (root / "class/net/tpl/carrier").read_text() == "0\n"
    shown = sim(namespaces, host, "show", "--sysfs", str(root)).stdout
    assert "PF tpl pci 0000:01:00.0 totalvfs 1 numvfs 1 mtu 1500 link down" in shown

    sim(namespaces, host, "link", "--pf", "tpl", "--sysfs", str(root), "up")
    assert namespaces.python(host, read_link) == "up"
    wrong = sim(namespaces, host, "link", "--pf", "nosuch", "--sysfs", str(root), "up", check=False)
    assert wrong.returncode == 1
    assert f"sim link: no simulated PF nosuch under {root}" in wrong.stderr
    sim(namespaces, host, "destroy", "--pf", "tpl", "--sysfs", str(root))


def test_roots_on_one_fabric_share_its_switch(namespaces, tmp_path):
    """Two hosts' NICs on one top-of-rack switch: same VLAN reaches, other VLANs do not."""
    host = namespaces.add("h")
    one, two = tmp_path / "one", tmp_path / "two"
    sim(
        namespaces,
        host,
        "create",
        "--pf",
        "tph",
        "--vfs",
        "2",
        "--sysfs",
        str(one),
        "--fabric",
        "tor1",
    )
    sim(
        namespaces,
        host,
        "create",
        "--pf",
        "tpi",
        "--vfs",
        "2",
        "--sysfs",
        str(two),
        "--fabric",
        "tor1",
    )
    assert namespaces.links(host) >= {"stor1b0"}
    assert len(namespaces.links(host)) == 1 + 1 + 8, "lo, one shared bridge, 4 VFs and 4 ports"

    program(namespaces, host, one, "tph", 0, vlan=100)
    program(namespaces, host, two, "tpi", 0, vlan=100)
    program(namespaces, host, two, "tpi", 1, vlan=200)
    c_h0 = into_container(namespaces, host, "tphv0", "10.78.0.1")
    into_container(namespaces, host, "tpiv0", "10.78.0.2")
    into_container(namespaces, host, "tpiv1", "10.78.0.3")
    assert pings(namespaces, c_h0, "10.78.0.2"), "same VLAN on two roots of one fabric"
    assert not pings(namespaces, c_h0, "10.78.0.3"), "different VLANs: must not reach"

    refused = sim(
        namespaces,
        host,
        "create",
        "--pf",
        "tpj",
        "--vfs",
        "1",
        "--sysfs",
        str(one),
        "--fabric",
        "tor2",
        check=False,
    )
    assert refused.returncode == 1
    assert "is on fabric tor1, not tor2" in refused.stderr
    bad = sim(
        namespaces,
        host,
        "create",
        "--pf",
        "tpj",
        "--vfs",
        "1",
        "--sysfs",
        str(tmp_path / "three"),
        "--fabric",
        "Tor_1",
        check=False,
    )
    assert "fabric 'Tor_1' must be 1-8 lowercase letters or digits" in bad.stderr
    assert not (tmp_path / "three" / "sriov-sim" / "tpj.json").exists()

    sim(namespaces, host, "destroy", "--pf", "tph", "--sysfs", str(one))
    assert {"stor1b100", "stor1b200"} <= namespaces.links(host), "the other root still uses them"
    assert "stor1b0" not in namespaces.links(host), "no port of either root is on VLAN 0"
    sim(namespaces, host, "destroy", "--pf", "tpi", "--sysfs", str(two))
    assert namespaces.links(host) == {"lo"}, "the last user of the fabric took its bridges"


def test_moves_and_destroys_on_one_fabric_keep_every_port_plugged(namespaces, tmp_path):
    """Roots move ports between shared bridges while another root's PF comes and goes.

    Destroying a PF removes the fabric's bridges without ports, such as a VLAN's
    bridge a port of another root is just moving into: none may be left unplugged.
    """
    host = namespaces.add("h")
    roots = {"tpk": tmp_path / "one", "tpl": tmp_path / "two"}
    for pf, root in roots.items():
        sim(
            namespaces,
            host,
            "create",
            "--pf",
            pf,
            "--vfs",
            "1",
            "--sysfs",
            str(root),
            "--fabric",
            "tor3",
        )
    mover = textwrap.dedent(
        """
        import sys
        from plugin.nic.sim import device
        root, pf = sys.argv[1:3]
        for n in range(40):
            device.set_vf(root, pf, 0, {"vlan": 100 + n % 3})
            device.set_vf(root, pf, 0, {"vlan": 0})
        device.set_vf(root, pf, 0, {"vlan": 100})
        """
    )
    churner = textwrap.dedent(
        """
        import sys
        from plugin.nic.sim import device
        for n in range(15):
            device.create(sys.argv[1], "tpz", 1, fabric="tor3")
            device.destroy(sys.argv[1], "tpz")
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    commands = [[sys.executable, "-c", mover, str(root), pf] for pf, root in roots.items()]
    commands.append([sys.executable, "-c", churner, str(tmp_path / "three")])
    workers = [
        subprocess.Popen(["ip", "netns", "exec", host, *command], env=env) for command in commands
    ]
    assert [w.wait() for w in workers] == [0, 0, 0]
    for pf, root in roots.items():
        text = sim(namespaces, host, "show", "--sysfs", str(root)).stdout
        assert "bridge stor3b100 vlan 100" in text, f"{pf}'s port is not in its bridge:\n{text}"
    for pf, root in roots.items():
        sim(namespaces, host, "destroy", "--pf", pf, "--sysfs", str(root))
    assert namespaces.links(host) == {"lo"}
