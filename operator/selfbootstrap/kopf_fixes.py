"""Three fixes for kopf 1.45, each checked against the kopf it was written for before it is applied.

They replace private kopf functions, so each one is bound to kopf's code as it is in 1.45:
`pyproject.toml` pins kopf (`kopf==1.45.2`), and `apply()` first checks that the installed kopf
is a 1.45.x and that every function it replaces or calls has the signature (parameter names and
kinds, and whether it is a coroutine or an async generator) recorded below. On any difference it
raises `KopfChangedError`, naming each function with the signature expected and the one found, and
patches nothing: a new kopf is taken on purpose, by reading these fixes against its code. The
savings that only spare memory are in `kopf_trim`, checked and applied by the same `apply()`.

1. A namespace deleted while the operator filled its indices froze it for good.

   Kopf holds every handler until each watch has listed its objects and each listed object has
   been indexed once (one "toggle" per watch and per object in a set that must empty). When a
   watched namespace goes away (a pattern like `--namespace 'e2e-*'` and a deleted namespace), kopf
   stops that namespace's watch and its per-object workers, but never drops their toggles if they
   had not finished yet: the set never empties and the operator handles nothing again, silently.

   Here the watch and the worker drop their own toggle when they end, however they end. A toggle
   already dropped is discarded again harmlessly. Remove this part once kopf does it itself.

   Upstream: no report of this found (searched nolar/kopf issues, 2026-12-03). Related, not the
   same: https://github.com/nolar/kopf/issues/1088 (a namespace's deletion stuck because kopf
   stopped its watch too early; fixed by https://github.com/nolar/kopf/pull/1225, which 1.45
   has) and https://github.com/nolar/kopf/pull/1218 (indexing never completes when
   `worker_limit` is below the number of objects; closed).

2. A namespace created just as the operator started was never watched.

   Kopf lists the namespaces once to fill its view, then starts a watch, which lists them again
   to know where to watch from; it ignores the objects of that second listing (events without a
   type). A namespace created between the two listings is in neither the view nor any later
   event, until something changes it (its deletion): the operator does not serve it. Seen when
   the operator starts while many namespaces are being deleted, which widens the gap. Here the
   second listing's namespaces are added to the view too (a listing shows what exists; one that
   is gone since is removed by its DELETED event, as before). Remove this part once kopf does it
   itself.

   Upstream: no report of this found (searched nolar/kopf issues, 2026-12-03).

3. A bound on kopf's own writes.

   Kopf sends its own writes (a run's finalizer, its label, kopf's annotations) on a connection
   pool without limit, so a thousand runs created at once become a thousand PATCHes at once,
   which the API server answers 429 (its bound on mutating requests in flight) and kopf retries
   with growing waits: the flood took minutes to settle. At most KOPF_WRITES of them now run at
   once; the others wait their turn, writes to an object itself (its finalizer) before writes to a
   status, each in order (`WriteTurns`). It stays here rather than in `kopf_trim`: it
   changes what reaches the API server and how soon a run is served, not only memory.

   Upstream: https://github.com/nolar/kopf/issues/1019 ("Client-side throttling", open: the
   same semaphore, proposed); the 429s it causes: https://github.com/nolar/kopf/issues/1011.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, fields, is_dataclass
from importlib import metadata
from typing import Any

KOPF_MINOR = "1.45"  # the kopf these patches were written against; pyproject.toml pins a 1.45.x
_MARK = "_selfbootstrap_wrapped"  # on a kopf function this module wrapped (apply() is idempotent)


class KopfChangedError(RuntimeError):
    """The installed kopf is not the kopf the patches were written against; nothing was patched."""


@dataclass(frozen=True)
class Signature:
    """A kopf function as a patch expects it: `module.name` (a dotted name for a method), and its
    shape: `def`, `async def` or `async gen`, then its parameters' names and kinds."""

    module: str
    name: str
    shape: str

    def problem(self) -> str | None:
        found = _resolve(self.module, self.name)
        if isinstance(found, _Missing):
            return f"{self.module}.{self.name}: expected {self.shape}, found {found}"
        if getattr(found, _MARK, False):  # wrapped by an earlier apply(): check what it wraps
            found = found.__wrapped__
        actual = shape_of(found)
        return None if actual == self.shape else f"{self.module}.{self.name}: expected {self.shape}, found {actual}"


@dataclass(frozen=True)
class Fields:
    """A kopf dataclass a patch reads or writes the fields of."""

    module: str
    name: str
    fields: tuple[str, ...]

    def problem(self) -> str | None:
        found = _resolve(self.module, self.name)
        expected = f"a dataclass with the fields {', '.join(self.fields)}"
        if isinstance(found, _Missing):
            return f"{self.module}.{self.name}: expected {expected}, found {found}"
        if not (isinstance(found, type) and is_dataclass(found)):
            return f"{self.module}.{self.name}: expected {expected}, found {found!r}"
        missing = [f for f in self.fields if f not in {field.name for field in fields(found)}]
        return f"{self.module}.{self.name}: expected {expected}, found none named {', '.join(missing)}" \
            if missing else None


@dataclass(frozen=True)
class Patch:
    """One kopf function replaced by `wrap(the function)`; `needs`: what the wrapper calls or reads."""

    target: Signature
    wrap: Callable[[Callable[..., Any]], Callable[..., Any]]
    needs: tuple[Signature | Fields, ...] = ()


class _Missing(str):
    """What was found where a kopf module or attribute was expected: nothing."""


def _resolve(module: str, name: str) -> Any:
    try:
        found: Any = importlib.import_module(module)
    except ImportError:
        return _Missing(f"no module {module}")
    for part in name.split("."):
        if not hasattr(found, part):
            return _Missing(f"no attribute {name} in {module}")
        found = getattr(found, part)
    return found


def shape_of(fn: Any) -> str:
    """`async def (url, *, settings)`: what a patch relies on in a function, without annotations
    and defaults."""
    if not callable(fn):
        return f"not a function: {fn!r}"
    kind = "async gen" if inspect.isasyncgenfunction(fn) else "async def" if inspect.iscoroutinefunction(fn) else "def"
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return f"{kind} with no readable signature"
    bare = signature.replace(parameters=[p.replace(annotation=p.empty, default=p.empty)
                                         for p in signature.parameters.values()],
                             return_annotation=signature.empty)
    return f"{kind} {bare}"


def installed_kopf() -> str:
    try:
        return metadata.version("kopf")
    except metadata.PackageNotFoundError:
        return "unknown (no installed kopf distribution)"


def problems(patches: Iterable[Patch]) -> list[str]:
    """Every difference between the installed kopf and the one the patches were written against."""
    found: list[str] = []
    version = installed_kopf()
    if version.split(".")[:2] != KOPF_MINOR.split("."):
        found.append(f"kopf version: expected {KOPF_MINOR}.x, found {version}")
    seen: set[Signature | Fields] = set()
    for patch in patches:
        for expected in (patch.target, *patch.needs):
            if expected not in seen:
                seen.add(expected)
                problem = expected.problem()
                if problem is not None:
                    found.append(problem)
    return found


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


KOPF_WRITES = 16


class WriteTurns:
    """At most `size` of kopf's writes at once. Of those waiting, a write to an object itself (a finalizer, a
    label) goes before a write to a status: kopf patches a new run's status, then adds its finalizer in a second
    write, and in a burst that second write waited behind every newer run's first (about 8 s of each run's wait
    for its worker, which starts only with the finalizer). Each kind waits in the order it came."""

    def __init__(self, size: int) -> None:
        self.free = size
        self._waiting: tuple[deque[asyncio.Future[None]], deque[asyncio.Future[None]]] = (deque(), deque())

    async def take(self, first: bool) -> None:
        """first: the write goes before status writes."""
        if self.free > 0 and not any(self._waiting):
            self.free -= 1
            return
        turn = asyncio.get_running_loop().create_future()
        self._waiting[0 if first else 1].append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.give()  # handed the turn as it was cancelled: pass it on
            raise

    def give(self) -> None:
        for waiting in self._waiting:
            while waiting:
                turn = waiting.popleft()
                if not turn.done():
                    turn.set_result(None)
                    return
        self.free += 1


_writes = WriteTurns(KOPF_WRITES)  # used on the operator's event loop only


def _bounded(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        url = str(args[0] if args else kwargs.get("url", ""))
        await _writes.take(first=not url.rstrip("/").endswith("/status"))
        try:
            return await fn(*args, **kwargs)
        finally:
            _writes.give()

    setattr(wrapper, _MARK, True)
    return wrapper


def _seeing_listed_namespaces(fn: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> None:
        from kopf._core.reactor import observation  # checked by apply(), as NAMESPACES_SEEN needs

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


QUEUEING = "kopf._core.reactor.queueing"
OBSERVATION = "kopf._core.reactor.observation"
API = "kopf._cogs.clients.api"
_DROP_TOGGLE = Signature("kopf._cogs.aiokits.aiotoggles", "ToggleSet.drop_toggle", "async def (self, toggle)")
_WRITE = "async def (url, *, settings, payload, headers, timeout, logger)"

TOGGLES_DROPPED = (
    Patch(Signature(QUEUEING, "watcher", "async def (*, namespace, settings, resource, processor, "
                                         "operator_paused, operator_indexed, resource_indexed)"),
          _dropping_its_toggle, needs=(_DROP_TOGGLE,)),
    Patch(Signature(QUEUEING, "worker", "async def (*, signaller, settings, processor, resource_indexed, "
                                        "operator_indexed, streams, key)"),
          _dropping_its_toggle, needs=(_DROP_TOGGLE,)),
)
NAMESPACES_SEEN = (
    Patch(Signature(OBSERVATION, "process_discovered_namespace_event",
                    "async def (*, raw_event, namespaces, insights, stream_pressure, resource_indexed, "
                    "operator_indexed, consistency_time)"),
          _seeing_listed_namespaces,
          needs=(Signature(OBSERVATION, "revise_namespaces", "def (*, insights, namespaces, raw_events, raw_bodies)"),
                 Fields("kopf._cogs.structs.references", "Insights", ("namespaces", "revised")))),
)
WRITES_BOUNDED = (
    Patch(Signature(API, "patch", _WRITE), _bounded),
    Patch(Signature(API, "post", "async def (url, *, settings, payload, headers, timeout, backoffs, logger)"),
          _bounded),
    Patch(Signature(API, "delete", _WRITE), _bounded),
)
FIXES: tuple[Patch, ...] = (*TOGGLES_DROPPED, *NAMESPACES_SEEN, *WRITES_BOUNDED)


def apply(*more: Patch) -> None:
    """Check the fixes and `more` (the savings of `kopf_trim`) against the installed kopf, then wrap
    each function in its module (kopf looks each one up there when it calls it); idempotent.

    Raises KopfChangedError, having patched nothing, if any of them is not as expected."""
    patches = (*FIXES, *more)
    found = problems(patches)
    if found:
        raise KopfChangedError(
            f"kopf {installed_kopf()} is installed, but the operator patches kopf's internals as they are "
            f"in kopf {KOPF_MINOR}.x (selfbootstrap.kopf_fixes, selfbootstrap.kopf_trim); nothing was patched:\n"
            + "".join(f"  - {problem}\n" for problem in found)
            + "Install the kopf pyproject.toml pins, or read each patch against this kopf and update it.")
    for patch in patches:
        owner, name = located(patch.target)
        current = getattr(owner, name)
        if not getattr(current, _MARK, False):
            setattr(owner, name, patch.wrap(current))


def located(target: Signature) -> tuple[Any, str]:
    """Where the patched function lives: (its module, or its class for a method `Class.method`; its name)."""
    owner_name, _, name = target.name.rpartition(".")
    return (_resolve(target.module, owner_name) if owner_name else importlib.import_module(target.module)), name
