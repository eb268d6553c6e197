"""``ticketbridge config schema|example``: the configuration for editors and for a first start."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["config_app"]

config_app = typer.Typer(
    help="The configuration file: its JSON Schema for editors, a commented starter file.",
    no_args_is_help=True,
)

_err = Console(stderr=True, soft_wrap=True)


def _write(text: str, output: Path | None, force: bool) -> None:
    """``text`` to ``output`` (refusing to replace a file unless forced), else to stdout."""
    if output is None:
        typer.echo(text, nl=False)
        return
    if output.exists() and not force:
        _err.print(
            f"{output} exists; give --force to replace it, or another --output path",
            highlight=False,
        )
        raise typer.Exit(1)
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        _err.print(f"cannot write {output}: {exc.strerror}", highlight=False)
        raise typer.Exit(1) from None
    _err.print(f"wrote {output}", highlight=False)


OutputOption = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Write to this file instead of standard output."),
]
ForceOption = Annotated[bool, typer.Option("--force", help="Replace an existing --output file.")]


@config_app.command("schema")
def config_schema(output: OutputOption = None, force: ForceOption = False) -> None:
    """Print the JSON Schema of ticketbridge.yaml (every installed product's settings included).

    Point your editor's YAML support at it, e.g. a first line
    ``# yaml-language-server: $schema=./ticketbridge.schema.json``.
    """
    from ticketbridge.config_schema import config_json_schema

    _write(json.dumps(config_json_schema(), indent=2) + "\n", output, force)


def _kinds(side: str) -> list[str]:
    """The installed product kinds that can be ``side`` (for shell completion)."""
    from ticketbridge.config_example import kinds_for
    from ticketbridge.domain import Side

    return kinds_for(Side(side))


@config_app.command("example")
def config_example(
    psa: Annotated[
        str,
        typer.Option(
            help="The PSA's product kind (an installed adapter; a wrong one lists them).",
            autocompletion=lambda: _kinds("psa"),
        ),
    ],
    vendor: Annotated[
        str,
        typer.Option(
            help="The vendor's product kind (an installed adapter).",
            autocompletion=lambda: _kinds("vendor"),
        ),
    ],
    output: OutputOption = None,
    force: ForceOption = False,
) -> None:
    """Print a commented starter ticketbridge.yaml pairing a PSA with a vendor.

    The file passes ``ticketbridge check-config`` once the secrets it names are set.
    """
    from ticketbridge.config_example import ExampleError, render_example

    try:
        text = render_example(psa, vendor)
    except ExampleError as exc:
        _err.print(f"config example: {exc}", highlight=False)
        raise typer.Exit(2) from None
    _write(text, output, force)
