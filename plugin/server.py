"""Build the real collaborators from the configuration and serve them on the socket."""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
from pathlib import Path

import waitress

from plugin.app import create_app
from plugin.config import Config
from plugin.handlers import cluster_handlers, ipam_handlers, network_handlers, plugin_handlers
from plugin.ipam import IpamService
from plugin.network import NetworkService
from plugin.nic.sysfs import Sysfs
from plugin.schema import RequestValidator
from plugin.store import Store

log = logging.getLogger("sriov")

SERVER_THREADS = 8


def build_backend(config: Config, sysfs: Sysfs):
    """The NIC backend SRIOV_NIC names: never guessed from what the machine looks like."""
    if config.nic == "sim":
        from plugin.nic.sim import SimBackend

        return SimBackend(sysfs)
    from plugin.nic.kernel import KernelBackend

    return KernelBackend(sysfs)


def build_app(config: Config):
    """The app with its real services: the store under SRIOV_STATE_DIR, the NIC backend."""
    store = Store(config.state_dir)
    sysfs = Sysfs(config.sysfs)
    network = NetworkService(store, sysfs, build_backend(config, sysfs))
    network.recover()
    handlers = plugin_handlers()
    cluster = build_cluster(config)
    handlers.update(ipam_handlers(IpamService(store, config.default_pools, cluster)))
    handlers.update(network_handlers(network))
    if cluster is not None:
        handlers.update(cluster_handlers(cluster.etcd))
    return create_app(handlers, RequestValidator().validate)


def build_cluster(config: Config):
    """The etcd cluster store when SRIOV_CLUSTER_STORE names one, with this node's presence.

    Nothing here waits for etcd: the plugin must answer Docker within seconds
    of start even while etcd is down; cluster requests fail until it answers.
    """
    if config.cluster is None:
        return None
    from plugin.cluster import ClusterStore, EtcdEndpoints, NodePresence

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
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    waitress.serve(
        app,
        unix_socket=str(config.socket),
        unix_socket_perms="660",
        threads=SERVER_THREADS,
        ident="sriov",
        _quiet=True,
    )


def _exit_on_sigterm(signum, frame) -> None:
    """Docker stops a plugin with SIGTERM: leave through SystemExit so the exit is clean."""
    log.info("SIGTERM: stopping")
    raise SystemExit(0)


def configure_logging(level: int) -> None:
    # stdout: Docker files a managed plugin's stderr lines in its log as level=error.
    logging.basicConfig(
        stream=sys.stdout,
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.getLogger("waitress").setLevel(max(level, logging.WARNING))
    # The format uses none of these, and each costs a call on every record.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
