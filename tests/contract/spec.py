"""Contract checks: HTTP exchanges against the vendors' OpenAPI specs, with openapi-core.

Any ``(httpx.Request, httpx.Response)`` pair can be checked, wherever it came
from: respx calls, a recording transport around a simulator, a real API::

    contract = contract_for(CONNECTWISE)           # skips when ../shared/specs is absent
    report = contract.check(router_calls(router), base_url=adapter.ctx.base_url)
    assert [] == report.problems

The request URL is mapped onto the spec's server: the part below
``base_url + product.api_prefix`` is appended to the spec server's default URL,
so simulators on ``http://127.0.0.1:PORT`` are checked like the cloud.

Nothing is skipped silently.  Paths the adapter calls that the spec subset does
not describe are listed in ``Product.exclusions`` with a reason; places where the
spec contradicts the product's documented behaviour are listed in
``Product.fixes`` with a reason; both lists are themselves tested (an exclusion
must not name a path the spec has, a fix must change something that exists).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from ticketbridge.adapters.connectwise.driver import SPEC as CONNECTWISE_SPEC
from ticketbridge.adapters.servicenow.driver import SPEC as SERVICENOW_SPEC
from ticketbridge.sandbox.driver import ApiSpec, SpecExclusion, SpecFix

__all__ = [
    "CONNECTWISE",
    "SERVICENOW",
    "SKIP_REASON",
    "Contract",
    "Exclusion",
    "Product",
    "RecordingTransport",
    "Report",
    "SpecFix",
    "contract_for",
    "router_calls",
    "specs_dir",
]

SHARED_ENV = "TICKETBRIDGE_SHARED_DIR"
SKIP_REASON = (
    "../shared/specs not found: contract tests need the vendors' OpenAPI specs beside the project"
)


def specs_dir() -> Path | None:
    """``<workspace>/shared/specs`` beside the project, else ``$TICKETBRIDGE_SHARED_DIR/specs``."""
    candidates = [Path(__file__).resolve().parents[3] / "shared" / "specs"]
    env = os.environ.get(SHARED_ENV)
    if env:
        candidates += [Path(env) / "specs", Path(env)]
    for candidate in candidates:
        if (candidate / "README.md").is_file() or any(candidate.glob("*/*.json")):
            return candidate
    return None


# -- what is checked, per product: data each product's driver carries ------------------
#: The product folder's :class:`~ticketbridge.sandbox.driver.ApiSpec` (spec file, deviations).
Product = ApiSpec
Exclusion = SpecExclusion

CONNECTWISE = CONNECTWISE_SPEC
SERVICENOW = SERVICENOW_SPEC


def _excludes(exclusion: SpecExclusion, method: str, path: str) -> bool:
    return (
        method.upper() == exclusion.method.upper()
        and _template_regex(exclusion.path).fullmatch(path) is not None
    )


class OpenAPIRequest:
    """An ``httpx.Request`` as openapi-core's ``Request`` protocol, at a given URL."""

    def __init__(self, request: httpx.Request, host_url: str, path: str) -> None:
        self._request = request
        self._host_url = host_url
        self._path = path
        query = parse_qsl(request.url.query.decode("ascii"), keep_blank_values=True)
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(query),
            header=Headers(list(request.headers.multi_items())),
            cookie=ImmutableMultiDict(),
        )

    @property
    def host_url(self) -> str:
        return self._host_url

    @property
    def path(self) -> str:
        return self._path

    @property
    def method(self) -> str:
        return self._request.method.lower()

    @property
    def body(self) -> bytes | None:
        return self._request.content or None

    @property
    def content_type(self) -> str:
        return self._request.headers.get("content-type", "").lower()


class OpenAPIResponse:
    """An ``httpx.Response`` as openapi-core's ``Response`` protocol."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.headers = Headers(list(response.headers.multi_items()))

    @property
    def status_code(self) -> int:
        return self._response.status_code

    @property
    def content_type(self) -> str:
        return self._response.headers.get("content-type", "").lower()

    @property
    def data(self) -> bytes | None:
        return self._response.content or None


# -- the checker ----------------------------------------------------------------------
@dataclass
class Report:
    checked: list[str] = field(default_factory=list)  # "GET /service/tickets -> 200"
    excluded: list[tuple[str, str]] = field(default_factory=list)  # (call, reason)
    problems: list[str] = field(default_factory=list)


def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^/{}]+\})", template)
    pattern = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(pattern)


def _describe(exc: BaseException) -> str:
    seen: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(seen) < 4:
        text = f"{type(current).__name__}: {current}"
        errors = getattr(current, "schema_errors", None)
        if errors:
            text += " [" + "; ".join(getattr(e, "message", str(e)) for e in errors) + "]"
        seen.append(text)
        current = current.__cause__ or current.__context__
    return " <- ".join(seen)


def _json_loads(value: bytes, **parameters: str) -> Any:
    return json.loads(value)


def _apply_fix(doc: dict[str, Any], fix: SpecFix) -> None:
    keys = [k.replace("~1", "/").replace("~0", "~") for k in fix.pointer.strip("/").split("/")]
    node: Any = doc
    for key in keys[:-1]:
        node = node[key]
    if keys[-1] not in node:
        raise KeyError(f"spec fix {fix.pointer} names nothing in the spec")
    node[keys[-1]] = fix.value


class Contract:
    """One product's spec, ready to check exchanges."""

    def __init__(self, product: Product, specs: Path) -> None:
        self.product = product
        raw = json.loads((specs / product.spec_file).read_text(encoding="utf-8"))
        self.original: dict[str, Any] = raw
        doc = json.loads(json.dumps(raw))
        for fix in product.fixes:
            _apply_fix(doc, fix)
        self.document = doc
        deserializers: Mapping[str, Callable[..., Any]] = {
            media: _json_loads for media in product.json_media_types
        }
        self.api = OpenAPI.from_dict(
            doc, config=Config(extra_media_type_deserializers=dict(deserializers))
        )
        server = httpx.URL(self._server_url(doc))
        self.server_host = f"{server.scheme}://{server.netloc.decode('ascii')}"
        self.server_path = server.path.rstrip("/")

    @staticmethod
    def _server_url(doc: Mapping[str, Any]) -> str:
        server = doc["servers"][0]
        url: str = server["url"]
        for name, variable in server.get("variables", {}).items():
            url = url.replace("{" + name + "}", str(variable["default"]))
        return url

    # -- what the spec has ------------------------------------------------------
    def operation(self, method: str, path: str) -> dict[str, Any] | None:
        """The spec operation for ``method`` at ``path`` (below the API root), if any."""
        exact = self.document["paths"].get(path)
        if exact is not None and method.lower() in exact:
            return exact[method.lower()]
        for template, item in self.document["paths"].items():
            if _template_regex(template).fullmatch(path) and method.lower() in item:
                return item[method.lower()]
        return None

    def stale_exclusions(self) -> list[Exclusion]:
        """Exclusions naming an operation the spec does describe (they would hide checks)."""
        stale = []
        for exclusion in self.product.exclusions:
            concrete = re.sub(r"\{[^/{}]+\}", "1", exclusion.path)
            if self.operation(exclusion.method, concrete) is not None:
                stale.append(exclusion)
        return stale

    # -- checking ---------------------------------------------------------------------
    def relative_path(self, request: httpx.Request, base_url: str) -> str | None:
        root = base_url.rstrip("/") + self.product.api_prefix
        url = str(request.url.copy_with(query=None, fragment=None))
        if url == root:
            return "/"
        if not url.startswith(root + "/"):
            return None
        return url[len(root) :]

    def check_one(
        self, request: httpx.Request, response: httpx.Response | None, *, base_url: str
    ) -> Report:
        report = Report()
        rel = self.relative_path(request, base_url)
        call = f"{request.method} {request.url.path}"
        if rel is None:
            report.problems.append(f"{call}: outside the API root {base_url}")
            return report
        call = f"{request.method} {rel}"
        for exclusion in self.product.exclusions:
            if _excludes(exclusion, request.method, rel):
                report.excluded.append((call, exclusion.reason))
                return report
        wrapped = OpenAPIRequest(request, self.server_host, self.server_path + rel)
        try:
            self.api.validate_request(wrapped)
        except Exception as exc:  # openapi-core raises a family of errors; report them all
            report.problems.append(f"{call}: request: {_describe(exc)}")
        if response is None:
            report.checked.append(f"{call} -> (no response)")
            return report
        declared = (self.operation(request.method, rel) or {}).get("responses", {})
        status_declared = str(response.status_code) in declared or "default" in declared
        if response.status_code >= 400 and not status_declared:
            # Subsets declare only success answers; an error answer cannot be checked.
            reason = f"the spec declares no {response.status_code} answer for this operation"
            report.excluded.append((f"{call} -> {response.status_code}", reason))
            return report
        report.checked.append(f"{call} -> {response.status_code}")
        if not response.content and self._bodyless_ok(request):
            # The rule allows any 2xx without a body (the simulator, like the API, may say 204).
            if not status_declared and not 200 <= response.status_code < 300:
                report.problems.append(
                    f"{call}: response status {response.status_code} not declared"
                )
            return report
        try:
            self.api.validate_response(wrapped, OpenAPIResponse(response))
        except Exception as exc:
            report.problems.append(f"{call}: response {response.status_code}: {_describe(exc)}")
        return report

    def _bodyless_ok(self, request: httpx.Request) -> bool:
        return any(
            request.headers.get(rule.header, "").lower() == rule.value.lower()
            for rule in self.product.bodyless
        )

    def check(
        self,
        exchanges: Iterable[tuple[httpx.Request, httpx.Response | None]],
        *,
        base_url: str,
    ) -> Report:
        total = Report()
        for request, response in exchanges:
            one = self.check_one(request, response, base_url=base_url)
            total.checked += one.checked
            total.excluded += one.excluded
            total.problems += one.problems
        return total


_CONTRACTS: dict[str, Contract] = {}


def contract_for(product: Product) -> Contract:
    """The product's contract; skips the calling test when the specs are absent."""
    specs = specs_dir()
    if specs is None or not (specs / product.spec_file).is_file():
        pytest.skip(SKIP_REASON)
    if product.name not in _CONTRACTS:
        _CONTRACTS[product.name] = Contract(product, specs)
    return _CONTRACTS[product.name]


# -- collecting exchanges --------------------------------------------------------------
def router_calls(router: Any) -> list[tuple[httpx.Request, httpx.Response | None]]:
    """Every (request, response) a respx router saw."""
    return [(call.request, call.response) for call in router.calls]


class RecordingTransport(httpx.AsyncBaseTransport):
    """Wraps a transport (an ASGI app, a mock) and keeps every exchange for checking."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.exchanges: list[tuple[httpx.Request, httpx.Response | None]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self.inner.handle_async_request(request)
        except Exception:
            self.exchanges.append((request, None))
            raise
        body = await response.aread()  # decoded: drop the headers that describe the wire form
        headers = [
            (name, value)
            for name, value in response.headers.multi_items()
            if name.lower() not in {"content-encoding", "content-length", "transfer-encoding"}
        ]
        recorded = httpx.Response(
            response.status_code, headers=headers, content=body, request=request
        )
        self.exchanges.append((request, recorded))
        return httpx.Response(response.status_code, headers=headers, content=body, request=request)

    async def aclose(self) -> None:
        await self.inner.aclose()
