"""The layering in pyproject.toml's import-linter contracts holds, and the contracts have teeth: a copy of the
package with one forbidden import added fails the contract that forbids it (import-linter itself, run on the copy)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "operator" / "selfbootstrap"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint(package_parent: Path, config: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(package_parent), "COLUMNS": "400"}  # one line per contract
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--config", str(config)], capture_output=True,
                          text=True, env=env, cwd=package_parent, timeout=300, check=False)


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    parent = tmp_path_factory.mktemp("layering")
    shutil.copytree(PACKAGE, parent / "selfbootstrap", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", parent / "pyproject.toml")
    return parent


def test_the_package_keeps_every_contract(copy: Path) -> None:
    done = lint(copy, copy / "pyproject.toml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("core/world.py", "import kopf", "The core does no I/O"),
    ("core/releases.py", "from ..adapters import kube", "The core does no I/O"),
    ("core/policy.py", "import httpx", "The core does no I/O"),
    ("adapters/http.py", "from .. import worker", "Adapters are thin"),
    ("cli/views.py", "from .. import reconciler", "The kubectl plugin reads through the adapters and the core"),
    ("cli/plan.py", "from .. import kopf_fixes", "The kubectl plugin reads through the adapters and the core"),
])
def test_a_forbidden_import_breaks_its_contract(copy: Path, module: str, line: str, contract: str) -> None:
    target = copy / "selfbootstrap" / module
    original = target.read_text()
    target.write_text(original + f"\n{line}  # a deliberate violation\n")
    try:
        done = lint(copy, copy / "pyproject.toml")
    finally:
        target.write_text(original)
    assert done.returncode != 0, done.stdout
    broken = [row for row in done.stdout.splitlines() if row.endswith("BROKEN")]
    assert any(row.startswith(contract) for row in broken), done.stdout
