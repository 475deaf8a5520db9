"""HTTP health probe adapter."""

from __future__ import annotations

import httpx

from ..core.machine import Outcome
from ..models import HttpCheck


def probe(check: HttpCheck) -> Outcome:
    """One GET; healthy when the status is the expected one. Never raises."""
    try:
        response = httpx.get(check.url, timeout=check.timeout_seconds, follow_redirects=False)
    except httpx.HTTPError as err:
        return Outcome(ok=False, message=f"GET {check.url} failed: {type(err).__name__}")
    ok = response.status_code == check.expected_status
    return Outcome(ok=ok, message=f"GET {check.url} returned {response.status_code}"
                                  f"{'' if ok else f', expected {check.expected_status}'}")
