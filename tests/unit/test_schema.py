"""The request schemas accept what Docker really sends and reject what would hurt us."""

import copy

import pytest
from jsonschema import Draft202012Validator

from plugin.errors import InvalidRequest
from plugin.protocol.schema import RequestValidator, inline_refs, load_schemas

NET = "5f3e2a9c" * 8
EP = "0d1c2b3a" * 8
SWARM_NET = "ykl8ftk7d7kqaewlrfbkmqjo9"

PROTOCOL_METHODS = {
    "Plugin.Activate",
    "NetworkDriver.GetCapabilities",
    "NetworkDriver.GwAllocCheck",
    "NetworkDriver.CreateNetwork",
    "NetworkDriver.DeleteNetwork",
    "NetworkDriver.CreateEndpoint",
    "NetworkDriver.EndpointOperInfo",
    "NetworkDriver.DeleteEndpoint",
    "NetworkDriver.Join",
    "NetworkDriver.Leave",
    "NetworkDriver.DiscoverNew",
    "NetworkDriver.DiscoverDelete",
    "NetworkDriver.ProgramExternalConnectivity",
    "NetworkDriver.RevokeExternalConnectivity",
    "NetworkDriver.AllocateNetwork",
    "NetworkDriver.FreeNetwork",
    "IpamDriver.GetCapabilities",
    "IpamDriver.GetDefaultAddressSpaces",
    "IpamDriver.RequestPool",
    "IpamDriver.ReleasePool",
    "IpamDriver.RequestAddress",
    "IpamDriver.ReleaseAddress",
    "Cluster.ReleaseNode",
}

IPV4_DATA = [
    {
        "AddressSpace": "LocalDefault",
        "Pool": "192.168.0.0/24",
        "Gateway": "192.168.0.1/24",
        "AuxAddresses": {"router": "192.168.0.2/24"},
    }
]

# Bodies as Docker sends them (shapes from libnetwork's remote driver and IPAM api).
DOCKER_SAMPLES = [
    ("Plugin.Activate", {}),
    ("NetworkDriver.GetCapabilities", {}),
    # Engine 28: the CreateNetwork options, before any pool is requested.
    (
        "NetworkDriver.GwAllocCheck",
        {
            "Options": {
                "com.docker.network.enable_ipv4": False,
                "com.docker.network.enable_ipv6": True,
                "com.docker.network.internal": False,
                "com.docker.network.generic": {"pf_iface": "enp1s0f0", "reserve_gateway": "off"},
            }
        },
    ),
    ("IpamDriver.GetCapabilities", {}),
    ("IpamDriver.GetDefaultAddressSpaces", {}),
    (
        "NetworkDriver.CreateNetwork",
        {
            "NetworkID": NET,
            "Options": {
                "com.docker.network.enable_ipv6": False,
                "com.docker.network.generic": {"pf_iface": "enp1s0f0", "vlanid": "100"},
            },
            "IPv4Data": IPV4_DATA,
            "IPv6Data": [],
        },
    ),
    (
        "NetworkDriver.CreateNetwork",
        {
            "NetworkID": NET,
            "Options": {
                "com.docker.network.enable_ipv6": True,
                "com.docker.network.internal": True,
                "com.docker.network.generic": None,
            },
            "IPv4Data": [{"AddressSpace": "", "Pool": "10.1.0.0/16", "Gateway": "10.1.0.1/16"}],
            "IPv6Data": [{"AddressSpace": "", "Pool": "fd00:1::/64", "Gateway": "fd00:1::1/64"}],
        },
    ),
    ("NetworkDriver.CreateNetwork", {"NetworkID": NET, "Options": None, "IPv4Data": None}),
    ("NetworkDriver.DeleteNetwork", {"NetworkID": NET}),
    (
        "NetworkDriver.CreateEndpoint",
        {
            "NetworkID": NET,
            "EndpointID": EP,
            "Interface": {"Address": "192.168.0.10/24", "AddressIPv6": "", "MacAddress": ""},
            "Options": {
                "com.docker.network.endpoint.exposedports": [],
                "com.docker.network.portmap": [],
                "vf": "3",
            },
        },
    ),
    (
        "NetworkDriver.CreateEndpoint",
        {
            "NetworkID": NET,
            "EndpointID": EP,
            "Interface": {
                "Address": "192.168.0.10/24",
                "AddressIPv6": "fd00:1::10/64",
                "MacAddress": "02:42:c0:a8:00:0a",
            },
            "Options": None,
        },
    ),
    ("NetworkDriver.CreateEndpoint", {"NetworkID": NET, "EndpointID": EP, "Interface": None}),
    ("NetworkDriver.EndpointOperInfo", {"NetworkID": NET, "EndpointID": EP}),
    ("NetworkDriver.DeleteEndpoint", {"NetworkID": NET, "EndpointID": EP}),
    (
        "NetworkDriver.Join",
        {
            "NetworkID": NET,
            "EndpointID": EP,
            "SandboxKey": "/var/run/docker/netns/3b1e6d0c5a7f",
            "Options": None,
        },
    ),
    (
        "NetworkDriver.Join",
        {
            "NetworkID": NET,
            "EndpointID": EP,
            "SandboxKey": "/var/run/docker/netns/3b1e6d0c5a7f",
            "Options": {"com.docker.network.endpoint.exposedports": []},
        },
    ),
    ("NetworkDriver.Leave", {"NetworkID": NET, "EndpointID": EP}),
    ("NetworkDriver.DiscoverNew", {"DiscoveryType": 1, "DiscoveryData": {"Address": "10.0.0.5"}}),
    ("NetworkDriver.DiscoverDelete", {"DiscoveryType": 1, "DiscoveryData": None}),
    (
        "NetworkDriver.ProgramExternalConnectivity",
        {"NetworkID": NET, "EndpointID": EP, "Options": None},
    ),
    (
        "NetworkDriver.ProgramExternalConnectivity",
        {
            "NetworkID": NET,
            "EndpointID": EP,
            "Options": {
                "com.docker.network.portmap": [],
                "com.docker.network.endpoint.exposedports": [],
            },
        },
    ),
    ("NetworkDriver.RevokeExternalConnectivity", {"NetworkID": NET, "EndpointID": EP}),
    (
        "NetworkDriver.AllocateNetwork",
        {"NetworkID": SWARM_NET, "Options": {"pf_iface": "enp1s0f0"}, "IPv4Data": IPV4_DATA},
    ),
    ("NetworkDriver.FreeNetwork", {"NetworkID": SWARM_NET}),
    (
        "IpamDriver.RequestPool",
        {"AddressSpace": "LocalDefault", "Pool": "", "SubPool": "", "Options": None, "V6": False},
    ),
    (
        "IpamDriver.RequestPool",
        {
            "AddressSpace": "LocalDefault",
            "Pool": "192.168.0.0/24",
            "SubPool": "192.168.0.128/25",
            "Options": {"size": "24"},
            "V6": False,
        },
    ),
    (
        "IpamDriver.RequestPool",
        {"AddressSpace": "LocalDefault", "Pool": "fd00:1::/64", "SubPool": "", "V6": True},
    ),
    ("IpamDriver.ReleasePool", {"PoolID": "LocalDefault/192.168.0.0/24"}),
    (
        "IpamDriver.RequestAddress",
        {
            "PoolID": "LocalDefault/192.168.0.0/24",
            "Address": "",
            "Options": {"RequestAddressType": "com.docker.network.gateway"},
        },
    ),
    (
        "IpamDriver.RequestAddress",
        {"PoolID": "LocalDefault/192.168.0.0/24", "Address": "192.168.0.2", "Options": None},
    ),
    ("IpamDriver.RequestAddress", {"PoolID": "LocalDefault/fd00:1::/64", "Address": "fd00:1::10"}),
    (
        "IpamDriver.ReleaseAddress",
        {"PoolID": "LocalDefault/192.168.0.0/24", "Address": "192.168.0.10"},
    ),
    # the operator's route, not Docker's: what `curl` or scripts send
    ("Cluster.ReleaseNode", {"Node": "node-2.example.com"}),
]

# Bodies Docker 26.1 sent (recorded with SRIOV_LOG_LEVEL=debug; 20.10 sends the same
# shapes), and the fields engines after 26 add (moby libnetwork netlabel: enable_ipv4,
# endpoint.name, endpoint.ifname, endpoint.sysctls).
DOCKER_SAMPLES += [
    (
        "NetworkDriver.CreateNetwork",
        {
            "NetworkID": NET,
            "Options": {
                "com.docker.network.enable_ipv6": False,
                "com.docker.network.generic": {"pf_iface": "enp1s0f0", "vlanid": "81"},
                "com.docker.network.internal": True,
            },
            "IPv4Data": [
                {
                    "AddressSpace": "local",
                    "AuxAddresses": {"a": "10.95.0.5/24"},
                    "Gateway": "10.95.0.1/24",
                    "Pool": "10.95.0.0/24",
                }
            ],
            "IPv6Data": [],
        },
    ),
    (
        "NetworkDriver.CreateEndpoint",
        {
            "NetworkID": NET,
            "EndpointID": EP,
            "Interface": {
                "Address": "10.95.0.128/24",
                "AddressIPv6": "",
                "MacAddress": "02:95:00:00:00:04",
            },
            "Options": {"com.docker.network.endpoint.macaddress": "ApUAAAAE", "vf": "3"},
        },
    ),
    (
        "NetworkDriver.CreateNetwork",
        {
            "NetworkID": NET,
            "Options": {
                "com.docker.network.enable_ipv4": True,
                "com.docker.network.enable_ipv6": True,
                "com.docker.network.generic": {"pf_iface": "enp1s0f0"},
            },
            "IPv4Data": IPV4_DATA,
            "IPv6Data": [
                {"AddressSpace": "local", "Pool": "fd00:1::/64", "Gateway": "fd00:1::1/64"}
            ],
        },
    ),
    (
        "NetworkDriver.CreateEndpoint",
        {
            "NetworkID": NET,
            "EndpointID": EP,
            "Interface": {"Address": "192.168.0.10/24", "AddressIPv6": "", "MacAddress": ""},
            "Options": {
                "com.docker.network.endpoint.exposedports": [],
                "com.docker.network.endpoint.ifname": "eth3",
                "com.docker.network.endpoint.name": "web",
                "com.docker.network.endpoint.sysctls": "net.ipv4.conf.IFNAME.forwarding=1",
                "com.docker.network.portmap": [],
            },
        },
    ),
]

# Each case: method, body, the exact message.
BAD_REQUESTS = [
    (
        "Cluster.ReleaseNode",
        {"Node": "a/b"},
        r"Node: 'a/b' does not match '^[^\\s/]+$'",
    ),
    ("Plugin.Activate", [], "body: [] is not of type 'object'"),
    (
        "NetworkDriver.GwAllocCheck",
        {"Options": {"com.docker.network.enable_ipv4": "no"}},
        "Options[\"com.docker.network.enable_ipv4\"]: 'no' is not of type 'boolean'",
    ),
    (
        "NetworkDriver.CreateNetwork",
        {},
        "NetworkID: required property is missing",
    ),
    (
        "NetworkDriver.CreateNetwork",
        {"NetworkID": NET[:12]},
        f"NetworkID: '{NET[:12]}' does not match '^([0-9a-f]{{64}}|[0-9a-z]{{25}})$'",
    ),
    (
        "NetworkDriver.CreateNetwork",
        {"NetworkID": NET.upper()},
        f"NetworkID: '{NET.upper()}' does not match '^([0-9a-f]{{64}}|[0-9a-z]{{25}})$'",
    ),
    (
        "NetworkDriver.CreateNetwork",
        {"NetworkID": NET, "Options": []},
        "Options: [] is not of type 'object', 'null'",
    ),
    (
        "NetworkDriver.CreateNetwork",
        {"NetworkID": NET, "Options": {"com.docker.network.generic": {"vlanid": [100]}}},
        'Options["com.docker.network.generic"].vlanid: '
        "[100] is not of type 'string', 'integer', 'boolean'",
    ),
    (
        "NetworkDriver.CreateNetwork",
        {"NetworkID": NET, "Options": {"com.docker.network.enable_ipv6": "yes"}},
        "Options[\"com.docker.network.enable_ipv6\"]: 'yes' is not of type 'boolean'",
    ),
    (
        "NetworkDriver.CreateNetwork",
        {"NetworkID": NET, "Options": {"com.docker.network.enable_ipv4": "no"}},
        "Options[\"com.docker.network.enable_ipv4\"]: 'no' is not of type 'boolean'",
    ),
    (
        "NetworkDriver.CreateNetwork",
        {"NetworkID": NET, "IPv4Data": [{"AddressSpace": "x"}]},
        "IPv4Data[0].Pool: required property is missing",
    ),
    (
        "NetworkDriver.CreateNetwork",
        {"NetworkID": NET, "IPv4Data": [{"AddressSpace": "", "Pool": "192.168.0.0"}]},
        "IPv4Data[0].Pool: '192.168.0.0' does not match '^[0-9A-Fa-f:.]{2,}/[0-9]{1,3}$'",
    ),
    (
        "NetworkDriver.CreateNetwork",
        {
            "NetworkID": NET,
            "IPv4Data": [{"AddressSpace": "", "Pool": "10.0.0.0/8", "AuxAddresses": {"a": 7}}],
        },
        "IPv4Data[0].AuxAddresses.a: 7 is not of type 'string'",
    ),
    (
        "NetworkDriver.CreateEndpoint",
        {"NetworkID": NET},
        "EndpointID: required property is missing",
    ),
    (
        "NetworkDriver.CreateEndpoint",
        {"NetworkID": NET, "EndpointID": EP, "Interface": {"MacAddress": "02:42:c0:a8:00"}},
        "Interface.MacAddress: '02:42:c0:a8:00' does not match "
        "'^(([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2})?$'",
    ),
    (
        "NetworkDriver.CreateEndpoint",
        {"NetworkID": NET, "EndpointID": EP, "Interface": "eth0"},
        "Interface: 'eth0' is not of type 'object', 'null'",
    ),
    (
        "NetworkDriver.Join",
        {"NetworkID": NET, "EndpointID": EP},
        "SandboxKey: required property is missing",
    ),
    (
        "NetworkDriver.Join",
        {"NetworkID": NET, "EndpointID": EP, "SandboxKey": ""},
        "SandboxKey: '' should be non-empty",
    ),
    (
        "NetworkDriver.Leave",
        {"NetworkID": NET, "EndpointID": 42},
        "EndpointID: 42 is not of type 'string'",
    ),
    (
        "NetworkDriver.DiscoverNew",
        {"DiscoveryType": "1"},
        "DiscoveryType: '1' is not of type 'integer'",
    ),
    (
        "NetworkDriver.FreeNetwork",
        {"NetworkID": "net1"},
        "NetworkID: 'net1' does not match '^([0-9a-f]{64}|[0-9a-z]{25})$'",
    ),
    (
        "IpamDriver.RequestPool",
        {"Pool": "10.0.0.0/8"},
        "AddressSpace: required property is missing",
    ),
    (
        "IpamDriver.RequestPool",
        {"AddressSpace": "LocalDefault", "V6": "false"},
        "V6: 'false' is not of type 'boolean'",
    ),
    (
        "IpamDriver.RequestPool",
        {"AddressSpace": "LocalDefault", "Options": {"size": 24}},
        "Options.size: 24 is not of type 'string'",
    ),
    (
        "IpamDriver.RequestAddress",
        {"PoolID": 5},
        "PoolID: 5 is not of type 'string'",
    ),
    (
        "IpamDriver.RequestAddress",
        {"PoolID": ""},
        "PoolID: '' should be non-empty",
    ),
    (
        "IpamDriver.RequestAddress",
        {"PoolID": "p", "Address": "10.0.0.1/24"},
        "Address: '10.0.0.1/24' does not match '^([0-9A-Fa-f:.]{2,})?$'",
    ),
    (
        "IpamDriver.ReleaseAddress",
        {"PoolID": "p", "Address": ""},
        "Address: '' is too short",
    ),
    (
        "IpamDriver.ReleasePool",
        {},
        "PoolID: required property is missing",
    ),
]


@pytest.fixture(scope="module")
def validator():
    return RequestValidator()


def test_every_protocol_method_has_a_schema():
    _, schemas = load_schemas()
    assert set(schemas) == PROTOCOL_METHODS


@pytest.mark.parametrize(("method", "body"), DOCKER_SAMPLES)
def test_accepts_what_docker_sends(validator, method, body):
    validator.validate(method, copy.deepcopy(body))


def test_samples_cover_every_method():
    assert {method for method, _ in DOCKER_SAMPLES} == PROTOCOL_METHODS


@pytest.mark.parametrize(("method", "body", "message"), BAD_REQUESTS)
def test_rejects_wrong_bodies_naming_method_path_and_problem(validator, method, body, message):
    with pytest.raises(InvalidRequest) as caught:
        validator.validate(method, body)
    assert caught.value.message == message
    assert caught.value.status == 400


@pytest.mark.parametrize("method", sorted(PROTOCOL_METHODS))
def test_every_method_rejects_a_non_object_body(validator, method):
    with pytest.raises(InvalidRequest, match=r"^body: "):
        validator.validate(method, "null")


@pytest.mark.parametrize(
    "method",
    sorted(m for m, body in DOCKER_SAMPLES if "NetworkID" in body and "Network" in m),
)
def test_every_network_method_requires_a_network_id(validator, method):
    body = next(copy.deepcopy(b) for m, b in DOCKER_SAMPLES if m == method)
    del body["NetworkID"]
    with pytest.raises(InvalidRequest, match=r"^NetworkID: required property is missing$"):
        validator.validate(method, body)


@pytest.mark.parametrize(
    "method", sorted({m for m, body in DOCKER_SAMPLES if "EndpointID" in body})
)
def test_every_endpoint_method_rejects_a_short_endpoint_id(validator, method):
    body = next(copy.deepcopy(b) for m, b in DOCKER_SAMPLES if m == method)
    body["EndpointID"] = EP[:-1]
    with pytest.raises(InvalidRequest, match=f"^EndpointID: '{EP[:-1]}' does not match"):
        validator.validate(method, body)


def test_unknown_fields_from_newer_docker_are_accepted(validator):
    validator.validate(
        "NetworkDriver.CreateEndpoint",
        {"NetworkID": NET, "EndpointID": EP, "Interface": {"IPAliases": []}, "Future": 1},
    )


def test_huge_values_are_cut_short_in_the_message(validator):
    with pytest.raises(InvalidRequest) as caught:
        validator.validate("IpamDriver.ReleasePool", {"PoolID": "p" * 100_000})
    assert caught.value.message.startswith("PoolID: 'ppp")
    assert caught.value.message.endswith("... (100002 chars) is too long")
    assert len(caught.value.message) < 200
    assert caught.value.message.count("p") < 120


def test_unknown_method_is_an_invalid_request(validator):
    with pytest.raises(InvalidRequest, match=r"^no request schema for NetworkDriver\.Bogus"):
        validator.validate("NetworkDriver.Bogus", {})


def test_every_schema_file_is_valid_against_its_metaschema():
    common, schemas = load_schemas()
    for schema in [common, *schemas.values()]:
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        Draft202012Validator.check_schema(schema)


def test_a_broken_reference_is_not_silently_ignored():
    """Every $ref in a method schema names a definition that common.json has."""
    common, schemas = load_schemas()

    def refs(node):
        if isinstance(node, dict):
            if "$ref" in node:
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for schema in [common, *schemas.values()]:
        for ref in refs(schema):
            name = ref.rsplit("/", 1)[-1]
            assert ref in (f"common.json#/$defs/{name}", f"#/$defs/{name}")
            assert name in common["$defs"]


def test_inline_refs_resolves_nested_shared_definitions():
    definitions = {
        "cidr": {"type": "string", "pattern": "/"},
        "entry": {"type": "object", "properties": {"Pool": {"$ref": "#/$defs/cidr"}}},
    }
    schema = {"type": "array", "items": {"$ref": "common.json#/$defs/entry", "minItems": 1}}
    assert inline_refs(schema, definitions) == {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"Pool": {"type": "string", "pattern": "/"}},
            "minItems": 1,
        },
    }


@pytest.mark.parametrize(
    "method",
    ["NetworkDriver.CreateNetwork", "NetworkDriver.CreateEndpoint", "NetworkDriver.Join"],
)
def test_swarm_network_ids_are_accepted_for_config_from_networks(validator, method):
    """A --config-from network in swarm reaches each node's driver under its swarm id."""
    body = {"NetworkID": SWARM_NET, "EndpointID": NET, "SandboxKey": "/var/run/docker/netns/x"}
    validator.validate(method, body)


def test_an_empty_body_gets_the_answer_of_its_methods_schema(validator):
    """The check of ``{}`` is decided once per method; it must say what the schema says."""
    common, schemas = load_schemas()
    for method, schema in schemas.items():
        expected = Draft202012Validator(inline_refs(schema, common["$defs"])).is_valid({})
        try:
            validator.validate(method, {})
            accepted = True
        except InvalidRequest:
            accepted = False
        assert accepted == expected, method
    validator.validate("NetworkDriver.GetCapabilities", {})
    with pytest.raises(InvalidRequest, match="AddressSpace: required property is missing"):
        validator.validate("IpamDriver.RequestPool", {})
