"""Configuration from the environment (names are a contract with config.json and the docs)."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_POOLS = "10.128.0.0/9:24,fd00:5e::/48:64"
NIC_KINDS = ("kernel", "sim")
LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(Exception):
    """A configuration value is wrong; the message names the variable, value and what is allowed."""


@dataclass(frozen=True)
class DefaultPool:
    """A base network that pools are carved from when a request names no subnet."""

    base: ipaddress.IPv4Network | ipaddress.IPv6Network
    size: int  # prefix length of each carved pool

    def __str__(self) -> str:
        return f"{self.base}:{self.size}"


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


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    given = env.get(name, default)
    value = given.strip().lower()
    if value not in allowed:
        raise ConfigError(f"{name}={given!r} is not allowed: use one of {', '.join(allowed)}")
    return value


def _absolute_path(env: Mapping[str, str], name: str, default: str) -> Path:
    value = env.get(name, default)
    if not value.startswith("/"):
        raise ConfigError(f"{name}={value!r} is not allowed: use an absolute path")
    return Path(value)


def load_config(env: Mapping[str, str]) -> Config:
    """Read every SRIOV_* variable; raise ConfigError on the first bad one."""
    pools_text = env.get("SRIOV_DEFAULT_POOLS", DEFAULT_POOLS)
    try:
        default_pools = parse_default_pools(pools_text)
    except ValueError as exc:
        raise ConfigError(
            f"SRIOV_DEFAULT_POOLS={pools_text!r} is not allowed: {exc}; "
            f"use comma-separated base/prefix:size, e.g. {DEFAULT_POOLS}"
        ) from None
    level = _choice(env, "SRIOV_LOG_LEVEL", "info", LOG_LEVELS)
    metrics_text = env.get("SRIOV_METRICS_ADDR", "")
    try:
        metrics_addr = parse_metrics_addr(metrics_text)
    except ValueError as exc:
        raise ConfigError(
            f"SRIOV_METRICS_ADDR={metrics_text!r} is not allowed: {exc}; "
            "use e.g. 127.0.0.1:9808, [::1]:9808, or empty for none"
        ) from None
    return Config(
        socket=_absolute_path(env, "SRIOV_SOCKET", "/run/docker/plugins/sriov.sock"),
        state_dir=_absolute_path(env, "SRIOV_STATE_DIR", "/var/lib/sriov"),
        sysfs=_absolute_path(env, "SRIOV_SYSFS", "/sys"),
        nic=_choice(env, "SRIOV_NIC", "kernel", NIC_KINDS),
        log_level=getattr(logging, level.upper()),
        default_pools=default_pools,
        metrics_addr=metrics_addr,
    )
