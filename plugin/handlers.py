"""Protocol methods to service calls: request fields in, reply fields out.

Each handler takes the (already schema-checked) request body and returns the
reply body. The shapes are Docker's (libnetwork docs/remote.md and docs/ipam.md).
"""

from __future__ import annotations

from collections.abc import Callable

from plugin.ipam import IpamService
from plugin.network import NetworkService

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


def cluster_handlers(etcd) -> dict[str, Handler]:
    """The operator's route on the plugin socket (a managed plugin has no exec)."""
    from plugin.cluster import release_node

    def release(body: dict) -> dict:
        """{Node} -> {Node, Addresses, PoolsDropped, PoolsFreed}"""
        done = release_node(etcd, body["Node"])
        return {
            "Node": done.node,
            "Addresses": done.addresses,
            "PoolsDropped": done.pools_dropped,
            "PoolsFreed": done.pools_freed,
        }

    return {"Cluster.ReleaseNode": release}


def _nothing_before(network_id: str) -> None:
    pass


def network_handlers(
    network: NetworkService, before_endpoint: Callable[[str], None] = _nothing_before
) -> dict[str, Handler]:
    """``before_endpoint(network_id)`` runs first in CreateEndpoint (HostRecovery enables VFs)."""

    def create_network(body: dict) -> dict:
        """{NetworkID, Options, IPv4Data, IPv6Data} -> {}"""
        network.create_network(
            body["NetworkID"],
            body.get("Options"),
            body.get("IPv4Data") or [],
            body.get("IPv6Data") or [],
        )
        return {}

    def delete_network(body: dict) -> dict:
        """{NetworkID} -> {}"""
        network.delete_network(body["NetworkID"])
        return {}

    def create_endpoint(body: dict) -> dict:
        """{NetworkID, EndpointID, Interface, Options} -> {Interface: {MacAddress}} or {}"""
        before_endpoint(body["NetworkID"])
        return network.create_endpoint(
            body["NetworkID"], body["EndpointID"], body.get("Interface"), body.get("Options")
        )

    def delete_endpoint(body: dict) -> dict:
        """{NetworkID, EndpointID} -> {}"""
        network.delete_endpoint(body["EndpointID"])
        return {}

    def endpoint_info(body: dict) -> dict:
        """{NetworkID, EndpointID} -> {Value: {pf, vf, pci, netdev, vlan, mac, pf_link}}"""
        return {"Value": network.endpoint_info(body["EndpointID"])}

    def join(body: dict) -> dict:
        """{NetworkID, EndpointID, SandboxKey, Options} -> {InterfaceName, Gateway, ...}"""
        return network.join(body["NetworkID"], body["EndpointID"], body.get("SandboxKey") or "")

    def nothing_to_do(body: dict) -> dict:
        return {}

    return {
        "NetworkDriver.GetCapabilities": lambda body: network.capabilities(),
        "NetworkDriver.CreateNetwork": create_network,
        "NetworkDriver.DeleteNetwork": delete_network,
        "NetworkDriver.CreateEndpoint": create_endpoint,
        "NetworkDriver.DeleteEndpoint": delete_endpoint,
        "NetworkDriver.EndpointOperInfo": endpoint_info,
        "NetworkDriver.Join": join,
        # Docker moves the VF netdev back to the host itself; the lease ends at DeleteEndpoint.
        "NetworkDriver.Leave": nothing_to_do,
        # Swarm's network allocation and discovery events need nothing from a local VF driver.
        "NetworkDriver.AllocateNetwork": lambda body: {"Options": {}},
        "NetworkDriver.FreeNetwork": nothing_to_do,
        "NetworkDriver.DiscoverNew": nothing_to_do,
        "NetworkDriver.DiscoverDelete": nothing_to_do,
        # A VF sits on the wire directly: there is no NAT or port mapping to program.
        "NetworkDriver.ProgramExternalConnectivity": nothing_to_do,
        "NetworkDriver.RevokeExternalConnectivity": nothing_to_do,
    }
