"""Statistics against hand-computed values."""

import math

import numpy as np
import pytest

from usemabench.leaderboard.stats import bootstrap_ci, holm, paired_wilcoxon


def test_holm_matches_hand_computation():
    # m = 4 finite p-values, ascending: 0.01*4 = 0.04; 0.03*3 = 0.09; 0.04*2 = 0.08 -> running max 0.09;
    # 0.5*1 = 0.5. The NaN is passed through.
    adjusted = holm([0.01, 0.04, 0.03, float("nan"), 0.5])
    expected = [0.04, 0.09, 0.09, float("nan"), 0.5]
    np.testing.assert_allclose(adjusted, expected, equal_nan=True)


def test_holm_caps_at_one_and_keeps_a_single_p():
    np.testing.assert_allclose(holm([0.6, 0.7]), [1.0, 1.0])
    np.testing.assert_allclose(holm([0.02]), [0.02])
    assert holm([]).size == 0


def test_wilcoxon_exact_p_for_all_positive_differences():
    # n = 8 differences, all positive, distinct: exact two-sided p = 2 / 2**8
    scores = np.arange(1, 9) * 0.01 + 0.5
    assert paired_wilcoxon(scores, np.full(8, 0.5)) == pytest.approx(2 / 2**8)


def test_wilcoxon_edge_cases():
    assert paired_wilcoxon([0.5, 0.6, 0.7], [0.5, 0.6, 0.7]) == 1.0
    assert math.isnan(paired_wilcoxon([0.5, float("nan")], [0.4, 0.3]))
    with pytest.raises(ValueError, match="differ in length"):
        paired_wilcoxon([0.1, 0.2], [0.1])


def test_bootstrap_ci_is_seeded_and_brackets_the_mean():
    values = np.random.default_rng(3).normal(0.8, 0.05, size=40)
    first, second = bootstrap_ci(values), bootstrap_ci(values)
    assert first == second
    assert first[0] < values.mean() < first[1]
    # roughly mean ± 1.96 standard errors
    half_width = 1.96 * values.std(ddof=1) / np.sqrt(values.size)
    assert (first[1] - first[0]) / 2 == pytest.approx(half_width, rel=0.25)


def test_bootstrap_ci_without_spread_is_undefined():
    assert all(math.isnan(bound) for bound in bootstrap_ci([0.7, 0.7, 0.7]))
    assert all(math.isnan(bound) for bound in bootstrap_ci([0.7]))
