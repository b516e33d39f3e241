"""The everyday commands of irssi and weechat in chatc: what each sends, what the user sees, and the
client-side /ignore; first against the sans-I/O state, then typed into the UI against a real chatd."""

from __future__ import annotations

import asyncio

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

from chatc.commands import COMMANDS, CommandError, interpret
from chatc.state import ClientState
from chatc.ui import ChatCompleter, ChatUI, render_line
from tests.helpers import IrcClient, RunningServer
from tests.test_chatc_state import joined, registered, texts
from tests.test_chatc_ui import joined as ui_joined
from tests.test_chatc_ui import running_ui, until

NEW_COMMANDS = (
    "kick", "ban", "unban", "kickban", "mode", "op", "deop", "voice", "devoice", "invite", "ignore", "unignore",
    "whowas", "ctcp", "list",
)  # fmt: skip


def in_room() -> ClientState:
    state = joined("#room", "alice @bob")
    state.set_active("#room")
    return state


def sent(text: str) -> list[str]:
    state = joined("#room", "alice @bob")
    state.set_active("#room")
    return interpret(state, text).lines


def test_kick_ban_unban_kickban_send_what_irssi_sends() -> None:
    assert sent("/kick alice") == ["KICK #room alice"]
    assert sent("/kick alice go away") == ["KICK #room alice :go away"]
    assert sent("/kick #other alice bye") == ["KICK #other alice bye"]
    assert sent("/ban alice") == ["MODE #room +b alice!*@*"]  # a bare nick is nick!*@*, as irssi makes it
    assert sent("/ban *!*@bad.host") == ["MODE #room +b *!*@bad.host"]
    assert sent("/ban") == ["MODE #room +b"]  # lists the bans
    assert sent("/unban alice *!*@x a b") == ["MODE #room -bbb alice!*@* *!*@x a!*@*", "MODE #room -b b!*@*"]
    assert sent("/kickban alice spam") == ["MODE #room +b alice!*@*", "KICK #room alice spam"]


def test_mode_op_voice_invite_whowas_list() -> None:
    assert sent("/mode +nt") == ["MODE #room +nt"]
    assert sent("/mode") == ["MODE #room"]
    assert sent("/mode #other +k key") == ["MODE #other +k key"]
    assert sent("/mode me +i") == ["MODE me +i"]
    assert sent("/op alice bob carol dave") == ["MODE #room +ooo alice bob carol", "MODE #room +o dave"]
    assert sent("/deop alice") == ["MODE #room -o alice"]
    assert sent("/voice alice bob") == ["MODE #room +vv alice bob"]
    assert sent("/devoice alice") == ["MODE #room -v alice"]
    assert sent("/invite carol") == ["INVITE carol #room"]
    assert sent("/invite carol #else") == ["INVITE carol #else"]
    assert sent("/whowas carol") == ["WHOWAS carol"]
    assert sent("/whowas carol 2") == ["WHOWAS carol 2"]
    assert sent("/list") == ["LIST"]
    assert sent("/list chat") == ["LIST *chat*"]  # a bare word matches inside names
    assert sent("/list #ch*") == ["LIST #ch*"]
    state = registered()
    assert interpret(state, "/mode +i").lines == ["MODE me +i"]  # outside a channel: our own modes


def test_commands_needing_arguments_or_a_channel_say_so() -> None:
    for text in ("/kick", "/unban", "/kickban", "/op", "/voice", "/invite", "/whowas", "/ctcp", "/ctcp alice",
                 "/unignore"):  # fmt: skip
        with pytest.raises(CommandError, match="usage"):
            sent(text)
    state = registered()
    for text in ("/kick alice", "/ban alice", "/op alice", "/invite alice", "/mode"):
        with pytest.raises(CommandError):
            interpret(state, text)


def test_ctcp_sends_the_request_and_says_so() -> None:
    state = in_room()
    assert interpret(state, "/ctcp alice version").lines == ["PRIVMSG alice \x01VERSION\x01"]
    assert texts(state, "#room")[-1] == "CTCP VERSION sent to alice"
    assert interpret(state, "/ctcp alice PING").lines == ["PRIVMSG alice :\x01PING 1000000\x01"]
    assert state.buffer("alice") is None
    state.feed(":alice!u@h NOTICE me :\x01VERSION irssi 1.4\x01")
    assert texts(state, "alice")[-1] == "CTCP VERSION reply: irssi 1.4"


def test_replies_to_the_new_commands_are_shown_where_the_user_is_looking() -> None:
    state = in_room()
    state.feed(":srv 314 me carol cu carol.host * :Carol Real")
    state.feed(":srv 369 me carol :End of WHOWAS")
    state.feed(":srv 341 me carol #room")
    state.feed(":srv 367 me #room bad!*@* bob!u@h 1700000000")
    state.feed(":srv 406 me nobody :There was no such nickname")
    assert texts(state, "#room")[-5:] == [
        "carol was cu@carol.host (Carol Real)",
        "carol End of WHOWAS",
        "Inviting carol to #room",
        "#room: ban bad!*@* set by bob",
        "nobody There was no such nickname",
    ]


def test_help_lists_every_command_and_tab_completes_them() -> None:
    state = in_room()
    interpret(state, "/help")
    shown = "\n".join(texts(state, "#room"))
    completer = ChatCompleter(state)
    for name in NEW_COMMANDS:
        assert name in COMMANDS
        assert COMMANDS[name].usage in shown
        typed = "/" + name[:-1]
        found = [c.text for c in completer.get_completions(Document(typed), CompleteEvent(completion_requested=True))]
        assert f"/{name} " in found
    typed = "/kick al"
    found = [c.text for c in completer.get_completions(Document(typed), CompleteEvent(completion_requested=True))]
    assert found == ["alice"]  # and nicks after them


# ---- /msg, /query and our own nick change --------------------------------------------------


def test_msg_shows_an_arrow_line_in_the_current_buffer_and_opens_no_query() -> None:
    state = in_room()
    assert interpret(state, "/msg carol see you").lines == ["PRIVMSG carol :see you"]
    assert state.buffer("carol") is None
    line = state.buffer("#room").lines[-1]
    assert (line.kind, line.nick, line.text, line.own) == ("sent", "carol", "see you", True)
    assert "".join(fragment[1] for fragment in render_line(line)).endswith("-> carol: see you")
    interpret(state, "/notice carol fyi")
    assert "".join(f[1] for f in render_line(state.buffer("#room").lines[-1])).endswith("-> -carol- fyi")
    out = interpret(state, "/query carol hi")
    assert state.buffer("carol") is not None and out.switch_to == "carol"
    state.set_active("#room")
    interpret(state, "/msg carol again")
    assert texts(state, "carol")[-1] == "again"  # an open query takes its messages


def test_our_nick_change_reads_you_are_now_known_as_in_every_buffer_we_are_in() -> None:
    state = in_room()
    state.feed(":carol!u@h PRIVMSG me :hello")
    state.feed(":me!u@h JOIN #other")
    state.feed(":srv 353 me = #other :me dave")
    state.feed(":srv 366 me #other :End")
    state.feed(":me!u@h PART #other")
    state.feed(":me!u@h NICK anna")
    for name in ("", "#room", "carol"):
        buf = state.buffers[name] if name == "" else state.buffer(name)
        assert buf is not None and buf.lines[-1].text == "You are now known as anna", name
    assert texts(state, "#other")[-1] != "You are now known as anna"  # we left it
    state.feed(":alice!u@h NICK alicia")
    assert texts(state, "#room")[-1] == "alice is now known as alicia"


# ---- /ignore --------------------------------------------------------------------------------


def test_ignore_hides_messages_notices_actions_and_ctcp_from_matching_senders() -> None:
    state = in_room()
    interpret(state, "/ignore alice")
    interpret(state, "/ignore *!*@spam.example")
    before = texts(state, "#room")
    for line in (
        ":alice!u@h PRIVMSG #room :hidden",
        ":ALICE!u@h NOTICE #room :hidden",  # case-mapped, as the server matches bans
        ":alice!u@h PRIVMSG #room :\x01ACTION hides\x01",
        ":alice!u@h PRIVMSG me :in private",
        ":other!x@spam.example PRIVMSG #room :by host",
    ):
        assert state.feed(line) == []
    assert state.feed(":alice!u@h PRIVMSG me :\x01VERSION\x01") == []  # not answered
    assert texts(state, "#room") == before and state.buffer("alice") is None
    assert state.feed(":bob!u@h PRIVMSG #room :still heard")
    interpret(state, "/ignore")
    assert texts(state, "#room")[-1] == "Ignoring: alice!*@* *!*@spam.example"
    interpret(state, "/unignore alice")
    assert texts(state, "#room")[-1] == "No longer ignoring alice!*@*"
    assert state.feed(":alice!u@h PRIVMSG #room :heard again")
    with pytest.raises(CommandError, match="Not ignoring"):
        interpret(state, "/unignore alice")
    interpret(state, "/ignore al?ce")
    assert state.feed(":alice!u@h PRIVMSG #room :question mark") == []


def test_ignores_outlive_a_reconnect() -> None:
    state = in_room()
    interpret(state, "/ignore alice")
    state.connection_lost("gone")
    state.registration_lines()
    state.feed(":srv 001 me :Welcome")
    assert state.feed(":alice!u@h PRIVMSG #room :hidden") == []


# ---- typed into the UI, against a real chatd -------------------------------------------------


@pytest.fixture
def zed(server: RunningServer) -> IrcClient:
    client = server.client("zed")
    client.send("JOIN #t")
    client.expect("366")
    return client


def test_operator_commands_reach_chatd(server: RunningServer) -> None:
    """chatc founds #t (operator), then zed joins; every command typed is seen by zed as chatd relays it."""

    async def scenario() -> None:
        async with running_ui(server.address, channels=("#t",)) as (ui, keys):
            await until(lambda: ui_joined(ui, "#t"), "join")
            peer = await asyncio.to_thread(server.client, "zed")
            peer.send("JOIN #t")
            await asyncio.to_thread(peer.expect, "366")
            await until(lambda: "zed" in ui.state.active.nicks, "zed in the nick list")

            async def zed_sees(command: str) -> tuple[str, ...]:
                return (await asyncio.to_thread(peer.expect, command)).params

            keys.send_text("/op zed\r")
            assert await zed_sees("MODE") == ("#t", "+o", "zed")
            await until(lambda: ui.state.active.prefixes.get("zed") == "@", "zed's @")
            keys.send_text("/deop zed\r/voice zed\r/devoice zed\r")
            assert await zed_sees("MODE") == ("#t", "-o", "zed")
            assert await zed_sees("MODE") == ("#t", "+v", "zed")
            assert await zed_sees("MODE") == ("#t", "-v", "zed")
            keys.send_text("/mode +m\r")
            assert await zed_sees("MODE") == ("#t", "+m")
            keys.send_text("/ctcp zed version\r")
            assert (await zed_sees("PRIVMSG")) == ("zed", "\x01VERSION\x01")
            keys.send_text("/ban zed\r")
            assert await zed_sees("MODE") == ("#t", "+b", "zed!*@*")
            keys.send_text("/unban zed\r")
            assert await zed_sees("MODE") == ("#t", "-b", "zed!*@*")
            keys.send_text("/kick zed out\r")
            assert await zed_sees("KICK") == ("#t", "zed", "out")
            await until(lambda: "zed" not in ui.state.active.nicks, "zed gone")
            keys.send_text("/invite zed\r")
            assert await zed_sees("INVITE") == ("zed", "#t")
            await until(lambda: any("Inviting zed" in t for t in texts(ui.state, "#t")), "the 341")
            peer.send("JOIN #t")
            await asyncio.to_thread(peer.expect, "366")
            keys.send_text("/kickban zed bye\r")
            assert await zed_sees("MODE") == ("#t", "+b", "zed!*@*")
            assert await zed_sees("KICK") == ("#t", "zed", "bye")
            peer.close()
            keys.send_text("/whowas zed\r")
            await until(lambda: any(t.startswith("zed was ") for t in texts(ui.state, "#t")), "the WHOWAS reply")

    asyncio.run(scenario())


def test_ignore_against_chatd_survives_a_reconnect(server: RunningServer, zed: IrcClient) -> None:
    amy = server.client("amy")
    amy.send("JOIN #t")
    amy.expect("366")

    to_zed: list[str] = []  # what zed received: a CTCP answer from chatc would be among it

    async def past_zed(ui: ChatUI, mark: str) -> None:
        """Once amy's line (sent after chatd handled zed's) is shown, zed's lines were handled too."""
        to_zed.extend(message.command for message in await asyncio.to_thread(zed.sync))
        amy.send(f"PRIVMSG #t :{mark}")
        await until(lambda: mark in texts(ui.state, "#t"), mark)

    async def scenario() -> None:
        async with running_ui(server.address, channels=("#t",), backoff_initial_s=0.05) as (ui, keys):
            await until(lambda: ui_joined(ui, "#t") and "amy" in ui.state.active.nicks, "join")
            keys.send_text("/ignore zed\r")
            await until(lambda: ui.state.ignores.masks == ["zed!*@*"], "the ignore")
            zed.send("PRIVMSG #t :you cannot hear me")
            zed.send("PRIVMSG me :\x01VERSION\x01")
            await past_zed(ui, "mark 1")
            keys.send_text("/quote QUIT :again\r")  # the server closes; chatc reconnects by itself
            await until(lambda: not ui.state.registered, "the lost connection")
            await until(lambda: ui.state.registered and "amy" in ui.state.active.nicks, "the rejoin")
            zed.send("PRIVMSG #t :still ignored")
            zed.send("NOTICE #t :and this too")
            await past_zed(ui, "mark 2")
            keys.send_text("/unignore zed\r")
            await until(lambda: not ui.state.ignores.masks, "the unignore")
            zed.send("PRIVMSG #t :heard")
            await until(lambda: texts(ui.state, "#t")[-1] == "heard", "zed heard again")
            shown = texts(ui.state, "#t")
            assert not any(t in shown for t in ("you cannot hear me", "still ignored", "and this too"))
            assert not any(t.startswith("CTCP VERSION") for t in texts(ui.state, ""))
            to_zed.extend(message.command for message in await asyncio.to_thread(zed.sync))
            assert "NOTICE" not in to_zed  # no CTCP VERSION answer went to an ignored nick

    asyncio.run(scenario())
    amy.close()
