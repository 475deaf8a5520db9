"""Guardrails for self-updates (a `selfHosted` run upgrades the operator itself): when one may start.

Pure. The installer sets change windows (`Mon-Fri 08:00-18:00`, in UTC; days optional, a window may
run past midnight: `22:00-06:00`) and a minimum interval between self-updates. Outside every window,
or sooner than the interval after the last self-update ended, a self-update waits at the gate (Queued,
saying until when), never half-started. At most one is in flight: one writer per Deployment already
holds, and the operator's own Deployment is one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

DAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_WINDOW: Final = re.compile(r"^(?:(?P<days>[A-Za-z,\-]+)\s+)?(?P<start>\d{1,2}:\d{2})-(?P<end>\d{1,2}:\d{2})$")


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # 0 = Monday, the days a window may begin on
    start: int  # minutes after midnight, UTC
    end: int  # minutes after midnight; at or before start: the window ends the next day

    def contains(self, at: datetime) -> bool:
        minute = at.hour * 60 + at.minute
        if self.start < self.end:
            return at.weekday() in self.days and self.start <= minute < self.end
        # overnight (or a whole day when start == end): began today, or began yesterday
        return (at.weekday() in self.days and minute >= self.start) or \
            ((at.weekday() - 1) % 7 in self.days and minute < self.end)

    def next_start(self, after: datetime) -> datetime:
        """When the window next opens, after the moment (within a week)."""
        midnight = after.replace(hour=0, minute=0, second=0, microsecond=0)
        for day in range(8):
            opening = midnight + timedelta(days=day, minutes=self.start)
            if opening > after and opening.weekday() in self.days:
                return opening
        raise AssertionError("a window opens every week")


def _minutes(text: str) -> int:
    hours, minutes = (int(x) for x in text.split(":"))
    if hours > 24 or minutes > 59 or (hours == 24 and minutes):
        raise ValueError(f"{text!r} is not a time of day (HH:MM, 00:00 to 24:00)")
    return hours * 60 + minutes


def _days(text: str | None) -> frozenset[int]:
    if text is None:
        return frozenset(range(7))
    out: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        try:
            a, b = DAYS.index(first.capitalize()), DAYS.index((last or first).capitalize())
        except ValueError:
            raise ValueError(f"{part!r} is not a day or a range of days ({', '.join(DAYS)})") from None
        out.update((a + i) % 7 for i in range((b - a) % 7 + 1))
    return frozenset(out)


def parse_window(text: str) -> Window:
    """`[days ]HH:MM-HH:MM` in UTC, e.g. `Mon-Fri 08:00-18:00`, `Sat,Sun 00:00-24:00`, `22:00-06:00`;
    ValueError says what is wrong."""
    found = _WINDOW.match(text.strip())
    if not found:
        raise ValueError(f"{text!r} is not a change window: [days ]HH:MM-HH:MM, e.g. 'Mon-Fri 08:00-18:00' (UTC)")
    return Window(_days(found["days"]), _minutes(found["start"]), _minutes(found["end"]) % (24 * 60))


@dataclass(frozen=True)
class Hold:
    message: str
    until: datetime


def self_update_hold(windows: tuple[Window, ...], min_interval: float, last_ended: datetime | None,
                     now: datetime) -> Hold | None:
    """Why a self-update may not start now, and until when; None: it may."""
    if last_ended is not None and min_interval > 0:
        allowed = last_ended + timedelta(seconds=min_interval)
        if now < allowed:
            return Hold(f"the last self-update ended at {last_ended.isoformat()}, and self-updates are at least "
                        f"{min_interval:g}s apart: waiting until {allowed.isoformat()}", allowed)
    if windows and not any(w.contains(now) for w in windows):
        opens = min(w.next_start(now) for w in windows)
        return Hold(f"outside the self-update windows: waiting until {opens.isoformat()}", opens)
    return None
