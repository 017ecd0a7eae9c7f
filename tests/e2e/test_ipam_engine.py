"""The IPAM driver under a real Docker Engine: bridge networks whose addresses come from sriov."""

from __future__ import annotations

import ipaddress

import dockerlib
import pytest
import runid
from dockerlib import PLUGIN, Resources, container_ip, docker, docker_fails

# Tests that cross the protocol (pools, addresses, restart) run on every engine
# (every_engine); the plugin's own bookkeeping is checked on the system engine only.
pytestmark = pytest.mark.docker

# Bridge networks put their gateway on a host bridge: a /24 of the run's own 10.X.0.0/16,
# which no route of the host or of another run's networks overlaps.
SUBNET = runid.e2e_subnet(0)
GATEWAY = SUBNET.network_address + 1


def host(number: int) -> str:
    return str(SUBNET.network_address + number)


DEFAULT_BASE = runid.default_pool()  # the plugin fixture's SRIOV_DEFAULT_POOLS


def sriov_bridge(resources: Resources, *args: str) -> str:
    return resources.network("-d", "bridge", "--ipam-driver", PLUGIN, *args)


def static_network(resources: Resources) -> str:
    return sriov_bridge(resources, "--subnet", str(SUBNET), "--gateway", str(GATEWAY))


def run_on(resources: Resources, network: str, *args: str) -> str:
    return resources.run("--net", network, *args)


def addresses(containers: list[str], network: str) -> list[ipaddress.IPv4Address]:
    return [container_ip(c, network) for c in containers]


def assert_distinct_hosts(
    ips: list[ipaddress.IPv4Address], subnet: ipaddress.IPv4Network, gateway
) -> None:
    assert len(set(ips)) == len(ips), f"an address was handed out twice: {ips}"
    for ip in ips:
        assert ip in subnet, f"{ip} is outside {subnet}"
        assert ip not in (gateway, subnet.network_address, subnet.broadcast_address), ip


@pytest.mark.every_engine
def test_network_with_subnet_takes_pool_and_addresses_from_sriov(resources):
    net = static_network(resources)

    assert docker("network", "inspect", "-f", "{{.IPAM.Driver}}", net) == PLUGIN
    assert dockerlib.network_subnets(net) == [SUBNET]
    assert dockerlib.network_gateway(net) == GATEWAY
    containers = [run_on(resources, net) for _ in range(3)]
    ips = addresses(containers, net)
    assert_distinct_hosts(ips, SUBNET, GATEWAY)
    inside = docker("exec", containers[0], "ip", "-4", "-o", "addr", "show", "eth0")
    assert f"inet {ips[0]}/24" in inside


@pytest.mark.every_engine
def test_network_without_subnet_gets_a_default_pool(resources):
    first = sriov_bridge(resources)
    second = sriov_bridge(resources)

    [first_subnet] = dockerlib.network_subnets(first)
    [second_subnet] = dockerlib.network_subnets(second)
    for subnet in (first_subnet, second_subnet):
        assert subnet.subnet_of(DEFAULT_BASE) and subnet.prefixlen == 24, subnet
    assert not first_subnet.overlaps(second_subnet)
    containers = [run_on(resources, first) for _ in range(2)]
    assert_distinct_hosts(
        addresses(containers, first), first_subnet, dockerlib.network_gateway(first)
    )


@pytest.mark.every_engine
def test_requested_ip_is_honoured_and_a_taken_one_refused(resources):
    net = static_network(resources)
    wanted = host(50)

    holder = run_on(resources, net, "--ip", wanted)
    assert str(container_ip(holder, net)) == wanted
    error = resources.run_fails("--net", net, "--ip", wanted)
    assert f"{wanted} in {SUBNET} is already in use" in error
    others = [run_on(resources, net) for _ in range(3)]
    assert ipaddress.IPv4Address(wanted) not in addresses(others, net)


def test_removed_container_releases_its_address(resources):
    net = static_network(resources)
    first = run_on(resources, net, "--ip", host(60))
    docker("rm", "-f", first)

    second = run_on(resources, net, "--ip", host(60))
    assert str(container_ip(second, net)) == host(60)


def test_addresses_and_pools_survive_plugin_disable_enable(resources):
    net = static_network(resources)
    default_net = sriov_bridge(resources)
    before = [run_on(resources, net) for _ in range(2)]
    before.append(run_on(resources, net, "--ip", host(70)))
    held = addresses(before, net)

    dockerlib.configure_plugin({}, PLUGIN)

    error = resources.run_fails("--net", net, "--ip", str(held[0]))
    assert "already in use" in error
    after = [run_on(resources, net) for _ in range(3)]
    assert_distinct_hosts(held + addresses(after, net), SUBNET, GATEWAY)
    [default_subnet] = dockerlib.network_subnets(default_net)
    [new_default] = dockerlib.network_subnets(sriov_bridge(resources))
    assert not new_default.overlaps(default_subnet)


@pytest.mark.every_engine
def test_addresses_survive_a_dockerd_restart(resources):
    net = static_network(resources)
    survivors = [run_on(resources, net, "--restart", "always") for _ in range(2)]
    survivors.append(run_on(resources, net, "--restart", "always", "--ip", host(80)))

    dockerlib.restart_dockerd()
    dockerlib.wait_until(
        lambda: set(survivors) <= set(running_names(net)), 60, "containers to restart"
    )
    dockerlib.wait_until(lambda: dockerlib.plugin_enabled(PLUGIN), 30, "the plugin to re-enable")

    held = addresses(survivors, net)
    assert ipaddress.IPv4Address(host(80)) in held
    newcomers = [run_on(resources, net) for _ in range(3)]
    assert_distinct_hosts(held + addresses(newcomers, net), SUBNET, GATEWAY)


def running_names(network: str) -> list[str]:
    return docker("ps", "--filter", f"network={network}", "--format", "{{.Names}}").split()


def test_network_removal_releases_its_pool(resources):
    net = static_network(resources)
    half = str(next(SUBNET.subnets(new_prefix=25)))
    error = docker_fails(
        "network",
        "create",
        "-d",
        "bridge",
        "--ipam-driver",
        PLUGIN,
        "--subnet",
        half,
        dockerlib.unique_name("net"),
    )
    assert f"{half} overlaps pool {SUBNET}" in error

    docker("network", "rm", net)

    narrower = sriov_bridge(resources, "--subnet", half)
    assert dockerlib.network_subnets(narrower) == [ipaddress.IPv4Network(half)]
