"""Image references and what a registry says about an image, as plain data (pure).

A reference is read as the container runtime reads it (distribution's reference grammar, in short): a
first component with a '.' or ':' or named localhost is the registry, else Docker Hub; the tag follows
the last ':' of the path, the digest an '@'. Release metadata comes from the OCI annotations of the
manifest (or its index) first and the image config's labels second: org.opencontainers.image.version,
.revision, .source and .created.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Final

from .jsontypes import JsonObject, obj, objects, strings, text
from .text import NAME_LIMIT, printable

DOCKER_HUB: Final = "registry-1.docker.io"
_DOCKER_HUB_NAMES: Final = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_DIGEST: Final = re.compile(r"^sha256:[0-9a-f]{64}$")
_TAG: Final = re.compile(r"^[\w][\w.-]{0,127}$")
_REPOSITORY: Final = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
CRD_ARTIFACT: Final = "application/vnd.selfbootstrap.crd.v1+yaml"  # an operator image's CRD, attached as a referrer
MANIFEST_TYPES: Final = (OCI_INDEX, DOCKER_LIST, "application/vnd.oci.image.manifest.v1+json",
                         "application/vnd.docker.distribution.manifest.v2+json")
KEYS: Final = {"version": "org.opencontainers.image.version", "revision": "org.opencontainers.image.revision",
               "source": "org.opencontainers.image.source", "created": "org.opencontainers.image.created"}


@dataclass(frozen=True)
class Reference:
    registry: str  # host[:port] to connect to
    repository: str
    tag: str | None
    digest: str | None

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest if the reference pins one, else the tag."""
        return self.digest or self.tag or "latest"


def parse(image: str) -> Reference | None:
    """The reference, or None when it is not one a runtime would pull."""
    name, _, digest = image.partition("@")
    if digest and not _DIGEST.match(digest):
        return None
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, rest
    else:
        registry, path = DOCKER_HUB, name if "/" in name else f"library/{name}"
    if registry in _DOCKER_HUB_NAMES:
        registry = DOCKER_HUB
    tag = None
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path, tag = path.rsplit(":", 1)
        if not _TAG.match(tag):
            return None
    if not _REPOSITORY.match(path):
        return None
    return Reference(registry, path, tag if tag or digest else "latest", digest or None)


def pinned(image: str, digest: str) -> str:
    """The image reference with the digest: what it runs cannot change (the tag is kept for people)."""
    return f"{image.partition('@')[0]}@{digest}"


def platform_digest(index: JsonObject, os: str, architecture: str) -> str | None:
    """The digest of the index's manifest for the platform, or None when the index has none for it."""
    for entry in objects(index.get("manifests")):
        platform = obj(entry.get("platform"))
        if text(platform.get("os")) == os and text(platform.get("architecture")) == architecture:
            return text(entry.get("digest"))
    return None


@dataclass(frozen=True)
class Metadata:
    version: str | None = None
    revision: str | None = None
    source: str | None = None
    created: str | None = None


def metadata(*documents: JsonObject, config: JsonObject | None = None) -> Metadata:
    """The release metadata the image carries: the manifests' annotations (index first, then the image's),
    then the config's labels; every value escaped and bounded (they are the image builder's words)."""
    sources = [strings(d.get("annotations")) for d in documents]
    if config is not None:
        sources.append(strings(obj(config.get("config")).get("Labels")))

    def first(key: str) -> str | None:
        found = next((s[key] for s in sources if s.get(key)), None)
        return printable(found, NAME_LIMIT) if found else None

    return Metadata(**{field: first(key) for field, key in KEYS.items()})


def credentials(dockerconfig: JsonObject, registry: str) -> tuple[str, str] | None:
    """The user and password a .dockerconfigjson gives for the registry (its `auths` key, with or without
    a scheme), or None. A Docker Hub entry is keyed by its index's URL, as `docker login` writes it."""
    auths = obj(dockerconfig.get("auths"))
    names = {registry, f"https://{registry}", f"http://{registry}"}
    if registry == DOCKER_HUB:
        names |= {"https://index.docker.io/v1/", "index.docker.io", "docker.io"}
    for key, entry in auths.items():
        if key.rstrip("/") not in {n.rstrip("/") for n in names}:
            continue
        e = obj(entry)
        user, password = text(e.get("username")), text(e.get("password"))
        if user is not None and password is not None:
            return user, password
        try:
            decoded = base64.b64decode(text(e.get("auth")) or "", validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            continue
        user, sep, password = decoded.partition(":")
        if sep:
            return user, password
    return None
