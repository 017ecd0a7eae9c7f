"""The plugin's metrics: every series as before, VF traffic, the process collectors, and over
TCP (SRIOV_METRICS_ADDR)."""

from __future__ import annotations

import http.client
import socket
import threading

import pytest
from prometheus_client.parser import text_string_to_metric_families

from plugin.errors import PluginError
from plugin.ops.metrics import Metrics
from plugin.ops.routes import metrics_app
from plugin.server import MetricsListener


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


class FixedStatus:
    """A status service whose view never changes."""

    def __init__(self, view: dict) -> None:
        self._view = view

    def status(self) -> dict:
        return self._view


# Two PFs (one whose sysfs could not be read, so no numvfs), two leases of which one
# could not be restored, one pool and one network.
VIEW = {
    "pfs": [
        {
            "name": "pf0",
            "vf_counts": {"free": 1, "leased": 2, "unusable": 1},
            "numvfs": 4,
            "totalvfs": 8,
            "vfs": [
                {"state": "leased", "index": 0, "pci": "0000:3b:02.0",
                 "lease": {"network": "net1", "endpoint": "ep1"}},
                {"state": "leased", "index": 1, "pci": "0000:3b:02.1",
                 "lease": {"network": "net1", "endpoint": "ep2", "restore_error": "vlan: EIO"}},
                {"state": "free", "index": 2, "pci": "0000:3b:02.2"},
                {"state": "unusable", "index": 3, "pci": "0000:3b:02.3"},
            ],
        },
        {"name": "pf1", "vf_counts": {"free": 0, "leased": 0, "unusable": 0}, "vfs": []},
    ],
    "pools": [{"id": "local/10.1.0.0/24#1", "address_space": "local", "cidr": "10.1.0.0/24",
               "in_use": 3, "total": 254}],
    "networks": [{"id": "net1", "vlan": 100, "endpoints": 2}],
}  # fmt: skip

# What prometheus_client 0.26 wrote for VIEW and the events in the test below (the
# plugin's own series; the process, platform and GC collectors' follow the counters):
# names, types, HELP, labels and buckets must not change, or dashboards and alerts
# built on them break. No *_created series.
EXPOSITION = """\
# HELP sriov_requests_total Protocol requests answered, by method and outcome
# TYPE sriov_requests_total counter
sriov_requests_total{method="NetworkDriver.CreateEndpoint",outcome="ok"} 1.0
# HELP sriov_request_duration_seconds Time to answer a protocol request, by method
# TYPE sriov_request_duration_seconds histogram
sriov_request_duration_seconds_bucket{le="0.001",method="NetworkDriver.CreateEndpoint"} 0.0
sriov_request_duration_seconds_bucket{le="0.0025",method="NetworkDriver.CreateEndpoint"} 0.0
sriov_request_duration_seconds_bucket{le="0.005",method="NetworkDriver.CreateEndpoint"} 1.0
sriov_request_duration_seconds_bucket{le="0.01",method="NetworkDriver.CreateEndpoint"} 1.0
sriov_request_duration_seconds_bucket{le="0.025",method="NetworkDriver.CreateEndpoint"} 1.0
sriov_request_duration_seconds_bucket{le="0.05",method="NetworkDriver.CreateEndpoint"} 1.0
sriov_request_duration_seconds_bucket{le="0.1",method="NetworkDriver.CreateEndpoint"} 1.0
sriov_request_duration_seconds_bucket{le="0.25",method="NetworkDriver.CreateEndpoint"} 1.0
sriov_request_duration_seconds_bucket{le="0.5",method="NetworkDriver.CreateEndpoint"} 1.0
sriov_request_duration_seconds_bucket{le="1.0",method="NetworkDriver.CreateEndpoint"} 1.0
sriov_request_duration_seconds_bucket{le="2.5",method="NetworkDriver.CreateEndpoint"} 1.0
sriov_request_duration_seconds_bucket{le="5.0",method="NetworkDriver.CreateEndpoint"} 1.0
sriov_request_duration_seconds_bucket{le="10.0",method="NetworkDriver.CreateEndpoint"} 1.0
sriov_request_duration_seconds_bucket{le="30.0",method="NetworkDriver.CreateEndpoint"} 1.0
sriov_request_duration_seconds_bucket{le="+Inf",method="NetworkDriver.CreateEndpoint"} 1.0
sriov_request_duration_seconds_count{method="NetworkDriver.CreateEndpoint"} 1.0
sriov_request_duration_seconds_sum{method="NetworkDriver.CreateEndpoint"} 0.003
# HELP sriov_vf_program_failures_total VFs whose programming failed (and was undone), by PF
# TYPE sriov_vf_program_failures_total counter
sriov_vf_program_failures_total{pf="pf0"} 1.0
# HELP sriov_vf_restore_failures_total Failed attempts to restore a VF's original settings, by PF
# TYPE sriov_vf_restore_failures_total counter
sriov_vf_restore_failures_total{pf="pf0"} 2.0
# HELP sriov_pf_vfs VFs of a PF by state (free, leased, unusable)
# TYPE sriov_pf_vfs gauge
sriov_pf_vfs{pf="pf0",state="free"} 1.0
sriov_pf_vfs{pf="pf0",state="leased"} 2.0
sriov_pf_vfs{pf="pf0",state="unusable"} 1.0
sriov_pf_vfs{pf="pf1",state="free"} 0.0
sriov_pf_vfs{pf="pf1",state="leased"} 0.0
sriov_pf_vfs{pf="pf1",state="unusable"} 0.0
# HELP sriov_pf_numvfs sriov_numvfs of a PF
# TYPE sriov_pf_numvfs gauge
sriov_pf_numvfs{pf="pf0"} 4.0
# HELP sriov_pf_totalvfs sriov_totalvfs of a PF
# TYPE sriov_pf_totalvfs gauge
sriov_pf_totalvfs{pf="pf0"} 8.0
# HELP sriov_vf_leased 1 for each VF leased to an endpoint, with its network and endpoint
# TYPE sriov_vf_leased gauge
sriov_vf_leased{endpoint="ep1",network="net1",pciAddr="0000:3b:02.0",pf="pf0",vf="0"} 1.0
sriov_vf_leased{endpoint="ep2",network="net1",pciAddr="0000:3b:02.1",pf="pf0",vf="1"} 1.0
# HELP sriov_vf_restore_failed_leases VFs kept leased because their original settings could not be restored
# TYPE sriov_vf_restore_failed_leases gauge
sriov_vf_restore_failed_leases{pf="pf0"} 1.0
sriov_vf_restore_failed_leases{pf="pf1"} 0.0
# HELP sriov_pool_addresses_in_use Addresses held in a pool
# TYPE sriov_pool_addresses_in_use gauge
sriov_pool_addresses_in_use{address_space="local",cidr="10.1.0.0/24",pool="local/10.1.0.0/24#1"} 3.0
# HELP sriov_pool_addresses Addresses a pool can hand out
# TYPE sriov_pool_addresses gauge
sriov_pool_addresses{address_space="local",cidr="10.1.0.0/24",pool="local/10.1.0.0/24#1"} 254.0
# HELP sriov_network_endpoints Endpoints (VF leases) per network
# TYPE sriov_network_endpoints gauge
sriov_network_endpoints{network="net1",vlan="100"} 2.0
"""  # noqa: E501


def test_every_series_keeps_its_name_type_help_labels_and_buckets(metrics):
    metrics.collect_held_state(FixedStatus(VIEW))
    metrics.observe_request("NetworkDriver.CreateEndpoint", 200, 0.003)
    metrics.program_failed("pf0")
    metrics.restore_failed("pf0")
    metrics.restore_failed("pf0")

    exposition = metrics.exposition().decode()

    assert own_lines(exposition) == EXPOSITION
    assert len(list(text_string_to_metric_families(EXPOSITION))) == 12


def own_lines(exposition: str) -> str:
    """The lines of the plugin's own series (``sriov_*``), in order."""
    lines = exposition.splitlines(keepends=True)
    return "".join(
        line
        for line in lines
        if (line.split(" ")[2] if line.startswith("#") else line).startswith("sriov_")
    )


def samples_of(exposition: bytes) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(exposition.decode())
        for s in family.samples
    }


def test_the_process_platform_and_gc_collectors_are_shown(metrics):
    families = {f.name: f for f in text_string_to_metric_families(metrics.exposition().decode())}

    resident = families["process_resident_memory_bytes"].samples[0].value
    assert 5_000_000 < resident < 1_000_000_000
    assert families["process_cpu_seconds"].type == "counter"
    assert families["process_open_fds"].samples[0].value > 0
    assert families["process_start_time_seconds"].samples[0].value > 1_700_000_000
    assert families["python_info"].samples[0].labels["implementation"] == "CPython"
    assert "python_gc_collections" in families


def traffic(**counters) -> dict:
    return counters


# pf0 reports traffic for VFs 0 (leased) and 2 (free, without the dropped counts), not for
# VF 3; pf1 reports none.
TRAFFIC_VIEW = {
    "pfs": [
        {
            "name": "pf0",
            "vf_counts": {"free": 2, "leased": 1, "unusable": 0},
            "numvfs": 3,
            "totalvfs": 8,
            "reports_traffic": True,
            "vfs": [
                {"state": "leased", "index": 0, "pci": "0000:3b:02.0",
                 "lease": {"network": "net1", "endpoint": "ep1"},
                 "traffic": traffic(rx_bytes=1000, tx_bytes=2000, rx_packets=10, tx_packets=20,
                                    broadcast=1, multicast=2, rx_dropped=3, tx_dropped=4)},
                {"state": "free", "index": 2, "pci": "0000:3b:02.2",
                 "traffic": traffic(rx_bytes=5, tx_bytes=6, rx_packets=7, tx_packets=8)},
                {"state": "free", "index": 3, "pci": "0000:3b:02.3"},
            ],
        },
        {"name": "pf1", "vf_counts": {"free": 1, "leased": 0, "unusable": 0},
         "reports_traffic": False,
         "vfs": [{"state": "free", "index": 0, "pci": "0000:3c:02.0"}]},
    ],
    "pools": [],
    "networks": [],
}  # fmt: skip


def test_vf_traffic_is_counted_per_vf_with_the_lease_labels_and_only_as_reported(metrics):
    metrics.collect_held_state(FixedStatus(TRAFFIC_VIEW))

    exposition = metrics.exposition()

    families = {f.name: f.type for f in text_string_to_metric_families(exposition.decode())}
    traffic_series = {
        key: value
        for key, value in samples_of(exposition).items()
        if "_vf_rx_" in key[0] or "_vf_tx_" in key[0]
    }
    leased = (
        ("endpoint", "ep1"),
        ("network", "net1"),
        ("pciAddr", "0000:3b:02.0"),
        ("pf", "pf0"),
        ("vf", "0"),
    )
    free = (("pciAddr", "0000:3b:02.2"), ("pf", "pf0"), ("vf", "2"))
    assert traffic_series == {
        ("sriov_vf_rx_bytes_total", leased): 1000,
        ("sriov_vf_tx_bytes_total", leased): 2000,
        ("sriov_vf_rx_packets_total", leased): 10,
        ("sriov_vf_tx_packets_total", leased): 20,
        ("sriov_vf_rx_broadcast_total", leased): 1,
        ("sriov_vf_rx_multicast_total", leased): 2,
        ("sriov_vf_rx_dropped_total", leased): 3,
        ("sriov_vf_tx_dropped_total", leased): 4,
        ("sriov_vf_rx_bytes_total", free): 5,
        ("sriov_vf_tx_bytes_total", free): 6,
        ("sriov_vf_rx_packets_total", free): 7,
        ("sriov_vf_tx_packets_total", free): 8,
    }  # fmt: skip
    assert families["sriov_vf_rx_bytes"] == "counter"


def test_no_vf_traffic_reported_means_no_traffic_series_at_all(metrics):
    metrics.collect_held_state(FixedStatus(VIEW))

    exposition = metrics.exposition().decode()

    assert "sriov_vf_rx_" not in exposition
    assert "sriov_vf_tx_" not in exposition


def test_without_the_status_service_only_the_counters_and_histogram_are_shown(metrics):
    families = text_string_to_metric_families(metrics.exposition().decode())

    assert [(f.name, f.type) for f in families if f.name.startswith("sriov_")] == [
        ("sriov_requests", "counter"),
        ("sriov_request_duration_seconds", "histogram"),
        ("sriov_vf_program_failures", "counter"),
        ("sriov_vf_restore_failures", "counter"),
    ]


@pytest.fixture
def listener(metrics):
    listener = MetricsListener(metrics_app(metrics), "127.0.0.1", 0)
    yield listener
    listener.close()


def http_get(port: int, path: str) -> tuple[int, str | None, bytes]:
    """GET ``path`` on 127.0.0.1:``port``: the reply's status, Content-Type and body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        reply = conn.getresponse()
        return reply.status, reply.getheader("Content-Type"), reply.read()
    finally:
        conn.close()


def test_the_listener_answers_get_metrics_with_the_exposition(metrics, listener):
    metrics.program_failed("pf0")

    status, content_type, body = http_get(listener.port, "/metrics")

    assert status == 200, body
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    samples = {
        (s.name, tuple(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }
    assert samples[("sriov_vf_program_failures_total", (("pf", "pf0"),))] == 1


@pytest.mark.parametrize("path", ["/", "/status", "/Plugin.Activate"])
def test_the_listener_serves_nothing_but_metrics(listener, path):
    status, _, body = http_get(listener.port, path)
    assert status == 404, body


def test_a_closed_listener_refuses_connections(metrics):
    listener = MetricsListener(metrics_app(metrics), "127.0.0.1", 0)
    listener.close()

    with pytest.raises(ConnectionRefusedError):
        http_get(listener.port, "/metrics")


def test_an_address_in_use_is_refused_naming_the_variable_the_address_and_the_cause(metrics):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        with pytest.raises(PluginError) as refused:
            MetricsListener(metrics_app(metrics), "127.0.0.1", port)

    assert refused.value.message == (
        f"SRIOV_METRICS_ADDR: listen on 127.0.0.1:{port}: Address already in use"
    )


def test_requests_counted_from_many_threads_at_once_are_all_counted(metrics):
    """waitress answers on several threads: no increment may be lost between them."""

    def answer_many() -> None:
        for n in range(1000):
            metrics.observe_request("Plugin.Activate", 200 if n % 2 else 409, 0.002)

    threads = [threading.Thread(target=answer_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    samples = samples_of(metrics.exposition())
    ok = (("method", "Plugin.Activate"), ("outcome", "ok"))
    conflict = (("method", "Plugin.Activate"), ("outcome", "conflict"))
    assert samples[("sriov_requests_total", ok)] == 4000
    assert samples[("sriov_requests_total", conflict)] == 4000
    method = (("method", "Plugin.Activate"),)
    assert samples[("sriov_request_duration_seconds_count", method)] == 8000
    assert samples[("sriov_request_duration_seconds_bucket", (("le", "0.001"), *method))] == 0
    assert samples[("sriov_request_duration_seconds_bucket", (("le", "0.0025"), *method))] == 8000
    assert samples[("sriov_request_duration_seconds_sum", method)] == pytest.approx(16.0)
