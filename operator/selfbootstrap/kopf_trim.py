"""Five savings on kopf 1.45's memory, CPU and requests: they change nothing the operator does, only what it keeps
and how much work its patches take.

They replace private kopf functions like the fixes in `kopf_fixes`, and are checked the same way:
`handlers.register` passes PATCHES to `kopf_fixes.apply()`, which checks the installed kopf and
the signature recorded here of every function replaced or relied upon before it patches anything
(a mismatch raises `kopf_fixes.KopfChangedError`). Dropping this module would cost memory, not
correctness.

1. Trimmed watch events.

   Kopf keeps each watch event's whole object while its per-object worker runs (at start, one for
   every object listed), although nothing reads its `metadata.managedFields` (half of a typical object).
   Events are trimmed of it as they arrive. (Of what runs touch, kopf watches only the runs; the
   operator's own watches of Deployments, ReplicaSets and pods keep only the fields they read,
   adapters/cache.py.)

   Upstream: no report of this found (searched nolar/kopf issues, 2026-12-03).

2. Idle bodies let go.

   Kopf keeps the newest body of every object its daemons could serve, whether a daemon runs for
   it or not (a run in line for a slot, a finished run after a restart). It is let go once no
   daemon of the object runs; the next event brings a fresh one. (Kopf itself lets it go only
   when a daemon exits for good and no other runs, in `kopf._core.engines.daemons`.)

   Upstream: no report of this found (searched nolar/kopf issues, 2026-12-03).

3. Finalizer patches diffed from metadata alone.

   Kopf adds and removes its finalizer (the operator adds a run's target label alongside) with callables
   applied to a deep copy of the whole object, which is then diffed against the object
   (`Patch.as_json_patch`): the run's spec and status are copied and compared for a change to
   `metadata.finalizers`, for every run, twice (docs/performance.md has the profile). A patch made only
   of callables that change nothing but `metadata` is now built from a copy of `metadata` alone: the
   same ops. A callable that changes anything else gets kopf's own way.

   Upstream: no report of this found (searched nolar/kopf issues, 2026-12-03).

4. No doomed finalizer patches from events older than kopf's own write, or the worker's.

   When kopf has patched an object, the events of versions before its write still arrive. One of them
   (the run's accepted status, written in the same patch just before the finalizer) lacks the finalizer,
   so kopf adds it again in a JSON patch guarded by that older version: the API server refuses it (422)
   and kopf tries on the next event, one request per run spent for nothing. While kopf awaits the version
   it wrote (`consistency_time` ahead), such callables are dropped; the next event, kopf's own write,
   brings back whatever is still needed. The same holds for a run's own status writes (its worker's, not
   kopf's): under load the watch lags, and kopf removed a finished run's finalizer from an event older
   than the run's last write (a third of the runs of a burst of 1,000). The worker tells `wrote` the
   version each write returned; an event older than it patches nothing either.

   Upstream: no report of this found (searched nolar/kopf issues, 2026-12-03).

5. The echo of the worker's own write handled lightly.

   Every status write of a run's worker comes back as a watch event that kopf handles in full: its index, the
   filters of every event handler and of the daemon, the finalizer's checks, an empty patch. For the event of
   exactly the version the worker's last write returned, of a run still in flight and not being deleted, none of
   that can find anything to do (the daemon runs, its filter holds, the finalizer is on, the handlers' filters
   look for a run without a status, without a slot or without its label): kopf keeps the body for the daemon
   and updates its index as for any event, and skips the rest. A run that finished or is being deleted, and
   every event of another version, gets kopf's own way.

   Upstream: specific to this operator's split of work between kopf and its workers.
"""

from __future__ import annotations

import asyncio
import copy
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from .kopf_fixes import _MARK, Fields, Patch, Signature
from .models import TERMINAL_PHASES


def trim(raw_object: Any) -> None:
    """Drop from a watched object, in place, what nothing in this process reads."""
    metadata = raw_object.get("metadata") if isinstance(raw_object, dict) else None
    if isinstance(metadata, dict):
        metadata.pop("managedFields", None)


def _trimming(fn: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async for event in fn(*args, **kwargs):
            if isinstance(event, dict):
                trim(event.get("object"))
            yield event

    setattr(wrapper, _MARK, True)
    return wrapper


def _releasing_idle_bodies(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = await fn(*args, **kwargs)
        daemons = kwargs["memory"].daemons_memory
        if not daemons.running_daemons:
            daemons.live_fresh_body = None
        return result

    setattr(wrapper, _MARK, True)
    return wrapper


def _diffing_metadata(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(self: Any, body: Any = None) -> Any:
        base = body if body is not None else getattr(self, "_original", None)
        whole = dict(base) if base is not None else None
        metadata = whole.get("metadata") if whole is not None else None
        if whole is None or not isinstance(metadata, dict) or len(self) or not self.fns:
            return fn(self, body)
        trial = {**whole, "metadata": copy.deepcopy(metadata)}
        for change in self.fns:
            change(trial)
        if trial.keys() != whole.keys() or any(trial[k] is not whole[k] for k in whole if k != "metadata"):
            return fn(self, body)  # it changed more than metadata: diff the whole object, as kopf does
        return fn(self, {"metadata": metadata})

    setattr(wrapper, _MARK, True)
    return wrapper


WRITES_KEPT = 4096  # the objects whose last write outside kopf is remembered (the oldest is forgotten first)
_written: dict[str, int] = {}  # uid -> the resourceVersion the worker's last write of the object returned


def wrote(uid: str, resource_version: str) -> None:
    """A worker wrote the object (not through kopf): kopf's patches from events older than that are refused."""
    try:
        version = int(resource_version)
    except ValueError:
        return
    _written.pop(uid, None)
    _written[uid] = version
    if len(_written) > WRITES_KEPT:
        del _written[next(iter(_written))]


def _older_than_written(body: Any) -> bool:
    """Is the event's body older than the worker's last write of the object? (A kopf Body reads as a mapping.)"""
    metadata: Any = body.get("metadata") if isinstance(body, Mapping) else None
    if not isinstance(metadata, Mapping):
        return False
    newest = _written.get(str(metadata.get("uid") or ""))
    try:
        return newest is not None and int(metadata.get("resourceVersion") or "") < newest
    except ValueError:
        return False


def _own_echo(raw_event: Any, body: Any) -> bool:
    """The event of the version the worker's last write of a run in flight returned (see 5. above)."""
    if not isinstance(raw_event, Mapping) or raw_event.get("type") != "MODIFIED" or not isinstance(body, Mapping):
        return False
    metadata, status = body.get("metadata"), body.get("status")
    if not isinstance(metadata, Mapping) or metadata.get("deletionTimestamp"):
        return False
    newest = _written.get(str(metadata.get("uid") or ""))
    phase = status.get("phase") if isinstance(status, Mapping) else None
    return newest is not None and str(newest) == metadata.get("resourceVersion") and phase is not None \
        and phase not in TERMINAL_PHASES


def _no_patch_from_stale_events(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _own_echo(kwargs.get("raw_event"), kwargs.get("body")):
            return [], False  # no delays, no change handled: kopf applies only a patch left from before
        result = await fn(*args, **kwargs)
        awaited = kwargs.get("consistency_time")
        if (awaited is not None and asyncio.get_running_loop().time() < awaited) or \
                _older_than_written(kwargs.get("body")):
            kwargs["patch"].fns.clear()  # tested against a version older than a write of ours: refused
        return result

    setattr(wrapper, _MARK, True)
    return wrapper


PATCHES = (
    Patch(Signature("kopf._cogs.clients.watching", "infinite_watch",
                    "async gen (*, settings, resource, namespace, operator_paused, _iterations)"),
          _trimming),
    Patch(Signature("kopf._core.reactor.processing", "process_spawning_cause",
                    "async def (registry, settings, memory, cause, operator_paused)"),
          _releasing_idle_bodies,
          needs=(Fields("kopf._core.reactor.inventory", "ResourceMemory", ("daemons_memory",)),
                 Fields("kopf._core.engines.daemons", "DaemonsMemory", ("live_fresh_body", "running_daemons")))),
    Patch(Signature("kopf._cogs.structs.patches", "Patch.as_json_patch", "def (self, body)"), _diffing_metadata),
    Patch(Signature("kopf._core.reactor.processing", "process_resource_causes",
                    "async def (lifecycle, indexers, registry, settings, resource, raw_event, body, patch, memory, "
                    "local_logger, event_logger, stream_pressure, operator_paused, consistency_time)"),
          _no_patch_from_stale_events),
)
