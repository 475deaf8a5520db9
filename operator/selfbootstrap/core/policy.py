"""The rollback policy: may this failed run roll back, and to which revision?

Rules are evaluated in the older system's order; the first match wins. Two rules
are added: after the first, a selfHosted run whose deploy changed the operator's
own CRD is never rolled back automatically; after "target not found", a target
release that two different templates claim is ambiguous and a person decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import assert_never

from ..models import DeploymentContext, FailureClass, PolicyStatus, RollbackPolicy
from .releases import newest_revision, template_digest
from .world import Revision

NO_PREVIOUS_REVISION = "noPreviousRevision"
TARGET_REQUIRED_FOR_EXTERNAL = "rollbackTargetRequiredForExternalContext"
TARGET_SAME_AS_DEPLOYED = "rollbackTargetSameAsDeployed"
TARGET_NOT_FOUND = "rollbackTargetNotFound"
TARGET_AMBIGUOUS = "rollbackTargetAmbiguous"
TARGET_VALIDATED = "rollbackTargetValidated"
TARGET_UNSPECIFIED = "rollbackTargetUnspecified"
CRD_CHANGED = "crdChangedSinceDeploy"
UNDO_UNSAFE = "undoUnsafe"  # an undo to the target would not put every pod back (core/targets/controllerrevisions.py)


@dataclass(frozen=True)
class PolicyInput:
    failure_class: FailureClass
    context: DeploymentContext
    policy: RollbackPolicy
    deployed_release_id: str | None
    rollback_target_release_id: str | None
    revisions: Sequence[Revision]
    deployed_replica_set: str | None  # the ReplicaSet running the failed release, if it exists
    previous_replica_set: str | None  # recorded before the deploy
    crd_changed: bool = False  # selfHosted: the operator's CRD changed after the deploy


@dataclass(frozen=True)
class PolicyDecision:
    status: PolicyStatus
    reason: str
    target_valid: bool | None = None
    target: Revision | None = None
    detail: str | None = None  # why, when the reason alone does not say

    @property
    def allowed(self) -> bool:
        return self.status == PolicyStatus.ALLOWED


def _enabled(policy: RollbackPolicy, failure_class: FailureClass) -> tuple[bool, str]:
    """Whether the policy rolls back on this failure class, and the reason it gives when it does not."""
    match failure_class:
        case FailureClass.DEPLOY:
            return policy.on_deploy_failure, "rollbackDisabledForDeployFailure"
        case FailureClass.HEALTH:
            return policy.on_health_failure, "rollbackDisabledForHealthFailure"
        case FailureClass.ANALYSIS:
            return policy.on_analysis_failure, "rollbackDisabledForAnalysisFailure"
        case FailureClass.SELF_TEST:
            return policy.on_self_test_failure, "rollbackDisabledForSelfTestFailure"
        case FailureClass.RESTART_WATCHDOG:
            return policy.on_restart_watchdog_failure, "rollbackDisabledForRestartWatchdogFailure"
        case FailureClass.ABORTED:
            return policy.on_abort, "rollbackDisabledForAbort"
        case _:
            assert_never(failure_class)


def _fallback_revision(inp: PolicyInput, candidates: Sequence[Revision]) -> Revision | None:
    """The revision recorded as previous before the deploy, else the newest other one."""
    for rev in candidates:
        if rev.replica_set == inp.previous_replica_set:
            return rev
    return newest_revision(candidates)


def evaluate(inp: PolicyInput) -> PolicyDecision:
    decision = _evaluate(inp)
    target = decision.target
    if decision.allowed and target is not None and target.undo_refusal:
        return PolicyDecision(PolicyStatus.DENIED, UNDO_UNSAFE, decision.target_valid, detail=target.undo_refusal)
    return decision


def _evaluate(inp: PolicyInput) -> PolicyDecision:
    def deny(reason: str, valid: bool | None = None) -> PolicyDecision:
        return PolicyDecision(PolicyStatus.DENIED, reason, valid)

    enabled, disabled = _enabled(inp.policy, inp.failure_class)
    if not enabled:
        return deny(disabled)
    if inp.crd_changed and inp.context == DeploymentContext.SELF_HOSTED:
        return deny(CRD_CHANGED)  # CRD versions cannot be downgraded: a human decides
    candidates = [r for r in inp.revisions if r.replica_set != inp.deployed_replica_set]
    if not candidates:
        return deny(NO_PREVIOUS_REVISION)
    target_id = inp.rollback_target_release_id
    if target_id is None:
        if inp.context == DeploymentContext.EXTERNAL:
            return deny(TARGET_REQUIRED_FOR_EXTERNAL, False)
        return PolicyDecision(PolicyStatus.ALLOWED, TARGET_UNSPECIFIED, True,
                              _fallback_revision(inp, candidates))
    if target_id == inp.deployed_release_id:
        return deny(TARGET_SAME_AS_DEPLOYED, False)
    carrying = [r for r in candidates if r.release_id == target_id]
    if not carrying:
        return deny(TARGET_NOT_FOUND, False)
    if len({template_digest(r.template) for r in carrying}) > 1:
        return deny(TARGET_AMBIGUOUS, False)  # two different templates claim the release: a person decides
    return PolicyDecision(PolicyStatus.ALLOWED, TARGET_VALIDATED, True, newest_revision(carrying))
