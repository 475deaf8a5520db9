"""The Gitea forge (adapters/forges/gitea.py) against an in-process transport: where its token goes, the pull
request found by base and head, the CI verdict of its commit statuses, and the merge guarded by
`head_commit_id` (the end-to-end test runs the git workflow against a real Gitea)."""

from __future__ import annotations

import json
from typing import get_args

import httpx
import pytest

from selfbootstrap.adapters.egress import EgressPolicy, Target
from selfbootstrap.adapters.forge import ForgeError, ForgeModule, forge_module, token_prefix
from selfbootstrap.adapters.forges import gitea
from selfbootstrap.core.egress import Policy
from selfbootstrap.models import CIStatus, ForgeKind, ForgeSettings

API = "https://gitea.example.com/api/v1"
EGRESS = EgressPolicy(Policy(), lambda host, port: ["203.0.113.31"])
SHA = "b" * 40
PR = {"number": 3, "html_url": "https://gitea.example.com/acme/web/pulls/3", "state": "open", "merged": False,
      "merge_commit_sha": None, "head": {"sha": SHA}}


def client(answer) -> gitea.Gitea:
    target = EGRESS.check(gitea.token_prefix(API, "acme/web"))
    assert isinstance(target, Target)
    return gitea.Gitea(API, "acme/web", "tok", target, transport=httpx.MockTransport(answer))


def test_every_forge_kind_is_one_module_of_the_protocol():
    for kind in ForgeKind:
        module = forge_module(kind)
        assert all(callable(getattr(module, f)) for f in ("repository_from_url", "token_prefix", "client")), kind
    assert not get_args(ForgeModule)  # a Protocol, not a union to extend


def test_the_token_goes_to_the_repository_s_api_only():
    settings = ForgeSettings(kind="gitea", api_url=API)
    assert token_prefix(settings, "https://gitea.example.com/acme/web.git") == f"{API}/repos/acme/web/"


@pytest.mark.parametrize("statuses, expected", [
    ([], (CIStatus.PENDING, "no CI reported yet")),
    ([{"context": "ci/build", "status": "pending"}], (CIStatus.PENDING, "pending: ci/build")),
    ([{"context": "ci/build", "status": "success"}, {"context": "lint", "status": "error"}],
     (CIStatus.FAILURE, "failed: lint")),
    ([{"context": "ci/build", "status": "success"}, {"context": "vet", "status": "warning"}],
     (CIStatus.SUCCESS, "2 checks passed")),
])
def test_ci_is_the_commit_s_statuses(statuses, expected):
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == f"/api/v1/repos/acme/web/commits/{SHA}/status"
        assert request.headers["Authorization"] == "token tok"
        return httpx.Response(200, json={"state": "x", "statuses": statuses})
    assert client(answer).ci_state(SHA) == expected


def test_a_pull_request_is_found_by_base_and_head_before_one_is_opened():
    seen: list[tuple[str, str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.raw_path.decode()))
        if request.method == "GET":
            return httpx.Response(404, json={"message": "pull request does not exist"})
        return httpx.Response(201, json=PR)
    pr = client(answer).open_pull_request("selfbootstrap/run-1", "main", "t", "b")
    assert pr.number == 3 and pr.head_sha == SHA
    assert seen == [("GET", "/api/v1/repos/acme/web/pulls/main/selfbootstrap/run-1"),
                    ("POST", "/api/v1/repos/acme/web/pulls")]
    again = client(lambda request: httpx.Response(200, json=PR)).open_pull_request("selfbootstrap/run-1", "main",
                                                                                    "t", "b")
    assert again.number == 3


def test_the_merge_is_guarded_by_the_tested_commit():
    merged = {**PR, "state": "closed", "merged": True, "merge_commit_sha": "c" * 40}
    calls: list[dict] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            calls.append(json.loads(request.content))
            return httpx.Response(200)
        return httpx.Response(200, json=merged if calls else PR)
    assert client(answer).merge(3, SHA, "squash", "Merge") == "c" * 40
    assert calls == [{"Do": "squash", "head_commit_id": SHA, "MergeTitleField": "Merge"}]


@pytest.mark.parametrize(("status", "retryable"), [(405, True), (409, True), (403, False), (503, True)])
def test_a_merge_gitea_cannot_make_yet_is_tried_again(status, retryable):
    """Gitea answers 405 while it still checks a new pull request (found in CI under load): a passing state."""
    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(status, json={"message": "Please try again later"})
        return httpx.Response(200, json=PR)
    with pytest.raises(ForgeError) as refused:
        client(answer).merge(3, SHA, "merge", "Merge")
    assert refused.value.retryable is retryable and "Please try again" not in str(refused.value)


@pytest.mark.parametrize(("after", "outcome"), [
    ({}, "retryable"),  # "merge push out of date": another merge moved the base meanwhile
    ({"head": {"sha": "d" * 40}}, "refused"),  # "head out of date": the guard did its work
    ({"state": "closed", "merged": True, "merge_commit_sha": "c" * 40}, "merged"),  # someone merged it meanwhile
    ({"state": "closed"}, "closed"),
], ids=["base-moved", "head-moved", "merged-meanwhile", "closed-meanwhile"])
def test_a_409_on_the_merge_is_told_apart_by_the_pull_request_read_again(after, outcome):
    """Concurrent merges into one repository: Gitea refuses the one whose push to the base lost the race with 409;
    the body is never read, the pull request as it is now decides."""
    posts: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            posts.append(request.url.path)
            return httpx.Response(409, json={"message": "merge push out of date"})
        return httpx.Response(200, json={**PR, **after} if posts else PR)
    forge = client(answer)
    if outcome == "merged":
        assert forge.merge(3, SHA, "merge", "Merge") == "c" * 40
        return
    with pytest.raises(ForgeError) as refused:
        forge.merge(3, SHA, "merge", "Merge")
    assert refused.value.retryable is (outcome == "retryable")
    assert "out of date" not in str(refused.value)
    assert ("ddddddddddd" in str(refused.value)) is (outcome == "refused")
    assert ("closed" in str(refused.value)) is (outcome == "closed")


def test_a_pull_request_of_a_branch_gitea_has_not_seen_yet_is_tried_again():
    """Gitea answers 404 to a pull request of a branch pushed a moment ago, until its push queue has seen it: a
    passing fault, tried again with the run's backoff (at most its retry policy's attempts)."""
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"message": "not found"})
    with pytest.raises(ForgeError) as err:
        client(answer).open_pull_request("selfbootstrap/web", "main", "t", "b")
    assert err.value.retryable and err.value.status == 404 and "push queue" in str(err.value)
