"""The Falcon application: HTTP in, JSON out, and nothing else.

Docker calls ``POST /<Interface>.<Method>`` with no Content-Type and, for some
methods, an empty body. Each method is one route whose responder reads the body,
checks it against the method's JSON Schema and hands it to a handler (see
``plugin.handlers``); every failure leaves as a non-2xx ``{"Err": message}``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence

import falcon

from plugin.errors import InvalidRequest, PluginError

log = logging.getLogger("sriov")

Handler = Callable[[dict], dict]

# Body fields worth a place in the one-line request log, and their short names.
LOGGED_FIELDS = (
    ("NetworkID", "net", 12),
    ("EndpointID", "ep", 12),
    ("PoolID", "pool", 64),
    ("Pool", "cidr", 64),
    ("Address", "addr", 64),
)


class ProtocolMethod:
    """The responder of one protocol method."""

    def __init__(self, method: str, handler: Handler, validate: Callable[[str, object], None]):
        self._method = method
        self._handler = handler
        self._validate = validate

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_body(req, self._method)
        req.context.ids = request_ids(body)
        if log.isEnabledFor(logging.DEBUG):
            # What the engine sent, as sent: engines differ in the fields they add.
            log.debug("%s request %s", self._method, json.dumps(body))
        self._validate(self._method, body)
        reply = self._handler(body)
        req.context.reply_ids = request_ids(reply)
        resp.text = json.dumps(reply)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s reply %s", self._method, resp.text)


def read_body(req: falcon.Request, method: str) -> object:
    """The JSON body; Docker sends an empty one for argument-less calls, which means {}."""
    raw = req.bounded_stream.read()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(f"{method}: request body is not JSON: {exc}") from None


def request_ids(body: object) -> str:
    if not isinstance(body, dict):
        return ""
    parts = []
    for field, name, width in LOGGED_FIELDS:
        value = body.get(field)
        if isinstance(value, str) and value:
            parts.append(f"{name}={value[:width]}")
    return " ".join(parts)


# Where RequestLog leaves the finished log line for LogAfterReply.
LOG_LINE_KEY = "sriov.log_line"


class RequestLog:
    """Middleware: one info line per request with method, ids, outcome and milliseconds.

    The line is composed here but written by ``LogAfterReply`` once the reply
    has gone out, so Docker does not wait for the log.
    """

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()
        req.context.ids = ""
        req.context.reply_ids = ""
        req.context.error = ""

    def process_response(self, req, resp, resource, req_succeeded: bool) -> None:
        elapsed_ms = (time.perf_counter() - req.context.started) * 1000
        method = req.path.lstrip("/")
        outcome = resp.status if isinstance(resp.status, str) else str(resp.status)
        detail = req.context.error or req.context.reply_ids
        request = " ".join(part for part in (method, req.context.ids) if part)
        result = " ".join(part for part in (outcome.split(" ")[0], detail) if part)
        req.env[LOG_LINE_KEY] = (request, result, elapsed_ms)


class LogAfterReply:
    """WSGI wrapper: write the request's log line when the server closes the reply.

    A WSGI server calls ``close()`` on the reply after sending it, so the line
    costs the caller nothing.
    """

    def __init__(self, app: falcon.App):
        self._app = app

    def __call__(self, environ: dict, start_response) -> _ClosingReply:
        return _ClosingReply(self._app(environ, start_response), environ)


class _ClosingReply:
    def __init__(self, body, environ: dict):
        self._body = body
        self._environ = environ

    def __iter__(self):
        return iter(self._body)

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            close()
        line = self._environ.pop(LOG_LINE_KEY, None)
        if line is not None:
            log.info("%s -> %s (%.1f ms)", *line)


def _reply_error(req: falcon.Request, resp: falcon.Response, status: int, message: str) -> None:
    req.context.error = message
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.text = json.dumps({"Err": message})


def _plugin_error(req, resp, ex: PluginError, params) -> None:
    _reply_error(req, resp, ex.status, ex.message)


def _http_error(req, resp, ex: falcon.HTTPError, params) -> None:
    if isinstance(ex, falcon.HTTPNotFound):
        message = f"unknown method {req.path.lstrip('/')!r}: this plugin implements " + (
            "Plugin.Activate, NetworkDriver.* and IpamDriver.*"
        )
    else:
        message = f"{req.method} {req.path}: {ex.title}" + (
            f": {ex.description}" if ex.description else ""
        )
    _reply_error(req, resp, ex.status_code, message)


def _unexpected_error(req, resp, ex: Exception, params) -> None:
    method = req.path.lstrip("/")
    log.exception("%s failed unexpectedly", method)
    _reply_error(
        req,
        resp,
        500,
        f"{method}: internal error ({type(ex).__name__}); the plugin log has the details",
    )


def create_app(
    handlers: Mapping[str, Handler],
    validate: Callable[[str, object], None],
    routes: Mapping[str, object] | None = None,
    middleware: Sequence[object] = (),
) -> LogAfterReply:
    """Build the WSGI app: one route per protocol method in ``handlers``, plus ``routes``."""
    app = falcon.App(middleware=[RequestLog(), *middleware])
    app.req_options.strip_url_path_trailing_slash = True
    for method, handler in handlers.items():
        app.add_route(f"/{method}", ProtocolMethod(method, handler, validate))
    for path, resource in (routes or {}).items():
        app.add_route(path, resource)
    app.add_error_handler(Exception, _unexpected_error)
    app.add_error_handler(falcon.HTTPError, _http_error)
    app.add_error_handler(PluginError, _plugin_error)
    return LogAfterReply(app)
