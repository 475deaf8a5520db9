"""core/images.py: references as a runtime reads them, pinning, an index's platform, OCI metadata and the
pull secret entry for a registry."""

from __future__ import annotations

import base64

import pytest

from selfbootstrap.core import images

D = "sha256:" + "a" * 64


@pytest.mark.parametrize("image, expected", [
    ("nginx", ("registry-1.docker.io", "library/nginx", "latest", None)),
    ("nginx:1.25", ("registry-1.docker.io", "library/nginx", "1.25", None)),
    ("docker.io/acme/web:v2", ("registry-1.docker.io", "acme/web", "v2", None)),
    ("registry.example.com/app:v2", ("registry.example.com", "app", "v2", None)),
    ("127.0.0.1:5000/team/web:v2", ("127.0.0.1:5000", "team/web", "v2", None)),
    ("localhost/web", ("localhost", "web", "latest", None)),
    (f"ghcr.io/a/b@{D}", ("ghcr.io", "a/b", None, D)),
    (f"ghcr.io/a/b:v1@{D}", ("ghcr.io", "a/b", "v1", D)),
    ("acme/web:v2", ("registry-1.docker.io", "acme/web", "v2", None)),  # acme is no registry: no '.' or ':'
])
def test_references_are_read_as_a_runtime_reads_them(image, expected):
    ref = images.parse(image)
    assert ref is not None and (ref.registry, ref.repository, ref.tag, ref.digest) == expected


@pytest.mark.parametrize("image", ["Bad/Name", "r.io/a@sha256:short", "r.io/a:-tag", "r.io/a b", ""])
def test_what_no_runtime_would_pull_is_no_reference(image):
    assert images.parse(image) is None


def test_pinning_keeps_the_tag_and_replaces_a_digest():
    assert images.pinned("r.io/a:v2", D) == f"r.io/a:v2@{D}"
    assert images.pinned(f"r.io/a:v2@sha256:{'b' * 64}", D) == f"r.io/a:v2@{D}"


def test_the_platform_s_manifest_of_an_index():
    index = {"manifests": [{"digest": "sha256:arm", "platform": {"os": "linux", "architecture": "arm64"}},
                           {"digest": "sha256:amd", "platform": {"os": "linux", "architecture": "amd64"}}]}
    assert images.platform_digest(index, "linux", "amd64") == "sha256:amd"
    assert images.platform_digest(index, "windows", "amd64") is None


def test_metadata_prefers_annotations_then_labels_and_is_escaped():
    index = {"annotations": {"org.opencontainers.image.version": "2.0.0"}}
    manifest = {"annotations": {"org.opencontainers.image.version": "1.9", "org.opencontainers.image.created": "x"}}
    config = {"config": {"Labels": {"org.opencontainers.image.revision": "abc\x1b[2J"}}}
    meta = images.metadata(index, manifest, config=config)
    assert (meta.version, meta.created, meta.source) == ("2.0.0", "x", None)
    assert meta.revision == "abc\\x1b[2J"


@pytest.mark.parametrize("auths, registry, expected", [
    ({"r.io": {"auth": base64.b64encode(b"u:p").decode()}}, "r.io", ("u", "p")),
    ({"https://r.io/": {"username": "u", "password": "p"}}, "r.io", ("u", "p")),
    ({"https://index.docker.io/v1/": {"auth": base64.b64encode(b"d:h").decode()}}, "registry-1.docker.io", ("d", "h")),
    ({"other.io": {"auth": base64.b64encode(b"u:p").decode()}}, "r.io", None),  # only the registry's own entry
    ({"r.io": {"auth": "not base64!"}}, "r.io", None),
])
def test_a_pull_secret_s_entry_is_the_registry_s_own(auths, registry, expected):
    assert images.credentials({"auths": auths}, registry) == expected
