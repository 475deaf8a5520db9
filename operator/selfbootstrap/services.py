"""What the handlers share, made once at startup: the settings, the Kubernetes client, the adapters."""

from __future__ import annotations

from dataclasses import dataclass

import kopf
from kubernetes import client, config

from .adapters.executor import Executor
from .adapters.gitexec import GitExecutor
from .adapters.http import HttpExecutor
from .adapters.jobs import JobExecutor
from .adapters.kube import Kube, KubeExecutor
from .config import Settings

MEMO_KEY = "services"


@dataclass(frozen=True)
class Services:
    settings: Settings
    kube: Kube
    executor: Executor


def api_client() -> client.ApiClient:
    """A client for the cluster the operator runs in, else the one in KUBECONFIG."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


def build(settings: Settings, api: client.ApiClient) -> Services:
    kube = Kube(api)
    executor = Executor(KubeExecutor(kube), HttpExecutor(), GitExecutor(kube, settings.workdir),
                        JobExecutor(kube, settings.checkout_image))
    return Services(settings, kube, executor)


def memo_with(services: Services) -> kopf.Memo:
    memo = kopf.Memo()
    memo[MEMO_KEY] = services
    return memo


def services_of(memo: kopf.Memo) -> Services:
    found = memo.get(MEMO_KEY)
    if not isinstance(found, Services):
        raise RuntimeError("the operator was started without its services (see selfbootstrap.__main__)")
    return found
