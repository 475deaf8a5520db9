"""Performs the git workflow's actions with the git and forge adapters.

Each action is idempotent against the remote: it looks before it acts (is the
branch there, does it hold the run's commit, is there a pull request for the
branch, is it merged), so an action repeated after a restart does nothing twice.
"""

from __future__ import annotations

import base64
import os
import tempfile
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from .adapters.forge import ForgeError, GitHub, repository_from_url
from .adapters.git import GitError, GitRemote, Identity, run_validation
from .core import edits, gitflow, releases
from .core.draft import Outcome, Run
from .models import GitWorkflow

WORKDIR = Path(os.environ.get("SELFBOOTSTRAP_WORKDIR", Path(tempfile.gettempdir()) / "selfbootstrap"))


class GitRunner:
    def __init__(self, kube: Any, workdir: Path = WORKDIR) -> None:
        self.kube = kube
        self.workdir = workdir

    def perform(self, obj: dict[str, Any], run: Run, action: gitflow.GitAction) -> Outcome:
        git = run.spec.git
        assert git is not None
        try:
            token = self._token(run.namespace, git)
        except LookupError as err:
            return Outcome(ok=False, message=str(err), data={"reason": "CredentialsUnavailable"})
        remote = GitRemote(git.repository_url, token, git.credentials.username if git.credentials else "",
                           self.workdir / run.uid)
        identity = Identity(git.commit.author_name, git.commit.author_email, obj["metadata"]["creationTimestamp"])
        step = _Step(run, git, remote, identity, token)
        try:
            return step.perform(action)
        except GitError as err:
            return Outcome(ok=False, message=str(err), retryable=err.retryable, data={"reason": err.reason})
        except ForgeError as err:
            return Outcome(ok=False, message=remote.scrub(str(err)), retryable=err.retryable)
        except edits.EditError as err:
            return Outcome(ok=False, message=str(err), data={"reason": "ChangeFailed"})
        finally:
            step.close()

    def _token(self, namespace: str, git: GitWorkflow) -> str | None:
        if git.credentials is None:
            return None
        ref = git.credentials.secret_ref
        try:
            secret = self.kube.core.read_namespaced_secret(ref.name, namespace)
        except ApiException as err:
            raise LookupError(f"secret {ref.name!r} cannot be read ({err.status} {err.reason})") from None
        value = (secret.data or {}).get(ref.key)
        if not value:
            raise LookupError(f"secret {ref.name!r} has no key {ref.key!r}")
        return base64.b64decode(value).decode().strip()


class _Step:
    def __init__(self, run: Run, git: GitWorkflow, remote: GitRemote, identity: Identity,
                 token: str | None) -> None:
        self.run, self.git, self.remote, self.identity, self.token = run, git, remote, identity, token
        self._forge: GitHub | None = None

    @property
    def forge(self) -> GitHub:
        if self._forge is None:
            repo = self.git.forge.repository or repository_from_url(self.git.repository_url)
            self._forge = GitHub(self.git.forge.api_url, repo, self.token)
        return self._forge

    def close(self) -> None:
        if self._forge is not None:
            self._forge.close()

    def perform(self, action: gitflow.GitAction) -> Outcome:
        handler = {
            gitflow.ResolveBranch: self.resolve_branch,
            gitflow.CommitChange: self.commit,
            gitflow.PushBranch: self.push,
            gitflow.OpenPullRequest: self.open_pull_request,
            gitflow.CheckCI: self.check_ci,
            gitflow.MergePullRequest: self.merge,
            gitflow.CheckPullRequest: self.check_pull_request,
            gitflow.OpenRevertPullRequest: self.revert,
        }[type(action)]
        return handler(action)

    def resolve_branch(self, a: gitflow.ResolveBranch) -> Outcome:
        base_sha = self.remote.head_of(a.base_branch)
        if base_sha is None:
            raise GitError("BaseBranchNotFound", f"base branch {a.base_branch!r} not found on the remote")
        exists = self.remote.head_of(a.branch) is not None
        run_commit = self.remote.find_commit(a.branch, a.trailer) if exists else None
        return Outcome(ok=True, data={"base_sha": base_sha, "branch_exists": exists, "run_commit": run_commit})

    def commit(self, a: gitflow.CommitChange) -> Outcome:
        sha, detail, _ = self._build_commit(a)
        if sha is None and detail:
            return Outcome(ok=False, message=f"validation failed, nothing committed: {detail}",
                           data={"reason": "ValidationFailed"})
        return Outcome(ok=True, data={"commit_sha": sha} if sha else {"nothing_to_commit": True})

    def _build_commit(self, a: gitflow.CommitChange) -> tuple[str | None, str, Path]:
        tree = self.remote.checkout(f"commit-{a.branch}", self.git.base_branch, a.base_sha, a.branch)
        self._apply_change(tree)
        if self.git.validation:
            ok, detail = run_validation(self.git.validation.command, tree, self.git.validation.timeout_seconds,
                                        self.remote.scrub)
            if not ok:
                return None, detail, tree
        return self.remote.commit_all(tree, a.message, self.identity), "", tree

    def _apply_change(self, tree: Path) -> None:
        change, spec = self.git.change, self.run.spec
        root = tree.resolve()
        for f in change.files or []:
            target = _inside(root, f.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(f.content)
        if change.set_image:
            target = _inside(root, change.set_image.path)
            if not target.is_file():
                raise edits.EditError(f"{change.set_image.path}: no such file in the repository")
            image = change.set_image.image or spec.release.image
            if not image:
                raise edits.EditError("spec.git.change.setImage.image is required with a podTemplatePatch release")
            target.write_text(edits.set_image(
                target.read_text(), change.set_image.path, spec.target.deployment, spec.target.container, image,
                releases.requested_release_id(spec.release)))

    def push(self, a: gitflow.PushBranch) -> Outcome:
        remote_sha = self.remote.head_of(a.commit.branch)
        if remote_sha == a.commit_sha:
            return Outcome(ok=True, data={"already_pushed": True})
        if remote_sha is not None:
            raise GitError("PushRejected", f"branch {a.commit.branch!r} moved on the remote to {remote_sha[:12]}")
        # Rebuild rather than trust a working tree that may not have survived a restart;
        # commits are deterministic, so the rebuilt one must be the recorded one.
        sha, detail, tree = self._build_commit(a.commit)
        if sha != a.commit_sha:
            raise GitError("CommitNotReproducible", f"rebuilt commit {str(sha)[:12]} differs from recorded "
                                                    f"{a.commit_sha[:12]} {detail}".rstrip())
        self.remote.push(tree, a.commit_sha, a.commit.branch)
        return Outcome(ok=True)

    def open_pull_request(self, a: gitflow.OpenPullRequest) -> Outcome:
        pr = self.forge.open_pull_request(a.head, a.base, a.title, a.body)
        return Outcome(ok=True, data={"number": pr.number, "url": pr.url})

    def check_ci(self, a: gitflow.CheckCI) -> Outcome:
        state, description = self.forge.ci_state(a.sha)
        return Outcome(ok=True, data={"state": state, "description": description})

    def merge(self, a: gitflow.MergePullRequest) -> Outcome:
        try:
            sha = self.forge.merge(a.number, a.sha, a.method, a.title)
        except ForgeError as err:
            if err.retryable:
                raise
            return Outcome(ok=False, message=f"the forge refused the merge: {self.remote.scrub(str(err))}",
                           data={"reason": "MergeRefused"})
        return Outcome(ok=True, data={"merge_sha": sha, "merged": True})

    def check_pull_request(self, a: gitflow.CheckPullRequest) -> Outcome:
        pr = self.forge.pull_request(a.number)
        return Outcome(ok=True, data={"merged": pr.merged, "state": pr.state, "merge_sha": pr.merge_sha})

    def revert(self, a: gitflow.OpenRevertPullRequest) -> Outcome:
        trailer = gitflow.trailer_of(self.run)
        if self.remote.head_of(a.branch) is None:
            tree = self.remote.checkout(f"revert-{a.branch}", a.base, "HEAD", a.branch)
            message = f"{a.title}\n\nThis reverts commit {a.merge_sha}.\n\n{trailer}\n"
            sha = self.remote.revert(tree, a.merge_sha, message, self.identity)
            self.remote.push(tree, sha, a.branch)
        elif self.remote.find_commit(a.branch, trailer) is None:
            raise GitError("RevertFailed", f"branch {a.branch!r} exists without this run's revert commit")
        pr = self.forge.open_pull_request(a.branch, a.base, a.title, a.body)
        return Outcome(ok=True, data={"number": pr.number, "url": pr.url, "branch": a.branch})


def _inside(root: Path, relative: str) -> Path:
    target = (root / relative).resolve()
    if root != target and root not in target.parents:
        raise edits.EditError(f"{relative}: path leaves the repository")
    return target
