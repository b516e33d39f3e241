"""What ISUPPORT advertises is what the handlers enforce (AWAYLEN, KICKLEN, TOPICLEN, MODES) — both backends."""

from __future__ import annotations

from tests.helpers import IrcClient, RunningServer


def _isupport(client: IrcClient) -> dict[str, str]:
    client.send("VERSION")
    tokens: dict[str, str] = {}
    for message in client.sync():
        if message.command == "005":
            for token in message.params[1:-1]:
                key, _, value = token.partition("=")
                tokens[key] = value
    return tokens


def test_advertised_lengths_are_the_enforced_ones(server: RunningServer) -> None:
    op, other = server.client("op"), server.client("other")
    tokens = _isupport(op)
    away, kick, topic = int(tokens["AWAYLEN"]), int(tokens["KICKLEN"]), int(tokens["TOPICLEN"])
    assert tokens["MODES"] == "4" and tokens["CHATHISTORY"] == "100"
    op.send("JOIN #limits")
    op.until("366")
    other.send("JOIN #limits")
    other.until("366")
    op.send(f"AWAY :{'a' * 450}")
    op.expect("306")
    other.send("WHOIS op")
    assert len(next(m for m in other.until("318") if m.command == "301").params[-1]) == away
    op.send(f"TOPIC #limits :{'t' * 450}")
    assert len(other.expect("TOPIC").params[-1]) == topic
    op.send(f"KICK #limits other :{'k' * 450}")
    assert len(other.expect("KICK").params[-1]) == kick
