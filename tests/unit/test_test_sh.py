"""scripts/test.sh's stage verdicts, driven on a tiny test tree of the test's own.

scripts/lib/stages.sh is what test.sh sources for its stages; here it runs real pytest
sessions on a temporary tree: a stage passes only when a test ran, none failed and every
skip is on the allowed list; one that selected nothing, skipped everything, skipped a test
not on the list, failed or hung is red, and the summary says which and why.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STAGES = REPO / "scripts" / "lib" / "stages.sh"

TREE = {
    "test_plain.py": "def test_one():\n    assert True\n\ndef test_two():\n    assert True\n",
    "test_skips.py": (
        "import pytest\n\n"
        "@pytest.mark.skip(reason='needs a thing this machine lacks')\n"
        "def test_needs_thing():\n    pass\n"
    ),
    "test_mixed.py": (
        "import pytest\n\n"
        "def test_runs():\n    assert True\n\n"
        "def test_skips_inside():\n    pytest.skip('no etcd here')\n"
    ),
    "test_broken.py": "def test_fails():\n    assert 1 == 2\n",
    "test_hangs.py": "import time\n\ndef test_hangs():\n    time.sleep(30)\n",
}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    root.mkdir()
    (root / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    for name, text in TREE.items():
        (root / name).write_text(text)
    return root


def run_stages(tree: Path, script: str, allowed: str = "", stages: str = "", extra: str = ""):
    """Source stages.sh in bash, run ``script`` (run_stage lines), then print_summary."""
    allowed_file = tree / "allowed_skips.txt"
    allowed_file.write_text(allowed)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "ALLOWED_SKIPS": str(allowed_file),
        "STAGE_REPORT_DIR": str(tree / "reports"),
        "STAGES": stages,
        "EXTRA_PYTEST_ARGS": extra,
        # only the plugin the stages need: the tree is tiny, the start-up is the cost
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        "PYTEST_ADDOPTS": "-p pytest_timeout",
    }
    (tree / "reports").mkdir(exist_ok=True)
    program = f"source {STAGES}\n{script}\nprint_summary\n"
    result = subprocess.run(
        ["bash", "-c", program], cwd=tree, env=env, capture_output=True, text=True, timeout=120
    )
    summary = result.stdout.rsplit("===== summary =====", 1)[-1]
    return result.returncode, summary, result.stdout + result.stderr


def stage_line(summary: str, name: str) -> str:
    return next(line for line in summary.splitlines() if line.startswith(f"{name} "))


def test_a_normal_stage_and_an_allowed_skip_are_green(tree):
    status, summary, out = run_stages(
        tree,
        "run_stage plain run_pytest test_plain.py\nrun_stage mixed run_pytest test_mixed.py\n",
        allowed="test_mixed.py::test_skips_* | this machine has no etcd on purpose\n",
    )
    assert status == 0, out
    assert "ok" in stage_line(summary, "plain").split()
    assert "2 passed, 0 failed, 0 skipped" in stage_line(summary, "plain")
    assert "1 passed, 0 failed, 1 skipped" in stage_line(summary, "mixed")
    assert (
        "allowed skip: test_mixed.py::test_skips_inside (no etcd here; "
        "listed: this machine has no etcd on purpose)" in summary
    ), summary
    assert "all stages passed" in summary
    assert summary.strip().splitlines()[-1] == "total: 3 passed, 0 failed, 1 skipped"


def test_empty_skipped_failed_and_hung_stages_are_red(tree):
    status, summary, out = run_stages(
        tree,
        "stage_timeout[hung]=2\n"
        "run_stage deselected run_pytest test_plain.py -k nomatch\n"
        "run_stage allskipped run_pytest test_skips.py\n"
        "run_stage oneskip run_pytest test_mixed.py\n"
        "run_stage failing run_pytest test_broken.py\n"
        "run_stage hung run_pytest test_hangs.py\n"
        "run_stage plain run_pytest test_plain.py\n",
        extra="-k nomatch",
    )
    assert status != 0, out
    lines = {
        name: stage_line(summary, name)
        for name in ("deselected", "allskipped", "oneskip", "failing", "hung", "plain")
    }
    assert all("FAILED" in lines[n].split() for n in lines if n != "plain"), summary
    assert "ok" in lines["plain"].split()
    assert "selected nothing (pytest arguments '-k nomatch'; 2 deselected)" in lines["deselected"]
    assert "no test passed" in lines["allskipped"]
    assert (
        "skips not on the allowed list: test_skips.py::test_needs_thing "
        "(needs a thing this machine lacks)" in lines["allskipped"]
    )
    assert "1 passed, 0 failed, 1 skipped" in lines["oneskip"]
    assert "test_mixed.py::test_skips_inside (no etcd here)" in lines["oneskip"]
    assert "0 passed, 1 failed, 0 skipped: pytest exit status 1" in lines["failing"]
    assert "0 passed, 1 failed" in lines["hung"]
    assert "Timeout" in out and "time.sleep(30)" in out  # pytest-timeout's stack of the hang
    assert "failed stages: deselected allskipped oneskip failing hung" in summary


def test_a_stage_with_no_tests_at_all_is_red(tree):
    (tree / "empty").mkdir()
    status, summary, out = run_stages(tree, "run_stage empty run_pytest empty\n")
    assert status != 0, out
    assert "selected nothing (its marker; 0 deselected)" in stage_line(summary, "empty")


def test_only_the_chosen_stages_run_and_an_unknown_one_is_red(tree):
    script = (
        "run_stage plain run_pytest test_plain.py\nrun_stage failing run_pytest test_broken.py\n"
    )
    status, summary, out = run_stages(tree, script, stages="plain")
    assert status == 0, out
    assert "not run (--stage): failing" in summary
    status, summary, out = run_stages(tree, script, stages="plain nosuch")
    assert status != 0, out
    assert "unknown stage: nosuch" in summary
