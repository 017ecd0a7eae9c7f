"""Protocol methods to service calls: request fields in, reply fields out.

Each handler takes the (already schema-checked) request body and returns the
reply body. The shapes are Docker's (libnetwork docs/remote.md and docs/ipam.md);
the handlers turn them into the services' values (options, MACs, addresses) and
the services' results (a pool, EndpointCreated, JoinInfo) into replies.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from plugin.model.ipam import AddressSpace
from plugin.model.options import parse_endpoint_options, parse_network_options
from plugin.services.ipam import parse_address

if TYPE_CHECKING:
    from plugin.services.ipam import IpamService
    from plugin.services.networks import JoinInfo, NetworkService
    from plugin.state.etcd import EtcdEndpoints

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
        "IpamDriver.GetCapabilities": lambda body: {
            "RequiresMACAddress": ipam.needs_endpoint_mac,
            "RequiresRequestReplay": False,  # the store is durable: nothing to replay
        },
        "IpamDriver.GetDefaultAddressSpaces": lambda body: {
            "LocalDefaultAddressSpace": AddressSpace.LOCAL.value,
            "GlobalDefaultAddressSpace": AddressSpace.GLOBAL.value,
        },
        "IpamDriver.RequestPool": request_pool,
        "IpamDriver.ReleasePool": release_pool,
        "IpamDriver.RequestAddress": request_address,
        "IpamDriver.ReleaseAddress": release_address,
    }


def cluster_handlers(etcd: EtcdEndpoints) -> dict[str, Handler]:
    """The operator's route on the plugin socket (a managed plugin has no exec)."""
    from plugin.state.etcd import release_node

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
    networks: NetworkService, before_endpoint: Callable[[str], None] = _nothing_before
) -> dict[str, Handler]:
    """``before_endpoint(network_id)`` runs first in CreateEndpoint (HostRecovery enables VFs)."""

    def create_network(body: dict) -> dict:
        """{NetworkID, Options, IPv4Data, IPv6Data} -> {}"""
        networks.create_network(
            body["NetworkID"],
            parse_network_options(body.get("Options")),
            gateway=_gateway(body, "IPv4Data"),
            gateway6=_gateway(body, "IPv6Data"),
        )
        return {}

    def delete_network(body: dict) -> dict:
        """{NetworkID} -> {}"""
        networks.delete_network(body["NetworkID"])
        return {}

    def create_endpoint(body: dict) -> dict:
        """{NetworkID, EndpointID, Interface, Options} -> {Interface: {MacAddress}} or {}

        Docker takes back only what it did not give: no MacAddress when it sent one.
        """
        interface = body.get("Interface") or {}
        wanted = parse_endpoint_options(body.get("Options"))
        before_endpoint(body["NetworkID"])
        created = networks.create_endpoint(
            body["NetworkID"],
            body["EndpointID"],
            mac=interface.get("MacAddress") or None,
            address=interface.get("Address") or None,
            address6=interface.get("AddressIPv6") or None,
            wanted=wanted,
        )
        if interface.get("MacAddress"):
            return {}
        return {"Interface": {"MacAddress": created.mac}}

    def delete_endpoint(body: dict) -> dict:
        """{NetworkID, EndpointID} -> {}"""
        networks.delete_endpoint(body["EndpointID"])
        return {}

    def endpoint_info(body: dict) -> dict:
        """{NetworkID, EndpointID} -> {Value: {pf, vf, pci, netdev, vlan, mac, pf_link}}"""
        return {"Value": dataclasses.asdict(networks.endpoint_info(body["EndpointID"]))}

    def join(body: dict) -> dict:
        """{NetworkID, EndpointID, SandboxKey, Options} -> {InterfaceName, Gateway, ...}"""
        joined = networks.join(body["NetworkID"], body["EndpointID"], body.get("SandboxKey") or "")
        return _join_reply(joined)

    def nothing_to_do(body: dict) -> dict:
        return {}

    return {
        # A VF belongs to one host; the network it reaches spans hosts.
        "NetworkDriver.GetCapabilities": lambda body: {
            "Scope": "local",
            "ConnectivityScope": "global",
        },
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


def _gateway(body: dict, field: str) -> str | None:
    """The first pool's gateway as a plain IP (Docker sends it as CIDR)."""
    for index, entry in enumerate(body.get(field) or []):
        gateway = entry.get("Gateway") or ""
        if gateway:
            return str(parse_address(gateway, f"{field}[{index}].Gateway"))
    return None


def _join_reply(joined: JoinInfo) -> dict:
    """Docker moves SrcName into the container as eth<N>; it must not add its own gateway."""
    reply: dict = {
        "InterfaceName": {"SrcName": joined.netdev, "DstPrefix": "eth"},
        "DisableGatewayService": True,
        "StaticRoutes": [],
    }
    if joined.gateway:
        reply["Gateway"] = joined.gateway
    if joined.gateway6:
        reply["GatewayIPv6"] = joined.gateway6
    return reply
