"""Generate the CustomResourceDefinition from the pydantic models.

    python -m selfbootstrap.crdgen            # rewrite every copy (see targets())
    python -m selfbootstrap.crdgen --check    # exit 1 when a copy is stale (works from an installed package)
    python -m selfbootstrap.crdgen --print    # the CRD on stdout: ... --print | kubectl apply -f -

Pydantic emits JSON Schema (with $refs, anyOf-null for optionals and draft-2020
exclusive bounds); Kubernetes wants a structural OpenAPI v3 schema, so refs are
inlined and the rest translated.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from . import models as m

CRD_FILE = f"{m.GROUP}_{m.PLURAL}.yaml"
PACKAGED = Path(__file__).resolve().parent / "crds" / CRD_FILE  # shipped in the wheel
SOURCE_ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = SOURCE_ROOT / "crds" / CRD_FILE  # kustomize's copy (manifests/)
CHART_CRD_PATH = SOURCE_ROOT / "charts" / "selfbootstrap-operator" / "files" / "crds" / CRD_FILE


def targets() -> list[Path]:
    """Every copy of the CRD: the package's, and in a source tree kustomize's and the Helm chart's."""
    in_source_tree = (SOURCE_ROOT / "pyproject.toml").exists() and CRD_PATH.parent.is_dir()
    return [PACKAGED, CRD_PATH, CHART_CRD_PATH] if in_source_tree else [PACKAGED]

# Keys of JSON Schema that mean nothing to the API server (or are rejected by it).
_DROPPED = {"title", "examples", "additionalProperties", "$defs", "discriminator"}


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """Resolve $ref, collapse optional anyOf, translate bounds; recursively."""
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        extra = {k: v for k, v in node.items() if k != "$ref"}
        return _inline({**target, **extra}, defs)
    if "anyOf" in node:
        variants = [v for v in node["anyOf"] if v.get("type") != "null"]
        if len(variants) != 1:
            raise ValueError(f"unsupported union in schema: {node['anyOf']}")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if rest.get("default", "") is None:
            del rest["default"]
        return _inline({**variants[0], **rest}, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED and not (key == "additionalProperties" and isinstance(value, dict)):
            continue
        if key == "properties":
            out[key] = {name: _inline(sub, defs) for name, sub in value.items()}
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        else:
            out[key] = _inline(value, defs)
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if out.get("x-kubernetes-preserve-unknown-fields"):
        out["type"] = "object"
    return out


def openapi_schema(model: type[m.Model]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    inlined: dict[str, Any] = _inline(raw, raw.get("$defs", {}))
    return inlined


def status_schema() -> dict[str, Any]:
    schema = openapi_schema(m.RunStatus)
    schema["properties"]["history"]["maxItems"] = m.HISTORY_LIMIT
    conditions = schema["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    return schema


def _column(name: str, path: str, description: str, priority: int = 0,
            type_: str = "string") -> dict[str, Any]:
    col: dict[str, Any] = {"name": name, "type": type_, "jsonPath": path, "description": description}
    if priority:
        col["priority"] = priority
    return col


PRINTER_COLUMNS = [
    _column("Phase", ".status.phase", "Where the run is in its state machine."),
    _column("Target", ".spec.target['deployment','name']", "The workload this run changes."),
    _column("Kind", ".spec.target.kind", "The kind of that workload.", priority=1),
    _column("Release", ".status.deployedReleaseId", "Release deployed by this run."),
    _column("Previous", ".status.previousReleaseId", "Release that ran before this run."),
    _column("Age", ".metadata.creationTimestamp", "", type_="date"),
    _column("Reason", ".status.reason", "Why the run is in its phase.", priority=1),
    _column("Revision", ".status.deployedRevision", "Deployment revision of the release.",
            priority=1, type_="integer"),
    _column("Branch", ".status.git.branch", "Git branch of the change.", priority=1),
    _column("PR", ".status.git.pullRequestNumber", "Pull request number.", priority=1,
            type_="integer"),
    _column("CI", ".status.ciStatus", "CI status of the change's commit.", priority=1),
]


def build_crd() -> dict[str, Any]:
    spec = openapi_schema(m.RunSpec)
    spec["description"] = (m.RunSpec.__doc__ or "").strip()
    root = {
        "type": "object",
        "description": "One change to one workload, reconciled through a phase state machine "
                       "with health gating and automatic rollback.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status_schema(),
        },
        "x-kubernetes-validations": [m.cel(
            "!has(oldSelf.status) || !has(oldSelf.status.phase) || self.spec == oldSelf.spec",
            "spec is immutable once the run has started; create a new SelfBootstrapRun instead",
            ".spec")],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{m.PLURAL}.{m.GROUP}"},
        "spec": {
            "group": m.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": m.KIND,
                "listKind": f"{m.KIND}List",
                "plural": m.PLURAL,
                "singular": m.SINGULAR,
                "shortNames": m.SHORT_NAMES,
                "categories": ["selfbootstrap"],
            },
            "versions": [{
                "name": m.VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": PRINTER_COLUMNS,
                "schema": {"openAPIV3Schema": root},
            }],
        },
    }


def render() -> str:
    header = "# Generated by `python -m selfbootstrap.crdgen` from operator/selfbootstrap/models.py. Do not edit.\n"
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="fail when a copy of the CRD is stale")
    mode.add_argument("--print", action="store_true", help="print the CRD instead of writing it")
    args = parser.parse_args(argv)
    text = render()
    if args.print:
        sys.stdout.write(text)
        return 0
    if args.check:
        stale = [p for p in targets() if not p.exists() or p.read_text() != text]
        for path in stale:
            print(f"{path} is stale: run `python -m selfbootstrap.crdgen`", file=sys.stderr)
        return 1 if stale else 0
    for path in targets():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
