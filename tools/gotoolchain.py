"""The Go that builds the local control plane.

The `go` on PATH when it is new enough (Kubernetes 1.34 needs Go 1.24); otherwise the official
toolchain from the Go module proxy, the same zip `GOTOOLCHAIN=go1.24.11` would fetch, checked
against a pinned SHA-256 and cached by version. A fresh Debian offers Go 1.19 only.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

MINIMUM = (1, 24)
VERSION = "1.24.11"
SHA256 = {  # of golang.org/toolchain@v0.0.1-go1.24.11.linux-<arch>.zip, as proxy.golang.org serves it
    "amd64": "8a9685c09d449928863152512648530dafde05e7d41fcbb21baba3a852e84ef4",
    "arm64": "4d31d22f75fed99025f7b082319eabeb74106d11e343fc203b336ba2afdeb3a1",
}
ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def parse_version(text: str) -> tuple[int, int] | None:
    """(major, minor) from `go version` or `go env GOVERSION` output ("go1.24.0", "go1.22rc1")."""
    found = re.search(r"\bgo(\d+)\.(\d+)", text)
    return (int(found[1]), int(found[2])) if found else None


def installed_version(go: str) -> tuple[int, int] | None:
    try:
        done = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, timeout=60, check=False)
    except OSError:
        return None
    return parse_version(done.stdout) if done.returncode == 0 else None


def proxy() -> str:
    """The first http(s) proxy in GOPROXY, else the public one."""
    for entry in re.split(r"[,|]", os.environ.get("GOPROXY", "")):
        if entry.startswith(("https://", "http://")):
            return entry.rstrip("/")
    return "https://proxy.golang.org"


def go_command(cache: Path) -> str:
    """Path of a `go` binary of at least MINIMUM, downloading the pinned toolchain if needed."""
    on_path = shutil.which("go")
    if on_path and (installed_version(on_path) or (0, 0)) >= MINIMUM:
        return on_path
    root = cache / f"go-{VERSION}"
    go = root / "bin" / "go"
    if not go.exists():
        _download(root)
    return str(go)


def _download(root: Path) -> None:
    arch = ARCH.get(platform.machine().lower())
    if sys.platform != "linux" or arch is None:
        raise SystemExit(f"building the control plane needs Go {MINIMUM[0]}.{MINIMUM[1]} or newer on PATH "
                         "(https://go.dev/dl/)")
    name = f"v0.0.1-go{VERSION}.linux-{arch}"
    url = f"{proxy()}/golang.org/toolchain/@v/{name}.zip"
    print(f"local-cluster: no Go >= {MINIMUM[0]}.{MINIMUM[1]} on PATH; fetching go{VERSION} from {url}",
          file=sys.stderr, flush=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent) as tmp:
        archive = Path(tmp) / "go.zip"
        with urllib.request.urlopen(url, timeout=600) as response, archive.open("wb") as out:
            shutil.copyfileobj(response, out)
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        if digest != SHA256[arch]:
            raise SystemExit(f"{url}: SHA-256 {digest} is not the pinned {SHA256[arch]}")
        unpacked = Path(tmp) / "go"
        _extract(archive, f"golang.org/toolchain@{name}/", unpacked)
        unpacked.rename(root)  # whole or not at all: a cut-short download leaves no half toolchain


def _extract(archive: Path, prefix: str, dest: Path) -> None:
    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            relative = info.filename.removeprefix(prefix)
            if not info.filename.startswith(prefix) or not relative or ".." in Path(relative).parts:
                continue
            target = dest / relative
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out)
            target.chmod((info.external_attr >> 16) & 0o777 or 0o644)
