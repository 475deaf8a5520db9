"""The Kubernetes adapter's pure translators (API JSON -> the core's types, status -> JSON patch)
and its executor with an autospec'd API wrapper."""

from __future__ import annotations

import json
import threading
from unittest.mock import create_autospec

import pytest
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import MaxRetryError

from selfbootstrap.adapters import kube as k
from selfbootstrap.adapters.kube import Kube, KubeExecutor
from selfbootstrap.adapters.kubeapi import KubeApi
from selfbootstrap.core.actions import Deployed, Failed, PatchDeployment, RollbackDeployment, Undone
from selfbootstrap.core.decision import Event, EventType
from selfbootstrap.core.releases import template_digest
from selfbootstrap.core.world import ContainerState, PodState
from tests.unit.factories import run

TEMPLATE = {"metadata": {"labels": {"app": "web", "pod-template-hash": "abc"},
                         "annotations": {"selfbootstrap.dev/release-id": "v2"}},
            "spec": {"containers": [{"name": "app", "image": "reg/web:v2"}]}}


def rs_json(name: str = "web-abc", revision: str = "2", template: dict | None = None, owner: str = "dep-uid",
            **annotations: str) -> dict:
    return {"metadata": {"name": name, "uid": f"{name}-uid",
                         "annotations": {"deployment.kubernetes.io/revision": revision, **annotations},
                         "ownerReferences": [{"uid": owner, "controller": True, "kind": "Deployment"}]},
            "spec": {"template": template or TEMPLATE}}


def test_revision_of_strips_the_hash_and_reads_the_release():
    r = k.revision_of(rs_json(**{"kubernetes.io/change-cause": "deploy v2"}), None)
    assert (r.replica_set, r.revision, r.release_id) == ("web-abc", 2, "v2")
    assert r.template["metadata"]["labels"] == {"app": "web"}
    assert TEMPLATE["metadata"]["labels"]["pod-template-hash"] == "abc", "the input is left alone"
    assert r.annotations["kubernetes.io/change-cause"] == "deploy v2"


@pytest.mark.parametrize("revision, expected", [("7", 7), ("", 0), ("x", 0)])
def test_revision_number_tolerates_odd_annotations(revision, expected):
    assert k.revision_of(rs_json(revision=revision), None).revision == expected


def test_revision_without_annotation_falls_back_to_the_image_tag():
    template = {"metadata": {}, "spec": {"containers": [{"name": "app", "image": "reg/web:v9"}]}}
    assert k.revision_of(rs_json(template=template), None).release_id == "v9"


DEPLOYMENT = {
    "metadata": {"name": "web", "namespace": "apps", "uid": "dep-uid", "resourceVersion": "42", "generation": 3,
                 "annotations": {"deployment.kubernetes.io/revision": "2"}},
    "spec": {"replicas": 2, "paused": True, "selector": {"matchLabels": {"tier": "x", "app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}}},
    "status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 2,
               "conditions": [{"type": "Available", "reason": "MinimumReplicasAvailable"},
                              {"type": "Progressing", "reason": "ProgressDeadlineExceeded"}]},
}


def test_deployment_state():
    d = k.deployment_state(DEPLOYMENT, [rs_json()], None)
    assert (d.name, d.resource_version, d.generation, d.observed_generation, d.paused) == ("web", "42", 3, 2, True)
    assert (d.replicas, d.status_replicas, d.updated_replicas, d.available_replicas) == (2, 3, 1, 2)
    assert d.progressing_reason == "ProgressDeadlineExceeded"
    assert [r.replica_set for r in d.revisions] == ["web-abc"]
    assert d.annotations == {"deployment.kubernetes.io/revision": "2"}


def test_deployment_state_of_a_new_deployment_without_status():
    d = k.deployment_state({"metadata": {"name": "web"}, "spec": {"template": {}}}, [], None)
    assert (d.replicas, d.observed_generation, d.updated_replicas, d.progressing_reason) == (1, 0, 0, None)


def test_pod_state():
    pod = {"metadata": {"name": "web-1"}, "status": {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "False"}],
        "containerStatuses": [
            {"name": "app", "ready": False, "restartCount": 4,
             "state": {"waiting": {"reason": "CrashLoopBackOff"}},
             "lastState": {"terminated": {"reason": "OOMKilled"}}},
            {"name": "proxy", "ready": True, "restartCount": 0, "state": {"running": {}}},
        ]}}
    assert k.pod_state(pod) == PodState("web-1", "Running", False, (
        ContainerState("app", False, 4, "CrashLoopBackOff", None, "OOMKilled"),
        ContainerState("proxy", True, 0, None, None, None)))


def test_pod_state_of_a_pending_pod():
    assert k.pod_state({"metadata": {"name": "p"}, "status": {"phase": "Pending"}}) == PodState(
        "p", "Pending", False, started=False)


@pytest.mark.parametrize("status, started", [
    ({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]},
     False),
    ({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}],
      "containerStatuses": [{"name": "app", "state": {"waiting": {"reason": "ContainerCreating"}}}]}, False),
    ({"phase": "Running", "conditions": [{"type": "PodScheduled", "status": "True"}],
      "containerStatuses": [{"name": "app", "state": {"running": {}}}]}, True),
    ({"phase": "Running", "containerStatuses": [{"name": "app", "restartCount": 2,
                                                 "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}, True),
], ids=["unschedulable", "creating-containers", "running", "crash-looping"])
def test_a_pod_has_started_once_scheduled_and_past_creating_its_containers(status, started):
    assert k.pod_state({"metadata": {"name": "p"}, "status": status}).started is started


def test_controlled_by_needs_the_controller_flag():
    rs = rs_json()
    assert k.controlled_by(rs, "dep-uid") and not k.controlled_by(rs, "other")
    rs["metadata"]["ownerReferences"][0]["controller"] = False
    assert not k.controlled_by(rs, "dep-uid")


def test_selector_is_sorted():
    assert k.selector_of(DEPLOYMENT) == "app=web,tier=x"


RV_GUARD = {"op": "test", "path": "/metadata/resourceVersion", "value": "41"}


def test_status_patch_of_a_new_status_tests_that_there_is_none():
    assert k.status_patch(None, {"phase": "Pending"}, "41") == [
        {"op": "test", "path": "/status", "value": None},
        {"op": "add", "path": "/status", "value": {"phase": "Pending"}}]


@pytest.mark.parametrize("text", ["é", "🚀", "a&b", "<", ">", "\u2028", "\x01"])
def test_a_status_go_would_encode_otherwise_is_guarded_by_the_resource_version(text):
    assert k.status_patch({"message": text}, {"phase": "Pending"}, "41")[0] == RV_GUARD


@pytest.mark.parametrize("text", ["plain", "line\nbreak", 'a "quote"', "back\\slash", "tab\t"])
def test_a_plain_status_is_guarded_by_a_test_of_itself(text):
    assert k.status_patch({"message": text}, {"phase": "Pending"}, "41")[0] == {
        "op": "test", "path": "/status", "value": {"message": text}}


def test_status_patch_adds_changes_removes_cleared_fields_and_leaves_unknown_ones():
    stored = {"phase": "Deploying", "message": "m", "healthAttempts": 0, "somethingElse": 1}
    ops = k.status_patch(stored, {"phase": "VerifyingHealth", "healthAttempts": 0, "reason": "Deployed"}, "41")
    assert ops[0] == {"op": "test", "path": "/status", "value": stored}
    assert sorted(ops[1:], key=lambda o: o["path"]) == [
        {"op": "remove", "path": "/status/message"},
        {"op": "add", "path": "/status/phase", "value": "VerifyingHealth"},
        {"op": "add", "path": "/status/reason", "value": "Deployed"}]


LABEL = ("selfbootstrap.dev/deployment", "web")
GUARD = {"op": "test", "path": "/metadata/resourceVersion", "value": "7"}


@pytest.mark.parametrize(("seen", "ops"), [
    ({"resourceVersion": "7"},
     [{"op": "add", "path": "/metadata/finalizers", "value": ["f"]},
      {"op": "add", "path": "/metadata/labels", "value": {"selfbootstrap.dev/deployment": "web"}}]),
    ({"resourceVersion": "7", "finalizers": ["theirs"], "labels": {"team": "a"}},
     [{"op": "add", "path": "/metadata/finalizers", "value": ["theirs", "f"]},
      {"op": "add", "path": "/metadata/labels/selfbootstrap.dev~1deployment", "value": "web"}]),
    ({"resourceVersion": "7", "finalizers": ["f"], "labels": {"selfbootstrap.dev/deployment": "web"}}, []),
])
def test_the_admitting_patch_adds_the_finalizer_and_label_over_exactly_what_was_seen(seen, ops):
    assert k.admission_patch(seen, "f", LABEL) == [GUARD, *ops]


def test_the_admitting_patch_of_a_run_without_a_label_adds_only_the_finalizer():
    assert k.admission_patch({"resourceVersion": "7", "labels": {}}, "f", None) == [
        GUARD, {"op": "add", "path": "/metadata/finalizers", "value": ["f"]}]


def test_status_patch_of_an_unchanged_status_is_only_the_test():
    assert len(k.status_patch({"phase": "Pending"}, {"phase": "Pending"}, "41")) == 1


@pytest.mark.parametrize("data, expected", [
    ({"token": "c2VjcmV0"}, b"secret"),
    ({"token": "not base64!"}, None),
    ({}, None),
])
def test_secret_value(data, expected):
    assert k.secret_value({"data": data}, "token") == expected


def api_error(status: int, body: dict) -> ApiException:
    err = ApiException(status=status, reason="Reason")
    err.body = json.dumps(body)
    return err


@pytest.mark.parametrize("err, conflict", [
    (api_error(422, {"reason": "Invalid", "details": {}}), True),
    (api_error(422, {"reason": "Invalid", "details": {"causes": [{"field": "status.phase"}]}}), False),
    (api_error(409, {"reason": "Conflict"}), True),
    (api_error(500, {}), False),
], ids=["failed-test", "schema-refusal", "conflict", "server-error"])
def test_failed_test_is_told_from_a_schema_refusal(err, conflict):
    assert k._failed_test(err) is conflict


@pytest.mark.parametrize("body, expected", [
    ('{"message": "admission webhook denied"}', "admission webhook denied"),
    ("not json", "403 Reason"),
    (None, "403 Reason"),
])
def test_api_message(body, expected):
    err = ApiException(status=403, reason="Reason")
    err.body = body
    assert k.api_message(err) == expected


@pytest.fixture
def kube():
    return create_autospec(Kube, instance=True)


def test_executor_deploys_with_a_strategic_merge_patch(kube):
    kube.patch_workload.return_value = {"spec": {"template": {"metadata": {"labels": {"app": "web"}}}}}
    result = KubeExecutor(kube).perform(run(), PatchDeployment({"spec": {}}))
    assert result == Deployed(template_digest({"metadata": {"labels": {"app": "web"}}}))
    kube.patch_workload.assert_called_once_with("Deployment", "apps", "web", {"spec": {}}, k.STRATEGIC)


def test_executor_undoes_with_a_json_patch(kube):
    patch = [{"op": "replace", "path": "/spec/template", "value": {}}]
    assert KubeExecutor(kube).perform(run(), RollbackDeployment("rs-2", patch)) == Undone("rs-2")
    kube.patch_workload.assert_called_once_with("Deployment", "apps", "web", patch, k.JSON_PATCH)


@pytest.mark.parametrize("action, error, expected", [
    (PatchDeployment({}), api_error(422, {"message": "image: Required value"}),
     Failed("DeployRefused", "422: image: Required value")),
    (PatchDeployment({}), api_error(409, {"message": "the object has been modified"}),
     Failed("DeployRefused", "409: the object has been modified", retryable=True, stale=True)),
    (RollbackDeployment("rs-2", []), api_error(403, {"message": "forbidden"}),
     Failed("RollbackRefused", "403: forbidden")),
    (RollbackDeployment("rs-2", []), api_error(503, {"message": "unavailable"}),
     Failed("RollbackRefused", "503: unavailable", retryable=True)),
], ids=["refused", "conflict", "forbidden", "unavailable"])
def test_executor_turns_api_errors_into_typed_failures(kube, action, error, expected):
    kube.patch_workload.side_effect = error
    assert KubeExecutor(kube).perform(run(), action) == expected


def test_executor_retries_when_the_api_server_cannot_be_reached(kube):
    kube.patch_workload.side_effect = MaxRetryError(None, "/", "refused")  # type: ignore[arg-type]
    result = KubeExecutor(kube).perform(run(), PatchDeployment({}))
    assert isinstance(result, Failed) and result.retryable and "MaxRetryError" in result.message


def test_an_event_is_named_after_its_object_and_number_and_repeats_as_a_series():
    run = {"apiVersion": "selfbootstrap.dev/v1alpha1", "kind": "SelfBootstrapRun",
           "metadata": {"name": "web-v2", "namespace": "apps", "uid": "0123456789abcdef"}}
    body = k.event_body(run, Event(EventType.WARNING, "Retrying", "503", count=3, seq=7), "2030-01-01T00:00:00.123456Z",
                        "operator-0")
    assert body["metadata"] == {"name": "web-v2.01234567.00007", "namespace": "apps"}
    assert (body["reason"], body["action"], body["note"], body["type"]) == ("Retrying", "Retrying", "503", "Warning")
    assert body["regarding"]["uid"] == "0123456789abcdef" and body["eventTime"].endswith(".123456Z")
    assert body["series"] == {"count": 3, "lastObservedTime": "2030-01-01T00:00:00.123456Z"}
    once = k.event_body(run, Event(EventType.NORMAL, "Deployed", "m"), "t", "i")
    assert once["metadata"] == {"generateName": "web-v2-", "namespace": "apps"} and "series" not in once


def test_an_event_this_process_posted_is_not_posted_again():
    """A worker starting on a run this process held back reposts its latest Events: those it created already
    cost no request (another process's are found by name, 409)."""
    kube = k.Kube.__new__(k.Kube)
    kube.api, kube.instance = create_autospec(k.KubeApi, instance=True), "operator-0"
    kube._posted, kube._posted_lock = {}, threading.Lock()
    run = {"apiVersion": "selfbootstrap.dev/v1alpha1", "kind": "SelfBootstrapRun",
           "metadata": {"name": "web-v2", "namespace": "apps", "uid": "0123456789abcdef"}}
    queued = Event(EventType.NORMAL, "Queued", "waiting", seq=2)
    kube.post_event(run, queued)
    kube.post_event(run, queued)
    assert kube.api.create.call_count == 1
    kube.post_event({**run, "metadata": {**run["metadata"], "namespace": "other"}}, queued)
    assert kube.api.create.call_count == 2, "the same name in another namespace is another Event"
    unnumbered = Event(EventType.NORMAL, "Deployed", "m")
    kube.post_event(run, unnumbered)
    kube.post_event(run, unnumbered)
    assert kube.api.create.call_count == 4, "an Event without a number has no name to know it by"
    series = Event(EventType.WARNING, "Retrying", "503", count=2, seq=3)
    kube.api.create.side_effect = api_error(409, {"message": "exists"})
    kube.post_event(run, series)
    kube.api.patch.assert_called_once()  # a repetition still counts in its series


def _poster() -> k.Kube:
    kube = k.Kube.__new__(k.Kube)
    kube.api, kube.instance = create_autospec(KubeApi, instance=True), "operator-0"
    kube._posted, kube._posted_lock = {}, threading.Lock()
    return kube


def _run(i: int) -> dict:
    return {"apiVersion": "selfbootstrap.dev/v1alpha1", "kind": "SelfBootstrapRun",
            "metadata": {"name": f"app-{i}", "namespace": "apps", "uid": f"{i:08d}-uid"}}


def test_a_burst_of_runs_each_with_its_events_is_remembered_whole():
    """A run held back in a burst is admitted after thousands of other Events: its worker's repost of its
    Queued Event still costs nothing (remembered per run, not per Event)."""
    kube = _poster()
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "app-0", "uid": "d"}}
    for seq in range(1, 6):
        for i in range(1000):
            kube.post_event(_run(i), Event(EventType.NORMAL, "Step", "m", seq=seq))
    kube.post_event(_run(0), Event(EventType.NORMAL, "Deployed", "m", seq=3), deployment)
    posted = kube.api.create.call_count
    kube.post_event(_run(0), Event(EventType.NORMAL, "Queued", "m", seq=1))
    kube.post_event(_run(999), Event(EventType.NORMAL, "Step", "m", seq=5))
    kube.post_event(_run(0), Event(EventType.NORMAL, "Deployed", "m", seq=3), deployment)
    assert kube.api.create.call_count == posted == 5001
    kube.post_event(_run(0), Event(EventType.NORMAL, "Healthy", "m", seq=6))
    assert kube.api.create.call_count == posted + 1, "a number not posted yet is posted"


def test_an_event_that_failed_to_post_is_posted_again_and_so_is_every_one_after_it():
    kube = _poster()
    events = [Event(EventType.NORMAL, "Step", "m", seq=seq) for seq in (1, 2, 3)]
    kube.api.create.side_effect = [None, api_error(503, {"message": "busy"}), None]
    kube.post_event(_run(1), events[0])
    with pytest.raises(ApiException):
        kube.post_event(_run(1), events[1])
    kube.post_event(_run(1), events[2])
    kube.api.create.side_effect = None
    kube.post_event(_run(1), events[0])
    assert kube.api.create.call_count == 3, "posted before the failure: remembered"
    kube.post_event(_run(1), events[1])
    kube.post_event(_run(1), events[2])
    assert kube.api.create.call_count == 5, "from the failed one on, a repost asks (the server knows by name)"
