"""The GitLab forge (adapters/forges/gitlab.py) against an in-process transport: projects in subgroups,
where its token goes, merge requests, the CI verdict of statuses and pipelines, and guarded merges (the
end-to-end test runs a git workflow against a GitLab-shaped fake with real git behind it)."""

from __future__ import annotations

import json

import httpx
import pytest

from selfbootstrap.adapters.egress import EgressPolicy, Target
from selfbootstrap.adapters.forge import ForgeError, token_prefix
from selfbootstrap.adapters.forges import gitlab
from selfbootstrap.core.egress import Policy
from selfbootstrap.models import CIStatus, ForgeSettings

API = "https://gitlab.example.com/api/v4"
EGRESS = EgressPolicy(Policy(), lambda host, port: ["203.0.113.30"])
SHA = "a" * 40


def client(answer) -> gitlab.GitLab:
    target = EGRESS.check(gitlab.token_prefix(API, "acme/platform/web"))
    assert isinstance(target, Target)
    return gitlab.GitLab(API, "acme/platform/web", "tok", target, transport=httpx.MockTransport(answer))


@pytest.mark.parametrize("url, expected", [
    ("https://gitlab.example.com/acme/platform/web.git", "acme/platform/web"),
    ("https://gitlab.example.com/acme/web", "acme/web"),
])
def test_a_project_is_its_full_path(url, expected):
    assert gitlab.repository_from_url(url) == expected


def test_the_token_goes_to_the_project_s_api_only():
    settings = ForgeSettings(kind="gitlab", api_url=API + "/")
    assert token_prefix(settings, "https://gitlab.example.com/acme/platform/web.git") == \
        f"{API}/projects/acme%2Fplatform%2Fweb/"


@pytest.mark.parametrize("statuses, pipelines, expected", [
    ([], [], (CIStatus.PENDING, "no CI reported yet")),
    ([{"name": "build", "status": "running"}], [], (CIStatus.PENDING, "pending: build")),
    ([{"name": "build", "status": "success"}], [{"id": 7, "status": "failed"}], (CIStatus.FAILURE,
                                                                                   "failed: pipeline 7")),
    ([{"name": "lint", "status": "canceled"}], [], (CIStatus.FAILURE, "failed: lint")),
    ([{"name": "build", "status": "success"}, {"name": "docs", "status": "skipped"}], [{"id": 7, "status": "success"}],
     (CIStatus.SUCCESS, "3 checks passed")),
])
def test_the_ci_verdict(statuses, pipelines, expected):
    assert gitlab.ci_verdict(statuses, pipelines) == expected


def test_a_merge_request_is_opened_once_and_merged_guarded_by_its_head():
    seen = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.raw_path.decode(), request.headers.get("PRIVATE-TOKEN")))
        path = request.url.path
        mr = {"iid": 3, "state": "opened", "web_url": "https://gitlab.example.com/acme/platform/web/-/merge_requests/3",
              "sha": SHA}
        if request.method == "GET" and path.endswith("/merge_requests"):
            return httpx.Response(200, json=[])
        if request.method == "POST":
            assert json.loads(request.content)["source_branch"] == "release-v2"
            return httpx.Response(201, json=mr)
        if request.method == "GET" and path.endswith("/merge_requests/3"):
            return httpx.Response(200, json=mr)
        if request.method == "PUT":
            body = json.loads(request.content)
            assert (body["sha"], body["squash"]) == (SHA, True)
            return httpx.Response(200, json={**mr, "state": "merged", "squash_commit_sha": "b" * 40})
        return httpx.Response(404)

    forge = client(answer)
    opened = forge.open_pull_request("release-v2", "main", "v2", "body")
    assert (opened.number, opened.state, opened.head_sha) == (3, "open", SHA)
    assert forge.merge(3, SHA, "squash", "v2") == "b" * 40
    assert all(token == "tok" for _, _, token in seen)
    assert all(path.startswith("/api/v4/projects/acme%2Fplatform%2Fweb/") for _, path, _ in seen)


def test_a_moved_head_or_a_rebase_is_refused():
    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            return httpx.Response(409, json={"message": "SHA does not match HEAD of source branch: secret"})
        return httpx.Response(200, json={"iid": 3, "state": "opened", "sha": SHA})

    with pytest.raises(ForgeError) as moved:
        client(answer).merge(3, SHA, "merge", "v2")
    assert moved.value.status == 409 and "secret" not in str(moved.value)
    with pytest.raises(ForgeError, match="merge or squash"):
        client(answer).merge(3, SHA, "rebase", "v2")


def test_a_redirect_is_never_followed_with_the_token():
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "https://elsewhere.example/steal"})

    with pytest.raises(ForgeError) as redirected:
        client(answer).pull_request(3)
    assert redirected.value.reason == "RedirectRefused"
