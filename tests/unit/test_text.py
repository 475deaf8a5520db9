"""Text from others is stored and printed as data: hidden characters escaped, length bounded."""

from __future__ import annotations

import pytest

from selfbootstrap.core.text import has_hidden, printable


@pytest.mark.parametrize(("raw", "shown"), [
    ("plain text", "plain text"),
    ("clear\x1b[2Jscreen", "clear\\x1b[2Jscreen"),
    ("line\r\nbreak", "line\\x0d\\x0abreak"),
    ("tab\there", "tab\\x09here"),
    ("bell\x07", "bell\\x07"),
    ("del\x7f", "del\\x7f"),
    ("c1\x9bcsi", "c1\\x9bcsi"),
    ("bidi\u202eevil", "bidi\\u202eevil"),
    ("iso\u2066late", "iso\\u2066late"),
    ("zero\u200bwidth", "zero\\u200bwidth"),
    ("sep\u2028line", "sep\\u2028line"),
    ("tag\U000e0041", "tag\\U000e0041"),
    ("café ünïcode ✓", "café ünïcode ✓"),
])
def test_hidden_characters_are_escaped(raw, shown):
    assert printable(raw) == shown
    assert has_hidden(raw) == (raw != shown)


def test_long_text_is_bounded_and_marked():
    out = printable("x" * 5000, 1024)
    assert len(out) == 1024 and out.endswith("...")


def test_escaping_counts_towards_the_bound():
    out = printable("\x1b" * 1000, 100)
    assert len(out) == 100 and "\x1b" not in out


@pytest.mark.parametrize("raw", ["a\x1bb" * 600, "ok", "\u202e" * 10, "é" * 2000])
def test_printable_is_idempotent(raw):
    once = printable(raw, 300)
    assert printable(once, 300) == once
    assert not has_hidden(once)
