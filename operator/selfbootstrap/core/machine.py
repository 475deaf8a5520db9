"""The run's state machine: given the run and what was observed, what happens next.

`decide` looks at the run and the world and returns the new status, at most one
side effect to perform, events to post, and when to look again. The shell
persists the status *before* it performs the side effect, then reports the
side effect's outcome to `settle`, whose status it persists too. Every side
effect is recognisable in the world afterwards (the Deployment's template), so
a tick interrupted anywhere is resumed by deciding again without repeating it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Union

from ..models import (
    CHANGE_CAUSE_ANNOTATION, RELEASE_ANNOTATION, RUN_ANNOTATION, TERMINAL_PHASES, FailureClass,
    HealthStatus, HttpCheck, Phase, RunSpec, WatchdogStatus,
)
from . import gitflow, policy, releases, rollout, watchdog
from .draft import Decision, Draft, Outcome, Run
from .world import DeploymentState, Revision, World

POLL_SECONDS = 2.0  # how often an in-flight rollout is looked at
QUEUE_SECONDS = 5.0  # how often a queued run looks whether the Deployment is free

# Deployment annotations `kubectl rollout undo` keeps from the Deployment rather than the ReplicaSet.
UNDO_SKIPPED_ANNOTATIONS = frozenset({
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
})


# --- what the core asks the shell to do ---------------------------------------


@dataclass(frozen=True)
class PatchDeployment:
    """Deploy the release: a strategic-merge patch guarded by resourceVersion."""

    patch: dict[str, Any]


@dataclass(frozen=True)
class RollbackDeployment:
    """`kubectl rollout undo`: a JSON patch restoring a ReplicaSet's template, guarded by resourceVersion."""

    replica_set: str
    patch: list[dict[str, Any]]


@dataclass(frozen=True)
class ProbeHttp:
    check: HttpCheck


Action = Union[PatchDeployment, RollbackDeployment, ProbeHttp, gitflow.GitAction]


# --- decide -------------------------------------------------------------------


def decide(run: Run, world: World, now: datetime) -> Decision:
    draft = Draft(run, now)
    phase = run.status.phase or Phase.PENDING
    if phase in TERMINAL_PHASES:
        return draft.decision(None)
    if run.status.phase is None:
        draft.enter(Phase.PENDING, "Accepted", "run accepted")
        return draft.decision(0)
    if world.deployment is None:
        if phase == Phase.ROLLING_BACK:
            draft.set(rollback_healthy=False)
        return draft.fail("TargetNotFound",
                     f"deployment {run.spec.target.deployment!r} not found in the run's namespace")
    if phase in gitflow.GIT_PHASES:
        return gitflow.decide(draft)
    handler = {
        Phase.PENDING: _pending,
        Phase.DEPLOYING: _deploying,
        Phase.VERIFYING_HEALTH: _verifying_health,
        Phase.WATCHING_RESTARTS: _watching_restarts,
        Phase.ROLLING_BACK: _rolling_back,
    }[phase]
    return handler(draft, world, world.deployment)


def _pending(d: Draft, world: World, dep: DeploymentState) -> Decision:
    if world.blocking_run:
        d.enter(Phase.PENDING, "Queued",
                f"waiting for run {world.blocking_run!r}, which holds deployment {dep.name!r}")
        return d.decision(QUEUE_SECONDS)
    d.set(started_at=d.status.started_at or d.now)
    first = gitflow.first_phase(d)
    what = "proposing the change in git for" if d.run.spec.git else "deploying to"
    d.enter(first, "Started", f"{what} deployment {dep.name!r}")
    d.event("Normal", "Started", f"run started for deployment {dep.name!r}")
    return d.decision(0)


def _deploying(d: Draft, world: World, dep: DeploymentState) -> Decision:
    spec, s = d.run.spec, d.status
    try:
        container = _container(spec, dep)
    except ValueError as err:
        return d.fail("InvalidTarget", str(err))
    if s.release_metadata_source is None:
        return _resolve_releases(d, world, dep, container)
    if _carries_release(dep, spec, s.deployed_release_id, container):
        return _deployed(d)
    if s.deploy_patched_at is not None:
        return d.fail("DeploymentChanged",
                     "the Deployment's template changed after the release was deployed; leaving it alone")
    if dep.paused:
        return d.fail("DeploymentPaused", f"deployment {dep.name!r} is paused; resume it and create a new run")
    return d.decision(POLL_SECONDS, PatchDeployment(deploy_patch(d.run, dep, container)))


def _resolve_releases(d: Draft, world: World, dep: DeploymentState, container: str | None) -> Decision:
    """Read the releases around the deploy before patching, and record them first."""
    spec = d.run.spec
    requested = releases.requested_release_id(spec.release)
    if requested is None:  # the Deployment's current release is the one being replaced, never the new one
        return d.fail("ReleaseIdUnknown",
                     "the new image has no tag or digest; set spec.release.id")
    answer = releases.answer_from_deployment(dep, requested, container)
    res = releases.resolve(spec.release, [answer])
    prev = res.previous_revision
    d.set(
        deployed_release_id=res.deployed_release_id,
        previous_release_id=res.previous_release_id,
        previous_revision=prev.revision if prev else None,
        previous_replica_set=prev.replica_set if prev else None,
        rollback_target_release_id=res.rollback_target_release_id,
        release_metadata_source=res.source,
        crd_generation_at_deploy=world.crd_generation,
    )
    d.enter(Phase.DEPLOYING, "ReleasesResolved",
            f"deploying release {res.deployed_release_id} (previous: {res.previous_release_id or 'none'}, "
            f"from {res.source})")
    return d.decision(0)


def _deployed(d: Draft) -> Decision:
    s = d.status
    d.set(deploy_patched_at=s.deploy_patched_at or d.now)
    d.enter(Phase.VERIFYING_HEALTH, "Deployed", f"release {s.deployed_release_id} deployed; waiting for the rollout")
    d.event("Normal", "Deployed", f"release {s.deployed_release_id} deployed to deployment "
                                  f"{d.run.spec.target.deployment!r}")
    return d.decision(0)


def _superseded(d: Draft, dep: DeploymentState) -> Decision | None:
    """Someone else changed the Deployment's template during the run: stop, touch nothing."""
    container = _container_or_none(d.run.spec, dep)
    if _carries_release(dep, d.run.spec, d.status.deployed_release_id, container):
        return None
    return d.fail("DeploymentChanged",
                 "the Deployment's template no longer carries this run's release; another change superseded it")


def _verifying_health(d: Draft, world: World, dep: DeploymentState) -> Decision:
    spec = d.run.spec
    stopped = _superseded(d, dep)
    if stopped:
        return stopped
    _record_deployed_revision(d, dep)
    crash = watchdog.crash_verdict(world.pods, spec.restart_watchdog.restart_threshold)
    if spec.restart_watchdog.enabled and not crash.stable:  # fail fast rather than wait for the deadline
        d.set(restart_watchdog_status=WatchdogStatus.UNSTABLE, restart_watchdog_reason=crash.reason)
        return _gate_failed(d, world, FailureClass.RESTART_WATCHDOG, "RestartWatchdogFailed", crash.message)
    progress = rollout.rollout_progress(dep)
    if progress.failed:
        return _gate_failed(d, world, FailureClass.DEPLOY, rollout.PROGRESS_DEADLINE_EXCEEDED, progress.message)
    if not progress.done:
        deadline = spec.health.progress_deadline_seconds
        if _elapsed(d.status.deploy_patched_at, d.now) > deadline:
            return _gate_failed(d, world, FailureClass.DEPLOY, "RolloutTimedOut",
                                f"rollout not complete within {deadline}s: {progress.message}")
        d.enter(Phase.VERIFYING_HEALTH, "RolloutInProgress", progress.message)
        return d.decision(POLL_SECONDS)
    check = spec.health.http
    if check is None:
        return _healthy(d, progress.message)
    wait = _until_next_attempt(d.status.health_checked_at, check.interval_seconds, d.now)
    if wait > 0:
        return d.decision(wait)
    d.enter(Phase.VERIFYING_HEALTH, "CheckingHttp",
            f"rollout complete; HTTP check {d.status.health_attempts + 1} of {check.retries}")
    return d.decision(check.interval_seconds, ProbeHttp(check))


def _healthy(d: Draft, message: str) -> Decision:
    d.set(health_status=HealthStatus.HEALTHY)
    d.event("Normal", "Healthy", message)
    if not d.run.spec.restart_watchdog.enabled:
        return _succeed(d, message)
    d.enter(Phase.WATCHING_RESTARTS, "Healthy", f"{message}; watching for restarts")
    return d.decision(0)


def _watching_restarts(d: Draft, world: World, dep: DeploymentState) -> Decision:
    cfg = d.run.spec.restart_watchdog
    stopped = _superseded(d, dep)
    if stopped:
        return stopped
    wait = _until_next_attempt(d.status.restart_watchdog_checked_at, cfg.interval_seconds, d.now)
    if wait > 0:
        return d.decision(wait)
    attempt = d.status.restart_watchdog_attempts + 1
    verdict = watchdog.stability_verdict(world.pods, cfg.restart_threshold)
    d.set(restart_watchdog_attempts=attempt, restart_watchdog_checked_at=d.now,
          restart_watchdog_reason=verdict.reason)
    if not verdict.stable:
        d.set(restart_watchdog_status=WatchdogStatus.UNSTABLE)
        return _gate_failed(d, world, FailureClass.RESTART_WATCHDOG, "RestartWatchdogFailed", verdict.message)
    if attempt >= cfg.retries:
        d.set(restart_watchdog_status=WatchdogStatus.STABLE)
        return _succeed(d, f"{verdict.message} over {attempt} observations")
    d.enter(Phase.WATCHING_RESTARTS, "Observing", f"observation {attempt} of {cfg.retries}: {verdict.message}")
    return d.decision(cfg.interval_seconds)


def _rolling_back(d: Draft, world: World, dep: DeploymentState) -> Decision:
    s = d.status
    target = next((r for r in dep.revisions if r.replica_set == s.rollback_target_replica_set), None)
    if target is None:
        d.set(rollback_healthy=False)
        return d.fail("RollbackTargetGone", f"replica set {s.rollback_target_replica_set!r} no longer exists")
    # The controller renumbers the ReplicaSet it re-adopts: a new revision means the undo happened.
    renumbered = target.revision != s.rollback_target_revision
    if dep.template != target.template:
        if renumbered:
            d.set(rollback_healthy=False)
            return d.fail("DeploymentChanged",
                         "the Deployment's template changed after the rollback; leaving it alone")
        if dep.paused:
            d.set(rollback_healthy=False)
            return d.fail("RollbackRefused", f"deployment {dep.name!r} is paused; cannot roll back")
        return d.decision(POLL_SECONDS, RollbackDeployment(target.replica_set, rollback_patch(dep, target)))
    if s.rollback_patched_at is None:
        d.set(rollback_patched_at=d.now)
        if renumbered:
            d.enter(Phase.ROLLING_BACK, "RollbackPatched",
                    f"restored the template of {target.replica_set}; waiting for it to become available")
        else:  # kubectl rollout undo skips when the template already matches
            d.enter(Phase.ROLLING_BACK, "RollbackSkipped",
                    f"the Deployment already runs the template of {target.replica_set}; no patch needed")
    progress = rollout.rollout_progress(dep)
    limit = d.run.spec.rollback_policy.timeout_seconds
    if progress.done:
        revert = gitflow.revert_action(d)
        if revert is not None:
            return d.decision(POLL_SECONDS, revert)
        d.set(rollback_healthy=True)
        d.enter(Phase.ROLLED_BACK, "RolledBack",
                f"rolled back to release {s.rollback_target_release_id} ({target.replica_set}); available again")
        d.event("Normal", "RolledBack", d.status.message or "")
        return d.decision(None)
    if progress.failed or _elapsed(s.phase_started_at, d.now) > limit:
        d.set(rollback_healthy=False)
        return d.fail("RollbackUnhealthy", f"the rolled-back Deployment did not become available "
                                             f"within {limit}s: {progress.message}")
    d.enter(Phase.ROLLING_BACK, "RollbackInProgress", progress.message)
    return d.decision(POLL_SECONDS)


# --- settle: the outcome of a side effect ---------------------------------------


def settle(run: Run, world: World, action: Action, outcome: Outcome, now: datetime) -> Decision:
    d = Draft(run, now)
    if outcome.retryable:
        d.event("Warning", "Retrying", outcome.message)
        return d.decision(POLL_SECONDS)
    if not isinstance(action, (PatchDeployment, RollbackDeployment, ProbeHttp)):
        return gitflow.settle(d, action, outcome)
    if isinstance(action, PatchDeployment):
        if outcome.ok:
            return _deployed(d)
        return _gate_failed(d, world, FailureClass.DEPLOY, "DeployRefused", outcome.message)
    if isinstance(action, RollbackDeployment):
        if outcome.ok:
            d.set(rollback_patched_at=now)
            d.enter(Phase.ROLLING_BACK, "RollbackPatched",
                    f"restored the template of {action.replica_set}; waiting for it to become available")
            d.event("Normal", "RollbackPatched", d.status.message or "")
            return d.decision(POLL_SECONDS)
        d.set(rollback_healthy=False)
        return d.fail("RollbackRefused", outcome.message)
    return _settle_probe(d, world, action, outcome)


def _settle_probe(d: Draft, world: World, probe: ProbeHttp, outcome: Outcome) -> Decision:
    attempt = d.status.health_attempts + 1
    d.set(health_attempts=attempt, health_checked_at=d.now)
    if outcome.ok:
        return _healthy(d, f"HTTP check passed on attempt {attempt}: {outcome.message}")
    if attempt >= probe.check.retries:
        d.set(health_status=HealthStatus.UNHEALTHY)
        return _gate_failed(d, world, FailureClass.HEALTH, "HealthCheckFailed",
                            f"HTTP check failed {attempt} times; last: {outcome.message}")
    d.enter(Phase.VERIFYING_HEALTH, "CheckingHttp", f"HTTP check {attempt} of {probe.check.retries} failed: "
                                                    f"{outcome.message}")
    return d.decision(probe.check.interval_seconds)


# --- gates, policy, endings -------------------------------------------------


def _gate_failed(d: Draft, world: World, failure: FailureClass, reason: str, message: str) -> Decision:
    """A gate failed: evaluate the rollback policy, then roll back or fail."""
    spec, s, dep = d.run.spec, d.status, world.deployment
    current = releases.current_revision(dep) if dep else None
    deployed_rs = s.deployed_replica_set or (current.replica_set if current and s.deploy_patched_at else None)
    verdict = policy.evaluate(policy.PolicyInput(
        failure_class=failure,
        context=spec.target.deployment_context,
        policy=spec.rollback_policy,
        deployed_release_id=s.deployed_release_id,
        rollback_target_release_id=s.rollback_target_release_id,
        revisions=dep.revisions if dep else (),
        deployed_replica_set=deployed_rs,
        previous_replica_set=s.previous_replica_set,
        crd_changed=None not in (world.crd_generation, s.crd_generation_at_deploy)
        and world.crd_generation != s.crd_generation_at_deploy,
    ))
    d.set(rollback_policy_status=verdict.status, rollback_policy_reason=verdict.reason,
          rollback_target_valid=verdict.target_valid, rollback_failure_class=failure,
          rollback_deployment_context=spec.target.deployment_context)
    d.event("Warning", reason, message)
    if not verdict.allowed:
        return d.fail(reason, f"{message}; rollback denied: {verdict.reason}")
    target = verdict.target
    assert target is not None
    d.set(rollback_target_replica_set=target.replica_set, rollback_target_revision=target.revision,
          rollback_target_release_id=s.rollback_target_release_id or target.release_id)
    d.enter(Phase.ROLLING_BACK, reason,
            f"{message}; rolling back to revision {target.revision} ({target.replica_set}, {verdict.reason})")
    d.event("Warning", "RollingBack", d.status.message or "")
    return d.decision(0)


def _succeed(d: Draft, message: str) -> Decision:
    d.enter(Phase.SUCCEEDED, "Succeeded", message)
    d.event("Normal", "Succeeded", f"release {d.status.deployed_release_id} is live: {message}")
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
    annotations = (dep.template.get("metadata") or {}).get("annotations") or {}
    if annotations.get(RELEASE_ANNOTATION) != release_id:
        return False
    return spec.release.image is None or releases.image_of(dep.template, container) == spec.release.image


def _record_deployed_revision(d: Draft, dep: DeploymentState) -> None:
    current = releases.current_revision(dep)
    if current is not None and d.status.deployed_replica_set != current.replica_set:
        d.set(deployed_replica_set=current.replica_set, deployed_revision=current.revision)


def _elapsed(since: datetime | None, now: datetime) -> float:
    return (now - since).total_seconds() if since else 0.0


def _until_next_attempt(last: datetime | None, interval: float, now: datetime) -> float:
    return 0.0 if last is None else max(0.0, interval - _elapsed(last, now))


def deploy_patch(run: Run, dep: DeploymentState, container: str | None) -> dict[str, Any]:
    """The strategic-merge patch that deploys the run's release."""
    spec, release_id = run.spec, run.status.deployed_release_id
    template: dict[str, Any] = dict(spec.release.pod_template_patch or {})
    meta = dict(template.get("metadata") or {})
    meta["annotations"] = {**(meta.get("annotations") or {}), RELEASE_ANNOTATION: release_id}
    template["metadata"] = meta
    if spec.release.image:
        template["spec"] = {"containers": [{"name": container, "image": spec.release.image}]}
    cause = spec.release.change_cause or f"SelfBootstrapRun {run.name}: deploy release {release_id}"
    return {
        "metadata": {"resourceVersion": dep.resource_version,
                     "annotations": {CHANGE_CAUSE_ANNOTATION: cause, RUN_ANNOTATION: run.name}},
        "spec": {"template": template},
    }


def rollback_patch(dep: DeploymentState, target: Revision) -> list[dict[str, Any]]:
    """The JSON patch `kubectl rollout undo` sends, plus a resourceVersion guard."""
    annotations = {k: v for k, v in dep.annotations.items() if k in UNDO_SKIPPED_ANNOTATIONS}
    annotations.update({k: v for k, v in target.annotations.items() if k not in UNDO_SKIPPED_ANNOTATIONS})
    return [
        {"op": "replace", "path": "/metadata/resourceVersion", "value": dep.resource_version},
        {"op": "replace", "path": "/spec/template", "value": target.template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]
