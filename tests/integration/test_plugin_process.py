"""The real ``python -m plugin serve`` on a unix socket, spoken to as Docker speaks.

No root needed: a temporary socket and state directory are enough for the
plugin service and the IPAM driver.
"""

import ipaddress
import itertools
import os
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from runid import reserve_port
from support import PluginClient, PluginProcess

GATEWAY = {"RequestAddressType": "com.docker.network.gateway"}


def request_pool(client: PluginClient, cidr: str = "") -> dict:
    return client.ok(
        "IpamDriver.RequestPool",
        {"AddressSpace": "local", "Pool": cidr, "SubPool": "", "Options": None, "V6": False},
    )


def request_address(client: PluginClient, pool_id: str, address: str = "") -> tuple[int, dict]:
    return client.call(
        "IpamDriver.RequestAddress", {"PoolID": pool_id, "Address": address, "Options": None}
    )


def test_answers_docker_handshake_with_empty_bodies(plugin):
    """How fast it answers after start is measured by scripts/bench_startup.py, not here."""
    client = plugin.client
    assert client.ok("Plugin.Activate") == {"Implements": ["NetworkDriver", "IpamDriver"]}
    assert client.ok("IpamDriver.GetCapabilities")["RequiresRequestReplay"] is False
    assert client.ok("IpamDriver.GetDefaultAddressSpaces") == {
        "LocalDefaultAddressSpace": "local",
        "GlobalDefaultAddressSpace": "global",
    }
    status, reply = client.call("IpamDriver.RequestPool", raw=b"{not json")
    assert status == 400
    assert "not JSON" in reply["Err"]
    status, reply = client.call("Nope.Nothing")
    assert status == 404
    assert "Err" in reply


def test_logs_one_line_per_request(plugin):
    pool_id = request_pool(plugin.client, "10.7.0.0/24")["PoolID"]
    request_address(plugin.client, pool_id)
    deadline = time.monotonic() + 5
    while True:  # the line is written once the reply has gone out, so it may come after it
        lines = [line for line in plugin.log().splitlines() if "IpamDriver.RequestAddress" in line]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert len(lines) == 1
    assert "-> 200 addr=10.7.0.1/24" in lines[0]


def allocate_until_stopped(socket_path, pool_id: str, acked: list[str], reached: threading.Event):
    """Request addresses until the connection dies; record each address answered with 200."""
    client = PluginClient(socket_path, timeout=10)
    try:
        while True:
            status, reply = request_address(client, pool_id)
            if status != 200:
                return
            acked.append(reply["Address"])
            if len(acked) == 300:
                reached.set()
    except OSError:
        return
    finally:
        reached.set()
        client.close()


def test_kill9_mid_run_loses_no_acknowledged_address_and_hands_none_out_twice(plugin_env):
    pool_size = 1022  # usable addresses of a /22
    first = PluginProcess(plugin_env).start()
    pool_id = request_pool(first.client, "10.20.0.0/22")["PoolID"]
    acked: list[str] = []
    reached = threading.Event()
    worker = threading.Thread(
        target=allocate_until_stopped, args=(first.socket_path, pool_id, acked, reached)
    )
    worker.start()
    reached.wait(timeout=60)
    first.kill9()
    first.close()
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert 300 <= len(acked) < pool_size, "the kill did not land in the middle of the run"

    with PluginProcess(plugin_env) as second:
        client = second.client
        for address in acked:
            status, reply = request_address(client, pool_id, address.split("/")[0])
            assert status == 409, f"{address} was acknowledged before the kill but is free now"
            assert "already in use" in reply["Err"]
        after: list[str] = []
        while True:
            status, reply = request_address(client, pool_id)
            if status != 200:
                break
            after.append(reply["Address"])
        assert status == 409
        assert "no free address in 10.20.0.0/22" in reply["Err"]
    assert len(set(after)) == len(after)
    assert not set(after) & set(acked)
    # The request in flight at the kill may have committed without its answer arriving.
    assert len(acked) + len(after) in (pool_size, pool_size - 1)


def test_concurrent_requests_on_one_pool_never_share_an_address(plugin):
    threads, per_thread = 16, 50
    pool_id = request_pool(plugin.client, "10.30.0.0/22")["PoolID"]

    def allocate(_: int) -> list[str]:
        client = PluginClient(plugin.socket_path)
        try:
            return [client.ok("IpamDriver.RequestAddress", {"PoolID": pool_id})["Address"]
                    for _ in range(per_thread)]  # fmt: skip
        finally:
            client.close()

    with ThreadPoolExecutor(threads) as pool:
        results = [a for batch in pool.map(allocate, range(threads)) for a in batch]
    assert len(results) == threads * per_thread
    assert len(set(results)) == threads * per_thread
    network = ipaddress.ip_network("10.30.0.0/22")
    assert all(ipaddress.ip_interface(a).ip in network for a in results)


@pytest.fixture
def small_defaults(plugin_env):
    return {**plugin_env, "SRIOV_DEFAULT_POOLS": "10.40.0.0/16:24"}


def test_concurrent_default_pools_do_not_overlap(small_defaults):
    threads, per_thread = 8, 8
    with PluginProcess(small_defaults) as plugin:

        def request_pools(_: int) -> list[str]:
            client = PluginClient(plugin.socket_path)
            try:
                return [request_pool(client)["Pool"] for _ in range(per_thread)]
            finally:
                client.close()

        with ThreadPoolExecutor(threads) as pool:
            pools = [p for batch in pool.map(request_pools, range(threads)) for p in batch]
    networks = sorted(ipaddress.ip_network(p) for p in pools)
    assert len(networks) == threads * per_thread
    base = ipaddress.ip_network("10.40.0.0/16")
    assert all(n.prefixlen == 24 and n.subnet_of(base) for n in networks)
    assert not any(a.overlaps(b) for a, b in itertools.pairwise(networks))


def test_state_survives_a_clean_restart(plugin_env):
    with PluginProcess(plugin_env) as first:
        pool_id = request_pool(first.client, "10.50.0.0/24")["PoolID"]
        gateway = first.client.ok(
            "IpamDriver.RequestAddress", {"PoolID": pool_id, "Address": "", "Options": GATEWAY}
        )
        assert gateway["Address"] == "10.50.0.1/24"
    with PluginProcess(plugin_env) as second:
        status, _ = request_address(second.client, pool_id, "10.50.0.1")
        assert status == 409
        assert request_address(second.client, pool_id)[1]["Address"] == "10.50.0.2/24"


def test_bad_configuration_fails_fast_with_the_reason(plugin_env):
    process = PluginProcess({**plugin_env, "SRIOV_DEFAULT_POOLS": "10.0.0.0/8"})
    with pytest.raises(RuntimeError, match="exited with 2") as raised:
        process.start()
    process.close()
    assert "SRIOV_DEFAULT_POOLS='10.0.0.0/8' is not allowed" in str(raised.value)


def activates_within(socket_path: str, seconds: float) -> bool:
    """Whether the plugin on ``socket_path`` answers Plugin.Activate within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        client = PluginClient(socket_path)
        try:
            client.ok("Plugin.Activate")
            return True
        except OSError:
            time.sleep(0.05)
        finally:
            client.close()
    return False


def test_request_log_goes_to_stdout_and_sigterm_exits_cleanly(plugin_env):
    """Docker files a plugin's stderr lines as errors: info lines belong on stdout."""
    env = {**os.environ, **plugin_env, "PYTHONPATH": str(Path(__file__).parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "plugin", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        answered = activates_within(plugin_env["SRIOV_SOCKET"], seconds=5)
    finally:
        proc.terminate()
    stdout, stderr = proc.communicate(timeout=10)
    assert answered, f"no answer to Plugin.Activate within 5 s:\n{stdout}{stderr}"
    assert proc.returncode == 0
    assert "Plugin.Activate -> 200" in stdout
    assert stderr == ""


def fill(path: Path) -> None:
    """Write zeros to ``path`` until its file system has no space left."""
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
        try:  # the last blocks, in smaller writes
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass


def test_a_full_state_disk_is_a_500_naming_the_store_and_changes_nothing(tmp_path, socket_dir):
    """The state directory on a 1 MB tmpfs: fill it, then allocate until the store refuses."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "sriov-full", str(disk)], check=True)
    try:
        env = {"SRIOV_SOCKET": str(socket_dir / "sriov.sock"), "SRIOV_STATE_DIR": str(disk)}
        with PluginProcess(env) as plugin:
            pool_id = request_pool(plugin.client, "10.30.0.0/16")["PoolID"]
            status, reply = request_address(plugin.client, pool_id)
            last = ipaddress.ip_interface(reply["Address"]).ip
            fill(disk / "filler")
            for _ in range(20000):
                status, reply = request_address(plugin.client, pool_id)
                if status != 200:
                    break
                last = ipaddress.ip_interface(reply["Address"]).ip
            assert status == 500, "the store never ran out of space"
            assert reply == {"Err": f"state store {disk}/sriov.db: database or disk is full"}
            (disk / "filler").unlink()
            status, reply = request_address(plugin.client, pool_id)
            assert status == 200
            # the refused request leased nothing and moved no cursor: the next address is next
            assert ipaddress.ip_interface(reply["Address"]).ip == last + 1
            log = plugin.log()
        assert "no transaction is active" not in log
        assert "internal error" not in log
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_status_command_and_metrics_on_the_socket_and_on_tcp(plugin_env):
    """`python -m plugin status` reads the socket; SRIOV_METRICS_ADDR adds a TCP listener."""
    port = reserve_port()
    with PluginProcess({**plugin_env, "SRIOV_METRICS_ADDR": f"127.0.0.1:{port}"}) as process:
        pool = request_pool(process.client, "10.44.0.0/24")["PoolID"]
        request_address(process.client, pool)
        command = [sys.executable, "-m", "plugin", "status", "--socket", plugin_env["SRIOV_SOCKET"]]
        shown = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        raw = subprocess.run([*command, "--json"], capture_output=True, text=True, check=True)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            scraped = reply.read().decode()

    assert "local/10.44.0.0/24" in shown and "1 of 254" in shown
    assert '"in_use": 1' in raw.stdout
    samples = {
        (s.name, s.labels.get("pool"), s.labels.get("method")): s.value
        for family in text_string_to_metric_families(scraped)
        for s in family.samples
    }
    assert samples[("sriov_pool_addresses_in_use", pool, None)] == 1
    assert samples[("sriov_requests_total", None, "IpamDriver.RequestAddress")] == 1


def test_status_command_names_the_socket_it_could_not_reach(tmp_path):
    missing = tmp_path / "none.sock"
    result = subprocess.run(
        [sys.executable, "-m", "plugin", "status", "--socket", str(missing)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f"sriov status: GET /status on {missing}: ")
