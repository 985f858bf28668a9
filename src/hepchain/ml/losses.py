"""Loss functions of the five studies, and class-balanced event weights.

* ``vh`` (seed 003): :func:`weighted_cross_entropy` with
  :func:`class_balanced_weights`;
* ``recoil`` (seed 000): :func:`recoil_bias_penalty_loss`;
* ``ditau`` (seed 001): :func:`mape_loss`, :func:`mape_sqrt_loss`,
  :func:`mirrored_boundary_loss`;
* ``jets`` (seed 002): :func:`gaussian_nll_asymmetry_loss` and
  :func:`dijet_asymmetry`;
* ``electrons`` (seed 004): :func:`relative_energy_loss`.

:func:`get_loss` looks a loss up by name in :data:`LOSSES`.

Every regression loss takes ``check`` (default True): the checks of values
(positive targets, finite weights, a positive weight total, valid pairs and
sigma) read the tensors on the host, a GPU->CPU sync per call.  The training
engine validates its data once when loading and calls the losses with
``check=False``, which computes the same value without any sync (masked
means with ``torch.where``; in the jets loss a mu <= 0 on a paired row is
clamped at :data:`MIN_MU` instead of raising).  Shape and parameter checks
are plain Python and always run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from hepchain.errors import ConfigError, EmptySelectionError, HepchainError


def weighted_cross_entropy(logits: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """Return ``sum_i w_i CE_i / sum_i w_i`` for logits ``[N, C]`` and labels ``[N]``.

    ``CE_i = -log softmax(logits_i)[target_i]``.  The gradient with respect to
    the logits of row ``i`` is ``(softmax_i - onehot_i) * w_i / sum_j w_j``.
    """
    ce = F.cross_entropy(logits, target, reduction="none")
    return (weight * ce).sum() / weight.sum()


def class_balanced_weights(
    weight: np.ndarray, label: np.ndarray, n_classes: int
) -> np.ndarray:
    """Rescale event weights so that every class has the same total weight.

    Returns ``w_i / sum_{j in class(i)} w_j * N / n_classes`` (float64): each
    class sums to ``N / n_classes`` and the mean weight is 1.  Individual
    negative weights are kept; a class without rows or with a non-positive
    total weight raises :class:`EmptySelectionError`.
    """
    w = np.asarray(weight, dtype=np.float64)
    y = np.asarray(label)
    if w.ndim != 1 or y.shape != w.shape:
        raise ValueError(
            f"weight {w.shape} and label {y.shape} must be 1-d arrays of equal length"
        )
    if not np.issubdtype(y.dtype, np.integer):
        raise HepchainError(f"column 'label' must hold integers, got dtype {y.dtype}")
    if not np.all(np.isfinite(w)):
        raise HepchainError(
            f"{int((~np.isfinite(w)).sum())} NaN/inf values in column 'weight'"
        )
    outside = (y < 0) | (y >= n_classes)
    if outside.any():
        raise HepchainError(
            f"column 'label' has {int(outside.sum())} values outside 0..{n_classes - 1} "
            f"(e.g. {int(y[outside][0])})"
        )
    counts = np.bincount(y, minlength=n_classes)
    totals = np.bincount(y, weights=w, minlength=n_classes)
    for cls in range(n_classes):
        if counts[cls] == 0:
            raise EmptySelectionError(f"class {cls} has no rows")
        if not totals[cls] > 0:
            raise EmptySelectionError(
                f"class {cls} has non-positive total weight {totals[cls]:g}"
            )
    return w / totals[y] * (len(w) / n_classes)


# ---------------------------------------------------------------------------
# Regression losses of the recoil, ditau, jets and electrons studies.
#
# Conventions shared by every loss below: tensors are floating point; ``weight``
# is an optional per-row tensor ``[N]`` and turns every mean into the weighted
# mean ``sum_i w_i l_i / sum_i w_i`` (individual negative weights are allowed,
# a non-positive total raises); bad inputs raise :class:`HepchainError` (bad
# hyper-parameters :class:`ConfigError`) with a one-line message.
# ---------------------------------------------------------------------------

#: Default minimum truth pT^W (GeV) for a row to enter the recoil bias term.
RECOIL_MIN_PT = 1.0
#: Default lower clamp of the predicted sigma in the Gaussian NLL.
MIN_SIGMA = 1e-6
#: Lower clamp of mu in the asymmetry term with ``check=False`` (with checks a mu <= 0 on a paired row raises).
MIN_MU = 1e-6
#: Default Huber transition |RE| of the electron relative-energy loss.
RELATIVE_HUBER_DELTA = 0.05

MirroredBase = Literal["mape", "mape_sqrt"]
RelativeNorm = Literal["huber", "abs"]


def _check_float(name: str, x: Tensor) -> None:
    if not isinstance(x, Tensor):
        raise HepchainError(f"argument '{name}' must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise HepchainError(f"argument '{name}' must be a floating-point tensor, got dtype {x.dtype}")


def _check_rows(name: str, x: Tensor, shape: tuple[int, ...]) -> None:
    """Check that ``x`` is a float tensor of exactly ``shape``."""
    _check_float(name, x)
    if tuple(x.shape) != shape:
        raise HepchainError(f"argument '{name}' has shape {tuple(x.shape)}, expected {shape}")


def _check_column(name: str, x: Tensor) -> int:
    """Check that ``x`` is a non-empty float ``[N]`` tensor and return ``N``."""
    _check_float(name, x)
    if x.ndim != 1 or x.shape[0] == 0:
        raise HepchainError(f"argument '{name}' must be a non-empty 1-d tensor [N], got shape {tuple(x.shape)}")
    return int(x.shape[0])


def _check_positive(name: str, x: Tensor, reason: str = "the loss divides by it", check: bool = True) -> None:
    if not check:
        return
    bad = ~(x > 0)  # also catches NaN
    if bool(bad.any()):
        raise HepchainError(
            f"argument '{name}' must be > 0 ({reason}): {int(bad.sum())} values are not, "
            f"e.g. {float(x[bad].reshape(-1)[0]):g}"
        )


def _check_weight(weight: Tensor | None, n: int, check: bool = True) -> None:
    if weight is None:
        return
    _check_rows("weight", weight, (n,))
    if check and not bool(torch.isfinite(weight).all()):
        raise HepchainError(f"argument 'weight' has {int((~torch.isfinite(weight)).sum())} NaN/inf values")


def _weighted_mean(values: Tensor, weight: Tensor | None, what: str = "rows", check: bool = True) -> Tensor:
    """``sum w l / sum w`` (plain mean without ``weight``) of ``values`` ``[N]``; ``check``: the total must be > 0."""
    if weight is None:
        return values.mean()
    total = weight.sum()
    if check and not bool(total > 0):
        raise HepchainError(f"argument 'weight' sums to {float(total):g} over the {what}; the total must be > 0")
    return (weight * values).sum() / total


def _masked_mean(values: Tensor, weight: Tensor | None, mask: Tensor, what: str, check: bool = True) -> Tensor:
    """Weighted mean of ``values`` over the rows where ``mask`` is True.

    Without such rows the result is a zero that is still connected to the
    graph (gradient 0, never NaN).  ``values`` must be finite on every row.
    Without ``check`` the same value is computed with ``torch.where`` and no
    host sync (a zero also when the rows' weights sum to 0, where ``check``
    raises).
    """
    if not check:
        w = mask.to(values.dtype) if weight is None else weight * mask.to(values.dtype)
        total = w.sum()
        nonzero = total != 0
        safe = torch.where(nonzero, total, torch.ones_like(total))
        return torch.where(nonzero, (w * values).sum() / safe, (values * 0.0).sum())
    if not bool(mask.any()):
        return (values * 0.0).sum()
    sub_weight = None if weight is None else weight[mask]
    return _weighted_mean(values[mask], sub_weight, what)


def _check_nonnegative_param(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise ConfigError(f"loss parameter '{name}' must be a finite number >= 0, got {value!r}")


def _check_column_pair(pred: Tensor, target: Tensor) -> int:
    """Check ``pred`` and ``target`` are float tensors of one shape, ``[N]`` or ``[N, 1]``; return ``N``."""
    _check_float("pred", pred)
    _check_float("target", target)
    if pred.shape != target.shape:
        raise HepchainError(f"argument 'pred' has shape {tuple(pred.shape)}, 'target' {tuple(target.shape)}; they must match")
    if pred.ndim not in (1, 2) or (pred.ndim == 2 and pred.shape[1] != 1) or pred.shape[0] == 0:
        raise HepchainError(f"argument 'pred' must have shape [N] or [N, 1] with N > 0, got {tuple(pred.shape)}")
    return int(pred.shape[0])


# --- seed 000: W recoil -----------------------------------------------------


def recoil_bias_penalty_loss(
    pred: Tensor,
    target: Tensor,
    alpha: float,
    weight: Tensor | None = None,
    *,
    min_pt: float = RECOIL_MIN_PT,
    check: bool = True,
) -> Tensor:
    r"""MSE of the predicted W pT vector plus a penalty on the recoil bias (seed 000).

    Seed 000 (slides "Loss function" after the first results) adds to the MSE
    a term for the bias, :math:`1 - u_\parallel / |p_T^W|`:

    .. math::

        L = \langle (y_{pred} - y_{true})^2 \rangle
            + \alpha \langle (1 - r)^2 \rangle, \qquad
        r_i = \frac{y_{pred,i} \cdot \hat y_{true,i}}{|y_{true,i}|}
            = \frac{y_{pred,i} \cdot y_{true,i}}{|y_{true,i}|^2}.

    The network predicts the truth W pT vector ``(p_x, p_y)`` directly, so
    the response :math:`r = u_\parallel / |p_T^W|` is the projection of the
    prediction on the truth W direction over the truth magnitude, and the
    penalised quantity is the squared bias :math:`(1 - r)^2`.  (The slide
    writes :math:`\langle (1 - bias)^2 \rangle`; with bias = 1 - r taken
    literally that would be :math:`\langle r^2 \rangle`, which is minimised by
    r = 0, so "bias" there must mean the response r.)

    The first mean runs over all rows and both components:
    ``sum_i w_i (d_ix^2 + d_iy^2) / 2 / sum_i w_i``, so ``alpha = 0`` gives
    exactly the plain (weighted) MSE of Keras/torch ``mse_loss``.

    Protection of rows with |y_true| ~ 0: r is undefined when the truth W has
    no direction and explodes as 1/|p_T^W| below a few GeV, so rows with
    ``|y_true| < min_pt`` (GeV, default :data:`RECOIL_MIN_PT` = 1 GeV) are
    left out of the bias term (they still enter the MSE).  The bias mean is
    the weighted mean over the remaining rows; if no row remains, the bias
    term is 0 with gradient 0.

    Parameters
    ----------
    pred, target : Tensor
        ``[N, 2]`` predicted and truth ``(p_x^W, p_y^W)`` in GeV.
    alpha : float
        Normalisation of the bias term, >= 0 (the seed tries alpha and 5 alpha).
    weight : Tensor, optional
        ``[N]`` per-row weights.
    min_pt : float
        Minimum truth pT^W (GeV) for a row to enter the bias term, >= 0.

    Returns
    -------
    Tensor
        The scalar loss.
    """
    _check_float("pred", pred)
    if pred.ndim != 2 or pred.shape[1] != 2 or pred.shape[0] == 0:
        raise HepchainError(f"argument 'pred' must have shape [N, 2] with N > 0, got {tuple(pred.shape)}")
    n = int(pred.shape[0])
    _check_rows("target", target, (n, 2))
    _check_weight(weight, n, check)
    _check_nonnegative_param("alpha", alpha)
    _check_nonnegative_param("min_pt", min_pt)

    mse = _weighted_mean(((pred - target) ** 2).mean(dim=1), weight, check=check)
    pt2 = (target**2).sum(dim=1)
    valid = (pt2 >= min_pt**2) & (pt2 > 0)
    safe_pt2 = torch.where(valid, pt2, torch.ones_like(pt2))
    response = (pred * target).sum(dim=1) / safe_pt2
    penalty = torch.where(valid, (1.0 - response) ** 2, torch.zeros_like(response))
    bias_term = _masked_mean(penalty, weight, valid, f"rows with |target| >= min_pt = {min_pt:g}", check)
    return mse + alpha * bias_term


# --- seed 001: di-tau mass ---------------------------------------------------


def _mape_rows(pred: Tensor, target: Tensor) -> Tensor:
    return 100.0 * (pred - target).abs() / target


def _mape_sqrt_rows(pred: Tensor, target: Tensor) -> Tensor:
    return (pred - target).abs() / target.sqrt()


def mape_loss(pred: Tensor, target: Tensor, weight: Tensor | None = None, *, check: bool = True) -> Tensor:
    r"""Mean absolute percentage error (seed 001, "chosen hyperparameters").

    .. math:: MAPE = \frac{100}{N} \sum_i \left| \frac{y_{pred,i} - y_i}{y_i} \right|

    (weighted: ``sum w_i l_i / sum w_i``).  ``pred`` and ``target`` have one
    shape, ``[N]`` or ``[N, 1]``; ``target`` must be > 0.
    """
    n = _check_column_pair(pred, target)
    _check_weight(weight, n, check)
    _check_positive("target", target, check=check)
    return _weighted_mean(_mape_rows(pred, target).reshape(n), weight, check=check)


def mape_sqrt_loss(pred: Tensor, target: Tensor, weight: Tensor | None = None, *, check: bool = True) -> Tensor:
    r"""MAPE times sqrt(y): the seed-001 loss that constrains high masses better.

    .. math:: MAPE_{sqrt} = \frac{1}{N} \sum_i \frac{|y_{pred,i} - y_i|}{\sqrt{y_i}}

    (weighted: ``sum w_i l_i / sum w_i``; no factor 100, as in the seed).
    ``pred`` and ``target`` have one shape, ``[N]`` or ``[N, 1]``; ``target``
    must be > 0.
    """
    n = _check_column_pair(pred, target)
    _check_weight(weight, n, check)
    _check_positive("target", target, check=check)
    return _weighted_mean(_mape_sqrt_rows(pred, target).reshape(n), weight, check=check)


def mirrored_boundary_factor(
    pred: Tensor,
    target: Tensor,
    low: float,
    high: float,
    *,
    upper_factor: float = 0.0,
    lower_factor: float = 0.1,
) -> Tensor:
    r"""Per-row factor of the mirrored-boundary loss (seed 001 listing, lines 3-14).

    With the sample truth range ``[low, high]`` and the diagonal
    ``y_pred = y_true`` ("red line"), a row is outside the mirrored upper
    boundary when :math:`y_{pred} - y_{true} \ge high - y_{pred}` and outside
    the mirrored lower boundary when :math:`y_{true} - y_{pred} \ge y_{pred} - low`
    (at fixed prediction, the truth lies further from the diagonal than the
    diagonal from the boundary, so its mirror image was cut away from the
    sample).  The factor is ``upper_factor`` (seed: 0) in the first case,
    else ``lower_factor`` (seed: 0.1, "instead of 0.0" because of convergence
    problems) in the second, else 1.  The two cases exclude each other when
    ``low < high``.  The factor is a constant of the graph (no gradient).
    """
    with torch.no_grad():
        p = pred.detach()
        t = target.detach()
        ones = torch.ones_like(p)
        factor = torch.where(t - p >= p - low, lower_factor * ones, ones)
        return torch.where(p - t >= high - p, upper_factor * ones, factor)


def mirrored_boundary_loss(
    pred: Tensor,
    target: Tensor,
    low: float,
    high: float,
    base: MirroredBase = "mape_sqrt",
    weight: Tensor | None = None,
    *,
    upper_factor: float = 0.0,
    lower_factor: float = 0.1,
    check: bool = True,
) -> Tensor:
    r"""Base loss times the mirrored-boundary factor (seed 001, "custom loss").

    .. math::

        L = \frac{\sum_i w_i\, c_i\, l_i}{\sum_i w_i}, \qquad
        c_i = \begin{cases}
            \text{upper\_factor} & y_{pred,i} - y_i \ge high - y_{pred,i} \\
            \text{lower\_factor} & y_i - y_{pred,i} \ge y_{pred,i} - low \\
            1 & \text{otherwise}
        \end{cases}

    with ``l_i`` the per-row ``base`` loss (``"mape_sqrt"``, as in the seed's
    listing, or ``"mape"``) and ``c_i`` from :func:`mirrored_boundary_factor`
    (seed defaults ``upper_factor = 0``, ``lower_factor = 0.1``; ``low`` and
    ``high`` are the truth-mass boundaries of the training sample, 50 and 800
    GeV in the seed).  As in the seed's ``reduce_mean`` the mean runs over
    *all* rows, the excluded ones contributing 0: when no row counts (every
    ``c_i = 0``) the loss is 0 and its gradient 0, never NaN.

    ``pred`` and ``target`` have one shape, ``[N]`` or ``[N, 1]``; ``target``
    must be > 0; ``low < high``.
    """
    n = _check_column_pair(pred, target)
    _check_weight(weight, n, check)
    _check_positive("target", target, check=check)
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ConfigError(f"loss parameters need finite low < high, got low={low!r}, high={high!r}")
    _check_nonnegative_param("upper_factor", upper_factor)
    _check_nonnegative_param("lower_factor", lower_factor)
    if base == "mape":
        rows = _mape_rows(pred, target)
    elif base == "mape_sqrt":
        rows = _mape_sqrt_rows(pred, target)
    else:
        raise ConfigError(f"loss parameter 'base' must be 'mape' or 'mape_sqrt', got {base!r}")
    factor = mirrored_boundary_factor(
        pred, target, low, high, upper_factor=upper_factor, lower_factor=lower_factor
    )
    return _weighted_mean((factor * rows).reshape(n), weight, check=check)


# --- seed 002: jet calibration ------------------------------------------------


def dijet_asymmetry(pt_ref: Tensor, pt_probe: Tensor, *, check: bool = True) -> Tensor:
    r"""Dijet asymmetry :math:`A = (p_T^{ref} - p_T^{probe}) / p_T^{avg}` (seed 002).

    :math:`p_T^{avg} = (p_T^{ref} + p_T^{probe}) / 2`, element-wise for
    tensors of one shape; ``pt_avg`` must be > 0.
    """
    _check_float("pt_ref", pt_ref)
    _check_float("pt_probe", pt_probe)
    if pt_ref.shape != pt_probe.shape:
        raise HepchainError(
            f"argument 'pt_ref' has shape {tuple(pt_ref.shape)}, 'pt_probe' {tuple(pt_probe.shape)}; they must match"
        )
    pt_avg = 0.5 * (pt_ref + pt_probe)
    _check_positive("pt_ref + pt_probe", pt_avg, "A divides by pt_avg", check)
    return (pt_ref - pt_probe) / pt_avg


def _std_or_zero(a: Tensor) -> Tensor:
    """Sample standard deviation (N - 1) of ``a``; 0 with gradient 0 when it is 0."""
    var = a.var(unbiased=True)
    positive = var > 0
    safe = torch.where(positive, var, torch.ones_like(var))
    return torch.where(positive, safe.sqrt(), torch.zeros_like(var))


def gaussian_nll_asymmetry_loss(
    mu: Tensor,
    sigma: Tensor,
    target: Tensor,
    pt_reco: Tensor,
    pairs: Tensor,
    f: float,
    weight: Tensor | None = None,
    *,
    min_sigma: float = MIN_SIGMA,
    check: bool = True,
) -> Tensor:
    r"""Gaussian NLL of the calibration factor plus ``f`` times the in-batch sigma_A (seed 002).

    .. math::

        L = \frac{\sum_i w_i \left[\frac{(\mu_i - t_i)^2}{2 \sigma_i^2} + \log\sigma_i\right]}{\sum_i w_i}
            + f\, \sigma_A, \qquad
        \sigma_A = \operatorname{std}_k A_k, \quad
        A_k = \frac{\mu_{r_k} p_{T,r_k} - \mu_{p_k} p_{T,p_k}}
                   {(\mu_{r_k} p_{T,r_k} + \mu_{p_k} p_{T,p_k}) / 2}

    The NLL is the seed's ``1/2 (mu(theta) - mu)^2 / sigma^2 + log sigma``
    (constant dropped); ``mu`` is the predicted calibration factor
    pT_true / pT_reco and ``target`` its truth value.  The in-situ JER term
    (seed: "LOSS -> LOSS + f * sigma_A") is the sample standard deviation
    (``N - 1`` normalisation) over the ``P`` dijet pairs of the batch of the
    asymmetry of the *calibrated* jets, ``pT = mu * pt_reco`` (see
    :func:`dijet_asymmetry`); it does not use the truth and is unweighted
    (one entry per pair).  With ``P < 2`` the term is 0, and when all A_k are
    equal sigma_A = 0 with gradient 0 (not NaN).

    Parameters
    ----------
    mu, sigma, target, pt_reco : Tensor
        ``[N]`` predicted calibration factor, predicted width (> 0, e.g. from
        softplus; clamped below at ``min_sigma`` so that log sigma stays
        finite, the clamp passing no gradient), truth calibration factor and
        reconstructed jet pT (> 0).
    pairs : Tensor
        ``[P, 2]`` int64 row indices ``(ref, probe)`` of the two leading jets of
        each dijet event in the batch; ``mu`` must be > 0 on paired rows.
    f : float
        Weight of the asymmetry term, >= 0 (the seed varies it in 0..10).
    weight : Tensor, optional
        ``[N]`` per-row weights of the NLL.
    min_sigma : float
        Lower clamp of ``sigma``, > 0 (default :data:`MIN_SIGMA`).

    Returns
    -------
    Tensor
        The scalar loss.
    """
    n = _check_column("mu", mu)
    _check_rows("sigma", sigma, (n,))
    _check_rows("target", target, (n,))
    _check_rows("pt_reco", pt_reco, (n,))
    _check_weight(weight, n, check)
    _check_nonnegative_param("f", f)
    if not (isinstance(min_sigma, int | float) and math.isfinite(min_sigma) and min_sigma > 0):
        raise ConfigError(f"loss parameter 'min_sigma' must be a finite number > 0, got {min_sigma!r}")
    if not isinstance(pairs, Tensor) or pairs.dtype != torch.int64:
        raise HepchainError(f"argument 'pairs' must be an int64 tensor, got {getattr(pairs, 'dtype', type(pairs).__name__)}")
    if pairs.ndim != 2 or pairs.shape[1] != 2:
        raise HepchainError(f"argument 'pairs' must have shape [P, 2], got {tuple(pairs.shape)}")
    if check:
        if pairs.numel() and bool(((pairs < 0) | (pairs >= n)).any()):
            raise HepchainError(f"argument 'pairs' has row indices outside 0..{n - 1}")
        if bool((pairs[:, 0] == pairs[:, 1]).any()):
            raise HepchainError("argument 'pairs' pairs a row with itself (ref and probe must be different jets)")
        if bool((sigma < 0).any()) or not bool(torch.isfinite(sigma).all()):
            raise HepchainError("argument 'sigma' must be finite and >= 0 (use softplus on the network output)")
    _check_positive("pt_reco", pt_reco, check=check)

    s = sigma.clamp(min=min_sigma)
    nll = _weighted_mean(0.5 * (mu - target) ** 2 / s**2 + s.log(), weight, check=check)
    if pairs.shape[0] < 2:
        return nll
    ref, probe = pairs[:, 0], pairs[:, 1]
    if check:
        _check_positive("mu", mu[pairs.reshape(-1)], "on paired rows, calibrated pT = mu * pt_reco; use softplus")
        pt = mu * pt_reco
    else:  # cannot raise without a sync: a non-positive mu is clamped at MIN_MU instead
        pt = mu.clamp(min=MIN_MU) * pt_reco
    sigma_a = _std_or_zero(dijet_asymmetry(pt[ref], pt[probe], check=check))
    return nll + f * sigma_a


# --- seed 004: electron energy ---------------------------------------------------


def relative_energy_loss(
    pred: Tensor,
    target: Tensor,
    is_data: Tensor | None = None,
    data_weight: float = 1.0,
    weight: Tensor | None = None,
    *,
    norm: RelativeNorm = "huber",
    delta: float = RELATIVE_HUBER_DELTA,
    check: bool = True,
) -> Tensor:
    r"""Relative-error energy regression loss on MC and Z-constraint-labelled data (seed 004).

    .. math::

        RE_i = \frac{E_{pred,i} - E_i}{E_i}, \qquad
        L = \langle \rho(RE) \rangle_{MC} + \text{data\_weight}\, \langle \rho(RE) \rangle_{data}

    ``pred`` is the calibrated energy (a network that predicts a correction
    factor c passes ``c * E_raw``); ``target`` holds the label: E_truth on MC
    rows, the Z-mass-constraint label on data rows
    (:math:`E_{label} = M_Z^2 / (2 E_{T,2} (\cosh\Delta\eta - \cos\Delta\phi))`,
    seed 004 "Training in data"); it must be > 0.  ``is_data`` (bool ``[N]``)
    marks the data rows (None: all rows are MC).  Each part is a (weighted)
    mean over its own rows and the two are added, as the seed's
    ``L = L(y_MC, yhat_MC) + L(y_data, yhat_data)`` ("they even have the same
    form"); ``data_weight`` (default 1, the seed) scales the data part.  A
    batch without data rows gives the MC part only, one without MC rows the
    data part only (no NaN).

    The seed evaluates the regression with the eIQR of RE = E_calib / E_truth
    and does not name the training norm.  ``rho`` is therefore a robust norm
    of the relative error (RE - 1 in the seed's ratio convention), matching
    an interquartile-range figure of merit that ignores the tails:

    * ``norm="huber"`` (default): :math:`\rho = RE^2 / 2` for
      :math:`|RE| \le \delta`, :math:`\delta (|RE| - \delta / 2)` beyond
      (torch ``huber_loss``), quadratic in the few-percent core, linear in the
      tails (electrons that lost energy upstream), smooth at 0;
      ``delta`` default :data:`RELATIVE_HUBER_DELTA` = 0.05;
    * ``norm="abs"``: :math:`\rho = |RE|`, the absolute relative error.
    """
    n = _check_column_pair(pred, target)
    _check_weight(weight, n, check)
    _check_positive("target", target, check=check)
    _check_nonnegative_param("data_weight", data_weight)
    if is_data is None:
        data_mask = torch.zeros(n, dtype=torch.bool, device=pred.device)
    else:
        if not isinstance(is_data, Tensor) or is_data.dtype != torch.bool:
            raise HepchainError(
                f"argument 'is_data' must be a bool tensor, got {getattr(is_data, 'dtype', type(is_data).__name__)}"
            )
        if tuple(is_data.shape) != (n,):
            raise HepchainError(f"argument 'is_data' has shape {tuple(is_data.shape)}, expected {(n,)}")
        data_mask = is_data
    re = ((pred - target) / target).reshape(n)
    if norm == "huber":
        if not (isinstance(delta, int | float) and math.isfinite(delta) and delta > 0):
            raise ConfigError(f"loss parameter 'delta' must be a finite number > 0, got {delta!r}")
        rows = F.huber_loss(re, torch.zeros_like(re), reduction="none", delta=float(delta))
    elif norm == "abs":
        rows = re.abs()
    else:
        raise ConfigError(f"loss parameter 'norm' must be 'huber' or 'abs', got {norm!r}")
    mc_mean = _masked_mean(rows, weight, ~data_mask, "MC rows", check)
    data_mean = _masked_mean(rows, weight, data_mask, "data rows", check)
    return mc_mean + data_weight * data_mean


# --- registry -----------------------------------------------------------------

#: Loss functions by name (the name is the function name without ``_loss``).
LOSSES: dict[str, Callable[..., Tensor]] = {
    "weighted_cross_entropy": weighted_cross_entropy,
    "recoil_bias_penalty": recoil_bias_penalty_loss,
    "mape": mape_loss,
    "mape_sqrt": mape_sqrt_loss,
    "mirrored_boundary": mirrored_boundary_loss,
    "gaussian_nll_asymmetry": gaussian_nll_asymmetry_loss,
    "relative_energy": relative_energy_loss,
}


def get_loss(name: str) -> Callable[..., Tensor]:
    """Return the loss function registered as ``name`` in :data:`LOSSES`.

    Raises :class:`ConfigError` naming the unknown name and the allowed ones.
    """
    try:
        return LOSSES[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown loss {name!r}; allowed: {', '.join(sorted(LOSSES))}") from None
