"""The rtnetlink socket changes links on the real kernel as iproute2 then sees them.

Runs in a namespace of its own (``ip netns exec`` subprocesses; the pytest process
never changes namespace), and reads the outcome back with ``ip -j``, an observer
that shares no code with the plugin.
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

CHANGES = """
    import errno, json
    import plugin.nic
    from pyroute2.netlink.exceptions import NetlinkError
    from plugin.nic.rtnl import Rtnl

    def refused(call):
        try:
            call()
        except NetlinkError as err:
            return errno.errorcode[err.code]
        return None

    with Rtnl() as r:
        r.add_veth("rta", "rtb")
        r.add_bridge("rtbr")
        a, b, br = (r.link_lookup(ifname=n)[0] for n in ("rta", "rtb", "rtbr"))
        r.set_mtu("rta", 1400)
        r.set_address("rta", "02:11:22:33:44:55")
        r.set_up("rtb")
        r.set_down("rtb")
        r.set_up("rta")
        r.set_master("rtb", br)
        got = r.link_at(a)
        by_name = r.link("rta")
        with_vfs = r.vf_info("rta")  # a veth has no VFs: the same link, asked with the VF filter
        print(json.dumps({
            "get": [got.get_attr("IFLA_IFNAME"), got.get_attr("IFLA_MTU"),
                    got.get_attr("IFLA_ADDRESS"), got["flags"] & 1],
            "by_name": [by_name["index"] == a, by_name.get_attr("IFLA_MTU")],
            "vf_info": [with_vfs["index"] == a, with_vfs.get_attr("IFLA_VFINFO_LIST")],
            "dump": sorted(x.get_attr("IFLA_IFNAME") for x in r.get_links()),
            "exists": refused(lambda: r.add_bridge("rtbr")),
            "missing": refused(lambda: r.request("set", index=0x7FFFFFF0, mtu=1400)),
            "missing_name": refused(lambda: r.set_mtu("rtnone", 1400)),
            "missing_vf_info": refused(lambda: r.vf_info("rtnone")),
        }))
"""


def run(*argv: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO)
    assert proc.returncode == 0, f"{' '.join(argv)} failed: {proc.stderr}"
    return proc.stdout


@pytest.fixture
def netns():
    name = runid.netns_name("rtnl")
    run("ip", "netns", "add", name)
    yield name
    run("ip", "netns", "del", name)


def in_ns(ns: str, *argv: str) -> str:
    return run("ip", "netns", "exec", ns, *argv)


def ip_links(ns: str) -> dict[str, dict]:
    return {link["ifname"]: link for link in json.loads(in_ns(ns, "ip", "-j", "link"))}


def test_link_changes_are_what_iproute2_sees(netns):
    result = json.loads(in_ns(netns, sys.executable, "-c", textwrap.dedent(CHANGES)))
    links = ip_links(netns)
    assert result["get"] == ["rta", 1400, "02:11:22:33:44:55", 1]
    assert result["by_name"] == [True, 1400]
    assert result["vf_info"] == [True, None]
    assert result["dump"] == sorted(links)
    assert (links["rta"]["mtu"], links["rta"]["address"]) == (1400, "02:11:22:33:44:55")
    assert "UP" in links["rta"]["flags"]
    assert "UP" not in links["rtb"]["flags"]  # up, then down again
    assert links["rtb"]["master"] == "rtbr"
    (bridge,) = json.loads(in_ns(netns, "ip", "-j", "-d", "link", "show", "rtbr"))
    assert bridge["linkinfo"]["info_kind"] == "bridge"
    assert (result["exists"], result["missing"], result["missing_name"]) == (
        "EEXIST",
        "ENODEV",
        "ENODEV",
    )
    assert result["missing_vf_info"] == "ENODEV"


def test_deleting_one_end_of_a_veth_removes_both_and_addresses_are_dumped(netns):
    in_ns(netns, "ip", "link", "add", "rtc", "type", "veth", "peer", "name", "rtd")
    in_ns(netns, "ip", "addr", "add", "10.9.8.7/24", "dev", "rtc")
    code = """
        import json
        import plugin.nic
        from plugin.nic.rtnl import Rtnl
        with Rtnl() as r:
            index = r.link_lookup(ifname="rtc")[0]
            addresses = [(a["index"] == index, a.get_attr("IFA_ADDRESS")) for a in r.get_addr()]
            r.delete("rtc")
            print(json.dumps({"addresses": addresses, "after": r.link_lookup(ifname="rtd")}))
    """
    result = json.loads(in_ns(netns, sys.executable, "-c", textwrap.dedent(code)))
    assert [True, "10.9.8.7"] in result["addresses"]
    assert result["after"] == []
    assert set(ip_links(netns)) == {"lo"}
