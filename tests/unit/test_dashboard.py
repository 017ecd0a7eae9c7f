"""The Grafana dashboard in dashboards/: every metric its queries use is one the plugin exports.

The names are taken from a real scrape of the app as server.py assembles it
(a network, a leased VF, a PF that reports VF traffic, a few requests), parsed
with prometheus_client's parser, so a renamed or dropped series fails here
before a dashboard goes blank.
"""

from __future__ import annotations

import json
import re

import pytest
from support import REPO_ROOT
from test_network import ep_id, net_id
from test_status_metrics import Plugin

from plugin.nic.base import VF_STATS_FIELDS, VfStats

DASHBOARD = REPO_ROOT / "dashboards" / "sriov.json"

# PromQL words that are not series names: aggregations' modifiers, set operators.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
            "offset", "bool"}  # fmt: skip


def series_names(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers that are neither a function
    (followed by ``(``), a keyword, nor inside ``{...}``, ``[...]``, ``by (...)`` or quotes."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        rest = text[match.end() :].lstrip()
        if rest.startswith("(") or match.group() in KEYWORDS:
            continue
        names.add(match.group())
    return names


def test_series_names_finds_names_not_functions_labels_or_variables():
    expr = (
        "histogram_quantile(0.99, sum by (le, method) (rate(sriov_request_duration_seconds_bucket"
        '{instance=~"$instance"}[$__rate_interval]))) / on (pf) group_left(endpoint) other_total'
    )
    assert series_names(expr) == {"sriov_request_duration_seconds_bucket", "other_total"}


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    queries = [target["expr"] for panel in panels for target in panel["targets"]]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":  # label_values(METRIC, LABEL): the metric is the query
            queries.append(re.fullmatch(r"label_values\((\w+), *\w+\)", variable["query"])[1])
    return queries


@pytest.fixture
def exported(tmp_path) -> set[str]:
    """Every sample name of a scrape with a lease, VF traffic, requests and a pool."""
    plugin = Plugin(tmp_path)
    pool = plugin.network(1, pf_iface="pf0", vlanid=100)
    plugin.endpoint(1, 1, pool)
    plugin.nic.stats["pf0"] = {0: VfStats(**dict.fromkeys(VF_STATS_FIELDS, 1))}
    plugin.nic.fail.add("mac")  # a failed programming, undone
    plugin.post("NetworkDriver.CreateEndpoint", {"NetworkID": net_id(1), "EndpointID": ep_id(9)})
    plugin.nic.fail = {"vlan"}  # a failed restore
    plugin.post("NetworkDriver.DeleteEndpoint", {"NetworkID": net_id(1), "EndpointID": ep_id(1)})
    return {name for name, _labels in plugin.metrics()}


def test_every_metric_the_dashboard_queries_is_exported(exported):
    used = set().union(*(series_names(q) for q in dashboard_queries()))

    assert used - exported == set()
    # What the dashboard is for: VFs by state, traffic per VF, request latency, pool use.
    purposes = {"sriov_pf_vfs", "sriov_vf_rx_bytes_total", "sriov_vf_tx_bytes_total",
                "sriov_request_duration_seconds_bucket", "sriov_pool_addresses_in_use"}  # fmt: skip
    assert purposes <= used


def test_the_traffic_panels_name_the_network_and_endpoint_of_each_vf():
    dashboard = json.loads(DASHBOARD.read_text())
    traffic = [
        target
        for panel in dashboard["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
        if "sriov_vf_rx_bytes_total" in target["expr"] and "topk" not in target["expr"]
    ]
    assert traffic and all("{{endpoint}}" in t["legendFormat"] for t in traffic)
