"""The registry release source: what the release's image reference names, asked of its registry.

The manifest (for an index, the one of the operator's platform), its digest and its config blob, over
the registry API (OCI distribution). Credentials come from the Deployment's imagePullSecrets (else its
ServiceAccount's) and go only to the registry they are for: a token service elsewhere is asked
anonymously, and no redirect carries them. Every URL goes through the egress policy. Loopback registries
are spoken to over http, as container runtimes do; all others over https.

A registry that cannot be reached (no such host, refused by the egress policy, a timeout) is no
verdict on the image: the run deploys without registry metadata and says so. A registry that answers
that the manifest is unknown, or an index without the platform, is: the run fails before any patch.

For a self-update, the CRD the new version ships (attached to its image as an OCI referrer of type
images.CRD_ARTIFACT, found by the referrers API or the referrers tag) is checked against the runs in flight.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Final
from urllib.parse import urlencode, urljoin, urlsplit

import yaml
from kubernetes.client.exceptions import ApiException

from ..core import compat, images, reasons
from ..core.actions import Failed, ImageResolved, ImageUnresolved, ResolveImage
from ..core.egress import normal_address
from ..core.jsontypes import JsonObject, integer, obj, objects, path, text
from ..core.run import Run
from ..core.text import http_status
from .egress import EgressPolicy
from .kube import RETRYABLE_STATUS, Kube, SecretUnavailableError
from .recent import RecentAnswers
from .request import Answer, NoAnswer, send

if TYPE_CHECKING:
    import httpx

TIMEOUT: Final = 15.0
Login = tuple[tuple[str, str] | None, str | None]  # (user, password) for the registry, and the Secret's name
_CHALLENGE: Final = re.compile(r'(\w+)="([^"]*)"')


class RegistryRefusedError(Exception):
    """The registry answered, and not with the manifest (the message says why, in fixed words)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class UnreachableError(Exception):
    pass


def scheme_of(registry: str) -> str:
    host = urlsplit(f"//{registry}").hostname or ""
    address = normal_address(host)
    return "http" if host == "localhost" or (address is not None and address.is_loopback) else "https"


class Session:
    """Requests to one registry for one repository, with its credentials and the token it hands out."""

    def __init__(self, ref: images.Reference, find_login: Callable[[], Login], egress: EgressPolicy,
                 transport: httpx.BaseTransport | None) -> None:
        self.ref, self.find_login, self.egress, self.transport = ref, find_login, egress, transport
        self.base = f"{scheme_of(ref.registry)}://{ref.registry}"
        self.authorization: str | None = None
        self._login: Login | None = None

    @property
    def login(self) -> tuple[str, str] | None:
        return self.credentials[0]

    @property
    def secret(self) -> str | None:
        return self.credentials[1]

    @property
    def credentials(self) -> Login:
        """The pull credentials, looked up when the registry first asks for them (a registry that is not
        reached, or serves anonymously, costs no read of Secrets or the ServiceAccount)."""
        if self._login is None:
            self._login = self.find_login()
        return self._login

    def get(self, path_: str, accept: tuple[str, ...] = ()) -> Answer:
        url = self.base + path_
        headers = {"Accept": ", ".join(accept)} if accept else {}
        answer = self._send(url, headers)
        if answer.status == 401:
            self._authenticate(answer.headers.get("www-authenticate", ""))
            answer = self._send(url, headers)
            if answer.status == 401:
                raise RegistryRefusedError(reasons.IMAGE_PULL_REFUSED, self._refused())
        if answer.status in (301, 302, 303, 307, 308):  # a blob from storage elsewhere: never with credentials
            location = urljoin(url, answer.headers.get("location", ""))
            reached = send("GET", location, egress=self.egress, timeout=TIMEOUT, transport=self.transport)
            if isinstance(reached, NoAnswer):
                raise UnreachableError(reached.why)
            answer = reached
        return answer

    def _send(self, url: str, headers: dict[str, str]) -> Answer:
        if self.authorization:
            headers = {**headers, "Authorization": self.authorization}
        answer = send("GET", url, egress=self.egress, timeout=TIMEOUT, transport=self.transport, headers=headers)
        if isinstance(answer, NoAnswer):
            raise UnreachableError(answer.why)
        return answer

    def _authenticate(self, challenge: str) -> None:
        scheme, _, params = challenge.partition(" ")
        fields = dict(_CHALLENGE.findall(params))
        if scheme.lower() == "basic":
            if self.login is None:
                raise RegistryRefusedError(reasons.IMAGE_PULL_REFUSED, self._refused())
            self.authorization = "Basic " + base64.b64encode(":".join(self.login).encode()).decode()
        elif scheme.lower() == "bearer" and fields.get("realm"):
            self.authorization = "Bearer " + self._token(fields)
        else:
            raise RegistryRefusedError(reasons.IMAGE_PULL_REFUSED, f"{self.ref.registry} asks for an authentication "
                                                                   f"this operator does not speak")

    def _token(self, fields: Mapping[str, str]) -> str:
        realm = fields["realm"]
        query = {"service": fields.get("service", ""), "scope": f"repository:{self.ref.repository}:pull"}
        url = f"{realm}{'&' if '?' in realm else '?'}{urlencode(query)}"
        same_host = urlsplit(realm).netloc == self.ref.registry
        headers = {}
        if self.login is not None and same_host:  # credentials go to their registry only
            headers["Authorization"] = "Basic " + base64.b64encode(":".join(self.login).encode()).decode()
        answer = send("GET", url, egress=self.egress, timeout=TIMEOUT, transport=self.transport, headers=headers)
        if isinstance(answer, NoAnswer):
            raise UnreachableError(answer.why)
        try:
            granted = obj(json.loads(answer.body))
        except ValueError:
            granted = {}
        token = text(granted.get("token")) or text(granted.get("access_token"))
        if answer.status != 200 or not token:
            raise RegistryRefusedError(reasons.IMAGE_PULL_REFUSED, self._refused())
        return token

    def _refused(self) -> str:
        if self.login is None:
            return (f"{self.ref.registry} asks for credentials to pull {self.ref.repository}, and neither the "
                    f"Deployment nor its ServiceAccount has an imagePullSecret for {self.ref.registry}")
        return f"{self.ref.registry} refused the credentials of pull secret {self.secret!r} for {self.ref.repository}"


CRD_LIMIT: Final = 2 * 1024 * 1024  # bytes of a CRD artifact read


def _referrers(session: Session, repo: str, digest: str) -> JsonObject | None:
    """The image's referrers: the OCI 1.1 referrers API, else the referrers tag (`sha256-<hex>`) that registries
    without that API hold (the OCI distribution spec's fallback)."""
    answer = session.get(f"/v2/{repo}/referrers/{digest}", (images.OCI_INDEX,))
    if answer.status != 200:
        answer = session.get(f"/v2/{repo}/manifests/{digest.replace(':', '-')}", (images.OCI_INDEX,))
    return _document(answer, "a referrers index") if answer.status == 200 else None


def _document(answer: Answer, what: str) -> JsonObject:
    try:
        return obj(json.loads(answer.body))
    except (ValueError, RecursionError):
        raise RegistryRefusedError(reasons.IMAGE_NOT_FOUND, f"the registry answered {what} that is not JSON") from None


def _crd_of(session: Session, repo: str, digest: str) -> JsonObject | str:
    """The CRD attached to the image as a referrer (artifactType images.CRD_ARTIFACT), or why there is none."""
    index = _referrers(session, repo, digest)
    found = next((m for m in objects(obj(index).get("manifests"))
                  if m.get("artifactType") == images.CRD_ARTIFACT), None)
    if found is None:
        return "the image has no CRD attached (a referrer of type " + images.CRD_ARTIFACT + "): not checked"
    manifest = _document(session.get(f"/v2/{repo}/manifests/{text(found.get('digest'))}", images.MANIFEST_TYPES),
                         "a CRD artifact")
    layer = next((b for b in objects(manifest.get("layers")) if b.get("mediaType") == images.CRD_ARTIFACT), None)
    if layer is None or integer(layer.get("size")) > CRD_LIMIT:
        return "the image's CRD artifact has no CRD layer of a readable size: not checked"
    blob = session.get(f"/v2/{repo}/blobs/{text(layer.get('digest'))}")
    if blob.status != 200 or "sha256:" + hashlib.sha256(blob.body).hexdigest() != text(layer.get("digest")):
        return "the image's CRD could not be read intact: not checked"
    try:
        crd = yaml.safe_load(blob.body)
    except yaml.YAMLError:
        return "the image's CRD is not YAML: not checked"
    return crd if isinstance(crd, dict) else "the image's CRD is not an object: not checked"


# How long one answer of a registry serves the runs that ask the same: a burst of a thousand runs of one image
# asks once (an unreachable registry costs each lookup its DNS and connect timeouts, on a tick thread), and a tag
# pushed again is seen within this.
LOOKUP_SECONDS = 10.0


def _no_runs() -> list[JsonObject]:
    return []


class ImageExecutor:
    def __init__(self, kube: Kube, egress: EgressPolicy, platform: tuple[str, str] = ("linux", "amd64"),
                 transport: httpx.BaseTransport | None = None,
                 runs_in_flight: Callable[[], list[JsonObject]] = _no_runs) -> None:
        self.kube, self.egress, self.platform, self.transport = kube, egress, platform, transport
        self.runs_in_flight = runs_in_flight  # the runs this operator serves, for a self-update's CRD check
        self.recent: RecentAnswers[tuple[str, ResolveImage], ImageResolved | ImageUnresolved | Failed] = \
            RecentAnswers(LOOKUP_SECONDS)

    def perform(self, run: Run, action: ResolveImage) -> ImageResolved | ImageUnresolved | Failed:
        """What the registry says of the image, asked with the run's namespace's credentials: the runs of one
        namespace asking the same with the same credentials within LOOKUP_SECONDS share one answer. A
        self-update's CRD check is asked each time (it reads the runs in flight)."""
        if action.check_crd:
            return self._lookup(run, action)
        return self.recent.answer((run.namespace, action), functools.partial(self._lookup, run, action))

    def _lookup(self, run: Run, action: ResolveImage) -> ImageResolved | ImageUnresolved | Failed:
        ref = images.parse(action.image)
        if ref is None:
            return ImageUnresolved(f"{action.image!r} is not an image reference the registry could be asked for")
        session = Session(ref, functools.partial(self._login, run.namespace, ref.registry, action), self.egress,
                          self.transport)
        try:
            found = self._resolve(session, ref, action.image)
            if action.check_crd and isinstance(found, ImageResolved):
                return self._check_crd(session, ref, found)
            return found
        except UnreachableError as err:
            return ImageUnresolved(f"the registry {ref.registry} could not be reached ({err})")
        except RegistryRefusedError as err:
            return Failed(err.reason, str(err))
        except SecretUnavailableError as err:
            return Failed(reasons.IMAGE_PULL_REFUSED, str(err))
        except ApiException as err:  # the ServiceAccount: a passing fault, or the operator may not read it
            return Failed(reasons.IMAGE_PULL_REFUSED,
                          f"the ServiceAccount {action.service_account!r} could not be read for its pull secrets "
                          f"({err.status})", retryable=err.status in RETRYABLE_STATUS)

    def _check_crd(self, session: Session, ref: images.Reference, found: ImageResolved) -> ImageResolved:
        crd = _crd_of(session, ref.repository, found.digest)
        if isinstance(crd, str):
            return replace(found, crd_note=crd)
        runs = compat.in_flight(self.runs_in_flight())
        problems = compat.runs_unfit(crd, runs)
        note = f"the new version's CRD fits the {len(runs)} runs in flight"
        return replace(found, crd_problems=tuple(problems), crd_note=None if problems else note)

    def _login(self, namespace: str, registry: str, action: ResolveImage) -> Login:
        names = list(action.pull_secrets)
        if not names:
            account = self.kube.read_service_account(namespace, action.service_account)
            names = [text(ref.get("name")) or "" for ref in objects(obj(account).get("imagePullSecrets"))]
        for name in names:
            config = self.kube.read_docker_config(namespace, name)
            login = images.credentials(config, registry) if config is not None else None
            if login is not None:
                return login, name
        return None, None

    def _resolve(self, session: Session, ref: images.Reference, image: str) -> ImageResolved | Failed:
        repo = ref.repository
        top = session.get(f"/v2/{repo}/manifests/{ref.reference}", images.MANIFEST_TYPES)
        if top.status == 404:
            return Failed(reasons.IMAGE_NOT_FOUND, f"image {image} not found: {ref.registry} has no manifest "
                                                   f"{ref.reference} in {repo}")
        if top.status != 200:
            return Failed(reasons.IMAGE_NOT_FOUND, f"{ref.registry} answered {http_status(top.status)} for the "
                                                   f"manifest of {image}", retryable=top.status >= 500)
        digest = top.headers.get("docker-content-digest") or "sha256:" + hashlib.sha256(top.body).hexdigest()
        document = _document(top, "a manifest")
        index: JsonObject | None = None
        manifest = document
        if text(document.get("mediaType")) in (images.OCI_INDEX, images.DOCKER_LIST) or "manifests" in document:
            index = document
            os, arch = self.platform
            chosen = images.platform_digest(document, os, arch)
            if chosen is None:
                return Failed(reasons.IMAGE_NOT_FOUND, f"image {image} in {ref.registry} has no {os}/{arch} image "
                                                       f"in its index")
            manifest = _document(session.get(f"/v2/{repo}/manifests/{chosen}", images.MANIFEST_TYPES),
                                 "a manifest")
        config_digest = text(path(manifest, "config", "digest"))
        config = _document(session.get(f"/v2/{repo}/blobs/{config_digest}"), "an image config") \
            if config_digest else None
        meta = images.metadata(*(d for d in (index, manifest) if d is not None), config=config)
        return ImageResolved(digest=digest, registry=ref.registry, version=meta.version, revision=meta.revision,
                             source=meta.source, created=meta.created)



