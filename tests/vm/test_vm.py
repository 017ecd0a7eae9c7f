"""The VM stage: the guest suites on a real kernel SR-IOV stack (emulated Intel 82576).

Boots a QEMU guest (scripts/vm/run.sh) with `-device igb`, driven by the real
igb/igbvf drivers of Debian 12's 6.1 kernel, and runs tests/vm/guest in it: the
plugin process with SRIOV_NIC=kernel, then the managed plugin inside a dockerd.
The guest proves first that the VF-to-PF mailbox works (igb refuses a VF's own
MAC change under an admin MAC), or stops. Needs root; scripts/vm/setup.sh
installs what it needs. This test fails with the guest's output when the guest
suites fail.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm

REPO = Path(__file__).resolve().parents[2]


def test_guest_suites_pass_on_an_emulated_igb(plugin_rootfs, vm_setup, tmp_path):
    out = tmp_path / "vm"
    started = time.monotonic()
    proc = subprocess.run(
        ["scripts/vm/run.sh", "scripts/vm/guest-tests.sh", "-s"],
        cwd=REPO,
        # The IOMMU lets the Kata tests bind VFs to vfio-pci.
        env={**os.environ, "SRIOV_VM_OUT": str(out), "SRIOV_VM_IOMMU": "1"},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    print(f"guest run: {time.monotonic() - started:.1f} s")
    print(proc.stdout[-20000:])
    if proc.returncode != 0:
        dmesg = (out / "dmesg").read_text(errors="replace") if (out / "dmesg").exists() else ""
        pytest.fail(
            f"the guest suites failed (exit {proc.returncode}):\n{proc.stdout[-30000:]}"
            f"{proc.stderr[-5000:]}\n--- guest dmesg (tail) ---\n{dmesg[-5000:]}",
            pytrace=False,
        )
