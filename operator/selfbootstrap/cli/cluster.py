"""What the plugin reads from the cluster: runs, a Deployment with its ReplicaSets and pods."""

from __future__ import annotations

from dataclasses import dataclass

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from .. import __version__
from .. import models as m
from ..adapters.kube import REVISION, Kube, controlled_by, meta, name_of, selector_of
from ..adapters.kubeapi import api_client
from ..core.jsontypes import JsonObject, integer, obj, path, strings, text


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
        return cls(Kube(api_client(configuration, f"kubectl-sbr/{__version__}")), namespace or default)

    def run(self, name: str) -> JsonObject:
        found = self.kube.read_run(self.namespace, name)
        if found is None:
            raise NotFoundError(f"run {name!r} not found in namespace {self.namespace!r}")
        return found

    def runs(self, all_namespaces: bool = False, deployment: str | None = None,
             kind: str = m.WorkloadKind.DEPLOYMENT) -> list[JsonObject]:
        namespace = None if all_namespaces else self.namespace
        if not deployment:
            return self.kube.list_runs(namespace)
        label = m.target_label(kind)
        # A run in line for its namespace's slot, or whose target's name is too long for a label, has none.
        unlabelled = [r for r in self.kube.list_runs(namespace, f"!{label}") if m.target_of(r) == (kind, deployment)]
        return sorted(self.kube.list_runs(namespace, f"{label}={deployment}") + unlabelled,
                      key=lambda r: (text(meta(r).get("namespace")) or "", name_of(r)))  # as the API lists them

    def deployment(self, name: str, kind: str = m.WorkloadKind.DEPLOYMENT) -> tuple[JsonObject, list[JsonObject],
                                                                                    list[JsonObject]]:
        """The workload, its revisions and their pods (NotFoundError when it is not there). A Deployment's
        revisions are its ReplicaSets; a StatefulSet's or DaemonSet's, its ControllerRevisions in the same shape."""
        workload = self.kube.read_workload(kind, self.namespace, name)
        if workload is None:
            raise NotFoundError(f"{kind.lower()} {name!r} not found in namespace {self.namespace!r}")
        if kind != m.WorkloadKind.DEPLOYMENT:
            uid = text(meta(workload).get("uid")) or ""
            pods = [p for p in self.kube.list_pods(self.namespace, selector_of(workload)) if controlled_by(p, uid)]
            return workload, [revision_shown(r) for r in self.kube.controller_revision_objects(workload)], pods
        replica_sets = self.kube.replica_sets_of(workload)
        pods = [p for p in self.kube.list_pods(self.namespace)
                if any(controlled_by(p, text(meta(rs).get("uid")) or "") for rs in replica_sets)]
        return workload, replica_sets, pods

    def annotate(self, run: str, annotations: dict[str, str]) -> None:
        try:
            self.kube.patch_run(self.namespace, run, {"metadata": {"annotations": dict(annotations)}})
        except ApiException as err:
            if err.status == 404:
                raise NotFoundError(f"run {run!r} not found in namespace {self.namespace!r}") from None
            raise


def owner_of(pod: JsonObject, replica_sets: list[JsonObject]) -> str | None:
    return next((name_of(rs) for rs in replica_sets if controlled_by(pod, text(meta(rs).get("uid")) or "")), None)


def revision_shown(history: JsonObject) -> JsonObject:
    """A ControllerRevision as the views show a ReplicaSet: its name, number, age, change-cause and template."""
    md = meta(history)
    template = {k: v for k, v in obj(path(history, "data", "spec", "template")).items() if k != "$patch"}
    annotations = {**strings(md.get("annotations")), REVISION: str(integer(history.get("revision")))}
    return {"metadata": {"name": md.get("name"), "uid": md.get("uid"), "creationTimestamp": md.get("creationTimestamp"),
                         "annotations": annotations}, "spec": {"template": template}}
