"""`/ui`: the dashboard's static files (titus/api/ui/), served from the package.

No build step and nothing fetched from elsewhere: the page is plain HTML, CSS and JS over
the API's own REST endpoints and observe stream, so it runs wherever the API runs. Only the
files in that directory are served: a name is looked up in a fixed table made at import,
never joined to a path, so no request can read anything else.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from titus.api.errors import ApiError

UI_DIR = Path(__file__).with_name("ui")
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
FILES = {p.name: p for p in UI_DIR.iterdir() if p.suffix in TYPES} if UI_DIR.is_dir() else {}

router = APIRouter(tags=["dashboard"], include_in_schema=False)


@router.get("/ui")
def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/")


@router.get("/ui/{name:path}")
def ui_file(name: str) -> Response:
    path = FILES.get(name or "index.html")
    if path is None:
        raise ApiError(404, f"no dashboard file {name}")
    media = TYPES[path.suffix]
    charset = "" if media.startswith("image/") else "; charset=utf-8"
    return Response(
        path.read_bytes(), media_type=media + charset, headers={"Cache-Control": "no-cache"}
    )
