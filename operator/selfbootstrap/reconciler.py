"""One reconcile tick of a run: observe, ask the core, record, act, record.

Status is written before every side effect; a tick that dies anywhere is
resumed by the next one deciding again from status and the world.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timezone, UTC
from typing import Any
from collections.abc import Callable

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError
from urllib3.exceptions import HTTPError as TransportError

from . import metrics
from .adapters import http as http_probe
from .adapters.kube import JSON_PATCH, STRATEGIC, Kube, api_message
from .core import machine
from .core.draft import Decision, Event, Outcome, Run
from .gitrunner import GitRunner
from .models import TERMINAL_PHASES, Phase, RunSpec, RunStatus

ERROR_BACKOFF = 5.0
RETRYABLE_STATUS = frozenset({409, 429, 500, 502, 503, 504})


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Reconciler:
    kube: Kube
    git: GitRunner | None = None  # default: a GitRunner on the same Kube
    probe: Callable[..., Outcome] = http_probe.probe
    clock: Callable[[], datetime] = utcnow
    logger: logging.Logger = logging.getLogger("selfbootstrap")

    def __post_init__(self) -> None:
        self.git = self.git or GitRunner(self.kube)

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
        obj = self.kube.read_run(namespace, name)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            return None
        try:
            run = Run(name=name, generation=obj["metadata"].get("generation", 0),
                      spec=RunSpec.model_validate(obj["spec"]),
                      status=RunStatus.model_validate(obj.get("status") or {}),
                      namespace=namespace, uid=obj["metadata"]["uid"])
        except ValidationError as err:
            return self._reject(obj, err)
        if run.status.phase in TERMINAL_PHASES:
            return None
        world = self.kube.observe(obj, run.spec.target.container)
        decision = machine.decide(run, world, self.clock())
        obj = self._record(obj, run.status, decision)
        if obj is None or decision.action is None:
            return decision.requeue_after if obj is not None else 1.0
        outcome = self._perform(obj, run, decision.action)
        run = replace(run, status=decision.status)
        settled = machine.settle(run, world, decision.action, outcome, self.clock())
        self._record(obj, run.status, settled)
        return settled.requeue_after

    def _record(self, obj: dict[str, Any], before: RunStatus, decision: Decision) -> dict[str, Any] | None:
        """Persist the decision's status (guarded by resourceVersion) and post its events.

        Returns the updated run, or None when another writer got there first.
        """
        after = decision.status
        if after.dump() != before.dump():
            try:
                obj = self.kube.patch_run_status(obj, after.dump())
            except ApiException as err:
                if err.status == 409:
                    self.logger.info("run %s changed under us; deciding again", obj["metadata"]["name"])
                    return None
                raise
            self._count(obj, before, after)
        for event in decision.events:
            log = self.logger.warning if event.type == "Warning" else self.logger.info
            log("%s/%s %s: %s", obj["metadata"]["namespace"], obj["metadata"]["name"], event.reason, event.message)
            try:
                self.kube.post_event(obj, event)
            except ApiException as err:  # an event is worth a log line, not a failed run
                self.logger.warning("could not post event %s: %s", event.reason, api_message(err))
        return obj

    def _perform(self, obj: dict[str, Any], run: Run, action: machine.Action) -> Outcome:
        namespace, deployment = run.namespace, run.spec.target.deployment
        if isinstance(action, machine.ProbeHttp):
            return self.probe(action.check)
        if not isinstance(action, (machine.PatchDeployment, machine.RollbackDeployment)):
            assert self.git is not None
            return self.git.perform(obj, run, action)
        try:
            if isinstance(action, machine.PatchDeployment):
                self.kube.patch_deployment(namespace, deployment, action.patch, STRATEGIC)
            else:
                self.kube.patch_deployment(namespace, deployment, action.patch, JSON_PATCH)
        except ApiException as err:
            return Outcome(ok=False, message=f"{err.status}: {api_message(err)}",
                           retryable=err.status in RETRYABLE_STATUS)
        except (TransportError, OSError) as err:
            return Outcome(ok=False, message=type(err).__name__, retryable=True)
        return Outcome(ok=True)

    def _reject(self, obj: dict[str, Any], err: ValidationError) -> None:
        """A run the CRD let through but the models refuse (e.g. an old schema): fail it, say why."""
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        status = RunStatus(phase=Phase.FAILED, reason="InvalidSpec", message=f"spec.{where}: {first['msg']}")
        now = self.clock()
        decision = Decision(status.model_copy(update={"finished_at": now}),
                                    events=(Event("Warning", "InvalidSpec", status.message or ""),))
        self._record(obj, RunStatus(), decision)
        return None

    def _count(self, obj: dict[str, Any], before: RunStatus, after: RunStatus) -> None:
        if before.phase == after.phase:
            return
        metrics.TRANSITIONS.labels(after.phase).inc()
        if before.phase and before.phase_started_at and after.phase_started_at:
            elapsed = (after.phase_started_at - before.phase_started_at).total_seconds()
            metrics.PHASE_SECONDS.labels(before.phase).observe(elapsed)
        if after.phase in TERMINAL_PHASES:
            metrics.OUTCOMES.labels(after.phase, after.reason or "").inc()
        if after.phase == Phase.ROLLING_BACK:
            metrics.ROLLBACKS.labels(after.rollback_failure_class or "").inc()
        metrics.track(obj["metadata"]["uid"], after.phase)


def is_finished(status: dict[str, Any]) -> bool:
    return (status or {}).get("phase") in TERMINAL_PHASES

