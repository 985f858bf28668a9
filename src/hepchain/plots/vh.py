"""Figures of the VH study, each written as PDF and PNG."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .style import save, setup

COLOURS = ["#d62728", "#ff7f0e", "#e377c2", "#1f77b4", "#2ca02c", "#9467bd"]


def discriminant_binned(table: pd.DataFrame, score: np.ndarray, binning: dict, classes: Sequence[str], outdir: Path) -> list[Path]:
    """Stacked VH discriminant in the optimised bins (after the orthogonality cuts)."""
    import matplotlib.pyplot as plt

    from ..studies.vh import orthogonality_mask

    ortho = orthogonality_mask(table, binning["orthogonality"])
    edges = np.asarray(binning["edges"])
    label = table["label"].to_numpy()
    w = table["weight"].to_numpy()
    fig, ax = plt.subplots(figsize=(7, 5))
    centres = 0.5 * (edges[1:] + edges[:-1])
    stack, names, colours = [], [], []
    for k in range(len(classes) - 1, 0, -1):
        sel = ortho & (label == k)
        stack.append(np.histogram(score[sel], bins=edges, weights=w[sel])[0])
        names.append(classes[k])
        colours.append(COLOURS[k % len(COLOURS)])
    ax.hist([centres] * len(stack), bins=edges, weights=stack, stacked=True, histtype="stepfilled", label=names, color=colours)
    sig = np.histogram(score[ortho & (label == 0)], bins=edges, weights=w[ortho & (label == 0)])[0]
    ax.hist(centres, bins=edges, weights=sig * 10, histtype="step", color="black", lw=2, label=f"{classes[0]} x 10")
    ax.set_yscale("log")
    ax.set_xlabel(f"{classes[0]} discriminant (out-of-fold)")
    ax.set_ylabel(f"Expected events / bin ({binning['luminosity_fb']:.0f} fb$^{{-1}}$)")
    ax.set_title(f"Optimised binning: $Z_0$ = {binning['z0_mva']:.2f} (cut-based {binning['z0_cut_based']:.2f})", fontsize=11)
    ax.legend(fontsize=8, ncol=2)
    return save(fig, outdir / "discriminant_binned")


def roc_vh(table: pd.DataFrame, score: np.ndarray, classes: Sequence[str], outdir: Path) -> list[Path]:
    """Weighted ROC of the VH discriminant, VH against all other classes, with the cut-based point."""
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_auc_score, roc_curve

    from ..studies.vh import run1_cut_based

    y = (table["label"].to_numpy() == 0).astype(int)
    w = table["weight"].to_numpy()
    fpr, tpr, _ = roc_curve(y, score, sample_weight=w)
    auc = roc_auc_score(y, score, sample_weight=w)
    cut = run1_cut_based(table)
    eff_s = w[cut & (y == 1)].sum() / w[y == 1].sum()
    eff_b = w[cut & (y == 0)].sum() / w[y == 0].sum()
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.plot(tpr, 1 - fpr, label=f"MVA (AUC = {auc:.3f})", color=COLOURS[0])
    ax.plot([eff_s], [1 - eff_b], "k*", ms=12, label="Run-1 cut-based")
    ax.set_xlabel(f"{classes[0]} efficiency")
    ax.set_ylabel("Background rejection (1 - efficiency)")
    ax.legend()
    ax.grid(alpha=0.3)
    return save(fig, outdir / "roc_vh")


def input_shapes(table: pd.DataFrame, features: Sequence[str], classes: Sequence[str], outdir: Path) -> list[Path]:
    """Shape (sum of weights per class normalised to 1) of every input, per class."""
    import matplotlib.pyplot as plt

    n = len(features)
    ncol = 5
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.6 * nrow))
    label = table["label"].to_numpy()
    w = table["weight"].to_numpy()
    for ax, name in zip(axes.flat, features, strict=False):
        x = table[name].to_numpy()
        lo, hi = np.percentile(x, [0.5, 99.5])
        if hi <= lo:
            hi = lo + 1.0
        bins = np.linspace(lo, hi, 31)
        for k, cls in enumerate(classes):
            sel = label == k
            if sel.any() and w[sel].sum() > 0:
                ax.hist(np.clip(x[sel], lo, hi), bins=bins, weights=w[sel] / w[sel].sum(), histtype="step", color=COLOURS[k % 6], label=cls)
        ax.set_xlabel(name, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6)
    fig.tight_layout()
    return save(fig, outdir / "input_shapes")


def confusion_matrix(table: pd.DataFrame, probs: np.ndarray, classes: Sequence[str], outdir: Path) -> list[Path]:
    """Weighted confusion matrix (rows: true class, normalised to 1; columns: arg-max prediction)."""
    import matplotlib.pyplot as plt

    k = len(classes)
    true = table["label"].to_numpy()
    pred = probs.argmax(axis=1)
    w = table["weight"].to_numpy()
    m = np.zeros((k, k))
    np.add.at(m, (true, pred), w)
    m = m / np.maximum(m.sum(axis=1, keepdims=True), 1e-12)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    im = ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", color="white" if m[i, j] > 0.5 else "black", fontsize=9)
    ax.set_xticks(range(k), classes)
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    fig.colorbar(im, ax=ax)
    return save(fig, outdir / "confusion_matrix")


def training_curves(histories: Sequence[Path], outdir: Path) -> list[Path]:
    """Training and validation loss, and validation AUC, per epoch for each fold."""
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    for k, path in enumerate(histories):
        h = pd.read_csv(path)
        c = COLOURS[k % 6]
        ax1.plot(h["epoch"], h["train_loss"], color=c, ls="--", label=f"fold {k} train")
        ax1.plot(h["epoch"], h["val_loss"], color=c, label=f"fold {k} val")
        if "val_auc" in h:
            ax2.plot(h["epoch"], h["val_auc"], color=c, label=f"fold {k}")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("class-weighted cross-entropy")
    ax1.legend(fontsize=7, ncol=2)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("validation ROC AUC (VH vs rest)")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    return save(fig, outdir / "training_curves")


def cutflow(cutflows: Sequence[Path], outdir: Path) -> list[Path]:
    """Weighted-event efficiency of each named cut, per sample."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    names: list[str] = []
    for k, path in enumerate(cutflows):
        cf = json.loads(Path(path).read_text())
        names = [c["name"] for c in cf["cuts"]]
        raw = np.array([c["raw"] for c in cf["cuts"]], dtype=float)
        frac = raw / max(raw[0], 1.0)
        ax.plot(range(len(names)), np.maximum(frac, 1e-6), marker="o", color=COLOURS[k % 6], label=cf.get("sample", path.stem))
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("fraction of generated events kept")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, outdir / "cutflow")


def make_all(
    *,
    features: Path,
    scores: Path,
    report: dict,
    histories: Sequence[Path],
    cutflows: Sequence[Path],
    classes: Sequence[str],
    outdir: Path,
) -> list[Path]:
    from ..features.vh import VH_SPEC
    from ..io import read_table

    setup()
    table = read_table(features)
    sc = read_table(scores)
    probs = sc[[f"p{k}" for k in range(len(classes))]].to_numpy()
    outdir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    written += discriminant_binned(table, probs[:, 0], report, classes, outdir)
    written += roc_vh(table, probs[:, 0], classes, outdir)
    written += input_shapes(table, VH_SPEC.names, classes, outdir)
    written += confusion_matrix(table, probs, classes, outdir)
    written += training_curves(histories, outdir)
    written += cutflow(cutflows, outdir)
    return written
