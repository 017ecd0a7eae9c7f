"""A single-node swarm: the quick check of the swarm recipe with the managed plugin.

The node's config-only network holds the PF, VLAN and addresses; the swarm network
takes them with ``--config-from``; a dnsrr service gets VFs of the node's PF.
"""

from __future__ import annotations

import ipaddress

import swarmlib
from dockerlib import PLUGIN, wait_until
from swarmlib import Node

SUBNET = "10.91.0.0/24"
IP_RANGE = "10.91.0.64/28"


def config_only(node: Node, name: str, *options: str) -> None:
    node.docker(
        "network",
        "create",
        "--config-only",
        "--ipam-driver",
        PLUGIN,
        "--subnet",
        SUBNET,
        "--ip-range",
        IP_RANGE,
        *options,
        name,
    )


def remove_network_everywhere(manager: Node, swarm_net: str, config_net: str) -> None:
    manager.docker("network", "rm", swarm_net)
    wait_until(
        lambda: manager.run_docker("network", "inspect", swarm_net).returncode != 0,
        60,
        f"{swarm_net} to go",
    )
    manager.docker("network", "rm", config_net)


def test_a_bad_option_is_a_task_error_naming_it(one_node_swarm: Node):
    node = one_node_swarm
    config_only(node, "swbadcfg", "-o", f"pf_iface={node.sim.pf}", "-o", "vlanid=5000")
    node.docker(
        "network",
        "create",
        "-d",
        PLUGIN,
        "--scope",
        "swarm",
        "--config-from",
        "swbadcfg",
        "swbadnet",
    )
    try:
        swarmlib.create_service(node, "swbad", "swbadnet", 1)

        def task_error() -> str:
            return " ".join(t.error for t in swarmlib.tasks(node, "swbad"))

        wait_until(lambda: "vlanid" in task_error(), 60, "the task to fail on vlanid")
        assert "vlanid 5000 out of range 0-4094" in task_error()
        assert node.task_containers("swbad") == []
    finally:
        node.run_docker("service", "rm", "swbad")
        remove_network_everywhere(node, "swbadnet", "swbadcfg")
    assert all(swarmlib.vf_is_free_and_restored(vf) for vf in node.vfs_now().values())
    assert node.leases()["networks"] == 0


def test_service_tasks_get_vfs_until_they_run_out(one_node_swarm: Node):
    node = one_node_swarm
    config_only(node, "swcfg1", "-o", f"pf_iface={node.sim.pf}", "-o", "vlanid=110")
    node.docker(
        "network", "create", "-d", PLUGIN, "--scope", "swarm", "--config-from", "swcfg1", "swnet1"
    )
    try:
        swarmlib.create_service(node, "swone", "swnet1", 2)
        swarmlib.wait_for_running([node], "swone", 2)
        first, second = node.task_containers("swone")
        vfs = node.vfs_now()
        for container in (first, second):
            endpoint = node.endpoint(container, "swnet1")
            leased = [vf for vf in vfs.values() if vf.mac == endpoint["MacAddress"]]
            assert len(leased) == 1 and leased[0].vlan == 110, (endpoint, vfs)
            assert not leased[0].in_host
            assert ipaddress.ip_address(endpoint["IPAddress"]) in ipaddress.ip_network(IP_RANGE)
        assert node.pings(first, node.endpoint(second, "swnet1")["IPAddress"])

        node.docker("service", "scale", "--detach", "swone=3")

        def refused() -> list[str]:
            return [t.error for t in swarmlib.tasks(node, "swone") if "no free VF" in t.error]

        wait_until(refused, 60, "a task refused for want of a VF")
        assert swarmlib.says_no_free_vf(refused()[0], node.sim.pf, 2), refused()
        assert sorted(node.task_containers("swone")) == sorted([first, second])

        node.docker("service", "rm", "swone")
        wait_until(lambda: not node.task_containers("swone"), 60, "the tasks to stop")
        wait_until(
            lambda: all(swarmlib.vf_is_free_and_restored(vf) for vf in node.vfs_now().values()),
            30,
            "every VF to be free and restored",
        )
    finally:
        node.run_docker("service", "rm", "swone")
        remove_network_everywhere(node, "swnet1", "swcfg1")
    assert node.leases() == {"networks": 0, "endpoints": 0, "pools": 0, "addresses": 0}
