"""HTTP health probe adapter: performs ProbeHttp.

The URL passes the operator's egress policy first and the GET goes to the address it decided; the
probe reports the status code and its standard phrase only: never the body or the server's own
reason phrase, so the check is no channel for reading what a server says.

httpx is imported on the first probe: with rich and click installed (the kubectl plugin's), its
import also loads its command-line client, about 4 MiB an operator whose runs probe nothing keeps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, assert_never

from ..core import reasons
from ..core.actions import Failed, Probed, ProbeHttp
from ..core.egress import Refused, destination
from ..core.text import http_status
from .egress import EgressPolicy, Target, Unresolved, pinned

if TYPE_CHECKING:
    import httpx


class HttpExecutor:
    def __init__(self, egress: EgressPolicy, transport: httpx.BaseTransport | None = None) -> None:
        self.egress = egress
        self.transport = transport  # tests may inject one; the default is a real connection

    def perform(self, action: ProbeHttp) -> Probed | Failed:
        """One GET; healthy when the status is the expected one. Never raises; a refused URL is Failed."""
        check = action.check
        unusable = destination(check.url)
        if isinstance(unusable, Refused):  # not a URL at all (admission refuses these; a stored run may not)
            return Probed(healthy=False, detail=f"GET {check.url!r} impossible: {unusable.rule}")
        target = self.egress.check(check.url)
        match target:
            case Refused():
                return Failed(reasons.EGRESS_REFUSED, target.message)
            case Unresolved():
                return Probed(healthy=False, detail=f"GET {check.url} failed: {target.message}")
            case Target():
                return self._get(action, target)
            case _:
                assert_never(target)

    def _get(self, action: ProbeHttp, target: Target) -> Probed:
        import httpx

        check = action.check
        try:
            request = pinned(target, check.url)
            with httpx.Client(transport=self.transport, timeout=check.timeout_seconds, follow_redirects=False,
                              trust_env=False) as client, \
                    client.stream("GET", request.url, headers=request.headers,
                                  extensions=request.extensions) as response:
                code = response.status_code  # the body is never read
        except httpx.HTTPError as err:
            return Probed(healthy=False, detail=f"GET {check.url} failed: {type(err).__name__}")
        except (httpx.InvalidURL, ValueError, UnicodeError) as err:  # not HTTPErrors: a URL httpx cannot use
            return Probed(healthy=False, detail=f"GET {check.url!r} impossible: {type(err).__name__}")
        ok = code == check.expected_status
        return Probed(healthy=ok, detail=f"GET {check.url} returned {http_status(code)}"
                                         f"{'' if ok else f', expected {check.expected_status}'}")
