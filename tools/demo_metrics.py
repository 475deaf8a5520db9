"""The demo's monitoring: a real Prometheus (built from its Go module, tools/localcluster.py) scraping an
exporter that reports each release's error ratio, as a service's own metrics would.

    python tools/demo_metrics.py STATE_DIR v2=0.01 v4=0.5

writes STATE_DIR/prometheus-address once Prometheus answers, and serves until it is stopped.
"""

from __future__ import annotations

import shutil
import signal
import sys
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, start_http_server

sys.path.insert(0, str(Path(__file__).resolve().parent))
import localcluster

free_port = localcluster.free_port

def main(state: Path, ratios: list[str]) -> None:
    binary = localcluster.build_prometheus()
    registry = CollectorRegistry()
    gauge = Gauge("app_error_ratio", "The share of the app's requests that failed.", ["release"], registry=registry)
    for pair in ratios:
        release, value = pair.split("=", 1)
        gauge.labels(release=release).set(float(value))
    exporter = free_port()
    start_http_server(exporter, addr="127.0.0.1", registry=registry)
    home = state / "prometheus"
    shutil.rmtree(home, ignore_errors=True)  # a fresh TSDB: no series of an earlier demo's exporter
    home.mkdir(parents=True)
    (home / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s}\nscrape_configs:\n  - job_name: web\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{exporter}']}}]\n")
    web = free_port()
    address = f"http://127.0.0.1:{web}"
    argv = [str(binary), f"--config.file={home / 'prometheus.yml'}", f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{web}"]
    with localcluster.serving(argv, home / "prometheus.log", "Prometheus", f"{address}/-/ready", 200,
                              timeout=60) as proc:
        signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
        time.sleep(2)  # a first scrape
        (state / "prometheus-address").write_text(address)
        proc.wait()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
