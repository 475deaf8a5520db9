"""The operator as a real subprocess (`python -m selfbootstrap`), as the end-to-end tests and the benchmarks run it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from tools import localcluster

from .waiting import poll, wait_for

ROOT = Path(__file__).resolve().parents[2]
# The tests' settings: a silently stalled watch is re-established sooner, a peering lease lapses sooner.
TEST_SETTINGS: Mapping[str, str] = {"SELFBOOTSTRAP_WATCH_SERVER_TIMEOUT": "30", "SELFBOOTSTRAP_PEERING_LIFETIME": "10"}
# How long a new namespace may take to be watched: a namespace watch that stalls silently is
# re-established after the server's and then the client's timeout (30 s + 60 s in the tests), and a
# machine busy deleting other tests' namespaces adds to that.
WATCH_ALLOWANCE = 150


def proc_cpu_seconds(pid: int) -> float:
    """The process's CPU time so far, user and system (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def proc_mib(pid: int, key: str) -> float:
    """A memory figure of the process in MiB, e.g. VmRSS (resident now) or VmHWM (its peak); nan if absent."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def without_proxies(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment without its proxy variables (the operator then talks to loopback directly)."""
    return {k: v for k, v in environ.items() if "proxy" not in k.lower()}


class OperatorProcess:
    """`python -m selfbootstrap ARGS` against a cluster; killable and restartable, usable as a context manager.

    Each start writes the process's output to <log_dir>/<name>-<start>.log (or to `log_file`), listens for
    liveness (and, with `metrics`, for Prometheus) on ports that are free when it starts, and returns once
    /healthz answers (or stops it and raises, with the end of its log). Its environment is `environ` (this
    process's by default) with KUBECONFIG, PYTHONUNBUFFERED=1, `settings` (the tests' shorter timeouts by
    default) and `env` on top.

    The tests run it with the defaults; the benchmarks as it is shipped (settings={}, verbose=False,
    metrics=False, without the proxy variables).
    """

    def __init__(self, kubeconfig: str | Path, log_dir: Path, args: Sequence[str], name: str = "operator",
                 env: Mapping[str, str] | None = None, *, environ: Mapping[str, str] | None = None,
                 settings: Mapping[str, str] = TEST_SETTINGS, verbose: bool = True, metrics: bool = True,
                 alive_timeout: float = 30.0, log_file: Path | None = None) -> None:
        self.kubeconfig = str(kubeconfig)
        self.log_dir = log_dir
        self.args = tuple(args)
        self.name = name
        self.env = dict(env or {})
        self.environ = environ
        self.settings = dict(settings)
        self.verbose = verbose
        self.with_metrics = metrics
        self.alive_timeout = alive_timeout
        self.log_file = log_file
        self.port = 0
        self.metrics_port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._out: IO[bytes] | None = None

    def __enter__(self) -> OperatorProcess:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def metrics(self) -> str:
        import httpx
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text

    @property
    def log_path(self) -> Path:
        return self.log_file or self.log_dir / f"{self.name}-{self.starts}.log"

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "operator already running"
        self._close_log()
        self.starts += 1
        self.port = localcluster.free_port()
        argv = [sys.executable, "-m", "selfbootstrap", *self.args]
        if self.verbose:
            argv.append("--verbose")
        argv.append(f"--liveness=http://127.0.0.1:{self.port}/healthz")
        if self.with_metrics:
            self.metrics_port = localcluster.free_port()
            argv.append(f"--metrics-bind-address=127.0.0.1:{self.metrics_port}")
        env = {**(os.environ if self.environ is None else self.environ), "KUBECONFIG": self.kubeconfig,
               "PYTHONUNBUFFERED": "1", **self.settings, **self.env}
        self._out = open(self.log_path, "wb")  # noqa: SIM115  (the operator's output for its life)
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self._out, stderr=subprocess.STDOUT)
        try:
            self._wait_alive(self.alive_timeout)
        except BaseException:
            self.stop()  # not alive in time: not left running either
            raise

    def _wait_alive(self, timeout: float) -> None:
        import httpx
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} (log: {self.log_path}):\n"
                                   f"{self.tail()}")
            try:  # loopback, directly: never through a proxy of the environment
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not alive within {timeout:g}s (log: {self.log_path}):\n{self.tail()}")

    def watching(self, namespace: str) -> bool:
        """Whether this run of the operator watches the namespace's runs yet (its log says so)."""
        needle = f"Starting the watch-stream for selfbootstrapruns.v1alpha1.selfbootstrap.dev in '{namespace}'"
        try:
            return needle in self.log_path.read_text(errors="replace")
        except OSError:
            return False

    def wait_watching(self, *namespaces: str) -> None:
        """Wait until it watches every namespace's runs, or fail with the end of its log."""
        wait_for(lambda: all(self.watching(ns) for ns in namespaces), WATCH_ALLOWANCE,
                 lambda: self.not_watching(", ".join(namespaces)))

    def not_watching(self, namespace: str) -> str:
        """What to say when it never watched the namespace: the end of its log, to see why."""
        try:
            tail = self.log_path.read_text(errors="replace")[-4000:]
        except OSError as err:
            tail = f"(no log: {err})"
        return f"{self.name} never watched {namespace}; its log ends:\n{tail}"

    def log(self) -> str:
        """Its output over every start."""
        if self.log_file:
            return self.log_file.read_text(errors="replace")
        return "".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob(f"{self.name}-*.log")))

    def logged(self, text: str, timeout: float = 15) -> bool:
        """Whether text reaches the log within timeout seconds: a line is written after the write it tells
        of, so a test that saw the write may read the log a moment before the line."""
        return poll(lambda: text in self.log(), timeout) is not None

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        return proc_cpu_seconds(self.proc.pid)

    def mib(self, key: str) -> float:
        """VmRSS, VmHWM, … of the running process, in MiB."""
        assert self.proc is not None
        return proc_mib(self.proc.pid, key)

    def kill(self) -> None:
        """SIGKILL: no cleanup, no finalizers released; exactly what a node failure does."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._close_log()

    def _close_log(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
