"""The emulated Intel 82576 in the guest: its PF, its VFs, and what the PF reports.

Everything here reads the device independently of the plugin: sysfs for the
VF netdevs, pyroute2 through the PF for the VF settings, as `ip -d link show`
would show them.
"""

from __future__ import annotations

import errno
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

NO_MAC = "00:00:00:00:00:00"
PROTOS = {0x8100: "802.1Q", 0x88A8: "802.1ad"}


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def wait_for(what: str, predicate, timeout: float = 30.0, interval: float = 0.1):
    """Poll ``predicate`` until it returns something true; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


@dataclass(frozen=True)
class Vf:
    """The PF's report of one VF plus its netdev's MTU and own MAC, as read from the device."""

    mac: str
    vlan: int
    qos: int
    proto: str
    spoofchk: bool
    trust: bool
    link_state: int
    min_tx_rate: int
    max_tx_rate: int
    mtu: int | None
    netdev_mac: str | None


class Pf:
    """The igb PF netdev in the guest.

    Every time VFs are enabled (by a test or by the plugin) the VF mailbox must be
    proven again before anything read from the VFs is believed: ``mailbox_proven``
    does that once per enable the kernel logged, and ``assert_every_enable_proven``
    fails a test after which an enable went unproven.
    """

    def __init__(self, name: str):
        self.name = name
        self.device = Path(f"/sys/class/net/{name}/device")
        self.pci = self.device.resolve().name
        self.proven_enables = 0

    def enables(self) -> int:
        """How many times igb enabled this PF's VFs since boot, as its kernel log says."""
        allocated = re.compile(rf" {re.escape(self.pci)}: \d+ VFs allocated$", re.MULTILINE)
        return len(allocated.findall(dmesg()))

    def mailbox_proven(self) -> str | None:
        """Prove the mailbox if VFs were enabled since the last proof; the proof's dmesg line.

        Uses the highest VF, which must be in this namespace and not leased.
        """
        enables = self.enables()
        if enables == self.proven_enables or self.numvfs == 0:
            return None
        line = prove_mailbox(self, self.numvfs - 1)
        self.proven_enables = enables
        return line

    def assert_every_enable_proven(self) -> None:
        enables = self.enables()
        assert enables == self.proven_enables, (
            f"VFs of {self.name} were enabled {enables} times but the mailbox was proven after "
            f"{self.proven_enables} of them: call pf.mailbox_proven() after each change"
        )

    @property
    def numvfs(self) -> int:
        return int((self.device / "sriov_numvfs").read_text())

    @property
    def totalvfs(self) -> int:
        return int((self.device / "sriov_totalvfs").read_text())

    def set_numvfs(self, count: int) -> None:
        """Write sriov_numvfs, then wait for the VF netdevs and for the PF's link.

        igb resets the PF on every change: its link is gone for a few seconds, and
        rate limits are refused (EINVAL) until it is back, so the next test would
        depend on how long ago the last one changed the VFs.
        """
        (self.device / "sriov_numvfs").write_text(str(count))
        if count:
            wait_for(f"{count} VF netdevs", lambda: all(self.netdev(n) for n in range(count)))
        wait_for(f"carrier on {self.name}", lambda: has_carrier(self.name), timeout=60)
        if count:
            self.mailbox_proven()

    def netdev(self, index: int) -> str | None:
        """The VF's netdev in this namespace, None if it is elsewhere (or not bound)."""
        names = list((self.device / f"virtfn{index}" / "net").glob("*"))
        return names[0].name if names else None

    def vf_pci(self, index: int) -> str:
        """The VF's PCI address (``virtfnN``)."""
        return (self.device / f"virtfn{index}").resolve().name

    def vf_driver(self, index: int) -> str:
        return (self.device / f"virtfn{index}" / "driver").resolve().name

    def vf(self, index: int) -> Vf:
        with IPRoute() as ipr:
            pf = ipr.link("get", ifname=self.name, ext_mask=1)[0]
            info = next(
                i
                for i in pf.get_attr("IFLA_VFINFO_LIST").get_attrs("IFLA_VF_INFO")
                if i.get_attr("IFLA_VF_MAC")["vf"] == index
            )
            netdev = self.netdev(index)
            link = ipr.link("get", ifname=netdev)[0] if netdev else None
        vlan = info.get_attr("IFLA_VF_VLAN")
        vlist = info.get_attr("IFLA_VF_VLAN_LIST")
        entries = vlist.get_attrs("IFLA_VF_VLAN_INFO") if vlist else []
        rate = info.get_attr("IFLA_VF_RATE")
        return Vf(
            mac=info.get_attr("IFLA_VF_MAC")["mac"],
            vlan=vlan["vlan"],
            qos=vlan["qos"],
            proto=PROTOS[entries[0]["proto"]] if entries else "802.1Q",
            spoofchk=bool(info.get_attr("IFLA_VF_SPOOFCHK")["spoofchk"]),
            trust=bool(info.get_attr("IFLA_VF_TRUST")["trust"]),
            link_state=info.get_attr("IFLA_VF_LINK_STATE")["link_state"],
            min_tx_rate=rate["min_tx_rate"],
            max_tx_rate=rate["max_tx_rate"],
            mtu=link.get_attr("IFLA_MTU") if link else None,
            netdev_mac=link.get_attr("IFLA_ADDRESS") if link else None,
        )

    def ip_link_line(self, index: int) -> str:
        """The `vf N ...` line of `ip -d link show <pf>`, for messages and a second opinion."""
        out = run("ip", "-d", "link", "show", self.name).stdout
        return next(
            line.strip() for line in out.splitlines() if line.strip().startswith(f"vf {index} ")
        )


def load_drivers_and_find_pf() -> Pf:
    """modprobe igb and igbvf (no udev here), bring the PF up and wait for its link."""
    run("modprobe", "-a", "igb", "igbvf")
    name = wait_for(
        "the igb PF netdev",
        lambda: next(
            (p.parent.parent.name for p in Path("/sys/class/net").glob("*/device/sriov_totalvfs")),
            None,
        ),
    )
    pf = Pf(name)
    if pf.numvfs:
        pf.set_numvfs(0)
    run("ip", "link", "set", name, "up")
    wait_for(f"carrier on {name}", lambda: has_carrier(name))
    return pf


def has_carrier(netdev: str) -> bool:
    return Path(f"/sys/class/net/{netdev}/carrier").read_text().strip() == "1"


def dmesg() -> str:
    return run("dmesg").stdout


def prove_mailbox(pf: Pf, index: int) -> str:
    """Show the VF-to-PF mailbox works: igb must refuse the VF's own MAC change.

    With a dead mailbox (e.g. guest memory above 2.5 GiB) igbvf never hears
    back from the PF, so nothing would be refused and every test would pass for
    the wrong reason. Returns the dmesg line that proves it; raises otherwise.
    """
    netdev = pf.netdev(index)
    # The VF must have been reset while the PF was ready: its first up does that.
    run("ip", "link", "set", netdev, "up")
    wait_for(f"carrier on {netdev}", lambda: has_carrier(netdev), timeout=60)
    run("ip", "link", "set", netdev, "down")
    admin, other = "02:5a:00:00:00:01", "02:5a:00:00:00:02"
    run("ip", "link", "set", pf.name, "vf", str(index), "mac", admin)
    try:
        with IPRoute() as ipr:
            ipr.link("set", ifname=netdev, address=other)
        refused = None
    except NetlinkError as err:
        refused = err.code
    finally:
        run("ip", "link", "set", pf.name, "vf", str(index), "mac", NO_MAC)
    line = f"VF {index} attempted to override administratively set MAC address"
    if refused != errno.EADDRNOTAVAIL or line not in dmesg():
        raise AssertionError(
            f"the igb VF mailbox does not work: VF {index}'s own MAC change under an admin MAC "
            f"gave errno {refused} (expected EADDRNOTAVAIL) and dmesg has "
            f"{'' if line in dmesg() else 'no '}'{line}'; is the guest memory above 2.5 GiB?"
        )
    return line
