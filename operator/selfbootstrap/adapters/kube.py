"""Kubernetes adapter: reads the world as plain data, performs the Deployment patches, records status.

Objects are fetched as raw JSON (camelCase) so templates compare and patch
exactly as the API server stores them; the translators from JSON to the core's
types are pure functions.
"""

from __future__ import annotations

import base64
import binascii
import json
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import assert_never

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as TransportError

from .. import models as m
from ..core import credentials, reasons, releases
from ..core.actions import (
    DeleteStuckPods,
    Deployed,
    Failed,
    KubeAction,
    PatchDeployment,
    PodsDeleted,
    Released,
    ReleaseWorkload,
    RollbackDeployment,
    Undone,
)
from ..core.decision import Event
from ..core.jsontypes import JsonObject, JsonValue, integer, obj, objects, path, strings, text, texts
from ..core.run import Run
from ..core.targets import controllerrevisions, daemonset, statefulset
from ..core.targets.controllerrevisions import ControllerRevision
from ..core.text import printable
from ..core.world import ContainerState, DeploymentState, PodState, Revision, World
from .kubeapi import KubeApi, resource_path

STRATEGIC = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
FIELD_MANAGER = "selfbootstrap-operator"  # managedFields name who wrote what (kubectl get --show-managed-fields)
REVISION = "deployment.kubernetes.io/revision"
COMPONENT = "selfbootstrap-operator"
RETRYABLE_STATUS = frozenset({409, 429, 500, 502, 503, 504})


def namespace_of(o: JsonObject) -> str:
    return text(meta(o).get("namespace")) or ""


def api_message(err: ApiException) -> str:
    """The API server's own message for a refused request (never the request itself)."""
    try:
        message = json.loads(err.body or "").get("message")
    except (TypeError, ValueError, AttributeError):
        message = None
    return str(message or f"{err.status} {err.reason}")


def _failed_test(err: ApiException) -> bool:
    """A JSON patch whose `test` failed: 422 Invalid without field causes (a schema refusal names its fields)."""
    if err.status == 409:
        return True
    try:
        body = json.loads(err.body or "")
    except ValueError:
        return False
    return err.status == 422 and body.get("reason") == "Invalid" and not obj(body.get("details")).get("causes")


def meta(o: JsonObject) -> JsonObject:
    return obj(o.get("metadata"))


def name_of(o: JsonObject) -> str:
    return text(meta(o).get("name")) or ""


# --- JSON -> plain data (pure) ------------------------------------------------------


def revision_of(rs: JsonObject, container: str | None) -> Revision:
    template = releases.strip_hash(obj(path(rs, "spec", "template")))
    annotations = strings(meta(rs).get("annotations"))
    return Revision(
        replica_set=name_of(rs),
        revision=integer(annotations.get(REVISION)),
        template=template,
        release_id=releases.release_id_of(template, container),
        annotations=annotations,
        available_replicas=integer(path(rs, "status", "availableReplicas")),
    )


def deployment_state(dep: JsonObject, replica_sets: list[JsonObject], container: str | None) -> DeploymentState:
    spec, status = obj(dep.get("spec")), obj(dep.get("status"))
    progressing = next((c for c in objects(status.get("conditions")) if c.get("type") == "Progressing"), {})
    return DeploymentState(
        name=name_of(dep),
        resource_version=text(meta(dep).get("resourceVersion")) or "",
        template=obj(spec.get("template")),
        generation=integer(meta(dep).get("generation")),
        observed_generation=integer(status.get("observedGeneration")),
        paused=spec.get("paused") is True,
        replicas=integer(spec.get("replicas"), 1),
        status_replicas=integer(status.get("replicas")),
        updated_replicas=integer(status.get("updatedReplicas")),
        available_replicas=integer(status.get("availableReplicas")),
        progressing_reason=text(progressing.get("reason")),
        annotations=strings(meta(dep).get("annotations")),
        revisions=tuple(revision_of(rs, container) for rs in replica_sets),
        uid=text(meta(dep).get("uid")) or "",
    )


def workload_state(kind: str, workload: JsonObject, history: tuple[ControllerRevision, ...],
                   pods: list[JsonObject], container: str | None) -> tuple[DeploymentState, tuple[PodState, ...]]:
    """A StatefulSet or DaemonSet as the core sees a workload (pure): its ControllerRevisions for revisions, its
    rollout progress as kubectl judges that kind, and the pods of its current revision."""
    spec, status = obj(workload.get("spec")), obj(workload.get("status"))
    current = next((r for r in history if controllerrevisions.matches(workload, r)), None)
    by_revision = {r.name: [p for p in pods if _revision_label(p) in (r.name, _hash_of(workload, r))]
                   for r in history}
    others = tuple((pod_state(p), r.name) for r in history if r is not current for p in by_revision[r.name]
                   if not meta(p).get("deletionTimestamp"))
    daemon = kind == "DaemonSet"
    state = DeploymentState(
        name=name_of(workload), resource_version=text(meta(workload).get("resourceVersion")) or "",
        template=obj(spec.get("template")), generation=integer(meta(workload).get("generation")),
        observed_generation=integer(status.get("observedGeneration")),
        replicas=integer(status.get("desiredNumberScheduled")) if daemon else integer(spec.get("replicas"), 1),
        status_replicas=integer(status.get("currentNumberScheduled" if daemon else "replicas")),
        updated_replicas=integer(status.get("updatedNumberScheduled" if daemon else "updatedReplicas")),
        available_replicas=integer(status.get("numberAvailable" if daemon else "availableReplicas")),
        annotations=strings(meta(workload).get("annotations")),
        revisions=tuple(Revision(r.name, r.revision, r.template, r.release_id(container),
                                 available_replicas=sum(1 for p in by_revision[r.name] if pod_state(p).ready),
                                 undo_refusal=controllerrevisions.undo_refusal(kind, workload, r))
                        for r in history),
        uid=text(meta(workload).get("uid")) or "", kind=kind,
        progress=(daemonset.rollout_progress if daemon else statefulset.rollout_progress)(workload),
        ordered_ready=not daemon and (text(spec.get("podManagementPolicy")) or "OrderedReady") == "OrderedReady",
        other_pods=others)
    live = [p for p in by_revision.get(current.name, []) if not meta(p).get("deletionTimestamp")] if current else []
    return state, tuple(pod_state(p) for p in live)


def _revision_label(pod: JsonObject) -> str:
    return strings(meta(pod).get("labels")).get(controllerrevisions.REVISION_HASH, "")


def _hash_of(workload: JsonObject, revision: ControllerRevision) -> str:
    """A DaemonSet's pods carry only the hash of their revision's name (<daemonset>-<hash>)."""
    prefix = f"{name_of(workload)}-"
    return revision.name[len(prefix):] if revision.name.startswith(prefix) else revision.name


def container_state(cs: JsonObject) -> ContainerState:
    return ContainerState(
        name=text(cs.get("name")) or "",
        ready=cs.get("ready") is True,
        restart_count=integer(cs.get("restartCount")),
        waiting_reason=text(path(cs, "state", "waiting", "reason")),
        terminated_reason=text(path(cs, "state", "terminated", "reason")),
        last_terminated_reason=text(path(cs, "lastState", "terminated", "reason")),
    )


SELF_TEST_SHOWN = 200  # characters of a pod's self-test message kept (anyone who may write pod status wrote it)
STARTING = frozenset({"ContainerCreating", "PodInitializing"})


def pod_state(pod: JsonObject) -> PodState:
    status = obj(pod.get("status"))
    found = objects(status.get("conditions"))
    conditions = {text(c.get("type")): c.get("status") for c in found}
    self_test = next((c for c in found if c.get("type") == m.SELF_TEST_CONDITION), None)
    containers = tuple(container_state(cs) for cs in objects(status.get("containerStatuses")))
    started = conditions.get("PodScheduled") != "False" and bool(containers) and not all(
        c.waiting_reason in STARTING and c.restart_count == 0 for c in containers)
    return PodState(name=name_of(pod), uid=text(meta(pod).get("uid")) or "",
                    phase=text(status.get("phase")) or "Unknown", ready=conditions.get("Ready") == "True",
                    containers=containers, started=started,
                    self_test=None if self_test is None else self_test.get("status") == "True",
                    self_test_message="" if self_test is None else printable(text(self_test.get("message")) or "",
                                                                            SELF_TEST_SHOWN))


def controlled_by(o: JsonObject, uid: str) -> bool:
    return any(ref.get("uid") == uid and ref.get("controller") is True
               for ref in objects(meta(o).get("ownerReferences")))


def selector_of(dep: JsonObject) -> str:
    labels = strings(path(dep, "spec", "selector", "matchLabels"))
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def status_patch(stored: JsonObject | None, after: JsonObject, resource_version: str) -> list[JsonObject]:
    """A JSON patch from the stored status to `after`, guarded by a `test` that fails when anyone
    else wrote status since we read it.

    Fields `after` leaves out are removed (a merge patch of a dump without them
    could not clear them); fields the models do not know are left alone.
    """
    ops: list[JsonObject] = [_guard(stored, resource_version)]
    if stored is None:
        return [*ops, {"op": "add", "path": "/status", "value": after}]
    for key in _STATUS_KEYS:
        if key in after and stored.get(key) != after[key]:
            ops.append({"op": "add", "path": f"/status/{key}", "value": after[key]})
        elif key not in after and key in stored:
            ops.append({"op": "remove", "path": f"/status/{key}"})
    return ops


def admission_patch(seen: JsonObject, finalizer: str, label: tuple[str, str] | None) -> list[JsonObject]:
    """A JSON patch that admits a run from the line: it puts on the finalizer (and the target label) that kopf
    would add in a patch of its own once the run has a worker, so the admitting write is that patch. Guarded
    by the resourceVersion of `seen` (the run's metadata as the watch last showed it): a list replaced whole
    must not drop a finalizer added since."""
    ops: list[JsonObject] = [{"op": "test", "path": "/metadata/resourceVersion", "value": seen.get("resourceVersion")}]
    finalizers = texts(seen.get("finalizers"))
    if finalizer not in finalizers:
        ops.append({"op": "add", "path": "/metadata/finalizers", "value": [*finalizers, finalizer]})
    labels = obj(seen.get("labels"))
    if label is not None and labels.get(label[0]) != label[1]:
        key, value = label
        ops.append({"op": "add", "path": f"/metadata/labels/{_pointer(key)}", "value": value} if labels
                   else {"op": "add", "path": "/metadata/labels", "value": {key: value}})
    return ops


def _pointer(key: str) -> str:
    """A key as one JSON pointer token (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")


def _guard(stored: JsonObject | None, resource_version: str) -> JsonObject:
    """A test of the stored status itself, so that kopf's and others' metadata patches do not count as
    conflicts. The API server compares strings as Go encodes them, though, so a status holding anything
    Go and Python encode differently (non-ASCII, & < >) could never pass that test: it is then guarded by
    the run's resourceVersion instead (any change of the run counts)."""
    encoded = json.dumps(stored)
    if any(escape in encoded for escape in ("\\u", "\\b", "\\f")) or any(c in encoded for c in "&<>"):
        return {"op": "test", "path": "/metadata/resourceVersion", "value": resource_version}
    return {"op": "test", "path": "/status", "value": stored}


_STATUS_KEYS = tuple(f.alias or name for name, f in m.RunStatus.model_fields.items())


def secret_value(secret: JsonObject, key: str) -> bytes | None:
    encoded = text(obj(secret.get("data")).get(key))
    if encoded is None:
        return None
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None


# --- the API ------------------------------------------------------------------------


@dataclass(frozen=True)
class SecretValue:
    value: bytes = field(repr=False)
    allowed_urls: tuple[str, ...]  # from the Secret's selfbootstrap.dev/allowed-urls annotation


def event_body(o: JsonObject, event: Event, now: str, instance: str,
               regarding: JsonObject | None = None) -> JsonObject:
    """The events.k8s.io/v1 Event (pure): named after the object and the Event's number when it has one;
    about `regarding` when given (a run's key step, told on its Deployment too)."""
    md, about = meta(o), regarding or o
    named: JsonObject = {"name": _event_name(o, event.seq, regarding)} if event.seq \
        else {"generateName": f"{name_of(o)[:200]}-"}
    body: dict[str, JsonValue] = {
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {**named, "namespace": md.get("namespace")},
        "regarding": {"apiVersion": about.get("apiVersion"), "kind": about.get("kind"), "name": name_of(about),
                      "namespace": md.get("namespace"), "uid": meta(about).get("uid")},
        "type": str(event.type), "reason": event.reason, "action": event.reason, "note": printable(event.message),
        "eventTime": now, "reportingController": f"{m.GROUP}/operator", "reportingInstance": instance[:128],
    }
    if event.count > 1:
        body["series"] = {"count": event.count, "lastObservedTime": now}
    return body


def _event_name(o: JsonObject, seq: int, regarding: JsonObject | None) -> str:
    """A numbered Event's name: the object's name and uid, the number, and `.d` when told on `regarding`."""
    uid = (text(meta(o).get("uid")) or "")[:8]
    return f"{name_of(o)[:200]}.{uid}.{seq:05d}{'.d' if regarding is not None else ''}"


def _event_stream(o: JsonObject, regarding: JsonObject | None) -> str:
    """The numbered Events of one object told on one object: their names with the number left out."""
    return f"{namespace_of(o)}/{_event_name(o, 0, regarding)}"


class SecretUnavailableError(LookupError):
    """A referenced Secret or key cannot be read; the message names them, never a value."""


class StatusConflictError(Exception):
    """Someone else wrote the run's status since it was read."""


def _workload(kind: str, namespace: str, name: str) -> str:
    return resource_path("apps", "v1", m.WORKLOAD_RESOURCES[m.WorkloadKind(kind)], namespace, name)


def _runs(namespace: str | None, name: str | None = None, subresource: str | None = None) -> str:
    return resource_path(m.GROUP, m.VERSION, m.PLURAL, namespace, name, subresource)


class Kube:
    """The calls the operator makes, as raw JSON (kubeapi says why not the client's typed classes)."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api = KubeApi(api_client)
        self.instance = socket.gethostname()
        # The numbered Events this process created, by stream (a run's own, and its key steps on its workload:
        # the Event's name without its number), for the last POSTED_KEPT streams: (high, frozen), every number
        # up to `high` posted; a post that failed freezes it below that number (the ones after it are posted
        # again, and found by name). A run's Events, not each Event: a burst's thousand runs all fit.
        self._posted: dict[str, tuple[int, bool]] = {}
        self._posted_lock = threading.Lock()  # ticks post from several threads

    POSTED_KEPT = 4096

    # reads

    def read_run(self, namespace: str, name: str) -> JsonObject | None:
        return self.api.get_optional(_runs(namespace, name))

    def list_runs(self, namespace: str | None, label_selector: str | None = None) -> list[JsonObject]:
        """The runs of a namespace (of every namespace for None), optionally by label."""
        return self.api.list(_runs(namespace), label_selector)

    def read_analysis_template(self, namespace: str, name: str, cluster_scope: bool) -> JsonObject | None:
        """An Argo Rollouts (Cluster)AnalysisTemplate; None when it, its CRD, or the right to read it is missing
        (the run then says the template was not found)."""
        plural = "clusteranalysistemplates" if cluster_scope else "analysistemplates"
        try:
            return self.api.get_optional(resource_path("argoproj.io", "v1alpha1", plural,
                                                       None if cluster_scope else namespace, name))
        except ApiException as err:
            if err.status == 403:
                return None
            raise

    def read_deployment(self, namespace: str, name: str) -> JsonObject | None:
        return self.api.get_optional(resource_path("apps", "v1", "deployments", namespace, name))

    def replica_sets_of(self, dep: JsonObject) -> list[JsonObject]:
        items = self.api.list(resource_path("apps", "v1", "replicasets", namespace_of(dep)), selector_of(dep))
        uid = text(meta(dep).get("uid")) or ""
        return [rs for rs in items if controlled_by(rs, uid)]

    def read_workload(self, kind: str, namespace: str, name: str) -> JsonObject | None:
        """A Deployment, StatefulSet or DaemonSet."""
        return self.api.get_optional(_workload(kind, namespace, name))

    def controller_revision_objects(self, workload: JsonObject) -> list[JsonObject]:
        """A StatefulSet's or DaemonSet's ControllerRevisions as stored (found by its selector, kept by owner)."""
        items = self.api.list(resource_path("apps", "v1", "controllerrevisions", namespace_of(workload)),
                              selector_of(workload))
        return [h for h in items if controlled_by(h, text(meta(workload).get("uid")) or "")]

    def controller_revisions_of(self, workload: JsonObject) -> tuple[ControllerRevision, ...]:
        """A StatefulSet's or DaemonSet's ControllerRevisions, oldest first."""
        return controllerrevisions.revisions_of(self.controller_revision_objects(workload),
                                                text(meta(workload).get("uid")) or "")

    def observe_workload(self, kind: str, namespace: str, name: str, container: str | None) -> World:
        """A StatefulSet or DaemonSet, its revisions and the pods of its current revision, by request."""
        workload = self.read_workload(kind, namespace, name)
        if workload is None:
            return World(deployment=None)
        uid = text(meta(workload).get("uid")) or ""
        pods = [p for p in self.list_pods(namespace, selector_of(workload)) if controlled_by(p, uid)]
        state, current = workload_state(kind, workload, self.controller_revisions_of(workload), pods, container)
        return World(deployment=state, pods=current)

    def list_pods(self, namespace: str, label_selector: str | None = None) -> list[JsonObject]:
        return self.api.list(resource_path("", "v1", "pods", namespace), label_selector)

    def pods_of(self, dep: JsonObject, rs_uid: str) -> list[JsonObject]:
        items = self.list_pods(namespace_of(dep), selector_of(dep))
        return [p for p in items if controlled_by(p, rs_uid) and not meta(p).get("deletionTimestamp")]

    def serves_runs(self) -> bool:
        """Whether API discovery lists the runs' resource yet (it lags a CRD's creation by seconds)."""
        found = self.api.get_optional(f"/apis/{m.GROUP}/{m.VERSION}")
        return found is not None and any(r.get("name") == m.PLURAL for r in objects(found.get("resources")))

    def read_own_crd(self) -> JsonObject | None:
        """The runs' CRD (selfbootstrapruns.selfbootstrap.dev), or None when it is not installed."""
        return self.api.get_optional(resource_path("apiextensions.k8s.io", "v1", "customresourcedefinitions",
                                                   name=f"{m.PLURAL}.{m.GROUP}"))

    def crd_generation(self) -> int | None:
        crd = self.read_own_crd()
        return integer(meta(crd).get("generation")) if crd else None

    def observe(self, run: JsonObject, container: str | None) -> World:
        """One consistent-enough look at the target Deployment, its revisions and the new pods, by request
        (the caches are the usual source; this is for a cache miss and the slow safety resync). The
        runs that may block this one come from the caches either way."""
        namespace = namespace_of(run)
        kind, name = m.target_of(run)
        if kind != m.WorkloadKind.DEPLOYMENT:
            return self.observe_workload(kind, namespace, name, container)
        dep = self.read_deployment(namespace, name)
        if dep is None:
            return World(deployment=None)
        replica_sets = self.replica_sets_of(dep)
        state = deployment_state(dep, replica_sets, container)
        current = releases.current_revision(state)
        pods: tuple[PodState, ...] = ()
        if current is not None:
            rs_uid = next(text(meta(rs).get("uid")) or "" for rs in replica_sets
                          if name_of(rs) == current.replica_set)
            pods = tuple(pod_state(p) for p in self.pods_of(dep, rs_uid))
        return World(deployment=state, pods=pods)

    def read_secret(self, namespace: str, name: str, key: str) -> SecretValue:
        """A Secret's value; SecretUnavailableError names the Secret and key (never the value)."""
        data, allowed = self.read_secret_data(namespace, name)
        value = data.get(key)
        if not value:
            raise SecretUnavailableError(f"secret {name!r} has no key {key!r}")
        return SecretValue(value, allowed)

    def read_secret_data(self, namespace: str, name: str) -> tuple[dict[str, bytes], tuple[str, ...]]:
        """Every key of a Secret, and the URL prefixes its annotation allows (SecretUnavailableError as above)."""
        secret = self._secret(namespace, name, "secret")
        data = {key: value for key in obj(secret.get("data")) if (value := secret_value(secret, key)) is not None}
        allowed = strings(meta(secret).get("annotations")).get(credentials.ALLOWED_URLS_ANNOTATION)
        return data, credentials.prefixes_of(allowed)

    def read_docker_config(self, namespace: str, name: str) -> JsonObject | None:
        """A pull Secret's .dockerconfigjson, parsed; None when it has none. SecretUnavailableError names a
        Secret that is missing or unreadable (never a value)."""
        value = secret_value(self._secret(namespace, name, "pull secret"), ".dockerconfigjson")
        try:
            return obj(json.loads(value)) if value else None
        except ValueError:
            raise SecretUnavailableError(f"pull secret {name!r} holds no valid .dockerconfigjson") from None

    def _secret(self, namespace: str, name: str, what: str) -> JsonObject:
        """The Secret; SecretUnavailableError names it (as `what`) when it is missing or unreadable."""
        try:
            secret = self.api.get_optional(resource_path("", "v1", "secrets", namespace, name))
        except ApiException as err:
            raise SecretUnavailableError(f"{what} {name!r} cannot be read ({err.status} {err.reason})") from None
        if secret is None:
            raise SecretUnavailableError(f"{what} {name!r} not found")
        return secret

    def read_service_account(self, namespace: str, name: str) -> JsonObject | None:
        return self.api.get_optional(resource_path("", "v1", "serviceaccounts", namespace, name))

    def read_job(self, namespace: str, name: str) -> JsonObject | None:
        return self.api.get_optional(resource_path("batch", "v1", "jobs", namespace, name))

    def pods_of_job(self, namespace: str, name: str) -> list[JsonObject]:
        return self.list_pods(namespace, f"batch.kubernetes.io/job-name={name}")

    # writes

    def create_job(self, namespace: str, job: JsonObject) -> JsonObject | None:
        """Create the Job; None when created, the existing Job when one of that name is there already."""
        if self.api.create_if_absent(resource_path("batch", "v1", "jobs", namespace), job,
                                     {"fieldManager": FIELD_MANAGER}):
            return None
        return self.read_job(namespace, text(meta(job).get("name")) or "")

    def delete_job(self, namespace: str, name: str) -> None:
        """Delete the Job and its pods; a Job already gone counts as deleted."""
        try:
            self.api.delete(resource_path("batch", "v1", "jobs", namespace, name),
                            {"propagationPolicy": "Background"})
        except ApiException as err:
            if err.status != 404:
                raise

    def patch_workload(self, kind: str, namespace: str, name: str, patch: JsonValue,
                       content_type: str) -> JsonObject:
        return self.api.patch(_workload(kind, namespace, name), patch, content_type, {"fieldManager": FIELD_MANAGER})

    def delete_pod(self, namespace: str, name: str, uid: str) -> None:
        """Delete the pod if it is still the one seen (uid precondition); a pod already gone counts as deleted."""
        try:
            self.api.delete(resource_path("", "v1", "pods", namespace, name), None,
                            {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}})
        except ApiException as err:
            if err.status not in (404, 409):  # 409: another pod of that name now (the controller made it)
                raise

    def patch_run(self, namespace: str, name: str, patch: JsonObject) -> JsonObject:
        return self.api.patch(_runs(namespace, name), patch, MERGE, {"fieldManager": FIELD_MANAGER})

    def patch_run_json(self, namespace: str, name: str, ops: list[JsonObject]) -> JsonObject:
        return self.api.patch(_runs(namespace, name), ops, JSON_PATCH, {"fieldManager": FIELD_MANAGER})

    def patch_run_status(self, namespace: str, name: str, patch: JsonObject) -> JsonObject:
        return self.api.patch(_runs(namespace, name, "status"), patch, MERGE, {"fieldManager": FIELD_MANAGER})

    def create_run(self, namespace: str, body: JsonObject) -> bool:
        """Create a run; False when one of that name exists already."""
        return self.api.create_if_absent(_runs(namespace), body, {"fieldManager": FIELD_MANAGER})

    def write_status(self, run: JsonObject, status: JsonObject) -> JsonObject:
        """Write the run's status as a guarded JSON patch; StatusConflictError when someone else wrote first
        (or changed the run in any other way since it was read)."""
        stored = run.get("status")
        ops = status_patch(stored if isinstance(stored, Mapping) else None, status,
                           text(meta(run).get("resourceVersion")) or "")
        if len(ops) == 1 and stored is not None:
            return run  # nothing changed
        try:
            return self.api.patch(_runs(namespace_of(run), name_of(run), "status"), ops, JSON_PATCH,
                                  {"fieldManager": FIELD_MANAGER})
        except ApiException as err:
            if _failed_test(err):
                raise StatusConflictError("the run's status changed since it was read") from None
            raise

    def _was_posted(self, stream: str, seq: int) -> bool:
        with self._posted_lock:
            return self._posted.get(stream, (0, False))[0] >= seq

    def _remember(self, stream: str, seq: int, posted: bool) -> None:
        with self._posted_lock:
            high, frozen = self._posted.pop(stream, (0, False))
            if not posted:
                high, frozen = min(high, seq - 1), True
            elif not frozen:
                high = max(high, seq)
            self._posted[stream] = (high, frozen)  # the most recently used last
            if len(self._posted) > self.POSTED_KEPT:
                del self._posted[next(iter(self._posted))]

    def post_event(self, o: JsonObject, event: Event, regarding: JsonObject | None = None) -> None:
        """Post an events.k8s.io/v1 Event about the object, or about `regarding` in its name (microsecond
        eventTime, so Events sort as they happened). A numbered Event has a name of its own: posting it
        again finds it and, for an Event that repeats (count > 1), counts the repetition as a series."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = event_body(o, event, now, self.instance, regarding)
        stream = _event_stream(o, regarding) if event.seq else None  # numbered: named
        if stream is not None and event.count < 2 and self._was_posted(stream, event.seq):  # reposted: posted here
            return
        try:
            self.api.create(resource_path("events.k8s.io", "v1", "events", namespace_of(o)), body,
                            {"fieldManager": FIELD_MANAGER})
            if stream is not None:
                self._remember(stream, event.seq, posted=True)
        except ApiException as err:
            if stream is not None:
                self._remember(stream, event.seq, posted=err.status == 409)
            if err.status != 409 or event.count < 2:
                if err.status == 409:
                    return  # posted before (by this process or one before a restart)
                raise
            series: JsonObject = {"series": {"count": event.count, "lastObservedTime": now}}
            self.api.patch(resource_path("events.k8s.io", "v1", "events", namespace_of(o), name_of(body)), series,
                           MERGE, {"fieldManager": FIELD_MANAGER})
        except BaseException:
            if stream is not None:
                self._remember(stream, event.seq, posted=False)
            raise


class KubeExecutor:
    """Performs the Deployment patches; every API error becomes a typed failure."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def perform(self, run: Run, action: KubeAction) -> Deployed | Undone | Released | PodsDeleted | Failed:
        namespace, kind, name = run.namespace, run.spec.target.kind, run.spec.target.workload
        try:
            match action:
                case ReleaseWorkload():
                    self.kube.patch_workload(kind, namespace, name, action.patch, JSON_PATCH)
                    return Released()
                case PatchDeployment():
                    patched = self.kube.patch_workload(kind, namespace, name, action.patch, STRATEGIC)
                    return Deployed(releases.template_digest(obj(path(patched, "spec", "template"))))
                case RollbackDeployment():
                    self.kube.patch_workload(kind, namespace, name, action.patch, JSON_PATCH)
                    return Undone(action.replica_set)
                case DeleteStuckPods():
                    for pod, uid in action.pods:
                        self.kube.delete_pod(namespace, pod, uid)
                    return PodsDeleted(tuple(pod for pod, _ in action.pods))
                case _:
                    assert_never(action)
        except ApiException as err:
            reason = reasons.ROLLBACK_REFUSED if isinstance(action, RollbackDeployment) else reasons.DEPLOY_REFUSED
            stale = err.status == 409 or (isinstance(action, ReleaseWorkload) and _failed_test(err))
            return Failed(reason, f"{err.status}: {api_message(err)}",
                          retryable=stale or err.status in RETRYABLE_STATUS, stale=stale)
        except (TransportError, OSError) as err:
            return Failed(reasons.RETRYING, f"the API server could not be reached ({type(err).__name__})",
                          retryable=True)
