"""Which repository paths a run may write, and where a Secret's token may be sent."""

from __future__ import annotations

import pytest

from selfbootstrap.core.credentials import allowing, matches, prefixes_of, refusal
from selfbootstrap.core.paths import UnsafePathError, repository_path


@pytest.mark.parametrize("path, normal", [
    ("deploy/web.yaml", "deploy/web.yaml"),
    ("a//b", "a/b"),
    ("a/./b", "a/b"),
    (".github/workflows/ci.yml", ".github/workflows/ci.yml"),
    (".gitignore", ".gitignore"),
    ("docs/git~notes.md", "docs/git~notes.md"),
])
def test_safe_paths(path, normal):
    assert repository_path(path) == normal


@pytest.mark.parametrize("path, why", [
    (".git/config", ".git"),
    ("./.git/hooks/x", ".git"),
    ("a/../.git/config", "'..'"),
    (".GIT/config", ".git"),
    ("sub/.Git/config", ".git"),
    (".git./config", ".git"),
    (".git /config", ".git"),
    ("GIT~1/config", ".git"),
    ("/etc/passwd", "absolute"),
    ("../outside", "'..'"),
    ("a/b/../../..", "'..'"),
    ("", "plain"),
    (".", "names no file"),
    ("a\\b", "plain"),
    ("a\0b", "plain"),
])
def test_unsafe_paths(path, why):
    with pytest.raises(UnsafePathError, match=why.replace(".", r"\.")):
        repository_path(path)


@pytest.mark.parametrize("annotation, prefixes", [
    (None, ()),
    ("", ()),
    ("https://a/", ("https://a/",)),
    ("https://a/, https://b/\nhttps://c/  ", ("https://a/", "https://b/", "https://c/")),
])
def test_prefixes_of(annotation, prefixes):
    assert prefixes_of(annotation) == prefixes


@pytest.mark.parametrize("url, prefix, allowed", [
    ("https://github.com/acme/web.git", "https://github.com/acme", True),
    ("https://github.com/acme/web.git", "https://github.com/acme/", True),
    ("https://github.com/acme-evil/web.git", "https://github.com/acme", False),
    ("https://github.com.evil.example/acme/web.git", "https://github.com", False),
    ("https://GITHUB.com/acme/web.git", "https://github.com/", True),
    ("http://github.com/acme/web.git", "https://github.com/", False),
    ("http://git.internal/acme.git", "http://git.internal/", True),
    ("https://git.internal/acme.git", "http://git.internal/", False),
    ("https://user@github.com/acme/web.git", "https://github.com/", False),
    ("https://api.github.com/repos/acme/web/", "https://api.github.com/repos/acme/", True),
    ("https://api.github.com/repos/other/web/", "https://api.github.com/repos/acme/", False),
    ("https://github.com/acme/web.git", "ftp://github.com/", False),
    ("https://github.com:8443/acme/web.git", "https://github.com/", False),
    ("https://github.com/acme/../evil/web.git", "https://github.com/acme/", False),
    ("https://github.com/acme/%2E%2e/evil/web.git", "https://github.com/acme/", False),
    ("https://github.com/acme/./web.git", "https://github.com/acme/", False),
    ("https://github.com/acme/web/..", "https://github.com/acme/", False),
    ("https://github.com/acme/web..git", "https://github.com/acme/", True),
    ("https://github.com/acme/.github.git", "https://github.com/acme/", True),
    ("http://127.0.0.1:9090", "http://127.0.0.1:9090/", True),  # an empty path is "/"
    ("http://127.0.0.1:9090?q=1", "http://127.0.0.1:9090/", True),
    ("http://127.0.0.1:90901", "http://127.0.0.1:9090/", False),
    ("http://127.0.0.1:9090", "http://127.0.0.1:9090/api/", False),
], ids=lambda v: v if isinstance(v, str) else "")
def test_matches_at_a_path_boundary_and_https_unless_the_prefix_says_http(url, prefix, allowed):
    assert matches(url, prefix) is allowed


def test_allowing_names_the_first_matching_prefix():
    assert allowing("https://b/x", ["https://a/", "https://b/"]) == "https://b/"
    assert allowing("https://c/x", ["https://a/", "https://b/"]) is None


def test_refusal_names_the_secret_and_the_url():
    assert "has no selfbootstrap.dev/allowed-urls annotation" in (refusal("tok", (), ["https://a/x"]) or "")
    why = refusal("tok", ("https://a/",), ["https://a/x", "https://b/y"]) or ""
    assert "'tok'" in why and "https://b/y" in why and "https://a/" in why
    assert refusal("tok", ("https://a/", "https://b/"), ["https://a/x", "https://b/y"]) is None


@pytest.mark.parametrize("detail, transient", [
    ("fatal: unable to access 'http://127.0.0.1:1/a.git/': Failed to connect to 127.0.0.1 port 1 after 0 ms: "
     "Couldn't connect to server", True),
    ("fatal: unable to access 'https://h/a.git/': Failed to connect to h port 443: Connection refused", True),
    ("fatal: unable to access 'https://h/a.git/': Could not resolve host: h", True),
    ("fatal: unable to access 'https://h/a.git/': The requested URL returned error: 503", True),
    ("error: RPC failed; HTTP 502 curl 22 The requested URL returned error: 502", True),
    ("fatal: unable to access 'https://h/a.git/': Operation timed out after 30000 milliseconds", True),
    ("fatal: the remote end hung up unexpectedly", True),
    ("fatal: unable to access 'https://h/a.git/': The requested URL returned error: 403", False),
    ("fatal: repository 'https://h/a.git/' not found", False),
    ("fatal: Authentication failed for 'https://h/a.git/'", False),
    ("error: pathspec 'x' did not match any file(s) known to git", False),
])
def test_which_git_failures_may_pass(detail, transient):
    from selfbootstrap.adapters.git import is_transient
    assert is_transient(detail) is transient


@pytest.mark.parametrize("output, description, retryable", [
    ("fatal: unable to access 'http://h/a.git/': The requested URL returned error: 302", "redirect refused", False),
    ("fatal: unable to access 'https://h/a.git/': The requested URL returned error: 401", "authentication failed",
     False),
    ("fatal: Authentication failed for 'https://h/a.git/'", "authentication failed", False),
    ("fatal: repository 'https://h/a.git/' not found", "repository not found", False),
    ("fatal: couldn't find remote ref refs/heads/x", "branch not found on the remote", False),
    (" ! [rejected]        x -> x (non-fast-forward)\nerror: failed to push some refs", "non-fast-forward: the remote "
     "branch moved", False),
    (" ! [remote rejected] x -> x (pre-receive hook declined)", "the remote rejected the push", False),
    ("fatal: unable to access 'https://h/a.git/': Could not resolve host: h", "unreachable", True),
    ("fatal: unable to access 'https://h/a.git/': Operation timed out after 30000 milliseconds", "timed out", True),
    ("error: RPC failed; HTTP 502 curl 22 The requested URL returned error: 502",
     "the server answered with an error (5xx)", True),
    ("fatal: the remote end hung up unexpectedly", "the connection broke off", True),
    ("fatal: unable to access 'https://h/a.git/': SSL certificate problem: self-signed certificate", "TLS failed",
     False),
    ("error: could not revert 1234567... Deploy v2\nhint: after resolving the conflicts",
     "the change conflicts with the branch", False),
    ("error: pathspec 'x' did not match any file(s) known to git", "see the operator log for git's output", False),
    # what the remote writes chooses nothing: neither the words nor whether to retry
    ("remote: Connection refused, try again\nremote: INTERNAL-SECRET-42\nfatal: the remote hung up weirdly",
     "see the operator log for git's output", False),
    ("remote: The requested URL returned error: 302\nerror: pathspec", "see the operator log for git's output", False),
])
def test_git_failures_are_described_in_fixed_words(output, description, retryable):
    from selfbootstrap.adapters.git import classify
    failure = classify(output)
    assert (failure.description, failure.retryable) == (description, retryable)
