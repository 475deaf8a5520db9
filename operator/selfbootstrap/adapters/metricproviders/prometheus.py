"""The prometheus provider: an instant query, its vector or scalar as numbers (Argo's processResponse).

An error answer is told by Prometheus' errorType only (a fixed set of words), never its error text,
which may quote the query or whatever a remote-read backend said.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Final
from urllib.parse import urlencode

from ...core.actions import Measured
from ...core.jsontypes import JsonValue
from ...core.text import http_status
from ...models import PrometheusMetric
from ..egress import EgressPolicy
from ..request import Answer, NoAnswer, send

if TYPE_CHECKING:
    import httpx

ERROR_TYPES: Final = frozenset({"timeout", "canceled", "execution", "bad_data", "internal", "unavailable",
                                "not_found", "not_acceptable"})


def query_url(spec: PrometheusMetric) -> str:
    return f"{spec.address.rstrip('/')}/api/v1/query?{urlencode({'query': spec.query, 'timeout': f'{spec.timeout}s'})}"


def measure(metric: str, spec: PrometheusMetric, egress: EgressPolicy,
            transport: httpx.BaseTransport | None = None) -> Measured:
    answer = send("GET", query_url(spec), egress=egress, timeout=spec.timeout + 5, transport=transport)
    if isinstance(answer, NoAnswer):
        return Measured(metric, error=answer.why.replace(query_url(spec), spec.address))
    return _read(metric, answer)


def _read(metric: str, answer: Answer) -> Measured:
    try:
        doc = json.loads(answer.body)
    except (ValueError, RecursionError):
        doc = None
    if not isinstance(doc, dict):
        return Measured(metric, error=f"Prometheus answered {http_status(answer.status)} with no JSON query result")
    if doc.get("status") != "success":
        kind = doc.get("errorType")
        told = f" ({kind})" if kind in ERROR_TYPES else ""
        return Measured(metric, error=f"the query failed{told}: Prometheus answered {http_status(answer.status)}")
    data = doc.get("data")
    if not isinstance(data, dict):
        return Measured(metric, error="Prometheus answered success without data")
    try:
        return Measured(metric, result=_values(data.get("resultType"), data.get("result")))
    except ValueError as err:
        return Measured(metric, error=str(err))


def _number(sample: object) -> float:
    """A sample's value: [time, "0.5"], the number as Prometheus writes it ("NaN", "+Inf" included)."""
    if not isinstance(sample, list) or len(sample) != 2 or not isinstance(sample[1], str):
        raise ValueError("Prometheus answered a sample that is not [time, value]")
    return float(sample[1])


def _values(kind: object, result: object) -> JsonValue:
    """A scalar as a number, a vector as the list of its samples' values; ValueError says why not."""
    match kind:
        case "scalar":
            return _number(result)
        case "vector" if isinstance(result, list):
            return [_number(s.get("value") if isinstance(s, dict) else None) for s in result]
        case "matrix" | "string":
            raise ValueError(f"a {kind} result is not supported: the query must give a vector or a scalar")
        case _:
            raise ValueError("Prometheus answered a result that is neither a vector nor a scalar")
