"""The buffer model (``chatc/buffers.py``): the one writer of buffers, and the rules it keeps.

The state is fed real server lines and the changes it emits are read back, so these show that
what the screen shows follows from ``BufferChange`` events alone; and each chatc module imports on
its own in a fresh interpreter (no import circle).
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

import chatc
from chatc.buffers import (
    SERVER_KEY,
    BufferActivated,
    BufferChange,
    BufferLine,
    BufferModel,
    BufferOpened,
    BufferRenamed,
    LineAdded,
    MemberAdded,
    MemberRenamed,
)
from chatc.state import ClientState


def recorded(state: ClientState) -> list[BufferChange]:
    """Every change the state applies from now on, in order (they are still applied)."""
    changes: list[BufferChange] = []
    apply = state.model.apply

    def record(change: BufferChange) -> None:
        changes.append(change)
        apply(change)

    state.model.apply = record  # type: ignore[method-assign]
    return changes


def test_unread_rises_only_for_new_conversation_in_another_buffer_and_activation_clears_it() -> None:
    model = BufferModel("srv")
    model.apply(BufferOpened("#a", "#a", "channel"))
    model.apply(LineAdded("#a", BufferLine(1.0, "privmsg", "hi", "zed", highlight=True)))
    model.apply(LineAdded("#a", BufferLine(2.0, "join", "bob has joined #a", "bob")))
    model.apply(LineAdded("#a", BufferLine(3.0, "privmsg", "mine", "me", own=True)))
    model.apply(LineAdded("#a", BufferLine(4.0, "privmsg", "old", "zed", history=True)))
    buf = model.buffers["#a"]
    assert (buf.unread, buf.highlighted, len(buf.lines)) == (1, True, 4)
    model.apply(BufferActivated("#a"))
    assert (buf.unread, buf.highlighted, model.active_key) == (0, False, "#a")
    model.apply(LineAdded("#a", BufferLine(5.0, "privmsg", "seen", "zed")))
    assert buf.unread == 0  # the buffer being looked at


def test_a_rename_keeps_the_buffers_place_and_the_active_buffer_follows() -> None:
    model = BufferModel("srv")
    for name in ("#a", "zed", "#b"):
        model.apply(BufferOpened(name, name, "channel" if name.startswith("#") else "query"))
    model.apply(BufferActivated("zed"))
    model.apply(BufferRenamed("zed", "zoe", "Zoe"))
    assert list(model.buffers) == [SERVER_KEY, "#a", "zoe", "#b"]
    assert model.active.name == "Zoe"


def test_the_state_changes_buffers_only_through_events() -> None:
    state = ClientState("me", clock=lambda: 1_000_000.0)
    state.registration_lines()
    changes = recorded(state)
    state.feed(":srv 001 me :Welcome")
    state.feed(":me!u@h JOIN #room")
    state.feed(":zed!u@h JOIN #room")
    state.feed(":zed!u@h NICK zoe")
    assert changes[0] == BufferRenamed(SERVER_KEY, SERVER_KEY, "srv")
    assert MemberAdded("#room", "me", "me") in changes and MemberAdded("#room", "zed", "zed") in changes
    assert MemberRenamed("#room", "zed", "zoe", "zoe") in changes
    shown = [change.line.text for change in changes if isinstance(change, LineAdded) and change.key == "#room"]
    room = state.buffer("#room")
    assert room is not None and shown == [line.text for line in room.lines]
    assert shown == ["me has joined #room", "zed has joined #room", "zed is now known as zoe"]


@pytest.mark.parametrize(
    "module", sorted(path.stem for path in pathlib.Path(chatc.__file__).parent.glob("*.py") if path.stem != "__main__")
)
def test_each_chatc_module_imports_alone(module: str) -> None:
    name = "chatc" if module == "__init__" else f"chatc.{module}"
    done = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
