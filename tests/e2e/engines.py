"""The Docker Engines the engine suite runs against, and how to start each.

- the **system** engine: Debian 12's ``docker.io`` (20.10) on the default socket, started
  with scripts/start-dockerd.sh if none answers; driven with its own client,
  ``/usr/bin/docker`` (a newer client on PATH refuses some flags against 20.10);
- **trixie**: Debian 13's ``docker.io`` (26.1) and ``containerd`` (1.7), unpacked by
  scripts/install-engine-trixie.sh into a cache directory, run side by side with the
  system engine: its own data root, short exec root, socket, pid file and a bridge
  made for it (``-b``; ``--bridge=none`` would delete the host's ``docker0``), no
  iptables. Debian 12's runc stays on PATH (trixie's needs glibc 2.38).

A test talks to an engine the way a user does: ``DOCKER_HOST`` names its socket and
the engine's own client comes first on ``PATH`` (``Engine.environment``), so the
repo's scripts and the ``docker`` calls in ``dockerlib`` reach it unchanged.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import dockerlib
import runid

ENGINE_CACHE = Path(os.environ.get("SRIOV_ENGINE_CACHE", "/var/cache/sriov-engines"))
TRIXIE_ROOT = ENGINE_CACHE / "trixie"
SYSTEM_CLIENT = Path("/usr/bin/docker")  # Debian 12's docker.io client, API 1.41


@dataclass(frozen=True)
class Engine:
    """One Docker Engine the suite can run against."""

    key: str  # "system" or "trixie"
    version: str  # the engine's major.minor, e.g. "26.1"
    api: tuple[int, int]  # the API version its client speaks
    host: str  # DOCKER_HOST
    bin_dirs: tuple[Path, ...]  # put first on PATH: the engine's client (and daemon)

    @property
    def id(self) -> str:
        """The test id part that names this engine in every result line."""
        return f"docker{self.version}"

    def environment(self, base: dict[str, str]) -> dict[str, str]:
        """``base`` with DOCKER_HOST and PATH pointing at this engine."""
        path = os.pathsep.join([*map(str, self.bin_dirs), base.get("PATH", "")])
        return {**base, "DOCKER_HOST": self.host, "PATH": path}


def system_engine() -> Engine:
    return Engine(
        key="system",
        version=_major_minor(_package_version("docker.io")),
        api=_client_api(SYSTEM_CLIENT),
        host=dockerlib.DEFAULT_DOCKER_HOST,
        bin_dirs=(_client_dir(SYSTEM_CLIENT),),
    )


def trixie_engine() -> Engine:
    packages = dict(
        line.split(" ", 1) for line in (TRIXIE_ROOT / ".packages").read_text().splitlines()
    )
    client = TRIXIE_ROOT / "usr/bin/docker"
    return Engine(
        key="trixie",
        version=_major_minor(packages["docker.io"]),
        api=_client_api(client),
        host=f"unix://{SideBySide.SOCKET}",
        bin_dirs=(TRIXIE_ROOT / "usr/bin", TRIXIE_ROOT / "usr/sbin"),
    )


ENGINE_KEYS = ("system", "trixie")
_MAKERS = {"system": system_engine, "trixie": trixie_engine}


def make_engine(key: str) -> Engine:
    """The engine ``key``; fails naming the install step when it is not installed."""
    if key == "trixie" and not (TRIXIE_ROOT / ".packages").is_file():
        raise AssertionError(
            f"engine trixie: {TRIXIE_ROOT} is missing; run scripts/install-engine-trixie.sh"
        )
    return _MAKERS[key]()


def installed(key: str) -> Engine | None:
    """Engine ``key`` if it is installed, else None (collection must not fail for it)."""
    try:
        return make_engine(key)
    except (AssertionError, OSError, ValueError, subprocess.SubprocessError):
        return None


def _package_version(package: str) -> str:
    return subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", package],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _client_api(client: Path) -> tuple[int, int]:
    """The API version ``client`` speaks (it prints it, then fails to reach no engine)."""
    out = subprocess.run(
        [str(client), "-H", "unix:///nonexistent", "version", "-f", "{{.Client.APIVersion}}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    major, minor = out.strip().split(".")[:2]
    return int(major), int(minor)


def _client_dir(client: Path) -> Path:
    """A directory holding only ``docker`` -> ``client``, to put first on PATH."""
    directory = Path(tempfile.gettempdir()) / f"sriov-client-{client.stat().st_ino}"
    directory.mkdir(exist_ok=True)
    link = directory / "docker"
    if not link.is_symlink():
        link.symlink_to(client)
    return directory


def data_root_for(version: str) -> Path:
    """A data root for a side-by-side engine that no other live run uses.

    The first, ``data/VERSION``, is kept between runs so the plugin's base image is built
    once; a run that finds it claimed by another live run takes ``data/VERSION.N``.
    """
    base = ENGINE_CACHE / "data"
    for slot in range(64):
        path = base / (version if slot == 0 else f"{version}.{slot}")
        if runid.claim(f"engine-data-{path.name}"):
            return path
    raise RuntimeError(f"every data root of engine {version} under {base} is in use")


class SideBySide:
    """The trixie engine's dockerd, next to the system one; start() and stop() it.

    The data root is kept between sessions (in the engine cache) so the plugin's base
    image is built once; the rest lives under short paths of its own.
    """

    NAME = f"et{runid.RUN_ID}"  # this run's: another run's engine has names of its own
    SOCKET = Path(f"/run/sriov-{NAME}.sock")
    EXEC_ROOT = Path(f"/run/sriov-{NAME}")  # containerd's sockets live here: keep it short
    PIDFILE = Path(f"/run/sriov-{NAME}.pid")
    BRIDGE = f"{NAME}br0"
    LOG = Path(f"/var/log/sriov-{NAME}.log")

    def __init__(self, engine: Engine):
        self.engine = engine
        self.data_root = data_root_for(engine.version)
        bridge_net = runid.subnet16(f"bridge-{self.NAME}")
        # the bridge's address, set before dockerd starts (it takes it from the bridge; with
        # none it would pick one itself, racing another run's engine for the same)
        self.bridge_address = f"{bridge_net.network_address + 1}/24"
        self.pid: int | None = None

    def argv(self) -> list[str]:
        return [
            str(TRIXIE_ROOT / "usr/sbin/dockerd"),
            "--data-root", str(self.data_root),
            "--exec-root", str(self.EXEC_ROOT),
            "-H", self.engine.host,
            "--pidfile", str(self.PIDFILE),
            "--iptables=false",
            "--ip6tables=false",
            "-b", self.BRIDGE,
        ]  # fmt: skip

    def start(self) -> int:
        """Start dockerd (after stopping one a killed session left) and wait until it answers."""
        self._stop_leftover()
        self._ensure_bridge()
        self.data_root.mkdir(parents=True, exist_ok=True)
        env = self.engine.environment(dict(os.environ))
        with self.LOG.open("ab") as log:
            process = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                start_new_session=True,
            )
        dockerlib.wait_until(
            lambda: process.poll() is not None or self._answers(env),
            60,
            f"{self.engine.id} dockerd on {self.SOCKET} to answer",
        )
        assert process.poll() is None, (
            f"{self.engine.id} dockerd exited {process.returncode}; see {self.LOG}"
        )
        self.pid = process.pid
        return process.pid

    def stop(self) -> None:
        """Stop the dockerd serving the socket now (a test may have restarted it)."""
        try:
            pid = int(self.PIDFILE.read_text().strip())
        except (OSError, ValueError):
            pid = self.pid
        if pid is not None:
            dockerlib.stop_dockerd(pid)
        subprocess.run(["ip", "link", "del", self.BRIDGE], capture_output=True, check=False)
        shutil.rmtree(self.EXEC_ROOT, ignore_errors=True)  # sockets and state of a stopped daemon

    def _stop_leftover(self) -> None:
        try:
            pid = int(self.PIDFILE.read_text().strip())
        except (OSError, ValueError):
            return
        argv = dockerlib.cmdline_of(pid)
        if argv and Path(argv[0]).name == "dockerd" and self.engine.host in argv:
            dockerlib.stop_dockerd(pid)

    def _ensure_bridge(self) -> None:
        exists = subprocess.run(["ip", "link", "show", self.BRIDGE], capture_output=True)
        if exists.returncode != 0:
            subprocess.run(["ip", "link", "add", self.BRIDGE, "type", "bridge"], check=True)
            subprocess.run(
                ["ip", "addr", "add", self.bridge_address, "dev", self.BRIDGE], check=True
            )
        subprocess.run(["ip", "link", "set", self.BRIDGE, "up"], check=True)

    @staticmethod
    def _answers(env: dict[str, str]) -> bool:
        info = subprocess.run(
            ["docker", "info"], capture_output=True, env=env, timeout=30, check=False
        )
        return info.returncode == 0
