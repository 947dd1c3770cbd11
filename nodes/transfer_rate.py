"""The rate and time left of long work (addserver's catch-up, backup's
download), from samples of how much is done: pure, no clock of its own."""

from __future__ import annotations

from collections import deque

WINDOW_S = 5.0


class TransferRate:
    """Units per second over the last ``window_s`` seconds of samples, and
    the seconds left at that rate. A moving window, so that a transfer
    that slows down (or resumes after a stall) shows its rate now, not
    its average since the start."""

    def __init__(self, window_s: float = WINDOW_S):
        self._window_s = window_s
        # (time, done), oldest first; the oldest may be older than the
        # window, so that a rate spans the whole window.
        self._samples: deque[tuple[float, float]] = deque()
        self.done = 0.0
        self.total: float | None = None

    def add(self, now: float, done: float, total: float | None = None) -> None:
        """Record that ``done`` of ``total`` (None: unknown) is done at
        ``now`` (seconds, any monotonic clock)."""
        if self._samples and done < self._samples[-1][1]:
            # Work that went back (a transfer started over) starts a new rate.
            self._samples.clear()
        self._samples.append((now, done))
        while len(self._samples) > 2 and self._samples[1][0] <= now - self._window_s:
            self._samples.popleft()
        self.done, self.total = done, total

    def rate(self) -> float | None:
        """Units per second over the window; None before two samples."""
        if len(self._samples) < 2:
            return None
        (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
        if t1 <= t0:
            return None
        return (d1 - d0) / (t1 - t0)

    def seconds_left(self) -> float | None:
        """Seconds until ``total`` at the current rate: 0 once done, None
        while the total or the rate is unknown, or nothing moves."""
        if self.total is None:
            return None
        if self.done >= self.total:
            return 0.0
        rate = self.rate()
        if not rate or rate <= 0:
            return None
        return (self.total - self.done) / rate


def format_seconds(seconds: float | None) -> str:
    """``12 s``, ``3 min 05 s``, ``1 h 02 min``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    whole = int(seconds + 0.5)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def rate_and_eta(meter: TransferRate, unit: str, scale: float = 1.0) -> str:
    """``, 4.2 MB/s, 12 s left`` for a progress line (nothing before a
    rate is known); ``scale`` turns the units counted into ``unit``."""
    rate = meter.rate()
    if rate is None:
        return ""
    shown = rate / scale
    figure = f"{shown:.0f}" if shown >= 100 else f"{shown:.1f}"
    return f", {figure} {unit}/s, {format_seconds(meter.seconds_left())} left"
