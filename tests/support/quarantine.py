"""The quarantine is the process's own: tests that fill it empty it again, whatever their
outcome, so no later test starts with records it did not make."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from titus.store.quarantine import QUARANTINE


def empty_quarantine() -> None:
    for record in QUARANTINE.records():
        QUARANTINE.release(record.kind, record.id)


@pytest.fixture
def fresh_quarantine() -> Iterator[None]:
    """An empty quarantine for the test, emptied again after it (even when it fails)."""
    empty_quarantine()
    yield
    empty_quarantine()
