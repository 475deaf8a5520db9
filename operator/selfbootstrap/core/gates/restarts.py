"""The restart watchdog gate (spec.restartWatchdog): `retries` observations of the new ReplicaSet's pods,
`intervalSeconds` apart (the first at once); any unstable one fails, all stable passes."""

from __future__ import annotations

from typing import Final

from ...models import FailureClass, Phase, RunSpec, WatchdogStatus
from .. import reasons, watchdog
from ..actions import Action, Failed, Result
from ..draft import Draft
from ..world import World
from .protocol import Fail, Hold, Pass, Step

POD_LAG_SECONDS: Final = 0.5  # how soon to look again when fewer pods are seen than the Deployment counts


class RestartWatchdog:
    kind: Final = "restartWatchdog"
    phase: Final = Phase.WATCHING_RESTARTS
    fails_fast_on_crash: Final = False  # it judges the pods itself

    def enabled(self, spec: RunSpec) -> bool:
        return spec.restart_watchdog.enabled

    def describe(self, spec: RunSpec) -> tuple[str, ...]:
        wd = spec.restart_watchdog
        return (f"restart watchdog: {wd.retries} observations {wd.interval_seconds:g}s apart, at most "
                f"{wd.restart_threshold} restarts per pod",)

    def during_rollout(self, spec: RunSpec) -> bool:
        return False

    def enter(self, d: Draft, message: str) -> None:
        d.enter(Phase.WATCHING_RESTARTS, reasons.HEALTHY, f"{message}; watching for restarts")

    def step(self, d: Draft, world: World) -> Step:
        cfg = d.run.spec.restart_watchdog
        last = d.status.restart_watchdog_checked_at
        wait = 0.0 if last is None else max(0.0, cfg.interval_seconds - (d.now - last).total_seconds())
        if wait > 0:
            return Hold(wait)
        dep = world.deployment
        if dep is not None and sum(1 for p in world.pods if p.started) < dep.available_replicas:
            return Hold(POD_LAG_SECONDS)  # the observation has not caught up with the Deployment's own count
        attempt = d.status.restart_watchdog_attempts + 1
        verdict = watchdog.stability_verdict(world.pods, cfg.restart_threshold)
        d.set(restart_watchdog_attempts=attempt, restart_watchdog_checked_at=d.now,
              restart_watchdog_reason=verdict.reason)
        if not verdict.stable:
            d.set(restart_watchdog_status=WatchdogStatus.UNSTABLE)
            return Fail(FailureClass.RESTART_WATCHDOG, reasons.RESTART_WATCHDOG_FAILED, verdict.message)
        if attempt >= cfg.retries:
            d.set(restart_watchdog_status=WatchdogStatus.STABLE)
            return Pass(f"{verdict.message} over {attempt} observations")
        d.enter(Phase.WATCHING_RESTARTS, reasons.OBSERVING,
                f"observation {attempt} of {cfg.retries}: {verdict.message}")
        return Hold(cfg.interval_seconds)

    def owns(self, action: Action) -> bool:
        return False  # it only looks at the pods the watches bring

    def settle(self, d: Draft, world: World, action: Action, result: Result) -> Step:
        raise AssertionError("the restart watchdog asks for no action")

    def failed(self, d: Draft, world: World, action: Action, failure: Failed) -> Step:
        raise AssertionError("the restart watchdog asks for no action")


GATE: Final = RestartWatchdog()
