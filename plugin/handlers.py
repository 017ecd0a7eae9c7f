"""Protocol methods to service calls: request fields in, reply fields out.

Each handler takes the (already schema-checked) request body and returns the
reply body. The shapes are Docker's (libnetwork docs/remote.md and docs/ipam.md).
"""

from __future__ import annotations

from collections.abc import Callable

from plugin.ipam import IpamService

Handler = Callable[[dict], dict]


def plugin_handlers() -> dict[str, Handler]:
    return {
        "Plugin.Activate": lambda body: {"Implements": ["NetworkDriver", "IpamDriver"]},
    }


def ipam_handlers(ipam: IpamService) -> dict[str, Handler]:
    def request_pool(body: dict) -> dict:
        """{AddressSpace, Pool, SubPool, Options, V6} -> {PoolID, Pool, Data}"""
        reply = ipam.request_pool(
            space=body["AddressSpace"],
            pool=body.get("Pool") or "",
            subpool=body.get("SubPool") or "",
            options=body.get("Options"),
            v6=bool(body.get("V6")),
        )
        return {"PoolID": reply.pool_id, "Pool": reply.pool, "Data": {}}

    def release_pool(body: dict) -> dict:
        """{PoolID} -> {}"""
        ipam.release_pool(body["PoolID"])
        return {}

    def request_address(body: dict) -> dict:
        """{PoolID, Address, Options} -> {Address: CIDR, Data}"""
        address = ipam.request_address(
            body["PoolID"], body.get("Address") or "", body.get("Options")
        )
        return {"Address": address, "Data": {}}

    def release_address(body: dict) -> dict:
        """{PoolID, Address} -> {}"""
        ipam.release_address(body["PoolID"], body["Address"])
        return {}

    return {
        "IpamDriver.GetCapabilities": lambda body: ipam.capabilities(),
        "IpamDriver.GetDefaultAddressSpaces": lambda body: ipam.default_address_spaces(),
        "IpamDriver.RequestPool": request_pool,
        "IpamDriver.ReleasePool": release_pool,
        "IpamDriver.RequestAddress": request_address,
        "IpamDriver.ReleaseAddress": release_address,
    }
