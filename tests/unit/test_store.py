"""The store's transaction rules, on a real SQLite file."""

from __future__ import annotations

import threading

import pytest

from plugin.errors import StoreError
from plugin.nic.base import VfSettings
from plugin.options import NetworkOptions
from plugin.store import NetworkPf, NetworkRow, Store


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
