"""A three-node swarm (one manager, two workers), each node with its own PF of 2 VFs.

The recipe under test: on every node a config-only network with the node's own
PF and its own ``--ip-range`` of one subnet (each node's IPAM hands out addresses
on its own), one ``--scope swarm --config-from`` network on the manager, and
services with ``--endpoint-mode dnsrr``. All PFs share one simulated switch, so
replicas on different nodes reach each other on the network's VLAN.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest
import swarmlib
from dockerlib import PLUGIN, wait_until
from swarmlib import Node

VLAN = 120
SUBNET = "10.92.0.0/24"
CONFIG = "swcfg3"
NETWORK = "swnet3"


def ip_range(node: Node) -> ipaddress.IPv4Network:
    """Node N hands out 10.92.0.(16N)-(16N+15): disjoint ranges of one subnet."""
    return ipaddress.ip_network(f"10.92.0.{16 * node.index}/28")


def remove_network(nodes: list[Node]) -> None:
    """Remove the swarm network, wait until every node dropped it, then the config-only ones."""
    manager = nodes[0]
    if manager.run_docker("network", "inspect", NETWORK).returncode == 0:
        manager.docker("network", "rm", NETWORK)
    for node in nodes:
        wait_until(
            lambda node=node: node.run_docker("network", "inspect", NETWORK).returncode != 0,
            60,
            f"{NETWORK} to go from {node.name}",
        )
        if node.run_docker("network", "inspect", CONFIG).returncode == 0:
            node.docker("network", "rm", CONFIG)


@pytest.fixture(scope="module")
def network(three_node_swarm: list[Node]) -> Iterator[str]:
    nodes = three_node_swarm
    for node in nodes:
        node.docker(
            "network",
            "create",
            "--config-only",
            "--ipam-driver",
            PLUGIN,
            "-o",
            f"pf_iface={node.sim.pf}",
            "-o",
            f"vlanid={VLAN}",
            "--subnet",
            SUBNET,
            "--ip-range",
            str(ip_range(node)),
            CONFIG,
        )
    nodes[0].docker(
        "network", "create", "-d", PLUGIN, "--scope", "swarm", "--config-from", CONFIG, NETWORK
    )
    yield NETWORK
    remove_network(nodes)


def remove_service(nodes: list[Node], name: str) -> None:
    """``docker service rm`` and wait until no node runs a task of it."""
    nodes[0].run_docker("service", "rm", name)
    wait_until(
        lambda: not any(swarmlib.running_by_node(nodes, name).values()), 60, f"{name} to stop"
    )


def assert_every_vf_free(nodes: list[Node]) -> None:
    for node in nodes:
        wait_until(
            lambda node=node: all(map(swarmlib.vf_is_free_and_restored, node.vfs_now().values())),
            30,
            f"every VF of {node.name} to be free and restored:\n{node.sim.show()}",
        )
        assert node.leases()["endpoints"] == 0, f"{node.name} still leases a VF"


def held_addresses(node: Node) -> int:
    """Addresses the node's IPAM holds beyond each of its networks' gateway."""
    leases = node.leases()
    return leases["addresses"] - leases["networks"]


def leased_vfs(node: Node) -> list[str]:
    """The VF netdevs of ``node`` that are in containers."""
    return [vf.netdev for vf in node.vfs_now().values() if not vf.in_host]


def test_replicas_on_every_node_get_their_nodes_vfs_and_reach_each_other(
    three_node_swarm: list[Node], network: str
):
    nodes = three_node_swarm
    swarmlib.create_service(nodes[0], "swweb", NETWORK, 3, "--replicas-max-per-node", "1")
    try:
        swarmlib.wait_for_running(nodes, "swweb", 3)
        placed = swarmlib.running_by_node(nodes, "swweb")
        assert all(len(names) == 1 for names in placed.values()), placed
        replicas = {}  # container -> (node, address)
        for node in nodes:
            container = placed[node.name][0]
            endpoint = node.endpoint(container, network)
            vf = [vf for vf in node.vfs_now().values() if vf.mac == endpoint["MacAddress"]]
            assert len(vf) == 1, f"{container} has no VF of {node.sim.pf}:\n{node.sim.show()}"
            assert (vf[0].vlan, vf[0].in_host) == (VLAN, False)
            address = ipaddress.ip_address(endpoint["IPAddress"])
            assert address in ip_range(node), f"{address} not from {node.name}'s range"
            replicas[container] = (node, str(address))

        addresses = {address for _, address in replicas.values()}
        for container, (node, _) in replicas.items():
            for peer, (_, address) in replicas.items():
                if peer != container:
                    assert node.pings(container, address), f"{container} -> {peer} ({address})"
            assert node.resolves(container, "swweb") == addresses, f"swweb from {container}"
            others = [name for name in replicas if name != container]
            for peer in others:
                assert node.pings(container, peer), f"{container} -> {peer} by name"
    finally:
        remove_service(nodes, "swweb")
    assert_every_vf_free(nodes)


def test_replicas_on_another_vlan_do_not_reach_across_nodes(
    three_node_swarm: list[Node], network: str
):
    """Node 2's replica on VLAN 121, given an address in VLAN 120's subnet, cannot reach node 1's.

    Only node 2 holds the config-only network of VLAN 121: a node needs one only
    where tasks on that network land.
    """
    nodes = three_node_swarm
    manager, other_node = nodes[0], nodes[1]
    other_node.docker(
        "network",
        "create",
        "--config-only",
        "--ipam-driver",
        PLUGIN,
        "-o",
        f"pf_iface={other_node.sim.pf}",
        "-o",
        f"vlanid={VLAN + 1}",
        "--subnet",
        "10.94.0.0/24",
        "swcfg3b",
    )
    manager.docker(
        "network", "create", "-d", PLUGIN, "--scope", "swarm", "--config-from", "swcfg3b", "swnet3b"
    )
    try:
        swarmlib.create_service(
            manager, "swhere", NETWORK, 1, "--constraint", f"node.hostname=={manager.name}"
        )
        swarmlib.create_service(
            *(manager, "swthere", "swnet3b", 1, "--cap-add", "NET_ADMIN"),
            *("--constraint", f"node.hostname=={other_node.name}"),
        )
        swarmlib.wait_for_running(nodes[:1], "swhere", 1)
        swarmlib.wait_for_running([other_node], "swthere", 1)
        (here,) = nodes[0].task_containers("swhere")
        (there,) = other_node.task_containers("swthere")
        vf = [vf for vf in other_node.vfs_now().values() if not vf.in_host]
        assert [v.vlan for v in vf] == [VLAN + 1], other_node.sim.show()
        target = nodes[0].endpoint(here, network)["IPAddress"]
        other_node.docker("exec", there, "ip", "addr", "add", "10.92.0.250/24", "dev", "eth0")
        assert not other_node.pings(there, target), "VLAN 121 reached VLAN 120 across nodes"
    finally:
        remove_service(nodes, "swhere")
        remove_service(nodes, "swthere")
        manager.run_docker("network", "rm", "swnet3b")
        wait_until(
            lambda: other_node.run_docker("network", "inspect", "swnet3b").returncode != 0,
            60,
            "swnet3b to go",
        )
        other_node.docker("network", "rm", "swcfg3b")
    assert_every_vf_free(nodes)


def test_scaling_past_the_clusters_vfs_refuses_the_extra_tasks_and_scaling_down_frees_them(
    three_node_swarm: list[Node], network: str
):
    nodes = three_node_swarm
    manager = nodes[0]
    swarmlib.create_service(manager, "swscale", NETWORK, 6)
    try:
        swarmlib.wait_for_running(nodes, "swscale", 6)
        assert all(len(leased_vfs(node)) == 2 for node in nodes)

        manager.docker("service", "scale", "--detach", "swscale=8")

        def refused() -> list[str]:
            return [t.error for t in swarmlib.tasks(manager, "swscale") if "no free VF" in t.error]

        wait_until(refused, 60, "tasks refused for want of a VF")
        errors = [t.error for t in swarmlib.tasks(manager, "swscale") if t.error]
        for error in errors:  # the only failure is the plugin's, on the node that ran out
            assert any(swarmlib.says_no_free_vf(error, node.sim.pf, 2) for node in nodes), error
        placed = swarmlib.running_by_node(nodes, "swscale")
        assert sorted(len(names) for names in placed.values()) == [2, 2, 2], placed
        for node in nodes:
            macs = {node.endpoint(c, network)["MacAddress"] for c in placed[node.name]}
            assert macs == {vf.mac for vf in node.vfs_now().values() if not vf.in_host}

        manager.docker("service", "scale", "--detach", "swscale=2")
        swarmlib.wait_for_running(nodes, "swscale", 2)
        placed = swarmlib.running_by_node(nodes, "swscale")
        for node in nodes:
            wait_until(
                lambda node=node: len(leased_vfs(node)) == len(placed[node.name]),
                30,
                f"{node.name} to lease a VF per running task only",
            )
            assert node.leases()["endpoints"] == len(placed[node.name])
            # Every refused attempt took an address and must have given it back: what is
            # held is the gateway (while the node has the network) and one per task.
            wait_until(
                lambda node=node: held_addresses(node) == len(placed[node.name]),
                30,
                f"{node.name} to hold an address per running task only: {node.leases()}",
            )
    finally:
        remove_service(nodes, "swscale")
    assert_every_vf_free(nodes)


def test_draining_a_node_moves_its_tasks_and_frees_its_vfs(
    three_node_swarm: list[Node], network: str
):
    nodes = three_node_swarm
    manager, drained = nodes[0], nodes[2]
    swarmlib.create_service(manager, "swdrain", NETWORK, 3, "--replicas-max-per-node", "2")
    try:
        swarmlib.wait_for_running(nodes, "swdrain", 3)
        wait_until(
            lambda: swarmlib.running_by_node(nodes, "swdrain")[drained.name],
            30,
            f"a task on {drained.name}",
        )
        manager.docker("node", "update", "--availability", "drain", drained.name)
        wait_until(
            lambda: (
                not swarmlib.running_by_node(nodes, "swdrain")[drained.name]
                and sum(map(len, swarmlib.running_by_node(nodes, "swdrain").values())) == 3
            ),
            90,
            "the drained node's tasks to move",
        )
        assert_every_vf_free([drained])
        placed = swarmlib.running_by_node(nodes, "swdrain")
        for node in nodes[:2]:
            assert len(leased_vfs(node)) == len(placed[node.name])
    finally:
        manager.docker("node", "update", "--availability", "active", drained.name)
        remove_service(nodes, "swdrain")
    assert_every_vf_free(nodes)


def test_removing_the_network_leaves_every_vf_free_and_nothing_leased(
    three_node_swarm: list[Node], network: str
):
    nodes = three_node_swarm
    swarmlib.create_service(nodes[0], "swlast", NETWORK, 3)
    swarmlib.wait_for_running(nodes, "swlast", 3)
    remove_service(nodes, "swlast")
    remove_network(nodes)
    assert_every_vf_free(nodes)
    for node in nodes:
        assert node.leases() == {"networks": 0, "endpoints": 0, "pools": 0, "addresses": 0}
        vfs = node.vfs_now().values()
        assert {vf.bridge for vf in vfs} == {f"s{swarmlib.FABRIC}b0"}, node.sim.show()
