"""The limits the server enforces, in one place: handlers enforce them and ISUPPORT advertises them.

A limit advertised to clients (``RPL_ISUPPORT``) and the code that enforces it read the
same constant here, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Final

from chatd.protocol.casemap import MAX_CHANNEL_LENGTH, MAX_NICK_LENGTH, MAX_TOPIC_LENGTH

MAX_AWAY_LENGTH: Final = 390
MAX_KICK_LENGTH: Final = 390
MAX_MODES_WITH_PARAMS: Final = 4
"""Mode changes with a parameter (``+k key``, ``+o nick``, ``+b mask``) taken from one MODE command."""
MAX_KEY_LENGTH: Final = 23
MAX_BANS: Final = 100
"""Entries a channel's ban list holds (478 past it)."""
CHATHISTORY_MAX: Final = 100
"""Most messages one CHATHISTORY query returns."""
MAX_MONITOR_TARGETS: Final = 100
"""Nicks one client may MONITOR at once (734 ERR_MONLISTFULL past it)."""
MAX_MESSAGE_TARGETS: Final = 4
"""Targets one PRIVMSG, NOTICE or TAGMSG takes (407 for the rest): one line cannot spam a crowd."""
MAX_USERHOST_NICKS: Final = 5
STATUSMSG_PREFIXES: Final = "@+"
"""ISUPPORT STATUSMSG: ``PRIVMSG @#chan`` reaches the channel's operators, ``+#chan`` its voiced
members and operators."""

__all__ = [
    "CHATHISTORY_MAX",
    "MAX_AWAY_LENGTH",
    "MAX_BANS",
    "MAX_CHANNEL_LENGTH",
    "MAX_KEY_LENGTH",
    "MAX_KICK_LENGTH",
    "MAX_MESSAGE_TARGETS",
    "MAX_MODES_WITH_PARAMS",
    "MAX_MONITOR_TARGETS",
    "MAX_NICK_LENGTH",
    "MAX_TOPIC_LENGTH",
    "MAX_USERHOST_NICKS",
    "STATUSMSG_PREFIXES",
]
