"""The self-test gate (spec.selfTest, selfHosted runs): the new operator proves it can serve before it is trusted.

Every operator pod runs its self-test at start (selftest.py: the installed CRD and the runs in flight fit
this version, the API answers, its workers run) and reports the verdict as its pod condition
selfbootstrap.dev/SelfTestPassed, which the chart also makes a readiness gate: a pod that has not passed is
not Ready, so the rolling update keeps the old pod, and with it the old operator's lease, until the new
one has passed. Here the old operator judges that condition on the new release's pods: every pod True
passes, any False fails at once (with the pod's own reason), none within the deadline fails too.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from ...models import SELF_TEST_CONDITION, DeploymentContext, FailureClass, Phase, RunSpec
from .. import reasons
from ..actions import Action, Failed, Result
from ..draft import Draft
from ..world import World
from .protocol import Fail, Hold, Pass, Step, entry

KIND: Final = "selfTest"
WATCH_SECONDS: Final = 30.0  # a pod's report wakes the run; this only bounds a missed event


class SelfTestGate:
    kind: Final = KIND
    phase: Final = Phase.SELF_TESTING
    fails_fast_on_crash: Final = True  # a crash-looping new operator never reports

    def enabled(self, spec: RunSpec) -> bool:
        return spec.target.deployment_context == DeploymentContext.SELF_HOSTED and spec.self_test.enabled

    def describe(self, spec: RunSpec) -> tuple[str, ...]:
        return (f"self-test: every new operator pod reports {SELF_TEST_CONDITION} within "
                f"{spec.self_test.timeout_seconds}s",)

    def during_rollout(self, spec: RunSpec) -> bool:
        return False

    def enter(self, d: Draft, message: str) -> None:
        d.enter(Phase.SELF_TESTING, reasons.SELF_TESTING,
                f"{message}; waiting for the new operator's pods to report their self-test")

    def step(self, d: Draft, world: World) -> Step:
        failed = next((p for p in world.pods if p.self_test is False), None)
        if failed is not None:
            return Fail(FailureClass.SELF_TEST, reasons.SELF_TEST_FAILED,
                        f"operator pod {failed.name} failed its self-test: {failed.self_test_message or 'no reason'}")
        passed = [p for p in world.pods if p.self_test]
        waiting = sorted(p.name for p in world.pods if p.self_test is None)
        if passed and not waiting:
            return Pass(f"the new operator passed its self-test on {len(passed)} pod(s): "
                        f"{passed[0].self_test_message or 'no detail'}")
        gate = entry(d.status.gates, KIND)
        started = gate.started_at if gate is not None and gate.started_at is not None else d.now
        deadline = started + timedelta(seconds=d.run.spec.self_test.timeout_seconds)
        if d.now >= deadline:
            return Fail(FailureClass.SELF_TEST, reasons.SELF_TEST_TIMED_OUT,
                        f"no self-test report within {d.run.spec.self_test.timeout_seconds}s from "
                        f"{', '.join(waiting) or 'any pod of the new release'}")
        return Hold(min(WATCH_SECONDS, (deadline - d.now).total_seconds()))

    def owns(self, action: Action) -> bool:
        return False  # it only reads the pods the watches bring

    def settle(self, d: Draft, world: World, action: Action, result: Result) -> Step:
        raise AssertionError("the self-test gate asks for no action")

    def failed(self, d: Draft, world: World, action: Action, failure: Failed) -> Step:
        raise AssertionError("the self-test gate asks for no action")


GATE: Final = SelfTestGate()
