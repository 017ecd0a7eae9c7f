"""Operating the managed plugin: status and metrics on its socket, and a host reboot.

The managed plugin's socket is /run/docker/plugins/<plugin id>/sriov.sock on the
host (docs/operating.md "Status"); the tests reach it exactly that way.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
from pathlib import Path

import dockerlib
import pytest
from dockerlib import PLUGIN, REPO, docker
from prometheus_client.parser import text_string_to_metric_families
from vflib import QUICK_STOP, container_mac, interface_of, sim_vfs, vf_with_mac

pytestmark = pytest.mark.docker


def plugin_socket(name: str = PLUGIN) -> Path:
    """The host path of a managed plugin's socket, from its id."""
    plugin_id = docker("plugin", "inspect", "-f", "{{.Id}}", name)
    return Path("/run/docker/plugins") / plugin_id / "sriov.sock"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path):
        super().__init__("localhost", timeout=30)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(self._path))


def scrape(name: str = PLUGIN) -> dict[tuple[str, tuple], float]:
    """GET /metrics on the plugin's socket, parsed by prometheus_client's text parser."""
    conn = _UnixConnection(plugin_socket(name))
    try:
        conn.request("GET", "/metrics")
        reply = conn.getresponse()
        text = reply.read().decode()
    finally:
        conn.close()
    assert reply.status == 200, text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def status_command(*args: str, name: str = PLUGIN) -> str:
    """``python -m plugin status --socket <the managed plugin's socket> ARGS``."""
    command = [sys.executable, "-m", "plugin", "status", "--socket", str(plugin_socket(name))]
    result = subprocess.run(
        [*command, *args], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def vfs_in_state(samples: dict, pf: str, state: str) -> float:
    return samples.get(("sriov_pf_vfs", (("pf", pf), ("state", state))), 0.0)


def sriov_network(resources, sim, vlan: int, subnet: str) -> str:
    return resources.network(
        "-d", PLUGIN, "--ipam-driver", PLUGIN, "-o", f"pf_iface={sim.pf}",
        "-o", f"vlanid={vlan}", "--subnet", subnet,
    )  # fmt: skip


def test_status_and_metrics_on_the_managed_plugin_follow_containers(resources, sim_nic):
    sim = sim_nic(vfs=3)
    net = sriov_network(resources, sim, 710, "10.93.1.0/24")
    net_id = docker("network", "inspect", "-f", "{{.Id}}", net)
    assert vfs_in_state(scrape(), sim.pf, "free") == 3

    first, second = resources.run("--net", net), resources.run("--net", net)

    samples = scrape()
    assert vfs_in_state(samples, sim.pf, "leased") == 2
    assert vfs_in_state(samples, sim.pf, "free") == 1
    created = (("method", "NetworkDriver.CreateEndpoint"), ("outcome", "ok"))
    assert samples[("sriov_requests_total", created)] >= 2
    status = json.loads(status_command("--json"))
    (pf,) = [pf for pf in status["pfs"] if pf["name"] == sim.pf]
    leased = {vf["index"]: vf["lease"] for vf in pf["vfs"] if vf["state"] == "leased"}
    for container in (first, second):
        vf = vf_with_mac(sim, container_mac(container, net))
        lease = leased[vf.index]
        assert lease["network"] == net_id and lease["programmed"]["vlan"] == 710
        assert lease["sandbox"].startswith("/var/run/docker/netns/"), lease
        assert next(v for v in pf["vfs"] if v["index"] == vf.index)["where"] == "elsewhere"
    (pool,) = [p for p in status["pools"] if p["cidr"] == "10.93.1.0/24"]
    assert (pool["in_use"], pool["total"]) == (3, 254)  # the gateway and two containers
    text = status_command()
    assert f"PF {sim.pf}" in text and "1 free, 2 leased, 0 unusable" in text

    docker("rm", "-f", first)

    samples = scrape()
    assert vfs_in_state(samples, sim.pf, "leased") == 1
    assert vfs_in_state(samples, sim.pf, "free") == 2
    (pool,) = [p for p in json.loads(status_command("--json"))["pools"] if p["id"] == pool["id"]]
    assert pool["in_use"] == 2


TRAFFIC = ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets")


def vf_traffic(samples: dict, pf: str) -> dict[str, dict[str, tuple[dict, float]]]:
    """{VF index: {"rx_bytes": (labels, value), ...}} of the sriov_vf_*_total series of ``pf``."""
    found: dict[str, dict[str, tuple[dict, float]]] = {}
    for (name, labels), value in samples.items():
        labels = dict(labels)
        counter = name.removeprefix("sriov_vf_").removesuffix("_total")
        if counter in TRAFFIC and name.endswith("_total") and labels.get("pf") == pf:
            found.setdefault(labels["vf"], {})[counter] = (labels, value)
    return found


def test_pings_between_two_containers_count_on_exactly_their_vfs_with_their_labels(
    resources, sim_nic
):
    sim = sim_nic(vfs=4)
    net = sriov_network(resources, sim, 730, "10.93.3.0/24")
    net_id = docker("network", "inspect", "-f", "{{.Id}}", net)
    first, second = resources.run("--net", net), resources.run("--net", net)
    vf_of = {c: str(vf_with_mac(sim, container_mac(c, net)).index) for c in (first, second)}
    endpoint_of = {
        c: docker("inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{net}").EndpointID}}}}',
                  c)
        for c in (first, second)
    }  # fmt: skip
    before = vf_traffic(scrape(), sim.pf)
    assert sorted(before) == ["0", "1", "2", "3"]  # the simulated NIC reports every VF

    size, count = 1000, 5
    ping = dockerlib.run_docker(
        "exec", first, "ping", "-c", str(count), "-s", str(size), "-W", "2",
        str(dockerlib.container_ip(second, net)), timeout=60,
    )  # fmt: skip
    assert ping.returncode == 0, ping.stdout + ping.stderr

    after = vf_traffic(scrape(), sim.pf)
    for container in (first, second):
        vf = vf_of[container]
        labels, _ = after[vf]["rx_bytes"]
        assert labels == {"pf": sim.pf, "vf": vf, "pciAddr": sim_vfs(sim)[int(vf)].pci,
                          "network": net_id, "endpoint": endpoint_of[container]}  # fmt: skip
        grown = {counter: after[vf][counter][1] - before[vf][counter][1] for counter in TRAFFIC}
        # Each side sent and received the 5 echoes (requests or replies) of 1,000 bytes.
        assert grown["tx_packets"] >= count and grown["rx_packets"] >= count, (container, grown)
        assert grown["tx_bytes"] >= count * size and grown["rx_bytes"] >= count * size, grown
    for vf in set(after) - set(vf_of.values()):
        assert "network" not in after[vf]["rx_bytes"][0]
        assert {c: after[vf][c][1] for c in TRAFFIC} == {c: before[vf][c][1] for c in TRAFFIC}

    status = json.loads(status_command("--json"))
    (pf,) = [pf for pf in status["pfs"] if pf["name"] == sim.pf]
    assert pf["reports_traffic"] is True
    leased = {str(vf["index"]): vf for vf in pf["vfs"] if vf["state"] == "leased"}
    assert set(leased) == set(vf_of.values())
    for vf in leased.values():
        assert vf["traffic"]["tx_packets"] >= count and vf["traffic"]["rx_bytes"] >= count * size
        assert vf["lease"]["network"] == net_id
    text = status_command()
    assert "VF traffic: reported by the PF" in text
    assert text.count("traffic:    rx ") == 2


def test_after_a_host_reboot_containers_run_on_existing_networks_with_no_user_action(
    resources, sim_nic
):
    sim = sim_nic(vfs=3)
    net = sriov_network(resources, sim, 720, "10.93.2.0/24")
    keeper = resources.run("--net", net, "--restart", "always", command=QUICK_STOP)
    resources.run("--net", net, command=QUICK_STOP)
    assert sum(not vf.in_host for vf in sim_vfs(sim).values()) == 2

    def reboot_the_nic() -> None:
        """What a reboot does to the NIC: its VFs are gone and sriov_numvfs is 0."""
        sim.destroy()
        sim.create(numvfs=0)

    # dockerd restarts the plugin with it, as at boot.
    dockerlib.restart_dockerd(while_stopped=reboot_the_nic)
    dockerlib.wait_until(lambda: dockerlib.plugin_enabled(PLUGIN), 60, "the plugin to be enabled")
    dockerlib.wait_until(
        lambda: docker("inspect", "-f", "{{.State.Running}}", keeper) == "true",
        60,
        "the --restart always container to run again",
    )

    assert "numvfs 3 " in sim.show()
    newcomer = resources.run("--net", net, command=QUICK_STOP)
    held = {vf_with_mac(sim, container_mac(c, net)).index for c in (keeper, newcomer)}
    assert len(held) == 2, held
    assert interface_of(newcomer).mtu == 1500
    third = resources.run("--net", net, command=QUICK_STOP)  # the old leases were freed
    assert vf_with_mac(sim, container_mac(third, net)).index not in held
