"""The plugin's metrics over TCP (SRIOV_METRICS_ADDR): a real listener on a loopback port."""

from __future__ import annotations

import http.client
import socket

import pytest
from prometheus_client.parser import text_string_to_metric_families

from plugin.errors import PluginError
from plugin.metrics import Metrics
from plugin.ops_routes import metrics_app
from plugin.server import MetricsListener


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def listener(metrics):
    listener = MetricsListener(metrics_app(metrics), "127.0.0.1", 0)
    yield listener
    listener.close()


def http_get(port: int, path: str) -> http.client.HTTPResponse:
    """GET ``path`` on 127.0.0.1:``port``; the reply with its body read."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        reply = conn.getresponse()
        reply.body = reply.read()
        return reply
    finally:
        conn.close()


def test_the_listener_answers_get_metrics_with_the_exposition(metrics, listener):
    metrics.program_failed("pf0")

    reply = http_get(listener.port, "/metrics")

    assert reply.status == 200, reply.body
    assert reply.getheader("Content-Type") == "text/plain; version=0.0.4; charset=utf-8"
    samples = {
        (s.name, tuple(s.labels.items())): s.value
        for family in text_string_to_metric_families(reply.body.decode())
        for s in family.samples
    }
    assert samples[("sriov_vf_program_failures_total", (("pf", "pf0"),))] == 1


@pytest.mark.parametrize("path", ["/", "/status", "/Plugin.Activate"])
def test_the_listener_serves_nothing_but_metrics(listener, path):
    assert http_get(listener.port, path).status == 404


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
