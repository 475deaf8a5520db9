"""A status under construction: the mutable copy every decision is built on, with the events it raises."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from ..models import HISTORY_LIMIT, TERMINAL_PHASES, EventRecord, Phase, RunStatus, Transition
from . import conditions, reasons
from .actions import Action
from .decision import Decision, Event, EventType
from .run import Run
from .text import printable


@dataclass
class Draft:
    run: Run
    now: datetime
    status: RunStatus = field(init=False)
    events: list[Event] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.status = self.run.status.model_copy(deep=True)
        self.status.observed_generation = self.run.generation

    def set(self, **fields: object) -> None:
        """Set status fields by their model names; a misspelt name or a wrong type raises."""
        for name, value in fields.items():
            if name not in RunStatus.model_fields:
                raise AttributeError(f"RunStatus has no field {name!r}")
            setattr(self.status, name, value)  # validated: RunStatus has validate_assignment

    def event(self, type_: EventType, reason: str, message: str, count: int = 1, seq: int = 0,
              on_deployment: bool = False) -> None:
        self.events.append(Event(type_, reason, printable(message), count, seq, on_deployment))

    def normal(self, reason: str, message: str) -> None:
        self.event(EventType.NORMAL, reason, message)

    def warning(self, reason: str, message: str) -> None:
        self.event(EventType.WARNING, reason, message)

    def enter(self, phase: Phase, reason: str, message: str) -> None:
        """Record a phase transition (or a new reason within the phase) in status and history."""
        s = self.status
        if s.phase == phase and s.reason == reason and s.message == message:
            return
        if s.phase != phase or s.reason != reason:
            entry = Transition(phase=phase, reason=reason, message=message, at=self.now)
            s.history = [*s.history, entry][-HISTORY_LIMIT:]
        if s.phase != phase:
            s.phase_started_at = self.now
            s.retry = None  # the retry budget is per phase
        if phase in TERMINAL_PHASES:
            s.finished_at = self.now
        s.phase, s.reason, s.message = phase, reason, message

    def decision(self, requeue_after: float | None, action: Action | None = None) -> Decision:
        self.status.conditions = conditions.derive(self.status, self.run.generation, self.now)
        events = self._numbered()
        done = self.status.phase in TERMINAL_PHASES
        return Decision(self.status, action, events, None if done else requeue_after)

    def _numbered(self) -> tuple[Event, ...]:
        """Number the new events and keep them in status, so that a restart posts any it lost."""
        if not self.events:
            return ()
        s, numbered = self.status, []
        for event in self.events:
            if event.seq:
                numbered.append(event)
            else:
                s.event_seq += 1
                numbered.append(replace(event, seq=s.event_seq))
        s.last_events = [EventRecord(seq=e.seq, type=e.type, reason=e.reason, message=e.message,
                                     count=e.count, on_deployment=e.on_deployment) for e in numbered]
        return tuple(numbered)

    def fail(self, reason: str, message: str) -> Decision:
        if self.status.failure_reason is None:  # the first failure is the cause; later ones are its sequels
            self.status.failure_reason, self.status.failure_message = reason, message
        self.enter(Phase.FAILED, reason, message)
        self.event(EventType.WARNING, reasons.FAILED, f"{reason}: {message}",
                   on_deployment=self.status.deploy_patched_at is not None)
        return self.decision(None)
