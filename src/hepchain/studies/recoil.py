"""The W hadronic-recoil calibration study of seed 000: training variants, baselines, metrics.

Seed 000 (M. Khandoga, "DNNs in W mass and W pT measurement", 2020) replaces
the standard hadronic recoil of low pile-up W -> mu nu events by the output of
an MLP (3 x 256, batch norm, Adam 1e-3, batch 1500, MSE on the truth W pT
components, ~50 epochs) and adds a bias penalty to the loss (L1: alpha, L2:
5 alpha).  The pieces the workflow plugs together:

- :func:`resolve_config`: the ``recoil`` config section with its defaults
  (:data:`DEFAULTS`);
- :func:`auto_alpha`: the seed's "normalisation coefficient" alpha, measured
  on the training rows (below);
- :func:`train_variant`: one (variant, fold) network through the generic
  engine (:func:`hepchain.ml.engine.train_study`);
- :func:`response_correction` / :func:`apply_response_correction`: the
  classical baseline's calibration;
- :func:`recoil_metrics`: response, bias and sigma(u_perp), integrated and
  binned, with paired-bootstrap uncertainties of the improvements;
- :func:`evaluate`: predictions of every fold's model on its own test fold,
  the metrics and the figures (``results/recoil/metrics.json``).

Methods compared (``metrics.json`` keys):

``standard``
    the hadronic recoil of the skim, ``u = sum pT(PFO)`` over charged PF
    candidates of the primary vertex and every neutral one, outside a cone of
    dR 0.1 around the muon (:mod:`hepchain.skim.recoil`); uncalibrated, as the
    seed compares with it.
``standard_corrected``
    the same vector scaled by the response correction ``c(u_T)`` of
    :func:`response_correction`: the numerical inversion of the mean response
    ``<u_par>(pT(W))`` measured on the training folds, the usual calibration
    of a detector-level quantity to unit response (as for jets).
``dnn_<variant>``
    the network of each variant of ``variants`` (default ``mse``: alpha 0,
    ``bias_l1``: alpha, ``bias_l2``: 5 alpha), each fold's model applied to
    its own test fold only.
``dnn_<variant>_corrected``
    the network output calibrated the same way, the inversion measured on the
    network's predictions for the training rows of its own fold: an MSE
    regression shrinks towards the mean of the falling pT(W) spectrum, and
    this is the comparison at equal (unit) response.

The seed's alpha: "alpha is the normalization coefficient".  With
``alpha: auto`` it is the ratio of the two terms of the loss for the standard
recoil on the training rows, ``alpha = MSE(u, y) / <(1 - r)^2>`` (rows with
pT(W) > ``penalty_min_pt`` in the second mean), so that L1 weighs both terms
equally at the start; the value used is written into each model's summary
and into ``metrics.json``.

Definitions (seed; ATLAS EPJC 78 (2018) 110), with ``e`` the true W direction:
``u_par = -u . e`` (``pT(W)`` for a perfect recoil) and ``u_perp = u_x e_y -
u_y e_x`` (:func:`hepchain.features.recoil.recoil_components`).  Response in a
bin: ``R = sum w u_par / sum w pT(W)`` (ratio of means), bias ``1 - R``;
resolution: the weighted standard deviation of ``u_perp``, also divided by the
mean ``u_T`` as in the seed's sigma(u_perp)/<u_T> plot.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, EmptySelectionError, HepchainError, InputFileError
from ..features.recoil import TARGETS, recoil_components

#: The seed's input list (slide "Input features"), in our feature names.  The
#: seed's two PFO counts (charged, neutral) are three here (charged, neutral
#: hadrons, photons): the neutral count split by type.
SEED_FEATURES: tuple[str, ...] = (
    "u_x",
    "u_y",
    "u_ch_x",
    "u_ch_y",
    "u_neu_x",
    "u_neu_y",
    "sumet",
    "sumet_ch",
    "sumet_gamma",
    "j0_px",
    "j0_py",
    "j1_px",
    "j1_py",
    "npv",
    "n_pfo_ch",
    "n_pfo_nh",
    "n_pfo_gamma",
    *(f"{kind}_pfo{i}_{c}" for kind in ("ch", "neu") for i in range(5) for c in ("px", "py")),
)

#: The seed's expectation: "A 10-15% improvement in HR resolution would be a notable improvement".
SEED_EXPECTED_IMPROVEMENT = (0.10, 0.15)

#: Defaults of the ``recoil`` config section (besides ``samples``, ``n_folds``, ``selection``).
DEFAULTS: dict[str, Any] = {
    "features": "seed",
    "variants": {"mse": 0.0, "bias_l1": 1.0, "bias_l2": 5.0},
    "alpha": "auto",
    "penalty_min_pt": 1.0,
    "folds": None,
    "training": {
        "max_epochs": 50,
        "patience": 10,
        "batch_size": 1500,
        "lr": 1e-3,
        "accelerator": "auto",
        "precision": "32-true",
        "threads": 1,
        "max_rows": None,
    },
    "evaluation": {
        "pt_edges": [0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 70.0, 100.0],
        "sumet_edges": [0.0, 50.0, 100.0, 150.0, 200.0, 300.0, 400.0, 600.0],
        "correction_edges": [0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 70.0, 100.0, 150.0],
        "bias_pt_min": 10.0,
        "bootstrap": 200,
    },
}

#: Columns of the feature table the evaluation reads.
EVAL_COLUMNS: tuple[str, ...] = ("u_x", "u_y", "sumet", "weight", "fold", "event", *TARGETS)


# --------------------------------------------------------------------------- config


def _merge(defaults: Mapping[str, Any], given: Mapping[str, Any], where: str) -> dict[str, Any]:
    out = copy.deepcopy(dict(defaults))
    for key, value in given.items():
        if key not in defaults:
            raise ConfigError(f"config key '{where}.{key}' is unknown (allowed: {', '.join(defaults)})")
        if isinstance(defaults[key], dict) and key != "variants":
            if not isinstance(value, Mapping):
                raise ConfigError(f"config key '{where}.{key}' must be a mapping, got {value!r}")
            out[key] = _merge(defaults[key], value, f"{where}.{key}")
        else:
            out[key] = value
    return out


def _edges(key: str, value: Any) -> list[float]:
    edges = np.asarray(value, dtype=float) if isinstance(value, Sequence) and not isinstance(value, str) else None
    if edges is None or edges.ndim != 1 or edges.size < 2 or not np.all(np.isfinite(edges)) or np.any(np.diff(edges) <= 0):
        raise ConfigError(f"config key 'recoil.evaluation.{key}' must be >= 2 increasing finite numbers, got {value!r}")
    return [float(e) for e in edges]


def resolve_config(section: Mapping[str, Any]) -> dict[str, Any]:
    """The ``recoil`` section over :data:`DEFAULTS`, checked (one :class:`ConfigError` naming a bad key).

    ``features``: ``"seed"`` (:data:`SEED_FEATURES`), ``"all"`` (every
    feature of the spec, muon and MET included) or a list of feature names.
    ``variants``: name -> multiple of alpha (>= 0).  ``alpha``: ``"auto"`` or
    a number >= 0.  ``folds``: the folds to train (default: all
    ``n_folds``); only their test folds enter the metrics.
    """
    given = {k: v for k, v in section.items() if k not in ("samples", "n_folds", "selection")}
    cfg = _merge(DEFAULTS, given, "recoil")
    cfg["n_folds"] = int(section.get("n_folds", 5))
    if cfg["n_folds"] < 3:
        raise ConfigError(f"config key 'recoil.n_folds' must be >= 3, got {cfg['n_folds']}")
    features = cfg["features"]
    if features == "seed":
        cfg["feature_names"] = list(SEED_FEATURES)
    elif features == "all":
        cfg["feature_names"] = None
    elif isinstance(features, Sequence) and not isinstance(features, str) and features:
        cfg["feature_names"] = [str(f) for f in features]
    else:
        raise ConfigError(f"config key 'recoil.features' must be 'seed', 'all' or a list of names, got {features!r}")
    variants = cfg["variants"]
    if not isinstance(variants, Mapping) or not variants:
        raise ConfigError(f"config key 'recoil.variants' must map names to alpha multiples, got {variants!r}")
    for name, factor in variants.items():
        if not str(name).replace("_", "").isalnum():
            raise ConfigError(f"config key 'recoil.variants': name '{name}' must be letters, digits and '_'")
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not (math.isfinite(factor) and factor >= 0):
            raise ConfigError(f"config key 'recoil.variants.{name}' must be a number >= 0, got {factor!r}")
    cfg["variants"] = {str(k): float(v) for k, v in variants.items()}
    alpha = cfg["alpha"]
    if alpha != "auto" and (
        isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not (math.isfinite(alpha) and alpha >= 0)
    ):
        raise ConfigError(f"config key 'recoil.alpha' must be 'auto' or a number >= 0, got {alpha!r}")
    if not (isinstance(cfg["penalty_min_pt"], (int, float)) and cfg["penalty_min_pt"] >= 0):
        raise ConfigError(f"config key 'recoil.penalty_min_pt' must be a number >= 0, got {cfg['penalty_min_pt']!r}")
    folds = cfg["folds"]
    if folds is None:
        cfg["folds"] = list(range(cfg["n_folds"]))
    else:
        if isinstance(folds, (str, bool)) or not isinstance(folds, Sequence) or not folds:
            raise ConfigError(f"config key 'recoil.folds' must be a non-empty list of fold numbers, got {folds!r}")
        bad = [f for f in folds if isinstance(f, bool) or not isinstance(f, int) or not 0 <= f < cfg["n_folds"]]
        if bad or len(set(folds)) != len(folds):
            raise ConfigError(f"config key 'recoil.folds' must list distinct folds in 0..{cfg['n_folds'] - 1}, got {folds!r}")
        cfg["folds"] = sorted(int(f) for f in folds)
    ev = cfg["evaluation"]
    for key in ("pt_edges", "sumet_edges", "correction_edges"):
        ev[key] = _edges(key, ev[key])
    if isinstance(ev["bootstrap"], bool) or not isinstance(ev["bootstrap"], int) or ev["bootstrap"] < 10:
        raise ConfigError(f"config key 'recoil.evaluation.bootstrap' must be an integer >= 10, got {ev['bootstrap']!r}")
    threads = cfg["training"]["threads"]
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"config key 'recoil.training.threads' must be an integer >= 1 or null, got {threads!r}")
    return cfg


# --------------------------------------------------------------------------- table access


def read_eval_table(path: str | Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The :data:`EVAL_COLUMNS` of a recoil feature table, rows without a truth W dropped, and the kept-row mask."""
    from ..features.table import read_table

    columns, meta = read_table(path, list(EVAL_COLUMNS))
    if meta.get("study") not in (None, "recoil"):
        raise InputFileError(f"{path}: feature table of study '{meta.get('study')}', expected 'recoil'")
    keep = np.isfinite(columns["truth_ux"]) & np.isfinite(columns["truth_uy"])
    if not keep.any():
        raise EmptySelectionError(f"{path}: no row with a generator W (truth_ux/truth_uy all NaN); nothing to evaluate")
    return {k: np.asarray(v)[keep] for k, v in columns.items()}, keep


def fold_rows(fold_column: np.ndarray, fold: int, n_folds: int) -> dict[str, np.ndarray]:
    """Boolean masks of the train / val / test rows of model ``fold`` (as :func:`hepchain.ml.train.split_indices`)."""
    folds = np.asarray(fold_column)
    test = folds == fold
    val = folds == (fold + 1) % n_folds
    return {"train": ~test & ~val, "val": val, "test": test}


# --------------------------------------------------------------------------- alpha and the classical baseline


def auto_alpha(
    ux: np.ndarray, uy: np.ndarray, tx: np.ndarray, ty: np.ndarray, weight: np.ndarray, min_pt: float
) -> dict[str, float]:
    """``alpha = MSE(u, y) / <(1 - r)^2>`` of the standard recoil ``u`` for truth ``y`` (weighted means).

    ``MSE`` is the loss's first term, ``sum w (dx^2 + dy^2) / 2 / sum w``; ``r
    = u . y / |y|^2`` over rows with ``|y| >= min_pt``.  Returns alpha and both
    terms.  Raises :class:`EmptySelectionError` when no row passes ``min_pt``.
    """
    w = np.asarray(weight, dtype=np.float64)
    mse = float(np.sum(w * ((ux - tx) ** 2 + (uy - ty) ** 2) / 2.0) / np.sum(w))
    pt2 = tx**2 + ty**2
    sel = pt2 >= min_pt**2
    if not sel.any() or np.sum(w[sel]) <= 0:
        raise EmptySelectionError(f"no training row with pT(W) >= {min_pt} GeV to normalise the bias penalty")
    r = (ux[sel] * tx[sel] + uy[sel] * ty[sel]) / pt2[sel]
    penalty = float(np.sum(w[sel] * (1.0 - r) ** 2) / np.sum(w[sel]))
    if not penalty > 0:
        raise HepchainError("the bias term of the standard recoil is 0; alpha cannot be normalised")
    return {"alpha": mse / penalty, "mse": mse, "bias_term": penalty}


def response_correction(
    ux: np.ndarray, uy: np.ndarray, tx: np.ndarray, ty: np.ndarray, weight: np.ndarray, edges: Sequence[float]
) -> dict[str, list[float]]:
    """Response correction ``c(u_T)`` by numerical inversion of the mean response (as jet calibrations do).

    In bins of the true pT(W) (``edges``) the weighted means ``<pT(W)>`` and
    ``<u_par>`` give the calibration curve ``f(pT) = <u_par>``, made
    non-decreasing.  A recoil of measured magnitude u_T is scaled by
    ``c = f^-1(u_T) / u_T`` (linear interpolation between the bin means; below
    the first and above the last point the end ratios ``<pT>/<u_par>``).  At
    high pT(W), where u_T ~ u_par, the corrected response is 1; at low pT(W)
    u_T is inflated by the perpendicular resolution and the correction is only
    approximate.  Returns ``{"edges", "pt_mean", "upar_mean", "response", "n"}``
    (bins with fewer than min(20, max(2, N/10)) of the N rows left out).
    """
    pt = np.hypot(tx, ty)
    u_par, _ = recoil_components(ux, uy, np.arctan2(-ty, -tx))
    edges_a = np.asarray(edges, dtype=float)
    index = np.searchsorted(edges_a, pt, side="right") - 1
    inside = (index >= 0) & (index < len(edges_a) - 1)
    nb = len(edges_a) - 1
    w = np.asarray(weight, dtype=np.float64)[inside]
    i = index[inside]
    sw = np.bincount(i, weights=w, minlength=nb)
    n = np.bincount(i, minlength=nb)
    spt = np.bincount(i, weights=w * pt[inside], minlength=nb)
    spar = np.bincount(i, weights=w * u_par[inside], minlength=nb)
    min_rows = min(20, max(2, int(inside.sum()) // 10))
    good = (n >= min_rows) & (sw > 0) & (spar > 0)
    if good.sum() < 2:
        raise EmptySelectionError(
            f"fewer than 2 pT(W) bins with {min_rows} training rows ({int(inside.sum())} rows): no response correction"
        )
    pt_mean = spt[good] / sw[good]
    upar_mean = np.maximum.accumulate(spar[good] / sw[good])
    return {
        "edges": edges_a.tolist(),
        "pt_mean": pt_mean.tolist(),
        "upar_mean": upar_mean.tolist(),
        "response": (upar_mean / pt_mean).tolist(),
        "n": n[good].tolist(),
    }


def apply_response_correction(
    ux: np.ndarray, uy: np.ndarray, correction: Mapping[str, Sequence[float]]
) -> tuple[np.ndarray, np.ndarray]:
    """``c(u_T) (u_x, u_y)`` with ``c = f^-1(u_T) / u_T`` of :func:`response_correction`."""
    ut = np.hypot(ux, uy)
    f = np.asarray(correction["upar_mean"], dtype=float)
    x = np.asarray(correction["pt_mean"], dtype=float)
    inverse = np.interp(ut, f, x, left=np.nan, right=np.nan)
    c = np.where(ut < f[0], x[0] / f[0], np.where(ut > f[-1], x[-1] / f[-1], inverse / np.maximum(ut, 1e-12)))
    return c * ux, c * uy


# --------------------------------------------------------------------------- training


def engine_config(cfg: Mapping[str, Any], variant: str, fold: int, seed: int, alpha: float) -> dict[str, Any]:
    """The :func:`hepchain.ml.engine.train_study` config of one (variant, fold)."""
    if variant not in cfg["variants"]:
        raise ConfigError(f"recoil variant '{variant}' is not in recoil.variants ({', '.join(cfg['variants'])})")
    tr = cfg["training"]
    out: dict[str, Any] = {
        "loss": {
            "name": "recoil_bias_penalty",
            "alpha": float(cfg["variants"][variant]) * float(alpha),
            "min_pt": float(cfg["penalty_min_pt"]),
        },
        "fold": int(fold),
        "n_folds": int(cfg["n_folds"]),
        "seed": int(seed),
        **{k: tr[k] for k in ("max_epochs", "patience", "batch_size", "lr", "accelerator", "precision", "max_rows")},
    }
    if cfg["feature_names"] is not None:
        out["features"] = list(cfg["feature_names"])
    return out


def train_variant(
    table_path: str | Path, out_dir: str | Path, variant: str, fold: int, cfg: Mapping[str, Any], seed: int,
    *, progress_bar: bool = True,
) -> dict[str, Any]:
    """Train the network of ``variant`` on fold ``fold``; returns the engine summary (alpha recorded)."""
    from ..ml.engine import train_study

    factor = cfg["variants"].get(variant)
    if factor is None:
        raise ConfigError(f"recoil variant '{variant}' is not in recoil.variants ({', '.join(cfg['variants'])})")
    if cfg["alpha"] == "auto":
        t, _ = read_eval_table(table_path)
        train = fold_rows(t["fold"], fold, cfg["n_folds"])["train"]
        norm = auto_alpha(t["u_x"][train], t["u_y"][train], t["truth_ux"][train], t["truth_uy"][train],
                          t["weight"][train], float(cfg["penalty_min_pt"]))
    else:
        norm = {"alpha": float(cfg["alpha"])}
    threads = cfg["training"]["threads"]
    if threads is not None:
        import torch

        torch.set_num_threads(int(threads))
    engine_cfg = engine_config(cfg, variant, fold, seed, norm["alpha"])
    engine_cfg["progress_bar"] = progress_bar
    summary = train_study("recoil", table_path, out_dir, engine_cfg)
    extra = {"variant": variant, "alpha_factor": float(factor), "alpha_normalisation": norm}
    path = Path(out_dir) / "summary.json"
    summary.update(extra)
    from ..io import write_json_atomic

    write_json_atomic(summary, path)
    return summary


# --------------------------------------------------------------------------- metrics


def _wstd(x: np.ndarray, w: np.ndarray) -> float:
    sw = np.sum(w)
    if not sw > 0:
        return float("nan")
    m = np.sum(w * x) / sw
    return float(np.sqrt(max(np.sum(w * (x - m) ** 2) / sw, 0.0)))


def _binned(
    x: np.ndarray, edges: Sequence[float], w: np.ndarray, u_par: np.ndarray, u_perp: np.ndarray, pt: np.ndarray,
    ut: np.ndarray,
) -> list[dict[str, float]]:
    out = []
    for lo, hi in itertools.pairwise(edges):
        s = (x >= lo) & (x < hi)
        ws = w[s]
        sw = float(np.sum(ws))
        if s.sum() < 2 or not sw > 0:
            out.append({"lo": lo, "hi": hi, "n": int(s.sum())})
            continue
        response = float(np.sum(ws * u_par[s]) / np.sum(ws * pt[s]))
        sigma = _wstd(u_perp[s], ws)
        mean_ut = float(np.sum(ws * ut[s]) / sw)
        n = int(s.sum())
        out.append({
            "lo": lo, "hi": hi, "n": n,
            "response": response, "bias": 1.0 - response,
            "bias_err": float(_wstd(u_par[s] / np.maximum(pt[s], 1e-3), ws) / math.sqrt(n)) if lo > 0 else float("nan"),
            "sigma_uperp": sigma, "sigma_uperp_err": sigma / math.sqrt(2.0 * max(n - 1, 1)),
            "mean_ut": mean_ut, "sigma_uperp_over_mean_ut": sigma / mean_ut if mean_ut > 0 else float("nan"),
            "mean_upar": float(np.sum(ws * u_par[s]) / sw), "mean_pt": float(np.sum(ws * pt[s]) / sw),
        })
    return out


def method_metrics(
    ux: np.ndarray, uy: np.ndarray, tx: np.ndarray, ty: np.ndarray, sumet: np.ndarray, weight: np.ndarray,
    ev: Mapping[str, Any],
) -> dict[str, Any]:
    """Response, bias and resolution of one recoil estimate ``(ux, uy)`` for truth recoil ``(tx, ty)``."""
    pt = np.hypot(tx, ty)
    phi_w = np.arctan2(-ty, -tx)
    u_par, u_perp = recoil_components(ux, uy, phi_w)
    ut = np.hypot(ux, uy)
    w = np.asarray(weight, dtype=np.float64)
    high = pt > float(ev["bias_pt_min"])
    resp_high = float(np.sum(w[high] * u_par[high]) / np.sum(w[high] * pt[high])) if high.any() else float("nan")
    vs_pt = _binned(pt, ev["pt_edges"], w, u_par, u_perp, pt, ut)
    above = [b["bias"] for b in vs_pt if b["lo"] >= float(ev["bias_pt_min"]) and "bias" in b and b["n"] >= 50]
    return {
        "n": len(w),
        "sigma_uperp": _wstd(u_perp, w),
        "sigma_upar_minus_pt": _wstd(u_par - pt, w),
        "mean_ut": float(np.sum(w * ut) / np.sum(w)),
        "response": float(np.sum(w * u_par) / np.sum(w * pt)),
        "bias": 1.0 - float(np.sum(w * u_par) / np.sum(w * pt)),
        f"bias_pt_above_{ev['bias_pt_min']:g}": 1.0 - resp_high,
        f"max_abs_bias_bins_above_{ev['bias_pt_min']:g}": float(np.max(np.abs(above))) if above else float("nan"),
        "vs_pt": vs_pt,
        "vs_sumet": _binned(sumet, ev["sumet_edges"], w, u_par, u_perp, pt, ut),
    }


def bootstrap_improvement(
    estimates: Mapping[str, tuple[np.ndarray, np.ndarray]], reference: str, tx: np.ndarray, ty: np.ndarray,
    weight: np.ndarray, n_boot: int, seed: int,
) -> dict[str, dict[str, float]]:
    """``1 - sigma(u_perp)_m / sigma(u_perp)_reference`` for every other method, with paired-bootstrap errors.

    Every replica resamples the same events for all methods (Poisson(1)
    weights), so the correlation between the methods is kept.
    """
    phi_w = np.arctan2(-ty, -tx)
    perp = {m: recoil_components(x, y, phi_w)[1] for m, (x, y) in estimates.items()}
    w = np.asarray(weight, dtype=np.float64)
    nominal = {m: _wstd(p, w) for m, p in perp.items()}
    rng = np.random.default_rng(seed)
    reps: dict[str, list[float]] = {m: [] for m in perp if m != reference}
    for _ in range(n_boot):
        wb = w * rng.poisson(1.0, size=len(w))
        ref = _wstd(perp[reference], wb)
        for m in reps:
            reps[m].append(1.0 - _wstd(perp[m], wb) / ref)
    return {
        m: {"improvement": 1.0 - nominal[m] / nominal[reference], "stat_err": float(np.std(v, ddof=1)), "n_bootstrap": n_boot}
        for m, v in reps.items()
    }


def recoil_metrics(
    estimates: Mapping[str, tuple[np.ndarray, np.ndarray]], tx: np.ndarray, ty: np.ndarray, sumet: np.ndarray,
    weight: np.ndarray, ev: Mapping[str, Any], seed: int,
) -> dict[str, Any]:
    """Per-method metrics and the improvements in sigma(u_perp) against both classical baselines."""
    methods = {m: method_metrics(x, y, tx, ty, sumet, weight, ev) for m, (x, y) in estimates.items()}
    improvements = {
        ref: bootstrap_improvement(estimates, ref, tx, ty, weight, int(ev["bootstrap"]), seed)
        for ref in ("standard", "standard_corrected") if ref in estimates
    }
    return {"methods": methods, "improvement_sigma_uperp": improvements}


# --------------------------------------------------------------------------- evaluation


def _model_dir(path: str | Path) -> Path:
    p = Path(path)
    return p.parent if p.suffix in (".onnx", ".json", ".ckpt") else p


def collect_models(paths: Sequence[str | Path]) -> dict[str, dict[int, Path]]:
    """``{variant: {fold: model dir}}`` from model directories (or files in them) with a ``summary.json``."""
    out: dict[str, dict[int, Path]] = {}
    for path in paths:
        d = _model_dir(path)
        summary_path = d / "summary.json"
        if not summary_path.is_file():
            raise InputFileError(f"{summary_path}: model summary missing (train the recoil model first)")
        summary = json.loads(summary_path.read_text())
        variant, fold = summary.get("variant"), summary.get("fold")
        if variant is None or fold is None or summary.get("study") != "recoil":
            raise InputFileError(f"{summary_path}: not a recoil model summary (no variant/fold)")
        if int(fold) in out.setdefault(str(variant), {}):
            raise InputFileError(f"{summary_path}: a second model of variant '{variant}', fold {fold}")
        out[str(variant)][int(fold)] = d
    return out


def evaluate(
    table_path: str | Path, model_paths: Sequence[str | Path], cfg: Mapping[str, Any], seed: int,
    *, out: str | Path, predictions: str | Path | None = None, figures: str | Path | None = None,
) -> dict[str, Any]:
    """Predict every test fold with its own models, compute the metrics, write JSON, table and figures."""
    from ..io import write_json_atomic
    from ..ml.engine import predict_study

    t, keep = read_eval_table(table_path)
    models = collect_models(model_paths)
    folds = list(cfg["folds"])
    missing = [(v, f) for v in cfg["variants"] for f in folds if f not in models.get(v, {})]
    if missing:
        v, f = missing[0]
        raise InputFileError(f"no model of variant '{v}' for fold {f} among {len(model_paths)} given")
    n_folds = int(cfg["n_folds"])
    test_any = np.isin(t["fold"], folds)
    n = int(test_any.sum())
    if n == 0:
        raise EmptySelectionError(f"{table_path}: no row in the test folds {folds}")
    est: dict[str, tuple[np.ndarray, np.ndarray]] = {
        "standard": (t["u_x"].astype(np.float64), t["u_y"].astype(np.float64)),
    }
    corrections: dict[str, dict[str, Any]] = {}

    def corrected(name: str, per_fold: Mapping[int, tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        """Calibrate ``per_fold[f]`` (x, y over all rows) on fold f's training rows, apply to its test rows."""
        cx, cy = np.full(len(t["fold"]), np.nan), np.full(len(t["fold"]), np.nan)
        for f in folds:
            rows = fold_rows(t["fold"], f, n_folds)
            tr, te = rows["train"], rows["test"]
            x, y = per_fold[f]
            corr = response_correction(x[tr], y[tr], t["truth_ux"][tr], t["truth_uy"][tr], t["weight"][tr],
                                       cfg["evaluation"]["correction_edges"])
            corrections.setdefault(name, {})[str(f)] = corr
            cx[te], cy[te] = apply_response_correction(x[te], y[te], corr)
        return cx, cy

    est["standard_corrected"] = corrected("standard", {f: est["standard"] for f in folds})
    alphas: dict[str, dict[str, float]] = {}
    training: dict[str, dict[str, Any]] = {}
    for variant in cfg["variants"]:
        px, py = np.full(len(t["fold"]), np.nan), np.full(len(t["fold"]), np.nan)
        every_row: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for f in folds:
            d = models[variant][f]
            pred = predict_study(d / "model.onnx", table_path, study="recoil", device="cpu")[keep].astype(np.float64)
            every_row[f] = (pred[:, 0], pred[:, 1])
            te = t["fold"] == f
            px[te], py[te] = pred[te, 0], pred[te, 1]
            s = json.loads((d / "summary.json").read_text())
            alphas.setdefault(variant, {})[str(f)] = float(s["config"]["loss"]["alpha"])
            training.setdefault(variant, {})[str(f)] = {
                k: s.get(k) for k in ("epochs_run", "best_epoch", "best_val_loss", "n_train", "n_val", "n_test",
                                      "train_samples_per_s", "device", "fit_time_s")
            }
        est[f"dnn_{variant}"] = (px, py)
        est[f"dnn_{variant}_corrected"] = corrected(f"dnn_{variant}", every_row)
    sel = test_any
    sub = {m: (x[sel], y[sel]) for m, (x, y) in est.items()}
    metrics = recoil_metrics(sub, t["truth_ux"][sel], t["truth_uy"][sel], t["sumet"][sel], t["weight"][sel],
                             cfg["evaluation"], seed)
    dnn = [m for m in sub if m.startswith("dnn_")]
    summary = {
        m: {
            "vs_standard": metrics["improvement_sigma_uperp"]["standard"][m],
            "vs_standard_corrected": metrics["improvement_sigma_uperp"]["standard_corrected"][m],
            f"bias_pt_above_{cfg['evaluation']['bias_pt_min']:g}": metrics["methods"][m][
                f"bias_pt_above_{cfg['evaluation']['bias_pt_min']:g}"],
            f"max_abs_bias_bins_above_{cfg['evaluation']['bias_pt_min']:g}": metrics["methods"][m][
                f"max_abs_bias_bins_above_{cfg['evaluation']['bias_pt_min']:g}"],
        }
        for m in dnn
    }
    report = {
        "study": "recoil",
        "seed_reference": "M. Khandoga, DNNs in W mass and W pT measurement, IN2P3/IRFU ML workshop, 2020 (seed 000)",
        "seed_expected_improvement": list(SEED_EXPECTED_IMPROVEMENT),
        "n_events": n,
        "folds_evaluated": folds,
        "n_folds": n_folds,
        "features": list(cfg["feature_names"]) if cfg["feature_names"] is not None else "all",
        "alpha": alphas,
        "alpha_factors": cfg["variants"],
        "bias_pt_min": float(cfg["evaluation"]["bias_pt_min"]),
        "summary": summary,
        **metrics,
        "response_correction": corrections,
        "training": training,
        "definitions": {
            "u_par": "-u . e_W (pT(W) for a perfect recoil); u_perp = u_x e_y - u_y e_x, e_W the true W direction",
            "response": "sum w u_par / sum w pT(W) (ratio of means); bias = 1 - response",
            "sigma_uperp": "weighted standard deviation of u_perp",
            "improvement": "1 - sigma_uperp(method) / sigma_uperp(reference); stat_err: paired Poisson bootstrap",
        },
    }
    if predictions is not None:
        from ..features.table import write_table

        cols = {"event": np.asarray(t["event"])[sel], "fold": np.asarray(t["fold"])[sel],
                "weight": t["weight"][sel], "truth_ux": t["truth_ux"][sel], "truth_uy": t["truth_uy"][sel],
                "sumet": t["sumet"][sel]}
        for m, (x, y) in sub.items():
            cols[f"{m}_ux"], cols[f"{m}_uy"] = x, y
        write_table(predictions, cols, {"study": "recoil", "methods": list(sub)})
    if figures is not None:
        from ..plots.recoil import make_all

        report["figures"] = [str(p) for p in make_all(sub, t["truth_ux"][sel], t["truth_uy"][sel], t["weight"][sel],
                                                        report, models, Path(figures))]
    report = _finite_or_none(report)
    write_json_atomic(report, Path(out))
    return report


def _finite_or_none(value: Any) -> Any:
    """NaN / inf floats as None (null), recursively: metrics.json stays strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value
