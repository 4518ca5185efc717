"""JSON Schema fragments for the OpenAPI description, shared by the model and the API.

Validation (titus/model/validation.py) enforces each rule with its own message naming
the field; these fragments only make the description say the same, so that client
generators and fuzzers know what is accepted. They never change what is parsed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

PERCENTAGE: dict[str, Any] = {"minimum": 0, "maximum": 100}
COUNT: dict[str, Any] = {"minimum": 0}
POSITIVE: dict[str, Any] = {"exclusiveMinimum": 0}


def one_of_pattern(values: Iterable[str]) -> str:
    """A pattern for one of `values`, in any case (as the API matches them), written
    without inline flags so that every regular-expression dialect reads it alike."""
    cased = (
        "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in v)
        for v in values
    )
    return "(?:" + "|".join(cased) + ")"
