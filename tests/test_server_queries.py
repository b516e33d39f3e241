"""WHOWAS, TIME, INFO, ADMIN, HELP, VERSION, USERHOST, ISON, LUSERS, MOTD — on the hub harness."""

from __future__ import annotations

import re

from chatd.protocol import numerics as n
from tests.harness import HubClient, HubHarness


def test_whowas_remembers_quits_and_nick_changes() -> None:
    hub = HubHarness()
    asker = hub.client("asker")
    leaver = hub.client("leaver")
    leaver.send("NICK renamed")
    leaver.expect("NICK")
    leaver.send("QUIT :bye")
    leaver.wait_closed()
    asker.send("WHOWAS leaver")
    replies = asker.until(n.RPL_ENDOFWHOWAS)
    assert replies[0].command == n.RPL_WHOWASUSER and replies[0].params[1:4] == ("leaver", "~u", "127.0.0.1")
    assert replies[1].command == n.RPL_WHOISSERVER
    asker.send("WHOWAS renamed 1")
    assert asker.expect(n.RPL_WHOWASUSER).params[1] == "renamed"
    asker.send("WHOWAS neverwas")
    assert asker.expect(n.ERR_WASNOSUCHNICK).params[1] == "neverwas"
    assert asker.expect(n.RPL_ENDOFWHOWAS)
    asker.send("WHOWAS")
    assert asker.expect(n.ERR_NONICKNAMEGIVEN)


def test_time_info_admin_version() -> None:
    hub = HubHarness()
    client = hub.client("curious")
    client.send("TIME")
    time_reply = client.expect(n.RPL_TIME)
    assert time_reply.params[1] == "chatd" and re.match(r"\d{4}-\d\d-\d\dT", time_reply.params[2])
    client.send("INFO")
    info = client.until(n.RPL_ENDOFINFO)
    assert [m.command for m in info[:-1]] == [n.RPL_INFO] * (len(info) - 1) and len(info) > 1
    client.send("ADMIN")
    admin = client.until(n.RPL_ADMINEMAIL)
    assert [m.command for m in admin] == [n.RPL_ADMINME, n.RPL_ADMINLOC1, n.RPL_ADMINLOC2, n.RPL_ADMINEMAIL]
    client.send("VERSION")
    assert client.expect(n.RPL_VERSION).params[1].startswith("chatd-")
    assert "CASEMAPPING=rfc1459" in client.expect(n.RPL_ISUPPORT).params


def test_help() -> None:
    hub = HubHarness()
    client = hub.client("helpme")
    client.send("HELP")
    listing = client.until(n.RPL_ENDOFHELP)
    assert listing[0].command == n.RPL_HELPSTART and "PRIVMSG" in " ".join(m.params[2] for m in listing[1:-1])
    client.send("HELPOP join")
    join_help = client.until(n.RPL_ENDOFHELP)
    assert join_help[0].params[1:] == ("join", "JOIN <channel>[,<channel>] [<key>[,<key>]] | JOIN 0")
    client.send("HELP nosuchthing")
    assert client.expect(n.ERR_HELPNOTFOUND).params[1] == "nosuchthing"


def test_userhost_ison_lusers_motd() -> None:
    hub = HubHarness()
    a, b = hub.client("a"), hub.client("b")
    b.send("AWAY :out")
    b.expect(n.RPL_NOWAWAY)
    a.send("USERHOST a b ghost")
    assert a.expect(n.RPL_USERHOST).params[1] == "a=+~u@127.0.0.1 b=-~u@127.0.0.1"
    a.send("ISON a ghost B")
    assert a.expect(n.RPL_ISON).params[1] == "a b"
    a.send("LUSERS")
    assert a.expect(n.RPL_LUSERCLIENT).params[1].startswith("There are 2 users")
    a.send("MOTD")
    assert a.expect(n.ERR_NOMOTD)


def test_links_and_invisible_count() -> None:
    hub = HubHarness()
    client = hub.client("linker")
    client.send("LINKS")
    assert client.expect_any().command == n.RPL_ENDOFLINKS
    hidden = hub.client("hidden")
    hidden.send("MODE hidden +i")
    hidden.expect("MODE")
    client.send("LUSERS")
    assert client.expect(n.RPL_LUSERCLIENT).params[1] == "There are 1 users and 1 invisible on 1 servers"


def _who_nicks(client: HubClient, mask: str) -> list[str]:
    client.send(f"WHO {mask}")
    return [m.params[5] for m in client.until(n.RPL_ENDOFWHO) if m.command == n.RPL_WHOREPLY]


def test_who_hides_invisible_users_only_from_masks_of_strangers() -> None:
    hub = HubHarness()
    """irctest WhoInvisibleTestCase: a +i user is listed by nick, and by mask once a channel is shared."""
    evan = hub.client("evan")
    evan.send("MODE evan +i")
    evan.expect("MODE")
    shivaram = hub.client("shivaram")
    assert _who_nicks(shivaram, "eva*") == []
    assert _who_nicks(shivaram, "0") == ["shivaram"]
    assert _who_nicks(shivaram, "EVAN") == ["evan"]  # an exact nick is not a mask
    assert _who_nicks(evan, "eva*") == ["evan"]  # oneself is always visible
    evan.send("JOIN #test")
    evan.expect(n.RPL_ENDOFNAMES)
    assert _who_nicks(shivaram, "#test") == []  # a non-member of the channel does not see its +i members
    shivaram.send("JOIN #test")
    shivaram.expect(n.RPL_ENDOFNAMES)
    assert _who_nicks(shivaram, "eva*") == ["evan"]
    assert sorted(_who_nicks(shivaram, "#test")) == ["evan", "shivaram"]
    assert _who_nicks(shivaram, "nobody") == []
