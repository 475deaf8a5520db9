"""Fair to every tenant: what one namespace's runs may cost the others.

- `FairExecutor`: the ticks' blocking work (API writes, git, probes) runs on a few threads; work waits
  in one queue per namespace and the threads take from the namespaces in turn, so a namespace with a
  thousand runs to serve delays another's next step by at most one step of its own per thread.
- `Ledger`: how many runs of each namespace are past Pending (for the installer's bound on runs in
  flight per namespace), who waits for a slot, and since when this operator has known each run (the
  gate's quiet moment). A run waiting for a slot is woken only when one frees, oldest first: waiting
  costs nothing, and a run that ends wakes one waiter, not all of them.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class _Job:
    future: asyncio.Future[Any]
    fn: Callable[..., Any]
    args: tuple[object, ...]


class FairExecutor:
    """A thread pool whose queue is fair across keys (namespaces): round robin, one job per key per turn."""

    def __init__(self, threads: int, name: str = "tick") -> None:
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self.threads = threads
        self._queues: dict[str, deque[_Job]] = {}
        self._turns: deque[str] = deque()  # keys with jobs waiting, in the order they are served
        self._running = 0

    async def run(self, key: str, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        job = _Job(loop.create_future(), fn, args)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
            self._turns.append(key)
        queue.append(job)
        self._dispatch(loop)
        result: T = await job.future
        return result

    def waiting(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        while self._running < self.threads and self._turns:
            key = self._turns.popleft()
            queue = self._queues[key]
            job = queue.popleft()
            if queue:
                self._turns.append(key)  # its next job waits for every other key's turn
            else:
                del self._queues[key]
            if job.future.cancelled():
                continue
            self._running += 1
            done = self.pool.submit(job.fn, *job.args)
            done.add_done_callback(functools.partial(self._finished, loop, job))

    def _finished(self, loop: asyncio.AbstractEventLoop, job: _Job, done: Future[Any]) -> None:
        """In the worker thread: hand the outcome back to the event loop."""
        loop.call_soon_threadsafe(self._finish, loop, done, job)

    def _finish(self, loop: asyncio.AbstractEventLoop, done: Future[Any], job: _Job) -> None:
        self._running -= 1
        if not job.future.cancelled():
            error = done.exception()
            if error is not None:
                job.future.set_exception(error)
            else:
                job.future.set_result(done.result())
        self._dispatch(loop)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class Ledger:
    """Runs per namespace past Pending, the runs waiting for a slot, and when each run was first seen.

    A slot that frees goes to the oldest waiter, reserved for it until it has either taken the slot (the
    watch shows it past Pending) or let it go (it ended, e.g. superseded, or waits again): then the next
    waiter is woken. The bound is kept from the watches' view, so two operator instances (or one slot
    freeing while a run starts) may admit one run more for a moment.
    """

    limit: int = 0  # runs of a namespace past Pending at once; 0: no bound
    _active: dict[str, set[str]] = field(default_factory=dict)  # namespace -> uids past Pending
    _reserved: dict[str, set[str]] = field(default_factory=dict)  # namespace -> uids woken for a slot
    _waiting: dict[str, list[tuple[tuple[str, str], str]]] = field(default_factory=dict)  # a heap per namespace
    _waiters: dict[str, asyncio.Event] = field(default_factory=dict)  # uid -> how to wake it
    _seen: dict[str, float] = field(default_factory=dict)  # uid -> monotonic time first seen

    def saw(self, namespace: str, uid: str, active: bool) -> bool:
        """A watch event of an unfinished run; True when it is the first of that run."""
        new = uid not in self._seen
        self._seen.setdefault(uid, time.monotonic())
        if active:
            self._active.setdefault(namespace, set()).add(uid)
            self._unreserve(namespace, uid)
        elif uid in self._active.get(namespace, ()):
            self._active[namespace].discard(uid)
            self._wake(namespace)
        return new

    def gone(self, namespace: str, uid: str) -> None:
        """The run finished or was deleted."""
        self._seen.pop(uid, None)
        self._waiters.pop(uid, None)
        self._active.get(namespace, set()).discard(uid)
        self._unreserve(namespace, uid)
        self._wake(namespace)

    def active(self, namespace: str, uid: str) -> int:
        """Runs of the namespace past Pending, other than this one."""
        uids = self._active.get(namespace, set())
        return len(uids) - (uid in uids)

    def seen_seconds(self, uid: str) -> float:
        first = self._seen.get(uid)
        return float("inf") if first is None else time.monotonic() - first

    def wait_for_slot(self, namespace: str, order: tuple[str, str], uid: str, event: asyncio.Event) -> None:
        """Wake this run when a slot of the namespace frees (once; a run still waiting then asks again)."""
        self._unreserve(namespace, uid)
        if uid not in self._waiters:
            heapq.heappush(self._waiting.setdefault(namespace, []), (order, uid))
        self._waiters[uid] = event

    def stop_waiting(self, namespace: str, uid: str) -> None:
        """The run does not wait for a slot (any more): it has taken one (past Pending)."""
        self._waiters.pop(uid, None)

    def let_go(self, namespace: str, uid: str) -> None:
        """The run stays in Pending for another reason than the bound (e.g. another run holds its workload):
        it waits at no cost, and the slot it may have been woken for goes to the next waiter."""
        self._waiters.pop(uid, None)
        self._unreserve(namespace, uid)

    def _unreserve(self, namespace: str, uid: str) -> None:
        reserved = self._reserved.get(namespace)
        if reserved is not None and uid in reserved:
            reserved.discard(uid)
            if not reserved:
                del self._reserved[namespace]
            self._wake(namespace)

    def _wake(self, namespace: str) -> None:
        """Wake the oldest waiters for the slots that are free, reserving each one's."""
        waiting = self._waiting.get(namespace, [])
        taken = len(self._active.get(namespace, ())) + len(self._reserved.get(namespace, ()))
        while waiting and (self.limit == 0 or taken < self.limit):
            _, uid = heapq.heappop(waiting)
            event = self._waiters.pop(uid, None)
            if event is not None:
                self._reserved.setdefault(namespace, set()).add(uid)
                event.set()
                taken += 1
        if not waiting:
            self._waiting.pop(namespace, None)
        if not self._active.get(namespace, True):
            del self._active[namespace]
