"""The per-run info gauge and the metrics bind address."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from selfbootstrap import metrics
from selfbootstrap.config import Settings, metrics_endpoint


def info(namespace: str, name: str, phase: str) -> float | None:
    return REGISTRY.get_sample_value("selfbootstrap_run_info",
                                     {"namespace": namespace, "name": name, "target": "web", "phase": phase,
                                      "target_kind": "Deployment"})


def test_a_run_has_one_info_series_that_follows_its_phase_and_goes_when_it_ends():
    metrics.track("uid-1", metrics.RunInfo("shop", "web-v2", "web", "Deploying"))
    assert info("shop", "web-v2", "Deploying") == 1.0
    metrics.track("uid-1", metrics.RunInfo("shop", "web-v2", "web", "WatchingRestarts"))
    assert info("shop", "web-v2", "Deploying") is None and info("shop", "web-v2", "WatchingRestarts") == 1.0
    assert REGISTRY.get_sample_value("selfbootstrap_runs_active", {"phase": "WatchingRestarts"}) >= 1
    metrics.track("uid-1", metrics.RunInfo("shop", "web-v2", "web", "Succeeded"))
    assert info("shop", "web-v2", "WatchingRestarts") is None and info("shop", "web-v2", "Succeeded") is None


def active(phase: str) -> float | None:
    return REGISTRY.get_sample_value("selfbootstrap_runs_active", {"phase": phase})


def test_the_active_gauge_counts_runs_by_phase():
    base = {p: active(p) or 0.0 for p in ("Deploying", "VerifyingHealth")}
    assert active("RollingBack") is not None  # every non-terminal phase has a series from the start
    for n in range(3):
        metrics.track(f"count-{n}", metrics.RunInfo("shop", f"r{n}", "web", "Deploying"))
    metrics.track("count-0", metrics.RunInfo("shop", "r0", "web", "VerifyingHealth"))
    assert (active("Deploying"), active("VerifyingHealth")) == (base["Deploying"] + 2, base["VerifyingHealth"] + 1)
    metrics.track("count-1", metrics.RunInfo("shop", "r1", "web", "Failed"))
    metrics.forget("count-2")
    metrics.forget("count-0")
    assert (active("Deploying"), active("VerifyingHealth")) == (base["Deploying"], base["VerifyingHealth"])
    assert active("Failed") is None


def test_a_run_the_operator_lets_go_of_is_forgotten():
    metrics.track("uid-2", metrics.RunInfo("shop", "web-v3", "web", "VerifyingHealth"))
    metrics.forget("uid-2")
    metrics.forget("uid-2")  # twice is harmless
    assert info("shop", "web-v3", "VerifyingHealth") is None


def test_build_info_names_the_version():
    metrics.build_info()
    samples = [s for m in REGISTRY.collect() if m.name == "selfbootstrap_build" for s in m.samples]
    assert samples and samples[0].labels["version"] and samples[0].labels["kopf"]


@pytest.mark.parametrize("address, endpoint", [
    ("0", None), ("", None), (":9090", ("0.0.0.0", 9090)), ("127.0.0.1:8081", ("127.0.0.1", 8081)),
    ("[::1]:9090", ("::1", 9090)),
])
def test_metrics_bind_address(address, endpoint):
    assert metrics_endpoint(address) == endpoint


@pytest.mark.parametrize("address", ["9090", "host:", ":99999", "host:port"])
def test_a_malformed_metrics_bind_address_stops_the_operator_saying_so(address):
    with pytest.raises(SystemExit, match="host:port, :port or 0"):
        metrics_endpoint(address)


def test_the_address_comes_from_the_environment():
    assert Settings.from_env({"SELFBOOTSTRAP_METRICS_BIND_ADDRESS": ":9100"}).metrics_endpoint == ("0.0.0.0", 9100)
    assert Settings.from_env({}).metrics_endpoint is None


@pytest.mark.parametrize("env, chunk_size", [({}, 50), ({"SELFBOOTSTRAP_LIST_CHUNK_SIZE": "500"}, 500),
                                             ({"SELFBOOTSTRAP_LIST_CHUNK_SIZE": "0"}, None)])
def test_kopf_is_configured_from_the_settings(env, chunk_size):
    from concurrent.futures import ThreadPoolExecutor
    from unittest.mock import create_autospec

    import kopf

    from selfbootstrap import handlers
    from selfbootstrap.adapters.executor import Executor
    from selfbootstrap.adapters.kube import Kube
    from selfbootstrap.scheduling import FairExecutor
    from selfbootstrap.services import Services, memo_with

    config = Settings.from_env({"SELFBOOTSTRAP_WATCH_SERVER_TIMEOUT": "45", **env})
    services = Services(config, create_autospec(Kube, instance=True), create_autospec(Executor, instance=True),
                        ThreadPoolExecutor(1), FairExecutor(1))
    settings = kopf.OperatorSettings()
    handlers.configure(settings, memo_with(services))
    assert settings.watching.chunk_size == chunk_size
    assert (settings.watching.server_timeout, settings.watching.client_timeout) == (45, 75), "stalled watches end"
    assert settings.persistence.finalizer == "selfbootstrap.dev/finalizer"
    assert settings.queueing.idle_timeout == handlers.QUEUE_IDLE_SECONDS < 5, "idle object workers go soon"
    assert 0 < settings.background.instant_exit_timeout == handlers.DAEMON_EXIT_WAIT_SECONDS <= 1, \
        "a finished run's daemon is awaited briefly, not rechecked after its cancellation backoff"


def test_each_shard_has_a_finalizer_of_its_own():
    """Instances of two shards watch the same runs (for their indices); kopf lets go of a finalizer it holds
    no handler for, so with one name the two would take each other's away, over and over."""
    from selfbootstrap.models import finalizer_of

    assert finalizer_of(None) == "selfbootstrap.dev/finalizer"
    assert finalizer_of("a") != finalizer_of("b") != finalizer_of(None)
    assert finalizer_of("team-a.eu_1") == "shard.selfbootstrap.dev/team-a.eu_1"
