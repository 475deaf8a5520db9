"""One reconcile tick of a run: decide, record, act, settle, record.

The run and its world come in (from the watches' caches); nothing is read in the steady
state. Decisions that need no side effect are chained in memory and written once; status
is always written before a side effect, so a tick that dies anywhere is resumed by the next
one deciding again from status and the world. No exception escapes: a passing fault of the
API server is the caller's to retry with backoff, anything unexpected fails the run with
InternalError and the traceback in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError
from urllib3.exceptions import HTTPError as TransportError

from . import metrics
from .adapters.executor import Executor
from .adapters.kube import Kube, StatusConflictError, api_message, meta, name_of, namespace_of
from .core import gate, machine, reasons
from .core.actions import QUESTIONS, Deployed, Failed, Released, Undone
from .core.decision import Decision, Event, EventType
from .core.jsontypes import JsonObject, integer, obj, strings, text
from .core.run import Run
from .core.world import DeploymentState, World
from .models import (
    ABORT_ANNOTATION,
    APPROVAL_PREFIX,
    AUTHOR_ANNOTATION,
    RETRY_OF_ANNOTATION,
    TERMINAL_PHASES,
    EventRecord,
    Phase,
    RunSpec,
    RunStatus,
)

Logger = logging.Logger | logging.LoggerAdapter[Any]
INFRASTRUCTURE_ERRORS = (ApiException, TransportError, OSError)


CONFLICTS_TO_WARN = 5


def conflict_backoff(conflicts: int) -> float:
    """At once after the first refused write, then 0.5 s doubling up to 30 s: contention, not a spin."""
    return 0.0 if conflicts <= 1 else min(30.0, 0.5 * 2.0 ** (conflicts - 2))


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Tick:
    requeue: float | None  # seconds until the next tick; None: the run is finished (or gone)
    run: JsonObject | None  # the run as last written (None: gone)
    patched_from: str | None = None  # the Deployment's resourceVersion a patch of this tick was guarded on
    wrote: bool = False  # `run` is what this tick's status write returned (not the run as it came, nor a read)


@dataclass
class Reconciler:
    kube: Kube
    executor: Executor
    clock: Callable[[], datetime] = utcnow
    logger: Logger = field(default_factory=lambda: logging.getLogger("selfbootstrap"))
    conflicts: int = 0  # status writes refused in a row (someone else keeps changing the run)

    def tick(self, o: JsonObject, world: World) -> Tick:
        """Advance the run once. API errors propagate (the caller backs off); nothing else does."""
        try:
            tick = self._tick(o, world)
        except StatusConflictError:
            self.conflicts += 1
            wait = conflict_backoff(self.conflicts)
            log = self.logger.warning if self.conflicts >= CONFLICTS_TO_WARN else self.logger.info
            log("run %s changed under us (%d times in a row); reading it again in %gs", _key(o), self.conflicts, wait)
            fresh = self.kube.read_run(namespace_of(o), name_of(o))
            return Tick(wait if fresh is not None else None, fresh)
        except INFRASTRUCTURE_ERRORS:
            raise
        except Exception as err:  # a bug or data nobody foresaw: end the run, saying so
            self.logger.exception("reconcile of run %s failed unexpectedly", _key(o))
            metrics.TICK_ERRORS.labels(type(err).__name__).inc()
            return self._internal_error(o, err)
        self.conflicts = 0
        return tick

    def repost(self, o: JsonObject, world: World | None = None) -> None:
        """Post the latest decision's Events again (after a restart they may have been lost; a posted
        one is found by its name and not repeated)."""
        status = RunStatus.model_validate(obj(o.get("status")))
        self._post(o, tuple(Event(EventType(e.type), e.reason, e.message, e.count, e.seq, e.on_deployment)
                            for e in status.last_events), world)

    def accepted(self, o: JsonObject) -> JsonObject | None:
        """The status a new run is accepted with, for the shell to write in its first patch of the run (None: the
        run does not fit the models; its worker rejects it, saying why)."""
        try:
            run = parse_run(o)
        except ValidationError:
            return None
        if run.status.phase is not None:
            return None
        return machine.accepted(run, self.clock()).status.dump()

    def held_back(self, o: JsonObject, why: gate.Wait) -> tuple[JsonObject, tuple[Event, ...]] | None:
        """The status of a run kept in line, saying it is Queued and why, for the shell to write in kopf's patch
        of the run, and its Events (None: nothing new to say, or the run does not fit the models: its worker
        rejects it, saying why, once it has a slot)."""
        try:
            run = parse_run(o)
        except ValidationError:
            return None
        decision = machine.held_back(run, self.clock(), why)
        after = _with_events(decision.status, decision.events)
        return (after.dump(), decision.events) if after != run.status else None

    def post(self, o: JsonObject, events: tuple[Event, ...]) -> None:
        self._post(o, events, None)

    def _tick(self, o: JsonObject, world: World) -> Tick:
        try:
            run = parse_run(o)
        except ValidationError as err:
            self._reject(o, err)
            return Tick(None, o)
        if run.status.phase in TERMINAL_PHASES:
            return Tick(None, o)
        decision, events = machine.decide_chained(run, world, self.clock())
        if isinstance(decision.action, QUESTIONS):  # no side effect: its answer feeds this tick
            decision, events = self._asked(run, world, decision, events)
        written = self._record(o, run.status, decision, events, world, post=decision.action is None)
        if decision.action is None:
            return Tick(decision.requeue_after, written, wrote=written is not o)
        run = replace(run, status=decision.status)
        try:
            result = self.executor.perform(run, decision.action)
        finally:  # the side effect is not kept waiting for the Events (they are in status, for a restart)
            self._post(written, events, world)
        settled = machine.settle(run, world, decision.action, result, self.clock())
        written = self._record(written, run.status, settled, settled.events, world)
        changed = isinstance(result, Deployed | Undone | Released) or (
            isinstance(result, Failed) and result.stale)
        guard = world.deployment.resource_version if world.deployment and changed else None
        return Tick(settled.requeue_after, written, guard, wrote=written is not o)

    def _asked(self, run: Run, world: World, asked: Decision,
                   events: tuple[Event, ...]) -> tuple[Decision, tuple[Event, ...]]:
        """Ask, and decide on with the answer, so that it is written with the next step (the deploy patch)
        rather than alone: nothing happened in the cluster that a restart would have to recognise."""
        assert asked.action is not None
        run = replace(run, status=asked.status)
        answer = self.executor.perform(run, asked.action)
        settled = machine.settle(run, world, asked.action, answer, self.clock())
        if settled.requeue_after != 0:
            return settled, events + settled.events
        decision, more = machine.decide_chained(replace(run, status=settled.status), world, self.clock())
        return decision, events + settled.events + more

    def _record(self, o: JsonObject, before: RunStatus, decision: Decision,
                events: tuple[Event, ...], world: World | None = None, post: bool = True) -> JsonObject:
        """Persist the decision's status (keeping every Event of this write for a restart), then post them
        (unless the caller posts them itself, after the decision's side effect)."""
        after = _with_events(decision.status, events)
        if after != before:
            o = self.kube.write_status(o, after.dump())
            self._count(o, before, after)
        if post:
            self._post(o, events, world)
        return o

    def _post(self, o: JsonObject, events: tuple[Event, ...], world: World | None) -> None:
        for event in events:
            log = self.logger.warning if event.type == EventType.WARNING else self.logger.info
            log("%s %s: %s", _key(o), event.reason, event.message)
            try:
                self.kube.post_event(o, event)
                if event.on_deployment and world is not None and world.deployment is not None:
                    self.kube.post_event(o, event, deployment_ref(o, world.deployment))  # key steps, there too
            except ApiException as err:  # an Event is worth a log line, not a failed run
                self.logger.warning("could not post event %s: %s", event.reason, api_message(err))

    def _reject(self, o: JsonObject, err: ValidationError) -> None:
        """A run the CRD let through but the models refuse (e.g. an old schema): fail it, say why."""
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = f"spec.{where}: {first['msg']}"
        before = RunStatus.model_validate(obj(o.get("status"))) if _valid_status(o) else RunStatus()
        status = RunStatus(phase=Phase.FAILED, reason=reasons.INVALID_SPEC, message=message,
                           failure_reason=reasons.INVALID_SPEC, failure_message=message, finished_at=self.clock(),
                           event_seq=before.event_seq + 1)
        event = Event(EventType.WARNING, reasons.INVALID_SPEC, message, seq=status.event_seq)
        self._record(o, before, Decision(status), (event,))

    def _internal_error(self, o: JsonObject, err: Exception) -> Tick:
        message = f"run {_key(o)} met an unexpected {type(err).__name__} in the operator ({err}); see its log"
        try:
            run = parse_run(o)
            decision = machine.internal_error(run, self.clock(), message[:1024])
            written = self._record(o, run.status, decision, decision.events)
            return Tick(None, written, wrote=written is not o)
        except Exception:  # cannot even record it: log, and let the caller back off
            self.logger.exception("could not record the failure of run %s", _key(o))
            raise err from None

    def _count(self, o: JsonObject, before: RunStatus, after: RunStatus) -> None:
        if before.phase == after.phase or after.phase is None:
            return
        metrics.TRANSITIONS.labels(after.phase).inc()
        if before.phase and before.phase_started_at and after.phase_started_at:
            elapsed = (after.phase_started_at - before.phase_started_at).total_seconds()
            metrics.PHASE_SECONDS.labels(before.phase).observe(elapsed)
        if after.phase in TERMINAL_PHASES:
            metrics.OUTCOMES.labels(after.phase, after.reason or "").inc()
        if after.phase == Phase.ROLLING_BACK:
            metrics.ROLLBACKS.labels(after.rollback_failure_class or "").inc()


def deployment_ref(run: JsonObject, dep: DeploymentState) -> JsonObject:
    return {"apiVersion": "apps/v1", "kind": dep.kind,
            "metadata": {"name": dep.name, "namespace": namespace_of(run), "uid": dep.uid}}


def _key(o: JsonObject) -> str:
    return f"{namespace_of(o)}/{name_of(o)}"


def _valid_status(o: JsonObject) -> bool:
    try:
        RunStatus.model_validate(obj(o.get("status")))
    except ValidationError:
        return False
    return True


def _with_events(status: RunStatus, events: tuple[Event, ...]) -> RunStatus:
    """The status keeping the Events of its write (posted again after a restart, found by their names)."""
    if not events:
        return status
    return status.model_copy(update={"last_events": [
        EventRecord(seq=e.seq, type=e.type, reason=e.reason, message=e.message[:1024], count=e.count,
                    on_deployment=e.on_deployment) for e in events]})


def parse_run(o: JsonObject) -> Run:
    """The core's view of a run resource; ValidationError when spec or status do not fit the models."""
    md = meta(o)
    annotations = strings(md.get("annotations"))
    return Run(
        name=name_of(o),
        generation=integer(md.get("generation")),
        spec=RunSpec.model_validate(o.get("spec")),
        status=RunStatus.model_validate(obj(o.get("status"))),
        namespace=text(md.get("namespace")) or "",
        uid=text(md.get("uid")) or "",
        created=text(md.get("creationTimestamp")) or "",
        abort=annotations.get(ABORT_ANNOTATION),
        retry_of=annotations.get(RETRY_OF_ANNOTATION),
        author=annotations.get(AUTHOR_ANNOTATION),
        approvals={k.removeprefix(APPROVAL_PREFIX): v for k, v in annotations.items() if k.startswith(APPROVAL_PREFIX)},
    )


def is_finished(status: JsonObject | None) -> bool:
    return obj(status).get("phase") in TERMINAL_PHASES
