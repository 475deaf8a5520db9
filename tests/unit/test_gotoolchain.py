"""The Go toolchain fallback: which `go` builds the control plane, and a real download from a local proxy."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import shutil
import stat
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tools import gotoolchain


@pytest.mark.parametrize(("text", "expected"), [
    ("go1.24.0", (1, 24)),
    ("go version go1.19.8 linux/amd64", (1, 19)),
    ("go1.22rc1", (1, 22)),
    ("go1.26.8\n", (1, 26)),
    ("devel +abc", None),
    ("", None),
])
def test_parse_version(text: str, expected: tuple[int, int] | None) -> None:
    assert gotoolchain.parse_version(text) == expected


@pytest.mark.parametrize(("goproxy", "expected"), [
    ("", "https://proxy.golang.org"),
    ("off", "https://proxy.golang.org"),
    ("direct", "https://proxy.golang.org"),
    ("https://goproxy.example/,direct", "https://goproxy.example"),
    ("file:///srv/mods|http://mirror.local", "http://mirror.local"),
])
def test_proxy(monkeypatch: pytest.MonkeyPatch, goproxy: str, expected: str) -> None:
    monkeypatch.setenv("GOPROXY", goproxy)
    assert gotoolchain.proxy() == expected


def test_go_on_path_new_enough_is_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(shutil, "which", lambda _: "/usr/local/go/bin/go")
    monkeypatch.setattr(gotoolchain, "installed_version", lambda _: (1, 26))
    assert gotoolchain.go_command(tmp_path) == "/usr/local/go/bin/go"
    assert not any(tmp_path.iterdir())


def _toolchain_zip(arch: str) -> bytes:
    prefix = f"golang.org/toolchain@v0.0.1-go{gotoolchain.VERSION}.linux-{arch}/"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, mode, body in [("bin/go", 0o755, b"#!/bin/sh\necho go\n"), ("VERSION", 0o644, b"go1.24.11"),
                                 ("pkg/tool/linux/compile", 0o755, b"")]:
            info = zipfile.ZipInfo(prefix + name)
            info.external_attr = (stat.S_IFREG | mode) << 16
            z.writestr(info, body)
        z.writestr("golang.org/toolchain@v0.0.1-go1.24.11.linux-x/../../escape", b"no")
        z.writestr(prefix + "../outside", b"no")
    return buf.getvalue()


@pytest.fixture
def local_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, bytes]]:
    arch = gotoolchain.ARCH.get(os.uname().machine.lower(), "amd64")
    payload = _toolchain_zip(arch)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("GOPROXY", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setattr(shutil, "which", lambda _: "/usr/bin/go")
    monkeypatch.setattr(gotoolchain, "installed_version", lambda _: (1, 19))
    try:
        yield arch, payload
    finally:
        server.shutdown()


def test_old_go_fetches_the_pinned_toolchain(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                             local_proxy: tuple[str, bytes]) -> None:
    arch, payload = local_proxy
    monkeypatch.setitem(gotoolchain.SHA256, arch, hashlib.sha256(payload).hexdigest())
    go = Path(gotoolchain.go_command(tmp_path))
    assert go == tmp_path / f"go-{gotoolchain.VERSION}" / "bin" / "go"
    assert os.access(go, os.X_OK)
    assert not os.access(go.parent.parent / "VERSION", os.X_OK)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["VERSION", "compile", "go"]
    assert gotoolchain.go_command(tmp_path) == str(go)  # cached: no second download


def test_a_toolchain_not_matching_its_pin_is_refused(tmp_path: Path, local_proxy: tuple[str, bytes]) -> None:
    with pytest.raises(SystemExit, match="is not the pinned"):
        gotoolchain.go_command(tmp_path)
    assert not (tmp_path / f"go-{gotoolchain.VERSION}").exists()
    assert [p.name for p in tmp_path.iterdir()] == []
