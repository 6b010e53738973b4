"""The web console end to end in a real headless Chromium against a real `keel serve` on 127.0.0.1.

Sign-in (also with the keyboard alone), the overview's charts, finding a request and its
waterfall, a user who may not read hr seeing nothing of it, and a release promoted and
rolled back on the Releases page with its audit records. Every page visited is saved as a
full-page screenshot under test-artifacts/console/ (or $KEEL_TEST_ARTIFACTS/console/).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from tests.integration.conftest import RunningServer, auth, small_project, start_server, stop_server
from tests.support.database import database_at

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[2]

CONTRACT = """
models:
  - {name: extractive, provider: extractive, tier: extractive}
  - {name: smollm2-135m, max_output_tokens: 12}
routing:
  cache: {exact: false, semantic: false}
sources:
  - {name: all-staff, path: all-staff, groups: [everyone]}
  - {name: hr, path: hr, groups: [hr]}
releases:
  - {name: r1, description: the first release, model: extractive, prompt: answer@2}
  - {name: r2, description: "the same triple, shipped again", model: extractive, prompt: answer@2}
apps:
  - {name: default, release: r1}
rollout:
  gate_suite: evals/gate.yaml
"""
PRINCIPALS = {
    "tenant": "larkspur",
    "principals": [
        {"id": "ada.admin", "groups": [], "roles": ["user", "admin"]},
        {"id": "hana.hr", "groups": ["hr"], "roles": ["user"]},
        {"id": "sam.staff", "groups": [], "roles": ["user"]},
    ],
}
GATE_SUITE = {
    "name": "console-gate",
    "principals": "../principals.yaml",
    "k": 3,
    "cases": [
        {
            "id": "leave",
            "question": "How many days of annual leave do employees get each year?",
            "asker": "sam.staff",
            "expect": {"relevant": [{"doc": "all-staff/annual-leave-policy.md", "grade": 2}], "mode": "answer"},
        },
        {
            "id": "payroll",
            "question": "On which day of the month is salary paid?",
            "asker": "sam.staff",
            "expect": {"relevant": [{"doc": "all-staff/payroll-dates.md", "grade": 2}], "mode": "answer"},
        },
    ],
}
HR_QUESTION = "What are the salary bands for 2026?"
STAFF_QUESTION = "How many days of annual leave do employees get each year?"


@dataclass(frozen=True, kw_only=True)
class Console:
    """A served project, its keys, and what the hr source holds."""

    root: Path
    server: RunningServer
    keys: dict[str, str]
    hr_chunk_ids: list[str]
    hr_titles: list[str]


def _hr_contents(root: Path) -> tuple[list[str], list[str]]:
    db = database_at(root / ".keel" / "keel.db")
    try:
        conn = db.connection()
        sql = "SELECT chunk_id FROM chunks JOIN documents USING (doc_id) WHERE source = 'hr'"
        chunks = [r[0] for r in conn.execute(sql)]
        titles = [r[0] for r in conn.execute("SELECT title FROM documents WHERE source = 'hr'")]
    finally:
        db.close()
    return chunks, titles


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[Console]:
    from keel.identity import KeyStore
    from tests.support.database import database_at

    root = tmp_path_factory.mktemp("console") / "proj"
    small_project(root, embedder, folders=["all-staff", "hr"], contract=CONTRACT)
    (root / "principals.yaml").write_text(yaml.safe_dump(PRINCIPALS, sort_keys=False), encoding="utf-8")
    (root / "evals").mkdir()
    (root / "evals" / "gate.yaml").write_text(yaml.safe_dump(GATE_SUITE, sort_keys=False), encoding="utf-8")
    db = database_at(root / ".keel" / "keel.db")
    try:
        store = KeyStore(db)
        keys = {
            p["id"]: store.create(principal_id=p["id"], tenant="larkspur", groups=p["groups"], roles=p["roles"]).secret
            for p in PRINCIPALS["principals"]
        }
    finally:
        db.close()
    chunks, titles = _hr_contents(root)
    assert chunks and titles
    server = start_server(root, root.parent / "server.log")
    yield Console(root=root, server=server, keys=keys, hr_chunk_ids=chunks, hr_titles=titles)
    stop_server(server)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "scripts/test installs Debian's chromium"
    launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    yield launched
    launched.close()


@pytest.fixture
def page(browser: Browser, console: Console) -> Iterator[Page]:
    context = browser.new_context(base_url=console.server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    opened = context.new_page()
    yield opened
    context.close()


def artifacts() -> Path:
    base = Path(os.environ["KEEL_TEST_ARTIFACTS"]) if os.environ.get("KEEL_TEST_ARTIFACTS") else REPO / "test-artifacts"
    folder = base / "console"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(artifacts() / f"{name}.png"), full_page=True)


def sign_in(page: Page, key: str, *, next_path: str = "") -> None:
    page.goto("/console/login" + (f"?next={next_path}" if next_path else ""))
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


@pytest.fixture(scope="module")
def asked(console: Console) -> dict[str, str]:
    """One request by the hr user about an hr document, one by the other user: their request ids."""
    ids = {}
    for who, question in (("hana.hr", HR_QUESTION), ("sam.staff", STAFF_QUESTION)):
        response = httpx.post(
            console.server.url + "/v1/ask", json={"question": question}, headers=auth(console.keys[who]), timeout=120
        )
        assert response.status_code == 200, response.text
        ids[who] = response.json()["request_id"]
        if who == "hana.hr":
            cited = {c["source"].split("/")[0] for c in response.json()["citations"]}
            assert "hr" in cited, response.json()
    return ids


def test_admin_signs_in_and_the_overview_renders_its_charts(
    page: Page, console: Console, asked: dict[str, str]
) -> None:
    sign_in(page, console.keys["ada.admin"])
    expect(page).to_have_url(re.compile(r"/console$"))
    expect(page.get_by_role("heading", name=re.compile("^Overview"))).to_be_visible()
    charts = page.locator("svg.chart[role=img]")
    assert charts.count() >= 5
    expect(charts.first).to_be_visible()
    expect(page.get_by_role("img", name=re.compile("^Requests per hour: latest"))).to_be_visible()
    shot(page, "overview")


def test_the_sign_in_form_works_with_the_keyboard_alone(page: Page, console: Console) -> None:
    page.goto("/console/login")
    shot(page, "login")
    page.keyboard.press("Tab")  # the skip link comes first
    expect(page.locator(".skip")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#key")).to_be_focused()
    page.keyboard.type(console.keys["ada.admin"])
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/console$"))
    expect(page.get_by_role("heading", name=re.compile("^Overview"))).to_be_visible()


def test_a_wrong_key_is_refused_on_the_sign_in_page(page: Page) -> None:
    sign_in(page, "keel_not_a_key")
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    shot(page, "login-refused")


def test_admin_finds_a_request_by_id_and_sees_its_waterfall(
    page: Page, console: Console, asked: dict[str, str]
) -> None:
    request_id = asked["sam.staff"]
    sign_in(page, console.keys["ada.admin"], next_path="/console/requests")
    expect(page).to_have_url(re.compile(r"/console/requests"))
    shot(page, "requests")
    expect(page.get_by_role("link", name=request_id)).to_be_visible()
    search = page.get_by_role("searchbox", name="Request id")
    search.fill(request_id)
    search.press("Enter")
    page.wait_for_url(re.compile(rf"/console/requests/{request_id}$"))
    expect(page.get_by_text(request_id).first).to_be_visible()
    expect(page.get_by_test_id("waterfall")).to_be_visible()
    assert page.locator("svg[data-testid=waterfall] rect").count() >= 3
    shot(page, "request")


def _assert_no_hr(page: Page, console: Console) -> None:
    html = page.content()
    assert HR_QUESTION not in html
    for chunk_id in console.hr_chunk_ids:
        assert chunk_id not in html, chunk_id
    for title in console.hr_titles:
        assert title not in html, title


def test_a_user_outside_hr_sees_nothing_of_the_hr_request(page: Page, console: Console, asked: dict[str, str]) -> None:
    sign_in(page, console.keys["sam.staff"])
    expect(page).to_have_url(re.compile(r"/console/requests"))
    expect(page.get_by_role("link", name=asked["sam.staff"])).to_be_visible()
    assert asked["hana.hr"] not in page.content()
    _assert_no_hr(page, console)
    shot(page, "requests-staff")

    page.get_by_role("link", name=asked["sam.staff"]).click()
    page.wait_for_load_state()
    expect(page.get_by_test_id("waterfall")).to_be_visible()
    _assert_no_hr(page, console)
    shot(page, "request-staff")

    response = page.goto(f"/console/requests/{asked['hana.hr']}")
    assert response is not None and response.status == 404
    expect(page.get_by_text(re.compile("not found", re.IGNORECASE)).first).to_be_visible()
    _assert_no_hr(page, console)
    shot(page, "request-hr-not-found")

    # Reviewer pages send this user to the sign-in page, with nothing of the tenant on it.
    for path in ("/console", "/console/releases"):
        page.goto(path)
        expect(page).to_have_url(re.compile(r"/console/login"))
        _assert_no_hr(page, console)


def _audit(console: Console, action: str) -> list[dict[str, Any]]:
    """The audit records of ``action``, as `keel audit export` gives them (release records have tenant ``*``)."""
    result = subprocess.run(
        [sys.executable, "-m", "keel", "--project", str(console.root), "audit", "export", "--action", action],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_admin_promotes_and_rolls_back_a_release_on_the_releases_page(page: Page, console: Console) -> None:
    sign_in(page, console.keys["ada.admin"], next_path="/console/releases")
    expect(page).to_have_url(re.compile(r"/console/releases$"))
    app = page.get_by_test_id("app-default")
    expect(app.get_by_test_id("current")).to_have_text("r1")
    expect(app.get_by_role("button", name="Roll back…")).to_have_count(0)
    shot(page, "releases")

    app.get_by_label("Promote through the eval gate").select_option("r2")
    app.get_by_role("button", name="Promote…").click()
    expect(page.get_by_role("heading", name="Promote r2 on app default?")).to_be_visible()
    expect(page.get_by_text("The eval gate runs first")).to_be_visible()
    shot(page, "releases-promote-confirm")
    page.get_by_role("button", name="Run the gate and promote r2").click(timeout=300_000)
    page.wait_for_url(re.compile(r"/console/releases\?flash="), timeout=300_000)
    expect(page.get_by_role("status")).to_contain_text("Promoted r2 on default: the eval gate passed")
    app = page.get_by_test_id("app-default")
    expect(app.get_by_test_id("current")).to_have_text("r2")
    expect(app.get_by_test_id("previous")).to_have_text("r1")
    shot(page, "releases-promoted")

    app.get_by_role("button", name="Roll back…").click()
    expect(page.get_by_role("heading", name="Roll back app default?")).to_be_visible()
    expect(page.get_by_text("Will serve again:")).to_contain_text("r1")
    shot(page, "releases-rollback-confirm")
    page.get_by_label("Reason (audited)").fill("checking the console")
    page.get_by_role("button", name="Roll back to r1").click()
    page.wait_for_url(re.compile(r"/console/releases\?flash="))
    expect(page.get_by_role("status")).to_have_text("Rolled back default: r1 serves it again.")
    expect(page.get_by_test_id("app-default").get_by_test_id("current")).to_have_text("r1")
    history = page.get_by_test_id("release-history")
    expect(history.get_by_role("row").nth(1)).to_contain_text("release.rollback")
    shot(page, "releases-rolled-back")

    rollbacks = _audit(console, "release.rollback")
    assert [(r["actor"], r["subject"], r["data"]["from"], r["data"]["to"]) for r in rollbacks] == [
        ("ada.admin", "default", "r2", "r1")
    ]
    assert rollbacks[0]["data"]["reason"] == "checking the console"
    promotions = _audit(console, "release.promote")
    assert [(r["actor"], r["data"]["to"], r["data"]["gate"]["passed"]) for r in promotions] == [
        ("ada.admin", "r2", True)
    ]
    served = httpx.get(
        console.server.url + "/v1/admin/releases", headers=auth(console.keys["ada.admin"]), timeout=30
    ).json()
    assert next(a for a in served["apps"] if a["app"] == "default")["current"] == "r1"


def test_a_non_admin_reviewer_sees_no_forms_and_a_post_is_refused(page: Page, console: Console) -> None:
    from keel.identity import KeyStore
    from tests.support.database import database_at

    db = database_at(console.root / ".keel" / "keel.db")
    try:
        key = KeyStore(db).create(principal_id="rae.reviewer", tenant="larkspur", groups=[], roles=["reviewer"]).secret
    finally:
        db.close()
    sign_in(page, key, next_path="/console/releases")
    expect(page.get_by_test_id("app-default")).to_be_visible()
    assert page.locator("main form").count() == 0
    shot(page, "releases-reviewer")
    csrf = page.locator("header form input[name=csrf]").get_attribute("value")
    assert csrf
    response = page.request.post("/console/releases/default/rollback/confirm", form={"csrf": csrf, "reason": "x"})
    assert response.status == 403
    assert "Only an admin can change releases." in response.text()
    assert all(r["actor"] != "rae.reviewer" for r in _audit(console, "release"))


def _admin_api(console: Console, path: str, body: dict[str, Any]) -> None:
    response = httpx.post(
        console.server.url + "/v1/admin/releases" + path, json=body, headers=auth(console.keys["ada.admin"]), timeout=60
    )
    assert response.status_code == 200, response.text


def _ask_as_staff(console: Console) -> None:
    response = httpx.post(
        console.server.url + "/v1/ask",
        json={"question": STAFF_QUESTION},
        headers=auth(console.keys["sam.staff"]),
        timeout=120,
    )
    assert response.status_code == 200, response.text


def test_admin_sees_the_live_canary_and_shadow_figures_and_aborts_them(page: Page, console: Console) -> None:
    sign_in(page, console.keys["ada.admin"], next_path="/console/releases")
    _admin_api(console, "/default/canary", {"candidate": "r2", "share": 1.0})
    for _ in range(2):
        _ask_as_staff(console)
    page.reload()
    app = page.get_by_test_id("app-default")
    expect(app).to_contain_text("r2 in canary, share 100.0%")
    expect(app.get_by_role("heading", name=re.compile("^Canary verdict"))).to_be_visible()
    expect(app.get_by_role("img", name=re.compile("^Canary p95 latency:"))).to_be_visible()
    expect(app.get_by_role("row", name=re.compile("^requests"))).to_contain_text("2")
    shot(page, "releases-canary")
    app.get_by_label("Reason (audited)").fill("seen enough")
    app.get_by_role("button", name="Abort the canary").click()
    page.wait_for_url(re.compile(r"/console/releases\?flash="))
    expect(page.get_by_role("status")).to_have_text("Ended the canary of r2 on default; r1 serves all its traffic.")

    _admin_api(console, "/default/shadow", {"candidate": "r2", "share": 1.0})
    _ask_as_staff(console)
    heading = page.get_by_test_id("app-default").get_by_role("heading", name=re.compile("^Shadow comparison"))
    for _ in range(60):  # the copy runs after the live response, when the service is idle
        page.goto("/console/releases")
        if "1 pairs" in (heading.text_content() or ""):
            break
        page.wait_for_timeout(500)
    app = page.get_by_test_id("app-default")
    expect(heading).to_contain_text("1 pairs, 0 candidate errors")
    expect(app.get_by_role("img", name=re.compile("^Mode agreement: 100%"))).to_be_visible()
    expect(app.get_by_role("img", name=re.compile("^Shadow latency:"))).to_be_visible()
    shot(page, "releases-shadow")
    app.get_by_role("button", name="Abort the shadow").click()
    page.wait_for_url(re.compile(r"/console/releases\?flash="))
    expect(page.get_by_role("status")).to_contain_text("Ended the shadow of r2 on default")
    aborts = _audit(console, "release.abort")
    assert [(r["actor"], r["data"]["stage"], r["data"]["reason"]) for r in aborts] == [
        ("ada.admin", "canary", "seen enough"),
        ("ada.admin", "shadow", "aborted by an operator"),
    ]


def test_a_refused_promotion_shows_the_regressions_and_can_be_forced_with_a_reason(
    page: Page, console: Console
) -> None:
    suite_file = console.root / "evals" / "gate.yaml"
    strict = {**GATE_SUITE, "thresholds": {"retrieval.mrr": {"min": 2.0}}}  # no release can meet it
    suite_file.write_text(yaml.safe_dump(strict, sort_keys=False), encoding="utf-8")
    try:
        sign_in(page, console.keys["ada.admin"], next_path="/console/releases")
        app = page.get_by_test_id("app-default")
        app.get_by_label("Promote through the eval gate").select_option("r2")
        app.get_by_role("button", name="Promote…").click()
        page.get_by_role("button", name="Run the gate and promote r2").click()
        expect(page.get_by_role("heading", name="The eval gate refused r2")).to_be_visible(timeout=300_000)
        expect(page.get_by_test_id("regressions")).to_contain_text("threshold: retrieval.mrr")
        shot(page, "releases-gate-refused")
        page.get_by_label("Reason (required, audited)").fill("known gap, fixed next week")
        page.get_by_role("button", name="Force with this reason").click()
        page.wait_for_url(re.compile(r"/console/releases\?flash="), timeout=300_000)
        expect(page.get_by_role("status")).to_contain_text("Promoted r2 on default, forced past 1 regression(s)")
        expect(page.get_by_test_id("app-default").get_by_test_id("current")).to_have_text("r2")
        shot(page, "releases-forced")
    finally:
        suite_file.write_text(yaml.safe_dump(GATE_SUITE, sort_keys=False), encoding="utf-8")
    assert [r["data"]["candidate"] for r in _audit(console, "release.promote_refused")] == ["r2"]
    forced = _audit(console, "release.promote")[-1]["data"]["forced"]
    assert forced["reason"] == "known gap, fixed next week"
    assert forced["overrode"] and forced["overrode"][0].startswith("threshold: retrieval.mrr")


@pytest.mark.parametrize(
    ("path", "heading", "name"),
    [
        ("/console/evals", "Evaluations", "evals"),
        ("/console/sources", "Sources", "sources"),
        ("/console/handoffs", "Hand-offs", "handoffs"),
        ("/console/requests", "Requests", "requests-admin"),
    ],
)
def test_every_page_renders_for_an_admin_and_fits_a_phone_screen(
    browser: Browser, console: Console, asked: dict[str, str], path: str, heading: str, name: str
) -> None:
    for viewport, suffix in (({"width": 1280, "height": 900}, ""), ({"width": 390, "height": 844}, "-phone")):
        context = browser.new_context(base_url=console.server.url, viewport=viewport)
        context.set_default_timeout(30_000)
        try:
            page = context.new_page()
            sign_in(page, console.keys["ada.admin"], next_path=path)
            expect(page).to_have_url(re.compile(re.escape(path) + r"(\?.*)?$"))
            expect(page.get_by_role("heading", level=1, name=re.compile("^" + heading))).to_be_visible()
            # Nothing but the scrolling tables may be wider than the screen.
            overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 1, f"{path} is {overflow}px wider than a {viewport['width']}px screen"
            unlabelled = page.evaluate(
                "[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]"
                ".filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).length"
            )
            assert unlabelled == 0, f"{path} has {unlabelled} form field(s) without a label"
            shot(page, name + suffix)
        finally:
            context.close()
