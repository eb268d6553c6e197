"""The adapter kit's HTML-to-text converter (mail and ticket messages that are HTML only)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ticketbridge.adapters.kit.text import html_to_text


def test_blocks_lists_and_entities_read_as_text() -> None:
    html = (
        "<html><head><style>p{margin:0}</style><script>alert(1)</script></head><body>"
        "<p>Smith &amp; Co is down.</p><ul><li>router</li><li>switch</li></ul>"
        '<img src="cid:logo" alt="logo"></body></html>'
    )
    assert "Smith & Co is down.\n\n* router\n* switch" == html_to_text(html)


def test_quotes_become_quoted_lines_nested_ones_twice() -> None:
    html = (
        "<div>Fixed now.</div><blockquote>On Monday Jane wrote:<br>Is it fixed?"
        "<blockquote>The line is down.</blockquote></blockquote><p>Regards</p>"
    )
    assert (
        "Fixed now.\n\n> On Monday Jane wrote:\n> Is it fixed?\n>\n> > The line is down.\n\nRegards"
    ) == html_to_text(html)


def test_links_keep_their_target_and_a_bare_address_stays_bare() -> None:
    html = (
        '<p>See <a href="https://portal.vendor.example/cs/1">the case</a> or write to '
        '<a href="mailto:noc@vendor.example">noc@vendor.example</a>.</p>'
    )
    assert (
        "See [the case](https://portal.vendor.example/cs/1) or write to noc@vendor.example."
        == html_to_text(html)
    )


def test_empty_and_tagless_input() -> None:
    assert "" == html_to_text("   \n")
    assert "just words" == html_to_text("just words")


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("<>/ab &;=\"'\x00\nblockquote")), max_size=200))
def test_never_raises(html: str) -> None:
    assert isinstance(html_to_text(html), str)
