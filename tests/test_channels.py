"""JOIN, PART, TOPIC, NAMES, LIST, MODE, KICK, NICK changes — on the hub harness.

The first test, a JOIN seen by another member, also runs over both backends as the
smoke test of the socket wiring.
"""

from __future__ import annotations

from tests.harness import HubHarness
from tests.helpers import RunningServer


def test_join_sends_join_names_and_announces_to_members(server: RunningServer) -> None:
    alice = server.client("alice")
    alice.send("JOIN #room")
    join = alice.expect("JOIN")
    assert join.source == "alice!~u@127.0.0.1" and join.params == ("#room",)
    names = alice.expect("353")
    assert names.params[1:] == ("=", "#room", "@alice")
    assert alice.expect("366").params[1] == "#room"
    bob = server.client("bob")
    bob.send("JOIN #ROOM")
    assert bob.expect("353").params[3] == "@alice bob"
    assert alice.expect("JOIN").source.startswith("bob!")


def test_join_comma_list_invalid_name_and_join_zero() -> None:
    hub = HubHarness()
    alice = hub.client("alice")
    alice.send("JOIN #a,#b,nochan")
    assert alice.expect("JOIN").params == ("#a",)
    assert alice.expect("JOIN").params == ("#b",)
    assert alice.expect("403").params[1] == "nochan"
    alice.send("JOIN 0")
    parts = {alice.expect("PART").params[0], alice.expect("PART").params[0]}
    assert parts == {"#a", "#b"}
    alice.send("LIST")
    listing = alice.until("323")
    assert [m for m in listing if m.command == "322"] == []


def test_part_with_reason_and_errors() -> None:
    hub = HubHarness()
    alice, bob = hub.client("alice"), hub.client("bob")
    for client in (alice, bob):
        client.send("JOIN #p")
        client.expect("366")
    bob.send("PART #p :see you later")
    part = alice.expect("PART")
    assert part.source.startswith("bob!") and part.params == ("#p", "see you later")
    assert bob.expect("PART").params == ("#p", "see you later")
    bob.send("PART #p")
    assert bob.expect("442").params[1] == "#p"
    bob.send("PART #nowhere")
    assert bob.expect("403").params[1] == "#nowhere"


def test_topic_set_query_and_protection() -> None:
    hub = HubHarness()
    op, member = hub.client("op"), hub.client("member")
    op.send("JOIN #t")
    op.expect("366")
    op.send("TOPIC #t")
    assert op.expect("331").params[1] == "#t"
    member.send("JOIN #t")
    member.expect("366")
    member.send("TOPIC #t :mine now")
    assert member.expect("482").params[1] == "#t"
    op.send("TOPIC #t :Welcome all")
    assert member.expect("TOPIC").params == ("#t", "Welcome all")
    late = hub.client("late")
    late.send("JOIN #t")
    assert late.expect("332").params[1:] == ("#t", "Welcome all")
    who_time = late.expect("333")
    assert who_time.params[2].startswith("op!") and int(who_time.params[3]) > 0
    op.expect("TOPIC")
    op.send("MODE #t -t")
    member.expect("MODE")
    member.send("TOPIC #t :anyone may")
    assert op.expect("TOPIC").params[1] == "anyone may"


def test_names_and_list() -> None:
    hub = HubHarness()
    a, b = hub.client("a"), hub.client("b")
    a.send("JOIN #one")
    a.expect("366")
    a.send("TOPIC #one :first")
    a.expect("TOPIC")
    b.send("JOIN #one,#two")
    b.until("366")
    b.until("366")
    b.send("NAMES #one")
    names = b.until("366")
    assert [m.params[3] for m in names if m.command == "353"] == ["@a b"]
    b.send("LIST")
    listing = b.until("323")
    rows = {m.params[1]: (m.params[2], m.params[3]) for m in listing if m.command == "322"}
    assert rows == {"#one": ("2", "first"), "#two": ("1", "")}
    assert listing[0].command == "321"


def test_mode_query_and_operator_changes() -> None:
    hub = HubHarness()
    op, user = hub.client("op"), hub.client("user")
    op.send("JOIN #m")
    op.expect("366")
    user.send("JOIN #m")
    user.expect("366")
    user.send("MODE #m")
    assert user.expect("324").params[1:] == ("#m", "+nt")
    user.send("MODE #m +o user")
    assert user.expect("482")
    op.send("MODE #m +o-t user")
    change = user.expect("MODE")
    assert change.source.startswith("op!") and change.params == ("#m", "+o-t", "user")
    assert op.expect("MODE").params == ("#m", "+o-t", "user")
    user.send("MODE #m -n")
    assert op.expect("MODE").params == ("#m", "-n")
    op.send("MODE #m +z")
    assert op.expect("472").params[1] == "z"
    op.send("MODE #m +o ghost")
    assert op.expect("401")


def test_kick_by_operator_only() -> None:
    hub = HubHarness()
    op, victim = hub.client("op"), hub.client("victim")
    op.send("JOIN #k")
    op.expect("366")
    victim.send("JOIN #k")
    victim.expect("366")
    victim.send("KICK #k op :coup")
    assert victim.expect("482")
    op.send("KICK #k victim :bye")
    kick = victim.expect("KICK")
    assert kick.params == ("#k", "victim", "bye") and kick.source.startswith("op!")
    assert op.expect("KICK").params[1] == "victim"
    op.send("KICK #k victim")
    assert op.expect("441")
    victim.send("PRIVMSG #k :can I still talk")
    assert victim.expect("404")


def test_nick_change_seen_once_by_everyone_sharing_a_channel() -> None:
    hub = HubHarness()
    a, b, outsider = hub.client("a"), hub.client("b"), hub.client("outsider")
    for client in (a, b):
        client.send("JOIN #x,#y")
        client.until("366")
        client.until("366")
    a.send("NICK alpha")
    assert a.expect("NICK").params == ("alpha",)
    b_sees = [m for m in b.sync() if m.command == "NICK"]
    assert len(b_sees) == 1 and b_sees[0].source.startswith("a!") and b_sees[0].params == ("alpha",)
    assert [m for m in outsider.sync() if m.command == "NICK"] == []
    b.send("NICK Alpha")
    assert b.expect("433")
    a.send("NICK ALPHA")  # a case-only change of one's own nick is allowed
    assert a.expect("NICK").params == ("ALPHA",)
