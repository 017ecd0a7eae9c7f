"""Schema versions: a version 1 store migrates at start; a newer one is refused, untouched."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from plugin.errors import StoreError
from plugin.services.ipam import IpamService
from plugin.state.migrations import LATEST_VERSION
from plugin.state.sqlite import Store

V1_SQL = Path(__file__).with_name("store_v1.sql")
POOL = "local/10.1.0.0/24#0a0b0c0d"


def write_v1_store(state_dir: Path) -> Path:
    """The frozen version 1 store (tests/unit/store_v1.sql) as a database file."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / Store.FILENAME
    conn = sqlite3.connect(path)
    conn.executescript(V1_SQL.read_text())
    conn.close()
    return path


def user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


def columns(path: Path, table: str) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
    finally:
        conn.close()


def test_a_fresh_store_is_at_the_latest_version_with_the_same_tables_as_a_migrated_one(tmp_path):
    fresh = Store(tmp_path / "fresh").path
    migrated = write_v1_store(tmp_path / "old")
    assert user_version(migrated) == 0
    Store(tmp_path / "old")

    assert user_version(fresh) == user_version(migrated) == LATEST_VERSION == 3
    tables = ("pools", "addresses", "networks", "network_ports", "endpoints")
    for table in (*tables, "vfs_without_admin_mac", "leases_boot"):  # newer than the fixture
        assert columns(fresh, table) == columns(migrated, table), table
    assert columns(fresh, "endpoints")[-2:] == ["restore_error", "sandbox"]


def test_a_version_1_store_keeps_every_lease_and_address_after_migrating(tmp_path):
    write_v1_store(tmp_path)
    store = Store(tmp_path)

    with store.transaction() as tx:
        ep = tx.endpoint("ep-v1")
        network = tx.network("net-v1")
        assert (ep.pf, ep.vf, ep.netdev, ep.mac, ep.state) == (
            "pf0",
            2,
            "pf0v2",
            "02:00:00:00:00:02",
            "ready",
        )
        assert ep.original.vlan == 0 and ep.restore_error is None and ep.sandbox is None
        assert network.options.vf.vlan == 100
        assert tx.leased_vfs("pf0") == {2}
        assert tx.network_using_port("pf0", 100) == "net-v1"
    ipam = IpamService(store, ())
    # .1 and .2 are held: the next address is .3, where the stored cursor points.
    assert ipam.request_address(POOL, "", None) == "10.1.0.3/24"
    ipam.release_address(POOL, "10.1.0.2")  # the old container's address is releasable
    with store.transaction() as tx:
        tx.set_restore_error("ep-v1", "restore VF 2 of pf0: gone")  # the new column works
        assert tx.endpoint("ep-v1").restore_error == "restore VF 2 of pf0: gone"
        # no boot was recorded before version 3: the first one recorded keeps the lease
        assert tx.leases_boot() is None
        assert tx.end_leases_of_earlier_boots("boot-a") == []
        assert tx.leased_vfs("pf0") == {2}


def test_migrating_twice_changes_nothing(tmp_path):
    write_v1_store(tmp_path)
    Store(tmp_path)
    Store(tmp_path)  # a second start on a migrated store: no "duplicate column" error
    assert user_version(tmp_path / Store.FILENAME) == LATEST_VERSION


def test_a_store_from_a_newer_plugin_is_refused_and_left_as_it_was(tmp_path):
    path = write_v1_store(tmp_path)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    conn.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()

    with pytest.raises(StoreError) as refused:
        Store(tmp_path)

    message = refused.value.message
    assert f"schema version is {LATEST_VERSION + 1}, newer than the {LATEST_VERSION}" in message
    assert str(path) in message and "written by a newer plugin version" in message
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert user_version(path) == LATEST_VERSION + 1
    assert "restore_error" not in columns(path, "endpoints")
