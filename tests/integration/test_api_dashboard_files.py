"""The dashboard's files as the API serves them: the page and its assets under /ui with
their types, nothing outside the package's ui directory, and no reference to elsewhere."""

from __future__ import annotations

import re
from pathlib import Path

from tests.integration.test_api_app import api


def test_the_page_and_its_assets_are_served_and_nothing_else(tmp_path: Path) -> None:
    with api(tmp_path) as (http, _):
        r = http.get("/ui", follow_redirects=False)
        assert r.status_code in (302, 307) and r.headers["location"] == "/ui/"
        page = http.get("/ui/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assets = re.findall(r'(?:src|href)="([^"#]+)"', page.text)
        assert sorted(assets) == ["app.js", "style.css"]
        for name in assets:
            r = http.get(f"/ui/{name}")
            assert r.status_code == 200 and "http://" not in r.text and "https://" not in r.text
        assert http.get("/ui/app.js").headers["content-type"].startswith("text/javascript")
        for bad in ("/ui/../app.py", "/ui/%2e%2e/app.py", "/ui/nothing.js", "/ui/ui/app.js"):
            assert http.get(bad).status_code == 404, bad
