"""Whether this version of the operator can serve what the cluster holds (pure): the self-test's verdicts.

A new version that starts against a CRD older than its own would have the API server prune the status
fields it writes; one that meets runs with fields it does not know would drop them when it parses them.
Either way it must not serve: it says why and stops, so a self-update that brought it never becomes
ready and the old version, still running, rolls it back.
"""

from __future__ import annotations

from collections.abc import Iterator

from .jsontypes import JsonObject, JsonValue, obj


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
