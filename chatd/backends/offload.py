"""The hub's ``Offload`` for a running server: slow work on a small pool of worker threads.

Password hashing (scrypt, SCRAM's PBKDF2) and the account store's disk reads would stall
every client if they ran on the event loop. Here they run on ``WORKERS`` threads (hashlib
lets go of the GIL while it hashes), and the result goes back through the backend's
``post``, which runs it as the hub is called and then lets held clients go on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

log = logging.getLogger("chatd")

WORKERS = 2
"""Hashes at once: one per core of a small machine; more would only queue on the cores."""


class WorkerPool:
    """``Hub.offload`` over a thread pool; ``post`` brings a result back to the hub's thread."""

    def __init__(self, post: Callable[[Callable[[], None]], None]) -> None:
        self._post = post
        self._executor = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="chatd-worker")

    def __call__(self, work: Callable[[], Any], then: Callable[[Any], None]) -> None:
        try:
            self._executor.submit(self._run, work, then)
        except RuntimeError:  # shutting down: the client is going anyway
            return

    def _run(self, work: Callable[[], Any], then: Callable[[Any], None]) -> None:
        """On a worker thread, always: ``post`` takes the hub's lock in the threads backend, so it
        must never run on the caller's thread (a done-callback on a future that finished
        before the callback was added would, and deadlock)."""
        try:
            result = work()
        except Exception as error:
            log.error("background work failed: %r", error)
            return
        self._post(lambda: then(result))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
