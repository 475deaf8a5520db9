"""Generate the SelfBootstrapRun spec reference (docs/reference/selfbootstraprun.md) from the models.

    python -m selfbootstrap.specdoc            # rewrite the page
    python -m selfbootstrap.specdoc --check    # exit 1 when the checked-in page is stale
    python -m selfbootstrap.specdoc --print    # the page on stdout

The page follows Flux's per-kind layout (Example / Writing a spec / Status / Conditions). Its field
reference is read from the CRD's OpenAPI schema as crdgen builds it, so it says what the API server
checks: every field's type, default, bounds, pattern, enum and CEL rules, and its description. Each field
that is set by hand also has an example: its default, else the first value of its enum, else one from
EXAMPLES (a field with none of them is an error, so a new field cannot go undocumented).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import crdgen
from . import models as m
from .core import conditions

PAGE_PATH = crdgen.SOURCE_ROOT / "docs" / "reference" / "selfbootstraprun.md"

# Example values of the fields that have neither a default nor an enum (by path, `[]` for list items).
EXAMPLES: dict[str, Any] = {
    "spec.target.name": "db",
    "spec.target.deployment": "web",
    "spec.target.container": "app",
    "spec.release.id": "v2",
    "spec.release.image": "registry.example.com/web:v2",
    "spec.release.podTemplatePatch": {"spec": {"containers": [{"name": "app", "env": [
        {"name": "FEATURE_X", "value": "on"}]}]}},
    "spec.release.previousReleaseId": "v1",
    "spec.release.rollbackReleaseId": "v1",
    "spec.release.changeCause": "ticket OPS-1234: new checkout flow",
    "spec.release.expectedCurrentReleaseId": "v1",
    "spec.release.sequence": 1042,
    "spec.health.http.url": "http://web.shop.svc:8080/healthz",
    "spec.git.repositoryUrl": "https://github.com/acme/web-config.git",
    "spec.git.branch": "selfbootstrap/web-v2",
    "spec.git.change.files[].path": "deploy/web.yaml",
    "spec.git.change.files[].content": "# the file's full new content\n",
    "spec.git.change.setImage.path": "deploy/web.yaml",
    "spec.git.change.setImage.image": "registry.example.com/web:v2",
    "spec.git.validation.image": "registry.example.com/ci:1",
    "spec.git.validation.command": ["make", "lint"],
    "spec.git.validation.serviceAccountName": "ci",
    "spec.git.validation.resources.requests.cpu": "100m",
    "spec.git.validation.resources.requests.memory": "128Mi",
    "spec.git.validation.resources.limits.cpu": "1",
    "spec.git.validation.resources.limits.memory": "512Mi",
    "spec.git.commit.message": "Deploy web v2",
    "spec.git.credentials.secretRef.name": "git-token",
    "spec.git.pullRequest.title": "Deploy web v2",
    "spec.git.pullRequest.body": "Deploys release v2 of web.",
    "spec.git.forge.repository": "acme/web-config",
    "spec.analysis.args[].name": "service",
    "spec.analysis.args[].value": "checkout",
    "spec.analysis.metrics[].name": "error-ratio",
    "spec.analysis.metrics[].interval": "30s",
    "spec.analysis.metrics[].initialDelay": "1m",
    "spec.analysis.metrics[].count": 5,
    "spec.analysis.metrics[].successCondition": "result[0] < 0.05",
    "spec.analysis.metrics[].failureCondition": "result[0] > 0.2",
    "spec.analysis.metrics[].provider.prometheus.address": "http://prometheus.monitoring:9090",
    "spec.analysis.metrics[].provider.prometheus.query":
        'sum(rate(http_requests_total{service="{{args.service}}",code=~"5.."}[2m])) '
        '/ sum(rate(http_requests_total{service="{{args.service}}"}[2m]))',
    "spec.analysis.metrics[].provider.web.url": "http://checkout.shop/status?release={{args.release}}",
    "spec.analysis.metrics[].provider.web.headers[].key": "Accept",
    "spec.analysis.metrics[].provider.web.headers[].value": "application/json",
    "spec.analysis.metrics[].provider.web.body": '{"release": "{{args.release}}"}',
    "spec.analysis.metrics[].provider.web.jsonPath": "{$.queue.healthy}",
    "spec.analysis.metrics[].provider.job.metadata.labels": {"team": "shop"},
    "spec.analysis.metrics[].provider.job.metadata.annotations": {"owner": "shop-oncall"},
    "spec.analysis.metrics[].provider.job.spec": {"backoffLimit": 0, "template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "smoke", "image": "registry.example.com/smoke:1",
                                                  "args": ["--release", "{{args.release}}"]}]}}},
    "spec.analysis.templates[].templateName": "success-rate",
}

# The page's Example: a run using the common parts (its validity is a unit test).
EXAMPLE_RUN = """\
apiVersion: selfbootstrap.dev/v1alpha1
kind: SelfBootstrapRun
metadata:
  name: web-v2
  namespace: shop
spec:
  target:
    deployment: web
  release:
    id: v2
    image: registry.example.com/web:v2
  health:
    progressDeadlineSeconds: 300
    http:
      url: http://web.shop.svc:8080/healthz
      retries: 3
      intervalSeconds: 5
  analysis:
    metrics:
      - name: error-ratio
        interval: 30s
        count: 4
        successCondition: result[0] < 0.05
        provider:
          prometheus:
            address: http://prometheus.monitoring:9090
            query: sum(rate(http_requests_total{release="{{args.release}}",code=~"5.."}[2m]))
                   / sum(rate(http_requests_total{release="{{args.release}}"}[2m]))
  restartWatchdog:
    retries: 3
    intervalSeconds: 5
  rollbackPolicy:
    onDeployFailure: true
"""


@dataclass
class Field:
    """One property of the schema, with the path it has in a run."""

    path: str
    name: str
    node: dict[str, Any]
    required: bool


@dataclass
class Section:
    """An object of the schema (spec, spec.target, spec.analysis.metrics[], ...) and its fields."""

    path: str
    node: dict[str, Any]
    fields: list[Field]


def code(text: str) -> str:
    """Inline code holding any text, backticks included."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or longest else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def prose(text: str) -> str:
    """A description as Markdown: its `code` kept, the rest escaped so that it reads as written."""
    parts = re.split(r"(`[^`]*`)", " ".join(text.split()))
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(part)
        else:
            out.append(part.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                       .replace("*", r"\*").replace("_", r"\_").replace("[", r"\[").replace("]", r"\]"))
    return "".join(out)


def value(v: Any) -> str:
    """A value as it is written in YAML, on one line."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        plain = yaml.safe_dump(v, default_flow_style=True, width=10_000).strip()
        return plain.removesuffix("\n...").removesuffix("...").strip()
    return json.dumps(v, separators=(", ", ": "))


def type_of(node: dict[str, Any]) -> str:
    if node.get("x-kubernetes-preserve-unknown-fields"):
        return "object (free-form)"
    kind = node.get("type", "object")
    if kind == "array":
        return f"array of {type_of(node.get('items', {}))}"
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return f"map of string to {type_of(node['additionalProperties'])}"
    if "format" in node:
        return f"{kind} ({node['format']})"
    return str(kind)


def _bound(node: dict[str, Any], key: str) -> str | None:
    if key not in node:
        return None
    exclusive = node.get("exclusiveMinimum" if key == "minimum" else "exclusiveMaximum") is True
    sign = {("minimum", False): "≥", ("minimum", True): ">", ("maximum", False): "≤", ("maximum", True): "<"}
    return f"{sign[key, exclusive]} {node[key]}"


def validation(node: dict[str, Any]) -> list[str]:
    """What the schema itself checks of one value (CEL rules are listed apart)."""
    out = []
    bounds = [b for b in (_bound(node, "minimum"), _bound(node, "maximum")) if b]
    if bounds:
        out.append("value " + " and ".join(bounds))
    for low, high, unit in (("minLength", "maxLength", "characters"), ("minItems", "maxItems", "items"),
                            ("minProperties", "maxProperties", "entries")):
        if low in node and high in node:
            out.append(f"{node[low]} to {node[high]} {unit}")
        elif high in node:
            out.append(f"at most {node[high]} {unit}")
        elif low in node:
            out.append(f"at least {node[low]} {unit}")
    if "enum" in node:
        out.append("one of " + ", ".join(code(str(e)) for e in node["enum"]))
    if "pattern" in node:
        out.append("matches " + code(node["pattern"]))
    return out


def sections(root: dict[str, Any], path: str) -> Iterator[Section]:
    """Every object below root, parents before children, in the models' order."""
    required = set(root.get("required", []))
    fields = [Field(f"{path}.{name}", name, sub, name in required)
              for name, sub in (root.get("properties") or {}).items()]
    yield Section(path, root, fields)
    for f in fields:
        child = _object_of(f.node)
        if child is not None:
            yield from sections(child[1], f.path + child[0])


def rules_by_path(sections: list[Section]) -> dict[str, list[dict[str, Any]]]:
    """The CEL rules of every object, each under the field its fieldPath names (`.forge.repository` on
    spec.git: spec.git.forge.repository), else under the object that declares it."""
    fields = {f.path for s in sections for f in s.fields}
    out: dict[str, list[dict[str, Any]]] = {}
    for section in sections:
        for rule in section.node.get("x-kubernetes-validations", []):
            target = section.path + rule["fieldPath"] if "fieldPath" in rule else section.path
            out.setdefault(target if target in fields else section.path, []).append(rule)
    return out


def _object_of(node: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The object a field holds, with the path suffix of its items (`[]`), when it has documented fields."""
    if node.get("properties"):
        return "", node
    items = node.get("items")
    if isinstance(items, dict) and items.get("properties"):
        return "[]", items
    return None


def example(f: Field) -> Any:
    if f.path in EXAMPLES:
        return EXAMPLES[f.path]
    if "default" in f.node:
        return f.node["default"]
    if "enum" in f.node:
        return f.node["enum"][0]
    raise KeyError(f"{f.path} has no default, enum or entry in specdoc.EXAMPLES: add one")


def example_yaml(path: str, sample: Any) -> str:
    """The example set at its place in a run: spec.git.ci.required: true as nested YAML."""
    doc: Any = sample
    for part in reversed(path.split(".")):
        if part.endswith("[]"):
            doc = {part[:-2]: [doc]}
        else:
            doc = {part: doc}
    return yaml.safe_dump(doc, sort_keys=False, width=100, allow_unicode=True).rstrip("\n")


def anchor(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")


def _facts(f: Field, rules: list[dict[str, Any]]) -> list[str]:
    """Type, default, validation and rules of a field, as a list."""
    node = f.node
    facts = [f"- **Type**: {type_of(node)}" + (", **required**" if f.required else "")]
    if "default" in node:
        facts.append(f"- **Default**: {code(value(node['default']))}")
    checks = validation(node)
    for key, what in (("items", "each item"), ("additionalProperties", "each value")):
        sub = node.get(key)
        if isinstance(sub, dict) and not sub.get("properties"):
            checks += [f"{what}: {c}" for c in validation(sub)]
    if checks:
        facts.append("- **Validation**: " + "; ".join(checks))
    facts += [f"- **Rule**: {prose(r['message'])} ({code(r['rule'])})" for r in rules]
    return facts


def _field_block(f: Field, rules: list[dict[str, Any]]) -> list[str]:
    lines = [f"#### {f.path} {{#{anchor(f.path)}}}", ""]
    if f.node.get("description"):
        lines += [prose(f.node["description"]), ""]
    lines += _facts(f, rules)
    return [*lines, "", "```yaml", example_yaml(f.path, example(f)), "```", ""]


def _section_path(f: Field) -> str | None:
    """The section that documents a field holding an object (or a list of objects)."""
    child = _object_of(f.node)
    return f.path + child[0] if child else None


def spec_reference(spec: dict[str, Any]) -> list[str]:
    all_sections = list(sections(spec, "spec"))
    rules = rules_by_path(all_sections)
    holders = {_section_path(f): f for s in all_sections for f in s.fields if _section_path(f)}
    lines: list[str] = []
    for section in all_sections:
        lines += [f"### {section.path} {{#{anchor(section.path)}}}", ""]
        holder = holders.get(section.path)
        description = (holder.node if holder else section.node).get("description")
        if description:
            lines += [prose(description), ""]
        if holder and holder.node.get("type") == "array" and section.node.get("description"):
            lines += [f"Each item: {prose(section.node['description'])}", ""]
        if holder:
            own = rules.get(holder.path, []) if holder.path != section.path else []  # else listed below
            lines += [*_facts(holder, own), ""]
        if rules.get(section.path):
            lines += ["Rules the API server checks:", ""]
            lines += [f"- {prose(r['message'])} ({code(r['rule'])})" for r in rules[section.path]]
            lines.append("")
        lines += ["| field | type |", "|---|---|"]
        for f in section.fields:
            target = _section_path(f) or f.path
            lines.append(f"| [{f.name}](#{anchor(target)}) | {type_of(f.node)}{', required' if f.required else ''} |")
        lines.append("")
        for f in section.fields:
            if not _section_path(f):
                lines += _field_block(f, rules.get(f.path, []))
    return lines


def status_reference(status: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for section in sections(status, "status"):
        lines += [f"### {section.path} {{#{anchor(section.path)}}}", ""]
        if section.node.get("description"):
            lines += [prose(section.node["description"]), ""]
        for f in section.fields:
            checks = validation(f.node)
            tail = f" ({'; '.join(checks)})" if checks else ""
            desc = prose(f.node.get("description", ""))
            below = _section_path(f)
            link = f" Fields: [{below}](#{anchor(below)})." if below else ""
            lines.append(f"- {code(f.name)}, {type_of(f.node)}{tail}: {desc}{link}")
        lines.append("")
    return lines


def phase_table() -> list[str]:
    lines = ["| phase | the run | conditions when it ends |", "|---|---|---|"]
    for phase, rule in m.PHASES.items():
        what = "has ended" if rule.terminal else ("is in its git workflow" if rule.git else "is in flight")
        ends = "Ready, Complete" if rule.done else ("Stalled, Failed" if rule.failed else "—")
        lines.append(f"| `{phase}` | {what} | {ends} |")
    return [*lines, ""]


CONDITIONS = [
    (conditions.RECONCILING, "the run is in flight", "`kubectl wait --for=condition=Reconciling=False` returns "
     "when it has ended either way; kstatus reads it as in progress"),
    (conditions.PROGRESSING, "as Reconciling", "people"),
    (conditions.READY, "the run succeeded or was superseded", "kstatus (Flux, kpt): current"),
    (conditions.COMPLETE, "the run succeeded or was superseded", "`kubectl wait --for=condition=Complete` "
     "(Job-style)"),
    (conditions.STALLED, "the run failed or rolled back", "kstatus: failed"),
    (conditions.FAILED, "the run failed or rolled back", "`kubectl wait --for=condition=Failed`"),
    (conditions.DEGRADED, "something failed; its reason and message keep what, also after a rollback", "people"),
    (conditions.ROLLED_BACK, "the workload was put back", "people"),
]


def render() -> str:
    crd = crdgen.build_crd()
    (version,) = crd["spec"]["versions"]
    root = version["schema"]["openAPIV3Schema"]
    spec, status = root["properties"]["spec"], root["properties"]["status"]
    names = crd["spec"]["names"]
    columns = ", ".join(c["name"].upper() for c in version["additionalPrinterColumns"])
    lines = [
        "<!-- Generated by `python -m selfbootstrap.specdoc` from operator/selfbootstrap/models.py. Do not edit. -->",
        "",
        f"# {names['kind']}",
        "",
        f"**API group** `{crd['spec']['group']}`, **version** `{version['name']}`, **kind** `{names['kind']}`, "
        f"namespaced; short name `{'`, `'.join(names['shortNames'])}`, category `{names['categories'][0]}`.",
        "",
        prose(root["description"]),
        "Every field below is also in `kubectl explain sbr.spec --recursive`; the schema is generated from the "
        "pydantic models in `operator/selfbootstrap/models.py` (`python -m selfbootstrap.crdgen`), and this page "
        "from the same schema (`python -m selfbootstrap.specdoc`).",
        "",
        "## Example",
        "",
        "A run that deploys release `v2` of the Deployment `web`, checks it over HTTP, measures its error ratio "
        "in Prometheus and watches its pods for restarts; any failure rolls it back (a deploy failure too, "
        "which the default policy leaves alone):",
        "",
        "```yaml",
        EXAMPLE_RUN.rstrip("\n"),
        "```",
        "",
        "```console",
        "$ kubectl apply -f web-v2.yaml",
        "$ kubectl wait --for=condition=Reconciling=False sbr/web-v2 --timeout=15m",
        "$ kubectl get sbr web-v2",
        "NAME     PHASE       TARGET   RELEASE   PREVIOUS   AGE",
        "web-v2   Succeeded   web      v2        v1         2m",
        "```",
        "",
        f"`kubectl get sbr` shows the columns {columns} (the last ones with `-o wide`).",
        "",
        "## Writing a spec",
        "",
        "As with all Kubernetes objects, a run needs `apiVersion`, `kind` and `metadata`; its `spec` says what to "
        "change and how to judge the change. Only `spec.target` and `spec.release` are required: every other "
        "section is filled in with its defaults by the API server, or left out when it is optional.",
        "",
        "Rules the API server checks on the whole run:",
        "",
        *[f"- {prose(r['message'])} ({code(r['rule'])})" for r in root.get("x-kubernetes-validations", [])],
        "",
        "Each field's example shows it at its place in a run; for a field with a default the example is that "
        "default.",
        "",
        *spec_reference(spec),
        "## Status",
        "",
        "The operator writes `status` (the `status` subresource) and nothing else writes it: the admission "
        "policy refuses a status write from anyone not allowed to patch the run's workload. "
        "See [Status and conditions](../status.md) for how to read it.",
        "",
        "### Phases",
        "",
        *phase_table(),
        *status_reference(status),
        "## Conditions",
        "",
        "Kubernetes-style conditions (`type`, `status`, `reason`, `message`, `observedGeneration`, "
        "`lastTransitionTime`), derived from the phase and the outcome on every status write:",
        "",
        "| type | True when | for |",
        "|---|---|---|",
        *[f"| `{kind}` | {when} | {use} |" for kind, when, use in CONDITIONS],
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="fail when the checked-in page is stale")
    mode.add_argument("--print", action="store_true", help="print the page instead of writing it")
    parser.add_argument("--output", type=Path, default=PAGE_PATH, help="the page (default: %(default)s)")
    args = parser.parse_args(argv)
    text = render()
    if args.print:
        sys.stdout.write(text)
        return 0
    if args.check:
        if not args.output.exists() or args.output.read_text() != text:
            print(f"{args.output} is stale: run `python -m selfbootstrap.specdoc`", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
