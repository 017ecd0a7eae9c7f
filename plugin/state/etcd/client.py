"""The HTTP client of etcd's JSON gateway, over every configured endpoint in turn.

A call goes to the last endpoint that answered, and on to the next one when it
cannot reach it; only when none answered does it fail, naming every endpoint
and its error. Keys and values travel base64-encoded, as the gateway wants them;
range replies come back as ``KeyValue``s.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from plugin.config import ClusterConfig
from plugin.errors import StoreError

if TYPE_CHECKING:
    from etcd3gw import Etcd3Client

API_PATH = "/v3/"  # etcd's JSON gateway path since 3.4
REQUEST_TIMEOUT_S = 5.0
SCAN_PAGE = 512  # keys per range read when reading many


class ClusterUnavailable(StoreError):
    """No etcd endpoint answered: the request fails rather than guess from local state."""


# --- encoding ----------------------------------------------------------------


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def prefix_end(prefix: str) -> str:
    """The range end that covers every key starting with ``prefix`` (its last byte + 1)."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return base64.b64encode(bytes(raw)).decode()


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: dict
    mod_revision: int


def key_values(range_response: dict) -> list[KeyValue]:
    return [
        KeyValue(
            key=unb64(kv["key"]),
            value=json.loads(unb64(kv["value"])) if kv.get("value") else {},
            mod_revision=int(kv.get("mod_revision", 0)),
        )
        for kv in range_response.get("kvs", [])
    ]


# --- endpoints ---------------------------------------------------------------


def etcd3gw_client(url: str, config: ClusterConfig, timeout: float) -> Etcd3Client:
    """An etcd3gw client for one endpoint URL, with the client certificate when it is https.

    Its HTTP session ignores the environment: REQUESTS_CA_BUNDLE would replace
    the etcd CA, and an HTTP(S)_PROXY would send etcd traffic through a proxy.
    """
    import etcd3gw
    import requests

    scheme, _, rest = url.partition("://")
    host, _, port = rest.rpartition(":")
    session = requests.Session()
    session.trust_env = False
    if scheme == "https":  # load_config checked that the files exist
        session.verify = str(config.tls_dir / "ca.crt")
        session.cert = (str(config.tls_dir / "client.crt"), str(config.tls_dir / "client.key"))
    return etcd3gw.Etcd3Client(
        host=host.strip("[]"),
        port=int(port),
        protocol=scheme,
        timeout=timeout,
        api_path=API_PATH,
        session=session,
    )


class EtcdEndpoints:
    """Every configured etcd endpoint; each call goes to the last one that answered, then on.

    A call that fails to reach an endpoint (refused, reset, timed out, or the
    member has no leader) is sent to the next one; only when none answered does
    it fail, with ``ClusterUnavailable`` naming every endpoint and its error.
    ``make_client(url)`` builds each endpoint's client (etcd3gw's by default).
    """

    def __init__(
        self,
        config: ClusterConfig,
        timeout: float = REQUEST_TIMEOUT_S,
        make_client: Callable[[str], object] | None = None,
    ) -> None:
        from etcd3gw import exceptions

        self.urls = config.endpoints
        make = make_client or (lambda url: etcd3gw_client(url, config, timeout))
        self._clients = [make(url) for url in self.urls]
        self._unreachable = (exceptions.ConnectionFailedError, exceptions.ConnectionTimeoutError)
        self._etcd_error = exceptions.Etcd3Exception
        self._preferred = 0
        self._lock = threading.Lock()

    def post(self, path: str, body: dict) -> dict:
        """POST ``body`` to ``path`` of the gateway on the first endpoint that answers."""
        errors = []
        start = self._preferred
        for step in range(len(self._clients)):
            index = (start + step) % len(self._clients)
            client = self._clients[index]
            try:
                reply = client.post(client.base_url + API_PATH + path, json=body)
            except self._unreachable as exc:
                errors.append(f"{self.urls[index]}: {error_cause(exc)}")
                continue
            except self._etcd_error as exc:
                url = self.urls[index]
                raise StoreError(f"etcd at {url} refused the request: {error_cause(exc)}") from None
            if index != start:
                with self._lock:
                    self._preferred = index
            return reply
        raise ClusterUnavailable(
            "etcd cluster store unreachable, no endpoint answered "
            f"({'; '.join(errors)}); nothing was allocated or released"
        )

    def range(self, key: str, **options: object) -> dict:
        body = {"key": b64(key), **options}
        return self.post("kv/range", body)

    def range_prefix(self, prefix: str, **options: object) -> dict:
        return self.range(prefix, range_end=prefix_end(prefix), **options)

    def txn(self, compare: list, success: list, failure: list) -> dict:
        return self.post("kv/txn", {"compare": compare, "success": success, "failure": failure})


def scan_prefix(etcd: EtcdEndpoints, prefix: str) -> Iterator[KeyValue]:
    """Every key under ``prefix``, read a page at a time."""
    start = prefix
    end = prefix_end(prefix)
    while True:
        reply = etcd.range(start, range_end=end, limit=SCAN_PAGE)
        kvs = key_values(reply)
        yield from kvs
        if not reply.get("more") or not kvs:
            return
        start = kvs[-1].key + "\0"


# The part of a requests/urllib3 error text that says what went wrong.
_CAUSE = re.compile(r"\[Errno -?\d+\] [^'\")]+|\[SSL: [A-Z_]+\] [^'\")(]+|[Rr]ead timed out")


def error_cause(exc: Exception) -> str:
    """An etcd3gw error in one line: the gateway's message, or the network error's cause."""
    detail = getattr(exc, "detail_text", None) or str(exc) or type(exc).__name__
    with suppress(ValueError, AttributeError):
        detail = json.loads(detail).get("error", detail)
    detail = " ".join(str(detail).split())
    causes = _CAUSE.findall(detail)
    return causes[-1].strip() if causes else detail[:300]
