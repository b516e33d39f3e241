"""Line framing alone: terminators, splits, the length bound, partial lines."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chatd.protocol.framing import OVERLONG, WIRE, LineReader, decode_line


def test_crlf_and_lf_both_end_lines() -> None:
    reader = LineReader()
    assert reader.feed(b"NICK a\r\nUSER b\nPING c\r\n") == [b"NICK a", b"USER b", b"PING c"]
    assert not reader.pending


def test_line_split_across_reads() -> None:
    reader = LineReader()
    assert reader.feed(b"PRIV") == []
    assert reader.pending
    assert reader.feed(b"MSG #c :hi\r") == []
    assert reader.feed(b"\nNEXT") == [b"PRIVMSG #c :hi"]
    assert reader.take_partial() == b"NEXT"
    assert not reader.pending


def test_overlong_line_is_reported_once_and_next_line_survives() -> None:
    reader = LineReader()
    assert reader.feed(b"PRIVMSG #c :" + b"x" * 600 + b"\r\nPING ok\r\n") == [OVERLONG, b"PING ok"]


def test_510_byte_body_fits_and_511_does_not() -> None:
    reader = LineReader()
    assert reader.feed(b"x" * 510 + b"\r\n") == [b"x" * 510]
    assert reader.feed(b"x" * 511 + b"\r\n") == [OVERLONG]


def test_tags_do_not_count_against_the_body_limit() -> None:
    line = b"@" + b"t" * 2000 + b" PRIVMSG #c :" + b"y" * 400
    assert LineReader().feed(line + b"\r\n") == [line]


def test_unterminated_flood_is_bounded_and_dropped_until_newline() -> None:
    reader = LineReader()
    events = []
    for _ in range(100):
        events += reader.feed(b"z" * 1000)
    assert events == [OVERLONG]
    assert not reader.pending
    assert reader.feed(b"still junk\nPING ok\n") == [b"PING ok"]


@given(
    st.lists(st.binary(max_size=40).filter(lambda b: b"\n" not in b and b"\r" not in b), max_size=8),
    st.lists(st.integers(min_value=0, max_value=400), max_size=10),
)
def test_any_split_gives_the_same_lines(lines: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(line + b"\r\n" for line in lines)
    reader = LineReader()
    got = []
    start = 0
    for cut in [*sorted(set(c for c in cuts if c < len(stream))), len(stream)]:
        got += reader.feed(stream[start:cut])
        start = cut
    assert got == lines


def test_invalid_utf8_decodes_without_error_and_encodes_back_to_the_same_bytes() -> None:
    assert decode_line(b"caf\xe9") == "caf\udce9"
    assert decode_line(b"caf\xe9").encode(errors=WIRE) == b"caf\xe9"
    assert decode_line("caf\u00e9".encode()) == "café"
