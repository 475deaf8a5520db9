"""The web provider: an HTTP endpoint's JSON answer, or the part jsonPath selects (Argo's webmetric).

A non-2xx answer, a body that is not JSON or a jsonPath that selects nothing is an Error, told by the
status code and a fixed description only.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ...core.actions import Measured
from ...core.jsontypes import JsonValue
from ...core.text import http_status
from ...models import WebMetric
from ..egress import EgressPolicy
from ..request import NoAnswer, send

if TYPE_CHECKING:
    import httpx


def measure(metric: str, spec: WebMetric, egress: EgressPolicy,
            transport: httpx.BaseTransport | None = None) -> Measured:
    headers = {h.key: h.value for h in spec.headers}
    if spec.body is not None and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json"
    answer = send(str(spec.method), spec.url, egress=egress, timeout=spec.timeout_seconds, transport=transport,
                  headers=headers, body=spec.body)
    if isinstance(answer, NoAnswer):
        return Measured(metric, error=answer.why)
    if not 200 <= answer.status < 300:
        return Measured(metric, error=f"{spec.method} {spec.url} returned {http_status(answer.status)}")
    try:
        doc = json.loads(answer.body)
    except (ValueError, RecursionError):
        return Measured(metric, error=f"{spec.method} {spec.url} answered with no JSON document")
    if not spec.json_path:
        return Measured(metric, result=doc)
    return _selected(metric, spec.json_path, doc)


def _selected(metric: str, path: str, doc: JsonValue) -> Measured:
    """What jsonPath selects: one value as it is, several as a list (Argo writes the path in braces)."""
    from jsonpath_ng.ext.parser import parse

    expression = path.strip()
    if expression.startswith("{") and expression.endswith("}"):
        expression = expression[1:-1]
    try:
        found = [match.value for match in parse(expression).find(doc)]
    except Exception:  # the library's parse errors include plain Exceptions: any of them is a bad path
        return Measured(metric, error=f"jsonPath {path!r} could not be applied to the answer")
    if not found:
        return Measured(metric, error=f"jsonPath {path!r} selected nothing in the answer")
    return Measured(metric, result=found[0] if len(found) == 1 else found)
