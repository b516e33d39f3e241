"""Sans-I/O IRC protocol: messages, framing, case mapping and numerics.

Nothing in this package touches a socket, a thread or a clock.
"""

from chatd.protocol.casemap import irc_lower, is_channel_name, is_valid_nick
from chatd.protocol.framing import OVERLONG, LineReader, decode_line
from chatd.protocol.message import Message, format_message, parse

__all__ = [
    "OVERLONG",
    "LineReader",
    "Message",
    "decode_line",
    "format_message",
    "irc_lower",
    "is_channel_name",
    "is_valid_nick",
    "parse",
]
