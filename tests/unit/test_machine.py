"""machine.py: every transition of decide() and settle() for a deploy-only run.

The scenario (see factories.py): Deployment "web" runs v2 (rs-2) after v1 (rs-1);
the run deploys v3. The clock is fixed: T0 and at(seconds).
"""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest

from selfbootstrap.core import machine, record
from selfbootstrap.core.actions import (
    Deployed,
    Failed,
    ImageUnresolved,
    PatchDeployment,
    Probed,
    ProbeHttp,
    Released,
    ReleaseWorkload,
    ResolveImage,
    Result,
    RollbackDeployment,
    Undone,
)
from selfbootstrap.core.decision import Decision
from selfbootstrap.core.machine import MIN_WAIT_SECONDS, POLL_SECONDS, QUEUE_SECONDS, WATCH_SECONDS
from selfbootstrap.core.patches import rollback_patch
from selfbootstrap.core.world import PodState
from selfbootstrap.models import (
    CHANGE_CAUSE_ANNOTATION,
    HISTORY_LIMIT,
    RELEASE_ANNOTATION,
    RELEASE_IMAGES_ANNOTATION,
    RUN_ANNOTATION,
    RUNS_ANNOTATION,
    HttpCheck,
    RunStatus,
    Transition,
)

from .factories import (
    IMAGE,
    REV1,
    REV2,
    REV3,
    RUN,
    T0,
    V3_DIGEST,
    at,
    container,
    deployed,
    deployment,
    held_record,
    holding,
    image,
    pod,
    resolved,
    rev,
    rolled_back,
    rolling_back,
    run,
    spec,
    status,
    tmpl,
    verifying,
    watching,
    world,
)

NO_REGISTRY = "not resolved: no registry in these tests"  # the registry was asked (test_registry.py has that)
HEALTHY_POD = pod("web-1")
CRASHING_POD = pod("web-1", container(waiting_reason="CrashLoopBackOff", restart_count=3, ready=False),
                   ready=False)
UNREADY_POD = pod("web-1", container(ready=False), ready=False)
HTTP = {"health": {"http": {"url": "http://web/healthz", "retries": 3, "intervalSeconds": 5}}}
HTTP_CHECK = HttpCheck(url="http://web/healthz", retries=3, interval_seconds=5)
NO_WATCHDOG = {"restartWatchdog": {"enabled": False}}
SELF_HOSTED = {"target": {"deploymentContext": "selfHosted"}}


def held(st: RunStatus | None, w):
    """A run past Pending holds its workload: unless the test gives the Deployment a record of its own, the
    record says the run holds it (tests of the gate and of lost claims set the record themselves)."""
    if st is None or st.phase in (None, "Pending") or w.deployment is None or RUNS_ANNOTATION in \
            w.deployment.annotations:
        return w
    return replace(w, deployment=holding(w.deployment))


def decide(st: RunStatus | None, w, sp=None, now=T0, generation: int = 1) -> Decision:
    return machine.decide(run(st, sp, generation=generation), held(st, w), now)


def settle(st: RunStatus, w, action, outcome: Result, sp=None, now=T0) -> Decision:
    return machine.settle(run(st, sp), held(st, w), action, outcome, now)


def where(decision) -> tuple[str | None, str | None]:
    return decision.status.phase, decision.status.reason


def events(decision) -> list[tuple[str, str]]:
    return [(e.type, e.reason) for e in decision.events]


def transitions(decision) -> list[tuple[str, str]]:
    return [(t.phase, t.reason) for t in decision.status.history]


def conditions(decision) -> dict[str, str]:
    return {c.type: c.status for c in decision.status.conditions}


def unchanged(before: RunStatus, after: RunStatus) -> bool:
    """Equal apart from what every decision refreshes (observedGeneration, conditions)."""
    skip = {"observed_generation", "conditions"}
    return before.model_dump(exclude=skip) == after.model_dump(exclude=skip)


def assert_finished(decision, phase: str, reason: str, now=T0) -> None:
    assert where(decision) == (phase, reason)
    assert decision.status.finished_at == now
    assert decision.requeue_after is None
    assert decision.action is None or isinstance(decision.action, ReleaseWorkload)
    assert transitions(decision)[-1] == (phase, reason)


# --- new runs, Pending, the target disappearing, terminal runs ----------------------------


@pytest.mark.parametrize("dep", [pytest.param(deployment(), id="deployment-present"),
                                 pytest.param(None, id="deployment-absent")])
def test_new_run_is_accepted(dep):
    d = decide(None, world(dep), generation=3)
    assert where(d) == ("Pending", "Accepted")
    assert (d.action, d.events, d.requeue_after) == (None, (), 0)
    assert d.status.history == [Transition(phase="Pending", reason="Accepted", message="run accepted", at=T0)]
    assert (d.status.observed_generation, d.status.phase_started_at, d.status.started_at) == (3, T0, None)
    expected = {"Progressing": "True", "Ready": "False", "Degraded": "False", "RolledBack": "False"}
    assert conditions(d).items() >= expected.items()
    assert all(c.observed_generation == 3 for c in d.status.conditions)


def other_holder() -> str:
    """The workload's record with another run (run-0) holding it."""
    return held_record(uid="u-0", name="run-0", release="v2")


def test_pending_run_is_queued_behind_the_holder():
    accepted = decide(None, world(deployment())).status
    busy = deployment(annotations={RUNS_ANNOTATION: other_holder()})
    d = decide(accepted, world(busy), now=at(1))
    assert where(d) == ("Pending", "Queued")
    assert "run-0" in d.status.message
    assert (d.action, d.requeue_after, d.status.started_at) == (None, QUEUE_SECONDS, None)
    assert transitions(d) == [("Pending", "Accepted"), ("Pending", "Queued")]
    assert d.status.phase_started_at == T0, "a new reason within the phase keeps the phase's start"

    again = decide(d.status, world(busy), now=at(6))
    assert unchanged(d.status, again.status), "waiting in the queue adds no history"


def looked_up(st: RunStatus) -> RunStatus:
    """The status once the registry was asked (and could not say): the next decision is the deploy."""
    return st.model_copy(update={"image_lookup": NO_REGISTRY, "deployed_image": image("v3")})


def test_a_holder_that_ended_without_letting_go_is_taken_over():
    busy = deployment(annotations={RUNS_ANNOTATION: other_holder()})
    d = decide(looked_up(status(phase="Pending", reason="Queued")), world(busy, holder_running=False), now=at(7))
    assert isinstance(d.action, PatchDeployment) and d.action.takes
    written = record.parse(d.action.patch["metadata"]["annotations"][RUNS_ANNOTATION])
    assert written.held_by("u-1") and not written.held_by("u-other")
    assert d.status.phase == "Pending", "still Pending until the patch is won"


def test_a_free_workload_is_taken_and_deployed_in_one_patch():
    st = status(phase="Pending", reason="Queued")
    d = decide(st, world(deployment()), now=at(7))
    assert isinstance(d.action, ResolveImage) and unchanged(st, d.status), "first the registry is asked"
    st = looked_up(st)
    d = decide(st, world(deployment(resource_version="4711")), now=at(7))
    assert isinstance(d.action, PatchDeployment) and d.action.takes and d.requeue_after == POLL_SECONDS
    patch = d.action.patch
    assert patch["metadata"]["resourceVersion"] == "4711", "of two runs that read the same workload, one wins"
    written = record.parse(patch["metadata"]["annotations"][RUNS_ANNOTATION])
    assert written.held_by("u-1") and written.newest.run == RUN and written.entry("u-1").outcome == "deployed"
    assert written.entry("u-1").previous == "rs-2", "the record keeps what the run deploys over"
    assert patch["spec"]["template"]["spec"] == {"containers": [{"name": "app", "image": image("v3")}]}
    s = d.status
    assert where(d) == ("Pending", "ReleasesResolved"), "in flight only once the patch is won"
    assert (s.deployed_release_id, s.previous_replica_set, s.started_at) == ("v3", "rs-2", at(7))
    assert events(d) == [("Normal", "Started")]
    d = settle(d.status, world(deployment()), d.action, Deployed(V3_DIGEST), now=at(7))
    assert where(d) == ("VerifyingHealth", "Deployed") and d.status.deploy_patched_at == at(7)


def test_a_workload_running_the_release_already_is_taken_without_a_rollout():
    d = decide(looked_up(status(phase="Pending", reason="Accepted")), world(deployed(resource_version="7")), now=at(3))
    assert d.action.takes and set(d.action.patch) == {"metadata"}, "the template is not touched"
    assert d.action.patch["metadata"]["resourceVersion"] == "7"
    written = record.parse(d.action.patch["metadata"]["annotations"][RUNS_ANNOTATION])
    assert written.held_by("u-1") and written.entry("u-1").outcome == "deployed"
    assert set(d.action.patch["metadata"]["annotations"]) == {RUNS_ANNOTATION}, "nor the change cause"


def test_a_take_refused_whole_ends_the_run_saying_nothing_was_touched():
    st = looked_up(status(phase="Pending", reason="Accepted"))
    take = decide(st, world(deployment())).action
    d = settle(decide(st, world(deployment())).status, world(deployment()), take,
               Failed("DeployRefused", "403: forbidden"))
    assert_finished(d, "Failed", "DeployRefused")
    assert d.status.message == "403: forbidden; the Deployment was not touched"
    assert d.action is None, "nothing to let go of: the run never held it"


@pytest.mark.parametrize("forged", [
    pytest.param({"deployed_image": "evil.example/miner:1"}, id="another-image"),
    pytest.param({"deployed_image": "evil.example/miner@sha256:" + "a" * 64, "image_digest": "sha256:" + "a" * 64},
                 id="another-image-pinned"),
])
def test_status_never_names_the_image_deployed(forged):
    """Status says which digest the registry named; the spec says which image: a status naming another image
    (not written by the run) is not deployed."""
    st = looked_up(status(phase="Pending", reason="Accepted")).model_copy(update=forged)
    d = decide(st, world(deployment()))
    assert d.action.patch["spec"]["template"]["spec"]["containers"][0]["image"] == image("v3")


def test_the_digest_the_registry_named_is_deployed():
    digest = "sha256:" + "b" * 64
    st = looked_up(status(phase="Pending", reason="Accepted")).model_copy(update={
        "image_digest": digest, "deployed_image": f"{image('v3')}@{digest}"})
    d = decide(st, world(deployment()))
    assert d.action.patch["spec"]["template"]["spec"]["containers"][0]["image"] == f"{image('v3')}@{digest}"


@pytest.mark.parametrize("sp", [None, spec(git={"repositoryUrl": "https://git.example/acme/web.git",
                                                  "change": {"setImage": {"path": "deploy/app.yaml"}}})])
def test_a_run_naming_a_refused_url_fails_before_it_claims_or_starts_git(sp):
    st = status(phase="Pending", reason="Accepted")
    refused = "the operator's egress policy refuses http://169.254.169.254/: 169.254.169.254 is link-local"
    d = machine.decide(run(st, sp) if sp else run(st), world(deployment(), refused=refused), at(7))
    assert d.action is None and where(d) == ("Failed", "EgressRefused")
    assert refused in (d.status.message or "") and "not touched" in (d.status.message or "")
    assert d.status.failure_reason == "EgressRefused"


def test_a_git_run_made_again_is_superseded_before_it_proposes_anything():
    """An old git run re-created (a GitOps engine re-applying a pruned run) must not push its old release to
    git, where an engine syncing the base branch would deploy it: the record is asked before git starts."""
    git = spec(git={"repositoryUrl": "https://git.example/acme/web.git",
                    "change": {"setImage": {"path": "deploy/app.yaml"}}})
    dep = holding(deployment(), uid="u-old", outcome=record.SUCCEEDED)
    d = machine.decide(run(status(phase="Pending", reason="Accepted"), git), world(dep), at(7))
    assert d.action is None and where(d) == ("Superseded", "Superseded")
    assert "already deployed release v3" in (d.status.message or "") and "nothing was pushed" in (d.status.message
                                                                                                  or "")
    redeploy = spec(release={"redeploy": True}, git=git.git.model_dump(by_alias=True, exclude_none=True))
    d = machine.decide(run(status(phase="Pending", reason="Accepted"), redeploy), world(dep), at(7))
    assert d.status.phase != "Superseded", "spec.release.redeploy proposes it anyway"


def test_the_take_passes_over_the_older_runs_that_wait():
    d = decide(looked_up(status(phase="Pending", reason="Queued")),
               world(deployment(), passed_over=("older-a", "older-b")))
    written = record.parse(d.action.patch["metadata"]["annotations"][RUNS_ANNOTATION])
    assert written.passed_over("older-a") and written.passed_over("older-b") and not written.passed_over(RUN)


def test_the_record_keeps_the_release_the_run_asked_for_as_the_gate_compares_it():
    """A digest-only image whose registry names a version: the record holds the digest the gate compares, so an
    older run with that digest is still told apart (replay safety)."""
    digest = "sha256:" + "c" * 64
    sp = spec(release={"image": f"registry.local:5000/team/web@{digest}"})
    st = status(phase="Pending", reason="Accepted", image_lookup="resolved by registry.local:5000",
                image_digest=digest, image_version="1.2.3", deployed_image=f"registry.local:5000/team/web@{digest}")
    d = decide(st, world(deployment()), sp=sp)
    assert d.status.deployed_release_id == "1.2.3"
    entry = record.parse(d.action.patch["metadata"]["annotations"][RUNS_ANNOTATION]).entry("u-1")
    assert entry.release == digest and entry.previous == "rs-2"


def test_status_and_the_record_name_one_previous_replica_set_when_the_registry_names_the_release():
    """A digest-only image whose registry names a version the Deployment already runs (a repeated run): the
    release before that one is the previous one, for status and for the record the undo reads alike."""
    digest = "sha256:" + "c" * 64
    sp = spec(release={"image": f"registry.local:5000/team/web@{digest}"})
    st = status(phase="Pending", reason="Accepted", image_lookup="resolved by registry.local:5000",
                image_digest=digest, image_version="1.2.3", deployed_image=f"registry.local:5000/team/web@{digest}")
    dep = deployment(tmpl("1.2.3"), revisions=(REV1, REV2, rev("rs-3", 3, "1.2.3")))
    d = decide(st, world(dep), sp=sp)
    entry = record.parse(d.action.patch["metadata"]["annotations"][RUNS_ANNOTATION]).entry("u-1")
    assert (d.status.previous_replica_set, entry.previous) == ("rs-2", "rs-2")


def test_a_run_sent_to_wait_asks_the_registry_again_when_it_goes():
    busy = deployment(annotations={RUNS_ANNOTATION: other_holder()})
    d = decide(looked_up(status(phase="Pending", reason="ReleasesResolved")), world(busy))
    assert d.status.reason == "Queued" and (d.status.image_lookup, d.status.deployed_image) == (None, None)


def test_an_abort_after_a_deploy_status_did_not_yet_say_acts_as_after_the_deploy():
    """The take applied, the run stopped before writing so, and a person aborted it: it says it deployed first,
    then rolls back as after any deploy, never 'nothing was deployed'."""
    st = looked_up(status(phase="Pending", reason="ReleasesResolved", deployed_release_id="v3",
                          previous_release_id="v2", previous_replica_set="rs-2", previous_revision=2,
                          rollback_target_release_id="v2", release_metadata_source="deploymentRevisions"))
    dep = holding(deployed(), outcome="deployed")
    aborted = replace(run(st), abort="bad idea")
    d, _ = machine.decide_chained(aborted, world(dep, (HEALTHY_POD,)), at(1))
    assert d.status.deploy_patched_at is not None
    assert where(d) == ("RollingBack", "Aborted") and d.status.failure_reason == "Aborted"
    claimed = holding(deployment(), outcome="claimed")  # claimed by an older version, not deployed: stops here
    d, _ = machine.decide_chained(replace(run(status(phase="Deploying", reason="Claimed")), abort="x"),
                                  world(claimed), at(1))
    assert where(d) == ("Failed", "Aborted") and "nothing was deployed" in (d.status.message or "")


def test_a_lost_take_race_decides_again_on_the_newer_record():
    st = looked_up(status(phase="Pending", reason="Accepted"))
    first = decide(st, world(deployment()))
    d = settle(first.status, world(deployment()), first.action,
               Failed("DeployRefused", "409: the object has been modified", retryable=True, stale=True))
    assert where(d) == ("Pending", "ReleasesResolved") and d.requeue_after == 0
    d = decide(d.status, world(deployment(annotations={RUNS_ANNOTATION: other_holder()})), now=at(1))
    assert where(d) == ("Pending", "Queued") and d.action is None


def test_a_lost_take_race_deploys_over_what_the_workload_runs_then():
    """Between the status that said what the patch would do and the next try, another release went live: the
    run deploys over that one, saying so."""
    st = looked_up(status(phase="Pending", reason="Accepted"))
    first = decide(st, world(deployment()))
    d = settle(first.status, world(deployment()), first.action,
               Failed("DeployRefused", "409", retryable=True, stale=True))
    newer = deployment(tmpl("v2b"), revisions=(REV1, REV2, rev("rs-4", 4, "v2b")), resource_version="200")
    d = decide(d.status, world(newer), now=at(1))
    assert (d.status.previous_release_id, d.status.previous_replica_set) == ("v2b", "rs-4")
    assert d.action.patch["metadata"]["resourceVersion"] == "200"


def test_a_run_that_took_the_workload_and_stopped_before_saying_so_goes_on():
    d = decide(status(phase="Pending", reason="ReleasesResolved", deployed_release_id="v3",
                      release_metadata_source="deploymentRevisions", image_lookup=NO_REGISTRY),
               world(holding(deployed(), outcome="deployed")))
    assert where(d) == ("Deploying", "Claimed") and d.action is None


def test_a_run_that_waited_no_longer_says_queued_once_it_goes():
    """The status written before the deploy says what the run deploys, not the wait it came out of (a run
    admitted from the namespace's line keeps its Queued status until then)."""
    d = decide(looked_up(status(phase="Pending", reason="Queued", message="waiting for run 'x'")),
               world(deployment()), now=at(7))
    assert isinstance(d.action, PatchDeployment) and where(d) == ("Pending", "ReleasesResolved")
    assert "waiting" not in (d.status.message or "")


def test_a_status_saying_deploying_does_not_make_a_run_the_holder():
    """A run whose status says it resolved its releases, but whose record says someone else holds the workload
    (the status was not written by the run): it waits at the gate like any run."""
    busy = deployment(annotations={RUNS_ANNOTATION: other_holder()})
    d = decide(resolved(), world(busy))
    assert (d.status.reason, d.action) == ("Queued", None)


def test_started_at_is_kept_when_already_set():
    d = decide(status(phase="Pending", reason="Queued", started_at=T0), world(deployment()), now=at(9))
    assert d.status.started_at == T0


@pytest.mark.parametrize("st, rollback_healthy", [
    pytest.param(status(phase="Pending", reason="Accepted"), None, id="Pending"),
    pytest.param(resolved(), None, id="Deploying"),
    pytest.param(verifying(), None, id="VerifyingHealth"),
    pytest.param(watching(), None, id="WatchingRestarts"),
    pytest.param(rolling_back(), False, id="RollingBack"),
])
def test_target_missing_fails_the_run(st, rollback_healthy):
    d = decide(st, world(None), now=at(3))
    assert_finished(d, "Failed", "TargetNotFound", now=at(3))
    assert "'web' not found" in d.status.message
    assert d.status.rollback_healthy is rollback_healthy
    assert events(d) == [("Warning", "Failed")]
    assert conditions(d)["Degraded"] == "True"


@pytest.mark.parametrize("phase", ["Succeeded", "RolledBack", "Failed"])
def test_terminal_runs_stay_put(phase):
    st = status(phase=phase, reason="Done", finished_at=T0,
                history=[Transition(phase=phase, reason="Done", at=T0)])
    d = decide(st, world(None), now=at(100))
    assert unchanged(st, d.status)
    assert (d.action, d.events, d.requeue_after) == (None, (), None)


# --- Deploying: resolve releases first ----------------------------------------------------


@pytest.mark.parametrize("release, expected", [
    pytest.param({}, ("v3", "v2", 2, "rs-2", "v2", "deploymentRevisions"), id="from-deployment-revisions"),
    pytest.param({"id": "rel-3"}, ("rel-3", "v2", 2, "rs-2", "v2", "deploymentRevisions"), id="spec-id"),
    pytest.param({"previousReleaseId": "v1"}, ("v3", "v1", 2, "rs-2", "v1", "deploymentRevisions"),
                 id="spec-previous"),
    pytest.param({"rollbackReleaseId": "v1"}, ("v3", "v2", 2, "rs-2", "v1", "deploymentRevisions"),
                 id="spec-rollback-target"),
])
def test_deploying_resolves_releases_before_anything_else(release, expected):
    st = status(phase="Deploying", reason="Started", image_lookup=NO_REGISTRY, started_at=T0)
    d = decide(st, world(deployment(), crd_generation=7), sp=spec(release=release), now=at(1))
    s = d.status
    assert where(d) == ("Deploying", "ReleasesResolved")
    assert (s.deployed_release_id, s.previous_release_id, s.previous_revision, s.previous_replica_set,
            s.rollback_target_release_id, s.release_metadata_source) == expected
    assert s.crd_generation_at_deploy == 7
    assert (d.action, d.requeue_after, s.deploy_patched_at) == (None, 0, None)
    assert transitions(d)[-1] == ("Deploying", "ReleasesResolved")


def test_resolving_when_the_deployment_already_runs_the_release():
    d = decide(status(phase="Deploying", reason="Started", image_lookup=NO_REGISTRY), world(deployed()))
    s = d.status
    assert (s.deployed_release_id, s.previous_release_id, s.previous_replica_set) == ("v3", "v2", "rs-2")


def test_resolving_without_any_revision():
    d = decide(status(phase="Deploying", reason="Started", image_lookup=NO_REGISTRY), world(deployment(revisions=())))
    s = d.status
    assert (s.deployed_release_id, s.previous_release_id, s.previous_revision, s.rollback_target_release_id) == (
        "v3", None, None, None)


TWO_CONTAINERS = tmpl("v2", containers=[{"name": "app", "image": image("v2")},
                                        {"name": "sidecar", "image": "reg/proxy:1"}])


@pytest.mark.parametrize("template, target, message", [
    pytest.param(tmpl("v2"), {"container": "sidecar"}, "container 'sidecar' not found", id="named-absent"),
    pytest.param(TWO_CONTAINERS, {}, "spec.target.container is required", id="ambiguous"),
])
@pytest.mark.parametrize("st", [pytest.param(status(phase="Deploying", reason="Started", image_lookup=NO_REGISTRY),
                                             id="unresolved"),
                                pytest.param(resolved(), id="resolved")])
def test_invalid_container_fails(template, target, message, st):
    d = decide(st, world(deployment(template)), sp=spec(target=target))
    assert_finished(d, "Failed", "InvalidTarget")
    assert message in d.status.message


@pytest.mark.parametrize("template", [
    pytest.param(tmpl("v2"), id="current-release-known"),
    pytest.param(tmpl(img=IMAGE, annotated=False), id="current-release-unknown"),
])
def test_image_without_tag_or_id_fails(template):
    """Never name the new image after the release the Deployment runs now."""
    d = decide(status(phase="Deploying", reason="Started", image_lookup=NO_REGISTRY), world(deployment(template)),
               sp=spec(release={"image": IMAGE}))
    assert_finished(d, "Failed", "ReleaseIdUnknown")
    assert d.status.deployed_release_id is None
    assert "spec.release.id" in d.status.message


def test_image_without_tag_but_with_id_resolves():
    d = decide(status(phase="Deploying", reason="Started", image_lookup=NO_REGISTRY), world(deployment()),
               sp=spec(release={"image": IMAGE, "id": "build-42"}))
    assert (where(d), d.status.deployed_release_id) == (("Deploying", "ReleasesResolved"), "build-42")


def test_container_is_optional_with_a_pod_template_patch():
    sp = spec(release={"image": None, "podTemplatePatch": {"metadata": {"labels": {"tier": "x"}}}, "id": "p1"})
    d = decide(status(phase="Deploying", reason="Started", image_lookup=NO_REGISTRY), world(deployment(TWO_CONTAINERS)),
               sp=sp)
    assert where(d) == ("Deploying", "ReleasesResolved")


# --- Deploying: the patch -----------------------------------------------------------------


def deployed_record(release: str, when) -> str:
    """The record the deploy patch writes over the default one: the run's entry deployed over rs-2."""
    rec = record.parse(held_record(outcome="claimed", release=release))
    return record.render(record.deployed(rec, "u-1", when))


def test_deploying_patches_the_deployment():
    st = resolved()
    d = decide(st, world(deployment(resource_version="4711")), now=at(2))
    assert d.action == PatchDeployment({
        "metadata": {"resourceVersion": "4711",
                     "annotations": {CHANGE_CAUSE_ANNOTATION: f"SelfBootstrapRun {RUN}: deploy release v3",
                                     RUN_ANNOTATION: RUN, RUNS_ANNOTATION: deployed_record("v3", at(2))}},
        "spec": {"template": {"metadata": {"annotations": {RELEASE_ANNOTATION: "v3",
                                                           RELEASE_IMAGES_ANNOTATION: f"app={image('v3')}"}},
                              "spec": {"containers": [{"name": "app", "image": image("v3")}]}}},
    })
    assert d.requeue_after == POLL_SECONDS
    assert unchanged(st, d.status), "the status to persist before the patch is the resolved one"
    assert d.events == ()


def test_patch_names_the_target_container_and_the_change_cause():
    sp = spec(target={"container": "sidecar"}, release={"image": "reg/proxy:2", "changeCause": "bump proxy"})
    st = resolved(deployed_release_id="2")
    d = decide(st, world(deployment(TWO_CONTAINERS)), sp=sp)
    patch = d.action.patch
    assert patch["spec"]["template"]["spec"] == {"containers": [{"name": "sidecar", "image": "reg/proxy:2"}]}
    assert patch["spec"]["template"]["metadata"]["annotations"] == {
        RELEASE_ANNOTATION: "2", RELEASE_IMAGES_ANNOTATION: f"app={image('v2')},sidecar=reg/proxy:2"}
    assert patch["metadata"]["annotations"][CHANGE_CAUSE_ANNOTATION] == "bump proxy"


def test_pod_template_patch_variant():
    template_patch = {"metadata": {"labels": {"tier": "canary"}, "annotations": {"team": "web"}},
                      "spec": {"containers": [{"name": "app", "env": [{"name": "MODE", "value": "fast"}]}]}}
    sp = spec(release={"image": None, "podTemplatePatch": template_patch, "id": "p1"})
    d = decide(resolved(deployed_release_id="p1"), world(holding(deployment(resource_version="9"), release="p1")),
               sp=sp)
    assert d.action == PatchDeployment({
        "metadata": {"resourceVersion": "9",
                     "annotations": {CHANGE_CAUSE_ANNOTATION: f"SelfBootstrapRun {RUN}: deploy release p1",
                                     RUN_ANNOTATION: RUN, RUNS_ANNOTATION: deployed_record("p1", T0)}},
        "spec": {"template": {
            "metadata": {"labels": {"tier": "canary"},
                         "annotations": {"team": "web", RELEASE_ANNOTATION: "p1",
                                         RELEASE_IMAGES_ANNOTATION: f"app={image('v2')}"}},
            "spec": {"containers": [{"name": "app", "env": [{"name": "MODE", "value": "fast"}]}]},
        }},
    })
    assert sp.release.pod_template_patch == template_patch, "building the patch must not change the spec"


def test_paused_deployment_is_not_patched():
    d = decide(resolved(), world(deployment(paused=True)))
    assert_finished(d, "Failed", "DeploymentPaused")
    assert events(d) == [("Warning", "Failed")]


@pytest.mark.parametrize("sp, template", [
    pytest.param(spec(), tmpl("v3"), id="image"),
    pytest.param(spec(release={"image": None, "podTemplatePatch": {"metadata": {"labels": {"a": "b"}}},
                               "id": "v3"}), tmpl("v3", img="reg/other:x", labels={"app": "web", "a": "b"}),
                 id="pod-template-patch"),
])
def test_deployment_already_carrying_the_release_is_not_patched_again(sp, template):
    d = decide(resolved(), world(deployment(template, paused=True)), sp=sp, now=at(4))
    assert where(d) == ("VerifyingHealth", "Deployed")
    assert (d.action, d.requeue_after, d.status.deploy_patched_at) == (None, 0, at(4))
    assert events(d) == [("Normal", "Deployed")]


@pytest.mark.parametrize("template", [
    pytest.param(tmpl("v3", img=image("v2")), id="annotation-without-image"),
    pytest.param(tmpl("v3", annotated=False), id="image-without-annotation"),
])
def test_half_carried_release_is_patched(template):
    d = decide(resolved(), world(deployment(template)))
    assert isinstance(d.action, PatchDeployment)


def test_template_changed_after_the_patch_fails():
    d = decide(resolved(deploy_patched_at=T0), world(deployment(tmpl("v4"))), now=at(1))
    assert_finished(d, "Failed", "DeploymentChanged", now=at(1))


# --- settle: PatchDeployment ----------------------------------------------------------------


def test_patch_accepted_moves_to_verifying_health():
    d = settle(resolved(), world(deployment()), PatchDeployment({}), Deployed("d1g"), now=at(3))
    assert where(d) == ("VerifyingHealth", "Deployed")
    assert (d.status.deploy_patched_at, d.status.phase_started_at, d.requeue_after) == (at(3), at(3), 0)
    assert events(d) == [("Normal", "Deployed")]


def test_patch_refused_is_a_deploy_failure_denied_by_default():
    d = settle(resolved(), world(deployment()), PatchDeployment({}), Failed("DeployRefused", "admission denied"))
    assert_finished(d, "Failed", "DeployRefused")
    s = d.status
    assert (s.rollback_policy_status, s.rollback_policy_reason, s.rollback_failure_class) == (
        "denied", "rollbackDisabledForDeployFailure", "deployFailure")
    assert s.message == "admission denied; rollback denied: rollbackDisabledForDeployFailure"
    assert events(d) == [("Warning", "DeployRefused"), ("Warning", "Failed")]


def test_patch_refused_with_rollback_on_deploy_failure_rolls_back_to_what_runs():
    sp = spec(rollbackPolicy={"onDeployFailure": True})
    d = settle(resolved(), world(deployment()), PatchDeployment({}), Failed("DeployRefused", "no"), sp=sp)
    assert where(d) == ("RollingBack", "DeployRefused")
    assert (d.status.rollback_target_replica_set, d.status.rollback_target_revision) == ("rs-2", 2)


ACTIONS = [
    pytest.param(resolved(), PatchDeployment({}), id="patch"),
    pytest.param(rolling_back(), RollbackDeployment("rs-2", []), id="rollback"),
    pytest.param(verifying(health_attempts=1, health_checked_at=T0), ProbeHttp(HTTP_CHECK), id="probe"),
]


def retry_only(before: RunStatus, after: RunStatus) -> bool:
    """Equal apart from the retry record and the events kept with it."""
    skip = {"observed_generation", "conditions", "retry", "event_seq", "last_events"}
    return before.model_dump(exclude=skip) == after.model_dump(exclude=skip)


@pytest.mark.parametrize("st, action", ACTIONS)
def test_a_passing_fault_is_retried_after_a_backoff(st, action):
    d = settle(st, world(deployed()), action, Failed("X", "409 Conflict", retryable=True),
               sp=spec(**HTTP), now=at(30))
    assert retry_only(st, d.status)
    assert (d.action, d.requeue_after) == (None, 2.0)
    r = d.status.retry
    assert (r.phase, r.attempts, r.last_error, r.next_attempt_at) == (st.phase, 1, "409 Conflict", at(32))
    assert [(e.type, e.reason, e.count) for e in d.events] == [("Warning", "Retrying", 1)]
    assert d.events[0].message == "409 Conflict (attempt 1 of 8; trying again in 2s)"


def retried(st: RunStatus, action, attempts: int, sp=None, start: float = 30) -> list:
    decisions, now = [], at(start)
    for _ in range(attempts):
        d = settle(st, world(deployed()), action, Failed("X", "503 unavailable", retryable=True), sp=sp, now=now)
        decisions.append(d)
        st, now = d.status, now + (at(d.requeue_after or 0) - T0)
    return decisions


def test_backoff_doubles_up_to_its_cap_and_the_retrying_event_is_one_series():
    sp = spec(retryPolicy={"maxAttempts": 8, "initialBackoffSeconds": 2, "maxBackoffSeconds": 10})
    decisions = retried(resolved(), PatchDeployment({}), 5, sp=sp)
    assert [d.requeue_after for d in decisions] == [2, 4, 8, 10, 10]
    assert {d.events[0].seq for d in decisions} == {decisions[0].events[0].seq}, "one Event, counted"
    assert [d.events[0].count for d in decisions] == [1, 2, 3, 4, 5]


def test_retries_end_when_the_budget_is_spent():
    sp = spec(retryPolicy={"maxAttempts": 3})
    *_, last = retried(rolling_back(), RollbackDeployment("rs-2", []), 3, sp=sp)
    assert (last.status.phase, last.status.reason) == ("Failed", "RetriesExhausted")
    assert "3 attempts in phase RollingBack" in last.status.message and "503 unavailable" in last.status.message
    assert last.status.rollback_healthy is False and last.requeue_after is None


def test_no_step_is_tried_again_before_its_backoff_has_passed():
    (d,) = retried(resolved(), PatchDeployment({}), 1)
    assert decide(d.status, world(deployment()), now=at(31)).requeue_after == 1.0
    assert decide(d.status, world(deployment()), now=at(31)).action is None
    assert isinstance(decide(d.status, world(deployment()), now=at(32)).action, PatchDeployment)


def test_the_retry_record_is_cleared_when_the_phase_changes():
    (d,) = retried(resolved(), PatchDeployment({}), 1)
    after = settle(d.status, world(deployment()), PatchDeployment({}), Deployed(V3_DIGEST), now=at(33))
    assert after.status.phase == "VerifyingHealth" and after.status.retry is None


# --- VerifyingHealth ------------------------------------------------------------------------


def test_verifying_health_records_the_deployed_revision_with_a_report_never_alone():
    d = decide(verifying(), world(deployed(updated_replicas=0)), now=at(1))
    assert unchanged(verifying(), d.status), "the new ReplicaSet alone is not worth a write"
    d = decide(verifying(), world(deployed(updated_replicas=0)), now=at(11))
    assert where(d) == ("VerifyingHealth", "RolloutInProgress")
    assert (d.status.deployed_replica_set, d.status.deployed_revision) == ("rs-3", 3)
    d = decide(verifying(), world(deployed()), now=at(1))
    assert (d.status.deployed_replica_set, d.status.deployed_revision) == ("rs-3", 3), "and with the rollout's end"


def test_verifying_health_before_the_replica_set_exists():
    d = decide(verifying(), world(deployed(revisions=(REV1, REV2), updated_replicas=0)), now=at(11))
    assert (d.status.deployed_replica_set, d.status.deployed_revision) == (None, None)
    assert where(d) == ("VerifyingHealth", "RolloutInProgress")


@pytest.mark.parametrize("st", [pytest.param(verifying(), id="VerifyingHealth"),
                                pytest.param(watching(), id="WatchingRestarts")])
def test_superseded_template_fails_with_deployment_changed(st):
    d = decide(st, world(deployment(tmpl("v4")), (HEALTHY_POD,)), now=at(1))
    assert_finished(d, "Failed", "DeploymentChanged", now=at(1))
    assert "superseded" in d.status.message


@pytest.mark.parametrize("template", [
    pytest.param(tmpl("v3", containers=[{"name": "app", "image": image("v3"), "env": [{"name": "A", "value": "1"}]}]),
                 id="env-added"),
    pytest.param(tmpl("v3", containers=[{"name": "main", "image": image("v3")}]), id="container-renamed"),
    pytest.param(tmpl("v3", labels={"app": "web", "tier": "x"}), id="label-added"),
])
def test_any_change_to_the_deployed_template_supersedes_the_run(template):
    d = decide(verifying(), world(deployment(template, (REV1, REV2), updated_replicas=0)), now=at(1))
    assert where(d) == ("Failed", "DeploymentChanged")


@pytest.mark.parametrize("template, expected", [
    pytest.param(tmpl("v3", containers=[{"name": "main", "image": image("v4")}]), ("Failed", "DeploymentChanged"),
                 id="container-renamed-and-image-changed"),
    pytest.param(tmpl("v3", containers=[{"name": "main", "image": image("v3")}]),
                 ("VerifyingHealth", "Deployed"), id="container-renamed-release-still-there"),
])
def test_runs_recorded_without_a_digest_compare_release_and_image(template, expected):
    sp = spec(target={"container": "app"})
    st = verifying(deployed_template_digest=None)
    d = decide(st, world(deployment(template, (REV1, REV2), updated_replicas=0)), sp=sp, now=at(1))
    assert where(d) == expected


@pytest.mark.parametrize("rollout", [pytest.param({}, id="rollout-done"),
                                     pytest.param({"available_replicas": 0}, id="rollout-in-progress")])
def test_crash_signal_during_verification_rolls_back(rollout):
    d = decide(verifying(), world(deployed(**rollout), (CRASHING_POD,)), now=at(20))
    s = d.status
    assert where(d) == ("RollingBack", "RestartWatchdogFailed")
    assert (s.restart_watchdog_status, s.restart_watchdog_reason) == ("unstable", "crashLoopBackOff")
    assert (s.rollback_policy_status, s.rollback_policy_reason, s.rollback_target_valid) == (
        "allowed", "rollbackTargetValidated", True)
    assert (s.rollback_failure_class, s.rollback_deployment_context) == ("restartWatchdogFailure", "external")
    assert (s.rollback_target_replica_set, s.rollback_target_revision, s.rollback_target_release_id) == (
        "rs-2", 2, "v2")
    assert s.message.endswith("rolling back to revision 2 (rs-2, rollbackTargetValidated)")
    assert (d.action, d.requeue_after, s.phase_started_at, s.finished_at) == (None, 0, at(20), None)
    assert events(d) == [("Warning", "RestartWatchdogFailed"), ("Warning", "RollingBack")]
    expected = {"Progressing": "True", "Ready": "False", "Degraded": "True", "RolledBack": "False"}
    assert conditions(d).items() >= expected.items()


def test_crash_signal_with_watchdog_rollback_disabled_fails():
    sp = spec(rollbackPolicy={"onRestartWatchdogFailure": False})
    d = decide(verifying(), world(deployed(), (CRASHING_POD,)), sp=sp)
    assert_finished(d, "Failed", "RestartWatchdogFailed")
    assert d.status.rollback_policy_reason == "rollbackDisabledForRestartWatchdogFailure"
    assert d.status.restart_watchdog_status == "unstable"


UNNAMED_PREVIOUS = (REV1, rev("rs-2", 2, None), REV3)  # the release that ran before carries no release id


# The rollback target comes from the spec and the workload's record (the ReplicaSet that ran before the deploy),
# never from status alone: status fields that say otherwise are ignored.
@pytest.mark.parametrize("sp, st, w, reason, policy_reason, target", [
    pytest.param(spec(**SELF_HOSTED), verifying(rollback_target_release_id="v1"),
                 world(deployed(revisions=UNNAMED_PREVIOUS)),
                 "rollbackTargetUnspecified", "rollbackTargetUnspecified", ("rs-2", 2, None),
                 id="self-hosted-falls-back-to-previous-replica-set"),
    pytest.param(spec(**SELF_HOSTED), verifying(rollback_target_release_id=None),
                 world(holding(deployed(), previous="rs-9")), "rollbackTargetUnspecified",
                 "rollbackTargetUnspecified", ("rs-2", 2, "v2"), id="self-hosted-previous-gone-newest-other"),
    pytest.param(spec(), verifying(rollback_target_release_id="v1"), world(deployed(revisions=UNNAMED_PREVIOUS)),
                 "Failed", "rollbackTargetRequiredForExternalContext", None, id="external-without-target"),
    pytest.param(spec(release={"rollbackReleaseId": "v1"}), verifying(rollback_target_release_id="v2"),
                 world(deployed()), "rollbackTargetValidated", "rollbackTargetValidated", ("rs-1", 1, "v1"),
                 id="explicit-target"),
    pytest.param(spec(), verifying(rollback_target_release_id="v1"), world(deployed()),
                 "rollbackTargetValidated", "rollbackTargetValidated", ("rs-2", 2, "v2"),
                 id="status-target-ignored"),
    pytest.param(spec(release={"rollbackReleaseId": "v0"}), verifying(), world(deployed()),
                 "Failed", "rollbackTargetNotFound", None, id="target-not-found"),
    pytest.param(spec(release={"rollbackReleaseId": "v3"}), verifying(), world(deployed()),
                 "Failed", "rollbackTargetSameAsDeployed", None, id="target-same-as-deployed"),
    pytest.param(spec(), verifying(), world(deployed(revisions=(REV3,))),
                 "Failed", "noPreviousRevision", None, id="no-previous-revision"),
    pytest.param(spec(**SELF_HOSTED), verifying(crd_generation_at_deploy=7), world(deployed(), crd_generation=8),
                 "Failed", "crdChangedSinceDeploy", None, id="self-hosted-crd-changed"),
    pytest.param(spec(**SELF_HOSTED), verifying(crd_generation_at_deploy=7), world(deployed(), crd_generation=7),
                 "rollbackTargetValidated", "rollbackTargetValidated", ("rs-2", 2, "v2"),
                 id="self-hosted-crd-unchanged"),
    pytest.param(spec(**SELF_HOSTED), verifying(crd_generation_at_deploy=None), world(deployed(), crd_generation=8),
                 "rollbackTargetValidated", "rollbackTargetValidated", ("rs-2", 2, "v2"),
                 id="crd-generation-unknown-at-deploy"),
])
def test_gate_failure_consults_the_policy(sp, st, w, reason, policy_reason, target):
    w = world(w.deployment, (CRASHING_POD,), crd_generation=w.crd_generation)
    d = decide(st, w, sp=sp)
    s = d.status
    assert s.rollback_policy_reason == policy_reason
    if target is None:
        assert_finished(d, "Failed", "RestartWatchdogFailed")
        assert s.rollback_policy_status == "denied"
        assert s.message.endswith(f"rollback denied: {policy_reason}")
    else:
        assert where(d) == ("RollingBack", "RestartWatchdogFailed")
        assert (s.rollback_target_replica_set, s.rollback_target_revision, s.rollback_target_release_id) == target


def test_progress_deadline_exceeded_is_a_deploy_failure_denied_by_default():
    d = decide(verifying(), world(deployed(progressing_reason="ProgressDeadlineExceeded", available_replicas=0)),
               now=at(30))
    assert_finished(d, "Failed", "ProgressDeadlineExceeded", now=at(30))
    s = d.status
    assert (s.rollback_policy_status, s.rollback_policy_reason, s.rollback_failure_class) == (
        "denied", "rollbackDisabledForDeployFailure", "deployFailure")
    assert "rollbackDisabledForDeployFailure" in s.message
    assert events(d) == [("Warning", "ProgressDeadlineExceeded"), ("Warning", "Failed")]


def test_progress_deadline_exceeded_rolls_back_when_on_deploy_failure():
    sp = spec(rollbackPolicy={"onDeployFailure": True})
    d = decide(verifying(), world(deployed(progressing_reason="ProgressDeadlineExceeded", available_replicas=0)),
               sp=sp)
    assert where(d) == ("RollingBack", "ProgressDeadlineExceeded")
    assert (d.status.rollback_failure_class, d.status.rollback_target_replica_set) == ("deployFailure", "rs-2")


@pytest.mark.parametrize("elapsed, expected", [
    pytest.param(599, ("VerifyingHealth", "RolloutInProgress"), id="before-deadline"),
    pytest.param(600, ("VerifyingHealth", "RolloutInProgress"), id="at-deadline"),
    pytest.param(601, ("Failed", "RolloutTimedOut"), id="after-deadline"),
])
def test_own_rollout_deadline(elapsed, expected):
    d = decide(verifying(), world(deployed(available_replicas=0)), now=at(elapsed))
    assert where(d) == expected


def test_own_rollout_deadline_follows_the_spec():
    sp = spec(health={"progressDeadlineSeconds": 30}, rollbackPolicy={"onDeployFailure": True})
    d = decide(verifying(), world(deployed(available_replicas=0)), sp=sp, now=at(31))
    assert where(d) == ("RollingBack", "RolloutTimedOut")
    assert "within 30s" in d.status.message


def test_rollout_in_progress_requeues():
    d = decide(verifying(), world(deployed(updated_replicas=0, status_replicas=2)), now=at(11))
    assert where(d) == ("VerifyingHealth", "RolloutInProgress")
    assert d.status.message == "0 of 1 new replicas have been updated"
    assert (d.action, d.requeue_after, d.events) == (None, WATCH_SECONDS, ()), "its changes wake it sooner"
    again = decide(d.status, world(deployed(updated_replicas=0, status_replicas=2)), now=at(13))
    assert transitions(again) == transitions(d), "polling the same progress adds no history"


JUST_DEPLOYED = "release v3 deployed; waiting for the rollout"
PROGRESS = "0 of 1 updated replicas are available"  # what the world below shows


@pytest.mark.parametrize("reason, message, reported, now, expected", [
    pytest.param("Deployed", JUST_DEPLOYED, None, 9, ("Deployed", JUST_DEPLOYED, None, 1.0),
                 id="just-deployed-keeps-its-message-until-a-report-is-due"),
    pytest.param("Deployed", JUST_DEPLOYED, None, 10, ("RolloutInProgress", PROGRESS, 10, WATCH_SECONDS),
                 id="progress-shown-after-the-interval"),
    pytest.param("RolloutInProgress", "earlier progress", 10, 19,
                 ("RolloutInProgress", "earlier progress", 10, 1.0), id="progress-refreshed-at-most-every-interval"),
    pytest.param("RolloutInProgress", "earlier progress", 10, 20, ("RolloutInProgress", PROGRESS, 20, WATCH_SECONDS),
                 id="progress-refreshed-after-the-interval"),
    pytest.param("RolloutInProgress", PROGRESS, 10, 300, ("RolloutInProgress", PROGRESS, 10, WATCH_SECONDS),
                 id="the-same-progress-is-not-written-again"),
    pytest.param("RolloutInProgress", PROGRESS, 10, 590, ("RolloutInProgress", PROGRESS, 10, 10.0),
                 id="wakes-at-the-progress-deadline"),
    pytest.param("RolloutInProgress", PROGRESS, 10, 600, ("RolloutInProgress", PROGRESS, 10, MIN_WAIT_SECONDS),
                 id="at-the-deadline-looks-again-just-after"),
])
def test_rollout_progress_is_written_at_most_every_interval(reason, message, reported, now, expected):
    st = verifying(reason=reason, message=message, deployed_replica_set="rs-3", deployed_revision=3,
                   rollout_reported_at=None if reported is None else at(reported))
    d = decide(st, world(deployed(available_replicas=0)), now=at(now))
    check_progress(st, d, reason, message, expected)


@pytest.mark.parametrize("reason, message, reported", [
    pytest.param("Deployed", JUST_DEPLOYED, None, id="deployed"),
    pytest.param("RolloutInProgress", "earlier progress", 10, id="earlier-progress"),
])
def test_a_rollout_the_controller_has_not_begun_is_no_progress(reason, message, reported):
    """Its queue's lag says nothing the Deployed message does not: no write, however long it lasts."""
    st = verifying(reason=reason, message=message, deployed_replica_set="rs-3", deployed_revision=3,
                   rollout_reported_at=None if reported is None else at(reported))
    d = decide(st, world(deployed(generation=2, observed_generation=1)), now=at(300))
    check_progress(st, d, reason, message, (reason, message, reported, WATCH_SECONDS))


def check_progress(st, d, reason, message, expected):
    reason_, message_, reported_, wait = expected
    assert (d.status.phase, d.status.reason, d.status.message, d.status.rollout_reported_at) == (
        "VerifyingHealth", reason_, message_, None if reported_ is None else at(reported_))
    assert (d.action, d.requeue_after, d.events) == (None, wait, ())
    if reason_ == reason and message_ == message:
        derived = {"conditions": d.status.conditions, "observed_generation": d.status.observed_generation}
        assert d.status == st.model_copy(update=derived), "nothing new to write"


def test_rollout_done_without_http_check_watches_restarts():
    d = decide(verifying(), world(deployed(), (HEALTHY_POD,)), now=at(8))
    assert where(d) == ("WatchingRestarts", "Healthy")
    assert (d.status.health_status, d.action, d.requeue_after, d.status.phase_started_at) == (
        "healthy", None, 0, at(8))
    assert events(d) == [("Normal", "Healthy")]


def test_rollout_done_with_the_watchdog_disabled_succeeds():
    d = decide(verifying(), world(deployed(), (HEALTHY_POD,)), sp=spec(**NO_WATCHDOG), now=at(8))
    assert_finished(d, "Succeeded", "Succeeded", now=at(8))
    assert (d.status.health_status, d.status.restart_watchdog_status) == ("healthy", "notRun")
    assert events(d) == [("Normal", "Healthy"), ("Normal", "Succeeded")]
    expected = {"Progressing": "False", "Ready": "True", "Degraded": "False", "RolledBack": "False"}
    assert conditions(d).items() >= expected.items()


# --- VerifyingHealth: the HTTP check --------------------------------------------------------


def test_http_check_first_attempt_is_immediate():
    sp = spec(**HTTP)
    d = decide(verifying(), world(deployed(), (HEALTHY_POD,)), sp=sp, now=at(1))
    assert d.action == ProbeHttp(sp.health.http)
    assert where(d) == ("VerifyingHealth", "CheckingHttp")
    assert d.status.message == "rollout complete; HTTP check 1 of 3"
    assert (d.requeue_after, d.status.health_attempts) == (5.0, 0)


@pytest.mark.parametrize("now, wait", [
    pytest.param(at(0), 5.0, id="just-checked"),
    pytest.param(at(3), 2.0, id="part-way"),
])
def test_http_check_waits_the_interval_between_attempts(now, wait):
    st = verifying(reason="CheckingHttp", health_attempts=1, health_checked_at=T0, deployed_replica_set="rs-3",
                   deployed_revision=3)
    d = decide(st, world(deployed(), (HEALTHY_POD,)), sp=spec(**HTTP), now=now)
    assert (d.action, d.requeue_after) == (None, wait)
    assert unchanged(st, d.status)


@pytest.mark.parametrize("now", [pytest.param(at(5), id="interval-elapsed"), pytest.param(at(60), id="long-after")])
def test_http_check_next_attempt_after_the_interval(now):
    st = verifying(reason="CheckingHttp", health_attempts=1, health_checked_at=T0)
    d = decide(st, world(deployed(), (HEALTHY_POD,)), sp=spec(**HTTP), now=now)
    assert isinstance(d.action, ProbeHttp)
    assert d.status.message == "rollout complete; HTTP check 2 of 3"


def probe(sp=None) -> ProbeHttp:
    check = (sp or spec(**HTTP)).health.http
    assert check is not None
    return ProbeHttp(check)


def test_http_check_success_is_healthy():
    st = verifying(reason="CheckingHttp", health_attempts=1, health_checked_at=T0)
    d = settle(st, world(deployed()), probe(), Probed(True, "200 OK"), sp=spec(**HTTP), now=at(6))
    assert where(d) == ("WatchingRestarts", "Healthy")
    assert (d.status.health_status, d.status.health_attempts, d.status.health_checked_at) == ("healthy", 2, at(6))
    assert [(e.reason, e.message) for e in d.events] == [("Healthy", "HTTP check passed on attempt 2: 200 OK")]


def test_http_check_failure_before_the_last_attempt_waits():
    st = verifying(reason="CheckingHttp")
    d = settle(st, world(deployed()), probe(), Probed(False, "503"), sp=spec(**HTTP), now=at(6))
    assert where(d) == ("VerifyingHealth", "CheckingHttp")
    assert d.status.message == "HTTP check 1 of 3 failed: 503"
    assert (d.status.health_status, d.status.health_attempts, d.status.health_checked_at) == ("notRun", 1, at(6))
    assert (d.action, d.requeue_after) == (None, 5.0)


@pytest.mark.parametrize("sp, attempts_before, expected", [
    pytest.param(spec(**HTTP), 2, ("RollingBack", "HealthCheckFailed"), id="last-of-three"),
    pytest.param(spec(health={"http": {"url": "http://web/", "retries": 1}}), 0,
                 ("RollingBack", "HealthCheckFailed"), id="single-attempt"),
    pytest.param(spec(rollbackPolicy={"onHealthFailure": False}, **HTTP), 2,
                 ("Failed", "HealthCheckFailed"), id="health-rollback-disabled"),
])
def test_http_check_failure_at_the_last_attempt_is_unhealthy(sp, attempts_before, expected):
    st = verifying(reason="CheckingHttp", health_attempts=attempts_before, health_checked_at=T0)
    d = settle(st, world(deployed()), probe(sp), Probed(False, "503"), sp=sp, now=at(10))
    s = d.status
    assert where(d) == expected
    assert (s.health_status, s.health_attempts, s.rollback_failure_class) == (
        "unhealthy", attempts_before + 1, "healthFailure")
    assert s.message.startswith(f"HTTP check failed {attempts_before + 1} times; last: 503")
    assert d.requeue_after == (None if expected[0] == "Failed" else 0), "no wait after the last attempt"


@pytest.mark.parametrize("sp, expected", [
    pytest.param(spec(**HTTP), ("RollingBack", "EgressRefused"), id="rolls-back"),
    pytest.param(spec(rollbackPolicy={"onHealthFailure": False}, **HTTP), ("Failed", "EgressRefused"),
                 id="health-rollback-disabled"),
])
def test_a_refused_http_check_fails_the_gate_at_once(sp, expected):
    """No later attempt can be allowed (the policy is the installer's): the first refusal ends the check."""
    st = verifying(reason="CheckingHttp")
    refused = Failed("EgressRefused", "the operator's egress policy refuses http://web/: 127.0.0.1 is loopback")
    d = settle(st, world(deployed()), probe(sp), refused, sp=sp, now=at(6))
    s = d.status
    assert where(d) == expected
    assert (s.health_status, s.health_attempts, s.failure_reason) == ("unhealthy", 1, "EgressRefused")
    assert s.failure_message == refused.message and s.rollback_failure_class == "healthFailure"


@pytest.mark.parametrize("answers, probes, end", [
    pytest.param([True], 1, ("WatchingRestarts", "Healthy"), id="first-success-ends-the-loop"),
    pytest.param([False, True], 2, ("WatchingRestarts", "Healthy"), id="success-on-second"),
    pytest.param([False, False, True], 3, ("WatchingRestarts", "Healthy"), id="success-on-last"),
    pytest.param([False, False, False], 3, ("RollingBack", "HealthCheckFailed"), id="retries-are-total-attempts"),
])
def test_http_check_loop(answers, probes, end):
    """Drive decide/settle on the clock: probe times show the interval between attempts, none after the last."""
    sp, w, now = spec(**HTTP), world(deployed(), (HEALTHY_POD,)), T0
    st, probed_at, answers = verifying(), [], list(answers)
    for _ in range(20):
        d = decide(st, w, sp=sp, now=now)
        if isinstance(d.action, ProbeHttp):
            probed_at.append((now - T0).total_seconds())
            d = settle(d.status, w, d.action, Probed(answers.pop(0), "probe"), sp=sp, now=now)
        st = d.status
        if st.phase != "VerifyingHealth":
            break
        now = now + (at(d.requeue_after) - T0)
    assert where(d) == end
    assert probed_at == [5.0 * i for i in range(probes)]
    assert answers == []


# --- WatchingRestarts -----------------------------------------------------------------------


def test_first_restart_observation_is_immediate():
    d = decide(watching(), world(deployed(), (HEALTHY_POD,)), now=at(1))
    s = d.status
    assert where(d) == ("WatchingRestarts", "Observing")
    assert s.message == "observation 1 of 3: 1 pods stable"
    assert (s.restart_watchdog_attempts, s.restart_watchdog_checked_at, s.restart_watchdog_reason) == (
        1, at(1), "stable")
    assert (s.restart_watchdog_status, d.requeue_after, d.action) == ("notRun", 10.0, None)


@pytest.mark.parametrize("now, wait", [pytest.param(at(0), 10.0, id="just-observed"),
                                       pytest.param(at(4), 6.0, id="part-way")])
def test_restart_observations_wait_the_interval(now, wait):
    st = watching(reason="Observing", restart_watchdog_attempts=1, restart_watchdog_checked_at=T0)
    d = decide(st, world(deployed(), (CRASHING_POD,)), now=now)
    assert d.requeue_after == wait
    assert unchanged(st, d.status), "no observation before the interval has passed"


@pytest.mark.parametrize("pods, reason", [
    pytest.param((UNREADY_POD,), "podsNotReady", id="pods-not-ready"),
    pytest.param((CRASHING_POD,), "crashLoopBackOff", id="crash-loop"),
    pytest.param((pod("web-1", container(restart_count=1)),), "containerRestarted:1", id="restarted"),
])
def test_unstable_observation_goes_through_the_policy(pods, reason):
    st = watching(reason="Observing", restart_watchdog_attempts=1, restart_watchdog_checked_at=T0)
    d = decide(st, world(deployed(), pods), now=at(10))
    s = d.status
    assert where(d) == ("RollingBack", "RestartWatchdogFailed")
    assert (s.restart_watchdog_status, s.restart_watchdog_reason, s.restart_watchdog_attempts) == (
        "unstable", reason, 2)
    assert (s.rollback_failure_class, s.rollback_target_replica_set) == ("restartWatchdogFailure", "rs-2")


def test_restart_threshold_tolerates_restarts():
    st = watching(reason="Observing", restart_watchdog_attempts=2, restart_watchdog_checked_at=T0)
    d = decide(st, world(deployed(), (pod("web-1", container(restart_count=2)),)),
               sp=spec(restartWatchdog={"restartThreshold": 2}), now=at(10))
    assert where(d) == ("Succeeded", "Succeeded")


def test_all_stable_observations_succeed():
    st = watching(reason="Observing", restart_watchdog_attempts=2, restart_watchdog_checked_at=T0)
    d = decide(st, world(deployed(), (HEALTHY_POD,)), now=at(10))
    assert_finished(d, "Succeeded", "Succeeded", now=at(10))
    s = d.status
    assert (s.restart_watchdog_status, s.restart_watchdog_reason, s.restart_watchdog_attempts) == (
        "stable", "stable", 3)
    assert s.message == "1 pods stable over 3 observations"
    assert [(e.type, e.reason, e.message) for e in d.events] == [
        ("Normal", "Succeeded", "release v3 is live: 1 pods stable over 3 observations")]


@pytest.mark.parametrize("retries", [1, 2, 4])
def test_watchdog_loop_observes_retries_times(retries):
    sp, w, now, st = spec(restartWatchdog={"retries": retries}), world(deployed(), (HEALTHY_POD,)), T0, watching()
    observed = []
    for _ in range(20):
        d = decide(st, w, sp=sp, now=now)
        if d.status.restart_watchdog_attempts != st.restart_watchdog_attempts:
            observed.append((now - T0).total_seconds())
        st = d.status
        if d.requeue_after is None:
            break
        now = now + (at(d.requeue_after) - T0)
    assert st.phase == "Succeeded"
    assert observed == [10.0 * i for i in range(retries)], "no wait after the last observation"


# --- RollingBack ------------------------------------------------------------------------------


def rolled_back_record(when) -> str:
    return record.render(record.outcome(record.parse(held_record()), "u-1", "rolledBack", when, release=False))


def test_rolling_back_issues_the_undo_patch():
    target = rev("rs-2", 2, "v2", annotations={
        "deployment.kubernetes.io/revision": "2", "deployment.kubernetes.io/revision-history": "1",
        "deployment.kubernetes.io/desired-replicas": "1", "deployment.kubernetes.io/max-replicas": "2",
        CHANGE_CAUSE_ANNOTATION: "deploy v2", "team": "web"})
    dep = deployed(revisions=(REV1, target, REV3), resource_version="555", annotations={
        "deployment.kubernetes.io/revision": "3", "kubectl.kubernetes.io/last-applied-configuration": "{}",
        CHANGE_CAUSE_ANNOTATION: "deploy v3", RUN_ANNOTATION: RUN})
    st = rolling_back()
    d = decide(st, world(dep), now=at(1))
    assert d.action == RollbackDeployment("rs-2", [
        {"op": "replace", "path": "/metadata/resourceVersion", "value": "555"},
        {"op": "replace", "path": "/spec/template", "value": tmpl("v2")},
        {"op": "replace", "path": "/metadata/annotations", "value": {
            "deployment.kubernetes.io/revision": "3", "kubectl.kubernetes.io/last-applied-configuration": "{}",
            CHANGE_CAUSE_ANNOTATION: "deploy v2", "team": "web", RUNS_ANNOTATION: rolled_back_record(at(1))}},
    ])
    assert "pod-template-hash" not in d.action.patch[1]["value"]["metadata"]["labels"]
    assert d.requeue_after == POLL_SECONDS
    assert unchanged(st, d.status)


def test_rollback_patch_uses_the_replica_set_template_and_leaves_inputs_alone():
    dep = deployed(annotations={"a": "1"})
    before = copy.deepcopy((dep.template, REV2.template, dep.annotations))
    patch = rollback_patch(dep, REV2)
    assert patch[1]["value"] == REV2.template
    assert patch[2]["value"] == {}, "annotations only the Deployment has are dropped, as kubectl does"
    assert (dep.template, REV2.template, dep.annotations) == before


@pytest.mark.parametrize("st, template", [
    pytest.param(rolling_back(), tmpl("v3", img=image("v3-hotfix")), id="hotfix-after-the-gate-failed"),
    pytest.param(rolling_back(), tmpl("v4"), id="another-release-after-the-gate-failed"),
    pytest.param(rolling_back(deploy_patched_at=None, deployed_template_digest=None), tmpl("v4"),
                 id="changed-although-this-run-never-deployed"),
])
def test_the_undo_never_overwrites_someone_elses_change(st, template):
    d = decide(st, world(deployment(template, (REV1, REV2, REV3))), now=at(1))
    assert_finished(d, "Failed", "DeploymentChanged", now=at(1))
    assert "not rolling back over someone else's change" in d.status.message
    assert d.status.rollback_healthy is False


def test_rolling_back_a_paused_deployment_is_refused():
    d = decide(rolling_back(), world(deployed(paused=True)))
    assert_finished(d, "Failed", "RollbackRefused")
    assert d.status.rollback_healthy is False


def test_rollback_target_gone():
    d = decide(rolling_back(), world(deployed(revisions=(REV1, REV3))))
    assert_finished(d, "Failed", "RollbackTargetGone")
    assert "'rs-2'" in d.status.message
    assert d.status.rollback_healthy is False


def test_template_already_matching_skips_the_patch():
    """The deploy was refused: the Deployment still runs the target's template (kubectl skips the undo)."""
    d = decide(rolling_back(), world(deployment(updated_replicas=0)), now=at(2))
    assert d.action is None
    assert where(d) == ("RollingBack", "RollbackSkipped")
    assert transitions(d)[-1] == ("RollingBack", "RollbackSkipped")
    assert (d.status.rollback_patched_at, d.requeue_after) == (at(2), 10.0), "until its progress may be said"


def test_template_already_matching_and_available_is_rolled_back():
    d = decide(rolling_back(), world(deployment()), now=at(2))
    assert_finished(d, "RolledBack", "RolledBack", now=at(2))
    assert transitions(d)[-2:] == [("RollingBack", "RollbackSkipped"), ("RolledBack", "RolledBack")]


def test_resume_after_a_lost_rollback_outcome_does_not_patch_again():
    """The undo went through but its outcome was never recorded: the renumbered target proves it."""
    d = decide(rolling_back(), world(rolled_back(updated_replicas=0)), now=at(2))
    assert d.action is None
    assert transitions(d)[-1] == ("RollingBack", "RollbackPatched")
    assert d.status.rollback_patched_at == at(2)


@pytest.mark.parametrize("dep", [
    pytest.param(rolled_back(), id="target-renumbered"),
    pytest.param(deployment(), id="controller-not-renumbered-yet"),
])
def test_rollback_done_is_rolled_back_and_healthy(dep):
    st = rolling_back(reason="RollbackPatched", rollback_patched_at=at(1))
    d = decide(st, world(dep), now=at(9))
    assert_finished(d, "RolledBack", "RolledBack", now=at(9))
    assert d.status.rollback_healthy is True
    assert d.status.rollback_patched_at == at(1)
    assert d.status.message == "rolled back to release v2 (rs-2); available again"
    assert events(d) == [("Normal", "RolledBack")]
    expected = {"Progressing": "False", "Ready": "False", "Degraded": "True", "RolledBack": "True"}
    assert conditions(d).items() >= expected.items()


def test_rollback_done_when_the_target_is_available_while_bad_pods_terminate():
    """The service is whole again: the run need not wait for the crash-looping pod to be gone."""
    dep = rolled_back(status_replicas=2, revisions=(REV1, rev("rs-2", 4, "v2", history=(2,), available=1), REV3))
    d = decide(rolling_back(reason="RollbackPatched", rollback_patched_at=at(1)), world(dep), now=at(2))
    assert_finished(d, "RolledBack", "RolledBack", now=at(2))
    assert d.status.rollback_healthy is True


@pytest.mark.parametrize("status, now, expected", [
    pytest.param(dict(reason="RollbackPatched"), at(10.5), ("RollbackPatched", "restored", 0.5),
                 id="patched-just-now"),
    pytest.param(dict(reason="RollbackPatched"), at(11.5), ("RollbackInProgress", "pending termination", WATCH_SECONDS),
                 id="patched-long-enough-ago"),
    pytest.param(dict(reason="RollbackInProgress", message="1 of 1 new replicas have been updated",
                      rollout_reported_at=at(5)), at(14.5), ("RollbackInProgress", "have been updated", 0.5),
                 id="progress-said-just-now"),
    pytest.param(dict(reason="RollbackInProgress", message="1 of 1 new replicas have been updated",
                      rollout_reported_at=at(5)), at(15.5),
                 ("RollbackInProgress", "pending termination", WATCH_SECONDS), id="progress-said-long-enough-ago"),
    pytest.param(dict(reason="RollbackInProgress", message="1 old replicas are pending termination",
                      rollout_reported_at=at(5)), at(590), ("RollbackInProgress", "pending termination", 10.0),
                 id="wakes-at-the-rollback-timeout"),
])
def test_rollback_progress_is_written_at_most_every_interval(status, now, expected):
    st = rolling_back(**{"rollback_patched_at": at(1), "message": "restored the template of rs-2", **status})
    d = decide(st, world(rolled_back(status_replicas=2)), now=now)
    assert (d.status.reason, d.requeue_after) == (expected[0], expected[2])
    assert expected[1] in (d.status.message or "")


@pytest.mark.parametrize("dep, now, expected", [
    pytest.param(rolled_back(available_replicas=0), at(600), ("RollingBack", "RollbackInProgress"), id="in-time"),
    pytest.param(rolled_back(available_replicas=0), at(601), ("Failed", "RollbackUnhealthy"), id="timed-out"),
    pytest.param(rolled_back(available_replicas=0, progressing_reason="ProgressDeadlineExceeded"), at(5),
                 ("Failed", "RollbackUnhealthy"), id="progress-deadline-exceeded"),
])
def test_rollback_that_does_not_become_available(dep, now, expected):
    st = rolling_back(reason="RollbackPatched", rollback_patched_at=at(1))
    d = decide(st, world(dep), now=now)
    assert where(d) == expected
    assert d.status.rollback_healthy is (False if expected[0] == "Failed" else None)
    assert d.requeue_after == (None if expected[0] == "Failed" else MIN_WAIT_SECONDS)  # at the timeout


def test_rollback_timeout_follows_the_spec():
    st = rolling_back(reason="RollbackPatched", rollback_patched_at=at(1))
    d = decide(st, world(rolled_back(available_replicas=0)), sp=spec(rollbackPolicy={"timeoutSeconds": 60}),
               now=at(61))
    assert where(d) == ("Failed", "RollbackUnhealthy")
    assert "within 60s" in d.status.message


def test_template_changed_after_the_rollback_is_left_alone():
    dep = deployment(tmpl("v4"), revisions=(REV1, rev("rs-2", 4, "v2", history=(2,)), REV3))
    d = decide(rolling_back(reason="RollbackPatched", rollback_patched_at=at(1)), world(dep), now=at(5))
    assert_finished(d, "Failed", "DeploymentChanged", now=at(5))
    assert d.status.rollback_healthy is False


# --- settle: RollbackDeployment -------------------------------------------------------------


def test_rollback_patch_accepted():
    st = rolling_back()
    d = settle(st, world(deployed()), RollbackDeployment("rs-2", []), Undone("rs-2"), now=at(3))
    assert where(d) == ("RollingBack", "RollbackPatched")
    assert (d.status.rollback_patched_at, d.status.phase_started_at) == (at(3), T0)
    assert (d.action, d.requeue_after) == (None, WATCH_SECONDS)
    assert events(d) == [("Normal", "RollbackPatched")]
    assert "rs-2" in d.status.message


def test_rollback_patch_refused_fails():
    d = settle(rolling_back(), world(deployed()), RollbackDeployment("rs-2", []),
               Failed("RollbackRefused", "the object has been modified"), now=at(3))
    assert_finished(d, "Failed", "RollbackRefused", now=at(3))
    assert (d.status.message, d.status.rollback_healthy) == ("the object has been modified", False)
    assert events(d) == [("Warning", "Failed")]


# --- history --------------------------------------------------------------------------------


def test_history_is_bounded():
    old = [Transition(phase="Pending", reason=f"R{i}", at=T0) for i in range(HISTORY_LIMIT)]
    d = decide(status(phase="Pending", reason=f"R{HISTORY_LIMIT - 1}", history=old),
               world(deployment(annotations={RUNS_ANNOTATION: other_holder()})), now=at(1))
    assert len(d.status.history) == HISTORY_LIMIT
    assert [t.reason for t in d.status.history] == [f"R{i}" for i in range(1, HISTORY_LIMIT)] + ["Queued"]
    assert d.status.history[-1].at == at(1)


def test_same_reason_with_a_new_message_updates_the_message_only():
    st = verifying(reason="RolloutInProgress", message="0 of 1 new replicas have been updated",
                   history=[Transition(phase="VerifyingHealth", reason="RolloutInProgress", at=T0)])
    d = decide(st, world(deployed(available_replicas=0)), now=at(14))
    assert d.status.message == "0 of 1 updated replicas are available"
    assert len(d.status.history) == 1


# --- whole runs --------------------------------------------------------------------------------


class FakeCluster:
    """Just enough of a cluster to drive a run: the Deployment follows the actions it is given, and keeps the
    record its patches write."""

    def __init__(self, pods=(HEALTHY_POD,)):
        self.dep, self.pods, self.actions = deployment(), pods, []

    def world(self):
        return world(self.dep, self.pods)

    def _keep(self, dep, written):
        annotations = {**dep.annotations, RUNS_ANNOTATION: written} if written else dep.annotations
        return replace(dep, annotations=annotations)

    def perform(self, action):
        self.actions.append(type(action).__name__)
        if isinstance(action, ResolveImage):  # no registry in this cluster: the run deploys by tag
            return ImageUnresolved("the registry could not be reached (a fake cluster)")
        if isinstance(action, ReleaseWorkload):
            self.dep = self._keep(self.dep, action.patch[-1]["value"])
            return Released()
        if isinstance(action, PatchDeployment):
            self.dep = self._keep(deployed(resource_version="101"),
                                  action.patch["metadata"]["annotations"][RUNS_ANNOTATION])
            return Deployed(V3_DIGEST)
        assert isinstance(action, RollbackDeployment)
        self.dep = self._keep(rolled_back(resource_version="102"), action.patch[2]["value"][RUNS_ANNOTATION])
        self.pods = (HEALTHY_POD,)
        return Undone(action.replica_set)


def drive(cluster: FakeCluster, sp, steps: int = 40) -> tuple[RunStatus, list[tuple[str, str]]]:
    st, now, seen = None, T0, []
    for _ in range(steps):
        d = decide(st, cluster.world(), sp=sp, now=now)
        if d.action is not None:
            seen += events(d)  # posted with the status written before the action
            outcome = cluster.perform(d.action)
            d = settle(d.status, cluster.world(), d.action, outcome, sp=sp, now=now)
        seen += events(d)
        st = d.status
        if d.requeue_after is None:
            return st, seen
        now = now + (at(d.requeue_after) - T0)
    raise AssertionError(f"run did not finish: {st}")


def test_whole_run_succeeds():
    cluster = FakeCluster()
    st, seen = drive(cluster, spec())
    assert [(t.phase, t.reason) for t in st.history] == [
        ("Pending", "Accepted"), ("Pending", "ReleasesResolved"), ("VerifyingHealth", "Deployed"),
        ("WatchingRestarts", "Healthy"), ("WatchingRestarts", "Observing"),
        ("Succeeded", "Succeeded")]
    assert cluster.actions == ["ResolveImage", "PatchDeployment", "ReleaseWorkload"]
    kept = record.parse(cluster.dep.annotations[RUNS_ANNOTATION])
    assert kept.holder is None and [(e.run, e.outcome) for e in kept.runs] == [(RUN, "succeeded")]
    assert (st.deployed_release_id, st.deployed_revision, st.previous_release_id, st.health_status,
            st.restart_watchdog_status, st.rollback_policy_status) == ("v3", 3, "v2", "healthy", "stable",
                                                                       "notEvaluated")
    assert seen == [("Normal", "Started"), ("Normal", "Deployed"), ("Normal", "Healthy"), ("Normal", "Succeeded")]


def test_whole_run_rolls_back_a_crash_looping_release():
    cluster = FakeCluster(pods=(CRASHING_POD,))
    st, seen = drive(cluster, spec())
    assert [(t.phase, t.reason) for t in st.history][-3:] == [
        ("RollingBack", "RestartWatchdogFailed"), ("RollingBack", "RollbackPatched"), ("RolledBack", "RolledBack")]
    assert cluster.actions == ["ResolveImage", "PatchDeployment", "RollbackDeployment", "ReleaseWorkload"]
    kept = record.parse(cluster.dep.annotations[RUNS_ANNOTATION])
    assert kept.holder is None and [(e.run, e.outcome) for e in kept.runs] == [(RUN, "rolledBack")]
    assert (st.rollback_target_release_id, st.rollback_target_replica_set, st.rollback_target_revision,
            st.rollback_healthy) == ("v2", "rs-2", 2, True)
    assert ("Warning", "RollingBack") in seen and seen[-1] == ("Normal", "RolledBack")


def test_disabled_watchdog_does_not_fail_fast_on_crash_signals():
    from selfbootstrap.core import machine as m

    crashing = pod("web-3", container(waiting_reason="CrashLoopBackOff", restart_count=3), ready=False)
    d = m.decide(run(verifying(), spec(restartWatchdog={"enabled": False})),
                 world(holding(deployed(updated_replicas=0, available_replicas=0)), (crashing,)), at(11))
    assert (d.status.phase, d.status.reason) == ("VerifyingHealth", "RolloutInProgress")


# --- records that tell the truth (issue: every input ends well) -------------------------------------


def test_a_crash_caught_during_the_rollout_counts_as_an_observation():
    d = decide(verifying(), world(deployed(available_replicas=0), (CRASHING_POD,)), now=at(3))
    s = d.status
    assert (s.restart_watchdog_status, s.restart_watchdog_attempts, s.restart_watchdog_checked_at) == (
        "unstable", 1, at(3))


def test_a_run_superseded_while_watching_shows_no_watchdog_verdict():
    st = watching(reason="Observing", restart_watchdog_attempts=1, restart_watchdog_checked_at=T0,
                  restart_watchdog_reason="stable")
    d = decide(st, world(deployment(tmpl("v4")), (HEALTHY_POD,)), now=at(1))
    assert where(d) == ("Failed", "DeploymentChanged")
    assert (d.status.restart_watchdog_status, d.status.restart_watchdog_reason) == ("notRun", None)


def test_a_rolled_back_run_keeps_what_failed():
    st = rolling_back(reason="RollbackPatched", rollback_patched_at=at(1), failure_reason="RestartWatchdogFailed",
                      failure_message="pod web-3 container app is in CrashLoopBackOff (3 restarts)")
    d = decide(st, world(rolled_back()), now=at(9))
    assert where(d) == ("RolledBack", "RolledBack")
    assert d.status.message == ("rolled back to release v2 (rs-2) after RestartWatchdogFailed: pod web-3 container "
                                "app is in CrashLoopBackOff (3 restarts); available again")
    degraded = next(c for c in d.status.conditions if c.type == "Degraded")
    assert (degraded.reason, degraded.message) == (
        "restartWatchdogFailure", "pod web-3 container app is in CrashLoopBackOff (3 restarts)")


def test_the_gate_failure_is_recorded_as_the_cause():
    d = decide(verifying(), world(deployed(), (CRASHING_POD,)), now=at(20))
    assert (d.status.failure_reason, d.status.failure_message) == (
        "RestartWatchdogFailed", "pod web-1 container app is in CrashLoopBackOff (3 restarts)")


def test_a_queued_run_says_so_with_an_event_once():
    accepted = decide(None, world(deployment())).status
    busy = deployment(annotations={RUNS_ANNOTATION: other_holder()})
    d = decide(accepted, world(busy), now=at(1))
    assert events(d) == [("Normal", "Queued")]
    again = decide(d.status, world(busy), now=at(6))
    assert events(again) == []


def test_a_git_run_waits_for_the_deployment_only_when_it_deploys():
    sp = spec(git={"repositoryUrl": "https://git.example.com/a/b.git", "change": {"setImage": {"path": "x.yaml"}}})
    busy = deployment(annotations={RUNS_ANNOTATION: other_holder()})
    d = decide(status(phase="Pending", reason="Accepted"), world(busy), sp=sp)
    assert where(d) == ("Branching", "Started"), "a git run does not hold or wait for the Deployment"
    merged = status(phase="Deploying", reason="Merged", started_at=T0, phase_started_at=T0)
    d = decide(merged, world(busy), sp=sp, now=at(5))
    assert where(d) == ("Deploying", "Queued") and d.action is None
    d = decide(looked_up(d.status), world(deployment(annotations={RUNS_ANNOTATION: "{}"})), sp=sp, now=at(10))
    assert isinstance(d.action, PatchDeployment) and d.action.takes


def test_new_pods_of_a_scale_up_that_are_not_started_do_not_fail_the_watchdog():
    pending = PodState("web-9", phase="Pending", ready=False, started=False)
    st = watching(reason="Observing", restart_watchdog_attempts=2, restart_watchdog_checked_at=T0)
    d = decide(st, world(deployed(replicas=2, status_replicas=2, available_replicas=1), (HEALTHY_POD, pending)),
               now=at(10))
    assert where(d) == ("Succeeded", "Succeeded")


def test_pods_that_never_start_are_caught_by_the_progress_deadline():
    st = watching(reason="Observing", restart_watchdog_attempts=1, restart_watchdog_checked_at=T0)
    dep = deployed(replicas=2, available_replicas=1, progressing_reason="ProgressDeadlineExceeded")
    d = decide(st, world(dep, (HEALTHY_POD,)), now=at(10))
    assert where(d) == ("Failed", "ProgressDeadlineExceeded")
    assert d.status.rollback_failure_class == "deployFailure"


def test_the_watchdog_waits_until_it_sees_every_available_pod():
    st = watching(reason="Observing", restart_watchdog_attempts=1, restart_watchdog_checked_at=T0)
    d = decide(st, world(deployed(replicas=2, status_replicas=2, updated_replicas=2, available_replicas=2),
                         (HEALTHY_POD,)), now=at(10))
    assert (d.status.restart_watchdog_attempts, d.requeue_after, d.action) == (1, 0.5, None)


def test_internal_errors_end_the_run_saying_so():
    d = machine.internal_error(run(rolling_back()), at(1), "unexpected KeyError in run apps/run-1: 'x'")
    assert where(d) == ("Failed", "InternalError") and d.status.rollback_healthy is False
    assert d.requeue_after is None


def test_a_conflict_is_decided_again_at_once_without_an_event():
    d = settle(rolling_back(), world(deployed()), RollbackDeployment("rs-2", []),
               Failed("RollbackRefused", "409: the object has been modified", retryable=True, stale=True), now=at(3))
    assert (d.requeue_after, d.events, d.status.retry.attempts) == (0, (), 1)
    assert d.status.retry.next_attempt_at is None


# --- the image's registry --------------------------------------------------------------------------------

DIGEST = "sha256:" + "d" * 64


def test_a_resolved_image_is_deployed_pinned_with_its_metadata():
    from selfbootstrap.core.actions import ImageResolved

    st = status(phase="Deploying", reason="Claimed", started_at=T0)
    d = decide(st, world(deployment()))
    assert isinstance(d.action, ResolveImage) and d.action.image == image("v3")
    found = ImageResolved(DIGEST, "registry.local:5000", version="3.0.0", revision="abc")
    d = settle(d.status, world(deployment()), d.action, found)
    assert (d.status.image_digest, d.status.image_version, d.status.deployed_image) == (
        DIGEST, "3.0.0", f"{image('v3')}@{DIGEST}")
    d = decide(d.status, world(deployment()))
    d = decide(d.status, world(deployment()))
    assert isinstance(d.action, PatchDeployment)
    assert d.action.patch["spec"]["template"]["spec"]["containers"][0]["image"] == f"{image('v3')}@{DIGEST}"


def test_an_image_by_digest_alone_takes_its_release_id_from_the_registry():
    from selfbootstrap.core.actions import ImageResolved

    sp = spec(release={"image": f"registry.local:5000/team/web@{DIGEST}"})
    st = status(phase="Deploying", reason="Claimed", started_at=T0)
    d = decide(st, world(deployment()), sp=sp)
    d = settle(d.status, world(deployment()), d.action, ImageResolved(DIGEST, "registry.local:5000", version="3.1"),
               sp=sp)
    d = decide(d.status, world(deployment()), sp=sp)
    assert (d.status.deployed_release_id, d.status.release_metadata_source) == ("3.1", "registry")


def test_an_image_not_built_from_the_merged_commit_is_deployed_with_a_warning():
    from selfbootstrap.core.actions import ImageResolved
    from selfbootstrap.models import GitStatus

    st = status(phase="Deploying", reason="Merged", started_at=T0, git=GitStatus(merge_commit_sha="f" * 40))
    d = settle(st, world(deployment()), ResolveImage(image("v3"), (), "default"),
               ImageResolved(DIGEST, "registry.local:5000", revision="0123abc"))
    assert ("Warning", "ImageRevisionMismatch") in events(d)
    d = settle(st, world(deployment()), ResolveImage(image("v3"), (), "default"),
               ImageResolved(DIGEST, "registry.local:5000", revision="f" * 7))
    assert events(d) == []


@pytest.mark.parametrize("how, expected", [
    ("superseded", ("Superseded", "Superseded")),
    ("expected-release", ("Failed", "CurrentReleaseMismatch")),
    ("aborted", ("Failed", "Aborted")),
])
def test_a_git_run_that_ends_after_its_merge_and_before_its_deploy_says_git_keeps_the_merge(how, expected):
    """Git then runs ahead of the workload: status says so, naming the merge (a revert undoes only a deploy)."""
    from selfbootstrap.core.world import Peer
    from selfbootstrap.models import GitStatus

    st = looked_up(status(phase="Deploying", reason="Merged", started_at=T0, git=GitStatus(merge_commit_sha="f" * 40)))
    r, w = run(st, spec()), world(deployment())  # not yet held: a git run takes the workload when it deploys
    match how:
        case "superseded":
            w = world(deployment(), peers=(Peer("run-9", "u-9", None, "2031-01-01T00:00:00Z"),))
        case "expected-release":
            r = run(st, spec(release={"expectedCurrentReleaseId": "v1"}))
        case "aborted":
            r = replace(r, abort="not today")
    d = machine.decide(r, w, T0)
    assert where(d) == expected and d.action is None
    assert f"its change stays merged in git ({'f' * 12}; nothing was deployed" in (d.status.message or "")


def test_a_missing_image_ends_the_run_untouched():
    d = settle(status(phase="Deploying", reason="Claimed", started_at=T0), world(deployment()),
               ResolveImage(image("v3"), (), "default"), Failed("ImageNotFound", "image x not found: r has no v3"))
    assert_finished(d, "Failed", "ImageNotFound")
    assert "the Deployment was not touched" in (d.status.message or "")
