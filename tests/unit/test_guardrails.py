"""core/guardrails.py: change windows and the interval between self-updates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from selfbootstrap.core import guardrails as g

MON = datetime(2030, 1, 7, tzinfo=UTC)  # a Monday, 00:00 UTC


def at(day: int, hh: int, mm: int = 0) -> datetime:
    return MON + timedelta(days=day, hours=hh, minutes=mm)


@pytest.mark.parametrize("text, when, inside", [
    ("Mon-Fri 08:00-18:00", at(0, 8), True),
    ("Mon-Fri 08:00-18:00", at(0, 18), False),
    ("Mon-Fri 08:00-18:00", at(5, 10), False),  # Saturday
    ("Sat,Sun 00:00-24:00", at(6, 23, 59), True),
    ("Sat,Sun 00:00-24:00", at(0, 0), False),
    ("22:00-06:00", at(2, 23), True),
    ("22:00-06:00", at(3, 5, 59), True),
    ("22:00-06:00", at(3, 6), False),
    ("Fri 22:00-06:00", at(5, 3), True),  # began Friday night
    ("Fri 22:00-06:00", at(6, 3), False),
    ("Fri-Mon 09:00-10:00", at(0, 9, 30), True),  # a range across the week's end
    ("fri-mon 09:00-10:00", at(2, 9, 30), False),
])
def test_a_window_contains_its_moments(text, when, inside):
    assert g.parse_window(text).contains(when) is inside


@pytest.mark.parametrize("text", ["8-18", "Mon-Fri", "Mon-Fri 25:00-26:00", "Funday 08:00-09:00", "08:00-18:60"])
def test_a_bad_window_is_refused_saying_what(text):
    with pytest.raises(ValueError):
        g.parse_window(text)


def test_outside_the_windows_a_self_update_waits_until_one_opens():
    windows = (g.parse_window("Mon-Fri 08:00-18:00"),)
    hold = g.self_update_hold(windows, 0, None, at(4, 19))  # Friday evening
    assert hold is not None and hold.until == at(7, 8)  # next Monday 08:00
    assert "outside the self-update windows" in hold.message
    assert g.self_update_hold(windows, 0, None, at(0, 9)) is None


def test_self_updates_are_at_least_the_interval_apart():
    hold = g.self_update_hold((), 3600, at(0, 9), at(0, 9, 30))
    assert hold is not None and hold.until == at(0, 10)
    assert g.self_update_hold((), 3600, at(0, 9), at(0, 10)) is None
    assert g.self_update_hold((), 3600, None, at(0, 9)) is None


@given(st.integers(0, 6), st.integers(0, 1439), st.integers(0, 1439), st.integers(0, 7 * 1440 - 1))
def test_a_window_opens_next_when_it_says(day, start, end, moment):
    window = g.Window(frozenset({day}), start, end)
    now = MON + timedelta(minutes=moment)
    opens = window.next_start(now)
    assert now < opens <= now + timedelta(days=8) and window.contains(opens)


# --- at the gate -------------------------------------------------------------------------------------


def test_a_self_update_outside_the_windows_waits_queued_and_an_app_does_not():
    from dataclasses import replace

    from selfbootstrap.core import machine
    from selfbootstrap.core.world import Limits

    from .factories import deployment, run, spec, status, world

    limits = Limits(self_update_windows=(g.parse_window("Mon-Fri 08:00-18:00"),))
    saturday = at(5, 12)
    self_hosted = spec(target={"deployment": "web", "deploymentContext": "selfHosted"})
    pending = status(phase="Pending", reason="Accepted")
    d = machine.decide(run(pending, self_hosted), replace(world(deployment()), limits=limits), saturday)
    assert (d.status.phase, d.status.reason, d.action) == ("Pending", "Queued", None)
    assert "outside the self-update windows: waiting until 2030-01-14T08:00:00+00:00" in (d.status.message or "")
    assert d.requeue_after == pytest.approx(44 * 3600)
    app = machine.decide(run(pending, spec()), replace(world(deployment()), limits=limits), saturday)
    assert type(app.action).__name__ == "ResolveImage", "it goes: the registry is asked before the deploy"
    monday = machine.decide(run(pending, self_hosted), replace(world(deployment()), limits=limits), at(7, 9))
    assert type(monday.action).__name__ == "ResolveImage"


def test_a_self_update_soon_after_the_last_one_waits_for_the_interval():
    from dataclasses import replace

    from selfbootstrap.core import machine, record
    from selfbootstrap.core.world import Limits
    from selfbootstrap.models import RUNS_ANNOTATION

    from .factories import deployment, run, spec, status, world

    last = record.Claimant("before", "u-0", "v1", created="2029-12-01T00:00:00Z")
    rec = record.outcome(record.deployed(record.claimed(record.Record(), last, at(0, 8)), "u-0", at(0, 8)),
                         "u-0", record.SUCCEEDED, at(0, 9), release=True)
    dep = deployment(annotations={RUNS_ANNOTATION: record.render(rec)})
    limits = Limits(self_update_min_interval=3600)
    self_hosted = spec(target={"deployment": "web", "deploymentContext": "selfHosted"})
    d = machine.decide(run(status(phase="Pending", reason="Accepted"), self_hosted),
                       replace(world(dep), limits=limits), at(0, 9, 30))
    assert (d.status.reason, d.requeue_after) == ("Queued", pytest.approx(1800))
    assert "at least 3600s apart" in (d.status.message or "")
