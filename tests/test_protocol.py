"""The sans-I/O protocol layer alone: parsing, formatting, case mapping."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatd.protocol.casemap import irc_lower, is_channel_name, is_valid_nick, nick_from_plain_name
from chatd.protocol.message import Message, format_message, parse


def test_parse_full_message() -> None:
    message = parse("@id=123;flag :nick!u@h PRIVMSG #chan :hello there")
    assert message == Message("PRIVMSG", ("#chan", "hello there"), "nick!u@h", {"id": "123", "flag": ""})


def test_parse_uppercases_command_and_keeps_numerics() -> None:
    assert parse("privmsg a b").command == "PRIVMSG"
    assert parse(":srv 001 me :Welcome").params == ("me", "Welcome")


def test_parse_trailing_keeps_colons_and_spaces() -> None:
    assert parse("PRIVMSG #c :: a  b :c").params == ("#c", ": a  b :c")


def test_parse_empty_trailing_is_a_parameter() -> None:
    assert parse("TOPIC #c :").params == ("#c", "")


def test_parse_collapses_repeated_spaces_between_middle_params() -> None:
    assert parse("USER  a   0 *  :Real Name").params == ("a", "0", "*", "Real Name")


def test_parse_tag_escapes() -> None:
    message = parse(r"@a=x\:y\sz\\w\r\n;b=end\ TAGMSG #c")
    assert message.tags == {"a": "x;y z\\w\r\n", "b": "end"}


def test_parse_line_without_command() -> None:
    assert parse("").command == ""
    assert parse(":only-a-source").command == ""


def test_format_adds_trailing_colon_only_when_needed() -> None:
    assert format_message("PRIVMSG", "#c", "hi", source="n!u@h") == ":n!u@h PRIVMSG #c hi"
    assert format_message("PRIVMSG", "#c", "hi there") == "PRIVMSG #c :hi there"
    assert format_message("TOPIC", "#c", "") == "TOPIC #c :"
    assert format_message("PRIVMSG", "#c", ":)") == "PRIVMSG #c ::)"


def test_format_tags_are_escaped() -> None:
    assert format_message("TAGMSG", "#c", tags={"k": "a b;c"}) == r"@k=a\sb\:c TAGMSG #c"


@pytest.mark.parametrize("bad", ["a\r\nQUIT", "x\0y"])
def test_format_refuses_injected_line_breaks(bad: str) -> None:
    with pytest.raises(ValueError):
        format_message("PRIVMSG", "#c", bad)


def test_format_refuses_unrepresentable_middle_param() -> None:
    with pytest.raises(ValueError):
        format_message("KICK", "#c", "two words", "reason")


safe_text = st.text(st.characters(blacklist_characters="\r\n\0", blacklist_categories=("Cs",)), max_size=50)
middle = st.text(st.characters(blacklist_characters="\r\n\0 :", blacklist_categories=("Cs",)), min_size=1, max_size=20)


@given(st.lists(middle, max_size=5), safe_text)
def test_format_then_parse_round_trips(middles: list[str], trailing: str) -> None:
    line = format_message("PRIVMSG", *middles, trailing, source="n!u@h")
    assert parse(line) == Message("PRIVMSG", (*middles, trailing), "n!u@h", {})


@given(st.text(max_size=200))
def test_parse_never_raises(line: str) -> None:
    parse(line)


def test_rfc1459_case_mapping() -> None:
    assert irc_lower("Nick[A]\\~") == "nick{a}|^"


@pytest.mark.parametrize("nick", ["alice", "A", "[x]", "a-b_c", "x" * 32, "`^{}|"])
def test_valid_nicks(nick: str) -> None:
    assert is_valid_nick(nick)


@pytest.mark.parametrize("nick", ["", "1abc", "-x", "a b", "a,b", "a!b", "a@b", "#chan", "x" * 33, "é"])
def test_invalid_nicks(nick: str) -> None:
    assert not is_valid_nick(nick)


def test_channel_names() -> None:
    assert is_channel_name("#lobby")
    assert not is_channel_name("lobby")
    assert not is_channel_name("#")
    assert not is_channel_name("#a,b")
    assert not is_channel_name("#a b")
    assert not is_channel_name("#" + "x" * 50)


@given(st.text(max_size=60))
def test_plain_names_always_become_valid_nicks(name: str) -> None:
    assert is_valid_nick(nick_from_plain_name(name))
