"""The wire stage: two guests on one cable, a swarm across them, the frames read on the host.

Two QEMU guests (scripts/vm/run.sh, as in the VM stage), each with an emulated
igb whose port is one end of a `-netdev stream` cable over a unix socket, each
with its own PF MAC; guest a's end is recorded with QEMU's filter-dump. Each
guest runs dockerd with the managed plugin built from this tree
(tests/vm/guest/test_wire_node.py); the two engines form a swarm over the PFs
(untagged), with the `--config-only` + `--config-from` networks of README's
recipe. The pcap is read here with dpkt, which shares no code with the plugin:
what crossed the cable is checked against what each guest's PF reports it gave
its VF, and against what b's service name resolved to in a's task.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dpkt
import pytest

pytestmark = pytest.mark.wire

REPO = Path(__file__).resolve().parents[2]
MACS = {"a": "52:54:00:77:00:01", "b": "52:54:00:77:00:02"}
# 1.5 GiB each: two guests at once fit this machine, and the VF mailbox works.
MEMORY_MIB = 1536


@dataclass(frozen=True)
class Frame:
    src: str
    dst: str
    tags: tuple[tuple[int, int], ...]  # (VID, PCP) of each 802.1Q tag, outermost first
    ip: dpkt.ip.IP | None
    arp: dpkt.arp.ARP | None


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def ip_text(raw: bytes) -> str:
    return ".".join(str(b) for b in raw)


def read_frames(pcap: Path) -> list[Frame]:
    frames = []
    with pcap.open("rb") as f:
        for _ts, buf in dpkt.pcap.Reader(f):
            eth = dpkt.ethernet.Ethernet(buf)
            tags = tuple((t.id, t.pri) for t in getattr(eth, "vlan_tags", []) or [])
            ip = eth.data if isinstance(eth.data, dpkt.ip.IP) else None
            arp = eth.data if isinstance(eth.data, dpkt.arp.ARP) else None
            frames.append(Frame(mac_text(eth.src), mac_text(eth.dst), tags, ip, arp))
    return frames


def echoes(frames: list[Frame], src: str, dst: str, size: int, kind: int) -> list[Frame]:
    """ICMP echo requests (kind 8) or replies (0) from src to dst with a payload of size bytes."""
    found = []
    for frame in frames:
        ip = frame.ip
        if ip is None or ip_text(ip.src) != src or ip_text(ip.dst) != dst:
            continue
        if ip.p != dpkt.ip.IP_PROTO_ICMP or not isinstance(ip.data, dpkt.icmp.ICMP):
            continue
        if ip.data.type == kind and ip.len == size + 28:
            found.append(frame)
    return found


@dataclass
class Guest:
    role: str
    out: Path
    proc: subprocess.Popen

    def finish(self, timeout: float) -> tuple[int, str]:
        try:
            stdout, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            stdout, _ = self.proc.communicate()
        return self.proc.returncode, stdout

    def dmesg(self) -> str:
        path = self.out / "dmesg"
        return path.read_text(errors="replace") if path.exists() else ""


def boot(role: str, workdir: Path, netdev: str, **env: str) -> Guest:
    out = workdir / role
    proc = subprocess.Popen(
        ["scripts/vm/run.sh", "scripts/vm/wire-node.sh", role, "-s"],
        cwd=REPO,
        env={
            **os.environ,
            "SRIOV_VM_OUT": str(out),
            "SRIOV_VM_NAME": f"sriov-{role}",
            "SRIOV_VM_MEM": str(MEMORY_MIB),
            "SRIOV_VM_MAC": MACS[role],
            "SRIOV_VM_NETDEV": netdev,
            "SRIOV_VM_SHARE": str(workdir / "shared"),
            "SRIOV_VM_TIMEOUT": "1500",
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return Guest(role, out, proc)


@pytest.fixture(scope="module")
def wire(plugin_rootfs, vm_setup) -> Iterator[tuple[list[Frame], dict]]:
    """Both guests run to the end; the frames of the cable and what guest a reported."""
    # A unix socket's path must be short: not under pytest's tmp_path.
    with tempfile.TemporaryDirectory(prefix="sriov-wire-", dir="/tmp") as tmp:
        workdir = Path(tmp)
        (workdir / "shared").mkdir()
        cable = workdir / "cable.sock"
        pcap = workdir / "wire.pcap"
        started = time.monotonic()
        a = boot(
            "a",
            workdir,
            f"stream,server=on,addr.type=unix,addr.path={cable}",
            SRIOV_VM_PCAP=str(pcap),
        )
        # b connects once a listens; it retries each second until then.
        b = boot(
            "b", workdir, f"stream,server=off,reconnect-ms=1000,addr.type=unix,addr.path={cable}"
        )
        status_a, out_a = a.finish(timeout=1560)
        print(f"guest a: exit {status_a} after {time.monotonic() - started:.1f} s")
        # b waits for a's done.json; if a failed before writing it, b cannot finish.
        if status_a != 0 and not (workdir / "shared" / "done.json").exists():
            (workdir / "shared" / "done.json").write_text("{}")
        status_b, out_b = b.finish(timeout=300)
        print(f"guest b: exit {status_b} after {time.monotonic() - started:.1f} s")
        print(f"--- guest a ---\n{out_a[-12000:]}\n--- guest b ---\n{out_b[-8000:]}")
        if status_a != 0 or status_b != 0:
            pytest.fail(
                f"a guest failed (a: {status_a}, b: {status_b}):\n--- a ---\n{out_a[-20000:]}\n"
                f"--- b ---\n{out_b[-10000:]}\n--- a's dmesg ---\n{a.dmesg()[-3000:]}\n"
                f"--- b's dmesg ---\n{b.dmesg()[-3000:]}",
                pytrace=False,
            )
        report = json.loads((workdir / "shared" / "a.json").read_text())
        frames = read_frames(pcap)
        print(f"{len(frames)} frames on the cable, {pcap.stat().st_size} bytes of pcap")
        yield frames, report


def assert_vlan_echo(frames, report, size_name: str) -> None:
    """Echoes between a's task and b's crossed the cable with the network's VLAN and PCP in
    one tag, each from its VF's admin MAC."""
    size = report["sizes"][size_name]
    a, b = report, report["peer"]
    requests = echoes(frames, a["address"], b["address"], size, 8)
    replies = echoes(frames, b["address"], a["address"], size, 0)
    assert requests and replies, (
        f"no echo request/reply of {size} bytes between {a['address']} and {b['address']}"
    )
    tag = ((report["vlan"], report["qos"]),)
    for frame in requests:
        assert (frame.tags, frame.src) == (tag, a["mac"]), frame
    for frame in replies:
        assert (frame.tags, frame.src) == (tag, b["mac"]), frame


def test_same_vlan_tasks_on_two_hosts_reach_each_other_by_address_tagged_with_vlan_and_qos(wire):
    frames, report = wire
    assert report["mac"] != report["peer"]["mac"]
    assert_vlan_echo(frames, report, "by_address")


def test_same_vlan_tasks_on_two_hosts_reach_each_other_by_service_name(wire):
    """Docker's embedded DNS in a's task answers b's task address for the service name b,
    and `ping b` puts its echoes on the cable with the same tag and MACs as by address."""
    frames, report = wire
    by_name, peer = report["by_name"], report["peer"]
    assert by_name["resolved"] == [peer["address"]], by_name["nslookup"]
    assert by_name["pinged"] == peer["address"], by_name["ping"]
    assert_vlan_echo(frames, report, "by_name")


def test_jumbo_frames_cross_unfragmented_with_mtu_9000(wire):
    frames, report = wire
    assert_vlan_echo(frames, report, "jumbo")
    size = report["sizes"]["jumbo"]
    jumbo = echoes(frames, report["address"], report["peer"]["address"], size, 8)
    assert all(f.ip.len == 9000 and not f.ip.mf and f.ip.offset == 0 for f in jumbo)


def test_another_vlan_puts_only_its_own_tag_on_the_wire_and_gets_no_answer(wire):
    frames, report = wire
    intruder = report["intruder"]
    sent = [f for f in frames if f.src == intruder["mac"]]
    assert sent, "the VLAN 200 container put nothing on the wire"
    assert {f.tags for f in sent} == {((report["other_vlan"], report["other_qos"]),)}
    assert not [f for f in frames if f.dst == intruder["mac"]], "something answered VLAN 200"
    answered = [
        f
        for f in frames
        if (f.ip and ip_text(f.ip.dst) == intruder["address"])
        or (
            f.arp
            and f.arp.op == dpkt.arp.ARP_OP_REPLY
            and ip_text(f.arp.tpa) == intruder["address"]
        )
    ]
    assert not answered, answered
    assert not [f for f in frames if f.tags and f.tags[0][0] == report["other_vlan"]
                and f.src != intruder["mac"]]  # fmt: skip


def test_the_swarms_control_traffic_is_untagged_on_the_pfs(wire):
    frames, _report = wire
    control = [f for f in frames if f.src in (MACS["a"], MACS["b"])]
    assert control and all(f.tags == () for f in control)
