"""A real Gitea for the git workflow's tests (tests/support/gitea.py starts it: built from its Go module, SQLite,
on a free loopback port, with an admin user and an access token made by its own CLI). Repositories, files,
branches, commit statuses (the tests play CI) and pull requests go through its REST API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.gitea import EMAIL, USER, Gitea, running_gitea

__all__ = ["EMAIL", "USER", "Gitea", "gitea"]


@pytest.fixture(scope="session")
def gitea(tmp_path_factory) -> Iterator[Gitea]:
    with running_gitea(tmp_path_factory.mktemp("gitea")) as server:
        yield server
