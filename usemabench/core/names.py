"""The one check for names that become parts of a path (models, datasets, protocols, run folders).

A plain name is letters, digits, `.`, `_` and `-`, does not start with a dot (so never `.` or `..`) and
holds no separator. Anything else is refused with a message naming what it is, never rewritten: a
rewritten name could collide with another one's folder.
"""

from __future__ import annotations

import re

_PLAIN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
MAX_LENGTH = 128


class UnsafeNameError(ValueError):
    """A name that would not stay one folder inside its parent."""


def plain_name(name: str, what: str) -> str:
    """`name` unchanged when it is safe as one path component; UnsafeNameError naming `what` otherwise."""
    if not isinstance(name, str) or not _PLAIN.fullmatch(name) or len(name) > MAX_LENGTH:
        raise UnsafeNameError(
            f"{what} {name!r} cannot name a folder: use letters, digits, '.', '_' and '-' only, "
            f"not starting with '.', at most {MAX_LENGTH} characters"
        )
    return name
