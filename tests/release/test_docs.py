"""The documentation site: built with MkDocs Material in strict mode, offline, complete."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ticketbridge.adapters import adapter_class, adapter_kinds
from ticketbridge.config import TicketBridgeConfig
from ticketbridge.config_reference import render_config_reference
from ticketbridge.config_schema import walk_settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

pytestmark = pytest.mark.timeout(300)


def _need(module: str) -> None:
    try:
        __import__(module)
    except ImportError:
        reason = f"{module} is not installed (pip install -e '.[docs]')"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once into a temporary directory with `mkdocs build --strict`."""
    _need("mkdocs")
    _need("material")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT / "src")}
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--clean",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "--site-dir",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=240,
        check=False,
    )
    elapsed = time.monotonic() - started
    log = result.stdout + result.stderr
    assert 0 == result.returncode, f"mkdocs build --strict failed:\n{log}"
    warnings = [line for line in log.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert [] == warnings
    print(f"docs built in {elapsed:.1f} s")
    return out


def _page(site: Path, path: str) -> str:
    return (site / path / "index.html").read_text(encoding="utf-8")


_RESOURCE = re.compile(
    r"<(?:script|img|iframe|source|audio|video|embed)\b[^>]*\ssrc=[\"']([^\"']+)"
    r"|<link\b[^>]*\shref=[\"']([^\"']+)",
    re.IGNORECASE,
)
_CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")]+)|@import\s+['\"]([^'\"]+)", re.IGNORECASE)
_EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)


class TestSite:
    def test_loads_nothing_from_elsewhere(self, site: Path):
        """No page or stylesheet loads a script, style, font or image from another host."""
        external: list[str] = []
        for page in site.rglob("*.html"):
            for match in _RESOURCE.finditer(page.read_text(encoding="utf-8")):
                url = match.group(1) or match.group(2)
                if _EXTERNAL.match(url):
                    external.append(f"{page.relative_to(site)}: {url}")
        for sheet in site.rglob("*.css"):
            for match in _CSS_URL.finditer(sheet.read_text(encoding="utf-8")):
                url = match.group(1) or match.group(2)
                if _EXTERNAL.match(url.strip()):
                    external.append(f"{sheet.relative_to(site)}: {url}")
        assert [] == external
        # Material's bundle fetches a diagram library from a CDN only for a page with a
        # mermaid diagram; there is none.
        pages = "".join(p.read_text(encoding="utf-8") for p in site.rglob("*.html"))
        assert 'class="mermaid"' not in pages
        for path in site.rglob("*"):
            if path.suffix in (".html", ".css", ".js"):
                text = path.read_text(encoding="utf-8", errors="replace")
                assert "fonts.googleapis" not in text, path
                assert "fonts.gstatic" not in text, path

    def test_every_product_folder_has_its_page(self, site: Path):
        """Each registered product has a page holding its README and its declared data."""
        for kind in adapter_kinds():
            cls = adapter_class(kind)
            readme = Path(sys.modules[cls.__module__].__file__ or "").with_name("README.md")
            page = html.unescape(re.sub(r"<[^>]+>", "", _page(site, f"products/{kind}")))
            first = next(
                line for line in readme.read_text(encoding="utf-8").splitlines()[1:] if line.strip()
            )
            words = re.sub(r"[`*\[\]]|\(http[^)]*\)", "", first).split()[:8]
            assert " ".join(words) in " ".join(page.split()), kind
            for capability in cls.capabilities:
                assert capability.value in page, (kind, capability)

    def test_reference_lists_every_setting(self, site: Path):
        """The built reference names every setting of the configuration models."""
        page = html.unescape(_page(site, "configuration/reference"))
        missing = [s.path for s in walk_settings(TicketBridgeConfig) if s.path not in page]
        assert [] == missing
        for kind in adapter_kinds():
            assert f"kind: {kind}" in page
            for setting in walk_settings(adapter_class(kind).settings_model):
                assert setting.path in page, (kind, setting.path)

    def test_metrics_table_lists_every_metric(self, site: Path):
        """The operations page lists every metric the daemon registers."""
        from prometheus_client import CollectorRegistry

        from ticketbridge.metrics import Metrics

        page = _page(site, "operations")
        registry = CollectorRegistry()
        Metrics(registry)
        names = {m.name for m in registry.collect()}
        assert names
        for name in names:
            assert name in page, name

    def test_pages_of_the_nav_exist(self, site: Path):
        """Every page of mkdocs.yml's nav was built (the existing docs moved into it)."""
        config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
        sources: list[str] = []

        def walk(entries: list[object]) -> None:
            for entry in entries:
                if isinstance(entry, dict):
                    for value in entry.values():
                        walk(value if isinstance(value, list) else [value])
                elif isinstance(entry, str):
                    sources.append(entry)

        walk(config["nav"])
        for source in sources:
            target = source.removesuffix(".md").removesuffix("index").rstrip("/")
            assert (site / target / "index.html").is_file(), source
        for existing in DOCS.rglob("*.md"):
            assert existing.relative_to(DOCS).as_posix() in sources, existing


def test_a_field_added_to_a_model_shows_up_in_the_reference():
    """The reference is generated: a new setting and its `#:` comment appear in it."""
    from tests.unit._models_for_docs import ExtendedRoot

    before = render_config_reference()
    after = render_config_reference(root=ExtendedRoot)
    assert "engine.extra_knob" not in before
    assert "`engine.extra_knob`" in after
    assert "A knob added to the engine's settings" in after


def test_cookbook_recipes_load_with_the_shipped_directory(tmp_path: Path):
    """Every titled YAML recipe of the rules cookbook loads without a problem beside the
    shipped tiers and contacts."""
    from ticketbridge.adapters import field_aliases
    from ticketbridge.rules.loader import load_rules

    text = (DOCS / "rules" / "cookbook.md").read_text(encoding="utf-8")
    recipes = re.findall(r'```yaml title="([^"]+)"\n(.*?)```', text, re.DOTALL)
    assert len(recipes) >= 6
    for name, body in recipes:
        folder = tmp_path / name.removesuffix(".yaml")
        folder.mkdir()
        shutil.copy(ROOT / "config" / "rules" / "00-directory.yaml", folder)
        (folder / name).write_text(body, encoding="utf-8")
        ruleset, problems = load_rules(folder, aliases=field_aliases())
        assert [] == problems, name
        assert ruleset.rules, name
