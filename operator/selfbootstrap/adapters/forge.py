"""Forge adapter: pull requests, commit CI status and merges, behind one small interface.

A forge is one module in adapters/forges/ (github.py, gitlab.py, gitea.py): how it names a repository, the
URL prefix its token goes to, and its client on the shared ForgeClient. Every call that creates something looks
first whether it exists (a pull request for the head branch, a merged pull
request), so repeating a call after a restart never creates a second one.

The API URL passes the operator's egress policy and every request goes to the address it decided.
The token never follows a redirect: a 3xx is an error naming both URLs. What the forge says is
data, never a message: errors carry the status code and its standard phrase (never a response
body), check names and pull request URLs are stored escaped and bounded, and a body larger than
MAX_BODY is refused while it is read.
"""

from __future__ import annotations

import importlib
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, assert_never, cast
from urllib.parse import urljoin

from ..core import reasons
from ..core.egress import Refused
from ..core.jsontypes import JsonObject, JsonValue, text
from ..core.text import MESSAGE_LIMIT, NAME_LIMIT, http_status, printable
from ..models import CIStatus, ForgeKind, ForgeSettings
from .egress import EgressPolicy, Target, Unresolved, pinned

if TYPE_CHECKING:
    import httpx  # imported when a forge is first used (http.py says why)

CI_FAILED_CONCLUSIONS = frozenset({"failure", "timed_out", "cancelled", "action_required", "startup_failure"})
MAX_BODY = 4 * 1024 * 1024  # bytes of one answer; GitHub's largest we read (a page of check runs) is far less
SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")


class ForgeError(Exception):
    def __init__(self, message: str, retryable: bool = False, status: int | None = None,
                 reason: str | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.reason = reason  # a status reason of its own (EgressRefused, RedirectRefused), else the step's


@dataclass(frozen=True)
class PullRequest:
    number: int
    url: str
    state: str  # open | closed
    merged: bool
    merge_sha: str | None
    head_sha: str | None


class Forge(Protocol):
    """What the git executor needs from a forge; one implementation per ForgeKind."""

    def open_pull_request(self, head: str, base: str, title: str, body: str) -> PullRequest: ...
    def pull_request(self, number: int) -> PullRequest: ...
    def ci_state(self, sha: str) -> tuple[CIStatus, str]: ...
    def merge(self, number: int, sha: str, method: str, title: str) -> str: ...
    def close(self) -> None: ...


def connect(settings: ForgeSettings, repository_url: str, token: str | None, egress: EgressPolicy) -> Forge:
    """The forge client for the run's settings, once the egress policy allows its API (nothing is sent yet)."""
    module = forge_module(settings.kind)
    repository = settings.repository or module.repository_from_url(repository_url)
    api_url = settings.api_url.rstrip("/")
    target = egress.check(module.token_prefix(api_url, repository))
    match target:
        case Refused():
            raise ForgeError(target.message, reason=reasons.EGRESS_REFUSED)
        case Unresolved():
            raise ForgeError(target.message, retryable=True)
        case Target():
            pass
        case _:
            assert_never(target)
    return module.client(api_url, repository, token, target)


class ForgeModule(Protocol):
    """What a forge's module gives: how it names a repository, where its token goes, its client."""

    def repository_from_url(self, url: str) -> str: ...
    def token_prefix(self, api_url: str, repository: str) -> str: ...
    def client(self, api_url: str, repository: str, token: str | None, target: Target) -> Forge: ...


def forge_module(kind: ForgeKind) -> ForgeModule:
    """A forge is one module (adapters/forges/), named after its kind: adding a forge is that module and its
    ForgeKind value."""
    return cast(ForgeModule, importlib.import_module(f"{__package__}.forges.{ForgeKind(kind).value}"))


def repository_of(settings: ForgeSettings, repository_url: str) -> str:
    """The repository as the forge names it (ValueError when the URL does not tell it)."""
    return settings.repository or forge_module(settings.kind).repository_from_url(repository_url)


def token_prefix(settings: ForgeSettings, repository_url: str) -> str:
    """The URL prefix of every forge API request a run's token goes to."""
    return forge_module(settings.kind).token_prefix(settings.api_url.rstrip("/"),
                                                   repository_of(settings, repository_url))


def _name(value: JsonValue) -> str:
    return printable(text(value) or "?", NAME_LIMIT)


def ci_verdict(statuses: list[JsonObject], check_runs: list[JsonObject]) -> tuple[CIStatus, str]:
    """pending, success or failure of one commit, from GitHub's commit statuses and check runs (the names the
    forge gives them escaped and bounded: they are shown in status)."""
    failed = [_name(s.get("context")) for s in statuses if s.get("state") in ("failure", "error")]
    failed += [_name(r.get("name")) for r in check_runs if r.get("conclusion") in CI_FAILED_CONCLUSIONS]
    if failed:
        return CIStatus.FAILURE, printable(f"failed: {', '.join(failed)}", MESSAGE_LIMIT // 2)
    pending = [_name(s.get("context")) for s in statuses if s.get("state") == "pending"]
    pending += [_name(r.get("name")) for r in check_runs if r.get("status") != "completed"]
    if pending or not (statuses or check_runs):
        return CIStatus.PENDING, printable(f"pending: {', '.join(pending)}", MESSAGE_LIMIT // 2) if pending \
            else "no CI reported yet"
    return CIStatus.SUCCESS, f"{len(statuses) + len(check_runs)} checks passed"


def web_url(value: JsonValue) -> str:
    """A pull request's URL as the forge gave it, if it is an http(s) URL ('' otherwise), escaped and bounded."""
    url = text(value) or ""
    return printable(url, MESSAGE_LIMIT // 2) if re.match(r"https?://[^\s/]", url, re.IGNORECASE) else ""


def sha_of(value: JsonValue) -> str | None:
    """A commit id as the forge gave it, if it is one."""
    found = text(value)
    return found if found and SHA.fullmatch(found) else None


class ForgeClient:
    """What every forge's client shares: the pinned connection, no redirect, the status only of an error,
    a bounded answer."""

    def __init__(self, base: str, headers: dict[str, str], target: Target, timeout: float = 20.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        import httpx

        self.base, self.target = base.rstrip("/"), target
        # follow_redirects=False is httpx's default, said out loud: the token must not follow one;
        # trust_env=False: no proxy from the environment, the connection goes to the decided address.
        self.http = httpx.Client(headers={"User-Agent": "selfbootstrap-operator", **headers}, timeout=timeout,
                                 transport=transport, follow_redirects=False, trust_env=False)

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> JsonValue:
        import httpx

        url = f"{self.base}{path}"
        request = pinned(self.target, url)
        try:
            with self.http.stream(method, request.url, headers=request.headers, extensions=request.extensions,
                                  **kwargs) as response:
                self._refuse(method, url, path, response)
                body = _bounded(method, path, response)
        except httpx.HTTPError as err:
            raise ForgeError(f"{method} {path}: {type(err).__name__}", retryable=True) from None
        try:
            return cast(JsonValue, json.loads(body)) if body else None
        except ValueError:
            raise ForgeError(f"{method} {path} returned a body that is not JSON", retryable=True) from None

    @staticmethod
    def _refuse(method: str, url: str, path: str, response: httpx.Response) -> None:
        """A redirect or an error status as a ForgeError: the status only, never what the body says."""
        code = response.status_code
        if 300 <= code < 400:
            location = response.headers.get("Location")
            where = printable(urljoin(url, location), MESSAGE_LIMIT // 4) if location else "nowhere named"
            raise ForgeError(f"{method} {url} answered {http_status(code)}, a redirect to {where}; the token never "
                             f"follows a redirect", status=code, reason=reasons.REDIRECT_REFUSED)
        if code >= 400:
            raise ForgeError(f"{method} {path} returned {http_status(code)}", retryable=code >= 500 or code == 429,
                             status=code)


def _bounded(method: str, path: str, response: httpx.Response) -> bytes:
    """The body, refused once it grows past MAX_BODY (decoded size: a compressed bomb stops too)."""
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > MAX_BODY:
            raise ForgeError(f"{method} {path} answered more than {MAX_BODY} bytes")
    return bytes(body)
