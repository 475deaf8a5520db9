"""Gitea's REST API (also Forgejo's): pull requests, commit statuses (Gitea Actions reports through them), merges
guarded by the head commit (`head_commit_id`)."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

from ...core.jsontypes import JsonObject, obj, objects, text
from ...models import CIStatus
from ..egress import Target
from ..forge import ForgeClient, ForgeError, PullRequest, ci_verdict
from . import github

NOT_MERGEABLE_YET = 405  # Gitea refuses a merge so while the pull request is checked (or conflicts)
# Gitea answers 409 when the merge's push to the base branch raced another merge into it ("merge push out of
# date", merges in one repository at once), also when the head moved past head_commit_id, and when the merge
# itself conflicts. Only the status is read (never the body): the pull request, read again, tells them apart.
MERGE_REFUSED_FOR_NOW = 409
BRANCH_NOT_SEEN_YET = 404  # a pull request of a branch pushed a moment ago: the run's backoff tries again

if TYPE_CHECKING:
    import httpx

# A Gitea repository is named, and its API laid out, as GitHub's: owner/name under {apiUrl}/repos/.
repository_from_url = github.repository_from_url
token_prefix = github.token_prefix


def client(api_url: str, repository: str, token: str | None, target: Target) -> Gitea:
    return Gitea(api_url, repository, token, target)


class Gitea(ForgeClient):
    def __init__(self, api_url: str, repository: str, token: str | None, target: Target, timeout: float = 20.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"token {token}"
        super().__init__(f"{api_url.rstrip('/')}/repos/{repository}", headers, target, timeout, transport)

    def find_pull_request(self, base: str, head: str) -> PullRequest | None:
        try:
            return github.pull_request_of(self._call("GET", f"/pulls/{quote(base, safe='')}/{quote(head, safe='/')}"))
        except ForgeError as err:
            if err.status == 404:
                return None
            raise

    def open_pull_request(self, head: str, base: str, title: str, body: str) -> PullRequest:
        existing = self.find_pull_request(base, head)
        if existing is not None:
            return existing
        try:
            return github.pull_request_of(self._call("POST", "/pulls", json={"title": title, "head": head,
                                                                            "base": base, "body": body}))
        except ForgeError as err:
            if err.status == BRANCH_NOT_SEEN_YET:
                raise ForgeError(f"{err} (Gitea answers 404 until its push queue has seen a branch just pushed)",
                                 retryable=True, status=err.status) from None
            raise

    def pull_request(self, number: int) -> PullRequest:
        return github.pull_request_of(self._call("GET", f"/pulls/{number}"))

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
        # merge, squash and rebase are Gitea's names for them too
        try:
            self._call("POST", f"/pulls/{number}/merge",
                       json={"Do": method, "head_commit_id": sha, "MergeTitleField": title})
        except ForgeError as err:
            if err.status == NOT_MERGEABLE_YET:
                raise ForgeError(f"pull request #{number} is not mergeable yet (Gitea answers 405 while it checks a "
                                 f"new pull request, and while it conflicts)", retryable=True, status=err.status) \
                    from None
            if err.status == MERGE_REFUSED_FOR_NOW:
                return self._after_conflict(number, sha)
            raise
        return self.pull_request(number).merge_sha or ""

    def _after_conflict(self, number: int, sha: str) -> str:
        """A 409 on the merge: the pull request as it is now. Merged (by someone else) is done; a head past the
        tested commit is refused for good, as the guard means it; a head still at it is tried again with the run's
        backoff (the merge raced another one into the base branch, or conflicts until the base settles)."""
        pr = self.pull_request(number)
        if pr.merged:
            return pr.merge_sha or ""
        if pr.state != "open":
            raise ForgeError(f"pull request #{number} is closed")
        if pr.head_sha is not None and pr.head_sha != sha:
            raise ForgeError(f"pull request #{number} moved on to {pr.head_sha[:12]}, past the tested commit "
                             f"{sha[:12]}", status=MERGE_REFUSED_FOR_NOW)
        raise ForgeError(f"pull request #{number} was not merged yet (Gitea answers 409 when the merge's push to the "
                         f"base branch raced another merge, and while it conflicts)", retryable=True,
                         status=MERGE_REFUSED_FOR_NOW)


def _as_github(status: JsonObject) -> JsonObject:
    """A Gitea commit status in GitHub's words: its state is `status`, and `warning` does not fail."""
    state = text(status.get("status"))
    return {"state": "success" if state == "warning" else state, "context": status.get("context")}
