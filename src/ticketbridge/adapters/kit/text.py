"""HTML bodies as the plain text a person reads (mail, ticket transactions, comments).

One converter for every product: `inscriptis` lays out block elements, lists and tables the
way a browser's text view does; a ``<blockquote>`` (how mail clients and ticketing systems
quote earlier messages) becomes ``"> "`` lines, so quoted history can be recognised and
stripped like a plain-text reply.  Links read "[text](url)"; scripts, styles and images are dropped.  Never raises: a
page the parser cannot read at all falls back to its text without tags.
"""

from __future__ import annotations

import re

from inscriptis import get_text
from inscriptis.model.config import ParserConfig
from lxml import etree
from lxml import html as lxml_html

__all__ = ["html_to_text"]

_TAG = re.compile(r"<[^>]*>")
#: Links as "[text](url)": a vendor's "see the portal" keeps where it points.
_CONFIG = ParserConfig(display_links=True)
#: A mail link shown as its address when that is its text ("[a@b](mailto:a@b)" -> "a@b").
_SAME_MAILTO = re.compile(r"\[([^\]\s]+@[^\]\s]+)\]\(mailto:\1\)")
_BLANK_RUN = re.compile(r"\n{3,}")


def html_to_text(html: str) -> str:
    """Readable text of ``html``; blockquotes as ``"> "`` lines; trailing spaces, runs of
    blank lines and leading/trailing blank lines removed."""
    if not html.strip():
        return ""
    try:
        text = _convert(html)
    except (ValueError, etree.LxmlError):  # nothing parseable: keep the words
        text = _TAG.sub(" ", html)
    return _tidy(text)


def _tidy(text: str) -> str:
    lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n")]
    return _BLANK_RUN.sub("\n\n", _SAME_MAILTO.sub(r"\1", "\n".join(lines))).strip("\n")


def _convert(html: str) -> str:
    doc = lxml_html.document_fromstring(html)  # always <html>: every element has a parent
    # innermost first (reverse document order): a quote inside a quote gets "> > "
    for quote in reversed(doc.xpath("//blockquote")):
        inner = "".join(
            [quote.text or ""] + [lxml_html.tostring(child, encoding="unicode") for child in quote]
        )
        quoted = "\n".join(
            f"> {line}".rstrip() for line in _tidy(_convert_fragment(inner)).split("\n")
        )
        block = lxml_html.Element("pre")
        block.text = f"\n{quoted}\n"
        block.tail = quote.tail
        parent = quote.getparent()
        if parent is not None:
            parent.replace(quote, block)
    return str(get_text(lxml_html.tostring(doc, encoding="unicode"), _CONFIG))


def _convert_fragment(html: str) -> str:
    if not html.strip():
        return ""
    if "<" not in html:
        return html.strip()
    return _convert(html)
