"""CI polling with exponential backoff, as the older system's contract has it.

The first check happens at once. After each pending answer: stop with `timeout`
when the overall limit has passed, else wait and grow the wait by `factor`,
capped at the maximum (defaults: 10, 20, 40, 60, 60 ... seconds within 600).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..models import CISettings, CIStatus


@dataclass(frozen=True)
class CIPoll:
    status: CIStatus
    wait_seconds: float | None = None  # until the next check, while pending


def after_check(answer: CIStatus, started_at: datetime, now: datetime, last_wait: float | None,
                settings: CISettings) -> CIPoll:
    if answer != CIStatus.PENDING:
        return CIPoll(answer)
    if (now - started_at).total_seconds() >= settings.timeout_seconds:
        return CIPoll(CIStatus.TIMEOUT)
    wait = settings.initial_interval_seconds if last_wait is None else last_wait * settings.factor
    return CIPoll(CIStatus.PENDING, min(wait, settings.max_interval_seconds))
