"""`kubectl sbr`'s views: text from the cluster reaches the terminal as data, never as control.

Whatever a run's author, a pod or an annotation wrote is rendered by a real rich Console that
believes it writes to a terminal; the output may hold rich's own styling and nothing else."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console, RenderableType

from selfbootstrap.cli import views
from selfbootstrap.cli.plan import Plan, PolicyOutcome
from selfbootstrap.core.jsontypes import JsonObject
from selfbootstrap.core.text import NAME_LIMIT, is_hidden, printable
from selfbootstrap.models import RunStatus

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
EARLIER = (NOW - timedelta(minutes=5)).isoformat()
# ESC (a screen clear), CR LF, BEL, C1 CSI, a bidi override, a zero-width space, and rich markup.
HOSTILE = ["\x1b[2J", "\r\nFAKE", "\x07", "\x9b31m", "\u202egpj.exe", "zero\u200bwidth", "[bold red]x[/]",
           ":warning:"]
EVIL = "".join(HOSTILE)
SGR = re.compile(r"\x1b\[[0-9;]*m")  # rich's own styling


def render(renderable: RenderableType, styled: bool) -> str:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=2000, color_system="truecolor" if styled else None,
                      legacy_windows=False)
    console.print(renderable)
    return out.getvalue()


def assert_inert(renderable: RenderableType) -> str:
    """The output without styles holds no hidden character but line ends, the markup as written and every
    hostile piece escaped; with styles it differs only by SGR sequences."""
    plain = render(renderable, styled=False)
    assert [c for c in plain if is_hidden(c) and c != "\n"] == [], repr(plain)
    assert "[bold red]x[/]" in plain and ":warning:" in plain
    for escaped in ("\\x1b[2J", "\\x0d\\x0aFAKE", "\\x07", "\\x9b31m", "\\u202egpj.exe", "zero\\u200bwidth"):
        assert escaped in plain, (escaped, plain)
    styled = render(renderable, styled=True)
    assert "\x1b[" in styled, "the styled console does style"
    assert SGR.sub("", styled) == plain
    return plain


def run(**status: object) -> dict:
    meta = {"name": "web-v2", "namespace": EVIL, "creationTimestamp": EARLIER}
    return {"metadata": meta, "spec": {"target": {"deployment": EVIL}}, "status": {
        "phase": "RolledBack", "reason": EVIL, "message": f"aborted: {EVIL}", "deployedReleaseId": EVIL,
        "previousReleaseId": EVIL, "rollbackTargetReleaseId": EVIL, "deployedReplicaSet": "web-1",
        "history": [{"phase": EVIL, "at": EARLIER}, {"phase": "RolledBack", "at": NOW.isoformat()}], **status}}


def template(release: str) -> dict:
    return {"metadata": {"annotations": {"selfbootstrap.dev/release-id": release}},
            "spec": {"containers": [{"name": "app", "image": f"registry.example.com/{release}"}]}}


DEPLOYMENT = {
    "metadata": {"name": "web", "annotations": {
        "deployment.kubernetes.io/revision": EVIL,
        "selfbootstrap.dev/runs": json.dumps([{"run": EVIL, "uid": "u", "release": EVIL, "outcome": EVIL,
                                               "at": EARLIER}])}},
    "spec": {"replicas": 2}, "status": {"availableReplicas": 2}}
REPLICA_SET = {
    "metadata": {"name": "web-1", "uid": "rs-uid", "creationTimestamp": EARLIER, "annotations": {
        "deployment.kubernetes.io/revision": "2", "kubernetes.io/change-cause": EVIL}},
    "spec": {"template": template(EVIL)}}
POD = {"metadata": {"name": "web-1-abc", "ownerReferences": [{"uid": "rs-uid", "controller": True}]},
       "status": {"phase": EVIL, "conditions": [{"type": "Ready", "status": "False"}],
                  "containerStatuses": [{"name": "app", "restartCount": 1,
                                         "state": {"waiting": {"reason": EVIL}}}]}}


def test_the_run_tree():
    plain = assert_inert(views.run_tree(run(), DEPLOYMENT, [REPLICA_SET], [POD], NOW))
    assert "← deployed by this run" in plain and "pod web-1-abc" in plain


def test_the_run_tree_shows_the_gates_and_their_last_measurements_inert():
    gate = {"name": EVIL, "kind": "analysis", "phase": "Failed", "message": EVIL, "metrics": [{
        "name": EVIL, "phase": "Failed", "count": 2, "successful": 1, "failed": 1,
        "measurements": [{"phase": "Successful", "value": "[0.01]", "finishedAt": EARLIER},
                         {"phase": "Error", "value": EVIL, "message": EVIL, "finishedAt": EARLIER}]}]}
    plain = assert_inert(views.run_tree(run(gates=[gate]), DEPLOYMENT, [REPLICA_SET], [POD], NOW))
    assert "2 measured: 1 successful, 1 failed" in plain and "last values: [0.01], " in plain


def test_the_run_tree_shows_the_image_the_registry_named_inert():
    plain = assert_inert(views.run_tree(run(deployedImage=EVIL, imageVersion=EVIL, imageRevision="0123abc",
                                            imageLookup="resolved by reg"), DEPLOYMENT, [REPLICA_SET], [POD], NOW))
    assert "revision 0123abc" in plain and "(resolved by reg)" in plain


def _revision(name: str, number: int) -> dict:
    return {"metadata": {"name": name, "annotations": {"deployment.kubernetes.io/revision": str(number)}},
            "spec": {"template": template("v1")}}


@pytest.mark.parametrize(("kind", "status", "shown"), [
    pytest.param("Deployment", {}, "deployment web  0/2 available, revision 7", id="deployment-annotation"),
    pytest.param("StatefulSet", {"updateRevision": "web-5f6"}, "revision web-5f6", id="statefulset-update-revision"),
    pytest.param("DaemonSet", {"numberAvailable": 1, "desiredNumberScheduled": 1},
                 "daemonset web  1/1 available, revision web-9c8", id="daemonset-newest-controllerrevision"),
])
def test_the_workload_line_names_its_current_revision(kind: str, status: dict, shown: str) -> None:
    annotations = {"deployment.kubernetes.io/revision": "7"}
    dep: JsonObject = {"kind": kind, "metadata": {"name": "web", "annotations": annotations},
                       "spec": {"replicas": 2}, "status": status}
    history: list[JsonObject] = [_revision("web-9c8", 3), _revision("web-1a2", 1), _revision("web-5f6", 2)]
    plain = render(views.deployment_tree(dep, history, [], {}, NOW), styled=False)
    assert shown in plain.splitlines()[0]


def test_the_run_tree_without_its_deployment():
    assert_inert(views.run_tree(run(), None, [], [], NOW))


@pytest.mark.parametrize("namespaces", [False, True])
def test_the_runs_table(namespaces):
    plain = assert_inert(views.runs_table([run(message=EVIL)], NOW, namespaces))
    assert plain.splitlines()[0].split()[-1] == "MESSAGE"


def test_a_long_message_is_cut_in_the_table_and_whole_in_the_tree():
    long = "m" * 500
    assert long not in render(views.runs_table([run(message=long)], NOW, False), styled=False)
    assert long in render(views.run_tree(run(message=long), None, [], [], NOW), styled=False)


def test_the_history():
    finished = run(deployedReplicaSet="web-1", phase="Failed")
    plain = assert_inert(views.history_table(DEPLOYMENT, [REPLICA_SET], [finished], NOW))
    assert "record of runs" in plain and "web-v2 deployed (Failed)" in plain


def test_the_history_shows_each_revision_s_image_version_as_its_registry_said_inert():
    deployed = run(deployedReplicaSet="web-1", phase="Succeeded", imageVersion=EVIL, imageRevision="0123abcdef0123abcd")
    plain = assert_inert(views.history_table(DEPLOYMENT, [REPLICA_SET], [deployed], NOW))
    assert "VERSION" in plain.splitlines()[1] and "(0123abcdef01)" in plain


def test_the_status_line():
    assert_inert(views.status_line(run()))


def evil_plan(ends: str | None) -> Plan:
    status = RunStatus(deployed_release_id=EVIL, previous_release_id=EVIL, previous_replica_set=EVIL,
                       rollback_target_release_id=EVIL)
    patch = {"spec": {"template": {"metadata": {"annotations": {"selfbootstrap.dev/release-id": EVIL}}}}}
    return Plan(ends, EVIL, EVIL, True, patch, status,
                (PolicyOutcome(EVIL, EVIL, EVIL, EVIL, 2), PolicyOutcome(EVIL, EVIL, EVIL, None, None)))


def test_the_plan():
    plain = assert_inert(views.plan_view(evil_plan(None), EVIL, EVIL))
    assert "rollback policy if a gate fails" in plain


def test_a_plan_that_would_end_early():
    assert_inert(views.plan_view(evil_plan("Failed"), EVIL, EVIL))


def test_the_plan_as_json_is_printable_ascii_and_round_trips():
    document = views.json_text(views.plan_json(evil_plan(None)))
    assert all(c == "\n" or " " <= c <= "~" for c in document)
    # status text is stored escaped already (models.py); the plan's JSON keeps whatever it holds, as ASCII
    assert json.loads(document)["status"]["deployedReleaseId"] == printable(EVIL, NAME_LIMIT)


def test_each_piece_is_bounded():
    label = views.line("release ", "x" * 1000)
    assert label.plain.startswith("release x") and len(label.plain) == len("release ") + views.CELL_LIMIT
