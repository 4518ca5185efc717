"""JSON Schema fragments for the OpenAPI description, shared by the model and the API.

Validation (titus/model/validation.py) enforces each rule with its own message naming
the field; these fragments only make the description say the same, so that client
generators and fuzzers know what is accepted. They never change what is parsed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
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


def one_of_each(
    *groups: Sequence[str], optional: bool = False, chosen: str = "object"
) -> list[dict[str, Any]]:
    """Branches for "exactly one field of each group" (or "at most one" when `optional`):
    one per choice, naming the picked fields as present (of type `chosen`) and every other
    field of the groups absent or null, which is how validation counts them (a null is as
    good as absent). The branches exclude each other, so as `anyOf` they say what `oneOf`
    would, and generators pick one branch and fill it instead of drawing bodies and
    throwing away those that match two."""
    fields = [name for group in groups for name in group]
    choices: list[tuple[str, ...]] = [()]
    for group in groups:
        options: list[tuple[str, ...]] = [(name,) for name in group]
        if optional:
            options.append(())
        choices = [picked + option for picked in choices for option in options]
    return [
        {
            **({"required": list(picked)} if picked else {}),
            "properties": {name: {"type": chosen if name in picked else "null"} for name in fields},
        }
        for picked in choices
    ]
