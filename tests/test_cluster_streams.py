"""Lossless delivery on the hub's side: stream positions, gaps, duplicates, the outbox, the epoch.

The fake link of ``test_cluster_node`` records commands; the test answers them as Redis
would and pushes stream events as ``<previous id> <id> <event>`` on shard channels, as the
publish script does. No sockets, no threads.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from chatd.cluster import streams as streams_module
from chatd.cluster.link import LINK_DOWN, Reply
from chatd.cluster.streams import PUBLISH_SCRIPT, channel_keys
from tests.test_cluster_node import World

X = channel_keys("chatd", "#x")


def event(n: int, sender: str = "there") -> bytes:
    line = f":bob!~u@10.0.0.2 PRIVMSG #x :m{n}"
    return json.dumps({"t": "msg", "c": "#x", "line": line, "plain": f"bob: m{n}", "id": f"id{n}", "at": 1.0,
                       "n": sender}).encode()  # fmt: skip


def push(world: World, prev: str, this: str, payload: bytes) -> None:
    world.node.link_messages([(X.live.encode(), f"{prev} {this}\n".encode() + payload)])


def pending(world: World, name: str) -> list[tuple[tuple[Any, ...], Any]]:
    """Unanswered commands named ``name`` (removed from the record: the test answers them)."""
    found = [entry for entry in world.link.sent if entry[0][0] == name]
    world.link.sent = [entry for entry in world.link.sent if entry not in found]
    return found


def epoch_check(world: World) -> tuple[tuple[Any, ...], Any]:
    """The node's ``SET {chatd}:epoch <new> NX GET`` after a (re)connection."""
    found = [entry for entry in world.link.sent if entry[0][:2] == ("SET", world.node.streams.epoch_key)]
    world.link.sent = [entry for entry in world.link.sent if entry not in found]
    (check,) = found
    return check


def same_epoch(world: World) -> None:
    answer(epoch_check(world), world.node.streams.epoch)


def answer(entry: tuple[tuple[Any, ...], Any], reply: Reply) -> None:
    callback = entry[1]
    assert callback is not None
    callback(reply)


def texts(seen: Any) -> list[str]:
    return [message.params[1] for message in seen.messages() if message.command == "PRIVMSG"]


def joined_world() -> tuple[World, Any]:
    """alice here in #x; our position in #x's stream is 5-0."""
    world = World()
    alice, seen = world.connect("alice")
    world.hub.receive(alice, [b"JOIN #x"])
    assert X.live in world.link.subscribed
    (position,) = pending(world, "XREVRANGE")
    answer(position, [(b"5-0", {b"e": b"old"})])
    seen.messages()
    return world, seen


def test_a_join_takes_the_stream_position_before_the_join_goes_out() -> None:
    world = World()
    alice, _ = world.connect("alice")
    world.link.sent.clear()
    world.hub.receive(alice, [b"JOIN #x"])
    names = [args[0] for args, _ in world.link.sent]
    assert names.index("XREVRANGE") < names.index("SPUBLISH")
    assert X.live in world.link.subscribed


def test_events_in_order_are_delivered_once_and_duplicates_dropped() -> None:
    world, seen = joined_world()
    push(world, "5-0", "6-0", event(1))
    push(world, "6-0", "7-0", event(2))
    push(world, "6-0", "7-0", event(2))  # the same entry again
    assert texts(seen) == ["m1", "m2"]


def test_a_gap_is_read_from_the_stream_and_what_came_meanwhile_waits() -> None:
    world, seen = joined_world()
    push(world, "5-0", "6-0", event(1))
    push(world, "8-0", "9-0", event(4))  # 7-0 and 8-0 went by unseen
    assert texts(seen) == ["m1"]
    (read,) = pending(world, "XRANGE")
    assert read[0][1:3] == (X.stream, "(6-0")
    push(world, "9-0", "10-0", event(5))  # still held: the read is out
    answer(read, [(b"7-0", {b"e": event(2)}), (b"8-0", {b"e": event(3)}), (b"9-0", {b"e": event(4)})])
    assert texts(seen) == ["m2", "m3", "m4", "m5"]


def test_entries_trimmed_before_they_were_read_are_said_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    """A node away longer than a stream keeps finds the entries after its position gone: each entry
    names the one before it ('p'), so the read shows the hole; what is left is still delivered."""
    world, seen = joined_world()
    push(world, "5-0", "6-0", event(1))
    push(world, "40-0", "41-0", event(9))  # 7-0 … 40-0 went by unseen
    (read,) = pending(world, "XRANGE")
    trimmed = [(b"30-0", {b"e": event(7), b"p": b"20-0"}), (b"40-0", {b"e": event(8), b"p": b"30-0"})]
    answer(read, trimmed)  # 7-0 … 20-0 were trimmed away by MAXLEN meanwhile
    assert texts(seen) == ["m1", "m7", "m8", "m9"]
    assert world.node.streams.trimmed == 1
    assert [r for r in caplog.records if "trimmed from Redis" in r.getMessage() and X.stream in r.getMessage()]


def test_a_read_that_follows_on_from_the_position_reports_no_hole() -> None:
    world, seen = joined_world()
    push(world, "5-0", "6-0", event(1))
    push(world, "8-0", "9-0", event(4))
    (read,) = pending(world, "XRANGE")
    answer(read, [(b"7-0", {b"e": event(2), b"p": b"6-0"}), (b"8-0", {b"e": event(3), b"p": b"7-0"})])
    assert texts(seen) == ["m1", "m2", "m3", "m4"]
    assert world.node.streams.trimmed == 0


def test_the_same_msgid_published_twice_is_delivered_once() -> None:
    world, seen = joined_world()
    push(world, "5-0", "6-0", event(1))
    push(world, "6-0", "7-0", event(1))  # a publish sent again after its answer was lost
    assert texts(seen) == ["m1"]


def test_own_events_move_the_position_but_are_not_delivered_again() -> None:
    world, seen = joined_world()
    push(world, "5-0", "6-0", event(1, sender="here"))
    push(world, "6-0", "7-0", event(2))
    assert texts(seen) == ["m2"]
    assert not pending(world, "XRANGE")


def test_after_a_drop_the_stream_is_read_on_from_the_last_id_before_live_events() -> None:
    world, seen = joined_world()
    push(world, "5-0", "6-0", event(1))
    world.node.link_down()
    world.node.link_up()
    push(world, "7-0", "8-0", event(3))  # live, before the epoch is checked: held
    same_epoch(world)
    (read,) = pending(world, "XRANGE")
    assert read[0][2] == "(6-0"
    answer(read, [(b"7-0", {b"e": event(2)}), (b"8-0", {b"e": event(3)})])
    assert texts(seen) == ["m1", "m2", "m3"]


def test_a_new_epoch_reads_every_stream_from_its_start() -> None:
    world, seen = joined_world()
    push(world, "5-0", "6-0", event(1))
    world.node.link_down()
    world.node.link_up()
    answer(epoch_check(world), b"another-dataset")
    (read,) = pending(world, "XRANGE")
    assert read[0][2] == "(0-0"
    answer(read, [(b"1-0", {b"e": event(2)})])  # written since Redis came back empty
    assert texts(seen) == ["m1", "m2"]


def local_messages(world: World) -> list[str]:
    return [
        json.loads(event)["plain"]
        for args, _ in world.link.sent
        if args[:2] == ("EVAL", PUBLISH_SCRIPT)
        for event in args[7:]
    ]


def test_what_local_users_send_while_redis_is_away_goes_out_in_order_when_it_is_back() -> None:
    world, _ = joined_world()
    alice = world.hub.find_client("alice")
    assert alice is not None
    world.node.link_down()
    world.link.sent.clear()
    world.hub.receive(alice, [b"PRIVMSG #x :one", b"PRIVMSG #x :two"])
    assert local_messages(world) == []
    world.node.link_up()
    world.hub.receive(alice, [b"PRIVMSG #x :three"])
    same_epoch(world)
    assert local_messages(world) == ["alice: one", "alice: two", "alice: three"]


def test_a_publish_whose_answer_was_lost_goes_out_again_after_the_reconnect() -> None:
    world, _ = joined_world()
    alice = world.hub.find_client("alice")
    assert alice is not None
    world.link.sent.clear()
    world.hub.receive(alice, [b"PRIVMSG #x :one"])
    (sent,) = [entry for entry in world.link.sent if entry[0][:2] == ("EVAL", PUBLISH_SCRIPT)]
    world.link.sent.clear()
    answer(sent, LINK_DOWN)
    world.node.link_down()
    world.node.link_up()
    same_epoch(world)
    assert local_messages(world) == ["alice: one"]


def test_the_outbox_is_bounded_in_count_and_age(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams_module, "OUTBOX_LIMIT", 3)
    world, _ = joined_world()
    alice = world.hub.find_client("alice")
    assert alice is not None
    world.node.link_down()
    world.link.sent.clear()
    world.hub.receive(alice, [f"PRIVMSG #x :{n}".encode() for n in range(5)])
    world.node.link_up()
    same_epoch(world)
    assert local_messages(world) == ["alice: 2", "alice: 3", "alice: 4"]  # the newest three
    for entry in pending(world, "EVAL"):
        answer(entry, b"9-0")

    world.node.link_down()
    world.link.sent.clear()
    world.hub.receive(alice, [b"PRIVMSG #x :stale"])
    world.now += streams_module.OUTBOX_MAX_AGE_S + 1
    world.node.link_up()
    same_epoch(world)
    assert local_messages(world) == []


def test_a_node_reads_a_channels_stream_only_while_it_has_local_members_there() -> None:
    world, _ = joined_world()
    alice = world.hub.find_client("alice")
    assert alice is not None
    world.hub.receive(alice, [b"PART #x"])
    world.node.link_tick()
    assert X.live not in world.link.subscribed
    assert world.node.own_keys.live in world.link.subscribed  # our own stream stays


def test_what_one_turn_publishes_goes_out_as_one_batch_and_a_batch_push_delivers_each_event() -> None:
    world, seen = joined_world()
    deferred: list[Any] = []
    world.node.streams.defer = deferred.append
    alice = world.hub.find_client("alice")
    assert alice is not None
    world.link.sent.clear()
    world.hub.receive(alice, [b"PRIVMSG #x :one", b"PRIVMSG #x :two", b"PRIVMSG #x :three"])
    assert local_messages(world) == []  # nothing until the turn is over
    (end_of_turn,) = deferred
    end_of_turn()
    publishes = [args for args, _ in world.link.sent if args[:2] == ("EVAL", PUBLISH_SCRIPT)]
    assert len(publishes) == 1 and local_messages(world) == ["alice: one", "alice: two", "alice: three"]

    push(world, "5-0", "8-0", event(1) + b"\n" + event(2) + b"\n" + event(3))
    push(world, "8-0", "9-0", event(4))
    assert texts(seen) == ["m1", "m2", "m3", "m4"]


def test_once_the_subscription_is_confirmed_the_stream_is_read_from_the_joins_position() -> None:
    world, seen = joined_world()  # our position: 5-0; 6-0 goes by before the SSUBSCRIBE takes effect
    assert not pending(world, "XRANGE")
    world.node.link_messages([(X.live.encode(), b"")])  # Redis confirms the subscription
    (read,) = pending(world, "XRANGE")
    assert read[0][2] == "(5-0"
    answer(read, [(b"6-0", {b"e": event(1)}), (b"7-0", {b"e": event(2)})])
    assert texts(seen) == ["m1", "m2"]


def test_what_was_sent_after_the_join_but_before_our_position_was_taken_is_read_too() -> None:
    world = World()  # the hub's wall clock says 1.7e9 s: the join is at 1700000000000 ms
    alice, _ = world.connect("alice")
    world.hub.receive(alice, [b"JOIN #x"])
    (position,) = pending(world, "XREVRANGE")
    answer(position, [(b"1700000000500-0", {b"e": event(1)})])  # our link got there late
    world.node.link_messages([(X.live.encode(), b"")])
    (read,) = pending(world, "XRANGE")
    assert read[0][2] == "(1700000000000-0"
