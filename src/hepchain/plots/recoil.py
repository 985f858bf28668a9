"""Figures of the W recoil calibration study (seed 000), PDF and PNG under ``results/recoil/figures/``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..features.recoil import recoil_components
from .style import save, setup

LABELS = {
    "truth": "truth $-p_T^W$",
    "standard": "standard recoil",
    "standard_corrected": "standard, $c(u_T)$-corrected",
}
COLOURS = {"truth": "black", "standard": "tab:blue", "standard_corrected": "tab:cyan"}
DNN_COLOURS = ["tab:red", "tab:orange", "tab:green", "tab:purple", "tab:brown"]


def _label(method: str) -> str:
    if method in LABELS:
        return LABELS[method]
    text = method.removeprefix("dnn_").removesuffix("_corrected").replace("_", " ")
    return f"DNN {text}" + (", $c(u_T)$-corrected" if method.endswith("_corrected") else "")


def _colours(methods: list[str]) -> dict[str, str]:
    """One colour per network variant; its corrected output shares it (dashed)."""
    out = dict(COLOURS)
    raw = [m for m in methods if m.startswith("dnn_") and not m.endswith("_corrected")]
    for i, m in enumerate(raw):
        out[m] = out[f"{m}_corrected"] = DNN_COLOURS[i % len(DNN_COLOURS)]
    for m in methods:
        out.setdefault(m, "grey")
    return out


def _style(method: str) -> str:
    return "--" if method.endswith("_corrected") else "-"


def _hist(
    ax: Any, values: np.ndarray, weight: np.ndarray, edges: np.ndarray, label: str, colour: str, ls: str = "-"
) -> None:
    """Fraction of all events per bin (entries outside the range count in the total, not in a bin)."""
    h, _ = np.histogram(values, bins=edges, weights=weight)
    ax.stairs(h / max(float(np.sum(weight)), 1e-12), edges, label=label, color=colour, linewidth=1.4, linestyle=ls)


def make_all(
    estimates: Mapping[str, tuple[np.ndarray, np.ndarray]],
    tx: np.ndarray,
    ty: np.ndarray,
    weight: np.ndarray,
    report: Mapping[str, Any],
    models: Mapping[str, Mapping[int, Path]],
    outdir: Path,
) -> list[Path]:
    """Every figure of the study; returns the written paths."""
    setup()
    import matplotlib.pyplot as plt
    import pandas as pd

    methods = list(estimates)
    colour = _colours(methods)
    pt = np.hypot(tx, ty)
    phi_w = np.arctan2(-ty, -tx)
    comps = {m: recoil_components(x, y, phi_w) for m, (x, y) in estimates.items()}
    bias_min = float(report.get("bias_pt_min", 10.0))
    written: list[Path] = []

    # u_x, u_y against the truth (seed: "Target comparison - uX, uY")
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    edges = np.linspace(-60, 60, 61)
    for ax, k, name in ((axes[0], 0, "x"), (axes[1], 1, "y")):
        _hist(ax, tx if k == 0 else ty, weight, edges, LABELS["truth"], "black")
        for m, xy in estimates.items():
            _hist(ax, xy[k], weight, edges, _label(m), colour[m], _style(m))
        ax.set_xlabel(f"$u_{name}$ [GeV]")
        ax.set_ylabel("fraction of events")
        ax.set_yscale("log")
    axes[0].legend(fontsize=8, loc="upper left")
    written += save(fig, outdir / "targets_ux_uy")

    # u_T, u_par and the per-event bias (seed: "uT, uPar, bias")
    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    edges_t = np.linspace(0, 80, 41)
    _hist(axes[0], pt, weight, edges_t, "truth $p_T^W$", "black")
    _hist(axes[1], pt, weight, edges_t, "truth $p_T^W$", "black")
    edges_b = np.linspace(-2, 2, 41)
    high = pt > bias_min
    for m, (x, y) in estimates.items():
        _hist(axes[0], np.hypot(x, y), weight, edges_t, _label(m), colour[m], _style(m))
        _hist(axes[1], comps[m][0], weight, edges_t, _label(m), colour[m], _style(m))
        _hist(axes[2], 1.0 - comps[m][0][high] / pt[high], weight[high], edges_b, _label(m), colour[m], _style(m))
    axes[0].set_xlabel("$u_T$ [GeV]")
    axes[1].set_xlabel(r"$u_\parallel$ [GeV]")
    axes[2].set_xlabel(rf"bias $1 - u_\parallel / p_T^W$ ($p_T^W > {bias_min:g}$ GeV)")
    for ax in axes:
        ax.set_ylabel("fraction of events")
    axes[0].legend(fontsize=9)
    written += save(fig, outdir / "ut_upar_bias")

    # u_perp integrated (seed: "uPerp, Integrated")
    fig, ax = plt.subplots(figsize=(7, 5))
    edges_p = np.linspace(-40, 40, 61)
    for m in methods:
        sigma = report["methods"][m]["sigma_uperp"]
        _hist(ax, comps[m][1], weight, edges_p, f"{_label(m)}: $\\sigma$ = {sigma:.2f} GeV", colour[m], _style(m))
    ax.set_xlabel(r"$u_\perp$ [GeV]")
    ax.set_ylabel("fraction of events")
    ax.legend(fontsize=9)
    written += save(fig, outdir / "uperp")

    def binned(stem: str, key: str, err: str | None, xkey: str, xlabel: str, ylabel: str, band: float | None) -> None:
        fig, ax = plt.subplots(figsize=(7, 5))
        for m in methods:
            rows = [b for b in report["methods"][m][xkey] if key in b]
            if not rows:
                continue
            x = np.array([0.5 * (b["lo"] + b["hi"]) for b in rows])
            xerr = np.array([0.5 * (b["hi"] - b["lo"]) for b in rows])
            y = np.array([b[key] for b in rows])
            yerr = np.array([np.nan if b.get(err) is None else b[err] for b in rows]) if err else None
            marker = "s" if m.endswith("_corrected") else "o"
            ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt=marker, ms=4, color=colour[m], label=_label(m),
                        mfc="none" if m.endswith("_corrected") else colour[m])
        if band is not None:
            ax.axhspan(-band, band, color="grey", alpha=0.2, label=f"$\\pm${band:.0%}")
            ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=9)
        written.extend(save(fig, outdir / stem))

    binned("bias_vs_pt", "bias", "bias_err", "vs_pt", "truth $p_T^W$ [GeV]",
           r"bias $1 - \langle u_\parallel\rangle / \langle p_T^W\rangle$", 0.02)
    binned("resolution_vs_pt", "sigma_uperp_over_mean_ut", None, "vs_pt", "truth $p_T^W$ [GeV]",
           r"$\sigma(u_\perp) / \langle u_T \rangle$", None)
    binned("sigma_uperp_vs_pt", "sigma_uperp", "sigma_uperp_err", "vs_pt", "truth $p_T^W$ [GeV]",
           r"$\sigma(u_\perp)$ [GeV]", None)
    binned("sigma_uperp_vs_sumet", "sigma_uperp", "sigma_uperp_err", "vs_sumet", r"$\Sigma E_T$ [GeV]",
           r"$\sigma(u_\perp)$ [GeV]", None)

    # the mean responses behind the numerical-inversion corrections (training rows of the first fold)
    corrections = report.get("response_correction", {})
    if corrections:
        fig, ax = plt.subplots(figsize=(7, 5))
        for name, per_fold in corrections.items():
            fold = min(per_fold, key=int)
            corr = per_fold[fold]
            ax.plot(corr["pt_mean"], corr["response"], "o-", ms=3, color=colour.get(name, "grey"),
                    label=f"{_label(name)} (fold {fold} training rows)")
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_xlabel(r"truth $p_T^W$ [GeV]")
        ax.set_ylabel(r"$\langle u_\parallel \rangle / \langle p_T^W \rangle$ before correction")
        ax.legend(fontsize=8)
        written += save(fig, outdir / "response_correction")

    # training curves: every variant, first evaluated fold
    fig, ax = plt.subplots(figsize=(7, 5))
    for i, (variant, folds) in enumerate(models.items()):
        fold = min(folds)
        hist_path = folds[fold] / "history.csv"
        if not hist_path.is_file():
            continue
        h = pd.read_csv(hist_path)
        c = DNN_COLOURS[i % len(DNN_COLOURS)]
        if "train_loss" in h:
            ax.plot(h["epoch"], h["train_loss"], color=c, ls="--", label=f"{variant} train (fold {fold})")
        if "val_loss" in h:
            ax.plot(h["epoch"], h["val_loss"], color=c, label=f"{variant} validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss [GeV$^2$]")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    written += save(fig, outdir / "training_curves")
    return written
