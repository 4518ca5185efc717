"""The dashboard at /ui in a real headless Chromium (Debian's, driven by Playwright through
its executable path), over `titus local` running real containers: one test per view,
checking what a person reads there, each saving a screenshot at 1366x768.

The browser comes from scripts/chromium.sh; these tests skip (saying why) only when it
cannot be installed. Screenshots go to the test's temporary directory;
TITUS_DASHBOARD_SHOTS=DIR keeps them (docs/dashboard.png is the cluster view's).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.platform import Platform, running_platform
from tests.support.setup_script import run_setup_script

pytestmark = pytest.mark.docker

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
VIEWPORT = {"width": 1366, "height": 768}
WAIT_MS = 20_000


def example(name: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((EXAMPLES / name).read_text())
    body.update(changes)
    return body


def chromium_path() -> str:
    try:
        path = run_setup_script("chromium.sh", "CHROMIUM", timeout=900)
    except (RuntimeError, OSError) as exc:
        pytest.skip(f"chromium cannot be installed here: {exc}")
    if not path:
        pytest.skip("scripts/chromium.sh found no chromium")
    return path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One platform for the module's views: a running service, a batch job that printed,
    and a job no host can take now (each task asks for every CPU of the one host, which
    the others already use part of)."""
    tmp = tmp_path_factory.mktemp("dashboard")
    with running_platform(tmp) as p:
        web = p.submit(example("service-web.json", applicationName="webfront"))
        hello = batch(p, "echo dashboard-says-hello; sleep 300")
        p.wait_for("the service to run", lambda: p.running(web))
        p.wait_for("the batch task to run", lambda: p.running(hello))
        big = example("batch-hello.json", applicationName="toobig")
        big["container"]["resources"]["cpu"] = 2.0
        big["batch"]["size"] = 3
        waiting = p.submit(big)
        p.wait_for(
            "the big tasks to be found unplaceable",
            lambda: (
                all(
                    p.http.get(f"/api/v3/scheduler/results/{t['id']}").json()["hostsConsidered"] > 0
                    for t in p.tasks(waiting)
                )
                and len(p.tasks(waiting)) == 3
            ),
        )
        yield {"platform": p, "web": web, "hello": hello, "waiting": waiting, "tmp": tmp}


def batch(p: Platform, command: str) -> str:
    body = example("batch-hello.json", applicationName="printer")
    body["container"]["command"] = [command]
    return p.submit(body)


@pytest.fixture(scope="module")
def browser(cluster: dict[str, Any]) -> Iterator[Any]:
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright package is missing: `make install` installs the test tools")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, cluster: dict[str, Any]) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT)
    pg = context.new_page()
    pg.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert not errors, f"the page raised: {errors}"


def shot(page: Any, cluster: dict[str, Any], name: str) -> Path:
    directory = Path(os.environ.get("TITUS_DASHBOARD_SHOTS") or cluster["tmp"] / "shots")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 0
    return path


def open_view(page: Any, cluster: dict[str, Any], view: str) -> None:
    page.goto(f"{cluster['platform'].url}/ui/#/{view}")
    page.get_by_text(re.compile(r"^live: ")).wait_for()


def test_cluster_view_shows_jobs_tasks_queue_and_capacity(
    page: Any, cluster: dict[str, Any]
) -> None:
    open_view(page, cluster, "cluster")
    page.get_by_role("heading", name="Capacity groups").wait_for()
    cards = page.locator(".card")
    active = cards.filter(has_text="active jobs").locator(".n")
    assert int(active.inner_text()) == 3
    assert int(cards.filter(has_text="queued in Flex").locator(".n").inner_text()) == 3
    assert int(cards.filter(has_text="launches in the last minute").locator(".n").inner_text()) >= 2
    default = page.get_by_role("row").filter(has_text="DEFAULT")
    assert "Flex" in default.inner_text()
    shot(page, cluster, "cluster")


def test_jobs_view_searches_and_shows_a_jobs_tasks_logs_and_actions(
    page: Any, cluster: dict[str, Any]
) -> None:
    open_view(page, cluster, "jobs")
    page.get_by_label("applicationName").fill("printer")
    page.get_by_label("applicationName").press("Enter")
    page.get_by_text("1 jobs").wait_for()
    page.get_by_role("link", name=cluster["hello"]).click()
    page.get_by_role("heading", name=re.compile("printer")).wait_for()
    history = page.locator(".history").first.inner_text()
    assert re.search(r"Accepted .* → Launched .* → StartInitiated .* → Started", history)
    page.get_by_role("button", name="Live logs").first.click()
    page.locator("#logs").get_by_text("dashboard-says-hello").wait_for()
    shot(page, cluster, "job")
    # actions go through the API with its auth; a batch job is killed from here
    page.get_by_role("button", name="Kill job").click()
    page.get_by_text("Kill job: done").wait_for()
    p = cluster["platform"]
    p.wait_for(
        "the killed job to finish", lambda: p.job(cluster["hello"])["status"]["state"] == "Finished"
    )


def test_service_job_resize_and_disable_from_its_page(page: Any, cluster: dict[str, Any]) -> None:
    p = cluster["platform"]
    page.goto(f"{p.url}/ui/#/job/{cluster['web']}")
    page.get_by_role("button", name="Resize").wait_for()
    page.get_by_label("desired").fill("2")
    page.get_by_label("max").fill("3")
    page.get_by_role("button", name="Resize").click()
    page.get_by_text("Resize: done").wait_for()
    capacity = p.job(cluster["web"])["jobDescriptor"]["service"]["capacity"]
    assert capacity["desired"] == 2 and capacity["max"] == 3
    page.get_by_role("button", name="Disable").click()
    page.get_by_text("Disable: done").wait_for()
    assert p.job(cluster["web"])["jobDescriptor"]["service"]["enabled"] is False
    page.get_by_role("button", name="Enable").click()
    page.get_by_text("Enable: done").wait_for()
    assert p.job(cluster["web"])["jobDescriptor"]["service"]["enabled"] is True


def test_pending_view_groups_waiting_tasks_by_reason(page: Any, cluster: dict[str, Any]) -> None:
    open_view(page, cluster, "pending")
    page.get_by_text("3 tasks wait for placement").wait_for()
    rows = page.get_by_role("row").filter(has_text="no host fits")
    assert rows.count() == 1  # three tasks, one reason: one line
    cells = rows.first.locator("td").all_inner_texts()
    assert cells[1] == "3" and cells[2] == "1" and cells[3] == "1"
    assert re.search(r"\w+: 1", cells[4])  # the rule that refused the host, and how many
    shot(page, cluster, "pending")


def test_hosts_view_shows_health_usage_and_phases_out(page: Any, cluster: dict[str, Any]) -> None:
    p = cluster["platform"]
    open_view(page, cluster, "hosts")
    host = page.get_by_role("row").filter(has_text=p.agent_id)
    host.wait_for()
    text = host.inner_text()
    assert "healthy" in text and "unhealthy" not in text
    assert re.search(r"\d+(\.\d+)? / \d+", text)  # CPU used of total
    shot(page, cluster, "hosts")
    group = page.get_by_role("row").filter(has_text="Phase out")
    name = group.locator("td").first.inner_text()
    group.get_by_role("button").click()
    page.get_by_role("button", name=f"Activate {name}").wait_for()
    groups = p.http.get("/api/v3/instanceGroups").json()["items"]
    assert {g["id"]: g["lifecycleState"] for g in groups}[name] == "phasedOut"
    page.get_by_role("button", name=f"Activate {name}").click()
    page.get_by_role("button", name=f"Phase out {name}").wait_for()


def test_slo_view_shows_submit_to_start_and_failovers(page: Any, cluster: dict[str, Any]) -> None:
    open_view(page, cluster, "slos")
    page.get_by_role("heading", name="Submit to start").wait_for()
    assert "Leader: known" in page.locator("main").inner_text()
    measured = page.get_by_role("row").filter(has_text="every start since the master began")
    cells = measured.locator("td").all_inner_texts()
    assert int(cells[1]) >= 2 and float(cells[2]) > 0 and float(cells[3]) >= float(cells[2])
    failover = page.get_by_role("row").filter(has_text="last failover")
    assert float(failover.locator("td").nth(1).inner_text()) >= 0
    shot(page, cluster, "slos")


def test_slo_view_shows_a_failed_tasks_reason(page: Any, cluster: dict[str, Any]) -> None:
    """A batch task that exits non-zero: its reason shows in "Task failures by reason",
    counted, as a person on call reads it there."""
    p: Platform = cluster["platform"]
    failing = batch(p, "echo about to fail; exit 3")
    p.wait_job_finished(failing)
    [task] = p.tasks(failing)  # finished tasks of the jobs named are listed too
    reason = task["status"]["reasonCode"]
    assert reason == "failed", task["status"]
    open_view(page, cluster, "slos")
    section = page.locator("section").filter(
        has=page.get_by_role("heading", name="Task failures by reason")
    )
    failed = section.get_by_role("row").filter(
        has=page.get_by_role("cell", name=reason, exact=True)
    )
    failed.wait_for()
    assert section.get_by_role("row").first.locator("th").all_inner_texts() == ["Reason", "Count"]
    cells = failed.locator("td").all_inner_texts()
    assert cells[0] == reason and int(cells[1]) >= 1
    assert "normal" not in section.inner_text()  # a task that succeeded is no failure
    shot(page, cluster, "slos-failures")


def test_views_are_reached_by_keyboard(page: Any, cluster: dict[str, Any]) -> None:
    open_view(page, cluster, "cluster")
    page.keyboard.press("Tab")  # the skip link comes first
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Pending":
            break
    page.keyboard.press("Enter")
    page.get_by_text("3 tasks wait for placement").wait_for()
    assert page.evaluate("document.activeElement.id") == "main"
