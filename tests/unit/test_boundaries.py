"""The module map holds: adapters are translators, the pure cores stay pure."""

from __future__ import annotations

import ast
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
