"""Fixtures shared by the tests that run plugin processes and network namespaces."""

from __future__ import annotations

import pytest
import runid


@pytest.fixture(scope="session", autouse=True)
def no_dead_runs_netns() -> None:
    """Namespaces a killed run left behind go before this run makes its own."""
    runid.remove_dead_runs_netns()
