"""conditions.py: Kubernetes-style conditions derived from the run's phase and outcome."""

from __future__ import annotations

import pytest

from selfbootstrap.core.conditions import derive, set_condition
from selfbootstrap.models import Condition, RunStatus

from .factories import T0, at


def cond(type_: str, status: str, reason: str = "R", message: str = "", when=T0) -> Condition:
    return Condition(type=type_, status=status, reason=reason, message=message, last_transition_time=when)


def by_type(conditions: list[Condition]) -> dict[str, Condition]:
    return {c.type: c for c in conditions}


# --- set_condition ------------------------------------------------------------


@pytest.mark.parametrize("old_status, new_status, expected_time", [
    pytest.param("True", "True", T0, id="unchanged-status-keeps-time"),
    pytest.param("False", "False", T0, id="unchanged-false-keeps-time"),
    pytest.param("True", "False", at(60), id="changed-status-updates-time"),
    pytest.param("Unknown", "True", at(60), id="from-unknown-updates-time"),
])
def test_set_condition_transition_time(old_status, new_status, expected_time):
    old = [cond("Ready", old_status, "Old", "old message", T0)]
    (got,) = set_condition(old, cond("Ready", new_status, "New", "new message", at(60)))
    assert (got.status, got.reason, got.message, got.last_transition_time) == (
        new_status, "New", "new message", expected_time)


def test_set_condition_adds_a_new_type_and_keeps_the_others_sorted():
    old = [cond("Ready", "False", when=T0), cond("Degraded", "True", when=T0)]
    out = set_condition(old, cond("Progressing", "True", when=at(5)))
    assert [(c.type, c.status, c.last_transition_time) for c in out] == [
        ("Degraded", "True", T0), ("Progressing", "True", at(5)), ("Ready", "False", T0)]


def test_set_condition_on_empty_list_and_without_mutating_input():
    old: list[Condition] = [cond("Ready", "True", when=T0)]
    assert set_condition([], cond("Ready", "True", when=at(1))) == [cond("Ready", "True", when=at(1))]
    set_condition(old, cond("Ready", "False", when=at(1)))
    assert old == [cond("Ready", "True", when=T0)]


# --- derive -------------------------------------------------------------------

TYPES = ("Reconciling", "Progressing", "Ready", "Complete", "Stalled", "Failed", "Degraded", "RolledBack")
T, F = "True", "False"


# phase, failure class -> the status of each condition in TYPES
@pytest.mark.parametrize("phase, failure, expected", [
    pytest.param(None, None, (T, T, F, F, F, F, F, F), id="no-phase"),
    pytest.param("Pending", None, (T, T, F, F, F, F, F, F), id="Pending"),
    pytest.param("AwaitingCI", None, (T, T, F, F, F, F, F, F), id="AwaitingCI"),
    pytest.param("Deploying", None, (T, T, F, F, F, F, F, F), id="Deploying"),
    pytest.param("VerifyingHealth", None, (T, T, F, F, F, F, F, F), id="VerifyingHealth"),
    pytest.param("WatchingRestarts", None, (T, T, F, F, F, F, F, F), id="WatchingRestarts"),
    pytest.param("RollingBack", "healthFailure", (T, T, F, F, F, F, T, F), id="RollingBack"),
    pytest.param("Succeeded", None, (F, F, T, T, F, F, F, F), id="Succeeded"),
    pytest.param("Superseded", None, (F, F, T, T, F, F, F, F), id="Superseded"),
    pytest.param("RolledBack", "restartWatchdogFailure", (F, F, F, F, T, T, T, T), id="RolledBack"),
    pytest.param("Failed", None, (F, F, F, F, T, T, T, F), id="Failed"),
    pytest.param("Failed", "deployFailure", (F, F, F, F, T, T, T, F), id="Failed-with-failure-class"),
])
def test_derive_statuses_per_phase(phase, failure, expected):
    """Job-style Complete/Failed for pipelines, kstatus Reconciling/Ready/Stalled for GitOps engines."""
    st = RunStatus(phase=phase, reason="Why", message="what happened", rollback_failure_class=failure)
    got = by_type(derive(st, 4, T0))
    assert tuple(got[t].status for t in TYPES) == expected
    assert sorted(got) == sorted(TYPES)
    assert all(c.observed_generation == 4 and c.last_transition_time == T0 for c in got.values())


def test_a_finished_run_is_no_longer_reconciling_either_way():
    for phase in ("Succeeded", "Failed", "RolledBack", "Superseded"):
        got = by_type(derive(RunStatus(phase=phase, reason="R"), 1, T0))
        assert (got["Reconciling"].status, got["Reconciling"].reason) == ("False", "Finished")


@pytest.mark.parametrize("phase, failure, degraded, rolled_back", [
    pytest.param("Deploying", None, ("AsExpected", ""), ("NotRolledBack", ""), id="healthy-run"),
    pytest.param("Failed", None, ("Why", "what happened"), ("NotRolledBack", ""), id="failed-names-reason"),
    pytest.param("Failed", "deployFailure", ("deployFailure", "what happened"), ("NotRolledBack", ""),
                 id="failed-names-failure-class"),
    pytest.param("RolledBack", "healthFailure", ("healthFailure", "what happened"), ("Why", "what happened"),
                 id="rolled-back"),
])
def test_derive_reasons_and_messages(phase, failure, degraded, rolled_back):
    st = RunStatus(phase=phase, reason="Why", message="what happened", rollback_failure_class=failure)
    got = by_type(derive(st, 1, T0))
    assert (got["Degraded"].reason, got["Degraded"].message) == degraded
    assert (got["RolledBack"].reason, got["RolledBack"].message) == rolled_back
    assert (got["Progressing"].reason, got["Ready"].reason) == ("Why", "Why")


def test_derive_reason_defaults_to_phase_then_unknown():
    assert by_type(derive(RunStatus(phase="Pending"), 1, T0))["Ready"].reason == "Pending"
    assert by_type(derive(RunStatus(), 1, T0))["Ready"].reason == "Unknown"


def test_derive_keeps_transition_times_of_unchanged_conditions():
    first = RunStatus(phase="Deploying", reason="Started", conditions=[])
    first = first.model_copy(update={"conditions": derive(first, 1, T0)})
    second = first.model_copy(update={"phase": "VerifyingHealth", "reason": "Deployed"})
    second = second.model_copy(update={"conditions": derive(second, 1, at(10))})
    done = second.model_copy(update={"phase": "Succeeded", "reason": "Succeeded"})
    got = by_type(derive(done, 2, at(20)))
    assert by_type(second.conditions)["Progressing"].last_transition_time == T0
    assert by_type(second.conditions)["Progressing"].reason == "Deployed"
    assert (got["Progressing"].status, got["Progressing"].last_transition_time) == ("False", at(20))
    assert (got["Ready"].status, got["Ready"].last_transition_time) == ("True", at(20))
    assert (got["Degraded"].status, got["Degraded"].last_transition_time) == ("False", T0)
    assert got["Degraded"].observed_generation == 2


def test_every_phase_has_its_rule_and_the_sets_follow_from_the_table():
    from selfbootstrap import models as m

    assert set(m.PHASES) == set(m.Phase)
    assert {m.Phase.SUCCEEDED, m.Phase.ROLLED_BACK, m.Phase.FAILED, m.Phase.SUPERSEDED} == m.TERMINAL_PHASES
    for phase, rule in m.PHASES.items():
        assert rule.terminal == (rule.done or rule.failed), phase  # an end is either as asked or not
        assert not (rule.done and rule.failed), phase
        assert not (rule.git and (rule.terminal or rule.at_gate)), phase
    assert m.rule_of("NoSuchPhase") == m.PhaseRule()
