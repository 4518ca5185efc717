"""Reading a JSON request body defensively: size-bounded, typed, with precise errors."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request

from titus.api.errors import ApiError
from titus.api.query import decimal
from titus.model.validation import FieldError

#: How deep objects and arrays may nest in a request body. A job descriptor is about six
#: levels deep; a body nested hundreds deep is an attack on the parsers, not a request.
MAX_JSON_DEPTH = 32

# A JSON string, unterminated ones included. It starts with a quote and its quantifiers
# are possessive (never give back what they matched), so the substitution below scans the
# body once, in C, whatever it holds.
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"?')
_INNERMOST_PAIR = re.compile(rb"\[\]|\{\}")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def nests_deeper_than(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether `raw` nests objects and arrays deeper than `limit`, decided without parsing
    it: strings are dropped, then what remains is cut down to its brackets, and each pass
    removes the innermost pairs; brackets left after `limit` passes nest deeper. Each pass
    is one scan in C, so this is linear in the body's length. Unbalanced brackets are left
    for the parser to refuse as malformed."""
    if raw.count(b"{") + raw.count(b"[") <= limit:
        return False  # fewer brackets in all than may nest: no need to look closer
    skeleton = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    run_too_long = re.compile(rb"[\[{]{%d}" % (limit + 1))
    for _ in range(limit):
        if not skeleton:
            return False
        if run_too_long.search(skeleton):
            return True  # more opened in a row than may nest: no need to peel further
        shorter = _INNERMOST_PAIR.sub(b"", skeleton)
        if len(shorter) == len(skeleton):
            return False  # unbalanced: not JSON at all
        skeleton = shorter
    return bool(skeleton) and _INNERMOST_PAIR.search(skeleton) is not None


async def read_json(request: Request, max_bytes: int) -> Any:
    """The body as JSON, refusing a wrong content type (415), an oversized body (413,
    without reading it whole), a body nested too deeply (400, before any parser recurses
    into it) and malformed JSON (400 naming the position)."""
    headers = request.headers
    check_body_headers(
        headers.get("content-type", ""), headers.get("content-length", ""), max_bytes
    )
    return parse_json(await collect_body(request.stream(), max_bytes))


def check_body_headers(content_type: str, content_length: str, max_bytes: int) -> None:
    """What the headers alone refuse: a content type other than JSON (415), a declared
    length over the limit (413)."""
    media = content_type.split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise ApiError(
            415, f"content type must be application/json, not '{content_type or 'none'}'"
        )
    declared = decimal(content_length, max_digits=20)
    if declared is not None and declared > max_bytes:
        raise ApiError(413, f"request body of {declared} bytes is over the limit of {max_bytes}")


async def collect_body(chunks: AsyncIterator[bytes], max_bytes: int) -> bytes:
    """The body's bytes, refused (413) as soon as they pass `max_bytes`."""
    parts = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(413, f"request body is over the limit of {max_bytes} bytes")
        parts.append(chunk)
    return b"".join(parts) if len(parts) != 1 else parts[0]


def parse_json(raw: bytes) -> Any:
    """`raw` parsed, refusing (400) a body nested too deeply and malformed JSON."""
    if nests_deeper_than(raw):
        raise ApiError(
            400,
            f"request body nests deeper than {MAX_JSON_DEPTH} levels",
            [FieldError("$", f"nests deeper than {MAX_JSON_DEPTH} levels")],
        )
    try:
        return json.loads(raw)
    except RecursionError:  # unbalanced and deep: the parser gave up on it
        raise ApiError(400, "malformed JSON: brackets nested without end") from None
    except UnicodeDecodeError:
        raise ApiError(400, "request body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ApiError(
            400,
            f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno} (char {exc.pos})",
            [FieldError("$", exc.msg)],
        ) from None
