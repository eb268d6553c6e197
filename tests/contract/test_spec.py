"""The contract checker itself: it must catch what it claims to catch."""

# Asserts read ``expected == actual`` (house style), which SIM300 calls Yoda conditions.

from __future__ import annotations

import dataclasses
import json
from typing import Any

import httpx
import pytest

from tests.adapters import cw_payloads as cw
from tests.adapters import sn_payloads as sn
from tests.contract.spec import (
    CONNECTWISE,
    SERVICENOW,
    SKIP_REASON,
    Contract,
    Product,
    RecordingTransport,
    contract_for,
    specs_dir,
)

pytestmark = pytest.mark.contract

CW_AUTH = {
    "authorization": "Basic YWNtZSs0Mjp4",
    "clientid": cw.CLIENT_ID,
    "accept": cw.MEDIA_TYPE,
}
SN_AUTH = {"authorization": "Basic dTpw", "accept": "application/json"}


def request(
    base: str, path: str, method: str = "GET", *, headers: dict[str, str], **kwargs: Any
) -> httpx.Request:
    return httpx.Request(method, f"{base}{path}", headers=headers, **kwargs)


def problems(contract: Contract, req: httpx.Request, resp: httpx.Response, base: str) -> list[str]:
    return contract.check([(req, resp)], base_url=base).problems


def unfixed(product: Product) -> Contract:
    specs = specs_dir()
    if specs is None:
        pytest.skip(SKIP_REASON)
    return Contract(dataclasses.replace(product, name=f"{product.name}-unfixed", fixes=()), specs)


class TestUrlMapping:
    def test_cloud_path(self) -> None:
        """The part of the URL below the base URL is the spec path."""
        contract = contract_for(CONNECTWISE)
        req = request(cw.BASE_URL, "/service/tickets/7", headers=CW_AUTH, params={"page": 1})
        assert "/service/tickets/7" == contract.relative_path(req, cw.BASE_URL)

    def test_sandbox_base_url(self) -> None:
        """A simulator on http://127.0.0.1:PORT is checked against the cloud spec."""
        contract = contract_for(CONNECTWISE)
        base = "http://127.0.0.1:8123/v4_6_release/apis/3.0"
        req = request(base, "/service/tickets/4711", headers=CW_AUTH)
        assert [] == problems(contract, req, cw.respond(cw.ticket()), base)

    def test_servicenow_api_prefix(self) -> None:
        """ServiceNow's base URL is the instance; the spec's server sits at /api/now."""
        contract = contract_for(SERVICENOW)
        req = request(sn.BASE_URL, sn.TABLE, headers=SN_AUTH)
        assert "/table/incident" == contract.relative_path(req, sn.BASE_URL)

    def test_outside_the_api_root(self) -> None:
        """A request elsewhere than the base URL is a problem, not ignored."""
        contract = contract_for(CONNECTWISE)
        req = httpx.Request("GET", "https://evil.example/service/tickets", headers=CW_AUTH)
        found = problems(contract, req, cw.respond([]), cw.BASE_URL)
        assert (1, True) == (len(found), "outside the API root" in found[0])


class TestDetection:
    def test_missing_credentials(self) -> None:
        """A request without Basic credentials breaks the spec's security requirement."""
        contract = contract_for(CONNECTWISE)
        headers = {k: v for k, v in CW_AUTH.items() if k != "authorization"}
        req = request(cw.BASE_URL, "/service/tickets/4711", headers=headers)
        found = problems(contract, req, cw.respond(cw.ticket()), cw.BASE_URL)
        assert (1, True) == (len(found), "Security" in found[0])

    def test_wrong_request_body(self) -> None:
        """A ServiceNote whose text is a number is caught."""
        contract = contract_for(CONNECTWISE)
        req = request(
            cw.BASE_URL,
            "/service/tickets/4711/notes",
            "POST",
            headers=CW_AUTH,
            json={"text": 42, "internalAnalysisFlag": True},
        )
        found = problems(contract, req, cw.respond(cw.note(1), 201), cw.BASE_URL)
        assert (1, True) == (
            len(found),
            found[0].startswith("POST /service/tickets/4711/notes: request"),
        )

    def test_wrong_response_body(self) -> None:
        """A Ticket whose id is a string is caught."""
        contract = contract_for(CONNECTWISE)
        req = request(cw.BASE_URL, "/service/tickets/4711", headers=CW_AUTH)
        found = problems(contract, req, cw.respond(cw.ticket("4711")), cw.BASE_URL)
        assert (1, True) == (len(found), "response 200" in found[0])

    def test_wrong_media_type(self) -> None:
        """An answer under a media type the spec does not name is caught."""
        contract = contract_for(CONNECTWISE)
        req = request(cw.BASE_URL, "/service/tickets/4711", headers=CW_AUTH)
        resp = httpx.Response(
            200, content=json.dumps(cw.ticket()).encode(), headers={"content-type": "text/xml"}
        )
        assert 1 == len(problems(contract, req, resp, cw.BASE_URL))

    def test_undeclared_path(self) -> None:
        """A path neither in the spec nor excluded is caught."""
        contract = contract_for(CONNECTWISE)
        req = request(cw.BASE_URL, "/system/members", headers=CW_AUTH)
        assert [] != problems(contract, req, cw.respond([]), cw.BASE_URL)

    def test_servicenow_bad_sys_id(self) -> None:
        """A path sys_id that is not 32 hex characters is caught."""
        contract = contract_for(SERVICENOW)
        req = request(sn.BASE_URL, f"{sn.TABLE}/INC0010002", headers=SN_AUTH)
        assert [] != problems(contract, req, sn.result(sn.incident()), sn.BASE_URL)

    def test_bodyless_answer_needs_the_header(self) -> None:
        """An empty 200 is accepted only for requests that asked for no body."""
        contract = contract_for(SERVICENOW)
        path = f"{sn.TABLE}/{sn.SYS_ID}"
        plain = request(sn.BASE_URL, path, "PATCH", headers=SN_AUTH, json={"comments": "x"})
        asked = request(
            sn.BASE_URL,
            path,
            "PATCH",
            headers={**SN_AUTH, "X-no-response-body": "true"},
            json={"comments": "x"},
        )
        expected = (1, 0)
        actual = (
            len(problems(contract, plain, httpx.Response(200), sn.BASE_URL)),
            len(problems(contract, asked, httpx.Response(200), sn.BASE_URL)),
        )
        assert expected == actual


class TestListsStayHonest:
    @pytest.mark.parametrize("product", [CONNECTWISE, SERVICENOW], ids=lambda p: p.name)
    def test_no_exclusion_hides_a_spec_path(self, product: Product) -> None:
        """Every excluded call is genuinely absent from the spec."""
        assert [] == contract_for(product).stale_exclusions()

    @pytest.mark.parametrize("product", [CONNECTWISE, SERVICENOW], ids=lambda p: p.name)
    def test_fixes_change_something_real(self, product: Product) -> None:
        """Every spec fix replaces an existing node with something different, for a reason."""
        contract = contract_for(product)
        stale = []
        for fix in product.fixes:
            node: Any = contract.original
            for key in fix.pointer.strip("/").split("/"):
                node = node[key]
            if node == fix.value or not fix.reason:
                stale.append(fix.pointer)
        assert [] == stale

    def test_servicenow_fixes_are_needed(self) -> None:
        """Without the fixes the spec refuses the Table API's real answers."""
        contract = unfixed(SERVICENOW)
        req = request(sn.BASE_URL, f"{sn.TABLE}/{sn.SYS_ID}", headers=SN_AUTH)
        found = problems(contract, req, sn.result(sn.incident()), sn.BASE_URL)
        text = " ".join(found)
        assert (True, True) == ("date-time" in text, "is not of type 'integer'" in text)

    def test_connectwise_fix_is_needed(self) -> None:
        """Without the fix the spec refuses a custom field holding text."""
        contract = unfixed(CONNECTWISE)
        fields = cw.ticket()["customFields"]
        fields[0]["value"] = "INC0010001"
        req = request(cw.BASE_URL, "/service/tickets/4711", headers=CW_AUTH)
        found = problems(contract, req, cw.respond(cw.ticket(customFields=fields)), cw.BASE_URL)
        assert 1 == len(found)

    def test_excluded_calls_are_reported(self) -> None:
        """An excluded call is listed with its reason, not silently passed."""
        contract = contract_for(CONNECTWISE)
        req = request(cw.BASE_URL, "/service/boards/3/statuses", headers=CW_AUTH)
        report = contract.check([(req, cw.respond([]))], base_url=cw.BASE_URL)
        expected = ([], [], [("GET /service/boards/3/statuses", CONNECTWISE.exclusions[0].reason)])
        assert expected == (report.problems, report.checked, report.excluded)


class TestRecordingTransport:
    @pytest.mark.anyio
    async def test_records_checkable_exchanges(self) -> None:
        """Exchanges through a wrapped transport are kept and can be checked."""
        contract = contract_for(CONNECTWISE)

        def handle(req: httpx.Request) -> httpx.Response:
            return cw.respond(cw.ticket())

        recorder = RecordingTransport(httpx.MockTransport(handle))
        async with httpx.AsyncClient(transport=recorder, headers=CW_AUTH) as client:
            resp = await client.get(f"{cw.BASE_URL}/service/tickets/4711")
        report = contract.check(recorder.exchanges, base_url=cw.BASE_URL)
        expected = (4711, [], ["GET /service/tickets/4711 -> 200"])
        assert expected == (resp.json()["id"], report.problems, report.checked)
