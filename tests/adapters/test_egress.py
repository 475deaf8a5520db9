"""Where the operator connects, with real parts: the git executor, the forge client and the HTTP probe
against a real git server, redirecting and hostile servers, and recording listeners on another
loopback address (127.0.0.2) where nothing may ever arrive."""

from __future__ import annotations

import base64
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from unittest.mock import create_autospec

import httpx
import pytest

from selfbootstrap.adapters.egress import EgressPolicy, Resolver, system_resolver
from selfbootstrap.adapters.gitexec import GitExecutor
from selfbootstrap.adapters.http import HttpExecutor
from selfbootstrap.adapters.kube import Kube
from selfbootstrap.core import gitflow
from selfbootstrap.core.actions import (
    BranchResolved,
    CheckCI,
    CIReported,
    CommitChange,
    Committed,
    Failed,
    OpenPullRequest,
    Probed,
    ProbeHttp,
    PullRequestOpened,
    PushBranch,
    ResolveBranch,
)
from selfbootstrap.core.egress import policy_of
from selfbootstrap.core.run import Run
from selfbootstrap.models import CIStatus, HttpCheck, RunSpec, RunStatus
from tests.support.gitserver.git_http import GitHttpServer
from tests.support.gitserver.hostile import SECRET, Answer, HostileForge, RecordingListener, RedirectingServer

TOKEN = "t0ken-that-never-follows-a-redirect"
BASIC = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
MANIFEST = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n" \
           "      containers: [{name: app, image: reg/web:v1}]\n"
SHA = "c" * 40


@pytest.fixture
def git_server(tmp_path) -> Iterator[GitHttpServer]:
    with GitHttpServer(tmp_path / "repos", TOKEN) as server:
        server.create_repo("acme/web", {"deploy/web.yaml": MANIFEST})
        yield server


@pytest.fixture
def sink() -> Iterator[RecordingListener]:
    """Where nothing may arrive: another loopback address, refused by the default policy."""
    with RecordingListener("127.0.0.2") as listener:
        yield listener


@pytest.fixture
def forge() -> Iterator[HostileForge]:
    with HostileForge() as server:
        yield server


def policy(*allow: str, resolver: Resolver = system_resolver) -> EgressPolicy:
    return EgressPolicy(policy_of(allow, ()), resolver)


def kube_allowing(*prefixes: str) -> Kube:
    kube = create_autospec(Kube, instance=True)
    kube.read_secret_data.return_value = ({"token": TOKEN.encode()}, prefixes)
    return kube


def run_of(repository_url: str, forge_url: str) -> Run:
    spec = RunSpec.model_validate({
        "target": {"deployment": "web"}, "release": {"id": "v2", "image": "reg/web:v2"},
        "git": {"repositoryUrl": repository_url, "change": {"setImage": {"path": "deploy/web.yaml"}},
                "credentials": {"secretRef": {"name": "git-token"}},
                "forge": {"apiUrl": forge_url, "repository": "acme/web"}}})
    return Run("run-1", 1, spec, RunStatus(), "apps", "uid-1", "2030-01-01T00:00:00Z")


def executor(tmp_path: Path, egress: EgressPolicy, *allowed_urls: str) -> GitExecutor:
    return GitExecutor(kube_allowing(*allowed_urls), tmp_path / "work", egress)


def commit_of(run: Run, base_sha: str) -> CommitChange:
    trailer = gitflow.trailer_of(run)
    return CommitChange("selfbootstrap/run-1", base_sha, f"Deploy v2\n\n{trailer}\n", trailer)


def assert_nothing_arrived(sink: RecordingListener) -> None:
    time.sleep(0.2)  # a connection in flight would be counted by now
    assert (sink.connections, sink.requests) == (0, [])


# --- credentials never follow a redirect ----------------------------------------------------------


@pytest.mark.parametrize("code", [302, 307, 301])
def test_git_never_takes_the_token_along_a_redirect(tmp_path, sink, forge, code):
    with RedirectingServer(sink.base_url, code) as redirector:
        repo = f"{redirector.base_url}/acme/web.git"
        git = executor(tmp_path, policy("127.0.0.1/32"), f"{redirector.base_url}/", f"{forge.api_url}/")
        result = git.perform(run_of(repo, forge.api_url), ResolveBranch("selfbootstrap/run-1", "main", "t"))

    assert isinstance(result, Failed) and result.reason == "RedirectRefused" and not result.retryable
    assert repo in result.message and f"{sink.base_url}/acme/web.git/info/refs" in result.message
    assert_nothing_arrived(sink)
    asked = redirector.requests[-1]
    assert asked["authorization"] is None, "the Location is asked for without credentials"


def test_the_control_plain_git_does_take_the_token_to_the_redirect_target(tmp_path, git_server):
    """The attack as reported, with git's defaults: the refs' GET is redirected to another host, and git
    sends the pack's POST there with the token. The hardened git of the tests here sends nothing."""
    other = RedirectingServer("http://unused", upstream=git_server.base_url, redirects=lambda m, p: False,
                              upstream_headers={"Authorization": f"Basic {BASIC}"})
    other.host = "127.0.0.2"  # another host serving the repository to anyone, recording what it gets
    with other, RedirectingServer(other.base_url, 302,
                                  redirects=lambda method, path: "/info/refs" in path) as redirector:
        done = subprocess.run(["git", "-c", f"http.extraHeader=Authorization: Basic {BASIC}", "clone", "-q",
                               f"{redirector.base_url}/acme/web.git", str(tmp_path / "clone")],
                              capture_output=True, text=True, check=False,
                              env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GIT_TERMINAL_PROMPT": "0"})
    assert done.returncode == 0, done.stderr
    posts = [BASIC in (r["authorization"] or "") for r in other.requests if r["method"] == "POST"]
    assert posts and all(posts), other.requests  # v0: the pack's POST; v2: ls-refs', then the fetch's


@pytest.mark.parametrize("step, redirected", [
    ("clone", lambda method, path: method == "POST" and path.endswith("/git-upload-pack")),
    ("push", lambda method, path: method == "POST" and path.endswith("/git-receive-pack")),
    ("push", lambda method, path: "git-receive-pack" in path),
], ids=["fetch-pack-only", "push-pack-only", "push-refs-and-pack"])
def test_a_redirect_of_the_pack_request_alone_gets_no_token_either(tmp_path, git_server, sink, forge, step,
                                                                   redirected):
    """The attack as reported: the refs are served, then the POST carrying the pack is redirected."""
    with RedirectingServer(sink.base_url, 307, upstream=git_server.base_url, redirects=redirected) as redirector:
        repo = f"{redirector.base_url}/acme/web.git"
        git = executor(tmp_path, policy("127.0.0.1/32"), f"{redirector.base_url}/", f"{forge.api_url}/")
        run = run_of(repo, forge.api_url)
        commit = commit_of(run, git_server.branches("acme/web")["main"])
        result = git.perform(run, commit)
        if step == "push":  # the clone went through: only the push is redirected
            assert isinstance(result, Committed), result
            result = git.perform(run, PushBranch(commit, result.sha))

    assert isinstance(result, Failed) and result.reason == "RedirectRefused", result
    assert repo in result.message and sink.base_url in result.message
    assert any(r["redirected"] for r in redirector.requests), "the server did redirect"
    assert_nothing_arrived(sink)
    assert git_server.pushes("acme/web") == 0


@pytest.mark.parametrize("method, path, code", [
    ("GET", r"/repos/acme/web/pulls", 302),
    ("POST", r"/repos/acme/web/pulls", 307),
    ("POST", r"/repos/acme/web/pulls", 308),
])
def test_the_forge_never_takes_the_token_along_a_redirect(tmp_path, git_server, sink, forge, method, path, code):
    forge.answer("GET", r"/repos/acme/web/pulls", Answer(200, []))
    forge.answer(method, path, Answer(code, b"", {"Location": f"{sink.base_url}/steal"}))
    git = executor(tmp_path, policy("127.0.0.1/32"), f"{git_server.base_url}/", f"{forge.api_url}/")
    result = git.perform(run_of(f"{git_server.base_url}/acme/web.git", forge.api_url),
                         OpenPullRequest("selfbootstrap/run-1", "main", "t", "b"))

    assert isinstance(result, Failed) and result.reason == "RedirectRefused" and not result.retryable
    assert f"{forge.api_url}/repos/acme/web/pulls" in result.message and f"{sink.base_url}/steal" in result.message
    assert TOKEN in forge.authorized_requests()[-1]["authorization"], "the forge itself got it (it may)"
    assert_nothing_arrived(sink)


# --- nothing a remote server says reaches a result -------------------------------------------------


@pytest.mark.parametrize("code, reason, retryable", [(404, "PullRequestFailed", False),
                                                     (422, "PullRequestFailed", False),
                                                     (503, "PullRequestFailed", True)])
def test_forge_error_bodies_and_reason_phrases_never_appear_in_results(tmp_path, git_server, forge, code, reason,
                                                                       retryable):
    if code != 404:  # 404: the forge's default answer, with the secret in its body and status line
        forge.answer("GET", r"/repos/acme/web/pulls", Answer(code, {"message": SECRET, "errors": [SECRET]},
                                                                reason=SECRET))
    git = executor(tmp_path, policy("127.0.0.1/32"), f"{git_server.base_url}/", f"{forge.api_url}/")
    result = git.perform(run_of(f"{git_server.base_url}/acme/web.git", forge.api_url),
                         OpenPullRequest("selfbootstrap/run-1", "main", "t", "b"))

    assert isinstance(result, Failed) and (result.reason, result.retryable) == (reason, retryable)
    assert SECRET not in result.message and result.message.startswith(f"GET /pulls returned {code} (")


def test_a_huge_forge_answer_is_refused_while_it_is_read(tmp_path, git_server, forge):
    size = 256 * 1024 * 1024
    forge.answer("GET", r"/repos/acme/web/pulls", Answer(200, size=size))
    git = executor(tmp_path, policy("127.0.0.1/32"), f"{git_server.base_url}/", f"{forge.api_url}/")
    result = git.perform(run_of(f"{git_server.base_url}/acme/web.git", forge.api_url),
                         OpenPullRequest("selfbootstrap/run-1", "main", "t", "b"))

    assert isinstance(result, Failed) and "answered more than 4194304 bytes" in result.message
    time.sleep(0.2)
    assert forge.sent < size // 4, "the reader stopped long before the end"


def test_check_names_and_pull_request_urls_are_stored_escaped(tmp_path, git_server, forge):
    hostile = "lint\x1b]8;;http://evil/\x07\r\u202eevil"
    forge.answer("GET", rf"/repos/acme/web/commits/{SHA}/status",
                 Answer(200, {"statuses": [{"state": "failure", "context": hostile}]}))
    forge.answer("GET", rf"/repos/acme/web/commits/{SHA}/check-runs",
                 Answer(200, {"check_runs": [{"name": "x" * 10_000, "status": "in_progress"}]}))
    forge.answer("GET", r"/repos/acme/web/pulls", Answer(200, [{"number": 3, "html_url": "javascript:alert(1)",
                                                                "state": "open"}]))
    git = executor(tmp_path, policy("127.0.0.1/32"), f"{git_server.base_url}/", f"{forge.api_url}/")
    run = run_of(f"{git_server.base_url}/acme/web.git", forge.api_url)

    ci = git.perform(run, CheckCI(SHA))
    assert isinstance(ci, CIReported) and ci.state == CIStatus.FAILURE
    assert ci.description == r"failed: lint\x1b]8;;http://evil/\x07\x0d\u202eevil"
    assert git.perform(run, OpenPullRequest("selfbootstrap/run-1", "main", "t", "b")) == PullRequestOpened(3, "")


# --- refused destinations receive no connection at all ----------------------------------------------


def test_a_repository_the_policy_refuses_is_never_contacted(tmp_path, sink, forge):
    repo = f"{sink.base_url}/acme/web.git"
    git = executor(tmp_path, policy(), f"{sink.base_url}/", f"{forge.api_url}/")
    result = git.perform(run_of(repo, forge.api_url), ResolveBranch("selfbootstrap/run-1", "main", "t"))

    assert isinstance(result, Failed) and result.reason == "EgressRefused" and not result.retryable
    assert repo in result.message and "127.0.0.2 is loopback (127.0.0.0/8)" in result.message
    assert_nothing_arrived(sink)


def test_a_forge_api_the_policy_refuses_fails_the_run_before_git_is_contacted(tmp_path, git_server, sink):
    repo = f"{git_server.base_url}/acme/web.git"
    git = executor(tmp_path, policy(f"{git_server.base_url}/"), f"{git_server.base_url}/", f"{sink.base_url}/")
    result = git.perform(run_of(repo, sink.base_url), ResolveBranch("selfbootstrap/run-1", "main", "t"))

    assert isinstance(result, Failed) and result.reason == "EgressRefused"
    assert f"{sink.base_url}/repos/acme/web/" in result.message
    assert git_server.requests == []
    assert_nothing_arrived(sink)


def test_an_http_check_the_policy_refuses_is_never_contacted(sink):
    check = HttpCheck(url=f"{sink.base_url}/metrics", expected_status=200)
    result = HttpExecutor(policy()).perform(ProbeHttp(check))
    assert isinstance(result, Failed) and result.reason == "EgressRefused"
    assert_nothing_arrived(sink)


# --- no DNS rebinding between the check and the connection ------------------------------------------


class Rebinding:
    """A name that answers the allowed address to its first lookup and loopback's other address after."""

    def __init__(self, first: str = "127.0.0.1", then: str = "127.0.0.2") -> None:
        self.answers, self.asked = [first], 0
        self.then = then

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked += 1
        return [self.answers.pop(0) if self.answers else self.then]


def test_git_connects_to_the_checked_address_not_what_the_name_says_later(tmp_path, git_server, forge):
    port = int(git_server.base_url.rsplit(":", 1)[1])
    with RecordingListener("127.0.0.2", port) as sink:  # the same port on the address the name rebinds to
        resolver = Rebinding()
        base = f"http://git.rebind.test:{port}"
        git = executor(tmp_path, policy("127.0.0.1/32", resolver=resolver), f"{base}/", f"{forge.api_url}/")
        run = run_of(f"{base}/acme/web.git", forge.api_url)
        result = git.perform(run, ResolveBranch("selfbootstrap/run-1", "main", "t"))
        assert isinstance(result, BranchResolved), result
        committed = git.perform(run, commit_of(run, result.base_sha))  # the second lookup answers 127.0.0.2
        assert isinstance(committed, Failed) and committed.reason == "EgressRefused"
        assert_nothing_arrived(sink)
    assert resolver.asked == 2, "one lookup per step, none by git itself"
    assert git_server.requests and all(r["authenticated"] for r in git_server.requests[-1:])


def test_the_http_check_connects_to_the_checked_address(sink):
    with RecordingListener("127.0.0.1", status=200) as good, RecordingListener("127.0.0.2", int(
            good.base_url.rsplit(":", 1)[1])) as rebound:
        url = f"http://web.rebind.test:{good.base_url.rsplit(':', 1)[1]}/healthz"
        probe = HttpExecutor(policy("127.0.0.1/32", resolver=Rebinding()))
        assert probe.perform(ProbeHttp(HttpCheck(url=url))) == Probed(True, f"GET {url} returned 200 (OK)")
        refused = probe.perform(ProbeHttp(HttpCheck(url=url)))
        assert isinstance(refused, Failed) and refused.reason == "EgressRefused"
        assert [r["host"] for r in good.requests] == [url.split("/")[2]], "the original Host header"
        assert_nothing_arrived(rebound)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=forge.test", "-addext", "subjectAltName=DNS:forge.test"],
                   check=True, capture_output=True)
    return cert, key


@pytest.mark.parametrize("name, healthy", [("forge.test", True), ("other.test", False)])
def test_https_is_verified_for_the_original_host_name_while_connecting_to_the_address(certificate, name,
                                                                                      healthy):
    cert, key = certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    listener = RecordingListener("127.0.0.1")
    listener.tls = server_tls
    with listener:
        url = f"https://{name}:{listener.base_url.rsplit(':', 1)[1]}/healthz"
        client_tls = ssl.create_default_context(cafile=str(cert))
        probe = HttpExecutor(policy("127.0.0.1/32", resolver=lambda host, port: ["127.0.0.1"]),
                             transport=httpx.HTTPTransport(verify=client_tls))
        probed = probe.perform(ProbeHttp(HttpCheck(url=url)))
    assert isinstance(probed, Probed) and probed.healthy is healthy, probed
    assert len(listener.requests) == (1 if healthy else 0)
