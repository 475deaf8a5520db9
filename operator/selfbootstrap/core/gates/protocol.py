"""What a gate kind is to the machine: a phase, a failure class, and three pure steps.

A gate kind is one object (one module in this package) and one line in sequence.py. The machine
runs the gates after the rollout, in the sequence's order, skipping those a run does not ask for:
it enters a gate (`enter`), asks it for the next step while the run is in the gate's phase (`step`),
hands it the results of its own actions (`settle`, `failed`), and turns the step into a decision:
act, wait, go on to the next gate, or fail with the gate's failure class (the rollback policy then
decides). What every gate shares stays in the machine: the template must still be the run's, and
the Deployment must not have given up its rollout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeAlias

from ...models import FailureClass, GatePhase, GateStatus, Phase, RunSpec
from ..actions import Action, Failed, Result
from ..draft import Draft
from ..text import printable
from ..world import World


@dataclass(frozen=True)
class Act:
    """Perform the action; look again after `seconds` unless its result comes first."""

    action: Action
    seconds: float


@dataclass(frozen=True)
class Hold:
    """Nothing to do now: look again after `seconds` (0: at once)."""

    seconds: float


@dataclass(frozen=True)
class Pass:
    message: str


@dataclass(frozen=True)
class Fail:
    failure: FailureClass
    reason: str
    message: str


Step: TypeAlias = Act | Hold | Pass | Fail


class Gate(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def phase(self) -> Phase:
        """The phase a run is in while this gate judges it."""

    @property
    def fails_fast_on_crash(self) -> bool:
        """Whether a crash signal in the new pods ends this gate at once (a gate that judges the pods
        itself says no)."""

    def enabled(self, spec: RunSpec) -> bool: ...

    def describe(self, spec: RunSpec) -> tuple[str, ...]:
        """What it judges, for a person (`kubectl sbr plan`): a line per check, `kind: ...`."""

    def during_rollout(self, spec: RunSpec) -> bool:
        """Whether it judges alongside the rollout, from the first ready pod of the new release, rather than
        after it (it then goes on in its own phase if it has not ended by then)."""

    def enter(self, d: Draft, message: str) -> None:
        """The run enters the gate (after `message`, what passed before): its phase, its status."""

    def step(self, d: Draft, world: World) -> Step: ...

    def owns(self, action: Action) -> bool:
        """Whether the action is one this gate asks for (its results come back to it)."""

    def settle(self, d: Draft, world: World, action: Action, result: Result) -> Step: ...

    def failed(self, d: Draft, world: World, action: Action, failure: Failed) -> Step: ...


def set_gate(d: Draft, gate: GateStatus) -> None:
    """The gate's entry in status.gates[], replaced by name."""
    d.set(gates=[*(g for g in d.status.gates if g.name != gate.name), gate])


def entry(statuses: Sequence[GateStatus], kind: str) -> GateStatus | None:
    return next((g for g in statuses if g.name == kind), None)


def closed(gate: GateStatus, phase: GatePhase, message: str, now: datetime) -> GateStatus:
    return gate.model_copy(update={"phase": phase, "message": printable(message), "finished_at": now})
