"""One HTTP request on a run's behalf (a metric, a registry): through the egress policy, no redirect, a
bounded answer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, assert_never

from ..core.egress import Refused, destination
from .egress import EgressPolicy, Target, Unresolved, pinned

if TYPE_CHECKING:
    import httpx

ANSWER_LIMIT: Final = 4 * 1024 * 1024  # bytes of an answer read: a metric is a number or a small document


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names


@dataclass(frozen=True)
class NoAnswer:
    why: str  # a fixed description, with the URL the author wrote: never what the server said


def send(method: str, url: str, *, egress: EgressPolicy, timeout: float, transport: httpx.BaseTransport | None,
         headers: Mapping[str, str] | None = None, body: str | None = None) -> Answer | NoAnswer:
    import httpx

    if isinstance(destination(url), Refused):
        return NoAnswer(f"{method} {url!r} is not an http(s) URL with a host")
    target = egress.check(url)
    match target:
        case Refused():
            return NoAnswer(target.message)
        case Unresolved():
            return NoAnswer(f"{method} {url} failed: {target.message}")
        case Target():
            pass
        case _:
            assert_never(target)
    try:
        request = pinned(target, url)
        with httpx.Client(transport=transport, timeout=timeout, follow_redirects=False, trust_env=False) as client, \
                client.stream(method, request.url, headers={**(headers or {}), **request.headers},
                              content=body.encode() if body is not None else None,
                              extensions=request.extensions) as response:
            data = bytearray()
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > ANSWER_LIMIT:
                    return NoAnswer(f"{method} {url}: the answer is larger than {ANSWER_LIMIT // 1024 // 1024} MiB")
            return Answer(response.status_code, bytes(data), {k.lower(): v for k, v in response.headers.items()})
    except httpx.TimeoutException:
        return NoAnswer(f"{method} {url} timed out after {timeout:g}s")
    except httpx.HTTPError as err:
        return NoAnswer(f"{method} {url} failed: {type(err).__name__}")
    except (httpx.InvalidURL, ValueError, UnicodeError) as err:
        return NoAnswer(f"{method} {url!r} impossible: {type(err).__name__}")
