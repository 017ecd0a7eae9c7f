"""``python -m plugin status [--socket PATH] [--json]``: the plugin's GET /status, for people."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import sys

DEFAULT_SOCKET = "/run/docker/plugins/sriov.sock"
SETTING_ORDER = ("mac", "vlan", "qos", "proto", "spoofchk", "trust", "link_state")
SETTING_ORDER += ("min_tx_rate", "max_tx_rate", "mtu")


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def fetch_status(path: str, timeout: float = 30) -> dict:
    """GET /status from the plugin on unix socket ``path``; OSError or ValueError on failure."""
    conn = UnixHTTPConnection(path, timeout)
    try:
        conn.request("GET", "/status")
        reply = conn.getresponse()
        body = reply.read()
    finally:
        conn.close()
    data = json.loads(body)
    if reply.status != 200:
        raise ValueError(data.get("Err") or f"HTTP {reply.status}")
    return data


def short(identifier: str | None) -> str:
    return identifier[:12] if identifier else "-"


def settings_text(settings: dict) -> str:
    def value(v: object) -> str:
        return ("on" if v else "off") if isinstance(v, bool) else str(v)

    return " ".join(f"{k} {value(settings[k])}" for k in SETTING_ORDER if k in settings) or "-"


def traffic_text(counters: dict) -> str:
    """``rx 1500 B 12 pkts 0 dropped 3 bcast 1 mcast, tx ...``: the counters a PF reports."""
    parts = []
    for direction, extra in (("rx", (("broadcast", "bcast"), ("multicast", "mcast"))), ("tx", ())):
        words = [
            f"{counters[key]} {unit}"
            for key, unit in (
                (f"{direction}_bytes", "B"),
                (f"{direction}_packets", "pkts"),
                (f"{direction}_dropped", "dropped"),
                *extra,
            )
            if key in counters
        ]
        if words:
            parts.append(f"{direction} " + " ".join(words))
    return ", ".join(parts) or "-"


def format_status(status: dict) -> str:
    """The status view as aligned text: PFs with their VFs, then networks, then pools."""
    lines: list[str] = []
    vlans = {n["id"]: n["vlan"] for n in status["networks"]}
    for pf in status["pfs"]:
        lines += _pf_lines(pf, vlans)
    lines.append("")
    lines.append("NETWORK       VLAN  PFS          ENDPOINTS  GATEWAY")
    for net in status["networks"]:
        gateways = " ".join(g for g in (net["gateway"], net["gateway6"]) if g) or "-"
        lines.append(
            f"{short(net['id']):<13} {net['vlan']:<5} {','.join(net['pfs']):<12} "
            f"{net['endpoints']:<10} {gateways}"
        )
    if not status["networks"]:
        lines.append("(none)")
    lines.append("")
    lines.append("POOL                               RANGE               IN USE")
    for pool in status["pools"]:
        where = f"{pool['address_space']}/{pool['cidr']}"
        lines.append(f"{where:<34} {pool['range'] or '-':<19} {pool['in_use']} of {pool['total']}")
    if not status["pools"]:
        lines.append("(none)")
    return "\n".join(lines)


def _pf_lines(pf: dict, vlans: dict) -> list[str]:
    counts = pf["vf_counts"]
    nets = ", ".join(f"{short(n)} (vlan {vlans.get(n, '?')})" for n in pf["networks"]) or "-"
    lines = [f"PF {pf['name']}"]
    if "error" in pf:
        lines[0] += f"  ERROR: {pf['error']}"
    else:
        lines[0] += (
            f"  {pf['pci']}  link {pf['link']}  mtu {pf['mtu']}  "
            f"VFs {pf['numvfs']} of {pf['totalvfs']} enabled: "
            f"{counts['free']} free, {counts['leased']} leased, {counts['unusable']} unusable"
        )
    lines.append(f"  networks: {nets}")
    if "traffic_error" in pf:
        lines.append(f"  VF traffic: cannot be read: {pf['traffic_error']}")
    elif "reports_traffic" in pf:
        reported = "reported by the PF" if pf["reports_traffic"] else "not reported by its driver"
        lines.append(f"  VF traffic: {reported}")
    for vf in pf["vfs"]:
        head = f"  VF {vf['index']:<3} {vf['pci']}  {vf['netdev'] or '-':<15} {vf['where']:<10}"
        if vf["state"] == "leased":
            lease = vf["lease"]
            lines.append(
                f"{head} leased  net {short(lease['network'])} ep {short(lease['endpoint'])}"
                f"  sandbox {lease['sandbox'] or '-'}"
            )
            lines.append(f"{'':10}programmed: {settings_text(lease['programmed'])}")
            lines.append(f"{'':10}original:   {settings_text(lease['original'])}")
            if "traffic" in vf:
                lines.append(f"{'':10}traffic:    {traffic_text(vf['traffic'])}")
            if "restore_error" in lease:
                lines.append(f"{'':10}RESTORE FAILED (lease kept): {lease['restore_error']}")
        elif vf["state"] == "unusable":
            lines.append(f"{head} unusable: {vf['reason']}")
        else:
            lines.append(f"{head} free")
    return lines


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m plugin status",
        description="Show what the sriov plugin holds: PFs, VFs and leases, networks, pools.",
    )
    parser.add_argument(
        "--socket",
        default=os.environ.get("SRIOV_SOCKET", DEFAULT_SOCKET),
        help="the plugin's unix socket (default: $SRIOV_SOCKET or %(default)s); for the managed "
        "plugin: /run/docker/plugins/<plugin id>/sriov.sock",
    )
    parser.add_argument("--json", action="store_true", help="print the JSON as the plugin sends it")
    args = parser.parse_args(argv)
    try:
        status = fetch_status(args.socket)
    except (OSError, ValueError) as exc:
        print(f"sriov status: GET /status on {args.socket}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(status, indent=2) if args.json else format_status(status))
    return 0
