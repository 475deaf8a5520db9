"""Answers shared for a moment: what one asker learned, the others asking the same thing at about the same time
are told, rather than each asking again (a burst of runs of one image asks its registry once, not once a run)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class RecentAnswers(Generic[K, V]):
    """The answer to `key` asked within the last `ttl` seconds, else a new one; askers of a key whose answer is
    on its way wait for it. An error is not kept: the next asker asks again."""

    def __init__(self, ttl: float, size: int = 1024, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.size, self.clock = ttl, size, clock
        self._lock = threading.Lock()
        self._answers: OrderedDict[K, tuple[float, V]] = OrderedDict()  # key -> (until, answer), oldest first
        self._coming: dict[K, Future[V]] = {}

    def answer(self, key: K, ask: Callable[[], V]) -> V:
        with self._lock:
            kept = self._answers.get(key)
            if kept is not None and kept[0] > self.clock():
                return kept[1]
            coming = self._coming.get(key)
            mine = coming is None
            if coming is None:
                coming = self._coming[key] = Future()
        if not mine:
            return coming.result()
        try:
            value = ask()
        except BaseException as err:
            with self._lock:
                del self._coming[key]
            coming.set_exception(err)
            raise
        with self._lock:
            del self._coming[key]
            self._answers.pop(key, None)
            self._answers[key] = (self.clock() + self.ttl, value)
            while len(self._answers) > self.size:
                self._answers.popitem(last=False)
        coming.set_result(value)
        return value
