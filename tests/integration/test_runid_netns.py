"""runid's network namespace names, and the clean-up of those a killed run left behind."""

from __future__ import annotations

import secrets
import subprocess

import pytest
import runid

pytestmark = pytest.mark.netns


def netns_names() -> set[str]:
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in listing.stdout.splitlines() if line.strip()}


@pytest.fixture
def made():
    names: list[str] = []

    def make(name: str) -> str:
        subprocess.run(["ip", "netns", "add", name], check=True)
        names.append(name)
        return name

    yield make
    for name in names:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_only_the_namespaces_of_runs_that_ended_are_removed(made):
    live_run = f"l{secrets.token_hex(2)}"
    assert runid.claim(f"run-{live_run}")  # this process stands for a run that still runs
    try:
        ours = made(runid.netns_name("own"))
        live = made(f"sriov-{live_run}-x-{secrets.token_hex(3)}")
        dead = made(f"sriov-d{secrets.token_hex(2)}-x-{secrets.token_hex(3)}")
        unrelated = made(f"sriovx{secrets.token_hex(3)}")

        removed = runid.remove_dead_runs_netns()

        assert dead in removed
        assert dead not in netns_names()
        assert {ours, live, unrelated} <= netns_names()
    finally:
        runid.release(f"run-{live_run}")


def test_a_netns_name_carries_the_run_id():
    name = runid.netns_name("host")
    assert name.startswith(f"sriov-{runid.RUN_ID}-host-")
    assert name != runid.netns_name("host")
