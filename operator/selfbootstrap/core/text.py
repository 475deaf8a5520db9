"""Text that came from somebody else, made safe to store and to print.

Status, Events and the plugin's output are read in terminals and web consoles. Whatever an author
wrote (an abort reason, a release id from an old schema), a remote server answered or a container
printed is stored as data: control characters (ANSI escapes, carriage returns, bidirectional
overrides, zero-width characters, line separators) are written out as visible escapes, and the
text is bounded, so that no reader's terminal is driven by it and no field grows without limit.
"""

from __future__ import annotations

import http
import unicodedata

MESSAGE_LIMIT = 1024  # characters of one message in status or an Event
NAME_LIMIT = 253  # an identifier shown back (a check's name, a branch)
TRUNCATED = "..."

# Unicode categories that do not print as themselves: controls (C0, DEL, C1), formatting characters
# (bidirectional overrides and isolates, zero-width joiners, soft hyphen), line and paragraph
# separators, surrogates and unassigned code points.
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Cn"})


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def is_hidden(char: str) -> bool:
    return unicodedata.category(char) in _HIDDEN


def printable(value: str, limit: int = MESSAGE_LIMIT) -> str:
    """The text with every character that does not print as itself escaped, then bounded to `limit`
    characters (the end cut and marked). Idempotent: printable(printable(x)) == printable(x)."""
    out = value if not has_hidden(value) else "".join(_escape(c) if is_hidden(c) else c for c in value)
    if len(out) <= limit:
        return out
    return out[: max(0, limit - len(TRUNCATED))] + TRUNCATED


def has_hidden(value: str) -> bool:
    """Whether the text holds a character printable() would escape."""
    # str.isprintable() (in C) is False for every hidden character, and True for almost all text.
    return not value.isprintable() and any(is_hidden(c) for c in value)


def http_status(code: int) -> str:
    """'503 (Service Unavailable)': a status code and its standard phrase, whatever the server called it."""
    try:
        return f"{code} ({http.HTTPStatus(code).phrase})"
    except ValueError:
        return f"{code} (unexpected status)"
