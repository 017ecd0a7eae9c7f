"""One of two guests cabled back to back (tests/vm/test_wire.py): a swarm node on the igb PF.

Runs only in the wire stage (SRIOV_WIRE_ROLE=a or b; guest/conftest.py leaves
it out otherwise). Both nodes enable their VFs (mailbox proven), put the
swarm's control traffic untagged on the PF (192.168.77.1 and .2, MTU 9000), run dockerd
with the plugin and make their `--config-only` networks as README's swarm
recipe says. Node a is the manager: it makes the swarm network, one dnsrr
service on each node, pings across by address and by service name, then puts
a VLAN 200 container with an address in VLAN 100's subnet on the wire. What
each VF was given, as the PF reports it, and what the name resolved to go to
/sriov-shared for the host, which checks the frames recorded on the cable
against them.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
from engine import IMAGE, PLUGIN, container_mac, docker
from engine import engine as guest_engine
from igb import Pf, has_carrier, run, wait_for

ROLE = os.environ.get("SRIOV_WIRE_ROLE", "")
SHARED = Path("/sriov-shared")
PF_ADDRESS = {"a": "192.168.77.1", "b": "192.168.77.2"}
IP_RANGE = {"a": "10.80.0.16/28", "b": "10.80.0.32/28"}
SUBNET = "10.80.0.0/24"
VLAN, QOS, MTU = 100, 5, 9000
OTHER_VLAN, OTHER_QOS = 200, 2
INTRUDER_ADDRESS = "10.80.0.99"
# ping payload sizes: the host tells the pings apart by them
BY_ADDRESS, BY_NAME, JUMBO, INTRUDER = 1000, 1111, MTU - 28, 1222
PEER_TIMEOUT = 420.0


def shared_json(name: str, timeout: float = PEER_TIMEOUT) -> dict:
    """Wait for the other node's file in the shared directory, and read it."""
    path = SHARED / name
    wait_for(f"{path} from the other node", path.exists, timeout=timeout, interval=1.0)
    return json.loads(path.read_text())


def write_shared(name: str, value: dict) -> None:
    tmp = SHARED / f".{name}.tmp"
    tmp.write_text(json.dumps(value))
    tmp.rename(SHARED / name)


def leased_vf(pf: Pf) -> dict:
    """The one VF whose netdev left the host namespace: its index and what the PF reports."""
    leased = wait_for(
        "a VF leased to the node's task",
        lambda: [n for n in range(pf.numvfs) if pf.netdev(n) is None],
        timeout=PEER_TIMEOUT,
        interval=1.0,
    )
    assert len(leased) == 1, f"VFs {leased} left the host namespace, expected one"
    vf = pf.vf(leased[0])
    return {"vf": leased[0], "mac": vf.mac, "vlan": vf.vlan, "qos": vf.qos}


def task_container(service: str) -> str:
    try:
        return wait_for(
            f"the running task of {service} on this node",
            lambda: docker(
                "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={service}"
            ).stdout.strip(),
            timeout=PEER_TIMEOUT,
            interval=1.0,
        )
    except AssertionError as err:
        tasks = docker("service", "ps", "--no-trunc", service, check=False)
        raise AssertionError(f"{err}\n{tasks.stdout}{tasks.stderr}") from None


def resolved(name: str, nslookup: str) -> list[str]:
    """The IPv4 addresses in busybox nslookup's answer for ``name``, in its order."""
    answer = nslookup.split(f"Name:\t{name}", 1)
    lines = answer[1].splitlines() if len(answer) == 2 else []
    return [
        line.split()[-1]
        for line in lines
        if line.startswith("Address") and ":" not in line.split()[-1]
    ]


def container_address(container: str) -> str:
    out = docker("exec", container, "ip", "-o", "-4", "addr", "show", "eth0").stdout
    return out.split()[3].split("/")[0]


@pytest.fixture(scope="module")
def node(pf: Pf):
    """The VFs enabled (mailbox proven), the PF addressed, dockerd up, the config-only network."""
    # A network's MTU may not exceed its PF's (the plugin refuses it): jumbo frames need the
    # PF at 9000 first. igb resets the PF for it; the VFs are enabled after.
    run("ip", "link", "set", pf.name, "mtu", str(MTU))
    wait_for(f"carrier on {pf.name}", lambda: has_carrier(pf.name), timeout=60)
    pf.set_numvfs(pf.totalvfs)
    run("ip", "addr", "add", f"{PF_ADDRESS[ROLE]}/24", "dev", pf.name)
    # Node b starts its plugin after node a has: one at a time they start within dockerd's
    # deadline, together on a busy machine they did not.
    with guest_engine(lambda: ROLE == "b" and shared_json("a-enabled.json")):
        if ROLE == "a":
            write_shared("a-enabled.json", {})
        docker(
            "network", "create", "--config-only", "--ipam-driver", PLUGIN,
            "-o", f"pf_iface={pf.name}", "-o", f"vlanid={VLAN}", "-o", f"vlan_qos={QOS}",
            "-o", f"mtu={MTU}", "--subnet", SUBNET, "--ip-range", IP_RANGE[ROLE], "vfcfg",
        )  # fmt: skip
        yield pf


@pytest.mark.skipif(ROLE != "b", reason="node b only")
def test_node_b_joins_serves_its_task_and_reports_its_vf(node: Pf):
    manager = shared_json("swarm.json")
    docker("swarm", "join", "--token", manager["token"], "--advertise-addr", PF_ADDRESS["b"],
           f"{PF_ADDRESS['a']}:2377")  # fmt: skip
    write_shared("b-joined.json", {"node": docker("info", "-f", "{{.Swarm.NodeID}}").stdout})
    container = task_container("b")
    write_shared(
        "b.json",
        {"address": container_address(container), **leased_vf(node),
         "container_mac": container_mac(
             docker("exec", container, "ip", "-o", "link", "show", "eth0").stdout)},
    )  # fmt: skip
    shared_json("done.json")
    docker("swarm", "leave", "--force")


@pytest.mark.skipif(ROLE != "a", reason="node a only")
def test_node_a_runs_the_swarm_and_pings_across(node: Pf):
    pf = node
    docker("swarm", "init", "--advertise-addr", PF_ADDRESS["a"],
           "--listen-addr", f"{PF_ADDRESS['a']}:2377")  # fmt: skip
    write_shared(
        "swarm.json", {"token": docker("swarm", "join-token", "-q", "worker").stdout.strip()}
    )
    shared_json("b-joined.json")
    docker("network", "create", "-d", PLUGIN, "--scope", "swarm", "--config-from", "vfcfg", "vfnet")
    for service in ("a", "b"):
        docker(
            "service", "create", "--detach", "--name", service, "--endpoint-mode", "dnsrr",
            "--network", "vfnet", "--constraint", f"node.hostname==sriov-{service}",
            IMAGE, "sleep", "3600",
        )  # fmt: skip
    container = task_container("a")
    mine = {
        "address": container_address(container),
        **leased_vf(pf),
        "container_mac": container_mac(
            docker("exec", container, "ip", "-o", "link", "show", "eth0").stdout
        ),
    }
    assert (mine["vlan"], mine["qos"], mine["container_mac"]) == (VLAN, QOS, mine["mac"])
    peer = shared_json("b.json")
    assert (peer["vlan"], peer["qos"], peer["container_mac"]) == (VLAN, QOS, peer["mac"])

    def ping(target: str, size: int, check: bool = True):
        started = time.monotonic()
        proc = docker("exec", container, "ping", "-c", "3", "-W", "5", "-s", str(size), target,
                      check=check)  # fmt: skip
        print(f"ping -s {size} {target}: {time.monotonic() - started:.1f} s\n{proc.stdout}")
        return proc

    ping(peer["address"], BY_ADDRESS)
    # b's task by its service name, through Docker's embedded DNS (127.0.0.11 in the task's
    # /etc/resolv.conf): what it answered, and the address ping resolved the name to; the
    # host checks both against b's task and the frames of this ping on the cable.
    lookup = docker("exec", container, "nslookup", "b", check=False)
    by_name = ping("b", BY_NAME, check=False)
    pinged = re.search(r"^PING b \(([0-9.]+)\)", by_name.stdout, re.MULTILINE)
    ping(peer["address"], JUMBO)

    docker(
        "network", "create", "-d", PLUGIN, "--ipam-driver", PLUGIN, "-o", f"pf_iface={pf.name}",
        "-o", f"vlanid={OTHER_VLAN}", "-o", f"vlan_qos={OTHER_QOS}", "--subnet", "10.81.0.0/24",
        "v200",
    )  # fmt: skip
    docker("run", "-d", "--name", "intruder", "--cap-add", "NET_ADMIN", "--network", "v200",
           IMAGE, "sleep", "600")  # fmt: skip
    docker("exec", "intruder", "ip", "addr", "add", f"{INTRUDER_ADDRESS}/24", "dev", "eth0")
    intruder_mac = container_mac(
        docker("exec", "intruder", "ip", "-o", "link", "show", "eth0").stdout
    )
    refused = docker("exec", "intruder", "ping", "-c", "3", "-W", "2", "-s", str(INTRUDER),
                     peer["address"], check=False)  # fmt: skip
    assert refused.returncode != 0, f"VLAN 200 reached VLAN 100:\n{refused.stdout}"
    write_shared(
        "a.json",
        {**mine, "peer": peer, "intruder": {"mac": intruder_mac, "address": INTRUDER_ADDRESS},
         "by_name": {"resolved": resolved("b", lookup.stdout),
                     "nslookup": lookup.stdout + lookup.stderr,
                     "pinged": pinged and pinged.group(1),
                     "ping": by_name.stdout + by_name.stderr},
         "sizes": {"by_address": BY_ADDRESS, "by_name": BY_NAME, "jumbo": JUMBO,
                   "intruder": INTRUDER},
         "vlan": VLAN, "qos": QOS, "other_vlan": OTHER_VLAN, "other_qos": OTHER_QOS},
    )  # fmt: skip
    docker("rm", "-f", "intruder")
    docker("network", "rm", "v200")
    docker("service", "rm", "a", "b")
    # The netdev is back in the host namespace before DeleteEndpoint clears the admin MAC.
    wait_for("VF of a's task back on the host", lambda: pf.netdev(mine["vf"]), timeout=120)
    wait_for(
        f"VF {mine['vf']}'s admin MAC cleared",
        lambda: pf.vf(mine["vf"]).mac == "00:00:00:00:00:00",
        timeout=120,
    )
    write_shared("done.json", {})
