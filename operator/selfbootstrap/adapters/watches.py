"""The Deployments, ReplicaSets and pods of the namespaces that have runs in flight, watched only while they do.

A namespace's three watches open when its first run's worker starts and close a while after its last one ends
(LINGER_SECONDS: a run that follows soon finds them open). A Deployment, ReplicaSet or pod of a namespace without
runs costs nothing, however large the cluster. Each watch lists its resource in pages, then streams changes from
that list's resourceVersion with bookmarks and a server-side timeout (and a client read timeout 30 s longer: a
stalled stream ends); a 410 Gone or any fault lists again, after a growing wait for faults. What it keeps is what
cache.py's entries keep, keyed as the cache reads them. Until all three have listed, `ready` says no and the
runs read their world from the API. Each watch notes when it last heard from the API server (a page, an
event, a bookmark, a stream's end at its timeout): a run's periodic resync reads the API only when its namespace's
watches have gone quiet for that long.

The watches run on threads of their own (the client is synchronous); every change is handed to `wake`, which the
shell makes safe to call from them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as TransportError

from .. import models as m
from ..core.jsontypes import JsonObject, obj, objects, strings, text
from . import cache
from . import kube as k
from .kubeapi import KubeApi, resource_path

WakeKey = tuple[str, str, str]
LOG = logging.getLogger(__name__)
LINGER_SECONDS = 60.0
MAX_BACKOFF = 30.0
RESOURCES = (("apps", "deployments"), ("apps", "replicasets"), ("", "pods"))


class _VersionGoneError(Exception):
    """The watch's version is gone: list again."""


@dataclass
class _Store:
    """One resource's entries in one namespace, by the key the cache reads and the object's uid."""

    by_key: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # uid -> its key, to move or drop an entry

    def put(self, uid: str, key: str | None, entry: Any) -> bool:
        """Keep (or, key None, drop) an object's entry; False when it was kept exactly so already."""
        old = self.keys.get(uid)
        if key is not None and old == key and self.by_key.get(key, {}).get(uid) == entry:
            return False
        self.keys.pop(uid, None)
        if old is not None:
            bucket = self.by_key.get(old)
            if bucket is not None:
                bucket.pop(uid, None)
                if not bucket:
                    del self.by_key[old]
        if key is not None:
            self.by_key.setdefault(key, {})[uid] = entry
            self.keys[uid] = key
        return True


class NamespaceWatches:
    """The three watches of one namespace and what they keep."""

    def __init__(self, api: KubeApi, namespace: str, wake: Callable[[WakeKey], None], server_timeout: int,
                 chunk: int) -> None:
        self.api, self.namespace, self.wake = api, namespace, wake
        self.server_timeout, self.chunk = server_timeout, chunk
        self.stores = {plural: _Store() for _, plural in RESOURCES}
        self.listed: set[str] = set()
        self.heard = dict.fromkeys(self.stores, float("-inf"))  # plural -> when the API server last answered
        self.stopped = threading.Event()
        self.threads = [threading.Thread(target=self._loop, args=(group, plural), daemon=True,
                                         name=f"watch-{plural}-{namespace}") for group, plural in RESOURCES]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stopped.set()  # each stream ends at its server timeout at the latest; nothing is read after

    @property
    def ready(self) -> bool:
        return len(self.listed) == len(RESOURCES) and not self.stopped.is_set()

    def heard_within(self, seconds: float) -> bool:
        """Every watch has listed, and heard from the API server in the last `seconds`."""
        since = time.monotonic() - seconds
        return self.ready and all(at >= since for at in self.heard.values())

    def values(self, plural: str, key: str) -> list[Any]:
        bucket = self.stores[plural].by_key.get(key)
        return list(bucket.values()) if bucket else []

    # --- the loop of one resource ---------------------------------------------------------------

    def _loop(self, group: str, plural: str) -> None:
        """List, then watch from there; a stream that ends is resumed from the last version seen, a 410 Gone
        (or any refusal in the stream) lists again, a fault waits a growing while first."""
        path = resource_path(group, "v1", plural, self.namespace)
        failures, version = 0, ""
        while not self.stopped.is_set():
            try:
                version = version or self._list(path, plural)
                version = self._watch(path, plural, version)
                failures = 0
            except _VersionGoneError:
                version = ""
            except Exception as err:  # every fault: never a thread that quietly stops while its cache looks ready
                if not isinstance(err, ApiException | TransportError | OSError | ValueError):
                    LOG.exception("watch of %s in %s failed; listing again", plural, self.namespace)
                    version = ""
                elif isinstance(err, ApiException) and err.status in (404, 410):
                    version = ""
                failures += 1
                self.stopped.wait(min(MAX_BACKOFF, 0.5 * 2 ** min(failures, 6)))

    def _list(self, path: str, plural: str) -> str:
        fresh, token, version = _Store(), "", ""
        while True:
            query = {"limit": str(self.chunk)} if self.chunk else {}
            if token:
                query["continue"] = token
            page = self.api.get(path, query)
            for item in objects(page.get("items")):
                self._keep(fresh, plural, item, wake=False)  # the runs are woken once, when all three have listed
            self.heard[plural] = time.monotonic()
            token = text(obj(page.get("metadata")).get("continue")) or ""
            version = text(obj(page.get("metadata")).get("resourceVersion")) or version
            if not token:
                break
        self.stores[plural] = fresh  # one swap: a reader sees the old listing or the new one, never half
        self.listed.add(plural)
        if self.ready:  # the runs read the API until now: from here on the cache serves them
            self.wake(("listed", self.namespace, ""))
            for name in list(self.stores["deployments"].by_key):
                self.wake(("deployment", self.namespace, name))
        return version

    def _watch(self, path: str, plural: str, version: str) -> str:
        """Stream the changes since `version`; the last version seen when the stream ends."""
        query = {"watch": "true", "allowWatchBookmarks": "true", "resourceVersion": version,
                 "timeoutSeconds": str(self.server_timeout)}
        for event in lines(self.api.stream(path, query, read_timeout=self.server_timeout + 30)):
            if self.stopped.is_set():
                break
            self.heard[plural] = time.monotonic()
            kind, body = text(event.get("type")), obj(event.get("object"))
            if kind == "ERROR":  # 410 Gone (the version was compacted) or another refusal
                raise _VersionGoneError(text(body.get("message")) or "")
            version = text(k.meta(body).get("resourceVersion")) or version
            if kind != "BOOKMARK":
                self._keep(self.stores[plural], plural, body, deleted=kind == "DELETED")
        self.heard[plural] = time.monotonic()  # the stream ended as the server closes it: still in touch
        return version

    # --- what is kept, and whom a change wakes ---------------------------------------------------

    def _keep(self, store: _Store, plural: str, body: JsonObject, deleted: bool = False, wake: bool = True) -> None:
        uid = text(k.meta(body).get("uid")) or ""
        key, entry, wakes = _entry(plural, body)
        changed = store.put(uid, None if deleted or key is None else key, entry)
        # A change the entry does not keep (a pod's probe times, a ReplicaSet's status counts) wakes nobody: the
        # runs' worlds are made of the entries. An object kept by no key (another kind's pod) always wakes.
        for workload in wakes if wake and (changed or key is None) else ():
            self.wake(("deployment", self.namespace, workload))


def _entry(plural: str, body: JsonObject) -> tuple[str | None, Any, list[str]]:
    """(the key the cache reads it by, its entry, the workloads to wake): a Deployment by name, a ReplicaSet and
    a pod by their owner's uid; a StatefulSet's or DaemonSet's pod is not kept, only wakes its workload's runs."""
    if plural == "deployments":
        name = k.name_of(body)
        return name, cache.deployment_entry(body), [name]
    if plural == "replicasets":
        owner = cache.controller_of(body, "Deployment")
        if owner is None:
            return None, None, []
        return text(owner.get("uid")) or "", cache.replica_set_entry(body), [text(owner.get("name")) or ""]
    owner = cache.controller_of(body, "ReplicaSet")
    if owner is None:  # a StatefulSet's or DaemonSet's pod: its runs read their world by request
        workload = cache.controller_of(body, *cache.REQUESTED_KINDS)
        wakes = [m.workload_key(text(workload.get("kind")) or "", text(workload.get("name")) or "")] if workload \
            else []
        return None, None, wakes
    rs_name = text(owner.get("name")) or ""
    template_hash = strings(k.meta(body).get("labels")).get("pod-template-hash", "")
    wakes = [rs_name[: -len(template_hash) - 1]] if template_hash and rs_name.endswith(f"-{template_hash}") else []
    if k.meta(body).get("deletionTimestamp"):
        return None, None, wakes
    return text(owner.get("uid")) or "", cache.PodEntry.of(k.pod_state(body)), wakes


class Watches:
    """The namespaces' watches, opened while runs need them (`need` / `release`, counted per namespace)."""

    def __init__(self, api: KubeApi, wake: Callable[[WakeKey], None], server_timeout: int, chunk: int,
                 linger: float = LINGER_SECONDS) -> None:
        self.api, self.wake, self.server_timeout, self.chunk, self.linger = api, wake, server_timeout, chunk, linger
        self.open: dict[str, NamespaceWatches] = {}
        self.users: dict[str, int] = {}
        self.idle_since: dict[str, float] = {}
        self.lock = threading.Lock()

    def need(self, namespace: str) -> None:
        with self.lock:
            self._close_idle()
            self.users[namespace] = self.users.get(namespace, 0) + 1
            self.idle_since.pop(namespace, None)
            if namespace not in self.open:
                watches = NamespaceWatches(self.api, namespace, self.wake, self.server_timeout, self.chunk)
                self.open[namespace] = watches
                watches.start()

    def release(self, namespace: str) -> None:
        with self.lock:
            left = self.users.get(namespace, 0) - 1
            if left > 0:
                self.users[namespace] = left
                return
            self.users.pop(namespace, None)
            self.idle_since[namespace] = time.monotonic()
            self._close_idle()

    def _close_idle(self) -> None:
        now = time.monotonic()
        for namespace, since in list(self.idle_since.items()):
            if now - since >= self.linger:
                del self.idle_since[namespace]
                self.open.pop(namespace).stop()

    def close_idle(self) -> None:
        """Close what has been idle longer than the linger (the shell calls this now and then)."""
        with self.lock:
            self._close_idle()

    def ready(self, namespace: str) -> bool:
        found = self.open.get(namespace)
        return found is not None and found.ready

    def heard_within(self, namespace: str, seconds: float) -> bool:
        """The namespace's watches are listed and each heard from the API server in the last `seconds`."""
        found = self.open.get(namespace)
        return found is not None and found.heard_within(seconds)

    def index(self, plural: str) -> _Index:
        return _Index(self, plural)

    def stop(self) -> None:
        with self.lock:
            for watches in self.open.values():
                watches.stop()
            self.open.clear()


@dataclass(frozen=True)
class _Index:
    """One resource's entries across the open namespaces, read as cache.Index reads a kopf index."""

    watches: Watches
    plural: str

    def __contains__(self, key: object) -> bool:
        return isinstance(key, tuple) and bool(self[key])

    def __getitem__(self, key: tuple[str, str]) -> Iterable[Any]:
        found = self.watches.open.get(key[0])
        return found.values(self.plural, key[1]) if found is not None else []


def lines(chunks: Iterable[bytes]) -> Iterator[JsonObject]:
    """The JSON objects of a watch stream, one per line, however the bytes arrive."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            if line.strip():
                yield obj(json.loads(line))
    if pending.strip():
        yield obj(json.loads(pending))
