"""What one decision returns to the shell: the status to persist, at most one action, events, when to look again."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ..models import RunStatus
from .actions import Action


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


@dataclass(frozen=True)
class Event:
    type: EventType
    reason: str
    message: str
    count: int = 1  # > 1: the same Event again (posted as a series, not a new Event)
    seq: int = 0  # its place among the run's Events; it names the Event, so posting it twice is harmless
    on_deployment: bool = False  # a key step: posted on the target Deployment too


@dataclass(frozen=True)
class Decision:
    status: RunStatus
    action: Action | None = None
    events: tuple[Event, ...] = ()
    requeue_after: float | None = None  # None: the run is finished
