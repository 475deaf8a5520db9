"""A local server speaking the GitHub REST endpoints the forge adapter uses, with real state:
pull requests whose head and merges live in the GitHttpServer's repositories, commit statuses
and check runs driven by a script the test sets."""

from __future__ import annotations

import http.server
import json
import re
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from .git_http import GitHttpServer, git
from .loopback import LoopbackServer, QuietHandler

MERGER = {"GIT_AUTHOR_NAME": "GitHub", "GIT_AUTHOR_EMAIL": "noreply@github.com",
          "GIT_COMMITTER_NAME": "GitHub", "GIT_COMMITTER_EMAIL": "noreply@github.com"}
DOCS = "https://docs.github.com/rest"


class ApiError(Exception):
    def __init__(self, status: int, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.errors = status, message, errors


class FakeGitHub(LoopbackServer):
    def __init__(self, git_server: GitHttpServer, token: str, default_ci: str = "success") -> None:
        self.git = git_server
        self.token = token
        self.default_ci = default_ci
        self.pulls: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[dict[str, str]] = []
        self._scripts: dict[str | None, list[str]] = {}
        self._status_requests: dict[str, int] = {}
        self._posted: dict[str, list[dict[str, Any]]] = {}
        self._refusal: str | None = None
        self._outage: list[int] = []  # status codes the next API calls answer with, one each
        self._apps: dict[str, tuple[str, bytes]] = {}  # app id -> (installation id, public key PEM)
        self.minted = 0  # installation tokens handed out
        self._lock = threading.RLock()

    def handler_class(self) -> type[http.server.BaseHTTPRequestHandler]:
        return _handler(self)

    def authorized(self, headers: Any) -> bool:
        return headers.get("Authorization", "") in (f"Bearer {self.token}", f"token {self.token}")

    @property
    def api_url(self) -> str:
        return self.base_url

    def install_app(self, app_id: str, installation_id: str, public_key: bytes) -> None:
        """A GitHub App installed on the repositories: its JWT (RS256, signed by the key whose public half this
        is) buys installation tokens, which are this server's (and the git server's) token."""
        with self._lock:
            self._apps[app_id] = (installation_id, public_key)

    def installation_token(self, path: str, headers: Any) -> tuple[int, Any]:
        """POST /app/installations/{id}/access_tokens, as GitHub checks it: a JWT of an app installed there,
        RS256, issued by the app, at most ten minutes long."""
        import jwt

        match = re.fullmatch(r"/app/installations/(\d+)/access_tokens", path)
        scheme, _, presented = headers.get("Authorization", "").partition(" ")
        if match is None or scheme != "Bearer" or not presented:
            raise ApiError(401, "A JSON web token could not be decoded")
        try:
            issuer = str(jwt.decode(presented, options={"verify_signature": False})["iss"])
            installation, key = self._apps[issuer]
            claims = jwt.decode(presented, key, algorithms=["RS256"], issuer=issuer,
                                options={"require": ["iat", "exp", "iss"]})
        except (jwt.PyJWTError, KeyError):
            raise ApiError(401, "A JSON web token could not be decoded") from None
        if claims["exp"] - claims["iat"] > 600 or installation != match.group(1):
            raise ApiError(401, "'Expiration time' claim ('exp') is too far in the future")
        with self._lock:
            self.minted += 1
        expires = datetime.fromtimestamp(claims["exp"] - 540 + 3600, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return 201, {"token": self.token, "expires_at": expires, "permissions": {"contents": "write"}}

    # --- test controls ----------------------------------------------------------

    def set_ci(self, sha: str | None, script: list[str]) -> None:
        """States served in order for a commit's status requests, the last repeating (None: every commit)."""
        with self._lock:
            self._scripts[sha] = list(script)
            if sha is None:
                self._status_requests.clear()

    def refuse_merges(self, reason: str | None) -> None:
        self._refusal = reason

    def outage(self, *codes: int) -> None:
        """Answer the next API calls with these status codes (e.g. 503, 503), then as usual again."""
        with self._lock:
            self._outage = list(codes)

    def status_requests(self, sha: str) -> int:
        with self._lock:
            return self._status_requests.get(sha, 0)

    # --- the API ------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        if self._outage:
            raise ApiError(self._outage.pop(0), "Service Unavailable")
        routes: list[tuple[str, str, Any]] = [
            ("POST", r"/repos/([^/]+/[^/]+)/pulls", self._create_pull),
            ("GET", r"/repos/([^/]+/[^/]+)/pulls", self._list_pulls),
            ("GET", r"/repos/([^/]+/[^/]+)/pulls/(\d+)", self._get_pull),
            ("PUT", r"/repos/([^/]+/[^/]+)/pulls/(\d+)/merge", self._merge),
            ("GET", r"/repos/([^/]+/[^/]+)/commits/([^/]+)/status", self._combined_status),
            ("GET", r"/repos/([^/]+/[^/]+)/commits/([^/]+)/check-runs", self._check_runs),
            ("POST", r"/repos/([^/]+/[^/]+)/statuses/([0-9a-f]{40})", self._post_status),
        ]
        for verb, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if verb == method and match:
                repo = match.group(1)
                if not self.git.bare(repo).exists():
                    raise ApiError(404, "Not Found")
                with self._lock:
                    return handler(repo, *match.groups()[1:], query=query, body=body)
        raise ApiError(404, "Not Found")

    def _head_sha(self, repo: str, branch: str) -> str | None:
        return self.git.branches(repo).get(branch)

    def _pull_json(self, repo: str, pr: dict[str, Any]) -> dict[str, Any]:
        if pr["state"] == "open":
            pr["head"]["sha"] = self._head_sha(repo, pr["head"]["ref"]) or pr["head"]["sha"]
        return pr

    def _create_pull(self, repo: str, *, body: Any, **_: Any) -> tuple[int, Any]:
        missing = [f for f in ("title", "head", "base") if not isinstance((body or {}).get(f), str)]
        if missing:
            raise ApiError(422, "Validation Failed",
                           [{"resource": "PullRequest", "field": f, "code": "missing_field"} for f in missing])
        head, base = body["head"].split(":")[-1], body["base"]
        owner = repo.split("/", maxsplit=1)[0]
        if any(p["head"]["ref"] == head and p["state"] == "open" for p in self.pulls.get(repo, [])):
            raise ApiError(422, "Validation Failed", [{"resource": "PullRequest", "code": "custom",
                                                      "message": f"A pull request already exists for {owner}:{head}."}])
        head_sha, base_sha = self._head_sha(repo, head), self._head_sha(repo, base)
        if head_sha is None or base_sha is None:
            raise ApiError(422, "Validation Failed", [{"resource": "PullRequest", "field": "head" if head_sha is None
                                                       else "base", "code": "invalid"}])
        pulls = self.pulls.setdefault(repo, [])
        number = sum(len(v) for v in self.pulls.values()) + 1
        pr = {"number": number, "state": "open", "title": body["title"], "body": body.get("body"),
              "url": f"{self.api_url}/repos/{repo}/pulls/{number}",
              "html_url": f"{self.api_url}/{repo}/pull/{number}",
              "merged": False, "merged_at": None, "merge_commit_sha": None,
              "head": {"ref": head, "sha": head_sha, "label": f"{owner}:{head}"},
              "base": {"ref": base, "sha": base_sha}}
        pulls.append(pr)
        return 201, pr

    def _list_pulls(self, repo: str, *, query: dict[str, list[str]], **_: Any) -> tuple[int, Any]:
        state = (query.get("state") or ["open"])[0]
        head = (query.get("head") or [""])[0].split(":")[-1]
        found = [self._pull_json(repo, p) for p in self.pulls.get(repo, [])
                 if (state == "all" or p["state"] == state) and (not head or p["head"]["ref"] == head)]
        return 200, found

    def _find(self, repo: str, number: str) -> dict[str, Any]:
        for pr in self.pulls.get(repo, []):
            if pr["number"] == int(number):
                return pr
        raise ApiError(404, "Not Found")

    def _get_pull(self, repo: str, number: str, **_: Any) -> tuple[int, Any]:
        return 200, self._pull_json(repo, self._find(repo, number))

    def _merge(self, repo: str, number: str, *, body: Any, **_: Any) -> tuple[int, Any]:
        pr = self._pull_json(repo, self._find(repo, number))
        body = body or {}
        if pr["state"] != "open":
            raise ApiError(405, "Pull Request is not mergeable")
        if self._refusal:
            raise ApiError(405, self._refusal)
        if body.get("sha") and body["sha"] != pr["head"]["sha"]:
            raise ApiError(409, "Head branch was modified. Review and try the merge again.")
        method = body.get("merge_method", "merge")
        if method not in ("merge", "squash", "rebase"):
            raise ApiError(422, "Validation Failed", [{"field": "merge_method", "code": "invalid"}])
        sha = self._merge_in_git(repo, pr, method, body.get("commit_title"))
        pr.update(state="closed", merged=True, merge_commit_sha=sha,
                  merged_at=datetime.now(UTC).isoformat())
        return 200, {"sha": sha, "merged": True, "message": "Pull Request successfully merged"}

    def _merge_in_git(self, repo: str, pr: dict[str, Any], method: str, title: str | None) -> str:
        bare = self.git.bare(repo)
        base, head = pr["base"]["ref"], pr["head"]["sha"]
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            git("clone", "-q", "--branch", base, str(bare), str(work))
            git("fetch", "-q", str(bare), head, cwd=work)
            if method == "merge":
                message = title or f"Merge pull request #{pr['number']} from {pr['head']['label']}"
                git("merge", "-q", "--no-ff", "-m", message, head, cwd=work, env=MERGER)
            else:
                git("merge", "-q", "--squash", head, cwd=work, env=MERGER)
                git("commit", "-q", "-m", title or f"{pr['title']} (#{pr['number']})", cwd=work, env=MERGER)
            git("push", "-q", str(bare), f"HEAD:refs/heads/{base}", cwd=work)
            return git("rev-parse", "HEAD", cwd=work).strip()

    def _ci_state(self, sha: str) -> str:
        """Advance the commit's script by one status request."""
        script = self._scripts.get(sha) or self._scripts.get(None) or [self.default_ci]
        seen = self._status_requests.get(sha, 0)
        self._status_requests[sha] = seen + 1
        return script[min(seen, len(script) - 1)]

    def _combined_status(self, repo: str, sha: str, **_: Any) -> tuple[int, Any]:
        state = self._ci_state(sha)
        statuses = [{"state": state, "context": "ci/build", "description": f"build {state}",
                     "target_url": f"{self.api_url}/ci/{sha}"}, *self._posted.get(sha, [])]
        worst = "failure" if any(s["state"] in ("failure", "error") for s in statuses) else \
            "pending" if any(s["state"] == "pending" for s in statuses) else "success"
        return 200, {"state": worst, "sha": sha, "total_count": len(statuses), "statuses": statuses}

    def _check_runs(self, repo: str, sha: str, **_: Any) -> tuple[int, Any]:
        script = self._scripts.get(sha) or self._scripts.get(None) or [self.default_ci]
        seen = max(self._status_requests.get(sha, 1) - 1, 0)
        state = script[min(seen, len(script) - 1)]
        run = {"name": "tests", "head_sha": sha, "status": "completed" if state != "pending" else "in_progress",
               "conclusion": None if state == "pending" else state}
        return 200, {"total_count": 1, "check_runs": [run]}

    def _post_status(self, repo: str, sha: str, *, body: Any, **_: Any) -> tuple[int, Any]:
        state = (body or {}).get("state")
        if state not in ("error", "failure", "pending", "success"):
            raise ApiError(422, "Validation Failed", [{"field": "state", "code": "invalid"}])
        status = {"state": state, "context": body.get("context", "default"),
                  "description": body.get("description"), "target_url": body.get("target_url")}
        self._posted.setdefault(sha, []).append(status)
        return 201, status


def _handler(forge: FakeGitHub) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        def _serve(self) -> None:
            url = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            with forge._lock:
                forge.requests.append({"method": self.command, "path": url.path, "query": url.query})
            if self.command == "POST" and url.path.startswith("/app/installations/"):
                try:
                    return self._send(*forge.installation_token(url.path, self.headers))
                except ApiError as err:
                    return self._send(err.status, {"message": err.message, "documentation_url": DOCS})
            if not forge.authorized(self.headers):
                return self._send(401, {"message": "Bad credentials", "documentation_url": DOCS})
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                return self._send(400, {"message": "Problems parsing JSON", "documentation_url": DOCS})
            try:
                status, payload = forge.handle(self.command, url.path, parse_qs(url.query), body)
            except ApiError as err:
                payload = {"message": err.message, "documentation_url": DOCS}
                if err.errors:
                    payload["errors"] = err.errors
                return self._send(err.status, payload)
            return self._send(status, payload)

        def _send(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
