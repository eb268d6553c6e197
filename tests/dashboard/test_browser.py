"""The dashboard in a real headless Chromium (Debian's ``/usr/bin/chromium``, driven by
Playwright): the main pages render (screenshots decoded and checked not blank), the
countdowns tick, the sign-in page works, and a click on Retry puts a dead letter back in
line.

Without Chromium or Playwright these tests skip; with ``CI=true`` they fail
(``scripts/browser-up`` installs Chromium).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tests.dashboard import png, seed
from tests.dashboard.conftest import LINKS
from ticketbridge.daemon import _Server
from ticketbridge.store import Store
from ticketbridge.store import dashboard as queries
from ticketbridge.store import timeline as records
from ticketbridge.web.admin import Authenticator, create_admin_app
from ticketbridge.web.admin.pages import NAV

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("TICKETBRIDGE_CHROMIUM", "/usr/bin/chromium")
IN_CI = os.environ.get("CI") == "true"
#: What the probe of this machine found Chromium needs headless as root on a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1000, "height": 640}
#: The page background (style.css ``--bg``).
BACKGROUND = (0xF6, 0xF7, 0xF9)


def _missing(message: str) -> None:
    if IN_CI:
        pytest.fail(f"{message}; CI=true requires it (scripts/browser-up installs Chromium)")
    pytest.skip(message)


@pytest.fixture(scope="module")
def sync_api() -> Any:
    try:
        from playwright import sync_api
    except ImportError:
        _missing("playwright is not installed (pip install playwright)")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        _missing(f"Chromium is not installed at {CHROMIUM}")
    return sync_api


@pytest.fixture(scope="module")
def browser(sync_api: Any) -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(service: seed.Service) -> Iterator[str]:
    """The admin app on a free 127.0.0.1 port, served by uvicorn in a thread."""
    app = create_admin_app(service, Authenticator.from_config(service.config.admin))
    port = _free_port()
    server = _Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="admin-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the admin app did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, sync_api: Any) -> Iterator[tuple[str, Any]]:
    """The admin app over a seeded SQLite store, for the pages that only read."""
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('browser') / 'tb.db'}")
    store.upgrade()
    try:
        service = _seeded(store)
        for url in _serve(service):
            yield url, service
    finally:
        store.close()


def _seeded(store: Store) -> seed.Service:
    config = seed.make_config(
        str(store.url), token=seed.TOKEN, username=seed.USER, password=seed.PASSWORD
    )
    seed.seed(store, config, LINKS)
    seed.seed_records(store)
    return seed.service(store, config)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A browser page signed in with basic auth."""
    context = browser.new_context(
        viewport=VIEWPORT, http_credentials={"username": seed.USER, "password": seed.PASSWORD}
    )
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


#: The part of the page below the menu that is decoded and checked (decoding the whole
#: screenshot in pure Python would cost seconds a page).
CONTENT = {"x": 0, "y": 48, "width": 640, "height": 240}


def _shoot(page: Any, path: Path) -> png.Image:
    """Save the page's screenshot to ``path`` and check the content under the menu is
    not blank: many colours, and much of it unlike the page's background."""
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000, f"{path.name}: {path.stat().st_size} bytes"
    image = png.decode(page.screenshot(clip=CONTENT))
    assert (CONTENT["width"], CONTENT["height"]) == (image.width, image.height)
    assert image.colours() > 20, f"{path.name}: {image.colours()} colours"
    assert image.share_unlike(BACKGROUND) > 0.05, f"{path.name} is blank under the menu"
    return image


class TestPages:
    @pytest.mark.parametrize("item", NAV, ids=lambda item: item.title)
    def test_page_renders(self, site: tuple[str, Any], page: Any, shots: Path, item: Any):
        url, _ = site
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        response = page.goto(url + item.path)
        assert 200 == response.status
        assert f"{item.title} · ticketbridge" == page.title()
        assert "active" == page.locator(f'header nav a[href="{item.path}"]').get_attribute("class")
        shot = shots / f"{item.title.lower().replace(' ', '-')}.png"
        _shoot(page, shot)
        assert [] == errors  # nothing refused by the content security policy, no script error

    def test_link_page_and_countdown(self, site: tuple[str, Any], page: Any, shots: Path):
        """Link 1's acknowledgment deadline counts down in the browser, on the server's time."""
        url, _ = site
        page.goto(url + "/links/1")
        countdown = page.locator("table.clock time.countdown").first
        first = countdown.inner_text()
        assert re.fullmatch(r"in 2[78]m \d\ds", first), first
        page.wait_for_function(
            "t => document.querySelector('table.clock time.countdown').textContent !== t",
            arg=first,
            timeout=5000,
        )
        assert countdown.inner_text() != first
        _shoot(page, shots / "link.png")

    def test_filters_in_the_browser(self, site: tuple[str, Any], page: Any):
        url, _ = site
        page.goto(url + "/links")
        page.select_option("select[name=vendor]", "isp")
        page.select_option("select[name=breached]", "yes")
        page.click("form.filters button[type=submit]")
        page.wait_for_url(re.compile(r".*vendor=isp.*breached=yes.*"))
        shown = [
            int(v)
            for v in page.locator("tr[data-link]").evaluate_all(
                "rows => rows.map(r => r.dataset.link)"
            )
        ]
        assert seed.expected(LINKS, vendor="isp", breached=True)[:50] == shown

    def test_sign_in_with_the_token(self, tmp_path: Path, browser: Any):
        """Without credentials the browser gets the sign-in page (401); the token typed
        there signs in.  (With basic auth configured the browser asks by itself.)"""
        store = Store(f"sqlite:///{tmp_path / 'tb.db'}")
        store.upgrade()
        try:
            config = seed.make_config(str(store.url), token=seed.TOKEN)
            seed.seed(store, config, 10)
            for url in _serve(seed.service(store, config)):
                context = browser.new_context(viewport=VIEWPORT)
                try:
                    page = context.new_page()
                    response = page.goto(url + "/clocks")
                    assert 401 == response.status
                    page.fill("#token", "not-the-token-at-all")
                    page.click("form.login button[type=submit]")
                    assert "wrong token or password" in page.locator("p.error").inner_text()
                    page.fill("#token", seed.TOKEN)
                    page.click("form.login button[type=submit]")
                    page.wait_for_url(url + "/clocks")
                    assert "SLA clocks" == page.locator("h1").inner_text()
                finally:
                    context.close()
        finally:
            store.close()


class TestRetry:
    def test_retry_click_puts_the_write_back_in_line(
        self, tmp_path: Path, sync_api: Any, browser: Any, shots: Path
    ):
        store = Store(f"sqlite:///{tmp_path / 'tb.db'}")
        store.upgrade()
        try:
            service = _seeded(store)
            with store.tx() as c:
                _, letters = queries.dead_letters(c, queries.Page(1, 10))
            target = letters[0].row.id
            for url in _serve(service):
                context = browser.new_context(
                    viewport=VIEWPORT,
                    http_credentials={"username": seed.USER, "password": seed.PASSWORD},
                )
                try:
                    page = context.new_page()
                    page.goto(url + "/dead-letters")
                    page.locator(f'tr[data-row="{target}"] button[name=retry]').click()
                    page.wait_for_selector("p.notice")
                    assert f"retried {target}" == page.locator("p.notice").inner_text()
                    assert 0 == page.locator(f'tr[data-row="{target}"]').count()
                    page.screenshot(path=str(shots / "dead-letters-after-retry.png"))
                finally:
                    context.close()
            with store.tx() as c:
                row = queries.outbox_row(c, target)
            assert row is not None
            assert ("pending", 0) == (row.state, row.attempts)
        finally:
            store.close()


class TestRecords:
    @pytest.mark.parametrize("path", ["/reviews/BI-1", f"/closeouts/{seed.CLOSING}"])
    def test_document_pages_render(self, site: tuple[str, Any], page: Any, shots: Path, path: str):
        """The embedded review document and closeout report show, and nothing of theirs is
        refused by the content security policy."""
        url, _ = site
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        assert 200 == page.goto(url + path).status
        document = page.locator("article.document")
        assert document.is_visible()
        assert (
            document.locator("h1")
            .inner_text()
            .startswith(("Service level breach investigation", "Service closeout: Umbrella"))
        )
        _shoot(page, shots / f"{path.strip('/').replace('/', '-')}.png")
        assert [] == errors

    def test_close_a_review(self, tmp_path: Path, browser: Any, shots: Path):
        """Findings typed in the form and a click close the review."""
        store = Store(f"sqlite:///{tmp_path / 'tb.db'}")
        store.upgrade()
        try:
            config = seed.make_config(
                str(store.url), token=seed.TOKEN, username=seed.USER, password=seed.PASSWORD
            )
            seed.seed(store, config, 30)
            seed.seed_records(store)
            for url in _serve(seed.service(store, config)):
                context = browser.new_context(
                    viewport=VIEWPORT,
                    http_credentials={"username": seed.USER, "password": seed.PASSWORD},
                )
                try:
                    page = context.new_page()
                    page.goto(url + "/reviews/LL-1")
                    page.fill("#findings", "page the NOC after 15 minutes")
                    page.click("form.close-review button[name=close]")
                    page.wait_for_selector("p.notice")
                    assert "LL-1 closed" == page.locator("p.notice").inner_text()
                    assert 0 == page.locator("form.close-review").count()
                    page.screenshot(path=str(shots / "review-after-close.png"))
                finally:
                    context.close()
            with store.tx() as c:
                row = records.get_lesson(c, seed.LESSON_OPEN)
            assert row is not None
            assert ("closed", "page the NOC after 15 minutes") == (row.state, row.findings)
        finally:
            store.close()
