"""Greedy binning optimisation of a classifier score by the Asimov significance.

Algorithm of the VH(->WW) binning optimisation (C. Basso, ATLAS, 2020):

1. start from one bin ``[lo, hi]`` of the score;
2. for a bin ``[a, c]`` try the split points ``a + f (c - a)`` for ``f`` in
   ``fractions`` (5%-95%, 10%-90%, ..., 95%-5%);
3. a candidate is allowed only if both sub-bins pass the regularisation:
   expected (weighted) signal yield ``> min_signal`` and expected background
   yield ``> min_background``;
4. among the allowed candidates take the one that increases the combined
   significance ``Z0 = sqrt(sum_i Z0_i^2)`` the most (Cowan, Cranmer, Gross,
   Vitells, EPJC 71 (2011) 1554, see :mod:`hepchain.stats.asimov`), and apply
   it only if ``Z0`` strictly increases;
5. recurse into the two new bins; stop when no bin can be split.

Because ``Z0^2`` is a sum over bins, whether and where a bin is split depends
on that bin only, so the recursion (done here with an explicit work stack)
yields exactly the edges of a global greedy search.  Scores are sorted once;
yields of any interval are differences of cumulative sums located with
:func:`numpy.searchsorted`, so one split evaluation costs ``O(log n)``.

Bins follow the :func:`numpy.histogram` convention: ``[e_i, e_{i+1})``, the
last bin closed, so ``score == hi`` belongs to the last bin.  Events outside
``[lo, hi]`` (and events with a ``nan`` score) are ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from hepchain.errors import ConfigError, EmptySelectionError, HepchainError
from hepchain.stats.asimov import z0

__all__ = [
    "BinningInputError",
    "BinningResult",
    "optimise_binning",
    "single_bin_z0",
    "yields_in_bins",
]

FloatArray = npt.NDArray[np.float64]

#: A split is applied only if it raises the bin's ``Z0^2`` by more than this
#: relative amount (guards against accepting floating-point noise).
SPLIT_RTOL = 1e-12

DEFAULT_FRACTIONS: FloatArray = np.arange(0.05, 0.951, 0.05)


class BinningInputError(HepchainError, ValueError):
    """Score, weight or label arrays are inconsistent or not finite."""


@dataclass(frozen=True, eq=False)
class BinningResult:
    """Outcome of :func:`optimise_binning`; arrays are read-only.

    Attributes
    ----------
    edges:
        Increasing bin edges, ``edges[0] == lo`` and ``edges[-1] == hi``.
    z0:
        Combined Asimov significance ``sqrt(sum_i z0_per_bin[i]^2)``.
    signal, background:
        Expected (weighted) yields per bin.
    signal_err, background_err:
        MC-statistical errors per bin, ``sqrt(sum w^2)``.
    z0_per_bin:
        Asimov significance of each bin.
    rel_sigma_b:
        Relative background uncertainty used.
    """

    edges: FloatArray
    z0: float
    signal: FloatArray
    background: FloatArray
    signal_err: FloatArray
    background_err: FloatArray
    z0_per_bin: FloatArray
    rel_sigma_b: float = field(default=0.1)

    def __post_init__(self) -> None:
        for name in (
            "edges",
            "signal",
            "background",
            "signal_err",
            "background_err",
            "z0_per_bin",
        ):
            arr = np.array(getattr(self, name), dtype=np.float64)
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "z0", float(self.z0))
        object.__setattr__(self, "rel_sigma_b", float(self.rel_sigma_b))

    @property
    def n_bins(self) -> int:
        """Number of bins, ``len(edges) - 1``."""
        return int(self.edges.size - 1)

    def to_dict(self) -> dict[str, Any]:
        """Return the result as plain, JSON-serialisable Python types."""
        return {
            "edges": [float(x) for x in self.edges],
            "z0": float(self.z0),
            "signal": [float(x) for x in self.signal],
            "background": [float(x) for x in self.background],
            "signal_err": [float(x) for x in self.signal_err],
            "background_err": [float(x) for x in self.background_err],
            "z0_per_bin": [float(x) for x in self.z0_per_bin],
            "rel_sigma_b": float(self.rel_sigma_b),
            "n_bins": self.n_bins,
        }


def _as_1d(name: str, values: npt.ArrayLike, dtype: type) -> npt.NDArray[Any]:
    arr = np.asarray(values, dtype=dtype)
    if arr.ndim != 1:
        raise BinningInputError(
            f"{name} must be one-dimensional, got shape {arr.shape}"
        )
    return arr


def _check_same_length(**arrays: npt.NDArray[Any]) -> None:
    lengths = {name: arr.size for name, arr in arrays.items()}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{name}={n}" for name, n in lengths.items())
        raise BinningInputError(f"arrays must have the same length, got {described}")


def _check_edges(edges: npt.ArrayLike) -> FloatArray:
    arr = _as_1d("edges", edges, np.float64)
    if arr.size < 2 or not np.all(np.isfinite(arr)) or np.any(np.diff(arr) <= 0.0):
        raise ConfigError(
            "bin edges must be at least 2, finite and strictly increasing, "
            f"got {arr.tolist()}"
        )
    return arr


def _bin_index(score: FloatArray, edges: FloatArray) -> npt.NDArray[np.intp]:
    """Bin index of each score (``numpy.histogram`` convention), ``-1`` outside."""
    idx = np.searchsorted(edges, score, side="right") - 1
    n_bins = edges.size - 1
    idx[score == edges[-1]] = n_bins - 1
    idx[(idx < 0) | (idx >= n_bins) | np.isnan(score)] = -1
    return idx


def yields_in_bins(
    score: npt.ArrayLike,
    weight: npt.ArrayLike,
    edges: npt.ArrayLike,
    labels: npt.ArrayLike | None = None,
    n_classes: int | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Per-bin sums of weights and MC-statistical errors ``sqrt(sum w^2)``.

    Bins follow :func:`numpy.histogram`: ``[e_i, e_{i+1})`` with the last bin
    closed; events outside ``[edges[0], edges[-1]]`` are ignored.

    Parameters
    ----------
    score, weight:
        Per-event score and weight (expected yield contribution).
    edges:
        Strictly increasing bin edges.
    labels:
        Optional integer class label per event in ``0 .. n_classes - 1``.
    n_classes:
        Number of classes; defaults to ``max(labels) + 1``.

    Returns
    -------
    (sum_w, err)
        Arrays of shape ``(n_bins,)``, or ``(n_classes, n_bins)`` with labels.
    """
    s_arr = _as_1d("score", score, np.float64)
    w_arr = _as_1d("weight", weight, np.float64)
    e_arr = _check_edges(edges)
    _check_same_length(score=s_arr, weight=w_arr)
    n_bins = e_arr.size - 1
    idx = _bin_index(s_arr, e_arr)
    inside = idx >= 0

    if labels is None:
        if n_classes is not None:
            raise ConfigError("n_classes given without labels")
        sum_w = np.bincount(
            idx[inside], weights=w_arr[inside], minlength=n_bins
        ).astype(np.float64)
        sum_w2 = np.bincount(
            idx[inside], weights=w_arr[inside] ** 2, minlength=n_bins
        ).astype(np.float64)
        return sum_w, np.sqrt(sum_w2)

    lab_raw = _as_1d("labels", labels, np.float64)
    _check_same_length(score=s_arr, labels=lab_raw)
    if not np.all(lab_raw == np.round(lab_raw)):
        raise BinningInputError("labels must be integers")
    lab = lab_raw.astype(np.intp)
    if n_classes is None:
        n_classes = int(lab.max()) + 1 if lab.size else 0
    if n_classes < 0:
        raise ConfigError(f"n_classes must be >= 0, got {n_classes}")
    if lab.size and (lab.min() < 0 or lab.max() >= n_classes):
        raise BinningInputError(
            f"labels must lie in 0..{n_classes - 1}, "
            f"found values in {int(lab.min())}..{int(lab.max())}"
        )
    flat = lab[inside] * n_bins + idx[inside]
    size = n_classes * n_bins
    sum_w = np.bincount(flat, weights=w_arr[inside], minlength=size).astype(np.float64)
    sum_w2 = np.bincount(flat, weights=w_arr[inside] ** 2, minlength=size).astype(
        np.float64
    )
    return sum_w.reshape(n_classes, n_bins), np.sqrt(sum_w2).reshape(n_classes, n_bins)


def single_bin_z0(
    weight: npt.ArrayLike,
    is_signal: npt.ArrayLike,
    mask: npt.ArrayLike,
    rel_sigma_b: float = 0.1,
) -> tuple[float, float, float, float, float]:
    """Asimov ``Z0`` of a cut-based selection treated as one bin.

    This is how the Run-1 cut-based baseline is compared with the optimised
    binning (Basso, ATLAS, 2020): same formula (Cowan et al., EPJC 71 (2011)
    1554), one bin holding the events with ``mask`` true.

    Returns
    -------
    (z0, s, b, s_err, b_err)
        Significance, weighted signal and background yields and their
        MC-statistical errors ``sqrt(sum w^2)``.

    Raises
    ------
    EmptySelectionError
        If the selected background yield is not positive (``Z0`` undefined).
    """
    w_arr = _as_1d("weight", weight, np.float64)
    sig = _as_1d("is_signal", is_signal, bool)
    sel = _as_1d("mask", mask, bool)
    _check_same_length(weight=w_arr, is_signal=sig, mask=sel)
    w_s = w_arr[sel & sig]
    w_b = w_arr[sel & ~sig]
    s = float(np.sum(w_s))
    b = float(np.sum(w_b))
    s_err = float(np.sqrt(np.sum(w_s * w_s)))
    b_err = float(np.sqrt(np.sum(w_b * w_b)))
    if not b > 0.0:
        raise EmptySelectionError(
            f"cut-based selection keeps a background yield of {b:.6g} "
            f"({w_b.size} events, signal yield {s:.6g}); Z0 needs a positive background"
        )
    return float(z0(s, b, rel_sigma_b)), s, b, s_err, b_err


def _check_fractions(fractions: npt.ArrayLike) -> FloatArray:
    frac = np.asarray(fractions, dtype=np.float64).ravel()
    if frac.size == 0 or not np.all((frac > 0.0) & (frac < 1.0)):
        raise ConfigError(
            "split fractions must be non-empty and strictly between 0 and 1, "
            f"got {frac.tolist()}"
        )
    return frac


def optimise_binning(
    score: npt.ArrayLike,
    weight: npt.ArrayLike,
    is_signal: npt.ArrayLike,
    *,
    lo: float = 0.2,
    hi: float = 1.0,
    min_signal: float = 3.0,
    min_background: float = 3.0,
    rel_sigma_b: float = 0.1,
    fractions: npt.ArrayLike = DEFAULT_FRACTIONS,
    max_depth: int | None = None,
) -> BinningResult:
    """Greedy binary-split binning that maximises the combined Asimov ``Z0``.

    Implements the binning optimisation of the VH(->WW) analysis (Basso,
    ATLAS, 2020); see the module docstring for the algorithm.  Ties between
    split candidates (e.g. two fractions with no event between them) go to the
    smallest fraction.

    Parameters
    ----------
    score, weight, is_signal:
        Per-event classifier score, weight (expected yield at the analysis
        luminosity) and signal flag.
    lo, hi:
        Score range binned; events outside are ignored.
    min_signal, min_background:
        Regularisation: each bin needs a weighted signal yield ``> min_signal``
        and a weighted background yield ``> min_background`` (both ``>= 0``).
    rel_sigma_b:
        Relative background uncertainty in ``Z0``.
    fractions:
        Relative split positions tried inside a bin, each in ``(0, 1)``.
    max_depth:
        Optional limit on the recursion depth (``1``: at most the first split
        of ``[lo, hi]``); ``None`` (default) is the seed's unlimited search.

    Returns
    -------
    BinningResult

    Raises
    ------
    EmptySelectionError
        If the whole range ``[lo, hi]`` fails the regularisation.
    ConfigError
        For invalid parameters (``lo >= hi``, negative thresholds, ...).
    BinningInputError
        For arrays of different lengths or non-finite weights in range.
    """
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ConfigError(f"binning range needs finite lo < hi, got lo={lo}, hi={hi}")
    if not (min_signal >= 0.0 and min_background >= 0.0):
        raise ConfigError(
            "min_signal and min_background must be >= 0, "
            f"got {min_signal} and {min_background}"
        )
    if max_depth is not None and max_depth < 0:
        raise ConfigError(f"max_depth must be >= 0 or None, got {max_depth}")
    frac = _check_fractions(fractions)
    rel = float(rel_sigma_b)
    z0(1.0, 1.0, rel)  # validates rel_sigma_b (raises ConfigError)

    s_arr = _as_1d("score", score, np.float64)
    w_arr = _as_1d("weight", weight, np.float64)
    sig_arr = _as_1d("is_signal", is_signal, bool)
    _check_same_length(score=s_arr, weight=w_arr, is_signal=sig_arr)

    keep = (s_arr >= lo) & (s_arr <= hi)
    order = np.argsort(s_arr[keep], kind="stable")
    x = s_arr[keep][order]
    w = w_arr[keep][order]
    is_s = sig_arr[keep][order]
    if not np.all(np.isfinite(w)):
        raise BinningInputError(
            f"{int(np.sum(~np.isfinite(w)))} events in [{lo}, {hi}] "
            "have non-finite weights"
        )

    w_sig = np.where(is_s, w, 0.0)
    w_bkg = np.where(is_s, 0.0, w)
    zero = np.zeros(1)
    cum_s = np.concatenate([zero, np.cumsum(w_sig)])
    cum_b = np.concatenate([zero, np.cumsum(w_bkg)])
    n_events = x.size
    # Bound on the rounding error of cumulative-sum differences; candidates
    # closer than this to a threshold are re-checked with direct slice sums,
    # the same sums that are reported, so reported yields always pass.
    margin = max(1e-9, 4.0 * n_events * np.finfo(np.float64).eps) * float(
        np.sum(np.abs(w))
    )

    def passes(i_lo: int, i_hi: int) -> bool:
        return bool(
            np.sum(w_sig[i_lo:i_hi]) > min_signal
            and np.sum(w_bkg[i_lo:i_hi]) > min_background
        )

    s_tot = float(np.sum(w_sig))
    b_tot = float(np.sum(w_bkg))
    if not passes(0, n_events):
        raise EmptySelectionError(
            f"score range [{lo}, {hi}] fails the binning regularisation: "
            f"signal yield {s_tot:.6g} (needs > {min_signal}) and "
            f"background yield {b_tot:.6g} (needs > {min_background}), "
            f"from {n_events} events"
        )

    leaves: list[tuple[float, int, int]] = []  # (lower edge, first event, end event)
    # Work stack of bins: (lower edge, upper edge, first event, end event, depth).
    stack: list[tuple[float, float, int, int, int]] = [
        (float(lo), float(hi), 0, n_events, 0)
    ]
    while stack:
        a, c, i_a, i_c, depth = stack.pop()
        split = None
        if max_depth is None or depth < max_depth:
            split = _best_split(
                a,
                c,
                i_a,
                i_c,
                x,
                cum_s,
                cum_b,
                frac,
                min_signal,
                min_background,
                rel,
                margin,
                passes,
            )
        if split is None:
            leaves.append((a, i_a, i_c))
            continue
        cut, i_m = split
        stack.append((cut, c, i_m, i_c, depth + 1))
        stack.append((a, cut, i_a, i_m, depth + 1))

    leaves.sort()
    edges = np.array([leaf[0] for leaf in leaves] + [float(hi)], dtype=np.float64)
    bounds = [(i_lo, i_hi) for _, i_lo, i_hi in leaves]
    signal = np.array([np.sum(w_sig[i:j]) for i, j in bounds], dtype=np.float64)
    background = np.array([np.sum(w_bkg[i:j]) for i, j in bounds], dtype=np.float64)
    signal_err = np.sqrt([np.sum(w_sig[i:j] ** 2) for i, j in bounds])
    background_err = np.sqrt([np.sum(w_bkg[i:j] ** 2) for i, j in bounds])
    per_bin = np.asarray(z0(signal, background, rel), dtype=np.float64)
    return BinningResult(
        edges=edges,
        z0=float(np.sqrt(np.sum(per_bin * per_bin))),
        signal=signal,
        background=background,
        signal_err=signal_err,
        background_err=background_err,
        z0_per_bin=per_bin,
        rel_sigma_b=rel,
    )


def _best_split(
    a: float,
    c: float,
    i_a: int,
    i_c: int,
    x: FloatArray,
    cum_s: FloatArray,
    cum_b: FloatArray,
    frac: FloatArray,
    min_signal: float,
    min_background: float,
    rel: float,
    margin: float,
    passes: Callable[[int, int], bool],
) -> tuple[float, int] | None:
    """Best allowed split ``(cut, event index)`` of the bin ``[a, c)``, or ``None``.

    Vectorised over the split fractions: sub-bin yields are differences of the
    cumulative sums ``cum_s``/``cum_b`` of the score-sorted events ``x``.
    """
    cuts = a + frac * (c - a)
    i_cut = np.searchsorted(x, cuts, side="left")  # events with score < cut
    s_bin = cum_s[i_c] - cum_s[i_a]
    b_bin = cum_b[i_c] - cum_b[i_a]
    s_left = cum_s[i_cut] - cum_s[i_a]
    b_left = cum_b[i_cut] - cum_b[i_a]
    s_right = s_bin - s_left
    b_right = b_bin - b_left
    low = np.minimum(
        np.minimum(s_left, s_right) - min_signal,
        np.minimum(b_left, b_right) - min_background,
    )
    allowed = (cuts > a) & (cuts < c) & (low > 0.0)
    # Near a threshold the cumulative sums are not trusted: decide with slice sums.
    for k in np.flatnonzero((cuts > a) & (cuts < c) & (np.abs(low) <= margin)):
        i_m = int(i_cut[k])
        allowed[k] = passes(i_a, i_m) and passes(i_m, i_c)
    if not np.any(allowed):
        return None
    z2_old = float(z0(s_bin, b_bin, rel)) ** 2
    z2_new = np.full(cuts.shape, -np.inf)
    z2_new[allowed] = (
        z0(s_left[allowed], b_left[allowed], rel) ** 2
        + z0(s_right[allowed], b_right[allowed], rel) ** 2
    )
    best = int(np.argmax(z2_new))  # first maximum: smallest fraction on ties
    if not (z2_new[best] > z2_old and z2_new[best] - z2_old > SPLIT_RTOL * z2_old):
        return None
    return float(cuts[best]), int(i_cut[best])
