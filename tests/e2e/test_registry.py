"""The plugin travels through a registry: push with scripts/push-plugin.sh, install, use."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dockerlib
import pytest
import runid
from dockerlib import Resources, container_ip, docker

# Push and install go through the engine's plugin manager, which changed since 20.10.
pytestmark = [pytest.mark.docker, pytest.mark.every_engine]

ALIAS = "sriov-reg:latest"
SUBNET = runid.e2e_subnet(1)  # a bridge network's: the run's own, see runid


def registry_config(storage: Path, port: int) -> str:
    """Debian's docker-registry (distribution 2.8) configuration: local files, no auth."""
    return (
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )


def registry_json(address: str, path: str) -> dict:
    with urllib.request.urlopen(f"http://{address}{path}", timeout=5) as reply:
        return json.load(reply)


def registry_answers(address: str) -> bool:
    try:
        registry_json(address, "/v2/")
    except (urllib.error.URLError, OSError):
        return False
    return True


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    """A docker-registry on a loopback port of the run's (Docker speaks plain HTTP to 127/8)."""
    port = runid.reserve_port()
    config = tmp_path / "registry.yml"
    config.write_text(registry_config(tmp_path / "storage", port))
    log = (tmp_path / "registry.log").open("w")
    process = subprocess.Popen(
        ["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
    )
    address = f"127.0.0.1:{port}"
    try:
        dockerlib.wait_until(
            lambda: process.poll() is not None or registry_answers(address),
            30,
            f"docker-registry on {address}",
        )
        assert process.poll() is None, (tmp_path / "registry.log").read_text()
        yield address
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.fixture
def pushed_and_installed(
    registry: str, resources: Resources, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    """Push the plugin to ``registry``, remove the local copy, install it back as ALIAS."""
    remote = f"{registry}/sriov:test"
    try:
        dockerlib.run_script("push-plugin.sh", remote)
        dockerlib.remove_plugin(remote)
        state = tmp_path / "state"
        state.mkdir()
        docker(
            "plugin", "install", "--disable", "--alias", ALIAS, "--grant-all-permissions", remote
        )
        # Keep the installed plugin's state off the host's default state directory.
        dockerlib.configure_plugin({"state.source": str(state)}, ALIAS)
        yield remote, registry
    finally:
        resources.cleanup()
        dockerlib.remove_plugin(ALIAS)
        dockerlib.remove_plugin(remote)


def test_pushed_plugin_installs_from_the_registry_and_serves_ipam(pushed_and_installed, resources):
    remote, registry = pushed_and_installed

    assert "test" in registry_json(registry, "/v2/sriov/tags/list")["tags"]
    assert docker("plugin", "inspect", "-f", "{{.PluginReference}}", ALIAS) == remote
    assert dockerlib.plugin_enabled(ALIAS)
    net = resources.network("-d", "bridge", "--ipam-driver", ALIAS, "--subnet", str(SUBNET))
    assert docker("network", "inspect", "-f", "{{.IPAM.Driver}}", net) == ALIAS
    ip = container_ip(resources.run("--net", net), net)
    assert ip in SUBNET and ip != SUBNET.network_address
