"""Which of an endpoint's writes wait for the disk: every one the plugin could not repair."""

from __future__ import annotations

from contextlib import contextmanager

from fake_nic import FakeNic
from sysfs_trees import build, pf, vf

from plugin.network import NetworkService
from plugin.nic.sysfs import Sysfs
from plugin.options import NetworkOptions, PfChoice
from plugin.store import Store

PF0 = "0000:3b:00.0"
NETWORK, ENDPOINT = "1" * 64, "e" * 64


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


def test_only_the_ready_mark_and_the_sandbox_note_skip_the_sync(tmp_path):
    tree = {**pf("pf0", PF0, 2, 2, 1500), **vf(PF0, 0, "0000:3b:02.0", "pf0v0")}
    store = RecordingStore(tmp_path / "state")
    svc = NetworkService(store, Sysfs(build(tmp_path / "sys", tree)), FakeNic())
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
    # create: two reads (they write nothing, so nothing to sync), the lease (synced: it
    # is what undoes a crash of this process mid-programming), then the ready mark.
    # delete: a read, then the release, synced: a lost release would leak the VF.
    assert steps == {
        "create": [True, True, True, False],
        "join": [False],
        "delete": [True, True],
    }
