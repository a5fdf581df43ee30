"""The live progress of a grid: one tqdm bar of cells (done, running, failed, ETA) plus lines.

The bar is drawn only on a terminal (tqdm's ``disable=None``); the per-cell lines always go to
``log``. Both executors drive it the same way.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from tqdm import tqdm


def stderr_line(line: str) -> None:
    """Print one line to stderr without breaking a live bar."""
    tqdm.write(line, file=sys.stderr)


class CellProgress:
    """Counts of a grid's cells; ``total`` cells, ``done_before`` of them finished earlier."""

    def __init__(self, total: int, *, done_before: int, log: Callable[[str], None]):
        self.log = log
        self.running = 0
        self.failed = 0
        self._bar = tqdm(total=total, initial=done_before, unit="cell", desc="cells",
                         file=sys.stderr, disable=None, dynamic_ncols=True)
        self._show()

    def started(self, count: int = 1) -> None:
        self.running += count
        self._show()

    def finished(self, status: str) -> None:
        self.running = max(0, self.running - 1)
        self.failed += status == "failed"
        self._bar.update(1)
        self._show()

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> CellProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _show(self) -> None:
        self._bar.set_postfix_str(f"running {self.running}, failed {self.failed}", refresh=True)
