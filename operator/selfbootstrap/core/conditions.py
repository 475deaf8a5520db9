"""Kubernetes-style status conditions, derived from the run's phase and outcome.

They serve three kinds of readers:
- pipelines, Job-style: `Complete` turns True when the run succeeded, `Failed` when it failed
  or rolled back, so `kubectl wait --for=condition=Complete` (or `=Failed`) returns as the run ends;
- kstatus (Flux, kpt, Argo CD's generic health): `Reconciling` while the run is in flight, `Ready`
  when it succeeded, `Stalled` when it ended in failure; `kubectl wait --for=condition=Reconciling=False`
  returns when the run has ended either way;
- people: `Degraded` keeps what failed (the cause, also after a rollback), `RolledBack` says whether
  the Deployment was put back, `Progressing` mirrors `Reconciling`.
"""

from __future__ import annotations

from datetime import datetime

from ..models import PHASES, TERMINAL_PHASES, Condition, Phase, RunStatus
from . import reasons

PROGRESSING = "Progressing"
RECONCILING = "Reconciling"
READY = "Ready"
STALLED = "Stalled"
COMPLETE = "Complete"
FAILED = "Failed"
DEGRADED = "Degraded"
ROLLED_BACK = "RolledBack"

FAILED_PHASES = frozenset(p for p, rule in PHASES.items() if rule.failed)
DONE_PHASES = frozenset(p for p, rule in PHASES.items() if rule.done)


def set_condition(conditions: list[Condition], new: Condition) -> list[Condition]:
    """Replace the condition of the same type; keep lastTransitionTime when status is unchanged."""
    out = []
    for old in conditions:
        if old.type != new.type:
            out.append(old)
        elif old.status == new.status:
            new = new.model_copy(update={"last_transition_time": old.last_transition_time})
    return sorted([*out, new], key=lambda c: c.type)


def derive(status: RunStatus, generation: int | None, now: datetime) -> list[Condition]:
    """The conditions a status implies."""
    phase = status.phase
    reason = status.reason or (phase or "Unknown")
    message = status.message or ""
    in_flight = phase not in TERMINAL_PHASES
    failed = phase in FAILED_PHASES
    degraded = status.rollback_failure_class is not None or phase == Phase.FAILED
    rolled_back = phase == Phase.ROLLED_BACK

    def cond(type_: str, ok: bool, why: str, text: str = message) -> Condition:
        return Condition(type=type_, status="True" if ok else "False", reason=why, message=text,
                         observed_generation=generation, last_transition_time=now)

    conditions = status.conditions
    for c in (
        cond(RECONCILING, in_flight, reason if in_flight else reasons.FINISHED, message if in_flight else ""),
        cond(PROGRESSING, in_flight, reason),
        cond(READY, phase in DONE_PHASES, reason),
        cond(COMPLETE, phase in DONE_PHASES, reason if phase in DONE_PHASES else reasons.NOT_COMPLETE,
             message if phase in DONE_PHASES else ""),
        cond(STALLED, failed, reason if failed else reasons.NOT_STALLED, message if failed else ""),
        cond(FAILED, failed, reason if failed else reasons.NOT_FAILED, message if failed else ""),
        cond(DEGRADED, degraded,
             (status.rollback_failure_class or status.failure_reason or reason) if degraded else reasons.AS_EXPECTED,
             (status.failure_message or message) if degraded else ""),
        cond(ROLLED_BACK, rolled_back, reason if rolled_back else reasons.NOT_ROLLED_BACK,
             message if rolled_back else ""),
    ):
        conditions = set_condition(conditions, c)
    return conditions
