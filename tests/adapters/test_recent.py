"""Answers shared for a moment (adapters/recent.py): asked once by many at once, kept for the moment only,
an error never kept."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from selfbootstrap.adapters.recent import RecentAnswers


def test_many_asking_at_once_ask_once_and_all_get_the_answer():
    asked, gate = [], threading.Event()

    def ask() -> str:
        asked.append(1)
        gate.wait(5)
        return "answer"

    recent: RecentAnswers[str, str] = RecentAnswers(10)
    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(recent.answer, "k", ask) for _ in range(16)]
        time.sleep(0.2)  # every asker is waiting on the first
        gate.set()
        assert [f.result() for f in futures] == ["answer"] * 16
    assert len(asked) == 1


@pytest.mark.parametrize("elapsed, asks", [(0.0, 1), (9.9, 1), (10.0, 2), (60.0, 2)])
def test_an_answer_serves_for_its_moment_only(elapsed, asks):
    now, asked = [0.0], []
    recent: RecentAnswers[str, int] = RecentAnswers(10, clock=lambda: now[0])
    recent.answer("k", lambda: asked.append(1) or len(asked))
    now[0] = elapsed
    assert recent.answer("k", lambda: asked.append(1) or len(asked)) == asks
    assert len(asked) == asks


def test_an_error_reaches_those_waiting_and_is_not_kept():
    gate = threading.Event()

    def fails() -> str:
        gate.wait(5)
        raise OSError("unreachable")

    recent: RecentAnswers[str, str] = RecentAnswers(10)
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(recent.answer, "k", fails) for _ in range(4)]
        time.sleep(0.2)
        gate.set()
        assert all(isinstance(f.exception(), OSError) for f in futures)
    assert recent.answer("k", lambda: "later") == "later", "the next asker asks again"


def test_keys_are_answered_apart_and_the_oldest_forgotten_first():
    recent: RecentAnswers[int, int] = RecentAnswers(10, size=3)
    for key in range(5):
        recent.answer(key, lambda key=key: key * 10)
    asked = []
    assert recent.answer(4, lambda: asked.append(4) or -1) == 40
    assert recent.answer(0, lambda: asked.append(0) or -1) == -1, "forgotten: asked again"
    assert asked == [0]
