"""GET /status and GET /metrics on the whole app: real store, sysfs tree, services; fake VF calls.

The metrics are read back with prometheus_client's own text parser, as a
Prometheus server would read them, and must follow endpoints as they come and go.
"""

from __future__ import annotations

import json

import falcon.testing
import pytest
from fake_nic import FakeNic
from prometheus_client.parser import text_string_to_metric_families
from sysfs_trees import build
from test_network import IPV4, PF0, ep_id, net_id, nic_tree, wire_options

from plugin.config import parse_default_pools
from plugin.nic.base import NetdevStatus, VfStats
from plugin.nic.sysfs import Sysfs
from plugin.ops.metrics import Metrics
from plugin.ops.status_cli import format_status
from plugin.server import assemble_app
from plugin.state.sqlite import Store


class Plugin:
    """The app as server.py assembles it, driven as Docker drives it."""

    def __init__(self, tmp_path, tree=None, nic=None):
        self.sysfs = Sysfs(build(tmp_path / "sys", tree or nic_tree(vfs0=4)))
        self.nic = nic or FakeNic()
        self.store = Store(tmp_path / "state")
        pools = parse_default_pools("10.9.0.0/16:24")
        app = assemble_app(self.store, self.sysfs, self.nic, pools, Metrics())
        self.client = falcon.testing.TestClient(app)

    def post(self, method: str, body: dict) -> falcon.testing.Result:
        return self.client.simulate_post(f"/{method}", body=json.dumps(body), headers={})

    def ok(self, method: str, body: dict) -> dict:
        result = self.post(method, body)
        assert result.status_code == 200, (method, result.text)
        return result.json

    def status(self) -> dict:
        result = self.client.simulate_get("/status")
        assert result.status_code == 200, result.text
        return result.json

    def metrics(self) -> dict[tuple[str, tuple], float]:
        """Every sample as {(name, sorted labels): value}, parsed by prometheus_client."""
        result = self.client.simulate_get("/metrics")
        assert result.status_code == 200, result.text
        assert result.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(result.text)
            for s in family.samples
        }

    def network(self, n: int, **flags) -> str:
        pool = self.ok("IpamDriver.RequestPool", {"AddressSpace": "local", "Pool": "10.1.0.0/24"})[
            "PoolID"
        ]
        self.ok("IpamDriver.RequestAddress", {"PoolID": pool, "Address": "", "Options": {}})
        body = {"NetworkID": net_id(n), "Options": wire_options(**flags), "IPv4Data": IPV4}
        self.ok("NetworkDriver.CreateNetwork", body)
        return pool

    def endpoint(self, n: int, ep: int, pool: str) -> None:
        address = self.ok("IpamDriver.RequestAddress", {"PoolID": pool, "Address": ""})
        body = {"NetworkID": net_id(n), "EndpointID": ep_id(ep), "Interface": {}}
        body["Interface"]["Address"] = address["Address"]
        self.ok("NetworkDriver.CreateEndpoint", body)
        self.ok(
            "NetworkDriver.Join",
            {"NetworkID": net_id(n), "EndpointID": ep_id(ep), "SandboxKey": f"/netns/{ep}"},
        )


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def plugin(tmp_path) -> Plugin:
    return Plugin(tmp_path)


def test_status_shows_pfs_vfs_leases_networks_and_pools(plugin):
    pool = plugin.network(1, pf_iface="pf0", vlanid=100, mtu=1400)
    plugin.endpoint(1, 1, pool)
    plugin.nic.status["pf0v3"] = NetdevStatus.BUSY

    status = plugin.status()

    (pf,) = status["pfs"]
    assert (pf["name"], pf["pci"], pf["numvfs"], pf["totalvfs"]) == ("pf0", PF0, 4, 4)
    assert pf["vf_counts"] == {"free": 2, "leased": 1, "unusable": 1}
    assert pf["networks"] == [net_id(1)]
    vf0, _, _, vf3 = pf["vfs"]
    lease = vf0["lease"]
    assert (vf0["state"], vf0["pci"], vf0["netdev"]) == ("leased", "0000:3b:02.0", "pf0v0")
    assert (lease["network"], lease["endpoint"], lease["sandbox"]) == (
        net_id(1),
        ep_id(1),
        "/netns/1",
    )
    assert lease["programmed"]["vlan"] == 100 and lease["programmed"]["mtu"] == 1400
    assert lease["original"] == {"mac": "00:00:00:00:00:00", "vlan": 0, "qos": 0,
                                 "proto": "802.1Q", "mtu": 1500}  # fmt: skip
    assert lease["address"] == "10.1.0.2/24"
    assert vf3["state"] == "unusable" and "up with addresses" in vf3["reason"]
    (network,) = status["networks"]
    assert (network["vlan"], network["pfs"], network["endpoints"]) == (100, ["pf0"], 1)
    (pool_view,) = status["pools"]
    assert (pool_view["cidr"], pool_view["in_use"], pool_view["total"]) == ("10.1.0.0/24", 2, 254)

    text = format_status(status)
    assert "VFs 4 of 4 enabled: 2 free, 1 leased, 1 unusable" in text
    assert f"leased  net {net_id(1)[:12]} ep {ep_id(1)[:12]}  sandbox /netns/1" in text
    assert "local/10.1.0.0/24" in text and "2 of 254" in text


def test_metrics_follow_endpoints_as_they_come_and_go(plugin):
    pool = plugin.network(1, pf_iface="pf0", vlanid=100)
    before = plugin.metrics()
    assert value(before, "sriov_pf_vfs", pf="pf0", state="free") == 4
    assert value(before, "sriov_pf_vfs", pf="pf0", state="leased") == 0
    assert value(before, "sriov_pool_addresses_in_use", pool=pool, address_space="local",
                 cidr="10.1.0.0/24") == 1  # fmt: skip

    plugin.endpoint(1, 1, pool)
    plugin.endpoint(1, 2, pool)
    during = plugin.metrics()
    assert value(during, "sriov_pf_vfs", pf="pf0", state="free") == 2
    assert value(during, "sriov_pf_vfs", pf="pf0", state="leased") == 2
    assert value(during, "sriov_vf_leased", pf="pf0", vf="1", pciAddr="0000:3b:02.1",
                 network=net_id(1), endpoint=ep_id(2)) == 1  # fmt: skip
    assert value(during, "sriov_pool_addresses_in_use", pool=pool, address_space="local",
                 cidr="10.1.0.0/24") == 3  # fmt: skip
    assert value(during, "sriov_pool_addresses", pool=pool, address_space="local",
                 cidr="10.1.0.0/24") == 254  # fmt: skip
    assert value(during, "sriov_network_endpoints", network=net_id(1), vlan="100") == 2
    ok = {"method": "NetworkDriver.CreateEndpoint", "outcome": "ok"}
    assert value(during, "sriov_requests_total", **ok) == 2
    assert value(during, "sriov_request_duration_seconds_count",
                 method="NetworkDriver.CreateEndpoint") == 2  # fmt: skip

    plugin.ok("NetworkDriver.DeleteEndpoint", {"NetworkID": net_id(1), "EndpointID": ep_id(1)})
    after = plugin.metrics()
    assert value(after, "sriov_pf_vfs", pf="pf0", state="leased") == 1
    assert value(after, "sriov_vf_leased", pf="pf0", vf="0", pciAddr="0000:3b:02.0",
                 network=net_id(1), endpoint=ep_id(1)) == 0  # fmt: skip


def test_failures_are_counted_and_a_kept_lease_is_shown(plugin):
    pool = plugin.network(1, pf_iface="pf0", vlanid=100)
    plugin.nic.fail.add("mac")
    refused = plugin.post(
        "NetworkDriver.CreateEndpoint",
        {"NetworkID": net_id(1), "EndpointID": ep_id(9), "Interface": {}},
    )
    assert refused.status_code == 500
    plugin.nic.fail.clear()
    plugin.endpoint(1, 1, pool)
    plugin.nic.fail.add("vlan")
    failed = plugin.post(
        "NetworkDriver.DeleteEndpoint", {"NetworkID": net_id(1), "EndpointID": ep_id(1)}
    )
    assert failed.status_code == 500
    assert plugin.post("NetworkDriver.Bogus", {}).status_code == 404

    samples = plugin.metrics()
    assert value(samples, "sriov_vf_program_failures_total", pf="pf0") == 1
    assert value(samples, "sriov_vf_restore_failures_total", pf="pf0") == 1
    assert value(samples, "sriov_vf_restore_failed_leases", pf="pf0") == 1
    assert value(samples, "sriov_pf_vfs", pf="pf0", state="leased") == 1
    error = {"method": "NetworkDriver.CreateEndpoint", "outcome": "error"}
    assert value(samples, "sriov_requests_total", **error) == 1
    assert value(samples, "sriov_requests_total", method="unknown", outcome="not_found") == 1
    lease = plugin.status()["pfs"][0]["vfs"][0]["lease"]
    assert lease["restore_error"].startswith("restore VF 0 of pf0: 1 of ")

    plugin.nic.fail.clear()  # the cause is fixed: Docker's retry restores and releases it
    plugin.ok("NetworkDriver.DeleteEndpoint", {"NetworkID": net_id(1), "EndpointID": ep_id(1)})
    assert value(plugin.metrics(), "sriov_vf_restore_failed_leases", pf="pf0") == 0


def test_a_pf_that_cannot_be_read_is_reported_not_fatal(tmp_path):
    plugin = Plugin(tmp_path)
    plugin.network(1, pf_iface="pf0")
    (tmp_path / "sys/class/net/pf0").unlink()

    (pf,) = plugin.status()["pfs"]
    assert pf["error"].startswith("pf_iface pf0 not found")
    assert "ERROR: pf_iface pf0 not found" in format_status(plugin.status())
    assert value(plugin.metrics(), "sriov_pf_vfs", pf="pf0", state="free") == 0


def test_vf_traffic_is_shown_per_vf_with_the_leases_network_and_endpoint(plugin):
    pool = plugin.network(1, pf_iface="pf0", vlanid=100)
    plugin.endpoint(1, 1, pool)
    plugin.nic.stats["pf0"] = {
        0: VfStats(rx_bytes=1500, tx_bytes=900, rx_packets=15, tx_packets=9, rx_dropped=1,
                   tx_dropped=0, broadcast=2, multicast=3),
        1: VfStats(rx_bytes=0, tx_bytes=64, rx_packets=0, tx_packets=1),
    }  # fmt: skip

    status = plugin.status()
    samples = plugin.metrics()

    (pf,) = status["pfs"]
    assert pf["reports_traffic"] is True
    vf0, vf1, vf2, _ = pf["vfs"]
    assert vf0["traffic"] == {
        "rx_packets": 15,
        "tx_packets": 9,
        "rx_bytes": 1500,
        "tx_bytes": 900,
        "broadcast": 2,
        "multicast": 3,
        "rx_dropped": 1,
        "tx_dropped": 0,
    }
    assert vf1["traffic"] == {"rx_packets": 0, "tx_packets": 1, "rx_bytes": 0, "tx_bytes": 64}
    assert "traffic" not in vf2  # the PF reports no counters for it
    text = format_status(status)
    assert "  VF traffic: reported by the PF" in text
    assert "traffic:    rx 1500 B 15 pkts 1 dropped 2 bcast 3 mcast, tx 900 B 9 pkts 0 dropped" in (
        text
    )
    leased = {"pf": "pf0", "vf": "0", "pciAddr": "0000:3b:02.0", "network": net_id(1),
              "endpoint": ep_id(1)}  # fmt: skip
    assert value(samples, "sriov_vf_rx_bytes_total", **leased) == 1500
    assert value(samples, "sriov_vf_tx_packets_total", **leased) == 9
    assert value(samples, "sriov_vf_rx_multicast_total", **leased) == 3
    free = {"pf": "pf0", "vf": "1", "pciAddr": "0000:3b:02.1"}
    assert value(samples, "sriov_vf_tx_bytes_total", **free) == 64
    assert ("sriov_vf_rx_dropped_total", tuple(sorted(free.items()))) not in samples
    assert not [key for key in samples if key[0].startswith("sriov_vf_") and ("vf", "2") in key[1]
                and "leased" not in key[0]]  # fmt: skip
    assert plugin.nic.stats_reads == ["pf0", "pf0"]  # one request per PF per view


def test_a_pf_without_vf_traffic_has_no_traffic_series_and_status_says_so(plugin):
    pool = plugin.network(1, pf_iface="pf0", vlanid=100)
    plugin.endpoint(1, 1, pool)

    status = plugin.status()

    assert status["pfs"][0]["reports_traffic"] is False
    assert all("traffic" not in vf for vf in status["pfs"][0]["vfs"])
    assert "  VF traffic: not reported by its driver" in format_status(status)
    traffic = ("sriov_vf_rx", "sriov_vf_tx")
    assert not [key for key in plugin.metrics() if key[0].startswith(traffic)]


def test_vf_traffic_that_cannot_be_read_is_reported_not_fatal(plugin):
    plugin.network(1, pf_iface="pf0", vlanid=100)
    plugin.nic.fail.add("vf_stats")

    (pf,) = plugin.status()["pfs"]

    assert pf["traffic_error"] == "read VF traffic of pf0: Operation not supported"
    assert pf["vf_counts"]["free"] == 4
    assert "  VF traffic: cannot be read: read VF traffic of pf0" in format_status(plugin.status())
