"""A real Gitea for the git workflow's tests: built from its Go module (tools/localcluster.py), SQLite, on a free
loopback port, with an admin user and an access token made by its own CLI. Repositories, files, branches,
commit statuses (the tests play CI) and pull requests go through its REST API."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from .cluster import free_port, localcluster, serving

USER, EMAIL = "acme", "acme@example.com"


@dataclass
class Gitea:
    base_url: str  # http://127.0.0.1:PORT, where git and the web live
    token: str
    log: Path

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


def _config(home: Path, port: int, share: Path) -> Path:
    config = home / "app.ini"
    config.write_text(f"""\
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
""")
    return config


def _cli(binary: Path, config: Path, home: Path, *args: str) -> str:
    done = subprocess.run([str(binary), "--config", str(config), "--work-path", str(home), *args],
                          capture_output=True, text=True, check=False, timeout=120)
    if done.returncode:
        raise RuntimeError(f"gitea {args[0:3]} failed: {done.stdout[-1000:]} {done.stderr[-1000:]}")
    return done.stdout


@pytest.fixture(scope="session")
def gitea(tmp_path_factory) -> Iterator[Gitea]:
    binary = localcluster.build_gitea()
    home = tmp_path_factory.mktemp("gitea")
    port = free_port()
    config = _config(home, port, localcluster.gitea_home() / "share")
    base = f"http://127.0.0.1:{port}"
    argv = [str(binary), "web", "--config", str(config), "--work-path", str(home)]
    with serving(argv, home / "gitea.log", "Gitea", f"{base}/api/v1/version", 200, timeout=120):
        _cli(binary, config, home, "admin", "user", "create", "--username", USER, "--email", EMAIL,
             "--password", secrets.token_urlsafe(16), "--admin", "--must-change-password=false")
        token = _cli(binary, config, home, "admin", "user", "generate-access-token", "--username", USER,
                     "--token-name", "selfbootstrap-tests", "--scopes", "all", "--raw").strip().splitlines()[-1]
        yield Gitea(base, token, home / "gitea.log")
