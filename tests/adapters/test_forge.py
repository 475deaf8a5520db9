"""The forge adapter: repository URLs, the CI verdict of one commit, and GitHub's REST calls
against an in-process transport (the end-to-end tests use a real loopback server)."""

from __future__ import annotations

import json

import httpx
import pytest

from selfbootstrap.adapters.egress import EgressPolicy, Target
from selfbootstrap.adapters.forge import MAX_BODY, ForgeError, ci_verdict, connect
from selfbootstrap.adapters.forges.github import GitHub, repository_from_url
from selfbootstrap.core.egress import Policy
from selfbootstrap.models import CIStatus, ForgeSettings

PUBLIC = "203.0.113.20"
EGRESS = EgressPolicy(Policy(), lambda host, port: [PUBLIC])


def github(api_url: str, token: str | None, answer) -> GitHub:
    target = EGRESS.check(f"{api_url.rstrip('/')}/repos/acme/web/")
    assert isinstance(target, Target)
    return GitHub(api_url, "acme/web", token, target, transport=httpx.MockTransport(answer))


@pytest.mark.parametrize("url, expected", [
    ("https://github.com/acme/web.git", "acme/web"),
    ("https://github.com/acme/web", "acme/web"),
    ("https://git.example.com/scm/group/acme/web.git/", "acme/web"),
])
def test_repository_from_url(url, expected):
    assert repository_from_url(url) == expected


@pytest.mark.parametrize("url", ["https://github.com/", "https://github.com/acme"])
def test_repository_that_cannot_be_told(url):
    with pytest.raises(ValueError, match=r"spec\.git\.forge\.repository"):
        repository_from_url(url)


def status(context: str, state: str) -> dict:
    return {"context": context, "state": state}


def check(name: str, status_: str, conclusion: str | None = None) -> dict:
    return {"name": name, "status": status_, "conclusion": conclusion}


@pytest.mark.parametrize("statuses, runs, expected", [
    ([], [], (CIStatus.PENDING, "no CI reported yet")),
    ([status("build", "success")], [], (CIStatus.SUCCESS, "1 checks passed")),
    ([status("build", "success")], [check("lint", "completed", "success")], (CIStatus.SUCCESS, "2 checks passed")),
    ([status("build", "pending")], [], (CIStatus.PENDING, "pending: build")),
    ([], [check("lint", "in_progress")], (CIStatus.PENDING, "pending: lint")),
    ([status("build", "error")], [check("lint", "in_progress")], (CIStatus.FAILURE, "failed: build")),
    ([status("build", "success")], [check("e2e", "completed", "timed_out")], (CIStatus.FAILURE, "failed: e2e")),
    ([], [check("docs", "completed", "skipped")], (CIStatus.SUCCESS, "1 checks passed")),
], ids=["nothing-yet", "status-success", "both-success", "status-pending", "check-running", "failure-wins",
        "timed-out-is-failure", "skipped-is-not-failure"])
def test_ci_verdict(statuses, runs, expected):
    assert ci_verdict(statuses, runs) == expected


def test_connect_takes_the_repository_from_the_url_unless_given():
    forge = connect(ForgeSettings(), "https://github.com/acme/web.git", None, EGRESS)
    assert isinstance(forge, GitHub) and forge.repo == "acme/web"
    forge = connect(ForgeSettings(repository="other/repo"), "https://github.com/acme/web.git", None, EGRESS)
    assert isinstance(forge, GitHub) and forge.repo == "other/repo"


@pytest.mark.parametrize("api_url, addresses, reason, retryable", [
    ("http://169.254.169.254/", [], "EgressRefused", False),
    ("https://ghe.internal/api/v3", ["127.0.0.1"], "EgressRefused", False),
    ("https://ghe.internal/api/v3", [], None, True),  # does not resolve: may pass
])
def test_connect_refuses_an_api_the_egress_policy_refuses(api_url, addresses, reason, retryable):
    def resolve(host: str, port: int) -> list[str]:
        if not addresses:
            raise OSError("no such host")
        return addresses

    with pytest.raises(ForgeError) as err:
        connect(ForgeSettings(apiUrl=api_url), "https://github.com/acme/web.git", "t0ken",
                EgressPolicy(Policy(), resolve))
    assert (err.value.reason, err.value.retryable) == (reason, retryable)


class Api:
    """A scripted GitHub: answers by (method, path), records requests."""

    def __init__(self, routes: dict[tuple[str, str], tuple[int, object]]) -> None:
        self.routes = routes
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        code, body = self.routes.get((request.method, request.url.path), (404, {"message": "Not Found"}))
        return httpx.Response(code, json=body)

    def github(self, token: str | None = "t0ken") -> GitHub:
        return github("https://ghe.example.com/api/v3/", token, self)


PR = {"number": 7, "html_url": "https://ghe/acme/web/pull/7", "state": "open", "merged": False,
      "head": {"sha": "c" * 40}}


def test_an_existing_pull_request_is_reused():
    api = Api({("GET", "/api/v3/repos/acme/web/pulls"): (200, [PR])})
    pr = api.github().open_pull_request("feature", "main", "t", "b")
    assert (pr.number, pr.url) == (7, "https://ghe/acme/web/pull/7")
    assert [r.method for r in api.seen] == ["GET"]
    assert api.seen[0].url.params["head"] == "acme:feature"
    assert api.seen[0].headers["Authorization"] == "Bearer t0ken"
    assert (api.seen[0].url.host, api.seen[0].headers["Host"]) == (PUBLIC, "ghe.example.com"), "pinned"
    assert api.seen[0].extensions["sni_hostname"] == "ghe.example.com"


def test_a_pull_request_is_opened_when_there_is_none():
    api = Api({("GET", "/api/v3/repos/acme/web/pulls"): (200, []),
               ("POST", "/api/v3/repos/acme/web/pulls"): (201, PR)})
    assert api.github().open_pull_request("feature", "main", "title", "body").number == 7
    assert json.loads(api.seen[1].content) == {"title": "title", "head": "feature", "base": "main", "body": "body"}


def test_merge_is_guarded_by_the_sha():
    api = Api({("GET", "/api/v3/repos/acme/web/pulls/7"): (200, PR),
               ("PUT", "/api/v3/repos/acme/web/pulls/7/merge"): (200, {"sha": "e" * 40, "merged": True})})
    assert api.github().merge(7, "c" * 40, "squash", "Deploy") == "e" * 40
    assert json.loads(api.seen[1].content) == {"merge_method": "squash", "sha": "c" * 40, "commit_title": "Deploy"}


def test_an_already_merged_pull_request_is_not_merged_again():
    api = Api({("GET", "/api/v3/repos/acme/web/pulls/7"): (200, {**PR, "merged": True,
                                                                  "merge_commit_sha": "e" * 40})})
    assert api.github().merge(7, "c" * 40, "merge", "t") == "e" * 40
    assert [r.method for r in api.seen] == ["GET"]


@pytest.mark.parametrize("code, retryable, phrase", [(404, False, "Not Found"), (405, False, "Method Not Allowed"),
                                                      (422, False, "Unprocessable Entity"),
                                                      (429, True, "Too Many Requests"), (502, True, "Bad Gateway"),
                                                      (599, True, "unexpected status")])
def test_errors_say_whether_to_retry_and_never_what_the_body_said(code, retryable, phrase):
    api = Api({("GET", "/api/v3/repos/acme/web/pulls/7"): (code, {"message": "INTERNAL-SECRET-42"})})
    with pytest.raises(ForgeError) as err:
        api.github().pull_request(7)
    assert err.value.retryable is retryable
    assert str(err.value) == f"GET /pulls/7 returned {code} ({phrase})"


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_a_redirect_is_an_error_naming_both_urls_and_is_not_followed(code):
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(code, headers={"Location": "http://127.0.0.2:9/steal" + "x" * 5000})

    with pytest.raises(ForgeError) as err:
        github("https://ghe.example.com/api/v3/", "t0ken", answer).pull_request(7)
    assert err.value.reason == "RedirectRefused" and not err.value.retryable and len(seen) == 1
    message = str(err.value)
    assert "https://ghe.example.com/api/v3/repos/acme/web/pulls/7" in message
    assert "http://127.0.0.2:9/steal" in message and len(message) < 600


def test_a_body_that_is_not_json_is_a_passing_fault():
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>maintenance</html>")

    with pytest.raises(ForgeError) as err:
        github("https://ghe", None, answer).pull_request(7)
    assert err.value.retryable and "maintenance" not in str(err.value)


def test_a_huge_body_is_refused_while_it_is_read():
    chunks = iter([b"[" + b" " * (1024 * 1024)] * (MAX_BODY // (1024 * 1024) + 2))

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=chunks)

    with pytest.raises(ForgeError, match="more than") as err:
        github("https://ghe", None, answer).find_pull_request("feature")
    assert not err.value.retryable
    assert next(chunks, None) is not None, "the rest was never read"


@pytest.mark.parametrize("url, stored", [
    ("https://ghe/acme/web/pull/7", "https://ghe/acme/web/pull/7"),
    ("javascript:alert(1)", ""),
    ("file:///etc/passwd", ""),
    ("https://ghe/pull/7\x1b]8;;http://evil\x07", "https://ghe/pull/7\\x1b]8;;http://evil\\x07"),
    (7, ""),
])
def test_a_pull_request_url_is_stored_only_when_it_is_http_and_escaped(url, stored):
    api = Api({("GET", "/api/v3/repos/acme/web/pulls/7"): (200, {**PR, "html_url": url, "url": None})})
    assert api.github().pull_request(7).url == stored


def test_commit_ids_that_are_not_commit_ids_are_dropped():
    api = Api({("GET", "/api/v3/repos/acme/web/pulls/7"): (200, {**PR, "merged": True,
                                                                  "merge_commit_sha": "m\x1b[31m",
                                                                  "head": {"sha": "x" * 40}})})
    pr = api.github().pull_request(7)
    assert (pr.merge_sha, pr.head_sha) == (None, None)


def test_check_names_are_escaped_and_bounded():
    hostile = "lint\x1b[2J\r\u202eevil" + "x" * 5000
    state, description = ci_verdict([], [check(hostile, "completed", "failure")])
    assert state == CIStatus.FAILURE and description.startswith("failed: lint\\x1b[2J\\x0d\\u202eevil")
    assert len(description) <= 512 and "\x1b" not in description and "\r" not in description


def test_ci_state_reads_statuses_and_check_runs_of_the_commit():
    sha = "c" * 40
    api = Api({("GET", f"/api/v3/repos/acme/web/commits/{sha}/status"): (200, {"statuses": [status("b", "success")]}),
               ("GET", f"/api/v3/repos/acme/web/commits/{sha}/check-runs"): (200, {"check_runs": []})})
    assert api.github().ci_state(sha) == (CIStatus.SUCCESS, "1 checks passed")
