"""``chatd --workers N``: one supervisor process running N cluster nodes behind one port.

One Python process uses one core. With ``--cluster`` several chatd nodes form one network
over Redis; ``--workers N`` starts N of them on this machine, all listening on the same
``--port`` with SO_REUSEPORT, so the kernel spreads new connections over their accept queues.

Why child *processes started afresh* (``python -m chatd ... --workers 0 --reuse-port
--node-id <base>-<i>``) and not ``os.fork()``:

- a forked child would inherit whatever the parent had set up (logging handlers, a
  history store, threads of a Redis bridge) and fork does not copy threads, so the
  parent would have to be kept carefully empty; a fresh interpreter starts from a
  known state and runs exactly the code path of a single ``chatd``;
- a restarted child is started the same way as the first, so there is one code path;
- each child binds its own socket with SO_REUSEPORT, which gives one accept queue per
  process; one socket bound by the parent and inherited would be one queue that every
  child polls, and on Linux the busiest process tends to win those races.

Invariants:

- The supervisor never binds the chat port and never builds a Hub: it only starts, watches,
  restarts and stops children. Everything chat-related happens in the children.
- A child is *ready* when it has bound its listeners and said so on the supervisor's
  notification socket (the ``NOTIFY_SOCKET`` protocol of systemd: ``READY=1`` and
  ``MAINPID=<pid>`` in one datagram); a child that exits before that *could not start*.
- At startup, any child that cannot start (port taken, bad Redis URL, ...) stops the whole
  supervisor with a non-zero status: a half-started network is not quietly served.
- At startup the first child runs alone until it is ready, then the others start together:
  the children share ``--data-dir``, and the first one creates (or migrates) the history
  database before anyone else opens it. Two processes creating the schema at once would
  race ("table messages already exists").
- Once running, a child that dies without being asked is restarted after a back-off that
  doubles with each quick death (``RESTART_BACKOFF_MIN_S`` to ``RESTART_BACKOFF_MAX_S``) and
  starts over once a child has run ``BACKOFF_RESET_S``; every death and restart is logged.
- SIGTERM or SIGINT to the supervisor is forwarded to every child as SIGTERM; the supervisor
  exits 0 once they all have exited 0 (each flushes its clients first) or were ended by that
  SIGTERM, 1 otherwise; a child still running ``STOP_GRACE_S`` later is killed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

log = logging.getLogger("chatd.workers")

READY_TIMEOUT_S = 30.0
"""How long a child may take to bind its port and report ready (importing, opening Redis)."""
RESTART_BACKOFF_MIN_S = 0.5
RESTART_BACKOFF_MAX_S = 30.0
BACKOFF_RESET_S = 60.0
"""A child that ran at least this long before it died is restarted after the minimum back-off."""
STOP_GRACE_S = 10.0
"""After forwarding SIGTERM, how long to wait before killing a child (chatd itself needs ~2 s)."""
WAKE_INTERVAL_S = 1.0
"""Longest sleep of the supervisor's loop; SIGCHLD and notifications wake it sooner."""
PR_SET_PDEATHSIG = 1


def notify_ready() -> None:
    """Tell whoever started this process that it is listening, if it asked (``NOTIFY_SOCKET``).

    That is the ``chatd --workers`` supervisor, or systemd for a ``Type=notify`` unit. Does
    nothing when the variable is unset; never raises (a supervisor that went away must not
    stop a node from serving).
    """
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    address = "\0" + path[1:] if path.startswith("@") else path
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(f"READY=1\nMAINPID={os.getpid()}".encode(), address)


def child_argv(argv: Sequence[str], node_id: str) -> list[str]:
    """The command line of one child: the supervisor's own options, then the overrides.

    The overrides come last because argparse keeps the last value given, which also
    beats ``CHATD_WORKERS`` and a config file; so the user's options are never parsed or
    rewritten here (abbreviations and ``--opt=value`` forms all stay as they were).
    """
    return [sys.executable, "-m", "chatd", *argv, "--workers", "0", "--reuse-port", "--node-id", node_id]


def _parent_death_signal() -> Callable[[], None] | None:
    """What a child runs between fork and exec so that it gets SIGTERM when the supervisor dies
    (even by SIGKILL), and no node keeps serving unsupervised. Linux only; None elsewhere.

    libc is looked up here, in the supervisor, so the forked child only makes one call and
    imports nothing (nothing but async-signal-safe work belongs between fork and exec).
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def set_signal() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    return set_signal


@dataclass
class Slot:
    """One of the N places a child runs in; it keeps its node id across restarts."""

    index: int
    node_id: str
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    ready: bool = False
    quick_deaths: int = 0
    restart_at: float | None = None
    stop_code: int | None = None
    """The exit status of the process that was running when the supervisor was told to stop."""


class Supervisor:
    """Starts ``workers`` children with ``command(node_id)`` and keeps them running.

    ``run()`` blocks until the supervisor is told to stop (or a child cannot start) and
    returns the exit status for the CLI. Call it from the main thread: it installs
    handlers for SIGTERM, SIGINT and SIGCHLD.
    """

    def __init__(self, command: Callable[[str], list[str]], workers: int, node_id_base: str) -> None:
        self.command = command
        self.slots = [Slot(i, f"{node_id_base}-{i}") for i in range(1, workers + 1)]
        self.stopping = False
        self.stop_deadline = 0.0
        self.startup = True
        self._rest_started = False
        self.failed = False
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify_name = f"chatd-workers-{os.getpid()}-{os.urandom(4).hex()}"
        self._notify.bind("\0" + self._notify_name)
        self._notify.setblocking(False)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._signals: list[int] = []
        self._preexec = _parent_death_signal()

    # ---- children ---------------------------------------------------------------------

    def _spawn(self, slot: Slot) -> None:
        env = dict(os.environ, NOTIFY_SOCKET="@" + self._notify_name)
        slot.process = subprocess.Popen(
            self.command(slot.node_id), stdin=subprocess.DEVNULL, env=env, preexec_fn=self._preexec
        )
        slot.started_at = time.monotonic()
        slot.ready = False
        slot.restart_at = None
        log.info("worker %d (node %s) started, pid %d", slot.index, slot.node_id, slot.process.pid)

    def _on_notify(self) -> None:
        while True:
            try:
                data = self._notify.recv(4096)
            except (BlockingIOError, InterruptedError):
                return
            fields = dict(line.split("=", 1) for line in data.decode(errors="replace").splitlines() if "=" in line)
            if fields.get("READY") != "1" or not fields.get("MAINPID", "").isdigit():
                continue
            pid = int(fields["MAINPID"])
            for slot in self.slots:
                if slot.process is not None and slot.process.pid == pid and not slot.ready:
                    slot.ready = True
                    log.info("worker %d (node %s) ready", slot.index, slot.node_id)
            if self.startup and not self.stopping and self.slots[0].ready and not self._rest_started:
                self._rest_started = True
                for slot in self.slots[1:]:
                    self._spawn(slot)
            if self.startup and all(slot.ready for slot in self.slots):
                self.startup = False
                log.info("all %d workers ready", len(self.slots))
                # Our own environment still holds systemd's NOTIFY_SOCKET (the children got
                # ours): a Type=notify unit running ``chatd --workers`` is ready now.
                notify_ready()

    def _reap(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            process = slot.process
            if process is None or process.poll() is None:
                continue
            code = process.returncode
            slot.process = None
            ran_s = now - slot.started_at
            if self.stopping:
                slot.stop_code = code
                log.info("worker %d (node %s) stopped with status %d", slot.index, slot.node_id, code)
                continue
            if self.startup and not slot.ready:
                log.error("worker %d (node %s) could not start: exit status %d", slot.index, slot.node_id, code)
                self.failed = True
                self._begin_stop()
                continue
            slot.quick_deaths = 0 if ran_s >= BACKOFF_RESET_S else slot.quick_deaths + 1
            delay = min(RESTART_BACKOFF_MAX_S, RESTART_BACKOFF_MIN_S * 2 ** max(0, slot.quick_deaths - 1))
            slot.restart_at = now + delay
            log.warning(
                "worker %d (node %s) exited unexpectedly with status %d after %.1f s; restarting in %.1f s",
                slot.index,
                slot.node_id,
                code,
                ran_s,
                delay,
            )

    def _check_timers(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if self.stopping:
                process = slot.process
                if process is not None and now >= self.stop_deadline and process.poll() is None:
                    log.warning("worker %d (node %s) still running; killing it", slot.index, slot.node_id)
                    process.kill()
                continue
            if slot.process is None and slot.restart_at is not None and now >= slot.restart_at:
                self._spawn(slot)
            elif slot.process is not None and not slot.ready and now - slot.started_at > READY_TIMEOUT_S:
                log.error("worker %d (node %s) not ready after %.0f s", slot.index, slot.node_id, READY_TIMEOUT_S)
                if self.startup:
                    self.failed = True
                    self._begin_stop()
                else:
                    slot.process.kill()  # reaped next turn, then restarted with back-off

    def _begin_stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.stop_deadline = time.monotonic() + STOP_GRACE_S
        for slot in self.slots:
            slot.restart_at = None
            if slot.process is not None and slot.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    slot.process.send_signal(signal.SIGTERM)

    # ---- the loop ---------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: object) -> None:
        # Only note it: the wake-up fd makes select() return, and the loop does the work.
        self._signals.append(signum)

    def _next_timeout(self) -> float:
        now = time.monotonic()
        deadlines = [slot.restart_at for slot in self.slots if slot.restart_at is not None]
        deadlines += [slot.started_at + READY_TIMEOUT_S for slot in self.slots if slot.process and not slot.ready]
        if self.stopping:
            deadlines.append(self.stop_deadline)
        return max(0.0, min([now + WAKE_INTERVAL_S, *deadlines]) - now)

    def run(self) -> int:
        """Start every child, supervise them until told to stop; the process's exit status."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)}
        old_wakeup = signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        selector = selectors.DefaultSelector()
        selector.register(self._notify, selectors.EVENT_READ)
        selector.register(self._wake_r, selectors.EVENT_READ)
        try:
            self._spawn(self.slots[0])  # the others once it is ready: see the module's invariants
            while not (self.stopping and all(slot.process is None for slot in self.slots)):
                for key, _ in selector.select(self._next_timeout()):
                    if key.fileobj is self._notify:
                        self._on_notify()
                    else:
                        with contextlib.suppress(BlockingIOError, InterruptedError):
                            self._wake_r.recv(4096)
                for signum in self._signals:
                    if signum != signal.SIGCHLD and not self.stopping:
                        log.info("received %s, stopping %d workers", signal.Signals(signum).name, len(self.slots))
                        self._begin_stop()
                self._signals.clear()
                self._reap()
                self._check_timers()
        finally:
            selector.close()
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for slot in self.slots:  # only on an unexpected exception: never leave children behind
                if slot.process is not None and slot.process.poll() is None:
                    slot.process.kill()
                    slot.process.wait()
            self._notify.close()
            self._wake_r.close()
            self._wake_w.close()
        if self.failed:
            return 1
        # -SIGTERM: a child stopped by our SIGTERM before it had installed its own handler.
        clean = all(slot.stop_code in (0, None, -signal.SIGTERM) for slot in self.slots)
        log.info("all workers stopped%s", "" if clean else " (not all cleanly)")
        return 0 if clean else 1


def run_workers(argv: Sequence[str], workers: int, node_id_base: str) -> int:
    """Supervise ``workers`` copies of ``chatd <argv>``; the exit status for ``chatd --workers``."""
    supervisor = Supervisor(lambda node_id: child_argv(argv, node_id), workers, node_id_base)
    log.info("supervising %d workers (node ids %s-1 to %s-%d)", workers, node_id_base, node_id_base, workers)
    return supervisor.run()
