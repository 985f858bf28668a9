"""K-fold cross-training of one classifier fold, with export and bookkeeping."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning
import numpy as np
import pandas as pd
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from hepchain.errors import ConfigError, EmptySelectionError, HepchainError
from hepchain.ml.datamodule import TensorDataModule, check_finite
from hepchain.ml.export import check_parity, export_onnx
from hepchain.ml.losses import class_balanced_weights
from hepchain.ml.module import ClassifierModule
from hepchain.ml.networks import VH_HIDDEN
from hepchain.ml.scaling import RobustScaler

HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss", "val_auc"]
#: Rows of the test fold used for the ONNX parity check.
PARITY_ROWS = 10_000


def split_indices(
    fold_column: np.ndarray, fold: int, n_folds: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(train, val, test)`` row indices of model ``fold``.

    Test rows have ``fold_column == fold`` (never seen in training or
    validation), validation rows ``fold_column == (fold + 1) % n_folds``, and
    the remaining rows train.
    """
    if n_folds < 3:
        raise ConfigError(
            f"n_folds must be >= 3 (test, validation and training folds), got {n_folds}"
        )
    if not 0 <= fold < n_folds:
        raise ConfigError(f"fold must be in 0..{n_folds - 1}, got {fold}")
    folds = np.asarray(fold_column)
    test = np.flatnonzero(folds == fold)
    val = np.flatnonzero(folds == (fold + 1) % n_folds)
    train = np.flatnonzero((folds != fold) & (folds != (fold + 1) % n_folds))
    for name, index in (("training", train), ("validation", val), ("test", test)):
        if index.size == 0:
            raise EmptySelectionError(f"fold {fold}: no {name} rows (column 'fold')")
    return train, val, test


def _check_table(
    table: pd.DataFrame, feature_names: Sequence[str], n_folds: int, n_classes: int
) -> None:
    if not feature_names:
        raise ConfigError("feature_names is empty")
    for column in [*feature_names, "weight", "label", "fold"]:
        if column not in table.columns:
            raise HepchainError(f"column '{column}' is missing from the training table")
    for column in feature_names:
        if not pd.api.types.is_numeric_dtype(
            table[column]
        ) or pd.api.types.is_bool_dtype(table[column]):
            raise HepchainError(
                f"feature column '{column}' must be numeric, got dtype {table[column].dtype}"
            )
    for column in ("label", "fold"):
        if not pd.api.types.is_integer_dtype(table[column]):
            raise HepchainError(
                f"column '{column}' must hold integers, got dtype {table[column].dtype}"
            )
    limits = {"label": n_classes, "fold": n_folds}
    for column, limit in limits.items():
        values = table[column].to_numpy()
        outside = (values < 0) | (values >= limit)
        if outside.any():
            raise HepchainError(
                f"column '{column}' has {int(outside.sum())} values outside 0..{limit - 1}"
            )


def history_from_metrics(metrics_csv: Path) -> pd.DataFrame:
    """One clean row per epoch from Lightning's ``metrics.csv`` (several rows per epoch)."""
    raw = pd.read_csv(metrics_csv)
    for column in HISTORY_COLUMNS:
        if column not in raw.columns:
            raw[column] = np.nan
    history = (
        raw[HISTORY_COLUMNS]
        .dropna(subset=["epoch"])
        .groupby("epoch", as_index=False)
        .first()
    )
    history = history.dropna(subset=["train_loss", "val_loss"], how="all")
    history["epoch"] = history["epoch"].astype(int)
    return history.sort_values("epoch").reset_index(drop=True)


@dataclass(frozen=True)
class FoldData:
    """Arrays of one fold's split: features, labels, class-balanced weights, indices and the fitted scaler."""

    x: np.ndarray
    y: np.ndarray
    w: np.ndarray  # class-balanced, separately on training and validation rows
    train_idx: np.ndarray
    val_idx: np.ndarray
    test_idx: np.ndarray
    scaler: RobustScaler
    feature_names: list[str]
    n_classes: int


def prepare_fold(
    table: pd.DataFrame, feature_names: Sequence[str], n_folds: int, n_classes: int, fold: int
) -> FoldData:
    """Check the table and build fold ``fold``'s split (used by :func:`train_fold` and the search of :mod:`.hpo`).

    Rows of fold ``fold`` are held out, fold ``fold + 1`` validates, the rest
    train; weights are class-balanced on training and validation rows
    separately and the scaler is fitted on the training rows.
    """
    names = list(feature_names)
    _check_table(table, names, n_folds, n_classes)
    train_idx, val_idx, test_idx = split_indices(table["fold"].to_numpy(), fold, n_folds)
    x = table[names].to_numpy(dtype=np.float32)
    check_finite(x, names)
    y = table["label"].to_numpy(dtype=np.int64)
    w = table["weight"].to_numpy(dtype=np.float64)
    balanced = np.zeros(len(table), dtype=np.float32)
    balanced[train_idx] = class_balanced_weights(w[train_idx], y[train_idx], n_classes)
    balanced[val_idx] = class_balanced_weights(w[val_idx], y[val_idx], n_classes)
    return FoldData(x, y, balanced, train_idx, val_idx, test_idx, RobustScaler.fit(x[train_idx]), names, n_classes)


def train_fold(
    table: pd.DataFrame,
    feature_names: list[str],
    fold: int,
    n_folds: int,
    outdir: Path,
    *,
    hidden: Sequence[int] = VH_HIDDEN,
    activation: str = "elu",
    noise_std: float = 0.1,
    lr: float = 0.00222,
    batch_size: int = 1024,
    max_epochs: int = 200,
    patience: int = 10,
    seed: int = 1234,
    n_classes: int = 6,
    threads: int | None = None,
    progress_bar: bool = True,
) -> dict[str, Any]:
    """Train model ``fold`` of a K-fold cross-training and export it.

    ``table`` has the feature columns plus ``weight`` (expected events),
    ``label`` (0..n_classes-1) and ``fold`` (0..n_folds-1).  Rows of fold
    ``fold`` are the test rows, fold ``(fold + 1) % n_folds`` validates (early
    stopping on ``val_loss``), the rest train.  Training and validation
    weights are class-balanced separately; the scaler is fitted on the
    training rows only.  Writes ``model.ckpt`` (best epoch), ``model.onnx``,
    ``history.csv`` and ``summary.json`` into ``outdir`` and returns the
    summary.
    """
    prepared = prepare_fold(table, feature_names, n_folds, n_classes, fold)
    x, y, balanced = prepared.x, prepared.y, prepared.w
    train_idx, val_idx, test_idx = prepared.train_idx, prepared.val_idx, prepared.test_idx
    if threads is not None:
        torch.set_num_threads(int(threads))
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)

    lightning.seed_everything(seed + fold, workers=True, verbose=False)
    data = TensorDataModule(
        x,
        y,
        balanced,
        train_idx,
        val_idx,
        test_idx,
        feature_names=feature_names,
        batch_size=batch_size,
        seed=seed + fold,
    )
    hyper = {
        "hidden": [int(h) for h in hidden],
        "activation": activation,
        "noise_std": noise_std,
        "lr": lr,
        "batch_size": batch_size,
        "max_epochs": max_epochs,
        "patience": patience,
        "seed": seed,
        "n_classes": n_classes,
        "n_folds": n_folds,
        "threads": threads,
    }
    module = ClassifierModule(
        n_inputs=len(feature_names),
        hidden=tuple(hidden),
        n_classes=n_classes,
        activation=activation,
        noise_std=noise_std,
        lr=lr,
        scaler=prepared.scaler,
    )

    ckpt_dir = outdir / "checkpoints"
    checkpoint = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="best",
        monitor="val_loss",
        mode="min",
        save_top_k=1,
        auto_insert_metric_name=False,
        enable_version_counter=False,
    )
    logger = CSVLogger(outdir, name="logs")
    trainer = Trainer(
        deterministic=True,
        accelerator="auto",
        devices=1,
        max_epochs=max_epochs,
        callbacks=[
            EarlyStopping(monitor="val_loss", mode="min", patience=patience),
            checkpoint,
        ],
        logger=logger,
        enable_progress_bar=progress_bar,
        enable_model_summary=progress_bar,
        log_every_n_steps=1,
    )
    trainer.fit(module, datamodule=data)
    if not checkpoint.best_model_path:
        raise RuntimeError(
            f"fold {fold}: no checkpoint was saved (val_loss never finite?)"
        )

    ckpt_path = outdir / "model.ckpt"
    shutil.move(checkpoint.best_model_path, ckpt_path)
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    best = ClassifierModule.load_from_checkpoint(ckpt_path, map_location="cpu").eval()
    best_epoch = int(
        torch.load(ckpt_path, map_location="cpu", weights_only=False)["epoch"]
    )

    onnx_path = export_onnx(best, len(feature_names), outdir / "model.onnx")
    parity = check_parity(best, onnx_path, x[test_idx[:PARITY_ROWS]])

    history = history_from_metrics(Path(logger.log_dir) / "metrics.csv")
    history.to_csv(outdir / "history.csv", index=False)
    best_row = history[history["epoch"] == best_epoch]
    summary: dict[str, Any] = {
        "fold": fold,
        "n_folds": n_folds,
        "n_train": int(train_idx.size),
        "n_val": int(val_idx.size),
        "n_test": int(test_idx.size),
        "best_epoch": best_epoch,
        "best_val_loss": float(checkpoint.best_model_score),
        "val_auc": float(best_row["val_auc"].iloc[0])
        if len(best_row)
        else float("nan"),
        "epochs_run": len(history),
        "onnx_parity_max_abs_diff": parity,
        "device": str(data.device),
        "feature_names": list(feature_names),
        "hyperparameters": hyper,
    }
    (outdir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
