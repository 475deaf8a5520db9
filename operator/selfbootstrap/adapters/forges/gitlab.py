"""GitLab's REST API (v4): merge requests, commit statuses and pipelines, merges guarded by the head SHA.

A project is named by its full path, subgroups included (`group/subgroup/project`), URL-encoded as GitLab
wants it; the token goes in PRIVATE-TOKEN, and only to `<api>/projects/<path>/`. A merge request is a
pull request here: its `iid` is the number, `opened` is open, `merged` and `closed` are closed.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final
from urllib.parse import quote, urlparse

from ...core.jsontypes import JsonObject, JsonValue, integer, obj, objects, text
from ...core.text import MESSAGE_LIMIT, NAME_LIMIT, printable
from ...models import CIStatus
from ..egress import Target
from ..forge import ForgeClient, ForgeError, PullRequest, sha_of, web_url

if TYPE_CHECKING:
    import httpx

FAILED: Final = frozenset({"failed", "canceled"})
DONE: Final = frozenset({"success", "skipped"}) | FAILED


def repository_from_url(url: str) -> str:
    """group/.../project from a clone URL such as https://gitlab.example.com/acme/platform/web.git."""
    parts = [p for p in urlparse(url).path.split("/") if p]
    if len(parts) < 2:
        raise ValueError(f"cannot tell the project's path from {url!r}; set spec.git.forge.repository")
    return "/".join([*parts[:-1], re.sub(r"[.]git$", "", parts[-1])])


def token_prefix(api_url: str, repository: str) -> str:
    return f"{api_url}/projects/{quote(repository, safe='')}/"


def client(api_url: str, repository: str, token: str | None, target: Target) -> GitLab:
    return GitLab(api_url, repository, token, target)


def _name(value: JsonValue) -> str:
    return printable(text(value) or "?", NAME_LIMIT)


def ci_verdict(statuses: list[JsonObject], pipelines: list[JsonObject]) -> tuple[CIStatus, str]:
    """pending, success or failure of one commit, from its commit statuses and its pipelines."""
    entries = [(_name(s.get("name")), text(s.get("status")) or "") for s in statuses]
    entries += [(f"pipeline {integer(p.get('id'))}", text(p.get("status")) or "") for p in pipelines[:1]]  # newest
    failed = [name for name, state in entries if state in FAILED]
    if failed:
        return CIStatus.FAILURE, printable(f"failed: {', '.join(failed)}", MESSAGE_LIMIT // 2)
    pending = [name for name, state in entries if state not in DONE]
    if pending:
        return CIStatus.PENDING, printable(f"pending: {', '.join(pending)}", MESSAGE_LIMIT // 2)
    if not entries:
        return CIStatus.PENDING, "no CI reported yet"
    return CIStatus.SUCCESS, f"{len(entries)} checks passed"


class GitLab(ForgeClient):
    def __init__(self, api_url: str, repository: str, token: str | None, target: Target, timeout: float = 20.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        headers = {"Accept": "application/json"}
        if token:
            headers["PRIVATE-TOKEN"] = token
        super().__init__(token_prefix(api_url.rstrip("/"), repository).rstrip("/"), headers, target, timeout,
                         transport)

    @staticmethod
    def _mr(value: JsonValue) -> PullRequest:
        data = obj(value)
        number = data.get("iid")
        if not isinstance(number, int) or isinstance(number, bool):
            raise ForgeError("the forge answered with a merge request without an iid")
        state = text(data.get("state")) or "opened"
        return PullRequest(number=number, url=web_url(data.get("web_url")), state="open" if state == "opened"
                           else "closed", merged=state == "merged",
                           merge_sha=sha_of(data.get("merge_commit_sha")) or sha_of(data.get("squash_commit_sha")),
                           head_sha=sha_of(data.get("sha")))

    def find_pull_request(self, head: str) -> PullRequest | None:
        found = objects(self._call("GET", "/merge_requests", params={"source_branch": head, "state": "all"}))
        return self._mr(found[0]) if found else None

    def open_pull_request(self, head: str, base: str, title: str, body: str) -> PullRequest:
        existing = self.find_pull_request(head)
        if existing is not None:
            return existing
        return self._mr(self._call("POST", "/merge_requests", json={
            "source_branch": head, "target_branch": base, "title": title, "description": body}))

    def pull_request(self, number: int) -> PullRequest:
        return self._mr(self._call("GET", f"/merge_requests/{number}"))

    def ci_state(self, sha: str) -> tuple[CIStatus, str]:
        statuses = objects(self._call("GET", f"/repository/commits/{sha}/statuses"))
        pipelines = objects(self._call("GET", "/pipelines", params={"sha": sha, "order_by": "id", "sort": "desc"}))
        return ci_verdict(statuses, pipelines)

    def merge(self, number: int, sha: str, method: str, title: str) -> str:
        mr = self.pull_request(number)
        if mr.merged:
            return mr.merge_sha or ""
        if mr.state != "open":
            raise ForgeError(f"merge request !{number} is closed")
        if method not in ("merge", "squash"):
            raise ForgeError(f"GitLab merges with merge or squash, not {method}")
        message = "squash_commit_message" if method == "squash" else "merge_commit_message"
        data = self._mr(self._call("PUT", f"/merge_requests/{number}/merge",
                                   json={"sha": sha, "squash": method == "squash", message: title}))
        return data.merge_sha or ""
