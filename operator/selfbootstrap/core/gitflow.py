"""The git phases before the deploy: branch, commit, push, pull request, CI, merge.

Like the rest of the core this only decides. Every remote side effect is
recorded in `status.git` and is recognisable on the remote afterwards (the
branch holds a commit with the run's trailer; the forge knows the branch's pull
request and whether it merged), so the adapters can make each action idempotent
and a resumed run never pushes, opens or merges twice.
"""

from __future__ import annotations

from typing import assert_never

from ..models import CIStatus, GitStatus, GitWorkflow, Phase, RevertMode, RevertStatus
from . import backoff, reasons, releases, validation
from .actions import (
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
from .decision import Decision
from .draft import Draft
from .run import Run

GIT_POLL_SECONDS = 2.0
MANUAL_MERGE_POLL_SECONDS = 15.0
TRAILER_KEY = "Selfbootstrap-Run"


def trailer_of(run: Run) -> str:
    """The commit trailer that marks the run's commits on the remote."""
    return f"{TRAILER_KEY}: {run.namespace}/{run.name}/{run.uid}"


def branch_name(run: Run) -> str:
    git = run.spec.git
    return (git.branch if git else None) or f"selfbootstrap/{run.name}"


def _spec(d: Draft) -> GitWorkflow:
    git = d.run.spec.git
    assert git is not None, "a git phase implies spec.git"
    return git


def _release(d: Draft) -> str:
    return releases.requested_release_id(d.run.spec.release) or "unknown"


def _git(d: Draft) -> GitStatus:
    return d.status.git or GitStatus()


def _set_git(d: Draft, **fields: object) -> None:
    git = _git(d).model_copy()
    for name, value in fields.items():
        if name not in GitStatus.model_fields:
            raise AttributeError(f"GitStatus has no field {name!r}")
        setattr(git, name, value)  # validated: GitStatus has validate_assignment
    d.set(git=git)


def _short(sha: str | None) -> str:
    return (sha or "")[:12]


def first_phase(d: Draft) -> Phase:
    return Phase.BRANCHING if d.run.spec.git else Phase.DEPLOYING


# --- decide -------------------------------------------------------------------


def decide(d: Draft) -> Decision:
    git, gs = _spec(d), _git(d)
    match d.status.phase:
        case Phase.BRANCHING:
            return d.decision(GIT_POLL_SECONDS,
                              ResolveBranch(branch_name(d.run), git.base_branch, trailer_of(d.run)))
        case Phase.COMMITTING:
            return d.decision(GIT_POLL_SECONDS, _commit_action(d))
        case Phase.PUSHING:
            return d.decision(GIT_POLL_SECONDS, PushBranch(_commit_action(d), gs.commit_sha or ""))
        case Phase.VALIDATING:
            decision, action = validation.decide(d, git, gs)
            if decision is not None:
                return decision
            if action is not None:
                return d.decision(validation.POLL_SECONDS, action)
            return _after_validation(d)
        case Phase.OPENING_PULL_REQUEST:
            pr = git.pull_request
            title = pr.title or f"Deploy release {_release(d)} to {d.run.spec.target.workload}"
            body = pr.body or (f"Opened by SelfBootstrapRun {d.run.namespace}/{d.run.name}; it merges when CI "
                               f"is green and then deploys release {_release(d)}.")
            return d.decision(GIT_POLL_SECONDS, OpenPullRequest(gs.branch or "", git.base_branch, title, body))
        case Phase.AWAITING_CI:
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
    git, gs = _spec(d), _git(d)
    subject = git.commit.message or (f"Deploy release {_release(d)} to {d.run.spec.target.workload}\n\n"
                                     f"Proposed by SelfBootstrapRun {d.run.namespace}/{d.run.name}.")
    trailer = trailer_of(d.run)
    return CommitChange(gs.branch or "", gs.base_sha or "", f"{subject.rstrip()}\n\n{trailer}\n", trailer)


# --- settle -------------------------------------------------------------------


def settle(d: Draft, result: GitResult) -> Decision:
    if d.status.phase == Phase.ROLLING_BACK and isinstance(result, CIReported | Merged):
        return _settle_revert(d, result)
    match result:
        case BranchResolved():
            return _branch_resolved(d, result)
        case NothingToCommit():
            d.enter(Phase.DEPLOYING, reasons.NOTHING_TO_COMMIT, "the repository already holds the change; deploying")
            return d.decision(0)
        case Committed():
            _set_git(d, commit_sha=result.sha)
            d.enter(Phase.PUSHING, reasons.COMMITTED, f"committed {_short(result.sha)} on {_git(d).branch}")
            d.normal(reasons.COMMITTED, d.status.message or "")
            return d.decision(0)
        case Pushed():
            _set_git(d, pushed_at=d.now)
            d.normal(reasons.PUSHED, f"pushed {_short(_git(d).commit_sha)} to {_git(d).branch}")
            return _after_push(d)
        case PullRequestOpened():
            _set_git(d, pull_request_number=result.number, pull_request_url=result.url or None)
            d.normal(reasons.PULL_REQUEST_OPENED, f"pull request #{result.number}" + (f": {result.url}" if result.url
                                                                                     else ""))
            return _after_pull_request(d)
        case CIReported():
            return _settle_ci(d, result)
        case Merged():
            return _merged(d, result.merge_sha)
        case PullRequestObserved():
            return _observed(d, result)
        case RevertOpened():
            _set_git(d, revert_status=RevertStatus.OPENED, revert_branch=result.branch,
                     revert_pull_request_number=result.number, revert_pull_request_url=result.url or None,
                     revert_commit_sha=result.sha)
            d.normal(reasons.REVERT_PULL_REQUEST_OPENED, f"revert pull request #{result.number}: {result.url}")
            return d.decision(0)
        case _:
            assert_never(result)


def _branch_resolved(d: Draft, result: BranchResolved) -> Decision:
    branch = branch_name(d.run)
    _set_git(d, branch=branch, base_sha=result.base_sha)
    if result.run_commit:
        _set_git(d, commit_sha=result.run_commit, pushed_at=d.now)
        d.normal(reasons.RESUMED, f"branch {branch} already holds this run's commit")
        return _after_push(d)
    if result.exists:
        return d.fail(reasons.BRANCH_EXISTS, f"branch {branch!r} exists on the remote without a commit of "
                                             f"this run; refusing to overwrite it")
    d.enter(Phase.COMMITTING, reasons.BRANCH_READY,
            f"branch {branch} from {_spec(d).base_branch} at {_short(result.base_sha)}")
    return d.decision(0)


def _merged(d: Draft, merge_sha: str | None) -> Decision:
    number = _git(d).pull_request_number
    _set_git(d, merge_commit_sha=merge_sha, merged_at=d.now)
    d.normal(reasons.MERGED, f"pull request #{number} merged")
    d.enter(Phase.DEPLOYING, reasons.MERGED, f"pull request #{number} merged; deploying")
    return d.decision(0)


def _observed(d: Draft, pr: PullRequestObserved) -> Decision:
    number = _git(d).pull_request_number
    if pr.merged:
        return _merged(d, pr.merge_sha)
    if not pr.open:
        return d.fail(reasons.PULL_REQUEST_CLOSED, f"pull request #{number} was closed without merging")
    d.enter(Phase.MERGING, reasons.AWAITING_MERGE, f"waiting for pull request #{number} to be merged")
    return d.decision(MANUAL_MERGE_POLL_SECONDS)


def failed(d: Draft, action: GitAction, failure: Failed) -> Decision:
    """A git or forge step failed for good: nothing was deployed (a failed revert is only recorded)."""
    if isinstance(action, OpenRevertPullRequest) or d.status.phase == Phase.ROLLING_BACK:
        _set_git(d, revert_status=RevertStatus.FAILED)
        d.warning(reasons.REVERT_PULL_REQUEST_FAILED, failure.message)
        return d.decision(0)
    return d.fail(failure.reason, f"{failure.message}; nothing was deployed")


def _after_push(d: Draft) -> Decision:
    if _spec(d).validation is not None:
        d.enter(Phase.VALIDATING, reasons.PUSHED, f"branch {_git(d).branch} pushed; validating it")
        return d.decision(0)
    return _after_validation(d)


def _after_validation(d: Draft) -> Decision:
    if _spec(d).pull_request.create:
        d.enter(Phase.OPENING_PULL_REQUEST, reasons.PUSHED, f"branch {_git(d).branch} pushed")
        return d.decision(0)
    return _after_pull_request(d)


def _after_pull_request(d: Draft) -> Decision:
    if _spec(d).ci.required:
        _set_git(d, ci_started_at=d.now, ci_checks=0, ci_interval_seconds=None, ci_checked_at=None)
        d.set(ci_status=CIStatus.PENDING)
        d.enter(Phase.AWAITING_CI, reasons.AWAITING_CI, f"waiting for CI on {_short(_git(d).commit_sha)}")
    else:
        _after_ci(d)
    return d.decision(0)


def _after_ci(d: Draft) -> None:
    if _spec(d).pull_request.create:
        d.enter(Phase.MERGING, reasons.READY_TO_MERGE,
                f"pull request #{_git(d).pull_request_number} is ready to merge")
    else:
        d.enter(Phase.DEPLOYING, reasons.READY_TO_DEPLOY, f"commit {_short(_git(d).commit_sha)} is ready")


def _settle_ci(d: Draft, answer: CIReported) -> Decision:
    git, gs = _spec(d), _git(d)
    poll = backoff.after_check(answer.state, gs.ci_started_at or d.now, d.now, gs.ci_interval_seconds, git.ci)
    _set_git(d, ci_checks=gs.ci_checks + 1, ci_checked_at=d.now, ci_interval_seconds=poll.wait_seconds,
             ci_description=answer.description or None)
    d.set(ci_status=poll.status)
    sha = _short(gs.commit_sha)
    if poll.status == CIStatus.SUCCESS:
        d.normal(reasons.CI_PASSED, f"CI passed on {sha}")
        _after_ci(d)
        return d.decision(0)
    if poll.status == CIStatus.FAILURE:
        return d.fail(reasons.CI_FAILED,
                      f"CI failed on {sha}: {answer.description or 'failure'}; nothing was deployed")
    if poll.status == CIStatus.TIMEOUT:
        return d.fail(reasons.CI_TIMED_OUT, f"CI still pending on {sha} after {git.ci.timeout_seconds:g}s; "
                                            f"nothing was deployed")
    d.enter(Phase.AWAITING_CI, reasons.CI_PENDING,
            f"CI pending on {sha} (check {gs.ci_checks + 1}); next check in {poll.wait_seconds:g}s")
    return d.decision(poll.wait_seconds)


# --- git after a rollback -----------------------------------------------------


def after_rollback(d: Draft) -> Decision | None:
    """What a rolled-back run still owes git, as a decision; None when nothing (status says why).

    The cluster runs the old release again while git holds the new one: the run opens a pull
    request reverting its merge and, with revertMode Merge, waits for its CI and merges it (guarded
    by the tested commit), so that an engine syncing from git does not deploy the broken release again.
    """
    git, gs = d.run.spec.git, d.status.git
    if git is None or gs is None:
        return None
    if gs.revert_status is None:
        action = _open_revert(d, git, gs)
        return d.decision(GIT_POLL_SECONDS, action) if action else None
    if gs.revert_status != RevertStatus.OPENED or git.revert_mode != RevertMode.MERGE:
        return None
    if git.ci.required and gs.revert_ci_status != CIStatus.SUCCESS:
        return _revert_ci(d, gs)
    return d.decision(GIT_POLL_SECONDS, MergePullRequest(
        gs.revert_pull_request_number or 0, gs.revert_commit_sha or "", git.pull_request.merge_method,
        f"Revert release {_release(d)} (#{gs.revert_pull_request_number})"))


def _open_revert(d: Draft, git: GitWorkflow, gs: GitStatus) -> OpenRevertPullRequest | None:
    if not gs.merge_commit_sha:
        _set_git(d, revert_status=RevertStatus.NOT_NEEDED)
        return None
    if not git.revert_on_rollback:
        _set_git(d, revert_status=RevertStatus.DISABLED)
        return None
    return OpenRevertPullRequest(
        branch=f"{gs.branch}-revert", base=git.base_branch, merge_sha=gs.merge_commit_sha,
        title=f"Revert release {_release(d)}: rolled back in the cluster",
        body=(f"SelfBootstrapRun {d.run.namespace}/{d.run.name} rolled {d.run.spec.target.kind.lower()} "
              f"{d.run.spec.target.workload} back ({d.status.reason}). This reverts {gs.merge_commit_sha[:12]} "
              f"so git and the cluster agree."))


def _revert_ci(d: Draft, gs: GitStatus) -> Decision:
    if gs.revert_ci_status is None:
        _set_git(d, revert_ci_status=CIStatus.PENDING, revert_ci_started_at=d.now)
        gs = _git(d)
    wait = 0.0
    if gs.revert_ci_checked_at and gs.revert_ci_interval_seconds:
        wait = max(0.0, gs.revert_ci_interval_seconds - (d.now - gs.revert_ci_checked_at).total_seconds())
    if wait > 0:
        return d.decision(wait)
    return d.decision(GIT_POLL_SECONDS, CheckCI(gs.revert_commit_sha or ""))


def _settle_revert(d: Draft, result: CIReported | Merged) -> Decision:
    git, gs = _spec(d), _git(d)
    if isinstance(result, Merged):
        _set_git(d, revert_status=RevertStatus.MERGED, revert_merge_commit_sha=result.merge_sha)
        d.normal(reasons.REVERT_MERGED, f"revert pull request #{gs.revert_pull_request_number} merged: git holds "
                                        f"the release the cluster runs again")
        return d.decision(0)
    poll = backoff.after_check(result.state, gs.revert_ci_started_at or d.now, d.now, gs.revert_ci_interval_seconds,
                               git.ci)
    _set_git(d, revert_ci_checks=gs.revert_ci_checks + 1, revert_ci_checked_at=d.now,
             revert_ci_interval_seconds=poll.wait_seconds, revert_ci_status=poll.status)
    if poll.status in (CIStatus.FAILURE, CIStatus.TIMEOUT):
        _set_git(d, revert_status=RevertStatus.FAILED)
        d.warning(reasons.REVERT_PULL_REQUEST_FAILED, f"CI of the revert {(gs.revert_commit_sha or '')[:12]}: "
                                                      f"{poll.status} ({result.description}); it stays open")
    return d.decision(poll.wait_seconds or 0)
