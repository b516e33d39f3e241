"""A selectors loop in a thread of its own, for testing ``chatd.cluster.loop_link`` without a chat server.

Why not ``SelectorsServer`` itself: the link's tests want the link alone, with no hub, no
listeners and no node in the way. Why not a fake: the link's contract is with a real loop
(``loop_link.Reactor``), and its bugs would hide in a fake one. So this loop turns as
``SelectorsServer.serve_forever`` does, in the same order: the selector's events (a key's data
gets ``on_readable()`` then ``flush()``, each only while it is not ``closed``; ``None`` is the
wake socket, whose posted callables then run), the due timers, and last the turn's
``pending`` connections flushed and the list cleared.

The test's thread reaches the loop only through ``post`` (any thread) and ``call`` (any thread:
runs a callable on the loop and hands back its result or exception). An exception that escapes
a callback the loop itself runs is kept and raised again by ``stop``, so no failure on the loop
goes unseen.
"""

from __future__ import annotations

import contextlib
import heapq
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")
CALL_TIMEOUT_S = 30.0
"""How long ``call`` waits for the loop: far past ``LoopLink.stop``'s own bound, so only a stuck loop hits it."""


class LoopReactor:
    """``loop_link.Reactor`` on a loop thread: ``start``, then ``post``/``call`` from anywhere, ``stop`` once."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.pending: list[Any] = []
        """Connections with output this turn (they append themselves): flushed at the end of the turn."""
        self.errors: list[BaseException] = []
        """What escaped a callback the loop ran (``stop`` raises the first)."""
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_seq = 0
        self._posted: deque[Callable[[], None]] = deque()
        self._posted_lock = threading.Lock()
        self._wake_sent = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="test-loop", daemon=True)

    # ---- any thread --------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def post(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the loop soon; one wake-up byte per batch, as ``SelectorsServer.post``."""
        with self._posted_lock:
            self._posted.append(callback)
            if self._wake_sent:
                return
            self._wake_sent = True
        with contextlib.suppress(OSError):  # full: already readable; closed: the loop is gone
            self._wake_w.send(b"p")

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the loop and return what it returns (or raise what it raises). Blocks until
        then; on the loop's own thread (a callback of the link) it runs ``fn`` at once."""
        if threading.current_thread() is self._thread:
            return fn()
        if self._stopping or not self._thread.is_alive():
            raise RuntimeError("the test loop is not running")
        future: Future[T] = Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as error:
                future.set_exception(error)

        self.post(run)
        return future.result(timeout=CALL_TIMEOUT_S)

    def stop(self) -> None:
        """End the loop (callables still queued are dropped), close it, and raise what escaped a callback."""
        if self._thread.is_alive():
            self._stopping = True
            with contextlib.suppress(OSError):
                self._wake_w.send(b"s")
            self._thread.join(CALL_TIMEOUT_S)
            assert not self._thread.is_alive(), "the test loop did not stop"
        self.selector.close()
        self._wake_r.close()
        self._wake_w.close()
        if self.errors:
            raise self.errors[0]

    # ---- the loop's thread ---------------------------------------------------------

    def call_at(self, deadline: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the monotonic clock passes ``deadline`` (on the loop's thread only)."""
        self._timer_seq += 1
        heapq.heappush(self._timers, (deadline, self._timer_seq, callback))

    def _run(self) -> None:
        read_event, write_event = selectors.EVENT_READ, selectors.EVENT_WRITE
        while not self._stopping:
            timeout = max(0.0, self._timers[0][0] - time.monotonic()) if self._timers else None
            for key, mask in self.selector.select(timeout):
                data = key.data
                if data is None:
                    self._run_posted()
                    continue
                if mask & read_event and not data.closed:
                    self._guarded(data.on_readable)
                if mask & write_event and not data.closed:
                    self._guarded(data.flush)
            self._run_timers()
            self._flush_pending()

    def _guarded(self, callback: Callable[[], object]) -> None:
        try:
            callback()
        except Exception as error:
            self.errors.append(error)

    def _run_posted(self) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while self._wake_r.recv(4096):
                pass
        with self._posted_lock:
            self._wake_sent = False
            batch, self._posted = self._posted, deque()
        for callback in batch:
            self._guarded(callback)

    def _run_timers(self) -> None:
        timers, now = self._timers, time.monotonic()
        while timers and timers[0][0] <= now:
            _, _, callback = heapq.heappop(timers)
            self._guarded(callback)

    def _flush_pending(self) -> None:
        """Walked by index: a flush that fails (the link going down) may append to the list."""
        pending, index = self.pending, 0
        while index < len(pending):
            self._guarded(pending[index].flush)
            index += 1
        pending.clear()
