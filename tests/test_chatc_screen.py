"""What the full-screen chatc draws at small widths and during a paste: long lines wrapped at words with a
hanging indent (as weechat does), a status line that drops whole parts to fit 50 columns, and a pasted block
sent paced while the status line counts the queue down and the input line stays usable."""

from __future__ import annotations

import asyncio
import io
import re

from prompt_toolkit.data_structures import Size
from prompt_toolkit.output.vt100 import Vt100_Output
from prompt_toolkit.utils import get_cwidth

from chatc.ui import ChatUI
from chatc.wrap import fit_parts, wrap_fragments
from tests.helpers import IrcClient, RunningServer
from tests.test_chatc_ui import joined, peer, running_ui, shows, until

__all__ = ["peer"]  # the fixture, imported for the tests below

LONG = (
    "the quick brown fox jumps over the lazy dog while the five boxing wizards jump quickly and "
    "pack my box with five dozen liquor jugs"
)
BRACKETED_PASTE_START = "\x1b[200~"
BRACKETED_PASTE_END = "\x1b[201~"


def rows_text(rows: list[list[tuple[str, str]]]) -> list[str]:
    return ["".join(fragment[1] for fragment in row) for row in rows]


def test_wrapping_breaks_at_spaces_and_indents_under_the_message() -> None:
    prefix = [("class:time", "10:00 "), ("", "<"), ("", "zed"), ("", "> ")]
    rows = rows_text(wrap_fragments([*prefix, ("", LONG)], 40, 12))  # type: ignore[arg-type]
    assert rows[0].startswith("10:00 <zed> the quick")
    assert all(get_cwidth(row) <= 40 for row in rows)
    assert all(row.startswith(" " * 12) and row[12] != " " for row in rows[1:])  # the hanging indent
    assert " ".join(row.strip() for row in rows).replace("10:00 <zed> ", "") == LONG  # no word cut, none lost


def test_a_word_longer_than_a_row_is_cut_and_wide_characters_count_twice() -> None:
    rows = rows_text(wrap_fragments([("", "ab " + "x" * 25)], 10, 2))
    assert rows == ["ab", "  xxxxxxxx", "  xxxxxxxx", "  xxxxxxxx", "  x"]
    rows = rows_text(wrap_fragments([("", "日本語 日本語日本語")], 8, 0))
    assert rows == ["日本語", "日本語日", "本語"]
    assert all(get_cwidth(row) <= 8 for row in rows)


def test_fit_parts_drops_the_least_important_whole_parts_first() -> None:
    parts = [(9, [("", " 10:00")]), (0, [("", " [1:#t]")]), (5, [("", " [me]")]), (7, [("", " [net: connected]")])]
    assert "".join(f[1] for f in fit_parts(parts, 100)) == " 10:00 [1:#t] [me] [net: connected]"  # type: ignore[arg-type]
    assert "".join(f[1] for f in fit_parts(parts, 30)) == " [1:#t] [me] [net: connected]"  # type: ignore[arg-type]
    assert "".join(f[1] for f in fit_parts(parts, 28)) == " [1:#t] [me]"  # type: ignore[arg-type]
    assert "".join(f[1] for f in fit_parts(parts, 3)) == " [1:#t]"  # type: ignore[arg-type]


def narrow_output(columns: list[int]) -> Vt100_Output:
    """A VT100 screen whose width the test can change (``columns[0]``)."""
    return Vt100_Output(io.StringIO(), lambda: Size(rows=24, columns=columns[0]), term="xterm")


async def redrawn(ui: ChatUI) -> None:
    renders = ui.app.render_counter
    ui.app.invalidate()
    await until(lambda: ui.app.render_counter > renders, "a redraw")


def test_a_long_line_wraps_at_words_under_the_message_column_on_screen(server: RunningServer, peer: IrcClient) -> None:
    columns = [50]

    async def scenario() -> None:
        async with running_ui(server.address, output=narrow_output(columns)) as (ui, _keys):
            await until(lambda: joined(ui, "#t"), "join")
            peer.send(f"PRIVMSG #t :{LONG}")
            await until(lambda: shows(ui, "#t", "liquor"), "the long line")
            await redrawn(ui)
            rows = "".join(fragment[1] for fragment in ui._message_fragments()).split("\n")
            start = next(index for index, row in enumerate(rows) if "<zed> the quick" in row)
            message = rows[start:]
            column = message[0].index("the quick")  # "HH:MM <zed> "
            assert len(message) > 2 and all(get_cwidth(row) <= 50 for row in message)
            assert all(row[:column] == " " * column and row[column] != " " for row in message[1:])
            assert " ".join(row.strip() for row in message)[column:] == LONG  # every word whole
            # With the nick list open the pane is narrower, and the wrap follows.
            ui.show_nicklist = True
            narrower = "".join(f[1] for f in ui._message_fragments()).split("\n")
            assert all(get_cwidth(row) <= 50 - 19 for row in narrower)

    asyncio.run(scenario())


def test_the_status_line_at_50_columns_drops_whole_parts_least_important_first(
    server: RunningServer, peer: IrcClient
) -> None:
    columns = [200]

    async def scenario() -> None:
        async with running_ui(server.address, output=narrow_output(columns)) as (ui, keys):
            await until(lambda: joined(ui, "#t"), "join")
            keys.send_text("/join #a-rather-long-channel-name\r")
            await until(lambda: joined(ui, "#a-rather-long-channel-name"), "the second join")
            peer.send("PRIVMSG #t :activity elsewhere")
            await until(lambda: ui.state.buffer("#t").unread == 1, "unread in #t")  # type: ignore[union-attr]
            wide = "".join(f[1] for f in ui._status_fragments())
            assert "[Act: 2:#t]" in wide and re.match(r" \d\d:\d\d ", wide)
            columns[0] = 50
            narrow = "".join(f[1] for f in ui._status_fragments())
            assert get_cwidth(narrow) <= 50
            assert "[3:#a-rather-long-channel-name (1)]" in narrow  # the buffer stays, whole
            assert not re.match(r" \d\d:\d\d ", narrow)  # the clock goes first
            assert set(narrow.split()) <= set(wide.split())  # only whole parts left: no word cut
            await redrawn(ui)

    asyncio.run(scenario())


def test_a_pasted_block_is_sent_paced_and_the_status_line_counts_the_queue_down(
    server: RunningServer, peer: IrcClient
) -> None:
    lines = [f"pasted {index}" for index in range(12)]

    async def scenario() -> None:
        async with running_ui(server.address, burst_lines=1, rate_lines_per_s=10.0) as (ui, keys):
            await until(lambda: joined(ui, "#t"), "join")
            keys.send_text("half ")
            await until(lambda: ui.input.text == "half ", "the typed start")
            keys.send_text(BRACKETED_PASTE_START + "\n".join(lines) + "\nand a draft" + BRACKETED_PASTE_END)
            seen: list[int] = []
            received: list[str] = []

            def progress() -> bool:
                status = "".join(f[1] for f in ui._status_fragments())
                match = re.search(r"\[(\d+) queued\]", status)
                if match and (not seen or seen[-1] != int(match.group(1))):
                    seen.append(int(match.group(1)))
                return ui.connection.queued == 0 and bool(seen)

            await until(progress, "the queue to drain")
            assert seen == sorted(seen, reverse=True) and len(seen) >= 3  # counting down
            assert seen[0] >= 8
            while len(received) < len(lines):
                received.append((await asyncio.to_thread(peer.expect, "PRIVMSG")).params[1])
            assert received == ["half pasted 0", *lines[1:]]  # in order, the typed start joined to the first
            assert ui.input.text == "and a draft"  # the unfinished last line waits in the input line
            assert ui.app.layout.has_focus(ui.input)
            assert "queued" not in "".join(f[1] for f in ui._status_fragments())

    asyncio.run(scenario())
