"""The Falcon app with real services on a temporary store, driven as Docker drives it."""

import json
import logging
import time

import falcon
import falcon.testing
import pytest

from plugin.config import parse_default_pools
from plugin.errors import Conflict
from plugin.protocol.app import RequestLogWriter, create_app
from plugin.protocol.handlers import ipam_handlers, plugin_handlers
from plugin.protocol.schema import RequestValidator
from plugin.server import LineFormatter, LineHandler
from plugin.services.ipam import IpamService


@pytest.fixture(scope="module")
def validate():
    return RequestValidator().validate


@pytest.fixture
def handlers(store):
    handlers = plugin_handlers()
    handlers.update(ipam_handlers(IpamService(store, parse_default_pools("10.9.0.0/16:24"))))
    return handlers


@pytest.fixture
def client(handlers, validate):
    return falcon.testing.TestClient(create_app(handlers, validate))


def post(client, method: str, body: bytes = b"") -> falcon.testing.Result:
    """POST as Docker does (no Content-Type, the body as given); every reply is a JSON object."""
    result = client.simulate_post(f"/{method}", body=body, headers={})
    assert isinstance(json.loads(result.text), dict), result.text
    return result


def post_json(client, method: str, body: dict) -> falcon.testing.Result:
    return post(client, method, json.dumps(body).encode())


def test_activate_with_empty_body(client):
    result = post(client, "Plugin.Activate")
    assert result.status_code == 200
    assert result.json == {"Implements": ["NetworkDriver", "IpamDriver"]}


def test_activate_with_whitespace_body(client):
    assert post(client, "Plugin.Activate", b" \n").status_code == 200


def test_get_capabilities_with_empty_body(client):
    result = post(client, "IpamDriver.GetCapabilities")
    assert result.status_code == 200
    assert result.json == {"RequiresMACAddress": False, "RequiresRequestReplay": False}


def test_default_address_spaces_with_empty_body(client):
    result = post(client, "IpamDriver.GetDefaultAddressSpaces")
    assert result.status_code == 200
    assert result.json == {
        "LocalDefaultAddressSpace": "local",
        "GlobalDefaultAddressSpace": "global",
    }


def test_request_pool_and_address_round_trip(client):
    pool = post_json(client, "IpamDriver.RequestPool", {"AddressSpace": "local", "Pool": "",
                     "SubPool": "", "Options": None, "V6": False})  # fmt: skip
    assert pool.status_code == 200
    assert pool.json["Pool"] == "10.9.0.0/24"
    assert pool.json["Data"] == {}
    pool_id = pool.json["PoolID"]
    gateway = post_json(
        client,
        "IpamDriver.RequestAddress",
        {"PoolID": pool_id, "Address": "",
         "Options": {"RequestAddressType": "com.docker.network.gateway"}},
    )  # fmt: skip
    assert (gateway.status_code, gateway.json) == (200, {"Address": "10.9.0.1/24", "Data": {}})
    address = post_json(
        client, "IpamDriver.RequestAddress", {"PoolID": pool_id, "Address": "", "Options": None}
    )
    assert address.json["Address"] == "10.9.0.2/24"
    released = post_json(
        client, "IpamDriver.ReleaseAddress", {"PoolID": pool_id, "Address": "10.9.0.2"}
    )
    assert (released.status_code, released.json) == (200, {})
    assert post_json(client, "IpamDriver.ReleasePool", {"PoolID": pool_id}).json == {}


@pytest.mark.parametrize("body", [b"{", b"not json", b"\xff\xfe", b'{"PoolID": }'])
def test_malformed_json_is_400(client, body):
    result = post(client, "IpamDriver.RequestPool", body)
    assert result.status_code == 400
    assert result.json["Err"].startswith("request body is not JSON")


def test_body_that_is_not_an_object_is_400(client):
    result = post(client, "IpamDriver.RequestPool", b"[]")
    assert result.status_code == 400
    assert result.json["Err"].startswith("body:")


@pytest.mark.parametrize(
    ("method", "body", "field"),
    [
        ("IpamDriver.RequestPool", {}, "AddressSpace: required property is missing"),
        ("IpamDriver.RequestPool", {"AddressSpace": "local", "Pool": 5}, "Pool:"),
        ("IpamDriver.RequestPool", {"AddressSpace": "local", "V6": "yes"}, "V6:"),
        ("IpamDriver.RequestAddress", {"PoolID": ""}, "PoolID:"),
        ("IpamDriver.RequestAddress", {"PoolID": "p", "Address": "x;y"}, "Address:"),
        ("IpamDriver.ReleaseAddress", {"PoolID": "p"}, "Address: required property is missing"),
        ("IpamDriver.ReleasePool", {}, "PoolID: required property is missing"),
    ],
)
def test_schema_violation_is_400_naming_the_field(client, method, body, field):
    result = post_json(client, method, body)
    assert result.status_code == 400
    assert result.json["Err"].startswith(field)


def test_service_errors_keep_their_status(client):
    body = {"AddressSpace": "local", "Pool": "10.1.0.0/24"}
    assert post_json(client, "IpamDriver.RequestPool", body).status_code == 200
    overlap = post_json(client, "IpamDriver.RequestPool", {**body, "Pool": "10.1.0.0/16"})
    assert overlap.status_code == 409
    assert overlap.json == {"Err": "10.1.0.0/16 overlaps pool 10.1.0.0/24 in address space local"}
    bad = post_json(client, "IpamDriver.RequestPool", {**body, "Pool": "10.1.0.5/24"})
    assert bad.status_code == 400
    assert "did you mean 10.1.0.0/24?" in bad.json["Err"]


def test_unknown_method_is_404_with_err(client):
    result = post(client, "NetworkDriver.Teleport")
    assert result.status_code == 404
    assert "unknown method 'NetworkDriver.Teleport'" in result.json["Err"]


def test_unknown_path_is_404_with_err(client):
    result = post(client, "")
    assert result.status_code == 404
    assert "Err" in result.json


@pytest.mark.parametrize("verb", ["GET", "PUT", "DELETE"])
def test_other_verbs_are_refused_with_err(client, verb):
    result = client.simulate_request(verb, "/Plugin.Activate")
    assert not 200 <= result.status_code < 300
    assert result.json["Err"] == f"{verb} /Plugin.Activate: 405 Method Not Allowed"


def test_trailing_slash_is_the_same_method(client):
    assert post(client, "Plugin.Activate/").status_code == 200


def exploding(body: dict) -> dict:
    raise RuntimeError("secret detail /var/lib/sriov/sriov.db")


def test_unexpected_exception_is_500_without_traceback_but_logged(validate, caplog):
    app = create_app({"Plugin.Activate": exploding}, validate)
    with caplog.at_level(logging.INFO, logger="sriov"):
        result = post(falcon.testing.TestClient(app), "Plugin.Activate")
    assert result.status_code == 500
    assert result.json == {"Err": "internal error (RuntimeError); the plugin log has the details"}
    assert "Traceback" not in result.text
    assert "secret detail" not in result.text
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 1
    assert failures[0].exc_info is not None
    assert "secret detail" in caplog.text
    assert "Traceback" in caplog.text


def test_plugin_error_from_handler_uses_its_status(validate):
    def conflicted(body: dict) -> dict:
        raise Conflict("10.0.0.1 in 10.0.0.0/24 is already in use")

    app = create_app({"Plugin.Activate": conflicted}, validate)
    result = post(falcon.testing.TestClient(app), "Plugin.Activate")
    assert result.status_code == 409
    assert result.json == {"Err": "10.0.0.1 in 10.0.0.0/24 is already in use"}


def test_handler_receives_the_body_only_after_validation(validate):
    seen = []
    app = create_app({"IpamDriver.ReleasePool": seen.append}, validate)
    result = post(falcon.testing.TestClient(app), "IpamDriver.ReleasePool", b"{}")
    assert result.status_code == 400
    assert seen == []


def test_the_log_line_is_written_once_the_server_has_sent_the_reply(handlers, validate, caplog):
    """The server calls close() after sending; the line must not hold up the reply."""
    app = create_app(handlers, validate)
    environ = falcon.testing.create_environ(
        method="POST", path="/IpamDriver.GetCapabilities", headers={}
    )
    with caplog.at_level(logging.INFO, logger="sriov"):
        reply = app(environ, lambda status, headers, exc_info=None: None)
        body = b"".join(reply)
        assert json.loads(body)["RequiresMACAddress"] is False
        assert [r for r in caplog.records if r.name == "sriov"] == []
        reply.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "sriov"]
    assert len(lines) == 1
    assert lines[0].startswith("IpamDriver.GetCapabilities -> 200 (")


def test_one_log_line_per_request_with_method_ids_and_outcome(client, caplog):
    with caplog.at_level(logging.INFO, logger="sriov"):
        post_json(
            client, "IpamDriver.RequestPool", {"AddressSpace": "local", "Pool": "10.3.0.0/24"}
        )
        post_json(
            client, "IpamDriver.RequestPool", {"AddressSpace": "local", "Pool": "10.3.0.0/16"}
        )
    lines = [r.getMessage() for r in caplog.records if r.name == "sriov"]
    assert len(lines) == 2
    assert lines[0].startswith("IpamDriver.RequestPool cidr=10.3.0.0/24 -> 200 pool=local/10.3")
    assert lines[1].startswith("IpamDriver.RequestPool cidr=10.3.0.0/16 -> 409 10.3")


def test_debug_level_logs_each_request_body_and_reply(client, caplog):
    """At debug the bodies are logged whole, so what an engine sends can be compared."""
    body = {"AddressSpace": "local", "Pool": "10.4.0.0/24", "V6": False, "Extra": {"a": 1}}
    with caplog.at_level(logging.DEBUG, logger="sriov"):
        post_json(client, "IpamDriver.RequestPool", body)
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert lines[0] == f"IpamDriver.RequestPool request {json.dumps(body)}"
    assert lines[1].startswith('IpamDriver.RequestPool reply {"PoolID": "local/10.4.0.0/24#')


def test_info_level_logs_no_bodies(client, caplog):
    body = {"AddressSpace": "local", "Pool": "10.5.0.0/24"}
    with caplog.at_level(logging.INFO, logger="sriov"):
        post_json(client, "IpamDriver.RequestPool", body)
    assert "request {" not in caplog.text and "reply {" not in caplog.text


def test_each_request_is_given_to_after_reply_once_its_reply_is_sent(handlers, validate):
    seen = []
    app = create_app(handlers, validate, after_reply=[seen.append])
    client = falcon.testing.TestClient(app)

    post(client, "IpamDriver.GetCapabilities", b"")
    post(client, "IpamDriver.RequestPool", b"{}")
    post(client, "NetworkDriver.Bogus", b"{}")
    client.simulate_get("/IpamDriver.GetCapabilities")

    assert [(r.http_method, r.path, r.protocol, r.status) for r in seen] == [
        ("POST", "IpamDriver.GetCapabilities", True, 200),
        ("POST", "IpamDriver.RequestPool", True, 400),
        ("POST", "NetworkDriver.Bogus", False, 404),
        ("GET", "IpamDriver.GetCapabilities", True, 405),
    ]
    assert all(0 < r.seconds < 10 for r in seen)


def test_the_log_line_reads_as_the_standard_formatter_writes_it():
    """LineFormatter formats a second's date and time once; the line must not change."""
    record = logging.LogRecord("sriov", logging.INFO, __file__, 1, "%s -> %s", ("A.B", "200"), None)
    standard = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    lean = LineFormatter()
    assert lean.format(record) == standard.format(record)
    record.created += 1.5
    record.msecs = (record.created - int(record.created)) * 1000
    assert lean.format(record) == standard.format(record)


def test_each_log_line_leaves_the_process_whole_before_the_call_returns(tmp_path):
    """LineHandler writes straight to the descriptor: nothing waits in a buffer for a crash."""
    path = tmp_path / "log"
    with path.open("w") as stream:
        handler = LineHandler(stream)
        handler.setFormatter(LineFormatter())
        logger = logging.getLogger("sriov.test-line-handler")
        logger.addHandler(handler)
        logger.propagate = False
        try:
            logger.warning("NetworkDriver.Join ep=%s -> 200", "ab" * 6)
            first = path.read_text()
            try:
                raise ValueError("boom")
            except ValueError:
                logger.exception("failed")
            second = path.read_text()
        finally:
            logger.removeHandler(handler)
    line = " WARNING sriov.test-line-handler: NetworkDriver.Join ep=abababababab -> 200\n"
    assert first.endswith(line)
    assert "ERROR sriov.test-line-handler: failed\nTraceback (most recent call last):" in second
    assert second.endswith("ValueError: boom\n")


def test_the_request_log_writer_logs_every_line_with_its_requests_time_in_order(caplog):
    writer = RequestLogWriter()
    with caplog.at_level(logging.INFO, logger="sriov"):
        for n in range(200):
            writer(1_700_000_000.25 + n, f"IpamDriver.RequestAddress pool=p{n}", "200", 0.0004)
        deadline = time.monotonic() + 10
        while len([r for r in caplog.records if r.name == "sriov"]) < 200:
            assert time.monotonic() < deadline, "the writer thread wrote not all lines"
            time.sleep(0.005)
    records = [r for r in caplog.records if r.name == "sriov"]
    assert [r.getMessage() for r in records[:2]] == [
        "IpamDriver.RequestAddress pool=p0 -> 200 (0.4 ms)",
        "IpamDriver.RequestAddress pool=p1 -> 200 (0.4 ms)",
    ]
    assert [r.created for r in records] == [1_700_000_000.25 + n for n in range(200)]
    assert records[0].msecs == 250
    assert LineFormatter().formatTime(records[0]).endswith(",250")


def test_the_request_log_writer_flushes_what_is_queued_at_once(caplog):
    """What the plugin does at exit: no queued line is left behind."""
    writer = RequestLogWriter()
    with caplog.at_level(logging.INFO, logger="sriov"):
        writer(time.time(), "Plugin.Activate", "200", 0.0001)
        writer.flush()
        assert [r.getMessage() for r in caplog.records if r.name == "sriov"] == [
            "Plugin.Activate -> 200 (0.1 ms)"
        ]
    with caplog.at_level(logging.WARNING, logger="sriov"):
        writer(time.time(), "Plugin.Activate", "200", 0.0001)  # below the level: not queued
        writer.flush()
    assert len([r for r in caplog.records if r.name == "sriov"]) == 1
