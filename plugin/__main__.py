"""Command line: ``python -m plugin serve`` and ``python -m plugin sim ...``."""

from __future__ import annotations

import os
import sys

USAGE = """usage: python -m plugin serve            run the plugin (configured by SRIOV_* variables)
       python -m plugin status [--socket PATH] [--json]   show what the plugin holds
       python -m plugin sim COMMAND ...    manage a simulated SR-IOV NIC (sim --help)
       python -m plugin cluster release-node NAME
                                           release all cluster addresses of a node gone for good
                                           (etcd endpoints from SRIOV_CLUSTER_STORE)"""


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    if argv[0] == "serve":
        return serve()
    if argv[0] == "status":
        from plugin.ops.status_cli import run_cli

        return run_cli(argv[1:])
    if argv[0] == "sim":
        from plugin.nic.sim.cli import run_cli

        return run_cli(argv[1:])
    if argv[0] == "cluster":
        return cluster(argv[1:])
    print(f"unknown command {argv[0]!r}\n{USAGE}", file=sys.stderr)
    return 2


def serve() -> int:
    from plugin.config import ConfigError, load_config
    from plugin.errors import PluginError
    from plugin.server import configure_logging, serve

    try:
        config = load_config(os.environ)
    except ConfigError as exc:
        print(f"sriov: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.log_level)
    try:
        serve(config)
    except PluginError as exc:
        print(f"sriov: {exc.message}", file=sys.stderr)
        return 1
    return 0


def cluster(argv: list[str]) -> int:
    from plugin.config import ConfigError, load_config
    from plugin.errors import PluginError

    if len(argv) != 2 or argv[0] != "release-node":
        print(USAGE, file=sys.stderr)
        return 2
    try:
        config = load_config(os.environ)
        if config.cluster is None:
            raise ConfigError("SRIOV_CLUSTER_STORE is empty: give the etcd endpoints")
        from plugin.state.etcd import EtcdEndpoints, release_node

        done = release_node(EtcdEndpoints(config.cluster), argv[1])
    except ConfigError as exc:
        print(f"sriov: {exc}", file=sys.stderr)
        return 2
    except PluginError as exc:
        print(f"sriov: {exc.message}", file=sys.stderr)
        return 1
    print(
        f"node {done.node}: released {done.addresses} addresses; dropped its share of "
        f"{done.pools_dropped} pools, {done.pools_freed} of them freed (no holder left)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
