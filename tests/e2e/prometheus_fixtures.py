"""A real Prometheus for the metric analysis tests, scraping a small exporter whose error ratio per
release the test sets.

Prometheus is built from its Go module on first use (tools/localcluster.py, cached by version) and
started on a free loopback port with a one-second scrape interval; the exporter is prometheus-client's
HTTP server on another free port, its registry the test's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from wsgiref.simple_server import WSGIServer

import httpx
import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from .cluster import free_port, localcluster, serving, wait_for

SCRAPE_SECONDS = 1


@dataclass
class Exporter:
    """The app's metrics as the test sets them: app_error_ratio{namespace=..., release=...}."""

    port: int
    ratio: Gauge
    server: WSGIServer

    def set_error_ratio(self, namespace: str, release: str, value: float) -> None:
        self.ratio.labels(namespace=namespace, release=release).set(value)


@dataclass
class Prometheus:
    address: str
    exporter: Exporter
    log: Path

    def query(self, promql: str) -> dict:
        answer = httpx.get(f"{self.address}/api/v1/query", params={"query": promql}, timeout=10)
        return answer.json()

    def error_ratio(self, namespace: str, release: str, value: float, timeout: float = 30) -> None:
        """Set the app's error ratio, and wait until Prometheus has scraped it."""
        self.exporter.set_error_ratio(namespace, release, value)
        promql = f'app_error_ratio{{namespace="{namespace}",release="{release}"}}'

        def scraped() -> bool:
            result = self.query(promql).get("data", {}).get("result") or []
            return bool(result) and float(result[0]["value"][1]) == value

        wait_for(scraped, timeout, lambda: f"Prometheus never scraped {promql} = {value}; its log ends:\n"
                                           f"{self.log.read_text()[-2000:]}")


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory) -> Iterator[Prometheus]:
    binary = localcluster.build_prometheus()
    registry = CollectorRegistry()
    ratio = Gauge("app_error_ratio", "The share of requests that failed, per release.", ["namespace", "release"],
                  registry=registry)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    home = tmp_path_factory.mktemp("prometheus")
    config = home / "prometheus.yml"
    config.write_text(f"global:\n  scrape_interval: {SCRAPE_SECONDS}s\n  evaluation_interval: {SCRAPE_SECONDS}s\n"
                      f"scrape_configs:\n  - job_name: app\n    static_configs:\n"
                      f"      - targets: ['127.0.0.1:{port}']\n")
    web = free_port()
    log = home / "prometheus.log"
    address = f"http://127.0.0.1:{web}"
    argv = [str(binary), f"--config.file={config}", f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{web}", "--log.level=warn"]
    try:
        with serving(argv, log, "Prometheus", f"{address}/-/ready", 200, timeout=60):
            yield Prometheus(address, Exporter(port, ratio, server), log)
    finally:
        server.shutdown()
        thread.join(timeout=5)
