"""The plugin's own GET routes next to the protocol: ``/status`` (JSON) and ``/metrics``.

They share the protocol's unix socket, so an operator needs no new port; the
responders only translate HTTP and call the status service or the metrics.
``metrics_app`` serves ``/metrics`` alone, for the TCP listener of SRIOV_METRICS_ADDR.
"""

from __future__ import annotations

import json

import falcon

from plugin.ops.metrics import CONTENT_TYPE, Metrics
from plugin.ops.status import StatusService
from plugin.protocol.app import FinishedRequest


class StatusResource:
    def __init__(self, status: StatusService) -> None:
        self._status = status

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_JSON
        resp.text = json.dumps(self._status.status())


class MetricsResource:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = CONTENT_TYPE
        resp.data = self._metrics.exposition()


class RequestMetrics:
    """Count each protocol request by method and outcome, and its time (an ``after_reply``)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def __call__(self, request: FinishedRequest) -> None:
        if request.http_method != "POST":
            return  # status and metrics scrapes are not protocol requests
        # An unknown path is one label value, not one per path a client tried.
        method = request.path if request.protocol else "unknown"
        self._metrics.observe_request(method, request.status, request.seconds)


def ops_routes(status: StatusService, metrics: Metrics) -> dict[str, object]:
    return {"/status": StatusResource(status), "/metrics": MetricsResource(metrics)}


def metrics_app(metrics: Metrics) -> falcon.App:
    """GET /metrics and nothing else: what SRIOV_METRICS_ADDR exposes beyond the host."""
    app = falcon.App()
    app.add_route("/metrics", MetricsResource(metrics))
    return app
