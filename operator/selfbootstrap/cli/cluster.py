"""What the plugin reads from the cluster: runs, a Deployment with its ReplicaSets and pods."""

from __future__ import annotations

from dataclasses import dataclass

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from .. import models as m
from ..adapters.kube import Kube, controlled_by, meta, name_of
from ..core.jsontypes import JsonObject, text


class NotFoundError(LookupError):
    pass


@dataclass
class Cluster:
    kube: Kube
    namespace: str

    @classmethod
    def connect(cls, kubeconfig: str | None, context: str | None, namespace: str | None) -> Cluster:
        configuration = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
        _, current = config.list_kube_config_contexts(config_file=kubeconfig)
        default = (current or {}).get("context", {}).get("namespace") or "default"
        return cls(Kube(client.ApiClient(configuration)), namespace or default)

    def run(self, name: str) -> JsonObject:
        found = self.kube.read_run(self.namespace, name)
        if found is None:
            raise NotFoundError(f"run {name!r} not found in namespace {self.namespace!r}")
        return found

    def runs(self, all_namespaces: bool = False, deployment: str | None = None) -> list[JsonObject]:
        selector = f"{m.DEPLOYMENT_LABEL}={deployment}" if deployment else None
        return self.kube.list_runs(None if all_namespaces else self.namespace, selector)

    def deployment(self, name: str) -> tuple[JsonObject, list[JsonObject], list[JsonObject]]:
        """The Deployment, its ReplicaSets and their pods (NotFoundError when it is not there)."""
        dep = self.kube.read_deployment(self.namespace, name)
        if dep is None:
            raise NotFoundError(f"deployment {name!r} not found in namespace {self.namespace!r}")
        replica_sets = self.kube.replica_sets_of(dep)
        pods = [p for p in self.kube.list_pods(self.namespace)
                if any(controlled_by(p, text(meta(rs).get("uid")) or "") for rs in replica_sets)]
        return dep, replica_sets, pods

    def annotate(self, run: str, annotations: dict[str, str]) -> None:
        try:
            self.kube.patch_run(self.namespace, run, {"metadata": {"annotations": dict(annotations)}})
        except ApiException as err:
            if err.status == 404:
                raise NotFoundError(f"run {run!r} not found in namespace {self.namespace!r}") from None
            raise


def owner_of(pod: JsonObject, replica_sets: list[JsonObject]) -> str | None:
    return next((name_of(rs) for rs in replica_sets if controlled_by(pod, text(meta(rs).get("uid")) or "")), None)
