"""Retry: a finished run annotated selfbootstrap.dev/retry=<any new value> gets a successor.

The new run is named <run>-retry-<n> (n counts this run's retries, so a repeated attempt finds the
one it made), has the same spec and labels, and says whose retry it is (selfbootstrap.dev/retry-of,
copied into its status.retryOf) and on whose behalf it was made (selfbootstrap.dev/requested-by,
from the retried run's selfbootstrap.dev/retry-requested-by). The finished run records it in
status.retriedAs and a Retried Event. Admission checks that whoever sets the annotation may patch
the run's Deployment, as for a new run, that retry-requested-by names whoever sets it, and that only
the operator writes retry-of and requested-by: the operator creates the successor with its own
rights, so these are what say who asked for it.
"""

from __future__ import annotations

from pydantic import ValidationError

from . import models as m
from .adapters.kube import Kube, meta, name_of, namespace_of
from .core import reasons
from .core.decision import Event, EventType
from .core.jsontypes import JsonObject, obj, strings
from .core.text import NAME_LIMIT, printable
from .models import EventRecord, RunStatus


def requester(run: JsonObject) -> str | None:
    """Who asked for the run's retry (its retry-requested-by annotation), if anyone said."""
    return strings(meta(run).get("annotations")).get(m.RETRY_REQUESTED_BY_ANNOTATION) or None


def successor(run: JsonObject, number: int) -> JsonObject:
    """The run a retry makes (pure)."""
    name = f"{name_of(run)[:230]}-retry-{number}"
    annotations = {m.RETRY_OF_ANNOTATION: name_of(run)}
    if (asked_by := requester(run)) is not None:
        annotations[m.REQUESTED_BY_ANNOTATION] = asked_by
    return {"apiVersion": f"{m.GROUP}/{m.VERSION}", "kind": m.KIND,
            "metadata": {"name": name, "namespace": namespace_of(run), "labels": strings(meta(run).get("labels")),
                         "annotations": annotations},
            "spec": obj(run.get("spec"))}


def retried_message(made: str, asked_by: str | None) -> str:
    on_behalf = printable(asked_by, NAME_LIMIT) if asked_by is not None else "an unnamed user"
    return f"retried as run {made} on behalf of {on_behalf}"


def retry(kube: Kube, run: JsonObject) -> str | None:
    """Make the run's successor if its retry annotation asks for one it has not got; its name, or None."""
    request = strings(meta(run).get("annotations")).get(m.RETRY_ANNOTATION)
    try:
        status = RunStatus.model_validate(obj(run.get("status")))
    except ValidationError:
        return None
    if request is None or status.phase not in m.TERMINAL_PHASES or request == status.retry_request:
        return None
    new = successor(run, len(status.retried_as) + 1)
    kube.create_run(namespace_of(run), new)  # already there: made by an attempt that stopped half-way
    made = name_of(new)
    event = Event(EventType.NORMAL, reasons.RETRIED, retried_message(made, requester(run)), seq=status.event_seq + 1)
    updated = status.model_copy(update={
        "retried_as": [*status.retried_as, made], "retry_request": request, "event_seq": event.seq,
        "last_events": [EventRecord(seq=event.seq, type=event.type, reason=event.reason, message=event.message)]})
    kube.post_event(kube.write_status(run, updated.dump()), event)
    return made
