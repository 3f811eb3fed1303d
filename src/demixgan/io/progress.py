"""Progress that moves: a bar on a terminal, plain log lines anywhere else, nothing when off.

Every long job (GAN and separator training, latent fits, evaluations, reproduce stages) reports
through ``progress_bar``: on a terminal a tqdm bar redrawn at least every ``REFRESH_S``
seconds (tqdm's own ``maxinterval`` would let a slow step hold it for 10 s), in a log file or
a pipe one clean line every ``LOG_EVERY_S`` seconds (no carriage returns), and nothing with
``enabled=False`` (``--no-progress``). Callers update it by fractions too: a latent fit
reports each iteration of a chunk as a share of its mixtures, so the bar and its ETA move
during a chunk instead of jumping at its end.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

#: Longest time between two redraws of a terminal bar, and between two log lines elsewhere.
REFRESH_S = 2.0
LOG_EVERY_S = 10.0


def progress_bar(
    total: float, description: str, *, unit: str = "it", enabled: bool = True, initial: float = 0
) -> Any:
    """A tqdm bar on a terminal, ``LogLines`` elsewhere; disabled: a bar that shows nothing."""
    from tqdm import tqdm

    stream = sys.stderr
    if enabled and not stream.isatty():
        return LogLines(total, description, unit, stream, initial)
    return tqdm(
        total=total,
        initial=initial,
        desc=description,
        unit=unit,
        disable=not enabled,
        dynamic_ncols=True,
        mininterval=0.5,
        maxinterval=REFRESH_S,
    )


class LogLines:
    """The bar's interface (update, set_postfix, close, a context manager) as log lines."""

    def __init__(
        self, total: float, description: str, unit: str, stream: TextIO, initial: float = 0
    ) -> None:
        self.total, self.description, self.unit, self.stream = total, description, unit, stream
        self.n, self.postfix = initial, ""
        self.started = self.last = time.monotonic()
        self.first = initial

    def update(self, n: float = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= LOG_EVERY_S:
            self.last = now
            self._write(now)

    def set_postfix(self, values: dict[str, Any]) -> None:
        self.postfix = ", ".join(f"{key}={value}" for key, value in values.items())

    def close(self) -> None:
        if self.n > self.first:
            self._write(time.monotonic())
        self.first = self.n  # a second close writes nothing

    def _write(self, now: float) -> None:
        elapsed = now - self.started
        done = self.n - self.first
        line = f"{self.description}: {self.n:,.0f}/{self.total:,.0f} {self.unit}"
        if self.total:
            line += f" ({100 * self.n / self.total:.0f}%)"
        line += f", {elapsed:.0f} s"
        if done > 0 and self.total - self.n > 1e-6:  # fractional updates round
            line += f", about {elapsed / done * (self.total - self.n):.0f} s left"
        if self.postfix:
            line += f" [{self.postfix}]"
        print(line, file=self.stream, flush=True)

    def __enter__(self) -> LogLines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
