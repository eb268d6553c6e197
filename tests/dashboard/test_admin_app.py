"""The dashboard over a seeded store (SQLite and PostgreSQL), through Starlette's httpx.Client:
sign-in, every filter of the links page, the pages' content, and what retry and cancel do
to the outbox row."""

from __future__ import annotations

import base64
import re
from datetime import timedelta

import httpx
import pytest

from tests.dashboard import seed
from tests.dashboard.conftest import LINKS
from ticketbridge.store import dashboard as queries
from ticketbridge.web.admin import Authenticator

pytestmark = pytest.mark.integration

PAGES = [
    "/",
    "/links",
    "/links/1",
    "/clocks",
    "/scorecards",
    "/reviews",
    "/reviews/BI-1",
    "/closeouts",
    "/closeouts/2",
    "/dead-letters",
    "/health",
]


def basic(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def shown_links(html: str) -> list[int]:
    return [int(v) for v in re.findall(r'<tr data-link="(\d+)"', html)]


def outbox_row(service: seed.Service, row_id: int):
    with service.store.tx() as c:
        return queries.outbox_row(c, row_id)


def dead_ids(service: seed.Service) -> list[int]:
    with service.store.tx() as c:
        _total, letters = queries.dead_letters(c, queries.Page(1, 100))
    return [d.row.id for d in letters]


class TestSignIn:
    @pytest.mark.parametrize("path", [*PAGES, "/metrics"])
    def test_no_credentials_is_401(self, anonymous: httpx.Client, path: str):
        """Every page, /metrics included, refuses a request that proves nothing."""
        response = anonymous.get(path, headers={"Accept": "text/html"})
        assert 401 == response.status_code
        assert response.headers["WWW-Authenticate"].startswith("Basic")
        assert "T100001" not in response.text

    @pytest.mark.parametrize("path", PAGES)
    def test_bearer_token(self, anonymous: httpx.Client, path: str):
        response = anonymous.get(path, headers={"Authorization": f"Bearer {seed.TOKEN}"})
        assert 200 == response.status_code, response.text

    def test_basic_auth(self, anonymous: httpx.Client):
        assert 200 == anonymous.get("/links", headers=basic(seed.USER, seed.PASSWORD)).status_code

    @pytest.mark.parametrize(
        "headers",
        [
            {"Authorization": "Bearer wrong-token-0123456789"},
            {"Authorization": f"Bearer {seed.TOKEN}x"},
            basic(seed.USER, "wrong password"),
            basic("someone", seed.PASSWORD),
            {"Authorization": "Basic !!notbase64"},
            {"Cookie": "tb_admin=9999999999:b3BlcmF0b3I=:forged"},
        ],
    )
    def test_wrong_credentials_are_401(self, anonymous: httpx.Client, headers: dict[str, str]):
        assert 401 == anonymous.get("/links", headers=headers).status_code

    def test_sign_in_page_sets_a_session(self, client: httpx.Client):
        """The token typed into the sign-in page gives a cookie that opens the pages."""
        response = client.post(
            "/login",
            data={"token": seed.TOKEN, "next": "/dead-letters"},
            headers={"Origin": "http://127.0.0.1:8081"},
            follow_redirects=False,
        )
        assert 303 == response.status_code
        assert "/dead-letters" == response.headers["location"]
        assert "HttpOnly" in response.headers["set-cookie"]
        assert "SameSite=strict" in response.headers["set-cookie"]
        assert 200 == client.get("/dead-letters").status_code

    def test_sign_in_refuses_a_wrong_token_and_an_outside_target(self, client: httpx.Client):
        wrong = client.post("/login", data={"token": "x" * 20}, follow_redirects=False)
        assert 401 == wrong.status_code
        assert "tb_admin" not in client.cookies
        outside = client.post(
            "/login", data={"token": seed.TOKEN, "next": "//evil.example/"}, follow_redirects=False
        )
        assert "/" == outside.headers["location"]

    def test_no_credentials_configured_is_refused(self, store):
        config = seed.make_config(str(store.url.render_as_string(hide_password=False)))
        assert not config.admin.has_credentials
        with pytest.raises(ValueError, match=r"admin\.token"):
            Authenticator.from_config(config.admin)

    def test_half_a_password_pair_is_a_config_error(self, store):
        from ticketbridge.errors import ConfigError

        with pytest.raises(ConfigError, match="username"):
            seed.make_config(str(store.url), username="operator")

    def test_the_dashboard_port_must_differ_from_the_webhook_port(self, tmp_path):
        from ticketbridge.config import load_config
        from ticketbridge.errors import ConfigError

        raw = {
            "store": {"url": f"sqlite:///{tmp_path / 'tb.db'}"},
            "server": {"port": 8090},
            "admin": {"port": 8090, "token": seed.TOKEN},
            "systems": {
                "psa": {"kind": "fake", "base_url": "http://psa.invalid"},
                "vendor": {"kind": "fake", "base_url": "http://vendor.invalid"},
            },
            "connections": [
                {"name": "main", "psa": "psa", "vendor": "vendor", "routing": {"queues": ["V"]}}
            ],
        }
        with pytest.raises(ConfigError, match=r"admin\.port.*server\.port is 8090"):
            load_config(raw)
        raw["admin"]["port"] = 8091
        assert 8091 == load_config(raw).admin.port
        # without credentials there is no listener, so no clash (server.port 8081 stays valid)
        raw["server"]["port"], raw["admin"] = 8081, {}
        assert 8081 == load_config(raw).server.port

    def test_pages_load_nothing_from_elsewhere(self, reader: httpx.Client):
        """Style and script are inline under the response's nonce; nothing else may run."""
        for path in PAGES:
            response = reader.get(path)
            csp = response.headers["Content-Security-Policy"]
            nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
            assert f'<style nonce="{nonce}">' in response.text
            assert f'<script nonce="{nonce}">' in response.text
            assert "default-src 'none'" in csp
            assert not re.search(r"<(link|img|iframe)\b|\bsrc=", response.text), path
            assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", response.text), path


class TestLinks:
    @pytest.mark.parametrize(
        ("query", "wanted"),
        [
            ("", {}),
            ("state=any", {"state": None}),
            ("state=closed", {"state": "closed"}),
            ("vendor=isp", {"vendor": "isp"}),
            ("client=Globex", {"client": "Globex"}),
            ("ball=msp", {"ball": "msp"}),
            ("breached=yes", {"breached": True}),
            ("breached=no", {"breached": False}),
            ("escalated=yes", {"escalated": True}),
            (
                "vendor=vendor&client=ACME&breached=yes",
                {"vendor": "vendor", "client": "ACME", "breached": True},
            ),
            (
                "ball=vendor&escalated=yes&state=any",
                {"ball": "vendor", "escalated": True, "state": None},
            ),
        ],
    )
    def test_filters(self, reader: httpx.Client, query: str, wanted: dict):
        expected = seed.expected(LINKS, **wanted)
        response = reader.get(f"/links?{query}")
        assert 200 == response.status_code
        assert expected[:50] == shown_links(response.text)
        assert f"of {len(expected)}</span>" in response.text

    def test_paging(self, reader: httpx.Client):
        expected = seed.expected(LINKS, state=None)
        second = reader.get("/links?state=any&page=2")
        assert expected[50:100] == shown_links(second.text)
        assert 'rel="prev"' in second.text
        assert 'rel="next"' in second.text
        last = reader.get("/links?state=any&page=5")
        assert expected[200:] == shown_links(last.text)
        assert 'rel="next"' not in last.text

    @pytest.mark.parametrize(
        "query", ["ball=sideways", "breached=maybe", "state=gone", "page=0", "vendor=nosuch"]
    )
    def test_a_bad_filter_is_an_error(self, reader: httpx.Client, query: str):
        response = reader.get(f"/links?{query}")
        assert 400 == response.status_code
        assert "<tr data-link" not in response.text

    def test_a_links_page(self, reader: httpx.Client):
        """Link 1: its numbers, its clock's metrics and its history in time order."""
        html = reader.get("/links/1").text
        assert "T100001" in html
        assert "INC0000001" in html
        assert "isp contract" in html
        rows = re.findall(r'<tr class="kind-([a-z_]+)">', html)
        assert [
            "vendor_ticket_seen",
            "note_mirrored",
            "note_skipped",
            "write_dead",
            "sla_clock_started",
        ] == rows
        assert "skipped: internal" in html
        assert "DEAD LETTER (HTTP 403" in html
        assert 404 == reader.get("/links/99999").status_code

    def test_countdowns_are_rendered_server_side(self, reader: httpx.Client):
        """A running clock's deadline is in the page as text and as a machine time."""
        html = reader.get("/links/1").text
        deadline = re.search(r'<time class="countdown[^"]*" datetime="([^"]+)"', html)
        assert deadline is not None
        # link 1: opened 2 min before NOW, 30 min to acknowledge
        assert (seed.NOW + timedelta(minutes=28)).isoformat() == deadline.group(1)
        assert "in 28m" in html


class TestOtherPages:
    def test_running_clocks(self, reader: httpx.Client):
        """Clocks paused with the ball at the MSP are not running."""
        running = [i for i in range(1, LINKS + 1) if seed.ball_of(i) == "vendor"]
        html = reader.get("/clocks").text
        assert f"of {len(running)}</span>" in html
        assert set(shown_links(html)) <= set(running)
        assert 50 == len(shown_links(html))

    def test_scorecards_have_charts(self, reader: httpx.Client):
        html = reader.get("/scorecards").text
        assert 4 == html.count("<svg")
        for vendor in seed.VENDORS:
            assert f">{vendor}</text>" in html
        assert "Compliance %" in html

    def test_reconcile_figures(self, authed: httpx.Client, seeded: seed.Service):
        from ticketbridge.store import reconcile

        with seeded.store.tx() as c:
            reconcile.record_run(
                c, {"links": 216, "links_repaired": 2, "notes": 3, "fields": 1}, seed.NOW
            )
        html = authed.get("/").text
        assert "1 run since" in html
        assert "2 links repaired, 3 notes and 1 status or priority recovered" in html

    def test_health(self, authed: httpx.Client, seeded: seed.Service):
        seeded.health.webhook("vendor", "unauthorized")
        seeded.health.webhook("vendor", "unauthorized")
        html = authed.get("/health").text
        assert "300 of 300 per 5m" in html
        assert "2 refused in a row" in html
        assert "not polled yet" in html

    def test_overview_counts(self, reader: httpx.Client):
        html = reader.get("/").text
        open_links = seed.expected(LINKS)
        breached_open = seed.expected(LINKS, breached=True)
        dead = [i for i in range(1, LINKS + 1) if seed.dead_of(i)]
        cards = {
            label: int(n)
            for n, label in re.findall(r'<div class="n">(\d+)</div><div class="l">([^<]+)<', html)
        }
        assert len(open_links) == cards["open links"]
        assert len(breached_open) == cards["open and breached"]
        assert len(dead) == cards["dead letters"]
        assert "No reconcile run since" in html

    def test_metrics(self, reader: httpx.Client):
        response = reader.get("/metrics")
        assert 200 == response.status_code
        assert "ticketbridge_polls" in response.text


class TestDeadLetters:
    def test_listed(self, authed: httpx.Client, seeded: seed.Service):
        html = authed.get("/dead-letters").text
        wanted = dead_ids(seeded)
        assert len(wanted) == len([i for i in range(1, LINKS + 1) if seed.dead_of(i)])
        assert wanted == [int(v) for v in re.findall(r'<tr data-row="(\d+)"', html)]
        assert "ACL on comments" in html

    def test_retry_puts_the_row_back_in_line(self, authed: httpx.Client, seeded: seed.Service):
        row_id = dead_ids(seeded)[0]
        csrf = re.search(r'name="csrf" value="([^"]+)"', authed.get("/dead-letters").text)[1]
        response = authed.post(
            f"/dead-letters/{row_id}/retry", data={"csrf": csrf}, follow_redirects=False
        )
        assert 303 == response.status_code
        row = outbox_row(seeded, row_id)
        assert ("pending", 0, seed.NOW) == (row.state, row.attempts, row.next_attempt_at)
        assert f"retried {row_id}" in authed.get(response.headers["location"]).text
        again = authed.post(f"/dead-letters/{row_id}/retry", data={"csrf": csrf})
        assert 409 == again.status_code

    def test_cancel(self, authed: httpx.Client, seeded: seed.Service):
        row_id = dead_ids(seeded)[-1]
        authed.post(f"/dead-letters/{row_id}/cancel", follow_redirects=False)
        assert "cancelled" == outbox_row(seeded, row_id).state
        assert 404 == authed.post("/dead-letters/999999/cancel").status_code

    def test_a_browser_post_needs_the_form_token(self, client: httpx.Client, seeded: seed.Service):
        """With basic auth (which a browser sends by itself) a POST without the form token,
        or from another site, changes nothing."""
        row_id = dead_ids(seeded)[0]
        creds = basic(seed.USER, seed.PASSWORD)
        page = client.get("/dead-letters", headers=creds).text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)[1]
        missing = client.post(f"/dead-letters/{row_id}/retry", headers=creds)
        assert 403 == missing.status_code
        other_site = client.post(
            f"/dead-letters/{row_id}/retry",
            data={"csrf": csrf},
            headers={**creds, "Origin": "http://evil.example"},
        )
        assert 403 == other_site.status_code
        assert "dead" == outbox_row(seeded, row_id).state
        same_site = client.post(
            f"/dead-letters/{row_id}/retry",
            data={"csrf": csrf},
            headers={**creds, "Origin": "http://127.0.0.1:8081"},
            follow_redirects=False,
        )
        assert 303 == same_site.status_code
        assert "pending" == outbox_row(seeded, row_id).state


def test_admin_config_defaults(tmp_path):
    """The listener is on loopback and has no credentials unless configured."""
    config = seed.make_config(f"sqlite:///{tmp_path / 'tb.db'}")
    defaults = type(config.admin)()
    assert ("127.0.0.1", 8081, False) == (defaults.host, defaults.port, defaults.has_credentials)
    assert not config.admin.has_credentials
