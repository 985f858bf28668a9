"""The VH(->WW->l nu l nu) study of seed 003: classes, baseline, binning output.

Pieces the workflow plugs together:
- :func:`sample_norm`: per-event weight factor xsec * lumi / sumw of a sample;
- :func:`run1_cut_based`: the Run-1 cut-based selection of the seed (arXiv:1506.06641),
  the classical baseline evaluated with the same Asimov formula;
- :func:`orthogonality_mask`: |m_jj - 85| < 15 GeV and delta y_jj < 1.2, applied before binning;
- :func:`binning_report`: the content of ``results/vh/binning.json``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, EmptySelectionError, InputFileError
from ..stats.asimov import z0 as asimov_z0
from ..stats.binning import optimise_binning, single_bin_z0, yields_in_bins

M_Z = 91.1876
#: The seed's numbers (ATLAS work in progress, 139 fb^-1), for comparison in binning.json.
SEED_Z0_MVA = 0.97
SEED_Z0_CUT_BASED = 0.29
SEED_EDGES = [0.20, 0.39, 0.45, 0.50, 0.53, 0.57, 0.61, 0.64, 0.68, 0.73, 1.00]
MC_STAT_WARNING = 0.30


def sample_norm(xsec_pb: float, sumw: float, luminosity_fb: float, sample: str) -> float:
    """Weight factor per unit generator weight: sigma [pb] * 1000 * L [fb^-1] / sum of weights."""
    if not (xsec_pb > 0 and np.isfinite(xsec_pb)):
        raise ConfigError(f"sample '{sample}': cross section {xsec_pb} pb is not positive")
    if not sumw > 0:
        raise EmptySelectionError(f"sample '{sample}': sum of generator weights is {sumw}; no events were read")
    return xsec_pb * 1000.0 * luminosity_fb / sumw


def read_xsec(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: cross-section file does not exist")
    return json.loads(path.read_text())


def run1_cut_based(table: pd.DataFrame) -> np.ndarray:
    """The seed's Run-1 cut-based selection on top of the DFOS preselection (>= 2 jets, 0 b-jets).

    E_T^miss,track > 20 GeV, m_tautau < m_Z - 25 GeV, m_ll < 50 GeV, delta phi_ll < 1.8,
    delta Y_jj < 1.2, |m_jj - 85| < 15 GeV, m_T < 125 GeV.
    """
    return (
        (table["met_track"].to_numpy() > 20.0)
        & (table["m_tautau"].to_numpy() < M_Z - 25.0)
        & (table["m_ll"].to_numpy() < 50.0)
        & (table["dphi_ll"].to_numpy() < 1.8)
        & (table["dy_jj"].to_numpy() < 1.2)
        & (np.abs(table["m_jj"].to_numpy() - 85.0) < 15.0)
        & (table["m_T"].to_numpy() < 125.0)
    )


def orthogonality_mask(table: pd.DataFrame, cfg: Mapping[str, Any]) -> np.ndarray:
    """Run-1 orthogonality cuts with the ggF 2-jet analysis: |m_jj - 85| < 15 GeV, delta y_jj < 1.2."""
    return (np.abs(table["m_jj"].to_numpy() - cfg["mjj_center"]) < cfg["mjj_half_width"]) & (
        table["dy_jj"].to_numpy() < cfg["dy_jj_max"]
    )


def bootstrap_z0(
    score: np.ndarray,
    weight: np.ndarray,
    is_signal: np.ndarray,
    edges: np.ndarray,
    rel_sigma_b: float,
    *,
    replicas: int = 500,
    seed: int = 20200609,
) -> np.ndarray:
    """Combined Z0 of fixed ``edges`` in Poisson-bootstrap replicas of the MC events.

    Each replica reweights every event by Poisson(1), which samples the
    MC-statistical fluctuation of the yields.  The binning is not re-optimised,
    so the spread is the MC-statistical error of Z0 for these edges; the
    optimiser's upward bias on the sample it was tuned on comes on top.
    """
    from ..stats.asimov import combined_z0

    nb = len(edges) - 1
    index = np.searchsorted(edges, score, side="right") - 1
    index = np.where(score == edges[-1], nb - 1, index)
    inside = (index >= 0) & (index < nb)
    index, weight, is_signal = index[inside], weight[inside], is_signal[inside]
    rng = np.random.default_rng(seed)
    poisson = rng.poisson(1.0, size=(replicas, len(index)))
    flat = (np.arange(replicas)[:, None] * nb + index[None, :]).ravel()
    ws = (poisson * np.where(is_signal, weight, 0.0)[None, :]).ravel()
    wb = (poisson * np.where(is_signal, 0.0, weight)[None, :]).ravel()
    s = np.bincount(flat, weights=ws, minlength=replicas * nb).reshape(replicas, nb)
    b = np.bincount(flat, weights=wb, minlength=replicas * nb).reshape(replicas, nb)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.asarray(combined_z0(s, np.where(b > 0, b, np.nan), rel_sigma_b), dtype=float)
    return z


def _rel(err: np.ndarray, value: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(value > 0, err / value, np.inf)


def binning_report(
    table: pd.DataFrame,
    score: np.ndarray,
    *,
    classes: Sequence[str],
    cfg: Mapping[str, Any],
    luminosity_fb: float,
    config_hash: str,
) -> dict[str, Any]:
    """Optimise the VH-discriminant binning and evaluate the cut-based baseline on the same events.

    ``table`` holds the features, ``weight`` (expected events at the luminosity)
    and ``label`` (index into ``classes``; 0 is the signal); ``score`` is the
    out-of-fold VH probability of each row.
    """
    if len(table) != len(score):
        raise ValueError(f"{len(table)} rows but {len(score)} scores")
    weight = table["weight"].to_numpy(dtype=np.float64)
    label = table["label"].to_numpy()
    is_signal = label == 0
    ortho = orthogonality_mask(table, cfg)
    if not ortho.any():
        raise EmptySelectionError("vh binning: no event passes the orthogonality cuts |m_jj - 85| < 15 GeV, dY_jj < 1.2")
    result = optimise_binning(
        score[ortho],
        weight[ortho],
        is_signal[ortho],
        lo=cfg["lo"],
        hi=cfg["hi"],
        min_signal=cfg["min_signal"],
        min_background=cfg["min_background"],
        rel_sigma_b=cfg["rel_sigma_b"],
    )
    per_class, per_class_err = yields_in_bins(
        score[ortho], weight[ortho], result.edges, labels=label[ortho], n_classes=len(classes)
    )
    raw_counts = np.histogram(score[ortho], bins=result.edges)[0]
    cut = run1_cut_based(table)
    z0_cut, s_cut, b_cut, s_cut_err, b_cut_err = single_bin_z0(weight, is_signal, cut, rel_sigma_b=cfg["rel_sigma_b"])

    s_rel = _rel(np.asarray(result.signal_err), np.asarray(result.signal))
    b_rel = _rel(np.asarray(result.background_err), np.asarray(result.background))
    warnings_out = []
    for i, (sr, br) in enumerate(zip(s_rel, b_rel, strict=True)):
        for what, rel in (("signal", sr), ("background", br)):
            if rel > MC_STAT_WARNING:
                msg = f"bin {i} [{result.edges[i]:.3f}, {result.edges[i + 1]:.3f}]: MC-statistical error of the {what} is {rel:.0%} (> {MC_STAT_WARNING:.0%})"
                warnings_out.append(msg)
                warnings.warn(msg, stacklevel=2)
    bins = []
    for i in range(len(result.edges) - 1):
        bins.append(
            {
                "lo": float(result.edges[i]),
                "hi": float(result.edges[i + 1]),
                "s": float(result.signal[i]),
                "s_err": float(result.signal_err[i]),
                "b": float(result.background[i]),
                "b_err": float(result.background_err[i]),
                "s_rel_err": float(s_rel[i]),
                "b_rel_err": float(b_rel[i]),
                "z0": float(result.z0_per_bin[i]),
                "raw_events": int(raw_counts[i]),
                "yields": {c: float(per_class[k, i]) for k, c in enumerate(classes)},
                "yield_errors": {c: float(per_class_err[k, i]) for k, c in enumerate(classes)},
            }
        )
    z_boot = bootstrap_z0(score[ortho], weight[ortho], is_signal[ortho], np.asarray(result.edges), cfg["rel_sigma_b"])
    z_boot_cut = bootstrap_z0(
        np.where(cut, 0.5, -1.0), weight, is_signal, np.array([0.0, 1.0]), cfg["rel_sigma_b"]
    )
    total_s = float(np.sum(weight[ortho & is_signal & (score >= cfg["lo"])]))
    total_b = float(np.sum(weight[ortho & ~is_signal & (score >= cfg["lo"])]))
    return {
        "edges": [float(e) for e in result.edges],
        "n_bins": len(result.edges) - 1,
        "z0_mva": float(result.z0),
        "z0_mva_single_bin": float(asimov_z0(total_s, total_b, cfg["rel_sigma_b"])),
        "z0_cut_based": float(z0_cut),
        "z0_ratio": float(result.z0 / z0_cut) if z0_cut > 0 else None,
        "z0_mc_stat": {
            "method": "Poisson bootstrap of the MC events (500 replicas), edges fixed; replicas where a bin loses all background are dropped",
            "mva_median": float(np.nanmedian(z_boot)),
            "mva_16_84": [float(v) for v in np.nanpercentile(z_boot, [16, 84])],
            "cut_based_median": float(np.nanmedian(z_boot_cut)),
            "cut_based_16_84": [float(v) for v in np.nanpercentile(z_boot_cut, [16, 84])],
            "replicas_used": int(np.isfinite(z_boot).sum()),
        },
        "cut_based": {"s": float(s_cut), "s_err": float(s_cut_err), "b": float(b_cut), "b_err": float(b_cut_err)},
        "bins": bins,
        "regularisation": {"min_signal": cfg["min_signal"], "min_background": cfg["min_background"], "on": "expected yields at the luminosity"},
        "rel_sigma_b": cfg["rel_sigma_b"],
        "range": [cfg["lo"], cfg["hi"]],
        "orthogonality": {"mjj_center": cfg["mjj_center"], "mjj_half_width": cfg["mjj_half_width"], "dy_jj_max": cfg["dy_jj_max"]},
        "luminosity_fb": luminosity_fb,
        "classes": list(classes),
        "signal_class": classes[0],
        "events_after_orthogonality": int(ortho.sum()),
        "mc_stat_warnings": warnings_out,
        "seed_reference": {"z0_mva": SEED_Z0_MVA, "z0_cut_based": SEED_Z0_CUT_BASED, "edges": SEED_EDGES},
        "config_hash": config_hash,
    }
