"""The git adapter's working trees stay small however large the repository: a checkout holds one commit (depth 1),
every tree, and the blobs of the paths the change writes only (a partial, sparse clone), against a real git
server (git http-backend); commits, pushes, reverts and find_commit work on such a tree as on a full clone, also
when the base branch moved on, and against a server that neither filters nor serves an unadvertised commit."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from unittest.mock import create_autospec

import pytest

from selfbootstrap.adapters.git import GitRemote
from selfbootstrap.adapters.gitexec import GitExecutor
from selfbootstrap.adapters.kube import Kube
from selfbootstrap.core import gitflow
from selfbootstrap.core.actions import (
    Committed,
    Failed,
    Merged,
    MergePullRequest,
    OpenPullRequest,
    OpenRevertPullRequest,
    PullRequestOpened,
    PushBranch,
    Pushed,
    RevertOpened,
)
from tests.support.gitserver.fake_github import FakeGitHub
from tests.support.gitserver.git_http import SEED, GitHttpServer

from .test_gitexec import LOOPBACK_SERVERS, MANIFEST, TOKEN, commit, commit_action, make_run

FILES = 300  # files besides the manifest


def git(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True,
                          env={"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "PATH": "/usr/bin:/bin",
                               **SEED})
    return done.stdout


@pytest.fixture
def servers(tmp_path) -> Iterator[tuple[GitHttpServer, FakeGitHub]]:
    with GitHttpServer(tmp_path / "repos", TOKEN) as git_server, FakeGitHub(git_server, TOKEN) as forge:
        yield git_server, forge


@pytest.fixture(params=["partial", "plain"])
def server_kind(request) -> str:
    """partial: the server filters blobs and serves any commit by its SHA (as GitHub, GitLab and Gitea do);
    plain: git's defaults over protocol v0, neither."""
    return str(request.param)


@pytest.fixture
def repo(servers, server_kind) -> str:
    git_server, _ = servers
    files = {f"config/file-{i:04}.yaml": f"key: value-{i}\n" for i in range(FILES)}
    url = git_server.create_repo("acme/web", {"deploy/web.yaml": MANIFEST, "README.md": "config\n", **files})
    if server_kind == "partial":
        bare = git_server.bare("acme/web")
        git("config", "uploadpack.allowFilter", "true", cwd=bare)
        git("config", "uploadpack.allowAnySHA1InWant", "true", cwd=bare)
    return url


@pytest.fixture
def executor(servers, tmp_path) -> GitExecutor:
    git_server, forge = servers
    kube = create_autospec(Kube, instance=True)
    kube.read_secret_data.return_value = ({"token": TOKEN.encode()}, (f"{git_server.base_url}/", f"{forge.api_url}/"))
    return GitExecutor(kube, tmp_path / "work", LOOPBACK_SERVERS)


def move_main(git_server: GitHttpServer, tmp_path: Path, changes: dict[str, str]) -> str:
    """Another commit on main, as someone else pushes it; the new head."""
    work = tmp_path / "other"
    git("clone", "-q", str(git_server.bare("acme/web")), str(work))
    for path, content in changes.items():
        (work / path).write_text(content)
    git("commit", "-qam", "someone else's change", cwd=work)
    git("push", "-q", "origin", "HEAD:main", cwd=work)
    return git("rev-parse", "HEAD", cwd=work).strip()


def objects(tree: Path) -> dict[str, int]:
    """Objects in the clone's store, by type (what was fetched)."""
    out = git("cat-file", "--batch-check=%(objecttype)", "--batch-all-objects", cwd=tree)
    counts: dict[str, int] = {}
    for kind in out.split():
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def remote(git_server: GitHttpServer, url: str, workdir: Path) -> GitRemote:
    return GitRemote(url, TOKEN, git_server.username, workdir)


def test_a_checkout_holds_one_commit_and_the_changed_paths_only(servers, repo, server_kind, tmp_path):
    git_server, _ = servers
    base = git_server.branches("acme/web")["main"]
    tree = remote(git_server, repo, tmp_path / "work").checkout("t", "main", base, "b", ["deploy/web.yaml"])

    assert git("rev-list", "--count", "HEAD", cwd=tree).strip() == "1" and (tree / ".git" / "shallow").exists()
    on_disk = sorted(str(p.relative_to(tree)) for p in tree.rglob("*") if p.is_file() and ".git" not in p.parts)
    assert on_disk == ["deploy/web.yaml"]
    assert len(git("ls-files", cwd=tree).splitlines()) == FILES + 2, "the index holds every entry"
    assert git("status", "--porcelain", cwd=tree) == ""
    if server_kind == "partial":
        assert objects(tree) == {"commit": 1, "tree": 3, "blob": 1}, "the manifest's blob only"


def test_every_file_without_paths(servers, repo, tmp_path):
    git_server, _ = servers
    tree = remote(git_server, repo, tmp_path / "work").checkout("t", "main", "HEAD", "b")
    assert len([p for p in tree.rglob("*") if p.is_file() and ".git" not in p.parts]) == FILES + 2


def test_glob_characters_name_one_file(servers, tmp_path):
    git_server, _ = servers
    url = git_server.create_repo("acme/globs", {"deploy/[a]*.yaml": "x: 1\n", "deploy/a.yaml": "x: 2\n",
                                                "deploy/ab.yaml": "x: 3\n"})
    tree = remote(git_server, url, tmp_path / "work").checkout("t", "main", "HEAD", "b", ["deploy/[a]*.yaml"])
    assert sorted(p.name for p in (tree / "deploy").iterdir()) == ["[a]*.yaml"]


def test_a_commit_on_a_base_that_moved_on_is_the_full_clone_s_commit(executor, servers, repo, tmp_path):
    """The base is no longer the branch's head: fetched by its SHA (or with the history), committed, pushed."""
    git_server, forge = servers
    run = make_run(repo, forge)
    base = git_server.branches("acme/web")["main"]
    move_main(git_server, tmp_path, {"config/file-0001.yaml": "key: moved\n"})

    committed = executor.perform(run, commit_action(base, run))
    assert isinstance(committed, Committed)
    assert executor.perform(run, PushBranch(commit_action(base, run), committed.sha)) == Pushed(already=False)
    bare = git_server.bare("acme/web")
    assert git("rev-parse", "selfbootstrap/run-1^", cwd=bare).strip() == base
    assert git("diff", "--name-only", base, "selfbootstrap/run-1", cwd=bare).split() == ["deploy/web.yaml"]
    assert "image: reg/web:v2" in git_server.read_file("acme/web", "selfbootstrap/run-1", "deploy/web.yaml")

    # The same commit as git makes in a full clone of the base, by hand.
    full = tmp_path / "full"
    git("clone", "-q", str(bare), str(full))
    git("checkout", "-q", "-B", "x", base, cwd=full)
    (full / "deploy/web.yaml").write_text(git("show", "selfbootstrap/run-1:deploy/web.yaml", cwd=bare))
    git("add", "-A", cwd=full)
    assert git("write-tree", cwd=full).strip() == git("rev-parse", f"{committed.sha}^{{tree}}", cwd=bare).strip()


def test_a_revert_on_a_sparse_shallow_tree_after_main_moved(executor, servers, repo, tmp_path):
    git_server, forge = servers
    run = make_run(repo, forge)
    base, committed = commit(executor, git_server, run)
    executor.perform(run, PushBranch(commit_action(base, run), committed.sha))
    opened = executor.perform(run, OpenPullRequest("selfbootstrap/run-1", "main", "t", "b"))
    assert isinstance(opened, PullRequestOpened)
    merged = executor.perform(run, MergePullRequest(opened.number, committed.sha, "merge", "t"))
    assert isinstance(merged, Merged)
    moved = move_main(git_server, tmp_path, {"config/file-0002.yaml": "key: later\n"})

    action = OpenRevertPullRequest("selfbootstrap/run-1-revert", "main", merged.merge_sha, "Revert v2", "body")
    reverted = executor.perform(run, action)
    assert isinstance(reverted, RevertOpened), reverted
    bare = git_server.bare("acme/web")
    assert git("rev-parse", "selfbootstrap/run-1-revert^", cwd=bare).strip() == moved
    assert git("diff", "--name-only", moved, "selfbootstrap/run-1-revert", cwd=bare).split() == ["deploy/web.yaml"]
    assert "image: reg/web:v1" in git_server.read_file("acme/web", "selfbootstrap/run-1-revert", "deploy/web.yaml")
    assert git_server.read_file("acme/web", "selfbootstrap/run-1-revert", "config/file-0002.yaml") == "key: later\n"
    trailer = gitflow.trailer_of(run)
    assert remote(git_server, repo, tmp_path / "find").find_commit("selfbootstrap/run-1-revert", trailer) \
        == reverted.sha
    assert executor.perform(run, action) == reverted, "a repeated revert finds its branch and pull request"


def test_writing_below_a_file_fails_as_in_a_full_checkout(executor, servers, repo):
    git_server, forge = servers
    run = make_run(repo, forge, change={"files": [{"path": "README.md/x", "content": "x"}]})
    result = executor.perform(run, commit_action(git_server.branches("acme/web")["main"], run))
    assert isinstance(result, Failed) and result.reason == "ChangeFailed" and "cannot be written" in result.message


def test_a_new_file_is_committed_with_the_rest_of_the_tree_kept(executor, servers, repo):
    git_server, forge = servers
    run = make_run(repo, forge, change={"files": [{"path": "deploy/new/extra.yaml", "content": "a: 1\n"}],
                                        "setImage": {"path": "deploy/web.yaml"}})
    base, committed = commit(executor, git_server, run)
    executor.perform(run, PushBranch(commit_action(base, run), committed.sha))
    bare = git_server.bare("acme/web")
    changed = git("diff", "--name-status", base, "selfbootstrap/run-1", cwd=bare).splitlines()
    assert changed == ["A\tdeploy/new/extra.yaml", "M\tdeploy/web.yaml"]
    assert len(git("ls-tree", "-r", "--name-only", "selfbootstrap/run-1", cwd=bare).splitlines()) == FILES + 3
