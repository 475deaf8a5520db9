"""Gitea's REST API (also Forgejo's): pull requests, commit statuses (Gitea Actions reports through them), merges
guarded by the head commit (`head_commit_id`)."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

from ...core.jsontypes import JsonObject, JsonValue, obj, objects, text
from ...models import CIStatus
from ..egress import Target
from ..forge import ForgeClient, ForgeError, PullRequest, ci_verdict, sha_of, web_url
from . import github

if TYPE_CHECKING:
    import httpx

MERGE_STYLES = {"merge": "merge", "squash": "squash", "rebase": "rebase"}


def repository_from_url(url: str) -> str:
    """owner/name from a clone URL such as https://gitea.example.com/acme/web.git (as GitHub names them)."""
    return github.repository_from_url(url)


def token_prefix(api_url: str, repository: str) -> str:
    return f"{api_url}/repos/{repository}/"


def client(api_url: str, repository: str, token: str | None, target: Target) -> Gitea:
    return Gitea(api_url, repository, token, target)


class Gitea(ForgeClient):
    def __init__(self, api_url: str, repository: str, token: str | None, target: Target, timeout: float = 20.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"token {token}"
        super().__init__(f"{api_url.rstrip('/')}/repos/{repository}", headers, target, timeout, transport)

    @staticmethod
    def _pr(value: JsonValue) -> PullRequest:
        data = obj(value)
        number = data.get("number")
        if not isinstance(number, int) or isinstance(number, bool):
            raise ForgeError("the forge answered with a pull request without a number")
        return PullRequest(number=number, url=web_url(data.get("html_url")) or web_url(data.get("url")),
                           state=text(data.get("state")) or "open", merged=data.get("merged") is True,
                           merge_sha=sha_of(data.get("merge_commit_sha")),
                           head_sha=sha_of(obj(data.get("head")).get("sha")))

    def find_pull_request(self, base: str, head: str) -> PullRequest | None:
        try:
            return self._pr(self._call("GET", f"/pulls/{quote(base, safe='')}/{quote(head, safe='/')}"))
        except ForgeError as err:
            if err.status == 404:
                return None
            raise

    def open_pull_request(self, head: str, base: str, title: str, body: str) -> PullRequest:
        existing = self.find_pull_request(base, head)
        if existing is not None:
            return existing
        return self._pr(self._call("POST", "/pulls", json={"title": title, "head": head, "base": base,
                                                            "body": body}))

    def pull_request(self, number: int) -> PullRequest:
        return self._pr(self._call("GET", f"/pulls/{number}"))

    def ci_state(self, sha: str) -> tuple[CIStatus, str]:
        """pending | success | failure for the exact commit, from its commit statuses."""
        statuses = objects(obj(self._call("GET", f"/commits/{sha}/status")).get("statuses"))
        return ci_verdict([_as_github(s) for s in statuses], [])

    def merge(self, number: int, sha: str, method: str, title: str) -> str:
        pr = self.pull_request(number)
        if pr.merged:
            return pr.merge_sha or ""
        if pr.state != "open":
            raise ForgeError(f"pull request #{number} is closed")
        self._call("POST", f"/pulls/{number}/merge",
                   json={"Do": MERGE_STYLES.get(method, "merge"), "head_commit_id": sha, "MergeTitleField": title})
        return self.pull_request(number).merge_sha or ""


def _as_github(status: JsonObject) -> JsonObject:
    """A Gitea commit status in GitHub's words: its state is `status`, and `warning` does not fail."""
    state = text(status.get("status"))
    return {"state": "success" if state == "warning" else state, "context": status.get("context")}
