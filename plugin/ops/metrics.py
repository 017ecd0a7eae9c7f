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

from plugin.ops.exposition import Counter, Family, Histogram, gauge, render
from plugin.ops.status import StatusService

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
    """The plugin's metrics; also the NetworkService's VfEvents (VF failures)."""

    def __init__(self) -> None:
        self._requests = Counter(
            "sriov_requests_total",
            "Protocol requests answered, by method and outcome",
            ("method", "outcome"),
        )
        self._latency = Histogram(
            "sriov_request_duration_seconds",
            "Time to answer a protocol request, by method",
            ("method",),
            LATENCY_BUCKETS,
        )
        self._program_failures = Counter(
            "sriov_vf_program_failures_total",
            "VFs whose programming failed (and was undone), by PF",
            ("pf",),
        )
        self._restore_failures = Counter(
            "sriov_vf_restore_failures_total",
            "Failed attempts to restore a VF's original settings, by PF",
            ("pf",),
        )
        self._status: StatusService | None = None

    def collect_held_state(self, status: StatusService) -> None:
        """Add the gauges of what is held, computed from ``status`` at each scrape."""
        self._status = status

    def observe_request(self, method: str, status: int, seconds: float) -> None:
        self._requests.inc(method, outcome_of(status))
        self._latency.observe(seconds, method)

    def program_failed(self, pf: str) -> None:
        self._program_failures.inc(pf)

    def restore_failed(self, pf: str) -> None:
        self._restore_failures.inc(pf)

    def exposition(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        families = [
            self._requests.family(),
            self._latency.family(),
            self._program_failures.family(),
            self._restore_failures.family(),
        ]
        if self._status is not None:
            families.extend(held_state_families(self._status.status()))
        return render(families)


def held_state_families(view: dict) -> list[Family]:
    """Gauges of what the plugin holds, from one status view."""
    networks = gauge(
        "sriov_network_endpoints", "Endpoints (VF leases) per network", ("network", "vlan")
    )
    for network in view["networks"]:
        networks.add((network["id"], str(network["vlan"])), network["endpoints"])
    return [*_pf_families(view["pfs"]), *_pool_families(view["pools"]), networks]


def _pf_families(pfs: list[dict]) -> list[Family]:
    by_state = gauge(
        "sriov_pf_vfs", "VFs of a PF by state (free, leased, unusable)", ("pf", "state")
    )
    numvfs = gauge("sriov_pf_numvfs", "sriov_numvfs of a PF", ("pf",))
    totalvfs = gauge("sriov_pf_totalvfs", "sriov_totalvfs of a PF", ("pf",))
    leased = gauge(
        "sriov_vf_leased",
        "1 for each VF leased to an endpoint, with its network and endpoint",
        ("pf", "vf", "pciAddr", "network", "endpoint"),
    )
    kept = gauge(
        "sriov_vf_restore_failed_leases",
        "VFs kept leased because their original settings could not be restored",
        ("pf",),
    )
    for pf in pfs:
        name = pf["name"]
        for state in VF_STATES:
            by_state.add((name, state), pf["vf_counts"][state])
        if "numvfs" in pf:
            numvfs.add((name,), pf["numvfs"])
            totalvfs.add((name,), pf["totalvfs"])
        held = [vf for vf in pf["vfs"] if vf["state"] == "leased"]
        for vf in held:
            lease = vf["lease"]
            labels = (name, str(vf["index"]), vf["pci"], lease["network"], lease["endpoint"])
            leased.add(labels, 1)
        kept.add((name,), sum(1 for vf in held if "restore_error" in vf["lease"]))
    return [by_state, numvfs, totalvfs, leased, kept]


def _pool_families(pools: list[dict]) -> list[Family]:
    labels = ("pool", "address_space", "cidr")
    in_use = gauge("sriov_pool_addresses_in_use", "Addresses held in a pool", labels)
    total = gauge("sriov_pool_addresses", "Addresses a pool can hand out", labels)
    for pool in pools:
        key = (pool["id"], pool["address_space"], pool["cidr"])
        in_use.add(key, pool["in_use"])
        total.add(key, pool["total"])
    return [in_use, total]
