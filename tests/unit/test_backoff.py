"""CI polling backoff: the older system's contract (first check at once, 10, 20, 40, 60, 60 ... within 600)."""

from __future__ import annotations

import pytest

from selfbootstrap.core.backoff import after_check
from selfbootstrap.models import CISettings, CIStatus

from .factories import T0, at

DEFAULTS = CISettings()


def waits(settings: CISettings, checks_at: list[float]) -> list[float | str]:
    """The wait after each pending answer, or the final status."""
    out: list[float | str] = []
    last = None
    for t in checks_at:
        poll = after_check(CIStatus.PENDING, T0, at(t), last, settings)
        out.append((poll.wait_seconds or 0.0) if poll.status == CIStatus.PENDING else str(poll.status))
        last = poll.wait_seconds
    return out


def test_default_schedule_doubles_and_caps_at_the_maximum():
    assert waits(DEFAULTS, [0, 10, 30, 70, 130, 190]) == [10, 20, 40, 60, 60, 60]


def test_pending_after_the_overall_limit_is_a_timeout():
    assert waits(DEFAULTS, [0, 10, 30, 70, 600]) == [10, 20, 40, 60, "timeout"]


@pytest.mark.parametrize("answer", [CIStatus.SUCCESS, CIStatus.FAILURE])
@pytest.mark.parametrize("elapsed", [0, 599, 10_000], ids=["first-check", "late", "past-limit"])
def test_a_final_answer_ends_polling_even_past_the_limit(answer, elapsed):
    poll = after_check(answer, T0, at(elapsed), 40.0, DEFAULTS)
    assert (poll.status, poll.wait_seconds) == (answer, None)


@pytest.mark.parametrize("settings, expected", [
    (CISettings(initial_interval_seconds=1, factor=3, max_interval_seconds=20, timeout_seconds=1000),
     [1, 3, 9, 20, 20]),
    (CISettings(initial_interval_seconds=5, factor=1, max_interval_seconds=5, timeout_seconds=1000),
     [5, 5, 5, 5, 5]),
], ids=["factor-3", "constant"])
def test_custom_factor_and_cap(settings, expected):
    assert waits(settings, [0, 1, 2, 3, 4]) == expected
