"""The bench's side of the load generator: worker processes, commands out, replies in.

Every wait has a deadline, so a server that stops answering fails the run with a
message instead of hanging the bench.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from multiprocessing.connection import Connection, wait
from typing import Any

from bench.loadgen import worker_main


def _worker(conn: Connection, parent_end: Connection, addresses: list[tuple[str, int]], worker_id: int) -> None:
    # A forked worker inherits the bench's end of its own pipe; closing it here lets
    # the worker see end-of-file, and exit, when the bench goes away.
    parent_end.close()
    worker_main(conn, addresses, worker_id)


class GeneratorError(RuntimeError):
    """A generator process died or did not answer in time."""


class Generator:
    """``processes`` worker processes, each with its own selector loop and clients.

    ``address`` is one server, or a list of them (the nodes of a cluster scenario), in which
    case each setup group says how its clients are spread over them.
    """

    def __init__(self, address: tuple[str, int] | list[tuple[str, int]], processes: int) -> None:
        addresses = address if isinstance(address, list) else [address]
        context = multiprocessing.get_context("fork")
        self.pipes: list[Connection] = []
        self.processes: list[Any] = []
        self.connect_window = 128
        """Registrations each worker keeps in flight; lower for servers with a tiny listen backlog."""
        for worker_id in range(processes):
            parent, child = context.Pipe()
            process = context.Process(target=_worker, args=(child, parent, addresses, worker_id), daemon=True)
            process.start()
            child.close()
            self.pipes.append(parent)
            self.processes.append(process)

    def send(self, worker_id: int, op: str, **fields: Any) -> None:
        self.pipes[worker_id].send({"op": op, **fields})

    def collect(self, worker_ids: list[int], kind: str, timeout_s: float) -> list[dict[str, Any]]:
        """One reply of ``kind`` from each worker, in worker order; raises GeneratorError on timeout."""
        import time

        deadline = time.monotonic() + timeout_s
        replies: dict[int, dict[str, Any]] = {}
        waiting = {self.pipes[w]: w for w in worker_ids}
        while waiting:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GeneratorError(f"no {kind!r} reply from generator worker(s) {sorted(waiting.values())}")
            for pipe in wait(list(waiting), remaining):
                worker_id = waiting[pipe]  # type: ignore[index]
                try:
                    reply = pipe.recv()  # type: ignore[union-attr]
                except EOFError as error:
                    raise GeneratorError(f"generator worker {worker_id} died") from error
                if reply["kind"] != kind:
                    raise GeneratorError(f"worker {worker_id} answered {reply['kind']!r}, expected {kind!r}")
                replies[worker_id] = reply
                del waiting[pipe]  # type: ignore[arg-type]
        return [replies[w] for w in worker_ids]

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(BrokenPipeError, OSError):
                pipe.send({"op": "quit"})
        for process in self.processes:
            process.join(5.0)
            if process.is_alive():
                process.kill()
                process.join(2.0)
        for pipe in self.pipes:
            pipe.close()

    def __enter__(self) -> Generator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
