"""Servers the tests start as processes (Prometheus, the image registry, Gitea)."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path


@contextlib.contextmanager
def serving(argv: Sequence[str], log: Path, what: str, ready_url: str, ready_status: int,
            timeout: float) -> Iterator[subprocess.Popen[bytes]]:
    """A server the tests start (Prometheus, the registry): its output to `log`, up once `ready_url` answers
    `ready_status`, stopped afterwards; a failure to start says why with the end of its log."""
    import httpx

    with log.open("w") as out:
        proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
            try:
                if httpx.get(ready_url, timeout=1).status_code == ready_status:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} not ready within {timeout:g}s:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
