"""The parts of an etcd transaction: comparisons that guard it, and the requests it runs.

Each returns the JSON gateway's form of one ``Compare`` or ``RequestOp``.
"""

from __future__ import annotations

import json

from plugin.state.etcd.client import b64, prefix_end
from plugin.state.etcd.keys import address_key, addresses_prefix

# --- comparisons -------------------------------------------------------------


def absent(key: str) -> dict:
    """``key`` does not exist (was never created, or was deleted)."""
    return {"key": b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}


def unchanged(key: str, mod_revision: int) -> dict:
    """``key`` is still as it was read at ``mod_revision``."""
    return {
        "key": b64(key),
        "target": "MOD",
        "result": "EQUAL",
        "mod_revision": str(mod_revision),
    }


def none_changed_since(prefix: str, revision: int) -> dict:
    """No key under ``prefix`` was created or changed after ``revision``."""
    return {
        "key": b64(prefix),
        "range_end": prefix_end(prefix),
        "target": "MOD",
        "result": "LESS",
        "mod_revision": str(revision + 1),
    }


# --- requests ----------------------------------------------------------------


def put(key: str, value: dict) -> dict:
    return {"request_put": {"key": b64(key), "value": b64(json.dumps(value))}}


def delete(key: str) -> dict:
    return {"request_delete_range": {"key": b64(key)}}


def delete_prefix(prefix: str) -> dict:
    return {"request_delete_range": {"key": b64(prefix), "range_end": prefix_end(prefix)}}


def get(key: str) -> dict:
    return {"request_range": {"key": b64(key)}}


def addresses_from(pool_id: str, start: int, limit: int) -> dict:
    """Up to ``limit`` address keys of the pool from ``start`` on (keys only)."""
    return {
        "request_range": {
            "key": b64(address_key(pool_id, start)),
            "range_end": prefix_end(addresses_prefix(pool_id)),
            "limit": limit,
            "keys_only": True,
        }
    }
