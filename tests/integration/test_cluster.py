"""Cluster pools on real etcd, with several real plugin processes as the nodes.

Each node is ``python -m plugin serve`` with its own socket, state directory and
SRIOV_NODE_NAME, all pointed at etcd members that the tests start on free
loopback ports (tests/etcdlib.py). What is checked is what the issue promises:
one pool per cluster subnet, no address ever acknowledged twice (also across
kill -9 of a plugin or of an etcd member), clear errors when etcd is gone.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from etcd3gw.exceptions import ConnectionTimeoutError
from etcdlib import EtcdCluster, etcd_available, make_certificates
from runid import reserve_port
from support import REPO_ROOT, PluginClient, PluginProcess

from plugin.config import ClusterConfig, load_config
from plugin.services.ipam import IpamService
from plugin.state.etcd.client import EtcdEndpoints, etcd3gw_client, scan_prefix
from plugin.state.etcd.keys import ADDRS, POOLS
from plugin.state.etcd.transaction import ClusterStore

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(not etcd_available(), reason="etcd (Debian's etcd-server) is not installed"),
]

GATEWAY = {"RequestAddressType": "com.docker.network.gateway"}
MAC_OPTION = "com.docker.network.endpoint.macaddress"  # sent once RequiresMACAddress is true


@pytest.fixture(scope="module")
def etcd_one(tmp_path_factory):
    with EtcdCluster(tmp_path_factory.mktemp("etcd-one"), size=1) as cluster:
        yield cluster


@pytest.fixture
def etcd_three(tmp_path):
    with EtcdCluster(tmp_path / "etcd-three", size=3) as cluster:
        yield cluster


class Nodes:
    """Plugin processes named node-a, node-b, ...; all stopped at the end of the test."""

    def __init__(self, socket_dir: Path, state_root: Path):
        self._socket_dir = socket_dir
        self._state_root = state_root
        self.running: dict[str, PluginProcess] = {}

    def env(self, name: str, endpoints: str) -> dict:
        return {
            "SRIOV_SOCKET": str(self._socket_dir / f"{name}.sock"),
            "SRIOV_STATE_DIR": str(self._state_root / name),
            "SRIOV_CLUSTER_STORE": endpoints,
            "SRIOV_NODE_NAME": name,
            "SRIOV_LOG_LEVEL": "warning",
        }

    def start(self, name: str, endpoints: str) -> PluginProcess:
        process = PluginProcess(self.env(name, endpoints)).start()
        self.running[name] = process
        return process

    def close(self) -> None:
        for process in self.running.values():
            process.close()


@pytest.fixture
def nodes(socket_dir, tmp_path):
    group = Nodes(socket_dir, tmp_path / "state")
    yield group
    group.close()


def etcd_of(cluster: EtcdCluster) -> EtcdEndpoints:
    endpoints = tuple(cluster.endpoints.split(","))
    return EtcdEndpoints(ClusterConfig(endpoints=endpoints, node="test", tls_dir=Path("/")))


def held_in_etcd(cluster: EtcdCluster) -> dict[str, dict]:
    """Every address key in etcd: address -> its value (node, kind)."""
    held = {}
    for kv in scan_prefix(etcd_of(cluster), ADDRS):
        pool_id, _, hex_address = kv.key.removeprefix(ADDRS).rpartition("/")
        base = ipaddress.ip_address(pool_id.split("/")[1])  # cluster:SPACE/BASE/LEN...
        held[str(type(base)(int(hex_address, 16)))] = kv.value
    return held


def pools_in_etcd(cluster: EtcdCluster) -> list[dict]:
    return [kv.value for kv in scan_prefix(etcd_of(cluster), POOLS)]


def cluster_pool(client: PluginClient, subnet: str, subpool: str = "") -> str:
    body = {"AddressSpace": "local", "Pool": subnet, "SubPool": subpool}
    body["Options"] = {"cluster": "true"}
    return client.ok("IpamDriver.RequestPool", body)["PoolID"]


def address(client: PluginClient, pool_id: str, wanted: str = "", options=None) -> str:
    body = {"PoolID": pool_id, "Address": wanted, "Options": options}
    return client.ok("IpamDriver.RequestAddress", body)["Address"].split("/")[0]


def test_same_subnet_on_two_nodes_is_one_pool(etcd_one, nodes):
    a = nodes.start("node-a", etcd_one.endpoints).client
    b = nodes.start("node-b", etcd_one.endpoints).client
    pool_a = cluster_pool(a, "10.41.0.0/24")
    pool_b = cluster_pool(b, "10.41.0.0/24")
    assert pool_a == pool_b
    assert pool_a.startswith("cluster:")
    # the gateway is one reservation both networks share
    assert address(a, pool_a, options=GATEWAY) == address(b, pool_b, options=GATEWAY) == "10.41.0.1"
    got_a = [address(a, pool_a) for _ in range(5)]
    got_b = [address(b, pool_b) for _ in range(5)]
    assert len(set(got_a) | set(got_b)) == 10
    held = held_in_etcd(etcd_one)
    assert {held[x]["node"] for x in got_a} == {"node-a"}
    assert {held[x]["node"] for x in got_b} == {"node-b"}
    assert held["10.41.0.1"]["kind"] == "gateway"
    # an --aux-address (no Options) is shared like the gateway ...
    assert address(a, pool_a, "10.41.0.200") == address(b, pool_b, "10.41.0.200")
    assert held_in_etcd(etcd_one)["10.41.0.200"]["kind"] == "aux"
    # ... but a container's --ip (its MAC in Options) is not, nor may it take an aux address
    assert address(a, pool_a, "10.41.0.100", {MAC_OPTION: "02:00:00:00:00:0a"}) == "10.41.0.100"
    for taken in ("10.41.0.100", got_a[0], "10.41.0.200"):
        status, reply = b.call(
            "IpamDriver.RequestAddress",
            {"PoolID": pool_b, "Address": taken, "Options": {MAC_OPTION: "02:00:00:00:00:0b"}},
        )
        assert status == 409
        assert f"{taken} in 10.41.0.0/24 is already in use" in reply["Err"]
    status, reply = b.call(
        "IpamDriver.RequestAddress", {"PoolID": pool_b, "Address": got_a[0], "Options": None}
    )
    assert status == 409
    # node-a's network goes: the pool stays for node-b, gateway included
    for shared in ("10.41.0.1", "10.41.0.200"):
        a.ok("IpamDriver.ReleaseAddress", {"PoolID": pool_a, "Address": shared})
    a.ok("IpamDriver.ReleasePool", {"PoolID": pool_a})
    [pool] = pools_in_etcd(etcd_one)
    assert pool["holders"] == {"node-b": 1}
    assert {"10.41.0.1", "10.41.0.200"} <= set(held_in_etcd(etcd_one))
    address(b, pool_b)
    # the last holder on any node frees the pool and every address in it
    b.ok("IpamDriver.ReleasePool", {"PoolID": pool_b})
    assert pools_in_etcd(etcd_one) == []
    assert held_in_etcd(etcd_one) == {}
    again = cluster_pool(a, "10.41.0.0/24")
    assert again != pool_a  # a new pool: Docker's stale ids never reach it
    a.ok("IpamDriver.ReleasePool", {"PoolID": again})
    assert pools_in_etcd(etcd_one) == []


def test_cluster_pool_overlapping_a_pool_is_refused(etcd_one, nodes):
    a = nodes.start("node-a", etcd_one.endpoints).client
    b = nodes.start("node-b", etcd_one.endpoints).client
    local = a.ok("IpamDriver.RequestPool", {"AddressSpace": "local", "Pool": "10.42.0.0/24"})
    status, reply = a.call(
        "IpamDriver.RequestPool",
        {"AddressSpace": "local", "Pool": "10.42.0.0/16", "Options": {"cluster": "true"}},
    )
    assert (status, reply["Err"]) == (
        409,
        "10.42.0.0/16 overlaps pool 10.42.0.0/24 in address space local",
    )
    pool_id = cluster_pool(b, "10.43.0.0/24")
    status, reply = a.call(
        "IpamDriver.RequestPool",
        {"AddressSpace": "local", "Pool": "10.43.0.0/25", "Options": {"cluster": "true"}},
    )
    assert status == 409
    assert "overlaps pool 10.43.0.0/24" in reply["Err"]
    b.ok("IpamDriver.ReleasePool", {"PoolID": pool_id})
    a.ok("IpamDriver.ReleasePool", {"PoolID": local["PoolID"]})
    assert pools_in_etcd(etcd_one) == []


class Racer:
    """Threads that send RequestAddress to one node and keep what each request came to.

    Every request ends one of three ways: acknowledged (``acked``), refused with an
    error reply (``errors``), or ``unknown``: the connection broke before a reply, so
    the client cannot know whether the plugin committed the address.
    """

    def __init__(self, process: PluginProcess, pool_id: str):
        self.process = process
        self.pool_id = pool_id
        self.acked: list[str] = []
        self.errors: list[str] = []
        self.unknown = 0
        self._lock = threading.Lock()

    @property
    def node(self) -> str:
        return self.process.env["SRIOV_NODE_NAME"]

    @property
    def answered(self) -> int:
        return len(self.acked) + len(self.errors)

    def run(self, threads: int, each: int, stop_on_disconnect: bool = False) -> None:
        def worker() -> None:
            client = PluginClient(self.process.socket_path, timeout=30)
            try:
                for _ in range(each):
                    try:
                        status, reply = client.call(
                            "IpamDriver.RequestAddress",
                            {"PoolID": self.pool_id, "Address": "", "Options": None},
                        )
                    except OSError as exc:
                        with self._lock:
                            self.unknown += 1
                        if stop_on_disconnect:
                            return
                        raise AssertionError(f"node lost: {exc}") from None
                    with self._lock:
                        if status == 200:
                            self.acked.append(reply["Address"].split("/")[0])
                        else:
                            self.errors.append(reply.get("Err", str(reply)))
            finally:
                client.close()

        workers = [threading.Thread(target=worker) for _ in range(threads)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()


def race(racers: list[Racer], threads: int, each: int, during=None) -> None:
    runs = [threading.Thread(target=r.run, args=(threads, each, True)) for r in racers]
    for run in runs:
        run.start()
    try:
        if during is not None:
            during()
    finally:
        for run in runs:
            run.join()


def assert_no_duplicates(racers: list[Racer]) -> list[str]:
    acked = [x for r in racers for x in r.acked]
    twice = [x for x, n in Counter(acked).items() if n > 1]
    assert twice == [], f"acknowledged twice: {twice[:10]}"
    return acked


KILL_DEADLINE_S = 120.0


def assert_held_is_acked_or_unknown(held: dict[str, dict], racers: list[Racer]) -> set[str]:
    """No address leaked: each one etcd holds was acknowledged to its node's client, or is
    one of that node's unknown outcomes (at most one per request whose reply was lost).

    Returns the unknown ones.
    """
    unknown: set[str] = set()
    for racer in racers:
        mine = {address for address, value in held.items() if value["node"] == racer.node}
        assert set(racer.acked) <= mine, f"{racer.node}: acknowledged but not held"
        extra = mine - set(racer.acked)
        assert len(extra) <= racer.unknown, (
            f"{racer.node} holds {len(extra)} addresses no client was given, but only "
            f"{racer.unknown} requests ended without a reply: {sorted(extra)[:10]}"
        )
        unknown |= extra
    nodes = {racer.node for racer in racers}
    strays = {address: value for address, value in held.items() if value["node"] not in nodes}
    assert strays == {}, f"held for no racing node: {strays}"
    return unknown


def release_node(etcd: EtcdCluster, node: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SRIOV_")}
    result = subprocess.run(
        [sys.executable, "-m", "plugin", "cluster", "release-node", node],
        env={**env, "SRIOV_CLUSTER_STORE": etcd.endpoints, "PYTHONPATH": str(REPO_ROOT)},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_racing_nodes_never_share_an_address_across_plugin_and_member_kills(etcd_three, nodes):
    """Three nodes race on one pool; node-c is killed -9 mid-way, then an etcd member.

    After each race, every address etcd holds is one a client was told it got, or one
    of node-c's requests cut off by the kill (the client cannot know their outcome);
    ``release-node`` then clears node-c's share, and etcd holds exactly what nodes a
    and b acknowledged.
    """
    processes = [nodes.start(n, etcd_three.endpoints) for n in ("node-a", "node-b", "node-c")]
    pool_id = cluster_pool(processes[0].client, "10.44.0.0/20")
    for process in processes[1:]:
        assert cluster_pool(process.client, "10.44.0.0/20") == pool_id
    racers = [Racer(p, pool_id) for p in processes]

    def kill_node_c_mid_way() -> None:
        deadline = time.monotonic() + KILL_DEADLINE_S
        while len(racers[2].acked) < 150:
            assert racers[2].answered < 400, "node-c's racers finished before the kill"
            assert time.monotonic() < deadline, (
                f"node-c acknowledged only {len(racers[2].acked)} addresses "
                f"in {KILL_DEADLINE_S} s; errors: {racers[2].errors[:3]}"
            )
            threading.Event().wait(0.005)
        processes[2].kill9()

    race(racers, threads=4, each=100, during=kill_node_c_mid_way)
    assert_no_duplicates(racers)
    assert not [e for r in racers for e in r.errors]
    assert [r.unknown for r in racers[:2]] == [0, 0]
    assert len(racers[2].acked) < 400  # the kill did land mid-way
    assert 1 <= racers[2].unknown <= 4  # each of node-c's 4 threads lost at most one reply
    unknown_c = assert_held_is_acked_or_unknown(held_in_etcd(etcd_three), racers)

    # node-c comes back on its state dir; then the first endpoint's member dies
    processes[2].start()
    victim = etcd_three.members[0]
    before = [(len(r.acked), len(r.errors)) for r in racers]
    race(racers, threads=4, each=150, during=victim.kill9)
    acked = assert_no_duplicates(racers)
    # while the survivors elect a leader a request may fail, clearly and without effect;
    # every other request was acknowledged: none went unanswered
    unclear = [e for r in racers for e in r.errors if "etcd cluster store unreachable" not in e]
    assert unclear == []
    answered = sum(r.answered for r in racers) - sum(a + e for a, e in before)
    assert answered == 3 * 4 * 150
    assert all(len(r.acked) > a for r, (a, _) in zip(racers, before, strict=True))
    for racer in racers:  # and every node serves every request now
        for _ in range(20):
            racer.acked.append(address(racer.process.client, pool_id))
    acked = assert_no_duplicates(racers)
    held = held_in_etcd(etcd_three)
    # the refusals changed nothing: still only node-c's unknown outcomes beyond the acked
    assert assert_held_is_acked_or_unknown(held, racers) == unknown_c
    assert set(held) == set(acked) | unknown_c

    # node-c goes for good: release-node clears its share, unknown outcomes included
    processes[2].stop()  # a clean stop withdraws its presence at once
    released = release_node(etcd_three, "node-c")
    count = len(racers[2].acked) + len(unknown_c)
    assert released.startswith(f"node node-c: released {count} addresses;"), released
    held = held_in_etcd(etcd_three)
    assert set(held) == set(racers[0].acked) | set(racers[1].acked)
    etcd_three.restart(victim)
    etcd_three.wait_healthy([victim])


def test_all_members_down_fails_clearly_and_nothing_doubles_after(etcd_three, nodes):
    a = nodes.start("node-a", etcd_three.endpoints)
    b = nodes.start("node-b", etcd_three.endpoints)
    pool_id = cluster_pool(a.client, "10.45.0.0/24")
    assert cluster_pool(b.client, "10.45.0.0/24") == pool_id
    before = [address(a.client, pool_id), address(b.client, pool_id)]
    local = a.client.ok("IpamDriver.RequestPool", {"AddressSpace": "local", "Pool": "10.46.0.0/24"})
    # two of three gone: the last member answers but has no quorum, so nothing is handed out
    for member in etcd_three.members[1:]:
        member.kill9()
    status, reply = a.client.call(
        "IpamDriver.RequestAddress", {"PoolID": pool_id, "Address": "", "Options": None}
    )
    assert status == 500
    assert "etcd cluster store unreachable" in reply["Err"]
    etcd_three.members[0].kill9()
    status, reply = b.client.call(
        "IpamDriver.RequestAddress", {"PoolID": pool_id, "Address": "", "Options": None}
    )
    assert status == 500
    assert reply["Err"].startswith("etcd cluster store unreachable, no endpoint answered")
    for url in etcd_three.endpoints.split(","):
        assert url in reply["Err"]
    status, reply = a.client.call(
        "IpamDriver.RequestPool",
        {"AddressSpace": "local", "Pool": "10.47.0.0/24", "Options": {"cluster": "true"}},
    )
    assert status == 500
    # pools that were never in the cluster go on as before
    assert address(a.client, local["PoolID"]) == "10.46.0.1"

    for member in etcd_three.members:
        etcd_three.restart(member)
    etcd_three.wait_healthy()
    after = [address(c, pool_id) for c in (a.client, b.client) for _ in range(20)]
    assert len(set(before + after)) == len(before) + len(after)


def test_release_node_refuses_a_live_node_then_frees_what_it_held(etcd_one, nodes):
    a = nodes.start("node-a", etcd_one.endpoints)
    b = nodes.start("node-b", etcd_one.endpoints)
    pool_id = cluster_pool(a.client, "10.48.0.0/24")
    cluster_pool(b.client, "10.48.0.0/24")
    gateway = address(b.client, pool_id, options=GATEWAY)
    mine = [address(a.client, pool_id) for _ in range(3)]
    theirs = [address(b.client, pool_id) for _ in range(4)]

    status, reply = a.client.call("Cluster.ReleaseNode", {"Node": "node-b"})
    assert status == 409
    assert reply["Err"].startswith("node node-b still has its plugin running and connected to etcd")
    assert set(theirs) <= set(held_in_etcd(etcd_one))

    b.stop()  # a clean stop withdraws node-b's presence at once
    assert release_node(etcd_one, "node-b") == (
        "node node-b: released 4 addresses; dropped its share of 1 pools, "
        "0 of them freed (no holder left)"
    )
    held = held_in_etcd(etcd_one)
    assert not set(theirs) & set(held)
    assert set(mine) | {gateway} <= set(held)  # the shared gateway stays with the pool
    [pool] = pools_in_etcd(etcd_one)
    assert pool["holders"] == {"node-a": 1}
    # through the plugin socket (the managed plugin's way), nothing is left to do
    assert a.client.ok("Cluster.ReleaseNode", {"Node": "node-b"}) == {
        "Node": "node-b",
        "Addresses": 0,
        "PoolsDropped": 0,
        "PoolsFreed": 0,
    }
    a.client.ok("IpamDriver.ReleasePool", {"PoolID": pool_id})
    assert pools_in_etcd(etcd_one) == []
    assert held_in_etcd(etcd_one) == {}


class LosesCommitReplies:
    """An etcd3gw client whose writing transactions reach etcd but whose replies are lost."""

    def __init__(self, client):
        self._client = client
        self.base_url = client.base_url
        self.lost = 0

    def post(self, url: str, json: dict) -> dict:
        reply = self._client.post(url, json=json)
        if url.endswith("/kv/txn") and json["compare"]:
            self.lost += 1
            raise ConnectionTimeoutError("reply lost on purpose")
        return reply


def test_a_commit_whose_reply_was_lost_is_neither_repeated_nor_leaked(etcd_one, store):
    """The commit is sent again to the next endpoint; its own token shows it had landed."""
    url = etcd_one.endpoints
    config = ClusterConfig(endpoints=(url, url), node="node-x", tls_dir=Path("/"))
    lossy = LosesCommitReplies(etcd3gw_client(url, config, 5))
    made = iter([lossy, etcd3gw_client(url, config, 5)])

    def lossy_ipam() -> IpamService:
        etcd = EtcdEndpoints(config, make_client=lambda _url: next(made))
        return IpamService(store, load_config({}).default_pools, ClusterStore(etcd, "node-x"))

    ipam = lossy_ipam()
    pool_id = ipam.request_pool("local", "10.49.0.0/24", "", {"cluster": "true"}, False).pool_id
    assert lossy.lost == 1
    [pool] = pools_in_etcd(etcd_one)
    assert pool["holders"] == {"node-x": 1}  # not 2: the resent commit was recognised

    lossy.lost = 0
    made = iter([lossy, etcd3gw_client(url, config, 5)])
    ipam = lossy_ipam()
    assert ipam.request_address(pool_id, "", None) == "10.49.0.1/24"
    assert lossy.lost == 1
    assert set(held_in_etcd(etcd_one)) == {"10.49.0.1"}  # nothing leaked
    ipam.release_pool(pool_id)
    assert pools_in_etcd(etcd_one) == []


def test_https_endpoint_with_client_certificate(tmp_path, nodes):
    certificates = tmp_path / "pki"
    make_certificates(certificates)
    with EtcdCluster(tmp_path / "etcd-tls", size=1, tls=certificates) as etcd:
        assert etcd.endpoints.startswith("https://127.0.0.1:")
        env = {"SRIOV_CLUSTER_TLS_DIR": str(certificates)}
        a = PluginProcess({**nodes.env("node-a", etcd.endpoints), **env}).start()
        nodes.running["node-a"] = a
        pool_id = cluster_pool(a.client, "10.50.0.0/24")
        assert address(a.client, pool_id) == "10.50.0.1"
        a.client.ok("IpamDriver.ReleasePool", {"PoolID": pool_id})

        # a certificate from another CA is refused, and the request says so
        stranger = tmp_path / "other-pki"
        make_certificates(stranger)
        b = PluginProcess(
            {**nodes.env("node-b", etcd.endpoints), "SRIOV_CLUSTER_TLS_DIR": str(stranger)}
        ).start()
        nodes.running["node-b"] = b
        status, reply = b.client.call(
            "IpamDriver.RequestPool",
            {"AddressSpace": "local", "Pool": "10.50.0.0/24", "Options": {"cluster": "true"}},
        )
        assert status == 500
        assert etcd.endpoints in reply["Err"]
        assert "certificate" in reply["Err"].lower()


def test_ipv6_cluster_pool_on_two_nodes(etcd_one, nodes):
    a = nodes.start("node-a", etcd_one.endpoints).client
    b = nodes.start("node-b", etcd_one.endpoints).client
    body = {"AddressSpace": "local", "Pool": "fd00:51::/64", "Options": {"cluster": "true"}}
    pool_id = a.ok("IpamDriver.RequestPool", {**body, "V6": True})["PoolID"]
    assert b.ok("IpamDriver.RequestPool", {**body, "V6": True})["PoolID"] == pool_id
    assert address(a, pool_id, options=GATEWAY) == address(b, pool_id, options=GATEWAY)
    got = [address(c, pool_id) for c in (a, b, a, b)]
    assert got == ["fd00:51::2", "fd00:51::3", "fd00:51::4", "fd00:51::5"]
    assert {held["node"] for x, held in held_in_etcd(etcd_one).items() if x in got} == {
        "node-a",
        "node-b",
    }
    for client in (a, b):
        client.ok("IpamDriver.ReleasePool", {"PoolID": pool_id})
    assert pools_in_etcd(etcd_one) == []


def test_plugin_starts_and_serves_local_pools_while_etcd_is_down(nodes):
    """Docker disables a plugin that does not answer soon after start: etcd must not hold it."""
    nowhere = f"http://127.0.0.1:{reserve_port()}"
    plugin = nodes.start("node-a", nowhere)
    local = plugin.client.ok(
        "IpamDriver.RequestPool", {"AddressSpace": "local", "Pool": "10.54.0.0/24"}
    )
    assert address(plugin.client, local["PoolID"]) == "10.54.0.1"
    status, reply = plugin.client.call(
        "IpamDriver.RequestPool",
        {"AddressSpace": "local", "Pool": "10.55.0.0/24", "Options": {"cluster": "true"}},
    )
    assert status == 500
    assert f"no endpoint answered ({nowhere}: " in reply["Err"]
