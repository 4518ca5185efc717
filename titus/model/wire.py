"""Numbers and switches as clients send them in JSON.

Pydantic's lax mode reads `true` as 1 and `0` as false; protobuf-JSON parsers, which
Titus's clients are written against, refuse both, and so does every field typed here.
They do take numbers as numeric strings (protobuf-JSON sends 64-bit numbers so, and
Spinnaker a capacity's 32-bit ones too) and switches as "true" or "false", so those stay
accepted. The JSON Schema of each is its plain type's.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError


def _not_a_switch(value: Any) -> Any:
    if isinstance(value, bool):
        raise PydanticCustomError("number_type", "must be a number")
    return value  # a numeric string (protobuf-JSON) is read as the number, or refused


def _a_switch(value: Any) -> Any:
    if not isinstance(value, bool) and value not in ("true", "false"):
        raise PydanticCustomError("bool_type", "must be true or false")
    return value


#: A number a client sends: a JSON number or a numeric string, as protobuf-JSON takes it
#: (Spinnaker sends a capacity's numbers as strings), but not `true`.
Number = Annotated[float, BeforeValidator(_not_a_switch)]
#: An integer a client sends, read as Number is.
Int = Annotated[int, BeforeValidator(_not_a_switch)]
#: A switch a client sends: `true` or `false` (or those as strings, as protobuf-JSON takes
#: them), not 0, 1 or "yes".
Switch = Annotated[bool, BeforeValidator(_a_switch)]
