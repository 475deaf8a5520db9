"""Kubernetes adapter: reads the world as plain data, performs patches, records status.

Objects are fetched as raw JSON (camelCase dicts) so templates compare and patch
exactly as the API server stores them.
"""

from __future__ import annotations

import json
import socket
from datetime import datetime, timezone, UTC
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .. import models as m
from ..core import releases
from ..core.draft import Event
from ..core.world import ContainerState, DeploymentState, PodState, Revision, World

STRATEGIC = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
COMPONENT = "selfbootstrap-operator"


def _json(response: Any) -> dict[str, Any]:
    return json.loads(response.data)


def _optional(call: Any, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
    try:
        return _json(call(*args, _preload_content=False, **kwargs))
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def api_message(err: ApiException) -> str:
    """The API server's own message for a refused request (never the request itself)."""
    try:
        return json.loads(err.body).get("message") or err.reason
    except (TypeError, ValueError):
        return f"{err.status} {err.reason}"


# --- JSON -> plain data ---------------------------------------------------------


def revision_of(rs: dict[str, Any], container: str | None) -> Revision:
    annotations = rs["metadata"].get("annotations") or {}
    template = releases.strip_hash(rs["spec"]["template"])
    history = annotations.get(REVISION_HISTORY, "")
    return Revision(
        replica_set=rs["metadata"]["name"],
        revision=int(annotations.get(REVISION, "0") or 0),
        template=template,
        release_id=releases.release_id_of(template, container),
        change_cause=annotations.get(m.CHANGE_CAUSE_ANNOTATION),
        revision_history=tuple(int(x) for x in history.split(",") if x.strip().isdigit()),
        annotations=annotations,
    )


def deployment_state(dep: dict[str, Any], replica_sets: list[dict[str, Any]],
                     container: str | None) -> DeploymentState:
    spec, status, meta = dep["spec"], dep.get("status") or {}, dep["metadata"]
    progressing = next((c for c in status.get("conditions") or [] if c.get("type") == "Progressing"), {})
    return DeploymentState(
        name=meta["name"],
        resource_version=meta["resourceVersion"],
        template=spec["template"],
        generation=meta.get("generation", 0),
        observed_generation=status.get("observedGeneration", 0),
        paused=bool(spec.get("paused")),
        replicas=spec.get("replicas", 1),
        status_replicas=status.get("replicas", 0),
        updated_replicas=status.get("updatedReplicas", 0),
        ready_replicas=status.get("readyReplicas", 0),
        available_replicas=status.get("availableReplicas", 0),
        progressing_reason=progressing.get("reason"),
        annotations=meta.get("annotations") or {},
        revisions=tuple(revision_of(rs, container) for rs in replica_sets),
    )


def pod_state(pod: dict[str, Any]) -> PodState:
    status = pod.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    containers = []
    for cs in status.get("containerStatuses") or []:
        state, last = cs.get("state") or {}, cs.get("lastState") or {}
        containers.append(ContainerState(
            name=cs.get("name", ""),
            ready=bool(cs.get("ready")),
            restart_count=int(cs.get("restartCount", 0)),
            waiting_reason=(state.get("waiting") or {}).get("reason"),
            terminated_reason=(state.get("terminated") or {}).get("reason"),
            last_terminated_reason=(last.get("terminated") or {}).get("reason"),
        ))
    return PodState(name=pod["metadata"]["name"], phase=status.get("phase", "Unknown"), ready=ready,
                    containers=tuple(containers))


def _controlled_by(obj: dict[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid and ref.get("controller") for ref in obj["metadata"].get("ownerReferences") or [])


def _selector(dep: dict[str, Any]) -> str:
    labels = (dep["spec"].get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def blocking_run(run: dict[str, Any], others: list[dict[str, Any]]) -> str | None:
    """The active run that holds the same Deployment: one that has started, or is older."""
    me = run["metadata"]
    target = run["spec"]["target"]["deployment"]
    my_key = (me["creationTimestamp"], me["name"])
    for other in sorted(others, key=lambda o: (o["metadata"]["creationTimestamp"], o["metadata"]["name"])):
        meta, phase = other["metadata"], (other.get("status") or {}).get("phase")
        if meta["name"] == me["name"] or other.get("spec", {}).get("target", {}).get("deployment") != target:
            continue
        if phase in m.TERMINAL_PHASES:
            continue
        if (phase not in (None, m.Phase.PENDING)) or (meta["creationTimestamp"], meta["name"]) < my_key:
            return meta["name"]
    return None


class Kube:
    """Thin wrapper over the official client for the calls the operator makes."""

    def __init__(self, api_client: client.ApiClient | None = None) -> None:
        api_client = api_client or client.ApiClient()
        self.apps = client.AppsV1Api(api_client)
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.extensions = client.ApiextensionsV1Api(api_client)
        self.instance = socket.gethostname()

    # reads

    def read_run(self, namespace: str, name: str) -> dict[str, Any] | None:
        return _optional(self.custom.get_namespaced_custom_object, m.GROUP, m.VERSION, namespace, m.PLURAL, name)

    def list_runs(self, namespace: str) -> list[dict[str, Any]]:
        return _json(self.custom.list_namespaced_custom_object(
            m.GROUP, m.VERSION, namespace, m.PLURAL, _preload_content=False))["items"]

    def read_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return _optional(self.apps.read_namespaced_deployment, name, namespace)

    def replica_sets_of(self, dep: dict[str, Any]) -> list[dict[str, Any]]:
        meta = dep["metadata"]
        items = _json(self.apps.list_namespaced_replica_set(
            meta["namespace"], label_selector=_selector(dep), _preload_content=False))["items"]
        return [rs for rs in items if _controlled_by(rs, meta["uid"])]

    def pods_of(self, namespace: str, dep: dict[str, Any], rs_uid: str) -> list[dict[str, Any]]:
        items = _json(self.core.list_namespaced_pod(
            namespace, label_selector=_selector(dep), _preload_content=False))["items"]
        return [p for p in items if _controlled_by(p, rs_uid) and not p["metadata"].get("deletionTimestamp")]

    def observe(self, run: dict[str, Any], container: str | None) -> World:
        """One consistent-enough look at the target Deployment, its revisions and the new pods."""
        namespace = run["metadata"]["namespace"]
        dep = self.read_deployment(namespace, run["spec"]["target"]["deployment"])
        if dep is None:
            return World(deployment=None)
        replica_sets = self.replica_sets_of(dep)
        state = deployment_state(dep, replica_sets, container)
        current = releases.current_revision(state)
        pods: tuple[PodState, ...] = ()
        if current is not None:
            rs_uid = next(rs["metadata"]["uid"] for rs in replica_sets
                          if rs["metadata"]["name"] == current.replica_set)
            pods = tuple(pod_state(p) for p in self.pods_of(namespace, dep, rs_uid))
        crd_generation = None
        if run["spec"]["target"].get("deploymentContext") == m.DeploymentContext.SELF_HOSTED:
            crd = _optional(self.extensions.read_custom_resource_definition, f"{m.PLURAL}.{m.GROUP}")
            crd_generation = crd["metadata"].get("generation") if crd else None
        # Only a run that has not started yet waits for another: list the runs only then.
        blocker = None
        if (run.get("status") or {}).get("phase") in (None, m.Phase.PENDING):
            blocker = blocking_run(run, self.list_runs(namespace))
        return World(deployment=state, pods=pods, crd_generation=crd_generation, blocking_run=blocker)

    # writes

    def patch_deployment(self, namespace: str, name: str, patch: Any, content_type: str) -> None:
        self.apps.patch_namespaced_deployment(name, namespace, patch, _content_type=content_type)

    def patch_run_status(self, run: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        """Write status, guarded by the run's resourceVersion (409 when someone else wrote first)."""
        meta = run["metadata"]
        body = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": status}
        return _json(self.custom.patch_namespaced_custom_object_status(
            m.GROUP, m.VERSION, meta["namespace"], m.PLURAL, meta["name"], body,
            _content_type=MERGE, _preload_content=False))

    def post_event(self, obj: dict[str, Any], event: Event) -> None:
        meta = obj["metadata"]
        now = datetime.now(UTC).isoformat()
        body = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
                               "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
            "type": event.type,
            "reason": event.reason,
            "message": event.message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": f"{m.GROUP}/operator",
            "reportingInstance": self.instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        self.core.create_namespaced_event(meta["namespace"], body)
