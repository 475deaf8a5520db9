"""The git executor, action by action, against a real git server (git http-backend with token
auth) and a GitHub REST server on loopback; the Secret comes from an autospec'd Kubernetes adapter."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from unittest.mock import create_autospec

import pytest

from selfbootstrap.adapters.egress import EgressPolicy
from selfbootstrap.adapters.forge import token_prefix
from selfbootstrap.adapters.git import GitRemote
from selfbootstrap.adapters.gitexec import GitExecutor
from selfbootstrap.adapters.kube import Kube, SecretUnavailableError
from selfbootstrap.core import gitflow
from selfbootstrap.core.actions import (
    BranchResolved,
    CheckCI,
    CheckPullRequest,
    CIReported,
    CommitChange,
    Committed,
    Failed,
    Merged,
    MergePullRequest,
    NothingToCommit,
    OpenPullRequest,
    OpenRevertPullRequest,
    PullRequestObserved,
    PullRequestOpened,
    PushBranch,
    Pushed,
    ResolveBranch,
    RevertOpened,
)
from selfbootstrap.core.egress import policy_of
from selfbootstrap.core.run import Run
from selfbootstrap.models import CIStatus, GitFile, RunSpec, RunStatus
from tests.support.gitserver.fake_github import FakeGitHub
from tests.support.gitserver.git_http import GitHttpServer

TOKEN = "t0ken-for-adapter-tests"
MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
        - name: app
          image: reg/web:v1
"""


LOOPBACK_SERVERS = EgressPolicy(policy_of(("127.0.0.1/32",), ()))  # where the test servers listen


@pytest.fixture
def servers(tmp_path) -> Iterator[tuple[GitHttpServer, FakeGitHub]]:
    with GitHttpServer(tmp_path / "repos", TOKEN) as git_server, FakeGitHub(git_server, TOKEN) as forge:
        yield git_server, forge


@pytest.fixture
def repo(servers) -> str:
    git_server, _ = servers
    return git_server.create_repo("acme/web", {"deploy/web.yaml": MANIFEST})


@pytest.fixture
def kube(servers):
    git_server, forge = servers
    kube = create_autospec(Kube, instance=True)
    kube.read_secret_data.return_value = ({"token": TOKEN.encode()}, (f"{git_server.base_url}/", f"{forge.api_url}/"))
    return kube


def make_run(url: str, forge: FakeGitHub, **git) -> Run:
    spec = RunSpec.model_validate({
        "target": {"deployment": "web"}, "release": {"id": "v2", "image": "reg/web:v2"},
        "git": {"repositoryUrl": url, "change": {"setImage": {"path": "deploy/web.yaml"}},
                "credentials": {"secretRef": {"name": "git-token"}},
                "forge": {"apiUrl": forge.api_url, "repository": "acme/web"}, **git}})
    return Run("run-1", 1, spec, RunStatus(), "apps", "uid-1", "2030-01-01T00:00:00Z")


@pytest.fixture
def executor(kube, tmp_path) -> GitExecutor:
    return GitExecutor(kube, tmp_path / "work", LOOPBACK_SERVERS)


def commit_action(base_sha: str, run: Run) -> CommitChange:
    trailer = gitflow.trailer_of(run)
    return CommitChange("selfbootstrap/run-1", base_sha, f"Deploy v2\n\n{trailer}\n", trailer)


def test_resolve_branch_of_a_new_branch(executor, servers, repo):
    git_server, forge = servers
    result = executor.perform(make_run(repo, forge), ResolveBranch("selfbootstrap/run-1", "main", "t"))
    assert result == BranchResolved(git_server.branches("acme/web")["main"], exists=False, run_commit=None)


def test_resolve_branch_without_the_base_branch(executor, servers, repo):
    result = executor.perform(make_run(repo, servers[1]), ResolveBranch("b", "release", "t"))
    assert isinstance(result, Failed) and result.reason == "BaseBranchNotFound"


def test_commit_push_then_resolve_finds_the_run_commit(executor, servers, repo):
    git_server, forge = servers
    run = make_run(repo, forge)
    base, committed = commit(executor, git_server, run)

    assert executor.perform(run, PushBranch(commit_action(base, run), committed.sha)) == Pushed(already=False)
    assert git_server.branches("acme/web")["selfbootstrap/run-1"] == committed.sha
    assert "image: reg/web:v2" in git_server.read_file("acme/web", "selfbootstrap/run-1", "deploy/web.yaml")
    assert executor.perform(run, PushBranch(commit_action(base, run), committed.sha)) == Pushed(already=True)
    assert git_server.pushes("acme/web") == 1

    resolved = executor.perform(run, ResolveBranch("selfbootstrap/run-1", "main", gitflow.trailer_of(run)))
    assert resolved == BranchResolved(base, exists=True, run_commit=committed.sha)


def test_commits_are_deterministic(executor, servers, repo):
    git_server, forge = servers
    run = make_run(repo, forge)
    base = git_server.branches("acme/web")["main"]
    assert executor.perform(run, commit_action(base, run)) == executor.perform(run, commit_action(base, run))


def test_push_refuses_a_branch_that_moved(executor, servers, repo):
    git_server, forge = servers
    run = make_run(repo, forge)
    base, committed = commit(executor, git_server, run)
    other = make_run(repo, forge, change={"files": [{"path": "x.txt", "content": "x"}]})
    other_commit = executor.perform(other, commit_action(base, other))
    assert isinstance(other_commit, Committed)
    executor.perform(other, PushBranch(commit_action(base, other), other_commit.sha))

    result = executor.perform(run, PushBranch(commit_action(base, run), committed.sha))
    assert isinstance(result, Failed) and result.reason == "PushRejected"


def git_requests(git_server, service: str) -> int:
    return sum(1 for r in git_server.requests if r["service"] == service and r["method"] == "POST")


def test_resolve_branch_asks_for_both_heads_at_once(executor, servers, repo):
    git_server, forge = servers
    executor.perform(make_run(repo, forge), ResolveBranch("selfbootstrap/run-1", "main", "t"))
    asked = [(r["method"], r["service"]) for r in git_server.requests if r["status"] == 200]
    assert asked == [("GET", "git-upload-pack"), ("POST", "git-upload-pack")], \
        "one ls-remote for the base and the run's branch (protocol v2: the capabilities, then ls-refs)"


def test_the_push_takes_the_commit_s_tree_as_it_is(executor, servers, repo, monkeypatch):
    """No second checkout: the tree the commit step left holds the commit; the push only sends it."""
    git_server, forge = servers
    run = make_run(repo, forge)
    base, committed = commit(executor, git_server, run)
    fetches = git_requests(git_server, "git-upload-pack")
    checkouts: list[str] = []
    monkeypatch.setattr(GitRemote, "checkout", lambda self, name, *a, **k: checkouts.append(name))

    assert executor.perform(run, PushBranch(commit_action(base, run), committed.sha)) == Pushed(already=False)
    assert checkouts == [] and git_server.branches("acme/web")["selfbootstrap/run-1"] == committed.sha
    assert git_requests(git_server, "git-upload-pack") - fetches <= 1, "at most push.negotiate's"
    assert list((executor.workdir / run.uid).iterdir()) in ([], [executor.workdir / run.uid / "no-templates"]), \
        "the tree is gone once pushed"


@pytest.mark.parametrize("tree", ["gone", "other-commit", "half-made"])
def test_a_push_without_the_commit_s_tree_rebuilds_the_recorded_commit(executor, servers, repo, tree):
    """A run killed between its commit and its push (its tree lost with the pod, or holding something else)
    pushes the commit it recorded: rebuilt, deterministic, the same SHA."""
    git_server, forge = servers
    run = make_run(repo, forge)
    base, committed = commit(executor, git_server, run)
    work = executor.workdir / run.uid
    kept = next(p for p in work.iterdir() if (p / ".git").is_dir())
    if tree == "gone":
        shutil.rmtree(kept)
    elif tree == "other-commit":
        subprocess.run(["git", "-c", "user.name=x", "-c", "user.email=x@x", "commit", "-q", "--allow-empty", "-m",
                        "other"], cwd=kept, check=True, capture_output=True)
    else:
        (kept / ".git" / "HEAD").write_text("ref: refs/heads/nothing-yet\n")

    assert executor.perform(run, PushBranch(commit_action(base, run), committed.sha)) == Pushed(already=False)
    assert git_server.branches("acme/web")["selfbootstrap/run-1"] == committed.sha
    assert git_server.pushes("acme/web") == 1


def test_a_rebuilt_commit_that_differs_from_the_recorded_one_is_not_pushed(executor, servers, repo):
    git_server, forge = servers
    run = make_run(repo, forge)
    base, committed = commit(executor, git_server, run)
    shutil.rmtree(next(p for p in (executor.workdir / run.uid).iterdir() if (p / ".git").is_dir()))
    changed = make_run(repo, forge, change={"files": [{"path": "deploy/other.yaml", "content": "x: 1\n"}]})

    result = executor.perform(changed, PushBranch(commit_action(base, changed), committed.sha))
    assert isinstance(result, Failed) and result.reason == "CommitNotReproducible"
    assert git_server.pushes("acme/web") == 0


@pytest.mark.parametrize("tree", ["kept", "gone"])
def test_a_push_that_went_through_before_a_restart_is_not_repeated(executor, servers, repo, tree):
    """Killed after the push, before its status said so: the branch already holds the commit."""
    git_server, forge = servers
    run = make_run(repo, forge)
    base, committed = commit(executor, git_server, run)
    kept = next(p for p in (executor.workdir / run.uid).iterdir() if (p / ".git").is_dir())
    subprocess.run(["git", "push", "-q", repo, f"{committed.sha}:refs/heads/selfbootstrap/run-1"], cwd=kept,
                   check=True, capture_output=True, env={**os.environ, **git_auth(git_server)})
    if tree == "gone":
        shutil.rmtree(kept)

    assert executor.perform(run, PushBranch(commit_action(base, run), committed.sha)) == Pushed(already=True)
    assert git_server.pushes("acme/web") == 1


@pytest.mark.parametrize("tree", ["kept", "gone"])
def test_the_push_only_creates_the_branch(executor, servers, repo, tree):
    """A branch someone made meanwhile is never moved, not even forward to the run's commit (it starts at the base,
    so a plain push would fast-forward it)."""
    git_server, forge = servers
    run = make_run(repo, forge)
    base, committed = commit(executor, git_server, run)
    kept = next(p for p in (executor.workdir / run.uid).iterdir() if (p / ".git").is_dir())
    subprocess.run(["git", "push", "-q", repo, f"{base}:refs/heads/selfbootstrap/run-1"], cwd=kept, check=True,
                   capture_output=True, env={**os.environ, **git_auth(git_server)})
    if tree == "gone":
        shutil.rmtree(kept)

    result = executor.perform(run, PushBranch(commit_action(base, run), committed.sha))
    assert isinstance(result, Failed) and result.reason == "PushRejected" and base[:12] in result.message
    assert git_server.branches("acme/web")["selfbootstrap/run-1"] == base


def git_auth(git_server) -> dict[str, str]:
    basic = base64.b64encode(f"{git_server.username}:{TOKEN}".encode()).decode()
    return {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}", "GIT_TERMINAL_PROMPT": "0"}


def test_nothing_to_commit(executor, servers, repo):
    git_server, forge = servers
    run = make_run(repo, forge, change={"files": [{"path": "deploy/web.yaml", "content": MANIFEST}]})
    base = git_server.branches("acme/web")["main"]
    assert executor.perform(run, commit_action(base, run)) == NothingToCommit()


def test_a_change_outside_the_repository_is_refused(executor, servers, repo):
    git_server, forge = servers
    run = make_run(repo, forge, change={"setImage": {"path": "deploy/missing.yaml"}})
    result = executor.perform(run, commit_action(git_server.branches("acme/web")["main"], run))
    assert isinstance(result, Failed) and result.reason == "ChangeFailed" and "no such file" in result.message


def test_missing_credentials_fail_before_anything_is_contacted(executor, kube, servers, repo):
    git_server, forge = servers
    kube.read_secret_data.side_effect = SecretUnavailableError("secret 'git-token' not found")
    result = executor.perform(make_run(repo, forge), ResolveBranch("b", "main", "t"))
    assert result == Failed("CredentialsUnavailable", "secret 'git-token' not found")
    assert git_server.requests == []


def test_a_token_that_is_not_text_fails_clearly(executor, kube, servers, repo):
    kube.read_secret_data.return_value = ({"token": b"\xff\xfe\x00token"}, kube.read_secret_data.return_value[1])
    result = executor.perform(make_run(repo, servers[1]), ResolveBranch("b", "main", "t"))
    assert isinstance(result, Failed) and result.reason == "CredentialsUnavailable"
    assert "not UTF-8" in result.message and not result.retryable


@pytest.mark.parametrize("allowed, why", [
    ((), "has no selfbootstrap.dev/allowed-urls annotation"),
    (("https://git.example.com/",), "does not allow sending its token to http://127.0.0.1"),
    (("https://127.0.0.1/",), "does not allow sending its token to http://127.0.0.1"),
], ids=["no-annotation", "other-host", "https-prefix-for-an-http-url"])
def test_a_token_goes_only_where_its_secret_allows(executor, kube, servers, repo, allowed, why):
    git_server, forge = servers
    kube.read_secret_data.return_value = ({"token": TOKEN.encode()}, allowed)
    result = executor.perform(make_run(repo, forge), ResolveBranch("b", "main", "t"))
    assert isinstance(result, Failed) and result.reason == "CredentialsNotAllowed" and not result.retryable
    assert why in result.message and "'git-token'" in result.message
    assert git_server.requests == [] and forge.requests == [], "nothing may be contacted"


def test_the_forge_api_must_be_allowed_too(executor, kube, servers, repo):
    git_server, forge = servers
    kube.read_secret_data.return_value = ({"token": TOKEN.encode()}, (f"{git_server.base_url}/",))
    result = executor.perform(make_run(repo, forge), ResolveBranch("b", "main", "t"))
    assert isinstance(result, Failed) and result.reason == "CredentialsNotAllowed"
    assert f"{forge.api_url}/repos/acme/web/" in result.message
    assert git_server.requests == [] and forge.requests == []


def commit(executor, git_server, run) -> tuple[str, Committed]:
    """The run's change committed on main's head: that base, and the commit."""
    base = git_server.branches("acme/web")["main"]
    committed = executor.perform(run, commit_action(base, run))
    assert isinstance(committed, Committed)
    return base, committed


def pushed_branch(executor, git_server, run) -> str:
    base, committed = commit(executor, git_server, run)
    executor.perform(run, PushBranch(commit_action(base, run), committed.sha))
    return committed.sha


def test_pull_request_ci_and_merge(executor, servers, repo):
    git_server, forge = servers
    run = make_run(repo, forge)
    sha = pushed_branch(executor, git_server, run)
    forge.set_ci(None, ["pending", "success"])

    opened = executor.perform(run, OpenPullRequest("selfbootstrap/run-1", "main", "Deploy v2", "body"))
    assert isinstance(opened, PullRequestOpened) and opened.number >= 1
    assert executor.perform(run, OpenPullRequest("selfbootstrap/run-1", "main", "t", "b")) == opened
    assert executor.perform(run, CheckCI(sha)) == CIReported(CIStatus.PENDING, "pending: ci/build, tests")
    assert executor.perform(run, CheckCI(sha)).state == CIStatus.SUCCESS  # type: ignore[union-attr]
    assert executor.perform(run, CheckPullRequest(opened.number)) == PullRequestObserved(True, False, None)

    merged = executor.perform(run, MergePullRequest(opened.number, sha, "merge", "Deploy v2"))
    assert isinstance(merged, Merged) and merged.merge_sha == git_server.branches("acme/web")["main"]
    observed = executor.perform(run, CheckPullRequest(opened.number))
    assert observed == PullRequestObserved(False, True, merged.merge_sha)


def test_a_refused_merge_carries_the_status_not_the_forge_text(executor, servers, repo):
    git_server, forge = servers
    run = make_run(repo, forge)
    sha = pushed_branch(executor, git_server, run)
    opened = executor.perform(run, OpenPullRequest("selfbootstrap/run-1", "main", "t", "b"))
    assert isinstance(opened, PullRequestOpened)
    forge.refuse_merges("Required status check is expected")
    result = executor.perform(run, MergePullRequest(opened.number, sha, "merge", "t"))
    assert isinstance(result, Failed) and result.reason == "MergeRefused" and not result.retryable
    assert result.message == f"the forge refused the merge: PUT /pulls/{opened.number}/merge returned 405 " \
                             f"(Method Not Allowed)"


def test_revert_pull_request(executor, servers, repo):
    git_server, forge = servers
    run = make_run(repo, forge)
    sha = pushed_branch(executor, git_server, run)
    opened = executor.perform(run, OpenPullRequest("selfbootstrap/run-1", "main", "t", "b"))
    assert isinstance(opened, PullRequestOpened)
    merged = executor.perform(run, MergePullRequest(opened.number, sha, "merge", "t"))
    assert isinstance(merged, Merged)

    action = OpenRevertPullRequest("selfbootstrap/run-1-revert", "main", merged.merge_sha, "Revert v2", "body")
    reverted = executor.perform(run, action)
    assert isinstance(reverted, RevertOpened) and reverted.branch == "selfbootstrap/run-1-revert"
    assert "image: reg/web:v1" in git_server.read_file("acme/web", "selfbootstrap/run-1-revert", "deploy/web.yaml")
    assert executor.perform(run, action) == reverted, "a repeated revert finds its branch and pull request"


@pytest.mark.parametrize("path", [".git/config", "./.git/hooks/x", "a/../.git/config", ".GIT/config",
                                  "a/.git./hooks/pre-commit", "/etc/passwd", "../outside"])
def test_git_s_own_files_and_paths_outside_are_never_written(executor, servers, repo, path):
    """The CRD refuses these at admission; the executor refuses them again whatever reaches it."""
    git_server, forge = servers
    run = make_run(repo, forge, change={"files": [{"path": "placeholder", "content": ""}]})
    # Past what pydantic's pattern (and the CRD's rules) let through, as a hostile client might get.
    run.spec.git.change.files = [GitFile.model_construct(path=path, content="[core]\n\tfsmonitor = touch /tmp/x\n")]
    result = executor.perform(run, commit_action(git_server.branches("acme/web")["main"], run))
    assert isinstance(result, Failed) and result.reason == "UnsafePath" and not result.retryable


def test_a_symlink_in_the_repository_leads_nowhere(executor, servers, tmp_path):
    """Symlinks are checked out as plain files: a change through one cannot leave the tree."""
    git_server, forge = servers
    outside = tmp_path / "outside"
    outside.mkdir()
    url = git_server.create_repo("acme/links", {"deploy/web.yaml": MANIFEST}, symlinks={"escape": str(outside)})
    run = make_run(url, forge, change={"files": [{"path": "escape/pwned", "content": "x"}]})
    result = executor.perform(run, commit_action(git_server.branches("acme/links")["main"], run))
    assert isinstance(result, Failed) and result.reason == "UnsafePath" and "escape is a symlink" in result.message
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("change", [
    {"files": [{"path": "deploy/current.yaml", "content": "/etc/passwd"}]},
    {"setImage": {"path": "deploy/current.yaml"}},
], ids=["files", "setImage"])
def test_a_file_that_is_a_symlink_is_never_written_through(executor, servers, change):
    """Writing over a symlink checked out as a plain file would commit a symlink to what was written."""
    git_server, forge = servers
    url = git_server.create_repo("acme/linked", {"deploy/web.yaml": MANIFEST},
                                 symlinks={"deploy/current.yaml": "web.yaml"})
    run = make_run(url, forge, change=change)
    result = executor.perform(run, commit_action(git_server.branches("acme/linked")["main"], run))
    assert isinstance(result, Failed) and result.reason == "UnsafePath", result
    assert "deploy/current.yaml is a symlink in the repository" in result.message


def hooks_dir(tmp_path, marker):
    templates = tmp_path / "templates"
    (templates / "hooks").mkdir(parents=True)
    for hook in ("post-checkout", "pre-commit", "post-commit", "pre-push", "reference-transaction"):
        script = templates / "hooks" / hook
        script.write_text(f"#!/bin/sh\necho {hook} >> {marker}\n")
        script.chmod(0o755)
    return templates


def test_hooks_never_run(executor, servers, repo, tmp_path, monkeypatch):
    git_server, forge = servers
    marker = tmp_path / "hooks-ran"
    templates = hooks_dir(tmp_path, marker)
    # The control: plain git with this template directory runs the hooks.
    monkeypatch.setenv("GIT_TEMPLATE_DIR", str(templates))
    import subprocess
    subprocess.run(["git", "init", "-q", str(tmp_path / "control")], check=True)
    subprocess.run(["git", "-C", str(tmp_path / "control"), "-c", "user.name=t", "-c", "user.email=t@e",
                    "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    assert marker.read_text(), "the control must run the hooks"
    marker.unlink()

    run = make_run(repo, forge)
    sha = pushed_branch(executor, git_server, run)
    assert sha and git_server.branches("acme/web")["selfbootstrap/run-1"] == sha
    assert not marker.exists(), f"a hook ran: {marker.read_text()}"


def test_a_repository_whose_owner_and_name_cannot_be_told_fails_before_anything_is_pushed(executor, servers, tmp_path):
    git_server, forge = servers
    url = git_server.create_repo("flat", {"deploy/web.yaml": MANIFEST})
    run = make_run(url, forge)
    run.spec.git.forge.repository = None  # as admission would not let through: the executor checks again
    result = executor.perform(run, ResolveBranch("selfbootstrap/run-1", "main", "t"))
    assert isinstance(result, Failed) and result.reason == "InvalidRepository"
    assert "spec.git.forge.repository" in result.message
    assert git_server.pushes("flat") == 0


def test_a_manifest_that_is_not_yaml_fails_the_change(executor, servers):
    git_server, forge = servers
    url = git_server.create_repo("acme/broken", {"deploy/web.yaml": "kind: Deployment\n  bad: [indent\n"})
    run = make_run(url, forge)
    result = executor.perform(run, commit_action(git_server.branches("acme/broken")["main"], run))
    assert isinstance(result, Failed) and result.reason == "ChangeFailed" and "not valid YAML" in result.message


def test_a_file_that_is_a_directory_fails_the_change(executor, servers):
    git_server, forge = servers
    url = git_server.create_repo("acme/dirs", {"deploy/web.yaml": MANIFEST})
    run = make_run(url, forge, change={"files": [{"path": "deploy", "content": "x"}]})
    result = executor.perform(run, commit_action(git_server.branches("acme/dirs")["main"], run))
    assert isinstance(result, Failed) and result.reason == "ChangeFailed" and "is a directory" in result.message


@pytest.mark.parametrize("kind", ["github", "gitlab", "gitea"])
def test_every_forge_s_api_must_be_allowed_before_anything_is_sent(executor, kube, servers, repo, kind):
    git_server, forge = servers
    kube.read_secret_data.return_value = ({"token": TOKEN.encode()}, (f"{git_server.base_url}/",))
    run = make_run(repo, forge)
    settings = run.spec.git.forge.model_copy(update={"kind": kind})
    run = replace(run, spec=run.spec.model_copy(update={"git": run.spec.git.model_copy(update={"forge": settings})}))
    result = executor.perform(run, ResolveBranch("b", "main", "t"))
    assert isinstance(result, Failed) and result.reason == "CredentialsNotAllowed"
    assert token_prefix(settings, repo) in result.message
    assert git_server.requests == [] and forge.requests == []
