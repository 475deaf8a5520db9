"""GitHub App credentials: an installation token minted with the app's private key, instead of a personal token.

The run's Secret holds `githubAppID`, `githubAppInstallationID` and `githubAppPrivateKey` (PEM), as Flux's and
Kargo's GitHub App Secrets do. The operator signs a JWT (RS256, ten minutes at most, as GitHub allows) and
exchanges it at `{apiUrl}/app/installations/{id}/access_tokens` for an installation token, which then goes
where a personal token would (git over https as `x-access-token`, the REST API). Both the JWT and the token
go only where the Secret's `selfbootstrap.dev/allowed-urls` allows, through the egress policy, never after a
redirect, and are never logged. Tokens are kept until shortly before they expire (an hour), per app,
installation and key, so a run's steps do not mint one each.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Final

from ..core.jsontypes import obj, text
from ..core.text import http_status
from .egress import EgressPolicy
from .request import NoAnswer, send

if TYPE_CHECKING:
    import httpx

APP_ID: Final = "githubAppID"
INSTALLATION_ID: Final = "githubAppInstallationID"
PRIVATE_KEY: Final = "githubAppPrivateKey"
JWT_SECONDS: Final = 540  # GitHub refuses a JWT that lives longer than ten minutes
CLOCK_SKEW: Final = 60  # issued a minute in the past, as GitHub advises, for a clock that runs ahead
RENEW_BEFORE: Final = 300.0  # a cached token is replaced this long before it expires
TIMEOUT: Final = 15.0


class AppTokenError(Exception):
    """No installation token: why, in fixed words (never what the server said, never a credential)."""

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class GitHubApp:
    app_id: str
    installation_id: str
    private_key: bytes = field(repr=False)

    @property
    def key(self) -> tuple[str, str, str]:
        return self.app_id, self.installation_id, hashlib.sha256(self.private_key).hexdigest()


def of_secret(data: Mapping[str, bytes], secret: str) -> GitHubApp | None:
    """The app's credentials when the Secret holds them (all three keys), else None."""
    if APP_ID not in data and INSTALLATION_ID not in data and PRIVATE_KEY not in data:
        return None
    missing = [k for k in (APP_ID, INSTALLATION_ID, PRIVATE_KEY) if not data.get(k)]
    if missing:
        raise AppTokenError(f"secret {secret!r} holds GitHub App credentials without {', '.join(missing)}")
    try:
        app_id, installation = data[APP_ID].decode().strip(), data[INSTALLATION_ID].decode().strip()
    except UnicodeDecodeError:
        raise AppTokenError(f"secret {secret!r}: the GitHub App and installation ids are not text") from None
    if not app_id.isdigit() or not installation.isdigit():
        raise AppTokenError(f"secret {secret!r}: {APP_ID} and {INSTALLATION_ID} must be numbers")
    return GitHubApp(app_id, installation, data[PRIVATE_KEY])


def token_url(api_url: str, app: GitHubApp) -> str:
    return f"{api_url.rstrip('/')}/app/installations/{app.installation_id}/access_tokens"


def signed(app: GitHubApp, now: float) -> str:
    """The JWT that identifies the app to GitHub."""
    import jwt  # with its cryptography backend, loaded by an operator that signs for an app, not by every one

    claims = {"iat": int(now) - CLOCK_SKEW, "exp": int(now) + JWT_SECONDS, "iss": app.app_id}
    try:
        return jwt.encode(claims, app.private_key, algorithm="RS256")
    except (ValueError, TypeError, jwt.PyJWTError):
        raise AppTokenError("the GitHub App private key is not an RSA key in PEM form") from None


@dataclass
class InstallationTokens:
    """Installation tokens by (api URL, app, installation, key), kept until RENEW_BEFORE their expiry."""

    transport: httpx.BaseTransport | None = None
    clock: Callable[[], float] = time.time
    _kept: dict[tuple[str, str, str, str], tuple[str, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def token(self, app: GitHubApp, api_url: str, egress: EgressPolicy) -> str:
        key = (api_url, *app.key)
        now = self.clock()
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None and kept[1] - RENEW_BEFORE > now:
                return kept[0]
        token, expires = self._mint(app, api_url, egress, now)
        with self._lock:
            self._kept[key] = (token, expires)
        return token

    def _mint(self, app: GitHubApp, api_url: str, egress: EgressPolicy, now: float) -> tuple[str, float]:
        url = token_url(api_url, app)
        answer = send("POST", url, egress=egress, timeout=TIMEOUT, transport=self.transport,
                      headers={"Authorization": f"Bearer {signed(app, now)}", "Accept": "application/vnd.github+json",
                               "X-GitHub-Api-Version": "2022-11-28"})
        if isinstance(answer, NoAnswer):
            raise AppTokenError(f"no GitHub App installation token: {answer.why}", retryable=True)
        if answer.status in (301, 302, 303, 307, 308):
            raise AppTokenError(f"POST {url} answered a redirect; the app's JWT does not follow redirects")
        if answer.status != 201:
            raise AppTokenError(f"POST {url} answered {http_status(answer.status)}: no installation token",
                                retryable=answer.status >= 500 or answer.status == 429)
        try:
            granted = obj(json.loads(answer.body))
        except ValueError:
            granted = {}
        token = text(granted.get("token"))
        if not token:
            raise AppTokenError(f"POST {url} answered no installation token")
        return token, _expiry(text(granted.get("expires_at")), now)


def _expiry(expires_at: str | None, now: float) -> float:
    """When the token expires; an hour (GitHub's lifetime) when the answer does not say."""
    try:
        return datetime.fromisoformat((expires_at or "").replace("Z", "+00:00")).timestamp()
    except ValueError:
        return now + 3600.0
