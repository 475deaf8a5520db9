"""End-to-end, against a real Prometheus: a release is judged by its metrics as Argo Rollouts would.

The exporter's app_error_ratio{release} is what the "app" reports; each test sets it for the release it
deploys, waits until Prometheus has scraped it, and lets the operator's analysis decide.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from .cluster import free_port, localcluster, refuse_unless_owned
from .kube_helpers import create_deployment, create_run, deployment_image, events_of, get_run, wait_phase
from .operator_fixtures import wait_established
from .prometheus_fixtures import Prometheus, prometheus  # noqa: F401  (fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("operator")]

V1, V2 = "registry.example.com/app:v1", "registry.example.com/app:v2"
RATIO = 'app_error_ratio{namespace="{{args.namespace}}",release="{{args.release}}"}'
FINISHED = {"Succeeded", "Failed", "RolledBack"}


def analysed_run(*metrics: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"target": {"deployment": "app"}, "release": {"id": "v2", "image": V2},
            "restartWatchdog": {"retries": 1, "intervalSeconds": 1},
            "analysis": {"metrics": list(metrics)}, **extra}


def prometheus_metric(address: str, query: str = RATIO, **fields: Any) -> dict[str, Any]:
    return {"name": "error-ratio", "successCondition": "result[0] < 0.05",
            "provider": {"prometheus": {"address": address, "query": query, "timeout": 5}}, **fields}


@pytest.fixture
def app(namespace: str, prometheus: Prometheus) -> str:  # noqa: F811
    create_deployment(namespace, "app", V1, "v1", replicas=1)
    return namespace


def gate_of(st: dict[str, Any]) -> dict[str, Any]:
    [gate] = [g for g in st["gates"] if g["kind"] == "analysis"]
    return gate


def test_a_release_with_half_its_requests_failing_is_rolled_back_by_the_metric(app, prometheus):  # noqa: F811
    prometheus.error_ratio(app, "v2", 0.5)
    create_run(app, "bad", analysed_run(prometheus_metric(prometheus.address, interval="2s", count=3)))
    st = wait_phase(app, "bad", FINISHED, timeout=120)
    assert (st["phase"], st["failureReason"], st["rollbackFailureClass"]) == ("RolledBack", "MetricFailed",
                                                                              "analysisFailure")
    gate = gate_of(st)
    [metric] = gate["metrics"]
    assert (gate["phase"], metric["phase"], metric["failed"]) == ("Failed", "Failed", 1)
    assert metric["measurements"][-1]["value"] == "[0.5]"
    assert "[0.5]" in st["failureMessage"]
    assert deployment_image(app, "app") == V1
    assert ("Warning", "MetricFailed") in [(t, r) for t, r, _ in events_of(app, "bad")]


def test_a_healthy_release_passes_its_analysis(app, prometheus):  # noqa: F811
    prometheus.error_ratio(app, "v2", 0.01)
    create_run(app, "good", analysed_run(prometheus_metric(prometheus.address, interval="1s", count=3)))
    st = wait_phase(app, "good", FINISHED, timeout=120)
    assert st["phase"] == "Succeeded", st.get("message")
    [metric] = gate_of(st)["metrics"]
    assert (gate_of(st)["phase"], metric["successful"], [m["value"] for m in metric["measurements"]]) == (
        "Passed", 3, ["[0.01]"] * 3)
    assert deployment_image(app, "app") == V2


@pytest.mark.parametrize("case, query, condition, reason, says", [
    ("unparsable-query", "app_error_ratio{", "result[0] < 0.05", "MetricError", "the query failed (bad_data)"),
    ("empty-result", 'app_error_ratio{release="none"}', "result[0] < 0.05", "MetricError",
     "the result is empty"),
    ("nan", "vector(0) / 0", "result[0] < 0.05", "MetricFailed", "[NaN]"),
])
def test_bad_answers_end_as_documented(app, prometheus, case, query, condition, reason, says):  # noqa: F811
    create_run(app, case, analysed_run(prometheus_metric(prometheus.address, query, successCondition=condition,
                                                         consecutiveErrorLimit=0)))
    st = wait_phase(app, case, FINISHED, timeout=120)
    assert (st["phase"], st["failureReason"]) == ("RolledBack", reason), st.get("message")
    assert says in st["failureMessage"]
    assert deployment_image(app, "app") == V1


def test_an_unreachable_prometheus_is_an_error_not_a_pass(app):
    nowhere = f"http://127.0.0.1:{free_port()}"
    create_run(app, "unreachable", analysed_run(prometheus_metric(nowhere, consecutiveErrorLimit=0)))
    st = wait_phase(app, "unreachable", FINISHED, timeout=120)
    assert (st["phase"], st["failureReason"]) == ("RolledBack", "MetricError")
    assert "ConnectError" in st["failureMessage"]


def test_a_web_metric_gates_a_run(app, prometheus):  # noqa: F811
    """A web metric reading Prometheus' own HTTP API with a jsonPath, as one reads any JSON endpoint."""
    prometheus.error_ratio(app, "v2", 0.5)
    url = f"{prometheus.address}/api/v1/query?query={RATIO}"
    web = {"name": "web-ratio", "successCondition": "double(result) < 0.05",
           "provider": {"web": {"url": url, "jsonPath": "{$.data.result[0].value[1]}"}}}
    create_run(app, "web", analysed_run(web))
    st = wait_phase(app, "web", FINISHED, timeout=120)
    assert (st["phase"], st["failureReason"]) == ("RolledBack", "MetricFailed"), st.get("message")
    # The answer was the string "0.5": judged, but status shows only its size.
    assert gate_of(st)["metrics"][0]["measurements"][-1]["value"] == "(a string of 3 characters)"


@pytest.mark.parametrize("image, phase", [("registry.example.com/smoke:1", "Succeeded"),
                                          ("registry.example.com/smoke:failing", "RolledBack")])
def test_a_job_metric_gates_a_run(app, image, phase):
    """kwok plays the kubelet: a Job's pod completes, or fails when its image says "failing"."""
    smoke = {"name": "smoke", "provider": {"job": {"spec": {"backoffLimit": 0, "template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "smoke", "image": image, "command": ["smoke-test"]}]}}}}}}
    create_run(app, "smoke", analysed_run(smoke))
    st = wait_phase(app, "smoke", FINISHED, timeout=120)
    assert st["phase"] == phase, st.get("message")
    [metric] = gate_of(st)["metrics"]
    assert metric["measurements"][-1]["value"] == ("succeeded" if phase == "Succeeded" else "failed")
    jobs = client.BatchV1Api().list_namespaced_job(app, label_selector="selfbootstrap.dev/metric=smoke").items
    assert len(jobs) == 1 and jobs[0].metadata.labels["selfbootstrap.dev/run-uid"] == get_run(app, "smoke")[
        "metadata"]["uid"]


# --- Argo Rollouts' AnalysisTemplates, as installed with its CRDs -----------------------------------------


@pytest.fixture(scope="session")
def argo_crds(cluster, kubectl) -> None:
    refuse_unless_owned(cluster, "installs Argo Rollouts' AnalysisTemplate CRDs")
    for crd in localcluster.argo_rollouts_crds():
        kubectl("apply", "--server-side", "-f", str(crd))
    wait_established(kubectl, "analysistemplates.argoproj.io", "clusteranalysistemplates.argoproj.io")


def argo_template(kind: str, name: str, address: str, namespace: str | None = None) -> dict[str, Any]:
    """An AnalysisTemplate as Argo Rollouts users write them, its args' defaults and an expr condition."""
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": kind, "metadata": meta, "spec": {
        "args": [{"name": "service", "value": "app"}, {"name": "namespace"}, {"name": "release"}],
        "metrics": [{"name": "error-ratio", "interval": "1s", "count": 2, "successCondition": "result[0] < 0.05",
                     "provider": {"prometheus": {"address": address, "query": RATIO}}}]}}


@pytest.mark.parametrize("cluster_scope", [False, True], ids=["AnalysisTemplate", "ClusterAnalysisTemplate"])
def test_an_installed_analysis_template_judges_the_release(app, prometheus, argo_crds, kubectl,  # noqa: F811
                                                           cluster_scope):
    name = f"errors-{app}"[:63] if cluster_scope else "errors"
    kind = "ClusterAnalysisTemplate" if cluster_scope else "AnalysisTemplate"
    kubectl("apply", "-f", "-", input=json.dumps(argo_template(kind, name, prometheus.address,
                                                               None if cluster_scope else app)))
    try:
        prometheus.error_ratio(app, "v2", 0.5)
        ref = {"templateName": name, "clusterScope": cluster_scope}
        create_run(app, "templated", {**analysed_run(), "analysis": {"templates": [ref]}})
        st = wait_phase(app, "templated", FINISHED, timeout=120)
        assert (st["phase"], st["failureReason"]) == ("RolledBack", "MetricFailed"), st.get("message")
        assert gate_of(st)["metrics"][0]["name"] == "error-ratio"
        assert gate_of(st)["metrics"][0]["measurements"][-1]["value"] == "[0.5]"
    finally:
        if cluster_scope:
            kubectl("delete", "clusteranalysistemplate", name, "--ignore-not-found")


def test_a_run_naming_a_template_that_is_not_there_fails_untouched(app, argo_crds):
    create_run(app, "missing", {**analysed_run(), "analysis": {"templates": [{"templateName": "nowhere"}]}})
    st = wait_phase(app, "missing", FINISHED, timeout=60)
    assert (st["phase"], st["reason"]) == ("Failed", "InvalidSpec")
    assert "AnalysisTemplate nowhere): not found" in st["message"]
    assert deployment_image(app, "app") == V1
