"""Performs the git workflow's actions with the git and forge adapters.

Each action is idempotent against the remote: it looks before it acts (is the
branch there, does it hold the run's commit, is there a pull request for the
branch, is it merged), so an action repeated after a restart does nothing twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import assert_never

from ..core import credentials, edits, gitflow, reasons, releases
from ..core.actions import (
    BranchResolved,
    CheckCI,
    CheckPullRequest,
    CIReported,
    CommitChange,
    Committed,
    Failed,
    GitAction,
    GitResult,
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
from ..core.egress import Refused
from ..core.paths import UnsafePathError, repository_path
from ..core.run import Run
from ..models import ForgeKind, GitWorkflow
from . import githubapp
from .egress import EgressPolicy, Target, Unresolved
from .forge import Forge, ForgeError, connect, repository_of, token_prefix
from .git import GitError, GitRemote, Identity
from .kube import Kube, SecretUnavailableError

# The status reason of a forge failure, by the action that met it.
_FORGE_FAILURES: dict[type, str] = {
    OpenPullRequest: reasons.PULL_REQUEST_FAILED,
    CheckCI: reasons.CI_CHECK_FAILED,
    MergePullRequest: reasons.MERGE_REFUSED,
    CheckPullRequest: reasons.PULL_REQUEST_FAILED,
    OpenRevertPullRequest: reasons.REVERT_FAILED,
}


class GitExecutor:
    def __init__(self, kube: Kube, workdir: Path, egress: EgressPolicy) -> None:
        self.kube = kube
        self.workdir = workdir
        self.egress = egress
        self.app_tokens = githubapp.InstallationTokens()

    def perform(self, run: Run, action: GitAction) -> GitResult | Failed:
        git = run.spec.git
        assert git is not None, "a git action implies spec.git"
        try:
            token = self._token(run.namespace, git)
        except SecretUnavailableError as err:
            return Failed(reasons.CREDENTIALS_UNAVAILABLE, str(err))
        except CredentialsNotAllowedError as err:
            return Failed(reasons.CREDENTIALS_NOT_ALLOWED, str(err))
        except githubapp.AppTokenError as err:
            return Failed(reasons.CREDENTIALS_UNAVAILABLE, str(err), err.retryable)
        target = self.egress.check(git.repository_url)  # before anything is contacted
        match target:
            case Refused():
                return Failed(reasons.EGRESS_REFUSED, target.message)
            case Unresolved():
                return Failed(reasons.REMOTE_UNREACHABLE, target.message, retryable=True)
            case Target():
                pass
            case _:
                assert_never(target)
        username = git.credentials.username if git.credentials else ""
        remote = GitRemote(git.repository_url, token, username, self.workdir / run.uid, pin=target.curl_resolve,
                           locate_redirect=self.egress.redirect_location)
        step = _Step(run, git, remote, Identity(git.commit.author_name, git.commit.author_email, run.created),
                     token, self.egress)
        try:
            return step.perform(action)
        except GitError as err:
            return Failed(err.reason, str(err), err.retryable)
        except ForgeError as err:
            reason = err.reason or _FORGE_FAILURES.get(type(action), reasons.FORGE_FAILED)
            return Failed(reason, remote.scrub(str(err)), err.retryable)
        except UnsafePathError as err:
            return Failed(reasons.UNSAFE_PATH, str(err))
        except edits.EditError as err:
            return Failed(reasons.CHANGE_FAILED, str(err))
        finally:
            step.close()

    def _token(self, namespace: str, git: GitWorkflow) -> str | None:
        """The run's token (or its GitHub App's installation token), once its Secret allows every URL the run
        would send it to."""
        if git.credentials is None:
            return None
        ref = git.credentials.secret_ref
        data, allowed = self.kube.read_secret_data(namespace, ref.name)
        app = githubapp.of_secret(data, ref.name)
        if app is not None:
            return self._app_token(app, ref.name, allowed, git)
        refused = credentials.refusal(ref.name, allowed, destinations(git))
        if refused:
            raise CredentialsNotAllowedError(refused)
        value = data.get(ref.key)
        if not value:
            raise SecretUnavailableError(f"secret {ref.name!r} has no key {ref.key!r}")
        try:
            return value.decode().strip()
        except UnicodeDecodeError:
            raise SecretUnavailableError(f"secret {ref.name!r} key {ref.key!r} is not UTF-8 text") from None

    def _app_token(self, app: githubapp.GitHubApp, secret: str, allowed: tuple[str, ...], git: GitWorkflow) -> str:
        if git.forge.kind != ForgeKind.GITHUB:
            raise SecretUnavailableError(f"secret {secret!r} holds GitHub App credentials, and the run's forge is "
                                         f"{git.forge.kind}")
        api_url = git.forge.api_url
        refused = credentials.refusal(secret, allowed, [*destinations(git), githubapp.token_url(api_url, app)])
        if refused:
            raise CredentialsNotAllowedError(refused)
        return self.app_tokens.token(app, api_url, self.egress)


class CredentialsNotAllowedError(Exception):
    """The run would send a token where its Secret does not allow; nothing was sent."""


def destinations(git: GitWorkflow) -> list[str]:
    """Every URL a run's token goes to: the repository, and the forge API's requests for it."""
    try:
        return [git.repository_url, token_prefix(git.forge, git.repository_url)]
    except ValueError:
        return [git.repository_url]


class _Step:
    def __init__(self, run: Run, git: GitWorkflow, remote: GitRemote, identity: Identity,
                 token: str | None, egress: EgressPolicy) -> None:
        self.run, self.git, self.remote, self.identity, self.token = run, git, remote, identity, token
        self.egress = egress
        self._forge: Forge | None = None

    @property
    def forge(self) -> Forge:
        """The forge client, made (its API checked by the egress policy, nothing sent) on first use."""
        if self._forge is None:
            try:
                self._forge = connect(self.git.forge, self.git.repository_url, self.token, self.egress)
            except ValueError as err:
                raise ForgeError(str(err)) from None
        return self._forge

    def close(self) -> None:
        if self._forge is not None:
            self._forge.close()

    def perform(self, action: GitAction) -> GitResult | Failed:
        match action:
            case ResolveBranch():
                return self.resolve_branch(action)
            case CommitChange():
                return self.commit(action)
            case PushBranch():
                return self.push(action)
            case OpenPullRequest():
                pr = self.forge.open_pull_request(action.head, action.base, action.title, action.body)
                return PullRequestOpened(pr.number, pr.url)
            case CheckCI():
                state, description = self.forge.ci_state(action.sha)
                return CIReported(state, description)
            case MergePullRequest():
                return self.merge(action)
            case CheckPullRequest():
                pr = self.forge.pull_request(action.number)
                return PullRequestObserved(open=pr.state == "open", merged=pr.merged, merge_sha=pr.merge_sha)
            case OpenRevertPullRequest():
                return self.revert(action)
            case _:
                assert_never(action)

    def resolve_branch(self, a: ResolveBranch) -> BranchResolved:
        self.remote.check_branch(a.base_branch)
        self.remote.check_branch(a.branch)
        if self.git.pull_request.create or self.git.ci.required:  # before anything is pushed, not after
            try:
                repository_of(self.git.forge, self.git.repository_url)
            except ValueError as err:
                raise GitError(reasons.INVALID_REPOSITORY, str(err)) from None
            _ = self.forge  # a forge API the egress policy refuses fails the run now
        heads = self.remote.heads(a.base_branch, a.branch)  # one request for both
        base_sha = heads.get(a.base_branch)
        if base_sha is None:
            raise GitError(reasons.BASE_BRANCH_NOT_FOUND, f"base branch {a.base_branch!r} not found on the remote")
        exists = a.branch in heads
        run_commit = self.remote.find_commit(a.branch, a.trailer) if exists else None
        return BranchResolved(base_sha=base_sha, exists=exists, run_commit=run_commit)

    def commit(self, a: CommitChange) -> Committed | NothingToCommit:
        sha, _ = self._build_commit(a)
        return Committed(sha) if sha else NothingToCommit()

    def _build_commit(self, a: CommitChange) -> tuple[str | None, Path]:
        """The change committed in a fresh checkout of the base; the tree stays for the push (kept_tree)."""
        tree = self.remote.checkout(_commit_tree(a), self.git.base_branch, a.base_sha, a.branch,
                                    self._change_paths())
        self._apply_change(tree)
        return self.remote.commit_all(tree, a.message, self.identity), tree

    def _change_paths(self) -> list[str] | None:
        """The paths the change writes, for a sparse checkout; None (every file) if one of them is unsafe, which
        _apply_change refuses before it writes anything."""
        change = self.git.change
        try:
            return [repository_path(p) for p in [*(f.path for f in change.files or []),
                                                 *([change.set_image.path] if change.set_image else [])]]
        except UnsafePathError:
            return None

    def _apply_change(self, tree: Path) -> None:
        change, spec = self.git.change, self.run.spec
        root = tree.resolve()
        special = self.remote.special_entries(tree)
        for f in change.files or []:
            target = _inside(root, f.path, special)
            if target.is_dir():
                raise edits.EditError(f"{f.path}: is a directory in the repository, not a file")
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(f.content)
            except OSError as err:
                raise edits.EditError(f"{f.path}: cannot be written ({err.strerror})") from None
        if change.set_image:
            target = _inside(root, change.set_image.path, special)
            if not target.is_file():
                raise edits.EditError(f"{change.set_image.path}: no such file in the repository")
            image = change.set_image.image or spec.release.image
            if not image:
                raise edits.EditError("spec.git.change.setImage.image is required with a podTemplatePatch release")
            try:
                text = target.read_text()
            except (OSError, UnicodeDecodeError) as err:
                raise edits.EditError(f"{change.set_image.path}: cannot be read as text ({err})") from None
            target.write_text(edits.set_image(
                text, change.set_image.path, spec.target.workload, spec.target.container, image,
                releases.requested_release_id(spec.release), spec.target.kind))

    def push(self, a: PushBranch) -> Pushed:
        """Push the recorded commit from the tree the commit step left (its HEAD is that commit), or, when that
        tree is gone (a restart), from a rebuilt one: commits are deterministic, so the rebuilt commit must be
        the recorded one. The push only creates the branch; a branch already there is looked at: at the commit,
        it was pushed before (a resumed run); at any other, someone else's."""
        branch = a.commit.branch
        tree = self.remote.kept_tree(_commit_tree(a.commit), a.commit_sha)
        if tree is None:
            if self._pushed_before(branch, a.commit_sha):
                return Pushed(already=True)
            sha, tree = self._build_commit(a.commit)
            if sha != a.commit_sha:
                raise GitError(reasons.COMMIT_NOT_REPRODUCIBLE, f"rebuilt commit {str(sha)[:12]} differs from "
                                                                f"recorded {a.commit_sha[:12]}")
        try:
            created = self.remote.push(tree, a.commit_sha, branch)
        except GitError as err:
            if err.retryable or not self._pushed_before(branch, a.commit_sha):  # raises PUSH_REJECTED if moved
                raise
            created = False
        self.remote.discard(tree)
        return Pushed(already=not created)

    def _pushed_before(self, branch: str, sha: str) -> bool:
        """Whether the remote branch is at sha (False: there is none); PUSH_REJECTED when it is at another."""
        remote_sha = self.remote.head_of(branch)
        if remote_sha is not None and remote_sha != sha:
            raise GitError(reasons.PUSH_REJECTED, f"branch {branch!r} moved on the remote to {remote_sha[:12]}")
        return remote_sha == sha

    def merge(self, a: MergePullRequest) -> Merged | Failed:
        try:
            sha = self.forge.merge(a.number, a.sha, a.method, a.title)
        except ForgeError as err:
            if err.retryable or err.reason:
                raise
            return Failed(reasons.MERGE_REFUSED, f"the forge refused the merge: {self.remote.scrub(str(err))}")
        return Merged(sha)

    def revert(self, a: OpenRevertPullRequest) -> RevertOpened:
        self.remote.check_branch(a.branch)
        trailer = gitflow.trailer_of(self.run)
        exists = self.remote.head_of(a.branch) is not None
        found = self.remote.find_commit(a.branch, trailer) if exists else None
        if found is None and not exists:
            tree = self.remote.checkout(f"revert-{a.branch}", a.base, "HEAD", a.branch, self._change_paths())
            message = f"{a.title}\n\nThis reverts commit {a.merge_sha}.\n\n{trailer}\n"
            found = self.remote.revert(tree, a.merge_sha, message, self.identity)
            self.remote.push(tree, found, a.branch)
            self.remote.discard(tree)
        elif found is None:
            raise GitError(reasons.REVERT_FAILED, f"branch {a.branch!r} exists without this run's revert commit")
        pr = self.forge.open_pull_request(a.branch, a.base, a.title, a.body)
        return RevertOpened(branch=a.branch, number=pr.number, url=pr.url, sha=found)


def _commit_tree(a: CommitChange) -> str:
    """The name of the working tree a run's commit is made in (per run: the remote's workdir is the run's)."""
    return f"commit-{a.branch}"


def _inside(root: Path, relative: str, special: Mapping[str, str]) -> Path:
    """The file to write: a safe relative path, reached through no symlink or submodule (as the
    index records them, or as the file system shows them), inside the tree."""
    clean = repository_path(relative)
    target, prefix = root, ""
    for part in clean.split("/"):
        target, prefix = target / part, f"{prefix}{part}"
        kind = special.get(prefix) or ("symlink" if target.is_symlink() else None)
        if kind is not None:
            raise UnsafePathError(f"{relative!r}: {prefix} is a {kind} in the repository")
        prefix += "/"
    if root not in target.resolve().parents:
        raise UnsafePathError(f"{relative!r}: leaves the repository")
    return target
