"""Build the real collaborators from the configuration and serve them on the socket."""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, TextIO

import falcon
import waitress
from waitress import wasyncore

from plugin.config import Config, DefaultPool
from plugin.errors import PluginError
from plugin.nic.base import NicBackend
from plugin.nic.sysfs import Sysfs
from plugin.ops.metrics import Metrics
from plugin.ops.routes import RequestMetrics, metrics_app, ops_routes
from plugin.ops.status import StatusService
from plugin.protocol.app import LogAfterReply, RequestLogWriter, create_app, log_request
from plugin.protocol.handlers import (
    cluster_handlers,
    ipam_handlers,
    network_handlers,
    plugin_handlers,
)
from plugin.protocol.schema import RequestValidator
from plugin.services.ipam import IpamService
from plugin.services.networks import NetworkService
from plugin.services.recovery import HostRecovery, read_boot_id
from plugin.state.sqlite import Store

if TYPE_CHECKING:  # imported when a cluster store is configured: it brings in etcd3gw
    from plugin.state.etcd import ClusterStore

log = logging.getLogger("sriov")

SERVER_THREADS = 8


def build_backend(config: Config, sysfs: Sysfs) -> NicBackend:
    """The NIC backend SRIOV_NIC names: never guessed from what the machine looks like."""
    if config.nic == "sim":
        from plugin.nic.sim.backend import SimBackend

        return SimBackend(sysfs.root)
    from plugin.nic.kernel import KernelBackend

    return KernelBackend()


def build_app(config: Config) -> LogAfterReply:
    """The app with its real services: the store under SRIOV_STATE_DIR, the NIC backend.

    At start: VFs enabled again on stored networks' PFs that lost them (a reboot),
    then endpoints a crash cut short are undone. Metrics also go to SRIOV_METRICS_ADDR.
    """
    store = Store(config.state_dir)
    sysfs = Sysfs(config.sysfs)
    metrics = Metrics()
    backend = build_backend(config, sysfs)
    cluster = build_cluster(config)
    request_log = RequestLogWriter()
    atexit.register(request_log.flush)
    app = assemble_app(
        store, sysfs, backend, config.default_pools, metrics, cluster, read_boot_id(), request_log
    )
    if config.metrics_addr is not None:
        MetricsListener(metrics_app(metrics), *config.metrics_addr)  # serves until exit
    return app


def assemble_app(
    store: Store,
    sysfs: Sysfs,
    backend: NicBackend,
    default_pools: tuple[DefaultPool, ...],
    metrics: Metrics,
    cluster: ClusterStore | None = None,
    boot_id: str | None = None,
    write_line: Callable[[float, str, str, float], None] = log_request,
) -> LogAfterReply:
    """The services on these collaborators, recovered, and the app serving them.

    With the host's ``boot_id``, leases end with the boot and need no sync.
    """
    networks = NetworkService(store, sysfs, backend, events=metrics, sync_leases=boot_id is None)
    recovery = HostRecovery(store, sysfs, networks, boot_id=boot_id)
    recovery.at_start()
    networks.recover()
    status = StatusService(store, sysfs, backend, networks)
    metrics.collect_held_state(status)
    handlers = plugin_handlers()
    handlers.update(ipam_handlers(IpamService(store, default_pools, cluster)))
    handlers.update(network_handlers(networks, recovery.before_endpoint))
    if cluster is not None:
        handlers.update(cluster_handlers(cluster.etcd))
    return create_app(
        handlers,
        RequestValidator().validate,
        routes=ops_routes(status, metrics),
        after_reply=[RequestMetrics(metrics)],
        write_line=write_line,
    )


class MetricsListener:
    """HTTP on SRIOV_METRICS_ADDR for a Prometheus server, served by waitress in a daemon thread.

    Apart from the socket's server: its own map of connections and one worker
    thread, which is plenty for scrapes and leaves the protocol's threads alone.
    """

    def __init__(self, app: falcon.App, host: str, port: int) -> None:
        self._connections: dict = {}
        try:
            self._server = waitress.create_server(
                app, map=self._connections, host=host, port=port, threads=1, ident="sriov"
            )
        except OSError as exc:
            raise PluginError(
                f"SRIOV_METRICS_ADDR: listen on {host}:{port}: {exc.strerror or exc}"
            ) from exc
        self.port = self._server.effective_port  # the system's choice when given 0
        self._thread = threading.Thread(target=self._server.run, name="sriov-metrics", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop listening and serving; the connections are closed in the server's own thread."""
        self._server.trigger.pull_trigger(lambda: wasyncore.close_all(self._connections))
        self._thread.join()
        self._server.task_dispatcher.shutdown()


def build_cluster(config: Config) -> ClusterStore | None:
    """The etcd cluster store when SRIOV_CLUSTER_STORE names one, with this node's presence.

    Nothing here waits for etcd: the plugin must answer Docker within seconds
    of start even while etcd is down; cluster requests fail until it answers.
    """
    if config.cluster is None:
        return None
    from plugin.state.etcd import ClusterStore, EtcdEndpoints, NodePresence

    etcd = EtcdEndpoints(config.cluster)
    presence = NodePresence(etcd, config.cluster.node).start()
    atexit.register(presence.stop)
    return ClusterStore(etcd, config.cluster.node)


def prepare_socket(path: Path) -> None:
    """Make the socket's directory and remove a socket left by an earlier run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_socket():
        path.unlink()


def serve(config: Config) -> None:
    app = build_app(config)
    prepare_socket(config.socket)
    log.info(
        "sriov plugin serving on %s (state %s, sysfs %s, nic %s, default pools %s, %s)",
        config.socket,
        config.state_dir,
        config.sysfs,
        config.nic,
        ",".join(str(p) for p in config.default_pools),
        f"cluster store {','.join(config.cluster.endpoints)} as node {config.cluster.node}"
        if config.cluster
        else "no cluster store",
    )
    if config.metrics_addr is not None:
        log.info("metrics also on http://%s:%d/metrics", *config.metrics_addr)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    waitress.serve(
        app,
        unix_socket=str(config.socket),
        unix_socket_perms="660",
        threads=SERVER_THREADS,
        ident="sriov",
        _quiet=True,
    )


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Docker stops a plugin with SIGTERM: leave through SystemExit so the exit is clean."""
    log.info("SIGTERM: stopping")
    raise SystemExit(0)


class LineFormatter(logging.Formatter):
    """``2026-12-07 20:11:58,123 INFO sriov: message``, with the date and time of each
    second formatted once rather than for every record (a request's log line took a
    quarter of a trivial call's time in the plugin, a third of that the time stamp)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._second: tuple[int, str] = (-1, "")  # replaced whole: threads share it

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second, text = self._second
        if int(record.created) != second:
            text = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(record.created))
            self._second = (int(record.created), text)
        return f"{text},{int(record.msecs):03d}"

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.exc_text or record.stack_info:
            return super().format(record)  # with its traceback, as logging writes it
        record.message = record.getMessage()
        return f"{self.formatTime(record)} {record.levelname} {record.name}: {record.message}"


class LineHandler(logging.StreamHandler):
    """Each record as one ``os.write`` of its line to the stream's file descriptor.

    What StreamHandler does, without the text layer's write and flush (and a
    second lock) per line: the line still reaches the file or pipe before the
    call returns, so nothing waits in a buffer for a crash to lose.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._fd = stream.fileno()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = (self.format(record) + self.terminator).encode()
            while data:
                data = data[os.write(self._fd, data) :]
        except Exception:
            self.handleError(record)


def configure_logging(level: int) -> None:
    # stdout: Docker files a managed plugin's stderr lines in its log as level=error.
    sys.stdout.flush()
    handler = LineHandler(sys.stdout)
    handler.setFormatter(LineFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("waitress").setLevel(max(level, logging.WARNING))
    # The format uses none of these, and each costs a call on every record; without
    # _srcfile no record walks the stack for its caller (the logging HOWTO's "Optimization").
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
