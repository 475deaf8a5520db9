"""policy.py: the rollback policy matrix of FEATURES.md section 7, evaluated in order, first match wins."""

from __future__ import annotations

from dataclasses import replace

import pytest

from selfbootstrap.core import policy
from selfbootstrap.core.policy import PolicyDecision, PolicyInput
from selfbootstrap.models import DeploymentContext, FailureClass, PolicyStatus, RollbackPolicy

from .factories import REV1, REV2, REV3, rev, tmpl

DEPLOY, HEALTH, WATCHDOG = FailureClass.DEPLOY, FailureClass.HEALTH, FailureClass.RESTART_WATCHDOG
EXTERNAL, SELF_HOSTED = DeploymentContext.EXTERNAL, DeploymentContext.SELF_HOSTED
ALLOWED, DENIED = PolicyStatus.ALLOWED, PolicyStatus.DENIED
REV2_AGAIN = rev("rs-4", 4, "v2")


def inp(**fields) -> PolicyInput:
    """v3 was deployed (rs-3) over v2 (rs-2, recorded as previous); the target is v2."""
    values: dict = dict(
        failure_class=HEALTH, context=EXTERNAL, policy=RollbackPolicy(), deployed_release_id="v3",
        rollback_target_release_id="v2", revisions=(REV1, REV2, REV3), deployed_replica_set="rs-3",
        previous_replica_set="rs-2",
    )
    values.update(fields)
    return PolicyInput(**values)


def rules(**flags) -> RollbackPolicy:
    return RollbackPolicy.model_validate(flags)


def allowed(reason, target):
    return PolicyDecision(ALLOWED, reason, True, target)


def denied(reason, valid=None):
    return PolicyDecision(DENIED, reason, valid, None)


@pytest.mark.parametrize("fields, expected", [
    # 1. rollback disabled for the failure class (defaults: deploy off, health on, watchdog on)
    pytest.param(dict(failure_class=DEPLOY), denied("rollbackDisabledForDeployFailure"),
                 id="1-deploy-failure-off-by-default"),
    pytest.param(dict(failure_class=DEPLOY, policy=rules(onDeployFailure=True)),
                 allowed("rollbackTargetValidated", REV2), id="1-deploy-failure-enabled"),
    pytest.param(dict(failure_class=HEALTH), allowed("rollbackTargetValidated", REV2),
                 id="1-health-failure-on-by-default"),
    pytest.param(dict(failure_class=HEALTH, policy=rules(onHealthFailure=False)),
                 denied("rollbackDisabledForHealthFailure"), id="1-health-failure-disabled"),
    pytest.param(dict(failure_class=WATCHDOG), allowed("rollbackTargetValidated", REV2),
                 id="1-watchdog-failure-on-by-default"),
    pytest.param(dict(failure_class=WATCHDOG, policy=rules(onRestartWatchdogFailure=False)),
                 denied("rollbackDisabledForRestartWatchdogFailure"), id="1-watchdog-failure-disabled"),
    pytest.param(dict(failure_class=HEALTH, policy=rules(onDeployFailure=True, onHealthFailure=False)),
                 denied("rollbackDisabledForHealthFailure"), id="1-only-the-failing-class-counts"),
    # 1b. selfHosted run whose deploy changed the operator's CRD
    pytest.param(dict(context=SELF_HOSTED, crd_changed=True), denied("crdChangedSinceDeploy"),
                 id="1b-self-hosted-crd-changed"),
    pytest.param(dict(context=EXTERNAL, crd_changed=True), allowed("rollbackTargetValidated", REV2),
                 id="1b-crd-change-ignored-for-external"),
    # 2. no previous revision to roll back to
    pytest.param(dict(revisions=(REV3,)), denied("noPreviousRevision"), id="2-only-the-deployed-revision"),
    pytest.param(dict(revisions=()), denied("noPreviousRevision"), id="2-no-revisions"),
    # 3. external context without a rollback target
    pytest.param(dict(rollback_target_release_id=None),
                 denied("rollbackTargetRequiredForExternalContext", False), id="3-external-without-target"),
    # 6b. selfHosted without a target: fall back to the previous revision
    pytest.param(dict(context=SELF_HOSTED, rollback_target_release_id=None),
                 allowed("rollbackTargetUnspecified", REV2), id="6-self-hosted-falls-back-to-recorded-previous"),
    pytest.param(dict(context=SELF_HOSTED, rollback_target_release_id=None, revisions=(REV2, REV1, REV3),
                      previous_replica_set="rs-1"),
                 allowed("rollbackTargetUnspecified", REV1), id="6-recorded-previous-beats-newer"),
    pytest.param(dict(context=SELF_HOSTED, rollback_target_release_id=None, revisions=(REV1, REV3)),
                 allowed("rollbackTargetUnspecified", REV1), id="6-recorded-previous-gone-newest-other"),
    pytest.param(dict(context=SELF_HOSTED, rollback_target_release_id=None, previous_replica_set=None),
                 allowed("rollbackTargetUnspecified", REV2), id="6-nothing-recorded-newest-other"),
    # 4. target equals the deployed release
    pytest.param(dict(rollback_target_release_id="v3"), denied("rollbackTargetSameAsDeployed", False),
                 id="4-target-same-as-deployed"),
    pytest.param(dict(context=SELF_HOSTED, rollback_target_release_id="v3"),
                 denied("rollbackTargetSameAsDeployed", False), id="4-self-hosted-target-same-as-deployed"),
    # 5. no ReplicaSet (other than the deployed one) carries the target
    pytest.param(dict(rollback_target_release_id="v9"), denied("rollbackTargetNotFound", False),
                 id="5-target-not-found"),
    pytest.param(dict(rollback_target_release_id="v3", deployed_release_id="v4"),
                 denied("rollbackTargetNotFound", False), id="5-target-only-on-deployed-replica-set"),
    # 6a. validated: the newest ReplicaSet carrying the target, excluding the deployed one
    pytest.param(dict(rollback_target_release_id="v1"), allowed("rollbackTargetValidated", REV1),
                 id="6-validated-older-target"),
    pytest.param(dict(revisions=(REV1, REV2, REV2_AGAIN, REV3)), allowed("rollbackTargetValidated", REV2_AGAIN),
                 id="6-validated-newest-carrier"),
    pytest.param(dict(revisions=(REV1, REV2, REV2_AGAIN), deployed_replica_set="rs-4"),
                 allowed("rollbackTargetValidated", REV2), id="6-validated-excludes-deployed-replica-set"),
    pytest.param(dict(failure_class=DEPLOY, policy=rules(onDeployFailure=True), revisions=(REV1, REV2),
                      deployed_replica_set=None),
                 allowed("rollbackTargetValidated", REV2), id="6-validated-nothing-deployed-yet"),
    pytest.param(dict(context=SELF_HOSTED, rollback_target_release_id="v1"),
                 allowed("rollbackTargetValidated", REV1), id="6-self-hosted-explicit-target"),
])
def test_policy_rule(fields, expected):
    assert policy.evaluate(inp(**fields)) == expected


@pytest.mark.parametrize("fields, expected", [
    pytest.param(dict(failure_class=DEPLOY, revisions=(REV3,)), "rollbackDisabledForDeployFailure",
                 id="disabled-beats-no-previous-revision"),
    pytest.param(dict(policy=rules(onHealthFailure=False), rollback_target_release_id=None),
                 "rollbackDisabledForHealthFailure", id="disabled-beats-external-without-target"),
    pytest.param(dict(policy=rules(onHealthFailure=False), context=SELF_HOSTED, crd_changed=True),
                 "rollbackDisabledForHealthFailure", id="disabled-beats-crd-changed"),
    pytest.param(dict(context=SELF_HOSTED, crd_changed=True, revisions=(REV3,)), "crdChangedSinceDeploy",
                 id="crd-changed-beats-no-previous-revision"),
    pytest.param(dict(revisions=(REV3,), rollback_target_release_id=None), "noPreviousRevision",
                 id="no-previous-revision-beats-external-without-target"),
    pytest.param(dict(revisions=(REV3,), rollback_target_release_id="v3"), "noPreviousRevision",
                 id="no-previous-revision-beats-same-as-deployed"),
    pytest.param(dict(rollback_target_release_id="v3"), "rollbackTargetSameAsDeployed",
                 id="same-as-deployed-beats-not-found"),
])
def test_policy_order_first_match_wins(fields, expected):
    assert policy.evaluate(inp(**fields)).reason == expected


@pytest.mark.parametrize("decision, expected", [
    pytest.param(allowed("rollbackTargetValidated", REV2), True, id="allowed"),
    pytest.param(denied("noPreviousRevision"), False, id="denied"),
    pytest.param(PolicyDecision(PolicyStatus.NOT_EVALUATED, "x"), False, id="not-evaluated"),
])
def test_decision_allowed(decision, expected):
    assert decision.allowed is expected


def test_rollback_policy_defaults():
    defaults = RollbackPolicy()
    assert (defaults.on_deploy_failure, defaults.on_health_failure, defaults.on_restart_watchdog_failure) == (
        False, True, True)


def test_a_release_claimed_by_two_different_templates_is_ambiguous():
    other_v2 = rev("rs-9", 9, "v2", template=tmpl("v2", labels={"app": "web", "variant": "b"}))
    d = policy.evaluate(inp(revisions=(REV1, REV2, other_v2, REV3)))
    assert (d.status, d.reason, d.target_valid, d.target) == (DENIED, "rollbackTargetAmbiguous", False, None)


def test_the_same_template_under_two_revisions_is_not_ambiguous():
    again = rev("rs-2b", 5, "v2")
    d = policy.evaluate(inp(revisions=(REV1, REV2, again, REV3)))
    assert (d.status, d.reason, d.target) == (ALLOWED, "rollbackTargetValidated", again)


UNSAFE = "the StatefulSet updates OnDelete: an undo would change its template and no pod until each is deleted by hand"


@pytest.mark.parametrize("fields, expected", [
    pytest.param(dict(revisions=(REV1, replace(REV2, undo_refusal=UNSAFE), REV3)),
                 PolicyDecision(DENIED, "undoUnsafe", True, None, UNSAFE), id="the-target-s-undo-is-unsafe"),
    pytest.param(dict(revisions=(replace(REV1, undo_refusal=UNSAFE), REV2, REV3)),
                 allowed("rollbackTargetValidated", REV2), id="another-revision-s-refusal-does-not-count"),
    pytest.param(dict(revisions=(REV1, replace(REV2, undo_refusal=UNSAFE), REV3), policy=rules(onHealthFailure=False)),
                 denied("rollbackDisabledForHealthFailure"), id="the-policy-s-own-denial-comes-first"),
])
def test_an_undo_that_would_not_put_every_pod_back_is_denied_saying_why(fields, expected):
    assert policy.evaluate(inp(**fields)) == expected
