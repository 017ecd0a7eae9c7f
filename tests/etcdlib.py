"""Real etcd members on loopback ports, for the cluster tests and the benchmark.

Each member is Debian's ``etcd`` binary with its own data directory and two loopback
ports (client and peer) that this run claimed (``runid.reserve_port``: below the
kernel's ephemeral range, held against every other test run, free when taken), so
runs never collide with each other or with an etcd the host may run on 2379.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

from runid import reserve_port

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
READY_LIMIT_S = 30.0


def make_certificates(directory: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, with openssl.

    Files: ca.crt/ca.key, server.crt/server.key, client.crt/client.key.
    """
    directory.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=sriov-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    # etcd's JSON gateway connects to its own gRPC port with the server certificate, so with
    # --client-cert-auth that certificate must allow client authentication too
    extensions = {
        "server": "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
        "client": "extendedKeyUsage=clientAuth\n",
    }
    for name, extension in extensions.items():
        (directory / f"{name}.ext").write_text(extension)
        openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN=sriov-test-{name}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
        )
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
                "-out", f"{name}.crt")  # fmt: skip


class EtcdMember:
    def __init__(self, name: str, directory: Path, tls: Path | None = None):
        self.name = name
        self.data_dir = directory / f"{name}.etcd"
        self.log_path = directory / f"{name}.log"
        self.tls = tls
        scheme = "https" if tls else "http"
        self.client_url = f"{scheme}://127.0.0.1:{reserve_port()}"
        self.peer_url = f"http://127.0.0.1:{reserve_port()}"
        self.proc: subprocess.Popen | None = None

    def start(self, initial_cluster: str, token: str) -> None:
        command = [
            ETCD,
            "--name", self.name,
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.client_url,
            "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", initial_cluster,
            "--initial-cluster-state", "new",
            "--initial-cluster-token", token,
        ]  # fmt: skip
        # etcd's default heartbeat and election timeout (100 ms, 1 s): shorter ones cause
        # needless elections when the machine is busy, and a member's kill -9 costs ~1 s
        if self.tls:
            command += [
                "--cert-file", str(self.tls / "server.crt"),
                "--key-file", str(self.tls / "server.key"),
                "--trusted-ca-file", str(self.tls / "ca.crt"),
                "--client-cert-auth",
            ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def healthy(self) -> bool:
        context = None
        if self.tls:
            context = ssl.create_default_context(cafile=str(self.tls / "ca.crt"))
            context.load_cert_chain(self.tls / "client.crt", self.tls / "client.key")
        try:
            with urllib.request.urlopen(
                self.client_url + "/health", timeout=1, context=context
            ) as reply:
                return json.loads(reply.read()).get("health") == "true"
        except OSError:
            return False

    def kill9(self) -> None:
        if self.running:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.running:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class EtcdCluster:
    """``size`` members started together; ``endpoints`` is the SRIOV_CLUSTER_STORE value."""

    def __init__(self, directory: Path, size: int = 1, tls: Path | None = None):
        """``tls``: a make_certificates() directory; clients must then present client.crt."""
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.token = f"sriov-test-{secrets.token_hex(4)}"
        self.members = [EtcdMember(f"m{i}", directory, tls) for i in range(size)]
        self.initial_cluster = ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    @property
    def endpoints(self) -> str:
        return ",".join(m.client_url for m in self.members)

    def start(self) -> EtcdCluster:
        for member in self.members:
            member.start(self.initial_cluster, self.token)
        self.wait_healthy()
        return self

    def restart(self, member: EtcdMember) -> None:
        """Start a stopped member again on its data directory (it rejoins the cluster)."""
        member.start(self.initial_cluster, self.token)

    def wait_healthy(self, members: list[EtcdMember] | None = None) -> None:
        deadline = time.monotonic() + READY_LIMIT_S
        for member in members or self.members:
            while not member.healthy():
                if not member.running:
                    raise RuntimeError(f"etcd {member.name} exited:\n{self.logs()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"etcd {member.name} not healthy:\n{self.logs()}")
                time.sleep(0.05)

    def logs(self) -> str:
        return "\n".join(
            m.log_path.read_text(errors="replace")[-3000:]
            for m in self.members
            if m.log_path.exists()
        )

    def stop(self) -> None:
        for member in self.members:
            member.stop()

    def __enter__(self) -> EtcdCluster:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def etcd_available() -> bool:
    return os.access(ETCD, os.X_OK)
