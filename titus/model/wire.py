"""Numbers and switches as clients send them in JSON.

Pydantic's lax mode reads `true` as 1, `0` as false and " 05 " as 5; protobuf-JSON
parsers, which Titus's clients are written against, refuse the first two, and so does
every field typed here. Integers are also taken as decimal strings, as protobuf-JSON sends
64-bit ones and Spinnaker a capacity's: written plainly ("5", "-3"; no spaces, sign or
leading zero), so that the description can state exactly which strings are in range
(`describe_decimal_strings`). Other numbers are JSON numbers only, as every encoder writes
them. Switches are `true` or `false`, or those as strings.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

from titus.model.json_schema import DECIMAL_STRING_MARK

#: An integer as a string: what protobuf-JSON writes, and what the description states.
_DECIMAL = re.compile(r"0|-?[1-9][0-9]*")


def _a_number(value: Any) -> Any:
    if isinstance(value, bool | str):
        raise PydanticCustomError("number_type", "must be a number")
    return value


def _an_integer(value: Any) -> Any:
    if isinstance(value, bool):
        raise PydanticCustomError("number_type", "must be a number")
    if isinstance(value, str) and not _DECIMAL.fullmatch(value):
        raise PydanticCustomError(
            "number_type", "must be an integer: a number, or its digits as a string"
        )
    return value


def _a_switch(value: Any) -> Any:
    if not isinstance(value, bool) and value not in ("true", "false"):
        raise PydanticCustomError("bool_type", "must be true or false")
    return value


class _TakesDecimalStrings:
    """Marks an integer's JSON Schema as also taking its decimal string."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema[DECIMAL_STRING_MARK] = True
        return schema


#: A number a client sends: a JSON number, not `true` nor a string.
Number = Annotated[float, BeforeValidator(_a_number)]
#: An integer a client sends: a JSON number or its decimal string, not `true`.
Int = Annotated[int, BeforeValidator(_an_integer), _TakesDecimalStrings()]
#: An integer taken as a JSON number only, for a rule its digits cannot state as a pattern
#: (a multiple of 60, say).
WholeNumber = Annotated[int, BeforeValidator(_a_number)]
#: A switch a client sends: `true` or `false` (or those as strings, as protobuf-JSON takes
#: them), not 0, 1 or "yes".
Switch = Annotated[bool, BeforeValidator(_a_switch)]
