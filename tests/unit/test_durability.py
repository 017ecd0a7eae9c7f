"""Which of an endpoint's writes wait for the disk: every one the plugin could not repair.

A crash of the plugin process loses no commit (the page cache has it); an OS
crash can lose those not synced. Where the host's boot id is known, leases end
with the boot (plugin/services/recovery.py), so nothing of a lease needs a sync.
"""

from __future__ import annotations

import json
from contextlib import contextmanager

import falcon.testing
from fake_nic import FakeNic
from sysfs_trees import build, pf, vf

from plugin.model.options import NetworkOptions, PfChoice
from plugin.nic.sysfs import Sysfs
from plugin.ops.metrics import Metrics
from plugin.server import assemble_app
from plugin.services.networks import NetworkService
from plugin.state.sqlite import Store

PF0 = "0000:3b:00.0"
NETWORK, ENDPOINT = "1" * 64, "e" * 64
TREE = {**pf("pf0", PF0, 2, 2, 1500), **vf(PF0, 0, "0000:3b:02.0", "pf0v0")}


class RecordingStore(Store):
    """A real store that notes, per transaction, whether its commit was synced."""

    def __init__(self, state_dir):
        super().__init__(state_dir)
        self.commits: list[bool] = []

    @contextmanager
    def transaction(self, durable: bool = True):
        with super().transaction(durable) as tx:
            yield tx
        self.commits.append(durable)


def commits_per_step(store: RecordingStore, svc: NetworkService) -> dict[str, list[bool]]:
    svc.create_network(NETWORK, NetworkOptions(pfs=(PfChoice("pf0"),)))
    steps = {}
    for name, step in (
        ("create", lambda: svc.create_endpoint(NETWORK, ENDPOINT)),
        ("join", lambda: svc.join(NETWORK, ENDPOINT, "/var/run/docker/netns/abc")),
        ("delete", lambda: svc.delete_endpoint(ENDPOINT)),
    ):
        store.commits.clear()
        step()
        steps[name] = list(store.commits)
    return steps


def test_without_a_boot_id_the_lease_and_its_release_are_synced(tmp_path):
    store = RecordingStore(tmp_path / "state")
    svc = NetworkService(store, Sysfs(build(tmp_path / "sys", TREE)), FakeNic())
    # create: two reads (they write nothing, so nothing to sync), the lease (synced: an
    # OS crash must not lose it), then the ready mark: losing it leaves the lease
    # "programming", which the next start undoes. join: the sandbox, for status only.
    # delete: a read, then the release, synced: a lost release would leak the VF.
    assert commits_per_step(store, svc) == {
        "create": [True, True, True, False],
        "join": [False],
        "delete": [True, True],
    }


def test_when_leases_end_with_the_boot_no_write_of_a_lease_waits_for_the_disk(tmp_path):
    store = RecordingStore(tmp_path / "state")
    sysfs = Sysfs(build(tmp_path / "sys", TREE))
    svc = NetworkService(store, sysfs, FakeNic(), sync_leases=False)
    assert commits_per_step(store, svc) == {
        "create": [True, True, False, False],
        "join": [False],
        "delete": [True, False],
    }


def test_the_assembled_plugin_syncs_leases_only_without_a_boot_id(tmp_path):
    synced = {}
    for boot_id in (None, "b3f1c2d4-0000-4000-8000-000000000001"):
        root = tmp_path / str(boot_id)
        store = RecordingStore(root / "state")
        app = assemble_app(
            store, Sysfs(build(root / "sys", TREE)), FakeNic(), (), Metrics(), None, boot_id
        )
        client = falcon.testing.TestClient(app)
        generic = {"com.docker.network.generic": {"pf_iface": "pf0"}}
        for method, body in (
            ("CreateNetwork", {"NetworkID": NETWORK, "Options": generic}),
            ("CreateEndpoint", {"NetworkID": NETWORK, "EndpointID": ENDPOINT, "Interface": {}}),
        ):
            store.commits.clear()
            reply = client.simulate_post(f"/NetworkDriver.{method}", body=json.dumps(body))
            assert reply.status_code == 200, reply.text
        synced[boot_id] = store.commits[-2]  # the lease, before the ready mark
    assert synced == {None: True, "b3f1c2d4-0000-4000-8000-000000000001": False}
