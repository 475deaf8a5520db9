"""A fake of GitLab's REST API (v4), named as one: no small real GitLab builds here. Real git behind it
(git_http.py): merge requests open on the repository's branches and merge in git, as FakeGitHub's pull
requests do (this fake keeps its state). Projects by their full path, subgroups included, URL-encoded;
the token in PRIVATE-TOKEN."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from .fake_github import ApiError, FakeGitHub

GITLAB_STATE = {"success": "success", "failure": "failed", "error": "failed", "pending": "running"}


class FakeGitLab(FakeGitHub):
    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/v4"

    def authorized(self, headers: Any) -> bool:
        return headers.get("PRIVATE-TOKEN", "") == self.token

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        if self._outage:
            raise ApiError(self._outage.pop(0), "Service Unavailable")
        found = re.fullmatch(r"/api/v4/projects/([^/]+)(/.*)", path)
        if not found:
            raise ApiError(404, "404 Not Found")
        repo, rest = unquote(found[1]), found[2]
        if not self.git.bare(repo).exists():
            raise ApiError(404, "404 Project Not Found")
        routes: list[tuple[str, str, Any]] = [
            ("POST", r"/merge_requests", self._create_mr),
            ("GET", r"/merge_requests", self._list_mrs),
            ("GET", r"/merge_requests/(\d+)", self._get_mr),
            ("PUT", r"/merge_requests/(\d+)/merge", self._merge_mr),
            ("GET", r"/repository/commits/([0-9a-f]{40})/statuses", self._statuses),
            ("GET", r"/pipelines", self._pipelines),
        ]
        for verb, pattern, handler in routes:
            match = re.fullmatch(pattern, rest)
            if verb == method and match:
                with self._lock:
                    return handler(repo, *match.groups(), query=query, body=body)
        raise ApiError(404, "404 Not Found")

    def _mr_json(self, repo: str, pr: dict[str, Any]) -> dict[str, Any]:
        pr = self._pull_json(repo, pr)
        state = "merged" if pr["merged"] else "opened" if pr["state"] == "open" else "closed"
        return {"iid": pr["number"], "state": state, "title": pr["title"], "web_url": pr["html_url"],
                "source_branch": pr["head"]["ref"], "target_branch": pr["base"]["ref"], "sha": pr["head"]["sha"],
                "merge_commit_sha": pr["merge_commit_sha"], "squash_commit_sha": None}

    def _create_mr(self, repo: str, *, body: Any, **_: Any) -> tuple[int, Any]:
        body = body or {}
        try:
            created = self._create_pull(repo, body={"title": body.get("title"), "head": body.get("source_branch"),
                                                    "base": body.get("target_branch"),
                                                    "body": body.get("description")})
        except ApiError as err:
            raise ApiError(409 if "already exists" in str(err.errors) else err.status, err.message) from None
        return 201, self._mr_json(repo, created[1])

    def _list_mrs(self, repo: str, *, query: dict[str, list[str]], **_: Any) -> tuple[int, Any]:
        state = (query.get("state") or ["all"])[0]
        branch = (query.get("source_branch") or [""])[0]
        found = [self._mr_json(repo, p) for p in reversed(self.pulls.get(repo, []))
                 if (not branch or p["head"]["ref"] == branch)]
        return 200, [m for m in found if state == "all" or m["state"] == state]

    def _get_mr(self, repo: str, iid: str, **_: Any) -> tuple[int, Any]:
        return 200, self._mr_json(repo, self._find(repo, iid))

    def _merge_mr(self, repo: str, iid: str, *, body: Any, **_: Any) -> tuple[int, Any]:
        body = body or {}
        pr = self._pull_json(repo, self._find(repo, iid))
        if pr["state"] != "open":
            raise ApiError(405, "405 Method Not Allowed")
        if body.get("sha") and body["sha"] != pr["head"]["sha"]:
            raise ApiError(409, "SHA does not match HEAD of source branch")
        try:
            self._merge(repo, iid, body={"sha": body.get("sha"), "merge_method": "squash" if body.get("squash")
                                         else "merge",
                                         "commit_title": body.get("squash_commit_message")
                                         or body.get("merge_commit_message")})
        except ApiError as err:
            raise ApiError(405 if err.status == 405 else err.status, err.message) from None
        return 200, self._mr_json(repo, pr)

    def _statuses(self, repo: str, sha: str, **_: Any) -> tuple[int, Any]:
        state = GITLAB_STATE[self._ci_state(sha)]
        posted = [{"name": s["context"], "status": GITLAB_STATE.get(s["state"], "running")}
                  for s in self._posted.get(sha, [])]
        return 200, [{"name": "build", "status": state, "sha": sha}, *posted]

    def _pipelines(self, repo: str, *, query: dict[str, list[str]], **_: Any) -> tuple[int, Any]:
        return 200, []
