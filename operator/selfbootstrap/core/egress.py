"""The operator's egress policy, decided without I/O: may the operator contact this URL at these addresses?

Runs name URLs (a repository, a forge API, an HTTP check) that the operator itself contacts, from
inside the cluster. Without a policy, a run's author could aim them at what only the operator can
reach (the cloud metadata service, the API server, the operator's own endpoints, cluster-internal
services) and read the answer back through status. The policy is set by whoever installs the
operator, never by a run:

- refused by default: loopback, link-local (cloud metadata), unspecified, multicast and broadcast
  addresses, plus the ranges the installer denies (`--egress-deny`) or the operator discovers (the
  cluster's service ranges, the API server's addresses);
- `--egress-allow` entries lift that: a CIDR lets its addresses through, a URL prefix (matched at a
  path boundary, as a Secret's allowed URLs are) lets its URLs through whatever they resolve to;
- protected endpoints (the API server's, the operator's own liveness and metrics ports) are refused
  even then.

Every address a host name resolves to is decided; the adapter (adapters/egress.py) then connects
only to the addresses decided here, so a name cannot resolve to something else between the two.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from . import credentials

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Rule:
    """Addresses (and optionally one port) a refusal names by `label`."""

    network: Network
    label: str  # what the addresses are, e.g. "loopback"
    port: int | None = None  # None: every port

    def covers(self, address: Address, port: int) -> bool:
        return address in self.network and (self.port is None or self.port == port)

    def describe(self) -> str:
        where = f"{self.network}" + (f" port {self.port}" if self.port is not None else "")
        return f"{self.label} ({where})"


def _rules(label: str, *cidrs: str) -> tuple[Rule, ...]:
    return tuple(Rule(ipaddress.ip_network(c), label) for c in cidrs)


# What no run may reach unless the installer allows it: the host itself, the cloud metadata
# services (169.254.169.254, AWS's fd00:ec2::254), addresses that mean "any" or "everyone".
DEFAULT_DENY: tuple[Rule, ...] = (
    *_rules("loopback", "127.0.0.0/8", "::1/128"),
    *_rules("link-local (cloud metadata)", "169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128"),
    *_rules("unspecified", "0.0.0.0/8", "::/128"),
    *_rules("multicast", "224.0.0.0/4", "ff00::/8"),
    *_rules("broadcast", "255.255.255.255/32"),
)


@dataclass(frozen=True)
class Policy:
    allow_networks: tuple[Network, ...] = ()
    allow_prefixes: tuple[str, ...] = ()
    deny: tuple[Rule, ...] = DEFAULT_DENY
    protected: tuple[Rule, ...] = ()  # refused whatever is allowed

    def denying(self, rules: Iterable[Rule]) -> Policy:
        return replace(self, deny=(*self.deny, *(r for r in rules if r not in self.deny)))

    def protecting(self, rules: Iterable[Rule]) -> Policy:
        return replace(self, protected=(*self.protected, *(r for r in rules if r not in self.protected)))


@dataclass(frozen=True)
class Destination:
    scheme: str  # http | https
    host: str  # lower case, IPv6 without brackets
    port: int


@dataclass(frozen=True)
class Allowed:
    addresses: tuple[str, ...]  # every address decided, in the resolver's order: connect only to these


@dataclass(frozen=True)
class Refused:
    url: str
    rule: str  # which rule refused it, e.g. "127.0.0.2 is loopback (127.0.0.0/8)"

    @property
    def message(self) -> str:
        return f"the operator's egress policy refuses {self.url}: {self.rule}"


Decision = Allowed | Refused


def destination(url: str) -> Destination | Refused:
    """Scheme, host and port of an http(s) URL, or why it names none."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return Refused(url, "its host or port cannot be parsed")
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return Refused(url, "only http(s) URLs with a host are contacted")
    return Destination(scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme])


def normal_address(text: str) -> Address | None:
    """The address as decided: an IPv4-mapped IPv6 address is its IPv4 address (it reaches the same
    host); a zone index is dropped. None when the text is not an address."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def decide(policy: Policy, url: str, addresses: Sequence[str]) -> Decision:
    """Whether the operator may contact url at every one of addresses (what its host resolved to)."""
    dest = destination(url)
    if isinstance(dest, Refused):
        return dest
    if not addresses:
        return Refused(url, f"{dest.host} resolved to no address")
    prefix = credentials.allowing(url, policy.allow_prefixes)
    for text in addresses:
        address = normal_address(text)
        if address is None:
            return Refused(url, f"{dest.host} resolved to {text!r}, which is not an IP address")
        protected = next((r for r in policy.protected if r.covers(address, dest.port)), None)
        if protected is not None:
            return Refused(url, f"{address} port {dest.port} is {protected.label}, which is never allowed")
        if prefix is not None or any(address in n for n in policy.allow_networks):
            continue
        denied = next((r for r in policy.deny if r.covers(address, dest.port)), None)
        if denied is not None:
            return Refused(url, f"{address} is {denied.describe()}; the operator's installer may allow it "
                                f"with --egress-allow")
    return Allowed(tuple(addresses))


# --- the installer's entries ----------------------------------------------------------------


def entries_of(value: str | None) -> tuple[str, ...]:
    """The entries of a comma- (or space-) separated setting."""
    return tuple(e for e in re.split(r"[\s,]+", value or "") if e)


def network_of(entry: str) -> Network:
    """A CIDR or a single address; ValueError (naming the entry) otherwise. Host bits set are refused:
    '10.1.2.3/8' is more likely a typo than a wish for all of 10/8."""
    try:
        return ipaddress.ip_network(entry, strict=True)
    except ValueError as err:
        raise ValueError(f"{entry!r} is not a CIDR ({err})") from None


def parse_allow(entries: Iterable[str]) -> tuple[tuple[Network, ...], tuple[str, ...]]:
    """--egress-allow entries: (CIDRs, URL prefixes). ValueError names a bad entry."""
    networks: list[Network] = []
    prefixes: list[str] = []
    for entry in entries:
        if "://" in entry:
            dest = destination(entry)
            if isinstance(dest, Refused) or "@" in urlsplit(entry).netloc:
                raise ValueError(f"{entry!r} is not an http(s) URL prefix with a host (and no user)")
            prefixes.append(entry)
        else:
            networks.append(network_of(entry))
    return tuple(networks), tuple(prefixes)


def parse_deny(entries: Iterable[str]) -> tuple[Rule, ...]:
    """--egress-deny entries (CIDRs) as rules."""
    return tuple(Rule(network_of(e), "denied by the operator's installer") for e in entries)


def policy_of(allow: Iterable[str], deny: Iterable[str]) -> Policy:
    """The policy the installer's entries make; ValueError names a bad entry."""
    networks, prefixes = parse_allow(allow)
    return Policy(allow_networks=networks, allow_prefixes=prefixes).denying(parse_deny(deny))


def host_rules(addresses: Iterable[str], label: str, port: int | None = None) -> tuple[Rule, ...]:
    """One rule per address (those that are not addresses are skipped)."""
    out: list[Rule] = []
    for text in addresses:
        address = normal_address(text)
        if address is not None:
            out.append(Rule(ipaddress.ip_network(address), label, port))
    return tuple(out)
