"""Drive a real Docker Engine from tests: the CLI, the plugin, a test image, simulated NICs.

Everything goes through the ``docker`` CLI (any client that negotiates the
engine's API version) and the repo's scripts, so the tests exercise exactly what
a user runs. The conftest fixtures build on these helpers; tests of the network
driver import them too:

    from dockerlib import PLUGIN, container_ip, docker  # tests/e2e is on sys.path

Names of everything the tests create start with ``NAME_PREFIX``, which carries the
run's id (tests/runid.py), so a later session removes what a killed one left behind
(``remove_leftovers``) and never what another live run made.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import runid

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"
PLUGIN = "sriov:latest"  # managed plugins resolve as drivers only by full name:tag
TEST_IMAGE = "sriov-test-busybox:latest"
NAME_PREFIX = f"sriov-e2e-run{runid.RUN_ID}-"
_RUN_IN_NAME = re.compile(r"^/?sriov-e2e-run([0-9a-z]+)-")
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
DOCKERD_PIDFILE = Path("/var/run/docker.pid")  # written by the default engine
STATE_SUBDIR = "sriov-state"  # config.json: SRIOV_STATE_DIR below the state mount
# A container's PID 1 ignores SIGTERM unless it handles it: without the trap, every stop
# (and a dockerd shutdown) waits out Docker's 10 s grace period.
IDLE_COMMAND = ("sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait")


class DockerError(AssertionError):
    """A docker command failed; the message holds the command and its stderr."""


def run_docker(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run ``docker ARGS`` and return the finished process, whatever its exit status."""
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def docker(*args: str, check: bool = True, timeout: float = 180) -> str:
    """Run ``docker ARGS`` and return its stripped stdout; raise DockerError on failure."""
    result = run_docker(*args, timeout=timeout)
    if check and result.returncode != 0:
        raise DockerError(
            f"docker {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}"
        )
    return result.stdout.strip()


def docker_fails(*args: str, timeout: float = 180) -> str:
    """Run ``docker ARGS``, assert that it fails, and return its stderr."""
    result = run_docker(*args, timeout=timeout)
    assert result.returncode != 0, f"docker {' '.join(args)} succeeded: {result.stdout}"
    return result.stderr.strip()


def unique_name(kind: str) -> str:
    """A fresh name for a container, network or sim, marked as the tests' own."""
    return f"{NAME_PREFIX}{kind}-{uuid.uuid4().hex[:8]}"


def run_script(name: str, *args: str, timeout: float = 1200) -> str:
    """Run ``scripts/NAME ARGS``; return stdout, raise with stdout and stderr on failure."""
    result = subprocess.run(
        ["bash", str(SCRIPTS / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"scripts/{name} {' '.join(args)} exited {result.returncode}:\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result.stdout


# ---- the engine ------------------------------------------------------------------------


def engine_answers() -> bool:
    return run_docker("info", timeout=30).returncode == 0


def start_dockerd() -> int | None:
    """Start dockerd unless an engine answers; return the pid if this call started it."""
    output = run_script("start-dockerd.sh", timeout=120)
    words = output.split()
    if output.startswith("dockerd started, pid "):
        return int(words[3].rstrip(","))
    return None


# Users of the system engine (test runs) register here, under its lock, so that the one that
# started dockerd stops it only when no other is still using it (scripts/test.sh does the same).
ENGINE_USERS = Path("/run/sriov-engine-users")
# Held for as long as a test session drives the system engine: its tests restart dockerd and
# replace sriov:latest, which another run must not see happen under its feet.
SYSTEM_ENGINE_LOCK = Path("/tmp/sriov-docker.lock")


@contextlib.contextmanager
def system_engine_session() -> Iterator[None]:
    """Take the system engine for this session: lock, start dockerd if needed, register.

    At the end, dockerd is stopped only if this session started it and no other
    registered user is alive; otherwise it is left running.
    """
    with SYSTEM_ENGINE_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with _engine_users_lock():
            ENGINE_USERS.mkdir(parents=True, exist_ok=True)
            me = ENGINE_USERS / f"{runid.RUN_ID}.{os.getpid()}"
            me.write_text(f"{os.getpid()}\n")
            started_pid = start_dockerd()
        try:
            yield
        finally:
            with _engine_users_lock():
                me.unlink(missing_ok=True)
                if started_pid is not None and not _other_engine_users(me.name):
                    # A test may have restarted dockerd: stop the one running now.
                    stop_dockerd(dockerd_pid())


@contextlib.contextmanager
def _engine_users_lock() -> Iterator[None]:
    with open(f"{ENGINE_USERS}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _other_engine_users(mine: str) -> list[str]:
    """Registered users of the system engine other than ``mine`` whose process is alive."""
    others = []
    for entry in ENGINE_USERS.iterdir():
        if entry.name == mine:
            continue
        try:
            alive = _process_alive(int(entry.read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            alive = False
        if alive:
            others.append(entry.name)
    return others


def dockerd_pid(host: str | None = None) -> int:
    """The pid of the dockerd serving ``host`` (default: ``DOCKER_HOST``, else the default engine).

    The default engine is found by the pid file it writes; another by its ``-H``/``--host``.
    """
    host = host or os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST
    if host == DEFAULT_DOCKER_HOST:
        return int(DOCKERD_PIDFILE.read_text().strip())
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and _serves(cmdline_of(int(proc.name)), host):
            return int(proc.name)
    raise AssertionError(f"no dockerd process serves {host}")


def cmdline_of(pid: int) -> list[str]:
    """The argv of process ``pid``, or [] if it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").decode().split("\0")
    except OSError:
        return []


def _environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().rstrip(b"\0").decode()
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


def _serves(argv: list[str], host: str) -> bool:
    if not argv or Path(argv[0]).name != "dockerd":
        return False
    pairs = itertools.pairwise(argv)
    return any(flag in ("-H", "--host") and value == host for flag, value in pairs) or any(
        arg in (f"-H={host}", f"--host={host}") for arg in argv
    )


def stop_dockerd(pid: int, timeout: float = 60) -> None:
    """SIGTERM dockerd ``pid`` and wait until it has exited."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    wait_until(lambda: not _process_alive(pid), timeout, f"dockerd {pid} to exit")


def restart_dockerd(while_stopped=None) -> int:
    """Restart the dockerd that serves ``DOCKER_HOST`` (or the default engine); return its pid.

    The new dockerd gets the old one's arguments and environment (its PATH finds its
    containerd) and appends to the old one's log file (or to DOCKERD_LOG). Containers
    without a restart policy stop; enabled plugins come back enabled.
    ``while_stopped()``, if given, runs between stop and start.
    """
    pid = dockerd_pid()
    argv = cmdline_of(pid)
    env = _environ_of(pid)
    log = _log_file_of(pid)
    stop_dockerd(pid)
    if while_stopped is not None:
        while_stopped()
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env, start_new_session=True
        )
    wait_until(
        lambda: process.poll() is not None or engine_answers(), 60, f"{' '.join(argv)} to answer"
    )
    assert process.poll() is None, f"{' '.join(argv)} exited {process.returncode}; see {log}"
    return process.pid


def _log_file_of(pid: int) -> Path:
    """The regular file dockerd ``pid`` writes its output to, else start-dockerd.sh's log."""
    target = Path(os.readlink(f"/proc/{pid}/fd/2"))
    if target.is_file():
        return target
    return Path(os.environ.get("DOCKERD_LOG", "/var/log/sriov-dockerd.log"))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat").read_text().split()
    return status[2] != "Z"


def wait_until(predicate, timeout: float, what: str, interval: float = 0.2) -> None:
    """Poll ``predicate`` until it is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# ---- the plugin --------------------------------------------------------------------------


def build_plugin(name: str = PLUGIN) -> str:
    """Build the plugin with scripts/build-plugin.sh and create it (disabled) as ``name``."""
    return run_script("build-plugin.sh", name)


def plugin_enabled(name: str = PLUGIN) -> bool:
    return docker("plugin", "inspect", "-f", "{{.Enabled}}", name) == "true"


def plugin_settings(name: str = PLUGIN) -> dict[str, str]:
    """The plugin's env values and mount sources, keyed as ``docker plugin set`` takes them."""
    settings = json.loads(docker("plugin", "inspect", "-f", "{{json .Settings}}", name))
    values = dict(item.split("=", 1) for item in settings["Env"])
    for mount in settings["Mounts"]:
        values[f"{mount['Name']}.source"] = mount["Source"]
    return values


def configure_plugin(settings: dict[str, str], name: str = PLUGIN) -> None:
    """Disable the plugin, apply ``docker plugin set`` settings, enable it again.

    Keys are as ``docker plugin set`` takes them: env names (``SRIOV_NIC``) and
    mount sources (``sysfs.source``, ``state.source``).
    """
    if plugin_enabled(name):
        docker("plugin", "disable", "-f", name)
    if settings:
        docker("plugin", "set", name, *(f"{key}={value}" for key, value in settings.items()))
    docker("plugin", "enable", name)


def remove_plugin(name: str) -> None:
    """Disable and remove plugin ``name`` if it exists."""
    if run_docker("plugin", "inspect", name).returncode != 0:
        return
    docker("plugin", "rm", "-f", name)


# ---- the test image ------------------------------------------------------------------------


def make_busybox_image(image: str = TEST_IMAGE) -> str:
    """The static-busybox test image, made by scripts/make-test-image.sh (reused if present)."""
    run_script("make-test-image.sh", image)
    return image


# ---- containers and networks ------------------------------------------------------------


def container_ip(container: str, network: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address Docker gave ``container`` on ``network``, or None."""
    text = docker(
        "inspect",
        "-f",
        f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}',
        container,
    )
    return ipaddress.IPv4Address(text) if text else None


def network_subnets(network: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The subnets of ``network`` as Docker recorded them from the IPAM driver."""
    config = json.loads(docker("network", "inspect", "-f", "{{json .IPAM.Config}}", network))
    return [ipaddress.ip_network(entry["Subnet"]) for entry in config or []]


def network_gateway(network: str) -> ipaddress.IPv4Address:
    config = json.loads(docker("network", "inspect", "-f", "{{json .IPAM.Config}}", network))
    return ipaddress.IPv4Address(config[0]["Gateway"])


def running_containers_on(network: str) -> list[str]:
    return docker("ps", "-q", "--filter", f"network={network}").split()


def remove_leftovers() -> None:
    """Remove the containers and networks of this run, and of runs no longer alive.

    A name tells its run (``NAME_PREFIX``); another run's are left alone while that run
    holds its claim (``runid.is_live``), so only a killed session's are removed.
    """
    containers = _leftovers(["ps", "-a", "--format", "{{.Names}}"])
    if containers:
        docker("rm", "-f", *containers)
    networks = _leftovers(["network", "ls", "--format", "{{.Name}}"])
    if networks:
        docker("network", "rm", *networks)


def _leftovers(listing: list[str]) -> list[str]:
    names = docker(*listing, "--filter", "name=sriov-e2e-run").split()
    runs = {name: match.group(1) for name in names if (match := _RUN_IN_NAME.match(name))}
    ours_or_dead = {run: run == runid.RUN_ID or not runid.is_live(run) for run in runs.values()}
    return [name for name, run in runs.items() if ours_or_dead[run]]


# ---- simulated NICs --------------------------------------------------------------------------


@dataclass
class SimNic:
    """A simulated SR-IOV NIC: a sysfs tree under ``sysfs`` and veths/bridges on the host."""

    pf: str
    vfs: int
    sysfs: Path

    def create(self, numvfs: int | None = None) -> None:
        """Create the NIC; ``numvfs=0`` makes it as a host reboot leaves a real one."""
        extra = () if numvfs is None else ("--numvfs", str(numvfs))
        self._sim("create", "--pf", self.pf, "--vfs", str(self.vfs), *extra)

    def destroy(self) -> None:
        self._sim("destroy", "--pf", self.pf)

    def show(self) -> str:
        return self._sim("show")

    def link(self, state: str) -> None:
        """Set the PF's link "up" or "down" (its operstate and carrier)."""
        self._sim("link", "--pf", self.pf, state)

    def _sim(self, command: str, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "plugin", "sim", command, *args, "--sysfs", str(self.sysfs)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(
                f"sim {command} {' '.join(args)} --sysfs {self.sysfs} exited "
                f"{result.returncode}: {result.stderr.strip()}"
            )
        return result.stdout


# ---- what a test made, removed even when it fails -------------------------------------------


@dataclass
class Resources:
    """Containers, networks and simulated NICs one test made, with their cleanup.

    ``cleanup`` removes containers, then networks, puts the plugin back on the
    sysfs it used before a sim took it over, then destroys the sims, collecting
    every failure instead of stopping at the first.
    """

    plugin: str = PLUGIN
    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    sims: list[SimNic] = field(default_factory=list)
    default_settings: dict[str, str] = field(default_factory=dict)

    def network(self, *args: str, name: str | None = None) -> str:
        """``docker network create ARGS NAME``; return the name."""
        name = name or unique_name("net")
        self.networks.append(name)
        docker("network", "create", *args, name)
        return name

    def run(
        self,
        *args: str,
        image: str = TEST_IMAGE,
        command: tuple[str, ...] = IDLE_COMMAND,
        name: str | None = None,
    ) -> str:
        """``docker run -d --name NAME ARGS IMAGE COMMAND``; return the name."""
        name = name or unique_name("ctr")
        self.containers.append(name)
        docker("run", "-d", "--name", name, *args, image, *command)
        return name

    def run_fails(
        self, *args: str, image: str = TEST_IMAGE, command: tuple[str, ...] = IDLE_COMMAND
    ) -> str:
        """``docker run -d`` that must fail (Docker keeps the container, created); return stderr."""
        name = unique_name("ctr")
        self.containers.append(name)
        return docker_fails("run", "-d", "--name", name, *args, image, *command)

    def sim_nic(self, sysfs: Path, pf: str, vfs: int) -> SimNic:
        """Create a simulated NIC and point the plugin at it (SRIOV_NIC=sim)."""
        sim = SimNic(pf=pf, vfs=vfs, sysfs=sysfs)
        self.sims.append(sim)
        sim.create()
        if not self.default_settings:
            current = plugin_settings(self.plugin)
            self.default_settings = {key: current[key] for key in ("sysfs.source", "SRIOV_NIC")}
        configure_plugin({"sysfs.source": str(sysfs), "SRIOV_NIC": "sim"}, self.plugin)
        return sim

    def cleanup(self) -> None:
        errors: list[str] = []
        for action in (
            lambda: self._remove(["rm", "-f"], self.containers),
            lambda: self._remove(["network", "rm"], self.networks),
            self._restore_plugin,
            self._destroy_sims,
        ):
            try:
                action()
            except (AssertionError, OSError, subprocess.SubprocessError) as exc:
                errors.append(str(exc))
        if errors:
            raise AssertionError("cleanup failed:\n" + "\n".join(errors))

    def _remove(self, command: list[str], names: list[str]) -> None:
        existing = [n for n in names if run_docker(*_inspect_for(command), n).returncode == 0]
        if existing:
            docker(*command, *existing)
        names.clear()

    def _destroy_sims(self) -> None:
        while self.sims:
            sim = self.sims.pop()
            sim.destroy()
            shutil.rmtree(sim.sysfs, ignore_errors=True)

    def _restore_plugin(self) -> None:
        if self.default_settings:
            configure_plugin(self.default_settings, self.plugin)
            self.default_settings = {}
        elif not plugin_enabled(self.plugin):
            docker("plugin", "enable", self.plugin)


def _inspect_for(remove_command: list[str]) -> list[str]:
    return ["network", "inspect"] if remove_command[0] == "network" else ["container", "inspect"]
