"""A real Gitea, built from its Go module (tools/localcluster.py), SQLite, on a free loopback port, with an admin
user and an access token made by its own CLI: the git workflow's end-to-end tests (tests/e2e/gitea_fixtures.py)
and benchmarks/bench_git.py start it with `running_gitea(home)`. Repositories, files, branches, commit statuses
and pull requests go through its REST API (`Gitea.api`).

With `access_log=True` Gitea also writes one line per HTTP request (git and API alike, with the client's user
agent) to `Gitea.access_log`, for counting a client's requests; with `loopback_webhooks=True` it delivers
webhooks to loopback addresses (a benchmark's CI bot)."""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tools import localcluster

USER, EMAIL = "acme", "acme@example.com"
# The access log's lines: remote, identity, time, "method URI proto", status, size, "user agent".
ACCESS_LOG_TEMPLATE = ('{{.Ctx.RemoteHost}} {{.Identity}} {{.Start.Format "2006-01-02T15:04:05.000000Z07:00"}} '
                       '"{{.Ctx.Req.Method}} {{.Ctx.Req.URL.Path}}" {{.ResponseWriter.Status}} '
                       '{{.ResponseWriter.Size}} "{{.Ctx.Req.UserAgent}}"')


@dataclass
class Gitea:
    base_url: str  # http://127.0.0.1:PORT, where git and the web live
    token: str
    log: Path
    pid: int = 0
    access_log: Path | None = None

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/v1"

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        answer = httpx.request(method, f"{self.api_url}{path}", headers={"Authorization": f"token {self.token}"},
                               timeout=30, **kwargs)
        answer.raise_for_status()
        return answer

    def create_repo(self, name: str, files: dict[str, str]) -> str:
        """A repository of the admin user with `files` on main; its clone URL."""
        self.api("POST", "/user/repos", json={"name": name, "auto_init": True, "default_branch": "main",
                                              "readme": "Default"})
        for path, content in files.items():
            self.api("POST", f"/repos/{USER}/{name}/contents/{path}",
                     json={"content": base64.b64encode(content.encode()).decode(), "branch": "main",
                           "message": f"add {path}"})
        return f"{self.base_url}/{USER}/{name}.git"

    def create_empty_repo(self, name: str) -> str:
        """A repository of the admin user without a commit (push its main branch); its clone URL."""
        self.api("POST", "/user/repos", json={"name": name, "auto_init": False, "default_branch": "main"})
        return f"{self.base_url}/{USER}/{name}.git"

    def head(self, repo: str, branch: str) -> str | None:
        answer = httpx.get(f"{self.api_url}/repos/{USER}/{repo}/branches/{branch}",
                           headers={"Authorization": f"token {self.token}"}, timeout=30)
        return None if answer.status_code == 404 else str(answer.raise_for_status().json()["commit"]["id"])

    def read_file(self, repo: str, ref: str, path: str) -> str:
        return self.api("GET", f"/repos/{USER}/{repo}/raw/{path}", params={"ref": ref}).text

    def set_status(self, repo: str, sha: str, state: str, context: str = "ci/tests") -> None:
        self.api("POST", f"/repos/{USER}/{repo}/statuses/{sha}", json={"state": state, "context": context})

    def pulls(self, repo: str) -> list[dict[str, Any]]:
        return list(self.api("GET", f"/repos/{USER}/{repo}/pulls", params={"state": "all"}).json())


def config(home: Path, port: int, share: Path, access_log: bool = False, loopback_webhooks: bool = False) -> Path:
    """Gitea's app.ini: loopback only, SQLite, no registration, no cron, no actions, warnings only."""
    path = home / "app.ini"
    access = f"""\
logger.access.MODE = access-file
ACCESS_LOG_TEMPLATE = {ACCESS_LOG_TEMPLATE}

[log.access-file]
MODE = file
LEVEL = Info
FILE_NAME = {home}/access.log
LOG_ROTATE = false
""" if access_log else ""
    webhooks = "\n[webhook]\nALLOWED_HOST_LIST = loopback\n" if loopback_webhooks else ""
    path.write_text(f"""\
APP_NAME = selfbootstrap tests
RUN_MODE = prod
WORK_PATH = {home}
; CI machines run the tests as root; Gitea refuses that unless told (it listens on loopback only here)
I_AM_BEING_UNSAFE_RUNNING_AS_ROOT = {"true" if os.geteuid() == 0 else "false"}

[server]
PROTOCOL = http
HTTP_ADDR = 127.0.0.1
HTTP_PORT = {port}
ROOT_URL = http://127.0.0.1:{port}/
DISABLE_SSH = true
START_SSH_SERVER = false
OFFLINE_MODE = true
LFS_START_SERVER = false
STATIC_ROOT_PATH = {share}
APP_DATA_PATH = {home}/data

[database]
DB_TYPE = sqlite3
PATH = {home}/data/gitea.db

[repository]
ROOT = {home}/repos
DEFAULT_BRANCH = main

[security]
INSTALL_LOCK = true
SECRET_KEY = {secrets.token_hex(32)}
INTERNAL_TOKEN = {secrets.token_hex(32)}

[oauth2]
ENABLED = false

[service]
DISABLE_REGISTRATION = true

[indexer]
REPO_INDEXER_ENABLED = false

[cron]
ENABLED = false

[actions]
ENABLED = false

[log]
MODE = console
LEVEL = Warn
{access}{webhooks}""")
    return path


def cli(binary: Path, config_path: Path, home: Path, *args: str) -> str:
    done = subprocess.run([str(binary), "--config", str(config_path), "--work-path", str(home), *args],
                          capture_output=True, text=True, check=False, timeout=120)
    if done.returncode:
        raise RuntimeError(f"gitea {args[0:3]} failed: {done.stdout[-1000:]} {done.stderr[-1000:]}")
    return done.stdout


@contextlib.contextmanager
def running_gitea(home: Path, access_log: bool = False, loopback_webhooks: bool = False) -> Iterator[Gitea]:
    """Gitea (built on first use) with its state in `home`, on a free loopback port, with the admin user `acme`
    and an access token of all scopes; stopped afterwards."""
    binary = localcluster.build_gitea()
    port = localcluster.free_port()
    config_path = config(home, port, localcluster.gitea_home() / "share", access_log, loopback_webhooks)
    base = f"http://127.0.0.1:{port}"
    argv = [str(binary), "web", "--config", str(config_path), "--work-path", str(home)]
    with localcluster.serving(argv, home / "gitea.log", "Gitea", f"{base}/api/v1/version", 200,
                              timeout=120) as proc:
        cli(binary, config_path, home, "admin", "user", "create", "--username", USER, "--email", EMAIL,
            "--password", secrets.token_urlsafe(16), "--admin", "--must-change-password=false")
        token = cli(binary, config_path, home, "admin", "user", "generate-access-token", "--username", USER,
                    "--token-name", "selfbootstrap-tests", "--scopes", "all", "--raw").strip().splitlines()[-1]
        yield Gitea(base, token, home / "gitea.log", proc.pid, home / "access.log" if access_log else None)
