"""Tests of hepchain.stats: Asimov significance and the greedy binning optimiser."""

from __future__ import annotations

import json
import math

import numpy as np
import numpy.typing as npt
import pytest

from hepchain.errors import ConfigError, EmptySelectionError, HepchainError
from hepchain.stats import (
    BinningInputError,
    BinningResult,
    combined_z0,
    optimise_binning,
    single_bin_z0,
    yields_in_bins,
    z0,
)
from hepchain.stats.binning import DEFAULT_FRACTIONS

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

# ---------------------------------------------------------------- asimov.z0


def test_z0_hand_computed_s5_b10_rel01() -> None:
    s, b = 5.0, 10.0
    sigma2 = (0.1 * b) ** 2  # 1.0
    b_hat = 0.5 * (b - sigma2 + math.sqrt((b - sigma2) ** 2 + 4.0 * (s + b) * sigma2))
    term_log = (s + b) * math.log((s + b) / b_hat)
    term_lin = b_hat - s - b
    term_constraint = (b - b_hat) ** 2 / (2.0 * sigma2)
    expected = math.sqrt(2.0 * (term_log + term_lin + term_constraint))
    assert expected == pytest.approx(1.394905, abs=1e-6)
    assert z0(s, b, 0.1) == pytest.approx(expected, rel=1e-12)


def test_z0_hand_computed_s3_b100_rel02() -> None:
    s, b = 3.0, 100.0
    sigma2 = (0.2 * b) ** 2  # 400.0
    b_hat = 0.5 * (b - sigma2 + math.sqrt((b - sigma2) ** 2 + 4.0 * (s + b) * sigma2))
    term_log = (s + b) * math.log((s + b) / b_hat)
    term_lin = b_hat - s - b
    term_constraint = (b - b_hat) ** 2 / (2.0 * sigma2)
    expected = math.sqrt(2.0 * (term_log + term_lin + term_constraint))
    # close to the large-b approximation s / sqrt(b + sigma^2) = 3 / sqrt(500)
    assert expected == pytest.approx(3.0 / math.sqrt(500.0), rel=0.02)
    assert z0(s, b, 0.2) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(
    ("s", "b"), [(5.0, 10.0), (1.0, 1000.0), (50.0, 2.0), (1e-3, 1e6)]
)
def test_z0_sigma_to_zero_limit(s: float, b: float) -> None:
    no_unc = math.sqrt(2.0 * ((s + b) * math.log1p(s / b) - s))
    assert z0(s, b, 0.0) == pytest.approx(no_unc, rel=1e-9)
    assert z0(s, b, 1e-9) == pytest.approx(z0(s, b, 0.0), rel=1e-6)
    assert z0(s, b, 1e-12) == pytest.approx(z0(s, b, 0.0), rel=1e-9)


def test_z0_large_background_limit() -> None:
    s, b = 10.0, 1e8
    assert z0(s, b, 0.0) == pytest.approx(s / math.sqrt(b), rel=1e-4)
    assert z0(s, b, 0.1) == pytest.approx(s / math.sqrt(b + (0.1 * b) ** 2), rel=1e-4)


def test_z0_zero_and_negative_signal() -> None:
    assert z0(0.0, 10.0) == 0.0
    assert z0(0.0, 10.0, 0.0) == 0.0
    assert z0(-1.0, 10.0) == 0.0


def test_z0_nonpositive_background_is_nan() -> None:
    assert math.isnan(z0(1.0, 0.0))
    assert math.isnan(z0(1.0, -2.0))
    out = z0(np.array([1.0, 1.0, 1.0]), np.array([1.0, 0.0, -1.0]))
    assert np.isfinite(out[0])
    assert np.isnan(out[1])
    assert np.isnan(out[2])


def test_z0_monotonic_in_signal() -> None:
    s = np.linspace(0.0, 100.0, 501)
    for rel in (0.0, 0.1, 0.5):
        values = z0(s, 20.0, rel)
        assert np.all(np.diff(values) > 0.0)


def test_z0_decreases_with_uncertainty() -> None:
    values = z0(10.0, 50.0, np.array([0.0, 0.05, 0.1, 0.3]))
    assert np.all(np.diff(values) < 0.0)


def test_z0_broadcasting_and_return_types() -> None:
    assert isinstance(z0(1.0, 2.0), float)
    out = z0(np.array([[1.0], [2.0]]), np.array([1.0, 10.0, 100.0]))
    assert isinstance(out, np.ndarray)
    assert out.shape == (2, 3)
    assert out[1, 2] == pytest.approx(z0(2.0, 100.0))


def test_z0_rejects_bad_rel_sigma() -> None:
    with pytest.raises(ConfigError, match="rel_sigma_b"):
        z0(1.0, 1.0, -0.1)
    with pytest.raises(ConfigError):
        z0(1.0, 1.0, float("nan"))


def test_combined_z0_is_quadrature_sum() -> None:
    s = np.array([1.0, 5.0, 20.0])
    b = np.array([10.0, 8.0, 30.0])
    expected = math.sqrt(sum(z0(si, bi, 0.1) ** 2 for si, bi in zip(s, b, strict=True)))
    assert combined_z0(s, b, 0.1) == pytest.approx(expected, rel=1e-12)
    assert isinstance(combined_z0(s, b), float)


# -------------------------------------------------------------- yields_in_bins


def test_yields_and_mc_stat_errors_by_hand() -> None:
    score = np.array([0.1, 0.3, 0.35, 0.6, 1.0, 1.2, 0.5])
    weight = np.array([9.0, 1.0, 2.0, 3.0, 4.0, 7.0, 0.5])
    edges = np.array([0.2, 0.5, 1.0])
    sum_w, err = yields_in_bins(score, weight, edges)
    # bin 0: 0.3, 0.35; bin 1: 0.5 (left edge), 0.6, 1.0 (== hi); 0.1 and 1.2 outside
    np.testing.assert_allclose(sum_w, [3.0, 7.5])
    np.testing.assert_allclose(
        err, [math.sqrt(1.0 + 4.0), math.sqrt(0.25 + 9.0 + 16.0)]
    )

    labels = np.array([0, 0, 1, 1, 2, 0, 1])
    per_class, per_class_err = yields_in_bins(
        score, weight, edges, labels=labels, n_classes=4
    )
    assert per_class.shape == (4, 2)
    np.testing.assert_allclose(
        per_class, [[1.0, 0.0], [2.0, 3.5], [0.0, 4.0], [0.0, 0.0]]
    )
    np.testing.assert_allclose(per_class_err[1], [2.0, math.sqrt(9.25)])
    np.testing.assert_allclose(per_class.sum(axis=0), sum_w)


def test_yields_input_errors() -> None:
    with pytest.raises(BinningInputError):
        yields_in_bins(np.zeros(3), np.zeros(2), [0.0, 1.0])
    with pytest.raises(ConfigError):
        yields_in_bins(np.zeros(3), np.zeros(3), [1.0, 0.5])
    with pytest.raises(BinningInputError, match="labels"):
        yields_in_bins(np.zeros(2), np.ones(2), [0.0, 1.0], labels=[0, 3], n_classes=2)


def test_single_bin_z0() -> None:
    weight = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    is_signal = np.array([True, True, False, False, True])
    mask = np.array([True, True, True, True, False])
    z, s, b, s_err, b_err = single_bin_z0(weight, is_signal, mask, rel_sigma_b=0.1)
    assert (s, b) == (3.0, 7.0)
    assert s_err == pytest.approx(math.sqrt(5.0))
    assert b_err == pytest.approx(5.0)
    assert z == pytest.approx(z0(3.0, 7.0, 0.1))
    with pytest.raises(EmptySelectionError, match="background"):
        single_bin_z0(weight, is_signal, mask & is_signal)


# ------------------------------------------------------------ optimise_binning


def _planted_sample(seed: int = 1) -> tuple[FloatArray, FloatArray, BoolArray, float]:
    """Background flat in [0.2, 1]; signal 200 above the planted edge, 10 below."""
    rng = np.random.default_rng(seed)
    planted = 0.2 + DEFAULT_FRACTIONS[11] * 0.8  # f = 0.6 -> 0.68
    n_b, n_s_hi, n_s_lo = 40_000, 8_000, 400
    score = np.concatenate(
        [
            rng.uniform(0.2, 1.0, n_b),
            rng.uniform(planted, 1.0, n_s_hi),
            rng.uniform(0.2, planted, n_s_lo),
        ]
    )
    weight = np.concatenate(
        [np.full(n_b, 1000.0 / n_b), np.full(n_s_hi + n_s_lo, 0.025)]
    )
    is_signal = np.concatenate([np.zeros(n_b, bool), np.ones(n_s_hi + n_s_lo, bool)])
    return score, weight, is_signal, planted


def _mixed_sample(seed: int, n: int) -> tuple[FloatArray, FloatArray, BoolArray]:
    """Signal peaked at high score, background falling; a few events out of range."""
    rng = np.random.default_rng(seed)
    n_s = n // 4
    score = np.concatenate([rng.beta(5.0, 1.5, n_s), rng.beta(1.5, 3.0, n - n_s)])
    weight = np.concatenate(
        [rng.uniform(0.05, 0.15, n_s), rng.uniform(0.5, 1.5, n - n_s)]
    )
    is_signal = np.concatenate([np.ones(n_s, bool), np.zeros(n - n_s, bool)])
    return score, weight, is_signal


def _check_result_invariants(
    result: BinningResult,
    score: FloatArray,
    weight: FloatArray,
    is_signal: BoolArray,
    lo: float = 0.2,
    hi: float = 1.0,
) -> None:
    edges = result.edges
    # (d) edges strictly increasing within [lo, hi]
    assert edges[0] == lo
    assert edges[-1] == hi
    assert np.all(np.diff(edges) > 0.0)
    # (c) regularisation holds in every bin
    assert np.all(result.signal > 3.0)
    assert np.all(result.background > 3.0)
    # (e) z0 equals the combination recomputed from yields on the result edges
    labels = np.where(is_signal, 0, 1)
    sum_w, err = yields_in_bins(score, weight, edges, labels=labels, n_classes=2)
    np.testing.assert_allclose(result.signal, sum_w[0], rtol=1e-12)
    np.testing.assert_allclose(result.background, sum_w[1], rtol=1e-12)
    np.testing.assert_allclose(result.signal_err, err[0], rtol=1e-12)
    np.testing.assert_allclose(result.background_err, err[1], rtol=1e-12)
    assert result.z0 == pytest.approx(
        combined_z0(sum_w[0], sum_w[1], result.rel_sigma_b), rel=1e-12
    )
    assert result.z0 == pytest.approx(
        math.sqrt(np.sum(result.z0_per_bin**2)), rel=1e-12
    )
    # (f) never worse than the single bin [lo, hi]
    mask = (score >= lo) & (score <= hi)
    z_single = single_bin_z0(weight, is_signal, mask, result.rel_sigma_b)[0]
    assert result.z0 >= z_single * (1.0 - 1e-12)


def test_planted_first_split() -> None:
    score, weight, is_signal, planted = _planted_sample()
    first = optimise_binning(score, weight, is_signal, max_depth=1)
    assert first.n_bins == 2
    assert first.edges[1] == pytest.approx(planted, abs=1e-12)
    full = optimise_binning(score, weight, is_signal)
    assert np.any(np.isclose(full.edges, planted, rtol=0.0, atol=1e-12))
    assert full.z0 >= first.z0
    _check_result_invariants(full, score, weight, is_signal)


def test_identical_shapes_without_uncertainty_do_not_split() -> None:
    rng = np.random.default_rng(7)
    x = rng.uniform(0.0, 1.0, 5_000)
    w_b = rng.uniform(0.5, 1.5, x.size)
    score = np.concatenate([x, x])
    weight = np.concatenate([0.2 * w_b, w_b])  # s/b = 0.2 in every sub-range
    is_signal = np.concatenate([np.ones(x.size, bool), np.zeros(x.size, bool)])
    # With sigma_b = 0, Z0^2 = 2 b ((1+k) ln(1+k) - k) is additive at fixed s/b = k:
    # no split can raise it beyond rounding, so the range stays one bin.
    result = optimise_binning(score, weight, is_signal, rel_sigma_b=0.0)
    np.testing.assert_array_equal(result.edges, [0.2, 1.0])
    _check_result_invariants(result, score, weight, is_signal)
    # With sigma_b = rel * b_i per bin splitting does pay (the absolute
    # uncertainty adds linearly in one bin but in quadrature over bins),
    # but every bin must still pass the regularisation.
    with_unc = optimise_binning(score, weight, is_signal, rel_sigma_b=0.1)
    assert with_unc.n_bins > 1
    assert np.isfinite(with_unc.z0)
    _check_result_invariants(with_unc, score, weight, is_signal)


def test_tiny_signal_gives_single_bin() -> None:
    rng = np.random.default_rng(3)
    n = 2_000
    score = rng.uniform(0.2, 1.0, n)
    is_signal = np.arange(n) < 500
    weight = np.where(is_signal, 5.0 / 500, 1.0)  # total signal 5 < 2 * min_signal
    result = optimise_binning(score, weight, is_signal)
    np.testing.assert_array_equal(result.edges, [0.2, 1.0])
    assert result.signal[0] == pytest.approx(5.0)
    _check_result_invariants(result, score, weight, is_signal)


def test_whole_range_failing_regularisation_raises() -> None:
    score = np.array([0.3, 0.5, 0.9, 0.95, 0.1])
    weight = np.array([1.0, 1.0, 1.0, 5.0, 100.0])
    is_signal = np.array([True, True, False, False, True])
    with pytest.raises(
        EmptySelectionError, match=r"signal yield 2 .*needs > 3"
    ) as info:
        optimise_binning(score, weight, is_signal)
    assert isinstance(info.value, HepchainError)
    with pytest.raises(EmptySelectionError):
        optimise_binning(np.array([]), np.array([]), np.array([], bool))


def test_invalid_parameters() -> None:
    score, weight, is_signal = _mixed_sample(0, 200)
    with pytest.raises(ConfigError):
        optimise_binning(score, weight, is_signal, lo=0.8, hi=0.2)
    with pytest.raises(ConfigError):
        optimise_binning(score, weight, is_signal, fractions=[0.0, 0.5])
    with pytest.raises(ConfigError):
        optimise_binning(score, weight, is_signal, min_signal=-1.0)
    with pytest.raises(BinningInputError):
        optimise_binning(score, weight[:-1], is_signal)


def test_mc_stat_errors_in_result() -> None:
    score = np.array([0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    weight = np.array([1.0, 2.0, 2.0, 3.0, 4.0, 0.5])
    is_signal = np.array([True, True, True, False, False, False])
    result = optimise_binning(
        score, weight, is_signal, min_signal=1.0, min_background=1.0, max_depth=0
    )
    assert result.n_bins == 1
    assert result.signal[0] == pytest.approx(5.0)
    assert result.background[0] == pytest.approx(7.5)
    assert result.signal_err[0] == pytest.approx(math.sqrt(1.0 + 4.0 + 4.0))
    assert result.background_err[0] == pytest.approx(math.sqrt(9.0 + 16.0 + 0.25))


def _brute_force_best_split(
    score: FloatArray,
    weight: FloatArray,
    is_signal: BoolArray,
    a: float,
    c: float,
    last: bool,
) -> tuple[float, float] | None:
    """Exhaustive scan over the fraction grid with direct masked sums."""
    in_bin = (score >= a) & ((score <= c) if last else (score < c))
    s_bin = float(weight[in_bin & is_signal].sum())
    b_bin = float(weight[in_bin & ~is_signal].sum())
    best: tuple[float, float] | None = None
    for f in DEFAULT_FRACTIONS:
        cut = a + f * (c - a)
        left = in_bin & (score < cut)
        right = in_bin & (score >= cut)
        yields = [
            float(weight[part & sel].sum())
            for part in (left, right)
            for sel in (is_signal, ~is_signal)
        ]
        s_l, b_l, s_r, b_r = yields
        if min(s_l, s_r) <= 3.0 or min(b_l, b_r) <= 3.0:
            continue
        z2 = z0(s_l, b_l, 0.1) ** 2 + z0(s_r, b_r, 0.1) ** 2
        if best is None or z2 > best[1]:
            best = (cut, z2)
    if best is None or not best[1] > z0(s_bin, b_bin, 0.1) ** 2 * (1.0 + 1e-12):
        return None
    return best


def test_greedy_matches_brute_force_two_rounds() -> None:
    score, weight, is_signal = _mixed_sample(11, 600)
    # round 1: exhaustive scan of [0.2, 1.0]
    root = _brute_force_best_split(score, weight, is_signal, 0.2, 1.0, last=True)
    assert root is not None
    cut1 = root[0]
    one = optimise_binning(score, weight, is_signal, max_depth=1)
    assert one.edges[1] == pytest.approx(cut1, abs=1e-15)
    assert one.z0**2 == pytest.approx(root[1], rel=1e-9)
    # round 2: exhaustive scan of each half
    expected = [0.2, cut1, 1.0]
    for a, c, last in ((0.2, cut1, False), (cut1, 1.0, True)):
        sub = _brute_force_best_split(score, weight, is_signal, a, c, last)
        if sub is not None:
            expected.append(sub[0])
    assert len(expected) > 3  # the dataset is rich enough for a second round
    two = optimise_binning(score, weight, is_signal, max_depth=2)
    np.testing.assert_allclose(two.edges, sorted(expected), rtol=0.0, atol=1e-15)
    full = optimise_binning(score, weight, is_signal)
    assert full.z0 >= two.z0 >= one.z0
    _check_result_invariants(full, score, weight, is_signal)


def test_result_to_dict_is_json_and_frozen() -> None:
    score, weight, is_signal = _mixed_sample(5, 3_000)
    result = optimise_binning(score, weight, is_signal)
    data = result.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["n_bins"] == len(data["edges"]) - 1 == len(data["signal"])
    with pytest.raises(AttributeError):
        result.z0 = 0.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        result.edges[0] = 0.0
    _check_result_invariants(result, score, weight, is_signal)
