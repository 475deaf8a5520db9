"""Watches a namespace's runs and one Deployment, and checks the promises of one writer per workload.

Both watches deliver events in the API server's order (etcd revisions, comparable across resources), so
merging them by resourceVersion replays what happened. Checked at every event:
- at most one run of the workload is past Pending and unfinished;
- every change of the Deployment's template is made by the run the workload's record names as holder;
- no run changes the template to its release more than once (no deploy twice);
- a run's deploy never takes the workload to a release older (by order key) than one deployed before it
  (replay safety), unless the run asked to redeploy.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client, watch

from .kube_helpers import GROUP, PLURAL, VERSION

IN_FLIGHT = {"Deploying", "VerifyingHealth", "WatchingRestarts", "RollingBack"}
RUNS_ANNOTATION = "selfbootstrap.dev/runs"
RELEASE_ANNOTATION = "selfbootstrap.dev/release-id"


@dataclass
class Change:
    rv: int
    kind: str  # "run" or "deployment"
    body: dict[str, Any]


@dataclass
class Recorder:
    namespace: str
    deployment: str  # the workload's name
    changes: list[Change] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    kind: str = "Deployment"

    def start(self) -> Recorder:
        custom, apps = client.CustomObjectsApi(), client.AppsV1Api()
        runs = custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL)
        listing = {"Deployment": apps.list_namespaced_deployment, "StatefulSet": apps.list_namespaced_stateful_set,
                   "DaemonSet": apps.list_namespaced_daemon_set}[self.kind]
        deps = listing(self.namespace, field_selector=f"metadata.name={self.deployment}")
        self._follow("run", custom.list_namespaced_custom_object, (GROUP, VERSION, self.namespace, PLURAL),
                     runs["metadata"]["resourceVersion"], {})
        self._follow("deployment", listing, (self.namespace,),
                     deps.metadata.resource_version, {"field_selector": f"metadata.name={self.deployment}"})
        for d in deps.items:
            self._add("deployment", client.ApiClient().sanitize_for_serialization(d))
        return self

    def _follow(self, kind: str, fn: Any, args: tuple[Any, ...], rv: str, kwargs: dict[str, Any]) -> None:
        def loop() -> None:
            since = rv
            while not self._stop.is_set():
                w = watch.Watch()
                try:
                    for event in w.stream(fn, *args, resource_version=since, timeout_seconds=5,
                                          allow_watch_bookmarks=True, **kwargs):
                        obj = event["object"]
                        body = obj if isinstance(obj, dict) else client.ApiClient().sanitize_for_serialization(obj)
                        since = body["metadata"]["resourceVersion"]
                        if event["type"] != "BOOKMARK":
                            self._add(kind, body)
                        if self._stop.is_set():
                            w.stop()
                except client.exceptions.ApiException as err:
                    if err.status != 410:
                        raise
                    listed = fn(*args, **kwargs)  # our place in the history is gone: start again from now
                    listed = listed if isinstance(listed, dict) else client.ApiClient().sanitize_for_serialization(
                        listed)
                    for item in listed["items"]:
                        self._add(kind, item)
                    since = listed["metadata"]["resourceVersion"]

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _add(self, kind: str, body: dict[str, Any]) -> None:
        with self._lock:
            self.changes.append(Change(int(body["metadata"]["resourceVersion"]), kind, body))

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    # --- the checks ---------------------------------------------------------------------------------

    def ordered(self) -> list[Change]:
        with self._lock:
            unique = {(c.kind, c.rv): c for c in self.changes}
        return sorted(unique.values(), key=lambda c: c.rv)

    def deploys(self) -> list[tuple[str, str | None]]:
        """(holder run, release) of every change of the Deployment's template, in order."""
        out: list[tuple[str, str | None]] = []
        last = None
        for c in self.ordered():
            if c.kind != "deployment":
                continue
            template = json.dumps(c.body["spec"]["template"], sort_keys=True)
            if last is not None and template != last:
                record = json.loads(c.body["metadata"].get("annotations", {}).get(RUNS_ANNOTATION) or "{}")
                holder = (record.get("holder") or {}).get("run", "<none>") if isinstance(record, dict) else "<v1>"
                release = (c.body["spec"]["template"]["metadata"].get("annotations") or {}).get(RELEASE_ANNOTATION)
                out.append((holder, release))
            last = template
        return out

    def violations(self) -> list[str]:
        problems: list[str] = []
        phases: dict[str, str] = {}
        for c in self.ordered():
            if c.kind != "run":
                continue
            target = c.body["spec"]["target"]
            if (target.get("kind") or "Deployment", target.get("deployment") or target.get("name")) != (
                    self.kind, self.deployment):
                continue
            phases[c.body["metadata"]["name"]] = (c.body.get("status") or {}).get("phase") or "None"
            busy = sorted(name for name, phase in phases.items() if phase in IN_FLIGHT)
            if len(busy) > 1:
                problems.append(f"at {c.rv} runs {busy} were all past Pending on {self.deployment}")
        deploys = self.deploys()
        holders = [h for h, _ in deploys]
        for holder in set(holders):
            releases = [rel for h, rel in deploys if h == holder]
            if len(releases) != len(set(releases)):
                problems.append(f"run {holder} changed the template to the same release twice: {releases}")
        problems += [f"a template change to {rel} with no run holding the workload"
                     for h, rel in deploys if h == "<none>"]
        return problems
