"""Every SRIOV_* variable: its default, a good value, and a bad value's one-line error."""

import ipaddress
import json
import logging
import socket
from pathlib import Path

import pytest

from plugin.config import ConfigError, DefaultPool, load_config, parse_default_pools

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_defaults_when_nothing_is_set():
    config = load_config({})
    assert config.socket == Path("/run/docker/plugins/sriov.sock")
    assert config.state_dir == Path("/var/lib/sriov")
    assert config.sysfs == Path("/sys")
    assert config.nic == "kernel"
    assert config.log_level == logging.INFO
    assert [str(p) for p in config.default_pools] == ["10.128.0.0/9:24", "fd00:5e::/48:64"]
    assert config.cluster is None


def test_cluster_store_endpoints_node_and_tls_dir():
    config = load_config(
        {
            "SRIOV_CLUSTER_STORE": " http://10.0.0.5:2379, http://[fd00::6]:2379/ ",
            "SRIOV_NODE_NAME": "node-7",
        }
    )
    assert config.cluster.endpoints == ("http://10.0.0.5:2379", "http://[fd00::6]:2379")
    assert config.cluster.node == "node-7"
    assert config.cluster.tls_dir == Path("/etc/sriov/etcd-tls")
    assert not config.cluster.uses_tls


def test_node_name_defaults_to_the_host_name():
    config = load_config({"SRIOV_CLUSTER_STORE": "http://127.0.0.1:2379", "SRIOV_NODE_NAME": ""})
    assert config.cluster.node == socket.gethostname()


def test_https_endpoint_needs_the_client_certificate_files(tmp_path):
    env = {"SRIOV_CLUSTER_STORE": "https://10.0.0.5:2379", "SRIOV_CLUSTER_TLS_DIR": str(tmp_path)}
    (tmp_path / "ca.crt").write_text("x")
    with pytest.raises(ConfigError) as raised:
        load_config(env)
    assert str(raised.value) == (
        f"SRIOV_CLUSTER_TLS_DIR={str(tmp_path)!r} is not allowed: SRIOV_CLUSTER_STORE uses "
        "https and client.crt, client.key are missing there "
        "(it needs ca.crt, client.crt, client.key)"
    )
    (tmp_path / "client.crt").write_text("x")
    (tmp_path / "client.key").write_text("x")
    assert load_config(env).cluster.uses_tls


def test_manifest_sets_every_variable_to_a_value_the_plugin_accepts():
    """config.json's env is what a managed plugin starts with; each value must load."""
    manifest = json.loads((REPO_ROOT / "config.json").read_text())
    env = {e["name"]: e["value"] for e in manifest["env"] if e["name"].startswith("SRIOV_")}
    assert {"SRIOV_CLUSTER_STORE", "SRIOV_NODE_NAME", "SRIOV_CLUSTER_TLS_DIR"} <= set(env)
    tls_mount = next(m for m in manifest["mounts"] if m["name"] == "cluster-tls")
    assert env["SRIOV_CLUSTER_TLS_DIR"].startswith(tls_mount["destination"] + "/")
    assert load_config(env).cluster is None


def test_every_variable_is_read():
    config = load_config(
        {
            "SRIOV_SOCKET": "/tmp/x/sriov.sock",
            "SRIOV_STATE_DIR": "/srv/state",
            "SRIOV_SYSFS": "/tmp/simsys",
            "SRIOV_NIC": "sim",
            "SRIOV_LOG_LEVEL": "debug",
            "SRIOV_DEFAULT_POOLS": "172.30.0.0/16:26",
            "UNRELATED": "ignored",
        }
    )
    assert config.socket == Path("/tmp/x/sriov.sock")
    assert config.state_dir == Path("/srv/state")
    assert config.sysfs == Path("/tmp/simsys")
    assert config.nic == "sim"
    assert config.log_level == logging.DEBUG
    assert config.default_pools == (DefaultPool(ipaddress.ip_network("172.30.0.0/16"), 26),)


@pytest.mark.parametrize(
    ("value", "level"),
    [("debug", logging.DEBUG), ("INFO", logging.INFO), (" warning ", logging.WARNING),
     ("error", logging.ERROR)],
)  # fmt: skip
def test_log_levels_ignore_case_and_spaces(value, level):
    assert load_config({"SRIOV_LOG_LEVEL": value}).log_level == level


@pytest.mark.parametrize("value", ["kernel", "sim", "SIM"])
def test_nic_kinds(value):
    assert load_config({"SRIOV_NIC": value}).nic == value.lower()


def test_default_pools_list_with_spaces():
    pools = parse_default_pools("10.0.0.0/8:24, fd00::/48:64")
    assert pools == (
        DefaultPool(ipaddress.ip_network("10.0.0.0/8"), 24),
        DefaultPool(ipaddress.ip_network("fd00::/48"), 64),
    )


def test_default_pool_size_may_equal_the_base():
    assert parse_default_pools("10.9.0.0/24:24")[0].size == 24


# (variable, bad value, words the one line must contain besides the variable and value)
BAD_VALUES = [
    ("SRIOV_SOCKET", "run/sriov.sock", ["absolute path"]),
    ("SRIOV_SOCKET", "", ["absolute path"]),
    ("SRIOV_STATE_DIR", "state", ["absolute path"]),
    ("SRIOV_SYSFS", "sys", ["absolute path"]),
    ("SRIOV_NIC", "mellanox", ["kernel, sim"]),
    ("SRIOV_LOG_LEVEL", "loud", ["debug, info, warning, error"]),
    ("SRIOV_DEFAULT_POOLS", "10.0.0.0/8", ["base/prefix:size"]),
    ("SRIOV_DEFAULT_POOLS", "10.0.0.0/8:x", ["base/prefix:size"]),
    ("SRIOV_DEFAULT_POOLS", "10.0.0.1/8:24", ["host bits"]),
    ("SRIOV_DEFAULT_POOLS", "10.0.0.0/33:34", ["10.0.0.0/33"]),
    ("SRIOV_DEFAULT_POOLS", "10.0.0.0/16:8", ["between /16 and /32"]),
    ("SRIOV_DEFAULT_POOLS", "fd00::/48:129", ["between /48 and /128"]),
    ("SRIOV_DEFAULT_POOLS", "10.0.0.0/8:24,", ["base/prefix:size"]),
    ("SRIOV_DEFAULT_POOLS", "", ["base/prefix:size"]),
    ("SRIOV_CLUSTER_STORE", "10.0.0.5:2379", ["http:// or https://", "etcd client URLs"]),
    ("SRIOV_CLUSTER_STORE", "etcd://10.0.0.5:2379", ["http:// or https://"]),
    ("SRIOV_CLUSTER_STORE", "http://10.0.0.5", ["scheme://host:port"]),
    ("SRIOV_CLUSTER_STORE", "http://10.0.0.5:99999", ["scheme://host:port"]),
    ("SRIOV_CLUSTER_STORE", "http://10.0.0.5:2379/v3", ["has a path"]),
    ("SRIOV_NODE_NAME", "node 1", ["without whitespace or '/'"]),
    ("SRIOV_CLUSTER_TLS_DIR", "tls", ["absolute path"]),
]


@pytest.mark.parametrize(("name", "value", "words"), BAD_VALUES)
def test_bad_value_is_one_line_naming_variable_value_and_allowed(name, value, words):
    with pytest.raises(ConfigError) as raised:
        load_config({name: value})
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{name}={value!r} is not allowed")
    for word in words:
        assert word in message


def test_bad_value_message_quotes_the_value_as_given():
    """The user must recognise what they typed, not a normalised copy of it."""
    with pytest.raises(ConfigError, match=r"SRIOV_NIC=' Mellanox ' is not allowed"):
        load_config({"SRIOV_NIC": " Mellanox "})


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", None), ("127.0.0.1:9808", ("127.0.0.1", 9808)), ("[::1]:9808", ("::1", 9808))],
)
def test_metrics_address_is_empty_by_default_or_ip_and_port(value, expected):
    assert load_config({}).metrics_addr is None  # absent, as after an upgrade that adds it
    assert load_config({"SRIOV_METRICS_ADDR": value}).metrics_addr == expected


@pytest.mark.parametrize("value", ["9808", "localhost:9808", "127.0.0.1:0", "127.0.0.1:http"])
def test_a_bad_metrics_address_names_the_variable_and_the_form(value):
    with pytest.raises(ConfigError) as refused:
        load_config({"SRIOV_METRICS_ADDR": value})
    assert str(refused.value).startswith(f"SRIOV_METRICS_ADDR={value!r} is not allowed: ")
    assert "use e.g. 127.0.0.1:9808" in str(refused.value)
