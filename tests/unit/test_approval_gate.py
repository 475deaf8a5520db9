"""The approval gate (core/gates/approval.py) through the machine: a run waits, at no cost and with a
deadline, for an approval by someone other than its author, before the deploy and/or before success."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from selfbootstrap.core import machine

from .factories import T0, run, spec
from .test_machine import FakeCluster

DAY = 86400


def approving(before_deploy: bool = False, before_success: bool = False, deadline: int = DAY):
    return spec(approval={"beforeDeploy": before_deploy, "beforeSuccess": before_success,
                          "deadlineSeconds": deadline}, restartWatchdog={"enabled": False})


class Driver:
    """A run driven against the fake cluster, with the approvals given along the way."""

    def __init__(self, sp, author: str = "alice"):
        self.cluster, self.sp, self.author = FakeCluster(), sp, author
        self.status, self.now = None, T0
        self.approvals: dict[str, str] = {}
        self.events: list[tuple[str, str]] = []

    def step(self):
        r = replace(run(self.status, self.sp), author=self.author, approvals=dict(self.approvals))
        d = machine.decide(r, self.cluster.world(), self.now)
        if d.action is not None:
            self.events += [(e.type, e.reason) for e in d.events]
            outcome = self.cluster.perform(d.action)
            d = machine.settle(replace(r, status=d.status), self.cluster.world(), d.action, outcome, self.now)
        self.events += [(e.type, e.reason) for e in d.events]
        self.status = d.status
        return d

    def until_settled(self, limit: int = 60):
        """Steps while the run goes on at once; the decision it then waits with."""
        for _ in range(limit):
            d = self.step()
            if d.requeue_after is None or d.requeue_after > machine.POLL_SECONDS:
                return d
            self.now += timedelta(seconds=d.requeue_after)
        raise AssertionError(f"never settled: {self.status}")


def test_a_run_waits_for_approval_before_it_touches_the_deployment_then_deploys():
    drv = Driver(approving(before_deploy=True))
    d = drv.until_settled()
    assert (d.status.phase, d.status.reason) == ("AwaitingApproval", "AwaitingApproval")
    assert "kubectl sbr approve run-1 --stage deploy" in (d.status.message or "")
    assert drv.cluster.actions == []  # nothing asked, nothing patched
    assert d.requeue_after == machine.QUEUE_SECONDS  # no polling: the annotation's change wakes it
    [gate] = d.status.gates
    assert (gate.name, gate.kind, gate.phase) == ("approval-deploy", "approval", "Running")
    drv.approvals["deploy"] = "carol"
    d = drv.until_settled()
    assert d.status.phase == "Succeeded"
    assert drv.cluster.actions[:2] == ["ResolveImage", "PatchDeployment"]
    assert (d.status.gates[0].phase, d.status.gates[0].message) == ("Passed", "approved by carol")
    assert ("Normal", "Approved") in drv.events


def test_the_author_s_own_approval_does_not_count():
    drv = Driver(approving(before_deploy=True), author="alice")
    drv.approvals["deploy"] = "alice"
    d = drv.until_settled()
    assert d.status.phase == "AwaitingApproval"
    assert "alice is the run's author, so their approval does not count" in (d.status.message or "")
    assert drv.cluster.actions == []


def test_no_approval_before_the_deadline_ends_the_run_untouched():
    drv = Driver(approving(before_deploy=True, deadline=600))
    drv.until_settled()
    drv.now += timedelta(seconds=600)
    d = drv.until_settled()
    assert (d.status.phase, d.status.reason) == ("Failed", "ApprovalTimedOut")
    assert "the Deployment was not touched" in (d.status.message or "")
    assert drv.cluster.actions == [] and d.status.gates[0].phase == "Failed"


def test_a_run_waits_after_its_gates_for_approval_to_succeed():
    drv = Driver(approving(before_success=True))
    d = drv.until_settled()
    assert (d.status.phase, d.status.reason) == ("AwaitingApproval", "AwaitingApproval")
    assert d.status.deploy_patched_at is not None  # deployed, gates passed, holding the Deployment
    drv.approvals["success"] = "carol"
    d = drv.until_settled()
    assert (d.status.phase, d.status.message) == ("Succeeded", "approved by carol")


def test_no_approval_to_succeed_by_the_deadline_undoes_the_release_as_an_abort():
    drv = Driver(approving(before_success=True, deadline=600))
    drv.until_settled()
    drv.now += timedelta(seconds=601)
    d = drv.until_settled()
    for _ in range(5):
        if d.status.phase == "RolledBack":
            break
        drv.now += timedelta(seconds=30)
        d = drv.until_settled()
    assert (d.status.phase, d.status.failure_reason, d.status.rollback_failure_class) == (
        "RolledBack", "ApprovalTimedOut", "aborted")
    assert "RollbackDeployment" in drv.cluster.actions


@pytest.mark.parametrize("stage", ["deploy", "success"])
def test_an_approval_given_early_is_used_when_its_stage_comes(stage):
    drv = Driver(approving(before_deploy=True, before_success=True))
    drv.approvals.update({"deploy": "carol", "success": "dave"} if stage == "success" else {"deploy": "carol"})
    d = drv.until_settled()
    expected = "Succeeded" if stage == "success" else "AwaitingApproval"
    assert d.status.phase == expected
    assert "PatchDeployment" in drv.cluster.actions
