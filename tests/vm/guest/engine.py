"""dockerd with the managed plugin in a guest: what the docker suites of every guest share.

dockerd (Debian's docker.io from the host's root) runs with its data root on
tmpfs and --iptables=false; the plugin is created from config.json and the
rootfs/ that scripts/build-plugin.sh built on the host (the host's test builds
it before booting); the busybox test image is imported without any registry
(scripts/make-test-image.sh).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from igb import run, wait_for

REPO = Path(__file__).resolve().parents[3]
PLUGIN = "sriov:latest"
IMAGE = "sriov-test-busybox:latest"
PLUGIN_DIR = Path("/tmp/sriov-plugin")  # config.json and rootfs/ only: the CLI sends it all
SOCKET = "/run/docker.sock"
LOG = Path("/tmp/dockerd.log")


def docker(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["docker", "-H", f"unix://{SOCKET}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def enable_plugin(attempts: int = 6) -> None:
    """docker plugin enable; again if the plugin was not answering yet.

    dockerd gives a plugin about 10 s to answer on its socket, and Python under
    TCG on a busy host sometimes needs more for its first start (23 s seen with
    two guests and other work on 2 cores).
    """
    for attempt in range(1, attempts + 1):
        proc = docker("plugin", "enable", PLUGIN, check=False)
        if proc.returncode == 0:
            return
        print(f"docker plugin enable, attempt {attempt}: {proc.stderr.strip()}")
    raise AssertionError(f"docker plugin enable {PLUGIN} failed {attempts} times")


def timed(what: str, started: float) -> None:
    print(f"{what}: {time.monotonic() - started:.1f} s")


@contextlib.contextmanager
def engine(before_enable: Callable[[], object] = lambda: None) -> Iterator[None]:
    """dockerd running with the sriov plugin enabled and the test image loaded; stopped after.

    ``before_enable`` runs between `docker plugin create` and `enable` (guests that share
    the CPU take turns to start their plugin within dockerd's deadline).
    """
    assert (REPO / "rootfs" / "opt" / "sriov").is_dir(), "build the plugin on the host first"
    log = LOG.open("w")
    started = time.monotonic()
    daemon = subprocess.Popen(
        [
            "dockerd",
            "-H",
            f"unix://{SOCKET}",
            "--iptables=false",
            "--ip-masq=false",
            "--bridge=none",
            "--data-root=/var/lib/docker",
            "--exec-root=/run/docker",
            "--pidfile=/run/docker.pid",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for("dockerd", lambda: docker("version", check=False).returncode == 0, timeout=120)
        timed("dockerd start", started)
        started = time.monotonic()
        env = {**os.environ, "DOCKER_HOST": f"unix://{SOCKET}"}
        subprocess.run([REPO / "scripts/make-test-image.sh", IMAGE], env=env, check=True)
        timed("test image import", started)
        started = time.monotonic()
        (PLUGIN_DIR / "rootfs").mkdir(parents=True)
        (PLUGIN_DIR / "config.json").write_bytes((REPO / "config.json").read_bytes())
        run("mount", "--bind", str(REPO / "rootfs"), str(PLUGIN_DIR / "rootfs"))
        # dockerd gzips and digests the 70 MB rootfs under TCG: 66-270 s seen, more on a busy host.
        docker("plugin", "create", PLUGIN, str(PLUGIN_DIR), timeout=900)
        timed("docker plugin create", started)
        before_enable()
        started = time.monotonic()
        enable_plugin()
        timed("docker plugin enable", started)
        yield
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
        log.close()
        print("dockerd log (tail):\n" + LOG.read_text()[-4000:])


def container_mac(ip_link: str) -> str:
    """The MAC in `ip -o link show eth0` run in the container's network namespace.

    Not /sys/class/net: a container in this guest sees the guest's own sysfs.
    """
    words = ip_link.split()
    return words[words.index("link/ether") + 1]
