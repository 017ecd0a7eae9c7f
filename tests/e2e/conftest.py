"""Fixtures for tests against a real Docker Engine with the plugin installed.

Every test collected under tests/e2e is marked ``docker``. A test marked
``every_engine`` runs once per engine (``--engine``, default all: the system's
20.10, trixie's 26.1 and sid's 28.5, see ``engines``), those of them also marked
``min_engine_api(major, minor)`` only on engines whose API has it; any other test
runs on the system engine only. Its id names the engine: ``test_x[docker26.1]``.
The fixtures:

- ``engine`` (session, one per engine): an ``engines.Engine`` that answers, with
  ``DOCKER_HOST`` and ``PATH`` pointing at it (its own client) while its tests run.
  The system engine is taken under /tmp/sriov-docker.lock for as long as its tests
  run (another run's tests wait), started with scripts/start-dockerd.sh if none
  answers, and then stopped at the end unless another registered run still uses it
  (``dockerlib.system_engine_session``); trixie's and sid's are this run's own,
  started beside it and always stopped.
- ``plugin`` (session): ``sriov:latest`` built with scripts/build-plugin.sh, its
  state on a fresh temporary directory (``state.source``), its default pools in the
  run's own 10.X.0.0/16 (``runid.default_pools``), enabled; removed at the end.
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

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import dockerlib
import engines
import pytest
import runid
from dockerlib import PLUGIN, Resources, SimNic
from engines import Engine, SideBySide


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.docker)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "engine" not in metafunc.fixturenames:
        return
    known = installed_engines(metafunc.config)
    wanted = metafunc.config.getoption("--engine") or list(engines.ENGINE_KEYS)
    if metafunc.definition.get_closest_marker("every_engine") is None:
        wanted = [key for key in wanted if key == "system"]
    min_api = metafunc.definition.get_closest_marker("min_engine_api")
    if min_api is not None:
        # An engine that is not installed stays in, so its fixture says what is missing.
        wanted = [key for key in wanted if known[key] is None or known[key].api >= min_api.args]
    keys = list(dict.fromkeys(wanted))
    ids = [known[key].id if known[key] else key for key in keys]
    metafunc.parametrize("engine", keys, ids=ids, indirect=True, scope="session")


ENGINES = pytest.StashKey[dict[str, Engine | None]]()


def installed_engines(config: pytest.Config) -> dict[str, Engine | None]:
    """Every known engine by key, None where it is not installed; looked up once."""
    if ENGINES not in config.stash:
        config.stash[ENGINES] = {key: engines.installed(key) for key in engines.ENGINE_KEYS}
    return config.stash[ENGINES]


@pytest.fixture(scope="session")
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    engine = engines.make_engine(request.param)
    saved = {key: os.environ.get(key) for key in ("DOCKER_HOST", "PATH")}
    os.environ.update(engine.environment(dict(os.environ)))
    try:
        if engine.key == "system":
            yield from _system_engine(engine)
        else:
            yield from _side_by_side_engine(engine)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _system_engine(engine: Engine) -> Iterator[Engine]:
    with dockerlib.system_engine_session():
        yield engine


def _side_by_side_engine(engine: Engine) -> Iterator[Engine]:
    daemon = SideBySide(engine)
    daemon.start()
    try:
        yield engine
    finally:
        daemon.stop()


@pytest.fixture(scope="session")
def plugin(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    dockerlib.remove_leftovers()
    dockerlib.build_plugin(PLUGIN)
    state = tmp_path_factory.mktemp("plugin-state")
    settings = {"state.source": str(state), "SRIOV_DEFAULT_POOLS": runid.default_pools()}
    dockerlib.configure_plugin(settings, PLUGIN)
    yield PLUGIN
    dockerlib.remove_leftovers()
    dockerlib.remove_plugin(PLUGIN)


@pytest.fixture(scope="session")
def test_image(engine: Engine) -> str:
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
