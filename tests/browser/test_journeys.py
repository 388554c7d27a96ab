"""Each role's journey in real Chromium, with nothing fetched from outside the server.

Login → the role's landing page → every link of the menu answers 200, and the
pages of other roles answer the styled 403. Every request the pages attempt is
recorded; one to anywhere but the live server is blocked and fails the test.
A screenshot of each page is kept for review (``LINESIGHT_TEST_ARTIFACTS``,
default ``var/test-artifacts/journeys``).
"""

import os
import re
from pathlib import Path

import pytest

from tests import factories
from tests.conftest import committed_db
from tests.servers import PROJECT_ROOT

pytestmark = [pytest.mark.browser, committed_db]

ARTIFACTS = (
    Path(os.environ.get("LINESIGHT_TEST_ARTIFACTS") or PROJECT_ROOT / "var" / "test-artifacts")
    / "journeys"
)


class Watched:
    """A logged-out browser context that records what its pages ask for and complain about."""

    def __init__(self, browser, server_url: str) -> None:
        self.server_url = server_url
        self.outside: list[str] = []
        self.errors: list[str] = []
        self.context = browser.new_context(viewport={"width": 1366, "height": 900})
        self.context.set_default_timeout(15_000)
        self.context.route("**/*", self._only_the_server)
        self.page = self.context.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))

    def _only_the_server(self, route) -> None:
        url = route.request.url
        if url.startswith(self.server_url) or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def _console(self, message) -> None:
        if message.type == "error":
            self.errors.append(f"{self.page.url}: {message.text}")

    def log_in(self, username: str) -> str:
        self.page.goto(f"{self.server_url}/accounts/login/")
        self.page.fill("input[name=username]", username)
        self.page.fill("input[name=password]", "pw")
        with self.page.expect_navigation():
            self.page.click("button[type=submit]")
        self.page.wait_for_load_state("networkidle")
        return self.page.url.removeprefix(self.server_url)

    def open(self, path: str, shot: str | None = None) -> int:
        response = self.page.goto(f"{self.server_url}{path}")
        self.page.wait_for_load_state("networkidle")
        if shot:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)
        return response.status


@pytest.fixture
def plant(live_asgi):
    line = factories.line(code="L1", plant_obj=factories.plant(code="PL1"))
    factories.station(code="L1-S1", line_obj=line)
    factories.engineer(username="engineer")
    factories.inspector(username="inspector")
    factories.viewer(username="viewer")
    return live_asgi


JOURNEYS = [
    # role, lands on, the menu, a page of another role (styled 403)
    (
        "engineer",
        "/dashboard/",
        ["Plant", "Reports", "Admin", "API docs", "API token"],
        "/dashboard/review/",
    ),
    ("inspector", "/dashboard/", ["Plant", "Review"], "/reports/"),
    ("viewer", "/reports/", ["Reports", "API docs", "API token"], "/dashboard/"),
]


@pytest.mark.parametrize(("username", "landing", "menu", "refused"), JOURNEYS)
def test_each_role_lands_and_every_menu_link_opens(
    browser, plant, username, landing, menu, refused
):
    watched = Watched(browser, plant.url)

    assert watched.log_in(username) == landing
    links = watched.page.eval_on_selector_all(
        "header nav a", "links => links.map(a => [a.textContent.trim(), a.getAttribute('href')])"
    )
    assert [text for text, _ in links] == menu
    # The brand link leads to the same landing page.
    watched.page.click("header a.brand")
    watched.page.wait_for_load_state("networkidle")
    assert watched.page.url == f"{plant.url}{landing}"

    for text, href in links:
        shot = f"{username}-{re.sub(r'[^a-z]+', '-', text.lower()).strip('-')}"
        assert watched.open(href, shot=shot) == 200, f"{text} ({href})"
        assert watched.page.locator("body").inner_text().strip(), f"{href} is blank"
    assert watched.errors == []

    assert watched.open(refused, shot=f"{username}-refused") == 403
    assert watched.page.locator("h1").inner_text() == "This page is not open to your role"
    assert watched.page.locator("header nav a").count() == len(menu)
    assert watched.outside == []


def test_api_docs_render_with_nothing_from_the_internet(browser, plant):
    watched = Watched(browser, plant.url)
    watched.log_in("engineer")

    assert watched.open("/api/docs/") == 200
    watched.page.wait_for_selector(".opblock-summary-path[data-path='/api/v1/inspections/']")
    assert watched.errors == []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    watched.page.screenshot(path=str(ARTIFACTS / "api-docs.png"))

    assert watched.open("/api/redoc/") == 200
    watched.page.wait_for_selector("text=/api/v1/inspections/")
    watched.page.screenshot(path=str(ARTIFACTS / "api-redoc.png"))

    assert watched.outside == []
    # The one complaint: the browser refused ReDoc's hard-coded logo from its CDN.
    assert all("cdn.redoc.ly" in error for error in watched.errors), watched.errors


def test_an_engineer_gets_an_api_token_from_the_menu(browser, plant):
    watched = Watched(browser, plant.url)
    watched.log_in("engineer")

    watched.page.click("header nav >> text=API token")
    watched.page.click("button[value=create]")
    key = watched.page.locator("[data-key]").inner_text()
    answer = watched.context.request.get(
        f"{plant.url}/api/v1/models/", headers={"Authorization": f"Token {key}"}
    )

    assert answer.status == 200
    watched.page.click("text=Done")
    assert key not in watched.page.content()
    assert watched.outside == []
