"""The run as the core sees it, and the status draft every decision is built on."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..models import HISTORY_LIMIT, TERMINAL_PHASES, Phase, RunSpec, RunStatus, Transition
from . import conditions


@dataclass(frozen=True)
class Outcome:
    """How a side effect went. `retryable`: a conflict or a passing fault; decide again later."""

    ok: bool
    message: str = ""
    retryable: bool = False
    data: dict[str, Any] = field(default_factory=dict)  # what the side effect found or made


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Run:
    """The run as the core sees it."""

    name: str
    generation: int
    spec: RunSpec
    status: RunStatus
    namespace: str = ""
    uid: str = ""


@dataclass(frozen=True)
class Decision:
    status: RunStatus
    action: Any = None  # one of the actions in machine.py / gitflow.py
    events: tuple[Event, ...] = ()
    requeue_after: float | None = None  # None: the run is finished


@dataclass
class Draft:
    """A mutable status under construction, with the events it raises."""

    run: Run
    now: datetime
    status: RunStatus = field(init=False)
    events: list[Event] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.status = self.run.status.model_copy(deep=True)
        self.status.observed_generation = self.run.generation

    def set(self, **fields: Any) -> None:
        self.status = self.status.model_copy(update=fields)

    def event(self, type_: str, reason: str, message: str) -> None:
        self.events.append(Event(type_, reason, message))

    def enter(self, phase: Phase, reason: str, message: str) -> None:
        """Record a phase transition (or a new reason within the phase) in status and history."""
        s = self.status
        if s.phase == phase and s.reason == reason and s.message == message:
            return
        history = s.history
        if s.phase != phase or s.reason != reason:
            history = [*history, Transition(phase=phase, reason=reason, message=message, at=self.now)]
            history = history[-HISTORY_LIMIT:]
        update: dict[str, Any] = {"phase": phase, "reason": reason, "message": message, "history": history}
        if s.phase != phase:
            update["phase_started_at"] = self.now
        if phase in TERMINAL_PHASES:
            update["finished_at"] = self.now
        self.set(**update)

    def decision(self, requeue_after: float | None, action: Any = None) -> Decision:
        self.set(conditions=conditions.derive(self.status, self.run.generation, self.now))
        done = self.status.phase in TERMINAL_PHASES
        return Decision(self.status, action, tuple(self.events), None if done else requeue_after)


    def fail(self, reason: str, message: str) -> Decision:
        self.enter(Phase.FAILED, reason, message)
        self.event("Warning", "Failed", f"{reason}: {message}")
        return self.decision(None)
