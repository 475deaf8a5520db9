"""GitHub App credentials (adapters/githubapp.py) through the git executor, against the real git server and the
fake GitHub's token endpoint (which verifies the app's RS256 JWT with its public key): the installation token
does what a personal token does, is minted once and reused, and neither the JWT nor the token goes anywhere
the Secret does not allow."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from selfbootstrap.adapters import githubapp
from selfbootstrap.adapters.githubapp import GitHubApp, InstallationTokens
from selfbootstrap.core.actions import BranchResolved, Failed, ResolveBranch

from .test_gitexec import LOOPBACK_SERVERS, make_run, repo, servers  # noqa: F401  (fixtures)


def rsa_key() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


PRIVATE, PUBLIC = rsa_key()
OTHER_PRIVATE, _ = rsa_key()
APP = {"githubAppID": b"4242", "githubAppInstallationID": b"77", "githubAppPrivateKey": PRIVATE}


@pytest.fixture
def app_kube(servers):  # noqa: F811
    from unittest.mock import create_autospec

    from selfbootstrap.adapters.kube import Kube

    git_server, forge = servers
    forge.install_app("4242", "77", PUBLIC)
    kube = create_autospec(Kube, instance=True)
    kube.read_secret_data.return_value = (dict(APP), (f"{git_server.base_url}/", f"{forge.api_url}/"))
    return kube


@pytest.fixture
def app_executor(app_kube, tmp_path):
    from selfbootstrap.adapters.gitexec import GitExecutor
    return GitExecutor(app_kube, tmp_path / "work", LOOPBACK_SERVERS)


def test_an_installation_token_is_minted_once_and_does_what_a_token_does(app_executor, servers, repo):  # noqa: F811
    git_server, forge = servers
    run = make_run(repo, forge)
    for _ in range(3):
        result = app_executor.perform(run, ResolveBranch("b", "main", "t"))
        assert result == BranchResolved(git_server.branches("acme/web")["main"], exists=False, run_commit=None)
    assert forge.minted == 1, "the token is reused until shortly before it expires"
    minted = [r for r in forge.requests if r["path"].startswith("/app/")]
    assert [r["path"] for r in minted] == ["/app/installations/77/access_tokens"]


@pytest.mark.parametrize(("data", "why"), [
    ({**APP, "githubAppPrivateKey": OTHER_PRIVATE}, "answered 401 (Unauthorized): no installation token"),
    ({**APP, "githubAppInstallationID": b"78"}, "answered 401 (Unauthorized)"),
    ({**APP, "githubAppPrivateKey": b"not a key"}, "is not an RSA key in PEM form"),
    ({k: v for k, v in APP.items() if k != "githubAppInstallationID"}, "without githubAppInstallationID"),
    ({**APP, "githubAppID": b"my-app"}, "must be numbers"),
], ids=["another-key", "another-installation", "not-a-key", "incomplete", "not-a-number"])
def test_app_credentials_that_do_not_work_fail_clearly(app_executor, app_kube, servers, repo, data, why):  # noqa: F811
    git_server, forge = servers
    app_kube.read_secret_data.return_value = (data, app_kube.read_secret_data.return_value[1])
    result = app_executor.perform(make_run(repo, forge), ResolveBranch("b", "main", "t"))
    assert isinstance(result, Failed) and result.reason == "CredentialsUnavailable", result
    assert why in result.message
    assert git_server.requests == [], "nothing reaches the git server without a token"
    assert "BEGIN" not in result.message


def test_the_jwt_goes_only_where_the_secret_allows(app_executor, app_kube, servers, repo):  # noqa: F811
    git_server, forge = servers
    # The repository and the repository's API allowed, the app's token endpoint not.
    app_kube.read_secret_data.return_value = (dict(APP), (f"{git_server.base_url}/",
                                                          f"{forge.api_url}/repos/acme/web/"))
    result = app_executor.perform(make_run(repo, forge), ResolveBranch("b", "main", "t"))
    assert isinstance(result, Failed) and result.reason == "CredentialsNotAllowed"
    assert f"{forge.api_url}/app/installations/77/access_tokens" in result.message
    assert forge.requests == [] and git_server.requests == []


def test_app_credentials_need_the_github_forge(app_executor, servers, repo):  # noqa: F811
    _, forge = servers
    run = make_run(repo, forge)
    gitlab = run.spec.git.forge.model_copy(update={"kind": "gitlab"})
    run = replace(run, spec=run.spec.model_copy(update={"git": run.spec.git.model_copy(update={"forge": gitlab})}))
    result = app_executor.perform(run, ResolveBranch("b", "main", "t"))
    assert isinstance(result, Failed) and result.reason == "CredentialsUnavailable"
    assert "GitHub App credentials" in result.message and forge.requests == []


def test_a_token_is_minted_again_shortly_before_it_expires():
    now = [1_900_000_000.0]
    minted: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        minted.append(request.headers["Authorization"])
        expires = datetime.fromtimestamp(now[0] + 3600, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return httpx.Response(201, json={"token": f"token-{len(minted)}", "expires_at": expires})

    tokens = InstallationTokens(transport=httpx.MockTransport(answer), clock=lambda: now[0])
    app = GitHubApp("4242", "77", PRIVATE)
    api = "http://127.0.0.1:9"
    assert tokens.token(app, api, LOOPBACK_SERVERS) == "token-1"
    now[0] += 3600 - githubapp.RENEW_BEFORE - 1
    assert tokens.token(app, api, LOOPBACK_SERVERS) == "token-1"
    now[0] += 2
    assert tokens.token(app, api, LOOPBACK_SERVERS) == "token-2"
    other_installation = GitHubApp("4242", "78", PRIVATE)
    assert tokens.token(other_installation, api, LOOPBACK_SERVERS) == "token-3"
    assert all(m.startswith("Bearer ey") for m in minted)


def test_the_jwt_is_rs256_short_lived_and_issued_by_the_app():
    now = time.time()
    claims = jwt.decode(githubapp.signed(GitHubApp("4242", "77", PRIVATE), now), PUBLIC, algorithms=["RS256"])
    assert claims["iss"] == "4242" and claims["exp"] - claims["iat"] <= 600
    assert claims["iat"] < now < claims["exp"]


@pytest.mark.parametrize(("answer", "why", "retryable"), [
    (httpx.Response(307, headers={"Location": "https://evil.example/steal"}), "answered a redirect", False),
    (httpx.Response(503), "answered 503 (Service Unavailable)", True),
    (httpx.Response(201, json={"nothing": "here"}), "answered no installation token", False),
    (httpx.Response(201, content=b"<html>not json</html>"), "answered no installation token", False),
], ids=["redirect", "outage", "no-token", "not-json"])
def test_a_token_endpoint_that_misbehaves_gives_no_token_and_never_its_words(answer, why, retryable):
    seen: list[str] = []

    def reply(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return answer
    tokens = InstallationTokens(transport=httpx.MockTransport(reply))
    with pytest.raises(githubapp.AppTokenError) as err:
        tokens.token(GitHubApp("4242", "77", PRIVATE), "http://127.0.0.1:9", LOOPBACK_SERVERS)
    assert why in str(err.value) and err.value.retryable is retryable
    assert seen == ["http://127.0.0.1:9/app/installations/77/access_tokens"], "no redirect is followed"
    assert "evil" not in str(err.value) and "html" not in str(err.value)


def test_the_egress_policy_is_asked_before_the_jwt_is_sent():
    from selfbootstrap.adapters.egress import EgressPolicy
    from selfbootstrap.core.egress import policy_of

    closed = EgressPolicy(policy_of((), ()))  # loopback refused by default
    tokens = InstallationTokens(transport=httpx.MockTransport(lambda request: pytest.fail("sent")))
    with pytest.raises(githubapp.AppTokenError) as err:
        tokens.token(GitHubApp("4242", "77", PRIVATE), "http://127.0.0.1:9", closed)
    assert "127.0.0.1" in str(err.value)
