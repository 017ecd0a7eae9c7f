"""Configuration from the environment (names are a contract with config.json and the docs)."""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

DEFAULT_POOLS = "10.128.0.0/9:24,fd00:5e::/48:64"
NIC_KINDS = ("kernel", "sim")
LOG_LEVELS = ("debug", "info", "warning", "error")
DEFAULT_CLUSTER_TLS_DIR = "/etc/sriov/etcd-tls"
CLUSTER_TLS_FILES = ("ca.crt", "client.crt", "client.key")
CLUSTER_URL_SCHEMES = ("http", "https")

T = TypeVar("T")


class ConfigError(Exception):
    """A configuration value is wrong; the message names the variable, value and what is allowed."""


def _not_allowed(name: str, value: str, reason: str) -> ConfigError:
    """Every refused setting reads the same: the variable, its value as given, what to do."""
    return ConfigError(f"{name}={value!r} is not allowed: {reason}")


@dataclass(frozen=True)
class DefaultPool:
    """A base network that pools are carved from when a request names no subnet."""

    base: ipaddress.IPv4Network | ipaddress.IPv6Network
    size: int  # prefix length of each carved pool

    def __str__(self) -> str:
        return f"{self.base}:{self.size}"


@dataclass(frozen=True)
class ClusterConfig:
    """Where cluster pools live (etcd v3 endpoints) and who this node is."""

    endpoints: tuple[str, ...]  # http(s)://host:port, in the order they are tried
    node: str
    tls_dir: Path  # ca.crt, client.crt, client.key, used when an endpoint is https

    @property
    def uses_tls(self) -> bool:
        return any(url.startswith("https://") for url in self.endpoints)


@dataclass(frozen=True)
class Config:
    socket: Path
    state_dir: Path
    sysfs: Path
    nic: str
    log_level: int
    default_pools: tuple[DefaultPool, ...]
    # SRIOV_METRICS_ADDR: where /metrics is also served over TCP; None (the default) for nowhere.
    # An upgraded manifest's new variable is absent from the environment: the default is here.
    metrics_addr: tuple[str, int] | None = None
    cluster: ClusterConfig | None = None


def parse_default_pools(value: str) -> tuple[DefaultPool, ...]:
    """Parse ``base/prefix:size[,...]``, e.g. ``10.128.0.0/9:24,fd00:5e::/48:64``."""
    pools = []
    for item in value.split(","):
        item = item.strip()
        base_text, sep, size_text = item.rpartition(":")
        if not sep or not size_text.isdigit():
            raise ValueError(f"{item!r} is not base/prefix:size")
        try:
            base = ipaddress.ip_network(base_text, strict=True)
        except ValueError as exc:
            raise ValueError(f"{item!r}: {exc}") from None
        size = int(size_text)
        if not base.prefixlen <= size <= base.max_prefixlen:
            raise ValueError(
                f"{item!r}: size /{size} must be between "
                f"/{base.prefixlen} and /{base.max_prefixlen}"
            )
        pools.append(DefaultPool(base, size))
    return tuple(pools)


def parse_metrics_addr(value: str) -> tuple[str, int] | None:
    """``IP:PORT`` (``[IPv6]:PORT`` for IPv6) -> (ip, port); empty -> None."""
    value = value.strip()
    if not value:
        return None
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError("expected IP:PORT with a port 1-65535")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{host!r} is not an IP address") from None
    return host, int(port_text)


def parse_cluster_endpoints(value: str) -> tuple[str, ...]:
    """Parse ``http(s)://host:port[,...]``; an empty value means no cluster store."""
    endpoints = []
    for item in value.split(","):
        url = item.strip().rstrip("/")
        if not url:
            continue
        scheme, sep, rest = url.partition("://")
        host, colon, port = rest.rpartition(":")
        if not sep or scheme not in CLUSTER_URL_SCHEMES:
            raise ValueError(f"{url!r} does not start with http:// or https://")
        if "/" in rest:
            raise ValueError(f"{url!r} has a path; give only scheme://host:port")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{url!r} is not scheme://host:port (e.g. http://10.0.0.5:2379)")
        endpoints.append(url)
    return tuple(endpoints)


def _node_name(env: Mapping[str, str]) -> str:
    given = env.get("SRIOV_NODE_NAME", "").strip()
    name = given or socket.gethostname()
    if not name or len(name) > 253 or any(c.isspace() or c == "/" for c in name):
        raise _not_allowed(
            "SRIOV_NODE_NAME",
            name,
            "use 1-253 characters without whitespace or '/' (the default is the host name)",
        )
    return name


def _cluster_config(env: Mapping[str, str]) -> ClusterConfig | None:
    endpoints = _parsed(
        env,
        "SRIOV_CLUSTER_STORE",
        "",
        parse_cluster_endpoints,
        "use comma-separated etcd client URLs, "
        "e.g. http://10.0.0.5:2379,http://10.0.0.6:2379, or nothing",
    )
    node = _node_name(env)
    tls_dir = _absolute_path(env, "SRIOV_CLUSTER_TLS_DIR", DEFAULT_CLUSTER_TLS_DIR)
    if not endpoints:
        return None
    config = ClusterConfig(endpoints=endpoints, node=node, tls_dir=tls_dir)
    if config.uses_tls:
        _require_tls_files(tls_dir)
    return config


def _require_tls_files(tls_dir: Path) -> None:
    """An https endpoint needs the CA and this node's client certificate and key."""
    missing = [name for name in CLUSTER_TLS_FILES if not (tls_dir / name).is_file()]
    if missing:
        raise _not_allowed(
            "SRIOV_CLUSTER_TLS_DIR",
            str(tls_dir),
            f"SRIOV_CLUSTER_STORE uses https and {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing there "
            f"(it needs {', '.join(CLUSTER_TLS_FILES)})",
        )


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    given = env.get(name, default)
    value = given.strip().lower()
    if value not in allowed:
        raise _not_allowed(name, given, f"use one of {', '.join(allowed)}")
    return value


def _parsed(
    env: Mapping[str, str], name: str, default: str, parse: Callable[[str], T], hint: str
) -> T:
    """``parse(value of name)``; its ValueError becomes a ConfigError naming the variable."""
    text = env.get(name, default)
    try:
        return parse(text)
    except ValueError as exc:
        raise _not_allowed(name, text, f"{exc}; {hint}") from None


def _absolute_path(env: Mapping[str, str], name: str, default: str) -> Path:
    value = env.get(name, default)
    if not value.startswith("/"):
        raise _not_allowed(name, value, "use an absolute path")
    return Path(value)


def load_config(env: Mapping[str, str]) -> Config:
    """Read every SRIOV_* variable; raise ConfigError on the first bad one."""
    default_pools = _parsed(
        env,
        "SRIOV_DEFAULT_POOLS",
        DEFAULT_POOLS,
        parse_default_pools,
        f"use comma-separated base/prefix:size, e.g. {DEFAULT_POOLS}",
    )
    level = _choice(env, "SRIOV_LOG_LEVEL", "info", LOG_LEVELS)
    metrics_addr = _parsed(
        env,
        "SRIOV_METRICS_ADDR",
        "",
        parse_metrics_addr,
        "use e.g. 127.0.0.1:9808, [::1]:9808, or empty for none",
    )
    return Config(
        socket=_absolute_path(env, "SRIOV_SOCKET", "/run/docker/plugins/sriov.sock"),
        state_dir=_absolute_path(env, "SRIOV_STATE_DIR", "/var/lib/sriov"),
        sysfs=_absolute_path(env, "SRIOV_SYSFS", "/sys"),
        nic=_choice(env, "SRIOV_NIC", "kernel", NIC_KINDS),
        log_level=getattr(logging, level.upper()),
        default_pools=default_pools,
        metrics_addr=metrics_addr,
        cluster=_cluster_config(env),
    )
