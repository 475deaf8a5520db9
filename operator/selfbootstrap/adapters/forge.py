"""Forge adapter: pull requests, commit CI status and merges, behind one small interface.

The first provider is GitHub's REST API. Every call that creates something looks
first whether it exists (a pull request for the head branch, a merged pull
request), so repeating a call after a restart never creates a second one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import urlparse

from ..core.jsontypes import JsonObject, JsonValue, obj, objects, text
from ..models import CIStatus, ForgeKind, ForgeSettings

if TYPE_CHECKING:
    import httpx  # imported when a forge is first used (http.py says why)

CI_FAILED_CONCLUSIONS = frozenset({"failure", "timed_out", "cancelled", "action_required", "startup_failure"})


class ForgeError(Exception):
    def __init__(self, message: str, retryable: bool = False, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


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


def connect(settings: ForgeSettings, repository_url: str, token: str | None) -> Forge:
    """The forge client for the run's settings."""
    repository = settings.repository or repository_from_url(repository_url)
    match settings.kind:
        case ForgeKind.GITHUB:
            return GitHub(settings.api_url, repository, token)
    raise ValueError(f"unsupported forge kind {settings.kind!r}")


def ci_verdict(statuses: list[JsonObject], check_runs: list[JsonObject]) -> tuple[CIStatus, str]:
    """pending, success or failure of one commit, from its commit statuses and check runs."""
    failed = [text(s.get("context")) or "?" for s in statuses if s.get("state") in ("failure", "error")]
    failed += [text(r.get("name")) or "?" for r in check_runs if r.get("conclusion") in CI_FAILED_CONCLUSIONS]
    if failed:
        return CIStatus.FAILURE, f"failed: {', '.join(failed)}"
    pending = [text(s.get("context")) or "?" for s in statuses if s.get("state") == "pending"]
    pending += [text(r.get("name")) or "?" for r in check_runs if r.get("status") != "completed"]
    if pending or not (statuses or check_runs):
        return CIStatus.PENDING, f"pending: {', '.join(pending)}" if pending else "no CI reported yet"
    return CIStatus.SUCCESS, f"{len(statuses) + len(check_runs)} checks passed"


def repository_from_url(url: str) -> str:
    """owner/name from a clone URL such as https://github.com/acme/web.git."""
    parts = [p for p in urlparse(url).path.split("/") if p]
    if len(parts) < 2:
        raise ValueError(f"cannot tell owner/name from {url!r}; set spec.git.forge.repository")
    return f"{parts[-2]}/{re.sub(r'[.]git$', '', parts[-1])}"


class GitHub:
    def __init__(self, api_url: str, repository: str, token: str | None, timeout: float = 20.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        import httpx

        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28",
                   "User-Agent": "selfbootstrap-operator"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.repo = repository
        self.owner = repository.split("/", 1)[0]
        self.http = httpx.Client(base_url=api_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> JsonValue:
        import httpx

        try:
            response = self.http.request(method, f"/repos/{self.repo}{path}", **kwargs)
        except httpx.HTTPError as err:
            raise ForgeError(f"{method} {path}: {type(err).__name__}", retryable=True) from None
        if response.status_code >= 400:
            try:
                message = response.json().get("message") or response.reason_phrase
            except ValueError:
                message = response.reason_phrase
            retryable = response.status_code >= 500 or response.status_code == 429
            raise ForgeError(f"{method} {path} returned {response.status_code}: {message}",
                             retryable=retryable, status=response.status_code)
        try:
            return cast(JsonValue, response.json()) if response.content else None
        except ValueError:
            raise ForgeError(f"{method} {path} returned a body that is not JSON", retryable=True) from None

    @staticmethod
    def _pr(value: JsonValue) -> PullRequest:
        data = obj(value)
        number = data.get("number")
        if not isinstance(number, int):
            raise ForgeError("the forge answered with a pull request without a number")
        return PullRequest(number=number, url=text(data.get("html_url")) or text(data.get("url")) or "",
                           state=text(data.get("state")) or "open",
                           merged=bool(data.get("merged") or data.get("merged_at")),
                           merge_sha=text(data.get("merge_commit_sha")),
                           head_sha=text(obj(data.get("head")).get("sha")))

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
        return text(data.get("sha")) or ""
