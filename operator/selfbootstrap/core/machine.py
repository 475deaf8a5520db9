"""The run's state machine: given the run and what was observed, what happens next.

`decide` looks at the run and the world and returns the new status, at most one
side effect to perform, events to post, and when to look again. The shell
persists the status *before* it performs the side effect, then reports the
side effect's outcome to `settle`, whose status it persists too. Every side
effect is recognisable in the world afterwards (the Deployment's template), so
a tick interrupted anywhere is resumed by deciding again without repeating it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import assert_never

from ..models import (
    PHASES,
    RELEASE_ANNOTATION,
    RUNS_ANNOTATION,
    TERMINAL_PHASES,
    ApprovalStage,
    DeploymentContext,
    FailureClass,
    GatePhase,
    GateStatus,
    HealthStatus,
    Phase,
    RetryStatus,
    RunSpec,
    RunStatus,
    WatchdogStatus,
)
from . import gate, gates, gitflow, guardrails, images, policy, reasons, record, releases, rollout, validation, watchdog
from .actions import (
    Action,
    BranchResolved,
    CheckValidationJob,
    CIReported,
    Committed,
    CreateValidationJob,
    DeleteStuckPods,
    DeleteValidationJob,
    Deployed,
    Failed,
    ImageResolved,
    ImageUnresolved,
    Measured,
    MeasureMetric,
    Merged,
    NothingToCommit,
    PatchDeployment,
    PodsDeleted,
    Probed,
    ProbeHttp,
    PullRequestObserved,
    PullRequestOpened,
    Pushed,
    Released,
    ReleaseWorkload,
    ResolveImage,
    Result,
    RevertOpened,
    RollbackDeployment,
    Undone,
    ValidationJobDeleted,
    ValidationJobObserved,
    ValidationJobStarted,
)
from .decision import Decision, Event, EventType
from .draft import Draft
from .gates import approval as approval_gate
from .gates.analysis import problem as analysis_problem
from .gates.analysis import resolved_analysis
from .jsontypes import obj, objects, text
from .patches import deploy_patch, release_patch, rollback_patch, take_patch
from .run import Run
from .targets import controllerrevisions
from .world import DeploymentState, Revision, World

POLL_SECONDS = 2.0  # how soon to look again after a patch, before the watches show it
WATCH_SECONDS = 30.0  # a run following a rollout looks again on its own at most this long after: every change
# of its Deployment, ReplicaSets and pods wakes it before (a poll every few seconds cost a tick per run each time)
MIN_WAIT_SECONDS = 0.1
QUEUE_SECONDS = 300.0  # a waiting run looks on its own only this rarely: the end of the run it waits for wakes it
ROLLOUT_REPORT_SECONDS = 10.0  # a rollout's progress message is written at most this often (a write per change
# would cost a status write per pod step; phase and reason are always written at once)
REGISTRY_SOURCE = "registry"  # status.releaseMetadataSource when the release id came from the image's registry
CHAIN_LIMIT = 8  # decisions chained in memory before an action or a write, at most


# --- decide -------------------------------------------------------------------


def decide(run: Run, world: World, now: datetime) -> Decision:
    decision = _decide(run, world, now)
    return _releasing(run, world, decision, now)


def _releasing(run: Run, world: World, decision: Decision, now: datetime) -> Decision:
    """A run that ends while it holds its workload lets go of it, the record saying how it ended: after its
    final status is written, so a run that dies in between is seen finished and the hold taken over."""
    dep = world.deployment
    ended = run.status.phase not in TERMINAL_PHASES and decision.status.phase in TERMINAL_PHASES
    if not ended or decision.action is not None or dep is None or not _record(dep).held_by(run.uid):
        return decision
    return replace(decision, action=ReleaseWorkload(release_patch(dep, run.uid, _outcome(decision.status), now)))


def _outcome(s: RunStatus) -> str:
    """How the run ended, as the workload's record says it."""
    if s.rollback_patched_at is not None:
        return record.ROLLED_BACK
    if s.phase == Phase.SUCCEEDED:
        return record.SUCCEEDED
    return record.FAILED if s.deploy_patched_at is not None else record.NOT_DEPLOYED


def _record(dep: DeploymentState) -> record.Record:
    return record.parse(dep.annotations.get(RUNS_ANNOTATION))


def _decide(run: Run, world: World, now: datetime) -> Decision:
    draft = Draft(run, now)
    phase = run.status.phase or Phase.PENDING
    if phase in TERMINAL_PHASES:
        return draft.decision(None)
    if run.status.phase is None:
        return _accept(draft)
    if world.deployment is None:
        if phase == Phase.ROLLING_BACK:
            draft.set(rollback_healthy=False)
        return draft.fail(reasons.TARGET_NOT_FOUND, f"{run.spec.target.kind.lower()} {run.spec.target.workload!r} "
                                                    f"not found in the run's namespace")
    if run.abort is not None and phase != Phase.ROLLING_BACK and not _deployed_unsaid(run, world.deployment):
        return _abort(draft, world)
    wait = _retry_wait(run.status, now)
    if wait > 0:  # a step met a passing fault: not again before its backoff has passed
        return draft.decision(wait)
    if PHASES[phase].git:
        return gitflow.decide(draft)
    dep = world.deployment
    match phase:
        case Phase.PENDING:
            return _pending(draft, world, dep)
        case Phase.DEPLOYING:
            return _deploying(draft, world, dep)
        case Phase.VERIFYING_HEALTH:
            return _verifying_health(draft, world, dep)
        case Phase.SELF_TESTING:
            return _gating(draft, world, dep)
        case Phase.ANALYZING:
            return _gating(draft, world, dep)
        case Phase.AWAITING_APPROVAL:
            return _awaiting_approval(draft, world, dep)
        case Phase.WATCHING_RESTARTS:
            return _gating(draft, world, dep)
        case Phase.ROLLING_BACK:
            return _rolling_back(draft, world, dep)
    raise AssertionError(f"no handler for phase {phase}")


def accepted(run: Run, now: datetime) -> Decision:
    """The first status of a run the operator serves (it needs nothing of the world: the shell writes it as
    soon as the run is seen, before its worker starts)."""
    return _accept(Draft(run, now))


def _accept(d: Draft) -> Decision:
    d.set(retry_of=d.run.retry_of)
    d.enter(Phase.PENDING, reasons.ACCEPTED, "run accepted" + (f" (a retry of {d.run.retry_of})"
                                                                if d.run.retry_of else ""))
    return d.decision(0)


def decide_chained(run: Run, world: World, now: datetime) -> tuple[Decision, tuple[Event, ...]]:
    """Decide; while a decision asks for nothing but to go on at once, go on (the run as it would be written)."""
    events: tuple[Event, ...] = ()
    for _ in range(CHAIN_LIMIT):
        decision = decide(run, world, now)
        events += decision.events
        if decision.action is not None or decision.requeue_after != 0:
            break
        run = replace(run, status=decision.status)
    return decision, events


def held_back(run: Run, now: datetime, why: gate.Wait) -> Decision:
    """A run kept in line (by the namespace's bound, or safe mode): accepted and Queued, and nothing else
    decided (it has no worker until it is let go; a git run, too, starts nothing before)."""
    d = Draft(run, now)
    if run.status.phase not in (None, Phase.PENDING):
        return d.decision(None)
    if run.status.phase is None:
        d.set(retry_of=run.retry_of)
    return _wait(d, Phase.PENDING, why)


def internal_error(run: Run, now: datetime, message: str) -> Decision:
    """Something the operator did not expect: the run ends, saying so, rather than retrying forever."""
    d = Draft(run, now)
    if d.status.phase == Phase.ROLLING_BACK:
        d.set(rollback_healthy=False)
    return d.fail(reasons.INTERNAL_ERROR, message)


def _wait(d: Draft, phase: Phase, wait: gate.Wait) -> Decision:
    if d.status.reason != wait.reason or d.status.message != wait.message:
        d.normal(wait.reason, wait.message)
    d.enter(phase, wait.reason, wait.message)
    return d.decision(QUEUE_SECONDS if wait.seconds is None else max(MIN_WAIT_SECONDS, wait.seconds))


def _deployed_unsaid(run: Run, dep: DeploymentState) -> bool:
    """The run's patch took the workload and deployed, and the run stopped before its status said so: it says so
    first (the chained decision then acts on an abort as after any deploy)."""
    kept = _record(dep)
    entry = kept.entry(run.uid)
    return run.status.deploy_patched_at is None and kept.held_by(run.uid) and entry is not None \
        and entry.outcome == record.DEPLOYED


def _abort(d: Draft, world: World) -> Decision:
    """A person asked the run to stop: before the deploy it just ends; after, it rolls back if the policy
    allows (failure class `aborted`)."""
    said = d.run.abort or ""
    message = "aborted by the selfbootstrap.dev/abort annotation" + (f": {said}" if said.strip() not in (
        "", "true") else "")
    if d.status.deploy_patched_at is None:
        return d.fail(reasons.ABORTED, f"{message}; nothing was deployed{_merge_kept(d)}")
    return _gate_failed(d, world, FailureClass.ABORTED, reasons.ABORTED, message)


def _expected_release(d: Draft, dep: DeploymentState) -> Decision | None:
    """spec.release.expectedCurrentReleaseId: deploy only over that release."""
    expected = d.run.spec.release.expected_current_release_id
    if expected is None:
        return None
    current = releases.release_id_of(dep.template, _container_or_none(d.run.spec, dep))
    if current == expected:
        return None
    return d.fail(reasons.CURRENT_RELEASE_MISMATCH,
                  f"{dep.kind.lower()} {dep.name!r} runs release {current}, not {expected} as "
                  f"spec.release.expectedCurrentReleaseId asks; the Deployment was not touched{_merge_kept(d)}")


def _merge_kept(d: Draft) -> str:
    """What a git run that ends before its deploy says of its merge: it stays in git, which then runs ahead of
    the workload (a revert is opened only to undo a deploy)."""
    git = d.status.git
    if git is None or not git.merge_commit_sha:
        return ""
    return (f"; its change stays merged in git ({git.merge_commit_sha[:12]}; nothing was deployed, so no revert "
            f"is opened)")


def _at_the_gate(d: Draft, world: World, dep: DeploymentState, phase: Phase) -> Decision:
    """Before the run takes the workload: go (take it with the deploy), wait, or end superseded."""
    stopped = _expected_release(d, dep)
    if stopped:
        return stopped
    verdict = gate.verdict(d.run, releases.requested_release_id(d.run.spec.release), _record(dep), world)
    match verdict:
        case gate.Supersede():
            d.enter(Phase.SUPERSEDED, reasons.SUPERSEDED,
                    f"{verdict.message}; the Deployment was not touched{_merge_kept(d)}")
            d.normal(reasons.SUPERSEDED, d.status.message or "")
            return d.decision(None)
        case gate.Wait() | gate.Go() if (awaited := _approval(d, world, ApprovalStage.DEPLOY)) is not None:
            return awaited
        case gate.Go() if (held := _self_update_hold(d, world, dep)) is not None:
            return _wait(d, phase, held)
        case gate.Wait():
            _forget_image(d)
            return _wait(d, phase, verdict)
        case gate.Go():
            return _take_and_deploy(d, world, dep, phase)
        case _:
            assert_never(verdict)


def _forget_image(d: Draft) -> None:
    """A run sent to wait (it lost a race for the workload, say) asks the registry again when it goes: a tag may
    name another digest by then."""
    if d.status.image_lookup is not None and d.status.deploy_patched_at is None:
        d.set(image_lookup=None, image_digest=None, image_version=None, image_revision=None, image_source=None,
              image_created=None, deployed_image=None)


def _take_and_deploy(d: Draft, world: World, dep: DeploymentState, phase: Phase) -> Decision:
    """Take the workload and deploy in one patch guarded by the resourceVersion the decision read: of two runs
    that saw it free, the API server lets one win. Status says what the patch will do before it is sent, the
    phase unchanged (a run is in flight only once it holds the workload); a patch that lost is decided again,
    from the gate, once the newer workload is seen."""
    spec = d.run.spec
    try:
        container = _container(spec, dep)
    except ValueError as err:
        return d.fail(reasons.INVALID_TARGET, str(err))
    if spec.release.image and d.status.image_lookup is None:  # first ask the image's registry what it names
        return d.decision(POLL_SECONDS, _resolve_image(spec, dep))
    if dep.paused:
        return d.fail(reasons.DEPLOYMENT_PAUSED,
                      f"{dep.kind.lower()} {dep.name!r} is paused; resume it and create a new run")
    resolved = _resolve_releases(d, world, dep, container, phase)
    if isinstance(resolved, Decision):
        return resolved
    s = d.status
    if s.started_at is None:
        d.set(started_at=d.now)
        d.normal(reasons.STARTED, f"run started for {dep.kind.lower()} {dep.name!r}")
    requested = releases.requested_release_id(spec.release)  # as the gate compares it (record._older_release)
    before = resolved.previous_revision  # one answer for status and for the record an undo reads
    me = gate.claimant(d.run, requested, before.replica_set if before else None)
    run = replace(d.run, spec=_as_deployed(spec, s))
    taking = (me, world.passed_over)
    if _carries_release(dep, run.spec, s.deployed_release_id, container):  # taken, nothing rolls out
        return d.decision(POLL_SECONDS, PatchDeployment(take_patch(run, dep, taking, d.now), takes=True))
    patch = deploy_patch(run, s.deployed_release_id, dep, container, d.now, taking)
    return d.decision(POLL_SECONDS, PatchDeployment(patch, takes=True))


def _self_update_hold(d: Draft, world: World, dep: DeploymentState) -> gate.Wait | None:
    """A self-update outside the installer's windows, or too soon after the last one, waits at the gate."""
    if d.run.spec.target.deployment_context != DeploymentContext.SELF_HOSTED:
        return None
    limits = world.limits
    ended = [datetime.fromisoformat(e.at) for e in _record(dep).runs
             if e.outcome in (record.SUCCEEDED, record.ROLLED_BACK, record.FAILED) and e.at]
    hold = guardrails.self_update_hold(limits.self_update_windows, limits.self_update_min_interval,
                                       max(ended, default=None), d.now)
    if hold is None:
        return None
    return gate.Wait(reasons.QUEUED, hold.message, max(MIN_WAIT_SECONDS, (hold.until - d.now).total_seconds()))


def _claimed(d: Draft, dep: DeploymentState) -> Decision:
    """The run holds the workload: a deploy-only run starts, a git run goes on to resolve its releases."""
    if d.status.started_at is None:
        d.set(started_at=d.status.started_at or d.now)
        d.normal(reasons.STARTED, f"run started for {dep.kind.lower()} {dep.name!r}")
    d.enter(Phase.DEPLOYING, reasons.CLAIMED, f"holds {dep.kind.lower()} {dep.name!r}")
    return d.decision(0)


def _pending(d: Draft, world: World, dep: DeploymentState) -> Decision:
    if _record(dep).held_by(d.run.uid):  # took it, and stopped before it could say so
        return _claimed(d, dep)
    if d.run.spec.analysis is not None:
        analysis_ = resolved_analysis(d.run.spec.analysis, world.analysis_templates)
        wrong = analysis_ if isinstance(analysis_, str) else analysis_problem(analysis_)
        if wrong is not None:
            return d.fail(reasons.INVALID_SPEC, f"{wrong}; nothing was contacted and the Deployment was not touched")
    if world.refused is not None:  # a URL it names can never be reached: fail before anything is done
        return d.fail(reasons.EGRESS_REFUSED, f"{world.refused}; nothing was contacted and the Deployment was "
                                              f"not touched")
    if not d.run.spec.git:
        return _at_the_gate(d, world, dep, Phase.PENDING)
    stopped = _expected_release(d, dep)
    if stopped:
        return stopped
    replay = gate.replay_of(d.run, releases.requested_release_id(d.run.spec.release), _record(dep))
    if replay is not None:  # an old run made again: not even proposed to git
        d.enter(Phase.SUPERSEDED, reasons.SUPERSEDED, f"{replay.message}; nothing was pushed and the Deployment "
                                                      f"was not touched")
        d.normal(reasons.SUPERSEDED, d.status.message or "")
        return d.decision(None)
    d.set(started_at=d.status.started_at or d.now)  # a git run takes the workload only when it deploys
    d.enter(gitflow.first_phase(d), reasons.STARTED, f"proposing the change in git for {dep.kind.lower()} {dep.name!r}")
    d.normal(reasons.STARTED, f"run started for {dep.kind.lower()} {dep.name!r}")
    return d.decision(0)


def _lost(d: Draft, dep: DeploymentState) -> Decision:
    """Status says the run holds the workload; the workload's record, which only its holder's patches write, says it
    does not (someone else took it, or the status was not written by the run): act on nothing."""
    if d.status.phase == Phase.ROLLING_BACK:
        d.set(rollback_healthy=False)
    return d.fail(reasons.CLAIM_LOST, f"the record on {dep.kind.lower()} {dep.name!r} does not show this run holding "
                                      f"it; its status is not acted on and the {dep.kind} is left alone")


def _deploying(d: Draft, world: World, dep: DeploymentState) -> Decision:
    spec, s = d.run.spec, d.status
    if not _record(dep).held_by(d.run.uid):
        if s.deploy_patched_at is not None:
            return _lost(d, dep)
        return _at_the_gate(d, world, dep, Phase.DEPLOYING)  # a git run, ready to deploy
    try:
        container = _container(spec, dep)
    except ValueError as err:
        return d.fail(reasons.INVALID_TARGET, str(err))
    if s.release_metadata_source is None:  # taken by a version of the operator that claimed before it deployed
        if spec.release.image and s.image_lookup is None:
            return d.decision(POLL_SECONDS, _resolve_image(spec, dep))
        resolved = _resolve_releases(d, world, dep, container, Phase.DEPLOYING)
        return resolved if isinstance(resolved, Decision) else d.decision(0)
    spec = _as_deployed(spec, s)
    if _carries_release(dep, spec, s.deployed_release_id, container):
        return _deployed(d, releases.template_digest(dep.template))
    if s.deploy_patched_at is not None:
        return d.fail(reasons.DEPLOYMENT_CHANGED,
                      "the Deployment's template changed after the release was deployed; leaving it alone")
    if dep.paused:
        return d.fail(reasons.DEPLOYMENT_PAUSED,
                      f"{dep.kind.lower()} {dep.name!r} is paused; resume it and create a new run")
    run = replace(d.run, spec=spec)
    return d.decision(POLL_SECONDS, PatchDeployment(deploy_patch(run, s.deployed_release_id, dep, container,
                                                                 d.now)))


def _resolve_image(spec: RunSpec, dep: DeploymentState) -> ResolveImage:
    pod = obj(dep.template.get("spec"))
    secrets = tuple(name for ref in objects(pod.get("imagePullSecrets")) if (name := text(ref.get("name"))))
    account = text(pod.get("serviceAccountName")) or "default"
    assert spec.release.image is not None
    return ResolveImage(spec.release.image, secrets, account,
                        check_crd=spec.target.deployment_context == DeploymentContext.SELF_HOSTED)


def _as_deployed(spec: RunSpec, s: RunStatus) -> RunSpec:
    """The spec with the image reference the run deploys: pinned to the digest the registry named, never
    another image (status says which digest; the spec, which image)."""
    image = spec.release.image
    if image is None or s.deployed_image is None or s.image_digest is None \
            or s.deployed_image != images.pinned(image, s.image_digest):
        return spec
    return spec.model_copy(update={"release": spec.release.model_copy(update={"image": s.deployed_image})})


CRD_PROBLEMS_SHOWN = 3


def _image_resolved(d: Draft, found: ImageResolved) -> Decision:
    image = d.run.spec.release.image
    assert image is not None
    if found.crd_problems:
        shown = "; ".join(found.crd_problems[:CRD_PROBLEMS_SHOWN])
        more = f" (and {len(found.crd_problems) - CRD_PROBLEMS_SHOWN} more)" \
            if len(found.crd_problems) > CRD_PROBLEMS_SHOWN else ""
        return d.fail(reasons.CRD_INCOMPATIBLE, f"the CRD that {image} ships does not fit the runs in flight: "
                                                f"{shown}{more}; the Deployment was not touched")
    lookup = f"resolved by {found.registry}" + (f"; {found.crd_note}" if found.crd_note else "")
    d.set(image_lookup=lookup, image_digest=found.digest, image_version=found.version,
          image_revision=found.revision, image_source=found.source, image_created=found.created,
          deployed_image=images.pinned(image, found.digest) if d.run.spec.release.pin_digest else image)
    git = d.status.git
    merged = git.merge_commit_sha or git.commit_sha if git else None
    if merged and found.revision and not (merged.startswith(found.revision) or found.revision.startswith(merged)):
        d.warning(reasons.IMAGE_REVISION_MISMATCH, f"image {image} was built from revision {found.revision}, not "
                                                   f"from {merged}, the commit this run merged")
    return d.decision(0)


def _image_unresolved(d: Draft, why: str) -> Decision:
    d.set(image_lookup=f"not resolved: {why}", deployed_image=d.run.spec.release.image)
    return d.decision(0)


def _resolve_releases(d: Draft, world: World, dep: DeploymentState, container: str | None,
                      phase: Phase) -> Decision | releases.ReleaseResolution:
    """Read the releases around the deploy before patching, to record them first (in status, and in the
    workload's record with the take): what they are, or the decision that stops the run."""
    spec = d.run.spec
    requested = releases.requested_release_id(spec.release)
    from_registry = (requested is None or requested.startswith("sha256:")) and d.status.image_version is not None
    if from_registry:  # no id, no tag (a digest names no release): the image's own version, as its registry tells
        requested = d.status.image_version
    if requested is None:  # the Deployment's current release is the one being replaced, never the new one
        return d.fail(reasons.RELEASE_ID_UNKNOWN, "the new image has no tag or digest; set spec.release.id")
    answer = releases.answer_from_deployment(dep, requested, container)
    res = releases.resolve(spec.release.model_copy(update={"id": requested}) if from_registry else spec.release,
                           [answer])
    source = REGISTRY_SOURCE if from_registry else res.source
    prev = res.previous_revision
    d.set(
        deployed_release_id=res.deployed_release_id,
        previous_release_id=res.previous_release_id,
        previous_revision=prev.revision if prev else None,
        previous_replica_set=prev.replica_set if prev else None,
        rollback_target_release_id=res.rollback_target_release_id,
        release_metadata_source=source,
        crd_generation_at_deploy=world.crd_generation,
    )
    d.enter(phase, reasons.RELEASES_RESOLVED,
            f"deploying release {res.deployed_release_id} (previous: {res.previous_release_id or 'none'}, "
            f"from {source})")
    return res


def _deployed(d: Draft, digest: str) -> Decision:
    s = d.status
    d.set(deploy_patched_at=s.deploy_patched_at or d.now, deployed_template_digest=digest)
    d.enter(Phase.VERIFYING_HEALTH, reasons.DEPLOYED,
            f"release {s.deployed_release_id} deployed; waiting for the rollout")
    d.event(EventType.NORMAL, reasons.DEPLOYED, f"release {s.deployed_release_id} deployed to "
                                                f"{d.run.spec.target.kind.lower()} {d.run.spec.target.workload!r} "
                                                f"by run {d.run.name}",
            on_deployment=True)
    return d.decision(0)


def _runs_this_release(d: Draft, dep: DeploymentState) -> bool:
    """The Deployment's template is exactly the one this run deployed (nobody changed it since)."""
    if d.status.deployed_template_digest is None:
        if d.status.deploy_patched_at is None:
            return False  # never deployed: a template other than the old one is someone else's
        # recorded by a version of the operator that kept no digest
        container = _container_or_none(d.run.spec, dep)
        return _carries_release(dep, d.run.spec, d.status.deployed_release_id, container)
    return releases.template_digest(dep.template) == d.status.deployed_template_digest


def _superseded(d: Draft, dep: DeploymentState) -> Decision | None:
    """Someone else took the workload, or changed the Deployment's template during the run: stop, touch
    nothing."""
    if not _record(dep).held_by(d.run.uid):
        return _lost(d, dep)
    if _runs_this_release(d, dep):
        return None
    if d.status.restart_watchdog_status == WatchdogStatus.NOT_RUN:
        d.set(restart_watchdog_reason=None)  # the watchdog did not finish: no verdict to show
    return d.fail(reasons.DEPLOYMENT_CHANGED,
                  "the Deployment's template is no longer the one this run deployed; another change "
                  "superseded it, so the run leaves the Deployment alone")


def _verifying_health(d: Draft, world: World, dep: DeploymentState) -> Decision:
    spec = d.run.spec
    stopped = _superseded(d, dep)
    if stopped:
        return stopped
    crashed = _crash_signal(d, world)
    if crashed is not None:  # fail fast rather than wait for the deadline
        return _gate_failed(d, world, FailureClass.RESTART_WATCHDOG, reasons.RESTART_WATCHDOG_FAILED, crashed)
    progress = rollout.rollout_progress(dep)
    if progress.failed:
        return _gate_failed(d, world, FailureClass.DEPLOY, reasons.PROGRESS_DEADLINE_EXCEEDED, progress.message)
    if not progress.done:
        deadline = spec.health.progress_deadline_seconds
        if _elapsed(d.status.deploy_patched_at, d.now) > deadline:
            return _gate_failed(d, world, FailureClass.DEPLOY, reasons.ROLLOUT_TIMED_OUT,
                                f"rollout not complete within {deadline}s: {progress.message}")
        early = _during_rollout(d, world)
        if isinstance(early, Decision):
            return early
        decision = _rollout_in_progress(d, dep, progress, _at(d.status.deploy_patched_at, deadline))
        if early is not None and decision.requeue_after is not None and decision.requeue_after > early:
            return replace(decision, requeue_after=max(MIN_WAIT_SECONDS, early))
        return decision
    _record_deployed_revision(d, dep)
    return _rollout_complete(d, world, progress.message)


def _during_rollout(d: Draft, world: World) -> Decision | float | None:
    """The gates that judge alongside the rollout, once a pod of the new release is ready: a decision when
    one acts or fails, else how soon one wants to look again (None: none does)."""
    if not any(p.ready for p in world.pods):
        return None
    soonest: float | None = None
    for gate_ in gates.enabled(d.run.spec):
        known = gates.entry(d.status.gates, gate_.kind)
        if not gate_.during_rollout(d.run.spec) or (known is not None and known.phase != GatePhase.RUNNING):
            continue
        if known is None:
            _begin_gate(d, gate_, "begun with the first ready pod of the new release")
        step = gate_.step(d, world)
        match step:
            case gates.Act() | gates.Fail():
                return _judge(d, world, gate_, step)
            case gates.Pass():
                _close_gate(d, gate_, GatePhase.PASSED, step.message)
            case gates.Hold():
                soonest = step.seconds if soonest is None else min(soonest, step.seconds)
            case _:
                assert_never(step)
    return soonest


def _rollout_in_progress(d: Draft, dep: DeploymentState, progress: rollout.RolloutProgress,
                         deadline: datetime | None) -> Decision:
    """The rollout goes on: a report names the new ReplicaSet too (never written on its own: it is read from the
    workload whenever a decision needs it)."""
    s = d.status
    return _report_progress(d, Phase.VERIFYING_HEALTH, reasons.ROLLOUT_IN_PROGRESS, progress,
                            quiet=(reasons.DEPLOYED,), since=s.rollout_reported_at or s.deploy_patched_at,
                            deadline=deadline, with_report=lambda: _record_deployed_revision(d, dep))


def _report_progress(d: Draft, phase: Phase, reason: str, progress: rollout.RolloutProgress,
                     quiet: tuple[str, ...], since: datetime | None, deadline: datetime | None,
                     with_report: Callable[[], None] | None = None) -> Decision:
    """Say how a rollout goes, unless it says the same, or the last word (this reason or a `quiet` one,
    written at `since`) is younger than ROLLOUT_REPORT_SECONDS, or the controller has not begun it
    (its queue's lag is no progress to report; a rollout that times out says so in its failure).
    Then wait for the watches, the deadline, or the time a held-back report is due."""
    s, message = d.status, progress.message
    if not progress.observed or (s.reason == reason and s.message == message):
        return d.decision(_watch_wait(d.now, deadline))  # nothing new to say
    if s.reason in (reason, *quiet) and since is not None and _elapsed(since, d.now) < ROLLOUT_REPORT_SECONDS:
        return d.decision(_watch_wait(d.now, deadline, _at(since, ROLLOUT_REPORT_SECONDS)))
    d.set(rollout_reported_at=d.now)
    if with_report is not None:
        with_report()
    d.enter(phase, reason, message)
    return d.decision(_watch_wait(d.now, deadline))


def _watch_wait(now: datetime, *due: datetime | None) -> float:
    """Until the earliest time something is due, at most WATCH_SECONDS (a change wakes the run before)."""
    return max(MIN_WAIT_SECONDS, min([WATCH_SECONDS, *((t - now).total_seconds() for t in due if t is not None)]))


def _at(since: datetime | None, seconds: float) -> datetime | None:
    return since + timedelta(seconds=seconds) if since is not None else None


def _rollout_complete(d: Draft, world: World, message: str) -> Decision:
    """The rollout is complete: the gates of VerifyingHealth (the HTTP check) judge in this phase; once
    they passed, the release is healthy and the later gates follow."""
    first = gates.first(d.run.spec)
    if first is not None and first.phase == Phase.VERIFYING_HEALTH:
        step = first.step(d, world)
        if gates.entry(d.status.gates, first.kind) is None and not isinstance(step, gates.Hold):
            # begun with its first act (a run waiting writes nothing)
            _begin_gate(d, first, message)
        return _judge(d, world, first, step)
    return _healthy(d, world, first, message)


def _healthy(d: Draft, world: World, next_gate: gates.Gate | None, message: str) -> Decision:
    d.set(health_status=HealthStatus.HEALTHY)
    d.normal(reasons.HEALTHY, message)
    return _enter_gate(d, next_gate, message)


def _enter_gate(d: Draft, gate_: gates.Gate | None, message: str) -> Decision:
    """The next gate begins (its entry in status.gates[], its phase), or, after the last, the run succeeds."""
    if gate_ is None:
        return _succeed(d, message)
    known = gates.entry(d.status.gates, gate_.kind)
    if known is not None and known.phase == GatePhase.PASSED:  # it judged during the rollout, and passed
        return _enter_gate(d, gates.after(gate_, d.run.spec), known.message or message)
    if known is None:
        _begin_gate(d, gate_, message)
    gate_.enter(d, message)
    return d.decision(0)


def _begin_gate(d: Draft, gate_: gates.Gate, message: str) -> None:
    gates.set_gate(d, GateStatus(name=gate_.kind, kind=gate_.kind, started_at=d.now, message=message))


def _close_gate(d: Draft, gate_: gates.Gate, phase: GatePhase, message: str) -> None:
    known = gates.entry(d.status.gates, gate_.kind)
    if known is not None and known.phase == GatePhase.RUNNING:
        gates.set_gate(d, gates.closed(known, phase, message, d.now))


def _gating(d: Draft, world: World, dep: DeploymentState) -> Decision:
    """A run in the phase of a gate after VerifyingHealth: what every gate shares, then the gate's own step.
    What ends the run here ends the gate too, so its entry never stays Running."""
    spec = d.run.spec
    phase = d.status.phase
    assert phase is not None
    gate_ = gates.of_phase(phase, spec, d.status.gates)
    if gate_ is None:  # the spec cannot change during a run; a status from elsewhere names a gate it lacks
        return d.fail(reasons.INVALID_SPEC, f"the run is in phase {phase}, which its spec has no gate for")
    if not _record(dep).held_by(d.run.uid) or not _runs_this_release(d, dep):
        _close_gate(d, gate_, GatePhase.FAILED, "ended unjudged: the Deployment no longer runs this run's release")
        stopped = _superseded(d, dep)
        assert stopped is not None
        return stopped
    crashed = _crash_signal(d, world) if gate_.fails_fast_on_crash else None
    if crashed is not None:
        return _judge(d, world, gate_, gates.Fail(FailureClass.RESTART_WATCHDOG, reasons.RESTART_WATCHDOG_FAILED,
                                                  crashed))
    if dep.progressing_reason == reasons.PROGRESS_DEADLINE_EXCEEDED:  # e.g. pods added since never started
        return _judge(d, world, gate_, gates.Fail(FailureClass.DEPLOY, reasons.PROGRESS_DEADLINE_EXCEEDED,
                                                  rollout.rollout_progress(dep).message))
    return _judge(d, world, gate_, gate_.step(d, world))


def _crash_signal(d: Draft, world: World) -> str | None:
    """With the watchdog on, a crash signal in the new pods (recorded as the watchdog's verdict): what it is."""
    cfg = d.run.spec.restart_watchdog
    if not cfg.enabled:
        return None
    crash = watchdog.crash_verdict(world.pods, cfg.restart_threshold)
    if crash.stable:
        return None
    d.set(restart_watchdog_status=WatchdogStatus.UNSTABLE, restart_watchdog_reason=crash.reason,
          restart_watchdog_attempts=d.status.restart_watchdog_attempts + 1, restart_watchdog_checked_at=d.now)
    return crash.message


def _judge(d: Draft, world: World, gate_: gates.Gate, step: gates.Step) -> Decision:
    """A gate's step as a decision: act, wait, go on to the next gate, or fail with the gate's class."""
    match step:
        case gates.Act():
            return d.decision(step.seconds, step.action)
        case gates.Hold():
            return d.decision(max(MIN_WAIT_SECONDS, step.seconds) if step.seconds else 0)
        case gates.Pass():
            _close_gate(d, gate_, GatePhase.PASSED, step.message)
            next_gate = gates.after(gate_, d.run.spec)
            if gate_.phase == Phase.VERIFYING_HEALTH and (next_gate is None
                                                         or next_gate.phase != Phase.VERIFYING_HEALTH):
                return _healthy(d, world, next_gate, step.message)
            return _enter_gate(d, next_gate, step.message)
        case gates.Fail():
            _close_gate(d, gate_, GatePhase.FAILED, step.message)
            return _gate_failed(d, world, step.failure, step.reason, step.message)
        case _:
            assert_never(step)


def _rolling_back(d: Draft, world: World, dep: DeploymentState) -> Decision:
    s = d.status
    if not _record(dep).held_by(d.run.uid):
        return _lost(d, dep)
    target = next((r for r in dep.revisions if r.replica_set == s.rollback_target_replica_set), None)
    if target is None:
        d.set(rollback_healthy=False)
        return d.fail(reasons.ROLLBACK_TARGET_GONE,
                      f"replica set {s.rollback_target_replica_set!r} no longer exists")
    # The controller renumbers the ReplicaSet it re-adopts: a new revision means the undo happened.
    renumbered = target.revision != s.rollback_target_revision
    if dep.template != target.template:
        if renumbered:
            d.set(rollback_healthy=False)
            return d.fail(reasons.DEPLOYMENT_CHANGED,
                          "the Deployment's template changed after the rollback; leaving it alone")
        if not _runs_this_release(d, dep):  # a person's hotfix since the gate failed: never undo over it
            d.set(rollback_healthy=False)
            return d.fail(reasons.DEPLOYMENT_CHANGED,
                          "the Deployment's template changed after the gate failed and is no longer this "
                          "run's release; not rolling back over someone else's change")
        if dep.paused:
            d.set(rollback_healthy=False)
            return d.fail(reasons.ROLLBACK_REFUSED, f"{dep.kind.lower()} {dep.name!r} is paused; cannot roll back")
        untrusted = _untrusted_rollback(d, world, target)
        if untrusted:
            d.set(rollback_healthy=False)
            return d.fail(reasons.CLAIM_LOST, untrusted)
        return d.decision(POLL_SECONDS, RollbackDeployment(target.replica_set,
                                                           rollback_patch(dep, target, d.run, d.now)))
    if s.rollback_patched_at is None:
        d.set(rollback_patched_at=d.now)
        if renumbered:
            d.enter(Phase.ROLLING_BACK, reasons.ROLLBACK_PATCHED,
                    f"restored the template of {target.replica_set}; waiting for it to become available")
        else:  # kubectl rollout undo skips when the template already matches
            d.enter(Phase.ROLLING_BACK, reasons.ROLLBACK_SKIPPED,
                    f"the Deployment already runs the template of {target.replica_set}; no patch needed")
    stuck = _stuck_pods(d, dep, target)
    if stuck is not None:
        return stuck
    progress = rollout.rollout_progress(dep)
    limit = d.run.spec.rollback_policy.timeout_seconds
    if progress.done or rollout.release_available(dep, target.replica_set):
        owed = gitflow.after_rollback(d)
        if owed is not None:
            return owed
        d.set(rollback_healthy=True)
        cause = f" after {s.failure_reason}: {s.failure_message}" if s.failure_reason else ""
        d.enter(Phase.ROLLED_BACK, reasons.ROLLED_BACK,
                f"rolled back to release {s.rollback_target_release_id} ({target.replica_set}){cause}; "
                f"available again")
        d.event(EventType.NORMAL, reasons.ROLLED_BACK, f"run {d.run.name} {d.status.message or ''}",
                on_deployment=True)
        return d.decision(None)
    if progress.failed or _elapsed(s.phase_started_at, d.now) > limit:
        d.set(rollback_healthy=False)
        waits = controllerrevisions.stuck_pods(dep, target.replica_set)
        hint = f"; the StatefulSet waits for pods {', '.join(p.name for p in waits)} of the bad release, which " \
               f"rollbackPolicy.deleteStuckPods: false leaves to a person" if waits else ""
        return d.fail(reasons.ROLLBACK_UNHEALTHY, f"the rolled-back {dep.kind} did not become available "
                                                  f"within {limit}s: {progress.message}{hint}")
    since = max((t for t in (d.status.rollout_reported_at, d.status.rollback_patched_at) if t is not None),
                default=None)
    return _report_progress(d, Phase.ROLLING_BACK, reasons.ROLLBACK_IN_PROGRESS, progress,
                            quiet=(reasons.ROLLBACK_PATCHED, reasons.ROLLBACK_SKIPPED), since=since,
                            deadline=_at(s.phase_started_at, limit))


def _stuck_pods(d: Draft, dep: DeploymentState, target: Revision) -> Decision | None:
    """A StatefulSet's forced rollback, once the controller observed the undo: delete the pods of the bad
    release it would wait for forever (when the policy allows), saying which first."""
    if not d.run.spec.rollback_policy.delete_stuck_pods or dep.observed_generation < dep.generation:
        return None
    stuck = controllerrevisions.stuck_pods(dep, target.replica_set)
    if not stuck:
        return None
    names = [p.name for p in stuck]
    d.set(stuck_pods_deleted=sorted(set(d.status.stuck_pods_deleted) | set(names))[-64:])
    d.event(EventType.WARNING, reasons.STUCK_PODS_DELETED,
            f"run {d.run.name}: deleting pod(s) {', '.join(names)} of the bad release, which the StatefulSet "
            f"would wait for forever (forced rollback to {target.replica_set})", on_deployment=True)
    return d.decision(POLL_SECONDS, DeleteStuckPods(target.replica_set, tuple((p.name, p.uid) for p in stuck)))


# --- settle: the result of a side effect ---------------------------------------


def settle(run: Run, world: World, action: Action, result: Result, now: datetime) -> Decision:
    d = Draft(run, now)
    match result:
        case Failed() if isinstance(action, ReleaseWorkload):
            return d.decision(None)  # the run has ended either way; its hold is taken over by the next run
        case Failed(retryable=True):
            return _retry(d, result)
        case Failed():
            return _failed(d, world, action, result)
        case Released():
            return d.decision(None)
        case PodsDeleted():
            return d.decision(WATCH_SECONDS)  # the pods' changes wake the run
        case Deployed():
            return _deployed(d, result.template_digest)
        case Undone():
            d.set(rollback_patched_at=now)
            d.enter(Phase.ROLLING_BACK, reasons.ROLLBACK_PATCHED,
                    f"restored the template of {result.replica_set}; waiting for it to become available")
            d.normal(reasons.ROLLBACK_PATCHED, d.status.message or "")
            return d.decision(WATCH_SECONDS)  # the rollout's changes wake the run
        case ImageResolved():
            return _image_resolved(d, result)
        case ImageUnresolved():
            return _image_unresolved(d, result.why)
        case Probed() | Measured():
            owner = gates.owner(action)
            assert owner is not None, f"{type(action).__name__} is a gate's action"
            return _judge(d, world, owner, owner.settle(d, world, action, result))
        case BranchResolved() | Committed() | NothingToCommit() | Pushed() | PullRequestOpened() | CIReported() \
                | Merged() | PullRequestObserved() | RevertOpened():
            return gitflow.settle(d, result)
        case ValidationJobStarted():
            return validation.started(d, result.name)
        case ValidationJobObserved():
            return validation.observed(d, result.state, result.message)
        case ValidationJobDeleted():
            return validation.deleted(d)
        case _:
            assert_never(result)


def _retry(d: Draft, failure: Failed) -> Decision:
    """A passing fault: try again after a growing wait, at most retryPolicy.maxAttempts times in this phase."""
    policy, s = d.run.spec.retry_policy, d.status
    assert s.phase is not None
    retry = s.retry.model_copy() if s.retry and s.retry.phase == s.phase else RetryStatus(phase=s.phase)
    retry.attempts += 1
    retry.last_error = failure.message[:1024]
    if retry.attempts >= policy.max_attempts:
        d.set(retry=retry)
        if s.phase == Phase.ROLLING_BACK:
            d.set(rollback_healthy=False)
        return d.fail(reasons.RETRIES_EXHAUSTED, f"{retry.attempts} attempts in phase {s.phase} met passing "
                                                 f"faults; the last: {failure.message}")
    if failure.stale:  # nothing to wait out: the shell decides again once it sees the newer object
        d.set(retry=retry)
        return d.decision(0)
    wait = min(policy.max_backoff_seconds, policy.initial_backoff_seconds * 2 ** (retry.attempts - 1))
    retry.next_attempt_at = d.now + timedelta(seconds=wait)
    if retry.event_seq is None:  # one Retrying Event per phase, its count growing as a series
        s.event_seq += 1
        retry.event_seq = s.event_seq
    d.set(retry=retry)
    d.event(EventType.WARNING, reasons.RETRYING, f"{failure.message} (attempt {retry.attempts} of "
                                                 f"{policy.max_attempts}; trying again in {wait:g}s)",
            count=retry.attempts, seq=retry.event_seq)
    return d.decision(wait)


def _retry_wait(s: RunStatus, now: datetime) -> float:
    if s.retry is None or s.retry.phase != s.phase or s.retry.next_attempt_at is None:
        return 0.0
    return max(0.0, (s.retry.next_attempt_at - now).total_seconds())


def _failed(d: Draft, world: World, action: Action, failure: Failed) -> Decision:
    """A side effect that did not happen and will not by trying again."""
    match action:
        case ReleaseWorkload():  # the run has ended; the next run takes over a hold of a finished run
            return d.decision(None)
        case PatchDeployment(takes=True):  # refused whole: the run never held the workload
            kind = d.run.spec.target.kind
            return d.fail(reasons.DEPLOY_REFUSED, f"{failure.message}; the {kind} was not touched{_merge_kept(d)}")
        case PatchDeployment():
            return _gate_failed(d, world, FailureClass.DEPLOY, reasons.DEPLOY_REFUSED, failure.message)
        case RollbackDeployment():
            d.set(rollback_healthy=False)
            return d.fail(reasons.ROLLBACK_REFUSED, failure.message)
        case DeleteStuckPods():
            d.set(rollback_healthy=False)
            return d.fail(reasons.ROLLBACK_REFUSED, f"the pods of the bad release the StatefulSet waits for could "
                                                    f"not be deleted: {failure.message}")
        case ResolveImage():  # the registry has no such image, or refuses the Deployment's credentials
            return d.fail(failure.reason, f"{failure.message}; the Deployment was not touched")
        case ProbeHttp() | MeasureMetric():
            owner = gates.owner(action)
            assert owner is not None, f"{type(action).__name__} is a gate's action"
            return _judge(d, world, owner, owner.failed(d, world, action, failure))
        case CreateValidationJob() | CheckValidationJob() | DeleteValidationJob():
            return validation.failed(d, action, failure)
        case _:
            return gitflow.failed(d, action, failure)


# --- gates, policy, endings -------------------------------------------------


def _gate_failed(d: Draft, world: World, failure: FailureClass, reason: str, message: str) -> Decision:
    """A gate failed: evaluate the rollback policy, then roll back or fail. A gate still running ends too."""
    spec = d.run.spec
    if world.deployment is not None and d.status.deploy_patched_at is not None:
        _record_deployed_revision(d, world.deployment)
    for running in [g for g in d.status.gates if g.phase == GatePhase.RUNNING]:
        gates.set_gate(d, gates.closed(running, GatePhase.FAILED, message, d.now))
    verdict = policy.evaluate(_policy_input(d, world, failure))
    d.set(rollback_policy_status=verdict.status, rollback_policy_reason=verdict.reason,
          rollback_target_valid=verdict.target_valid, rollback_failure_class=failure,
          rollback_deployment_context=spec.target.deployment_context,
          failure_reason=reason, failure_message=message)
    d.warning(reason, message)
    if not verdict.allowed or verdict.target is None:
        why = f" ({verdict.detail})" if verdict.detail else ""
        return d.fail(reason, f"{message}; rollback denied: {verdict.reason}{why}")
    target = verdict.target
    d.set(rollback_target_replica_set=target.replica_set, rollback_target_revision=target.revision,
          rollback_target_release_id=target.release_id)
    d.enter(Phase.ROLLING_BACK, reason,
            f"{message}; rolling back to revision {target.revision} ({target.replica_set}, {verdict.reason})")
    d.warning(reasons.ROLLING_BACK, d.status.message or "")
    return d.decision(0)


def _policy_input(d: Draft, world: World, failure: FailureClass) -> policy.PolicyInput:
    """What the rollback policy decides on, from the spec, the workload and its record: never from status
    alone (status says what happened; the record, written only with the run's own patches, says what the
    run may undo)."""
    spec, s, dep = d.run.spec, d.status, world.deployment
    entry = _record(dep).entry(d.run.uid) if dep else None
    current = releases.current_revision(dep) if dep else None
    deployed_rs = current.replica_set if current and s.deploy_patched_at else s.deployed_replica_set
    previous = entry.previous if entry else None
    before = next((r for r in dep.revisions if r.replica_set == previous), None) if dep and previous else None
    recorded = before.release_id if before else None
    target_id = spec.release.rollback_release_id or spec.release.previous_release_id or (
        recorded if entry else s.rollback_target_release_id)  # no entry: deployed by a version before the record
    return policy.PolicyInput(
        failure_class=failure,
        context=spec.target.deployment_context,
        policy=spec.rollback_policy,
        deployed_release_id=entry.release if entry else s.deployed_release_id,
        rollback_target_release_id=target_id,
        revisions=dep.revisions if dep else (),
        deployed_replica_set=deployed_rs,
        previous_replica_set=previous,
        crd_changed=world.crd_generation is not None and s.crd_generation_at_deploy is not None
        and world.crd_generation != s.crd_generation_at_deploy,
    )


def _untrusted_rollback(d: Draft, world: World, target: Revision) -> str | None:
    """Why the rollback that status asks for is not one the policy allows from the spec, the workload and its
    record (a status not written by this run), or None."""
    s = d.status
    if s.rollback_failure_class is None:
        return "status asks for a rollback without a failed gate; the Deployment is left alone"
    verdict = policy.evaluate(_policy_input(d, world, FailureClass(s.rollback_failure_class)))
    if not verdict.allowed or verdict.target is None or verdict.target.replica_set != target.replica_set:
        return (f"status asks for a rollback to {target.replica_set}, which the rollback policy does not allow from "
                f"the spec and the workload's record ({verdict.reason}); the Deployment is left alone")
    return None


def _approval(d: Draft, world: World, stage: ApprovalStage) -> Decision | None:
    """None when the stage needs no approval or has it (the gate then shows who gave it); else wait for it
    (at no cost: the annotation's change wakes the run), or end when the deadline passed."""
    if not approval_gate.needed(d.run.spec, stage):
        return None
    known = approval_gate.current(d.status.gates, stage)
    if known is not None and known.phase == GatePhase.PASSED:
        return None
    verdict = approval_gate.verdict(d.run, stage, d.now)
    gates.set_gate(d, verdict.gate)
    match verdict:
        case approval_gate.Approved():
            d.normal(reasons.APPROVED, f"{stage.value}: {verdict.gate.message}")
            return None
        case approval_gate.Waiting():
            message = verdict.gate.message or ""
            if d.status.reason != reasons.AWAITING_APPROVAL or d.status.message != message:
                d.normal(reasons.AWAITING_APPROVAL, message)
            d.enter(Phase.AWAITING_APPROVAL, reasons.AWAITING_APPROVAL, message)
            return d.decision(max(MIN_WAIT_SECONDS, min(QUEUE_SECONDS, (verdict.until - d.now).total_seconds())))
        case approval_gate.TimedOut():
            if stage == ApprovalStage.DEPLOY:
                return d.fail(reasons.APPROVAL_TIMED_OUT,
                              f"{verdict.message}; the Deployment was not touched{_merge_kept(d)}")
            return _gate_failed(d, world, FailureClass.ABORTED, reasons.APPROVAL_TIMED_OUT, verdict.message)
        case _:
            assert_never(verdict)


def _awaiting_approval(d: Draft, world: World, dep: DeploymentState) -> Decision:
    if d.status.deploy_patched_at is None:  # before the deploy: back to the gate, which asks again
        return _at_the_gate(d, world, dep, Phase.DEPLOYING)
    stopped = _superseded(d, dep)
    if stopped:
        return stopped
    awaited = _approval(d, world, ApprovalStage.SUCCESS)
    if awaited is not None:
        return awaited
    approved = approval_gate.current(d.status.gates, ApprovalStage.SUCCESS)
    return _succeeded(d, (approved.message if approved else None) or "approved")


def _succeed(d: Draft, message: str) -> Decision:
    """Every gate passed: the run succeeds, or first waits for a person's approval when the spec asks."""
    if approval_gate.needed(d.run.spec, ApprovalStage.SUCCESS):
        known = approval_gate.current(d.status.gates, ApprovalStage.SUCCESS)
        if known is None or known.phase != GatePhase.PASSED:
            d.enter(Phase.AWAITING_APPROVAL, reasons.AWAITING_APPROVAL, f"{message}; awaiting approval")
            return d.decision(0)
    return _succeeded(d, message)


def _succeeded(d: Draft, message: str) -> Decision:
    d.enter(Phase.SUCCEEDED, reasons.SUCCEEDED, message)
    d.normal(reasons.SUCCEEDED, f"release {d.status.deployed_release_id} is live: {message}")
    return d.decision(None)


# --- helpers --------------------------------------------------------------------


def _container(spec: RunSpec, dep: DeploymentState) -> str | None:
    """The container to change (None with a pod-template patch and no container named)."""
    if spec.release.image is None and spec.target.container is None:
        return None
    return releases.target_container(dep.template, spec.target.container)


def _container_or_none(spec: RunSpec, dep: DeploymentState) -> str | None:
    try:
        return _container(spec, dep)
    except ValueError:
        return None


def _carries_release(dep: DeploymentState, spec: RunSpec, release_id: str | None,
                     container: str | None) -> bool:
    """The template already runs this release: its id, and what the run's change sets (not only the id)."""
    if releases.template_annotations(dep.template).get(RELEASE_ANNOTATION) != release_id:
        return False
    if spec.release.image is not None:
        return releases.image_of(dep.template, container) == spec.release.image
    return releases.includes(dep.template, spec.release.pod_template_patch or {})


def _record_deployed_revision(d: Draft, dep: DeploymentState) -> None:
    current = releases.current_revision(dep)
    if current is not None and d.status.deployed_replica_set != current.replica_set:
        d.set(deployed_replica_set=current.replica_set, deployed_revision=current.revision)


def _elapsed(since: datetime | None, now: datetime) -> float:
    return (now - since).total_seconds() if since else 0.0
