"""Hypothesis runs print their seed, and that seed gives the same examples again.

Runs pytest on a one-test tree with this suite's tests/conftest.py as a plugin: the
test writes every example Hypothesis draws to a file.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]

DRAWS = """\
import os
from hypothesis import given, settings, strategies as st

@settings(max_examples=20, database=None)
@given(st.integers())
def test_draws(value):
    with open(os.environ["DRAWN"], "a") as out:
        out.write(f"{value}\\n")
"""


def run_draws(tree: Path, *args: str) -> tuple[str, list[str]]:
    drawn = tree / f"drawn-{len(list(tree.glob('drawn-*')))}"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "_hypothesis_pytestplugin", "-p", "conftest",
         "-p", "no:cacheprovider", *args, str(tree / "test_draws.py")],
        cwd=tree,
        env={
            **os.environ,
            "PYTHONPATH": str(TESTS),
            "DRAWN": str(drawn),
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",  # only Hypothesis's: start-up is the cost
        },
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout, drawn.read_text().splitlines()


def test_the_printed_seed_reproduces_the_examples(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_draws.py").write_text(DRAWS)
    header, first = run_draws(tmp_path)
    seed = re.search(r"hypothesis seed: (\d+) \(reproduce with --hypothesis-seed=\1\)", header)
    assert seed, header
    _, again = run_draws(tmp_path, f"--hypothesis-seed={seed.group(1)}")
    assert again == first
    _, other = run_draws(tmp_path, f"--hypothesis-seed={int(seed.group(1)) + 1}")
    assert other != first
