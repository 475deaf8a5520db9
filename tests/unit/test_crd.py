"""models.py and crdgen.py: the CRD generated from the pydantic models, and the models' defaults."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pydantic
import pytest
import yaml

from selfbootstrap import crdgen
from selfbootstrap.models import HISTORY_LIMIT, RunSpec, RunStatus


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return crdgen.build_crd()


@pytest.fixture(scope="module")
def version(crd) -> dict[str, Any]:
    (only,) = crd["spec"]["versions"]
    return only


@pytest.fixture(scope="module")
def root(version) -> dict[str, Any]:
    return version["schema"]["openAPIV3Schema"]


def schema_nodes(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node below `node` (property names are never mistaken for keywords)."""
    yield path, node
    for name, sub in (node.get("properties") or {}).items():
        yield from schema_nodes(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from schema_nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from schema_nodes(node["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("copy", [crdgen.PACKAGED, crdgen.CRD_PATH, crdgen.CHART_CRD_PATH],
                         ids=["package", "kustomize", "helm-chart"])
def test_every_copy_of_the_crd_is_current(copy):
    committed = copy.read_text() if copy.exists() else ""
    assert committed == crdgen.render(), f"{copy} is stale: run `python -m selfbootstrap.crdgen` and commit the result"


def test_check_names_a_stale_copy(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "crd.yaml"
    stale.write_text("# an older CRD\n")
    monkeypatch.setattr(crdgen, "targets", lambda: [crdgen.PACKAGED, stale])
    assert crdgen.main(["--check"]) == 1
    assert str(stale) in capsys.readouterr().err
    stale.write_text(crdgen.render())
    assert crdgen.main(["--check"]) == 0


def test_rendered_crd_is_the_built_crd():
    assert yaml.safe_load(crdgen.render()) == crdgen.build_crd()


def test_names_and_scope(crd, version):
    spec = crd["spec"]
    assert crd["metadata"]["name"] == "selfbootstrapruns.selfbootstrap.dev"
    assert (spec["group"], spec["scope"], version["name"]) == ("selfbootstrap.dev", "Namespaced", "v1alpha1")
    assert spec["names"]["kind"] == "SelfBootstrapRun"
    assert spec["names"]["shortNames"] == ["sbr"]
    assert version["subresources"] == {"status": {}}
    assert (version["served"], version["storage"]) == (True, True)


@pytest.mark.parametrize("keyword", ["$ref", "$defs", "anyOf", "allOf", "oneOf", "title"])
def test_schema_is_structural_without(root, keyword):
    offending = [path for path, node in schema_nodes(root, "") if keyword in node]
    assert offending == []


def test_every_schema_node_has_a_type(root):
    untyped = [path for path, node in schema_nodes(root, "")
               if "type" not in node and not node.get("x-kubernetes-preserve-unknown-fields")]
    assert untyped == []


def test_exclusive_bounds_are_openapi_v3_booleans(root):
    bad = [path for path, node in schema_nodes(root, "")
           for key in ("exclusiveMinimum", "exclusiveMaximum") if key in node and node[key] is not True]
    assert bad == []


def test_every_spec_property_has_a_description(root):
    spec = root["properties"]["spec"]
    undocumented = [path for path, node in schema_nodes(spec, "spec") if not node.get("description")]
    assert undocumented == [], "kubectl explain must document every spec field"


@pytest.mark.parametrize("name, path", [
    pytest.param("Phase", ".status.phase", id="Phase"),
    pytest.param("Target", ".spec.target['deployment','name']", id="Target"),
    pytest.param("Release", ".status.deployedReleaseId", id="Release"),
    pytest.param("Previous", ".status.previousReleaseId", id="Previous"),
    pytest.param("Age", ".metadata.creationTimestamp", id="Age"),
])
def test_default_printer_columns(version, name, path):
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert columns[name]["jsonPath"] == path
    assert "priority" not in columns[name], f"{name} must show without -o wide"


def test_printer_columns_order_and_wide_columns(version):
    columns = version["additionalPrinterColumns"]
    assert [c["name"] for c in columns if "priority" not in c] == ["Phase", "Target", "Release", "Previous", "Age"]
    assert {"Branch", "PR", "CI"} <= {c["name"] for c in columns if c.get("priority") == 1}
    assert next(c for c in columns if c["name"] == "Age")["type"] == "date"


def rules_at(root: dict[str, Any], *path: str) -> list[str]:
    node = root
    for name in path:
        node = node["properties"][name]
    return [v["rule"] for v in node.get("x-kubernetes-validations", [])]


@pytest.mark.parametrize("path, rule", [
    pytest.param((), "!has(oldSelf.status) || !has(oldSelf.status.phase) || self.spec == oldSelf.spec",
                 id="spec-immutable-once-started"),
    pytest.param(("spec", "release"), "has(self.image) != has(self.podTemplatePatch)",
                 id="exactly-one-way-to-change"),
    pytest.param(("spec", "release"), "has(self.image) || has(self.id)", id="id-required-with-patch"),
    pytest.param(("spec", "release"),
                 "!has(self.rollbackReleaseId) || !has(self.id) || self.rollbackReleaseId != self.id",
                 id="rollback-id-differs"),
    pytest.param(("spec", "health", "http"), "self.url.startsWith('http://') || self.url.startsWith('https://')",
                 id="http-url"),
    pytest.param(("spec", "git", "validation", "resources"),
                 "!has(self.requests.memory) || !has(self.limits.memory) || "
                 "quantity(self.requests.memory).compareTo(quantity(self.limits.memory)) <= 0",
                 id="validation-requests-within-limits"),
])
def test_cel_rules(root, path, rule):
    assert rule in rules_at(root, *path)


def test_cel_rules_have_messages(root):
    missing = [path for path, node in schema_nodes(root, "")
               for v in node.get("x-kubernetes-validations", []) if not v.get("message")]
    assert missing == []


def prop(root: dict[str, Any], dotted: str) -> dict[str, Any]:
    node = root
    for name in dotted.split("."):
        node = node["properties"][name]
    return node


@pytest.mark.parametrize("dotted, expected", [
    pytest.param("spec.health.http.retries", {"minimum": 1}, id="http-retries-at-least-1"),
    pytest.param("spec.restartWatchdog.retries", {"minimum": 1}, id="watchdog-retries-at-least-1"),
    pytest.param("spec.health.http.intervalSeconds", {"minimum": 0, "exclusiveMinimum": True},
                 id="http-interval-positive"),
    pytest.param("spec.restartWatchdog.intervalSeconds", {"minimum": 0, "exclusiveMinimum": True},
                 id="watchdog-interval-positive"),
    pytest.param("spec.restartWatchdog.restartThreshold", {"minimum": 0}, id="threshold-non-negative"),
    pytest.param("spec.target.deploymentContext", {"enum": ["external", "selfHosted"], "default": "external"},
                 id="context-enum"),
    pytest.param("spec.rollbackPolicy.onDeployFailure", {"default": False}, id="deploy-failure-default-off"),
    pytest.param("spec.rollbackPolicy.onHealthFailure", {"default": True}, id="health-failure-default-on"),
    pytest.param("spec.rollbackPolicy.onRestartWatchdogFailure", {"default": True},
                 id="watchdog-failure-default-on"),
    pytest.param("spec.release.podTemplatePatch", {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                 id="pod-template-patch-free-form"),
    pytest.param("status.history", {"maxItems": HISTORY_LIMIT}, id="history-bounded"),
    pytest.param("status.conditions", {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
                 id="conditions-map-list"),
])
def test_schema_property(root, dotted, expected):
    node = prop(root, dotted)
    assert {k: node.get(k) for k in expected} == expected


@pytest.mark.parametrize("section", ["health", "restartWatchdog", "rollbackPolicy"])
def test_omitted_sections_are_defaulted_by_the_api_server(root, section):
    node = prop(root, f"spec.{section}")
    assert isinstance(node.get("default"), dict), "without a default the nested defaults never apply"
    assert all(key in node["properties"] for key in node["default"])


def test_required_fields(root):
    assert root["required"] == ["spec"]
    assert set(prop(root, "spec")["required"]) >= {"target", "release"}
    assert "required" not in prop(root, "spec.target"), "deployment or name, as the target's CEL rules say"


# --- the models ------------------------------------------------------------------

MINIMAL = {"target": {"deployment": "web"}, "release": {"image": "reg/app:v2"}}


GIT: dict[str, Any] = {"repositoryUrl": "https://git.example.com/a/b.git",
                       "change": {"setImage": {"path": "app.yaml"}}}
CHECK: dict[str, Any] = {"image": "ci:1", "command": ["make"]}
BAD_CHECKS: dict[str, dict[str, Any]] = {
    "run-as-root": {"runAsUser": 0}, "ttl-below-a-minute": {"ttlSecondsAfterFinished": 0},
    "cpu-not-a-quantity": {"resources": {"limits": {"cpu": "one"}}},
    "memory-unit-unknown": {"resources": {"requests": {"memory": "128MB"}}}}


def test_validation_defaults():
    check = RunSpec.model_validate({**MINIMAL, "git": {**GIT, "validation": CHECK}}).git.validation
    assert (check.run_as_user, check.ttl_seconds_after_finished) == (65532, 3600)
    assert check.resources.dump() == {"requests": {"cpu": "100m", "memory": "128Mi"},
                                      "limits": {"cpu": "1", "memory": "512Mi"}}


def test_spec_defaults():
    spec = RunSpec.model_validate(MINIMAL)
    rp, wd, health = spec.rollback_policy, spec.restart_watchdog, spec.health
    assert (rp.on_deploy_failure, rp.on_health_failure, rp.on_restart_watchdog_failure) == (False, True, True)
    assert rp.timeout_seconds == 600
    assert (wd.enabled, wd.retries, wd.interval_seconds, wd.restart_threshold) == (True, 3, 10.0, 0)
    assert (health.progress_deadline_seconds, health.http) == (600, None)
    assert spec.target.deployment_context == "external"
    assert spec.target.container is None


def test_http_check_defaults():
    spec = RunSpec.model_validate({**MINIMAL, "health": {"http": {"url": "http://web/healthz"}}})
    http = spec.health.http
    assert (http.expected_status, http.timeout_seconds, http.retries, http.interval_seconds) == (200, 5.0, 3, 5.0)


@pytest.mark.parametrize("extra", [
    pytest.param({"restartWatchdog": {"retries": 0}}, id="watchdog-retries-zero"),
    pytest.param({"restartWatchdog": {"intervalSeconds": 0}}, id="watchdog-interval-zero"),
    pytest.param({"health": {"http": {"url": "http://x", "retries": 0}}}, id="http-retries-zero"),
    pytest.param({"health": {"http": {"url": "http://x", "intervalSeconds": -1}}}, id="http-interval-negative"),
    pytest.param({"target": {"deployment": "Web_App"}}, id="deployment-not-dns"),
    pytest.param({"target": {"deployment": "web", "deploymentContext": "cluster"}}, id="unknown-context"),
    pytest.param({"rollbackPolicy": {"timeoutSeconds": 0}}, id="rollback-timeout-zero"),
    *[pytest.param({"git": {**GIT, "validation": {**CHECK, **bad}}}, id=f"validation-{name}")
      for name, bad in BAD_CHECKS.items()],
])
def test_spec_rejects(extra):
    with pytest.raises(pydantic.ValidationError):
        RunSpec.model_validate({**MINIMAL, **extra})


def test_spec_dump_is_camel_case_without_unset_fields():
    dumped = RunSpec.model_validate(MINIMAL).dump()
    assert dumped["target"] == {"kind": "Deployment", "deployment": "web", "deploymentContext": "external"}
    assert dumped["release"] == {"image": "reg/app:v2", "pinDigest": True, "redeploy": False}
    assert dumped["rollbackPolicy"]["onDeployFailure"] is False


def test_status_round_trips_through_its_json_form():
    st = RunStatus(phase="RollingBack", rollback_failure_class="healthFailure", rollback_target_revision=2)
    dumped = st.dump()
    assert (dumped["phase"], dumped["rollbackFailureClass"], dumped["rollbackTargetRevision"]) == (
        "RollingBack", "healthFailure", 2)
    assert RunStatus.model_validate(dumped) == st


def test_every_status_field_is_described(root):
    """kubectl explain sbr.status --recursive documents every field."""
    undescribed = [where for where, node in schema_nodes(root["properties"]["status"], "status")
                   if "description" not in node and where != "status"
                   and not where.endswith("[]")]
    assert undescribed == []


def test_every_spec_field_is_described(root):
    undescribed = [where for where, node in schema_nodes(root["properties"]["spec"], "spec")
                   if "description" not in node and not where.endswith("[]") and not where.endswith("{}")]
    assert undescribed == []


def test_runs_are_not_in_the_all_category(crd):
    assert "all" not in crd["spec"]["names"]["categories"]
