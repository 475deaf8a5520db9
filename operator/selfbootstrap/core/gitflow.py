"""The git phases before the deploy: branch, commit, push, pull request, CI, merge.

Like the rest of the core this only decides. Every remote side effect is
recorded in `status.git` and is recognisable on the remote afterwards (the
branch holds a commit with the run's trailer; the forge knows the branch's pull
request and whether it merged), so the adapters can make each action idempotent
and a resumed run never pushes, opens or merges twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from ..models import CIStatus, GitStatus, Phase, RevertStatus
from . import backoff, releases
from .draft import Decision, Draft, Outcome, Run

GIT_POLL_SECONDS = 2.0
MANUAL_MERGE_POLL_SECONDS = 15.0
TRAILER_KEY = "Selfbootstrap-Run"


@dataclass(frozen=True)
class ResolveBranch:
    """Read the base branch's head and whether the run's branch already exists on the remote."""

    branch: str
    base_branch: str
    trailer: str


@dataclass(frozen=True)
class CommitChange:
    """Clone at base_sha, apply the change, validate, commit (deterministically: same inputs, same sha)."""

    branch: str
    base_sha: str
    message: str
    trailer: str


@dataclass(frozen=True)
class PushBranch:
    commit: CommitChange
    commit_sha: str


@dataclass(frozen=True)
class OpenPullRequest:
    head: str
    base: str
    title: str
    body: str


@dataclass(frozen=True)
class CheckCI:
    sha: str


@dataclass(frozen=True)
class MergePullRequest:
    number: int
    sha: str
    method: str
    title: str


@dataclass(frozen=True)
class CheckPullRequest:
    number: int


@dataclass(frozen=True)
class OpenRevertPullRequest:
    branch: str
    base: str
    merge_sha: str
    title: str
    body: str


GitAction = Union[ResolveBranch, CommitChange, PushBranch, OpenPullRequest, CheckCI, MergePullRequest,
                  CheckPullRequest, OpenRevertPullRequest]
GIT_PHASES = (Phase.BRANCHING, Phase.COMMITTING, Phase.PUSHING, Phase.OPENING_PULL_REQUEST,
              Phase.AWAITING_CI, Phase.MERGING)


def trailer_of(run: Run) -> str:
    """The commit trailer that marks the run's commits on the remote."""
    return f"{TRAILER_KEY}: {run.namespace}/{run.name}/{run.uid}"


def trailer(d: Draft) -> str:
    return trailer_of(d.run)


def _release(d: Draft) -> str:
    return releases.requested_release_id(d.run.spec.release) or "unknown"


def _git(d: Draft) -> GitStatus:
    return d.status.git or GitStatus()


def _set_git(d: Draft, **fields: object) -> None:
    d.set(git=_git(d).model_copy(update=fields))


def first_phase(d: Draft) -> Phase:
    return Phase.BRANCHING if d.run.spec.git else Phase.DEPLOYING


# --- decide -------------------------------------------------------------------


def decide(d: Draft) -> Decision:
    phase = d.status.phase
    git, gs = d.run.spec.git, _git(d)
    assert git is not None
    if phase == Phase.BRANCHING:
        branch = git.branch or f"selfbootstrap/{d.run.name}"
        return d.decision(GIT_POLL_SECONDS, ResolveBranch(branch, git.base_branch, trailer(d)))
    if phase == Phase.COMMITTING:
        return d.decision(GIT_POLL_SECONDS, _commit_action(d))
    if phase == Phase.PUSHING:
        return d.decision(GIT_POLL_SECONDS, PushBranch(_commit_action(d), gs.commit_sha or ""))
    if phase == Phase.OPENING_PULL_REQUEST:
        pr = git.pull_request
        title = pr.title or f"Deploy release {_release(d)} to {d.run.spec.target.deployment}"
        body = pr.body or (f"Opened by SelfBootstrapRun {d.run.namespace}/{d.run.name}; it merges when CI "
                           f"is green and then deploys release {_release(d)}.")
        return d.decision(GIT_POLL_SECONDS, OpenPullRequest(gs.branch or "", git.base_branch, title, body))
    if phase == Phase.AWAITING_CI:
        wait = 0.0
        if gs.ci_checked_at and gs.ci_interval_seconds:
            wait = max(0.0, gs.ci_interval_seconds - (d.now - gs.ci_checked_at).total_seconds())
        if wait > 0:
            return d.decision(wait)
        return d.decision(GIT_POLL_SECONDS, CheckCI(gs.commit_sha or ""))
    if git.pull_request.auto_merge:
        return d.decision(GIT_POLL_SECONDS, MergePullRequest(
            gs.pull_request_number or 0, gs.commit_sha or "", git.pull_request.merge_method,
            f"Deploy release {_release(d)} (#{gs.pull_request_number})"))
    return d.decision(MANUAL_MERGE_POLL_SECONDS, CheckPullRequest(gs.pull_request_number or 0))


def _commit_action(d: Draft) -> CommitChange:
    git, gs = d.run.spec.git, _git(d)
    assert git is not None
    subject = git.commit.message or (f"Deploy release {_release(d)} to {d.run.spec.target.deployment}\n\n"
                                     f"Proposed by SelfBootstrapRun {d.run.namespace}/{d.run.name}.")
    return CommitChange(gs.branch or "", gs.base_sha or "", f"{subject.rstrip()}\n\n{trailer(d)}\n", trailer(d))


# --- settle -------------------------------------------------------------------


def settle(d: Draft, action: GitAction, outcome: Outcome) -> Decision:
    if isinstance(action, OpenRevertPullRequest):
        return _settle_revert(d, outcome)
    if not outcome.ok:
        return _failed(d, action, outcome)
    data = outcome.data
    if isinstance(action, ResolveBranch):
        _set_git(d, branch=action.branch, base_sha=data["base_sha"])
        if data.get("run_commit"):
            _set_git(d, commit_sha=data["run_commit"], pushed_at=d.now)
            d.event("Normal", "Resumed", f"branch {action.branch} already holds this run's commit")
            return _after_push(d)
        if data.get("branch_exists"):
            return d.fail("BranchExists", f"branch {action.branch!r} exists on the remote without a commit of "
                                          f"this run; refusing to overwrite it")
        d.enter(Phase.COMMITTING, "BranchReady", f"branch {action.branch} from {action.base_branch} "
                                                 f"at {data['base_sha'][:12]}")
        return d.decision(0)
    if isinstance(action, CommitChange):
        if data.get("nothing_to_commit"):
            d.enter(Phase.DEPLOYING, "NothingToCommit", "the repository already holds the change; deploying")
            return d.decision(0)
        _set_git(d, commit_sha=data["commit_sha"])
        d.enter(Phase.PUSHING, "Committed", f"committed {data['commit_sha'][:12]} on {action.branch}")
        d.event("Normal", "Committed", d.status.message or "")
        return d.decision(0)
    if isinstance(action, PushBranch):
        _set_git(d, pushed_at=d.now)
        d.event("Normal", "Pushed", f"pushed {action.commit_sha[:12]} to {action.commit.branch}")
        return _after_push(d)
    if isinstance(action, OpenPullRequest):
        _set_git(d, pull_request_number=data["number"], pull_request_url=data["url"])
        d.event("Normal", "PullRequestOpened", f"pull request #{data['number']}: {data['url']}")
        return _after_pull_request(d)
    if isinstance(action, CheckCI):
        return _settle_ci(d, data)
    if isinstance(action, MergePullRequest) or data.get("merged"):
        _set_git(d, merge_commit_sha=data.get("merge_sha"), merged_at=d.now)
        d.event("Normal", "Merged", f"pull request #{_git(d).pull_request_number} merged")
        d.enter(Phase.DEPLOYING, "Merged", f"pull request #{_git(d).pull_request_number} merged; deploying")
        return d.decision(0)
    if data.get("state") == "closed":
        return d.fail("PullRequestClosed", f"pull request #{action.number} was closed without merging")
    d.enter(Phase.MERGING, "AwaitingMerge", f"waiting for pull request #{action.number} to be merged")
    return d.decision(MANUAL_MERGE_POLL_SECONDS)


_FAILURE_REASONS = {
    ResolveBranch: "BranchFailed",
    CommitChange: "CommitFailed",
    PushBranch: "PushFailed",
    OpenPullRequest: "PullRequestFailed",
    CheckCI: "CICheckFailed",
    MergePullRequest: "MergeRefused",
    CheckPullRequest: "PullRequestFailed",
}


def _failed(d: Draft, action: GitAction, outcome: Outcome) -> Decision:
    reason = outcome.data.get("reason") or _FAILURE_REASONS[type(action)]
    return d.fail(reason, f"{outcome.message}; nothing was deployed")


def _after_push(d: Draft) -> Decision:
    git = d.run.spec.git
    assert git is not None
    if git.pull_request.create:
        d.enter(Phase.OPENING_PULL_REQUEST, "Pushed", f"branch {_git(d).branch} pushed")
    else:
        return _after_pull_request(d)
    return d.decision(0)


def _after_pull_request(d: Draft) -> Decision:
    git = d.run.spec.git
    assert git is not None
    if git.ci.required:
        _set_git(d, ci_started_at=d.now, ci_checks=0, ci_interval_seconds=None, ci_checked_at=None)
        d.set(ci_status=CIStatus.PENDING)
        d.enter(Phase.AWAITING_CI, "AwaitingCI", f"waiting for CI on {(_git(d).commit_sha or '')[:12]}")
    else:
        _after_ci(d)
    return d.decision(0)


def _after_ci(d: Draft) -> None:
    git = d.run.spec.git
    assert git is not None
    if git.pull_request.create:
        d.enter(Phase.MERGING, "ReadyToMerge", f"pull request #{_git(d).pull_request_number} is ready to merge")
    else:
        d.enter(Phase.DEPLOYING, "ReadyToDeploy", f"commit {(_git(d).commit_sha or '')[:12]} is ready")


def _settle_ci(d: Draft, data: dict) -> Decision:
    git, gs = d.run.spec.git, _git(d)
    assert git is not None
    answer = CIStatus(data["state"])
    poll = backoff.after_check(answer, gs.ci_started_at or d.now, d.now, gs.ci_interval_seconds, git.ci)
    _set_git(d, ci_checks=gs.ci_checks + 1, ci_checked_at=d.now, ci_interval_seconds=poll.wait_seconds,
             ci_description=data.get("description"))
    d.set(ci_status=poll.status)
    sha = (gs.commit_sha or "")[:12]
    if poll.status == CIStatus.SUCCESS:
        d.event("Normal", "CIPassed", f"CI passed on {sha}")
        _after_ci(d)
        return d.decision(0)
    if poll.status == CIStatus.FAILURE:
        return d.fail("CIFailed", f"CI failed on {sha}: {data.get('description') or 'failure'}; nothing was deployed")
    if poll.status == CIStatus.TIMEOUT:
        return d.fail("CITimedOut", f"CI still pending on {sha} after {git.ci.timeout_seconds:g}s; "
                                    f"nothing was deployed")
    d.enter(Phase.AWAITING_CI, "CIPending",
            f"CI pending on {sha} (check {gs.ci_checks + 1}); next check in {poll.wait_seconds:g}s")
    return d.decision(poll.wait_seconds)


# --- git after a rollback -----------------------------------------------------


def revert_action(d: Draft) -> OpenRevertPullRequest | None:
    """The revert pull request a rolled-back run still owes, or None (status says why)."""
    git, gs = d.run.spec.git, d.status.git
    if git is None or gs is None or gs.revert_status is not None:
        return None
    if not gs.merge_commit_sha:
        _set_git(d, revert_status=RevertStatus.NOT_NEEDED)
        return None
    if not git.revert_on_rollback:
        _set_git(d, revert_status=RevertStatus.DISABLED)
        return None
    return OpenRevertPullRequest(
        branch=f"{gs.branch}-revert", base=git.base_branch, merge_sha=gs.merge_commit_sha,
        title=f"Revert release {_release(d)}: rolled back in the cluster",
        body=(f"SelfBootstrapRun {d.run.namespace}/{d.run.name} rolled deployment {d.run.spec.target.deployment} "
              f"back ({d.status.reason}). This reverts {gs.merge_commit_sha[:12]} so git and the cluster agree."))


def _settle_revert(d: Draft, outcome: Outcome) -> Decision:
    if outcome.ok:
        _set_git(d, revert_status=RevertStatus.OPENED, revert_branch=outcome.data.get("branch"),
                 revert_pull_request_number=outcome.data["number"],
                 revert_pull_request_url=outcome.data["url"])
        d.event("Normal", "RevertPullRequestOpened", f"revert pull request #{outcome.data['number']}: "
                                                     f"{outcome.data['url']}")
    else:
        _set_git(d, revert_status=RevertStatus.FAILED)
        d.event("Warning", "RevertPullRequestFailed", outcome.message)
    return d.decision(0)
