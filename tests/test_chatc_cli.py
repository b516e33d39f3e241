"""chatc's start: the nick prompt (typed through prompt_toolkit's pipe input), nick errors in the
user's words, and what a full-screen chatc does when no server answers (retry, as irssi does)."""

from __future__ import annotations

import asyncio
import io
import socket

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.data_structures import Size
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output.vt100 import Vt100_Output

from chatc.cli import ask_nick, nick_problem
from tests.test_chatc_ui import running_ui, until


def answer_prompt(keys_typed: str, default: str = "root") -> tuple[str | None, str]:
    """What ``ask_nick`` returns for the keys, and what it drew on the screen."""
    screen = io.StringIO()
    output = Vt100_Output(screen, lambda: Size(rows=5, columns=60), term="xterm")
    with create_pipe_input() as keys, create_app_session(input=keys, output=output):
        keys.send_text(keys_typed)
        return ask_nick(default), screen.getvalue()


def test_the_nick_prompt_shows_the_login_name_as_a_hint_that_typing_replaces() -> None:
    nick, drawn = answer_prompt("ana\r")
    assert nick == "ana"  # not "rootana": the default is no text in the line
    assert "root" in drawn  # but it is shown, as a hint


def test_enter_alone_takes_the_default_nick() -> None:
    assert answer_prompt("\r")[0] == "root"


def test_an_invalid_typed_nick_says_why_and_asks_again(capsys: pytest.CaptureFixture[str]) -> None:
    assert answer_prompt("9lives\rcat\r")[0] == "cat"
    assert "'9lives': a nick cannot start with a digit" in capsys.readouterr().err


def test_ctrl_d_at_the_nick_prompt_gives_up() -> None:
    assert answer_prompt("\x04")[0] is None


@pytest.mark.parametrize(
    ("nick", "why"),
    [
        ("123abc", "a nick cannot start with a digit"),
        ("x" * 33, "a nick has at most 32 characters (33 given)"),
        ("-dash", "a nick cannot start with '-'"),
        ("sp ace", "a nick cannot contain ' '"),
        ("", "a nick cannot be empty"),
    ],
)
def test_nick_problems_are_said_in_words(nick: str, why: str) -> None:
    problem = nick_problem(nick)
    assert problem is not None and problem.startswith(why)


def test_valid_nicks_have_no_problem() -> None:
    for nick in ("anna", "x" * 32, "[w]e`ird^{|}-_", "a1"):
        assert nick_problem(nick) is None, nick


def test_a_full_screen_chatc_that_cannot_connect_keeps_retrying() -> None:
    """As irssi does: the UI stays up, says why, and tries again (it never exits on its own)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def scenario() -> None:
        async with running_ui(("127.0.0.1", port), backoff_initial_s=0.01, backoff_max_s=0.02) as (ui, _keys):

            def failures() -> int:
                return sum("cannot connect" in line.text for line in ui.state.buffers[""].lines)

            await until(lambda: failures() >= 3, "three attempts")
            assert ui.app.is_running
            await until(lambda: ui.connection.status.startswith(("disconnected, retrying", "connecting")), "retry")

    asyncio.run(scenario())
