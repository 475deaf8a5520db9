"""The demo's image registry: the CNCF Distribution registry (built from its Go module, tools/localcluster.py) on a
free loopback port, holding release v5 of the sample app with its OCI metadata, as a CI pipeline would push it.

    python tools/demo_registry.py STATE_DIR

writes STATE_DIR/registry-address (host:port) once the image is pushed, and serves until it is stopped.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools import localcluster
from tools.registry_push import Pusher

RELEASE = {"org.opencontainers.image.version": "5.0.0",
           "org.opencontainers.image.revision": "5e1fb005",
           "org.opencontainers.image.source": "https://git.example.com/acme/web",
           "org.opencontainers.image.created": "2026-12-01T09:00:00Z"}


def main(state: Path) -> None:
    binary = localcluster.build_registry()
    home = state / "registry"
    shutil.rmtree(home, ignore_errors=True)  # a fresh store: no tag an earlier demo moved
    home.mkdir(parents=True)
    port = localcluster.free_port()
    (home / "config.yml").write_text(
        "version: 0.1\nlog: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {home / 'data'}}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}, secret: {secrets.token_hex(16)}}}\n")
    base = f"http://127.0.0.1:{port}"
    with localcluster.serving([str(binary), "serve", str(home / "config.yml")], home / "registry.log", "the registry",
                              f"{base}/v2/", 200, timeout=30) as proc:
        signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
        Pusher(base).image("demo/web", "v5", annotations=RELEASE)
        (state / "registry-address").write_text(f"127.0.0.1:{port}")
        proc.wait()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
