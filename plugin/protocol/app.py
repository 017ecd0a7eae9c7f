"""The Falcon application: HTTP in, JSON out, and nothing else.

Docker calls ``POST /<Interface>.<Method>`` with no Content-Type and, for some
methods, an empty body. Each method is one route whose responder reads the body,
checks it against the method's JSON Schema and hands it to a handler (see
``plugin.protocol.handlers``); every failure leaves as a non-2xx ``{"Err": message}``.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

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
        req.env[IDS_KEY] = request_ids(body)
        if log.isEnabledFor(logging.DEBUG):
            # What the engine sent, as sent: engines differ in the fields they add.
            log.debug("%s request %s", self._method, json.dumps(body))
        self._validate(self._method, body)
        reply = self._handler(body)
        req.env[REPLY_IDS_KEY] = request_ids(reply)
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
    if not body or not isinstance(body, dict):
        return ""
    parts = []
    for field, name, width in LOGGED_FIELDS:
        value = body.get(field)
        if isinstance(value, str) and value:
            parts.append(f"{name}={value[:width]}")
    return " ".join(parts)


# What a request leaves in its WSGI environ for the log line: the ids of the request and
# of the reply (ProtocolMethod), or the error message sent instead (_reply_error).
IDS_KEY = "sriov.ids"
REPLY_IDS_KEY = "sriov.reply_ids"
ERROR_KEY = "sriov.error"


@dataclass(frozen=True, slots=True)
class FinishedRequest:
    """A request that was answered, as the request log and metrics see it."""

    http_method: str  # "POST" for every protocol call
    path: str  # "NetworkDriver.CreateEndpoint", or what a client asked for
    protocol: bool  # whether ``path`` is one of the protocol's methods
    status: int  # the reply's HTTP status
    seconds: float  # from the request reaching the app to its reply being built


def log_request(created: float, request: str, result: str, seconds: float) -> None:
    """Write one request's log line now (``created``, the time it was answered, is now)."""
    log.info("%s -> %s (%.1f ms)", request, result, seconds * 1000)


class RequestLogWriter:
    """Request log lines written on a thread of their own, milliseconds after the replies.

    Formatting and writing the line cost a trivial call a fifth of its time even
    after its reply had gone, because the request's thread still held the
    interpreter when the next request came in (1.24x a bare falcon + waitress
    app with the line, 1.02x without). Here a request only queues its line; the
    writer wakes on the first one, lets the lines of DELAY seconds gather, and
    logs each through the ``sriov`` logger with the time its request was
    answered, so the lines read as before. ``flush`` writes what is queued now:
    at exit (SIGTERM included), so a stop loses none.
    """

    DELAY = 0.005

    def __init__(self) -> None:
        self._lines: collections.deque[tuple[float, str, str, float]] = collections.deque()
        self._wake = threading.Event()
        self._flushing = threading.Lock()
        threading.Thread(target=self._run, name="sriov-request-log", daemon=True).start()

    def __call__(self, created: float, request: str, result: str, seconds: float) -> None:
        if log.isEnabledFor(logging.INFO):
            self._lines.append((created, request, result, seconds))
            if not self._wake.is_set():
                self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(self.DELAY)
            self._wake.clear()  # a line queued from here on wakes the writer again
            self.flush()

    def flush(self) -> None:
        with self._flushing:
            while self._lines:
                created, request, result, seconds = self._lines.popleft()
                record = log.makeRecord(
                    log.name, logging.INFO, "(unknown file)", 0, "%s -> %s (%.1f ms)",
                    (request, result, seconds * 1000), None,
                )  # fmt: skip
                record.created = created
                record.msecs = (created - int(created)) * 1000
                log.handle(record)


class LogAfterReply:
    """WSGI wrapper: time each request, then, once the reply is sent, log it and report it.

    One info line per request with method, ids, outcome and milliseconds; then
    each of ``after_reply`` is called with the FinishedRequest (the metrics).
    A WSGI server calls ``close()`` on the reply after sending it, so neither
    the line nor the counting delays the caller. Done here rather than as two
    Falcon middleware components, whose four hooks ran on every request.
    """

    def __init__(
        self,
        app: falcon.App,
        methods: Iterable[str],
        after_reply: Sequence[Callable[[FinishedRequest], object]] = (),
        write_line: Callable[[float, str, str, float], None] = log_request,
    ) -> None:
        self._app = app
        self._methods = frozenset(methods)
        self._after_reply = tuple(after_reply)
        self._write_line = write_line

    def __call__(self, environ: dict, start_response: Callable[..., object]) -> _ClosingReply:
        started = time.perf_counter()
        statuses = []

        def remember_status(status: str, headers: list, exc_info: object = None) -> object:
            statuses.append(status)
            return start_response(status, headers, exc_info)

        body = self._app(environ, remember_status)
        elapsed = time.perf_counter() - started
        return _ClosingReply(body, self, environ, statuses[-1] if statuses else "500", elapsed)

    def finished(self, environ: dict, status: str, seconds: float) -> None:
        """Log the request and hand it to ``after_reply``; called once its reply is sent."""
        path = environ.get("PATH_INFO", "").strip("/")
        code = status.split(" ", 1)[0]
        detail = environ.get(ERROR_KEY) or environ.get(REPLY_IDS_KEY, "")
        request = " ".join(part for part in (path, environ.get(IDS_KEY, "")) if part)
        result = " ".join(part for part in (code, detail) if part)
        self._write_line(time.time(), request, result, seconds)
        if self._after_reply:
            done = FinishedRequest(
                environ.get("REQUEST_METHOD", ""), path, path in self._methods, int(code), seconds
            )
            for observer in self._after_reply:
                observer(done)


class _ClosingReply:
    def __init__(
        self, body: Iterable[bytes], app: LogAfterReply, environ: dict, status: str, seconds: float
    ) -> None:
        self._body = body
        self._app = app
        self._environ = environ
        self._status = status
        self._seconds = seconds

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            close()
        self._app.finished(self._environ, self._status, self._seconds)


def _reply_error(req: falcon.Request, resp: falcon.Response, status: int, message: str) -> None:
    req.env[ERROR_KEY] = message
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
    after_reply: Sequence[Callable[[FinishedRequest], object]] = (),
    write_line: Callable[[float, str, str, float], None] = log_request,
) -> LogAfterReply:
    """Build the WSGI app: one route per protocol method in ``handlers``, plus ``routes``;
    each request is logged (by ``write_line``), then given to ``after_reply``, once its
    reply is sent."""
    app = falcon.App()
    app.req_options.strip_url_path_trailing_slash = True
    for method, handler in handlers.items():
        app.add_route(f"/{method}", ProtocolMethod(method, handler, validate))
    for path, resource in (routes or {}).items():
        app.add_route(path, resource)
    app.add_error_handler(Exception, _unexpected_error)
    app.add_error_handler(falcon.HTTPError, _http_error)
    app.add_error_handler(PluginError, _plugin_error)
    return LogAfterReply(app, handlers, after_reply, write_line)
