"""The Validating phase: the pushed commit is checked by a Job in the run's namespace.

The operator never runs the spec's command itself. It starts a Job (named after the run
and the commit, so a resumed run finds the one it started), waits for it, records how it
went with the container's termination message, deletes it as the spec's policy says, and
only then opens the pull request.
"""

from __future__ import annotations

import hashlib
import re

from ..models import GitStatus, GitWorkflow, JobDeletePolicy, Phase, ValidationState
from . import reasons
from .actions import CheckValidationJob, CreateValidationJob, DeleteValidationJob, Failed, JobAction
from .decision import Decision
from .draft import Draft
from .run import Run

POLL_SECONDS = 2.0
GRACE_SECONDS = 60.0  # past the Job's own deadline, the run stops waiting for the Job controller
MESSAGE_LIMIT = 1024


def job_name(run: Run, sha: str) -> str:
    """<run>-validate-<sha>: one Job per run and commit, at most 63 characters, a DNS label."""
    suffix = f"-validate-{sha[:10]}"
    stem = re.sub(r"[^a-z0-9-]", "-", run.name.lower())[: 63 - len(suffix) - 9].strip("-")
    tag = hashlib.sha256(run.uid.encode()).hexdigest()[:8]
    return f"{stem}-{tag}{suffix}"


def create_action(run: Run, git: GitWorkflow, gs: GitStatus) -> CreateValidationJob:
    check = git.validation
    assert check is not None, "the Validating phase implies spec.git.validation"
    sha = gs.commit_sha or ""
    creds = git.credentials
    return CreateValidationJob(
        name=job_name(run, sha), sha=sha, branch=gs.branch or "", repository_url=git.repository_url,
        image=check.image, command=tuple(check.command),
        service_account_name=check.service_account_name or "default",
        automount_service_account_token=check.automount_service_account_token,
        timeout_seconds=check.timeout_seconds,
        secret_name=creds.secret_ref.name if creds else None, secret_key=creds.secret_ref.key if creds else None,
        username=creds.username if creds else "", run_as_user=check.run_as_user, resources=check.resources,
        ttl_seconds_after_finished=check.ttl_seconds_after_finished,
    )


def _wants_deletion(git: GitWorkflow, state: ValidationState) -> bool:
    check = git.validation
    assert check is not None
    return check.delete_policy == JobDeletePolicy.ALWAYS or (
        check.delete_policy == JobDeletePolicy.ON_SUCCESS and state == ValidationState.SUCCEEDED)


def decide(d: Draft, git: GitWorkflow, gs: GitStatus) -> tuple[Decision | None, JobAction | None]:
    """(a decision, None) when the phase ends or waits; (None, action) when a Job action is due;
    (None, None) when validation passed and the git workflow goes on."""
    if gs.validation_job is None:
        return None, create_action(d.run, git, gs)
    state = gs.validation_state
    if state in (None, ValidationState.RUNNING):
        return None, CheckValidationJob(gs.validation_job)
    assert state is not None
    if _wants_deletion(git, state) and gs.validation_job_deleted is None:
        return None, DeleteValidationJob(gs.validation_job)
    if state == ValidationState.SUCCEEDED:
        return None, None
    reason = reasons.VALIDATION_TIMED_OUT if state == ValidationState.TIMED_OUT else reasons.VALIDATION_FAILED
    kept = "" if gs.validation_job_deleted else f"; Job {gs.validation_job} is kept for inspection"
    return d.fail(reason, f"validation of {(gs.commit_sha or '')[:12]} failed: {gs.validation_message or state}"
                          f"{kept}; nothing was deployed"), None


def _record(d: Draft, state: ValidationState, message: str) -> None:
    gs = (d.status.git or GitStatus()).model_copy()
    gs.validation_state = state
    gs.validation_message = message[:MESSAGE_LIMIT] or None
    if state != ValidationState.RUNNING:
        gs.validation_finished_at = d.now
    d.set(git=gs)


def started(d: Draft, name: str) -> Decision:
    gs = (d.status.git or GitStatus()).model_copy()
    gs.validation_job, gs.validation_state, gs.validation_started_at = name, ValidationState.RUNNING, d.now
    d.set(git=gs)
    d.enter(Phase.VALIDATING, reasons.VALIDATION_STARTED, f"validation Job {name} started")
    d.normal(reasons.VALIDATION_STARTED, f"validation Job {name} checks commit {(gs.commit_sha or '')[:12]}")
    return d.decision(POLL_SECONDS)


def observed(d: Draft, state: ValidationState, message: str) -> Decision:
    check = d.run.spec.git.validation if d.run.spec.git else None
    assert check is not None, "the Validating phase implies spec.git.validation"
    started = (d.status.git or GitStatus()).validation_started_at or d.now
    if state == ValidationState.RUNNING and \
            (d.now - started).total_seconds() > check.timeout_seconds + GRACE_SECONDS:
        # The Job controller missed the Job's deadline. Decided only after a look at the Job, so that an
        # operator back from an absence reads an outcome that is there instead of calling it a timeout.
        state, message = ValidationState.TIMED_OUT, f"the validation Job did not finish within " \
                                                    f"{check.timeout_seconds}s"
    _record(d, state, message)
    if state == ValidationState.RUNNING:
        d.enter(Phase.VALIDATING, reasons.VALIDATION_RUNNING, message or "validation Job running")
        return d.decision(POLL_SECONDS)
    if state == ValidationState.SUCCEEDED:
        d.normal(reasons.VALIDATION_PASSED, f"validation Job {(d.status.git or GitStatus()).validation_job} "
                                            f"passed")
    else:
        d.warning(reasons.VALIDATION_FAILED, message)
    return d.decision(0)


def deleted(d: Draft, ok: bool = True) -> Decision:
    """The delete step is over: done, or failed (never tried again; the Job is owned by the run anyway)."""
    gs = (d.status.git or GitStatus()).model_copy()
    gs.validation_job_deleted = ok
    d.set(git=gs)
    return d.decision(0)


def failed(d: Draft, action: JobAction, failure: Failed) -> Decision:
    """A Job action that cannot succeed: a refused create or read ends the run; a failed delete is noted."""
    if isinstance(action, DeleteValidationJob):
        d.warning(reasons.VALIDATION_JOB_DELETE_FAILED, f"could not delete Job {action.name}: {failure.message}")
        return deleted(d, ok=False)
    if isinstance(action, CheckValidationJob):  # e.g. the Job is gone: its outcome is unknown, never a pass
        _record(d, ValidationState.FAILED, failure.message)
    return d.fail(failure.reason, f"{failure.message}; nothing was deployed")
