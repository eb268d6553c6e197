"""Documents the CLI writes (a post-incident review, a closeout report) shown inside a page.

Their renderers make one whole HTML page each, with a style sheet of their own.  The
dashboard shows the same document without a second template: it keeps what the
renderer put between ``<body>`` and ``</body>`` and leaves out the head, whose
un-nonced ``<style>`` the page's content security policy would refuse anyway (the
dashboard's own style sheet styles it under ``.document``).  The renderers escape
everything a ticket says, so the body is safe to embed as it is.
"""

from __future__ import annotations

import re

from markupsafe import Markup

__all__ = ["document_body"]

_BODY = re.compile(r"<body[^>]*>(?P<body>.*)</body>", re.IGNORECASE | re.DOTALL)


def document_body(html: str) -> Markup:
    """The inside of ``html``'s body, marked safe for a template."""
    found = _BODY.search(html)
    if found is None:
        raise ValueError("the rendered document has no <body>: its template changed")
    return Markup(found.group("body").strip())  # noqa: S704 - escaped by the renderer
