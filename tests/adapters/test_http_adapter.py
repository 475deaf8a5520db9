"""The HTTP probe executor against an in-process transport, behind the egress policy (resolver stub)."""

from __future__ import annotations

import httpx
import pytest

from selfbootstrap.adapters.egress import EgressPolicy
from selfbootstrap.adapters.http import HttpExecutor
from selfbootstrap.core.actions import Failed, Probed, ProbeHttp
from selfbootstrap.core.egress import Policy
from selfbootstrap.models import HttpCheck

CHECK = HttpCheck(url="http://web.apps/healthz", expected_status=204)
PUBLIC = "203.0.113.10"


def executor(handler, addresses: tuple[str, ...] = (PUBLIC,)) -> HttpExecutor:
    return HttpExecutor(EgressPolicy(Policy(), lambda host, port: list(addresses)),
                        transport=httpx.MockTransport(handler))


def test_the_expected_status_is_healthy():
    assert executor(lambda r: httpx.Response(204)).perform(ProbeHttp(CHECK)) == Probed(
        True, "GET http://web.apps/healthz returned 204 (No Content)")


def test_another_status_is_unhealthy_and_redirects_are_not_followed():
    probed = executor(lambda r: httpx.Response(302, headers={"Location": "http://elsewhere/"})).perform(
        ProbeHttp(CHECK))
    assert probed == Probed(False, "GET http://web.apps/healthz returned 302 (Found), expected 204")


def test_the_answer_is_the_status_and_its_standard_phrase_never_what_the_server_says():
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="INTERNAL-SECRET-42", extensions={"reason_phrase": b"INTERNAL-SECRET-43"})

    probed = executor(answer).perform(ProbeHttp(CHECK))
    assert probed == Probed(False, "GET http://web.apps/healthz returned 503 (Service Unavailable), expected 204")
    odd = executor(lambda r: httpx.Response(599)).perform(ProbeHttp(CHECK))
    assert isinstance(odd, Probed) and "returned 599 (unexpected status)" in odd.detail


def test_the_get_goes_to_the_checked_address_with_the_original_host():
    seen: list[httpx.Request] = []
    executor(lambda r: seen.append(r) or httpx.Response(204)).perform(ProbeHttp(CHECK))
    assert [(r.url.host, r.headers["Host"]) for r in seen] == [(PUBLIC, "web.apps")]


@pytest.mark.parametrize("addresses", [("127.0.0.1",), ("169.254.169.254",), (PUBLIC, "::1")])
def test_a_refused_destination_is_never_contacted(addresses):
    seen: list[httpx.Request] = []
    result = executor(lambda r: seen.append(r) or httpx.Response(204), addresses).perform(ProbeHttp(CHECK))
    assert isinstance(result, Failed) and result.reason == "EgressRefused" and not result.retryable
    assert "http://web.apps/healthz" in result.message and seen == []


def test_a_connection_error_is_unhealthy_and_names_only_its_kind():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    assert executor(refuse).perform(ProbeHttp(CHECK)) == Probed(
        False, "GET http://web.apps/healthz failed: ConnectError")


def test_a_name_that_does_not_resolve_is_an_unhealthy_answer():
    def nowhere(host: str, port: int) -> list[str]:
        raise OSError("no such host")

    probed = HttpExecutor(EgressPolicy(Policy(), nowhere)).perform(ProbeHttp(CHECK))
    assert probed == Probed(False, "GET http://web.apps/healthz failed: web.apps (of http://web.apps/healthz) "
                                   "could not be resolved")


@pytest.mark.parametrize("url", ["http://[::1", "http://a\r\nX-Injected: 1"])
def test_a_url_httpx_cannot_use_is_an_unhealthy_answer_not_an_exception(url):
    check = HttpCheck.model_construct(url=url, expected_status=200, timeout_seconds=1.0, retries=1,
                                      interval_seconds=1.0)  # past the schema, as a stored run from before it
    probed = HttpExecutor(EgressPolicy(Policy())).perform(ProbeHttp(check))
    assert isinstance(probed, Probed) and not probed.healthy and "impossible" in probed.detail
