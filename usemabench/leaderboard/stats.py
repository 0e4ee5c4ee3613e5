"""Statistics for comparing models over the same test cases: paired Wilcoxon, Holm, bootstrap CIs."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats

BOOTSTRAP_SEED = 0
BOOTSTRAP_RESAMPLES = 2000


def paired_wilcoxon(scores: Sequence[float], reference: Sequence[float]) -> float:
    """Two-sided p-value of the Wilcoxon signed-rank test on paired per-case scores.

    NaN when fewer than two pairs remain after dropping NaNs; 1.0 when every difference is zero
    (scipy cannot rank an all-zero sample, and no difference is no evidence of one).
    """
    scores, reference = np.asarray(scores, dtype=float), np.asarray(reference, dtype=float)
    if scores.shape != reference.shape:
        raise ValueError(f"paired samples differ in length: {scores.shape} vs {reference.shape}")
    keep = np.isfinite(scores) & np.isfinite(reference)
    differences = scores[keep] - reference[keep]
    if differences.size < 2:
        return float("nan")
    if np.all(differences == 0):
        return 1.0
    return float(stats.wilcoxon(differences, alternative="two-sided").pvalue)


def smallest_wilcoxon_p(pairs: int) -> float:
    """The smallest two-sided p the exact Wilcoxon signed-rank test can give with `pairs` non-zero differences.

    Only the all-same-sign outcome reaches it: 2 · 2^-n (n = 5 gives 0.0625, so five test cases can never
    show p < 0.05, however large the difference). NaN below one pair.
    """
    return 2.0 ** (1 - pairs) if pairs >= 1 else float("nan")


def nonzero_pairs(scores: Sequence[float], reference: Sequence[float]) -> int:
    """How many finite, non-zero paired differences the Wilcoxon test ranks (zeros and NaNs are dropped)."""
    differences = np.asarray(scores, dtype=float) - np.asarray(reference, dtype=float)
    return int(np.count_nonzero(np.isfinite(differences) & (differences != 0)))


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1); NaNs pass through untouched."""
    p_values = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p_values, np.nan)
    finite = np.flatnonzero(np.isfinite(p_values))
    count = finite.size
    running_max = 0.0
    for step, index in enumerate(finite[np.argsort(p_values[finite], kind="stable")]):
        running_max = max(running_max, (count - step) * p_values[index])
        adjusted[index] = min(1.0, running_max)
    return adjusted


def bootstrap_ci(values: Sequence[float], confidence: float = 0.95, seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """BCa bootstrap confidence interval of the mean; (nan, nan) for fewer than two values or no spread.

    A fresh generator seeded with `seed` per call keeps every interval independent of the order in
    which models are processed, so the same records always give the same numbers.
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size < 2 or np.all(values == values[0]):
        return float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=stats.DegenerateDataWarning)
        result = stats.bootstrap(
            (values,),
            np.mean,
            confidence_level=confidence,
            n_resamples=BOOTSTRAP_RESAMPLES,
            method="BCa",
            rng=np.random.default_rng(seed),
        )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)
