"""JSON Schema fragments for the OpenAPI description, shared by the model and the API.

Validation (titus/model/validation.py) enforces each rule with its own message naming
the field; these fragments only make the description say the same, so that client
generators and fuzzers know what is accepted. They never change what is parsed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

#: White space as the API's checks read it (Python's str.isspace, split and strip), for a
#: character class. JSON Schema's `\s` is ECMA-262's, which lacks \x1c-\x1f and \x85 and
#: has \ufeff: a pattern written with `\s` lets through what the API refuses.
WHITE_SPACE = (
    r"\t\n\u000b\u000c\r\u001c-\u001f \u0085\u00a0\u1680\u2000-\u200a"
    r"\u2028\u2029\u202f\u205f\u3000"
)
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


def describe_one_of_each(
    schema: dict[str, Any],
    *groups: Sequence[str],
    optional: bool = False,
    chosen: str = "object",
) -> None:
    """State in the object `schema` (in place) that exactly one field of each group is given
    (at most one when `optional`): `one_of_each`'s branches as its `anyOf`. Where one must
    be given, the fields of the groups lose their `default` (null): a field's default says
    what leaving it out means, and leaving them all out is no choice at all, so the
    defaults together would describe a value the branches refuse (and a generator that
    starts from the defaults, as the schema fuzzer's coverage phase does, finds none)."""
    schema["anyOf"] = one_of_each(*groups, optional=optional, chosen=chosen)
    if optional:
        return
    for name in (name for group in groups for name in group):
        schema["properties"][name].pop("default", None)


#: The key an integer's schema carries when the API also takes it as a decimal string
#: (titus/model/wire.py); `describe_decimal_strings` replaces it with the string's form.
DECIMAL_STRING_MARK = "x-decimal-string"


def integer_pattern(minimum: int | None, maximum: int | None) -> str:
    """A pattern for the decimal strings (no sign but a leading "-", no leading zero) of
    the integers from `minimum` to `maximum` (None: unbounded), and no others, so that a
    string's range is stated as exactly as a number's."""
    if minimum is not None and maximum is not None and minimum > maximum:
        raise ValueError(f"empty range {minimum}..{maximum}")
    branches = []
    if minimum is None or minimum < 0:
        # the negatives, by their magnitudes
        smallest = 1 if maximum is None or maximum >= 0 else -maximum
        largest = None if minimum is None else -minimum
        branches.append("-(?:" + "|".join(_naturals(smallest, largest)) + ")")
    if maximum is None or maximum >= 0:
        branches.extend(_naturals(max(minimum or 0, 0), maximum))
    return "^(?:" + "|".join(branches) + ")$"


def _naturals(low: int, high: int | None) -> list[str]:
    """Patterns for the digit strings of `low` to `high` (None: unbounded), low >= 0."""
    shortest = len(str(low))
    longest = shortest if high is None else len(str(high))
    branches = []
    for length in range(shortest, longest + 1):
        start = max(low, 10 ** (length - 1) if length > 1 else 0)
        end = 10**length - 1 if high is None else min(high, 10**length - 1)
        branches.append(_same_length(str(start), str(end)))
    if high is None:
        branches.append(f"[1-9][0-9]{{{shortest},}}")
    return branches


def _same_length(low: str, high: str) -> str:
    """The pattern for the digit strings as long as `low` from `low` to `high`."""
    common = 0
    while common < len(low) and low[common] == high[common]:
        common += 1
    prefix, low, high = low[:common], low[common:], high[common:]
    if not low:
        return prefix
    rest = len(low) - 1
    if rest == 0:
        return prefix + _digits(int(low), int(high))
    branches = []
    first, last = int(low[0]), int(high[0])
    if low[1:] != "0" * rest:
        branches.append(low[0] + _same_length(low[1:], "9" * rest))
        first += 1
    tail = None
    if high[1:] != "9" * rest:
        tail = high[0] + _same_length("0" * rest, high[1:])
        last -= 1
    if first <= last:
        branches.append(f"{_digits(first, last)}[0-9]{{{rest}}}")
    if tail is not None:
        branches.append(tail)
    return prefix + "(?:" + "|".join(branches) + ")"


def _digits(first: int, last: int) -> str:
    return str(first) if first == last else f"[{first}-{last}]"


_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def describe_decimal_strings(node: Any, bounds: dict[str, Any] | None = None) -> None:
    """Wherever an integer is also taken as a decimal string (marked so by its type), state
    both forms, each with the same range, in place over a whole OpenAPI document or part.
    A range stated beside an `anyOf` (an optional integer's) holds for its branches."""
    if isinstance(node, list):
        for item in node:
            describe_decimal_strings(item, bounds)
        return
    if not isinstance(node, dict):
        return
    if node.pop(DECIMAL_STRING_MARK, False):
        number = {**(bounds or {}), **node}
        minimum = _inclusive(number.get("minimum"), number.get("exclusiveMinimum"), 1)
        maximum = _inclusive(number.get("maximum"), number.get("exclusiveMaximum"), -1)
        text = {"type": "string", "pattern": integer_pattern(minimum, maximum)}
        node.clear()
        node["anyOf"] = [number, text]
        for key in ("title", "description", "default"):
            if key in number:
                node[key] = number.pop(key)
        return
    around = {key: node[key] for key in _BOUNDS if key in node}
    for key, value in node.items():
        describe_decimal_strings(value, around if key == "anyOf" else None)


def _inclusive(bound: Any, exclusive: Any, step: int) -> int | None:
    """The inclusive integer bound of `bound`/`exclusive` (either may be absent)."""
    candidates = []
    if bound is not None:
        candidates.append(math.ceil(bound) if step > 0 else math.floor(bound))
    if exclusive is not None:
        edge = math.floor(exclusive) + 1 if step > 0 else math.ceil(exclusive) - 1
        candidates.append(edge)
    if not candidates:
        return None
    return max(candidates) if step > 0 else min(candidates)
