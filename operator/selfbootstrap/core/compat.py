"""Whether a version of the operator can serve what the cluster holds (pure): the self-test's verdicts, and
the self-update's pre-flight.

A new version that starts against a CRD older than its own would have the API server prune the status
fields it writes; one that meets runs with fields it does not know would drop them when it parses them.
Either way it must not serve: it says why and stops, so a self-update that brought it never becomes
ready and the old version, still running, rolls it back. Before that, from the old side: a self-update
whose new version ships a CRD that drops a field a run in flight sets, or refuses a value one holds, is
stopped before the patch (`runs_unfit`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from jsonschema import Draft4Validator

from ..models import GROUP, TERMINAL_PHASES, VERSION
from .jsontypes import JsonObject, JsonValue, obj, objects, path, text

SHOWN_PER_RUN = 3  # problems named per run


def served_schema(crd: JsonObject) -> JsonObject:
    """The openAPIV3Schema of the version this operator serves, or {} when the CRD does not serve it."""
    version = next((v for v in objects(path(crd, "spec", "versions")) if text(v.get("name")) == VERSION), {})
    return obj(path(version, "schema", "openAPIV3Schema"))


def in_flight(runs: Iterable[JsonObject]) -> list[JsonObject]:
    """The runs (as stored) that have not ended."""
    return [r for r in runs if text(path(r, "status", "phase")) not in TERMINAL_PHASES]


def runs_unfit(crd: JsonObject, runs: Iterable[JsonObject]) -> list[str]:
    """What a CRD (a new version's) would break of the runs in flight: spec fields it drops, values it refuses.
    The schema's CEL rules are not evaluated (Kubernetes' CEL library has functions this one lacks)."""
    schema = obj(path(served_schema(crd), "properties", "spec"))
    if not schema:
        return [f"the new version's CRD does not serve {GROUP}/{VERSION}"]
    validator = Draft4Validator(obj(_python_patterns(schema)))  # OpenAPI 3.0: draft 4 (exclusiveMinimum: true)
    out: list[str] = []
    for run in in_flight(runs):
        spec = obj(run.get("spec"))
        name = f"{text(path(run, 'metadata', 'namespace'))}/{text(path(run, 'metadata', 'name'))}"
        found = [f"run {name}: the new CRD drops spec.{field}, which it sets"
                 for field in unknown_fields(spec, schema)]
        found += [f"run {name}: the new CRD refuses spec.{'.'.join(str(p) for p in err.absolute_path) or '(root)'}: "
                  f"{err.message}" for err in sorted(validator.iter_errors(spec), key=str)]
        out += found[:SHOWN_PER_RUN]
    return out


def _python_patterns(schema: JsonValue) -> JsonValue:
    """The schema without the patterns Python's `re` cannot read (RE2's \\p{...} classes): those go unchecked."""
    if isinstance(schema, list):
        return [_python_patterns(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _python_patterns(v) for k, v in schema.items()}
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            re.compile(pattern)
        except re.error:
            del out["pattern"]
    return out


def unknown_fields(value: JsonValue, schema: JsonObject, where: str = "") -> list[str]:
    """The fields of `value` that the schema does not list (and would prune), as paths."""
    if schema.get("x-kubernetes-preserve-unknown-fields") is True:
        return []
    out: list[str] = []
    if isinstance(value, dict):
        props, extra = obj(schema.get("properties")), schema.get("additionalProperties")
        for key, item in value.items():
            field = f"{where}.{key}".lstrip(".")
            if key in props:
                out += unknown_fields(item, obj(props[key]), field)
            elif isinstance(extra, dict):
                out += unknown_fields(item, extra, field)
            elif extra is not True and item is not None:
                out.append(field)
    elif isinstance(value, list):
        items = obj(schema.get("items"))
        for i, item in enumerate(value):
            out += unknown_fields(item, items, f"{where}[{i}]")
    return out


def missing_properties(ours: JsonObject, installed: JsonObject, where: str = "") -> list[str]:
    """The fields our schema has that the installed schema lacks (where the installed one lists its fields
    and does not keep unknown ones), as paths."""
    out: list[str] = []
    if installed.get("x-kubernetes-preserve-unknown-fields") is True:
        return out
    our_props, their_props = obj(ours.get("properties")), obj(installed.get("properties"))
    if our_props and not their_props and installed.get("type") == "object":
        return [f"{where}.{name}".lstrip(".") for name in our_props]
    for name, schema in our_props.items():
        path = f"{where}.{name}".lstrip(".")
        if name not in their_props:
            out.append(path)
            continue
        out += missing_properties(obj(schema), obj(their_props[name]), path)
    items_ours, items_theirs = obj(ours.get("items")), obj(installed.get("items"))
    if items_ours and items_theirs:
        out += missing_properties(items_ours, items_theirs, f"{where}[]")
    return out


def lost_fields(original: JsonValue, kept: JsonValue, where: str = "") -> list[str]:
    """The fields of `original` (a run's spec as stored) that `kept` (the same spec after this version
    parsed and wrote it back) no longer has."""
    return list(_lost(original, kept, where))


def _lost(original: JsonValue, kept: JsonValue, where: str) -> Iterator[str]:
    if isinstance(original, dict):
        if not isinstance(kept, dict):
            yield where or "."
            return
        for key, value in original.items():
            path = f"{where}.{key}".lstrip(".")
            if value is None:
                continue
            if key not in kept:
                yield path
            else:
                yield from _lost(value, kept[key], path)
    elif isinstance(original, list) and isinstance(kept, list):
        for i, (a, b) in enumerate(zip(original, kept, strict=False)):
            yield from _lost(a, b, f"{where}[{i}]")
        if len(kept) < len(original):
            yield f"{where}[{len(kept)}]"
