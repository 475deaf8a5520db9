"""Kopf handlers: a thin shell around the reconciler.

One daemon per unfinished run ticks the run through its state machine; the
daemon exits when the run finishes and is respawned for unfinished runs when
the operator restarts, which resumes them from status.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from . import models as m
from .adapters.kube import Kube, api_message
from .core.draft import Event
from .reconciler import Reconciler, is_finished

MIN_TICK_SECONDS = 0.05
_kube: Kube | None = None


def kube() -> Kube:
    global _kube
    if _kube is None:
        from kubernetes import config
        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        _kube = Kube()
    return _kube


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    prefix = m.GROUP
    settings.persistence.finalizer = f"{prefix}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=prefix)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=prefix)
    # Watches can stall silently: bound them on both the server and the client side.
    settings.watching.server_timeout = int(os.environ.get("SELFBOOTSTRAP_WATCH_SERVER_TIMEOUT", "60"))
    settings.watching.client_timeout = settings.watching.server_timeout + 30
    settings.watching.connect_timeout = 10
    settings.posting.level = logging.WARNING
    settings.peering.lifetime = int(os.environ.get("SELFBOOTSTRAP_PEERING_LIFETIME", "60"))
    settings.execution.max_workers = int(os.environ.get("SELFBOOTSTRAP_MAX_WORKERS", "20"))


def _active(status: dict[str, Any], **_: Any) -> bool:
    return not is_finished(status)


@kopf.daemon(m.GROUP, m.VERSION, m.PLURAL, id="reconcile", when=_active,
             cancellation_timeout=30.0, backoff=5.0)
async def reconcile(name: str, namespace: str, stopped: kopf.DaemonStopped, logger: logging.Logger,
                    **_: Any) -> None:
    # Async, so that a waiting run holds no thread: only a tick's blocking API calls
    # borrow one. (A sync daemon keeps a worker thread for its whole life, and runs
    # beyond the pool's size would wait for a free one.)
    reconciler = Reconciler(kube(), logger=logger)
    while not stopped:
        delay = await asyncio.to_thread(reconciler.tick, namespace, name)
        if delay is None:
            return
        await stopped.wait(max(delay, MIN_TICK_SECONDS))


@kopf.on.delete(m.GROUP, m.VERSION, m.PLURAL, id="release-on-delete")
def on_delete(name: str, namespace: str, spec: dict[str, Any], status: dict[str, Any],
              logger: logging.Logger, **_: Any) -> None:
    """A run deleted mid-flight stops after its current step; the Deployment is left as it is.

    Every step is one atomic patch, so nothing is half-applied; the Deployment gets
    an Event saying where the run stopped, since the run's own Events go with it.
    """
    if is_finished(status):
        return
    phase = (status or {}).get("phase") or "Pending"
    deployment = spec["target"]["deployment"]
    message = (f"SelfBootstrapRun {name} was deleted in phase {phase}; the Deployment is left at its "
               f"current template and no rollback was performed")
    logger.warning(message)
    dep = kube().read_deployment(namespace, deployment)
    if dep is None:
        return
    dep.setdefault("apiVersion", "apps/v1")
    dep.setdefault("kind", "Deployment")
    try:
        kube().post_event(dep, Event("Warning", "SelfBootstrapRunDeleted", message))
    except ApiException as err:
        logger.warning("could not post event on deployment %s: %s", deployment, api_message(err))
