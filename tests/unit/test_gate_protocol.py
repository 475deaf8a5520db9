"""The gate protocol (core/gates/): every gate is driven the same way, so a new kind is one class and one
line in the sequence. Shown with a kind a newcomer might add, a soak time, registered here only."""

from __future__ import annotations

from datetime import timedelta

import pytest

from selfbootstrap.core import gates, machine
from selfbootstrap.core.gates import sequence
from selfbootstrap.models import PHASES, FailureClass, Phase

from .factories import T0, spec
from .test_machine import CRASHING_POD, HEALTHY_POD, FakeCluster, decide, settle

SOAK_SECONDS = 60


class Soak:
    """After the other gates, the release must run SOAK_SECONDS before the run succeeds."""

    kind = "soak"
    phase = Phase.WATCHING_RESTARTS
    fails_fast_on_crash = True

    def enabled(self, spec_):
        return True

    def enter(self, d, message):
        d.enter(Phase.WATCHING_RESTARTS, "Soaking", f"{message}; soaking {SOAK_SECONDS}s")

    def step(self, d, world):
        started = gates.entry(d.status.gates, self.kind).started_at
        left = SOAK_SECONDS - (d.now - started).total_seconds()
        return gates.Hold(left) if left > 0 else gates.Pass(f"soaked for {SOAK_SECONDS}s")

    def owns(self, action):
        return False

    def settle(self, d, world, action, result):
        raise AssertionError

    def failed(self, d, world, action, failure):
        raise AssertionError


@pytest.fixture
def soak(monkeypatch):
    monkeypatch.setattr(sequence, "SEQUENCE", (*sequence.SEQUENCE, Soak()))


def drive(cluster, sp, limit: int = 80):
    st, now = None, T0
    for _ in range(limit):
        d = decide(st, cluster.world(), sp=sp, now=now)
        if d.action is not None:
            d = settle(d.status, cluster.world(), d.action, cluster.perform(d.action), sp=sp, now=now)
        st = d.status
        if d.requeue_after is None:
            return st, now
        now += timedelta(seconds=d.requeue_after)
    raise AssertionError(f"never finished: {st}")


def test_a_registered_gate_kind_judges_after_the_others(soak):
    st, ended = drive(FakeCluster(), spec(restartWatchdog={"retries": 2, "intervalSeconds": 5}))
    assert st.phase == "Succeeded" and st.message == f"soaked for {SOAK_SECONDS}s"
    assert [(g.kind, g.phase) for g in st.gates] == [("restartWatchdog", "Passed"), ("soak", "Passed")]
    assert ("WatchingRestarts", "Soaking") in [(t.phase, t.reason) for t in st.history]
    assert (ended - st.gates[1].started_at).total_seconds() >= SOAK_SECONDS


def test_a_registered_gate_kind_is_ended_by_a_crash_as_any_gate_is(soak):
    cluster = FakeCluster()
    sp = spec(restartWatchdog={"retries": 1, "intervalSeconds": 1})
    st, now = None, T0
    while st is None or st.reason != "Soaking":
        d = decide(st, cluster.world(), sp=sp, now=now)
        if d.action is not None:
            d = settle(d.status, cluster.world(), d.action, cluster.perform(d.action), sp=sp, now=now)
        st, now = d.status, now + timedelta(seconds=d.requeue_after or 0)
    cluster.pods = (CRASHING_POD,)
    d = decide(st, cluster.world(), sp=sp, now=now)
    assert (d.status.phase, d.status.rollback_failure_class) == ("RollingBack", FailureClass.RESTART_WATCHDOG)
    assert [(g.kind, g.phase) for g in d.status.gates][-1] == ("soak", "Failed")
    cluster.pods = (HEALTHY_POD,)


def test_every_gate_s_phase_is_in_the_phase_table_and_every_gate_has_a_failure_path():
    for gate in sequence.SEQUENCE:
        assert gate.phase in PHASES and not PHASES[gate.phase].terminal, gate.kind
    kinds = [g.kind for g in sequence.SEQUENCE]
    assert len(kinds) == len(set(kinds)) and kinds == ["http", "selfTest", "analysis", "restartWatchdog"]


def test_the_gates_a_run_passes_are_in_status_with_one_shape():
    cluster = FakeCluster()
    st, _ = drive(cluster, spec(restartWatchdog={"retries": 1, "intervalSeconds": 1}))
    [watch] = st.gates
    assert (watch.name, watch.kind, watch.phase, watch.started_at is not None, watch.finished_at is not None) == (
        "restartWatchdog", "restartWatchdog", "Passed", True, True)
    assert machine.decide is not None
