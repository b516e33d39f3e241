"""Labeled responses with other people around: only the labeled client's own copies are labeled — both backends."""

from __future__ import annotations

from tests.helpers import IrcClient, RunningServer


def _capable(server: RunningServer, nick: str, *caps: str) -> IrcClient:
    client = IrcClient(server.address)
    client.send(f"CAP REQ :{' '.join(caps)}")
    client.expect("CAP")
    client.send("CAP END")
    client.register(nick)
    return client


def test_a_labeled_join_and_message_reach_others_unlabeled(server: RunningServer) -> None:
    other = _capable(server, "other", "labeled-response", "batch", "message-tags")
    other.send("JOIN #room")
    other.until("366")
    labeler = _capable(server, "labeler", "labeled-response", "batch", "echo-message", "message-tags")
    labeler.send("@label=j1 JOIN #room")
    start = labeler.expect("BATCH")
    assert start.tags == {"label": "j1"}
    inside = labeler.until("BATCH")
    assert [m.command for m in inside[:-1]] == ["JOIN", "353", "366"]
    seen_join = other.expect("JOIN")
    assert seen_join.source.startswith("labeler!") and "label" not in seen_join.tags and "batch" not in seen_join.tags

    labeler.send("@label=m1 PRIVMSG #room :hello")
    echo = labeler.expect("PRIVMSG")  # one line: the echo, carrying the label itself
    assert echo.tags["label"] == "m1" and echo.params == ("#room", "hello")
    heard = other.expect("PRIVMSG")
    assert heard.params == ("#room", "hello") and "label" not in heard.tags
    assert heard.tags["msgid"] == echo.tags["msgid"]

    # Unlabeled again afterwards: nothing is left captured or cached.
    labeler.send("PRIVMSG #room :plain again")
    assert "label" not in labeler.expect("PRIVMSG").tags
    other.send("PRIVMSG #room :back at you")
    back = labeler.expect("PRIVMSG")
    assert back.params == ("#room", "back at you") and "label" not in back.tags

    labeler.send("@label=p1 PART #room :bye")
    part = labeler.expect("PART")
    assert part.tags["label"] == "p1"
    assert "label" not in other.expect("PART").tags


def test_a_labeled_message_to_oneself_labels_only_the_echo(server: RunningServer) -> None:
    me = _capable(server, "me", "labeled-response", "batch", "echo-message")
    me.send("@label=s1 PRIVMSG me :note to self")
    lines = [me.expect("PRIVMSG"), me.expect("PRIVMSG")]
    assert sorted("label" in line.tags for line in lines) == [False, True]
