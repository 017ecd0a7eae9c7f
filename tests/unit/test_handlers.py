"""The NetworkDriver handlers own Docker's wire format: request fields in, reply fields out."""

from __future__ import annotations

import pytest
from fake_nic import FakeNic
from sysfs_trees import build
from test_network import IPV4, ep_id, net_id, nic_tree, wire_options

from plugin.errors import InvalidRequest
from plugin.nic.sysfs import Sysfs
from plugin.protocol.handlers import network_handlers
from plugin.services.networks import NetworkService
from plugin.state.sqlite import Store

IPV6 = [{"AddressSpace": "local", "Pool": "fd00::/64", "Gateway": "fd00::1/64"}]


@pytest.fixture
def call(tmp_path):
    """call(method, body) -> reply, on handlers over a real service, store and sysfs tree."""
    store = Store(tmp_path / "state")
    macs = iter(["02:00:00:00:00:01", "02:00:00:00:00:02"]).__next__
    service = NetworkService(store, Sysfs(build(tmp_path / "sys", nic_tree())), FakeNic(), macs)
    handlers = network_handlers(service)
    return lambda method, body: handlers[f"NetworkDriver.{method}"](body)


def network(call, internal: bool = False, **flags) -> None:
    options = wire_options(pf_iface="pf0", **flags) | {"com.docker.network.internal": internal}
    body = {"NetworkID": net_id(1), "Options": options, "IPv4Data": IPV4, "IPv6Data": IPV6}
    assert call("CreateNetwork", body) == {}


def endpoint(n: int, **interface: str) -> dict:
    return {"NetworkID": net_id(1), "EndpointID": ep_id(n), "Interface": interface, "Options": {}}


def test_capabilities_are_local_scope_global_connectivity(call):
    assert call("GetCapabilities", {}) == {"Scope": "local", "ConnectivityScope": "global"}


def test_create_endpoint_answers_the_mac_only_when_docker_gave_none(call):
    network(call)
    made = {"Interface": {"MacAddress": "02:00:00:00:00:01"}}
    assert call("CreateEndpoint", endpoint(1, Address="10.1.0.2/24")) == made
    assert call("CreateEndpoint", endpoint(1, Address="10.1.0.2/24")) == made  # again
    given = endpoint(2, Address="10.1.0.3/24", MacAddress="02:42:0a:01:00:03")
    assert call("CreateEndpoint", given) == {}
    assert call("CreateEndpoint", given) == {}


def test_join_names_the_vf_netdev_and_the_gateways_as_plain_ips(call):
    network(call)
    call("CreateEndpoint", endpoint(1))
    body = {"NetworkID": net_id(1), "EndpointID": ep_id(1), "SandboxKey": "/netns/1"}
    assert call("Join", body) == {
        "InterfaceName": {"SrcName": "pf0v0", "DstPrefix": "eth"},
        "DisableGatewayService": True,
        "StaticRoutes": [],
        "Gateway": "10.1.0.1",
        "GatewayIPv6": "fd00::1",
    }


def test_join_on_an_internal_network_names_no_gateway(call):
    network(call, internal=True)
    call("CreateEndpoint", endpoint(1))
    reply = call("Join", {"NetworkID": net_id(1), "EndpointID": ep_id(1)})
    assert "Gateway" not in reply and "GatewayIPv6" not in reply


def test_endpoint_oper_info_shows_the_vf_under_value(call):
    network(call, vlanid=100)
    call("CreateEndpoint", endpoint(1))
    assert call("EndpointOperInfo", {"NetworkID": net_id(1), "EndpointID": ep_id(1)}) == {
        "Value": {
            "pf": "pf0",
            "vf": 0,
            "pci": "0000:3b:02.0",
            "netdev": "pf0v0",
            "vlan": 100,
            "mac": "02:00:00:00:00:01",
            "pf_link": "up",
        }
    }


def test_a_gateway_that_matches_the_schema_but_is_no_address_is_refused_naming_it(call):
    """The schema's CIDR pattern lets '1.2/24' through; it must be a 400, not a 500."""
    options = wire_options(pf_iface="pf0")
    bad = [{"AddressSpace": "local", "Pool": "10.1.0.0/24", "Gateway": "1.2/24"}]
    body = {"NetworkID": net_id(1), "Options": options, "IPv4Data": bad, "IPv6Data": []}
    with pytest.raises(InvalidRequest, match=r"IPv4Data\[0\]\.Gateway '1\.2/24' is not an IP"):
        call("CreateNetwork", body)
    with pytest.raises(InvalidRequest, match="is not an sriov network"):
        call("CreateEndpoint", endpoint(1))  # nothing was recorded
