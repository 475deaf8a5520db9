"""A run's worker: the loop a kopf daemon runs for one unfinished run.

It wakes when the watches see a change to the run, its Deployment, the Deployment's
ReplicaSets or their pods (or when its own timer is due), builds the world from the caches,
and hands the tick to a thread of the operator's pool (the tick's writes block), unless neither the run nor
its world changed since the last tick and that tick's requeue has not run out (see Decided). Passing
faults of the API server are retried with exponential backoff; the caches are trusted only
while they are at least as new as this run's own last patch, and a slow resync reads the
world from the API when the namespace's watches have gone quiet for that long.
"""

from __future__ import annotations

import asyncio
import functools
import pickle
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from . import kopf_trim, metrics
from . import models as m
from .adapters import cache, gitexec
from .adapters.kube import api_message, meta, namespace_of
from .core import gate, reasons, record
from .core.decision import Event, EventType
from .core.gates import analysis as analysis_gate
from .core.jsontypes import JsonObject, integer, obj, objects, path, text, texts
from .core.world import World
from .models import RunStatus
from .reconciler import INFRASTRUCTURE_ERRORS, Logger, Reconciler, Tick, is_finished
from .services import Services, WakeKey, Wakeups

T = TypeVar("T")
STALE_SECONDS = 2.0  # how long a cache may lag behind this run's own patch before the API is asked
GUARDS_KEPT = 32  # resourceVersions a worker remembers acting on
MIN_DELAY = 0.02
MAX_BACKOFF = 60.0
FINALIZER_WAIT_SECONDS = 5.0  # the run's own event (kopf's patch) wakes it before
REQUESTED_WORLD_SECONDS = 2.0  # how often a run of a StatefulSet or DaemonSet looks again (its pods also wake it)
LIST_WAIT_SECONDS = 5.0  # how long a run waits for its namespace's watches to list before it reads the API


class RunWorker:
    def __init__(self, services: Services, wakeups: Wakeups, indices: cache.Indices, live: Mapping[str, Any],
                 logger: Logger) -> None:
        self.services, self.wakeups, self.indices, self.live = services, wakeups, indices, live
        self.reconciler = Reconciler(services.kube, services.executor, logger=logger)
        self.logger = logger
        self.written: JsonObject | None = None  # the run as this worker last wrote it
        # The Deployment's resourceVersions this run acted on (before each of its patches): a cached view still
        # at one of them is behind its own writes, also when the cache lags further than the view it patched
        # from (a 409 on a stale cache, then a patch from a fresh read, while the cache still shows the first).
        self.guards: set[str] = set()
        self.guard_since = 0.0
        self.resync_at = time.monotonic() + services.settings.resync_seconds
        self.failures = 0
        self.reposted = False
        self.refusal: str | None = None  # "" once checked and nothing refused
        self.listing_awaited = False
        self.decided: Decided | None = None  # what the last tick decided on, while its decision stands

    async def run(self, stopped: Any) -> None:
        """Tick until the run is finished or the daemon is stopped."""
        wake = asyncio.Event()
        run_key, workload_key = self._keys()
        uid = text(meta(self.current()).get("uid")) or ""
        self.wakeups.add([run_key, workload_key], wake)
        listening = True  # to its workload's changes
        watches, namespace = self.services.watches, namespace_of(self.current())
        if watches is not None:
            watches.need(namespace)  # its workload's watches, open while the namespace has runs in flight
        try:
            while not stopped:
                wake.clear()
                delay = await self.step()
                metrics.track(uid, run_info(self.current()))
                if delay is None:
                    return
                held_back = self._wait_for_slot(wake)
                if held_back == listening:  # a run held back by its namespace's bound ignores its workload
                    (self.wakeups.remove if listening else self.wakeups.add)([workload_key], wake)
                    listening = not listening
                resync = self.resync_at - time.monotonic()  # a long sleep still ends for the safety resync
                await _first(wake.wait(), stopped.wait(), timeout=max(min(delay, resync), MIN_DELAY))
        finally:
            if watches is not None:
                watches.release(namespace)
            self.wakeups.remove([run_key, workload_key] if listening else [run_key], wake)
            self.services.ledger.stop_waiting(namespace_of(self.current()), uid)
            metrics.forget(uid)

    def _wait_for_slot(self, wake: asyncio.Event) -> bool:
        """A run the gate holds at the namespace's bound (admitted while more runs than the bound were in
        flight, e.g. found so after a restart) is woken when a run of the namespace ends, not by every
        change of its workload; True when it is."""
        run, ledger, limit = self.current(), self.services.ledger, self.services.settings.max_runs_per_namespace
        uid, namespace = text(meta(run).get("uid")) or "", namespace_of(run)
        if limit and _before_deploy(run) and ledger.active(namespace, uid) >= limit:
            ledger.wait_for_slot(namespace, uid, wake)
            return True
        ledger.stop_waiting(namespace, uid)
        return False

    async def hold_back(self) -> JsonObject | None:
        """The run waits in line for a slot, without a worker: the status saying so (once), for kopf's patch of
        the run (its first write, so that the finalizer's patch, guarded by the resourceVersion that write
        returns, is not voided); its Event is posted now."""
        run, ledger, safe = self.current(), self.services.ledger, self.services.safe_mode.mode
        active = ledger.active(namespace_of(run), text(meta(run).get("uid")) or "")
        why = gate.Wait(reasons.QUEUED, safe.message) if safe is not None else \
            gate.namespace_bound(active, self.services.settings.max_runs_per_namespace)
        held = self.reconciler.held_back(run, why)
        if held is None:
            return None
        status, events = held
        try:
            await self._in_pool(self.reconciler.post, run, events)
        except INFRASTRUCTURE_ERRORS as err:  # the status keeps it: the run's worker posts it again
            self.logger.warning("could not post that %s/%s is queued: %s", namespace_of(run),
                                text(meta(run).get("name")), _describe(err))
        return status

    def _keys(self) -> tuple[WakeKey, WakeKey]:
        run = self.current()
        namespace = namespace_of(run)
        return ("run", namespace, text(meta(run).get("name")) or ""), \
            ("deployment", namespace, m.workload_key(*m.target_of(run)))

    def current(self) -> JsonObject:
        """The newest of what the watch shows and what this worker last wrote (the watch may lag)."""
        live: JsonObject = dict(self.live)
        if self.written is None:
            return live
        if integer(meta(live).get("resourceVersion")) >= integer(meta(self.written).get("resourceVersion")):
            self.written = None  # the watch has caught up: one copy of the run is enough (1,000 runs, 1,000 copies)
            return live
        return self.written

    async def step(self) -> float | None:
        run = self.current()
        if meta(run).get("deletionTimestamp"):
            return None
        if m.finalizer_of(self.services.settings.shard) not in texts(meta(run).get("finalizers")):
            # kopf adds it (with the run's label) in a patch guarded by the run's resourceVersion: a status
            # written first would void that patch, and a thousand runs at once would retry it for minutes.
            # Nothing is done before it either: a run deleted mid-flight must be noticed.
            return FINALIZER_WAIT_SECONDS
        try:
            world = await self._world(run)
            if world is None:  # the cache lags behind this run's own patch: wait for the watch
                return STALE_SECONDS
            if not self.reposted:
                await self._in_pool(self.reconciler.repost, run, world)
                self.reposted = True
            seen = digest(world)  # once: compared with the last tick's, and kept for the next wake's
            standing = self.decided.standing(run, seen) if self.decided is not None else None
            if standing is not None:
                return self._polled(run, standing)
            started = time.monotonic()
            tick = await self._in_pool(self.reconciler.tick, run, world)
        except INFRASTRUCTURE_ERRORS as err:
            self.decided = None
            self.failures += 1
            wait = min(MAX_BACKOFF, 2.0 ** (self.failures - 1))
            self.logger.warning("reconcile of %s/%s met %s; trying again in %gs", namespace_of(run),
                                text(meta(run).get("name")), _describe(err), wait)
            return wait
        self.failures = 0
        delay = self._settle(tick)
        if delay is None or tick.run is None:
            return delay
        self.decided = Decided(text(meta(tick.run).get("resourceVersion")) or "", seen, started + delay)
        return self._polled(tick.run, delay)

    @staticmethod
    def _polled(run: JsonObject, delay: float) -> float:
        if m.target_of(run)[0] != m.WorkloadKind.DEPLOYMENT and not _before_deploy(run):
            return min(delay, REQUESTED_WORLD_SECONDS)  # no watch of the workload itself wakes the run
        return delay

    def _settle(self, tick: Tick) -> float | None:
        if tick.run is None:
            return None
        uid = text(meta(tick.run).get("uid")) or ""
        if tick.wrote:  # kopf hands the echo of this version lightly, and patches nothing from an older one
            kopf_trim.wrote(uid, text(meta(tick.run).get("resourceVersion")) or "")
            if is_finished(obj(tick.run.get("status"))):
                self.services.ledger.ended(uid)  # no longer a peer, before the watch says so
        self.written = tick.run
        if tick.patched_from is not None:
            if len(self.guards) >= GUARDS_KEPT:
                self.guards.clear()  # a run this long past its patches: the oldest views are long gone
            self.guards.add(tick.patched_from)
            self.guard_since = time.monotonic()
        return tick.requeue

    async def _world(self, run: JsonObject) -> World | None:
        container = text(path(run, "spec", "target", "container"))
        # A run in Pending only waits (for a slot, a holder, a quiet moment): it never pays for the API resync.
        waiting = _before_deploy(run)
        namespace = namespace_of(run)
        resync = not waiting and self._resync_due(namespace)
        if not resync and m.target_of(run)[0] == m.WorkloadKind.DEPLOYMENT and not self.indices.ready(namespace):
            await self._listing(namespace)
        world = None if resync else cache.world_from(self.indices, run, container)
        if world is not None and cache.stale(world, self.guards):
            if time.monotonic() - self.guard_since < STALE_SECONDS:
                return None
            world = None
        if world is None:  # not in the cache (gone, or not seen yet), stale, or time for the resync
            world = await self._in_pool(self.services.kube.observe, run, container)
            self.resync_at = time.monotonic() + self.services.settings.resync_seconds
        world = await self._with_gate(run, world)
        if waiting:
            world = replace(world, refused=await self._refused(run))
        if path(run, "spec", "target", "deploymentContext") == m.DeploymentContext.SELF_HOSTED:
            world = replace(world, crd_generation=await self._in_pool(self.services.kube.crd_generation))
        templates = objects(path(run, "spec", "analysis", "templates"))
        if templates:  # read as the run starts and as it measures: a template is the author's to change
            world = replace(world, analysis_templates=await self._in_pool(self._templates, run, templates))
        return world

    def _resync_due(self, namespace: str) -> bool:
        """Is it time to read the world from the API? Only when the period is over and the namespace's watches
        have not heard from the API server within it (stalled, or their thread failing): that is what the resync
        is for. With live watches it is put off a period: a thousand runs in flight would otherwise read their
        worlds at once, every period."""
        if time.monotonic() < self.resync_at:
            return False
        period, watches = self.services.settings.resync_seconds, self.services.watches
        if watches is None or not watches.heard_within(namespace, period):
            return True
        self.resync_at = time.monotonic() + period
        return False

    async def _listing(self, namespace: str) -> None:
        """The namespace's watches have just opened: wait (once, briefly) for them to list rather than read the
        world from the API alongside them. A thousand runs applied at once would read it a thousand times."""
        if self.listing_awaited or self.services.watches is None:
            return
        self.listing_awaited = True
        listed, key = asyncio.Event(), ("listed", namespace, "")
        self.wakeups.add([key], listed)
        try:
            if not self.indices.ready(namespace):
                await asyncio.wait_for(listed.wait(), LIST_WAIT_SECONDS)
        except TimeoutError:
            pass  # a slow listing: read the API, as on any cache miss
        finally:
            self.wakeups.remove([key], listed)

    def _templates(self, run: JsonObject, refs: list[JsonObject]) -> dict[str, JsonObject | None]:
        out: dict[str, JsonObject | None] = {}
        kube, namespace = self.services.kube, namespace_of(run)
        for raw in refs:
            ref = m.AnalysisTemplateRef.model_validate(raw)
            key = ("" if ref.cluster_scope else namespace, ref.template_name, ref.cluster_scope)
            read = functools.partial(_present, kube.read_analysis_template, namespace, ref.template_name,
                                     ref.cluster_scope)
            try:
                found: JsonObject | None = self.services.templates.answer(key, read)
            except _AbsentError:  # not kept: a template created after a run failed for want of it is seen at once
                found = None
            out[analysis_gate.template_key(ref)] = found
        return out

    async def _refused(self, run: JsonObject) -> str | None:
        """Whether the egress policy refuses a URL the run names (once per worker: it resolves names)."""
        if self.refusal is None:
            policy = self.services.egress
            urls = destinations(run)
            self.refusal = (await self._in_pool(policy.first_refused, urls) or "") if policy and urls else ""
        return self.refusal or None

    async def _with_gate(self, run: JsonObject, world: World) -> World:
        """What the gate decides on besides the workload: the workload's other runs, whether the run its
        record names as holder is still in flight, the namespace's runs in flight, the installer's bounds."""
        ledger, uid, namespace = self.services.ledger, text(meta(run).get("uid")) or "", namespace_of(run)
        entries = cache.peers_of(self.indices, run)
        live = [e for e in entries if not ledger.has_ended(e.uid)]  # a final status written: the watch lags
        world = replace(world, limits=self.services.limits)
        phase = text(path(run, "status", "phase"))
        if phase is None or m.rule_of(phase).at_gate:  # only the gate reads these (past it, they change nothing)
            quiet = min((ledger.seen_seconds(e.uid) for e in live), default=ledger.seen_seconds(uid))
            quiet = min(quiet, ledger.seen_seconds(uid))
            world = replace(world, peers=cache.newer_than(live, run), passed_over=cache.older_than(live, run),
                            quiet_seconds=quiet, namespace_active=ledger.active(namespace, uid))
        holder = record.parse(world.deployment.annotations.get(m.RUNS_ANNOTATION)).holder \
            if world.deployment is not None else None
        if holder is None or holder.uid == uid or ledger.has_ended(holder.uid):
            return world  # ended here: outranking nobody, its letting go follows and wakes the run
        if any(e.uid == holder.uid for e in entries) and not any(p.uid == holder.uid for p in world.peers):
            return world
        # The watches do not show the holder in flight (it may have ended without letting go), or the holder
        # is newer than this run, which it would then outrank: ask the API whether it is still running (the
        # watches show a run's end a moment after the write that ended it).
        found = await self._in_pool(self.services.kube.read_run, namespace, holder.run)
        running = found is not None and meta(found).get("uid") == holder.uid and not is_finished(
            obj(found.get("status")))
        return replace(world, holder_running=running)

    async def _in_pool(self, fn: Callable[..., T], *args: object) -> T:
        run = self.current()
        return await self.services.ticks.run(namespace_of(run), fn, *args, urgent=_before_deploy(run))

    async def deleted(self) -> None:
        """The run was deleted mid-flight: say on its Deployment what state it left things in."""
        run = self.current()
        status = RunStatus.model_validate(obj(run.get("status")))
        if status.phase in m.TERMINAL_PHASES:
            return
        kind, target = m.target_of(run)
        message = deletion_message(text(meta(run).get("name")) or "", status)
        self.logger.warning(message)
        try:
            await self._in_pool(self._post_on_workload, namespace_of(run), kind, target, message)
        except INFRASTRUCTURE_ERRORS as err:
            self.logger.warning("could not post the deletion event on %s %s: %s", kind, target, _describe(err))

    def _post_on_workload(self, namespace: str, kind: str, name: str, message: str) -> None:
        workload = self.services.kube.read_workload(kind, namespace, name)
        if workload is not None:
            self.services.kube.post_event({"apiVersion": "apps/v1", "kind": kind, **workload},
                                          Event(EventType.WARNING, reasons.SELF_BOOTSTRAP_RUN_DELETED, message))


@dataclass(frozen=True)
class Decided:
    """What a tick decided on (the run as it left it, and its world) and when its decision runs out.

    A wake that changes neither (the echo of the run's own status write, a change of a pod or ReplicaSet the
    world does not keep) would decide the same again: the machine's requeue is the time until its next step
    when nothing changes (0: at once), so the tick is skipped until then: a run in flight is woken far more
    often than what its decisions read changes."""

    run_version: str
    world: int  # its digest: kept whole, every run in flight would hold its world between ticks
    due: float  # time.monotonic()

    def standing(self, run: JsonObject, world: int) -> float | None:
        """Seconds the decision still stands for this run and world (its digest; None: decide again)."""
        left = self.due - time.monotonic()
        if left <= 0 or text(meta(run).get("resourceVersion")) != self.run_version or world != self.world:
            return None
        return left


def digest(world: World) -> int:
    """Equal for equal worlds (the same objects, read alike), within this process."""
    return hash(pickle.dumps(world, protocol=pickle.HIGHEST_PROTOCOL))


def _before_deploy(run: JsonObject) -> bool:
    """A run not yet accepted or in Pending: it waits (for a slot, a holder, a quiet moment) or takes its workload
    and deploys. Its steps go first (scheduling.FairExecutor); it never pays for the API resync."""
    return path(run, "status", "phase") in (None, m.Phase.PENDING)


def destinations(run: JsonObject) -> list[str]:
    """Every URL the run makes the operator contact: its repository and forge, its metrics, its HTTP check
    (a metric's URL made of args is checked when it is measured)."""
    try:
        spec = m.RunSpec.model_validate(obj(run.get("spec")))
    except ValidationError:
        return []  # the tick rejects the run, saying why
    urls = gitexec.destinations(spec.git) if spec.git else []
    urls += analysis_gate.destinations(spec.analysis) if spec.analysis else []
    return urls + ([spec.health.http.url] if spec.health.http else [])


def run_info(run: JsonObject) -> metrics.RunInfo:
    kind, target = m.target_of(run)
    return metrics.RunInfo(namespace_of(run), text(meta(run).get("name")) or "", target,
                           text(path(run, "status", "phase")) or m.Phase.PENDING, kind)


def deletion_message(name: str, s: RunStatus) -> str:
    """What a run deleted mid-flight leaves behind, as its status says (pure)."""
    where = f"SelfBootstrapRun {name} was deleted in phase {s.phase or m.Phase.PENDING}"
    if s.rollback_patched_at is not None:
        return (f"{where}, after it rolled the Deployment back to {s.rollback_target_replica_set} (release "
                f"{s.rollback_target_release_id}); it did not wait for that rollback to become available")
    if s.deploy_patched_at is not None:
        return (f"{where}; release {s.deployed_release_id} stays deployed and no rollback was performed")
    return f"{where}, before it changed the Deployment; the Deployment is as it was"


class _AbsentError(LookupError):
    """What was asked for is not there (an error, so that a shared answer does not keep it)."""


def _present(read: Callable[..., JsonObject | None], *args: object) -> JsonObject:
    found = read(*args)
    if found is None:
        raise _AbsentError
    return found


async def _first(*awaitables: Any, timeout: float) -> None:
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def _describe(err: BaseException) -> str:
    if isinstance(err, ApiException):
        return f"{err.status} {api_message(err)}"
    return type(err).__name__
