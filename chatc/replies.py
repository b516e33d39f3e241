"""Readable text for the numeric replies a user asks for, instead of raw parameters."""

from __future__ import annotations

import time

from chatd.protocol import numerics as n


def _idle(seconds: str) -> str:
    if not seconds.isdigit():
        return seconds
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _nick(source: str) -> str:
    return source.split("!", 1)[0]


def describe_reply(code: str, params: tuple[str, ...]) -> str | None:
    """Readable text for the replies users ask for (WHOIS, WHO, LIST, AWAY); None means show the raw text.

    ``params`` excludes our own nick. Missing parameters give None rather than a half sentence.
    """

    def get(index: int) -> str:
        return params[index] if index < len(params) else ""

    if code == n.RPL_WHOISUSER and len(params) >= 5:
        return f"{get(0)} is {get(1)}@{get(2)} ({get(4)})"
    if code == n.RPL_WHOISSERVER and len(params) >= 3:
        return f"{get(0)} is connected to {get(1)} ({get(2)})"
    if code == n.RPL_WHOISCHANNELS and len(params) >= 2:
        return f"{get(0)} is on {get(1)}"
    if code == n.RPL_WHOISIDLE and len(params) >= 3:
        signon = time.strftime("%Y-%m-%d %H:%M", time.localtime(int(get(2)))) if get(2).isdigit() else get(2)
        return f"{get(0)} has been idle {_idle(get(1))}, signed on {signon}"
    if code == n.RPL_AWAY and len(params) >= 2:
        return f"{get(0)} is away: {get(1)}"
    if code == n.RPL_WHOREPLY and len(params) >= 7:
        realname = get(6).split(" ", 1)[1] if " " in get(6) else get(6)
        return f"{get(0)} {get(4)} {get(5)} {get(1)}@{get(2)} ({realname})"
    if code == n.RPL_WHOWASUSER and len(params) >= 5:
        return f"{get(0)} was {get(1)}@{get(2)} ({get(4)})"
    if code == n.RPL_INVITING and len(params) >= 2:
        return f"Inviting {get(0)} to {get(1)}"
    if code == n.RPL_BANLIST and len(params) >= 2:
        return f"{get(0)}: ban {get(1)}" + (f" set by {_nick(get(2))}" if get(2) else "")
    if code == n.RPL_LIST and len(params) >= 2:
        return f"{get(0)} ({get(1)} users) {get(2)}".rstrip()
    return None
