"""Git adapter: the real `git`, always through argument lists, credentials only in the environment.

The token travels as an `http.extraHeader` set through GIT_CONFIG_* variables:
never in a URL, an argument list (visible in /proc), a log line or an error;
every output that leaves this module is scrubbed of it anyway. git never follows
a redirect (the header would go along), and connects only to the addresses the
egress policy decided for the repository's host (`http.curloptResolve`).

What git prints on a failure is partly the remote's (`remote: ...` lines, a
rejected push's reason): a failure is classified into a fixed description for the
run's status, and git's output, scrubbed, goes to the operator's log only.

Commits are deterministic (fixed identity and dates, taken from the run), so a
resumed run that must rebuild its commit gets the same SHA it recorded. A working
tree stays on disk until its commit is pushed: the push takes it as it is
(`kept_tree`) and rebuilds the commit only when the tree is gone (a restart).

A working tree costs the same however large the repository and its history: a
checkout fetches the one commit it starts from (depth 1) with its trees but no
file contents (a partial clone, --filter=blob:none), and materialises only the
paths the change writes (a sparse checkout); git fetches those blobs on demand
from the same remote. A push negotiates what the server has (push.negotiate),
so a base branch that moved since the checkout costs no extra objects. A server
that filters nothing sends the blobs of that one commit; one that refuses an
unadvertised commit gets the base branch's history fetched instead.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..core import reasons
from ..core.text import http_status, printable

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 120

# Every git command runs with these: no hooks (none copied in from a template directory, none run
# from anywhere), no fsmonitor, only http(s) transports (no ext::, file:// or ssh), no credential
# helpers, and symlinks checked out as plain files, so nothing a repository holds can run code or
# lead a write outside the working tree.
HARDENING = (
    "-c", "core.hooksPath=/dev/null",
    "-c", "core.fsmonitor=false",
    "-c", "core.symlinks=false",
    "-c", "credential.helper=",
    "-c", "protocol.allow=never",
    "-c", "protocol.http.allow=always",
    "-c", "protocol.https.allow=always",
    "-c", "submodule.recurse=false",
    "-c", "init.templateDir=",
    "-c", "http.followRedirects=false",  # a redirect would take the credential header along
)


# What git printed, as a fixed description and whether it may pass on its own (a server down, the
# network, a 5xx: retried per spec.retryPolicy). First match wins, matched in lower case on the lines
# git itself wrote: a line the remote wrote ("remote: ...") chooses nothing. curl's wording varies
# between versions ("Connection refused", "Couldn't connect to server").
FAILURES: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("authentication failed", ("returned error: 401", "returned error: 403", "authentication failed",
                               "could not read username", "could not read password", "terminal prompts disabled"),
     False),
    ("branch not found on the remote", ("couldn't find remote ref",), False),
    ("repository not found", ("returned error: 404", "not found", "does not appear to be a git repository"), False),
    ("the remote rejected the push", ("[remote rejected]",), False),
    ("non-fast-forward: the remote branch moved", ("non-fast-forward", "[rejected]", "fetch first", "stale info"),
     False),
    ("timed out", ("timed out", "timeout was reached"), True),
    ("the server answered with an error (5xx)", ("returned error: 5", "rpc failed; http 5"), True),
    ("unreachable", ("could not resolve", "connection refused", "couldn't connect", "failed to connect",
                     "network is unreachable", "no route to host", "temporary failure in name resolution"), True),
    ("the connection broke off", ("connection reset", "connection was reset", "empty reply from server",
                                  "recv failure", "send failure", "unexpected disconnect", "early eof",
                                  "the remote end hung up", "gnutls recv error", "ssl_error_syscall"), True),
    ("TLS failed", ("certificate", "ssl connect error", "ssl: ", "tls connection", "handshake failed"), False),
    ("the change conflicts with the branch", ("conflict", "could not revert", "could not apply"), False),
    ("the server refused the request", ("returned error: 4",), False),
)
REDIRECT = re.compile(r"returned error: (3\d\d)\b")
# A path that a sparse-checkout pattern cannot name as it is: a line break, or a trailing blank (a pattern's
# trailing blanks are dropped); and the glob characters a pattern must escape.
_UNPATTERNABLE = re.compile(r"[\n\r]|\s$")
_GLOB = re.compile(r"[*?\[\]\\!#]")


@dataclass(frozen=True)
class Failure:
    description: str  # fixed: never a word of what git or the remote printed
    retryable: bool
    redirect_status: int | None = None  # the 3xx git met (it follows none)


def classify(output: str) -> Failure:
    """What a failed git command met, from its output (pure)."""
    own = "\n".join(line for line in output.lower().splitlines() if not line.lstrip().startswith("remote:"))
    redirect = REDIRECT.search(own)
    if redirect:
        return Failure("redirect refused", False, int(redirect.group(1)))
    for description, markers, retryable in FAILURES:
        if any(marker in own for marker in markers):
            return Failure(description, retryable)
    return Failure("see the operator log for git's output", False)


def is_transient(detail: str) -> bool:
    """Whether a git failure may pass on its own (retried per spec.retryPolicy), by what git printed."""
    return classify(detail).retryable


class GitError(Exception):
    """A git step failed; `reason` is a status reason, the message is scrubbed of secrets."""

    def __init__(self, reason: str, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.retryable = retryable


@dataclass(frozen=True)
class Identity:
    name: str
    email: str
    date: str  # ISO 8601; the same for every commit of one run


class GitRemote:
    """One remote repository, reached with an optional token, at the addresses `pin` names
    (host:port:addresses, git's http.curloptResolve) when given; `locate_redirect(url, method)` asks,
    without credentials, where a URL redirects to (for the message of a refused redirect)."""

    def __init__(self, url: str, token: str | None, username: str, workdir: Path, pin: str | None = None,
                 locate_redirect: Callable[[str, str], str | None] | None = None) -> None:
        self.url = url
        self.workdir = workdir
        self.locate_redirect = locate_redirect
        self._secrets = [s for s in (token,) if s]
        self._env = {  # from scratch: nothing of the operator's own environment reaches git
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_ALLOW_PROTOCOL": "http:https",
            "GIT_TEMPLATE_DIR": str(workdir / "no-templates"),
            "HOME": str(workdir),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LC_ALL": "C",
        }
        config: list[tuple[str, str]] = []
        if token:
            basic = base64.b64encode(f"{username}:{token}".encode()).decode()
            self._secrets.append(basic)
            config.append(("http.extraHeader", f"Authorization: Basic {basic}"))
        if pin:
            config.append(("http.curloptResolve", pin))
        for i, (key, value) in enumerate(config):
            self._env.update({f"GIT_CONFIG_KEY_{i}": key, f"GIT_CONFIG_VALUE_{i}": value})
        if config:
            self._env["GIT_CONFIG_COUNT"] = str(len(config))

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def git(self, *args: str, cwd: Path | None = None, identity: Identity | None = None,
            timeout: float = DEFAULT_TIMEOUT, reason: str = reasons.GIT_FAILED, config: Sequence[str] = ()) -> str:
        """git with HARDENING, then `config` (key=value, each as `-c`), then args (a command first)."""
        env = dict(self._env)
        if identity:
            env.update({"GIT_AUTHOR_NAME": identity.name, "GIT_AUTHOR_EMAIL": identity.email,
                        "GIT_COMMITTER_NAME": identity.name, "GIT_COMMITTER_EMAIL": identity.email,
                        "GIT_AUTHOR_DATE": identity.date, "GIT_COMMITTER_DATE": identity.date})
        try:
            options = [part for setting in config for part in ("-c", setting)]
            done = subprocess.run(["git", *HARDENING, *options, *args], cwd=cwd, env=env, capture_output=True,
                                  text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise GitError(reason, f"git {args[0]} timed out after {timeout}s", retryable=True) from None
        if done.returncode != 0:
            # both: a push with --porcelain says which ref was refused and why on stdout
            output = self.scrub("\n".join(o for o in (done.stderr, done.stdout) if o)).strip() \
                or f"exit {done.returncode}"
            failure = classify(output)
            log.warning("git %s failed (%s): %s", args[0], failure.description, printable(output, 4096))
            if failure.redirect_status is not None:
                raise GitError(reasons.REDIRECT_REFUSED, self._redirect_message(args[0], failure.redirect_status))
            raise GitError(reason, f"git {args[0]} failed: {failure.description}", retryable=failure.retryable)
        return done.stdout

    def _redirect_message(self, command: str, status: int) -> str:
        """Both URLs of a refused redirect: where it leads comes from one request without credentials."""
        service = "git-receive-pack" if command == "push" else "git-upload-pack"
        base, location = self.url.rstrip("/"), None
        if self.locate_redirect is not None:  # the refs first; a server may redirect only the pack's POST
            location = self.locate_redirect(f"{base}/info/refs?service={service}", "GET") \
                or self.locate_redirect(f"{base}/{service}", "POST")
        return (f"git {command}: {self.url} answered {http_status(status)}, a redirect to "
                f"{location or 'an address git does not name'}; credentials never follow a redirect")

    def check_branch(self, name: str) -> None:
        """Refuse a branch name git would not accept as a branch (the CRD's rule is the first check)."""
        try:
            self.git("check-ref-format", "--branch", name, reason=reasons.INVALID_BRANCH)
        except GitError:
            raise GitError(reasons.INVALID_BRANCH, f"{name!r} is not a valid git branch name") from None

    # --- remote refs --------------------------------------------------------

    def head_of(self, branch: str) -> str | None:
        return self.heads(branch).get(branch)

    def heads(self, *branches: str) -> dict[str, str]:
        """The remote heads of these branches, by branch, in one request; a branch the remote lacks is left out."""
        out = self.git("ls-remote", "--heads", self.url, *(f"refs/heads/{b}" for b in branches),
                       reason=reasons.REMOTE_UNREACHABLE)
        wanted = {f"refs/heads/{b}": b for b in branches}
        found: dict[str, str] = {}
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            if ref in wanted:  # ls-remote matches a pattern as a ref's tail: refs/heads/x/refs/heads/y would do
                found[wanted[ref]] = sha
        return found

    def find_commit(self, branch: str, trailer: str, depth: int = 50) -> str | None:
        """The newest commit on the remote branch whose message carries the trailer (of its last `depth`
        commits, fetched without their trees: only their messages are read)."""
        tree = self.fresh_tree(f"find-{branch}")
        try:
            self.git("clone", "-q", "--bare", "--no-tags", "--single-branch", "--branch", branch, f"--depth={depth}",
                     "--filter=tree:0", self.url, str(tree))
            log = self.git("log", "--format=%H%x00%B%x01", f"refs/heads/{branch}", cwd=tree)
        finally:
            self.discard(tree)
        for entry in log.split("\x01"):
            sha, _, body = entry.strip().partition("\x00")
            if trailer in body.splitlines():
                return sha
        return None

    # --- working trees ------------------------------------------------------

    def tree_path(self, name: str) -> Path:
        return self.workdir / hashlib.sha256(name.encode()).hexdigest()[:16]

    def fresh_tree(self, name: str) -> Path:
        path = self.tree_path(name)
        shutil.rmtree(path, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        (self.workdir / "no-templates").mkdir(exist_ok=True)
        return path

    def checkout(self, name: str, base_branch: str, start: str, branch: str,
                 paths: Sequence[str] | None = None) -> Path:
        """A clone of the base branch with `branch` created at `start` (a commit of the base branch, or HEAD).

        The clone holds `start` alone (depth 1; a commit that is no longer the branch's head is fetched by its
        SHA) with every tree but no blob. With `paths` (relative to the root) the working tree holds those files
        only (and any file that stands where one of their parent directories would), the rest of the index is
        marked skip-worktree, so `git add -A` commits the changes to those paths and nothing else; without, every
        file is checked out. The index always holds every entry, as special_entries() needs."""
        tree = self.fresh_tree(name)
        self.git("clone", "-q", "--no-tags", "--single-branch", "--branch", base_branch, "--depth=1",
                 "--filter=blob:none", "--no-checkout", self.url, str(tree), reason=reasons.CLONE_FAILED)
        if start != "HEAD" and start != self.git("rev-parse", "HEAD", cwd=tree).strip():
            self._fetch_commit(tree, start, 1, reasons.CLONE_FAILED)
        patterns = None if paths is None else self._sparse_patterns(tree, start, paths)
        if patterns is not None:
            self.git("config", "core.sparseCheckout", "true", cwd=tree)
            info = tree / ".git" / "info"
            info.mkdir(exist_ok=True)
            (info / "sparse-checkout").write_text("".join(f"{p}\n" for p in patterns))
        self.git("checkout", "-q", "-B", branch, start, cwd=tree, reason=reasons.CLONE_FAILED)
        return tree

    def kept_tree(self, name: str, sha: str) -> Path | None:
        """The working tree checkout(name, ...) made, if it is still there with `sha` as its HEAD commit (git
        writes a commit's objects before it moves HEAD to it); None when it is gone (a restart, a new pod) or
        holds something else (a commit that never finished, another one since)."""
        tree = self.tree_path(name)
        if not (tree / ".git" / "HEAD").is_file():
            return None
        try:
            head = self.git("rev-parse", "--verify", "HEAD^{commit}", cwd=tree).strip()
        except GitError:  # a checkout that never finished (logged)
            return None
        return tree if head == sha else None

    def discard(self, tree: Path) -> None:
        """Remove a working tree (or a bare clone) once it has served."""
        shutil.rmtree(tree, ignore_errors=True)
        tree.with_name(f"{tree.name}.msg").unlink(missing_ok=True)

    def _fetch_commit(self, tree: Path, sha: str, depth: int, reason: str) -> None:
        """Fetch a commit of the base branch with `depth` - 1 generations of parents: by its SHA (protocol v2
        servers, and servers allowing any SHA in a want), else the branch's whole history (of commits and
        trees), as a full clone had it."""
        try:
            self.git("fetch", "-q", "--no-tags", f"--depth={depth}", "origin", sha, cwd=tree, reason=reason)
        except GitError as err:
            if err.reason == reasons.REDIRECT_REFUSED or not (tree / ".git" / "shallow").exists():
                raise
            log.info("fetching %s by its SHA failed; fetching the base branch's history", sha[:12])
            self.git("fetch", "-q", "--no-tags", "--unshallow", "origin", cwd=tree, reason=reason)

    def _sparse_patterns(self, tree: Path, start: str, paths: Sequence[str]) -> list[str] | None:
        """Sparse-checkout patterns (gitignore syntax, anchored at the root) naming exactly `paths`, and every
        parent of theirs that is a file (or a link) at `start`, so that writing below it fails as it would in a
        full checkout; None (check out everything) when a path cannot be written as a pattern."""
        clean = [p.strip("/") for p in paths]
        if any(not p or _UNPATTERNABLE.search(p) for p in clean):
            return None
        parents = sorted({"/".join(p.split("/")[:i]) for p in clean for i in range(1, p.count("/") + 1)})
        files = set()
        if parents:
            listing = self.git("ls-tree", "-z", start, "--", *parents, cwd=tree, reason=reasons.CLONE_FAILED)
            for entry in listing.split("\0"):
                meta, _, path = entry.partition("\t")
                if meta and meta.split(" ")[1] != "tree":
                    files.add(path)
        return ["/" + _GLOB.sub(r"\\\g<0>", p) for p in sorted({*clean, *files})]

    def special_entries(self, tree: Path) -> dict[str, str]:
        """Paths the index holds as symlinks or submodules, by path: 'symlink' or 'submodule'.

        With core.symlinks=false a symlink is checked out as a plain file holding its target, so
        the file system cannot tell; writing to it would commit a symlink to whatever was written.
        """
        out: dict[str, str] = {}
        for entry in self.git("ls-files", "-s", "-z", cwd=tree).split("\0"):
            mode, _, rest = entry.partition(" ")
            if mode in ("120000", "160000"):
                out[rest.split("\t", 1)[1]] = "symlink" if mode == "120000" else "submodule"
        return out

    def commit_all(self, tree: Path, message: str, identity: Identity) -> str | None:
        """Commit every change in the tree; None when there is nothing to commit."""
        self.git("add", "-A", cwd=tree)
        if not self.git("status", "--porcelain", cwd=tree).strip():
            return None
        self._commit(tree, message, identity)
        return self.git("rev-parse", "HEAD", cwd=tree).strip()

    def _commit(self, tree: Path, message: str, identity: Identity) -> None:
        msg_file = tree.parent / f"{tree.name}.msg"
        msg_file.write_text(message)
        try:
            self.git("commit", "-q", "--no-verify", "-F", str(msg_file), cwd=tree, identity=identity,
                     reason=reasons.COMMIT_FAILED)
        finally:
            msg_file.unlink(missing_ok=True)

    def push(self, tree: Path, sha: str, branch: str) -> bool:
        """Create the remote branch at sha: True when created, False when it already was at sha. Create only:
        the lease (the branch must not exist) refuses a branch that exists at any other commit, a descendant of
        its base included, and the server checks the same (the update's old value is zero). The client and the
        server first agree on the commits they share (push.negotiate): the head the server advertises for the
        base branch may be one the shallow clone lacks, and then the pack would carry the start commit's whole
        tree."""
        ref = f"refs/heads/{branch}"
        out = self.git("push", "--porcelain", f"--force-with-lease={ref}:", self.url, f"{sha}:{ref}", cwd=tree,
                       reason=reasons.PUSH_FAILED, config=["push.negotiate=true"])
        return not any(line.startswith("=\t") for line in out.splitlines())  # "=": up to date

    def parents(self, tree: Path, sha: str) -> int:
        return len(self.git("rev-list", "--parents", "-n", "1", sha, cwd=tree).split()) - 1

    def revert(self, tree: Path, sha: str, message: str, identity: Identity) -> str:
        """Revert sha (a merge: against its first parent) on top of a checkout(); paths outside its sparse
        checkout change in the index only. The commit comes with its parents (depth 2), their blobs on demand."""
        self._fetch_commit(tree, sha, 2, reasons.REVERT_FAILED)
        mainline = ["-m", "1"] if self.parents(tree, sha) > 1 else []
        self.git("revert", "--no-commit", *mainline, sha, cwd=tree, identity=identity, reason=reasons.REVERT_FAILED)
        self._commit(tree, message, identity)
        return self.git("rev-parse", "HEAD", cwd=tree).strip()
