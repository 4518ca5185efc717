"""The REST client behind the user and operator commands: the connection (address,
caller, token), refusals as messages, paging, and tables for people."""

from __future__ import annotations

import json
import os
import ssl
import stat
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

DEFAULT_URL = "127.0.0.1:7001"
#: Where the CLI looks for a token when neither --token-file nor TITUS_TOKEN says.
DEFAULT_TOKEN_FILE = Path("~/.config/titus/token")
#: A token is a line, not a document: a larger file is not a token file.
TOKEN_FILE_MAX_BYTES = 4096


class CommandError(Exception):
    pass


def _base(url: str) -> str:
    return url if url.startswith(("http://", "https://")) else f"http://{url}"


def find_token(token_file: str = "") -> str:
    """The bearer token the CLI sends: from `--token-file`, else `TITUS_TOKEN`, else the
    file `TITUS_TOKEN_FILE` names, else ~/.config/titus/token if it exists; "" for none.

    A token file that others may read is refused, as ssh refuses such a key: a token in
    it is no longer a secret."""
    if not token_file and os.environ.get("TITUS_TOKEN", "").strip():
        return os.environ["TITUS_TOKEN"].strip()
    explicit = token_file or os.environ.get("TITUS_TOKEN_FILE", "")
    path = Path(explicit or DEFAULT_TOKEN_FILE).expanduser()
    try:
        info = path.stat()
    except FileNotFoundError:
        if explicit:
            raise CommandError(f"token file {path} does not exist") from None
        return ""
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CommandError(f"token file {path} is open to other users: chmod 600 {path}")
    if info.st_size > TOKEN_FILE_MAX_BYTES:
        raise CommandError(f"token file {path} is larger than a token ({info.st_size} bytes)")
    token = path.read_text().strip()
    if not token or any(c.isspace() for c in token):
        raise CommandError(f"token file {path} must hold one token on one line")
    return token


def ca_file(given: str = "") -> str:
    """The CA bundle an https API is checked against: `--ca-file`, else `TITUS_CA_FILE`,
    else "" (the system's trust store)."""
    path = given or os.environ.get("TITUS_CA_FILE", "")
    if path and not Path(path).expanduser().is_file():
        raise CommandError(f"CA file {path} does not exist")
    return str(Path(path).expanduser()) if path else ""


class Api:
    def __init__(self, url: str, caller: str = "", token: str = "", ca: str = ""):
        headers = {"X-Titus-CallerId": caller} if caller else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca) if ca else True
        self.http = httpx.Client(base_url=_base(url), timeout=30.0, headers=headers, verify=verify)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            r = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise CommandError(f"cannot reach the API at {self.http.base_url}: {exc}") from None
        if r.status_code >= 400:
            raise refusal(r)
        return r.json() if r.content else {}


def refusal(r: httpx.Response) -> CommandError:
    """The API's refusal as a message: status, message and each problem by field."""
    try:
        body = r.json()
        message = body.get("message", r.text)
        for e in body.get("errors", []):
            message += f"\n  {e['path']}: {e['message']}"
    except ValueError:
        message = r.text
    return CommandError(f"{r.status_code}: {message}")


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


Row = Callable[[dict[str, Any]], list[str]]


def all_pages(api: Api, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    params = {**params, "pageSize": "500"}
    while True:
        page = api.call("GET", path, params=params)
        items.extend(page["items"])
        if not page["pagination"]["hasMore"]:
            return items
        params["cursor"] = page["pagination"]["cursor"]


def listing(
    api: Api, path: str, params: dict[str, str], row: Row, header: list[str]
) -> tuple[list[dict[str, Any]], str]:
    """Every item of a paged listing, and its table."""
    items = all_pages(api, path, params)
    return items, table([row(item) for item in items], header)


def detail(api: Api, path: str, row: Row, header: list[str]) -> tuple[dict[str, Any], str]:
    """One resource, and its table row followed by its whole JSON document."""
    item = api.call("GET", path)
    return item, table([row(item)], header) + "\n\n" + json.dumps(item, indent=2)


def read_json_file(name: str, what: str) -> Any:
    """A JSON document from a file, or from standard input for `-`."""
    try:
        return json.loads(sys.stdin.read() if name == "-" else Path(name).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CommandError(f"cannot read {what} {name}: {exc}") from None


def key_values(pairs: Sequence[str], what: str) -> dict[str, str]:
    """`key=value` arguments as a mapping; a pair without `=` is refused by name."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CommandError(f"{what} must be key=value, got {pair!r}")
        out[key] = value
    return out
