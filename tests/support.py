"""Talk to the plugin the way Docker does, and run it as a real process.

``PluginClient`` speaks HTTP/1.1 over the plugin's unix socket with exactly
Docker's habits (POST, no Content-Type, empty body for argument-less calls);
``PluginProcess`` starts ``python -m plugin serve`` and knows when it is ready.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
STARTUP_LIMIT_SECONDS = 5.0
STOP_LIMIT_SECONDS = 10.0
POLL_INTERVAL_SECONDS = 0.01


def docker_id() -> str:
    """A random 64-hex id shaped like Docker's network and endpoint ids."""
    return secrets.token_hex(32)


class UnixHTTPConnection(http.client.HTTPConnection):
    """An HTTP/1.1 connection whose transport is a unix stream socket."""

    def __init__(self, socket_path: str | os.PathLike, timeout: float = 30.0):
        super().__init__("localhost", timeout=timeout)
        self._socket_path = str(socket_path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class PluginClient:
    """One keep-alive connection to the plugin; not shared between threads."""

    def __init__(self, socket_path: str | os.PathLike, timeout: float = 30.0):
        self._conn = UnixHTTPConnection(socket_path, timeout)

    def call(
        self, method: str, body: dict | None = None, raw: bytes | None = None
    ) -> tuple[int, dict]:
        """POST /<method> with ``body`` as JSON (or ``raw`` bytes, or nothing); (status, reply)."""
        if raw is not None:
            payload = raw
        elif body is not None:
            payload = json.dumps(body).encode()
        else:
            payload = b""
        # skip_accept_encoding keeps the headers to what Go's client sends; no Content-Type.
        self._conn.putrequest("POST", f"/{method}", skip_accept_encoding=True)
        self._conn.putheader("Content-Length", str(len(payload)))
        self._conn.endheaders(payload)
        try:
            response = self._conn.getresponse()
            data = response.read()
        except (http.client.HTTPException, OSError):
            self._conn.close()
            raise
        return response.status, json.loads(data) if data else {}

    def ok(self, method: str, body: dict | None = None) -> dict:
        """Call ``method`` and insist on a 200."""
        status, reply = self.call(method, body)
        assert status == 200, f"{method} {body} -> {status} {reply}"
        return reply

    def close(self) -> None:
        self._conn.close()


class PluginProcess:
    """``python -m plugin serve`` as a child process, with its output in a temp file."""

    def __init__(
        self,
        env: dict,
        netns: str | None = None,
        startup_limit: float = STARTUP_LIMIT_SECONDS,
        repo: Path = REPO_ROOT,
    ):
        """``repo``: the checkout whose plugin runs (another one to compare versions)."""
        self.env = dict(env)
        self.repo = repo
        self.netns = netns
        self.startup_limit = startup_limit
        self.socket_path = Path(self.env["SRIOV_SOCKET"])
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen | None = None
        self._client: PluginClient | None = None
        log_fd, log_name = tempfile.mkstemp(prefix="sriov-plugin-", suffix=".log")
        os.close(log_fd)
        self.log_path = Path(log_name)

    def _command(self) -> list[str]:
        command = [sys.executable, "-m", "plugin", "serve"]
        if self.netns:
            command = ["ip", "netns", "exec", self.netns, *command]
        return command

    def start(self) -> PluginProcess:
        """Spawn the plugin and wait until Plugin.Activate answers 200."""
        env = {**os.environ, **self.env}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(self.repo), os.environ.get("PYTHONPATH", "")) if p
        )
        log_fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND)
        try:
            started = time.perf_counter()
            self._proc = subprocess.Popen(
                self._command(),
                env=env,
                cwd=self.repo,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=subprocess.STDOUT,
            )
        finally:
            os.close(log_fd)
        self._wait_until_active(started)
        return self

    def _wait_until_active(self, started: float) -> None:
        deadline = started + self.startup_limit
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"plugin exited with {self._proc.returncode} before answering:\n{self.log()}"
                )
            if self._activate_answers():
                self.startup_seconds = time.perf_counter() - started
                return
            if time.perf_counter() > deadline:
                self.kill9()
                raise RuntimeError(
                    f"plugin did not answer Plugin.Activate within {self.startup_limit} s:\n"
                    f"{self.log()}"
                )
            time.sleep(POLL_INTERVAL_SECONDS)

    def _activate_answers(self) -> bool:
        probe = PluginClient(self.socket_path, timeout=1.0)
        try:
            status, _ = probe.call("Plugin.Activate")
        except OSError:
            return False
        finally:
            probe.close()
        return status == 200

    @property
    def client(self) -> PluginClient:
        """A client on the plugin's socket, made on first use and closed by stop()."""
        if self._client is None:
            self._client = PluginClient(self.socket_path)
        return self._client

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc else None

    def _close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def stop(self) -> int | None:
        """SIGTERM and wait; return the exit status (None if it was never started)."""
        self._close_client()
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=STOP_LIMIT_SECONDS)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        return self._proc.returncode

    def kill9(self) -> None:
        """SIGKILL, as a crash or an OOM kill would end it."""
        self._close_client()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def log(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace")

    def __enter__(self) -> PluginProcess:
        return self.start()

    def close(self) -> None:
        """Stop the process and remove its log file."""
        self.stop()
        self.log_path.unlink(missing_ok=True)

    def __exit__(self, *exc_info) -> None:
        self.close()
