"""Kopf handlers: a thin shell around the reconciler.

One daemon per unfinished run ticks the run through its state machine; the
daemon exits when the run finishes and is respawned for unfinished runs when
the operator restarts, which resumes them from status. The Kubernetes client
and the adapters are made once at startup (see services.py) and reach the
handlers through kopf's memo.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from . import models as m
from .adapters.kube import api_message
from .core import reasons
from .core.decision import Event, EventType
from .reconciler import Logger, Reconciler, is_finished
from .services import Services, services_of

MIN_TICK_SECONDS = 0.05


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    config = services_of(memo).settings
    prefix = m.GROUP
    settings.persistence.finalizer = f"{prefix}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=prefix)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=prefix)
    # Watches can stall silently: bound them on both the server and the client side.
    settings.watching.server_timeout = config.watch_server_timeout
    settings.watching.client_timeout = config.watch_server_timeout + 30
    settings.watching.connect_timeout = 10
    settings.posting.level = logging.WARNING
    settings.peering.lifetime = config.peering_lifetime
    settings.execution.max_workers = config.max_workers
    # A namespaced install may not list namespaces or CRDs cluster-wide; with named namespaces
    # there is nothing to discover (kopf would retry the forbidden listing for a minute).
    settings.scanning.disabled = config.exact_namespaces


def _active(status: kopf.Status, **_: Any) -> bool:
    return not is_finished(status)


@kopf.daemon(m.GROUP, m.VERSION, m.PLURAL, id="reconcile", when=_active,
             cancellation_timeout=30.0, backoff=5.0)
async def reconcile(name: str, namespace: str | None, stopped: kopf.DaemonStopped, logger: Logger,
                    memo: Any, **_: Any) -> None:
    # Async, so that a waiting run holds no thread: only a tick's blocking API calls
    # borrow one. (A sync daemon keeps a worker thread for its whole life, and runs
    # beyond the pool's size would wait for a free one.)
    services = services_of(memo)
    reconciler = Reconciler(services.kube, services.executor, logger=logger)
    while not stopped:
        delay = await asyncio.to_thread(reconciler.tick, namespace or "", name)
        if delay is None:
            return
        await stopped.wait(max(delay, MIN_TICK_SECONDS))


@kopf.on.delete(m.GROUP, m.VERSION, m.PLURAL, id="release-on-delete")
def on_delete(name: str, namespace: str | None, spec: kopf.Spec, status: kopf.Status, logger: Logger,
              memo: Any, **_: Any) -> None:
    """A run deleted mid-flight stops after its current step; the Deployment is left as it is.

    Every step is one atomic patch, so nothing is half-applied; the Deployment gets
    an Event saying where the run stopped, since the run's own Events go with it.
    """
    if is_finished(status):
        return
    kube = services_of(memo).kube
    phase = status.get("phase") or "Pending"
    deployment = str(spec.get("target", {}).get("deployment", ""))
    message = (f"SelfBootstrapRun {name} was deleted in phase {phase}; the Deployment is left at its "
               f"current template and no rollback was performed")
    logger.warning(message)
    dep = kube.read_deployment(namespace or "", deployment)
    if dep is None:
        return
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", **dep}
    try:
        kube.post_event(dep, Event(EventType.WARNING, reasons.SELF_BOOTSTRAP_RUN_DELETED, message))
    except ApiException as err:
        logger.warning("could not post event on deployment %s: %s", deployment, api_message(err))


__all__ = ["Services", "configure", "on_delete", "reconcile"]
