"""The egress policy's decisions (core/egress.py), table-driven, and the adapter's resolving and pinning
with a resolver stub (no network)."""

from __future__ import annotations

import ipaddress

import pytest

from selfbootstrap.adapters.egress import EgressPolicy, Target, Unresolved, pinned
from selfbootstrap.core import egress
from selfbootstrap.core.egress import Allowed, Refused, Rule, decide, policy_of

API = Rule(ipaddress.ip_network("10.96.0.1/32"), "the Kubernetes API server", 443)
METRICS = Rule(ipaddress.ip_network("127.0.0.0/8"), "the operator's own metrics endpoint", 9090)


def policy(allow: tuple[str, ...] = (), deny: tuple[str, ...] = ()) -> egress.Policy:
    return policy_of(allow, deny).denying([Rule(API.network, API.label)]).protecting([API, METRICS])


@pytest.mark.parametrize("allow, deny, url, addresses, refused_by", [
    # the defaults
    ((), (), "https://github.com/acme/web.git", ["140.82.121.3"], None),
    ((), (), "http://127.0.0.1:8080/x", ["127.0.0.1"], "127.0.0.1 is loopback (127.0.0.0/8)"),
    ((), (), "http://localhost/x", ["::1"], "::1 is loopback (::1/128)"),
    ((), (), "http://169.254.169.254/latest", ["169.254.169.254"], "is link-local (cloud metadata)"),
    ((), (), "http://[fe80::1]/", ["fe80::1"], "link-local"),
    ((), (), "http://[fd00:ec2::254]/", ["fd00:ec2::254"], "link-local (cloud metadata)"),
    ((), (), "http://0.0.0.0:9090/", ["0.0.0.0"], "unspecified"),
    ((), (), "http://[::]/", ["::"], "unspecified"),
    ((), (), "http://mcast/", ["239.1.2.3"], "multicast"),
    ((), (), "http://[ff02::1]/", ["ff02::1"], "multicast"),
    ((), (), "http://bcast/", ["255.255.255.255"], "broadcast"),
    # an IPv4-mapped IPv6 address reaches the IPv4 host, and is decided as it
    ((), (), "http://[::ffff:127.0.0.1]/", ["::ffff:127.0.0.1"], "127.0.0.1 is loopback"),
    ((), (), "http://[::ffff:169.254.169.254]/", ["::ffff:a9fe:a9fe"], "169.254.169.254 is link-local"),
    # every address a name resolves to is decided: one bad one refuses the URL
    ((), (), "https://git.example.com/a.git", ["140.82.121.3", "127.0.0.1"], "127.0.0.1 is loopback"),
    # the installer's deny list, and the API server's addresses on every port
    ((), ("10.0.0.0/8",), "http://svc.internal/", ["10.1.2.3"], "denied by the operator's installer (10.0.0.0/8)"),
    ((), (), "http://10.96.0.1:8080/", ["10.96.0.1"], "the Kubernetes API server (10.96.0.1/32)"),
    # a CIDR allow lets its addresses through, also past a deny entry
    (("127.0.0.0/8",), (), "http://127.0.0.1:8080/x", ["127.0.0.1"], None),
    (("10.1.0.0/16",), ("10.0.0.0/8",), "http://svc.internal/", ["10.1.2.3"], None),
    (("10.1.0.0/16",), ("10.0.0.0/8",), "http://svc.internal/", ["10.2.0.1"], "denied by the operator's installer"),
    (("127.0.0.1/32",), (), "http://[::1]/", ["::1"], "loopback"),
    # a URL-prefix allow lets its URLs through whatever they resolve to, at a path boundary
    (("http://git.internal/acme/",), (), "http://git.internal/acme/web.git", ["127.0.0.1"], None),
    (("http://git.internal/acme",), (), "http://git.internal/acme-evil/web.git", ["127.0.0.1"], "loopback"),
    (("http://git.internal/acme/",), (), "http://git.internal/acme/../x.git", ["127.0.0.1"], "loopback"),
    (("http://git.internal/acme/",), (), "https://git.internal/acme/web.git", ["10.0.0.1"], None),
    (("https://git.internal/acme/",), (), "http://git.internal/acme/web.git", ["127.0.0.1"], "loopback"),
    # protected endpoints stay refused whatever is allowed
    (("127.0.0.0/8",), (), "http://127.0.0.1:9090/metrics", ["127.0.0.1"], "own metrics endpoint"),
    (("http://127.0.0.1:9090/",), (), "http://127.0.0.1:9090/metrics", ["127.0.0.1"], "own metrics endpoint"),
    (("10.96.0.0/12",), (), "https://kubernetes.default/api", ["10.96.0.1"], "the Kubernetes API server"),
    (("10.96.0.0/12",), (), "http://10.96.0.1:8080/", ["10.96.0.1"], None),  # its address, another port
    # what names no destination
    ((), (), "ftp://example.com/x", ["93.184.215.14"], "only http(s) URLs"),
    ((), (), "http://[::1/x", ["::1"], "cannot be parsed"),
    ((), (), "http://example.com/", [], "resolved to no address"),
    ((), (), "http://example.com/", ["not-an-address"], "not an IP address"),
], ids=lambda v: None)
def test_decide(allow, deny, url, addresses, refused_by):
    decision = decide(policy(allow, deny), url, addresses)
    if refused_by is None:
        assert decision == Allowed(tuple(addresses))
    else:
        assert isinstance(decision, Refused) and refused_by in decision.rule, decision
        assert url in decision.message


@pytest.mark.parametrize("allow, deny, error", [
    (("10.1.2.3/8",), (), "'10.1.2.3/8' is not a CIDR"),
    (("nonsense",), (), "'nonsense' is not a CIDR"),
    (("ftp://x/",), (), "not an http(s) URL prefix"),
    (("http://user@x/",), (), "no user"),
    ((), ("http://x/",), "is not a CIDR"),
])
def test_bad_entries_are_refused_naming_them(allow, deny, error):
    with pytest.raises(ValueError, match=error.replace("(", r"\(").replace(")", r"\)")):
        policy_of(allow, deny)


def test_entries_of_a_setting():
    assert egress.entries_of(" 10.0.0.0/8, https://git.example.com/acme/ ,,") == (
        "10.0.0.0/8", "https://git.example.com/acme/")
    assert egress.entries_of(None) == ()


# --- the adapter: resolving, pinning --------------------------------------------------------------


class Resolver:
    """Answers from a script, one answer per lookup, and counts them."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        if not self.answers:
            raise OSError("no answer")
        return self.answers.pop(0)


def test_check_resolves_once_and_pins_to_what_it_decided():
    resolver = Resolver(["203.0.113.7"], ["127.0.0.1"])  # a rebinding name: public first, loopback after
    target = EgressPolicy(policy(), resolver).check("https://git.example.com:8443/acme/web.git")
    assert isinstance(target, Target) and target.addresses == ("203.0.113.7",)
    assert target.curl_resolve == "git.example.com:8443:203.0.113.7"
    request = pinned(target, "https://git.example.com:8443/acme/web.git/info/refs")
    assert request.url == "https://203.0.113.7:8443/acme/web.git/info/refs"
    assert request.headers == {"Host": "git.example.com:8443"}
    assert request.extensions == {"sni_hostname": "git.example.com"}
    assert resolver.asked == [("git.example.com", 8443)], "the name is resolved once, at the check"


def test_ipv6_addresses_are_pinned_in_brackets():
    target = EgressPolicy(policy(), Resolver(["2001:db8::7"])).check("http://git.example.com/a.git")
    assert isinstance(target, Target) and target.curl_resolve == "git.example.com:80:[2001:db8::7]"
    assert pinned(target, "http://git.example.com/a.git").url == "http://[2001:db8::7]/a.git"


def test_an_address_literal_is_not_resolved_and_not_rewritten():
    resolver = Resolver()
    target = EgressPolicy(policy(("127.0.0.0/8",)), resolver).check("http://127.0.0.1:8080/x")
    assert isinstance(target, Target) and target.curl_resolve is None and resolver.asked == []
    assert pinned(target, "http://127.0.0.1:8080/x?a=1").url == "http://127.0.0.1:8080/x?a=1"


def test_a_request_to_another_origin_is_never_pinned_to_the_checked_address():
    target = EgressPolicy(policy(), Resolver(["203.0.113.7"])).check("https://git.example.com/a.git")
    assert isinstance(target, Target)
    with pytest.raises(ValueError, match="not of the checked origin"):
        pinned(target, "https://other.example.com/a.git")


def test_a_name_that_does_not_resolve_is_unresolved_not_refused():
    checked = EgressPolicy(policy(), Resolver()).check("https://nowhere.example/a.git")
    assert checked == Unresolved("https://nowhere.example/a.git", "nowhere.example")


def test_refused_names_the_rule_not_the_answer():
    checked = EgressPolicy(policy(), Resolver(["169.254.169.254"])).check("http://metadata.internal/")
    assert isinstance(checked, Refused)
    assert checked.message == ("the operator's egress policy refuses http://metadata.internal/: 169.254.169.254 is "
                               "link-local (cloud metadata) (169.254.0.0/16); the operator's installer may allow it "
                               "with --egress-allow")


# --- settings and startup discovery ---------------------------------------------------------------


def test_flags_replace_the_environment_entries_and_bad_ones_stop_the_operator(capsys):
    from selfbootstrap.__main__ import parse_args
    from selfbootstrap.config import Settings

    env = Settings.from_env({"SELFBOOTSTRAP_EGRESS_ALLOW": "10.0.0.0/8, https://git.internal/acme/",
                             "SELFBOOTSTRAP_EGRESS_DENY": "10.244.0.0/16"})
    assert (env.egress_allow, env.egress_deny) == (("10.0.0.0/8", "https://git.internal/acme/"), ("10.244.0.0/16",))
    _, settings = parse_args([], env)
    assert settings.egress_allow == env.egress_allow
    _, settings = parse_args(["--egress-allow=127.0.0.0/8", "--egress-allow", "::1/128,fd00::/8"], env)
    assert (settings.egress_allow, settings.egress_deny) == (("127.0.0.0/8", "::1/128", "fd00::/8"), ("10.244.0.0/16",))
    with pytest.raises(SystemExit):
        parse_args(["--egress-deny=10.0.0.1/8"], env)
    assert "egress policy: '10.0.0.1/8' is not a CIDR" in capsys.readouterr().err


class FakeApi:
    """What discovery reads of the client: its configuration's host."""

    class configuration:  # noqa: N801  (the client's attribute name)
        host = "https://kube.example:6443"


def test_discovery_adds_the_api_server_service_ranges_and_own_endpoints(mocker):
    from selfbootstrap.adapters import egress as adapter
    from selfbootstrap.config import Settings

    listed = mocker.patch("selfbootstrap.adapters.kubeapi.KubeApi.list", return_value=[
        {"metadata": {"name": "kubernetes"}, "spec": {"cidrs": ["10.96.0.0/12", "fd00:10:96::/112"]}}])
    mocker.patch("socket.gethostname", return_value="operator-pod")
    names = {"kube.example": ["192.0.2.10"], "operator-pod": ["10.244.1.7"]}
    settings = Settings(liveness="http://0.0.0.0:8080/healthz", metrics_bind_address=":9090",
                        egress_allow=("10.0.0.0/8",))
    policy = adapter.discover(settings, FakeApi(), {"KUBERNETES_SERVICE_HOST": "10.96.0.1",  # type: ignore[arg-type]
                                                    "KUBERNETES_SERVICE_PORT": "443"},
                              lambda host, port: names[host])
    assert listed.call_args.args[0] == "/apis/networking.k8s.io/v1/servicecidrs"

    def refused(url: str, *addresses: str) -> str | None:
        decision = decide(policy.policy, url, addresses)
        return decision.rule if isinstance(decision, Refused) else None

    assert "the cluster's service range (kubernetes)" in (refused("http://svc/", "fd00:10:96::5") or "")
    assert "the Kubernetes API server" in (refused("https://kube.example:6443/", "192.0.2.10") or "")
    assert "the Kubernetes API server" in (refused("http://x:8080/", "192.0.2.10") or ""), "every port of it"
    # allowed by 10.0.0.0/8, but the API server's service address and the operator's own ports are never
    assert refused("http://svc/", "10.96.0.5") is None
    assert "the Kubernetes API server" in (refused("https://kubernetes.default/", "10.96.0.1") or "")
    assert "own metrics endpoint" in (refused("http://pod:9090/metrics", "10.244.1.7") or "")
    assert "own liveness endpoint" in (refused("http://localhost:8080/healthz", "127.0.0.1") or "")
    assert refused("http://other-pod:9090/metrics", "10.244.1.8") is None, "another pod's port 9090 is not ours"


def test_discovery_failures_are_logged_not_fatal(mocker, caplog):
    from kubernetes.client.exceptions import ApiException

    from selfbootstrap.adapters import egress as adapter
    from selfbootstrap.config import Settings

    mocker.patch("selfbootstrap.adapters.kubeapi.KubeApi.list", side_effect=ApiException(status=403))

    def unresolvable(host: str, port: int) -> list[str]:
        raise OSError("no such host")

    policy = adapter.discover(Settings(), FakeApi(), {}, unresolvable)  # type: ignore[arg-type]
    assert policy.policy.deny == egress.DEFAULT_DENY
    assert "service ranges were not discovered (HTTP 403)" in caplog.text
    assert "forbidden" not in caplog.text.lower()
