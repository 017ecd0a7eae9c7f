"""Fixtures any test may use: a temporary store, plugin environment and plugin process.

Every session prints its run id (tests/runid.py) and its Hypothesis seed in the header:
``--hypothesis-seed=N`` runs the property-based tests again with the same examples
(without it, each session draws a fresh seed and prints it).
"""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path

import pytest
import runid
from support import PluginProcess

from plugin.state.sqlite import Store


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--engine",
        action="append",
        choices=("system", "trixie"),
        help="Docker Engine(s) for the engine suite (repeatable; default both): "
        "system = Debian 12's docker.io 20.10, trixie = Debian 13's 26.1 side by side",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # before Hypothesis's own pytest_configure, which applies the seed to every test
    if config.getoption("hypothesis_seed", None) is None:
        config.option.hypothesis_seed = str(secrets.randbelow(2**32))


def pytest_report_header(config: pytest.Config) -> list[str]:
    seed = config.getoption("hypothesis_seed")
    return [
        f"test run id: {runid.RUN_ID} (SRIOV_TEST_RUN_ID)",
        f"hypothesis seed: {seed} (reproduce with --hypothesis-seed={seed})",
    ]


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def store(state_dir: Path) -> Store:
    """A real SQLite store in a fresh directory."""
    return Store(state_dir)


@pytest.fixture
def socket_dir():
    """A short directory for unix sockets (their paths are limited to 107 bytes)."""
    with tempfile.TemporaryDirectory(prefix="sriov-", dir="/tmp") as path:
        yield Path(path)


@pytest.fixture
def plugin_env(socket_dir: Path, state_dir: Path) -> dict:
    """SRIOV_* variables for a plugin on a temporary socket and state directory."""
    return {
        "SRIOV_SOCKET": str(socket_dir / "sriov.sock"),
        "SRIOV_STATE_DIR": str(state_dir),
        "SRIOV_LOG_LEVEL": "info",
    }


@pytest.fixture
def plugin(plugin_env: dict):
    """A running ``python -m plugin serve``; stopped when the test ends."""
    with PluginProcess(plugin_env) as process:
        yield process
