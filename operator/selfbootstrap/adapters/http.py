"""HTTP health probe adapter: performs ProbeHttp.

httpx is imported on the first probe: with rich and click installed (the kubectl plugin's), its
import also loads its command-line client, about 4 MiB an operator whose runs probe nothing keeps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.actions import Probed, ProbeHttp

if TYPE_CHECKING:
    import httpx


class HttpExecutor:
    def __init__(self, transport: httpx.BaseTransport | None = None) -> None:
        self.transport = transport  # tests may inject one; the default is a real connection

    def perform(self, action: ProbeHttp) -> Probed:
        """One GET; healthy when the status is the expected one. Never raises."""
        import httpx

        check = action.check
        try:
            with httpx.Client(transport=self.transport, timeout=check.timeout_seconds,
                              follow_redirects=False) as http:
                response = http.get(check.url)
        except httpx.HTTPError as err:
            return Probed(healthy=False, detail=f"GET {check.url} failed: {type(err).__name__}")
        except (httpx.InvalidURL, ValueError, UnicodeError) as err:  # not HTTPErrors: a URL httpx cannot use
            return Probed(healthy=False, detail=f"GET {check.url!r} impossible: {type(err).__name__}: {err}")
        ok = response.status_code == check.expected_status
        return Probed(healthy=ok, detail=f"GET {check.url} returned {response.status_code}"
                                         f"{'' if ok else f', expected {check.expected_status}'}")
