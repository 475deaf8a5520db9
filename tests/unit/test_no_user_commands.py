"""The operator never executes a command a run supplies: the only process it starts is git,
with fixed hardening options and an environment built from scratch."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

from selfbootstrap.adapters.git import HARDENING, GitRemote

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "selfbootstrap"
SPAWNERS = {("subprocess", n) for n in ("run", "Popen", "call", "check_call", "check_output", "getoutput",
                                        "getstatusoutput")} | {("os", n) for n in (
    "system", "popen", "execv", "execve", "execvp", "execvpe", "execl", "execle", "execlp", "execlpe",
    "spawnv", "spawnve", "spawnvp", "spawnvpe", "spawnl", "spawnle", "posix_spawn", "posix_spawnp")}
SPAWNERS |= {("asyncio", "create_subprocess_exec"), ("asyncio", "create_subprocess_shell")}


def spawn_sites() -> list[tuple[str, int, ast.Call]]:
    sites = []
    for source in PACKAGE.rglob("*.py"):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and isinstance(node.func.value, ast.Name) and (node.func.value.id, node.func.attr) in SPAWNERS:
                sites.append((str(source.relative_to(PACKAGE)), node.lineno, node))
    return sites


def test_the_only_process_the_operator_starts_is_git():
    sites = spawn_sites()
    assert [(path, type(call.func).__name__) for path, _, call in sites] == [("adapters/git.py", "Attribute")], sites
    ((_, _, call),) = sites
    argv = call.args[0]
    assert isinstance(argv, ast.List) and isinstance(argv.elts[0], ast.Constant) and argv.elts[0].value == "git"
    assert isinstance(argv.elts[1], ast.Starred) and getattr(argv.elts[1].value, "id", "") == "HARDENING"


def reads_a_command(source: Path) -> bool:
    """Whether the module reads an attribute `command` (a click decorator `@group.command()` is no read)."""
    tree = ast.parse(source.read_text())
    decorators = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) for d in f.decorator_list
                  for n in ast.walk(d)}
    return any(isinstance(n, ast.Attribute) and n.attr == "command" and id(n) not in decorators
               for n in ast.walk(tree))


def test_no_module_reads_the_validation_command_but_the_job_builder():
    readers = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
               if reads_a_command(p) and p.name not in ("models.py",)]
    assert sorted(readers) == ["adapters/jobs.py", "core/validation.py"]


def test_git_runs_with_hardening_and_a_scratch_environment(mocker, tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", "/secret/kubeconfig")
    monkeypatch.setenv("GIT_DIR", "/elsewhere")
    run = mocker.patch("subprocess.run", return_value=subprocess.CompletedProcess([], 0, "ok", ""))
    GitRemote("https://git.example.com/a/b.git", "tok", "x-access-token", tmp_path).git("ls-remote", "x")
    argv, env = run.call_args.args[0], run.call_args.kwargs["env"]
    assert argv == ["git", *HARDENING, "ls-remote", "x"]
    assert "core.hooksPath=/dev/null" in HARDENING and "protocol.allow=never" in HARDENING
    assert "KUBECONFIG" not in env and "GIT_DIR" not in env
    assert env["GIT_ALLOW_PROTOCOL"] == "http:https" and env["GIT_CONFIG_NOSYSTEM"] == "1"
    assert not any("tok" in a for a in argv), "the token never appears in an argument list"
    assert "http.followRedirects=false" in HARDENING, "the credential header never follows a redirect"


def test_git_connects_only_to_the_pinned_addresses(mocker, tmp_path):
    run = mocker.patch("subprocess.run", return_value=subprocess.CompletedProcess([], 0, "ok", ""))
    GitRemote("https://git.example.com/a/b.git", "tok", "x-access-token", tmp_path,
              pin="git.example.com:443:203.0.113.7").git("ls-remote", "x")
    env = run.call_args.kwargs["env"]
    config = {env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"] for i in range(int(env["GIT_CONFIG_COUNT"]))}
    assert config["http.curloptResolve"] == "git.example.com:443:203.0.113.7"
    assert config["http.extraHeader"].startswith("Authorization: Basic ")
