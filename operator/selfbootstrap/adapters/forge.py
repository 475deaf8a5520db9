"""Forge adapter: pull requests, commit CI status and merges, behind one small interface.

The first provider is GitHub's REST API. Every call that creates something looks
first whether it exists (a pull request for the head branch, a merged pull
request), so repeating a call after a restart never creates a second one.

The API URL passes the operator's egress policy and every request goes to the address it decided.
The token never follows a redirect: a 3xx is an error naming both URLs. What the forge says is
data, never a message: errors carry the status code and its standard phrase (never a response
body), check names and pull request URLs are stored escaped and bounded, and a body larger than
MAX_BODY is refused while it is read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, assert_never, cast
from urllib.parse import urljoin, urlparse

from ..core import reasons
from ..core.egress import Refused
from ..core.jsontypes import JsonObject, JsonValue, obj, objects, text
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
    repository = settings.repository or repository_from_url(repository_url)
    api_url = settings.api_url.rstrip("/")
    target = egress.check(f"{api_url}/repos/{repository}/")
    match target:
        case Refused():
            raise ForgeError(target.message, reason=reasons.EGRESS_REFUSED)
        case Unresolved():
            raise ForgeError(target.message, retryable=True)
        case Target():
            pass
        case _:
            assert_never(target)
    match settings.kind:
        case ForgeKind.GITHUB:
            return GitHub(api_url, repository, token, target)
    raise ValueError(f"unsupported forge kind {settings.kind!r}")


def _name(value: JsonValue) -> str:
    return printable(text(value) or "?", NAME_LIMIT)


def ci_verdict(statuses: list[JsonObject], check_runs: list[JsonObject]) -> tuple[CIStatus, str]:
    """pending, success or failure of one commit, from its commit statuses and check runs (the names the
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


def repository_from_url(url: str) -> str:
    """owner/name from a clone URL such as https://github.com/acme/web.git."""
    parts = [p for p in urlparse(url).path.split("/") if p]
    if len(parts) < 2:
        raise ValueError(f"cannot tell owner/name from {url!r}; set spec.git.forge.repository")
    return f"{parts[-2]}/{re.sub(r'[.]git$', '', parts[-1])}"


class GitHub:
    def __init__(self, api_url: str, repository: str, token: str | None, target: Target, timeout: float = 20.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        import httpx

        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28",
                   "User-Agent": "selfbootstrap-operator"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.api, self.target = api_url.rstrip("/"), target
        self.repo = repository
        self.owner = repository.split("/", 1)[0]
        # follow_redirects=False is httpx's default, said out loud: the token must not follow one;
        # trust_env=False: no proxy from the environment, the connection goes to the decided address.
        self.http = httpx.Client(headers=headers, timeout=timeout, transport=transport, follow_redirects=False,
                                 trust_env=False)

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> JsonValue:
        import httpx

        url = f"{self.api}/repos/{self.repo}{path}"
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

    @staticmethod
    def _pr(value: JsonValue) -> PullRequest:
        data = obj(value)
        number = data.get("number")
        if not isinstance(number, int) or isinstance(number, bool):
            raise ForgeError("the forge answered with a pull request without a number")
        return PullRequest(number=number, url=web_url(data.get("html_url")) or web_url(data.get("url")),
                           state=text(data.get("state")) or "open",
                           merged=bool(data.get("merged") or data.get("merged_at")),
                           merge_sha=sha_of(data.get("merge_commit_sha")),
                           head_sha=sha_of(obj(data.get("head")).get("sha")))

    def find_pull_request(self, head: str) -> PullRequest | None:
        found = objects(self._call("GET", "/pulls", params={"head": f"{self.owner}:{head}", "state": "all"}))
        return self._pr(found[0]) if found else None

    def open_pull_request(self, head: str, base: str, title: str, body: str) -> PullRequest:
        existing = self.find_pull_request(head)
        if existing is not None:
            return existing
        return self._pr(self._call("POST", "/pulls", json={"title": title, "head": head, "base": base,
                                                            "body": body}))

    def pull_request(self, number: int) -> PullRequest:
        return self._pr(self._call("GET", f"/pulls/{number}"))

    def ci_state(self, sha: str) -> tuple[CIStatus, str]:
        """pending | success | failure for the exact commit, from commit statuses and check runs."""
        statuses = objects(obj(self._call("GET", f"/commits/{sha}/status")).get("statuses"))
        runs = objects(obj(self._call("GET", f"/commits/{sha}/check-runs")).get("check_runs"))
        return ci_verdict(statuses, runs)

    def merge(self, number: int, sha: str, method: str, title: str) -> str:
        pr = self.pull_request(number)
        if pr.merged:
            return pr.merge_sha or ""
        if pr.state != "open":
            raise ForgeError(f"pull request #{number} is closed")
        data = obj(self._call("PUT", f"/pulls/{number}/merge",
                              json={"merge_method": method, "sha": sha, "commit_title": title}))
        return sha_of(data.get("sha")) or ""


def _bounded(method: str, path: str, response: httpx.Response) -> bytes:
    """The body, refused once it grows past MAX_BODY (decoded size: a compressed bomb stops too)."""
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > MAX_BODY:
            raise ForgeError(f"{method} {path} answered more than {MAX_BODY} bytes")
    return bytes(body)
