"""Bounded waits: poll until something is true, or check that it stays true."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def poll(predicate: Callable[[], T], timeout: float, interval: float = 0.25) -> T | None:
    """predicate()'s first truthy value within timeout seconds, or None: it is tried at least once, and once
    more when the time is up."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def wait_for(predicate: Callable[[], T], timeout: float, message: str | Callable[[], str],
             interval: float = 0.25) -> T:
    """Poll until predicate() is truthy and return its value; fail after timeout seconds.

    message may be a callable, evaluated only on failure, to say what was seen instead.
    """
    value = poll(predicate, timeout, interval)
    if value is None:
        text = message() if callable(message) else message
        raise AssertionError(f"timed out after {timeout:g}s: {text}")
    return value


def holds(predicate: Callable[[], Any], seconds: float, message: str | Callable[[], str],
          interval: float = 0.5) -> None:
    """Fail as soon as predicate() is falsy during the next `seconds` (something that must not happen)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not predicate():
            text = message() if callable(message) else message
            raise AssertionError(text)
        time.sleep(interval)
