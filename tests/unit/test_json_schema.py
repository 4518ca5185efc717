"""The description's patterns state exactly what the API takes: integers sent as strings
within their range, white space as the API reads it."""

from __future__ import annotations

import re

import pytest
from pydantic import BaseModel

from titus.api.descriptor_schema import EMAIL
from titus.model.json_schema import WHITE_SPACE, describe_decimal_strings, integer_pattern
from titus.model.validation import is_email
from titus.model.wire import Int


@pytest.mark.parametrize(
    ("minimum", "maximum"),
    [
        (0, 0),
        (0, 9),
        (1, 24),
        (5, 864_000),
        (0, 10_000),
        (1, 1_152_000),
        (37, 4_321),
        (-10_000, 10_000),
        (-250, -7),
        (0, None),
        (1, None),
        (120, None),
        (None, None),
        (None, 42),
    ],
)
def test_an_integer_pattern_takes_the_range_and_nothing_else(
    minimum: int | None, maximum: int | None
) -> None:
    pattern = re.compile(integer_pattern(minimum, maximum))
    low = -20_000 if minimum is None else minimum
    high = 2_000_000 if maximum is None else maximum
    for n in range(low - 1_500, min(high, low + 30_000) + 1_500):
        inside = (minimum is None or n >= minimum) and (maximum is None or n <= maximum)
        assert bool(pattern.match(str(n))) == inside, (minimum, maximum, n)
    for n in range(max(low, high - 30_000) - 1_500, high + 1_500):
        inside = (minimum is None or n >= minimum) and (maximum is None or n <= maximum)
        assert bool(pattern.match(str(n))) == inside, (minimum, maximum, n)
    if maximum is None:
        assert pattern.match("9" * 40)
    for spelled in ("05", "-0", "+5", " 5", "5 ", "5.0", "1_000", "", "-"):
        assert not pattern.match(spelled), spelled


class _Body(BaseModel):
    size: Int
    optional: Int | None = None


def test_an_integer_is_described_as_a_number_or_its_digits_within_the_same_range() -> None:
    schema = _Body.model_json_schema()
    schema["properties"]["size"].update({"minimum": 1, "maximum": 24})
    schema["properties"]["optional"]["minimum"] = 0  # beside the optional's anyOf
    describe_decimal_strings(schema)
    size = schema["properties"]["size"]["anyOf"]
    assert size[0] == {"type": "integer", "minimum": 1, "maximum": 24}
    assert size[1]["type"] == "string" and re.match(size[1]["pattern"], "24")
    assert not re.match(size[1]["pattern"], "25") and not re.match(size[1]["pattern"], "0")
    optional = schema["properties"]["optional"]["anyOf"][0]["anyOf"]
    assert optional[0]["minimum"] == 0 and not re.match(optional[1]["pattern"], "-1")
    assert "x-decimal-string" not in str(schema)


def test_white_space_in_a_pattern_is_what_the_api_reads_as_white_space() -> None:
    """JSON Schema's `\\s` is not Python's: the class is written out, and is Python's."""
    white = re.compile(f"[{WHITE_SPACE}]")
    disagree = [hex(c) for c in range(0x110000) if bool(white.match(chr(c))) != chr(c).isspace()]
    assert disagree == []


@pytest.mark.parametrize("space", ["\x1f", "\x85", "\u3000", " ", "\t", "\ufeff"])
def test_the_described_email_pattern_takes_what_validation_takes(space: str) -> None:
    for address in (f"a{space}b@example.com", f"ab@exa{space}mple.com", "ab@example.com"):
        described = re.match(EMAIL, address) is not None
        assert described == is_email(address), repr(address)
