"""Guest-side fixtures: the igb PF (mailbox proven first) and the plugin on it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from igb import Pf, load_drivers_and_find_pf

# The wire stage's guests (scripts/vm/wire-node.sh sets SRIOV_WIRE_ROLE) run only their own
# module; the VM stage's guest runs everything else.
WIRE = ["test_wire_node.py"]
collect_ignore = (
    [p.name for p in Path(__file__).parent.glob("test_*.py") if p.name not in WIRE]
    if os.environ.get("SRIOV_WIRE_ROLE")
    else WIRE
)


@pytest.fixture(scope="session")
def pf() -> Pf:
    """The igb PF, up with link, its mailbox proven, and VFs disabled again.

    Before anything is believed, the emulated igb must refuse something: if the
    proof fails the whole guest run stops here, loudly. Every later enable of
    the VFs is proven again (``Pf.mailbox_proven``).
    """
    pf = load_drivers_and_find_pf()
    try:
        pf.set_numvfs(pf.totalvfs)
    except AssertionError as err:
        pytest.exit(f"VM stage: {err}", returncode=3)
    print(f"igb VF mailbox works after enable {pf.proven_enables}")
    pf.set_numvfs(0)
    return pf


@pytest.fixture(autouse=True)
def every_vf_enable_proven(request):
    """After each test: every enable of the VFs since boot was followed by a mailbox proof."""
    yield
    if "pf" in request.fixturenames:
        request.getfixturevalue("pf").assert_every_enable_proven()
