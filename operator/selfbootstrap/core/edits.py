"""Structured edits of files in the repository: pure text in, text out.

`set_image` rewrites the image of the target Deployment's container in a YAML
manifest (which may hold several documents), keeping comments and layout, and
records the release id on the pod template as the cluster would carry it.
"""

from __future__ import annotations

import io
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from ..models import RELEASE_ANNOTATION


class EditError(ValueError):
    """The edit cannot be made; the message says why, naming the file."""


def _yaml() -> YAML:
    y = YAML()
    y.preserve_quotes = True
    y.width = 4096
    return y


def set_image(text: str, path: str, deployment: str, container: str | None, image: str,
              release_id: str | None) -> str:
    try:
        docs = list(_yaml().load_all(text))
    except YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise EditError(f"{path}: not valid YAML{where}") from None
    targets = [d for d in docs if isinstance(d, dict) and d.get("kind") == "Deployment"
               and (d.get("metadata") or {}).get("name") == deployment]
    if len(targets) != 1:
        raise EditError(f"{path}: expected one Deployment named {deployment!r}, found {len(targets)}")
    template = targets[0].setdefault("spec", {}).setdefault("template", {})
    _set_container_image(template, path, container, image)
    if release_id:
        meta = template.setdefault("metadata", {})
        annotations = meta.get("annotations")
        if annotations is None:
            meta["annotations"] = annotations = {}
        annotations[RELEASE_ANNOTATION] = release_id
    out = io.StringIO()
    _yaml().dump_all(docs, out)
    return out.getvalue()


def _set_container_image(template: dict[str, Any], path: str, container: str | None, image: str) -> None:
    containers = (template.get("spec") or {}).get("containers") or []
    names = [c.get("name") for c in containers]
    if container is None and len(containers) == 1:
        containers[0]["image"] = image
        return
    for c in containers:
        if c.get("name") == container:
            c["image"] = image
            return
    raise EditError(f"{path}: container {container!r} not found (has {names})")
