"""The reliability figures of a test run: what was exercised, and how often it went wrong.

Tests add what they did to the session's ``figures`` (kills, injected faults, snapshots checked,
hostile restores, canary scans). A failing test in a figure's files counts against it. At the
end of the run the table is printed; ``pytest --figures=FILE`` also writes it as JSON (that is
where docs/reliability.md's numbers come from). Under pytest-xdist each worker sends its counts
to the controller when it finishes.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

#: figure -> (what counts as a failure of it, the test files whose failures count)
FIGURES = {
    "kill -9 trials": ("failed restores", {"test_crash.py"}),
    "live SQLite snapshots restored and integrity-checked": (
        "integrity failures",
        {"test_sqlite.py", "test_optuna.py"},
    ),
    "injected faults": (
        "silent losses or untyped errors",
        {
            "test_local_faults.py",
            "test_fault_matrix.py",
            "test_cloud_faults.py",
            "test_disk_full.py",
            "test_changing_sources.py",
            "test_gdrive_backend.py",
            "test_fault_sweep.py",
        },
    ),
    "journal snapshots restored and replayed": (
        "journals that did not replay",
        {"test_optuna_journal.py"},
    ),
    "trials run by workers sharing a bucket journal": (
        "trials lost or told twice",
        {"test_bucket_journal.py"},
    ),
    "study snapshots taken from a database server while workers wrote": (
        "inconsistent snapshots",
        {"test_study_database.py"},
    ),
    "versions committed by concurrent writers of one name": (
        "versions that did not restore exactly",
        {"test_many_writers.py"},
    ),
    "stalled calls (a silent store)": (
        "calls that did not end within the deadline",
        {"test_cloud_faults.py", "test_fault_matrix.py"},
    ),
    "partial backups (files left out for an error)": (
        "not reported as partial",
        {"test_partial_backups.py"},
    ),
    "permanent errors injected": ("retried", {"test_fault_matrix.py", "test_local_faults.py"}),
    "log records and error texts scanned for canaries": ("canary hits", set()),
    "hostile or damaged restores": ("files written outside the destination", {"test_bad_input.py"}),
}


class Figures:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()

    def add(self, figure: str, n: int = 1) -> None:
        assert figure in FIGURES or figure.startswith(tuple(FIGURES)), figure
        self.counts[figure] += n


_figures = Figures()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--figures", default=None, help="write the reliability figures as JSON")


@pytest.fixture(scope="session")
def figures() -> Figures:
    return _figures


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not report.failed:
        return
    module = Path(report.fspath).name
    for figure, (_, files) in FIGURES.items():
        if module in files:
            _figures.failures[figure] += 1
    if "a credential leaked" in str(report.longrepr):
        _figures.failures["log records and error texts scanned for canaries"] += 1


def pytest_sessionfinish(session: pytest.Session) -> None:
    # An xdist worker hands what its tests did to the controller, which prints the table.
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["mlbackup_figures"] = dict(_figures.counts)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    # Only the counts: failures are counted here, from the reports the workers send.
    _figures.counts.update(getattr(node, "workeroutput", {}).get("mlbackup_figures", {}))


def _table() -> dict[str, dict[str, int]]:
    table = {}
    for figure, (failure, _) in FIGURES.items():
        done = sum(n for key, n in _figures.counts.items() if key.startswith(figure))
        table[figure] = {"count": done, failure: _figures.failures[figure]}
        for key, n in sorted(_figures.counts.items()):
            if key != figure and key.startswith(figure):
                table[figure][key[len(figure) :].strip(" :")] = n
    return table


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    if not _figures.counts:
        return
    table = _table()
    terminalreporter.section("reliability figures")
    for figure, row in table.items():
        details = ", ".join(f"{k}: {v}" for k, v in row.items() if k != "count")
        terminalreporter.write_line(f"{figure}: {row['count']} ({details})")
    path = config.getoption("--figures")
    if path:
        Path(path).write_text(json.dumps(table, indent=2) + "\n")
