"""The store's transaction rules, on a real SQLite file."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from plugin.errors import StoreError
from plugin.model.networks import NetworkPf, NetworkRow
from plugin.model.options import NetworkOptions
from plugin.nic.base import VfSettings
from plugin.state.sqlite import Store


def network_row(
    network_id: str, pfs: tuple[str, ...] = (), vlan: int = 0, gateway: str | None = None
) -> NetworkRow:
    ports = tuple(NetworkPf(pci=None, name=pf) for pf in pfs)
    options = NetworkOptions(pfs=(), vf=VfSettings(vlan=vlan, qos=0, proto="802.1Q"))
    return NetworkRow(network_id, options, ports, gateway, None)


def test_threads_sharing_the_store_never_interleave_transactions(store):
    """Read-then-write from many threads at once: no write is lost, none is doubled."""
    with store.transaction() as tx:
        tx.insert_network(network_row("counter", gateway="0"))
    rounds, threads = 50, 8

    def bump() -> None:
        for _ in range(rounds):
            with store.transaction() as tx:
                count = int(tx.network("counter").gateway)
                tx.delete_network("counter")
                tx.insert_network(network_row("counter", gateway=str(count + 1)))

    workers = [threading.Thread(target=bump) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    with store.transaction() as tx:
        assert int(tx.network("counter").gateway) == rounds * threads


def test_a_failed_transaction_leaves_nothing_behind(store):
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.insert_network(network_row("half-made"))
        raise RuntimeError("a later step failed")
    with store.transaction() as tx:
        assert tx.network("half-made") is None


def test_a_transaction_inside_a_transaction_is_refused_not_deadlocked(store):
    outer = store.transaction()
    outer.__enter__()
    with pytest.raises(StoreError, match="begin transaction"), store.transaction():
        pass
    outer.__exit__(None, None, None)
    with store.transaction() as tx:  # the store is usable afterwards
        tx.insert_network(network_row("after"))


def test_commits_survive_a_new_store_on_the_same_directory(state_dir):
    with Store(state_dir).transaction() as tx:
        tx.insert_network(network_row("kept", ("pf0",), 7))
    with Store(state_dir).transaction() as tx:
        assert tx.network("kept") is not None
        assert tx.network_using_port("pf0", 7) == "kept"


def test_the_wal_stops_growing_after_a_checkpoint(store):
    """Commits overwrite a small WAL instead of extending the file (extending costs more)."""
    with store.transaction() as tx:
        tx.insert_network(network_row("net"))
    for number in range(400):
        with store.transaction() as tx:
            tx.insert_network(network_row(f"n{number}", (f"pf{number}",), number))
    wal = store.path.with_name(store.path.name + "-wal")
    frame = 24 + 4096
    assert wal.stat().st_size <= 32 + (Store.WAL_CHECKPOINT_PAGES + 10) * frame


def test_an_sqlite_error_inside_a_transaction_is_a_store_error_naming_the_file(store):
    with store.transaction() as tx:
        tx.insert_network(network_row("first", ("pf0",), 5))
    with pytest.raises(StoreError) as caught, store.transaction() as tx:
        tx.insert_network(network_row("second", ("pf1",), 6))
        tx.insert_network(network_row("third", ("pf0",), 5))  # PF and VLAN already taken
    assert caught.value.message == (
        f"state store {store.path}: UNIQUE constraint failed: network_ports.pf, network_ports.vlan"
    )
    with store.transaction() as tx:  # rolled back whole, and the store is usable
        assert tx.network("second") is None
        assert tx.network_using_port("pf0", 5) == "first"


SYNCS_PER_COMMIT = """
import os, sys
from plugin.state.sqlite import Store

store = Store(sys.argv[1])
for durable in sys.argv[2:]:
    with store.transaction(durable=durable == "durable") as tx:
        tx.remember_admin_mac_cleared(f"0000:00:00.{os.urandom(2).hex()}")
    os.write(1, b"MARK\\n")  # a syscall strace shows between the commits
"""


def syncs_between_commits(tmp_path, *kinds: str) -> list[int]:
    """fdatasync/fsync calls per commit of ``kinds``, counted by strace in a fresh process."""
    proc = subprocess.run(
        ["strace", "-f", "-e", "trace=fsync,fdatasync,write", "-o", str(tmp_path / "trace"),
         sys.executable, "-c", SYNCS_PER_COMMIT, str(tmp_path / "state"), "durable", *kinds],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2], check=True,
    )  # fmt: skip
    assert proc.stdout.count("MARK") == 1 + len(kinds)
    counts, syncs = [], 0
    for line in (tmp_path / "trace").read_text().splitlines():
        if "sync(" in line:
            syncs += 1
        elif 'write(1, "MARK' in line:
            counts.append(syncs)
            syncs = 0
    return counts[1:]  # the first commit also creates the WAL


def test_a_durable_commit_syncs_the_wal_and_a_lighter_one_waits_for_the_next(tmp_path):
    durable, light, durable_after = syncs_between_commits(tmp_path, "durable", "light", "durable")
    assert durable >= 1
    assert light == 0
    assert durable_after == durable


def test_a_lighter_commit_is_still_a_commit(store):
    with store.transaction(durable=False) as tx:
        tx.remember_admin_mac_cleared("0000:3b:02.1")
    reopened = Store(store.path.parent)
    with reopened.transaction() as tx:
        assert tx.vfs_without_admin_mac() == {"0000:3b:02.1"}
