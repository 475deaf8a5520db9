"""A real git server for tests: bare repositories served by `git http-backend` over HTTP,
with token auth (HTTP Basic, the token as password) for fetch and push alike. It speaks the protocol the
client asks for in its Git-Protocol header (version 2 from git 2.26 on), as GitHub, Gitea and GitLab do, and
as git's documentation configures Apache for http-backend."""

from __future__ import annotations

import base64
import gzip
import http.server
import os
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from .loopback import LoopbackServer, QuietHandler

SEED = {"GIT_AUTHOR_NAME": "Seed", "GIT_AUTHOR_EMAIL": "seed@example.com",
        "GIT_COMMITTER_NAME": "Seed", "GIT_COMMITTER_EMAIL": "seed@example.com"}


def git(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, stdin: bytes | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, check=False,
                          env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1", **(env or {})})
    if done.returncode:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout.decode(errors="replace")


class GitHttpServer(LoopbackServer):
    def __init__(self, root: Path, token: str, username: str = "x-access-token") -> None:
        self.root = Path(root)
        self.token = token
        self.username = username
        self.requests: list[dict[str, Any]] = []
        self._pushes: dict[str, int] = {}
        self._lock = threading.Lock()

    def handler_class(self) -> type[http.server.BaseHTTPRequestHandler]:
        return _handler(self)

    # --- repositories -----------------------------------------------------------

    def bare(self, name: str) -> Path:
        return self.root / f"{name}.git"

    def create_repo(self, name: str, files: dict[str, str], branch: str = "main",
                    symlinks: dict[str, str] | None = None) -> str:
        bare = self.bare(name)
        bare.parent.mkdir(parents=True, exist_ok=True)
        git("init", "-q", "--bare", "-b", branch, str(bare))
        git("config", "http.receivepack", "true", cwd=bare)
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            git("init", "-q", "-b", branch, cwd=work)
            for path, content in files.items():
                (work / path).parent.mkdir(parents=True, exist_ok=True)
                (work / path).write_text(content)
            for link, target in (symlinks or {}).items():
                (work / link).symlink_to(target)
            git("add", "-A", cwd=work)
            git("commit", "-q", "-m", "Initial commit", cwd=work, env=SEED)
            git("push", "-q", str(bare), f"HEAD:refs/heads/{branch}", cwd=work)
        return f"{self.base_url}/{name}.git"

    def branches(self, name: str) -> dict[str, str]:
        out = git("for-each-ref", "--format=%(refname:strip=2) %(objectname)", "refs/heads", cwd=self.bare(name))
        return dict(line.split(" ", 1) for line in out.splitlines() if line)

    def log(self, name: str, ref: str, n: int = 20) -> list[dict[str, Any]]:
        out = git("log", f"-n{n}", "--format=%H%x00%s%x00%B%x00%P%x01", ref, cwd=self.bare(name))
        entries = []
        for chunk in out.split("\x01"):
            if chunk.strip():
                sha, subject, body, parents = chunk.strip("\n").split("\x00")
                entries.append({"sha": sha, "subject": subject, "body": body, "parents": parents.split()})
        return entries

    def read_file(self, name: str, ref: str, path: str) -> str:
        return git("show", f"{ref}:{path}", cwd=self.bare(name))

    def pushes(self, name: str) -> int:
        with self._lock:
            return self._pushes.get(name, 0)

    # --- request handling -------------------------------------------------------

    def authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            _, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return password == self.token

    def record(self, method: str, path: str, service: str | None, authenticated: bool, status: int) -> None:
        with self._lock:
            self.requests.append({"method": method, "path": path, "service": service,
                                  "authenticated": authenticated, "status": status})
            if method == "POST" and service == "git-receive-pack" and status == 200:
                repo = path.split(".git/", 1)[0].lstrip("/")
                self._pushes[repo] = self._pushes.get(repo, 0) + 1


def _handler(server: GitHttpServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        def _service(self, path: str, query: str) -> str | None:
            if path.endswith("/git-upload-pack") or "service=git-upload-pack" in query:
                return "git-upload-pack"
            if path.endswith("/git-receive-pack") or "service=git-receive-pack" in query:
                return "git-receive-pack"
            return None

        def _serve(self) -> None:
            path, _, query = self.path.partition("?")
            service = self._service(path, query)
            ok = server.authorized(self.headers.get("Authorization"))
            if not ok:
                self._drain()
                server.record(self.command, path, service, False, 401)
                body = b"authentication required\n"
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            status = self._backend(path, query)
            server.record(self.command, path, service, True, status)

        def _drain(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                data = b""
                while True:
                    size = int(self.rfile.readline().strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    data += self.rfile.read(size)
                    self.rfile.readline()
            else:
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Content-Encoding", "").lower() == "gzip":
                data = gzip.decompress(data)
            return data

        def _backend(self, path: str, query: str) -> int:
            body = self._body() if self.command == "POST" else b""
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "GIT_PROJECT_ROOT": str(server.root), "GIT_HTTP_EXPORT_ALL": "1",
                "REMOTE_USER": server.username, "REMOTE_ADDR": "127.0.0.1",
                "REQUEST_METHOD": self.command, "PATH_INFO": path, "QUERY_STRING": query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
                "GIT_CONFIG_NOSYSTEM": "1",
            }
            if self.headers.get("Git-Protocol"):
                env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
            done = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, check=False)
            head, _, payload = done.stdout.partition(b"\r\n\r\n")
            if not _:
                head, _, payload = done.stdout.partition(b"\n\n")
            status, headers = 200, []
            for line in head.decode(errors="replace").splitlines():
                key, _, value = line.partition(":")
                if key.lower() == "status":
                    status = int(value.strip().split()[0])
                elif key:
                    headers.append((key.strip(), value.strip()))
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return status

    return Handler
