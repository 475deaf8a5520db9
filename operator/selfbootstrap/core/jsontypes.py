"""JSON as plain typed data, for the API objects the core reads and the patches it builds.

Read-only `Mapping`/`Sequence` keep the aliases covariant, so a `dict[str, str]`
is a `JsonObject` without copying; the accessors narrow a value without `Any`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias, Union

JsonValue: TypeAlias = Union[str, int, float, bool, Sequence["JsonValue"], Mapping[str, "JsonValue"], None]  # noqa: UP007
JsonObject: TypeAlias = Mapping[str, JsonValue]
JsonPatch: TypeAlias = Sequence[JsonObject]  # RFC 6902 operations

EMPTY: JsonObject = {}


def obj(value: JsonValue) -> JsonObject:
    """The value as an object; {} for anything else (absent, null, a scalar)."""
    return value if isinstance(value, Mapping) else EMPTY


def objects(value: JsonValue) -> list[JsonObject]:
    """The objects of an array; [] when the value is not an array."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [v for v in value if isinstance(v, Mapping)]
    return []


def text(value: JsonValue) -> str | None:
    return value if isinstance(value, str) else None


def strings(value: JsonValue) -> dict[str, str]:
    """An object of strings (labels, annotations); other members are dropped."""
    return {k: v for k, v in obj(value).items() if isinstance(v, str)}


def texts(value: JsonValue) -> list[str]:
    """The strings of an array; [] when the value is not an array."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [v for v in value if isinstance(v, str)]
    return []


def integer(value: JsonValue, default: int = 0) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return default


def path(value: JsonValue, *keys: str) -> JsonValue:
    """value[k1][k2]...; None as soon as a member is missing."""
    for key in keys:
        value = obj(value).get(key)
    return value
