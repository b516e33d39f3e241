"""A one-line progress bar on stderr, redrawn in place on a terminal, one line per step otherwise."""

from __future__ import annotations

import time
from typing import TextIO

BAR_WIDTH = 24


class Progress:
    """Counts cases done out of a total and shows the case now running."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.total = 0
        self.done = -1
        self.started = time.monotonic()

    def start(self, total: int) -> None:
        self.total = max(1, total)
        self.done = -1
        self.started = time.monotonic()

    def step(self, label: str) -> None:
        self.done += 1
        filled = BAR_WIDTH * self.done // self.total
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        elapsed = time.monotonic() - self.started
        text = f"[{bar}] {self.done}/{self.total} {elapsed:5.0f}s  {label}"
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        elapsed = time.monotonic() - self.started
        text = f"[{'#' * BAR_WIDTH}] {self.total}/{self.total} {elapsed:5.0f}s  done"
        self.stream.write(("\r\x1b[K" + text + "\n") if self.tty else text + "\n")
        self.stream.flush()
