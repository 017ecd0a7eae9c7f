"""Fixtures for the swarm suite: dockerd nodes joined into swarms on one machine.

Every test collected under tests/swarm is marked ``swarm``. The fixtures:

- ``nodes`` (session): three dockerd nodes (``swarmlib.Node``), each with the
  managed plugin ``sriov:latest`` (built once on the system engine under its
  lock), the busybox test image and a simulated PF of 2 VFs on the run's own
  fabric; all stopped and removed at the end, pass or fail.
- ``one_node_swarm`` (module): node 1 alone in a swarm; it leaves at the end.
- ``three_node_swarm`` (module): node 1 manager, nodes 2 and 3 workers.

Their helpers live in tests/e2e (dockerlib, vflib), which is put on sys.path here
so this suite also runs on its own (``pytest -m swarm``).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

import swarmlib
from swarmlib import Node

NODE_COUNT = 3


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.swarm)


@pytest.fixture(scope="session")
def nodes() -> Iterator[list[Node]]:
    swarmlib.remove_leftovers(NODE_COUNT)
    plugin_dir = swarmlib.build_plugin_dir()
    made = [Node(index) for index in range(1, NODE_COUNT + 1)]

    def start(node: Node) -> None:
        node.start()
        node.install(plugin_dir)

    # The nodes start and stop side by side: each mostly waits on its own dockerd.
    try:
        with ThreadPoolExecutor(NODE_COUNT) as pool:
            list(pool.map(start, made))
        yield made
    finally:
        with ThreadPoolExecutor(NODE_COUNT) as pool:
            errors = [error for failed in pool.map(Node.stop, made) for error in failed]
        shutil.rmtree(swarmlib.WORK, ignore_errors=True)
        shutil.rmtree(swarmlib.PLUGIN_DIR, ignore_errors=True)
        assert not errors, "stopping the swarm nodes failed:\n" + "\n".join(errors)


@pytest.fixture(scope="module")
def one_node_swarm(nodes: list[Node]) -> Iterator[Node]:
    swarmlib.form_swarm(nodes[0], [])
    yield nodes[0]
    swarmlib.leave_swarm(nodes[:1])


@pytest.fixture(scope="module")
def three_node_swarm(nodes: list[Node]) -> Iterator[list[Node]]:
    swarmlib.form_swarm(nodes[0], nodes[1:])
    yield nodes
    swarmlib.leave_swarm(nodes)
