"""Structured edits of files in the repository: pure text in, text out.

`set_image` rewrites the image of the target workload's container in a YAML
manifest (which may hold several documents), keeping comments and layout, and
records the release id on the pod template as the cluster would carry it.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from ..models import RELEASE_ANNOTATION

if TYPE_CHECKING:
    from ruamel.yaml import YAML


class EditError(ValueError):
    """The edit cannot be made; the message says why, naming the file."""


def _yaml() -> YAML:
    from ruamel.yaml import YAML  # loaded by the first git run, not by every operator (1.5 MiB)

    y = YAML()
    y.preserve_quotes = True
    y.width = 4096
    return y


def set_image(text: str, path: str, deployment: str, container: str | None, image: str,
              release_id: str | None, kind: str = "Deployment") -> str:
    from ruamel.yaml.error import YAMLError

    try:
        docs = list(_yaml().load_all(text))
    except YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise EditError(f"{path}: not valid YAML{where}") from None
    targets = [d for d in docs if isinstance(d, dict) and d.get("kind") == kind
               and isinstance(d.get("metadata"), dict) and d["metadata"].get("name") == deployment]
    if len(targets) != 1:
        raise EditError(f"{path}: expected one {kind} named {deployment!r}, found {len(targets)}")
    spec = _mapping(targets[0], "spec", path)
    template = _mapping(spec, "template", path, "spec.")
    _set_container_image(template, path, container, image)
    if release_id:
        meta = _mapping(template, "metadata", path, "spec.template.")
        _mapping(meta, "annotations", path, "spec.template.metadata.")[RELEASE_ANNOTATION] = release_id
    out = io.StringIO()
    _yaml().dump_all(docs, out)
    return out.getvalue()


def _mapping(parent: dict[str, Any], key: str, path: str, where: str = "") -> dict[str, Any]:
    """parent[key] as a mapping, made when absent (or null); EditError when it is something else."""
    child = parent.get(key)
    if child is None:
        parent[key] = child = {}
    if not isinstance(child, dict):
        raise EditError(f"{path}: the Deployment's {where}{key} is a {_kind(child)}, not a mapping")
    return child


def _kind(value: object) -> str:
    return "list" if isinstance(value, list) else "string" if isinstance(value, str) else type(value).__name__


def _set_container_image(template: dict[str, Any], path: str, container: str | None, image: str) -> None:
    containers = _mapping(template, "spec", path, "spec.template.").get("containers") or []
    if not isinstance(containers, list) or not all(isinstance(c, dict) for c in containers):
        raise EditError(f"{path}: the Deployment's spec.template.spec.containers is not a list of containers")
    names = [c.get("name") for c in containers]
    if container is None and len(containers) == 1:
        containers[0]["image"] = image
        return
    for c in containers:
        if c.get("name") == container:
            c["image"] = image
            return
    raise EditError(f"{path}: container {container!r} not found (has {names})")
