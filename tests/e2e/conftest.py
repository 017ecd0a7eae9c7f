"""Fixtures for tests against a real Docker Engine with the plugin installed.

Every test collected under tests/e2e is marked ``docker``. The fixtures:

- ``engine`` (session): an answering engine; started with scripts/start-dockerd.sh
  if none answers, and then stopped at the end of the session.
- ``plugin`` (session): ``sriov:latest`` built with scripts/build-plugin.sh, its
  state on a fresh temporary directory (``state.source``), enabled; removed at the end.
- ``test_image`` (session): ``sriov-test-busybox:latest``, a static busybox with its
  applets (sh, ip, ping, ifconfig, cat, sleep, ...), made without a registry.
- ``resources`` (per test): a ``dockerlib.Resources`` that creates containers
  (``resources.run(...)``) and networks (``resources.network(...)``) with unique
  names and removes them after the test, pass or fail.
- ``sim_nic`` (per test): a factory ``sim_nic(vfs=4, pf=None) -> SimNic`` that creates
  a simulated NIC under the test's tmp_path and points the plugin at it
  (``sysfs.source`` and ``SRIOV_NIC=sim``); undone after the test.

A network-driver test then reads:

    def test_vf_in_container(resources, sim_nic):
        sim = sim_nic(vfs=2)
        net = resources.network("-d", PLUGIN, "--ipam-driver", PLUGIN,
                                "-o", f"pf_iface={sim.pf}", "--subnet", "10.78.0.0/24")
        ctr = resources.run("--net", net)
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import dockerlib
import pytest
from dockerlib import PLUGIN, Resources, SimNic


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def engine() -> Iterator[None]:
    started_pid = dockerlib.start_dockerd()
    yield
    if started_pid is not None:
        # A test may have restarted dockerd: stop the one running now.
        dockerlib.stop_dockerd(dockerlib.dockerd_pid())


@pytest.fixture(scope="session")
def plugin(engine: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    dockerlib.remove_leftovers()
    dockerlib.build_plugin(PLUGIN)
    state = tmp_path_factory.mktemp("plugin-state")
    dockerlib.configure_plugin({"state.source": str(state)}, PLUGIN)
    yield PLUGIN
    dockerlib.remove_leftovers()
    dockerlib.remove_plugin(PLUGIN)


@pytest.fixture(scope="session")
def test_image(engine: None) -> str:
    return dockerlib.make_busybox_image()


@pytest.fixture
def resources(plugin: str, test_image: str) -> Iterator[Resources]:
    made = Resources(plugin=plugin)
    yield made
    made.cleanup()


@pytest.fixture
def sim_nic(resources: Resources, tmp_path: Path) -> Callable[..., SimNic]:
    def make(vfs: int = 4, pf: str | None = None) -> SimNic:
        pf = pf or f"sp{uuid.uuid4().hex[:6]}"
        return resources.sim_nic(tmp_path / f"sysfs-{pf}", pf=pf, vfs=vfs)

    return make
