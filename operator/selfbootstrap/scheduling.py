"""Fair to every tenant: what one namespace's runs may cost the others.

- `FairExecutor`: the ticks' blocking work (API writes, git, probes) runs on a few threads; work waits
  in one queue per namespace and the threads take from the namespaces in turn, so a namespace with a
  thousand runs to serve delays another's next step by at most one step of its own per thread. Within a
  namespace, the steps of runs that have not deployed yet go before those of runs at their gates: a
  burst's deploys do not wait behind the rollouts of the runs that deployed before them.
- `SafeModeHold`: in safe mode (core/safemode.py) only the unfinished self-update has a worker; the others
  wait until it ends.
- `Ledger`: which runs of each namespace have a worker (the installer's bound on runs in flight per
  namespace), which wait in line for one, and since when this operator has known each run (the gate's
  quiet moment). A run in line has no worker at all; a run that ends admits one run, the oldest.
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

from .core.jsontypes import JsonObject
from .core.safemode import SafeMode

T = TypeVar("T")


@dataclass
class _Job:
    future: asyncio.Future[Any]
    fn: Callable[..., Any]
    args: tuple[object, ...]


class FairExecutor:
    """A thread pool whose queue is fair across keys (namespaces): round robin, one job per key per turn; within a
    key, urgent jobs (a run's steps before its deploy) first, each kind in the order it came."""

    def __init__(self, threads: int, name: str = "tick") -> None:
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self.threads = threads
        self._queues: dict[str, tuple[deque[_Job], deque[_Job]]] = {}  # key -> (urgent, the others)
        self._turns: deque[str] = deque()  # keys with jobs waiting, in the order they are served
        self._running = 0

    async def run(self, key: str, fn: Callable[..., T], *args: object, urgent: bool = False) -> T:
        loop = asyncio.get_running_loop()
        job = _Job(loop.create_future(), fn, args)
        queues = self._queues.get(key)
        if queues is None:
            queues = self._queues[key] = (deque(), deque())
            self._turns.append(key)
        queues[0 if urgent else 1].append(job)
        self._dispatch(loop)
        result: T = await job.future
        return result

    def waiting(self) -> int:
        return sum(len(urgent) + len(others) for urgent, others in self._queues.values())

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        while self._running < self.threads and self._turns:
            key = self._turns.popleft()
            urgent, others = self._queues[key]
            job = (urgent or others).popleft()
            if urgent or others:
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


GONE_KEPT = 4096  # enough for the events still in flight about runs that are gone


def _nobody(namespace: str, name: str, uid: str, seen: JsonObject | None) -> None:
    """Until the operator says how, a slot that frees is only counted (see Services)."""


@dataclass
class Ledger:
    """Which runs of each namespace have a worker (a slot), which wait for one, and when each was first seen.

    A run gets a worker (kopf spawns its daemon) only once the ledger admits it: while its namespace has
    `limit` runs with a worker, a new run waits in line, oldest first, without a worker of its own, so a
    thousand queued runs cost a line each, not a coroutine, a task and a copy of the run each. A run keeps
    its slot until it ends or is deleted; the slot then goes to the oldest run in line, and `admit` makes a
    write to that run so that its next watch event spawns its worker. The bound is kept from the watches'
    view (a run admitted that turns out to be gone gives its slot back, see handlers.admit), so two
    operator instances (or a restart that finds runs in flight) may admit a run more for a
    while; the gate (core/gate.py) still holds such a run back until the count is under the bound.

    It also knows the runs whose final status a worker wrote before the watch shows it: the gate does not
    weigh them as runs in flight (a run applied the moment a newer-named one ended is not older than it).
    """

    limit: int = 0  # runs of a namespace with a worker at once; 0: no bound
    # (namespace, name, uid, its metadata as last seen in line, if seen): the run's slot is free
    admit: Callable[[str, str, str, JsonObject | None], None] = _nobody
    _served: dict[str, set[str]] = field(default_factory=dict)  # namespace -> uids with a worker
    _line: dict[str, list[tuple[Order, str]]] = field(default_factory=dict)  # a heap per namespace
    _in_line: dict[str, str] = field(default_factory=dict)  # uid -> namespace, for the runs in line
    _seen_in_line: dict[str, JsonObject] = field(default_factory=dict)  # uid -> its metadata, as last seen
    _blocked: dict[str, dict[str, asyncio.Event]] = field(default_factory=dict)  # served, but held at the gate
    _seen: dict[str, float] = field(default_factory=dict)  # uid -> monotonic time first seen
    _gone: dict[str, None] = field(default_factory=dict)  # the last GONE_KEPT uids gone, oldest first
    _ended: set[str] = field(default_factory=set)  # runs whose final status a worker wrote, until the watch says so

    def saw(self, namespace: str, uid: str, active: bool) -> bool:
        """A watch event of an unfinished run (active: past Pending, so it has or had a worker); True when it
        is the first event of that run."""
        new = uid not in self._seen
        self._seen.setdefault(uid, time.monotonic())
        if active:
            self._leave(uid)
            self._served.setdefault(namespace, set()).add(uid)
        return new

    def admits(self, namespace: str, uid: str, order: Order) -> bool:
        """May the run have a worker? (order: creation time and name.) A run refused now is put in line and
        told by `admit` when its slot is free; asking again changes nothing."""
        served = self._served.setdefault(namespace, set())
        if uid in served:
            return True
        if uid in self._in_line or uid in self._gone:  # kopf asks on a run's DELETED event, too
            return False
        if not self.limit or len(served) < self.limit:
            served.add(uid)
            return True
        heapq.heappush(self._line.setdefault(namespace, []), (order, uid))
        self._in_line[uid] = namespace
        return False

    def waits(self, uid: str) -> bool:
        return uid in self._in_line

    def note(self, uid: str, seen: JsonObject) -> None:
        """What the watch shows of a run in line (its metadata), for the write that admits it to build on."""
        if uid in self._in_line:
            self._seen_in_line[uid] = seen

    def _leave(self, uid: str) -> str | None:
        self._seen_in_line.pop(uid, None)
        return self._in_line.pop(uid, None)

    def serves(self, namespace: str, uid: str) -> bool:
        return uid in self._served.get(namespace, ())

    def leave_line(self, namespace: str, uid: str) -> None:
        """The run is being deleted: if it waits in line, it will not need its slot."""
        self._leave(uid)

    def ended(self, uid: str) -> None:
        """A worker wrote the run's final status: the watch will say so a moment later (or said so already,
        while the write's answer was on its way: then there is nothing to remember)."""
        if uid not in self._gone:
            self._ended.add(uid)

    def has_ended(self, uid: str) -> bool:
        """Its final status is written, though the watches may still show it in flight."""
        return uid in self._ended

    def gone(self, namespace: str, uid: str) -> None:
        """The run finished or was deleted: its slot goes to the oldest run in line."""
        self._ended.discard(uid)
        self._gone[uid] = None
        if len(self._gone) > GONE_KEPT:
            del self._gone[next(iter(self._gone))]
        self._seen.pop(uid, None)
        self._leave(uid)
        self._blocked.get(namespace, {}).pop(uid, None)
        self._served.get(namespace, set()).discard(uid)
        self._free(namespace)

    def active(self, namespace: str, uid: str) -> int:
        """Runs of the namespace with a worker, other than this one."""
        uids = self._served.get(namespace, set())
        return len(uids) - (uid in uids)

    def in_line(self) -> int:
        return len(self._in_line)

    def seen_seconds(self, uid: str) -> float:
        first = self._seen.get(uid)
        return float("inf") if first is None else time.monotonic() - first

    def wait_for_slot(self, namespace: str, uid: str, event: asyncio.Event) -> None:
        """A run with a worker that the gate holds at the bound (more runs were admitted than it allows):
        wake it when any run of the namespace ends."""
        self._blocked.setdefault(namespace, {})[uid] = event

    def stop_waiting(self, namespace: str, uid: str) -> None:
        blocked = self._blocked.get(namespace)
        if blocked is not None:
            blocked.pop(uid, None)
            if not blocked:
                del self._blocked[namespace]

    def _free(self, namespace: str) -> None:
        for event in self._blocked.pop(namespace, {}).values():
            event.set()  # each asks again
        served, line = self._served.get(namespace, set()), self._line.get(namespace, [])
        while line and (not self.limit or len(served) < self.limit):
            (_, name), uid = heapq.heappop(line)
            seen = self._seen_in_line.get(uid)
            if self._leave(uid) is None:
                continue  # it left the line (deleted, or it was found in flight)
            served.add(uid)
            self.admit(namespace, name, uid, seen)
        if not line:
            self._line.pop(namespace, None)
        if not served:
            self._served.pop(namespace, None)


Order = tuple[str, str]  # a run's place in line: its creation time and name


@dataclass(frozen=True)
class HeldRun:
    namespace: str
    name: str
    uid: str
    order: Order


@dataclass
class SafeModeHold:
    """Safe mode's hold: while it lasts, only its self-update may have a worker. The runs refused meanwhile are
    remembered and handed back when the self-update ends, to be admitted as the Ledger admits a run in line."""

    mode: SafeMode | None = None
    _held: dict[str, HeldRun] = field(default_factory=dict)  # by uid

    def admits(self, namespace: str, name: str, uid: str, order: Order) -> bool:
        if self.mode is None or uid == self.mode.run.uid:
            return True
        self._held[uid] = HeldRun(namespace, name, uid, order)
        return False

    def ended(self, uid: str) -> list[HeldRun] | None:
        """The run finished or is gone: when it is safe mode's self-update, safe mode ends, and the runs it held
        are handed back (None: safe mode goes on, or there was none)."""
        if self.mode is None or uid != self.mode.run.uid:
            return None
        self.mode = None
        held, self._held = list(self._held.values()), {}
        return held
