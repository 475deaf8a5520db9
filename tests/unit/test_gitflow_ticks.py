"""The git phases tick by tick (the reconciler over a stand-in git executor): a step that only reads is answered
within the tick of the step it leads to, whose intent is written first, so no step waits for a tick of its own."""

from __future__ import annotations

from unittest.mock import create_autospec

import pytest

from selfbootstrap.adapters.gitexec import GitExecutor
from selfbootstrap.core.actions import (
    BranchResolved,
    CheckCI,
    CIReported,
    CommitChange,
    Committed,
    Failed,
    Merged,
    MergePullRequest,
    ResolveBranch,
)
from selfbootstrap.models import CIStatus
from selfbootstrap.reconciler import Reconciler

from .factories import T0, deployment, world
from .test_reconciler import reconciler, writes

SHA, BASE, MERGE = "c" * 40, "b" * 40, "d" * 40
SPEC = {"target": {"deployment": "web"}, "release": {"image": "registry.local:5000/team/web:v3"},
        "git": {"repositoryUrl": "https://git.example.com/acme/web.git",
                "change": {"setImage": {"path": "deploy/web.yaml"}}}}
STAMP = T0.isoformat().replace("+00:00", "Z")


def run_obj(status: dict) -> dict:
    return {"apiVersion": "selfbootstrap.dev/v1alpha1", "kind": "SelfBootstrapRun",
            "metadata": {"name": "run-1", "namespace": "apps", "uid": "u-1", "generation": 1,
                         "resourceVersion": "7", "creationTimestamp": "2030-01-01T00:00:00Z"},
            "spec": SPEC, "status": {"phaseStartedAt": STAMP, **status}}


def ticking(kube, answers: dict[type, object]) -> tuple[Reconciler, list]:
    """A reconciler whose git executor answers each action by its type; the actions it was asked, in order."""
    git = create_autospec(GitExecutor, instance=True)
    asked: list = []

    def perform(run, action):
        asked.append(action)
        return answers[type(action)]
    git.perform.side_effect = perform
    return reconciler(kube, git=git), asked


def test_the_branch_is_resolved_and_committed_in_one_tick_its_base_written_before_the_commit(kube):
    r, asked = ticking(kube, {ResolveBranch: BranchResolved(BASE, exists=False, run_commit=None),
                              CommitChange: Committed(SHA)})
    tick = r.tick(run_obj({"phase": "Branching"}), world(deployment()))
    assert [type(a) for a in asked] == [ResolveBranch, CommitChange]
    before, after = writes(kube)
    assert (before["phase"], before["git"]["baseSha"]) == ("Committing", BASE)
    assert "commitSha" not in before["git"], "the intent is written before the commit is made"
    assert (after["phase"], after["git"]["commitSha"]) == ("Pushing", SHA), "and its SHA before the push"
    assert tick.requeue == 0


def test_ci_that_passed_is_merged_in_the_same_tick_said_before_the_merge(kube):
    r, asked = ticking(kube, {CheckCI: CIReported(CIStatus.SUCCESS, "1 checks passed"),
                              MergePullRequest: Merged(MERGE)})
    tick = r.tick(run_obj({"phase": "AwaitingCI", "ciStatus": "pending",
                           "git": {"branch": "b", "baseSha": BASE, "commitSha": SHA, "pullRequestNumber": 7,
                                   "ciStartedAt": STAMP}}), world(deployment()))
    assert [type(a) for a in asked] == [CheckCI, MergePullRequest]
    before, after = writes(kube)
    assert (before["phase"], before["ciStatus"], before["git"]["ciChecks"]) == ("Merging", "success", 1)
    assert "mergedAt" not in before["git"]
    assert after["git"]["mergeCommitSha"] == MERGE and tick.requeue == 0


@pytest.mark.parametrize("answer, requeue", [
    (CIReported(CIStatus.PENDING, "pending: ci/tests"), 10),
    (Failed("CICheckFailed", "GET /commits/x/status returned 503", retryable=True), 2),  # retryPolicy: 2 s first
], ids=["pending", "passing-fault"])
def test_ci_not_passed_yet_is_written_alone_and_waits(kube, answer, requeue):
    r, asked = ticking(kube, {CheckCI: answer})
    tick = r.tick(run_obj({"phase": "AwaitingCI", "ciStatus": "pending",
                           "git": {"branch": "b", "baseSha": BASE, "commitSha": SHA, "pullRequestNumber": 7,
                                   "ciStartedAt": STAMP}}), world(deployment()))
    assert [type(a) for a in asked] == [CheckCI]
    (written,) = writes(kube)
    assert written["phase"] == "AwaitingCI" and tick.requeue == requeue
