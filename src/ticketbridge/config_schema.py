"""The configuration described as data: its JSON Schema and each setting's documentation.

Both come from the pydantic models themselves (:class:`~ticketbridge.config.TicketBridgeConfig`
and every registered product's settings model), so an editor's completion, ``ticketbridge
config schema`` and the configuration reference in the documentation cannot drift from what
``check-config`` accepts.  A setting's documentation is its ``#:`` comment in the model's
source (the comment the code already carries), or its pydantic ``description``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import PydanticUndefined, core_schema

from ticketbridge.adapters import adapter_class, adapter_kinds
from ticketbridge.duration import ACCEPTED_FORMS, format_duration, parse_duration

__all__ = [
    "SCHEMA_DIALECT",
    "SettingDoc",
    "config_json_schema",
    "doc_of",
    "field_comments",
    "settings_models",
    "walk_settings",
]

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

#: What a duration setting accepts, for the schema's pattern (a number is accepted as is).
_DURATION_PATTERN = (
    r"^\s*(-?\d+(\.\d+)?\s*(ms|w|d|h|m|s)?\s*)+$|^[Pp]([0-9.]+[WwDd])*([Tt]([0-9.]+[HhMmSs])+)?$"
)
_FIELD_LINE = re.compile(r"^\s*(\w+)\s*:")


@cache
def field_comments(model: type[BaseModel]) -> Mapping[str, str]:
    """Field name -> the ``#:`` comment written above it in ``model``'s source (and its bases').

    The models document their settings with ``#:`` comments (the convention Sphinx reads);
    this reads them back so that the schema and the reference show the same words.
    """
    found: dict[str, str] = {}
    for klass in reversed(model.__mro__):
        if not (isinstance(klass, type) and issubclass(klass, BaseModel)) or klass is BaseModel:
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue  # no source (a compiled or dynamic model): pydantic descriptions only
        found.update(_comments_in(source))
    return found


def _comments_in(source: str) -> Iterator[tuple[str, str]]:
    """``(field, comment)`` for the class body's fields (one indentation level only)."""
    lines = source.splitlines()
    body_indent: int | None = None
    pending: list[str] = []
    for line in lines[1:]:
        stripped = line.strip()
        if not stripped:
            pending = []
            continue
        indent = len(line) - len(line.lstrip())
        if body_indent is None:
            body_indent = indent
        if indent != body_indent:
            continue  # inside a method, a decorator's arguments, a continuation line
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        if stripped.startswith("#"):
            continue
        match = _FIELD_LINE.match(line)
        if match and pending:
            yield match.group(1), " ".join(pending)
        pending = []


def doc_of(model: type[BaseModel]) -> str:
    """``model``'s own docstring, dedented; empty when it has none of its own."""
    doc = inspect.getdoc(model) or ""
    if model.__doc__ is None or doc.startswith(("Usage docs:", "A base class for")):
        return ""  # pydantic's own base-class docstring, not the model's
    return doc


def _duration_function(schema: core_schema.CoreSchema) -> bool:
    """Is ``schema`` a before-validator reading the one duration grammar?"""
    function = schema.get("function", {})
    target = function.get("function") if isinstance(function, Mapping) else None
    return getattr(target, "__module__", "") == parse_duration.__module__


class _Generator(GenerateJsonSchema):
    """pydantic's generator, knowing durations and our ``#:`` comments."""

    def function_before_schema(
        self, schema: core_schema.BeforeValidatorFunctionSchema
    ) -> JsonSchemaValue:
        if _duration_function(schema):
            return {
                "anyOf": [
                    {"type": "number", "minimum": 0},
                    {"type": "string", "pattern": _DURATION_PATTERN},
                ],
                "description": f"A duration: {ACCEPTED_FORMS}.",
            }
        inner = super().function_before_schema(schema)
        if schema["schema"].get("type") == "model-fields":
            return inner  # a model's own before-validator: model_schema says what it accepts
        # A validator reading the input before the type does accepts a shorthand the type
        # cannot describe (``hours: 24x7``, one status for a list of them): a scalar.
        return {"anyOf": [inner, _SCALAR]}

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        value = super().model_schema(schema)
        model: type[BaseModel] = schema["cls"]
        if _reads_before(model):
            _add_product_words(value)
        comments = field_comments(model)
        properties = value.get("properties", {})
        for name, info in model.model_fields.items():
            key = info.alias or name
            comment = info.description or comments.get(name)
            prop = properties.get(key)
            if comment and isinstance(prop, dict):
                prop["description"] = comment
        doc = doc_of(model)
        if doc and "description" not in value:
            value["description"] = doc
        if _reads_before(model):
            return {"anyOf": [value, _SCALAR], "description": value.get("description", "")}
        return value


#: What a shorthand may be.
_SCALAR: dict[str, Any] = {"type": ["string", "number", "boolean"]}


def _reads_before(model: type[BaseModel]) -> bool:
    """Does ``model`` read its input before validation (a shorthand, a product's words)?"""
    decorators = model.__pydantic_decorators__.model_validators.values()
    return any(d.info.mode == "before" for d in decorators)


def _add_product_words(value: JsonSchemaValue) -> None:
    """Accept each product's own word for a neutral field wherever the neutral one goes
    (``boards`` for ``queues``), as the models do (``field_aliases``)."""
    from ticketbridge.adapters import field_aliases

    properties = value.get("properties", {})
    for word, neutral in field_aliases().items():
        if neutral in properties and word not in properties:
            properties[word] = dict(properties[neutral])


def settings_models() -> dict[str, type[BaseModel]]:
    """Adapter kind -> its settings model (``systems.<name>.settings``), every registered one."""
    return {kind: adapter_class(kind).settings_model for kind in adapter_kinds()}


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema of ``ticketbridge.yaml``, for editors (yaml-language-server and others).

    ``systems.<name>.settings`` is checked against the settings model of the system's
    ``kind`` (one ``if``/``then`` per registered product), every duration accepts the
    duration grammar, and every text value may also be a secret reference (``{env: NAME}``
    or ``{file: PATH}``), as the loader resolves them anywhere.
    """
    from ticketbridge.config import TicketBridgeConfig

    kinds = settings_models()
    models: list[tuple[type[BaseModel], Any]] = [(TicketBridgeConfig, "validation")]
    models += [(model, "validation") for model in kinds.values()]
    keys, top = models_json_schema(models, schema_generator=_Generator)
    defs: dict[str, Any] = top.get("$defs", {})
    root_ref = keys[(TicketBridgeConfig, "validation")]["$ref"].rsplit("/", 1)[-1]
    schema: dict[str, Any] = {
        "$schema": SCHEMA_DIALECT,
        "$id": "https://ticketbridge.invalid/schema/ticketbridge.yaml.json",
        **defs.pop(root_ref),
    }
    schema["title"] = "ticketbridge configuration"
    system = defs["SystemConfig"]
    system["properties"]["kind"]["enum"] = list(kinds)
    system["allOf"] = [
        {
            "if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
            "then": {"properties": {"settings": keys[(model, "validation")]}},
        }
        for kind, model in kinds.items()
    ]
    defs["SecretRef"] = {
        "title": "SecretRef",
        "description": "A secret read at load time: {env: NAME} (NAME_FILE works too) "
        "or {file: /run/secrets/name}.",
        "type": "object",
        "minProperties": 1,
        "maxProperties": 1,
        "properties": {"env": {"type": "string"}, "file": {"type": "string"}},
        "additionalProperties": False,
    }
    for name, definition in defs.items():
        if name != "SecretRef":
            _allow_secret_refs(definition)
    _allow_secret_refs(schema)
    schema["$defs"] = dict(sorted(defs.items()))
    return schema


_TYPE_KEYS = ("type", "format", "pattern", "minLength", "maxLength", "writeOnly", "enum")


def _allow_secret_refs(node: Any) -> None:
    """Let every text value of ``node``'s properties be a secret reference as well."""
    if isinstance(node, list):
        for item in node:
            _allow_secret_refs(item)
        return
    if not isinstance(node, dict):
        return
    for key, value in list(node.items()):
        if key in ("properties", "$defs", "patternProperties"):
            for sub in value.values():
                _wrap_text(sub)
                _allow_secret_refs(sub)
        elif key in ("additionalProperties", "items") and isinstance(value, dict):
            _wrap_text(value)
            _allow_secret_refs(value)
        elif key in ("anyOf", "oneOf", "allOf"):
            for sub in value:
                _allow_secret_refs(sub)


def _wrap_text(node: Any) -> None:
    if not isinstance(node, dict):
        return
    if node.get("type") == "string" and "enum" not in node and "const" not in node:
        inner = {k: node.pop(k) for k in _TYPE_KEYS if k in node}
        node["anyOf"] = [inner, {"$ref": "#/$defs/SecretRef"}]
        return
    for sub in node.get("anyOf", []):
        if isinstance(sub, dict) and sub.get("type") == "string" and "enum" not in sub:
            node["anyOf"] = [*node["anyOf"], {"$ref": "#/$defs/SecretRef"}]
            return


@dataclass(frozen=True)
class SettingDoc:
    """One setting as the reference shows it."""

    path: str
    type: str
    default: str
    doc: str


def walk_settings(
    model: type[BaseModel], prefix: str = "", _inside: tuple[type[BaseModel], ...] = ()
) -> Iterator[SettingDoc]:
    """Every setting of ``model`` and of the models inside it, depth first, with dotted paths
    (``engine.overlap``, ``systems.<name>.poll_interval``, ``connections[].routing.queues``).

    A model met again inside itself (a condition's ``any`` of conditions) is listed once.
    """
    inside = (*_inside, model)
    comments = field_comments(model)
    for name, info in model.model_fields.items():
        key = info.alias or name
        path = f"{prefix}.{key}" if prefix else key
        nested = list(_nested_models(info.annotation))
        doc = info.description or comments.get(name, "")
        if not doc and len(nested) == 1:
            doc = doc_of(nested[0][0])
        if _is_duration(info.metadata):
            kind, default = "duration", _duration_default(info)
        else:
            kind, default = _type_name(info.annotation), _default_text(info)
        yield SettingDoc(path, kind, default, doc)
        for inner, suffix in nested:
            if inner not in inside:
                yield from walk_settings(inner, path + suffix, inside)


def _is_duration(metadata: list[Any]) -> bool:
    """Does a field's metadata read the duration grammar (``Seconds``, ``Duration``)?"""
    for item in metadata:
        func = getattr(item, "func", None)
        if getattr(func, "__module__", "") == parse_duration.__module__:
            return True
    return False


def _duration_default(info: Any) -> str:
    if info.is_required():
        return "required"
    value = info.default
    if value is None:
        return "null"
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    return format_duration(timedelta(seconds=seconds))


def _nested_models(annotation: Any) -> Iterator[tuple[type[BaseModel], str]]:
    import types
    import typing

    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        yield from _nested_models(args[0])
    elif origin is typing.Union or origin is types.UnionType:
        for arg in args:
            yield from _nested_models(arg)
    elif origin in (dict, Mapping) and len(args) == 2:
        for inner, suffix in _nested_models(args[1]):
            yield inner, ".<name>" + suffix
    elif origin in (list, tuple) and args:
        for inner, suffix in _nested_models(args[0]):
            yield inner, "[]" + suffix
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation, ""


def _type_name(annotation: Any) -> str:
    import types
    import typing

    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return "duration" if _is_duration(list(args[1:])) else _type_name(args[0])
    if origin is typing.Union or origin is types.UnionType:
        return " | ".join(dict.fromkeys(_type_name(a) for a in args))
    if origin is typing.Literal:
        return " | ".join(repr(a) if not isinstance(a, str) else a for a in args)
    if origin in (dict, Mapping):
        return f"map of {_type_name(args[1])}" if len(args) == 2 else "map"
    if origin in (list, tuple, set, frozenset):
        return f"list of {_type_name(args[0])}" if args else "list"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return "section"
        if hasattr(annotation, "__members__"):  # an Enum: its values
            return " | ".join(str(m.value) for m in annotation)  # type: ignore[attr-defined]
        if issubclass(annotation, timedelta):
            return "duration"
        if annotation.__name__ == "SecretStr":
            return "secret"
        names = {"str": "text", "int": "integer", "float": "number", "bool": "true | false"}
        return names.get(annotation.__name__, annotation.__name__)
    return str(annotation)


def _default_text(info: Any) -> str:
    if info.is_required():
        return "required"
    if info.default_factory is not None:
        try:
            value = info.default_factory()
        except TypeError:
            return ""
        if isinstance(value, BaseModel):
            return ""
    else:
        value = info.default
    if value is PydanticUndefined:
        return ""
    if value is None:
        return "null"
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "get_secret_value"):
        return "(secret)"
    if hasattr(value, "value"):  # an Enum member
        return str(value.value)
    if isinstance(value, list | tuple | dict | set | frozenset) and not value:
        return "[]" if not isinstance(value, dict) else "{}"
    return str(value) if not isinstance(value, list | tuple) else ", ".join(map(str, value))
