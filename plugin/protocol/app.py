"""The Falcon application: HTTP in, JSON out, and nothing else.

Docker calls ``POST /<Interface>.<Method>`` with no Content-Type and, for some
methods, an empty body. Each method is one route whose responder reads the body,
checks it against the method's JSON Schema and hands it to a handler (see
``plugin.protocol.handlers``); every failure leaves as a non-2xx ``{"Err": message}``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import falcon

from plugin.errors import InvalidRequest, PluginError
from plugin.protocol.schema import json_path

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

    def __init__(
        self, method: str, handler: Handler, validate: Callable[[str, object], None]
    ) -> None:
        self._method = method
        self._handler = handler
        self._validate = validate

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_body(req)
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


def read_body(req: falcon.Request) -> object:
    """The JSON body; Docker sends an empty one for argument-less calls, which means {}."""
    raw = req.bounded_stream.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(f"request body is not JSON: {exc}") from None
    except RecursionError:
        raise InvalidRequest(
            f"request body is nested too deeply to read (at most {MAX_NESTING} levels)"
        ) from None
    check_plain_json(body)
    return body


# Docker's deepest request (CreateNetwork IPv4Data[0].AuxAddresses) is 4 levels deep.
MAX_NESTING = 32


def check_plain_json(body: object) -> None:
    """Refuse what JSON can carry but no field of ours may hold, before anything reads it.

    A body nested deeper than MAX_NESTING (the schema checks and services recurse
    over it), and a string or key with a lone UTF-16 surrogate (``"\\ud800"`` is
    valid JSON, but not text: it cannot be encoded for SQLite, a path or netlink).
    The walk uses its own stack, so no body can exhaust Python's.
    """
    pending: list[tuple[object, tuple]] = [(body, ())]
    while pending:
        value, path = pending.pop()
        if len(path) > MAX_NESTING:
            raise InvalidRequest(
                f"{json_path(path[:MAX_NESTING])}: request body is nested more than "
                f"{MAX_NESTING} levels deep"
            )
        if isinstance(value, str):
            _check_text(value, path)
        elif isinstance(value, dict):
            for key, item in value.items():
                _check_text(key, (*path, key))
                pending.append((item, (*path, key)))
        elif isinstance(value, list):
            pending.extend((item, (*path, index)) for index, item in enumerate(value))


def _check_text(value: str, path: tuple) -> None:
    if value.isascii():
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequest(
            f"{json_path(path)}: {value[:40]!a} is not valid Unicode text "
            f"(lone surrogate {value[exc.start]!r} at position {exc.start})"
        ) from None


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

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
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

    def __init__(self, app: falcon.App) -> None:
        self._app = app

    def __call__(self, environ: dict, start_response: Callable[..., object]) -> _ClosingReply:
        return _ClosingReply(self._app(environ, start_response), environ)


class _ClosingReply:
    def __init__(self, body: Iterable[bytes], environ: dict) -> None:
        self._body = body
        self._environ = environ

    def __iter__(self) -> Iterator[bytes]:
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


def _plugin_error(
    req: falcon.Request, resp: falcon.Response, ex: PluginError, params: dict
) -> None:
    _reply_error(req, resp, ex.status, ex.message)


def _http_error(
    req: falcon.Request, resp: falcon.Response, ex: falcon.HTTPError, params: dict
) -> None:
    if isinstance(ex, falcon.HTTPNotFound):
        message = f"unknown method {req.path.lstrip('/')!r}: this plugin implements " + (
            "Plugin.Activate, NetworkDriver.* and IpamDriver.*"
        )
    else:
        message = f"{req.method} {req.path}: {ex.title}" + (
            f": {ex.description}" if ex.description else ""
        )
    _reply_error(req, resp, ex.status_code, message)


def _unexpected_error(
    req: falcon.Request, resp: falcon.Response, ex: Exception, params: dict
) -> None:
    """A bug of ours: the traceback goes to the log, the reply says only that it happened."""
    log.exception("%s failed unexpectedly", req.path.lstrip("/"))
    _reply_error(
        req, resp, 500, f"internal error ({type(ex).__name__}); the plugin log has the details"
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
