"""The one store: every byte of state the plugin keeps goes through here.

SQLite in WAL mode, one connection shared by the request threads. A request takes
short transactions around its device work, never one across a netlink or sysfs
call (``BEGIN IMMEDIATE``, because a read decides the write). What outlives a boot
(networks, pools, addresses) is committed synchronously; a VF lease lives for one
boot, so its writes may skip the sync (``transaction(durable=False)``).
Leases are rows guarded by unique keys, so a double lease is impossible rather
than unlikely. Addresses are stored as 16-byte big-endian integers so that IPv4
and IPv6 sort and compare the same way inside one index.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from plugin.errors import StoreError
from plugin.model.ipam import AddressKind, AddressSpace, Family, PoolRow
from plugin.model.leases import EndpointRow, EndpointState
from plugin.model.networks import NetworkPf, NetworkRow, network_settings
from plugin.model.options import UNTAGGED, NetworkOptions, PfChoice
from plugin.nic.base import VfSettings
from plugin.state.migrations import migrate, refuse_newer

SCHEMA = """
CREATE TABLE IF NOT EXISTS pools (
    id            TEXT PRIMARY KEY,
    address_space TEXT NOT NULL,
    family        INTEGER NOT NULL,
    cidr          TEXT NOT NULL,
    subpool       TEXT NOT NULL,
    first         BLOB NOT NULL,
    last          BLOB NOT NULL,
    request_key   TEXT NOT NULL UNIQUE,
    holders       INTEGER NOT NULL CHECK (holders > 0),
    cursor        BLOB
);
CREATE INDEX IF NOT EXISTS pools_by_range ON pools (address_space, family, first);
CREATE TABLE IF NOT EXISTS addresses (
    pool_id TEXT NOT NULL REFERENCES pools (id) ON DELETE CASCADE,
    addr    BLOB NOT NULL,
    kind    TEXT NOT NULL,
    PRIMARY KEY (pool_id, addr)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS networks (
    id      TEXT PRIMARY KEY,
    options TEXT NOT NULL,
    gateway  TEXT,
    gateway6 TEXT
);
CREATE TABLE IF NOT EXISTS network_ports (
    network_id TEXT NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
    pf         TEXT NOT NULL,
    vlan       INTEGER NOT NULL,
    PRIMARY KEY (pf, vlan)
);
CREATE TABLE IF NOT EXISTS endpoints (
    id         TEXT PRIMARY KEY,
    network_id TEXT NOT NULL REFERENCES networks (id),
    pf         TEXT NOT NULL,
    vf         INTEGER NOT NULL,
    pci        TEXT NOT NULL,
    netdev     TEXT NOT NULL,
    mac        TEXT NOT NULL,
    address    TEXT NOT NULL,
    address6   TEXT NOT NULL,
    original   TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('programming', 'ready')),
    UNIQUE (pf, vf)
);
-- VFs (by PCI address) whose admin MAC our last release cleared: what their PF
-- reports since is the MAC the VF registered itself, not an admin MAC.
CREATE TABLE IF NOT EXISTS vfs_without_admin_mac (
    pci TEXT PRIMARY KEY
) WITHOUT ROWID;
"""

ADDRESS_BYTES = 16


def encode_address(value: int) -> bytes:
    return value.to_bytes(ADDRESS_BYTES, "big")


def decode_address(blob: bytes) -> int:
    return int.from_bytes(blob, "big")


class SqliteTransaction:
    """The queries of one request; every method runs inside the open transaction.

    Its pool and address methods are the IPAM's ``PoolTransaction``.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def _one(self, sql: str, *args: object) -> sqlite3.Row | None:
        return self._conn.execute(sql, args).fetchone()

    # --- pools -----------------------------------------------------------

    def pool(self, pool_id: str) -> PoolRow | None:
        row = self._one(f"SELECT {POOL_COLUMNS} FROM pools WHERE id = ?", pool_id)
        return _pool_row(row) if row else None

    def pool_by_request(self, request_key: str) -> PoolRow | None:
        row = self._one(f"SELECT {POOL_COLUMNS} FROM pools WHERE request_key = ?", request_key)
        return _pool_row(row) if row else None

    def overlapping_pool(
        self, space: AddressSpace, family: Family, first: int, last: int
    ) -> PoolRow | None:
        """The held pool in ``space`` that overlaps [first, last] and ends last, if any."""
        row = self._one(
            f"SELECT {POOL_COLUMNS} FROM pools WHERE address_space = ? AND family = ? "
            "AND first <= ? AND last >= ? ORDER BY last DESC LIMIT 1",
            space,
            family,
            encode_address(last),
            encode_address(first),
        )
        return _pool_row(row) if row else None

    def insert_pool(self, pool: PoolRow, request_key: str) -> None:
        self._conn.execute(
            "INSERT INTO pools (id, address_space, family, cidr, subpool, first, last, "
            "request_key, holders, cursor) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
            (
                pool.id,
                pool.address_space,
                pool.family,
                pool.cidr,
                pool.subpool,
                encode_address(pool.first),
                encode_address(pool.last),
                request_key,
                pool.holders,
            ),
        )

    def set_pool_holders(self, pool_id: str, holders: int) -> None:
        self._conn.execute("UPDATE pools SET holders = ? WHERE id = ?", (holders, pool_id))

    def delete_pool(self, pool_id: str) -> None:
        self._conn.execute("DELETE FROM pools WHERE id = ?", (pool_id,))

    def set_pool_cursor(self, pool_id: str, cursor: int) -> None:
        self._conn.execute(
            "UPDATE pools SET cursor = ? WHERE id = ?", (encode_address(cursor), pool_id)
        )

    # --- addresses -------------------------------------------------------

    def address_kind(self, pool_id: str, addr: int) -> AddressKind | None:
        row = self._one(
            "SELECT kind FROM addresses WHERE pool_id = ? AND addr = ?",
            pool_id,
            encode_address(addr),
        )
        return AddressKind(row["kind"]) if row else None

    def insert_address(self, pool_id: str, addr: int, kind: AddressKind) -> None:
        self._conn.execute(
            "INSERT INTO addresses (pool_id, addr, kind) VALUES (?, ?, ?)",
            (pool_id, encode_address(addr), kind),
        )

    def delete_address(self, pool_id: str, addr: int) -> bool:
        cur = self._conn.execute(
            "DELETE FROM addresses WHERE pool_id = ? AND addr = ?",
            (pool_id, encode_address(addr)),
        )
        return cur.rowcount > 0

    def first_free_address(self, pool_id: str, low: int, high: int) -> int | None:
        """The lowest address in [low, high] that holds no row, or None.

        Walks the index from ``low`` and stops at the first gap, so the cost is
        the length of the run of held addresses that starts at ``low``: nothing
        when allocation follows the pool's cursor.
        """
        expected = low
        rows = self._conn.execute(
            "SELECT addr FROM addresses WHERE pool_id = ? AND addr >= ? AND addr <= ? "
            "ORDER BY addr",
            (pool_id, encode_address(low), encode_address(high)),
        )
        for row in rows:
            held = decode_address(row["addr"])
            if held != expected:
                break
            expected = held + 1
        return expected if expected <= high else None

    def count_addresses(self, pool_id: str, low: int, high: int) -> int:
        row = self._one(
            "SELECT COUNT(*) AS held FROM addresses WHERE pool_id = ? AND addr >= ? AND addr <= ?",
            pool_id,
            encode_address(low),
            encode_address(high),
        )
        return row["held"]

    # --- networks --------------------------------------------------------

    def network(self, network_id: str) -> NetworkRow | None:
        row = self._one("SELECT * FROM networks WHERE id = ?", network_id)
        return _network_row(row) if row else None

    def network_using_port(self, pf: str, vlan: int) -> str | None:
        row = self._one("SELECT network_id FROM network_ports WHERE pf = ? AND vlan = ?", pf, vlan)
        return row[0] if row else None

    def insert_network(self, network: NetworkRow) -> None:
        """Record the network and claim its ports: each of its PFs on its VLAN, once."""
        self._conn.execute(
            "INSERT INTO networks (id, options, gateway, gateway6) VALUES (?, ?, ?, ?)",
            (network.id, network_to_json(network), network.gateway, network.gateway6),
        )
        self._conn.executemany(
            "INSERT INTO network_ports (network_id, pf, vlan) VALUES (?, ?, ?)",
            [(network.id, pf.key, network.options.vf.vlan) for pf in network.pfs],
        )

    def delete_network(self, network_id: str) -> None:
        self._conn.execute("DELETE FROM networks WHERE id = ?", (network_id,))

    # --- endpoints (VF leases) -------------------------------------------

    def endpoint(self, endpoint_id: str) -> EndpointRow | None:
        row = self._one("SELECT * FROM endpoints WHERE id = ?", endpoint_id)
        return _endpoint_row(row) if row else None

    def endpoints_of_network(self, network_id: str) -> list[EndpointRow]:
        rows = self._conn.execute(
            "SELECT * FROM endpoints WHERE network_id = ? ORDER BY id", (network_id,)
        )
        return [_endpoint_row(row) for row in rows]

    def endpoints_in_state(self, state: EndpointState) -> list[EndpointRow]:
        rows = self._conn.execute(
            "SELECT * FROM endpoints WHERE state = ? ORDER BY id", (state.value,)
        )
        return [_endpoint_row(row) for row in rows]

    def leased_vfs(self, pf: str) -> set[int]:
        rows = self._conn.execute("SELECT vf FROM endpoints WHERE pf = ?", (pf,))
        return {row[0] for row in rows}

    def insert_endpoint(self, ep: EndpointRow) -> None:
        self._conn.execute(
            "INSERT INTO endpoints (id, network_id, pf, vf, pci, netdev, mac, address, "
            "address6, original, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                ep.id,
                ep.network_id,
                ep.pf,
                ep.vf,
                ep.pci,
                ep.netdev,
                ep.mac,
                ep.address or "",
                ep.address6 or "",
                _settings_to_json(ep.original),
                ep.state.value,
            ),
        )

    def finish_endpoint(self, endpoint_id: str, original: VfSettings) -> None:
        """Mark the lease ready, with the original values of exactly what was changed."""
        self._conn.execute(
            "UPDATE endpoints SET state = ?, original = ? WHERE id = ?",
            (EndpointState.READY.value, _settings_to_json(original), endpoint_id),
        )

    def delete_endpoint(self, endpoint_id: str) -> None:
        self._conn.execute("DELETE FROM endpoints WHERE id = ?", (endpoint_id,))

    def vfs_without_admin_mac(self) -> set[str]:
        return {row[0] for row in self._conn.execute("SELECT pci FROM vfs_without_admin_mac")}

    def remember_admin_mac_cleared(self, pci: str) -> None:
        self._conn.execute("INSERT OR IGNORE INTO vfs_without_admin_mac (pci) VALUES (?)", (pci,))

    def forget_admin_mac_cleared(self, pci: str) -> None:
        self._conn.execute("DELETE FROM vfs_without_admin_mac WHERE pci = ?", (pci,))

    def leases_boot(self) -> str | None:
        """The boot id of the host boot the VF leases belong to; None if never recorded."""
        row = self._conn.execute("SELECT boot_id FROM leases_boot").fetchone()
        return None if row is None else row["boot_id"]

    def end_leases_of_earlier_boots(self, boot_id: str) -> list[EndpointRow]:
        """Drop every lease and admin-MAC note of another boot; leases now belong to ``boot_id``.

        Returns the leases dropped. A reboot destroyed their VFs and ended the
        containers that held them, so nothing is left to restore.
        """
        recorded = self.leases_boot()
        if recorded == boot_id:
            return []
        dropped = []
        if recorded is not None:  # else a new store, or one from before boots were recorded
            dropped = self.endpoints()
            self._conn.execute("DELETE FROM endpoints")
            self._conn.execute("DELETE FROM vfs_without_admin_mac")
        self._conn.execute(
            "INSERT INTO leases_boot (only, boot_id) VALUES (1, ?) "
            "ON CONFLICT (only) DO UPDATE SET boot_id = excluded.boot_id",
            (boot_id,),
        )
        return dropped

    def set_restore_error(self, endpoint_id: str, error: str) -> None:
        """Record why the VF of a lease kept after a failed restore could not be restored."""
        self._conn.execute(
            "UPDATE endpoints SET restore_error = ? WHERE id = ?", (error, endpoint_id)
        )

    def set_sandbox(self, endpoint_id: str, sandbox: str) -> None:
        self._conn.execute("UPDATE endpoints SET sandbox = ? WHERE id = ?", (sandbox, endpoint_id))

    # --- everything, for status and metrics ---------------------------------

    def networks(self) -> list[NetworkRow]:
        return [
            _network_row(row) for row in self._conn.execute("SELECT * FROM networks ORDER BY id")
        ]

    def endpoints(self) -> list[EndpointRow]:
        rows = self._conn.execute("SELECT * FROM endpoints ORDER BY pf, vf")
        return [_endpoint_row(row) for row in rows]

    def endpoints_of_pf(self, pf: str) -> list[EndpointRow]:
        rows = self._conn.execute("SELECT * FROM endpoints WHERE pf = ? ORDER BY vf", (pf,))
        return [_endpoint_row(row) for row in rows]

    def pools(self) -> list[PoolRow]:
        rows = self._conn.execute(
            f"SELECT {POOL_COLUMNS} FROM pools ORDER BY address_space, family, first"
        )
        return [_pool_row(row) for row in rows]


# What a PoolRow is read from (the request key is only ever compared, in SQL).
POOL_COLUMNS = "id, address_space, family, cidr, subpool, first, last, holders, cursor"


def _pool_row(row: sqlite3.Row) -> PoolRow:
    cursor = row["cursor"]
    return PoolRow(
        id=row["id"],
        address_space=AddressSpace(row["address_space"]),
        family=row["family"],
        cidr=row["cidr"],
        subpool=row["subpool"],
        first=decode_address(row["first"]),
        last=decode_address(row["last"]),
        holders=row["holders"],
        cursor=None if cursor is None else decode_address(cursor),
    )


def _endpoint_row(row: sqlite3.Row) -> EndpointRow:
    return EndpointRow(
        id=row["id"],
        network_id=row["network_id"],
        pf=row["pf"],
        vf=row["vf"],
        pci=row["pci"],
        netdev=row["netdev"],
        mac=row["mac"],
        address=row["address"] or None,
        address6=row["address6"] or None,
        original=VfSettings(**json.loads(row["original"])),
        state=EndpointState(row["state"]),
        restore_error=row["restore_error"],
        sandbox=row["sandbox"],
    )


def _settings_to_json(settings: VfSettings) -> str:
    return json.dumps(dataclasses.asdict(settings))


def _network_row(row: sqlite3.Row) -> NetworkRow:
    options, pfs = network_from_json(row["options"])
    return NetworkRow(row["id"], options, pfs, row["gateway"], row["gateway6"])


def network_to_json(network: NetworkRow) -> str:
    return json.dumps(network_settings(network))


def network_from_json(text: str) -> tuple[NetworkOptions, tuple[NetworkPf, ...]]:
    """The options and PFs of a stored network.

    Networks recorded before PFs were kept by PCI address with their VF ranges
    hold bare PF names, and older ones lack the options added since (their
    defaults apply).
    """
    stored = json.loads(text)
    pfs = tuple(_network_pf(entry) for entry in stored.pop("pfs"))
    vf_fields = {field.name for field in dataclasses.fields(VfSettings)} - {"mac"}
    vf = dataclasses.replace(UNTAGGED, **{k: v for k, v in stored.items() if k in vf_fields})
    known = {field.name for field in dataclasses.fields(NetworkOptions)}
    given = {name: value for name, value in stored.items() if name in known}
    choices = tuple(PfChoice(pf.key, pf.vfs) for pf in pfs)
    return NetworkOptions(pfs=choices, vf=vf, **given), pfs


def _network_pf(entry: str | dict) -> NetworkPf:
    if isinstance(entry, str):
        return NetworkPf(pci=None, name=entry)
    spans = entry["vfs"]
    vfs = None if spans is None else tuple((first, last) for first, last in spans)
    return NetworkPf(pci=entry["pci"], name=entry["name"], vfs=vfs)


class Store:
    """SQLite state under ``state_dir``: one connection, one transaction at a time.

    Every request writes, and SQLite lets one writer in at a time anyway, so the
    threads share one connection behind a lock instead of keeping one each: a
    connection's page cache is only good until another connection commits, and
    waitress hands consecutive requests to different threads, so per-thread
    connections re-read their pages from disk on almost every request.

    ``connect`` opens the connection (``sqlite3.connect``'s arguments): a test
    can hand SQLite a limit of its own, such as a file that may not grow.
    """

    FILENAME = "sriov.db"
    LOCK_TIMEOUT_S = 30
    # Checkpoint the WAL every this many pages (SQLite's default is 1000). Once a
    # checkpoint has run, commits overwrite the WAL from its start instead of
    # extending the file, and an fdatasync that must also record a new file size
    # costs nearly twice as much (0.43 against 0.24 ms on the benchmark machine).
    # A small WAL reaches that state after a few dozen commits instead of a
    # few hundred; each checkpoint writes back only the handful of pages that
    # allocations keep touching.
    WAL_CHECKPOINT_PAGES = 100

    def __init__(
        self,
        state_dir: Path,
        connect: Callable[..., sqlite3.Connection] = sqlite3.connect,
    ) -> None:
        self.path = Path(state_dir) / self.FILENAME
        self._connect = connect
        self._lock = threading.RLock()
        try:
            Path(state_dir).mkdir(parents=True, exist_ok=True)
            self._conn = self._open()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"open state store {self.path}: {exc}") from exc

    def _open(self) -> sqlite3.Connection:
        conn = self._connect(
            self.path, isolation_level=None, timeout=self.LOCK_TIMEOUT_S, check_same_thread=False
        )
        try:
            refuse_newer(conn, self.path)  # before anything writes to a store we cannot read
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute(f"PRAGMA wal_autocheckpoint = {self.WAL_CHECKPOINT_PAGES}")
            conn.execute("PRAGMA foreign_keys = ON")
            migrate(conn, self.path, SCHEMA)
            conn.row_factory = sqlite3.Row  # rows are read by column name
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def transaction(self, durable: bool = True) -> Iterator[SqliteTransaction]:
        """One write transaction: committed when the block ends, rolled back if it raises.

        A durable commit returns once the WAL is on disk (an fdatasync, about
        0.25 ms). ``durable=False`` skips that sync for writes whose loss in an
        operating system crash (never in a crash of this process: the page cache
        keeps them) the plugin repairs by itself; the next durable commit syncs
        them along with its own. Order is kept either way: a later commit never
        survives without an earlier one.
        """
        if not self._lock.acquire(timeout=self.LOCK_TIMEOUT_S):
            raise StoreError(
                f"state store {self.path}: begin transaction: still busy after "
                f"{self.LOCK_TIMEOUT_S} s"
            )
        try:
            with self._synced(durable), self._transaction() as tx:
                yield tx
        finally:
            self._lock.release()

    @contextmanager
    def _synced(self, durable: bool) -> Iterator[None]:
        """Commit at synchronous=FULL, or else NORMAL (in WAL mode: synced at checkpoints only)."""
        if durable:
            yield
            return
        self._set_synchronous("NORMAL")
        try:
            yield
        finally:
            self._set_synchronous("FULL")

    def _set_synchronous(self, level: str) -> None:
        try:
            self._conn.execute(f"PRAGMA synchronous = {level}")
        except sqlite3.Error as exc:
            raise StoreError(f"state store {self.path}: set synchronous {level}: {exc}") from exc

    @contextmanager
    def _transaction(self) -> Iterator[SqliteTransaction]:
        """BEGIN IMMEDIATE ... COMMIT; any SQLite error becomes a StoreError naming the file.

        After some errors (a full disk, an I/O error) SQLite has already rolled
        the transaction back: a second ROLLBACK would fail with "no transaction
        is active" and hide the cause, so the rollback is only sent while a
        transaction is open.
        """
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"state store {self.path}: begin transaction: {exc}") from exc
        try:
            yield SqliteTransaction(conn)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise StoreError(f"state store {self.path}: {exc}") from exc
        except BaseException:
            self._rollback()
            raise

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")
