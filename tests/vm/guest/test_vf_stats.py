"""What igb reports of its VFs' traffic (IFLA_VF_STATS), and what the plugin makes of it.

Two VFs in namespaces of their own ping each other through the NIC; the VFs'
own netdevs count what they sent, the PF's report is read independently with
pyroute2, and the plugin's kernel backend must say "not reported" (no series)
rather than export zeros as traffic.
"""

from __future__ import annotations

import uuid

import pytest
from igb import has_carrier, run, wait_for
from pyroute2 import IPRoute

from plugin.nic.kernel import KernelBackend

COUNTERS = ("RX_PACKETS", "TX_PACKETS", "RX_BYTES", "TX_BYTES", "BROADCAST", "MULTICAST")


def pf_vf_stats(pf_name: str) -> dict[int, dict[str, int] | None]:
    """Each VF's IFLA_VF_STATS as the PF sends them (None: no such attribute)."""
    with IPRoute() as ipr:
        msg = ipr.link("get", ifname=pf_name, ext_mask=1)[0]
    found = {}
    for info in msg.get_attr("IFLA_VFINFO_LIST").get_attrs("IFLA_VF_INFO"):
        stats = info.get_attr("IFLA_VF_STATS")
        found[info.get_attr("IFLA_VF_MAC")["vf"]] = (
            None
            if stats is None
            else {name: stats.get_attr(f"IFLA_VF_STATS_{name}") for name in COUNTERS}
        )
    return found


def netdev_file(namespace: str, netdev: str, name: str) -> str:
    """/sys/class/net/NETDEV/NAME as seen in ``namespace`` (ip netns exec mounts its sysfs)."""
    path = f"/sys/class/net/{netdev}/{name}"
    return run("ip", "netns", "exec", namespace, "cat", path, check=False).stdout.strip()


@pytest.fixture
def two_vfs_in_namespaces(pf):
    pf.set_numvfs(2)
    names = [f"vfst{uuid.uuid4().hex[:6]}" for _ in range(2)]
    netdevs = [pf.netdev(0), pf.netdev(1)]
    try:
        for index, (namespace, netdev) in enumerate(zip(names, netdevs, strict=True)):
            run("ip", "netns", "add", namespace)
            run("ip", "link", "set", netdev, "netns", namespace)
            run("ip", "-n", namespace, "address", "add", f"10.77.0.{index + 1}/24", "dev", netdev)
            run("ip", "-n", namespace, "link", "set", netdev, "up")
        yield names, netdevs
    finally:
        for namespace in names:
            run("ip", "netns", "del", namespace, check=False)
        pf.set_numvfs(0)


def test_igb_reports_no_vf_traffic_so_the_plugin_exports_none(pf, two_vfs_in_namespaces):
    namespaces, netdevs = two_vfs_in_namespaces
    for namespace, netdev in zip(namespaces, netdevs, strict=True):
        wait_for(
            f"carrier on {netdev}",
            lambda n=namespace, d=netdev: netdev_file(n, d, "carrier") == "1",
            timeout=60,
        )
    assert has_carrier(pf.name)

    ping = run(
        "ip", "netns", "exec", namespaces[0], "ping", "-c", "5", "-W", "2", "10.77.0.2",
        check=False,
    )  # fmt: skip
    sent = int(netdev_file(namespaces[0], netdevs[0], "statistics/tx_packets"))

    reported = pf_vf_stats(pf.name)
    print(f"igb: VF 0 netdev sent {sent} packets (ping exit {ping.returncode}); "
          f"the PF's IFLA_VF_STATS: {reported}")  # fmt: skip
    assert sent >= 5  # the VF did send: whatever the PF says is about real traffic
    # The kernel sends IFLA_VF_STATS for every VF, all zero: igb has no ndo_get_vf_stats.
    assert reported[0] == dict.fromkeys(COUNTERS, 0) and reported[1] == dict.fromkeys(COUNTERS, 0)
    assert KernelBackend().vf_stats(pf.name) == {}
