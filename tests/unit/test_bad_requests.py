"""Bad requests against the whole app with real services: a 4xx that names the field, never a 5xx.

The app is the one the plugin serves (``create_app`` with the IPAM and network
services on a real SQLite store over a small sysfs tree, and the fake NIC the
unit tests use for VF programming), already holding a pool, an address, a
network and an endpoint, so that bad requests naming them reach the services.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

import falcon.testing
import pytest
from fake_nic import FakeNic
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sysfs_trees import build, pf, vf

from plugin.config import parse_default_pools
from plugin.errors import InvalidRequest
from plugin.nic.sysfs import Sysfs
from plugin.protocol.app import MAX_NESTING, create_app
from plugin.protocol.handlers import ipam_handlers, network_handlers, plugin_handlers
from plugin.protocol.schema import RequestValidator, inline_refs, load_schemas
from plugin.services.ipam import IpamService
from plugin.services.networks import NetworkService
from plugin.state.sqlite import Store

PF_PCI = "0000:3b:00.0"
NETWORK = "a" * 64
ENDPOINT = "e" * 64
TABLES = ("pools", "addresses", "networks", "network_ports", "endpoints")


class Plugin:
    """The app over a store and a fake NIC, plus what a test needs to look at both."""

    def __init__(self, root: Path, connect: Callable[..., sqlite3.Connection] = sqlite3.connect):
        tree = {**pf("pf0", PF_PCI, 4, 4)}
        for index in range(4):
            tree.update(vf(PF_PCI, index, f"0000:3b:02.{index}", f"pf0v{index}"))
        self.store = Store(root / "state", connect)
        self.nic = FakeNic()
        handlers = plugin_handlers()
        handlers.update(
            ipam_handlers(IpamService(self.store, parse_default_pools("10.9.0.0/16:24")))
        )
        handlers.update(
            network_handlers(NetworkService(self.store, Sysfs(build(root / "sys", tree)), self.nic))
        )
        self.validator = RequestValidator()
        self._reader: sqlite3.Connection | None = None
        self.client = falcon.testing.TestClient(create_app(handlers, self.validator.validate))

    def post(self, method: str, raw: bytes) -> falcon.testing.Result:
        return self.client.simulate_post(f"/{method}", body=raw, headers={})

    def ok(self, method: str, body: dict) -> dict:
        result = self.post(method, json.dumps(body).encode())
        assert result.status_code == 200, result.text
        return result.json

    def seed(self) -> dict:
        """A pool with its gateway and one address, a network on it and a ready endpoint."""
        pool = self.ok("IpamDriver.RequestPool", {"AddressSpace": "local", "Pool": "10.1.0.0/24"})
        gateway = {"RequestAddressType": "com.docker.network.gateway"}
        self.ok("IpamDriver.RequestAddress", {"PoolID": pool["PoolID"], "Options": gateway})
        address = self.ok("IpamDriver.RequestAddress", {"PoolID": pool["PoolID"]})["Address"]
        self.ok(
            "NetworkDriver.CreateNetwork",
            {
                "NetworkID": NETWORK,
                "Options": {"com.docker.network.generic": {"pf_iface": "pf0", "vlanid": "100"}},
                "IPv4Data": [{"AddressSpace": "local", "Pool": "10.1.0.0/24",
                              "Gateway": "10.1.0.1/24"}],
            },
        )  # fmt: skip
        self.ok(
            "NetworkDriver.CreateEndpoint",
            {"NetworkID": NETWORK, "EndpointID": ENDPOINT, "Interface": {"Address": address}},
        )
        return {"pool": pool["PoolID"], "address": address.split("/")[0]}

    def state(self) -> tuple:
        """Everything committed to the store, and the fake NIC's VF settings."""
        if self._reader is None:
            self._reader = sqlite3.connect(f"file:{self.store.path}?mode=ro", uri=True)
        tables = tuple(
            tuple(self._reader.execute(f"SELECT * FROM {table} ORDER BY 1, 2")) for table in TABLES
        )
        return tables, tuple(sorted(self.nic.by_vf.items()))


@pytest.fixture
def plugin(tmp_path: Path) -> Plugin:
    return Plugin(tmp_path)


def assert_refused(result: falcon.testing.Result, status: int = 400) -> str:
    """A 4xx ``{"Err"}`` whose message is text (no raw control character) and no traceback."""
    assert result.status_code == status, result.text
    message = result.json["Err"]
    assert "Traceback" not in message
    assert not any(ch < " " for ch in message), message
    message.encode("utf-8")
    return message


# --- the cases of issue 9 ----------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 5000, 100_000])
def test_a_deeply_nested_body_is_400(plugin, depth):
    before = plugin.state()
    raw = b'{"PoolID": ' + b"[" * depth + b"]" * depth + b"}"
    message = assert_refused(plugin.post("IpamDriver.RequestAddress", raw))
    assert "nested" in message and str(MAX_NESTING) in message
    assert plugin.state() == before


def test_deep_nesting_inside_a_free_form_map_is_400(plugin):
    seeded = plugin.seed()
    before = plugin.state()
    raw = (
        b'{"PoolID": "' + seeded["pool"].encode() + b'", "Options": {"x": '
        + b'{"a": ' * 500 + b"1" + b"}" * 500 + b"}}"
    )  # fmt: skip
    message = assert_refused(plugin.post("IpamDriver.RequestAddress", raw))
    assert message.startswith("Options.x.a.a.a")
    assert plugin.state() == before


def test_a_lone_surrogate_in_pool_id_is_400_naming_the_field(plugin):
    seeded = plugin.seed()
    before = plugin.state()
    raw = b'{"PoolID": "' + seeded["pool"].encode() + b'\\ud800"}'
    message = assert_refused(plugin.post("IpamDriver.RequestAddress", raw))
    assert message.startswith("PoolID: ")
    assert "\\ud800" in message and "not valid Unicode" in message
    assert plugin.state() == before


def test_a_lone_surrogate_in_pf_iface_is_400_naming_the_field(plugin):
    raw = (
        b'{"NetworkID": "' + NETWORK.encode() + b'", "Options": '
        b'{"com.docker.network.generic": {"pf_iface": "pf\\udc00"}}}'
    )
    message = assert_refused(plugin.post("NetworkDriver.CreateNetwork", raw))
    assert message.startswith('Options["com.docker.network.generic"].pf_iface: ')
    assert plugin.state() == (((), (), (), (), ()), ())


@pytest.mark.parametrize("name", ["pf\x00x", "pf0\x07", "\x1b[31mpf0", "pf\x7f"])
def test_a_control_character_in_an_interface_name_is_refused_by_the_name_check(plugin, name):
    body = {"NetworkID": NETWORK, "Options": {"com.docker.network.generic": {"pf_iface": name}}}
    message = assert_refused(plugin.post("NetworkDriver.CreateNetwork", json.dumps(body).encode()))
    assert message.startswith(f"pf_iface {name!r} is not a valid interface name: ")
    assert "control character" in message
    assert plugin.state() == (((), (), (), (), ()), ())


def test_messages_do_not_repeat_the_method_docker_already_names(plugin):
    body = {"NetworkID": NETWORK, "EndpointID": ENDPOINT}
    result = plugin.post("NetworkDriver.CreateEndpoint", json.dumps(body).encode())
    message = assert_refused(result)
    assert (
        message == "network aaaaaaaaaaaa is not an sriov network (create it with -d sriov:latest)"
    )
    for method, raw in [
        ("IpamDriver.RequestPool", b"{"),
        ("IpamDriver.RequestPool", b"{}"),
        ("IpamDriver.RequestAddress", b'{"PoolID": "nope"}'),
        ("IpamDriver.RequestPool", b'{"AddressSpace": "local", "Pool": "10.0.0.1/8"}'),
    ]:
        message = assert_refused(plugin.post(method, raw))
        short = method.split(".")[1]
        assert not message.startswith((method, short)), message


def connect_without_growth(*args: object, **kwargs: object) -> sqlite3.Connection:
    """A connection whose file may not grow past its size at open: SQLite's own limit
    (max_page_count), which fails with SQLITE_FULL exactly as a full disk does."""
    conn = sqlite3.connect(*args, **kwargs)
    conn.execute("PRAGMA max_page_count = 1")  # at least the pages already there
    return conn


def test_a_full_state_disk_is_a_store_error_that_changes_nothing(tmp_path, caplog):
    Store(tmp_path / "state")  # the tables, made while the file may still grow
    plugin = Plugin(tmp_path, connect_without_growth)
    pool = plugin.ok("IpamDriver.RequestPool", {"AddressSpace": "local", "Pool": "10.0.0.0/16"})
    body = json.dumps({"PoolID": pool["PoolID"]}).encode()
    with caplog.at_level(logging.INFO, logger="sriov"):
        for _ in range(2000):
            before = plugin.state()
            result = plugin.post("IpamDriver.RequestAddress", body)
            if result.status_code != 200:
                break
    assert result.status_code == 500, "the store never filled up"
    assert result.json == {"Err": f"state store {plugin.store.path}: database or disk is full"}
    assert plugin.state() == before
    assert "no transaction is active" not in caplog.text
    assert "internal error" not in caplog.text
    # the store is still usable: reads work and a release frees space for the next address
    held = before[0][1][-1]
    address = ".".join(str(b) for b in held[1][-4:])
    plugin.ok("IpamDriver.ReleaseAddress", {"PoolID": pool["PoolID"], "Address": address})
    assert plugin.post("IpamDriver.RequestAddress", body).status_code == 200


def test_a_bug_of_ours_is_500_internal_error_with_the_traceback_in_the_log(plugin, caplog):
    def broken(body: dict) -> dict:
        return {}["missing"]

    app = create_app({"NetworkDriver.Join": broken}, plugin.validator.validate)
    body = {"NetworkID": NETWORK, "EndpointID": ENDPOINT, "SandboxKey": "/var/run/docker/netns/x"}
    with caplog.at_level(logging.INFO, logger="sriov"):
        result = falcon.testing.TestClient(app).simulate_post(
            "/NetworkDriver.Join", body=json.dumps(body).encode(), headers={}
        )
    assert result.status_code == 500
    assert result.json == {"Err": "internal error (KeyError); the plugin log has the details"}
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert "Traceback" in caplog.text and "'missing'" in caplog.text


# --- generated: bodies derived from the method schemas --------------------------------------

COMMON, SCHEMAS = load_schemas()
# Docker's methods; Cluster.* is served only by a plugin with a cluster store (cluster stage).
METHODS = sorted(m for m in SCHEMAS if m.split(".")[0] in ("Plugin", "IpamDriver", "NetworkDriver"))
RESOLVED = {m: inline_refs(s, COMMON["$defs"]) for m, s in SCHEMAS.items()}

HOSTILE_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "pf\x00x",
        "\ud800",
        "a\udfff",
        "\x1b[2J",
        "../../etc/passwd",
        "/",
        "a" * 5000,
        "é" * 20,
        "10.1.0.0/24\n",
        "0" * 64 + "\n",
        "local/10.1.0.0/24",
        "fe80::1%eth0",
        "999.1.1.1",
        "10.1.0.0/33",
        "::/0",
        "0.0.0.0/0",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    ]
)
HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    HOSTILE_TEXT,
    st.text(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


def plausible_text(schema: dict, known: list[str]) -> st.SearchStrategy:
    """Strings that satisfy (or nearly satisfy) the schema, and ids that name real things."""
    options = [st.sampled_from(known), HOSTILE_TEXT]
    if "pattern" in schema:
        options.append(st.from_regex(schema["pattern"], fullmatch=True))
    else:
        options.append(st.text(max_size=schema.get("maxLength", 30) + 2))
    return st.one_of(options)


def from_schema(schema: dict, known: list[str], depth: int = 0) -> st.SearchStrategy:
    """Values shaped by ``schema``, with a hostile value anywhere a value goes."""
    types = schema.get("type", ["string", "object", "array", "integer", "boolean", "null"])
    types = [types] if isinstance(types, str) else types
    shaped = []
    for kind in types:
        if kind == "string":
            shaped.append(plausible_text(schema, known))
        elif kind == "boolean":
            shaped.append(st.booleans())
        elif kind == "integer":
            shaped.append(st.integers(min_value=-5, max_value=5000))
        elif kind == "null":
            shaped.append(st.none())
        elif kind == "array" and depth < 4:
            items = from_schema(schema.get("items", {}), known, depth + 1)
            shaped.append(st.lists(items, max_size=3))
        elif kind == "object" and depth < 4:
            shaped.append(object_from_schema(schema, known, depth))
    return st.one_of([*shaped, HOSTILE]) if shaped else HOSTILE


def object_from_schema(schema: dict, known: list[str], depth: int) -> st.SearchStrategy:
    properties = schema.get("properties", {})
    fields = {name: from_schema(sub, known, depth + 1) for name, sub in properties.items()}
    extra = schema.get("additionalProperties", {})
    extra_values = from_schema(extra, known, depth + 1) if isinstance(extra, dict) else HOSTILE
    keys = st.one_of(st.sampled_from(NETWORK_OPTION_KEYS), HOSTILE_TEXT, st.text(max_size=8))
    return st.builds(
        lambda chosen, more: {**more, **chosen},
        st.fixed_dictionaries({}, optional=fields),
        st.dictionaries(keys, extra_values, max_size=3),
    )


NETWORK_OPTION_KEYS = [
    "pf_iface", "netdevice", "vlanid", "vlan_qos", "vlan_proto", "mtu", "spoofchk", "trust",
    "link_state", "min_tx_rate", "max_tx_rate", "vf", "RequestAddressType",
    "com.docker.network.generic", "com.docker.network.enable_ipv6",
]  # fmt: skip


def raw_bodies(method: str, known: list[str]) -> st.SearchStrategy:
    """Request bytes for ``method``: schema-shaped JSON, or bytes that are barely JSON."""
    body = object_from_schema(RESOLVED[method], known, 0)
    shaped = body.map(lambda b: json.dumps(b).encode())
    broken = st.one_of(
        st.binary(max_size=40),
        st.integers(2, 3000).map(lambda n: b"[" * n + b"]" * n),
        st.integers(2, 3000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
        shaped.map(lambda raw: raw[: len(raw) // 2]),
        shaped.map(lambda raw: raw.replace(b'"', b'"\\ud83d', 1)),
    )
    return st.one_of(shaped, shaped, shaped, broken)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> tuple[Plugin, list[str]]:
    plugin = Plugin(tmp_path_factory.mktemp("bad-requests"))
    ids = plugin.seed()
    known = [NETWORK, ENDPOINT, ids["pool"], ids["address"], "pf0", "10.1.0.0/24", "local"]
    return plugin, known


@pytest.mark.parametrize("method", METHODS)
def test_generated_bad_requests_are_never_a_5xx_and_change_nothing(seeded, method):
    """About 2,100 bodies over all methods: no 5xx, no traceback, and a refusal changes nothing.

    A body the schema refuses must be a 400. A body that passes the schema may
    be answered 2xx (then it may change state, as the method says), or 4xx;
    a refusal leaves the store and the VFs as they were.
    """
    plugin, known = seeded

    @settings(
        max_examples=100,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),  # slow, large inputs are the point here
    )
    @given(raw=raw_bodies(method, known))
    def check(raw: bytes) -> None:
        before = plugin.state()
        result = plugin.post(method, raw)
        assert result.status_code < 500, (raw[:300], result.text)
        reply = json.loads(result.text)
        assert isinstance(reply, dict)
        assert "Traceback" not in result.text
        if result.status_code >= 300:
            assert set(reply) == {"Err"}
            assert not any(ch < " " for ch in reply["Err"]), reply
            assert plugin.state() == before, raw[:300]
        if not _schema_accepts(plugin.validator, method, raw):
            assert result.status_code == 400, (raw[:300], result.text)

    check()


def _schema_accepts(validator: RequestValidator, method: str, raw: bytes) -> bool:
    try:
        body = json.loads(raw) if raw.strip() else {}
        json.dumps(body, ensure_ascii=False).encode("utf-8")
        validator.validate(method, body)
    except (ValueError, RecursionError, InvalidRequest):  # not JSON, not text, or refused
        return False
    return True
