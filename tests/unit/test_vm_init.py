"""The VM stage's guest /init (scripts/vm/initramfs-init.sh), read without booting a guest.

The wire stage found that a guest whose PID 1 stayed in the initramfs and ran the
command under `chroot` loaded no kernel module on demand (the kernel runs modprobe in
PID 1's root) and ran `docker exec` outside the container, so Docker's embedded DNS
never answered. Booting takes minutes; this catches that shape in milliseconds.
"""

from __future__ import annotations

import re
from pathlib import Path

INIT = Path(__file__).resolve().parents[2] / "scripts" / "vm" / "initramfs-init.sh"


def commands() -> list[str]:
    """The script's lines without comments and blank lines."""
    lines = (line.split("#", 1)[0].strip() for line in INIT.read_text().splitlines())
    return [line for line in lines if line]


def test_pid_1_hands_itself_to_the_guest_root_with_switch_root():
    handover = [line for line in commands() if line.startswith("exec switch_root ")]
    assert handover, "PID 1 must exec switch_root into the guest's root"
    assert commands()[-1].endswith("busybox poweroff -f'"), "nothing may follow the handover"


def test_no_command_runs_under_a_chroot_below_the_initramfs():
    assert not [line for line in commands() if re.search(r"(^|[\s;&|(])chroot\s", line)]
