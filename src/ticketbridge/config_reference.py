"""The configuration reference as Markdown, generated from the models at documentation build.

``docs/hooks/generate.py`` calls :func:`render_config_reference` and
:func:`render_rules_reference` each time the site is built, so the reference lists exactly
the settings the code accepts, with the ``#:`` comments the models carry; nothing is
copied by hand.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from pydantic import BaseModel

from ticketbridge.config_schema import SettingDoc, doc_of, settings_models, walk_settings

__all__ = ["render_config_reference", "render_rules_reference", "settings_table"]

_RST_CODE = re.compile(r"``(.+?)``")


def _cell(text: str) -> str:
    """``text`` fit for one Markdown table cell."""
    text = _RST_CODE.sub(r"`\1`", " ".join(text.split()))
    return text.replace("|", "\\|")


def settings_table(settings: Iterable[SettingDoc], strip: str = "") -> str:
    """A Markdown table of ``settings``; ``strip`` is a path prefix left out for brevity."""
    rows = ["| setting | type | default | what it does |", "|---|---|---|---|"]
    for setting in settings:
        path = setting.path.removeprefix(strip) if strip else setting.path
        name = f"**`{path}`**" if setting.type == "section" else f"`{path}`"
        default = f"`{_cell(setting.default)}`" if setting.default else ""
        rows.append(f"| {name} | {_cell(setting.type)} | {default} | {_cell(setting.doc)} |")
    return "\n".join(rows)


def _sections(root: type[BaseModel]) -> dict[str, list[SettingDoc]]:
    grouped: dict[str, list[SettingDoc]] = {}
    for setting in walk_settings(root):
        top = re.split(r"[.\[]", setting.path, maxsplit=1)[0]
        grouped.setdefault(top, []).append(setting)
    return grouped


def render_config_reference(
    root: type[BaseModel] | None = None,
    products: Mapping[str, type[BaseModel]] | None = None,
    display_names: Mapping[str, str] | None = None,
) -> str:
    """The reference of ``ticketbridge.yaml``: every section of ``root`` (the configuration's
    root model by default), then ``systems.<name>.settings`` of every installed product."""
    from ticketbridge.adapters import adapter_class
    from ticketbridge.config import TicketBridgeConfig

    root = root or TicketBridgeConfig
    products = settings_models() if products is None else products
    if display_names is None:
        display_names = {kind: adapter_class(kind).display_name for kind in products}
    out = [
        "# Configuration reference",
        "",
        (
            "Generated from the configuration models when this site was built: every setting "
            "`ticketbridge check-config` accepts, its type, its default and what it does. "
            "A duration takes any form of [the duration grammar](durations.md); any text value "
            "may be a secret reference, `{env: NAME}` or `{file: /run/secrets/name}`; any "
            "setting can be overridden by a `TICKETBRIDGE_<PATH>` variable joined with `__` "
            "(`TICKETBRIDGE_ENGINE__OVERLAP=90s`)."
        ),
        "",
        (
            "`ticketbridge config schema` prints the same as a JSON Schema for editors, and "
            "`ticketbridge config example --psa X --vendor Y` a commented starter file."
        ),
        "",
    ]
    for section, settings in _sections(root).items():
        head = settings[0]
        out += [f"## `{section}`", ""]
        if head.doc:
            out += [_RST_CODE.sub(r"`\1`", head.doc), ""]
        out += [settings_table(settings), ""]
    out += [
        "## Product settings (`systems.<name>.settings`)",
        "",
        (
            "What `settings` holds depends on the system's `kind`; each product's page says how "
            "to set it up."
        ),
        "",
    ]
    for kind, model in products.items():
        out += [f"### `kind: {kind}` ({display_names.get(kind, kind)})", ""]
        doc = doc_of(model)
        if doc and not doc.startswith("Base of every adapter"):
            out += [_RST_CODE.sub(r"`\1`", doc), ""]
        out += [settings_table(walk_settings(model)), ""]
    return "\n".join(out)


def render_rules_reference() -> str:
    """The reference of a rule file (``rules.directory``/``*.yaml``), from the rule models."""
    import typing

    from ticketbridge.rules.models import RuleModel, RulesFile, When

    out = [
        "# Rule file reference",
        "",
        (
            "Generated from the rule models when this site was built. A rule file holds "
            "`timezone`, `tiers`, `contacts` and `rules`; files are read in name order and "
            "share their tiers and contacts. The [cookbook](cookbook.md) shows them at work."
        ),
        "",
        "## File",
        "",
        settings_table(
            s
            for s in walk_settings(RulesFile)
            if not s.path.startswith("rules[].") and not s.path.startswith("rules[]")
        ),
        "",
        "## A rule (`rules[]`)",
        "",
        settings_table(
            (
                s
                for s in walk_settings(RuleModel)
                if not s.path.startswith(("when.", "actions[]", "chain[].actions[]"))
                and not s.path.startswith("chain[].when.")
            ),
        ),
        "",
        "## Conditions (`when`)",
        "",
        (
            "Every condition given must hold; a list means any one of its values. "
            "`any`, `all` and `not` combine conditions."
        ),
        "",
        settings_table(s for s in walk_settings(When) if s.path.count(".") <= 1),
        "",
        "## Actions",
        "",
    ]
    action_union = RuleModel.model_fields["actions"].annotation
    for model in _models_in(action_union):
        kind = typing.get_args(model.model_fields["type"].annotation)
        title = kind[0] if kind else model.__name__
        out += [f"### `type: {title}`", ""]
        doc = doc_of(model)
        if doc:
            out += [_RST_CODE.sub(r"`\1`", doc), ""]
        out += [settings_table(walk_settings(model)), ""]
    return "\n".join(out)


def _models_in(annotation: object) -> list[type[BaseModel]]:
    """The models inside an annotation (unions, tuples, ``Annotated``), in order, once each."""
    import typing

    found: list[type[BaseModel]] = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    for arg in typing.get_args(annotation):
        for model in _models_in(arg):
            if model not in found:
                found.append(model)
    return found
