"""Asimov discovery significance with an uncertain background.

The median discovery significance of a counting experiment with expected
signal ``s``, expected background ``b`` and an absolute background
uncertainty ``sigma`` is, from the Asimov data set of

    G. Cowan, K. Cranmer, E. Gross, O. Vitells, "Asymptotic formulae for
    likelihood-based tests of new physics", Eur. Phys. J. C 71 (2011) 1554,
    arXiv:1007.1727 (eq. 97 and the discussion of the "on/off" problem),

    Z0 = sqrt(2 [(s+b) ln((s+b)/b_hat) + b_hat - s - b + (b - b_hat)^2 / (2 sigma^2)])

with the profiled background

    b_hat = (b - sigma^2 + sqrt((b - sigma^2)^2 + 4 (s+b) sigma^2)) / 2.

For ``sigma -> 0`` it reduces to ``sqrt(2 ((s+b) ln(1 + s/b) - s))`` (eq. 97
of the same paper without nuisance parameter) and for ``b >> s`` to
``s / sqrt(b + sigma^2)``.  It is the figure of merit of the VH(->WW) binning
optimisation (C. Basso, ATLAS, 2020) with ``sigma = rel_sigma_b * b``.

Numerics
--------
The textbook form cancels catastrophically: ``b_hat - b`` is of order
``sigma^2 s / b`` and the logarithmic terms cancel to second order in
``s / b``.  Here ``delta = b_hat - b`` is the positive root of
``delta^2 + (b + sigma^2) delta - sigma^2 s = 0``, evaluated as
``delta = sigma^2 r`` with
``r = 2 s / (b + sigma^2 + sqrt((b + sigma^2)^2 + 4 sigma^2 s))``
(a sum of positive terms).  With ``n = s + b`` and
``u = b_hat / n - 1 = -(s / n) b_hat / (b_hat + sigma^2)`` the bracket is

    n * (u - log1p(u)) + delta * r / 2,

where ``u - log1p(u)`` is summed as its Taylor series for small ``|u|``.
Every step is free of cancellation, so the ``sigma -> 0`` limit is reached
continuously and ``rel_sigma_b = 0`` is exact.

Conventions
-----------
* ``s <= 0`` gives ``Z0 = 0``: the discovery test is one-sided, ``q0 = 0``
  when the fitted signal strength is not positive (Cowan et al., eq. 12).
* ``b <= 0`` (or a non-finite input) gives ``nan`` element-wise, also for
  scalar input: the formula is undefined without background, and the binning
  regularisation (background yield above a positive threshold) keeps the
  optimiser away from it.  ``nan`` propagates through :func:`combined_z0`.
* ``rel_sigma_b`` must be finite and ``>= 0``; otherwise
  :class:`hepchain.errors.ConfigError` is raised.
"""

from __future__ import annotations

from typing import overload

import numpy as np
import numpy.typing as npt

from hepchain.errors import ConfigError

__all__ = ["combined_z0", "z0"]

ArrayLike = npt.ArrayLike
FloatArray = npt.NDArray[np.float64]

#: Below this ``|u|`` the series of ``u - log1p(u)`` is used; the truncation
#: error of :data:`_SERIES_TERMS` terms is then below 1e-17 relative.
_SERIES_LIMIT = 0.05
_SERIES_TERMS = 14


def _u_minus_log1p(u: FloatArray) -> FloatArray:
    """Return ``u - log1p(u)`` for ``u > -1`` without cancellation near 0.

    For ``|u| < 0.05`` the alternating series ``sum_{k>=2} (-u)^k / k``
    (Abramowitz & Stegun 4.1.24) is evaluated by Horner's rule; elsewhere the
    direct difference loses at most ``2 eps / |u|`` relative precision.
    """
    out = u - np.log1p(np.where(u > -1.0, u, 0.0))
    small = np.abs(u) < _SERIES_LIMIT
    if np.any(small):
        us = u[small]
        acc = np.zeros_like(us)
        for k in range(_SERIES_TERMS + 1, 1, -1):
            acc = (1.0 if k % 2 == 0 else -1.0) / k + us * acc
        # acc = sum_{k>=2} (-1)^k u^(k-2) / k, so the series is u^2 * acc
        out[small] = us * us * acc
    return out


def _check_rel_sigma(rel_sigma_b: ArrayLike) -> FloatArray:
    rel = np.asarray(rel_sigma_b, dtype=np.float64)
    if not np.all(np.isfinite(rel)) or np.any(rel < 0.0):
        raise ConfigError(
            "rel_sigma_b (relative background uncertainty) must be finite and >= 0, "
            f"got {rel_sigma_b!r}"
        )
    return rel


@overload
def z0(s: float, b: float, rel_sigma_b: float = ...) -> float: ...
@overload
def z0(
    s: ArrayLike, b: ArrayLike, rel_sigma_b: ArrayLike = ...
) -> float | FloatArray: ...


def z0(s: ArrayLike, b: ArrayLike, rel_sigma_b: ArrayLike = 0.1) -> float | FloatArray:
    """Asimov discovery significance with background uncertainty ``rel_sigma_b * b``.

    Implements eq. (97) of Cowan, Cranmer, Gross, Vitells, EPJC 71 (2011) 1554
    extended by a Gaussian-constrained background (``sigma = rel_sigma_b * b``),
    in the cancellation-free form described in the module docstring.

    Parameters
    ----------
    s, b:
        Expected signal and background yields (sums of event weights at the
        analysis luminosity).  Broadcast against each other.
    rel_sigma_b:
        Relative background uncertainty, ``>= 0``; broadcast as well.

    Returns
    -------
    float or ndarray
        A Python ``float`` when all inputs are scalars, else an array of the
        broadcast shape.  ``0`` where ``s <= 0``; ``nan`` where ``b <= 0`` or
        an input is not finite.

    Raises
    ------
    ConfigError
        If ``rel_sigma_b`` is negative or not finite.
    """
    rel = _check_rel_sigma(rel_sigma_b)
    s_arr, b_arr, rel_arr = np.broadcast_arrays(
        np.asarray(s, dtype=np.float64), np.asarray(b, dtype=np.float64), rel
    )
    shape = s_arr.shape
    s_f = s_arr.ravel()
    b_f = b_arr.ravel()
    r_f = rel_arr.ravel()

    result = np.zeros(s_f.shape, dtype=np.float64)
    invalid = ~(np.isfinite(s_f) & np.isfinite(b_f) & (b_f > 0.0))
    result[invalid] = np.nan
    ok = ~invalid & (s_f > 0.0)
    if np.any(ok):
        sv, bv = s_f[ok], b_f[ok]
        var = (r_f[ok] * bv) ** 2  # sigma^2
        bpv = bv + var
        r = 2.0 * sv / (bpv + np.sqrt(bpv * bpv + 4.0 * var * sv))  # = delta / sigma^2
        delta = var * r  # = b_hat - b >= 0
        b_hat = bv + delta
        n = sv + bv
        u = -(sv / n) * (b_hat / (b_hat + var))  # = b_hat / n - 1, in (-1, 0)
        half_q0 = n * _u_minus_log1p(u) + 0.5 * delta * r
        result[ok] = np.sqrt(2.0 * np.maximum(half_q0, 0.0))

    if shape == ():
        return float(result[0])
    return result.reshape(shape)


def combined_z0(
    s_bins: ArrayLike, b_bins: ArrayLike, rel_sigma_b: ArrayLike = 0.1
) -> float | FloatArray:
    """Combined significance of independent bins, ``sqrt(sum_i Z0_i^2)``.

    The bins are treated as independent counting experiments whose
    log-likelihood ratios add (Cowan et al., EPJC 71 (2011) 1554, sec. 2), as
    in the VH(->WW) binning optimisation (Basso, ATLAS, 2020).  The sum runs
    over the last axis: 1-D input gives a ``float``.  A bin with ``b <= 0``
    makes the result ``nan``.
    """
    per_bin = np.asarray(z0(s_bins, b_bins, rel_sigma_b), dtype=np.float64)
    if per_bin.ndim == 0:
        return float(per_bin)
    total = np.sqrt(np.sum(per_bin * per_bin, axis=-1))
    if np.ndim(total) == 0:
        return float(total)
    return total
