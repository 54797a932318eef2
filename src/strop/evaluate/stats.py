"""Confidence intervals for every number an evaluation reports.

Proportions get Wilson score intervals (closed form, good coverage at small n and at 0 or 1).
Means, ratios of sums and anything paired get a percentile bootstrap with a fixed seed, so the
same inputs always give the same interval. Deltas and retention ratios resample the *items*,
keeping each item's base and tuned scores together (a paired bootstrap), which is much tighter
than treating the two runs as independent samples.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np

CONFIDENCE = 0.95
BOOTSTRAP_SAMPLES = 2000
SEED = 20240601


@dataclass(frozen=True)
class Estimate:
    value: float | None
    low: float | None
    high: float | None
    n: int
    method: str  # "wilson", "bootstrap", "paired-bootstrap", "none"

    def to_dict(self) -> dict:
        return asdict(self)

    def excludes(self, point: float) -> bool:
        """Whether the interval lies entirely on one side of `point`."""
        if self.low is None or self.high is None:
            return False
        return self.high < point or self.low > point


def _empty(n: int = 0) -> Estimate:
    return Estimate(None, None, None, n, "none")


def _z(confidence: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson(successes: int, n: int, confidence: float = CONFIDENCE) -> Estimate:
    """Share of successes with a Wilson score interval."""
    if n <= 0:
        return _empty()
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n={n}, got {successes}")
    z = _z(confidence)
    share = successes / n
    denominator = 1 + z * z / n
    centre = (share + z * z / (2 * n)) / denominator
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / denominator
    # At 0 and n the bounds are exactly 0 and 1; floating point would leave 1e-17 crumbs.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Estimate(share, low, high, n, "wilson")


def proportion(outcomes: Sequence[float]) -> Estimate:
    """A proportion from 0/1 outcomes."""
    values = np.asarray(outcomes, dtype=float)
    if values.size and not np.isin(values, (0.0, 1.0)).all():
        raise ValueError("proportion() takes 0/1 outcomes; use mean() for graded scores")
    return wilson(int(values.sum()), int(values.size))


def _resample_indices(n: int, samples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(samples, n))


def _percentiles(draws: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return None, None
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap(statistic: Callable[[np.ndarray], np.ndarray], n: int, point: float | None,
              *, method: str = "bootstrap", confidence: float = CONFIDENCE,
              samples: int = BOOTSTRAP_SAMPLES, seed: int = SEED) -> Estimate:
    """Percentile bootstrap: `statistic` maps an (samples, n) index matrix to `samples` values."""
    if n <= 0 or point is None or not math.isfinite(point):
        return Estimate(point if point is not None and math.isfinite(point) else None,
                        None, None, max(n, 0), "none")
    with np.errstate(divide="ignore", invalid="ignore"):
        draws = statistic(_resample_indices(n, samples, seed))
    low, high = _percentiles(np.asarray(draws, dtype=float), confidence)
    return Estimate(float(point), low, high, n, method)


def mean(values: Sequence[float], **options) -> Estimate:
    """Mean of graded scores (ROUGE-L, per-example loss) with a bootstrap interval."""
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        return _empty()
    return bootstrap(lambda index: array[index].mean(axis=1), array.size, float(array.mean()),
                     **options)


def ratio_of_sums(numerators: Sequence[float], denominators: Sequence[float],
                  **options) -> Estimate:
    """sum(num) / sum(den) over examples, e.g. token-weighted loss, resampling examples."""
    top = np.asarray(numerators, dtype=float)
    bottom = np.asarray(denominators, dtype=float)
    if top.size == 0 or bottom.sum() == 0:
        return _empty(int(top.size))
    return bootstrap(lambda index: top[index].sum(axis=1) / bottom[index].sum(axis=1),
                     top.size, float(top.sum() / bottom.sum()), **options)


def _paired(base: Sequence[float], tuned: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    first = np.asarray(base, dtype=float)
    second = np.asarray(tuned, dtype=float)
    if first.shape != second.shape:
        raise ValueError(f"paired scores need equal lengths, got {first.size} and {second.size}")
    return first, second


def paired_delta(base: Sequence[float], tuned: Sequence[float], **options) -> Estimate:
    """mean(tuned) - mean(base) over the same items, with a paired bootstrap interval."""
    first, second = _paired(base, tuned)
    if first.size == 0:
        return _empty()
    difference = second - first
    return bootstrap(lambda index: difference[index].mean(axis=1), difference.size,
                     float(difference.mean()), method="paired-bootstrap", **options)


def paired_ratio(base: Sequence[float], tuned: Sequence[float], **options) -> Estimate:
    """mean(tuned) / mean(base) over the same items (retention), paired bootstrap interval.

    Undefined (value None) when the base model scores zero: nothing was there to retain.
    """
    first, second = _paired(base, tuned)
    if first.size == 0 or first.sum() == 0:
        return _empty(int(first.size))
    return bootstrap(lambda index: second[index].sum(axis=1) / first[index].sum(axis=1),
                     first.size, float(second.sum() / first.sum()),
                     method="paired-bootstrap", **options)


def paired_ratio_of_sums_delta(base_top: Sequence[float], tuned_top: Sequence[float],
                               bottom_base: Sequence[float], bottom_tuned: Sequence[float],
                               **options) -> Estimate:
    """Delta of two token-weighted means on the same examples (e.g. tuned loss - base loss)."""
    a, b = _paired(base_top, tuned_top)
    c, d = _paired(bottom_base, bottom_tuned)
    if a.size == 0 or c.sum() == 0 or d.sum() == 0:
        return _empty(int(a.size))
    point = float(b.sum() / d.sum() - a.sum() / c.sum())
    return bootstrap(
        lambda index: b[index].sum(axis=1) / d[index].sum(axis=1)
        - a[index].sum(axis=1) / c[index].sum(axis=1),
        a.size, point, method="paired-bootstrap", **options)
