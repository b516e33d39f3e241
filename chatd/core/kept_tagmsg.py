"""Which TAGMSGs history keeps, and who is shown them again.

Invariants (ergo's ``tagmsg-storage``, with its default allowlist and irctest's):
- A TAGMSG is kept only when it carries one of ``KEPT_TAGMSG_TAGS``: a reaction, or a tag
  by which the sender asks for it to be kept. Typing notifications and the like are
  moments, not history, and are never stored.
- A kept TAGMSG is an entry of kind ``TAGMSG_KIND``: read only with events, so only
  clients that negotiated ``draft/event-playback`` and ``message-tags`` (TAGMSG reaches no
  one else live either) are shown it in CHATHISTORY or in a replay on join.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

TAGMSG_KIND: Final = "tagmsg"
KEPT_TAGMSG_TAGS: Final = frozenset({"+draft/react", "+react", "+draft/persist", "+persist"})


def tagmsg_kept(tags: Mapping[str, str] | None) -> bool:
    """Whether a TAGMSG with these client-only tags is kept in history."""
    return bool(tags) and not KEPT_TAGMSG_TAGS.isdisjoint(tags or ())


def shown_tagmsgs(caps: set[str]) -> bool:
    """Whether a client with ``caps`` is shown the TAGMSGs kept in history."""
    return "draft/event-playback" in caps and "message-tags" in caps
