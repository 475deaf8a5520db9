"""The promise the run's worker relies on to skip a wake that changes nothing (worker.Decided): a decision
with no side effect stands until its requeue runs out. Decided again at any moment before then on the status it
left and the same world, it asks for nothing, says nothing and leaves the status as it was (no write)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from selfbootstrap.core import machine
from selfbootstrap.core.world import World
from selfbootstrap.models import RUNS_ANNOTATION, RunSpec, RunStatus

from .factories import (
    at,
    container,
    deployed,
    deployment,
    holding,
    pod,
    resolved,
    rolled_back,
    rolling_back,
    run,
    spec,
    status,
    verifying,
    watching,
    world,
)

STATUSES = [status(phase="Pending", reason="Accepted"), resolved(), verifying(), watching(),
            watching(restart_watchdog_checks=1), rolling_back(rollback_patched_at=at(0))]
HEALTHY, UNREADY = pod("web-1"), pod("web-1", container(ready=False), ready=False)
CRASHING = pod("web-1", container(waiting_reason="CrashLoopBackOff", restart_count=3, ready=False), ready=False)
WORLDS = [
    world(deployment()), world(deployed(), (HEALTHY,)), world(deployed(), (UNREADY,)),
    world(deployed(), (CRASHING,)), world(deployed(updated_replicas=0, available_replicas=0), (UNREADY,)),
    world(deployed(observed_generation=0), ()), world(rolled_back(), (HEALTHY,)),
    world(rolled_back(available_replicas=0), (UNREADY,)),
]
SPECS = [spec(), spec(restartWatchdog={"retries": 3, "intervalSeconds": 5}),
         spec(health={"http": {"url": "http://web/healthz", "retries": 2, "intervalSeconds": 5}})]


def held(s: RunStatus, w: World) -> World:
    """A run past Pending holds its workload (its record says so)."""
    if s.phase in (None, "Pending") or w.deployment is None or RUNS_ANNOTATION in w.deployment.annotations:
        return w
    return replace(w, deployment=holding(w.deployment))


def cases() -> list[tuple[RunStatus, World, RunSpec, float]]:
    return [(first, w, sp, elapsed) for first in STATUSES for w in WORLDS for sp in SPECS
            for elapsed in (0.0, 1.0, 4.0, 30.0, 300.0)]


def test_a_decision_stands_until_its_requeue_runs_out():
    """Every run of the table, at several moments of its phase: where the decision waits, deciding again before
    it runs out changes nothing."""
    checked, broken = 0, []
    for first, w, sp, elapsed in cases():
        now = at(elapsed)
        decided, _ = machine.decide_chained(run(first, sp), held(first, w), now)
        if decided.action is not None or not decided.requeue_after:
            continue
        for fraction in (0.0, 0.25, 0.5, 0.9, 0.999):
            later = now + timedelta(seconds=fraction * decided.requeue_after)
            again, events = machine.decide_chained(run(decided.status, sp), held(decided.status, w), later)
            checked += 1
            if again.action is not None or events or again.status != decided.status:
                broken.append((first.phase, WORLDS.index(w), SPECS.index(sp), elapsed, fraction,
                               type(again.action).__name__, [e.reason for e in events]))
    assert checked > 300, "the table reaches waiting decisions"
    assert broken == []
