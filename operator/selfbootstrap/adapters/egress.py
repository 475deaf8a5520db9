"""The egress policy applied: resolve a URL's host, decide every address (core/egress.py), and hand
out a target pinned to the decided addresses, so that nothing resolves the name again in between
(a name that answers a public address to the check and loopback to the connection gets nowhere).

`EgressPolicy.check(url)` is the one entry point for every URL a run makes the operator contact
(repository, forge API, HTTP check; later metric providers and image registries):

- httpx: `pinned(target, url)` is the request aimed at the decided address, with the Host header
  and the TLS server name (SNI and certificate verification) of the original host;
- git: `target.curl_resolve` for `-c http.curloptResolve=host:port:address` (git >= 2.37).

`discover` builds the policy at startup from the installer's entries and what is cheaply known:
the API server's addresses, the cluster's service ranges (networking.k8s.io/v1 servicecidrs, when
served and allowed) and the operator's own listening ports. Discovery failures are logged, never fatal.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, assert_never
from urllib.parse import urljoin, urlsplit

from ..core import egress
from ..core.egress import Allowed, Refused, Rule
from ..core.jsontypes import obj, path, strings
from ..core.text import printable

if TYPE_CHECKING:
    from kubernetes import client

    from ..config import Settings

log = logging.getLogger(__name__)
Resolver = Callable[[str, int], Sequence[str]]
LOCATION_LIMIT = 512  # characters of a redirect's Location named in a message


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the host resolves to, in the resolver's order, each once."""
    found: list[str] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        if str(sockaddr[0]) not in found:
            found.append(str(sockaddr[0]))
    return found


@dataclass(frozen=True)
class Target:
    """A URL the policy allowed, and the only addresses to connect to for it."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]
    literal: bool  # the URL names an address: nothing to resolve, nothing to pin

    @property
    def address(self) -> str:
        return self.addresses[0]

    @property
    def curl_resolve(self) -> str | None:
        """git's http.curloptResolve entry pinning the host to the decided addresses (None for a literal)."""
        if self.literal:
            return None
        return f"{self.host}:{self.port}:" + ",".join(f"[{a}]" if ":" in a else a for a in self.addresses)


@dataclass(frozen=True)
class Unresolved:
    """The host did not resolve (a passing fault, as an unreachable server is)."""

    url: str
    host: str

    @property
    def message(self) -> str:
        return f"{self.host} (of {self.url}) could not be resolved"


Checked = Target | Refused | Unresolved


@dataclass(frozen=True)
class Pinned:
    url: str
    headers: dict[str, str]
    extensions: dict[str, str] = field(default_factory=dict)


def pinned(target: Target, url: str) -> Pinned:
    """The request for url (of the target's origin) aimed at the decided address."""
    import httpx

    dest = egress.destination(url)
    if isinstance(dest, Refused) or (dest.scheme, dest.host, dest.port) != (target.scheme, target.host, target.port):
        raise ValueError(f"{url} is not of the checked origin {target.scheme}://{target.host}:{target.port}")
    parsed = httpx.URL(url)
    headers = {"Host": parsed.netloc.decode("ascii")}
    if target.literal:
        return Pinned(url, headers)
    extensions = {"sni_hostname": parsed.raw_host.decode("ascii")} if target.scheme == "https" else {}
    return Pinned(str(parsed.copy_with(host=target.address)), headers, extensions)


class EgressPolicy:
    def __init__(self, policy: egress.Policy, resolver: Resolver = system_resolver) -> None:
        self.policy = policy
        self.resolver = resolver

    def check(self, url: str) -> Checked:
        """The target to connect to for url, or why not; nothing is contacted but the resolver."""
        dest = egress.destination(url)
        if isinstance(dest, Refused):
            return dest
        literal = egress.normal_address(dest.host) is not None
        try:
            addresses = [dest.host] if literal else list(self.resolver(dest.host, dest.port))
        except (OSError, UnicodeError):
            return Unresolved(url, dest.host)
        decision = egress.decide(self.policy, url, addresses)
        match decision:
            case Refused():
                return decision
            case Allowed():
                return Target(url, dest.scheme, dest.host, dest.port, decision.addresses, literal)
            case _:
                assert_never(decision)

    def first_refused(self, urls: Iterable[str]) -> str | None:
        """Why the first of urls the policy refuses is refused, or None (a name that does not resolve now
        is not refused: it is checked again when it is used)."""
        for url in urls:
            checked = self.check(url)
            if isinstance(checked, Refused):
                return checked.message
        return None

    def redirect_location(self, url: str, method: str = "GET", timeout: float = 10.0) -> str | None:
        """Where url redirects to, asked once without credentials (nor a body) through the policy; None
        when it does not redirect or cannot be asked. Bounded and escaped: it is the server's text."""
        import httpx

        target = self.check(url)
        if not isinstance(target, Target):
            return None
        request = pinned(target, url)
        try:
            with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as http, \
                    http.stream(method, request.url, headers=request.headers, extensions=request.extensions) as got:
                location = got.headers.get("Location") if got.is_redirect else None
        except (httpx.HTTPError, httpx.InvalidURL, ValueError):
            return None
        return printable(urljoin(url, location), LOCATION_LIMIT) if location else None


# --- startup discovery ---------------------------------------------------------------------------

API_SERVER = "the Kubernetes API server"
LOCAL_NETWORKS = ("127.0.0.0/8", "::1/128", "0.0.0.0/8", "::/128")  # how the operator reaches itself


def discover(settings: Settings, api: client.ApiClient, env: Mapping[str, str] = os.environ,
             resolver: Resolver = system_resolver) -> EgressPolicy:
    """The policy of the installer's entries, with the API server, the service ranges and the
    operator's own endpoints added."""
    policy = egress.policy_of(settings.egress_allow, settings.egress_deny)
    api_server = _api_server_rules(str(api.configuration.host or ""), env, resolver)
    policy = policy.denying(Rule(r.network, API_SERVER) for r in api_server).protecting(api_server)
    policy = policy.denying(_service_ranges(api)).protecting(own_endpoints(settings, env, resolver))
    log.info("egress policy: allow %s; deny %s; never %s",
             [str(n) for n in policy.allow_networks] + list(policy.allow_prefixes) or "nothing more",
             [r.describe() for r in policy.deny], [r.describe() for r in policy.protected])
    return EgressPolicy(policy, resolver)


def _addresses(host: str, port: int, resolver: Resolver) -> list[str]:
    if not host or egress.normal_address(host) is not None:
        return [host] if host else []
    try:
        return list(resolver(host, port))
    except (OSError, UnicodeError) as err:
        log.warning("egress policy: %s did not resolve (%s); its addresses are not refused by name", host,
                    type(err).__name__)
        return []


def _api_server_rules(host_url: str, env: Mapping[str, str], resolver: Resolver) -> tuple[Rule, ...]:
    """The API server's endpoints: from the client's configuration and the in-cluster service variables."""
    endpoints: list[tuple[str, int]] = []
    dest = egress.destination(host_url)
    if not isinstance(dest, Refused):
        endpoints.append((dest.host, dest.port))
    service_host, service_port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT", "443")
    if service_host and service_port.isdigit():
        endpoints.append((service_host.strip("[]"), int(service_port)))
    rules: list[Rule] = []
    for host, port in endpoints:
        rules += egress.host_rules(_addresses(host, port, resolver), API_SERVER, port)
    return tuple(rules)


def _service_ranges(api: client.ApiClient) -> tuple[Rule, ...]:
    """The cluster's service ranges, if the API serves servicecidrs (Kubernetes 1.33+) and RBAC allows."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError as TransportError

    from .kubeapi import KubeApi, resource_path

    try:
        items = KubeApi(api).list(resource_path("networking.k8s.io", "v1", "servicecidrs"))
    except ApiException as err:
        log.warning("egress policy: the cluster's service ranges were not discovered (HTTP %s); name them "
                    "with --egress-deny", err.status)
        return ()
    except (TransportError, OSError, ValueError) as err:
        log.warning("egress policy: the cluster's service ranges were not discovered (%s); name them "
                    "with --egress-deny", type(err).__name__)
        return ()
    rules: list[Rule] = []
    for item in items:
        name = strings(obj(item.get("metadata"))).get("name", "?")
        cidrs = path(item, "spec", "cidrs")
        for cidr in cidrs if isinstance(cidrs, list) else []:
            try:
                rules.append(Rule(egress.network_of(str(cidr)), f"the cluster's service range ({name})"))
            except ValueError:
                log.warning("egress policy: servicecidr %s holds %r, not a CIDR", name, cidr)
    return tuple(rules)


def own_endpoints(settings: Settings, env: Mapping[str, str], resolver: Resolver) -> tuple[Rule, ...]:
    """The operator's own listening ports, on every address it may be reached at from itself."""
    ports: list[tuple[str, int, str]] = []
    if settings.liveness:
        parts = urlsplit(settings.liveness)
        try:
            ports.append((parts.hostname or "", parts.port or 80, "the operator's own liveness endpoint"))
        except ValueError:
            log.warning("egress policy: the liveness endpoint %r names no port", settings.liveness)
    metrics = settings.metrics_endpoint
    if metrics is not None:
        ports.append((metrics[0], metrics[1], "the operator's own metrics endpoint"))
    hostname = socket.gethostname()
    own = [*_addresses(hostname, 0, resolver), *([env["POD_IP"]] if env.get("POD_IP") else [])]
    rules: list[Rule] = []
    for bound, port, label in ports:
        rules += [Rule(egress.network_of(n), label, port) for n in LOCAL_NETWORKS]
        rules += egress.host_rules([*own, bound], label, port)
    return tuple(rules)
