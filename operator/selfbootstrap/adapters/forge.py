"""Forge adapter: pull requests, commit CI status and merges, behind one small interface.

The first provider is GitHub's REST API. Every call that creates something looks
first whether it exists (a pull request for the head branch, a merged pull
request), so repeating a call after a restart never creates a second one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlparse

import httpx

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
    def open_pull_request(self, head: str, base: str, title: str, body: str) -> PullRequest: ...
    def pull_request(self, number: int) -> PullRequest: ...
    def ci_state(self, sha: str) -> tuple[str, str]: ...
    def merge(self, number: int, sha: str, method: str, title: str) -> str: ...


def repository_from_url(url: str) -> str:
    """owner/name from a clone URL such as https://github.com/acme/web.git."""
    parts = [p for p in urlparse(url).path.split("/") if p]
    if len(parts) < 2:
        raise ValueError(f"cannot tell owner/name from {url!r}; set spec.git.forge.repository")
    return f"{parts[-2]}/{re.sub(r'[.]git$', '', parts[-1])}"


class GitHub:
    def __init__(self, api_url: str, repository: str, token: str | None, timeout: float = 20.0) -> None:
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28",
                   "User-Agent": "selfbootstrap-operator"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.repo = repository
        self.owner = repository.split("/", 1)[0]
        self.http = httpx.Client(base_url=api_url.rstrip("/"), headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
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
        return response.json() if response.content else None

    @staticmethod
    def _pr(data: dict[str, Any]) -> PullRequest:
        return PullRequest(number=data["number"], url=data.get("html_url") or data.get("url", ""),
                           state=data.get("state", "open"), merged=bool(data.get("merged") or data.get("merged_at")),
                           merge_sha=data.get("merge_commit_sha"), head_sha=(data.get("head") or {}).get("sha"))

    def find_pull_request(self, head: str) -> PullRequest | None:
        found = self._call("GET", "/pulls", params={"head": f"{self.owner}:{head}", "state": "all"})
        return self._pr(found[0]) if found else None

    def open_pull_request(self, head: str, base: str, title: str, body: str) -> PullRequest:
        existing = self.find_pull_request(head)
        if existing is not None:
            return existing
        return self._pr(self._call("POST", "/pulls", json={"title": title, "head": head, "base": base,
                                                            "body": body}))

    def pull_request(self, number: int) -> PullRequest:
        return self._pr(self._call("GET", f"/pulls/{number}"))

    def ci_state(self, sha: str) -> tuple[str, str]:
        """pending | success | failure for the exact commit, from commit statuses and check runs."""
        combined = self._call("GET", f"/commits/{sha}/status")
        runs = self._call("GET", f"/commits/{sha}/check-runs").get("check_runs", [])
        statuses = combined.get("statuses") or []
        failed = [s["context"] for s in statuses if s.get("state") in ("failure", "error")]
        failed += [r["name"] for r in runs if r.get("conclusion") in CI_FAILED_CONCLUSIONS]
        if failed:
            return "failure", f"failed: {', '.join(failed)}"
        pending = [s["context"] for s in statuses if s.get("state") == "pending"]
        pending += [r["name"] for r in runs if r.get("status") != "completed"]
        if pending or not (statuses or runs):
            return "pending", f"pending: {', '.join(pending)}" if pending else "no CI reported yet"
        return "success", f"{len(statuses) + len(runs)} checks passed"

    def merge(self, number: int, sha: str, method: str, title: str) -> str:
        pr = self.pull_request(number)
        if pr.merged:
            return pr.merge_sha or ""
        if pr.state != "open":
            raise ForgeError(f"pull request #{number} is closed")
        data = self._call("PUT", f"/pulls/{number}/merge",
                          json={"merge_method": method, "sha": sha, "commit_title": title})
        return data["sha"]
