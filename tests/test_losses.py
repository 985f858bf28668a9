"""Value and gradient tests of the study losses in hepchain.ml.losses.

Every expected number below is computed by hand from the formula in the
docstring (small rows with round numbers), and every autograd gradient is
compared with the analytic derivative written out in the test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from hepchain.errors import ConfigError, HepchainError
from hepchain.ml.losses import (
    LOSSES,
    dijet_asymmetry,
    gaussian_nll_asymmetry_loss,
    get_loss,
    mape_loss,
    mape_sqrt_loss,
    mirrored_boundary_factor,
    mirrored_boundary_loss,
    recoil_bias_penalty_loss,
    relative_energy_loss,
    weighted_cross_entropy,
)

D = torch.float64
TOL = {"rtol": 1e-10, "atol": 1e-12}


def t(values: object, grad: bool = False) -> Tensor:
    """float64 tensor, optionally a leaf that requires grad."""
    return torch.tensor(values, dtype=D, requires_grad=grad)


def close(actual: Tensor, expected: object) -> None:
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=D), **TOL)


# --- seed 003: weighted cross-entropy (existing function) -----------------------


def test_weighted_cross_entropy_value_and_gradient() -> None:
    # row 0: logits 0 -> softmax 1/3 each, label 0, CE = ln 3
    # row 1: logits (0, ln 2, 0) -> softmax (1/4, 1/2, 1/4), label 1, CE = ln 2
    logits = t([[0.0, 0.0, 0.0], [0.0, math.log(2.0), 0.0]], grad=True)
    label = torch.tensor([0, 1])
    w = t([1.0, 3.0])
    loss = weighted_cross_entropy(logits, label, w)
    close(loss, (math.log(3.0) + 3.0 * math.log(2.0)) / 4.0)
    loss.backward()
    # d/dlogits_i = (softmax_i - onehot_i) w_i / sum w
    expected = [[(1 / 3 - 1) / 4, 1 / 12, 1 / 12], [0.25 * 3 / 4, -0.5 * 3 / 4, 0.25 * 3 / 4]]
    close(logits.grad, expected)


def test_weighted_cross_entropy_gradcheck() -> None:
    logits = t([[0.3, -1.0, 0.2], [1.5, 0.1, -0.4], [0.0, 0.7, 2.0]], grad=True)
    label = torch.tensor([2, 0, 1])
    w = t([0.5, 2.0, 1.0])
    assert torch.autograd.gradcheck(lambda x: weighted_cross_entropy(x, label, w), (logits,))


# --- seed 000: recoil bias penalty -------------------------------------------------

RECOIL_PRED = [[3.0, 5.0], [1.0, 1.0]]
RECOIL_TARGET = [[3.0, 4.0], [0.0, 2.0]]
# d = pred - target = (0, 1), (1, -1); per-row mean of d^2: 0.5, 1.0
# r = pred.target / |target|^2 = 29/25 = 1.16, 2/4 = 0.5; (1 - r)^2 = 0.0256, 0.25


def test_recoil_value_and_gradient_unweighted() -> None:
    pred = t(RECOIL_PRED, grad=True)
    loss = recoil_bias_penalty_loss(pred, t(RECOIL_TARGET), alpha=2.0)
    close(loss, 0.75 + 2.0 * (0.0256 + 0.25) / 2)  # 1.0256
    loss.backward()
    # MSE part: d_ic / N;  bias part: alpha * (-2 (1 - r_i)) y_i / |y_i|^2 / N
    mse_grad = [[0.0, 0.5], [0.5, -0.5]]
    bias_grad = [
        [2.0 * 0.32 * 3 / 25 / 2, 2.0 * 0.32 * 4 / 25 / 2],  # (0.0384, 0.0512)
        [0.0, 2.0 * (-1.0) * 2 / 4 / 2],  # (0, -0.5)
    ]
    close(pred.grad, np.add(mse_grad, bias_grad))
    close(pred.grad, [[0.0384, 0.5512], [0.5, -1.0]])


def test_recoil_value_and_gradient_weighted() -> None:
    pred = t(RECOIL_PRED, grad=True)
    w = t([1.0, 3.0])
    loss = recoil_bias_penalty_loss(pred, t(RECOIL_TARGET), alpha=2.0, weight=w)
    # MSE (1*0.5 + 3*1.0)/4 = 0.875; bias (1*0.0256 + 3*0.25)/4 = 0.1939
    close(loss, 0.875 + 2.0 * 0.1939)
    loss.backward()
    # MSE part: w_i d_ic / (2 W) * 2 = w_i d_ic / W
    mse_grad = [[0.0, 1 / 4], [3 / 4, -3 / 4]]
    bias_grad = [[2.0 * 0.32 * 3 / 25 / 4, 2.0 * 0.32 * 4 / 25 / 4], [0.0, 2.0 * 3 * (-1.0) * 2 / 4 / 4]]
    close(pred.grad, np.add(mse_grad, bias_grad))


def test_recoil_alpha_zero_is_plain_mse() -> None:
    gen = torch.Generator().manual_seed(1)
    pred = torch.randn(7, 2, generator=gen, dtype=D) * 20
    target = torch.randn(7, 2, generator=gen, dtype=D) * 20
    close(recoil_bias_penalty_loss(pred, target, alpha=0.0), F.mse_loss(pred, target))
    w = torch.rand(7, generator=gen, dtype=D) + 0.1
    weighted_mse = (w[:, None] * (pred - target) ** 2).sum() / (2 * w.sum())
    close(recoil_bias_penalty_loss(pred, target, alpha=0.0, weight=w), weighted_mse)


def test_recoil_low_pt_rows_leave_the_bias_term() -> None:
    # row 1 has target (0, 0), row 2 has |target| = 0.5 < min_pt = 1: only row 0 enters the bias term
    pred = t([[3.0, 5.0], [1.0, -1.0], [0.2, 0.1]], grad=True)
    target = t([[3.0, 4.0], [0.0, 0.0], [0.3, 0.4]])
    loss = recoil_bias_penalty_loss(pred, target, alpha=1.0, min_pt=1.0)
    mse = ((0.0 + 1.0) + (1.0 + 1.0) + (0.01 + 0.09)) / 6
    close(loss, mse + 0.0256)
    loss.backward()
    assert torch.isfinite(pred.grad).all()
    close(pred.grad[1:], (pred - target).detach()[1:] / 3)  # MSE gradient only


def test_recoil_no_row_above_min_pt_gives_mse_and_finite_gradient() -> None:
    pred = t([[1.0, 2.0], [0.5, 0.5]], grad=True)
    target = t([[0.0, 0.0], [0.1, 0.0]])
    loss = recoil_bias_penalty_loss(pred, target, alpha=3.0, min_pt=1.0)
    close(loss, (1.0 + 4.0 + 0.16 + 0.25) / 4)
    loss.backward()
    close(pred.grad, (pred - target).detach() / 2)


def test_recoil_gradcheck() -> None:
    pred = t([[3.1, 4.7], [-2.0, 1.3], [10.0, -4.0]], grad=True)
    target = t([[3.0, 4.0], [-1.5, 2.0], [9.0, -5.0]])
    w = t([1.0, 0.5, 2.0])
    assert torch.autograd.gradcheck(lambda p: recoil_bias_penalty_loss(p, target, 0.7, w), (pred,))


def test_recoil_bad_input() -> None:
    with pytest.raises(HepchainError, match="'target' has shape"):
        recoil_bias_penalty_loss(t([[1.0, 2.0]]), t([1.0, 2.0]), 1.0)
    with pytest.raises(HepchainError, match="'pred' must have shape"):
        recoil_bias_penalty_loss(t([1.0, 2.0]), t([1.0, 2.0]), 1.0)
    with pytest.raises(ConfigError, match="'alpha'"):
        recoil_bias_penalty_loss(t([[1.0, 2.0]]), t([[1.0, 2.0]]), -1.0)
    with pytest.raises(HepchainError, match="'weight' has shape"):
        recoil_bias_penalty_loss(t([[1.0, 2.0]]), t([[1.0, 2.0]]), 1.0, weight=t([1.0, 1.0]))


# --- seed 001: ditau mass losses ------------------------------------------------------


def test_mape_value_and_gradient() -> None:
    pred = t([110.0, 40.0], grad=True)
    target = t([100.0, 50.0])
    loss = mape_loss(pred, target)
    close(loss, 100.0 * (0.1 + 0.2) / 2)  # 15
    loss.backward()
    close(pred.grad, [100.0 / 2 / 100.0, -100.0 / 2 / 50.0])  # 100/N sign/y

    pred.grad = None
    loss = mape_loss(pred, target, weight=t([1.0, 3.0]))
    close(loss, (10.0 + 3 * 20.0) / 4)  # 17.5
    loss.backward()
    close(pred.grad, [100.0 * 1 / 100.0 / 4, -100.0 * 3 / 50.0 / 4])  # (0.25, -1.5)


def test_mape_sqrt_value_and_gradient() -> None:
    pred = t([[104.0], [22.0]], grad=True)  # [N, 1] is accepted
    target = t([[100.0], [25.0]])
    loss = mape_sqrt_loss(pred, target)
    close(loss, (4.0 / 10.0 + 3.0 / 5.0) / 2)  # 0.5
    loss.backward()
    close(pred.grad, [[1.0 / (2 * 10.0)], [-1.0 / (2 * 5.0)]])  # sign / (N sqrt y)


def test_mape_gradcheck() -> None:
    pred = t([110.0, 40.0, 77.0], grad=True)
    target = t([100.0, 50.0, 80.0])
    w = t([1.0, 2.0, 0.5])
    assert torch.autograd.gradcheck(lambda p: mape_loss(p, target, w), (pred,))
    assert torch.autograd.gradcheck(lambda p: mape_sqrt_loss(p, target, w), (pred,))


def test_mape_bad_input() -> None:
    with pytest.raises(HepchainError, match="'target' must be > 0"):
        mape_loss(t([1.0, 2.0]), t([1.0, 0.0]))
    with pytest.raises(HepchainError, match="'target' must be > 0"):
        mape_sqrt_loss(t([1.0, 2.0]), t([-1.0, 2.0]))
    with pytest.raises(HepchainError, match="must match"):
        mape_loss(t([[1.0], [2.0]]), t([1.0, 2.0]))
    with pytest.raises(HepchainError, match="'pred' must have shape"):
        mape_loss(t([[1.0, 2.0]]), t([[1.0, 2.0]]))
    with pytest.raises(HepchainError, match="'pred' must be a floating-point"):
        mape_loss(torch.tensor([1, 2]), t([1.0, 2.0]))


# rows (low = 50, high = 800):
#   a) y=400, p=420: 20 >= 380? no; -20 >= 370? no             -> factor 1,   |p-y|/sqrt(y) = 1
#   b) y=500, p=700: 200 >= 100: beyond the mirrored upper edge -> factor 0
#   c) y=100, p=60:  -40 >= 740? no; 40 >= 10: beyond lower     -> factor 0.1, 40/10 = 4
#   d) y=100, p=81:  19 >= 31? no                               -> factor 1,   19/10 = 1.9
MIRROR_PRED = [420.0, 700.0, 60.0, 81.0]
MIRROR_TARGET = [400.0, 500.0, 100.0, 100.0]


def test_mirrored_boundary_factor_follows_the_seed_listing() -> None:
    factor = mirrored_boundary_factor(t(MIRROR_PRED), t(MIRROR_TARGET), 50.0, 800.0)
    close(factor, [1.0, 0.0, 0.1, 1.0])
    # ties count as beyond (greater_equal): p - y == high - p and y - p == p - low
    close(mirrored_boundary_factor(t([700.0, 75.0]), t([600.0, 100.0]), 50.0, 800.0), [0.0, 0.1])
    # the seed's nested where, in numpy, on random rows
    rng = np.random.default_rng(3)
    y = rng.uniform(50, 800, 200)
    p = y + rng.normal(0, 150, 200)
    seed = np.where(p - y >= 800 - p, 0.0, np.where(y - p >= p - 50, 0.1, 1.0))
    close(mirrored_boundary_factor(t(p), t(y), 50.0, 800.0), seed)


def test_mirrored_boundary_value_and_gradient() -> None:
    pred = t(MIRROR_PRED, grad=True)
    loss = mirrored_boundary_loss(pred, t(MIRROR_TARGET), low=50.0, high=800.0)
    close(loss, (1.0 + 0.0 + 0.1 * 4.0 + 1.9) / 4)  # 0.825, mean over all 4 rows
    loss.backward()
    # factor * sign(p - y) / (N sqrt y)
    close(pred.grad, [1 / (4 * 20.0), 0.0, -0.1 / (4 * 10.0), -1 / (4 * 10.0)])

    pred.grad = None
    loss = mirrored_boundary_loss(pred, t(MIRROR_TARGET), 50.0, 800.0, base="mape", weight=t([1.0, 1.0, 2.0, 1.0]))
    # mape rows: 5, (excluded), 0.1 * 40, 19; weighted mean over sum w = 5
    close(loss, (5.0 + 2 * 4.0 + 19.0) / 5)
    loss.backward()
    close(pred.grad, [100 / 400.0 / 5, 0.0, -2 * 0.1 * 100 / 100.0 / 5, -100 / 100.0 / 5])


def test_mirrored_boundary_nothing_counts_gives_zero_not_nan() -> None:
    pred = t([700.0, 750.0], grad=True)
    loss = mirrored_boundary_loss(pred, t([500.0, 600.0]), 50.0, 800.0)
    close(loss, 0.0)
    loss.backward()
    close(pred.grad, [0.0, 0.0])


def test_mirrored_boundary_gradcheck() -> None:
    pred = t([420.0, 60.0, 81.0, 300.0], grad=True)
    target = t([400.0, 100.0, 100.0, 310.0])
    assert torch.autograd.gradcheck(lambda p: mirrored_boundary_loss(p, target, 50.0, 800.0), (pred,))


def test_mirrored_boundary_bad_config() -> None:
    with pytest.raises(ConfigError, match="low < high"):
        mirrored_boundary_loss(t([1.0]), t([1.0]), 800.0, 50.0)
    with pytest.raises(ConfigError, match="'base'"):
        mirrored_boundary_loss(t([1.0]), t([1.0]), 50.0, 800.0, base="mse")  # type: ignore[arg-type]


# --- seed 002: jets -------------------------------------------------------------------


def test_dijet_asymmetry() -> None:
    close(dijet_asymmetry(t([120.0, 100.0, 50.0]), t([80.0, 100.0, 150.0])), [0.4, 0.0, -1.0])
    with pytest.raises(HepchainError, match="'pt_ref \\+ pt_probe' must be > 0"):
        dijet_asymmetry(t([10.0, -5.0]), t([1.0, 5.0]))
    with pytest.raises(HepchainError, match="must match"):
        dijet_asymmetry(t([10.0, 5.0]), t([1.0]))


# 5 rows, pt_reco = 100 everywhere, pairs (0, 1) and (2, 3), row 4 unpaired.
JET_MU = [1.0, 1.0, 1.2, 0.8, 1.1]
JET_SIGMA = [0.1, 0.2, 0.1, 0.2, 0.5]
JET_TARGET = [1.0, 0.8, 1.0, 1.0, 1.0]
JET_PAIRS = torch.tensor([[0, 1], [2, 3]])
# NLL rows: 0 + ln 0.1, 0.5 + ln 0.2, 2 + ln 0.1, 0.5 + ln 0.2, 0.02 + ln 0.5
JET_NLL = [math.log(0.1), 0.5 + math.log(0.2), 2.0 + math.log(0.1), 0.5 + math.log(0.2), 0.02 + math.log(0.5)]
# A = 0 (100 vs 100) and 0.4 (120 vs 80): mean 0.2, sample variance 0.08
SIGMA_A = math.sqrt(0.08)


def test_gaussian_nll_asymmetry_value_and_gradient() -> None:
    mu = t(JET_MU, grad=True)
    sigma = t(JET_SIGMA, grad=True)
    loss = gaussian_nll_asymmetry_loss(mu, sigma, t(JET_TARGET), t([100.0] * 5), JET_PAIRS, f=0.5)
    close(loss, sum(JET_NLL) / 5 + 0.5 * SIGMA_A)
    loss.backward()
    # NLL: d/dmu = (mu - t) / sigma^2 / N
    nll_mu = [0.0, 0.2 / 0.04 / 5, 0.2 / 0.01 / 5, -0.2 / 0.04 / 5, 0.1 / 0.25 / 5]
    # sigma_A: d sigma_A / dA_k = (A_k - mean) / ((P - 1) sigma_A) = -+ 1/sqrt 2,
    # dA/da = 4 b / (a + b)^2, dA/db = -4 a / (a + b)^2, da/dmu = pt_reco = 100
    r = 1 / math.sqrt(2.0)
    asym_mu = [-r * 1.0, -r * -1.0, r * 0.8, r * -1.2, 0.0]
    close(mu.grad, np.add(nll_mu, 0.5 * np.array(asym_mu)))
    # d/dsigma = (1/sigma - (mu - t)^2 / sigma^3) / N
    close(sigma.grad, [10.0 / 5, (5.0 - 5.0) / 5, (10.0 - 40.0) / 5, 0.0, (2.0 - 0.08) / 5])


def test_gaussian_nll_weighted_and_fewer_than_two_pairs() -> None:
    mu = t(JET_MU, grad=True)
    w = t([1.0, 2.0, 0.0, 1.0, 1.0])
    one_pair = torch.tensor([[0, 1]])
    loss = gaussian_nll_asymmetry_loss(mu, t(JET_SIGMA), t(JET_TARGET), t([100.0] * 5), one_pair, f=10.0, weight=w)
    close(loss, float(np.dot(w.numpy(), JET_NLL)) / 5)  # P = 1: asymmetry term 0
    loss.backward()
    close(mu.grad, [0.0, 2 * 0.2 / 0.04 / 5, 0.0, -0.2 / 0.04 / 5, 0.1 / 0.25 / 5])

    no_pairs = torch.zeros((0, 2), dtype=torch.int64)
    close(gaussian_nll_asymmetry_loss(mu, t(JET_SIGMA), t(JET_TARGET), t([100.0] * 5), no_pairs, f=10.0), sum(JET_NLL) / 5)


def test_gaussian_nll_equal_asymmetries_give_zero_width_and_finite_gradient() -> None:
    mu = t([1.0, 1.0, 1.0, 1.0], grad=True)
    pairs = torch.tensor([[0, 1], [2, 3]])
    loss = gaussian_nll_asymmetry_loss(mu, t([0.5] * 4), t([1.0] * 4), t([100.0, 50.0, 200.0, 100.0]), pairs, f=1.0)
    close(loss, math.log(0.5))  # A = 2/3 twice: sigma_A = 0
    loss.backward()
    close(mu.grad, [0.0] * 4)


def test_gaussian_nll_sigma_clamp() -> None:
    sigma = t([0.0, 0.5], grad=True)
    loss = gaussian_nll_asymmetry_loss(
        t([1.0, 1.0]), sigma, t([1.0, 1.0]), t([1.0, 1.0]), torch.zeros((0, 2), dtype=torch.int64), f=0.0, min_sigma=1e-3
    )
    close(loss, (math.log(1e-3) + math.log(0.5)) / 2)
    loss.backward()
    close(sigma.grad, [0.0, 1.0 / 0.5 / 2])  # the clamp passes no gradient


def test_gaussian_nll_asymmetry_gradcheck() -> None:
    mu = t(JET_MU, grad=True)
    sigma = t(JET_SIGMA, grad=True)
    pt_reco = t([100.0, 90.0, 130.0, 70.0, 50.0], grad=True)
    target = t(JET_TARGET)
    pairs = torch.tensor([[0, 1], [2, 3], [4, 0]])
    w = t([1.0, 0.5, 2.0, 1.0, 1.0])

    def fn(m: Tensor, s: Tensor, pt: Tensor) -> Tensor:
        return gaussian_nll_asymmetry_loss(m, s, target, pt, pairs, f=2.0, weight=w)

    assert torch.autograd.gradcheck(fn, (mu, sigma, pt_reco))


def test_gaussian_nll_bad_input() -> None:
    args = (t(JET_MU), t(JET_SIGMA), t(JET_TARGET), t([100.0] * 5))
    with pytest.raises(HepchainError, match="'pairs' must be an int64"):
        gaussian_nll_asymmetry_loss(*args, JET_PAIRS.int(), f=1.0)
    with pytest.raises(HepchainError, match="'pairs' must have shape"):
        gaussian_nll_asymmetry_loss(*args, torch.tensor([0, 1]), f=1.0)
    with pytest.raises(HepchainError, match=r"'pairs' has row indices outside 0\.\.4"):
        gaussian_nll_asymmetry_loss(*args, torch.tensor([[0, 5], [1, 2]]), f=1.0)
    with pytest.raises(HepchainError, match="itself"):
        gaussian_nll_asymmetry_loss(*args, torch.tensor([[0, 0], [1, 2]]), f=1.0)
    with pytest.raises(HepchainError, match="'sigma' has shape"):
        gaussian_nll_asymmetry_loss(t(JET_MU), t([0.1]), t(JET_TARGET), t([100.0] * 5), JET_PAIRS, f=1.0)
    with pytest.raises(HepchainError, match="'sigma' must be finite and >= 0"):
        gaussian_nll_asymmetry_loss(t(JET_MU), -t(JET_SIGMA), t(JET_TARGET), t([100.0] * 5), JET_PAIRS, f=1.0)
    with pytest.raises(HepchainError, match="'pt_reco' must be > 0"):
        gaussian_nll_asymmetry_loss(t(JET_MU), t(JET_SIGMA), t(JET_TARGET), t([100.0, 0, 1, 1, 1]), JET_PAIRS, f=1.0)
    with pytest.raises(HepchainError, match="'mu' must be > 0"):
        gaussian_nll_asymmetry_loss(-t(JET_MU), t(JET_SIGMA), t(JET_TARGET), t([100.0] * 5), JET_PAIRS, f=1.0)
    with pytest.raises(ConfigError, match="'f'"):
        gaussian_nll_asymmetry_loss(*args, JET_PAIRS, f=-1.0)


# --- seed 004: electrons ----------------------------------------------------------------

# E_true = 100 everywhere; RE = 0.1, -0.1, 0.005, 0.5; rows 0-1 MC, rows 2-3 data.
# Huber, delta = 0.05: 0.05 (0.1 - 0.025) = 0.00375 twice, 0.5 * 0.005^2 = 1.25e-5, 0.05 (0.5 - 0.025) = 0.02375
E_PRED = [110.0, 90.0, 100.5, 150.0]
E_TARGET = [100.0] * 4
IS_DATA = torch.tensor([False, False, True, True])


def test_relative_energy_huber_value_and_gradient() -> None:
    pred = t(E_PRED, grad=True)
    loss = relative_energy_loss(pred, t(E_TARGET), is_data=IS_DATA, data_weight=2.0)
    mc_mean, data_mean = 0.00375, (1.25e-5 + 0.02375) / 2
    close(loss, mc_mean + 2.0 * data_mean)
    loss.backward()
    # d rho / d RE = clamp(RE, -delta, delta), d RE / d pred = 1 / E_true, each part / its row count
    close(pred.grad, [0.05 / 100 / 2, -0.05 / 100 / 2, 2.0 * 0.005 / 100 / 2, 2.0 * 0.05 / 100 / 2])


def test_relative_energy_abs_value_and_gradient_weighted() -> None:
    pred = t(E_PRED, grad=True)
    w = t([1.0, 3.0, 1.0, 1.0])
    loss = relative_energy_loss(pred, t(E_TARGET), is_data=IS_DATA, weight=w, norm="abs")
    close(loss, (0.1 + 3 * 0.1) / 4 + (0.005 + 0.5) / 2)
    loss.backward()
    close(pred.grad, [1 / 100 / 4, -3 / 100 / 4, 1 / 100 / 2, 1 / 100 / 2])  # w sign(RE) / E / sum w(part)


def test_relative_energy_without_data_or_mc_rows() -> None:
    pred = t(E_PRED, grad=True)
    all_huber = [0.00375, 0.00375, 1.25e-5, 0.02375]
    no_data = relative_energy_loss(pred, t(E_TARGET), is_data=torch.zeros(4, dtype=torch.bool), data_weight=5.0)
    close(no_data, sum(all_huber) / 4)
    close(relative_energy_loss(pred, t(E_TARGET)), sum(all_huber) / 4)
    only_data = relative_energy_loss(pred, t(E_TARGET), is_data=torch.ones(4, dtype=torch.bool), data_weight=0.5)
    close(only_data, 0.5 * sum(all_huber) / 4)
    no_data.backward()
    assert torch.isfinite(pred.grad).all()


def test_relative_energy_gradcheck() -> None:
    pred = t([110.0, 97.0, 102.0, 180.0, 60.0], grad=True)
    target = t([100.0, 100.0, 90.0, 200.0, 50.0])
    is_data = torch.tensor([False, True, False, True, True])
    w = t([1.0, 2.0, 0.5, 1.0, 1.5])
    assert torch.autograd.gradcheck(lambda p: relative_energy_loss(p, target, is_data, 1.5, w), (pred,))


def test_relative_energy_bad_input() -> None:
    with pytest.raises(HepchainError, match="'target' must be > 0"):
        relative_energy_loss(t([1.0, 2.0]), t([1.0, float("nan")]))
    with pytest.raises(HepchainError, match="'is_data' must be a bool"):
        relative_energy_loss(t([1.0, 2.0]), t([1.0, 2.0]), is_data=torch.tensor([0, 1]))
    with pytest.raises(HepchainError, match="'is_data' has shape"):
        relative_energy_loss(t([1.0, 2.0]), t([1.0, 2.0]), is_data=torch.tensor([True]))
    with pytest.raises(HepchainError, match="'weight' sums to 0"):
        relative_energy_loss(t([1.0, 2.0]), t([1.0, 2.0]), weight=t([0.0, 0.0]))
    with pytest.raises(ConfigError, match="'norm'"):
        relative_energy_loss(t([1.0]), t([1.0]), norm="mse")  # type: ignore[arg-type]


# --- registry ---------------------------------------------------------------------------


def test_registry() -> None:
    assert get_loss("mape") is mape_loss
    assert get_loss("weighted_cross_entropy") is weighted_cross_entropy
    assert get_loss("gaussian_nll_asymmetry") is gaussian_nll_asymmetry_loss
    assert all(callable(fn) for fn in LOSSES.values())
    with pytest.raises(ConfigError, match=r"unknown loss 'mse'; allowed: .*mape_sqrt.*relative_energy"):
        get_loss("mse")


def test_float32_inputs_work() -> None:
    pred = torch.tensor([[3.0, 5.0], [1.0, 1.0]], requires_grad=True)
    loss = recoil_bias_penalty_loss(pred, torch.tensor(RECOIL_TARGET), alpha=2.0)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, torch.tensor(1.0256), rtol=1e-6, atol=1e-6)


# --- check=False: the engine's sync-free path -------------------------------------------


def _value_and_grad(fn, pred: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[no-untyped-def]
    p = pred.detach().clone().requires_grad_(True)
    value = fn(p)
    (grad,) = torch.autograd.grad(value, p)
    return value.detach(), grad


def test_check_false_gives_the_same_value_and_gradient() -> None:
    g = torch.Generator().manual_seed(3)
    n = 32
    w = torch.rand(n, generator=g, dtype=torch.float64) + 0.1
    y = torch.rand(n, 1, generator=g, dtype=torch.float64) * 100 + 50
    p = y * (1 + 0.1 * torch.randn(n, 1, generator=g, dtype=torch.float64))
    is_data = torch.arange(n) % 3 == 0
    u = torch.randn(n, 2, generator=g, dtype=torch.float64) * 20
    u[0] = 0.0  # below min_pt: out of the bias term
    sig = torch.rand(n, generator=g, dtype=torch.float64) + 0.5
    pt_reco = torch.rand(n, generator=g, dtype=torch.float64) * 500 + 800
    pairs = torch.arange(n).reshape(-1, 2)
    cases = {
        "recoil": (lambda x, c: recoil_bias_penalty_loss(x, u * 1.1, 2.0, w, check=c), u),
        "mape": (lambda x, c: mape_loss(x, y, w, check=c), p),
        "mape_sqrt": (lambda x, c: mape_sqrt_loss(x, y, w, check=c), p),
        "mirrored": (lambda x, c: mirrored_boundary_loss(x, y, 50.0, 150.0, weight=w, check=c), p),
        "relative_mc_data": (lambda x, c: relative_energy_loss(x, y, is_data, 0.5, w, check=c), p),
        "relative_mc_only": (lambda x, c: relative_energy_loss(x, y, weight=w, norm="abs", check=c), p),
        "nll_asymmetry": (lambda x, c: gaussian_nll_asymmetry_loss(x[:, 0], sig, y[:, 0] / 100, pt_reco, pairs, 1.5, w, check=c),
                          torch.rand(n, 1, generator=g, dtype=torch.float64) + 0.5),
    }
    for name, (fn, x) in cases.items():
        checked = _value_and_grad(lambda q: fn(q, True), x)  # noqa: B023
        fast = _value_and_grad(lambda q: fn(q, False), x)  # noqa: B023
        torch.testing.assert_close(fast, checked, rtol=1e-12, atol=1e-12, msg=name)


def test_check_false_masked_mean_without_rows_is_a_connected_zero() -> None:
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    loss = recoil_bias_penalty_loss(pred, torch.zeros(2, 2), alpha=3.0, check=False)  # no row above min_pt
    (grad,) = torch.autograd.grad(loss, pred)
    torch.testing.assert_close(loss, (pred.detach() ** 2).mean())
    torch.testing.assert_close(grad, pred.detach() / 2)
    data_only = relative_energy_loss(pred[:, :1], torch.ones(2, 1), torch.ones(2, dtype=torch.bool), 2.0, check=False)
    torch.testing.assert_close(data_only, 2.0 * relative_energy_loss(pred[:, :1], torch.ones(2, 1)))


def test_check_false_clamps_a_non_positive_mu_instead_of_raising() -> None:
    ones = torch.ones(4)
    mu = torch.tensor([1.0, -1.0, 1.0, 1.0])
    pairs = torch.tensor([[0, 1], [2, 3]])
    with pytest.raises(HepchainError, match="'mu' must be > 0"):
        gaussian_nll_asymmetry_loss(mu, ones, ones, ones * 100, pairs, 1.0)
    loss = gaussian_nll_asymmetry_loss(mu, ones, ones, ones * 100, pairs, 1.0, check=False)
    a = (1.0 - 1e-6) / (0.5 * (1.0 + 1e-6))  # the clamped pair's asymmetry; the other pair's is 0
    nll = (0.5 * (mu - 1.0) ** 2).mean()
    torch.testing.assert_close(loss, nll + torch.tensor([a, 0.0]).std(), rtol=1e-6, atol=1e-6)
