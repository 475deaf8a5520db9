"""The operator caps glibc's malloc arenas at start, unless the user chose a number themselves."""

from __future__ import annotations

import ctypes

import pytest

from selfbootstrap import __main__ as entry


def test_arenas_are_capped_at_start(mocker, monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    libc = mocker.patch.object(ctypes, "CDLL")
    entry.limit_malloc_arenas()
    libc.assert_called_once_with("libc.so.6")
    libc.return_value.mallopt.assert_called_once_with(-8, 2)


def test_a_users_own_setting_wins(mocker, monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    libc = mocker.patch.object(ctypes, "CDLL")
    entry.limit_malloc_arenas()
    libc.assert_not_called()


@pytest.mark.parametrize("error", [OSError("no such library"), AttributeError("mallopt")])
def test_a_libc_that_is_not_glibc_is_left_alone(mocker, monkeypatch, error):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    mocker.patch.object(ctypes, "CDLL", side_effect=error)
    entry.limit_malloc_arenas()  # no exception


def test_the_real_glibc_accepts_it(monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert ctypes.CDLL("libc.so.6").mallopt(entry.M_ARENA_MAX, entry.MALLOC_ARENAS) == 1  # 1: accepted
