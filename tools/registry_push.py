"""Images pushed to a registry through its HTTP API (OCI distribution spec), with no container engine (the tests
and the demo): a layer blob, a config blob with labels, an OCI manifest with annotations, optionally an index of
several platforms, and artifacts attached to an image. The layer's bytes are arbitrary: nothing here runs them
(kwok plays the kubelet)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Pusher:
    base: str  # http://127.0.0.1:PORT
    auth: tuple[str, str] | None = None
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.base, auth=self.auth, timeout=30)

    def blob(self, repo: str, data: bytes) -> dict[str, Any]:
        digest = digest_of(data)
        started = self.client.post(f"/v2/{repo}/blobs/uploads/")
        started.raise_for_status()
        location = started.headers["Location"]  # with the upload's state in its query: kept, and the digest added
        done = self.client.put(f"{location}{'&' if '?' in location else '?'}digest={digest}", content=data,
                               headers={"Content-Type": "application/octet-stream"})
        done.raise_for_status()
        return {"digest": digest, "size": len(data)}

    def manifest(self, repo: str, reference: str, document: dict[str, Any], media_type: str) -> str:
        body = json.dumps(document, separators=(",", ":")).encode()
        answer = self.client.put(f"/v2/{repo}/manifests/{reference}", content=body,
                                 headers={"Content-Type": media_type})
        answer.raise_for_status()
        return digest_of(body)

    def image(self, repo: str, tag: str | None, *, labels: dict[str, str] | None = None,
              annotations: dict[str, str] | None = None, arch: str = "amd64", seed: str = "") -> str:
        """One image (a manifest), tagged unless tag is None; its digest."""
        layer = self.blob(repo, f"layer of {repo}:{tag} {arch} {seed}".encode())
        config = {"architecture": arch, "os": "linux", "config": {"Labels": labels or {}},
                  "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}
        config_blob = self.blob(repo, json.dumps(config).encode())
        document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": OCI_CONFIG, **config_blob},
                    "layers": [{"mediaType": OCI_LAYER, **layer}], "annotations": annotations or {}}
        body = json.dumps(document, separators=(",", ":")).encode()
        return self.manifest(repo, tag or digest_of(body), document, OCI_MANIFEST)

    def index(self, repo: str, tag: str, platforms: dict[str, str], annotations: dict[str, str] | None = None) -> str:
        """An index of one image per architecture ({arch: manifest digest}), tagged; its digest."""
        manifests = []
        for arch, digest in platforms.items():
            size = len(self.client.get(f"/v2/{repo}/manifests/{digest}",
                                       headers={"Accept": OCI_MANIFEST}).content)
            manifests.append({"mediaType": OCI_MANIFEST, "digest": digest, "size": size,
                              "platform": {"architecture": arch, "os": "linux"}})
        document = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests,
                    "annotations": annotations or {}}
        return self.manifest(repo, tag, document, OCI_INDEX)

    def referrer(self, repo: str, subject: str, artifact_type: str, content: bytes) -> str:
        """Attach an artifact to the manifest `subject` (OCI 1.1: a manifest with artifactType and subject), and
        list it under the referrers tag `sha256-<hex>`, as clients do for a registry without the referrers API;
        its digest."""
        empty = self.blob(repo, b"{}")
        layer = self.blob(repo, content)
        size = len(self.client.get(f"/v2/{repo}/manifests/{subject}", headers={"Accept": OCI_MANIFEST}).content)
        document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
                    "config": {"mediaType": OCI_EMPTY, **empty},
                    "layers": [{"mediaType": artifact_type, **layer}],
                    "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": size}}
        body = json.dumps(document, separators=(",", ":")).encode()
        digest = self.manifest(repo, digest_of(body), document, OCI_MANIFEST)
        tag = subject.replace(":", "-")
        listed = self.client.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_INDEX})
        manifests = listed.json()["manifests"] if listed.status_code == 200 else []
        manifests.append({"mediaType": OCI_MANIFEST, "digest": digest, "size": len(body),
                          "artifactType": artifact_type})
        self.manifest(repo, tag, {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}, OCI_INDEX)
        return digest
