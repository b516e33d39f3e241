"""The RESP2 codec alone: any reply, cut anywhere, parses back to itself; bad streams are refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatd.cluster.resp import (
    MAX_BULK_BYTES,
    NEED_MORE,
    ProtocolError,
    RespError,
    RespParser,
    RespValue,
    encode_command,
    encode_value,
)

simple_text = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=20)
leaves = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.binary(max_size=40),
    simple_text,
    simple_text.map(RespError),
)
values: st.SearchStrategy[RespValue] = st.recursive(leaves, lambda inner: st.lists(inner, max_size=5), max_leaves=20)


def parse_in_pieces(data: bytes, cuts: list[int]) -> list[RespValue]:
    parser = RespParser()
    out: list[RespValue] = []
    start = 0
    for cut in [*sorted({min(cut, len(data)) for cut in cuts}), len(data)]:
        parser.feed(data[start:cut])
        start = cut
        out.extend(parser.replies())
    assert parser.buffered == 0
    return out


@given(st.lists(values, max_size=5), st.lists(st.integers(min_value=0, max_value=400), max_size=10))
def test_replies_split_anywhere_parse_back(replies: list[RespValue], cuts: list[int]) -> None:
    data = b"".join(encode_value(value) for value in replies)
    assert parse_in_pieces(data, cuts) == replies


pubsub_messages = st.builds(
    lambda channel, payload: [b"message", channel, payload], st.binary(max_size=20), st.binary(max_size=300)
)


@given(st.lists(st.one_of(pubsub_messages, values), max_size=8), st.lists(st.integers(min_value=0), max_size=10))
def test_pubsub_messages_among_other_replies_parse_back(replies: list[RespValue], cuts: list[int]) -> None:
    data = b"".join(encode_value(value) for value in replies)
    assert parse_in_pieces(data, [cut % (len(data) + 1) for cut in cuts]) == replies


def test_a_message_with_a_bad_length_is_a_protocol_error() -> None:
    parser = RespParser()
    parser.feed(b"*3\r\n$7\r\nmessage\r\n$-5\r\nabc\r\n")
    with pytest.raises(ProtocolError):
        parser.replies()


@given(st.lists(st.one_of(st.binary(max_size=30), st.text(max_size=10), st.integers()), min_size=1, max_size=6))
def test_a_command_is_an_array_of_bulk_strings(args: list[bytes | str | int]) -> None:
    expected = [arg if isinstance(arg, bytes) else str(arg).encode() for arg in args]
    assert parse_in_pieces(encode_command(*args), []) == [expected]


def test_byte_by_byte_waits_for_the_whole_reply() -> None:
    parser = RespParser()
    data = encode_value([b"message", b"chan", b"x\r\ny"])
    for byte in data[:-1]:
        parser.feed(bytes([byte]))
        assert parser.get() is NEED_MORE
    parser.feed(data[-1:])
    assert parser.get() == [b"message", b"chan", b"x\r\ny"]


def test_null_bulk_and_null_array() -> None:
    parser = RespParser()
    parser.feed(b"$-1\r\n*-1\r\n+OK\r\n")
    assert parser.replies() == [None, None, "OK"]


@pytest.mark.parametrize(
    "data",
    [b"?what\r\n", b":12x\r\n", b"$3\r\nabcd\r\n", f"${MAX_BULK_BYTES + 1}\r\n".encode(), b"*-2\r\n"],
)
def test_malformed_streams_are_protocol_errors(data: bytes) -> None:
    parser = RespParser()
    parser.feed(data)
    with pytest.raises(ProtocolError):
        parser.get()
