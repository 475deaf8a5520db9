"""The approval gate: a person other than the run's author says go, before the deploy and/or before the run
succeeds (spec.approval).

Pure. An approval is the annotation approve.selfbootstrap.dev/<stage> naming who gave it; the admission
policy lets only that user set it, only with the `approve` verb on selfbootstrapruns, and never the run's
author (selfbootstrap.dev/author, which only its creator may set). The gate counts an approval by the
author as none, too, so a cluster without the policy does not turn self-approval into approval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, TypeAlias

from ...models import ApprovalStage, GatePhase, GateStatus, RunSpec
from ..run import Run
from ..text import NAME_LIMIT, printable
from .protocol import entry

KIND: Final = "approval"


def name(stage: ApprovalStage) -> str:
    return f"approval-{stage.value}"


def needed(spec: RunSpec, stage: ApprovalStage) -> bool:
    approval = spec.approval
    if approval is None:
        return False
    return approval.before_deploy if stage == ApprovalStage.DEPLOY else approval.before_success


def current(gates: Sequence[GateStatus], stage: ApprovalStage) -> GateStatus | None:
    return entry(gates, name(stage))


@dataclass(frozen=True)
class Approved:
    gate: GateStatus
    by: str


@dataclass(frozen=True)
class Waiting:
    gate: GateStatus
    until: datetime


@dataclass(frozen=True)
class TimedOut:
    gate: GateStatus
    message: str


Verdict: TypeAlias = Approved | Waiting | TimedOut


def verdict(run: Run, stage: ApprovalStage, now: datetime) -> Verdict:
    """Whether the stage is approved, still awaited (until when), or was not approved in time."""
    assert run.spec.approval is not None, "an approval is only judged when the spec asks for one"
    gate = current(run.status.gates, stage) or GateStatus(name=name(stage), kind=KIND, started_at=now)
    started = gate.started_at or now
    until = started + timedelta(seconds=run.spec.approval.deadline_seconds)
    who = run.approvals.get(stage.value)
    if who and who != run.author:
        shown = printable(who, NAME_LIMIT)
        return Approved(gate.model_copy(update={"phase": GatePhase.PASSED, "finished_at": now,
                                                "message": f"approved by {shown}"}), shown)
    if now >= until:
        message = (f"not approved to {_what(stage)} within {run.spec.approval.deadline_seconds}s "
                   f"(since {started.isoformat()})")
        return TimedOut(gate.model_copy(update={"phase": GatePhase.FAILED, "finished_at": now, "message": message}),
                        message)
    message = f"waiting until {until.isoformat()} for someone other than the author to approve: " \
              f"kubectl sbr approve {run.name} --stage {stage.value}"
    if who:  # the author approved their own run: the admission policy refuses that; not counted here either
        message = f"{printable(who, NAME_LIMIT)} is the run's author, so their approval does not count; {message}"
    return Waiting(gate.model_copy(update={"phase": GatePhase.RUNNING, "message": message}), until)


def _what(stage: ApprovalStage) -> str:
    return "deploy" if stage == ApprovalStage.DEPLOY else "succeed"
