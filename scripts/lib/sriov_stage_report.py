"""What one pytest stage of scripts/test.sh ran, and whether that counts as a pass.

As a pytest plugin (``pytest -p sriov_stage_report``, with this directory on
PYTHONPATH) it writes, when ``SRIOV_STAGE_REPORT`` names a file, a JSON record of
the session: pytest's exit status, how many tests were collected and deselected,
and the outcome of every test by node id (with the reason of a skip).

As a script (``python sriov_stage_report.py REPORT --allowed FILE``) it judges that
record and prints one line: a stage passes only if pytest passed, at least one test
ran, and every skipped test matches a pattern on the allowed list (a reviewed file,
one ``PATTERN | REASON`` a line, PATTERN an fnmatch pattern of node ids). It prints
``ok`` or ``FAILED`` with the counts and the reason, then one line per skip it
accepted. Exit status 0 for a pass, 1 otherwise.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

REPORT_VARIABLE = "SRIOV_STAGE_REPORT"


# ---- the pytest plugin ----------------------------------------------------------------


class StageRecorder:
    """Collects every test's outcome; writes them when the session ends."""

    def __init__(self, path: Path):
        self.path = path
        self.collected = 0
        self.deselected = 0
        self.outcomes: dict[str, str] = {}
        self.skip_reasons: dict[str, str] = {}

    def pytest_deselected(self, items) -> None:
        self.deselected += len(items)

    def pytest_collection_finish(self, session) -> None:
        self.collected = len(session.items)

    def pytest_runtest_logreport(self, report) -> None:
        nodeid = report.nodeid
        if report.failed:
            self.outcomes[nodeid] = "failed"
        elif report.skipped and self.outcomes.get(nodeid) != "failed":
            # a skip in setup or call, or an xfail (a test that did not show it works)
            self.outcomes[nodeid] = "skipped"
            self.skip_reasons[nodeid] = _skip_reason(report)
        elif report.when == "call" and nodeid not in self.outcomes:
            self.outcomes[nodeid] = "passed"

    def pytest_sessionfinish(self, session, exitstatus) -> None:
        record = {
            "exitstatus": int(exitstatus),
            "collected": self.collected,
            "deselected": self.deselected,
            "outcomes": self.outcomes,
            "skip_reasons": self.skip_reasons,
        }
        self.path.write_text(json.dumps(record, indent=1, sort_keys=True))


def _skip_reason(report) -> str:
    if hasattr(report, "wasxfail"):
        return f"xfail: {report.wasxfail}"
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def pytest_configure(config) -> None:
    path = os.environ.get(REPORT_VARIABLE)
    if path:
        config.pluginmanager.register(StageRecorder(Path(path)), "sriov-stage-recorder")


# ---- the verdict ----------------------------------------------------------------------


@dataclass(frozen=True)
class AllowedSkip:
    pattern: str
    reason: str


def read_allowed(path: Path) -> list[AllowedSkip]:
    """The allowed-skips list: ``PATTERN | REASON`` lines; ``#`` comments and blanks ignored."""
    allowed = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        pattern, bar, reason = (part.strip() for part in text.partition("|"))
        if not bar or not pattern or not reason:
            raise ValueError(f"{path}:{number}: want 'PATTERN | REASON', got {line!r}")
        allowed.append(AllowedSkip(pattern, reason))
    return allowed


@dataclass(frozen=True)
class Verdict:
    ok: bool
    line: str
    accepted: list[str]  # one line per allowed skip


def judge(record: dict, allowed: list[AllowedSkip], extra_args: str = "") -> Verdict:
    outcomes: dict[str, str] = record["outcomes"]
    counts = {
        kind: sum(1 for outcome in outcomes.values() if outcome == kind)
        for kind in ("passed", "failed", "skipped")
    }
    text = f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped"
    if record["collected"] == 0:
        what = f"pytest arguments {extra_args!r}" if extra_args else "its marker"
        return Verdict(False, f"selected nothing ({what}; {record['deselected']} deselected)", [])
    accepted, refused = [], []
    for nodeid, outcome in sorted(outcomes.items()):
        if outcome != "skipped":
            continue
        reason = record["skip_reasons"].get(nodeid, "")
        match = next((a for a in allowed if fnmatch.fnmatchcase(nodeid, a.pattern)), None)
        if match is None:
            refused.append(f"{nodeid} ({reason})")
        else:
            accepted.append(f"allowed skip: {nodeid} ({reason}; listed: {match.reason})")
    problems = []
    if record["exitstatus"] != 0:
        problems.append(f"pytest exit status {record['exitstatus']}")
    if counts["passed"] == 0:
        problems.append("no test passed")
    if refused:
        problems.append("skips not on the allowed list: " + "; ".join(refused))
    if problems:
        return Verdict(False, f"{text}: " + ", ".join(problems), accepted)
    return Verdict(True, text, accepted)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="the JSON file the plugin wrote")
    parser.add_argument("--allowed", type=Path, required=True, help="the allowed-skips list")
    parser.add_argument("--extra-args", default="", help="pytest arguments given by the user")
    args = parser.parse_args(argv)
    try:
        record = json.loads(args.report.read_text())
    except (OSError, ValueError) as exc:
        print(f"no report from pytest ({exc})")
        return 1
    try:
        allowed = read_allowed(args.allowed) if args.allowed.exists() else []
    except ValueError as exc:
        print(f"bad allowed-skips list: {exc}")
        return 1
    verdict = judge(record, allowed, args.extra_args)
    print(verdict.line)
    for line in verdict.accepted:
        print(f"  {line}")
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
