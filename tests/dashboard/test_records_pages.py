"""The reviews and closeouts pages over a seeded store (SQLite and PostgreSQL): their
listings and filters, the review document and closeout report embedded as the CLI renders
them, and what the Close form does to the review."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest

from tests.dashboard import seed
from tests.dashboard.conftest import _client
from tests.dashboard.test_admin_app import basic
from ticketbridge.closeout_report import build_report, render_html
from ticketbridge.incident_review import build_review, policy_lookup, render
from ticketbridge.store import Store, rules
from ticketbridge.store import timeline as records
from ticketbridge.web.admin.documents import document_body

pytestmark = pytest.mark.integration


def shown(html: str, attr: str) -> list[str]:
    return re.findall(rf'<tr data-{attr}="([^"]+)"', html)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found[1]


def lesson(service: seed.Service, row_id: int) -> records.LessonRow:
    with service.store.tx() as c:
        row = records.get_lesson(c, row_id)
    assert row is not None
    return row


class TestReviews:
    @pytest.mark.parametrize(
        ("query", "wanted"),
        [
            ("", ["BI-1", "LL-2", "LL-1"]),
            ("state=open", ["BI-1", "LL-1"]),
            ("state=closed", ["LL-2"]),
            ("kind=lessons", ["LL-2", "LL-1"]),
            ("kind=investigations", ["BI-1"]),
            ("kind=lessons&state=closed", ["LL-2"]),
            ("kind=investigations&state=closed", []),
        ],
    )
    def test_filters(self, reader: httpx.Client, query: str, wanted: list[str]):
        """Newest first; each filter narrows to what the seed recorded."""
        response = reader.get(f"/reviews?{query}")
        assert 200 == response.status_code
        assert wanted == shown(response.text, "review")

    @pytest.mark.parametrize("query", ["state=pending", "kind=other", "page=0"])
    def test_a_bad_filter_is_an_error(self, reader: httpx.Client, query: str):
        response = reader.get(f"/reviews?{query}")
        assert 400 == response.status_code
        assert "Bad request" in response.text

    def test_a_row(self, reader: httpx.Client):
        """The ticket links to its link page; what a ticket says is shown as text."""
        html = reader.get("/reviews?kind=lessons&state=open").text
        row = html[html.index('<tr data-review="LL-1"') :].split("</tr>")[0]
        assert '<a href="/links/10">T100010</a>' in row
        assert '<a href="/reviews/LL-1">LL-1</a>' in row
        assert "lessons learned" in row
        assert "open" in row
        assert "&lt;script&gt;" in row
        assert "<script>alert" not in html
        bi = reader.get("/reviews?kind=investigations").text
        assert "acknowledgment target missed (isp contract)" in bi
        assert '<a href="/links/3">T100003</a>' in bi

    def test_paging(self, store: Store):
        """Thirteen reviews at ten a page: two pages, newest first, none lost between."""
        config = seed.make_config(str(store.url), token=seed.TOKEN, page_size=10)
        seed.seed(store, config, 30)
        seed.seed_records(store)
        with store.tx() as c:
            for n in range(10):
                rules.open_lessons_learned(
                    c,
                    11 + n,
                    rule="lessons",
                    key=f"more:{n}",
                    summary=f"review {n}",
                    details="",
                    now=seed.NOW - timedelta(minutes=n),
                )
        service = seed.service(store, config)
        for c in _client(service):
            c.headers["Authorization"] = f"Bearer {seed.TOKEN}"
            first = c.get("/reviews").text
            second = c.get("/reviews?page=2").text
        newer = [f"LL-{3 + n}" for n in range(10)]  # opened minutes ago, newest first
        everything = [*newer, "BI-1", "LL-2", "LL-1"]
        assert everything[:10] == shown(first, "review")
        assert everything[10:] == shown(second, "review")
        assert "<span>11\N{EN DASH}13 of 13</span>" in second
        assert 'rel="next"' in first
        assert 'rel="next"' not in second

    def test_the_document_is_the_cli_rendering(self, reader: httpx.Client, seeded_ro: seed.Service):
        """The page embeds what ``reviews show --format html`` writes, between its body tags."""
        with seeded_ro.store.tx() as c:
            review = build_review(c, "BI-1", now=seed.NOW, policy=policy_lookup(seeded_ro.config))
        assert review is not None
        expected = str(document_body(render(review, "html")))
        html = reader.get("/reviews/BI-1").text
        assert expected in html
        assert "Service level breach investigation" in html
        assert 'action="/reviews/BI-1/close"' in html

    def test_the_document_escapes_what_the_ticket_says(self, reader: httpx.Client):
        html = reader.get("/reviews/LL-1").text
        assert "&lt;script&gt;alert" in html
        assert "<script>alert" not in html

    def test_a_closed_review_has_no_close_form(self, reader: httpx.Client):
        html = reader.get("/reviews/LL-2").text
        assert "/reviews/LL-2/close" not in html
        assert "<textarea" not in html
        assert "the ISP&#39;s NOC was not paged" in html

    @pytest.mark.parametrize("review_id", ["LL-99", "BI-42", "XX-1", "LL-one"])
    def test_unknown_review_is_404(self, reader: httpx.Client, review_id: str):
        assert 404 == reader.get(f"/reviews/{review_id}").status_code

    def test_lower_case_id_goes_to_the_review(self, reader: httpx.Client):
        response = reader.get("/reviews/ll-01?done=closed", follow_redirects=False)
        assert 308 == response.status_code
        assert "/reviews/LL-1?done=closed" == response.headers["location"]


class TestCloseReview:
    def test_close_with_findings(self, authed: httpx.Client, seeded: seed.Service):
        csrf = csrf_of(authed.get("/reviews/LL-1").text)
        response = authed.post(
            "/reviews/LL-1/close",
            data={"csrf": csrf, "findings": "page the NOC at 15 minutes\n<b>not bold</b>"},
            follow_redirects=False,
        )
        assert 303 == response.status_code
        assert response.headers["location"].startswith("/reviews/LL-1?")
        row = lesson(seeded, seed.LESSON_OPEN)
        assert ("closed", "page the NOC at 15 minutes\n<b>not bold</b>") == (
            row.state,
            row.findings,
        )
        assert seed.NOW == row.closed_at
        page = authed.get(response.headers["location"]).text
        assert "LL-1 closed" in page
        assert "&lt;b&gt;not bold&lt;/b&gt;" in page
        assert 'action="/reviews/LL-1/close"' not in page
        assert ["LL-2", "LL-1"] == shown(authed.get("/reviews?state=closed").text, "review")

    def test_closing_twice_is_a_conflict(self, authed: httpx.Client, seeded: seed.Service):
        first = authed.post("/reviews/BI-1/close", data={"findings": ""}, follow_redirects=False)
        assert 303 == first.status_code
        again = authed.post("/reviews/BI-1/close", data={"findings": "late"})
        assert 409 == again.status_code
        assert "already closed" in again.text
        with seeded.store.tx() as c:
            row = records.get_investigation(c, seed.INVESTIGATION)
        assert row is not None
        assert ("closed", None) == (row.state, row.findings)

    def test_unknown_review_is_404(self, authed: httpx.Client):
        assert 404 == authed.post("/reviews/LL-99/close", data={}).status_code
        assert 404 == authed.post("/reviews/nope/close", data={}).status_code

    def test_a_browser_post_needs_the_form_token(self, client: httpx.Client, seeded: seed.Service):
        """With basic auth a POST without the form token, or from another site, leaves the
        review open; with both it closes it."""
        creds = basic(seed.USER, seed.PASSWORD)
        csrf = csrf_of(client.get("/reviews/LL-1", headers=creds).text)
        missing = client.post("/reviews/LL-1/close", data={"findings": "x"}, headers=creds)
        assert 403 == missing.status_code
        other_site = client.post(
            "/reviews/LL-1/close",
            data={"csrf": csrf, "findings": "x"},
            headers={**creds, "Origin": "http://evil.example"},
        )
        assert 403 == other_site.status_code
        assert "open" == lesson(seeded, seed.LESSON_OPEN).state
        same_site = client.post(
            "/reviews/LL-1/close",
            data={"csrf": csrf, "findings": "x"},
            headers={**creds, "Origin": "http://127.0.0.1:8081"},
            follow_redirects=False,
        )
        assert 303 == same_site.status_code
        assert ("closed", "x") == (
            lesson(seeded, seed.LESSON_OPEN).state,
            lesson(seeded, seed.LESSON_OPEN).findings,
        )


class TestCloseouts:
    @pytest.mark.parametrize(
        ("query", "wanted"),
        [
            ("", ["3", "2", "1"]),
            ("state=closing", ["2"]),
            ("state=done", ["3", "1"]),
            ("client=Umbrella", ["2", "1"]),
            ("client=Umbrella&state=done", ["1"]),
            ("client=Nobody", []),
        ],
    )
    def test_filters(self, reader: httpx.Client, query: str, wanted: list[str]):
        response = reader.get(f"/closeouts?{query}")
        assert 200 == response.status_code
        assert wanted == shown(response.text, "closeout")

    @pytest.mark.parametrize("query", ["state=open", "page=-1"])
    def test_a_bad_filter_is_an_error(self, reader: httpx.Client, query: str):
        assert 400 == reader.get(f"/closeouts?{query}").status_code

    def test_a_row_counts_its_tickets(self, reader: httpx.Client):
        html = reader.get("/closeouts?state=closing").text
        row = html[html.index('<tr data-closeout="2"') :].split("</tr>")[0]
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.DOTALL)
        assert ["2", "1", "1"] == cells[5:8]  # tickets, confirmed, still open
        assert seed.STILL_OPEN_REASON == cells[8]
        assert "Umbrella" == cells[1]
        assert "closing" in cells[2]

    def test_a_closeout_with_its_report(self, reader: httpx.Client, seeded_ro: seed.Service):
        """The latest closeout of a client shows its tickets and the report the CLI's
        ``closeout report --format html`` writes (less its generation time)."""
        html = reader.get(f"/closeouts/{seed.CLOSING}").text
        assert ["3", "7"] == shown(html, "link")
        assert '<a href="/links/7">T100007</a>' in html
        assert seed.STILL_OPEN_REASON in html
        report = build_report(
            seeded_ro.store, seeded_ro.config, seeded_ro.adapters, "Umbrella", now=seed.NOW
        )
        body = str(document_body(render_html(report)))
        # the report's first paragraph names when it was made; everything after it is equal
        tail = body[body.index("<h2>Summary</h2>") :]
        assert tail in html
        assert "Service closeout: Umbrella" in html

    def test_a_replaced_closeout_points_at_the_latest(self, reader: httpx.Client):
        html = reader.get(f"/closeouts/{seed.OLD_CLOSEOUT}").text
        assert ["3"] == shown(html, "link")
        assert f'<a href="/closeouts/{seed.CLOSING}">' in html
        assert "Service closeout:" not in html

    def test_read_only(self, authed: httpx.Client):
        """No action on a closeout: applying one stays a CLI action."""
        html = authed.get(f"/closeouts/{seed.CLOSING}").text
        assert '<form method="post" action="/closeouts' not in html
        assert 405 == authed.post(f"/closeouts/{seed.CLOSING}").status_code

    def test_unknown_closeout_is_404(self, reader: httpx.Client):
        assert 404 == reader.get("/closeouts/999").status_code
        assert 400 == reader.get("/closeouts/abc").status_code
