"""The command line as a process: ``serve`` refusing bad settings with one line, and no command.

Moved out of the unit suite's config tests: each of these starts the plugin.
"""

import os
import socket
import subprocess
import sys

import pytest
from support import REPO_ROOT


def run_serve(env: dict) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SRIOV_")}
    return subprocess.run(
        [sys.executable, "-m", "plugin", "serve"],
        env={**clean, **env, "PYTHONPATH": str(REPO_ROOT)},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(("name", "value"), [("SRIOV_NIC", "fake"), ("SRIOV_STATE_DIR", "rel")])
def test_serve_with_bad_value_exits_nonzero_with_one_line(tmp_path, name, value):
    env = {"SRIOV_SOCKET": str(tmp_path / "s.sock"), "SRIOV_STATE_DIR": str(tmp_path)}
    result = run_serve({**env, name: value})
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert f"{name}={value!r} is not allowed" in lines[0]
    assert not (tmp_path / "s.sock").exists()


def test_cli_without_command_prints_usage_and_fails():
    result = subprocess.run(
        [sys.executable, "-m", "plugin"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "python -m plugin serve" in result.stdout


def test_serve_with_unusable_state_dir_exits_with_one_line_naming_it(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    env = {"SRIOV_SOCKET": str(tmp_path / "s.sock"), "SRIOV_STATE_DIR": str(blocker / "state")}
    result = run_serve(env)
    assert result.returncode == 1
    assert result.stderr.startswith(f"sriov: open state store {blocker}/state/sriov.db")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "s.sock").exists()


def test_serve_with_a_metrics_address_in_use_exits_with_one_line_naming_it(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            "SRIOV_SOCKET": str(tmp_path / "s.sock"),
            "SRIOV_STATE_DIR": str(tmp_path / "state"),
            "SRIOV_METRICS_ADDR": f"127.0.0.1:{port}",
        }
        result = run_serve(env)
    assert result.returncode == 1
    assert result.stderr == (
        f"sriov: SRIOV_METRICS_ADDR: listen on 127.0.0.1:{port}: Address already in use\n"
    )
