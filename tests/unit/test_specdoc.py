"""specdoc.py: the spec reference page generated from the models, checked in, and current."""

from __future__ import annotations

import re
import types
import typing
from typing import Any

import pydantic
import pytest
import yaml

from selfbootstrap import crdgen, specdoc
from selfbootstrap.models import Model, RunSpec


def test_the_checked_in_page_is_current():
    committed = specdoc.PAGE_PATH.read_text() if specdoc.PAGE_PATH.exists() else ""
    assert committed == specdoc.render(), (
        f"{specdoc.PAGE_PATH} is stale: run `python -m selfbootstrap.specdoc` and commit the result")


def test_check_names_a_stale_page(tmp_path, capsys):
    page = tmp_path / "selfbootstraprun.md"
    page.write_text("# an older page\n")
    assert specdoc.main(["--check", "--output", str(page)]) == 1
    assert str(page) in capsys.readouterr().err
    assert specdoc.main(["--output", str(page)]) == 0
    assert specdoc.main(["--check", "--output", str(page)]) == 0


def _spec_fields(node: dict[str, Any], path: str) -> typing.Iterator[tuple[str, dict[str, Any]]]:
    for name, sub in (node.get("properties") or {}).items():
        yield f"{path}.{name}", sub
        yield from _spec_fields(sub, f"{path}.{name}")
        if isinstance(sub.get("items"), dict):
            yield from _spec_fields(sub["items"], f"{path}.{name}[]")


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    (version,) = crdgen.build_crd()["spec"]["versions"]
    root: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return root


def test_every_field_is_on_the_page(schema):
    page = specdoc.render()
    for path, _ in _spec_fields(schema["properties"]["spec"], "spec"):
        assert f"{path} {{#" in page or f"{path}[] {{#" in page, f"{path} has no heading on the page"
    for path, _ in _spec_fields(schema["properties"]["status"], "status"):
        assert f"`{path.rsplit('.', 1)[-1]}`" in page, f"{path} is not on the page"


def test_every_validation_is_on_the_page(schema):
    page = specdoc.render()
    for path, node in _spec_fields(schema["properties"]["spec"], "spec"):
        for rule in node.get("x-kubernetes-validations", []):
            assert specdoc.prose(rule["message"]) in page, f"{path}: rule {rule['message']!r} is not on the page"
        if "pattern" in node:
            assert specdoc.code(node["pattern"]) in page, path
        for e in node.get("enum", []):
            assert f"`{e}`" in page, path


def _field_type(path: str) -> Any:
    """The annotation (with its constraints) of the model field at a page path, e.g. spec.git.ci.factor."""
    model: type[Model] = RunSpec
    parts = path.split(".")[1:]
    annotation: Any = None
    for i, part in enumerate(parts):
        name = part.removesuffix("[]")
        (info,) = [f for f in model.model_fields.values() if f.alias == name]
        annotation = typing.Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
        if i < len(parts) - 1:
            inner: Any = info.annotation
            while typing.get_origin(inner) in (typing.Union, types.UnionType, list):
                inner = next(a for a in typing.get_args(inner) if a is not type(None))
            model = inner
    return annotation


def test_every_example_is_valid_for_its_field(schema):
    """Each example passes the model's own checks of its field (pattern, bounds, enum, type)."""
    checked = 0
    for path, node in _spec_fields(schema["properties"]["spec"], "spec"):
        if node.get("properties") or (isinstance(node.get("items"), dict) and node["items"].get("properties")):
            continue  # an object: its fields have the examples
        sample = specdoc.example(specdoc.Field(path, path.rsplit(".", 1)[-1], node, False))
        pydantic.TypeAdapter(_field_type(path)).validate_python(sample)
        checked += 1
    assert checked > 80


def test_examples_name_only_fields_that_exist(schema):
    paths = {path for path, _ in _spec_fields(schema["properties"]["spec"], "spec")}
    assert set(specdoc.EXAMPLES) - paths == set()


def test_a_field_without_an_example_is_an_error():
    with pytest.raises(KeyError, match=r"spec\.new\.field"):
        specdoc.example(specdoc.Field("spec.new.field", "field", {"type": "string"}, True))


def test_the_page_example_is_a_valid_run():
    run = yaml.safe_load(specdoc.EXAMPLE_RUN)
    assert (run["apiVersion"], run["kind"]) == ("selfbootstrap.dev/v1alpha1", "SelfBootstrapRun")
    RunSpec.model_validate(run["spec"])


@pytest.mark.parametrize(("text", "shown"), [
    ("a `b` c", "a `b` c"),
    ("image@sha256:<digest>", "image@sha256:&lt;digest&gt;"),
    ("org.opencontainers.image.* and snake_case", r"org.opencontainers.image.\* and snake\_case"),
])
def test_prose_keeps_code_and_escapes_the_rest(text, shown):
    assert specdoc.prose(text) == shown


def test_code_holds_backticks():
    assert specdoc.code("a`b") == "`` a`b ``"
    assert specdoc.code("plain") == "`plain`"


def test_the_readme_is_short_and_links_to_pages_that_exist():
    root = crdgen.SOURCE_ROOT
    readme = (root / "README.md").read_text()
    assert len(readme.encode()) < 12 * 1024
    assert readme.split("\n")[2:6] == [
        "```sh",
        "scripts/demo    # run it: local control plane (built on first use), operator, sample app, example runs",
        "scripts/test    # test it: unit tests and end-to-end tests against the real local control plane",
        "```",
    ]
    links = re.findall(r"\]\((docs/[^)#]*)", readme)
    assert links
    assert [link for link in links if not (root / link).exists()] == []
