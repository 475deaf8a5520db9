"""The forge adapter: repository URLs, the CI verdict of one commit, and GitHub's REST calls
against an in-process transport (the end-to-end tests use a real loopback server)."""

from __future__ import annotations

import json

import httpx
import pytest

from selfbootstrap.adapters.forge import ForgeError, GitHub, ci_verdict, connect, repository_from_url
from selfbootstrap.models import CIStatus, ForgeSettings


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
    forge = connect(ForgeSettings(), "https://github.com/acme/web.git", None)
    assert isinstance(forge, GitHub) and forge.repo == "acme/web"
    forge = connect(ForgeSettings(repository="other/repo"), "https://github.com/acme/web.git", None)
    assert isinstance(forge, GitHub) and forge.repo == "other/repo"


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
        return GitHub("https://ghe.example.com/api/v3/", "acme/web", token, transport=httpx.MockTransport(self))


PR = {"number": 7, "html_url": "https://ghe/acme/web/pull/7", "state": "open", "merged": False,
      "head": {"sha": "c" * 40}}


def test_an_existing_pull_request_is_reused():
    api = Api({("GET", "/api/v3/repos/acme/web/pulls"): (200, [PR])})
    pr = api.github().open_pull_request("feature", "main", "t", "b")
    assert (pr.number, pr.url) == (7, "https://ghe/acme/web/pull/7")
    assert [r.method for r in api.seen] == ["GET"]
    assert api.seen[0].url.params["head"] == "acme:feature"
    assert api.seen[0].headers["Authorization"] == "Bearer t0ken"


def test_a_pull_request_is_opened_when_there_is_none():
    api = Api({("GET", "/api/v3/repos/acme/web/pulls"): (200, []),
               ("POST", "/api/v3/repos/acme/web/pulls"): (201, PR)})
    assert api.github().open_pull_request("feature", "main", "title", "body").number == 7
    assert json.loads(api.seen[1].content) == {"title": "title", "head": "feature", "base": "main", "body": "body"}


def test_merge_is_guarded_by_the_sha():
    api = Api({("GET", "/api/v3/repos/acme/web/pulls/7"): (200, PR),
               ("PUT", "/api/v3/repos/acme/web/pulls/7/merge"): (200, {"sha": "m" * 40, "merged": True})})
    assert api.github().merge(7, "c" * 40, "squash", "Deploy") == "m" * 40
    assert json.loads(api.seen[1].content) == {"merge_method": "squash", "sha": "c" * 40, "commit_title": "Deploy"}


def test_an_already_merged_pull_request_is_not_merged_again():
    api = Api({("GET", "/api/v3/repos/acme/web/pulls/7"): (200, {**PR, "merged": True,
                                                                  "merge_commit_sha": "m" * 40})})
    assert api.github().merge(7, "c" * 40, "merge", "t") == "m" * 40
    assert [r.method for r in api.seen] == ["GET"]


@pytest.mark.parametrize("code, retryable", [(405, False), (422, False), (429, True), (502, True)])
def test_errors_say_whether_to_retry(code, retryable):
    api = Api({("GET", "/api/v3/repos/acme/web/pulls/7"): (code, {"message": "nope"})})
    with pytest.raises(ForgeError) as err:
        api.github().pull_request(7)
    assert err.value.retryable is retryable and "nope" in str(err.value)


def test_a_body_that_is_not_json_is_a_passing_fault():
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>maintenance</html>")

    forge = GitHub("https://ghe", "acme/web", None, transport=httpx.MockTransport(answer))
    with pytest.raises(ForgeError) as err:
        forge.pull_request(7)
    assert err.value.retryable


def test_ci_state_reads_statuses_and_check_runs_of_the_commit():
    sha = "c" * 40
    api = Api({("GET", f"/api/v3/repos/acme/web/commits/{sha}/status"): (200, {"statuses": [status("b", "success")]}),
               ("GET", f"/api/v3/repos/acme/web/commits/{sha}/check-runs"): (200, {"check_runs": []})})
    assert api.github().ci_state(sha) == (CIStatus.SUCCESS, "1 checks passed")
