"""End-to-end: the bad-input corpus (tests/corpus/*.yaml, format in tests/corpus/README.md), one test per file.

A case is rejected at admission with its field named, or admitted and ends Failed with a specific
reason (or Succeeded, for legal but odd input) within its deadline, with a bounded number of Events.
Every admitted case starts at once, each in a namespace of its own (the module fixture `corpus`);
each test then waits for and judges its own case, and the last test checks that the operator
outlived them all.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from selfbootstrap.adapters.kube import api_message
from selfbootstrap.core.text import printable
from selfbootstrap.models import TERMINAL_PHASES
from tests.support.gitserver.fake_github import FakeGitHub
from tests.support.gitserver.git_http import GitHttpServer

from .cluster import SESSION, wait_for
from .git_fixtures import TOKEN
from .kube_helpers import GROUP, PLURAL, VERSION, create_deployment, deployment
from .operator_fixtures import OperatorProcess

pytestmark = pytest.mark.e2e

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
KINDS = ("rejected", "failed", "succeeded")
FINISHED = {str(phase) for phase in TERMINAL_PHASES}
EVENT_LIMIT = 15  # Events about one run
OCCURRENCE_LIMIT = 30  # their occurrences, each Event's series counted
DEFAULT_WITHIN = 60.0
LAUNCHERS = 16
V1 = "registry.example.com/app:v1"
RELEASE_ANNOTATION = "selfbootstrap.dev/release-id"
CHANGE_CAUSE = "kubernetes.io/change-cause"
REPEAT = re.compile(r"\$\{REPEAT\((.*?),(\d+)\)\}", re.DOTALL)


# --- the cases ----------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Case:
    name: str
    data: dict[str, Any]

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if k in self.data["expect"])

    @property
    def run_name(self) -> str:
        return str(self.data.get("name") or self.name)


def load(path: Path) -> Case:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and data.get("description"), f"{path.name}: needs a description"
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", path.stem), f"{path.name}: name it in lower-case-words"
    kinds = [k for k in KINDS if k in (data.get("expect") or {})]
    assert len(kinds) == 1, f"{path.name}: expect needs exactly one of {', '.join(KINDS)}"
    return Case(path.stem, data)


def params() -> list[Any]:
    cases = [load(path) for path in sorted(CORPUS.glob("*.yaml"))]
    return [pytest.param(c, id=c.name, marks=[pytest.mark.xfail(strict=True, reason=c.data["xfail"])]
                         if c.data.get("xfail") else []) for c in cases]


def substitute(value: Any, values: dict[str, str]) -> Any:
    """The case with its placeholders filled in: ${NAME} from values, ${REPEAT(text,n)} as text n times."""
    if isinstance(value, str):
        value = REPEAT.sub(lambda m: m.group(1) * int(m.group(2)), value)
        for key, text in values.items():
            value = value.replace("${" + key + "}", text)
        return value
    if isinstance(value, list):
        return [substitute(v, values) for v in value]
    if isinstance(value, dict):
        return {substitute(k, values): substitute(v, values) for k, v in value.items()}
    return value


def placeholders(git: GitHttpServer, forge: FakeGitHub, namespace: str) -> dict[str, str]:
    repo = f"acme/{namespace}"
    return {"GIT_URL": git.base_url, "GIT_HOST": git.base_url.split("://", 1)[1], "FORGE_URL": forge.api_url,
            "FORGE_HOST": forge.api_url.split("://", 1)[1], "REPO": repo, "REPO_URL": f"{git.base_url}/{repo}.git",
            "TOKEN": TOKEN, "NAMESPACE": namespace}


# --- launching ------------------------------------------------------------------


@dataclass
class Launched:
    case: Case
    namespace: str
    data: dict[str, Any] = field(default_factory=dict)  # the case, placeholders filled in
    secrets: list[bytes] = field(default_factory=list)  # values that must never be shown
    created: float = 0.0  # when the run was created (time.monotonic)
    error: str | None = None


@dataclass
class Corpus:
    git: GitHttpServer
    forge: FakeGitHub
    namespace: str  # where the rejected cases are tried
    starts: int  # the operator's starts when the corpus began
    launched: dict[str, Launched] = field(default_factory=dict)


def namespace_for(label: str) -> str:
    """A namespace of this session (the operator watches e2e-<session>-*), ready for pods and Jobs."""
    name = f"e2e-{SESSION}-{label[:40].rstrip('-')}-{hashlib.sha1(label.encode()).hexdigest()[:6]}"
    core = client.CoreV1Api()
    core.create_namespace({"metadata": {"name": name, "labels": {"selfbootstrap.dev/e2e": "true"}}})
    wait_for(lambda: core.list_namespaced_service_account(name, field_selector="metadata.name=default").items,
             60, f"namespace {name} never got its default ServiceAccount")
    return name


def create_secrets(namespace: str, secrets: list[dict[str, Any]]) -> list[bytes]:
    shown: list[bytes] = []
    for s in secrets:
        data = dict(s.get("data") or {})
        shown += [base64.b64decode(v) for v in data.values()]
        shown += [str(v).encode() for v in (s.get("stringData") or {}).values()]
        client.CoreV1Api().create_namespaced_secret(namespace, {
            "metadata": {"name": s["name"], "annotations": s.get("annotations") or {}},
            "data": data, "stringData": s.get("stringData") or {}})
    return shown


def run_body(name: str, data: dict[str, Any]) -> dict[str, Any]:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "SelfBootstrapRun", "metadata": {"name": name}}
    return {**body, "spec": data["spec"]} if "spec" in data else body


def create_run(namespace: str, name: str, data: dict[str, Any]) -> None:
    client.CustomObjectsApi().create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                                              run_body(name, data))


def launch(case: Case, corpus: Corpus) -> Launched:
    """Set up what the case needs, then create its run; a failure is kept for the case's own test."""
    launched = Launched(case, "")
    try:
        launched.namespace = namespace_for(case.name)
        launched.data = data = substitute(case.data, placeholders(corpus.git, corpus.forge, launched.namespace))
        launched.secrets = create_secrets(launched.namespace, data.get("secrets") or [])
        if "repository" in data:
            repo = data["repository"]
            corpus.git.create_repo(f"acme/{launched.namespace}", repo.get("files") or {},
                                   symlinks=repo.get("symlinks"))
        if data.get("deployment", True):
            create_deployment(launched.namespace, "app", V1, "v1", replicas=1)
        create_run(launched.namespace, case.run_name, data)
        launched.created = time.monotonic()
    except Exception as err:
        launched.error = f"{type(err).__name__}: {api_message(err) if isinstance(err, ApiException) else err}"
    return launched


def selected(request: pytest.FixtureRequest) -> list[Case]:
    """The cases this session runs (so that `-k one-case` launches one case)."""
    found = [getattr(item, "callspec", None) for item in request.session.items]
    return [c.params["case"] for c in found if c is not None and isinstance(c.params.get("case"), Case)]


def ignoring_404(call: Any, *args: Any, **kwargs: Any) -> None:
    try:
        call(*args, **kwargs)
    except ApiException as err:
        if err.status != 404:
            raise


def unblock_deletion(launched: Launched) -> None:
    """Delete a run that has not finished and drop its finalizer, so that its namespace can go even
    when the operator stops before it gets to the deletion."""
    api, name = client.CustomObjectsApi(), launched.case.run_name
    try:
        if run_status(launched.namespace, name).get("phase") in FINISHED:
            return
    except ApiException as err:
        if err.status == 404:
            return
        raise
    ignoring_404(api.delete_namespaced_custom_object, GROUP, VERSION, launched.namespace, PLURAL, name)
    ignoring_404(api.patch_namespaced_custom_object, GROUP, VERSION, launched.namespace, PLURAL, name,
                 {"metadata": {"finalizers": None}})


@pytest.fixture(scope="module")
def corpus(request: pytest.FixtureRequest, cluster, operator: OperatorProcess, git_server: GitHttpServer,
           forge: FakeGitHub) -> Iterator[Corpus]:
    forge.set_ci(None, ["success"])
    forge.refuse_merges(None)
    found = Corpus(git_server, forge, namespace_for("admission"), operator.starts)
    admitted = [c for c in selected(request) if c.kind != "rejected"]
    with ThreadPoolExecutor(LAUNCHERS) as pool:
        found.launched = {done.case.name: done for done in pool.map(lambda c: launch(c, found), admitted)}
    yield found
    for done in found.launched.values():
        if done.created:
            unblock_deletion(done)
    for namespace in [found.namespace, *(done.namespace for done in found.launched.values() if done.namespace)]:
        ignoring_404(client.CoreV1Api().delete_namespace, namespace, propagation_policy="Background")


# --- judging ------------------------------------------------------------------------


def run_status(namespace: str, name: str) -> dict[str, Any]:
    run = client.CustomObjectsApi().get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    return dict(run.get("status") or {})


def summary(st: dict[str, Any]) -> str:
    return f"phase {st.get('phase')}, reason {st.get('reason')}: {st.get('message')}"


def wait_finished(launched: Launched) -> dict[str, Any]:
    within = float(launched.data["expect"].get("within", DEFAULT_WITHIN))
    name = launched.case.run_name
    left = launched.created + within - time.monotonic()
    wait_for(lambda: run_status(launched.namespace, name).get("phase") in FINISHED, max(left, 1.0),
             lambda: f"not finished within {within:g}s: {summary(run_status(launched.namespace, name))}")
    return run_status(launched.namespace, name)


def run_events(namespace: str, name: str) -> list[dict[str, Any]]:
    """The events.k8s.io/v1 Events regarding the run (read raw: the client's models refuse some Events)."""
    raw = client.EventsV1Api().list_namespaced_event(namespace, _preload_content=False)
    return [e for e in json.loads(raw.data)["items"]
            if (e.get("regarding") or {}).get("kind") == "SelfBootstrapRun" and e["regarding"].get("name") == name]


def noise(launched: Launched) -> str | None:
    """Why the run's Events look like a storm, or None."""
    events = run_events(launched.namespace, launched.case.run_name)
    occurrences = sum(int((e.get("series") or {}).get("count") or 1) for e in events)
    if len(events) <= EVENT_LIMIT and occurrences <= OCCURRENCE_LIMIT:
        return None
    reasons = sorted({str(e.get("reason")) for e in events})
    return f"{len(events)} Events ({occurrences} occurrences) about the run: {reasons}"


def secret_lines(launched: Launched) -> set[str]:
    """The lines of the case's Secret values that would give a value away (long enough to be telling)."""
    lines = {line.strip() for value in launched.secrets for line in value.decode(errors="ignore").splitlines()}
    return {line for line in lines if len(line) >= 6}


def assert_nothing_shown(launched: Launched, st: dict[str, Any]) -> None:
    seen = json.dumps(st, ensure_ascii=False) + json.dumps(run_events(launched.namespace, launched.case.run_name),
                                                          ensure_ascii=False)
    assert not [line for line in secret_lines(launched) if line in seen], "a Secret's value shows in status or Events"


def assert_deployed_as_given(launched: Launched) -> None:
    """The odd values of a succeeded run reached the Deployment exactly as given."""
    spec = launched.data["spec"]
    release, dep = spec["release"], deployment(launched.namespace, "app")
    template = dep.spec.template
    if "image" in release:
        wanted = spec["target"].get("container") or "app"
        assert next(c.image for c in template.spec.containers if c.name == wanted) == release["image"]
    if "id" in release:
        assert template.metadata.annotations[RELEASE_ANNOTATION] == release["id"]
    if "changeCause" in release:  # free text: kept as data, its control characters escaped (core/text.py)
        assert dep.metadata.annotations[CHANGE_CAUSE] == printable(release["changeCause"])


def assert_merged_as_given(launched: Launched, git: GitHttpServer) -> None:
    """The files (and the manifest) the case expects on the repository's main branch."""
    expect, repo = launched.data["expect"], f"acme/{launched.namespace}"
    for path, content in (expect.get("files") or {}).items():
        assert git.read_file(repo, "main", path) == content, f"{path} on main"
    if "manifest" in expect:
        assert_manifest(git.read_file(repo, "main", expect["manifest"]["path"]), expect["manifest"])


class TolerantLoader(yaml.SafeLoader):
    """Reads a manifest as data: a tag it does not know (e.g. !!python/...) is read as null."""


TolerantLoader.add_multi_constructor("", lambda loader, suffix, node: None)


def assert_manifest(text: str, wanted: dict[str, Any]) -> None:
    docs = [d for d in yaml.load_all(text, Loader=TolerantLoader)
            if isinstance(d, dict) and d.get("kind") == "Deployment"]
    assert len(docs) == 1, f"the manifest on main holds {len(docs)} Deployments:\n{text}"
    template = docs[0]["spec"]["template"]
    if "image" in wanted:
        assert template["spec"]["containers"][0]["image"] == wanted["image"], text
    if "releaseId" in wanted:
        assert template["metadata"]["annotations"][RELEASE_ANNOTATION] == wanted["releaseId"], text


def judge_rejected(case: Case, corpus: Corpus) -> None:
    data = substitute(case.data, placeholders(corpus.git, corpus.forge, corpus.namespace))
    with pytest.raises(ApiException) as err:
        create_run(corpus.namespace, case.run_name, data)
    message = api_message(err.value)
    assert err.value.status == 422, message
    assert data["expect"]["rejected"] in message


def judge_admitted(launched: Launched, git: GitHttpServer) -> None:
    assert launched.error is None, f"the case could not be set up or was not admitted: {launched.error}"
    expect = launched.data["expect"]
    st = wait_finished(launched)
    if launched.case.kind == "failed":
        assert (st.get("phase"), st.get("reason")) == ("Failed", expect["failed"]), summary(st)
        assert expect.get("message", "") in str(st.get("message")), summary(st)
    else:
        assert st.get("phase") == "Succeeded", summary(st)
        assert_deployed_as_given(launched)
        assert_merged_as_given(launched, git)
    assert noise(launched) is None, noise(launched)
    assert_nothing_shown(launched, st)


@pytest.mark.parametrize("case", params())
def test_case(case: Case, corpus: Corpus) -> None:
    if case.kind == "rejected":
        judge_rejected(case, corpus)
    else:
        judge_admitted(corpus.launched[case.name], corpus.git)


def test_the_operator_outlived_the_corpus(corpus: Corpus, operator: OperatorProcess) -> None:
    assert operator.proc is not None and operator.proc.poll() is None, f"the operator exited:\n{operator.tail()}"
    assert operator.starts == corpus.starts, "the operator was restarted during the corpus"
    noisy = {name: why for name, done in corpus.launched.items() if done.error is None and (why := noise(done))}
    assert not noisy, noisy
    log = operator.log()
    shown = {name for name, done in corpus.launched.items() if any(line in log for line in secret_lines(done))}
    assert not shown, f"a Secret's value shows in the operator's log (cases {sorted(shown)})"
