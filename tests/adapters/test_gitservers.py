"""The test servers themselves: real git over HTTP with token auth, GitHub REST shapes and state."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.gitserver.fake_github import FakeGitHub
from tests.support.gitserver.git_http import GitHttpServer

TOKEN = "t0ken"


@pytest.fixture
def servers(tmp_path):
    with GitHttpServer(tmp_path / "repos", TOKEN) as git_server, FakeGitHub(git_server, TOKEN) as forge:
        yield git_server, forge


def run_git(*args: str, cwd: Path | None = None, token: str | None = TOKEN) -> subprocess.CompletedProcess:
    header = []
    if token:
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        header = ["-c", f"http.extraHeader=Authorization: Basic {basic}"]
    env = {"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin", "HOME": str(cwd or "/tmp"),
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"}
    return subprocess.run(["git", *header, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)


def api(forge: FakeGitHub, method: str, path: str, token: str | None = TOKEN, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, f"{forge.api_url}{path}", headers=headers, **kwargs)


def push_branch(git_server: GitHttpServer, url: str, work: Path, branch: str, content: str) -> str:
    assert run_git("clone", "-q", url, str(work)).returncode == 0
    run_git("checkout", "-q", "-b", branch, cwd=work)
    (work / "app.yaml").write_text(content)
    run_git("commit", "-qam", f"change {branch}", cwd=work)
    done = run_git("push", "-q", "origin", branch, cwd=work)
    assert done.returncode == 0, done.stderr
    return run_git("rev-parse", "HEAD", cwd=work).stdout.strip()


def test_clone_needs_the_token_and_push_is_counted(servers, tmp_path):
    git_server, _ = servers
    url = git_server.create_repo("acme/web", {"app.yaml": "v1\n"})
    refused = run_git("clone", "-q", url, str(tmp_path / "no"), token=None)
    assert refused.returncode != 0
    wrong = run_git("clone", "-q", url, str(tmp_path / "wrong"), token="nope")
    assert wrong.returncode != 0
    sha = push_branch(git_server, url, tmp_path / "w", "feature", "v2\n")
    assert git_server.branches("acme/web")["feature"] == sha
    assert git_server.pushes("acme/web") == 1
    assert git_server.read_file("acme/web", "feature", "app.yaml") == "v2\n"
    assert any(not r["authenticated"] for r in git_server.requests)
    assert TOKEN not in repr(git_server.requests)


def test_pull_request_ci_script_and_merge(servers, tmp_path):
    git_server, forge = servers
    url = git_server.create_repo("acme/web", {"app.yaml": "v1\n"})
    sha = push_branch(git_server, url, tmp_path / "w", "feature", "v2\n")

    assert api(forge, "POST", "/repos/acme/web/pulls", token=None, json={}).status_code == 401
    missing = api(forge, "POST", "/repos/acme/web/pulls", json={"title": "t", "head": "nope", "base": "main"})
    assert missing.status_code == 422
    created = api(forge, "POST", "/repos/acme/web/pulls", json={"title": "t", "head": "feature", "base": "main"})
    assert created.status_code == 201 and created.json()["head"]["sha"] == sha
    number = created.json()["number"]
    dup = api(forge, "POST", "/repos/acme/web/pulls", json={"title": "t", "head": "feature", "base": "main"})
    assert dup.status_code == 422 and "already exists" in dup.text
    listed = api(forge, "GET", "/repos/acme/web/pulls", params={"head": "acme:feature", "state": "all"}).json()
    assert [p["number"] for p in listed] == [number]

    forge.set_ci(sha, ["pending", "success"])
    states = []
    for _ in range(3):
        combined = api(forge, "GET", f"/repos/acme/web/commits/{sha}/status").json()
        runs = api(forge, "GET", f"/repos/acme/web/commits/{sha}/check-runs").json()["check_runs"]
        states.append((combined["state"], runs[0]["status"], runs[0]["conclusion"]))
    assert states == [("pending", "in_progress", None), ("success", "completed", "success"),
                      ("success", "completed", "success")]
    assert forge.status_requests(sha) == 3

    stale = api(forge, "PUT", f"/repos/acme/web/pulls/{number}/merge", json={"sha": "0" * 40})
    assert stale.status_code == 409
    forge.refuse_merges("Required review missing")
    refused = api(forge, "PUT", f"/repos/acme/web/pulls/{number}/merge", json={"sha": sha})
    assert (refused.status_code, refused.json()["message"]) == (405, "Required review missing")
    forge.refuse_merges(None)
    merged = api(forge, "PUT", f"/repos/acme/web/pulls/{number}/merge", json={"sha": sha, "merge_method": "merge"})
    assert merged.status_code == 200
    head = git_server.log("acme/web", "main", 1)[0]
    assert head["sha"] == merged.json()["sha"] and len(head["parents"]) == 2
    assert git_server.read_file("acme/web", "main", "app.yaml") == "v2\n"
    pr = api(forge, "GET", f"/repos/acme/web/pulls/{number}").json()
    assert (pr["state"], pr["merged"], pr["merge_commit_sha"]) == ("closed", True, head["sha"])
    again = api(forge, "PUT", f"/repos/acme/web/pulls/{number}/merge", json={"sha": sha})
    assert again.status_code == 405


def test_squash_merge_makes_one_commit(servers, tmp_path):
    git_server, forge = servers
    url = git_server.create_repo("acme/web", {"app.yaml": "v1\n"})
    sha = push_branch(git_server, url, tmp_path / "w", "feature", "v3\n")
    number = api(forge, "POST", "/repos/acme/web/pulls",
                 json={"title": "Deploy v3", "head": "feature", "base": "main"}).json()["number"]
    merged = api(forge, "PUT", f"/repos/acme/web/pulls/{number}/merge",
                 json={"sha": sha, "merge_method": "squash", "commit_title": "Deploy v3 (#1)"})
    head = git_server.log("acme/web", "main", 1)[0]
    assert merged.json()["sha"] == head["sha"] and len(head["parents"]) == 1
    assert head["subject"] == "Deploy v3 (#1)"
    assert git_server.read_file("acme/web", "main", "app.yaml") == "v3\n"
