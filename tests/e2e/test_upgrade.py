"""`docker plugin upgrade` from the release before schema versions to this tree, containers up.

Version 1 is built from the commit before plugin/migrations.py existed (its store
has no schema version); version 2 from this checkout. Both travel through a
local registry, as upgrades only come from one. The mount sources are set again
before enabling, as docs/upgrade.md says (DESIGN.md notes Docker 20.10 reset
them to the manifest's defaults on upgrade).
"""

from __future__ import annotations

import ipaddress
import json
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import dockerlib
import pytest
from dockerlib import REPO, Resources, SimNic, container_ip, docker
from test_operate import status_command
from test_registry import registry  # noqa: F401  (a fixture)
from vflib import QUICK_STOP, container_mac, interface_of, sim_vfs, vf_with_mac

from plugin.state.migrations import LATEST_VERSION

pytestmark = pytest.mark.docker

ALIAS = "sriov-up:latest"
SUBNET = ipaddress.IPv4Network("10.93.3.0/24")


# Where the schema versions have lived: the package layout moved the module, and git
# log sees a move as an addition at the new path.
MIGRATIONS_PATHS = ("plugin/migrations.py", "plugin/state/migrations.py")


def version_1_commit() -> str:
    """The parent of the commit that added schema versions (plugin/migrations.py, first)."""
    added = subprocess.run(
        ["git", "log", "--diff-filter=A", "--format=%H", "--", *MIGRATIONS_PATHS],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert added, "git history has no commit adding plugin/migrations.py (a shallow clone?)"
    return f"{added[-1]}^"


def export_tree(commit: str, target: Path) -> Path:
    """The files of ``commit`` under ``target``, sharing this checkout's .venv for the build."""
    target.mkdir()
    archive = subprocess.run(
        ["git", "archive", commit], cwd=REPO, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    (target / ".venv").symlink_to(REPO / ".venv")
    return target


def push(tree: Path, remote: str) -> None:
    """scripts/push-plugin.sh of ``tree``; then remove the local copy it built."""
    result = subprocess.run(
        ["bash", str(tree / "scripts/push-plugin.sh"), remote],
        capture_output=True, text=True, timeout=1800, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, f"push {remote} from {tree}:\n{result.stdout}\n{result.stderr}"
    dockerlib.remove_plugin(remote)


def store_version(state: Path) -> int:
    path = state / dockerlib.STATE_SUBDIR / "sriov.db"
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


@pytest.fixture
def upgrade_lab(registry: str, tmp_path: Path, test_image: str) -> Iterator[dict]:  # noqa: F811
    sim = SimNic(pf=f"up{uuid.uuid4().hex[:6]}", vfs=4, sysfs=tmp_path / "sys")
    resources = Resources(plugin=ALIAS)
    remotes = [f"{registry}/sriov-up:1", f"{registry}/sriov-up:2"]
    sim.create()
    try:
        yield {"sim": sim, "resources": resources, "remotes": remotes, "tmp": tmp_path}
    finally:
        resources.cleanup()
        for name in (ALIAS, *remotes):
            dockerlib.remove_plugin(name)
        sim.destroy()


def test_upgrade_keeps_every_lease_and_address_and_running_containers_keep_their_vfs(
    upgrade_lab, engine
):
    sim, resources, (v1, v2), tmp = (upgrade_lab[k] for k in ("sim", "resources", "remotes", "tmp"))
    state = tmp / "state"
    state.mkdir()
    push(export_tree(version_1_commit(), tmp / "v1"), v1)
    docker("plugin", "install", "--disable", "--alias", ALIAS, "--grant-all-permissions", v1)
    settings = {"state.source": str(state), "sysfs.source": str(sim.sysfs), "SRIOV_NIC": "sim"}
    dockerlib.configure_plugin(settings, ALIAS)
    net = resources.network(
        "-d", ALIAS, "--ipam-driver", ALIAS, "-o", f"pf_iface={sim.pf}", "-o", "vlanid=730",
        "--subnet", str(SUBNET),
    )  # fmt: skip
    old = [resources.run("--net", net, command=QUICK_STOP) for _ in range(2)]
    macs = {c: container_mac(c, net) for c in old}
    ips = {c: container_ip(c, net) for c in old}
    vfs = {c: vf_with_mac(sim, macs[c]).index for c in old}
    assert store_version(state) == 0  # version 1 never numbered its schema
    plugin_id = docker("plugin", "inspect", "-f", "{{.Id}}", ALIAS)
    push(REPO, v2)

    docker("plugin", "disable", "-f", ALIAS)
    # Without --skip-remote-check the CLI asks "Plugin images do not match, are you sure?"
    # and, reading no answer, exits 0 having upgraded nothing.
    docker("plugin", "upgrade", "--grant-all-permissions", "--skip-remote-check", ALIAS, v2)
    kept = dockerlib.plugin_settings(ALIAS)
    assert kept["SRIOV_NIC"] == "sim"  # env settings survive
    assert "SRIOV_METRICS_ADDR" not in kept  # new in v2's manifest: absent; the code defaults it
    docker("plugin", "set", ALIAS, f"state.source={state}", f"sysfs.source={sim.sysfs}")
    docker("plugin", "enable", ALIAS)

    assert docker("plugin", "inspect", "-f", "{{.Id}} {{.PluginReference}}", ALIAS) == (
        f"{plugin_id} {v2}"
    )
    assert store_version(state) == LATEST_VERSION  # migrated; leases kept (no boot recorded)
    for container in old:
        assert docker("inspect", "-f", "{{.State.Running}}", container) == "true"
        assert interface_of(container).mac == macs[container]
        vf = vf_with_mac(sim, macs[container])
        assert (vf.index, vf.in_host) == (vfs[container], False), vf.line
    status = json.loads(status_command("--json", name=ALIAS))
    (pf,) = [pf for pf in status["pfs"] if pf["name"] == sim.pf]
    leased = {vf["index"] for vf in pf["vfs"] if vf["state"] == "leased"}
    assert leased == set(vfs.values())
    (pool,) = [p for p in status["pools"] if p["cidr"] == str(SUBNET)]
    assert pool["in_use"] == 3  # the gateway and the two containers

    new = resources.run("--net", net, command=QUICK_STOP)
    assert vf_with_mac(sim, container_mac(new, net)).index not in vfs.values()
    assert container_ip(new, net) not in ips.values()
    docker("rm", "-f", old[0])  # a lease made by version 1 is restored and released by 2
    freed = sim_vfs(sim)[vfs[old[0]]]
    assert freed.in_host and freed.vlan == 0, freed.line
    assert "leased" not in [
        vf["state"] for vf in json.loads(status_command("--json", name=ALIAS))["pfs"][0]["vfs"]
        if vf["index"] == freed.index
    ]  # fmt: skip
