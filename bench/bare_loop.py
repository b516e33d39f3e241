"""The bare fan-out loop: what one Python thread can move, as a yardstick for chatd.

It speaks only what the load generator needs (NICK/USER -> 001, JOIN -> JOIN and
366, PRIVMSG to a channel or a nick, PING -> PONG, QUIT) and does no validation,
no case mapping, no limits: the least work per delivery a selectors loop can do
in Python. Writes are coalesced like chatd's: a delivery appends to the
recipient's buffer, and each buffer leaves in one ``send`` per loop turn.

Not a server for people: there is no sendq bound and no error handling beyond
dropping a broken connection.
"""

from __future__ import annotations

import argparse
import contextlib
import selectors
import signal
import socket
import sys
from collections.abc import Sequence

RECV_BYTES = 65536


class Conn:
    __slots__ = ("channels", "inbuf", "nick", "out", "pending", "prefix", "sock", "user", "writing")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbuf = b""
        self.out = bytearray()
        self.pending = False
        self.writing = False
        self.nick = b""
        self.user = b""
        self.prefix = b""
        self.channels: list[bytes] = []


class BareLoop:
    def __init__(self, host: str, port: int) -> None:
        self.listener = socket.create_server((host, port), backlog=1024, reuse_port=False)
        self.listener.setblocking(False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, None)
        self.channels: dict[bytes, dict[Conn, None]] = {}
        self.nicks: dict[bytes, Conn] = {}
        self.pending: list[Conn] = []
        self.running = True

    def queue(self, conn: Conn, data: bytes) -> None:
        conn.out += data
        if not conn.pending:
            conn.pending = True
            self.pending.append(conn)

    def handle(self, conn: Conn, line: bytes) -> None:
        verb, _, rest = line.partition(b" ")
        verb = verb.upper()
        if verb == b"PRIVMSG":
            target, _, _text = rest.partition(b" ")
            data = b":%s PRIVMSG %s\r\n" % (conn.prefix, rest)
            members = self.channels.get(target)
            if members is not None:
                for member in members:
                    if member is not conn:
                        member.out += data
                        if not member.pending:
                            member.pending = True
                            self.pending.append(member)
            elif (peer := self.nicks.get(target)) is not None:
                self.queue(peer, data)
        elif verb == b"PING":
            self.queue(conn, b":bare PONG bare %s\r\n" % rest)
        elif verb == b"NICK":
            conn.nick = rest.split(b" ", 1)[0].lstrip(b":")
            self.nicks[conn.nick] = conn
            self.welcome(conn)
        elif verb == b"USER":
            conn.user = rest.split(b" ", 1)[0]
            self.welcome(conn)
        elif verb == b"JOIN":
            name = rest.split(b" ", 1)[0]
            members = self.channels.setdefault(name, {})
            members[conn] = None
            conn.channels.append(name)
            joined = b":%s JOIN %s\r\n" % (conn.prefix, name)
            for member in members:
                self.queue(member, joined)
            self.queue(conn, b":bare 366 %s %s :End of /NAMES list\r\n" % (conn.nick, name))
        elif verb == b"QUIT":
            self.drop(conn)

    def welcome(self, conn: Conn) -> None:
        if conn.nick and conn.user and not conn.prefix:
            conn.prefix = b"%s!%s@127.0.0.1" % (conn.nick, conn.user)
            self.queue(conn, b":bare 001 %s :Welcome\r\n" % conn.nick)

    def drop(self, conn: Conn) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn.sock)
        for name in conn.channels:
            self.channels.get(name, {}).pop(conn, None)
        if self.nicks.get(conn.nick) is conn:
            del self.nicks[conn.nick]
        conn.out.clear()
        conn.sock.close()

    def accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.selector.register(sock, selectors.EVENT_READ, Conn(sock))

    def read(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.drop(conn)
            return
        lines = (conn.inbuf + data).split(b"\n")
        conn.inbuf = lines.pop()
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if line:
                self.handle(conn, line)

    def flush(self, conn: Conn) -> None:
        conn.pending = False
        out = conn.out
        if out:
            try:
                sent = conn.sock.send(out)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self.drop(conn)
                return
            del out[:sent]
        want = bool(out)
        if want != conn.writing and conn.sock.fileno() >= 0:
            conn.writing = want
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want else 0)
            self.selector.modify(conn.sock, events, conn)

    def serve(self) -> None:
        select = self.selector.select
        while self.running:
            for key, mask in select(1.0):
                conn = key.data
                if conn is None:
                    self.accept()
                    continue
                if mask & selectors.EVENT_WRITE:
                    self.flush(conn)
                if mask & selectors.EVENT_READ:
                    self.read(conn)
            pending, self.pending = self.pending, []
            for conn in pending:
                self.flush(conn)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_loop", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6667)
    args = parser.parse_args(argv)
    try:
        loop = BareLoop(args.host, args.port)
    except OSError as error:
        print(f"bare_loop: cannot listen on {args.host}:{args.port}: {error.strerror}", file=sys.stderr)
        return 1

    def stop(_signum: int, _frame: object) -> None:
        loop.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    loop.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
