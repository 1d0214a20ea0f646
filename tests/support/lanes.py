"""A pytest plugin (`-p tests.support.lanes`, as scripts/test.sh runs it): at the end of the
run, the minutes each lane took — the fast lane on libvirt's fake hypervisor and PostgreSQL,
the real libvirtd lane (tests marked `hypervisor`), the API fuzzing (tests/test_api_fuzz.py), the
portal in Chromium (tests marked `browser`, run within the fast lane's process) — so a slow
lane shows where CI's time goes."""

from __future__ import annotations

from collections import defaultdict

import pytest

_seconds: dict[str, float] = defaultdict(float)
_tests: dict[str, set[str]] = defaultdict(set)
_lane_of: dict[str, str] = {}


def lane(item: pytest.Item) -> str:
    if item.get_closest_marker("hypervisor"):
        return "hypervisor (real libvirtd)"
    if item.nodeid.startswith("tests/test_api_fuzz.py::"):
        return "fuzz (schemathesis)"  # review item 12: must stay under three minutes
    if item.get_closest_marker("browser"):
        return "browser (chromium)"
    return "fast"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    _lane_of.update({item.nodeid: lane(item) for item in items})


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    name = _lane_of.get(report.nodeid, "fast")
    _seconds[name] += report.duration  # setup, call and teardown
    _tests[name].add(report.nodeid)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _seconds:
        return
    terminalreporter.section("lanes")
    for name in sorted(_seconds):
        minutes = _seconds[name] / 60
        terminalreporter.write_line(f"{name:28} {len(_tests[name]):5} tests  {minutes:5.1f} min")
