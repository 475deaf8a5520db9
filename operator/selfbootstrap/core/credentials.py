"""Where a credential may be sent: only to URL prefixes its Secret names (Tekton's convention).

A Secret is usable by runs only if it carries the annotation, e.g.

    selfbootstrap.dev/allowed-urls: "https://github.com/acme/, https://api.github.com/"

A URL matches a prefix at a path boundary (https://github.com/acme does not match
https://github.com/acme-evil), and must be https unless the prefix itself says http://.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

ALLOWED_URLS_ANNOTATION = "selfbootstrap.dev/allowed-urls"


def prefixes_of(annotation: str | None) -> tuple[str, ...]:
    """The prefixes an annotation lists (separated by commas or whitespace)."""
    return tuple(p for p in re.split(r"[\s,]+", annotation or "") if p)


def _normal(url: str) -> str:
    """Scheme and host in lower case, the rest as written; an empty path is "/" (http://h is http://h/)."""
    parts = urlsplit(url)
    rest = url.split(parts.netloc, 1)[1] if parts.netloc else ""
    if parts.netloc and not rest.startswith("/"):
        rest = "/" + rest
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{rest}"


DOT_SEGMENT = re.compile(r"/(\.|%2e){1,2}(?=[/?#]|$)", re.IGNORECASE)


def matches(url: str, prefix: str) -> bool:
    """Whether url lies under prefix. A URL with '.' or '..' segments never does: git resolves them,
    so it could name a path under the prefix and reach one outside it."""
    u, p = _normal(url), _normal(prefix)
    if not p.startswith(("https://", "http://")) or "@" in urlsplit(u).netloc or DOT_SEGMENT.search(u):
        return False
    if not u.startswith(p):
        return False
    return p.endswith("/") or len(u) == len(p) or u[len(p)] in "/?#"


def allowing(url: str, prefixes: Iterable[str]) -> str | None:
    """The first prefix that allows sending a credential to url, or None."""
    return next((p for p in prefixes if matches(url, p)), None)


def refusal(secret: str, prefixes: Sequence[str], urls: Iterable[str]) -> str | None:
    """Why the Secret's token may not go to one of the urls, or None when it may go to all."""
    if not prefixes:
        return (f"secret {secret!r} has no {ALLOWED_URLS_ANNOTATION} annotation; a Secret is used by runs "
                f"only when it names the URL prefixes its token may be sent to")
    for url in urls:
        if allowing(url, prefixes) is None:
            return (f"secret {secret!r} does not allow sending its token to {url} (allowed: "
                    f"{', '.join(prefixes)}); add a prefix to its {ALLOWED_URLS_ANNOTATION} annotation")
    return None
