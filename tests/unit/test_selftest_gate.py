"""The self-test gate (core/gates/selftest.py): a selfHosted run trusts the new operator only once its pods
report their self-test passed; driven end to end against the fake cluster."""

from __future__ import annotations

from dataclasses import replace

import pytest

from selfbootstrap.core.gates import selftest
from selfbootstrap.models import FailureClass

from .factories import pod, spec
from .test_machine import CRASHING_POD, FakeCluster, drive

SELF_HOSTED = {"target": {"deploymentContext": "selfHosted"}, "restartWatchdog": {"enabled": False}}
PASSED = replace(pod("op-1"), self_test=True, self_test_message="CRD and 3 runs in flight fit this version")
PASSED_2 = replace(PASSED, name="op-2")
FAILED = replace(pod("op-2"), self_test=False, self_test_message="the installed CRD lacks spec.selfTest")
SILENT = pod("op-3")


@pytest.mark.parametrize(("pods", "phase", "reason", "says"), [
    pytest.param((PASSED,), "Succeeded", "Succeeded", "passed its self-test on 1 pod(s)", id="one-pod-passed"),
    pytest.param((PASSED, PASSED_2), "Succeeded", "Succeeded", "on 2 pod(s)", id="every-pod-passed"),
    pytest.param((PASSED, FAILED), "RolledBack", "RolledBack", "op-2 failed its self-test: the installed CRD lacks",
                 id="one-pod-failed"),
    pytest.param((PASSED, SILENT), "RolledBack", "RolledBack", "no self-test report within 60s from op-3",
                 id="one-pod-silent"),
    pytest.param((), "RolledBack", "RolledBack", "from any pod of the new release", id="no-pod"),
    pytest.param((CRASHING_POD,), "RolledBack", "RolledBack", "CrashLoopBackOff", id="crash-looping"),
])
def test_the_gate_passes_only_when_every_new_pod_reports_passed(pods, phase, reason, says):
    sections = {**SELF_HOSTED, "selfTest": {"timeoutSeconds": 60}}
    if pods == (CRASHING_POD,):
        sections["restartWatchdog"] = {"enabled": True}
    cluster = FakeCluster(pods)
    st, _ = drive(cluster, spec(**sections), steps=200)
    assert (st.phase, st.reason) == (phase, reason), st.message
    assert says in (st.message or "")
    gate = next((g for g in st.gates if g.kind == selftest.KIND), None)
    if pods != (CRASHING_POD,):
        assert gate is not None and gate.phase == ("Passed" if phase == "Succeeded" else "Failed")
    if phase == "RolledBack" and pods != (CRASHING_POD,):
        assert st.rollback_failure_class == FailureClass.SELF_TEST


def test_it_judges_only_self_hosted_runs_that_ask_for_it():
    assert selftest.GATE.enabled(spec(**SELF_HOSTED))
    assert not selftest.GATE.enabled(spec(**{**SELF_HOSTED, "selfTest": {"enabled": False}}))
    assert not selftest.GATE.enabled(spec())


def test_a_failed_self_test_follows_the_policy():
    sections = {**SELF_HOSTED, "rollbackPolicy": {"onSelfTestFailure": False}}
    st, _ = drive(FakeCluster((FAILED,)), spec(**sections))
    assert (st.phase, st.rollback_policy_status, st.rollback_policy_reason) == (
        "Failed", "denied", "rollbackDisabledForSelfTestFailure")
