"""Everything the operator reads from its environment, in one place (flags default to these)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .core.egress import entries_of


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a number, got {raw!r}") from None
    if not value >= 0:
        raise SystemExit(f"{name} must not be negative, got {raw!r}")
    return value


def metrics_endpoint(address: str) -> tuple[str, int] | None:
    """ "0" → off; ":9090" → every interface; "127.0.0.1:9090", "[::1]:9090" → that address only."""
    if address.strip() in ("", "0"):
        return None
    host, sep, port = address.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise SystemExit(f"the metrics bind address must be host:port, :port or 0 (off), got {address!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


@dataclass(frozen=True)
class Settings:
    watch_server_timeout: int = 60  # seconds; the client gives up 30 s later (stalled watches)
    peering_lifetime: int = 60  # seconds a peering heartbeat stays valid
    max_workers: int = 20  # kopf's executor for sync handlers
    resync_seconds: int = 300  # a run in flight reads its world from the API this often, in case a watch missed
    list_chunk_size: int = 50  # objects per page of a watch's initial LIST (0: one page); handlers.py says why
    tick_threads: int = 8  # the pool the runs' ticks borrow a thread from for their writes (only those block)
    max_runs_per_namespace: int = 100  # runs of one namespace past Pending at once (0: no bound); the rest wait
    settle_seconds: float = 2.0  # a sequenced run on a workload with no record waits for this long a quiet moment
    shard: str | None = None  # this instance serves the runs labelled selfbootstrap.dev/shard=<shard>
    workdir: Path = Path(tempfile.gettempdir()) / "selfbootstrap"  # git working trees
    standalone: bool = False  # no peering with other instances
    peering: str | None = None  # name of the (Cluster)KopfPeering object
    liveness: str | None = None  # e.g. http://0.0.0.0:8080/healthz
    metrics_bind_address: str = "0"  # host:port of the Prometheus endpoint (":9090": every interface); "0": off
    log_format: str = "full"  # plain | full | json
    namespaces: tuple[str, ...] = ()  # watched namespaces (or patterns); empty: cluster-wide
    checkout_image: str = "docker.io/alpine/git:2.47.2"  # the validation Job's checkout step (git, sh, base64)
    egress_allow: tuple[str, ...] = ()  # CIDRs and URL prefixes runs may make the operator reach (core/egress.py)
    egress_deny: tuple[str, ...] = ()  # CIDRs refused besides the defaults, e.g. the cluster's pod ranges
    self_update_windows: tuple[str, ...] = ()  # when a selfHosted run may start, e.g. "Mon-Fri 08:00-18:00" (UTC)
    self_update_min_interval: float = 0.0  # seconds between the end of one self-update and the start of the next
    pod_name: str | None = None  # the operator's own pod (downward API): its self-test is reported there
    pod_namespace: str | None = None

    @property
    def metrics_endpoint(self) -> tuple[str, int] | None:
        """(host, port) to serve metrics on, or None when off; SystemExit on a malformed address."""
        return metrics_endpoint(self.metrics_bind_address)

    @property
    def exact_namespaces(self) -> bool:
        """Only named namespaces: nothing cluster-wide needs to be listed or watched."""
        return bool(self.namespaces) and not any(c in ns for ns in self.namespaces for c in "*?[!")

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        d = cls()
        return cls(
            watch_server_timeout=_int(env, "SELFBOOTSTRAP_WATCH_SERVER_TIMEOUT", d.watch_server_timeout),
            peering_lifetime=_int(env, "SELFBOOTSTRAP_PEERING_LIFETIME", d.peering_lifetime),
            max_workers=_int(env, "SELFBOOTSTRAP_MAX_WORKERS", d.max_workers),
            tick_threads=_int(env, "SELFBOOTSTRAP_TICK_THREADS", d.tick_threads),
            max_runs_per_namespace=_int(env, "SELFBOOTSTRAP_MAX_RUNS_PER_NAMESPACE", d.max_runs_per_namespace),
            settle_seconds=_float(env, "SELFBOOTSTRAP_SETTLE_SECONDS", d.settle_seconds),
            resync_seconds=_int(env, "SELFBOOTSTRAP_RESYNC_SECONDS", d.resync_seconds),
            list_chunk_size=_int(env, "SELFBOOTSTRAP_LIST_CHUNK_SIZE", d.list_chunk_size),
            shard=env.get("SELFBOOTSTRAP_SHARD") or None,
            workdir=Path(env.get("SELFBOOTSTRAP_WORKDIR") or d.workdir),
            standalone=env.get("SELFBOOTSTRAP_STANDALONE") == "1",
            peering=env.get("SELFBOOTSTRAP_PEERING") or None,
            liveness=env.get("SELFBOOTSTRAP_LIVENESS") or None,
            metrics_bind_address=env.get("SELFBOOTSTRAP_METRICS_BIND_ADDRESS") or d.metrics_bind_address,
            log_format=env.get("SELFBOOTSTRAP_LOG_FORMAT") or d.log_format,
            checkout_image=env.get("SELFBOOTSTRAP_CHECKOUT_IMAGE") or d.checkout_image,
            egress_allow=entries_of(env.get("SELFBOOTSTRAP_EGRESS_ALLOW")),
            egress_deny=entries_of(env.get("SELFBOOTSTRAP_EGRESS_DENY")),
            self_update_windows=tuple(w.strip() for w in (env.get("SELFBOOTSTRAP_SELF_UPDATE_WINDOWS") or "").split(";")
                                      if w.strip()),
            self_update_min_interval=_float(env, "SELFBOOTSTRAP_SELF_UPDATE_MIN_INTERVAL", d.self_update_min_interval),
            pod_name=env.get("POD_NAME") or None,
            pod_namespace=env.get("POD_NAMESPACE") or None,
        )
