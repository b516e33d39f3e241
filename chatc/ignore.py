"""Client-side ignores: who the user does not want to hear from, by ``nick!user@host`` mask.

Kept by the ``ClientState`` and so across reconnects within one running chatc (nothing is written
to disk): a reconnect must not bring back the person the user just ignored. Matching uses the
server's wildcards (``*`` and ``?``) and case mapping, as bans do, so a mask means what it means
in ``/ban``.
"""

from __future__ import annotations

from chatd.protocol.mask import mask_matches, normalize_mask


class IgnoreList:
    """Masks in the order they were added; a bare nick means ``nick!*@*`` (as irssi reads it)."""

    def __init__(self) -> None:
        self._masks: dict[str, str] = {}  # case-folded mask -> mask as the user typed it (completed)

    @property
    def masks(self) -> list[str]:
        return list(self._masks.values())

    def add(self, mask: str) -> tuple[str, bool]:
        """Ignore ``mask``; returns the completed mask and whether it is new."""
        full = normalize_mask(mask)
        key = full.lower()
        if key in self._masks:
            return full, False
        self._masks[key] = full
        return full, True

    def remove(self, mask: str) -> str | None:
        """Stop ignoring ``mask`` (completed as in ``add``); returns it, or None when it was not ignored."""
        return self._masks.pop(normalize_mask(mask).lower(), None)

    def matches(self, source: str | None) -> bool:
        """Whether a message from ``source`` (a ``nick!user@host`` prefix, or a bare nick) is to be hidden.

        A bare nick is matched as ``nick!*@*``; so a host mask never hides a sender whose host we do not know.
        """
        if not source or not self._masks:
            return False
        full = source if "!" in source else f"{source}!*@*"
        return any(mask_matches(mask, full) for mask in self._masks.values())
