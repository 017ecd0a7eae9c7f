"""The README's first command, run as written: scripts/demo.sh, then its clean-up.

It runs before the other engine tests (file order) because it builds and, when
it is cleaned up, removes ``sriov:latest``; the ``plugin`` fixture builds its own
afterwards.
"""

from __future__ import annotations

import dockerlib


def test_demo_runs_as_written_and_cleans_up(engine):
    try:
        out = dockerlib.run_script("demo.sh")
        assert "demo.sh: all checks passed" in out
        assert "FAIL" not in out
        for check in (
            "PASS  sriov-demo-red1 pings sriov-demo-red2",
            "PASS  sriov-demo-blue1, given 10.100.0.250/24 too, cannot reach sriov-demo-red1",
            "PASS  sriov-demo-red1 eth0 has red's MTU 9000",
        ):
            assert check in out, out
    finally:
        dockerlib.run_script("demo-clean.sh", "--all")
    assert "sriov-demo" not in dockerlib.docker("ps", "-a", "--format", "{{.Names}}")
    plugins = dockerlib.docker("plugin", "ls", "--format", "{{.Name}}").split()
    assert "sriov:latest" not in plugins  # other plugins (swsriov:latest, ...) may stay
