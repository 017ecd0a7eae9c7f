"""The VM and wire stages: tests/vm/test_*.py boot guests; tests/vm/guest/ runs only inside them.

The guest suites need the emulated igb NIC and root in a throwaway VM, so a
pytest run on the host never collects them (scripts/vm/guest-tests.sh and
scripts/vm/wire-node.sh set SRIOV_VM_GUEST=1 in the guest).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path

import pytest

collect_ignore = [] if os.environ.get("SRIOV_VM_GUEST") == "1" else ["guest"]

REPO = Path(__file__).resolve().parents[2]
DOCKER_LOCK = "/tmp/sriov-docker.lock"
# A name no other user of the shared engine has: the build only needs the rootfs/ it leaves.
BUILD_NAME = "sriov-vm-build:latest"
# What the plugin's rootfs/ is made of (Dockerfile, scripts/build-plugin.sh).
BUILD_INPUTS = ["plugin", "config.json", "Dockerfile", "pyproject.toml", "scripts/slim-rootfs.py"]
BUILT_FROM = REPO / "build" / "rootfs.inputs"


def run(*args, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(a) for a in args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def step(what: str, *args, timeout: float = 1800) -> str:
    started = time.monotonic()
    proc = run(*args, timeout=timeout)
    print(f"{what}: {time.monotonic() - started:.1f} s")
    assert proc.returncode == 0, f"{what} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
    return proc.stdout


def build_inputs_digest() -> str:
    """sha256 over the path and bytes of every file the plugin's rootfs is built from."""
    digest = hashlib.sha256()
    for top in BUILD_INPUTS:
        path = REPO / top
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        for file in files:
            if file.is_file() and "__pycache__" not in file.parts:
                digest.update(str(file.relative_to(REPO)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def pytest_collection_modifyitems(config, items):
    """The wire stage runs only when asked for by name (`-m wire`): it boots two guests for
    minutes, and the unit stage's `-m "not ..."` list does not name it."""
    if "wire" in (config.getoption("markexpr") or ""):
        return
    wire = [item for item in items if item.get_closest_marker("wire")]
    if wire:
        config.hook.pytest_deselected(items=wire)
        items[:] = [item for item in items if not item.get_closest_marker("wire")]


@pytest.fixture(scope="session")
def plugin_rootfs() -> Path:
    """rootfs/ built by scripts/build-plugin.sh on the host, before a guest boots.

    Built once for the VM and wire stages: a rootfs/ built from the same inputs
    (build/rootfs.inputs holds their digest) is used as it is.
    """
    digest = build_inputs_digest()
    rootfs = REPO / "rootfs"
    built = BUILT_FROM.read_text().strip() if BUILT_FROM.exists() else None
    if (rootfs / "opt" / "sriov").is_dir() and built == digest:
        print("plugin rootfs/ is built from these sources already")
        return rootfs
    BUILT_FROM.unlink(missing_ok=True)
    build_and_remove = f"scripts/build-plugin.sh {BUILD_NAME} && docker plugin rm {BUILD_NAME}"
    step(
        "build the plugin (and wait for the Docker lock)",
        "flock",
        DOCKER_LOCK,
        "sh",
        "-c",
        build_and_remove,
    )
    BUILT_FROM.parent.mkdir(exist_ok=True)
    BUILT_FROM.write_text(digest + "\n")
    return rootfs


@pytest.fixture(scope="session")
def vm_setup() -> None:
    """scripts/vm/setup.sh: QEMU with igb, the guest kernel and the initramfs (idempotent)."""
    step("scripts/vm/setup.sh", "scripts/vm/setup.sh")
