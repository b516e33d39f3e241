"""Buffers and bad input: long lines, invalid UTF-8, slow readers, max clients — both backends."""

from __future__ import annotations

from tests.helpers import IrcClient, running_server


def test_overlong_line_gets_417_and_connection_goes_on(backend: str) -> None:
    with running_server(backend) as server:
        a, b = server.client("a"), server.client("b")
        for client in (a, b):
            client.send("JOIN #l")
            client.expect("366")
        a.send("PRIVMSG #l :" + "x" * 600)
        assert a.expect("417")
        a.send("PRIVMSG #l :short one")
        assert b.expect("PRIVMSG").params == ("#l", "short one")


def test_invalid_utf8_is_relayed_without_crashing(backend: str) -> None:
    with running_server(backend) as server:
        a, b = server.client("a"), server.client("b")
        for client in (a, b):
            client.send("JOIN #u")
            client.expect("366")
        a.send_raw(b"PRIVMSG #u :caf\xe9 \xff\xfe\r\n")
        assert b.expect("PRIVMSG").params == ("#u", "caf\ufffd \ufffd\ufffd")
        assert b.raw_lines[-1].endswith(b"PRIVMSG #u :caf\xe9 \xff\xfe")  # relayed as they came
        a.send_raw(b"NICK \xff\xfe\r\n")
        assert a.expect("432")
        a.send("PRIVMSG #u :still here")
        assert b.expect("PRIVMSG").params == ("#u", "still here")


def test_slow_reader_is_cut_at_sendq_while_others_keep_receiving(backend: str) -> None:
    sendq = 64 * 1024
    with running_server(backend, sendq_bytes=sendq, flood_rate=0) as server:
        sender, reader = server.client("sender"), server.client("reader")
        sleeper = IrcClient(server.address, "sleeper", receive_buffer=4096)
        for client in (sender, reader, sleeper):
            client.send("JOIN #flood")
            client.until("366")
        sleeper.sync()
        text = "y" * 400
        # More than the sendq plus the kernel's send buffer (autotuned up to 4 MiB) hold.
        batches = (sendq + 6 * 1024 * 1024) // (len(text) * 100) + 1
        received = 0
        quits = []
        for _ in range(batches):
            for index in range(received, received + 100):
                sender.send(f"PRIVMSG #flood :{index} {text}")
            # The reader keeps up batch by batch: every message arrives, in order.
            target = received + 100
            while received < target:
                message = reader.expect("PRIVMSG", "QUIT")
                if message.command == "QUIT":
                    quits.append(message)
                    continue
                assert message.params[1].split(" ", 1)[0] == str(received)
                received += 1
        if not quits:
            quits.append(reader.expect("QUIT"))
        assert [(m.source.split("!")[0], m.params[0]) for m in quits] == [("sleeper", "SendQ exceeded")]
        # Its socket is closed: what the kernel had buffered drains, then end of file.
        # (The ERROR line is attempted, but cannot pass a full kernel buffer.)
        sleeper.wait_closed(timeout=30)


def test_max_clients_refuses_extra_connections(backend: str) -> None:
    with running_server(backend, max_clients=2) as server:
        first, second = server.client("one"), server.client("two")
        extra = IrcClient(server.address)
        lines = extra.wait_closed()
        assert lines and lines[0].startswith("ERROR") and "full" in lines[0]
        first.send("PRIVMSG two :still fine")
        assert second.expect("PRIVMSG").params == ("two", "still fine")
