"""A real image registry for the registry release source's tests: the CNCF Distribution registry, built
from its Go module (tools/localcluster.py), on a free loopback port, with basic authentication
(htpasswd) as a private registry has it. Images are pushed through its API (tools/registry_push.py)."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import pytest
from kubernetes import client
from tools.registry_push import Pusher

from .cluster import free_port, localcluster, serving

USER = "puller"


@dataclass
class Registry:
    host: str  # 127.0.0.1:PORT, as image references name it
    password: str
    pusher: Pusher
    log: Path

    def pull_secret(self, namespace: str, name: str, password: str | None = None) -> None:
        """A kubernetes.io/dockerconfigjson Secret for this registry (with another password if given)."""
        auth = base64.b64encode(f"{USER}:{password or self.password}".encode()).decode()
        config = json.dumps({"auths": {self.host: {"auth": auth}}})
        client.CoreV1Api().create_namespaced_secret(namespace, {
            "metadata": {"name": name}, "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": base64.b64encode(config.encode()).decode()}})


@pytest.fixture(scope="session")
def registry(tmp_path_factory) -> Iterator[Registry]:
    binary = localcluster.build_registry()
    home = tmp_path_factory.mktemp("registry")
    password = secrets.token_urlsafe(16)
    (home / "htpasswd").write_text(f"{USER}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()}\n")
    port = free_port()
    (home / "config.yml").write_text(
        "version: 0.1\nlog: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {home / 'data'}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}, secret: {secrets.token_hex(16)}}}\n"
        f"auth: {{htpasswd: {{realm: selfbootstrap-tests, path: {home / 'htpasswd'}}}}}\n")
    log = home / "registry.log"
    base = f"http://127.0.0.1:{port}"
    # up once /v2/ answers 401: it serves, and asks for credentials
    with serving([str(binary), "serve", str(home / "config.yml")], log, "the registry", f"{base}/v2/", 401,
                 timeout=30):
        yield Registry(f"127.0.0.1:{port}", password, Pusher(base, (USER, password)), log)
