"""WHOX (``WHO <mask> %<fields>[,<token>]``, 354) — on the hub harness; plain WHO keeps its 352s."""

from __future__ import annotations

from chatd.protocol import numerics as n
from tests.harness import HubClient, HubHarness


def _pair() -> tuple[HubHarness, HubClient, HubClient]:
    hub = HubHarness()
    asker = hub.client("asker")
    target = hub.client("coolNick")
    target.send("JOIN #chan")
    target.until(n.RPL_ENDOFNAMES)
    return hub, asker, target


def test_whox_is_advertised() -> None:
    hub = HubHarness()
    welcome = hub.client().register("someone")
    tokens = {token for m in welcome if m.command == n.RPL_ISUPPORT for token in m.params[1:-1]}
    assert "WHOX" in tokens


def test_every_field_comes_in_whox_order_whatever_the_asked_order() -> None:
    _, asker, _ = _pair()
    for fields in ("tcuihsnfdlaor", "roaldfnshiuct"):
        asker.send(f"WHO coolNick %{fields},123")
        reply, end = asker.until(n.RPL_ENDOFWHO)
        assert reply.command == n.RPL_WHOSPCRPL
        assert reply.params == (
            "asker", "123", "*", "~u", "127.0.0.1", "127.0.0.1", "chatd", "coolNick", "H", "0", "0", "0", "n/a",
            "Real coolNick",
        )  # fmt: skip
        assert end.params[1] == "coolNick"


def test_one_field_at_a_time_and_the_token() -> None:
    _, asker, _ = _pair()
    asker.send("WHO coolNick %n")
    reply, end = asker.until(n.RPL_ENDOFWHO)
    assert reply.params == ("asker", "coolNick") and end.command == n.RPL_ENDOFWHO
    asker.send("WHO coolNick %tn,321")
    assert asker.expect(n.RPL_WHOSPCRPL).params == ("asker", "321", "coolNick")
    asker.send("WHO coolNick %na")
    assert asker.expect(n.RPL_WHOSPCRPL).params == ("asker", "coolNick", "0")  # no accounts yet: 0 for all
    asker.send("WHO coolNick %tn,abcd")  # not a token (1-3 digits): 0
    assert asker.expect(n.RPL_WHOSPCRPL).params == ("asker", "0", "coolNick")


def test_whox_shows_channel_flags_away_and_idle() -> None:
    hub, asker, target = _pair()
    asker.send("JOIN #chan")
    asker.until(n.RPL_ENDOFNAMES)
    target.send("AWAY :lunch")
    target.expect(n.RPL_NOWAWAY)
    hub.clock.advance_to(hub.clock.now + 42)
    asker.send("WHO #chan %cnfl")
    replies = asker.until(n.RPL_ENDOFWHO)
    by_nick = {m.params[2]: m.params for m in replies if m.command == n.RPL_WHOSPCRPL}
    assert by_nick["coolNick"] == ("asker", "#chan", "coolNick", "G@", "42")
    assert by_nick["asker"][3] == "H"


def test_whox_lists_whom_plain_who_lists() -> None:
    hub = HubHarness()
    asker = hub.client("asker")
    hidden = hub.client("hidden")
    hidden.send("MODE hidden +i")
    hidden.expect("MODE")
    hub.client("shown")
    asker.send("WHO * %n")
    nicks = {m.params[1] for m in asker.until(n.RPL_ENDOFWHO) if m.command == n.RPL_WHOSPCRPL}
    assert nicks == {"asker", "shown"}
    asker.send("WHO *")
    classic = asker.until(n.RPL_ENDOFWHO)
    assert {m.params[5] for m in classic if m.command == n.RPL_WHOREPLY} == {"asker", "shown"}
    asker.send("WHO hidden %n")  # an exact nick lists them, +i or not, as plain WHO does
    assert asker.expect(n.RPL_WHOSPCRPL).params == ("asker", "hidden")
