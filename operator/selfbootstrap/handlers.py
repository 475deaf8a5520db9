"""Kopf handlers: a thin shell around the workers.

Kopf watches the runs (an index keeps who they are, trimmed, and wakes the runs a change concerns). The
Deployments, ReplicaSets and pods are watched only in namespaces with runs in flight (adapters/watches.py),
so a cluster's other workloads cost nothing. One daemon per unfinished run of this instance's shard that has a
slot (the namespace's bound, scheduling.Ledger) runs its worker; a run in line for a slot has none, only a
Queued status. The daemon exits when the run finishes (kopf then drops its finalizer, so a finished run is
deleted without the operator) and is respawned for unfinished runs when the operator restarts, which resumes
them from status. A run whose namespace's watches have not listed yet reads its world from the API, so no run
decides on an empty cache.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Coroutine
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from . import __version__, kopf_fixes, kopf_trim, retry
from . import models as m
from .adapters import cache, ownpod
from .adapters.kube import admission_patch, api_message, meta
from .config import Settings
from .core import gate, reasons
from .core.jsontypes import JsonObject, path
from .reconciler import INFRASTRUCTURE_ERRORS, Logger, Reconciler, is_finished
from .selftest import PASSED as SELF_TEST_PASSED
from .services import Services, services_of
from .worker import RunWorker

SHARD_LABEL = m.SHARD_LABEL
QUEUE_IDLE_SECONDS = 0.5
DAEMON_EXIT_WAIT_SECONDS = 0.5


def configure(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    services = services_of(memo)
    services.ledger.admit = functools.partial(admit, services)
    config = services.settings
    prefix = m.GROUP
    settings.persistence.finalizer = m.finalizer_of(config.shard)
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=prefix)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=prefix)
    # Watches can stall silently: bound them on both the server and the client side.
    settings.watching.server_timeout = config.watch_server_timeout
    settings.watching.client_timeout = config.watch_server_timeout + 30
    settings.watching.connect_timeout = 10
    # Page the initial LISTs in small pages: kopf parses a whole page before the watch trims its objects
    # (500 pods parse into ~28 MB), and what each page's parse leaves scattered keeps pymalloc's arenas.
    # Pages of 50 instead of client-go's 500 took 11 MiB off the peak at 1,000 runs (benchmark), for a
    # few more requests at start.
    settings.watching.chunk_size = config.list_chunk_size or None
    # Kopf keeps an object's worker task (and its last event) for this long after the event; 5 s by
    # default, i.e. every object a rollout touches in the last 5 s. 0.5 s cut the memory 200 runs in
    # flight add by a third in the benchmark, at no measurable CPU cost.
    settings.queueing.idle_timeout = QUEUE_IDLE_SECONDS
    # A run's last status write comes back as a watch event while its worker may still be posting that step's
    # Events; kopf then stops the daemon and, unless it exits within this wait, rechecks only after the daemon's
    # cancellation backoff (10 s) with a patch of its own to bring an event: a request more per run and the
    # finalizer held 10 s longer (a quarter of a burst of 1,000). A worker told to stop exits at once.
    settings.background.instant_exit_timeout = DAEMON_EXIT_WAIT_SECONDS
    settings.posting.level = logging.WARNING
    settings.peering.lifetime = config.peering_lifetime
    settings.execution.max_workers = config.max_workers
    # A namespaced install may not list namespaces or CRDs cluster-wide; with named namespaces
    # there is nothing to discover (kopf would retry the forbidden listing for a minute).
    settings.scanning.disabled = config.exact_namespaces


DISCOVERY_WAIT_SECONDS = 120.0


async def await_discovery(memo: Any, logger: Logger, **_: Any) -> None:
    """Start watching only once API discovery lists the runs' resource.

    Kopf looks for its resources in discovery at start, and again only when a CRD changes: an
    operator started in the same breath as its CRD (helm install, kubectl apply -k) would
    otherwise see no run until its CRD watch reconnects, a minute or more later.
    """
    services = services_of(memo)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DISCOVERY_WAIT_SECONDS
    while not await loop.run_in_executor(services.pool, services.kube.serves_runs):
        if loop.time() >= deadline:
            logger.warning("API discovery does not list %s.%s/%s yet; is the CRD installed? Going on without it",
                           m.PLURAL, m.GROUP, m.VERSION)
            return
        logger.info("waiting for API discovery to list %s.%s/%s", m.PLURAL, m.GROUP, m.VERSION)
        await asyncio.sleep(1.0)


async def report_self_test(memo: Any, logger: Logger, **_: Any) -> None:
    """The self-test passed and the operator started: say so on its pod (a self-update's gate waits for it),
    through the tick pool, so the report itself shows that the workers run. In safe mode the pod says it is
    failing. (Kopf opens its watches after the start-up handlers: this cannot vouch for them.)"""
    services = services_of(memo)
    own, safe = services.own_pod, services.safe_mode.mode
    if safe is not None:
        logger.warning("%s", safe.message)
    if own is None:
        return
    message = safe.message if safe is not None else f"{SELF_TEST_PASSED}; version {__version__} started its workers"
    await services.ticks.run(own.namespace, ownpod.report, services.kube, own, safe is None, message)


IDLE_CHECK_SECONDS = 15.0


async def watch_namespaces(memo: Any, **_: Any) -> None:
    """The namespaces' watches wake runs from threads of their own: through this loop. Watches idle past their
    linger are closed now and then (a release closes them too, when one comes)."""
    services = services_of(memo)
    services.wakeups.loop = asyncio.get_running_loop()

    async def close_idle() -> None:
        while services.watches is not None:
            await asyncio.sleep(IDLE_CHECK_SECONDS)
            services.watches.close_idle()

    _start(close_idle())


def cleanup(memo: Any, **_: Any) -> None:
    services = services_of(memo)
    if services.watches is not None:
        services.watches.stop()
    services.pool.shutdown(wait=False, cancel_futures=True)
    services.ticks.shutdown()


# --- the caches -----------------------------------------------------------------------


async def sbr_runs(body: kopf.Body, namespace: str | None, name: str | None, memo: Any,
                   **_: Any) -> dict[cache.Key, cache.RunEntry]:
    run = _json(body)
    target = m.workload_key(*m.target_of(run))
    services = services_of(memo)
    services.wakeups.wake(("run", namespace or "", name or ""))
    entry = cache.run_entry(run)
    if is_finished(run.get("status")) or meta(run).get("deletionTimestamp"):  # type: ignore[arg-type]
        if is_finished(run.get("status")):  # type: ignore[arg-type]
            services.ledger.gone(namespace or "", entry.uid)
            _safe_mode_ended(services, entry.uid)
        else:  # its worker keeps the slot until the run is gone (it says on the Deployment what it left)
            services.ledger.leave_line(namespace or "", entry.uid)
        services.wakeups.wake(("deployment", namespace or "", target))  # a run that ends frees its Deployment
        return {}
    if services.ledger.saw(namespace or "", entry.uid, entry.active):  # a new run: older waiting ones may end
        services.wakeups.wake(("deployment", namespace or "", target))
    if services.ledger.waits(entry.uid):
        services.ledger.note(entry.uid, _as_seen_in_line(run))
    return {(namespace or "", target): entry}


def _as_seen_in_line(run: JsonObject) -> JsonObject:
    """What the write admitting a run from the line builds on: its metadata's guard, finalizers and labels, and
    its target."""
    md = meta(run)
    return {"metadata": {key: md[key] for key in ("resourceVersion", "finalizers", "labels") if key in md},
            "spec": {"target": path(run, "spec", "target")}}


async def run_gone(type: str | None, namespace: str | None, uid: str | None, memo: Any, **_: Any) -> None:
    if type == "DELETED":  # an index forgets a deleted object without calling its function
        services_of(memo).ledger.gone(namespace or "", uid or "")
        _safe_mode_ended(services_of(memo), uid or "")


def _safe_mode_ended(services: Services, uid: str) -> None:
    """Safe mode's self-update ended: the runs it held are admitted as the Ledger admits any run (up to the
    namespace's bound; the rest wait in line)."""
    held = services.safe_mode.ended(uid)
    if held is None:
        return
    logging.getLogger(__name__).warning("safe mode ended: the self-update finished; serving every run")
    for run in held:
        if services.ledger.admits(run.namespace, run.uid, run.order):
            _start(_admit(services, run.namespace, run.name, run.uid, SAFE_MODE_LEFT))


def _json(body: kopf.Body) -> JsonObject:
    return dict(body)


# --- the runs -------------------------------------------------------------------------


async def retry_requested(body: kopf.Body, logger: Logger, memo: Any, **_: Any) -> None:
    """A finished run annotated selfbootstrap.dev/retry: make its successor (see retry.py)."""
    services = services_of(memo)
    loop = asyncio.get_running_loop()
    made = await loop.run_in_executor(services.pool, retry.retry, services.kube, _json(body))
    if made:
        logger.info("retried as run %s", made)


def _active(status: kopf.Status, **_: Any) -> bool:
    return not is_finished(dict(status))


def _admitted(body: kopf.Body, status: kopf.Status, memo: Any, **_: Any) -> bool:
    """Has the run a slot (so a worker)? Asking puts a run without one in line (scheduling.Ledger)."""
    if not _active(status):
        return False
    services, namespace, uid = services_of(memo), body.metadata.namespace or "", body.metadata.uid or ""
    order = (body.metadata.get("creationTimestamp") or "", body.metadata.name or "")
    if not services.safe_mode.admits(namespace, body.metadata.name or "", uid, order):
        return False
    ledger = services.ledger
    if body.metadata.deletion_timestamp:  # a worker keeps its run's finalizer until it has said what it left
        return ledger.serves(namespace, uid)
    return ledger.admits(namespace, uid, order)


def _in_line(body: kopf.Body, status: kopf.Status, memo: Any, type: str | None = None, **_: Any) -> bool:
    """A run that waits in line for a slot and does not say so yet."""
    return (type != "DELETED" and not body.metadata.deletion_timestamp and _active(status)
            and not _admitted(body, status, memo) and status.get("reason") != reasons.QUEUED)


def _unaccepted(body: kopf.Body, status: kopf.Status, memo: Any, type: str | None = None, **_: Any) -> bool:
    """A new run this instance serves now (it has a slot), with no status yet."""
    return (type != "DELETED" and not body.metadata.deletion_timestamp and not status.get("phase")
            and _admitted(body, status, memo))


async def accept(body: kopf.Body, patch: kopf.Patch, memo: Any, logger: Logger, **_: Any) -> None:
    """Accept a new run in kopf's own first patch of it: kopf merge-patches the status first, then adds the
    finalizer (and the run's label) in a JSON patch guarded by the resourceVersion that status write returned,
    so the first status costs one write, made as soon as the run is seen, and voids nothing."""
    services = services_of(memo)
    first = Reconciler(services.kube, services.executor, logger=logger).accepted(_json(body))
    if first is not None:
        patch.status.update(first)


async def hold_back(body: kopf.Body, patch: kopf.Patch, logger: Logger, memo: Any, **indices: Any) -> None:
    """A run in line has no worker: say in its status, in kopf's own patch of it, that it is Queued (its worker
    starts with its slot)."""
    services = services_of(memo)
    held = await RunWorker(services, services.wakeups, _indices(services, indices), body, logger).hold_back()
    if held is not None:
        patch.status.update(held)


def admit(services: Services, namespace: str, name: str, uid: str, seen: JsonObject | None) -> None:
    """The oldest run in line has a slot: a write to it brings the watch event that spawns its worker. That
    write puts on the finalizer and target label kopf would otherwise add in a patch of its own, when the
    run's metadata is known; else (or if it changed since) it is a status message."""
    _start(_admit(services, namespace, name, uid, gate.ADMITTED, seen))


def _start(work: Coroutine[Any, Any, None]) -> None:
    """Run in the background, keeping a reference (the loop keeps only a weak one)."""
    task = asyncio.get_running_loop().create_task(work)
    _background.add(task)
    task.add_done_callback(_background.discard)


_background: set[asyncio.Task[None]] = set()
ADMIT_RETRY_SECONDS = 5.0
SAFE_MODE_LEFT = "the operator left safe mode: starting"


async def _admit(services: Services, namespace: str, name: str, uid: str, message: str,
                 seen: JsonObject | None = None) -> None:
    if seen is not None and await _admitted_with_finalizer(services, namespace, name, uid, seen):
        return
    patch: JsonObject = {"status": {"message": message}}
    while services.ledger.serves(namespace, uid):
        try:
            await services.ticks.run(namespace, services.kube.patch_run_status, namespace, name, patch)
            return
        except INFRASTRUCTURE_ERRORS as err:
            if isinstance(err, ApiException) and err.status == 404:  # gone (its DELETED event may have come
                services.ledger.gone(namespace, uid)  # first): the slot goes on
                return
            why = api_message(err) if isinstance(err, ApiException) else type(err).__name__
            logging.getLogger(__name__).warning("could not admit run %s/%s: %s; trying again", namespace, name, why)
        await asyncio.sleep(ADMIT_RETRY_SECONDS)


async def _admitted_with_finalizer(services: Services, namespace: str, name: str, uid: str,
                                   seen: JsonObject) -> bool:
    """Admit the run with its finalizer and label; False when that cannot be done (the run changed since it was
    seen, or the write failed): the caller admits it with a status write."""
    ops = admission_patch(meta(seen), m.finalizer_of(services.settings.shard), _label_of(*m.target_of(seen)))
    try:
        await services.ticks.run(namespace, services.kube.patch_run_json, namespace, name, ops)
        return True
    except INFRASTRUCTURE_ERRORS as err:
        if isinstance(err, ApiException) and err.status == 404:
            services.ledger.gone(namespace, uid)
            return True
        return False


LABEL_VALUE_MAX = 63


def _target_label(body: kopf.Body) -> tuple[str, str] | None:
    return _label_of(*m.target_of(_json(body)))


def _label_of(kind: str, name: str) -> tuple[str, str] | None:
    """The run's target label (m.target_label) and value: its target's name, unless too long for a label."""
    return (m.target_label(kind), name) if name and len(name) <= LABEL_VALUE_MAX else None


def _unlabelled(body: kopf.Body, status: kopf.Status, memo: Any, type: str | None = None, **kwargs: Any) -> bool:
    """An active run with a slot and without its target label. A run in line gets it in the write that admits it
    (until then, a patch of its own would cost a request more per run: it has no finalizer patch to ride in)."""
    label = _target_label(body)
    return (type != "DELETED" and label is not None and body.metadata.labels.get(label[0]) != label[1]
            and _active(status) and _admitted(body, status, memo, **kwargs))


async def label_run(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    """Label an active run with its target inside kopf's own patch of it (the JSON patch, guarded
    by resourceVersion, that adds the finalizer), so the label costs no request of its own. A patch
    refused for a newer resourceVersion is applied again by kopf on the run's next event."""
    label = _target_label(body)
    if label is not None:
        patch.fns.append(functools.partial(_set_label, *label))


def _set_label(key: str, value: str, body: dict[str, Any]) -> None:
    body.setdefault("metadata", {}).setdefault("labels", {})[key] = value


async def reconcile(body: kopf.Body, stopped: kopf.DaemonStopped, logger: Logger, memo: Any,
                    **indices: Any) -> None:
    services = services_of(memo)
    worker = RunWorker(services, services.wakeups, _indices(services, indices), body, logger)
    await worker.run(stopped)
    if stopped.reason is not None and kopf.DaemonStoppingReason.RESOURCE_DELETED in stopped.reason:
        await worker.deleted()


def _indices(services: Services, indices: dict[str, Any]) -> cache.Indices:
    watches = services.watches
    assert watches is not None, "services.build opens the namespaces' watches"
    return cache.Indices(watches.index("deployments"), watches.index("replicasets"), watches.index("pods"),
                         indices["sbr_runs"], ready=watches.ready)


def shard_of(settings: Settings) -> dict[str, Any]:
    return {SHARD_LABEL: settings.shard or kopf.ABSENT}


def register(settings: Settings) -> kopf.OperatorRegistry:
    """Register the handlers for this instance (its shard decides which runs it serves).

    Raises kopf_fixes.KopfChangedError, having patched nothing, if the installed kopf is not the one
    the fixes and savings were written against."""
    kopf_fixes.apply(*kopf_trim.PATCHES)
    registry = kopf.get_default_registry()
    kopf.on.startup(registry=registry)(configure)
    kopf.on.startup(registry=registry)(await_discovery)
    kopf.on.startup(registry=registry)(report_self_test)
    kopf.on.cleanup(registry=registry)(cleanup)
    kopf.on.startup(registry=registry)(watch_namespaces)
    kopf.index(m.GROUP, m.VERSION, m.PLURAL, registry=registry)(sbr_runs)
    kopf.on.event(m.GROUP, m.VERSION, m.PLURAL, registry=registry)(run_gone)
    kopf.on.event(m.GROUP, m.VERSION, m.PLURAL, registry=registry, labels=shard_of(settings),
                  annotations={m.RETRY_ANNOTATION: kopf.PRESENT})(retry_requested)
    kopf.on.event(m.GROUP, m.VERSION, m.PLURAL, registry=registry, labels=shard_of(settings),
                  when=_unlabelled)(label_run)
    kopf.on.event(m.GROUP, m.VERSION, m.PLURAL, registry=registry, labels=shard_of(settings),
                  when=_unaccepted)(accept)
    kopf.on.event(m.GROUP, m.VERSION, m.PLURAL, registry=registry, labels=shard_of(settings),
                  when=_in_line)(hold_back)
    kopf.daemon(m.GROUP, m.VERSION, m.PLURAL, id="reconcile", registry=registry, when=_admitted,
                labels=shard_of(settings),
                cancellation_backoff=10.0, cancellation_timeout=30.0, backoff=5.0)(reconcile)
    return registry
