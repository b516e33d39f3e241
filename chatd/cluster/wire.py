"""The wire format between nodes: one compact JSON object per pub/sub message.

Invariants:
- Every event is a JSON object with ``t`` (its kind) and ``n`` (the sending node's id),
  and ``n`` is the *last* key of what this node publishes: the node recognises its own
  events, which Redis echoes back, by that ending (``own_suffix``) without parsing them.
- Field names are short and stable: they are the protocol between nodes of different
  versions during a rolling restart. Only this module spells them for users, relayed
  messages and channel state; the event handlers read the rest of each event by name.
"""

from __future__ import annotations

import functools
import json
import json.encoder
from typing import Any

from chatd.core.channel import Ban, ChannelState
from chatd.core.client import Client
from chatd.core.event import Delivery
from chatd.core.ports import ChannelRegistration

encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
"""Built once: ``json.dumps`` with options makes a new encoder for every message."""


class MalformedEvent(ValueError):
    """A pub/sub payload that is not one of our events (logged and skipped)."""


def own_suffix(node_id: str) -> bytes:
    """How every event ``node_id`` publishes ends (see ``encode_event``)."""
    return encode_json({"n": node_id})[1:].encode()


def encode_event(payload: dict[str, Any], node_id: str) -> str:
    """``payload`` with the sender's id put last, as text to publish."""
    payload.pop("n", None)
    payload["n"] = node_id
    return encode_json(payload)


_scan_json = json.JSONDecoder().scan_once
"""The C scanner itself: every node decodes every event of its channels, and ``json.loads``
spends half its time around it (encoding detection, whitespace, the end check)."""


def decode_event(payload: bytes) -> tuple[str, str, dict[str, Any]]:
    """``(sender, kind, event)`` of a published payload; raises ``MalformedEvent``."""
    try:
        text = payload.decode("utf-8", "surrogatepass")
        event, end = _scan_json(text, 0)
        if end != len(text) and text[end:].strip():
            raise ValueError("not one JSON value")
        return event["n"], event["t"], event
    except (ValueError, KeyError, TypeError, StopIteration) as error:
        raise MalformedEvent(repr(payload[:200])) from error


def user_info(client: Client) -> dict[str, Any]:
    """What other nodes keep of a local user (its ``user`` event, and its entry in a burst)."""
    return {
        "u": client.uid,
        "nick": client.nick,
        "user": client.user,
        "host": client.host,
        "real": client.realname,
        "away": client.away,
        "modes": "".join(sorted(client.user_modes)),
        "signon": client.signon,
        "acct": client.account,
    }


_json_string = json.encoder.encode_basestring
"""The C quoting of one JSON string (``ensure_ascii`` off, as ``encode_json``)."""


def encode_message(kind_and_target: str, event: Delivery, node_id: str) -> str:
    """What ``encode_event`` makes of ``{**head, **event_fields(event)}``, written directly:
    every message of the network is encoded once, and building the dict and walking it
    cost twice the text. ``kind_and_target`` is the head's JSON members (``"t":"msg","c":…``)."""
    parts = [
        "{", kind_and_target, ',"line":', _json_string(event.line),
        ',"plain":', "null" if event.plain_line is None else _json_string(event.plain_line),
        ',"id":', _json_string(event.msgid), ',"at":', repr(event.when),
    ]  # fmt: skip
    if event.client_tags:
        parts += [',"tags":', encode_json(event.client_tags)]
    if event.tags_only:
        parts.append(',"to":1')
    if event.account:
        parts += [',"acct":', _json_string(event.account)]
    parts += [',"n":', _json_string(node_id), "}"]
    return "".join(parts)


@functools.lru_cache(maxsize=4096)
def message_head(kind: str, target_field: str, target: str) -> str:
    """The head members ``encode_message`` starts with: the event kind and its target (made once
    per channel, not per message)."""
    return f'"t":{_json_string(kind)},{_json_string(target_field)}:{_json_string(target)}'


def event_fields(event: Delivery) -> dict[str, Any]:
    """What a relayed message carries to the other nodes, so each encodes it as its own."""
    fields: dict[str, Any] = {
        "line": event.line,
        "plain": event.plain_line,
        "id": event.msgid,
        "at": event.when,
    }
    if event.client_tags:
        fields["tags"] = event.client_tags
    if event.tags_only:
        fields["to"] = 1
    if event.account:
        fields["acct"] = event.account  # the account tag, for the other nodes' account-tag clients
    return fields


def relayed_event(fields: dict[str, Any]) -> Delivery:
    """The message another node sent, with its own msgid and time (``event_fields`` read back)."""
    return Delivery(
        fields["line"],
        fields["plain"],
        fields["id"],
        fields["at"],
        fields.get("tags"),
        tags_only=bool(fields.get("to")),
        account=fields.get("acct"),
    )


def state_fields(state: ChannelState) -> dict[str, Any]:
    """A channel's state as it travels with a JOIN and in a burst (the name travels beside it)."""
    return {
        "created": state.created,
        "topic": state.topic,
        "by": state.topic_by,
        "at": state.topic_at,
        "modes": state.modes,
        "key": state.mode_key,
        "limit": state.limit,
        "bans": _entries(state.bans),
        "excepts": _entries(state.excepts),
        "invexes": _entries(state.invexes),
    }


def _entries(kept: tuple[Ban, ...]) -> list[list[Any]]:
    return [[entry.mask, entry.set_by, entry.set_at] for entry in kept]


def _bans(entries: list[list[Any]]) -> tuple[Ban, ...]:
    return tuple(Ban(mask, by, at) for mask, by, at in entries)


def channel_state(name: str, fields: dict[str, Any]) -> ChannelState:
    """``state_fields`` read back."""
    return ChannelState(
        name,
        fields["created"],
        fields["topic"],
        fields["by"],
        fields["at"],
        fields["modes"],
        fields["key"],
        fields["limit"],
        _bans(fields["bans"]),
        _bans(fields.get("excepts", ())),  # absent from a node of an earlier version
        _bans(fields.get("invexes", ())),
    )


def registration_fields(registration: ChannelRegistration | None) -> dict[str, Any] | None:
    """A channel's ChanServ registration as it travels (None: not registered, or no longer)."""
    if registration is None:
        return None
    return {
        "founder": registration.founder,
        "at": registration.registered_at,
        "access": [list(entry) for entry in registration.access],
        "tlock": registration.topic_lock,
    }


def channel_registration(name: str, fields: dict[str, Any] | None) -> ChannelRegistration | None:
    """``registration_fields`` read back."""
    if fields is None:
        return None
    return ChannelRegistration(
        name,
        fields["founder"],
        fields["at"],
        tuple((account, mode) for account, mode in fields["access"]),
        bool(fields["tlock"]),
    )


def source_of(line: str) -> str:
    """The prefix of an IRC line (``nick!user@host``), or "" when it has none."""
    return line[1:].split(" ", 1)[0] if line.startswith(":") else ""
