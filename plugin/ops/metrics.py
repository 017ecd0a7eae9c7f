"""Prometheus metrics: request counts and latency, VF failures and traffic, what the plugin holds.

Names and labels follow the SR-IOV network metrics exporter where they overlap
(``sriov_vf_*`` with ``pf``, ``vf`` and ``pciAddr``), so its series join ours
on ``pciAddr``: ``sriov_vf_tx_bytes * on (pciAddr) group_left(network, endpoint)
sriov_vf_leased``. The plugin's own traffic counters carry ``network`` and
``endpoint`` themselves, and are named as counters (``sriov_vf_tx_bytes_total``),
so they do not clash with the exporter's series on a host that runs both.

Gauges of what is held (VFs by state, leases, pools) and the VF traffic counters
are computed from the status view at scrape time: always right, across restarts,
with nothing to keep in step. The request and failure counters count since the
plugin started. prometheus_client writes the text format, with its process,
platform and garbage-collector collectors (``process_resident_memory_bytes``, ...).
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

import prometheus_client
from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

if TYPE_CHECKING:
    from plugin.ops.status import StatusService

# The text format 0.0.4, which every Prometheus server reads; the names need nothing newer.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
VF_STATES = ("free", "leased", "unusable")
# Request latency buckets: a trivial call takes under a millisecond, CreateEndpoint on a
# real NIC tens of milliseconds, and enabling VFs after a reboot can take seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# VF traffic counters: (counter name without _total, status view key, HELP).
VF_TRAFFIC = (
    ("sriov_vf_rx_bytes", "rx_bytes", "Bytes a VF received, as its PF reports them"),
    ("sriov_vf_tx_bytes", "tx_bytes", "Bytes a VF sent, as its PF reports them"),
    ("sriov_vf_rx_packets", "rx_packets", "Packets a VF received, as its PF reports them"),
    ("sriov_vf_tx_packets", "tx_packets", "Packets a VF sent, as its PF reports them"),
    ("sriov_vf_rx_broadcast", "broadcast", "Broadcast packets a VF received"),
    ("sriov_vf_rx_multicast", "multicast", "Multicast packets a VF received"),
    ("sriov_vf_rx_dropped", "rx_dropped", "Packets for a VF that were dropped"),
    ("sriov_vf_tx_dropped", "tx_dropped", "Packets from a VF that were dropped"),
)


def outcome_of(status: int) -> str:
    """The ``outcome`` label of a reply's HTTP status."""
    if status < 400:
        return "ok"
    return {400: "bad_request", 404: "not_found", 409: "conflict"}.get(status, "error")


class Metrics:
    """The plugin's registry; also the NetworkService's VfEvents (VF failures)."""

    def __init__(self) -> None:
        # The *_created series would add one series per counter and histogram that no
        # dashboard reads; the exposition stays as README documents it.
        prometheus_client.disable_created_metrics()
        self.registry = CollectorRegistry()
        self._requests = RequestCollector(LATENCY_BUCKETS)
        self.registry.register(self._requests)
        self._program_failures = Counter(
            "sriov_vf_program_failures",
            "VFs whose programming failed (and was undone), by PF",
            ["pf"],
            registry=self.registry,
        )
        self._restore_failures = Counter(
            "sriov_vf_restore_failures",
            "Failed attempts to restore a VF's original settings, by PF",
            ["pf"],
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def collect_held_state(self, status: StatusService) -> None:
        """Add the gauges of what is held and the VF traffic, from ``status`` at each scrape."""
        self.registry.register(HeldStateCollector(status))

    def observe_request(self, method: str, status: int, seconds: float) -> None:
        self._requests.observe(method, status, seconds)

    def program_failed(self, pf: str) -> None:
        self._program_failures.labels(pf).inc()

    def restore_failed(self, pf: str) -> None:
        self._restore_failures.labels(pf).inc()

    def exposition(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class RequestCollector:
    """``sriov_requests_total`` and ``sriov_request_duration_seconds``, counted per request
    under one lock and handed to prometheus_client at scrape time.

    A custom collector, prometheus_client's way for values kept elsewhere: its
    Counter and Histogram take three locks and a dozen calls per request, which
    on a trivial call was more than the rest of the plugin's own work.
    """

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self._bounds = tuple(float(bound) for bound in sorted(buckets))
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, int], int] = {}  # (method, HTTP status) -> requests
        self._latency: dict[str, list[float]] = {}  # method -> per bucket (+Inf last), sum

    def observe(self, method: str, status: int, seconds: float) -> None:
        bucket = bisect.bisect_left(self._bounds, seconds)  # the first bound >= seconds
        with self._lock:
            self._counts[(method, status)] = self._counts.get((method, status), 0) + 1
            series = self._latency.get(method)
            if series is None:
                series = self._latency[method] = [0.0] * (len(self._bounds) + 2)
            series[bucket] += 1
            series[-1] += seconds

    def describe(self) -> list:
        return []  # families of scrape-time values: nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            counts = dict(self._counts)
            latency = {method: list(series) for method, series in self._latency.items()}
        requests = CounterMetricFamily(
            "sriov_requests",
            "Protocol requests answered, by method and outcome",
            labels=["method", "outcome"],
        )
        by_outcome: dict[tuple[str, str], int] = {}
        for (method, status), count in counts.items():
            key = (method, outcome_of(status))
            by_outcome[key] = by_outcome.get(key, 0) + count
        for labels, count in by_outcome.items():
            requests.add_metric(list(labels), count)
        yield requests
        durations = HistogramMetricFamily(
            "sriov_request_duration_seconds",
            "Time to answer a protocol request, by method",
            labels=["method"],
        )
        bounds = [*(floatToGoString(b) for b in self._bounds), "+Inf"]
        for method, series in latency.items():
            cumulative, total = [], 0.0
            for count in series[:-1]:
                total += count
                cumulative.append(total)
            durations.add_metric([method], list(zip(bounds, cumulative, strict=True)), series[-1])
        yield durations


class HeldStateCollector:
    """Gauges of what the plugin holds and VF traffic, read from the status view at each scrape."""

    def __init__(self, status: StatusService) -> None:
        self._status = status

    def describe(self) -> list:
        return []  # computed at scrape time; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        return iter(held_state_families(self._status.status()))


def held_state_families(view: dict) -> list[Metric]:
    """Gauges of what the plugin holds and the VF traffic counters, from one status view."""
    networks = GaugeMetricFamily(
        "sriov_network_endpoints", "Endpoints (VF leases) per network", labels=["network", "vlan"]
    )
    for network in view["networks"]:
        networks.add_metric([network["id"], str(network["vlan"])], network["endpoints"])
    return [
        *_pf_families(view["pfs"]),
        *_pool_families(view["pools"]),
        networks,
        *vf_traffic_families(view["pfs"]),
    ]


def _pf_families(pfs: list[dict]) -> list[Metric]:
    by_state = GaugeMetricFamily(
        "sriov_pf_vfs", "VFs of a PF by state (free, leased, unusable)", labels=["pf", "state"]
    )
    numvfs = GaugeMetricFamily("sriov_pf_numvfs", "sriov_numvfs of a PF", labels=["pf"])
    totalvfs = GaugeMetricFamily("sriov_pf_totalvfs", "sriov_totalvfs of a PF", labels=["pf"])
    leased = GaugeMetricFamily(
        "sriov_vf_leased",
        "1 for each VF leased to an endpoint, with its network and endpoint",
        labels=["pf", "vf", "pciAddr", "network", "endpoint"],
    )
    kept = GaugeMetricFamily(
        "sriov_vf_restore_failed_leases",
        "VFs kept leased because their original settings could not be restored",
        labels=["pf"],
    )
    for pf in pfs:
        name = pf["name"]
        for state in VF_STATES:
            by_state.add_metric([name, state], pf["vf_counts"][state])
        if "numvfs" in pf:
            numvfs.add_metric([name], pf["numvfs"])
            totalvfs.add_metric([name], pf["totalvfs"])
        held = [vf for vf in pf["vfs"] if vf["state"] == "leased"]
        for vf in held:
            lease = vf["lease"]
            labels = [name, str(vf["index"]), vf["pci"], lease["network"], lease["endpoint"]]
            leased.add_metric(labels, 1)
        kept.add_metric([name], sum(1 for vf in held if "restore_error" in vf["lease"]))
    return [by_state, numvfs, totalvfs, leased, kept]


def vf_traffic_families(pfs: list[dict]) -> list[Metric]:
    """A counter per VF and direction, for the VFs whose PF reports traffic.

    Labelled ``pf``, ``vf``, ``pciAddr``, and ``network`` and ``endpoint`` while
    the VF is leased. A counter the device does not report has no series.
    """
    families = {key: Metric(name, help, "counter") for name, key, help in VF_TRAFFIC}
    for pf in pfs:
        for vf in pf["vfs"]:
            traffic = vf.get("traffic")
            if traffic is None:
                continue
            labels = {"pf": pf["name"], "vf": str(vf["index"]), "pciAddr": vf["pci"]}
            if vf["state"] == "leased":
                labels.update(network=vf["lease"]["network"], endpoint=vf["lease"]["endpoint"])
            for key, value in traffic.items():
                family = families[key]
                family.add_sample(f"{family.name}_total", labels, value)
    return [family for family in families.values() if family.samples]


def _pool_families(pools: list[dict]) -> list[Metric]:
    labels = ["pool", "address_space", "cidr"]
    in_use = GaugeMetricFamily(
        "sriov_pool_addresses_in_use", "Addresses held in a pool", labels=labels
    )
    total = GaugeMetricFamily(
        "sriov_pool_addresses", "Addresses a pool can hand out", labels=labels
    )
    for pool in pools:
        key = [pool["id"], pool["address_space"], pool["cidr"]]
        in_use.add_metric(key, pool["in_use"])
        total.add_metric(key, pool["total"])
    return [in_use, total]
