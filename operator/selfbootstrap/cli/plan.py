"""A dry run: what a run would do against the cluster as it is now, decided by the operator's own core."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from .. import models as m
from ..core import machine, policy, reasons, releases
from ..core.actions import ImageUnresolved, PatchDeployment, ResolveImage
from ..core.gates import sequence
from ..core.jsontypes import JsonObject
from ..core.run import Run
from ..core.world import World
from ..models import FailureClass, Phase, RunSpec, RunStatus

POLICY_CLASSES = tuple(FailureClass)


@dataclass(frozen=True)
class PolicyOutcome:
    failure_class: str
    status: str
    reason: str
    target_replica_set: str | None
    target_revision: int | None


@dataclass(frozen=True)
class Plan:
    ends: str | None  # the phase the run would end in without deploying (Superseded, Failed), or None
    reason: str | None
    message: str | None
    git_first: bool
    patch: JsonObject | None
    status: RunStatus  # as it would be recorded before the deploy patch
    policies: tuple[PolicyOutcome, ...]
    gates: tuple[str, ...] = ()  # what judges the release after the deploy, in order
    image: str | None = None  # the image its registry resolves before the patch
    pin_digest: bool = False
    self_update: bool = False  # the new version's CRD is checked against the runs in flight, too


def plan(spec: RunSpec, name: str, namespace: str, world: World, now: datetime | None = None) -> Plan:
    now = now or datetime.now(UTC)
    run = Run(name, 1, spec, RunStatus(), namespace, uid="plan", created=now.isoformat())
    start = RunStatus(phase=Phase.DEPLOYING, reason=reasons.STARTED) if spec.git else RunStatus()
    decision, _ = machine.decide_chained(replace(run, status=start), world, now)
    resolved = decision.action if isinstance(decision.action, ResolveImage) else None
    if resolved is not None:  # the plan asks no registry: it shows the deploy by the reference
        looked = machine.settle(replace(run, status=decision.status), world, resolved,
                                ImageUnresolved("kubectl sbr plan does not ask the registry"), now)
        decision, _ = machine.decide_chained(replace(run, status=looked.status), world, now)
    s = decision.status
    patch = decision.action.patch if isinstance(decision.action, PatchDeployment) else None
    waiting = s.reason in (reasons.QUEUED, reasons.SETTLING)
    ends = s.phase if s.phase in m.TERMINAL_PHASES or waiting else None
    return Plan(ends, s.reason, s.message, spec.git is not None, patch, s, _policies(spec, s, world), gates(spec),
                image=resolved.image if resolved else None, pin_digest=spec.release.pin_digest,
                self_update=resolved.check_crd if resolved else False)


def gates(spec: RunSpec) -> tuple[str, ...]:
    """The gates a deployed release passes through, in order, as a person reads them."""
    rollout = f"rollout: complete within {spec.health.progress_deadline_seconds}s"
    return (rollout, *(line for gate in sequence.enabled(spec) for line in gate.describe(spec)))


def _policies(spec: RunSpec, s: RunStatus, world: World) -> tuple[PolicyOutcome, ...]:
    dep = world.deployment
    if dep is None or s.release_metadata_source is None:
        return ()
    out = []
    for failure in POLICY_CLASSES:
        verdict = policy.evaluate(policy.PolicyInput(
            failure_class=failure, context=spec.target.deployment_context, policy=spec.rollback_policy,
            deployed_release_id=s.deployed_release_id, rollback_target_release_id=s.rollback_target_release_id,
            revisions=dep.revisions, deployed_replica_set=_running_the_release(world, s),
            previous_replica_set=s.previous_replica_set))
        target = verdict.target if verdict.allowed else None
        out.append(PolicyOutcome(failure, verdict.status, verdict.reason, target.replica_set if target else None,
                                 target.revision if target else None))
    return tuple(out)


def _running_the_release(world: World, s: RunStatus) -> str | None:
    """The ReplicaSet that would run the release after the deploy, when one already does (a redeploy)."""
    dep = world.deployment
    if dep is None:
        return None
    current = releases.current_revision(dep)
    return current.replica_set if current and current.release_id == s.deployed_release_id else None
