"""The structured edit: set the target Deployment's image in a YAML manifest, keeping the rest."""

from __future__ import annotations

import pytest

from selfbootstrap.core.edits import EditError, set_image

MANIFEST = """\
# the web tier
apiVersion: v1
kind: Service
metadata:
  name: web
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web  # keep me
spec:
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: registry.example.com/web:v1
        - name: sidecar
          image: "registry.example.com/proxy:1.0"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: worker
spec:
  template:
    spec:
      containers:
        - name: worker
          image: registry.example.com/worker:v1
"""


def test_sets_the_named_container_image_and_release_and_keeps_comments():
    out = set_image(MANIFEST, "deploy.yaml", "web", "web", "registry.example.com/web:v2", "v2")
    assert "image: registry.example.com/web:v2" in out
    assert "selfbootstrap.dev/release-id: v2" in out
    assert "# the web tier" in out and "# keep me" in out
    assert '"registry.example.com/proxy:1.0"' in out
    assert "registry.example.com/worker:v1" in out


def test_single_container_needs_no_name():
    text = MANIFEST.split("---\n")[2]
    out = set_image(text, "w.yaml", "worker", None, "registry.example.com/worker:v9", None)
    assert "registry.example.com/worker:v9" in out and "release-id" not in out


@pytest.mark.parametrize("deployment, container, message", [
    ("api", "web", "expected one Deployment named 'api', found 0"),
    ("web", "db", "container 'db' not found"),
    ("web", None, "container None not found"),
])
def test_refuses_what_it_cannot_edit_naming_the_file(deployment, container, message):
    with pytest.raises(EditError, match=r"deploy\.yaml") as err:
        set_image(MANIFEST, "deploy.yaml", deployment, container, "x:1", None)
    assert message in str(err.value)


ODD_SHAPES = {
    "spec is a string": ("spec: oops", "the Deployment's spec is a string"),
    "template is a list": ("spec:\n  template: [1]", "spec.template is a list"),
    "pod spec is a string": ("spec:\n  template:\n    spec: x", "spec.template.spec is a string"),
    "containers is a string": ("spec:\n  template:\n    spec:\n      containers: web",
                               "containers is not a list of containers"),
    "a container is a string": ("spec:\n  template:\n    spec:\n      containers: [web]",
                                "containers is not a list of containers"),
    "metadata is a list": ("spec:\n  template:\n    metadata: []\n    spec:\n      containers: [{name: web}]",
                           "spec.template.metadata is a list"),
    "annotations is a string": ("spec:\n  template:\n    metadata: {annotations: x}\n    spec:\n"
                                "      containers: [{name: web}]", "spec.template.metadata.annotations is a string"),
}


@pytest.mark.parametrize("body, message", ODD_SHAPES.values(), ids=ODD_SHAPES.keys())
def test_a_manifest_of_an_unexpected_shape_is_an_edit_error_naming_the_field(body, message):
    text = f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\n{body}\n"
    with pytest.raises(EditError) as err:
        set_image(text, "deploy.yaml", "web", "web", "x:1", "v2")
    assert str(err.value).startswith("deploy.yaml: ") and message in str(err.value)


def test_a_deployment_whose_metadata_is_a_list_is_not_the_target():
    text = "kind: Deployment\nmetadata: [web]\n---\nkind: Deployment\nmetadata: {name: web}\n" \
           "spec: {template: {spec: {containers: [{name: web, image: a}]}}}\n"
    assert "image: x:1" in set_image(text, "d.yaml", "web", None, "x:1", None)


def test_a_statefulset_is_found_by_its_kind_and_a_deployment_of_its_name_is_not_it():
    both = MANIFEST + "\n---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: web\nspec:\n  template:\n" \
        "    spec:\n      containers:\n        - name: db\n          image: registry.example.com/db:v1\n"
    out = set_image(both, "deploy/all.yaml", "web", None, "registry.example.com/db:v2", "v2", kind="StatefulSet")
    assert "registry.example.com/db:v2" in out and "registry.example.com/web:v1" in out
    with pytest.raises(EditError, match="expected one DaemonSet named 'web', found 0"):
        set_image(both, "deploy/all.yaml", "web", None, "x:v2", "v2", kind="DaemonSet")
