"""Reading a JSON request body defensively: size-bounded, typed, with precise errors."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from titus.api.errors import ApiError
from titus.model.validation import FieldError


async def read_json(request: Request, max_bytes: int) -> Any:
    """The body as JSON, refusing a wrong content type (415), an oversized body (413,
    without reading it whole) and malformed JSON (400 naming the position)."""
    ctype = request.headers.get("content-type", "")
    media = ctype.split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise ApiError(415, f"content type must be application/json, not '{ctype or 'none'}'")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, f"request body of {declared} bytes is over the limit of {max_bytes}")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(413, f"request body is over the limit of {max_bytes} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise ApiError(400, "request body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ApiError(
            400,
            f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno} (char {exc.pos})",
            [FieldError("$", exc.msg)],
        ) from None
