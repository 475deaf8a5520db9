"""The HTTP probe executor against an in-process transport."""

from __future__ import annotations

import httpx
import pytest

from selfbootstrap.adapters.http import HttpExecutor
from selfbootstrap.core.actions import Probed, ProbeHttp
from selfbootstrap.models import HttpCheck

CHECK = HttpCheck(url="http://web.apps/healthz", expected_status=204)


def executor(handler) -> HttpExecutor:
    return HttpExecutor(transport=httpx.MockTransport(handler))


def test_the_expected_status_is_healthy():
    assert executor(lambda r: httpx.Response(204)).perform(ProbeHttp(CHECK)) == Probed(
        True, "GET http://web.apps/healthz returned 204")


def test_another_status_is_unhealthy_and_redirects_are_not_followed():
    probed = executor(lambda r: httpx.Response(302, headers={"Location": "http://elsewhere/"})).perform(
        ProbeHttp(CHECK))
    assert probed == Probed(False, "GET http://web.apps/healthz returned 302, expected 204")


def test_a_connection_error_is_unhealthy_and_names_only_its_kind():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    assert executor(refuse).perform(ProbeHttp(CHECK)) == Probed(
        False, "GET http://web.apps/healthz failed: ConnectError")


@pytest.mark.parametrize("url", ["http://[::1", "http://a\r\nX-Injected: 1"])
def test_a_url_httpx_cannot_use_is_an_unhealthy_answer_not_an_exception(url):
    check = HttpCheck.model_construct(url=url, expected_status=200, timeout_seconds=1.0, retries=1,
                                      interval_seconds=1.0)  # past the schema, as a stored run from before it
    probed = HttpExecutor().perform(ProbeHttp(check))
    assert not probed.healthy and "impossible: InvalidURL" in probed.detail
