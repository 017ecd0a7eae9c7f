"""A cluster store that no endpoint answers: clear errors, nothing guessed, local pools unharmed."""

import pytest
from runid import reserve_port

from plugin.config import ClusterConfig, load_config
from plugin.protocol.handlers import ipam_handlers
from plugin.services.ipam import IpamService
from plugin.state.etcd import ClusterStore, ClusterUnavailable, EtcdEndpoints


@pytest.fixture
def endpoints() -> tuple[str, ...]:
    return (f"http://127.0.0.1:{reserve_port()}", f"http://127.0.0.1:{reserve_port()}")


@pytest.fixture
def ipam(store, endpoints, tmp_path) -> IpamService:
    config = ClusterConfig(endpoints=endpoints, node="node-a", tls_dir=tmp_path)
    cluster = ClusterStore(EtcdEndpoints(config, timeout=2), "node-a")
    defaults = load_config({}).default_pools
    return IpamService(store, defaults, cluster)


def test_cluster_request_fails_naming_every_endpoint(ipam, endpoints):
    with pytest.raises(ClusterUnavailable) as raised:
        ipam.request_pool("local", "10.5.0.0/24", "", {"cluster": "true"}, False)
    message = raised.value.message
    # Docker prefixes the method: the message starts with what went wrong
    assert message.startswith("etcd cluster store unreachable, no endpoint answered (")
    for url in endpoints:
        assert url in message
    assert "nothing was allocated or released" in message
    assert raised.value.status == 500


def test_cluster_address_and_release_fail_instead_of_guessing(ipam):
    pool_id = "cluster:local/10.5.0.0/24#0badc0de"
    with pytest.raises(ClusterUnavailable):
        ipam.request_address(pool_id, "", None)
    with pytest.raises(ClusterUnavailable):
        ipam.release_address(pool_id, "10.5.0.2")
    with pytest.raises(ClusterUnavailable):
        ipam.release_pool(pool_id)


def test_local_pools_work_without_etcd(ipam):
    reply = ipam.request_pool("local", "10.6.0.0/24", "", None, False)
    assert ipam.request_address(reply.pool_id, "", None) == "10.6.0.1/24"


def test_with_a_cluster_store_docker_is_asked_for_each_endpoint_mac(ipam, store):
    """Then a container's --ip carries its MAC and an --aux-address does not."""
    assert ipam.needs_endpoint_mac is True
    assert IpamService(store, ()).needs_endpoint_mac is False
    capabilities = ipam_handlers(ipam)["IpamDriver.GetCapabilities"]({})
    assert capabilities == {"RequiresMACAddress": True, "RequiresRequestReplay": False}


@pytest.mark.parametrize(
    ("text", "short"),
    [
        (
            "HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded with url: "
            "/v3/kv/range (Caused by NewConnectionError(\"HTTPConnection(host='127.0.0.1', "
            'port=1): Failed to establish a new connection: [Errno 111] Connection refused"))',
            "[Errno 111] Connection refused",
        ),
        (
            "HTTPSConnectionPool(host='127.0.0.1', port=2): Max retries exceeded with url: "
            "/v3/kv/txn (Caused by SSLError(SSLCertVerificationError(1, '[SSL: "
            "CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer "
            "certificate (_ssl.c:1006)')))",
            "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local "
            "issuer certificate",
        ),
        ('{"error": "etcdserver: no leader", "code": 14}', "etcdserver: no leader"),
    ],
)
def test_unreachable_errors_say_the_cause_in_a_few_words(text, short):
    from etcd3gw.exceptions import ConnectionFailedError

    from plugin.state.etcd import error_cause

    assert error_cause(ConnectionFailedError(text)) == short
