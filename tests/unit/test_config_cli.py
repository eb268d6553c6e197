"""``ticketbridge config schema`` and ``ticketbridge config example``."""

from __future__ import annotations

import itertools
import json
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from ticketbridge.adapters import adapter_class, adapter_kinds
from ticketbridge.cli import app
from ticketbridge.config_example import (
    EXAMPLE_FILE,
    kinds_for,
    product_example,
    render_example,
    secret_names,
)
from ticketbridge.config_schema import field_comments, walk_settings
from ticketbridge.domain import Side

PAIRS = list(itertools.product(kinds_for(Side.PSA), kinds_for(Side.VENDOR)))


def _run(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    result = _run("config", "schema")
    assert 0 == result.exit_code, result.output
    data = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(data)
    return data


class _TextLoader(yaml.SafeLoader):
    """YAML as an editor's schema check sees it: dates stay text."""


_TextLoader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _as_editor(text: str) -> Any:
    return yaml.load(text, Loader=_TextLoader)


def _validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema)


class TestSchema:
    def test_every_registered_product_has_its_settings_checked(self, schema: dict[str, Any]):
        """Each registered kind is an allowed `kind` with an if/then on its settings model."""
        system = schema["$defs"]["SystemConfig"]
        assert adapter_kinds() == system["properties"]["kind"]["enum"]
        kinds = [rule["if"]["properties"]["kind"]["const"] for rule in system["allOf"]]
        assert adapter_kinds() == kinds
        for rule in system["allOf"]:
            ref = rule["then"]["properties"]["settings"]["$ref"].rsplit("/", 1)[-1]
            kind = rule["if"]["properties"]["kind"]["const"]
            assert adapter_class(kind).settings_model.__name__ == ref

    def test_a_product_setting_typo_fails_the_schema(self, schema: dict[str, Any]):
        """An unknown key inside one product's settings is an error; the same config with
        the key spelled right is not (the per-kind settings model is really applied)."""
        config = yaml.safe_load(render_example("connectwise", "servicenow"))
        _validator(schema).validate(config)
        config["systems"]["servicenow"]["settings"]["usernme"] = "x"
        errors = list(_validator(schema).iter_errors(config))
        assert errors
        assert any("usernme" in e.message for e in errors)

    def test_the_shipped_example_configuration_validates(self, schema: dict[str, Any]):
        """config/ticketbridge.example.yaml, with its shorthands and secret references, passes."""
        root = Path(__file__).resolve().parents[2]
        shipped = _as_editor((root / "config" / "ticketbridge.example.yaml").read_text())
        errors = [e.message for e in _validator(schema).iter_errors(shipped)]
        assert [] == errors

    def test_durations_and_secret_references_validate(self, schema: dict[str, Any]):
        """`overlap: 90s` and `{env: NAME}` pass; `overlap: soon` and `{envy: X}` do not."""
        good = {"engine": {"overlap": "90s", "marker_secret": {"env": "TB_MARKER"}}}
        _validator(schema).validate(good)
        for bad in (
            {"engine": {"overlap": "soon"}},
            {"engine": {"marker_secret": {"envy": "X"}}},
        ):
            assert list(_validator(schema).iter_errors(bad)), bad

    def test_descriptions_come_from_the_models_comments(self, schema: dict[str, Any]):
        """A setting's `#:` comment in the model is its description in the schema."""
        from ticketbridge.config import EngineConfig

        comment = field_comments(EngineConfig)["write_deadline"]
        prop = schema["$defs"]["EngineConfig"]["properties"]["write_deadline"]
        assert comment == prop["description"]
        assert "dead-lettered" in comment

    def test_output_file_is_not_replaced_without_force(self, tmp_path: Path):
        """--output writes the file; a second run refuses to replace it unless --force."""
        target = tmp_path / "schema.json"
        assert 0 == _run("config", "schema", "-o", str(target)).exit_code
        first = target.read_text(encoding="utf-8")
        target.write_text("mine", encoding="utf-8")
        refused = _run("config", "schema", "-o", str(target))
        assert 1 == refused.exit_code
        assert "--force" in refused.stderr
        assert "mine" == target.read_text(encoding="utf-8")
        assert 0 == _run("config", "schema", "-o", str(target), "--force").exit_code
        assert first == target.read_text(encoding="utf-8")


class TestWalkSettings:
    def test_a_field_added_to_a_model_is_listed_with_its_comment(self):
        """walk_settings reads fields and `#:` comments from the source, nested models too."""
        from pydantic import BaseModel

        from tests.unit import _models_for_docs as m

        paths = {s.path: s for s in walk_settings(m.Outer)}
        assert "inner.retries" in paths
        assert "How many times, at most." == paths["inner.retries"].doc
        assert "3" == paths["inner.retries"].default
        assert "duration" == paths["inner.wait"].type
        assert "1m30s" == paths["inner.wait"].default
        assert "items[].name" in paths
        assert issubclass(m.Outer, BaseModel)


@pytest.mark.parametrize(("psa", "vendor"), PAIRS, ids=[f"{p}-{v}" for p, v in PAIRS])
def test_example_passes_check_config(psa: str, vendor: str, tmp_path: Path, monkeypatch, schema):
    """The starter file of every installed PSA/vendor pair passes check-config (its secrets
    set) and the schema, and carries both product folders' commented fragments."""
    target = tmp_path / "ticketbridge.yaml"
    result = _run("config", "example", "--psa", psa, "--vendor", vendor, "-o", str(target))
    assert 0 == result.exit_code, result.output
    text = target.read_text(encoding="utf-8")
    for kind in {psa, vendor}:
        first_line = product_example(kind).system.strip().splitlines()[0]
        assert first_line in text  # the folder's own line, comment and all
    names = secret_names(text)
    for name in names:
        monkeypatch.setenv(name, f"value-of-{name.lower()}-0123456789")
    checked = _run("check-config", str(target))
    assert 0 == checked.exit_code, checked.output
    assert "OK" in checked.stdout
    _validator(schema).validate(yaml.safe_load(text))
    if names:  # without the secrets, check-config names the first missing variable
        monkeypatch.delenv(names[0])
        missing = _run("check-config", str(target))
        assert 2 == missing.exit_code
        assert names[0] in missing.stderr


class TestExampleRefusals:
    def test_a_vendor_only_product_as_psa_names_the_psa_kinds(self):
        """--psa with a product that cannot be a PSA exits 2 listing those that can."""
        vendor_only = next(k for k in adapter_kinds() if Side.PSA not in adapter_class(k).sides)
        result = _run("config", "example", "--psa", vendor_only, "--vendor", vendor_only)
        assert 2 == result.exit_code
        assert "cannot be the psa" in result.stderr
        for kind in kinds_for(Side.PSA):
            assert kind in result.stderr

    def test_an_unknown_product_names_the_installed_ones(self):
        result = _run("config", "example", "--psa", "nope", "--vendor", "nope")
        assert 2 == result.exit_code
        assert "unknown product 'nope'" in result.stderr
        assert ", ".join(adapter_kinds()) in result.stderr


def test_every_product_folder_ships_an_example():
    """Each registered product's folder holds example.yaml with its side's section."""
    for kind in adapter_kinds():
        cls = adapter_class(kind)
        package = cls.__module__.rpartition(".")[0]
        assert files(package).joinpath(EXAMPLE_FILE).is_file(), kind
        example = product_example(kind)
        assert (example.psa is not None) == (Side.PSA in cls.sides), kind
        assert (example.vendor is not None) == (Side.VENDOR in cls.sides), kind
        assert f"kind: {kind}" in example.system


def test_product_kinds_complete_in_the_shell():
    """--psa completes to the installed PSA kinds, --vendor to the vendor kinds."""
    import typer.main

    group = typer.main.get_command(app)
    config = group.commands["config"]  # type: ignore[attr-defined]
    example = config.commands["example"]
    ctx = example.make_context("example", ["--psa", "x", "--vendor", "y"], resilient_parsing=True)
    params = {p.name: p for p in example.params}
    psa = [item.value for item in params["psa"].shell_complete(ctx, "")]
    vendor = [item.value for item in params["vendor"].shell_complete(ctx, "")]
    assert kinds_for(Side.PSA) == psa
    assert kinds_for(Side.VENDOR) == vendor
