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
