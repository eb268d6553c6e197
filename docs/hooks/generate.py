"""MkDocs hook: the pages generated from the code each time the site is built.

* ``products/<kind>.md`` for every registered product: its folder's README.md, included
  as it is, and what its adapter declares (sides, capabilities, statuses, priorities).  A
  product folder added later gets its page without any edit here.
* ``configuration/reference.md`` and ``rules/reference.md`` from the models
  (``ticketbridge.config_reference``), so the reference cannot drift from the code.
"""

from __future__ import annotations

import sys
from importlib.resources import files
from typing import Any

from mkdocs.structure.files import File, Files

from ticketbridge.adapters import adapter_class, adapter_kinds
from ticketbridge.config_reference import render_config_reference, render_rules_reference

PRODUCTS_SECTION = "Products"
METRICS_MARKER = "<!-- metrics-table -->"


def _readme(kind: str) -> str:
    cls = adapter_class(kind)
    module = sys.modules[cls.__module__]
    package = module.__package__ or cls.__module__.rpartition(".")[0]
    readme = files(package).joinpath("README.md")
    if not readme.is_file():
        return f"# {cls.display_name} (`kind: {kind}`)\n\nThis product folder has no README.md.\n"
    return readme.read_text(encoding="utf-8")


def _declared(kind: str) -> str:
    cls = adapter_class(kind)
    lines = [
        "",
        "## What the adapter declares",
        "",
        "Read from the adapter class when this site was built.",
        "",
        f"* **Sides:** {', '.join(sorted(str(s) for s in cls.sides))}",
        "* **Capabilities:** "
        + (", ".join(f"`{c.value}`" for c in sorted(cls.capabilities)) or "none"),
    ]
    if cls.request_budget is not None:
        requests, per = cls.request_budget
        lines.append(f"* **Request budget (default):** {requests} requests per {per:g} s")
    if cls.field_aliases:
        words = ", ".join(f"`{w}` for `{n}`" for w, n in cls.field_aliases.items())
        lines.append(f"* **Its own words:** {words}")
    if cls.status_classes:
        lines += ["", "| status | class |", "|---|---|"]
        lines += [f"| {s} | `{c.value}` |" for s, c in cls.status_classes.items()]
    if cls.priority_ranks:
        lines += ["", "| priority | rank (1 most urgent) |", "|---|---|"]
        lines += [f"| {p} | {r} |" for p, r in cls.priority_ranks.items()]
    return "\n".join(lines) + "\n"


def product_page(kind: str) -> str:
    """The page of one product: its README, then its declared data."""
    return _readme(kind).rstrip("\n") + "\n" + _declared(kind)


def metrics_table() -> str:
    """Every metric the daemon serves, read from ``ticketbridge.metrics``."""
    from prometheus_client import CollectorRegistry

    from ticketbridge.metrics import Metrics

    rows = ["| metric | type | labels | what it counts |", "|---|---|---|---|"]
    for metric in vars(Metrics(CollectorRegistry())).values():
        kind = getattr(metric, "_type", None)
        if kind is None:
            continue
        name = metric._name + ("_total" if kind == "counter" else "")
        labels = ", ".join(f"`{label}`" for label in metric._labelnames)
        rows.append(f"| `{name}` | {kind} | {labels} | {metric._documentation} |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Fill the metrics table into the page that asks for it."""
    if METRICS_MARKER in markdown:
        return markdown.replace(METRICS_MARKER, metrics_table())
    return markdown


def on_config(config: Any) -> Any:
    """Put one page per registered product at the top of the Products section."""
    for entry in config["nav"]:
        if isinstance(entry, dict) and PRODUCTS_SECTION in entry:
            pages = [{adapter_class(k).display_name: f"products/{k}.md"} for k in adapter_kinds()]
            entry[PRODUCTS_SECTION] = pages + list(entry[PRODUCTS_SECTION])
            break
    return config


def on_files(files: Files, config: Any) -> Files:
    """Add the generated pages."""
    generated = {
        "configuration/reference.md": render_config_reference(),
        "rules/reference.md": render_rules_reference(),
    }
    generated.update({f"products/{kind}.md": product_page(kind) for kind in adapter_kinds()})
    for path, content in generated.items():
        files.append(File.generated(config, path, content=content))
    return files
