"""The store's schema version (``PRAGMA user_version``) and its forward migrations.

Version 1 is ``SCHEMA`` in plugin/state/sqlite.py, which stores never numbered (they say
``user_version`` 0). Its statements are ``CREATE ... IF NOT EXISTS``, so tables
added to it before versions existed (``vfs_without_admin_mac``) appear in older
unnumbered stores too. From version 2 on, change the schema only by adding a
migration here, never by editing ``SCHEMA``. Each later version is one migration here: a few
statements run in one transaction together with the new ``user_version``, so a
crash leaves the store at the old version or the new one, never in between.
A fresh store is made by the same path (version 1's tables, then every
migration), so new and migrated stores cannot differ.

A store written by a newer plugin is refused and left untouched: this plugin
cannot know what the newer columns mean, and rewriting it would lose them.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from plugin.errors import StoreError

# MIGRATIONS[n] takes a store from version n + 1 to version n + 2.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 2: why a lease is kept after its VF could not be restored (for status and metrics),
    #    and the sandbox an endpoint joined (for status).
    (
        "ALTER TABLE endpoints ADD COLUMN restore_error TEXT",
        "ALTER TABLE endpoints ADD COLUMN sandbox TEXT",
    ),
    # 3: the host boot the VF leases belong to (plugin/services/recovery.py), in a one-row table.
    (
        "CREATE TABLE leases_boot (only INTEGER PRIMARY KEY CHECK (only = 1), "
        "boot_id TEXT NOT NULL)",
    ),
)
LATEST_VERSION = len(MIGRATIONS) + 1


def schema_version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def refuse_newer(conn: sqlite3.Connection, path: Path) -> None:
    """StoreError if the store at ``path`` is of a newer schema than this plugin knows."""
    version = schema_version(conn)
    if version > LATEST_VERSION:
        raise StoreError(
            f"open state store {path}: its schema version is {version}, newer than the "
            f"{LATEST_VERSION} this plugin knows: it was written by a newer plugin version. "
            "Install that version again (the store was not changed; downgrades are not supported)"
        )


def migrate(conn: sqlite3.Connection, path: Path, base_schema: str) -> None:
    """Bring the store to LATEST_VERSION: version 1's tables if missing, then each migration."""
    refuse_newer(conn, path)
    version = schema_version(conn)
    if version == 0:
        conn.executescript(base_schema)  # CREATE ... IF NOT EXISTS: a no-op on a version 1 store
        version = 1
    for target in range(version + 1, LATEST_VERSION + 1):
        _apply(conn, path, target)


def _apply(conn: sqlite3.Connection, path: Path, target: int) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in MIGRATIONS[target - 2]:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {target}")
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        conn.execute("ROLLBACK")
        raise StoreError(
            f"migrate state store {path} to schema version {target}: {exc}; "
            "the store was left at the version before"
        ) from exc
