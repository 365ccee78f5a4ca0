"""Interleaved medians: every contender of a row is called once per round, in turn.

On a shared machine, load changes from second to second; calling beamtrack and its
peers alternately in one process lets all of them see the same noise, and the median
over rounds discards the worst of it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Contender:
    """One timed call of a row.

    Attributes
    ----------
    fn
        The call; it must wait for its own result (asynchronous backends).
    prepare
        Called before each call, outside the timing (e.g. a fresh copy of Xsuite's
        particles, which Xsuite tracks in place); its result is passed to ``fn``.
    """

    fn: Callable[..., Any]
    prepare: Callable[[], Any] | None = None

    def once(self) -> float:
        """Seconds taken by one call."""
        arg = self.prepare() if self.prepare is not None else None
        start = time.perf_counter()
        if self.prepare is not None:
            self.fn(arg)
        else:
            self.fn()
        return time.perf_counter() - start


def interleaved(contenders: dict[str, Contender], repeats: int,
                warmup: int = 1) -> dict[str, dict[str, Any]]:
    """Median seconds per call of each contender, calls interleaved round by round.

    Parameters
    ----------
    contenders
        Name -> call.
    repeats
        Timed rounds (each contender called once per round).
    warmup
        Untimed rounds first (compilation, caches, allocator).

    Returns
    -------
    dict
        Name -> ``{"median_s", "samples_s"}``; a contender that raised gets
        ``{"error": message}`` and is dropped from later rounds.
    """
    results: dict[str, dict[str, Any]] = {name: {"samples_s": []} for name in contenders}
    active = dict(contenders)
    for round_ in range(warmup + repeats):
        for name, contender in list(active.items()):
            try:
                seconds = contender.once()
            except Exception as exc:  # a failing peer is a result, not a crash
                results[name] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
                del active[name]
                continue
            if round_ >= warmup:
                results[name]["samples_s"].append(seconds)
    for name in active:
        results[name]["median_s"] = statistics.median(results[name]["samples_s"])
    return results
