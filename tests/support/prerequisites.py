"""What a test does when something it needs is not on the machine: it fails and says what is
missing and how to get it. A skip would hide the gap (a plain install without pymesos, say,
would pass the Mesos tests by not running them), so the suite never skips for a missing
prerequisite.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

#: How pymesos gets installed: pip cannot build its http-parser dependency on Python 3.11.
PYMESOS = "scripts/pymesos.sh installs it (make install runs it), then the `mesos` extra"


def require_module(name: str, install: str) -> ModuleType:
    """Import `name`, or fail the calling test saying it is missing and how to `install` it."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        pytest.fail(f"{name} cannot be imported ({exc}): {install}", pytrace=False)
