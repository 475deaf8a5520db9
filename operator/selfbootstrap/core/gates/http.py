"""The HTTP check gate (spec.health.http): once the rollout is complete, GET the URL until it answers the
expected status, `retries` attempts `intervalSeconds` apart, the first healthy answer ends it."""

from __future__ import annotations

from typing import Final

from ...models import FailureClass, HealthStatus, Phase, RunSpec
from .. import reasons
from ..actions import Action, Failed, Probed, ProbeHttp, Result
from ..draft import Draft
from ..world import World
from .protocol import Act, Fail, Hold, Pass, Step


class HttpCheck:
    kind: Final = "http"
    phase: Final = Phase.VERIFYING_HEALTH
    fails_fast_on_crash: Final = True

    def enabled(self, spec: RunSpec) -> bool:
        return spec.health.http is not None

    def describe(self, spec: RunSpec) -> tuple[str, ...]:
        check = spec.health.http
        assert check is not None
        return (f"http: GET {check.url} answers {check.expected_status}, {check.retries} attempts",)

    def during_rollout(self, spec: RunSpec) -> bool:
        return False

    def enter(self, d: Draft, message: str) -> None:
        """The check runs in VerifyingHealth, where the rollout was followed: nothing to enter."""

    def step(self, d: Draft, world: World) -> Step:
        check = d.run.spec.health.http
        assert check is not None, "the HTTP check gate runs only with spec.health.http"
        wait = _until_next_attempt(d, check.interval_seconds)
        if wait > 0:
            return Hold(wait)
        d.enter(Phase.VERIFYING_HEALTH, reasons.CHECKING_HTTP,
                f"rollout complete; HTTP check {d.status.health_attempts + 1} of {check.retries}")
        return Act(ProbeHttp(check), check.interval_seconds)

    def owns(self, action: Action) -> bool:
        return isinstance(action, ProbeHttp)

    def settle(self, d: Draft, world: World, action: Action, result: Result) -> Step:
        assert isinstance(result, Probed), "a ProbeHttp's result is Probed"
        return _probed(d, result)

    def failed(self, d: Draft, world: World, action: Action, failure: Failed) -> Step:
        if failure.reason == reasons.EGRESS_REFUSED:  # no later attempt can be allowed
            d.set(health_attempts=d.status.health_attempts + 1, health_checked_at=d.now,
                  health_status=HealthStatus.UNHEALTHY)
            return Fail(FailureClass.HEALTH, reasons.EGRESS_REFUSED, failure.message)
        return _probed(d, Probed(healthy=False, detail=failure.message))


def _probed(d: Draft, probe: Probed) -> Step:
    check = d.run.spec.health.http
    assert check is not None, "a probe was performed, so the spec has an HTTP check"
    attempt = d.status.health_attempts + 1
    d.set(health_attempts=attempt, health_checked_at=d.now)
    if probe.healthy:
        return Pass(f"HTTP check passed on attempt {attempt}: {probe.detail}")
    if attempt >= check.retries:
        d.set(health_status=HealthStatus.UNHEALTHY)
        return Fail(FailureClass.HEALTH, reasons.HEALTH_CHECK_FAILED,
                    f"HTTP check failed {attempt} times; last: {probe.detail}")
    d.enter(Phase.VERIFYING_HEALTH, reasons.CHECKING_HTTP,
            f"HTTP check {attempt} of {check.retries} failed: {probe.detail}")
    return Hold(check.interval_seconds)


def _until_next_attempt(d: Draft, interval: float) -> float:
    last = d.status.health_checked_at
    return 0.0 if last is None else max(0.0, interval - (d.now - last).total_seconds())


GATE: Final = HttpCheck()
