"""GitHub's REST API: pull requests, commit statuses and check runs, merges guarded by the head SHA."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from ...core.jsontypes import JsonValue, obj, objects, text
from ...models import CIStatus
from ..egress import Target
from ..forge import ForgeClient, ForgeError, PullRequest, ci_verdict, sha_of, web_url

if TYPE_CHECKING:
    import httpx


def repository_from_url(url: str) -> str:
    """owner/name from a clone URL such as https://github.com/acme/web.git."""
    parts = [p for p in urlparse(url).path.split("/") if p]
    if len(parts) < 2:
        raise ValueError(f"cannot tell owner/name from {url!r}; set spec.git.forge.repository")
    return f"{parts[-2]}/{re.sub(r'[.]git$', '', parts[-1])}"


def token_prefix(api_url: str, repository: str) -> str:
    return f"{api_url}/repos/{repository}/"


def client(api_url: str, repository: str, token: str | None, target: Target) -> GitHub:
    return GitHub(api_url, repository, token, target)


def pull_request_of(value: JsonValue) -> PullRequest:
    """A pull request as GitHub's API (and Gitea's, which follows it) describes one."""
    data = obj(value)
    number = data.get("number")
    if not isinstance(number, int) or isinstance(number, bool):
        raise ForgeError("the forge answered with a pull request without a number")
    return PullRequest(number=number, url=web_url(data.get("html_url")) or web_url(data.get("url")),
                       state=text(data.get("state")) or "open",
                       merged=bool(data.get("merged") or data.get("merged_at")),
                       merge_sha=sha_of(data.get("merge_commit_sha")),
                       head_sha=sha_of(obj(data.get("head")).get("sha")))


class GitHub(ForgeClient):
    def __init__(self, api_url: str, repository: str, token: str | None, target: Target, timeout: float = 20.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        super().__init__(f"{api_url.rstrip('/')}/repos/{repository}", headers, target, timeout, transport)
        self.api = api_url.rstrip("/")
        self.repo = repository
        self.owner = repository.split("/", 1)[0]

    def find_pull_request(self, head: str) -> PullRequest | None:
        found = objects(self._call("GET", "/pulls", params={"head": f"{self.owner}:{head}", "state": "all"}))
        return pull_request_of(found[0]) if found else None

    def open_pull_request(self, head: str, base: str, title: str, body: str) -> PullRequest:
        existing = self.find_pull_request(head)
        if existing is not None:
            return existing
        return pull_request_of(self._call("POST", "/pulls", json={"title": title, "head": head, "base": base,
                                                            "body": body}))

    def pull_request(self, number: int) -> PullRequest:
        return pull_request_of(self._call("GET", f"/pulls/{number}"))

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


