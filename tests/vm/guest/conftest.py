"""Guest-side fixtures: the igb PF (mailbox proven first) and the plugin on it."""

from __future__ import annotations

import pytest
from igb import Pf, load_drivers_and_find_pf, prove_mailbox

SPARE_VF = 6


@pytest.fixture(scope="session")
def pf() -> Pf:
    """The igb PF, up with link, its mailbox proven, and VFs disabled again.

    Before anything is believed, the emulated igb must refuse something: if the
    proof fails the whole guest run stops here, loudly.
    """
    pf = load_drivers_and_find_pf()
    pf.set_numvfs(pf.totalvfs)
    try:
        line = prove_mailbox(pf, SPARE_VF)
    except AssertionError as err:
        pytest.exit(f"VM stage: {err}", returncode=3)
    print(f"igb VF mailbox works: '{line}'")
    pf.set_numvfs(0)
    return pf
