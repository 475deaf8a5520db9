"""Kubernetes-style status conditions, derived from the run's phase and outcome."""

from __future__ import annotations

from datetime import datetime

from ..models import TERMINAL_PHASES, Condition, Phase, RunStatus
from . import reasons

PROGRESSING = "Progressing"
READY = "Ready"
DEGRADED = "Degraded"
ROLLED_BACK = "RolledBack"


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
    degraded = status.rollback_failure_class is not None or phase == Phase.FAILED

    def cond(type_: str, ok: bool, why: str, text: str = message) -> Condition:
        return Condition(type=type_, status="True" if ok else "False", reason=why, message=text,
                         observed_generation=generation, last_transition_time=now)

    conditions = status.conditions
    for c in (
        cond(PROGRESSING, phase not in TERMINAL_PHASES, reason),
        cond(READY, phase == Phase.SUCCEEDED, reason),
        cond(DEGRADED, degraded,
             (status.rollback_failure_class or status.failure_reason or reason) if degraded else reasons.AS_EXPECTED,
             (status.failure_message or message) if degraded else ""),
        cond(ROLLED_BACK, phase == Phase.ROLLED_BACK, reason if phase == Phase.ROLLED_BACK else reasons.NOT_ROLLED_BACK,
             message if phase == Phase.ROLLED_BACK else ""),
    ):
        conditions = set_condition(conditions, c)
    return conditions
