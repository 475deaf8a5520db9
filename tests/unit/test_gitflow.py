"""The git phases of the state machine: every transition of decide() and settle()."""

from __future__ import annotations

import pytest

from selfbootstrap.core import gitflow, machine
from selfbootstrap.core.actions import (
    QUESTIONS,
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
    PullRequestObserved,
    PullRequestOpened,
    PushBranch,
    Pushed,
    ReleaseWorkload,
    ResolveBranch,
    Result,
    RevertOpened,
)
from selfbootstrap.core.decision import Decision
from selfbootstrap.core.run import Run
from selfbootstrap.models import CIStatus, GitStatus, Phase, RunStatus

from .factories import T0, at, deployed, holding, rolled_back, rolling_back, spec, world

GIT = {"repositoryUrl": "https://git.example.com/acme/web.git",
       "change": {"setImage": {"path": "deploy/web.yaml"}}}
SHA, BASE, MERGE = "c" * 40, "b" * 40, "m" * 40


def after_undo():
    """The Deployment rolled back to rs-2, still held by the run (it lets go when it ends)."""
    return world(holding(rolled_back()))


def git_run(phase: str | None, spec_git: dict | None = None, gs: dict | None = None, **status) -> Run:
    """A run with spec.git (GIT merged with spec_git) and status.git (from gs)."""
    st = RunStatus(phase=Phase(phase) if phase else None, phase_started_at=T0,
                   git=GitStatus(**gs) if gs else None, **status)
    return Run(name="run-1", generation=1, spec=spec(git={**GIT, **(spec_git or {})}), status=st,
               namespace="apps", uid="u-1")


def decide(run: Run, now=T0) -> Decision:
    return machine.decide(run, world(deployed()), now)


def settle(run: Run, action, outcome: Result, now=T0) -> Decision:
    return machine.settle(run, world(deployed()), action, outcome, now)


def test_pending_with_git_starts_with_branching():
    d = decide(git_run("Pending"))
    assert (d.status.phase, d.status.reason) == ("Branching", "Started")


def test_branching_asks_for_the_default_branch_and_the_run_trailer():
    d = decide(git_run("Branching"))
    assert d.action == gitflow.ResolveBranch("selfbootstrap/run-1", "main", "Selfbootstrap-Run: apps/run-1/u-1")


@pytest.mark.parametrize("result, phase, reason, git_fields", [
    (BranchResolved(BASE, exists=False, run_commit=None), "Committing", "BranchReady",
     {"branch": "b", "base_sha": BASE, "commit_sha": None}),
    (BranchResolved(BASE, exists=True, run_commit=SHA), "OpeningPullRequest", "Pushed",
     {"commit_sha": SHA}),
    (BranchResolved(BASE, exists=True, run_commit=None), "Failed", "BranchExists", {}),
], ids=["new-branch", "resumed-branch-holds-run-commit", "foreign-branch"])
def test_resolve_branch_outcomes(result, phase, reason, git_fields):
    d = settle(git_run("Branching", spec_git={"branch": "b"}), gitflow.ResolveBranch("b", "main", "t"), result)
    assert (d.status.phase, d.status.reason) == (phase, reason)
    for key, value in git_fields.items():
        assert getattr(d.status.git, key) == value


def test_committing_builds_a_message_with_the_trailer():
    d = decide(git_run("Committing", spec_git={"branch": "feature/v3"},
                       gs={"branch": "feature/v3", "base_sha": BASE}))
    assert isinstance(d.action, gitflow.CommitChange)
    assert (d.action.branch, d.action.base_sha) == ("feature/v3", BASE)
    assert d.action.message.startswith("Deploy release v3 to web")
    assert d.action.message.rstrip().endswith("Selfbootstrap-Run: apps/run-1/u-1")


@pytest.mark.parametrize("outcome, phase, reason", [
    (Committed(SHA), "Pushing", "Committed"),
    (NothingToCommit(), "Deploying", "NothingToCommit"),
    (Failed("ValidationFailed", "validation failed, nothing committed: exit 2"), "Failed", "ValidationFailed"),
], ids=["committed", "no-change", "validation-failed"])
def test_commit_outcomes(outcome, phase, reason):
    action = gitflow.CommitChange("b", BASE, "m", "t")
    d = settle(git_run("Committing", gs={"branch": "b", "base_sha": BASE}), action, outcome)
    assert (d.status.phase, d.status.reason) == (phase, reason)
    if phase == "Failed":
        assert "nothing was deployed" in d.status.message and d.action is None and d.requeue_after is None


def test_pushing_repeats_the_commit_inputs_and_the_recorded_sha():
    d = decide(git_run("Pushing", gs={"branch": "b", "base_sha": BASE, "commit_sha": SHA}))
    assert isinstance(d.action, gitflow.PushBranch) and d.action.commit_sha == SHA
    assert d.action.commit.base_sha == BASE


@pytest.mark.parametrize("git, phase", [
    ({}, "OpeningPullRequest"),
    ({"pullRequest": {"create": False, "autoMerge": False}}, "AwaitingCI"),
    ({"pullRequest": {"create": False, "autoMerge": False}, "ci": {"required": False}}, "Deploying"),
], ids=["pull-request", "ci-without-pull-request", "neither"])
def test_after_the_push(git, phase):
    action = gitflow.PushBranch(gitflow.CommitChange("b", BASE, "m", "t"), SHA)
    d = settle(git_run("Pushing", spec_git=git, gs={"branch": "b", "commit_sha": SHA}), action, Pushed(False))
    assert d.status.phase == phase and d.status.git.pushed_at == T0
    assert ("Normal", "Pushed") in [(e.type, e.reason) for e in d.events]


@pytest.mark.parametrize("git, phase, ci", [
    ({}, "AwaitingCI", "pending"),
    ({"ci": {"required": False}}, "Merging", "notRun"),
], ids=["ci-required", "ci-not-required"])
def test_pull_request_opened(git, phase, ci):
    action = gitflow.OpenPullRequest("b", "main", "t", "body")
    d = settle(git_run("OpeningPullRequest", spec_git=git, gs={"branch": "b", "commit_sha": SHA}), action,
               PullRequestOpened(7, "https://forge/pr/7"))
    assert (d.status.phase, d.status.ci_status) == (phase, ci)
    assert (d.status.git.pull_request_number, d.status.git.pull_request_url) == (7, "https://forge/pr/7")


def awaiting(**git) -> Run:
    return git_run("AwaitingCI", ci_status="pending",
                   gs={"branch": "b", "commit_sha": SHA, "pull_request_number": 7, "ci_started_at": T0,
                              **git})


def test_first_ci_check_is_immediate_then_waits_the_interval():
    assert decide(awaiting()).action == gitflow.CheckCI(SHA)
    waiting = decide(awaiting(ci_checked_at=T0, ci_interval_seconds=20, ci_checks=2), now=at(5))
    assert (waiting.action, waiting.requeue_after) == (None, 15)
    assert decide(awaiting(ci_checked_at=T0, ci_interval_seconds=20), now=at(20)).action == gitflow.CheckCI(SHA)


@pytest.mark.parametrize("state, now, phase, reason, ci, requeue", [
    ("pending", 0, "AwaitingCI", "CIPending", "pending", 10),
    ("success", 0, "Merging", "ReadyToMerge", "success", 0),
    ("failure", 0, "Failed", "CIFailed", "failure", None),
    ("pending", 600, "Failed", "CITimedOut", "timeout", None),
], ids=["pending", "success", "failure", "timeout"])
def test_ci_answers(state, now, phase, reason, ci, requeue):
    d = settle(awaiting(), gitflow.CheckCI(SHA), CIReported(state, "d"), now=at(now))
    assert (d.status.phase, d.status.reason, d.status.ci_status, d.requeue_after) == (phase, reason, ci, requeue)
    assert d.status.git.ci_checks == 1


def test_ci_success_without_pull_request_deploys():
    run = git_run("AwaitingCI", spec_git={"pullRequest": {"create": False, "autoMerge": False}},
                  gs={"branch": "b", "commit_sha": SHA, "ci_started_at": T0})
    d = settle(run, gitflow.CheckCI(SHA), CIReported("success", ""))
    assert (d.status.phase, d.status.reason) == ("Deploying", "ReadyToDeploy")


def merging(git: dict | None = None) -> Run:
    return git_run("Merging", spec_git=git, ci_status="success",
                   gs={"branch": "b", "commit_sha": SHA, "pull_request_number": 7})


STEPS = [  # a step, the run as it stands before it, its known result, and the action the run goes on with
    (ResolveBranch("b", "main", "t"), git_run("Branching", spec_git={"branch": "b"}),
     BranchResolved(BASE, exists=False, run_commit=None), CommitChange),
    (CommitChange("b", BASE, "m", "t"), git_run("Committing", gs={"branch": "b", "base_sha": BASE}),
     Committed(SHA), PushBranch),
    (PushBranch(CommitChange("b", BASE, "m", "t"), SHA),
     git_run("Pushing", gs={"branch": "b", "base_sha": BASE, "commit_sha": SHA}), Pushed(False),
     OpenPullRequest),
    (OpenPullRequest("b", "main", "t", "body"), git_run("OpeningPullRequest", gs={"branch": "b",
                                                                                          "commit_sha": SHA}),
     PullRequestOpened(7, "u"), CheckCI),
    (CheckCI(SHA), awaiting(), CIReported(CIStatus.SUCCESS, "1 check passed"), MergePullRequest),
]


@pytest.mark.parametrize("action, run, result, then", STEPS,
                         ids=["resolved", "committed", "pushed", "pull-request-opened", "ci-passed"])
def test_a_git_step_whose_result_is_known_goes_on_at_once(action, run, result, then):
    """No poll interval after a step that succeeded: the next tick comes at once and acts (the first CI check
    too, before any backoff)."""
    settled = settle(run, action, result)
    assert settled.requeue_after == 0 and settled.action is None
    nxt = decide(Run(run.name, run.generation, run.spec, settled.status, run.namespace, run.uid))
    assert isinstance(nxt.action, then) and nxt.requeue_after == gitflow.GIT_POLL_SECONDS


@pytest.mark.parametrize("action, question", [
    (ResolveBranch("b", "main", "t"), True),  # reads refs (and a branch's messages) only
    (CheckCI(SHA), True),  # reads a commit's statuses
    (CommitChange("b", BASE, "m", "t"), False),  # its SHA is recorded before the push
    (PushBranch(CommitChange("b", BASE, "m", "t"), SHA), False),
    (OpenPullRequest("b", "main", "t", "body"), False),
    (MergePullRequest(7, SHA, "merge", "t"), False),
    (CheckPullRequest(7), False),  # polled every 15 s while a person decides: written as it goes
], ids=lambda v: type(v).__name__ if not isinstance(v, bool) else str(v))
def test_the_git_steps_that_only_read_are_answered_within_the_tick_of_the_next(action, question):
    """A question's answer is written with the step it leads to: the commit in the tick that resolved the branch,
    the merge in the tick that saw CI pass (one status write and one tick thread's turn fewer each)."""
    assert isinstance(action, QUESTIONS) is question


def test_auto_merge_is_guarded_by_the_tested_sha():
    d = decide(merging({"pullRequest": {"mergeMethod": "squash"}}))
    assert d.action == gitflow.MergePullRequest(7, SHA, "squash", "Deploy release v3 (#7)")


@pytest.mark.parametrize("outcome, phase, reason", [
    (Merged(MERGE), "Deploying", "Merged"),
    (Failed("MergeRefused", "the forge refused the merge: 405 not mergeable"), "Failed", "MergeRefused"),
], ids=["merged", "refused"])
def test_merge_outcomes(outcome, phase, reason):
    d = settle(merging(), gitflow.MergePullRequest(7, SHA, "merge", "t"), outcome)
    assert (d.status.phase, d.status.reason) == (phase, reason)
    if phase == "Deploying":
        assert (d.status.git.merge_commit_sha, d.status.git.merged_at) == (MERGE, T0)
    else:
        assert "405 not mergeable" in d.status.message


@pytest.mark.parametrize("observed, phase, reason", [
    (PullRequestObserved(open=False, merged=True, merge_sha=MERGE), "Deploying", "Merged"),
    (PullRequestObserved(open=False, merged=False, merge_sha=None), "Failed", "PullRequestClosed"),
    (PullRequestObserved(open=True, merged=False, merge_sha=None), "Merging", "AwaitingMerge"),
], ids=["merged-by-a-human", "closed", "still-open"])
def test_manual_merge_is_awaited(observed, phase, reason):
    run = merging({"pullRequest": {"autoMerge": False}})
    assert decide(run).action == gitflow.CheckPullRequest(7)
    d = settle(run, gitflow.CheckPullRequest(7), observed)
    assert (d.status.phase, d.status.reason) == (phase, reason)


def test_a_retryable_failure_changes_nothing_but_says_so():
    run = awaiting()
    d = settle(run, gitflow.CheckCI(SHA), Failed("CICheckFailed", "503", retryable=True))
    assert (d.status.phase, d.status.git, d.requeue_after) == ("AwaitingCI", run.status.git, machine.POLL_SECONDS)
    assert [e.reason for e in d.events] == ["Retrying"]


def rolled_back_run(git: dict | None = None, **git_status) -> Run:
    st = rolling_back(rollback_patched_at=T0, git=GitStatus(branch="b", commit_sha=SHA, **git_status))
    return Run(name="run-1", generation=1, spec=spec(git={**GIT, **(git or {})}), status=st,
               namespace="apps", uid="u-1")


def test_rolled_back_git_run_opens_a_revert_pull_request_before_finishing():
    run = rolled_back_run(merge_commit_sha=MERGE)
    d = machine.decide(run, after_undo(), at(5))
    assert isinstance(d.action, gitflow.OpenRevertPullRequest)
    assert (d.action.branch, d.action.base, d.action.merge_sha) == ("b-revert", "main", MERGE)

    settled = machine.settle(run, after_undo(), d.action, RevertOpened("b-revert", 9, "u9", "r" * 40), at(6))
    assert settled.status.git.revert_status == "opened" and settled.status.phase == "RollingBack"
    final = machine.decide(Run(run.name, 1, run.spec, settled.status, "apps", "u-1"), after_undo(), at(7))
    assert (final.status.phase, final.status.git.revert_pull_request_number) == ("RolledBack", 9)


@pytest.mark.parametrize("git, git_status, revert", [
    ({"revertOnRollback": False}, {"merge_commit_sha": MERGE}, "disabled"),
    ({}, {}, "notNeeded"),
], ids=["disabled-by-policy", "never-merged"])
def test_no_revert_pull_request(git, git_status, revert):
    d = machine.decide(rolled_back_run(git, **git_status), after_undo(), at(5))
    assert (d.status.phase, d.status.git.revert_status) == ("RolledBack", revert)
    assert isinstance(d.action, ReleaseWorkload), "nothing to do in git; the run lets go of the Deployment"


def test_failed_revert_is_recorded_and_the_rollback_still_finishes():
    run = rolled_back_run(merge_commit_sha=MERGE)
    action = machine.decide(run, after_undo(), at(5)).action
    settled = machine.settle(run, after_undo(), action, Failed("RevertFailed", "push refused"), at(6))
    assert settled.status.git.revert_status == "failed"
    final = machine.decide(Run(run.name, 1, run.spec, settled.status, "apps", "u-1"), after_undo(), at(7))
    assert final.status.phase == "RolledBack" and final.status.rollback_healthy is True


def revert_opened(git: dict | None = None) -> Run:
    return rolled_back_run({"revertMode": "Merge", **(git or {})}, merge_commit_sha=MERGE, revert_status="opened",
                           revert_pull_request_number=9, revert_commit_sha="r" * 40)


def test_revert_merge_mode_waits_for_the_reverts_ci_then_merges_it():
    run = revert_opened()
    d = machine.decide(run, after_undo(), at(5))
    assert d.action == gitflow.CheckCI("r" * 40)
    assert d.status.phase == "RollingBack" and d.status.git.revert_ci_status == "pending"
    pending = machine.settle(Run(run.name, 1, run.spec, d.status, "apps", "u-1"), after_undo(), d.action,
                             CIReported("pending", "build"), at(5))
    assert (pending.status.git.revert_ci_status, pending.requeue_after) == ("pending", 10)
    passed = machine.settle(Run(run.name, 1, run.spec, pending.status, "apps", "u-1"), after_undo(),
                            gitflow.CheckCI("r" * 40), CIReported("success", "ok"), at(15))
    merge = machine.decide(Run(run.name, 1, run.spec, passed.status, "apps", "u-1"), after_undo(), at(15))
    assert merge.action == gitflow.MergePullRequest(9, "r" * 40, "merge", "Revert release v3 (#9)")
    merged = machine.settle(Run(run.name, 1, run.spec, merge.status, "apps", "u-1"), after_undo(),
                            merge.action, Merged("m2" * 20), at(16))
    assert (merged.status.git.revert_status, merged.status.git.revert_merge_commit_sha) == ("merged", "m2" * 20)
    final = machine.decide(Run(run.name, 1, run.spec, merged.status, "apps", "u-1"), after_undo(), at(17))
    assert final.status.phase == "RolledBack"


def test_revert_ci_failure_leaves_the_revert_open_and_the_rollback_finishes():
    run = revert_opened()
    d = machine.decide(run, after_undo(), at(5))
    failed = machine.settle(Run(run.name, 1, run.spec, d.status, "apps", "u-1"), after_undo(), d.action,
                            CIReported("failure", "failed: build"), at(6))
    assert failed.status.git.revert_status == "failed"
    assert ("Warning", "RevertPullRequestFailed") in [(e.type, e.reason) for e in failed.events]
    final = machine.decide(Run(run.name, 1, run.spec, failed.status, "apps", "u-1"), after_undo(), at(7))
    assert (final.status.phase, final.status.rollback_healthy) == ("RolledBack", True)


def test_a_refused_revert_merge_is_recorded():
    run = revert_opened({"ci": {"required": False}})
    d = machine.decide(run, after_undo(), at(5))
    assert isinstance(d.action, gitflow.MergePullRequest)
    refused = machine.settle(Run(run.name, 1, run.spec, d.status, "apps", "u-1"), after_undo(), d.action,
                             Failed("MergeRefused", "not mergeable"), at(6))
    assert refused.status.git.revert_status == "failed" and refused.status.phase == "RollingBack"


def test_pull_request_mode_leaves_the_revert_to_a_person():
    run = rolled_back_run(merge_commit_sha=MERGE, revert_status="opened", revert_pull_request_number=9)
    assert machine.decide(run, after_undo(), at(5)).status.phase == "RolledBack"
