"""The Validating phase: start the Job, wait for it, record how it went, delete it per the policy."""

from __future__ import annotations

import re

import pytest

from selfbootstrap.core import machine
from selfbootstrap.core.actions import (
    CheckValidationJob,
    CreateValidationJob,
    DeleteValidationJob,
    Failed,
    PushBranch,
    Pushed,
    ValidationJobDeleted,
    ValidationJobObserved,
    ValidationJobStarted,
)
from selfbootstrap.core.run import Run
from selfbootstrap.core.validation import GRACE_SECONDS, job_name
from selfbootstrap.models import GitStatus, Phase, RunStatus, Validation

from .factories import T0, at, deployed, spec, world

SHA = "c" * 40
GIT: dict = {"repositoryUrl": "https://git.example.com/acme/web.git",
       "change": {"setImage": {"path": "deploy/web.yaml"}},
       "credentials": {"secretRef": {"name": "git-token"}},
       "validation": {"image": "registry.example.com/ci:1", "command": ["make", "lint"], "timeoutSeconds": 60}}


def run_at(phase: Phase, validation: dict | None = None, **git_status) -> Run:
    git = {**GIT, "validation": {**GIT["validation"], **(validation or {})}}
    gs = GitStatus(branch="selfbootstrap/run-1", commit_sha=SHA, pushed_at=T0, **git_status)
    return Run("run-1", 1, spec(git=git), RunStatus(phase=phase, phase_started_at=T0, git=gs), "apps", "u-1")


def decide(run: Run, now=T0):
    return machine.decide(run, world(deployed()), now)


def settle(run: Run, action, result, now=T0):
    return machine.settle(run, world(deployed()), action, result, now)


def then(run: Run, decision) -> Run:
    return Run(run.name, run.generation, run.spec, decision.status, run.namespace, run.uid)


def test_the_push_leads_to_validation():
    run = run_at(Phase.PUSHING)
    d = settle(run, PushBranch(None, SHA), Pushed(already=False))  # type: ignore[arg-type]
    assert (d.status.phase, d.status.reason) == ("Validating", "Pushed")


def test_validation_starts_a_job_for_the_pushed_commit():
    d = decide(run_at(Phase.VALIDATING))
    assert d.action == CreateValidationJob(
        name=job_name(run_at(Phase.VALIDATING), SHA), sha=SHA, branch="selfbootstrap/run-1",
        repository_url="https://git.example.com/acme/web.git", image="registry.example.com/ci:1",
        command=("make", "lint"), service_account_name="default", automount_service_account_token=False,
        timeout_seconds=60, secret_name="git-token", secret_key="token", username="x-access-token",
        run_as_user=65532, resources=Validation.Resources(), ttl_seconds_after_finished=3600)


def test_the_job_carries_the_user_resources_and_ttl_the_spec_asks_for():
    asked = {"runAsUser": 1000, "ttlSecondsAfterFinished": 600, "resources": {"limits": {"memory": "2Gi"}}}
    d = decide(run_at(Phase.VALIDATING, asked))
    assert isinstance(d.action, CreateValidationJob)
    assert (d.action.run_as_user, d.action.ttl_seconds_after_finished) == (1000, 600)
    assert d.action.resources.dump() == {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "2Gi"}}


def test_the_job_names_its_service_account_and_token_mount_as_asked():
    d = decide(run_at(Phase.VALIDATING, {"serviceAccountName": "ci", "automountServiceAccountToken": True}))
    assert isinstance(d.action, CreateValidationJob)
    assert (d.action.service_account_name, d.action.automount_service_account_token) == ("ci", True)


@pytest.mark.parametrize("name", ["run-1", "a" * 253, "web.v2.release", "x"])
def test_job_names_are_dns_labels_one_per_run_and_commit(name):
    run = Run(name, 1, spec(), RunStatus(), "apps", "u-1")
    got = job_name(run, SHA)
    assert len(got) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", got)
    assert got == job_name(run, SHA)
    assert got != job_name(Run(name, 1, spec(), RunStatus(), "apps", "u-2"), SHA)
    assert got != job_name(run, "d" * 40)


def test_a_started_job_is_recorded_then_watched():
    run = run_at(Phase.VALIDATING)
    d = settle(run, decide(run).action, ValidationJobStarted("run-1-validate"))
    assert (d.status.git.validation_job, d.status.git.validation_state) == ("run-1-validate", "running")
    assert d.status.git.validation_started_at == T0
    assert ("Normal", "ValidationStarted") in [(e.type, e.reason) for e in d.events]
    assert decide(then(run, d), at(2)).action == CheckValidationJob("run-1-validate")


RUNNING = {"validation_job": "j", "validation_state": "running", "validation_started_at": T0}


def test_a_running_job_is_looked_at_again():
    run = run_at(Phase.VALIDATING, **RUNNING)
    d = settle(run, CheckValidationJob("j"), ValidationJobObserved("running", "validation Job running"))
    assert (d.status.phase, d.status.reason, d.requeue_after) == ("Validating", "ValidationRunning", 2.0)


@pytest.mark.parametrize("policy, deletes", [("OnSuccess", True), ("Always", True), ("Never", False)])
def test_a_passed_validation_deletes_the_job_per_policy_then_opens_the_pull_request(policy, deletes):
    run = run_at(Phase.VALIDATING, {"deletePolicy": policy}, **RUNNING)
    d = settle(run, CheckValidationJob("j"), ValidationJobObserved("succeeded", "validation passed"))
    assert d.status.git.validation_state == "succeeded" and d.status.git.validation_finished_at == T0
    run = then(run, d)
    d = decide(run)
    if deletes:
        assert d.action == DeleteValidationJob("j")
        d = settle(run, d.action, ValidationJobDeleted())
        assert d.status.git.validation_job_deleted is True
        d = decide(then(run, d))
    assert (d.status.phase, d.requeue_after) == ("OpeningPullRequest", 0)


@pytest.mark.parametrize("policy, deletes, kept", [("OnSuccess", False, True), ("Always", True, False),
                                                   ("Never", False, True)])
def test_a_failed_validation_ends_the_run_with_the_message(policy, deletes, kept):
    run = run_at(Phase.VALIDATING, {"deletePolicy": policy}, **RUNNING)
    d = settle(run, CheckValidationJob("j"), ValidationJobObserved("failed", "validate exited 2: lint: 3 errors"))
    run = then(run, d)
    d = decide(run)
    if deletes:
        assert d.action == DeleteValidationJob("j")
        d = decide(then(run, settle(run, d.action, ValidationJobDeleted())))
    assert (d.status.phase, d.status.reason) == ("Failed", "ValidationFailed")
    assert "validate exited 2: lint: 3 errors" in d.status.message and "nothing was deployed" in d.status.message
    assert ("kept for inspection" in d.status.message) is kept


def test_a_job_past_its_deadline_is_a_timeout():
    run = run_at(Phase.VALIDATING, **RUNNING)
    d = settle(run, CheckValidationJob("j"), ValidationJobObserved("timedOut", "DeadlineExceeded"))
    d = decide(then(run, d))
    assert (d.status.phase, d.status.reason) == ("Failed", "ValidationTimedOut")


def test_the_run_stops_waiting_when_the_job_controller_does_not_end_the_job():
    run = run_at(Phase.VALIDATING, **RUNNING)
    running = ValidationJobObserved("running", "validation Job running")
    assert settle(run, CheckValidationJob("j"), running, at(60 + GRACE_SECONDS)).status.phase == "Validating"
    late = at(61 + GRACE_SECONDS)
    assert decide(run, late).action == CheckValidationJob("j"), "the Job is looked at before giving up"
    d = settle(run, CheckValidationJob("j"), running, late)
    assert d.status.git.validation_state == "timedOut"
    d = decide(then(run, d), late)
    assert (d.status.phase, d.status.reason) == ("Failed", "ValidationTimedOut")
    assert "did not finish within 60s" in d.status.message


def test_an_outcome_read_after_the_deadline_counts():
    """The operator was away past the Job's deadline: the Job had passed, and that is what the run records."""
    run = run_at(Phase.VALIDATING, **RUNNING)
    late = at(3600)
    assert decide(run, late).action == CheckValidationJob("j")
    d = settle(run, CheckValidationJob("j"), ValidationJobObserved("succeeded", "validation passed"), late)
    assert d.status.git.validation_state == "succeeded"


def test_a_job_deleted_before_its_outcome_was_read_ends_the_run():
    """E.g. by its ttlSecondsAfterFinished while the operator was away: the outcome is unknown, so the run
    fails (it neither waits for a Job that will not come back nor takes the check for passed)."""
    run = run_at(Phase.VALIDATING, **RUNNING)
    gone = Failed("ValidationFailed", "the validation Job j was deleted before its outcome was read")
    d = settle(run, CheckValidationJob("j"), gone, at(7200))
    assert (d.status.phase, d.status.reason) == ("Failed", "ValidationFailed")
    assert "deleted before its outcome was read" in d.status.message and "nothing was deployed" in d.status.message
    assert d.status.git.validation_state == "failed"
    assert decide(then(run, d), at(7201)).action is None


def test_a_refused_job_ends_the_run():
    run = run_at(Phase.VALIDATING)
    action = decide(run).action
    d = settle(run, action, Failed("ValidationFailed", "403: jobs.batch is forbidden"))
    assert (d.status.phase, d.status.reason) == ("Failed", "ValidationFailed")
    assert "forbidden" in d.status.message


def test_a_failed_delete_is_noted_and_the_run_goes_on():
    run = run_at(Phase.VALIDATING, validation_job="j", validation_state="succeeded", validation_started_at=T0)
    d = settle(run, DeleteValidationJob("j"), Failed("ValidationFailed", "403: forbidden"))
    assert d.status.git.validation_job_deleted is False
    assert ("Warning", "ValidationJobDeleteFailed") in [(e.type, e.reason) for e in d.events]
    assert decide(then(run, d)).status.phase == "OpeningPullRequest"
