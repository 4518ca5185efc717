"""The dashboard's actions go through the API's own auth: in real headless Chromium over
`titus local` with tokens on, a change without a token is refused with the API's words,
a token of someone who does not own the job is refused too, and the owner's team's token
makes the change, which the job's history puts in that caller's name."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.test_dashboard_views import VIEWPORT, WAIT_MS, chromium_path, example
from tests.support.platform import running_platform

pytestmark = pytest.mark.docker

TOKENS = {
    "tok-bob": {"callerId": "bob", "roles": ["user"]},
    "tok-carol": {"callerId": "carol", "teams": ["team@example.com"]},
}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("dashboard-auth")
    tokens = tmp / "tokens.json"
    tokens.write_text(json.dumps(TOKENS))
    with running_platform(tmp, {"TITUS_AUTH_TOKENS_FILE": str(tokens)}) as p:
        p.http.headers["Authorization"] = "Bearer tok-carol"  # the test's own reads
        r = p.http.post("/api/v3/jobs", json=example("service-web.json"))
        assert r.status_code == 202, r.text
        yield {"platform": p, "web": r.json()["id"], "tmp": tmp}


@pytest.fixture
def page(guarded: dict[str, Any]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        pg = browser.new_context(viewport=VIEWPORT).new_page()
        pg.set_default_timeout(WAIT_MS)
        yield pg
        browser.close()


def use_token(page: Any, token: str) -> None:
    page.get_by_label("API token").fill(token)
    page.get_by_label("API token").press("Enter")
    page.get_by_text(re.compile(r"^live: \d+ jobs")).wait_for()  # the stream, as this caller


def enabled(guarded: dict[str, Any]) -> bool:
    job = guarded["platform"].job(guarded["web"])
    return bool(job["jobDescriptor"]["service"].get("enabled", True))


def test_dashboard_changes_need_the_token_of_someone_who_may_make_them(
    page: Any, guarded: dict[str, Any]
) -> None:
    p = guarded["platform"]
    page.goto(f"{p.url}/ui/#/job/{guarded['web']}")
    refusal = page.locator("main .bad")
    refusal.wait_for()
    assert "bearer token is required" in refusal.inner_text()
    page.get_by_text(re.compile("observe stream refused")).wait_for()

    use_token(page, "tok-bob")
    page.get_by_role("button", name="Disable").click()
    page.locator(".bad").filter(has_text="Disable:").wait_for()
    assert "bob" in page.locator(".bad").filter(has_text="Disable:").inner_text()
    assert enabled(guarded)

    use_token(page, "tok-carol")
    page.get_by_role("button", name="Disable").click()
    page.get_by_text("Disable: done").wait_for()
    assert not enabled(guarded)
    job = p.job(guarded["web"])
    said = [s.get("reasonMessage", "") for s in [*job["statusHistory"], job["status"]]]
    assert any("disabled by carol" in m for m in said), said
    page.screenshot(path=str(guarded["tmp"] / "auth.png"))
