"""The module map holds: adapters are translators, the pure cores stay pure."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).parents[2] / "src" / "ticketbridge"


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def modules(package: str) -> list[Path]:
    return sorted((SRC / package).rglob("*.py"))


FORBIDDEN = {
    # an adapter knows one product's API and nothing of links, rules, SLAs or the store
    "adapters": (
        "ticketbridge.notify",  # a product that mails uses the kit's SMTP (kit/smtp.py)
        "ticketbridge.engine",
        "ticketbridge.store",
        "ticketbridge.rules",
        "ticketbridge.sla",
        "sqlalchemy",
    ),
    # the rule and SLA cores do no I/O
    "rules": ("ticketbridge.engine", "ticketbridge.store", "sqlalchemy", "httpx"),
    "sla": (
        "ticketbridge.engine",
        "ticketbridge.store",
        "ticketbridge.rules",
        "sqlalchemy",
        "httpx",
    ),
    # the store applies plans and knows neither the engine nor the rule and SLA cores
    "store": (
        "ticketbridge.engine",
        "ticketbridge.rules",
        "ticketbridge.sla",
        "ticketbridge.adapters",
        "httpx",
    ),
    # simulators stand alone: they must not lean on the code they test
    "sandbox": ("ticketbridge.engine", "ticketbridge.store", "ticketbridge.adapters"),
}


LEANS_ON = ("ticketbridge.adapters", "ticketbridge.engine", "ticketbridge.store")


class TestBoundaries:
    @pytest.mark.parametrize("package", sorted(FORBIDDEN))
    def test_package_imports_stay_inside_its_layer(self, package):
        """No module of the package imports what its layer must not know."""
        offences = []
        for path in modules(package):
            for name in imports_of(path):
                if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[package]):
                    offences.append(f"{path.relative_to(SRC)} imports {name}")
        assert offences == []

    def test_simulators_stand_alone(self):
        """A product's simulator (and its actor) never leans on any adapter code it tests."""
        offences = []
        for path in sorted((SRC / "adapters").glob("*/*.py")):
            if path.stem not in ("simulator", "actor"):
                continue
            for name in imports_of(path):
                if name.startswith(LEANS_ON):
                    offences.append(f"{path.relative_to(SRC)} imports {name}")
        assert offences == []
        assert (SRC / "adapters" / "connectwise" / "simulator.py").exists()

    def test_the_check_sees_imports(self):
        """The import reader finds plain and from-imports (so the check above can fail)."""
        assert {"ticketbridge.domain", "httpx"} <= imports_of(SRC / "adapters" / "base.py")


#: Packages that must not name a product: the core works on neutral fields and status
#: classes; a product's words live in its adapter folder.
NEUTRAL = (
    "domain.py",
    "operations.py",
    "plan.py",
    "duration.py",
    "engine",
    "rules",
    "sla",
    "store",
    "web",
    "config.py",
)

#: Product names and product field words (matched case-insensitively, as whole words).
PRODUCT_WORDS = (
    "connectwise",
    "servicenow",
    "service-now",
    "autotask",
    "halopsa",
    "halo",
    "jira",
    "zendesk",
    "freshdesk",
    "request tracker",
    "snow",
    "board",
    "boards",
    "watch_boards",
    "link_value",
    "hold_reason",
    "sys_id",
    "sys_updated_on",
    "sysparm",
    "short_description",
    "assignment_group",
    "closedflag",
    "externalxref",
)
PRODUCT_WORD_RE = re.compile(
    r"(?<![\w-])(" + "|".join(re.escape(w) for w in PRODUCT_WORDS) + r")(?![\w-])",
    re.IGNORECASE,
)

#: Deliberate exceptions as (file relative to src/ticketbridge, word); anything else in
#: the neutral packages is a bug.
ALLOWED: frozenset[tuple[str, str]] = frozenset(
    {
        # outbox rows queued by releases before the neutral names carry the old keys
        ("operations.py", "link_value"),
        ("operations.py", "board"),
    }
)


def neutral_files() -> list[Path]:
    found: list[Path] = []
    for name in NEUTRAL:
        path = SRC / name
        found.extend([path] if path.is_file() else sorted(path.rglob("*.py")))
    return found


def product_words_in(text: str) -> list[tuple[int, str]]:
    """``(line number, word)`` for each product word in ``text``: code, strings, comments."""
    return [
        (n, m.group(1).lower())
        for n, line in enumerate(text.splitlines(), start=1)
        for m in PRODUCT_WORD_RE.finditer(line)
    ]


class TestProductNeutralCore:
    def test_neutral_packages_name_no_product(self):
        """domain, engine, rules, sla, store, web and config never name a product or a
        product's field words: not in code, strings or comments."""
        offences = [
            f"{path.relative_to(SRC)}:{n}: {word}"
            for path in neutral_files()
            for n, word in product_words_in(path.read_text(encoding="utf-8"))
            if (str(path.relative_to(SRC)), word) not in ALLOWED
        ]
        assert offences == []

    def test_the_scan_covers_the_neutral_packages(self):
        """Every neutral package is found, so the check above looks at real files."""
        scanned = {path.relative_to(SRC).parts[0] for path in neutral_files()}
        assert set(NEUTRAL) == scanned

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("# routes the ConnectWise board", [(1, "connectwise"), (1, "board")]),
            ('x = "ServiceNow"\ny = t.hold_reason', [(1, "servicenow"), (2, "hold_reason")]),
            ("Request  Tracker", []),
            ("request tracker queue", [(1, "request tracker")]),
            ("onboarding halogen snowfall keyboard board_id", []),
            ("HaloPSA and Halo", [(1, "halopsa"), (1, "halo")]),
        ],
    )
    def test_the_scan_finds_product_words(self, text, expected):
        """Whole words only, any case, in any kind of text (so the check above can fail)."""
        assert expected == product_words_in(text)
