"""``python -m plugin sim create|destroy|show|link``: the simulated NIC from the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pyroute2.netlink.exceptions import NetlinkError

from plugin.errors import PluginError
from plugin.nic import netlink
from plugin.nic.rtnl import Rtnl
from plugin.nic.sim.device import create, destroy, set_link
from plugin.nic.sim.state import VfState, locked, pf_states
from plugin.nic.sim.tree import link_of, numvfs


def show(root: Path) -> str:
    """Every simulated PF of ``root`` and each VF with PCI address, netdev, bridge and settings."""
    root = Path(root)
    lines = []
    with locked(root), Rtnl() as ipr:
        for state in pf_states(root):
            lines.append(
                f"PF {state['pf']} pci {state['pci']} totalvfs {len(state['vfs'])} "
                f"numvfs {numvfs(root, state)} mtu {state['mtu']} link {link_of(root, state)}"
            )
            lines.extend(_show_vf(ipr, vf) for vf in state["vfs"])
    return "\n".join(lines) + "\n" if lines else f"no simulated PFs under {root}\n"


def _show_vf(ipr: Rtnl, vf: VfState) -> str:
    where = "host" if netlink.link_index(ipr, vf["netdev"]) is not None else "absent"
    mtu = netlink.get_mtu(ipr, vf["netdev"])
    try:
        bridge = netlink.master_of(ipr, vf["peer"]) or "none"
    except NetlinkError:
        bridge = "missing port"
    flags = {k: ("on" if v else "off") if isinstance(v, bool) else v for k, v in vf.items()}
    return (
        f"  VF {vf['index']} pci {vf['pci']} netdev {vf['netdev']} ({where}) "
        f"port {vf['peer']} bridge {bridge} vlan {vf['vlan']} qos {vf['qos']} "
        f"proto {vf['proto']} mac {vf['mac']} spoofchk {flags['spoofchk']} "
        f"trust {flags['trust']} link_state {vf['link_state']} "
        f"min_tx_rate {vf['min_tx_rate']} max_tx_rate {vf['max_tx_rate']} "
        f"mtu {mtu if mtu is not None else '-'}"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sim", description="the simulated SR-IOV NIC")
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("create", help="create a simulated PF with VFs")
    make.add_argument("--pf", required=True, help="PF interface name")
    make.add_argument("--vfs", required=True, type=int, help="number of VFs (sriov_totalvfs)")
    make.add_argument("--sysfs", required=True, type=Path, help="root of the simulated sysfs")
    make.add_argument("--mtu", type=int, default=1500)
    make.add_argument("--numvfs", type=int, help="sriov_numvfs to start with (default: --vfs)")
    make.add_argument(
        "--fabric",
        help="switch shared with other --sysfs roots on the same fabric (1-8 of a-z0-9; "
        "default: a switch of this root's own)",
    )
    remove = sub.add_parser("destroy", help="remove a simulated PF and what it made")
    remove.add_argument("--pf", required=True)
    remove.add_argument("--sysfs", required=True, type=Path)
    view = sub.add_parser("show", help="print the simulated PFs, VFs and settings")
    view.add_argument("--sysfs", required=True, type=Path)
    link = sub.add_parser("link", help="set a simulated PF's link (operstate, carrier)")
    link.add_argument("--pf", required=True)
    link.add_argument("--sysfs", required=True, type=Path)
    link.add_argument("state", choices=("up", "down"))
    return parser


def run_cli(argv: list[str]) -> int:
    """``sim create|destroy|show ...``; returns the exit status."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        if args.command == "create":
            create(
                args.sysfs, args.pf, args.vfs, mtu=args.mtu, numvfs=args.numvfs, fabric=args.fabric
            )
            print(show(args.sysfs), end="")
        elif args.command == "destroy":
            destroy(args.sysfs, args.pf)
        elif args.command == "link":
            set_link(args.sysfs, args.pf, args.state == "up")
        else:
            print(show(args.sysfs), end="")
    except PluginError as err:
        print(f"sim {args.command}: {err.message}", file=sys.stderr)
        return 1
    except (NetlinkError, OSError) as err:
        why = netlink.strerror(err) if isinstance(err, NetlinkError) else str(err)
        print(f"sim {args.command}: {why}", file=sys.stderr)
        return 1
    return 0
