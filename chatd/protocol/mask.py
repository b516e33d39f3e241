"""Hostmasks (``nick!user@host`` with ``*`` and ``?`` wildcards) for bans and WHO.

Matching is case-insensitive under the server's case mapping. Masks are
compiled to regular expressions once, when they are set, not per check.
"""

from __future__ import annotations

import re
from functools import lru_cache

from chatd.protocol.casemap import irc_lower


def normalize_mask(mask: str) -> str:
    """Complete a partial mask the way servers do: ``nick`` → ``nick!*@*``, ``u@h`` → ``*!u@h``."""
    if "!" not in mask and "@" not in mask:
        return f"{mask}!*@*"
    if "!" not in mask:
        return f"*!{mask}"
    if "@" not in mask:
        return f"{mask}@*"
    return mask


@lru_cache(maxsize=4096)
def _compile(mask: str) -> re.Pattern[str]:
    pattern = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in irc_lower(mask))
    return re.compile(pattern + r"\Z", re.DOTALL)


def mask_matches(mask: str, name: str) -> bool:
    """True when ``name`` (a full prefix, a nick, a channel…) matches the wildcard ``mask``."""
    return _compile(mask).match(irc_lower(name)) is not None
