"""The wheel as a user gets it: built from the source tree, installed apart from it.

It must carry the CRD (and `crdgen --check` must pass against the models it ships with), the
console scripts and a version.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    (built,) = out.glob("selfbootstrap_operator-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """An environment in which `selfbootstrap` is the wheel's (dependencies from this virtualenv)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    yield {**os.environ, "PYTHONPATH": f"{target}{os.pathsep}{sysconfig.get_paths()['purelib']}",
           "PATH": f"{target / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONSAFEPATH": "1",
           "SELFBOOTSTRAP_TARGET": str(target)}


def python(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], env=env, cwd="/", capture_output=True, text=True, timeout=120,
                          check=False)


def test_the_wheel_carries_the_crd_the_license_and_the_typing_marker(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "selfbootstrap/crds/selfbootstrap.dev_selfbootstrapruns.yaml" in names
    assert "selfbootstrap/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert "Project-URL: Source," in metadata
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "kubectl-sbr = selfbootstrap.cli.main:main" in entry_points
    assert "selfbootstrap-operator = selfbootstrap.__main__:main" in entry_points


def test_crdgen_check_passes_from_the_installed_package(installed):
    where = python(installed, "-c", "import selfbootstrap; print(selfbootstrap.__file__)")
    assert where.stdout.startswith(installed["SELFBOOTSTRAP_TARGET"]), where
    done = python(installed, "-m", "selfbootstrap.crdgen", "--check")
    assert done.returncode == 0, done.stderr
    printed = python(installed, "-m", "selfbootstrap.crdgen", "--print")
    assert printed.stdout == (ROOT / "crds" / "selfbootstrap.dev_selfbootstrapruns.yaml").read_text()


def test_an_edited_packaged_crd_fails_the_check(installed):
    packaged = Path(installed["SELFBOOTSTRAP_TARGET"]) / "selfbootstrap/crds/selfbootstrap.dev_selfbootstrapruns.yaml"
    original = packaged.read_text()
    try:
        packaged.write_text(original.replace("shortNames:", "shortNames: [x]\n  oldShortNames:"))
        done = python(installed, "-m", "selfbootstrap.crdgen", "--check")
        assert done.returncode == 1 and "is stale" in done.stderr
    finally:
        packaged.write_text(original)


def test_both_programs_say_their_version(installed):
    version = python(installed, "-c", "import selfbootstrap; print(selfbootstrap.__version__)").stdout.strip()
    assert version and version != "0.0.0+unknown"
    operator = python(installed, "-m", "selfbootstrap", "--version")
    assert operator.stdout.strip() == f"selfbootstrap-operator {version}", operator
    plugin = python(installed, "-m", "selfbootstrap.cli.main", "--version")
    assert plugin.stdout.strip() == f"kubectl-sbr, version {version}", plugin
