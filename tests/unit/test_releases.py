"""releases.py: release ids read from images and pod templates, revisions, and the resolution chain."""

from __future__ import annotations

import copy

import pytest

from selfbootstrap.core import releases
from selfbootstrap.core.releases import SourceAnswer
from selfbootstrap.core.world import Revision
from selfbootstrap.models import RELEASE_ANNOTATION, RELEASE_IMAGES_ANNOTATION, Release

from .factories import REV1, REV2, REV3, deployment, rev, tmpl


def two_containers(app: str = "reg/app:a1", sidecar: str = "reg/sidecar:s1") -> dict:
    return tmpl(containers=[{"name": "app", "image": app}, {"name": "sidecar", "image": sidecar}])


# --- image_tag ----------------------------------------------------------------


@pytest.mark.parametrize("image, expected", [
    pytest.param("nginx:1.25", "1.25", id="name-and-tag"),
    pytest.param("nginx", None, id="bare-name"),
    pytest.param("docker.io/library/nginx:1.25-alpine", "1.25-alpine", id="registry-path-tag"),
    pytest.param("registry.example.com/app", None, id="registry-without-tag"),
    pytest.param("localhost:5000/app", None, id="registry-port-without-tag"),
    pytest.param("localhost:5000/app:v2", "v2", id="registry-port-with-tag"),
    pytest.param("localhost:5000/team/app:v2.1", "v2.1", id="registry-port-nested-path-tag"),
    pytest.param("app@sha256:abc123", "sha256:abc123", id="digest"),
    pytest.param("localhost:5000/app@sha256:abc123", "sha256:abc123", id="registry-port-digest"),
    pytest.param("reg.io/app:v1@sha256:abc123", "v1", id="tag-beats-digest"),
])
def test_image_tag(image, expected):
    assert releases.image_tag(image) == expected


# --- release_id_of / image_of ------------------------------------------------


@pytest.mark.parametrize("template, container, expected", [
    pytest.param(tmpl("rel-7", img="reg/app:v1"), None, "rel-7", id="annotation-beats-image-tag"),
    pytest.param(tmpl("v1", annotated=False), None, "v1", id="image-tag-without-annotation"),
    pytest.param({"metadata": {"annotations": {RELEASE_ANNOTATION: ""}},
                  "spec": {"containers": [{"name": "app", "image": "reg/app:v4"}]}},
                 None, "v4", id="empty-annotation-falls-back-to-tag"),
    pytest.param({"spec": {"containers": [{"name": "app", "image": "reg/app:v5"}]}},
                 None, "v5", id="no-metadata"),
    pytest.param(tmpl(img="reg/app", annotated=False), None, None, id="bare-image-no-annotation"),
    pytest.param(two_containers(), None, "a1", id="first-container-when-unnamed"),
    pytest.param(two_containers(), "sidecar", "s1", id="named-container"),
    pytest.param(two_containers(), "missing", None, id="named-container-absent"),
    pytest.param({"metadata": {}, "spec": {}}, None, None, id="no-containers"),
])
def test_release_id_of(template, container, expected):
    assert releases.release_id_of(template, container) == expected


def test_image_of_picks_the_named_container():
    template = two_containers()
    assert releases.image_of(template, "sidecar") == "reg/sidecar:s1"
    assert releases.image_of(template, None) == "reg/app:a1"
    assert releases.image_of(template, "nope") is None


# --- target_container ---------------------------------------------------------


@pytest.mark.parametrize("template, name, expected", [
    pytest.param(tmpl("v1"), "app", "app", id="named-present"),
    pytest.param(tmpl("v1"), None, "app", id="unnamed-single-container"),
    pytest.param(two_containers(), "sidecar", "sidecar", id="named-among-several"),
])
def test_target_container(template, name, expected):
    assert releases.target_container(template, name) == expected


@pytest.mark.parametrize("template, name, message", [
    pytest.param(tmpl("v1"), "sidecar", "container 'sidecar' not found", id="named-absent"),
    pytest.param(two_containers(), None, "spec.target.container is required", id="unnamed-ambiguous"),
    pytest.param({"spec": {"containers": []}}, None, "spec.target.container is required", id="no-containers"),
])
def test_target_container_errors(template, name, message):
    with pytest.raises(ValueError, match=message):
        releases.target_container(template, name)


# --- strip_hash ---------------------------------------------------------------


@pytest.mark.parametrize("template, expected", [
    pytest.param({"metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}}, "spec": {}},
                 {"metadata": {"labels": {"app": "web"}}, "spec": {}}, id="removes-hash-keeps-labels"),
    pytest.param({"metadata": {"labels": {"pod-template-hash": "abc"}}}, {"metadata": {"labels": {}}},
                 id="only-hash-label"),
    pytest.param({"metadata": {"labels": {"app": "web"}}}, {"metadata": {"labels": {"app": "web"}}},
                 id="no-hash-label"),
    pytest.param({"metadata": {}}, {"metadata": {}}, id="no-labels"),
    pytest.param({"spec": {"containers": []}}, {"spec": {"containers": []}}, id="no-metadata"),
])
def test_strip_hash(template, expected):
    original = copy.deepcopy(template)
    assert releases.strip_hash(template) == expected
    assert template == original, "strip_hash must not mutate its input"


# --- current_revision / newest_revision ----------------------------------------


@pytest.mark.parametrize("template, revisions, expected", [
    pytest.param(tmpl("v2"), (REV1, REV2), REV2, id="template-equal"),
    pytest.param(tmpl("v1"), (REV2, REV1), REV1, id="older-revision-equal"),
    pytest.param(tmpl("v3"), (REV1, REV2), None, id="no-replica-set-yet"),
    pytest.param(tmpl("v2"), (), None, id="no-revisions"),
    pytest.param(tmpl("v2"), (rev("rs-old", 2, "v2"), rev("rs-new", 5, "v2"), REV1),
                 rev("rs-new", 5, "v2"), id="newest-of-equal-templates-wins"),
    pytest.param(tmpl("v2", annotated=False), (REV2,), None, id="annotation-difference-matters"),
])
def test_current_revision(template, revisions, expected):
    assert releases.current_revision(deployment(template, revisions)) == expected


@pytest.mark.parametrize("filters, expected", [
    pytest.param({}, REV3, id="newest"),
    pytest.param({"release_id": "v1"}, REV1, id="by-release"),
    pytest.param({"release_id": "v9"}, None, id="release-absent"),
    pytest.param({"exclude": "rs-3"}, REV2, id="exclude-replica-set"),
    pytest.param({"below": 3}, REV2, id="below-revision"),
    pytest.param({"below": 1}, None, id="nothing-below"),
    pytest.param({"release_id": "v3", "exclude": "rs-3"}, None, id="release-only-in-excluded"),
    pytest.param({"release_id": "v1", "below": 3, "exclude": "rs-2"}, REV1, id="all-filters"),
])
def test_newest_revision(filters, expected):
    assert releases.newest_revision((REV2, REV3, REV1), **filters) == expected


def test_newest_revision_prefers_the_higher_number_for_the_same_release():
    again = rev("rs-1b", 7, "v1")
    assert releases.newest_revision((REV1, again, REV2), release_id="v1") == again


def test_newest_revision_of_nothing():
    assert releases.newest_revision(()) is None


# --- answer_from_deployment ---------------------------------------------------


@pytest.mark.parametrize("dep, requested, current_id, previous_id, previous_rev", [
    pytest.param(deployment(tmpl("v2"), (REV1, REV2)), "v3", "v2", "v2", REV2,
                 id="previous-is-what-runs-now"),
    pytest.param(deployment(tmpl("v2"), (REV1, REV2)), None, "v2", "v2", REV2,
                 id="no-requested-release"),
    pytest.param(deployment(tmpl("v3"), (REV1, REV2, REV3)), "v3", "v3", "v2", REV2,
                 id="already-runs-requested-previous-is-revision-before"),
    pytest.param(deployment(tmpl("v3"), (REV1, REV3)), "v3", "v3", "v1", REV1,
                 id="already-runs-requested-gap-in-revisions"),
    pytest.param(deployment(tmpl("v1"), (REV1,)), "v1", "v1", None, None,
                 id="already-runs-requested-no-older-revision"),
    pytest.param(deployment(tmpl("v2"), ()), "v3", "v2", None, None, id="no-revisions"),
    # The controller lags behind a template change: what runs is still the newest ReplicaSet.
    pytest.param(deployment(tmpl("v5"), (REV1, REV2)), "v6", "v5", "v2", REV2,
                 id="current-replica-set-not-created-yet"),
])
def test_answer_from_deployment(dep, requested, current_id, previous_id, previous_rev):
    answer = releases.answer_from_deployment(dep, requested, None)
    assert answer == SourceAnswer(source="deploymentRevisions", current_release_id=current_id,
                                  previous_release_id=previous_id, previous_revision=previous_rev)


def test_answer_from_deployment_reads_the_named_container():
    template = two_containers(app="reg/app:a7", sidecar="reg/sidecar:s3")
    current = rev("rs-9", 9, "a7", template=template)
    answer = releases.answer_from_deployment(deployment(template, (current,)), "s4", "sidecar")
    assert answer.current_release_id == "s3"
    assert answer.previous_revision == current


# --- resolve ------------------------------------------------------------------

FROM_DEPLOYMENT = SourceAnswer("deploymentRevisions", current_release_id="v2", previous_release_id="v2",
                               previous_revision=REV2)
EMPTY_DEPLOYMENT = SourceAnswer("deploymentRevisions")
FROM_GIT = SourceAnswer("git", current_release_id="g-cur", previous_release_id="g-prev")


@pytest.mark.parametrize("release, answers, expected", [
    pytest.param({"image": "reg/app:v3"}, [FROM_DEPLOYMENT],
                 ("v3", "v2", "v2", "deploymentRevisions"), id="tag-then-revisions"),
    pytest.param({"image": "reg/app:v3", "id": "rel-3"}, [FROM_DEPLOYMENT],
                 ("rel-3", "v2", "v2", "deploymentRevisions"), id="spec-id-beats-image-tag"),
    pytest.param({"image": "reg/app:v3", "previousReleaseId": "v1"}, [FROM_DEPLOYMENT],
                 ("v3", "v1", "v1", "deploymentRevisions"), id="spec-previous-beats-revisions"),
    pytest.param({"image": "reg/app:v3", "rollbackReleaseId": "v0"}, [FROM_DEPLOYMENT],
                 ("v3", "v2", "v0", "deploymentRevisions"), id="rollback-id-beats-revisions"),
    pytest.param({"image": "reg/app:v3", "previousReleaseId": "v1", "rollbackReleaseId": "v0"},
                 [FROM_DEPLOYMENT], ("v3", "v1", "v0", "deploymentRevisions"), id="rollback-id-beats-previous-id"),
    pytest.param({"image": "reg/app"}, [FROM_DEPLOYMENT],
                 ("v2", "v2", "v2", "deploymentRevisions"), id="untagged-image-current-from-source"),
    pytest.param({"image": "reg/app"}, [EMPTY_DEPLOYMENT],
                 (None, None, None, "spec"), id="nothing-known"),
    pytest.param({"image": "reg/app:v3"}, [], ("v3", None, None, "spec"),
                 id="no-sources"),
    pytest.param({"image": "reg/app:v3"}, [EMPTY_DEPLOYMENT, FROM_GIT],
                 ("v3", "g-prev", "g-prev", "git"), id="next-source-fills-the-gap"),
    pytest.param({"image": "reg/app"}, [FROM_DEPLOYMENT, FROM_GIT],
                 ("v2", "v2", "v2", "deploymentRevisions"), id="first-source-wins"),
    pytest.param({"image": "reg/app", "previousReleaseId": "v1"}, [EMPTY_DEPLOYMENT, FROM_GIT],
                 ("g-cur", "v1", "v1", "git"), id="source-named-for-deployed-id"),
    pytest.param({"podTemplatePatch": {"metadata": {"labels": {"x": "y"}}}, "id": "p1",
                  "previousReleaseId": "p0"}, [FROM_DEPLOYMENT],
                 ("p1", "p0", "p0", "deploymentRevisions"), id="pod-template-patch-ids-from-spec"),
])
def test_resolve(release, answers, expected):
    """`source` names the first source consulted for anything: an id, or the previous revision."""
    res = releases.resolve(Release.model_validate(release), answers)
    got = (res.deployed_release_id, res.previous_release_id, res.rollback_target_release_id, res.source)
    assert got == expected


@pytest.mark.parametrize("answers, expected", [
    pytest.param([FROM_DEPLOYMENT], REV2, id="from-deployment"),
    pytest.param([FROM_GIT, FROM_DEPLOYMENT], REV2, id="first-source-with-a-revision"),
    pytest.param([FROM_GIT], None, id="source-without-revisions"),
])
def test_resolve_previous_revision(answers, expected):
    res = releases.resolve(Release(image="reg/app:v3"), answers)
    assert res.previous_revision == expected


@pytest.mark.parametrize("release, expected", [
    pytest.param({"id": "r1", "image": "reg/app:v1"}, "r1", id="id"),
    pytest.param({"image": "reg/app:v1"}, "v1", id="image-tag"),
    pytest.param({"image": "localhost:5000/app"}, None, id="untagged-image"),
    pytest.param({"podTemplatePatch": {}, "id": "p"}, "p", id="pod-template-patch"),
])
def test_requested_release_id(release, expected):
    assert releases.requested_release_id(Release.model_validate(release)) == expected


def annotated(release: str, image: str, recorded: str | None) -> dict:
    annotations = {RELEASE_ANNOTATION: release}
    if recorded is not None:
        annotations[RELEASE_IMAGES_ANNOTATION] = recorded
    return {"metadata": {"annotations": annotations}, "spec": {"containers": [{"name": "app", "image": image}]}}


@pytest.mark.parametrize("template, expected", [
    pytest.param(annotated("v1", "reg/web:v1", "app=reg/web:v1"), "v1", id="images-as-recorded"),
    pytest.param(annotated("v1", "reg/web:v1-hotfix", "app=reg/web:v1"), "v1-hotfix",
                 id="set-image-since-the-release-is-no-longer-it"),
    pytest.param(annotated("v1", "reg/web@sha256:abc", "app=reg/web:v1"), "sha256:abc", id="digest-since"),
    pytest.param(annotated("v1", "reg/web:v7", None), "v1", id="annotation-set-by-hand-is-taken"),
])
def test_a_release_is_what_the_template_runs(template, expected):
    assert releases.release_id_of(template) == expected


def test_a_rollback_to_a_release_finds_it_and_not_a_hotfix_that_kept_its_annotation():
    real = Revision("rs-1", 1, annotated("v1", "reg/web:v1", "app=reg/web:v1"))
    hotfix = Revision("rs-2", 2, annotated("v1", "reg/web:v1-hotfix", "app=reg/web:v1"))
    revisions = [Revision(r.replica_set, r.revision, r.template, releases.release_id_of(r.template))
                 for r in (real, hotfix)]
    assert releases.newest_revision(revisions, release_id="v1").replica_set == "rs-1"


@pytest.mark.parametrize("part, included", [
    ({"metadata": {"labels": {"tier": "x"}}}, True),
    ({"metadata": {"labels": {"tier": "y"}}}, False),
    ({"spec": {"containers": [{"name": "app", "env": [{"name": "MODE", "value": "fast"}]}]}}, True),
    ({"spec": {"containers": [{"name": "app", "env": [{"name": "MODE", "value": "slow"}]}]}}, False),
    ({"spec": {"containers": [{"name": "proxy", "image": "p:1"}]}}, False),
    ({"spec": {"containers": [{"name": "app", "$patch": "merge"}]}}, True),
    ({"spec": {"tolerations": [{"key": "a"}]}}, False),
], ids=["label-there", "label-differs", "env-there", "env-differs", "container-missing", "directive-ignored",
        "list-missing"])
def test_a_template_includes_a_strategic_merge_patch(part, included):
    whole = {"metadata": {"labels": {"app": "web", "tier": "x"}},
             "spec": {"containers": [{"name": "app", "image": "reg/web:v2", "imagePullPolicy": "IfNotPresent",
                                      "env": [{"name": "MODE", "value": "fast"}]}]}}
    assert releases.includes(whole, part) is included
