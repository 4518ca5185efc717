"""Prints the chaos table after the session, whether the scenarios passed or not."""

from __future__ import annotations

import pytest

from tests.chaos.report import RESULTS, table


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if RESULTS:
        terminalreporter.section("chaos")
        terminalreporter.write_line(table(RESULTS))
        for outcome in RESULTS:
            for breach in outcome.breaches[:20]:
                terminalreporter.write_line(f"{outcome.scenario}: {breach[:400]}")
