"""Prometheus metrics: request counts and latency, VF failures, and the state the plugin holds.

Names and labels follow the SR-IOV network metrics exporter where they overlap
(``sriov_vf_*`` with ``pf``, ``vf`` and ``pciAddr``), so its per-VF traffic
series join ours on ``pciAddr``:
``sriov_vf_tx_bytes * on (pciAddr) group_left(network, endpoint) sriov_vf_leased``.

Gauges of what is held (VFs by state, leases, pools) are computed from the
status view at scrape time: always right, across restarts, with nothing to keep
in step. Counters (requests, failures) count since the plugin started.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from plugin.status import StatusService

VF_STATES = ("free", "leased", "unusable")
# Request latency buckets: a trivial call takes under a millisecond, CreateEndpoint on a
# real NIC tens of milliseconds, and enabling VFs after a reboot can take seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def outcome_of(status: int) -> str:
    """The ``outcome`` label of a reply's HTTP status."""
    if status < 400:
        return "ok"
    return {400: "bad_request", 404: "not_found", 409: "conflict"}.get(status, "error")


class Metrics:
    """The plugin's registry; also the NetworkService's VfEvents (VF failures)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "sriov_requests",
            "Protocol requests answered, by method and outcome",
            ["method", "outcome"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "sriov_request_duration_seconds",
            "Time to answer a protocol request, by method",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
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

    def collect_held_state(self, status: StatusService) -> None:
        """Add the gauges of what is held, computed from ``status`` at each scrape."""
        self.registry.register(HeldStateCollector(status))

    def observe_request(self, method: str, status: int, seconds: float) -> None:
        self._requests.labels(method, outcome_of(status)).inc()
        self._latency.labels(method).observe(seconds)

    def program_failed(self, pf: str) -> None:
        self._program_failures.labels(pf).inc()

    def restore_failed(self, pf: str) -> None:
        self._restore_failures.labels(pf).inc()

    def exposition(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class HeldStateCollector:
    """Gauges of what the plugin holds, read from the status view at each scrape."""

    def __init__(self, status: StatusService) -> None:
        self._status = status

    def describe(self) -> list:
        return []  # computed at scrape time; nothing to check at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        view = self._status.status()
        yield from _pf_families(view["pfs"])
        yield from _pool_families(view["pools"])
        networks = GaugeMetricFamily(
            "sriov_network_endpoints",
            "Endpoints (VF leases) per network",
            labels=["network", "vlan"],
        )
        for network in view["networks"]:
            networks.add_metric([network["id"], str(network["vlan"])], network["endpoints"])
        yield networks


def _pf_families(pfs: list[dict]) -> Iterator[GaugeMetricFamily]:
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
    yield from (by_state, numvfs, totalvfs, leased, kept)


def _pool_families(pools: list[dict]) -> Iterator[GaugeMetricFamily]:
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
    yield from (in_use, total)
