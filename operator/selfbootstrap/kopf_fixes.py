"""Two fixes for kopf (1.45), and a saving.

The fix: a namespace deleted while the operator filled its indices froze it for good.

Kopf holds every handler until each watch has listed its objects and each listed object has been
indexed once (one "toggle" per watch and per object in a set that must empty). When a watched
namespace goes away (a pattern like `--namespace 'e2e-*'` and a deleted namespace), kopf stops
that namespace's watch and its per-object workers, but never drops their toggles if they had
not finished yet: the set never empties and the operator handles nothing again, silently.

Here the watch and the worker drop their own toggle when they end, however they end. A toggle
already dropped is discarded again harmlessly. Remove this part once kopf does it itself.

The second fix: a namespace created just as the operator started was never watched. Kopf lists
the namespaces once to fill its view, then starts a watch, which lists them again to know where to
watch from; it ignores the objects of that second listing (events without a type). A namespace
created between the two listings is in neither the view nor any later event, until something
changes it (its deletion): the operator does not serve it. Seen when the operator starts while
many namespaces are being deleted, which widens the gap. Here the second listing's namespaces are
added to the view too (a listing shows what exists; one that is gone since is removed by its
DELETED event, as before). Remove this part once kopf does it itself.

And a saving: kopf keeps each watch event's whole object while its per-object worker runs (at
start, one for every object listed), although neither kopf nor the operator reads some of it.
Events are trimmed as they arrive: `metadata.managedFields` (half of a typical object) of every
resource, and a pod's `spec` (the pod cache reads metadata and status). At 1,000 Deployments
this took about 20 MiB off the idle operator (most of the rest is kopf's per-object state and
allocator fragmentation; see README "How it scales").

And a bound: kopf sends its own writes (a run's finalizer, its label, kopf's annotations) on a
connection pool without limit, so a thousand runs created at once become a thousand PATCHes at
once, which the API server answers 429 (its bound on mutating requests in flight) and kopf retries
with growing waits: the flood took minutes to settle. At most KOPF_WRITES of them now run at once;
the others wait their turn, in order.

And a release: kopf keeps the newest body of every object its daemons could serve, whether a
daemon runs for it or not (a run in line for a slot, a finished run after a restart). It is let
go once no daemon of the object runs; the next event brings a fresh one.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from kopf._cogs.clients import api, watching
from kopf._cogs.structs import references
from kopf._core.reactor import observation, processing, queueing

_MARK = "_selfbootstrap_wrapped"  # on a kopf function this module wrapped (apply() is idempotent)


def _dropping_its_toggle(fn: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            await fn(*args, **kwargs)
        finally:
            toggles, toggle = kwargs.get("operator_indexed"), kwargs.get("resource_indexed")
            if toggles is not None and toggle is not None:
                await toggles.drop_toggle(toggle)

    setattr(wrapper, _MARK, True)
    return wrapper


UNREAD: dict[tuple[str, str], tuple[str, ...]] = {("", "pods"): ("spec",)}  # (group, plural): top-level fields


def trim(raw_object: Any, resource: references.Resource) -> None:
    """Drop from a watched object, in place, what nothing in this process reads."""
    if not isinstance(raw_object, dict):
        return
    metadata = raw_object.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop("managedFields", None)
    for key in UNREAD.get((resource.group, resource.plural), ()):
        raw_object.pop(key, None)


def _trimming(fn: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        resource = kwargs["resource"]
        async for event in fn(*args, **kwargs):
            if isinstance(event, dict):
                trim(event.get("object"), resource)
            yield event

    setattr(wrapper, _MARK, True)
    return wrapper


KOPF_WRITES = 16
_writes = asyncio.Semaphore(KOPF_WRITES)  # bound to the event loop of its first use (the operator's)


def _bounded(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        async with _writes:
            return await fn(*args, **kwargs)

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


def _seeing_listed_namespaces(fn: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> None:
        raw_event, insights = kwargs["raw_event"], kwargs["insights"]
        if raw_event["type"] is not None:
            await fn(*args, **kwargs)
            return
        async with insights.revised:
            observation.revise_namespaces(raw_events=[raw_event], insights=insights,
                                          namespaces=kwargs["namespaces"])
            insights.revised.notify_all()

    setattr(wrapper, _MARK, True)
    return wrapper


def apply() -> None:
    """Wrap kopf's watcher and worker and its watch stream (each is looked up in its module when
    called); idempotent."""
    for name in ("watcher", "worker"):
        fn = getattr(queueing, name)
        if not getattr(fn, _MARK, False):
            setattr(queueing, name, _dropping_its_toggle(fn))
    if not getattr(observation.process_discovered_namespace_event, _MARK, False):
        observation.process_discovered_namespace_event = _seeing_listed_namespaces(  # type: ignore[assignment]
            observation.process_discovered_namespace_event)
    if not getattr(watching.infinite_watch, _MARK, False):
        watching.infinite_watch = _trimming(watching.infinite_watch)
    if not getattr(processing.process_spawning_cause, _MARK, False):
        processing.process_spawning_cause = _releasing_idle_bodies(  # type: ignore[assignment]
            processing.process_spawning_cause)
    for name in ("patch", "post", "delete"):
        fn = getattr(api, name)
        if not getattr(fn, _MARK, False):
            setattr(api, name, _bounded(fn))
