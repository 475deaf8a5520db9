"""What the handlers share, made once at startup: the settings, the Kubernetes client, the adapters."""

from __future__ import annotations

import asyncio
import functools
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import kopf
from kubernetes import client, config

from . import __version__, selftest
from .adapters import egress, kubeapi
from .adapters.egress import EgressPolicy
from .adapters.executor import Executor
from .adapters.gitexec import GitExecutor
from .adapters.http import HttpExecutor
from .adapters.jobs import JobExecutor
from .adapters.kube import Kube, KubeExecutor
from .adapters.metricproviders import MetricExecutor
from .adapters.ownpod import OwnPod
from .adapters.recent import RecentAnswers
from .adapters.registry import ImageExecutor
from .adapters.watches import Watches
from .config import Settings
from .core import guardrails
from .core.jsontypes import JsonObject
from .core.safemode import SafeMode
from .core.world import Limits
from .scheduling import FairExecutor, Ledger, SafeModeHold

MEMO_KEY = "services"
WakeKey = tuple[str, str, str]  # ("deployment" | "run" | "listed", namespace, name)


class Wakeups:
    """Who to wake when the watches see a change: each run's worker waits on an asyncio.Event of its own."""

    def __init__(self) -> None:
        self._waiting: defaultdict[WakeKey, set[asyncio.Event]] = defaultdict(set)
        self.loop: asyncio.AbstractEventLoop | None = None  # the operator's, for wakes from the watch threads

    def add(self, keys: Iterable[WakeKey], event: asyncio.Event) -> None:
        for key in keys:
            self._waiting[key].add(event)

    def remove(self, keys: Iterable[WakeKey], event: asyncio.Event) -> None:
        for key in keys:
            self._waiting[key].discard(event)
            if not self._waiting[key]:
                del self._waiting[key]

    def wake(self, key: WakeKey) -> None:
        for event in self._waiting.get(key, ()):
            event.set()

    def wake_from_thread(self, key: WakeKey) -> None:
        """wake, from a thread other than the event loop's (the namespaces' watches)."""
        loop = self.loop
        if loop is not None and not loop.is_closed():  # at shutdown the loop closes before the watch threads end
            loop.call_soon_threadsafe(self.wake, key)


TEMPLATE_SECONDS = 10.0  # how long a template read is shared: the runs measure with a change to it within this


@dataclass(frozen=True)
class Services:
    settings: Settings
    kube: Kube
    executor: Executor
    pool: ThreadPoolExecutor  # for the handlers' occasional blocking calls (discovery, retries)
    ticks: FairExecutor  # where ticks run, fair across namespaces: their writes block; waiting runs hold no thread
    wakeups: Wakeups = field(default_factory=Wakeups)
    ledger: Ledger = field(default_factory=Ledger)
    egress: EgressPolicy | None = None  # to refuse a run's URLs before it starts (each use checks again)
    safe_mode: SafeModeHold = field(default_factory=SafeModeHold)
    own_pod: OwnPod | None = None  # the pod this operator runs in, if any (its self-test is reported there)
    watches: Watches | None = None  # the Deployments, ReplicaSets and pods of namespaces with runs in flight
    # AnalysisTemplates as read within the last moment, by (namespace, name, cluster scope): the runs measuring
    # with a template, each at every tick, read it once a moment between them.
    templates: RecentAnswers[tuple[str, str, bool], JsonObject] = field(
        default_factory=lambda: RecentAnswers(TEMPLATE_SECONDS))

    def __post_init__(self) -> None:
        self.ledger.limit = self.settings.max_runs_per_namespace

    @property
    def limits(self) -> Limits:
        return Limits(namespace_runs=self.settings.max_runs_per_namespace,
                      settle_seconds=self.settings.settle_seconds,
                      self_update_windows=tuple(guardrails.parse_window(w) for w in self.settings.self_update_windows),
                      self_update_min_interval=self.settings.self_update_min_interval)


def api_client(connections: int) -> client.ApiClient:
    """A client for the cluster the operator runs in, else the one in KUBECONFIG, with a connection per
    pool thread (fewer makes threads wait for a connection, or open and drop extra ones)."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_kube_config(client_configuration=configuration)
    configuration.connection_pool_maxsize = connections
    return kubeapi.api_client(configuration, f"selfbootstrap-operator/{__version__}")


def build(settings: Settings, api: client.ApiClient, own_pod: OwnPod | None = None,
          safe_mode: SafeMode | None = None) -> Services:
    kube = Kube(api)
    policy = egress.discover(settings, api)  # every URL a run makes the operator contact passes it
    served_runs = functools.partial(selftest.served_runs, kube, settings.namespaces)
    executor = Executor(KubeExecutor(kube), HttpExecutor(policy), GitExecutor(kube, settings.workdir, policy),
                        JobExecutor(kube, settings.checkout_image), MetricExecutor(kube, policy),
                        ImageExecutor(kube, policy, runs_in_flight=served_runs))
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="handler")
    wakeups = Wakeups()
    watches = Watches(kube.api, wakeups.wake_from_thread, settings.watch_server_timeout, settings.list_chunk_size)
    return Services(settings, kube, executor, pool, FairExecutor(settings.tick_threads), wakeups=wakeups,
                    egress=policy, safe_mode=SafeModeHold(mode=safe_mode), own_pod=own_pod, watches=watches)


def memo_with(services: Services) -> kopf.Memo:
    memo = kopf.Memo()
    memo[MEMO_KEY] = services
    return memo


def services_of(memo: kopf.Memo) -> Services:
    found = memo.get(MEMO_KEY)
    if not isinstance(found, Services):
        raise RuntimeError("the operator was started without its services (see selfbootstrap.__main__)")
    return found
