"""The load generator's worker: one process, one selector, many IRC client sockets.

A worker is driven by the bench over a pipe whose end sits in the same selector
as the sockets, so commands arrive between I/O events and the loop never blocks
on anything but ``select``. Commands (a dict with ``"op"``) and their replies:

- ``setup``: open and register clients (optionally joining a channel), at most
  ``CONNECTS_IN_FLIGHT`` registrations at a time; replies ``ready`` with the time taken.
  A worker may know several server addresses (the nodes of a cluster); a group then
  says how its members are spread over them (member ``i`` on node ``(first + i * step) % nodes``).
  With ``ws_address`` every client of that setup speaks IRC over WebSocket there instead
  (``bench.wsload``: one binary message per line); the load and its accounting are the same.
- ``start``: reset CPU and latency baselines and start the load (fan-out senders,
  closed loop or blast, or private pairs); replies ``sent`` when the senders stop.
- ``expect``: the per-sender totals every receiver must reach; replies ``done``
  with delivery accounting once they all have (or at the deadline).
- ``quit``: close everything and exit.

Invariants:
- Every load PRIVMSG payload is ``<sender> <seq> <sent_ns> [padding]``. Each receiver
  keeps, per sender, the next sequence number it expects: a smaller one counts as a
  duplicate, a larger one as a loss. With the final totals from ``expect`` any lost,
  duplicated or reordered message is visible; the bench treats it as a failed run.
- Timestamps are ``time.monotonic_ns()``, one clock for every process on the machine,
  so latency may be measured across worker processes.
- Latency is recorded only at probe receivers (a fixed sample) to keep the generator's
  own cost per delivery small; every delivery is still checked for exactly-once. When
  ``start`` says which node each sender is on, probe latencies are also kept apart by
  whether the sender was on the receiver's node or another one (the cluster's Redis hop).
"""

from __future__ import annotations

import contextlib
import re
import resource
import selectors
import socket
import time
from multiprocessing.connection import Connection
from typing import Any

from bench.peers import Peer, Sender
from bench.procstat import raise_nofile_limit
from bench.wsload import WsLink

RECV_BYTES = 262144
CONNECTS_IN_FLIGHT = 128
BLAST_BATCH = 128
OUTBUF_HIGH_BYTES = 65536
CHECK_INTERVAL_S = 0.02
SLOW_RCVBUF_BYTES = 4096

LOAD_FIELDS = re.compile(rb" PRIVMSG [^ ]+ :(\d+) (\d+) (\d+)")
"""A load message's sender, sequence number and send time, wherever they are in a line."""
LOAD_LINES = re.compile(rb" PRIVMSG [^ \n]+ :(\d+) (\d+) (\d+)[^\n]*\n")
"""The same over many lines: one match per load line, never reaching across lines."""


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Worker:
    """The event loop of one generator process."""

    def __init__(self, conn: Connection, addresses: list[tuple[str, int]], worker_id: int) -> None:
        self.conn = conn
        self.addresses = addresses
        self.worker_id = worker_id
        self.selector = selectors.DefaultSelector()
        self.selector.register(conn.fileno(), selectors.EVENT_READ, None)
        self.peers: list[Peer] = []
        self.to_connect: list[tuple[bytes, bytes | None, str, int, tuple[str, int] | None]] = []
        self.connecting = 0
        self.connect_window = CONNECTS_IN_FLIGHT
        self.setup_started = 0.0
        self.senders: list[Sender] = []
        self.latencies: list[int] = []
        self.latencies_same: list[int] = []
        self.latencies_cross: list[int] = []
        self.sender_nodes: list[int] | None = None
        self.running = False
        self.mode = ""
        self.run_until = 0.0
        self.window = 1
        self.pad = b""
        self.expected: list[int] | None = None
        self.expect_deadline = 0.0
        self.cpu_start = 0.0
        self.load_started_ns = 0
        self.last_delivery_ns = 0
        self.round_trips = 0
        self.pending_reply: str | None = None
        self.quit = False
        self.errors: list[str] = []
        self.slow_quit_seen = False
        self.slow_grace_s = 0.0

    # ---- commands -----------------------------------------------------------------

    def on_command(self, command: dict[str, Any]) -> None:
        op = command["op"]
        if op == "setup":
            self.setup(command)
        elif op == "start":
            self.start(command)
        elif op == "expect":
            self.expected = command["sent"]
            self.expect_deadline = time.monotonic() + command["timeout_s"]
        elif op == "quit":
            self.quit = True
        else:
            raise ValueError(f"unknown command {op!r}")

    def setup(self, command: dict[str, Any]) -> None:
        """Queue the clients to open: ``groups`` is a list of ``[prefix, count, channel, kind]``, optionally
        with ``first, nodes[, step]``: member ``i`` on node ``(first + i * step) % nodes`` (step 0: all on first)."""
        ws = command.get("ws_address")
        ws_address = (ws[0], ws[1]) if ws else None
        for prefix, count, channel, kind, *spread in command["groups"]:
            chan = channel.encode() if channel else None
            first, nodes, step = (*spread, 1)[:3] if spread else (0, 1, 1)
            for i in range(count):
                self.to_connect.append((f"{prefix}{i}".encode(), chan, kind, (first + i * step) % nodes, ws_address))
        self.connect_window = command.get("connect_window", CONNECTS_IN_FLIGHT)
        self.setup_started = time.monotonic()
        self.setup_deadline = self.setup_started + command["timeout_s"]
        self.pending_reply = "ready"
        self._open_more()

    def start(self, command: dict[str, Any]) -> None:
        self.mode = command["mode"]
        self.window = command.get("window", 1)
        self.slow_grace_s = command.get("slow_grace_s", 0.0)
        self.pad = b" " + b"x" * command["pad"] if command.get("pad") else b""
        self.latencies = []
        self.latencies_same = []
        self.latencies_cross = []
        self.sender_nodes = command.get("sender_nodes")
        self.cpu_start = cpu_seconds()
        self.load_started_ns = time.monotonic_ns()
        self.last_delivery_ns = self.load_started_ns
        self.round_trips = 0
        for peer in self.peers:
            peer.deliveries = 0
        n_senders = command.get("senders", 0)
        probes = command.get("probes", 16)
        receivers = [p for p in self.peers if p.kind == "recv"]
        for peer in receivers[-probes:]:
            peer.probe = True
        if self.mode in ("closed", "blast"):
            sender_ids = command.get("sender_ids", [])
            for peer in receivers:
                peer.expect = [0] * n_senders
            by_nick = {peer.nick: peer for peer in self.peers}
            self.senders = [Sender(sid, by_nick[nick.encode()]) for sid, nick in sender_ids]
            for sender in self.senders:
                sender.peer.sender_id = sender.sid
            if self.senders and self.mode == "closed":
                # The last member to join is served last by the server: its receipt
                # acknowledges a message for the closed-loop window.
                last, before = receivers[-1], receivers[-2] if len(receivers) > 1 else receivers[-1]
                last.ack_for = frozenset(s.sid for s in self.senders if s.peer is not last)
                if last.sender_id >= 0:
                    before.ack_for = frozenset({last.sender_id})
            if not self.senders:
                self._reply("sent", sent=[])
                return
            self.running = True
            self.run_until = time.monotonic() + command.get("duration_s", 0.0)
            if self.mode == "blast":
                for sender in self.senders:
                    sender.blast_left = command["count"]
                for sender in self.senders:
                    self._blast(sender)
            else:
                for sender in self.senders:
                    for _ in range(self.window):
                        self._send_one(sender)
        elif self.mode == "pairs":
            for peer in self.peers:
                if peer.kind in ("pair-a", "pair-b"):
                    peer.expect = [0]
            self.running = True
            self.run_until = time.monotonic() + command["duration_s"]
            self.senders = []
            initiators = [p for p in self.peers if p.kind == "pair-a"]
            responders = [p for p in self.peers if p.kind == "pair-b"]
            for initiator, responder in zip(initiators, responders, strict=True):
                initiator.partner, responder.partner = responder, initiator
                initiator.sender_id = len(self.senders)
                self.senders.append(Sender(initiator.sender_id, initiator))
            for sender in self.senders:
                self._send_pair(sender, time.monotonic_ns())
        else:
            raise ValueError(f"unknown mode {self.mode!r}")

    def _reply(self, kind: str, **fields: Any) -> None:
        self.conn.send({"kind": kind, "worker": self.worker_id, **fields})

    # ---- connection setup ---------------------------------------------------------

    def _open_more(self) -> None:
        while self.to_connect and self.connecting < self.connect_window:
            nick, channel, kind, node, ws_address = self.to_connect.pop(0)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            if kind == "slow":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF_BYTES)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                sock.connect(ws_address or self.addresses[node])
            peer = Peer(sock, nick, channel)
            peer.kind = kind
            peer.node = node
            if ws_address is None:
                peer.outbuf += self._registration(peer)
            else:  # registration waits for the 101 (see _on_readable)
                peer.ws = WsLink(*ws_address)
                peer.outbuf += peer.ws.handshake()
            self.peers.append(peer)
            self.connecting += 1
            self.selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, peer)

    @staticmethod
    def _registration(peer: Peer) -> bytes:
        return b"NICK %s\r\nUSER %s 0 * :bench client\r\n" % (peer.nick, peer.nick)

    def _became_ready(self, peer: Peer) -> None:
        peer.ready = True
        self.connecting -= 1
        if peer.kind == "slow":
            # A consumer that stops reading: its bytes pile up at the server.
            self.selector.unregister(peer.sock)
        self._open_more()

    def _check_setup(self) -> None:
        if self.pending_reply != "ready":
            return
        if not self.to_connect and self.connecting == 0:
            self.pending_reply = None
            self._reply("ready", seconds=time.monotonic() - self.setup_started, clients=len(self.peers))
        elif time.monotonic() > self.setup_deadline:
            self.pending_reply = None
            ready = sum(1 for p in self.peers if p.ready)
            closed = sum(1 for p in self.peers if p.closed)
            self._reply(
                "ready",
                seconds=time.monotonic() - self.setup_started,
                clients=ready,
                error=f"only {ready} of {len(self.peers) + len(self.to_connect)} clients ready "
                f"({closed} closed by the server) before the deadline",
            )

    # ---- sending --------------------------------------------------------------------

    def _write(self, peer: Peer, data: bytes) -> None:
        peer.outbuf += data if peer.ws is None else peer.ws.frames(data)
        if not peer.wants_write:
            self._flush(peer)

    def _flush(self, peer: Peer) -> None:
        if peer.closed:
            return
        out = peer.outbuf
        if out:
            try:
                sent = peer.sock.send(out)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._lost(peer)
                return
            del out[:sent]
        want = bool(out)
        if want != peer.wants_write and not (peer.kind == "slow" and peer.ready):
            peer.wants_write = want
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want else 0)
            self.selector.modify(peer.sock, events, peer)

    def _send_one(self, sender: Sender) -> None:
        sender.in_flight += 1
        seq = sender.sent
        sender.sent += 1
        line = b"PRIVMSG #bench :%d %d %d%s\r\n" % (sender.sid, seq, time.monotonic_ns(), self.pad)
        self._write(sender.peer, line)

    def _blast(self, sender: Sender) -> None:
        """Top up a blast sender's buffer; TCP flow control is the only brake."""
        peer = sender.peer
        while sender.blast_left and len(peer.outbuf) < OUTBUF_HIGH_BYTES:
            batch = min(BLAST_BATCH, sender.blast_left)
            now = time.monotonic_ns()
            sid, seq, pad = sender.sid, sender.sent, self.pad
            lines = b"".join(b"PRIVMSG #bench :%d %d %d%s\r\n" % (sid, seq + i, now, pad) for i in range(batch))
            peer.outbuf += lines if peer.ws is None else peer.ws.frames(lines)
            sender.sent += batch
            sender.blast_left -= batch
            self._flush(peer)
            if peer.wants_write:
                break
        if not sender.blast_left and self.running and all(not s.blast_left for s in self.senders):
            self.running = False
            self._reply("sent", sent=self._sent_counts())

    def _sent_counts(self) -> list[tuple[int, int]]:
        return [(s.sid, s.sent) for s in self.senders]

    def _send_pair(self, sender: Sender, sent_ns: int) -> None:
        peer = sender.peer
        assert peer.partner is not None
        seq = sender.sent
        sender.sent += 1
        self._write(peer, b"PRIVMSG %s :0 %d %d\r\n" % (peer.partner.nick, seq, sent_ns))

    # ---- receiving ------------------------------------------------------------------

    def _on_readable(self, peer: Peer) -> None:
        try:
            data = peer.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._lost(peer)
            return
        if not data:
            if peer.ws is not None:
                peer.ws.receive_eof()
            self._lost(peer)
            return
        if peer.ws is not None:
            data = self._from_websocket(peer, data)
            if not data:
                return
        now = time.monotonic_ns()
        if peer.inbuf:
            data = peer.inbuf + data
        if peer.ready:
            # One regex pass over the read: each match is one whole load line. When every
            # line matched (the usual case) there is nothing else to look at.
            cut = data.rfind(b"\n") + 1
            complete, peer.inbuf = data[:cut], data[cut:]
            records = LOAD_LINES.findall(complete)
            if len(records) == complete.count(b"\n"):
                self._account(peer, records, now)
                return
            self._deliver(peer, complete.split(b"\n")[:-1], now)
            return
        lines = data.split(b"\n")
        peer.inbuf = lines.pop()
        if not peer.ready:
            for index, line in enumerate(lines):
                self._control(peer, line)
                if peer.ready:
                    self._deliver(peer, lines[index + 1 :], now)
                    break
            return
        self._deliver(peer, lines, now)

    def _from_websocket(self, peer: Peer, data: bytes) -> bytes:
        """The IRC lines in what a WebSocket peer read; registers it once the handshake is done."""
        link = peer.ws
        assert link is not None
        was_open = link.open
        lines, reply = link.receive(data)
        if reply:
            self._write_raw(peer, reply)
        if link.open and not was_open:
            self._write(peer, self._registration(peer))
        if link.failed is not None and not peer.closed:
            if not peer.ready:
                self.errors.append(f"{peer.nick.decode()}: {link.failed}")
            self._lost(peer)
        return lines

    def _write_raw(self, peer: Peer, data: bytes) -> None:
        peer.outbuf += data
        if not peer.wants_write:
            self._flush(peer)

    def _deliver(self, peer: Peer, lines: list[bytes], now: int) -> None:
        records = []
        for line in lines:
            match = LOAD_FIELDS.search(line)
            if match is None:
                self._control(peer, line)
            else:
                records.append(match.groups())
        self._account(peer, records, now)

    def _account(self, peer: Peer, records: list[tuple[bytes, bytes, bytes]], now: int) -> None:
        """Count load messages (sender, seq, sent_ns) against what each sender has sent."""
        expect = peer.expect
        for raw_sid, raw_seq, sent_ns in records:
            sid = int(raw_sid)
            seq = int(raw_seq)
            wanted = expect[sid]
            if seq == wanted:
                expect[sid] = wanted + 1
            elif seq < wanted:
                peer.dups += 1
            else:
                peer.gaps += seq - wanted
                expect[sid] = seq + 1
            if peer.probe:
                latency = now - int(sent_ns)
                self.latencies.append(latency)
                if self.sender_nodes is not None:
                    same = self.sender_nodes[sid] == peer.node
                    (self.latencies_same if same else self.latencies_cross).append(latency)
            if sid in peer.ack_for:
                sender = self.senders[sid]
                sender.in_flight -= 1
                if self.running:
                    self._send_one(sender)
            elif peer.kind == "pair-b":
                self._write(peer, b"PRIVMSG %s :0 %d %s\r\n" % (peer.partner.nick, seq, sent_ns))  # type: ignore[union-attr]
            elif peer.kind == "pair-a":
                self.latencies.append(now - int(sent_ns))
                self.round_trips += 1
                if self.running:
                    self._send_pair(self.senders[peer.sender_id], time.monotonic_ns())
        if records:
            peer.deliveries += len(records)
            self.last_delivery_ns = now

    def _control(self, peer: Peer, line: bytes) -> None:
        """Registration, joins, pings and errors: everything that is not load traffic."""
        line = line.rstrip(b"\r")
        if line.startswith(b"PING"):
            self._write(peer, b"PONG" + line[4:] + b"\r\n")
            return
        if line.startswith(b"ERROR"):
            peer.cut = True
            return
        parts = line.split(b" ", 3)
        if len(parts) < 2:
            return
        verb = parts[1]
        if verb == b"QUIT" and parts[0].startswith(b":slow"):
            self.slow_quit_seen = True
        elif verb == b"001" and not peer.registered:
            peer.registered = True
            if peer.channel:
                self._write(peer, b"JOIN %s\r\n" % peer.channel)
            else:
                self._became_ready(peer)
        elif verb == b"366" and not peer.ready and peer.channel and len(parts) > 3:
            if parts[3].split(b" ", 1)[0].lower() == peer.channel.lower():
                self._became_ready(peer)
        elif verb in (b"433", b"432", b"451", b"461") and not peer.ready:
            self.errors.append(line.decode("utf-8", "replace")[:200])

    def _lost(self, peer: Peer) -> None:
        if peer.closed:
            return
        peer.closed = True
        peer.cut = True
        if not peer.ready:
            self.connecting -= 1
            self.errors.append(f"{peer.nick.decode()} closed before it was ready")
            self._open_more()
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(peer.sock)
        with contextlib.suppress(OSError):
            peer.sock.close()

    # ---- completion -------------------------------------------------------------------

    def _check_run(self) -> None:
        if self.running and self.mode in ("closed", "pairs") and self._run_over():
            self.running = False
            if self.mode == "closed":
                self._reply("sent", sent=self._sent_counts())
            else:
                self.pending_reply = "pairs"
                self.expect_deadline = time.monotonic() + 10.0
        if self.pending_reply == "pairs":
            # A pair is finished when the initiator has its last answer back.
            settled = all(s.peer.expect[0] >= s.sent for s in self.senders)
            if settled or time.monotonic() > self.expect_deadline:
                self.pending_reply = None
                self.expected = [s.sent for s in self.senders]
                self._finish(pairs=True)
        if self.expected is not None and (self._all_received() or time.monotonic() > self.expect_deadline):
            self._finish(pairs=False)

    def _run_over(self) -> bool:
        """The duration has passed and, with a slow consumer, the server cut it (or the grace ran out)."""
        now = time.monotonic()
        if now < self.run_until:
            return False
        if self.slow_quit_seen or not any(p.kind == "slow" for p in self.peers):
            return True
        return now >= self.run_until + self.slow_grace_s

    def _all_received(self) -> bool:
        expected = self.expected
        assert expected is not None
        for peer in self.peers:
            if peer.kind != "recv" or peer.closed:
                continue
            expect = peer.expect
            for sid, total in expected:
                if sid != peer.sender_id and expect[sid] < total:
                    return False
        return True

    def _finish(self, *, pairs: bool) -> None:
        expected = self.expected or []
        missing = dups = gaps = deliveries = lost_clients = 0
        for peer in self.peers:
            deliveries += peer.deliveries
            dups += peer.dups
            gaps += peer.gaps
            if pairs and peer.kind in ("pair-a", "pair-b"):
                sender_id = peer.sender_id if peer.kind == "pair-a" else peer.partner.sender_id  # type: ignore[union-attr]
                total = expected[sender_id]
                missing += max(0, total - peer.expect[0])
            elif not pairs and peer.kind == "recv":
                if peer.closed:
                    lost_clients += 1
                for sid, total in expected:
                    if sid != peer.sender_id:
                        missing += max(0, total - peer.expect[sid])
        slow = [p for p in self.peers if p.kind == "slow"]
        slow_cut = None
        if slow:
            slow_cut = all(self._probe_cut(p) for p in slow)
        self.expected = None
        self._reply(
            "done",
            deliveries=deliveries,
            dups=dups,
            gaps=gaps,
            missing=missing,
            lost_clients=lost_clients,
            round_trips=self.round_trips,
            latencies_ns=self.latencies,
            latencies_same_ns=self.latencies_same,
            latencies_cross_ns=self.latencies_cross,
            cpu_s=cpu_seconds() - self.cpu_start,
            first_ns=self.load_started_ns,
            last_ns=self.last_delivery_ns,
            slow_cut=slow_cut,
            errors=self.errors[:5],
        )

    def _probe_cut(self, peer: Peer) -> bool:
        """Did the server cut this non-reading client? Read what it holds: EOF or ERROR says yes."""
        if peer.cut or peer.closed or self.slow_quit_seen:
            return True
        peer.sock.setblocking(False)
        deadline = time.monotonic() + 2.0
        tail = b""
        while time.monotonic() < deadline:
            try:
                data = peer.sock.recv(RECV_BYTES)
            except (BlockingIOError, InterruptedError):
                time.sleep(0.01)
                continue
            except OSError:
                return True
            if not data:
                return True
            tail = (tail + data)[-4096:]
            if b"\nERROR " in tail or tail.startswith(b"ERROR "):
                return True
        return False

    # ---- the loop -----------------------------------------------------------------------

    def run(self) -> None:
        while not self.quit:
            for key, mask in self.selector.select(CHECK_INTERVAL_S):
                peer = key.data
                if peer is None:
                    self.on_command(self.conn.recv())
                    continue
                if mask & selectors.EVENT_WRITE and not peer.closed:
                    self._flush(peer)
                    if peer.sender_id >= 0 and self.mode == "blast" and self.running:
                        self._blast(self.senders[peer.sender_id])
                if mask & selectors.EVENT_READ and not peer.closed:
                    self._on_readable(peer)
            self._check_setup()
            self._check_run()
        for peer in self.peers:
            with contextlib.suppress(OSError):
                peer.sock.close()
        self.selector.close()


def worker_main(conn: Connection, addresses: list[tuple[str, int]], worker_id: int) -> None:
    """Entry point of a generator process; ``addresses`` are the server's nodes (usually one)."""
    raise_nofile_limit()
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError, EOFError):
        Worker(conn, addresses, worker_id).run()
