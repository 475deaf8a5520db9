"""Which repository paths a run may write: relative, inside the tree, never into git's own files.

The CRD refuses the same paths at admission; this is the check the executor makes before
it writes anything, after normalisation, whatever reached it.
"""

from __future__ import annotations

import posixpath
import re


class UnsafePathError(ValueError):
    """The path may not be written; the message names it and says why."""


def _is_git_dir(component: str) -> bool:
    # ".git" in any case, and the names some file systems take for it (".git.", ".git ", "git~1")
    bare = component.rstrip(". ").lower()
    return bare == ".git" or re.fullmatch(r"git~[0-9]+", bare) is not None


def repository_path(path: str) -> str:
    """The normalised relative path, or UnsafePathError."""
    if not path or "\0" in path or "\\" in path:
        raise UnsafePathError(f"{path!r}: not a plain relative path")
    if path.startswith("/"):
        raise UnsafePathError(f"{path!r}: absolute paths are not allowed")
    if ".." in path.split("/"):
        raise UnsafePathError(f"{path!r}: '..' is not allowed")
    normal = posixpath.normpath(path)
    if normal in (".", ""):
        raise UnsafePathError(f"{path!r}: names no file")
    if any(_is_git_dir(c) for c in normal.split("/")):
        raise UnsafePathError(f"{path!r}: git's own files (.git) may not be written")
    return normal
