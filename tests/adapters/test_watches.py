"""The namespaces' watches (adapters/watches.py) against a scripted API: paged lists, a stream with bookmarks,
deletions and a 410 that lists again; what they keep is what the cache reads; nothing is opened for a namespace
without runs, and a namespace is closed a while after its last run."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

from selfbootstrap.adapters import cache
from selfbootstrap.adapters.watches import LINGER_SECONDS, NamespaceWatches, Watches, lines


def deployment(name: str, uid: str, rv: str = "1") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "uid": uid, "resourceVersion": rv},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": []}}},
            "status": {}}


def replica_set(name: str, uid: str, owner: str, owner_uid: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "uid": uid, "resourceVersion": "1",
                         "ownerReferences": [{"kind": "Deployment", "name": owner, "uid": owner_uid,
                                              "controller": True}]},
            "spec": {"template": {}}, "status": {}}


def pod(name: str, uid: str, rs: str, rs_uid: str, template_hash: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "uid": uid, "labels": {"pod-template-hash": template_hash},
                         "ownerReferences": [{"kind": "ReplicaSet", "name": rs, "uid": rs_uid, "controller": True}]},
            "status": {"phase": "Running"}}


class ScriptedApi:
    """Lists in pages of one, then streams the scripted events of each resource once; later watches block."""

    def __init__(self, listed: dict[str, list[dict[str, Any]]], events: dict[str, list[dict[str, Any]]]) -> None:
        self.listed, self.events = listed, events
        self.lists: list[str] = []
        self.lock = threading.Lock()

    def get(self, path: str, query: dict[str, str]) -> dict[str, Any]:
        plural = path.rsplit("/", 1)[1]
        with self.lock:
            self.lists.append(plural)
        items = self.listed[plural]
        start = int(query.get("continue") or 0)
        more = start + 1 < len(items)
        return {"items": items[start:start + 1], "metadata": {"resourceVersion": "10",
                                                              "continue": str(start + 1) if more else ""}}

    def stream(self, path: str, query: dict[str, str], read_timeout: float) -> Iterator[bytes]:
        plural = path.rsplit("/", 1)[1]
        with self.lock:
            script, self.events[plural] = self.events.get(plural, []), []
        body = b"".join(json.dumps(e).encode() + b"\n" for e in script)
        for i in range(0, len(body), 7):  # bytes arrive in pieces that split lines
            yield body[i:i + 7]
        time.sleep(0.05)


def wait(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_stream_is_read_line_by_line_however_its_bytes_arrive():
    assert list(lines([b'{"a":', b' 1}\n{"b"', b': 2}\n', b'\n', b'{"c": 3}'])) == [{"a": 1}, {"b": 2}, {"c": 3}]


def test_what_the_watches_keep_is_what_the_cache_reads_and_changes_wake_the_workload():
    api = ScriptedApi(
        listed={"deployments": [deployment("web", "d1"), deployment("api", "d2")],
                "replicasets": [replica_set("web-abc", "r1", "web", "d1")],
                "pods": [pod("web-abc-1", "p1", "web-abc", "r1", "abc")]},
        events={"deployments": [{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "11"}}},
                                {"type": "DELETED", "object": deployment("api", "d2", "12")}],
                "pods": [{"type": "ADDED", "object": pod("web-abc-2", "p2", "web-abc", "r1", "abc")}]})
    woken: list[tuple[str, str, str]] = []
    watches = NamespaceWatches(api, "ns", woken.append, server_timeout=5, chunk=1)  # type: ignore[arg-type]
    watches.start()
    try:
        wait(lambda: watches.ready and len(watches.values("pods", "r1")) == 2
             and not watches.values("deployments", "api"))
        entry = watches.values("deployments", "web")[0]
        assert isinstance(entry, cache.DeploymentEntry) and entry.body["metadata"]["name"] == "web"
        assert [e.body["metadata"]["name"] for e in watches.values("replicasets", "d1")] == ["web-abc"]
        assert sorted(p.state.name for p in watches.values("pods", "r1")) == ["web-abc-1", "web-abc-2"]
        assert ("deployment", "ns", "web") in woken and ("deployment", "ns", "api") in woken
        assert woken.count(("listed", "ns", "")) == 1, "runs waiting for the listing are told once"
        assert woken.index(("listed", "ns", "")) < woken.index(("deployment", "ns", "web"))
        assert api.lists.count("deployments") >= 2, "listed in pages"
    finally:
        watches.stop()


def test_a_change_the_cache_does_not_keep_wakes_nobody():
    """A pod's IP or resourceVersion, a ReplicaSet's status counts: the runs' worlds are made of the entries, and
    a thousand rollouts at once would wake their runs several times a step for nothing."""
    first = pod("web-abc-1", "p1", "web-abc", "r1", "abc")
    ip = {**first, "metadata": {**first["metadata"], "resourceVersion": "20"}, "status": {"phase": "Running",
                                                                                            "podIP": "10.0.0.9"}}
    failed = {**first, "metadata": {**first["metadata"], "resourceVersion": "21"}, "status": {"phase": "Failed"}}
    counted = {**replica_set("web-abc", "r1", "web", "d1"), "status": {"replicas": 1, "fullyLabeledReplicas": 1}}
    counted["metadata"] = {**counted["metadata"], "resourceVersion": "22"}
    api = ScriptedApi(
        listed={"deployments": [deployment("web", "d1")], "replicasets": [replica_set("web-abc", "r1", "web", "d1")],
                "pods": [first]},
        events={"pods": [{"type": "MODIFIED", "object": ip}, {"type": "MODIFIED", "object": failed}],
                "replicasets": [{"type": "MODIFIED", "object": counted}]})
    woken: list[tuple[str, str, str]] = []
    watches = NamespaceWatches(api, "ns", woken.append, server_timeout=5, chunk=1)  # type: ignore[arg-type]
    watches.start()
    try:
        wait(lambda: watches.ready and [p.state.phase for p in watches.values("pods", "r1")] == ["Failed"])
        time.sleep(0.2)  # the ReplicaSet's stream, too
        assert woken.count(("deployment", "ns", "web")) == 2, "once listed, once for the pod that failed"
    finally:
        watches.stop()


def test_an_error_event_lists_again():
    api = ScriptedApi(listed={"deployments": [deployment("web", "d1")], "replicasets": [], "pods": []},
                      events={"deployments": [{"type": "ERROR", "object": {"code": 410, "message": "too old"}}]})
    watches = NamespaceWatches(api, "ns", lambda key: None, server_timeout=5, chunk=0)  # type: ignore[arg-type]
    watches.start()
    try:
        wait(lambda: api.lists.count("deployments") >= 2, timeout=10)
        assert watches.values("deployments", "web")
    finally:
        watches.stop()


def test_a_namespace_is_watched_while_it_has_runs_and_a_while_after():
    api = ScriptedApi(listed={"deployments": [], "replicasets": [], "pods": []}, events={})
    watches = Watches(api, lambda key: None, server_timeout=5, chunk=0, linger=0.2)  # type: ignore[arg-type]
    try:
        assert not watches.ready("ns") and "ns" not in watches.open, "nothing without a run"
        watches.need("ns")
        watches.need("ns")
        wait(lambda: watches.ready("ns"))
        watches.release("ns")
        watches.close_idle()
        assert "ns" in watches.open, "a run still needs it"
        watches.release("ns")
        assert "ns" in watches.open, "it lingers"
        time.sleep(0.25)
        watches.close_idle()
        assert "ns" not in watches.open and not watches.ready("ns")
        index = watches.index("deployments")
        assert ("ns", "web") not in index and list(index[("ns", "web")]) == []
    finally:
        watches.stop()
    assert LINGER_SECONDS > 0


def test_an_unexpected_fault_lists_again_rather_than_ending_the_watch(caplog):
    class Faulty(ScriptedApi):
        failed = False

        def get(self, path: str, query: dict[str, str]) -> dict[str, Any]:
            if path.endswith("/deployments") and not Faulty.failed:
                Faulty.failed = True
                raise RuntimeError("a bug nobody foresaw")
            return super().get(path, query)

    api = Faulty(listed={"deployments": [deployment("web", "d1")], "replicasets": [], "pods": []}, events={})
    watches = NamespaceWatches(api, "ns", lambda key: None, server_timeout=5, chunk=0)  # type: ignore[arg-type]
    watches.start()
    try:
        wait(lambda: watches.ready and bool(watches.values("deployments", "web")), timeout=10)
        assert "watch of deployments in ns failed" in caplog.text
    finally:
        watches.stop()


def test_the_watches_say_whether_they_heard_from_the_api_server_lately():
    """A run's resync reads the API only when its namespace's watches went quiet: a listing, an event, a bookmark
    or a stream ended by the server counts; a stream that stalls (nothing arrives) does not, once the time passed."""
    stalled = threading.Event()

    class Stalling(ScriptedApi):
        def stream(self, path: str, query: dict[str, str], read_timeout: float) -> Iterator[bytes]:
            yield from super().stream(path, query, read_timeout)
            stalled.wait(10)  # the connection stays open and nothing comes: no clean end either

    api = Stalling(listed={"deployments": [deployment("web", "d1")], "replicasets": [], "pods": []},
                   events={"deployments": [{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "11"}}}]})
    watches = Watches(api, lambda key: None, server_timeout=5, chunk=0)  # type: ignore[arg-type]
    try:
        assert not watches.heard_within("ns", 60), "nothing open: nothing heard"
        watches.need("ns")
        wait(lambda: watches.ready("ns"))
        assert watches.heard_within("ns", 60)
        time.sleep(0.3)
        assert not watches.heard_within("ns", 0.2), "stalled streams: quiet for longer than that"
        assert watches.heard_within("ns", 60)
    finally:
        stalled.set()
        watches.stop()
