"""Bytes that are not UTF-8: relayed as they came, stored and replayed as they came, never a crash.

A legacy client's ``caf\\xe9`` (Latin-1) must reach TCP peers and binary WebSocket clients as
those bytes and text WebSocket clients with U+FFFD (the IRCv3 WebSocket spec), and no path
(replies, plain mode, history, the cluster's wire) may raise on the lone surrogates that
stand for such bytes inside the server.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from chatd.cluster.link import ENCODING_ERRORS
from chatd.cluster.wire import decode_event, encode_event, encode_message, event_fields, message_head
from chatd.core.event import Delivery
from chatd.history import History, SqliteStore
from chatd.history.store import _as_text, _storable
from chatd.protocol.framing import WIRE, decode_line
from chatd.protocol.message import format_message, format_tags
from tests.helpers import IrcClient, LineClient, RedisServer, running_server, wait_until
from tests.test_cluster import across, cluster_node
from tests.wsclient import WsClient, ws_server, ws_url

TEXT, BINARY = "text.ircv3.net", "binary.ircv3.net"
ANY_TEXT = st.text(st.characters(exclude_categories=(), exclude_characters="\r\n\0"))
"""Every code point a line may hold, lone surrogates of any kind included (hypothesis leaves
them out by default)."""


@given(st.binary())
def test_every_byte_sequence_decodes_and_encodes_back_to_itself(data: bytes) -> None:
    text = decode_line(data)
    assert text.encode(errors=WIRE) == data
    if data.isascii():
        assert text == data.decode()


@given(ANY_TEXT, ANY_TEXT)
def test_encoding_an_outgoing_line_never_raises(text: str, tag: str) -> None:
    line = f"@{format_tags({'label': tag})} {format_message('PRIVMSG', '#c', text)}"
    data = line.encode(errors=WIRE)
    try:
        assert data == line.encode()  # valid text is plain UTF-8
    except UnicodeEncodeError:
        assert data.decode("utf-8", "replace")  # and anything else is still bytes to send


@given(st.binary())
def test_sqlite_text_columns_give_back_the_bytes_decode_line_escaped(data: bytes) -> None:
    text = decode_line(data)
    with sqlite3.connect(":memory:") as connection:
        connection.execute("CREATE TABLE t (line TEXT NOT NULL, other TEXT)")
        connection.execute("INSERT INTO t VALUES (?, ?)", _storable((text, "plain")))
        assert _as_text(connection.execute("SELECT line, other FROM t").fetchone()) == (text, "plain")


@given(st.binary())
def test_a_relayed_line_crosses_the_cluster_wire_unchanged(data: bytes) -> None:
    line = decode_line(data)
    published = encode_event({"t": "msg", "line": line}, "node-a").encode("utf-8", ENCODING_ERRORS)
    assert decode_event(published) == ("node-a", "msg", {"t": "msg", "line": line, "n": "node-a"})


@given(st.binary(), st.binary(), st.one_of(st.none(), st.text()), st.booleans(), st.floats(0, 4e9))
def test_a_channel_message_is_written_as_the_generic_encoder_writes_it(
    data: bytes, name: bytes, account: str | None, tags: bool, when: float
) -> None:
    """The message encoder of the hot path writes what ``encode_event`` would: any node decodes it."""
    line = decode_line(data)
    event = Delivery(line, line[:10], "m-1", when, {"+x": line[:5]} if tags else None, account=account or None)
    channel = decode_line(name)
    direct = encode_message(message_head("msg", "c", channel), event, "node-a")
    generic = encode_event({"t": "msg", "c": channel, **event_fields(event)}, "node-a")
    assert direct == generic
    assert decode_event(direct.encode("utf-8", ENCODING_ERRORS))[2]["line"] == line


def test_tcp_peers_get_the_bytes_as_they_came(backend: str) -> None:
    with running_server(backend) as server:
        sender, receiver = server.client("sender"), server.client("receiver")
        for client in (sender, receiver):
            client.send("JOIN #raw")
            client.until("366")
        sender.send_raw(b"PRIVMSG receiver :caf\xe9\r\nNOTICE #raw :\xff\xfe na\xefve\r\nTOPIC #raw :\xe9t\xe9\r\n")
        receiver.expect("PRIVMSG")
        assert receiver.raw_lines[-1].endswith(b" PRIVMSG receiver :caf\xe9")
        receiver.expect("NOTICE")
        assert receiver.raw_lines[-1].endswith(b" NOTICE #raw :\xff\xfe na\xefve")
        receiver.expect("TOPIC")
        assert receiver.raw_lines[-1].endswith(b" TOPIC #raw \xe9t\xe9")
        receiver.send("TOPIC #raw")
        receiver.expect("332")
        assert receiver.raw_lines[-1].endswith(b" 332 receiver #raw \xe9t\xe9")
        sender.send_raw(b"PART #raw :bye \xe9\r\n")
        receiver.expect("PART")
        assert receiver.raw_lines[-1].endswith(b" PART #raw :bye \xe9")


def test_names_and_labels_that_are_not_utf8_get_errors_or_answers_not_crashes(backend: str) -> None:
    with running_server(backend) as server:
        client = server.client("c")
        client.send_raw(b"JOIN #caf\xe9\r\n")
        assert client.expect("403", "479").params[0] == "c"  # a channel name must be valid UTF-8
        client.send("CAP REQ :labeled-response batch")
        client.expect("CAP")
        client.send_raw(b"@label=\xe9 PING x\r\n")
        client.expect("PONG")
        assert client.raw_lines[-1].startswith(b"@label=\xe9 ")
        client.send_raw(b"PRIVMSG NickServ :REGISTER s\xe9cret-enough-password\r\n")
        assert "valid UTF-8" in client.expect("NOTICE").params[-1]
        client.send("PRIVMSG c :still here")
        assert client.expect("PRIVMSG").params == ("c", "still here")


def test_websocket_text_clients_get_u_fffd_and_binary_clients_send_and_get_bytes(backend: str) -> None:
    with ws_server(backend) as server:
        tcp = server.client("tcp")
        text = WsClient(ws_url(server), "texty", subprotocols=[TEXT])
        binary = WsClient(ws_url(server), "binny", subprotocols=[BINARY])
        tcp.send_raw(b"PRIVMSG texty :caf\xe9\r\nPRIVMSG binny :caf\xe9\r\n")
        text.expect("PRIVMSG")
        binary.expect("PRIVMSG")
        assert isinstance(text.received[-1], str) and text.received[-1].endswith(" PRIVMSG texty :caf\ufffd")
        assert isinstance(binary.received[-1], bytes) and binary.received[-1].endswith(b" PRIVMSG binny :caf\xe9")
        binary.send_binary(b"PRIVMSG tcp :na\xefve\r\nPRIVMSG texty :na\xefve")
        tcp.wait_for_line(lambda line: "PRIVMSG tcp" in line)
        assert tcp.raw_lines[-1].endswith(b" PRIVMSG tcp :na\xefve")
        text.expect("PRIVMSG")
        assert text.received[-1].endswith(" PRIVMSG texty :na\ufffdve")


def _history_reader(address: tuple[str, int]) -> IrcClient:
    client = IrcClient(address)
    client.send("CAP REQ :draft/chathistory batch server-time message-tags")
    client.expect("CAP")
    client.send("CAP END")
    client.register("reader")
    return client


def test_chathistory_from_sqlite_replays_the_bytes_as_they_came(backend: str, tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path))
    with running_server(backend, history=History(store), history_on_join=0) as server:
        reader = _history_reader(server.address)
        writer = server.client("writer")
        for client in (reader, writer):
            client.send("JOIN #kept")
            client.until("366")
        writer.send_raw(b"PRIVMSG #kept :caf\xe9 \xff\r\nPRIVMSG #kept :plain\r\n")
        writer.sync()
        # Once committed, CHATHISTORY reads the lines from SQLite (not the loop's memory).
        def stored() -> list[str]:
            return [row[2] for row in store.newest_entries("#kept", 10) if " PRIVMSG " in row[2]]

        wait_until(lambda: len(stored()) == 2, "both lines committed")
        assert stored()[1].endswith(" :caf\udce9 \udcff")  # newest first
        reader.expect("PRIVMSG")
        reader.expect("PRIVMSG")  # the live copies, before the replay
        reader.raw_lines.clear()
        reader.send("CHATHISTORY LATEST #kept * 10")
        reader.expect("BATCH")
        reader.until("BATCH")
        relayed = [line for line in reader.raw_lines if b" PRIVMSG #kept " in line]
        assert [line.rsplit(b" :", 1)[1] for line in relayed] == [b"caf\xe9 \xff", b"plain"]


def test_plain_clients_may_send_bytes_that_are_not_utf8(backend: str) -> None:
    with running_server(backend) as server:
        irc = server.client("irc")
        irc.send("JOIN #lobby")
        irc.until("366")
        plain = LineClient(server.address)
        plain.send_raw(b"Ren\xe9e\n")
        plain.wait_for_line(lambda line: line.startswith("* Welcome"))
        irc.expect("JOIN")
        plain.send_raw(b"na\xefve caf\xe9\n")
        irc.expect("PRIVMSG")
        assert irc.raw_lines[-1].endswith(b" PRIVMSG #lobby :na\xefve caf\xe9")
        irc.send_raw(b"PRIVMSG #lobby :\xe9t\xe9\r\n")
        plain.wait_for_line(lambda line: line.endswith("\ufffdt\ufffd"))
        assert plain.raw_lines[-1].endswith(b": \xe9t\xe9")


def test_the_bytes_cross_cluster_nodes_as_they_came(backend: str, redis: RedisServer) -> None:
    with cluster_node(backend, redis, "a") as a, cluster_node(backend, redis, "b") as b:
        alice, bob = across(a, b)
        alice.send_raw(b"PRIVMSG #x :caf\xe9\r\nTOPIC #x :\xe9t\xe9\r\n")
        # Either order: on a Redis Cluster the channel's messages and the network's bus (topics)
        # are on different masters.
        bob.expect("PRIVMSG", "TOPIC")
        bob.expect("PRIVMSG", "TOPIC")
        got = bob.raw_lines[-2:]
        assert any(line.endswith(b" PRIVMSG #x :caf\xe9") for line in got), got
        assert any(line.endswith(b" TOPIC #x \xe9t\xe9") for line in got), got
        bob.send_raw(b"PRIVMSG alice :na\xefve\r\n")
        alice.expect("PRIVMSG")
        assert alice.raw_lines[-1].endswith(b" PRIVMSG alice :na\xefve")
