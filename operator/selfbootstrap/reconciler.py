"""One reconcile tick of a run: observe, ask the core, record, act, record.

Status is written before every side effect; a tick that dies anywhere is
resumed by the next one deciding again from status and the world.
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
from .adapters.kube import Kube, StatusConflictError, api_message, meta, name_of
from .core import machine, reasons
from .core.decision import Decision, Event, EventType
from .core.jsontypes import JsonObject, integer, obj, text
from .core.run import Run
from .models import TERMINAL_PHASES, Phase, RunSpec, RunStatus

Logger = logging.Logger | logging.LoggerAdapter[Any]
ERROR_BACKOFF = 5.0
CONFLICT_RETRY = 0.0  # someone else wrote status: read it again at once


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Reconciler:
    kube: Kube
    executor: Executor
    clock: Callable[[], datetime] = utcnow
    logger: Logger = field(default_factory=lambda: logging.getLogger("selfbootstrap"))

    def tick(self, namespace: str, name: str) -> float | None:
        """Advance the run once; return seconds until the next tick, None when it is finished."""
        try:
            return self._tick(namespace, name)
        except (ApiException, TransportError, OSError) as err:
            kind = f"{err.status} {err.reason}" if isinstance(err, ApiException) else type(err).__name__
            metrics.TICK_ERRORS.labels(type(err).__name__).inc()
            self.logger.warning("reconcile of %s/%s failed (%s); retrying in %ss", namespace, name, kind,
                                ERROR_BACKOFF)
            return ERROR_BACKOFF

    def _tick(self, namespace: str, name: str) -> float | None:
        o = self.kube.read_run(namespace, name)
        if o is None or meta(o).get("deletionTimestamp"):
            return None
        try:
            run = parse_run(o)
        except ValidationError as err:
            self._reject(o, err)
            return None
        if run.status.phase in TERMINAL_PHASES:
            return None
        world = self.kube.observe(o, run.spec.target.container)
        decision = machine.decide(run, world, self.clock())
        written = self._record(o, run.status, decision)
        if written is None:
            return CONFLICT_RETRY
        if decision.action is None:
            return decision.requeue_after
        run = replace(run, status=decision.status)
        result = self.executor.perform(run, decision.action)
        settled = machine.settle(run, world, decision.action, result, self.clock())
        self._record(written, run.status, settled)
        return settled.requeue_after

    def _record(self, o: JsonObject, before: RunStatus, decision: Decision) -> JsonObject | None:
        """Persist the decision's status and post its events; None when another writer got there first."""
        after = decision.status
        if after != before:
            try:
                o = self.kube.write_status(o, after.dump())
            except StatusConflictError:
                self.logger.info("status of %s changed under us; deciding again", name_of(o))
                return None
            self._count(o, before, after)
        for event in decision.events:
            log = self.logger.warning if event.type == EventType.WARNING else self.logger.info
            log("%s/%s %s: %s", text(meta(o).get("namespace")), name_of(o), event.reason, event.message)
            try:
                self.kube.post_event(o, event)
            except ApiException as err:  # an event is worth a log line, not a failed run
                self.logger.warning("could not post event %s: %s", event.reason, api_message(err))
        return o

    def _reject(self, o: JsonObject, err: ValidationError) -> None:
        """A run the CRD let through but the models refuse (e.g. an old schema): fail it, say why."""
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = f"spec.{where}: {first['msg']}"
        status = RunStatus(phase=Phase.FAILED, reason=reasons.INVALID_SPEC, message=message,
                           finished_at=self.clock())
        self._record(o, RunStatus(), Decision(status, events=(Event(EventType.WARNING, reasons.INVALID_SPEC,
                                                                    message),)))

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
        metrics.track(text(meta(o).get("uid")) or "", after.phase)


def parse_run(o: JsonObject) -> Run:
    """The core's view of a run resource; ValidationError when spec or status do not fit the models."""
    md = meta(o)
    return Run(
        name=name_of(o),
        generation=integer(md.get("generation")),
        spec=RunSpec.model_validate(o.get("spec")),
        status=RunStatus.model_validate(obj(o.get("status"))),
        namespace=text(md.get("namespace")) or "",
        uid=text(md.get("uid")) or "",
        created=text(md.get("creationTimestamp")) or "",
    )


def is_finished(status: JsonObject | None) -> bool:
    return obj(status).get("phase") in TERMINAL_PHASES
