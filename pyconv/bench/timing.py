"""Interleaved timing of two (or more) implementations of one case.

The callables are timed A B A B ... in one process on the same arrays, after a warm-up, and
the median of the samples is reported. The number of rounds adapts so that a case takes about
``target_s`` seconds in all (never fewer than ``min_reps`` rounds).

Pitfall (see ../shared/PERF.md): torch and pyconv each bring an OpenMP runtime. libgomp's
workers spin for a while after a parallel region, so a sub-millisecond call made right after
the other library's call can be measuring that library's spinning threads. ``order`` decides
who goes first in each round and ``sleep_s`` pauses before every call; run small cases both
ways (and with a pause) before believing them.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence


@dataclass
class TimingConfig:
    target_s: float = 0.3      # wall time aimed at per case, all libraries together
    min_reps: int = 5          # median of at least this many samples per library
    max_reps: int = 2000
    warmup: int = 2            # untimed calls per library before sampling
    sleep_s: float = 0.0       # pause before every timed call
    first: str = "pyconv"      # which library goes first in each round

    @classmethod
    def quick(cls, **kw) -> "TimingConfig":
        base = dict(target_s=0.03, min_reps=5, max_reps=200, warmup=1)
        base.update(kw)
        return cls(**base)


@dataclass
class Samples:
    label: str
    times: list = field(default_factory=list)   # seconds per call

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def min(self) -> float:
        return min(self.times)

    @property
    def iqr(self) -> float:
        if len(self.times) < 4:
            return max(self.times) - min(self.times)
        q = statistics.quantiles(self.times, n=4)
        return q[2] - q[0]

    def to_dict(self) -> dict:
        return {
            "median_s": self.median,
            "min_s": self.min,
            "iqr_s": self.iqr,
            "reps": len(self.times),
            "samples_s": list(self.times),
        }


def _ordered(fns: Sequence[tuple[str, Callable]], first: str) -> list[tuple[str, Callable]]:
    fns = list(fns)
    head = [f for f in fns if f[0] == first]
    return head + [f for f in fns if f[0] != first]


def _call_timed(fn: Callable, sleep_s: float) -> float:
    if sleep_s > 0:
        time.sleep(sleep_s)
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(fns: Sequence[tuple[str, Callable]], cfg: TimingConfig) -> dict[str, Samples]:
    """Times every (label, fn) interleaved; returns label -> Samples.

    The callables must already have been called once (the caller's warm-up checks that they
    work); here we run ``cfg.warmup`` more untimed calls, estimate the cost of a round and
    pick the number of rounds.
    """
    order = _ordered(fns, cfg.first)
    for _ in range(max(0, cfg.warmup - 1)):
        for _, fn in order:
            fn()
    # One timed call each estimates a round's cost; it also counts as the first sample.
    out = {label: Samples(label) for label, _ in order}
    round_s = 0.0
    for label, fn in order:
        t = _call_timed(fn, cfg.sleep_s)
        out[label].times.append(t)
        round_s += t + cfg.sleep_s
    reps = cfg.min_reps if round_s <= 0 else int(math.ceil(cfg.target_s / round_s))
    reps = max(cfg.min_reps, min(cfg.max_reps, reps))
    for _ in range(reps - 1):
        for label, fn in order:
            out[label].times.append(_call_timed(fn, cfg.sleep_s))
    return out


def geomean(values) -> float | None:
    vals = [v for v in values if v is not None and v > 0 and math.isfinite(v)]
    if not vals:
        return None
    return math.exp(sum(math.log(v) for v in vals) / len(vals))
