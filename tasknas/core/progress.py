"""A small text progress bar for long loops (supernet training, search); no dependencies."""
from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """``bar.update(n, note)`` redraws ``[####....] n/total note`` in place on a terminal; elsewhere (logs,
    CI) it prints a line at most every ``min_interval`` seconds and at the end."""

    def __init__(self, total: int, label: str = "", stream: TextIO | None = None, width: int = 24,
                 min_interval: float = 2.0):
        self.total = max(int(total), 1)
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.min_interval = min_interval
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.monotonic()
        self._last = -float("inf")

    def update(self, done: int, note: str = "") -> None:
        now = time.monotonic()
        final = done >= self.total
        if not final and not self.tty and now - self._last < self.min_interval:
            return
        self._last = now
        filled = int(self.width * min(done, self.total) / self.total)
        elapsed = now - self.start
        eta = elapsed / done * (self.total - done) if 0 < done < self.total else 0.0
        line = (f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} "
                f"{elapsed:5.0f}s eta {eta:4.0f}s {note}")
        if self.tty:
            self.stream.write("\r" + line.ljust(100) + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
