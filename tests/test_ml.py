"""Tests of hepchain.ml: loss, weights, scaler, networks, data, training, export."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from lightning.pytorch import Trainer

from hepchain.errors import ConfigError, EmptySelectionError, HepchainError
from hepchain.ml import (
    VH_HIDDEN,
    ClassifierModule,
    GaussianNoise,
    MLPClassifier,
    OnnxClassifier,
    RobustScaler,
    TensorDataModule,
    class_balanced_weights,
    split_indices,
    train_fold,
    weighted_cross_entropy,
)
from hepchain.ml import train as train_mod

FEATURES = ["f0", "f1", "f2", "f3"]
TINY = {
    "hidden": (8, 8),
    "max_epochs": 5,
    "n_classes": 3,
    "batch_size": 32,
    "progress_bar": False,
}


def make_table(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """Three classes of Gaussians separated along the first three features."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 3, n)
    x = (
        rng.normal(size=(n, 4))
        + 3.0 * np.eye(3, 4)[label]
        + np.array([10.0, -5.0, 0.0, 100.0])
    )
    table = pd.DataFrame(x * np.array([1.0, 2.0, 0.5, 30.0]), columns=FEATURES)
    table["weight"] = rng.uniform(0.1, 2.0, n)
    table["label"] = label
    table["fold"] = rng.integers(0, 3, n)
    return table


# --- loss -------------------------------------------------------------------

LOGITS = [[1.0, 2.0, 0.5], [0.3, -1.0, 2.5]]
TARGET = [1, 0]
WEIGHT = [0.5, 2.0]


def _softmax_by_hand(row: list[float]) -> list[float]:
    norm = sum(math.exp(v) for v in row)
    return [math.exp(v) / norm for v in row]


def test_weighted_cross_entropy_matches_hand_computation() -> None:
    ce = [
        math.log(sum(math.exp(v) for v in row)) - row[t]
        for row, t in zip(LOGITS, TARGET, strict=True)
    ]
    expected = sum(w * c for w, c in zip(WEIGHT, ce, strict=True)) / sum(WEIGHT)
    got = weighted_cross_entropy(
        torch.tensor(LOGITS, dtype=torch.float64),
        torch.tensor(TARGET),
        torch.tensor(WEIGHT, dtype=torch.float64),
    )
    assert got.item() == pytest.approx(expected, rel=1e-12)


def test_weighted_cross_entropy_gradient() -> None:
    logits = torch.tensor(LOGITS, dtype=torch.float64, requires_grad=True)
    loss = weighted_cross_entropy(
        logits, torch.tensor(TARGET), torch.tensor(WEIGHT, dtype=torch.float64)
    )
    (grad,) = torch.autograd.grad(loss, logits)
    total = sum(WEIGHT)
    expected = [
        [(p - (k == t)) * w / total for k, p in enumerate(_softmax_by_hand(row))]
        for row, t, w in zip(LOGITS, TARGET, WEIGHT, strict=True)
    ]
    np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-12, atol=1e-15)


def test_class_balanced_weights_sums() -> None:
    rng = np.random.default_rng(1)
    label = np.repeat([0, 1, 2], [10, 50, 240])
    weight = rng.uniform(0.0, 3.0, label.size)
    weight[
        5
    ] = -0.2  # negative MC weights are allowed while the class total is positive
    balanced = class_balanced_weights(weight, label, 3)
    sums = np.bincount(label, weights=balanced)
    np.testing.assert_allclose(sums, [100.0, 100.0, 100.0])
    assert balanced.mean() == pytest.approx(1.0)
    within = balanced[label == 1] / weight[label == 1]
    np.testing.assert_allclose(within, within[0])  # ratios inside a class are kept


def test_class_balanced_weights_rejects_empty_class() -> None:
    with pytest.raises(EmptySelectionError, match="class 2 has no rows"):
        class_balanced_weights(np.ones(4), np.array([0, 1, 0, 1]), 3)
    with pytest.raises(
        EmptySelectionError, match="class 1 has non-positive total weight"
    ):
        class_balanced_weights(np.array([1.0, -1.0, 1.0]), np.array([0, 1, 2]), 3)
    with pytest.raises(HepchainError, match="'label'"):
        class_balanced_weights(np.ones(3), np.array([0, 1, 3]), 3)


# --- scaler and networks ----------------------------------------------------


def test_robust_scaler_known_array() -> None:
    x = np.array(
        [
            [1.0, 5.0, 0.0],
            [2.0, 5.0, 10.0],
            [3.0, 5.0, 20.0],
            [4.0, 5.0, 30.0],
            [5.0, 5.0, 40.0],
        ]
    )
    scaler = RobustScaler.fit(x)
    np.testing.assert_allclose(scaler.center.numpy(), [3.0, 5.0, 20.0])
    np.testing.assert_allclose(
        scaler.scale.numpy(), [2.0, 1.0, 20.0]
    )  # IQR 0 -> scale 1
    scaled = scaler(torch.tensor(x, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(scaled[:, 0], [-1.0, -0.5, 0.0, 0.5, 1.0])
    np.testing.assert_allclose(scaled[:, 1], 0.0)
    from sklearn.preprocessing import RobustScaler as SkRobustScaler

    np.testing.assert_allclose(scaled, SkRobustScaler().fit_transform(x), atol=1e-6)
    weighted = RobustScaler.fit(
        x[:, :1], weight=np.ones(5)
    )  # midpoint rule: P25 = 1.75, P75 = 4.25
    assert weighted.center.item() == pytest.approx(3.0)
    assert weighted.scale.item() == pytest.approx(2.5)
    assert set(dict(scaler.named_buffers())) == {"center", "scale"}


def test_gaussian_noise_only_in_training() -> None:
    torch.manual_seed(0)
    layer = GaussianNoise(0.5)
    x = torch.zeros(2000, 5)
    assert torch.equal(layer.eval()(x), x)
    noisy = layer.train()(x)
    assert not torch.equal(noisy, x)
    assert noisy.std().item() == pytest.approx(0.5, rel=0.05)


def test_mlp_classifier_layout() -> None:
    model = MLPClassifier(n_inputs=5)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 11
    assert [m.out_features for m in linears] == [*VH_HIDDEN, 6]
    assert VH_HIDDEN == (20, 20, 40, 70, 20, 50, 40, 30, 40, 30)
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules()) == 10
    assert sum(isinstance(m, GaussianNoise) for m in model.modules()) == 11
    assert sum(isinstance(m, torch.nn.ELU) for m in model.modules()) == 10
    assert model(torch.randn(7, 5)).shape == (7, 6)
    relu = MLPClassifier(
        3, hidden=(4,), n_classes=2, activation="relu", batch_norm=False
    )
    assert relu.eval()(torch.randn(1, 3)).shape == (1, 2)
    with pytest.raises(ConfigError, match="activation 'tanh'"):
        MLPClassifier(3, activation="tanh")


# --- data module ------------------------------------------------------------


def _arrays(n: int = 50) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2)
    return (
        rng.normal(size=(n, 3)).astype(np.float32),
        rng.integers(0, 2, n),
        np.ones(n, np.float32),
    )


def test_datamodule_rejects_nan_naming_column() -> None:
    x, y, w = _arrays()
    x[[3, 7], 2] = np.nan
    x[9, 2] = np.inf
    with pytest.raises(HepchainError, match="3 NaN/inf values in column 'met'"):
        TensorDataModule(
            x,
            y,
            w,
            np.arange(40),
            np.arange(40, 50),
            feature_names=["pt", "eta", "met"],
        )
    with pytest.raises(ValueError, match="must both have shape"):
        TensorDataModule(x, y[:-1], w, np.arange(40), np.arange(40, 50))
    with pytest.raises(ValueError, match="overlap"):
        TensorDataModule(*_arrays(), np.arange(40), np.arange(30, 50))


def test_datamodule_batches() -> None:
    x, y, w = _arrays(41)
    data = TensorDataModule(
        x, y, w, np.arange(33), np.arange(33, 41), batch_size=8, seed=3, device="cpu"
    )
    data.setup("fit")
    train = data.train_dataloader()
    assert len(train) == 4  # 33 = 4 * 8 + 1: the single-row batch is dropped
    first = torch.cat([b[0] for b in train])
    second = torch.cat([b[0] for b in train])
    assert first.shape == (32, 3) and not torch.equal(
        first, second
    )  # reshuffled per epoch
    again = TensorDataModule(
        x, y, w, np.arange(33), np.arange(33, 41), batch_size=8, seed=3, device="cpu"
    )
    assert torch.equal(
        torch.cat([b[0] for b in again.train_dataloader()]), first
    )  # seeded by (seed, epoch)
    val = list(data.val_dataloader())
    assert [len(b[0]) for b in val] == [8]
    assert torch.equal(val[0][0], torch.from_numpy(x[33:41]))


def test_fast_dev_run(tmp_path: Path) -> None:
    x, y, w = _arrays(64)
    torch.manual_seed(0)
    module = ClassifierModule(
        3, hidden=(4, 4), n_classes=2, scaler=RobustScaler.fit(x[:48])
    )
    data = TensorDataModule(x, y, w, np.arange(48), np.arange(48, 64), batch_size=16)
    trainer = Trainer(
        fast_dev_run=True,
        accelerator="cpu",
        logger=False,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=data)
    assert trainer.state.finished
    proba = module.predict_proba(x)
    assert proba.shape == (64, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)


# --- training, export, determinism -------------------------------------------


def _train(
    table: pd.DataFrame, outdir: Path, **kwargs: Any
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Run train_fold(fold 0) and record the index arrays given to the data module."""
    seen: dict[str, np.ndarray] = {}

    class RecordingDataModule(TensorDataModule):
        def __init__(self, *args: Any, **kw: Any) -> None:
            super().__init__(*args, **kw)
            seen["train"], seen["val"] = self.train_idx, self.val_idx

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_mod, "TensorDataModule", RecordingDataModule)
        summary = train_fold(table, FEATURES, 0, 3, outdir, **{**TINY, **kwargs})
    return summary, seen


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[pd.DataFrame, Path, dict[str, Any], dict[str, Any]]:
    table = make_table()
    outdir = tmp_path_factory.mktemp("fold0")
    summary, seen = _train(table, outdir)
    return table, outdir, summary, seen


def test_train_fold_outputs(
    trained: tuple[pd.DataFrame, Path, dict[str, Any], dict[str, Any]],
) -> None:
    table, outdir, summary, _ = trained
    for name in ("model.ckpt", "model.onnx", "history.csv", "summary.json"):
        assert (outdir / name).is_file(), name
    assert json.loads((outdir / "summary.json").read_text()) == summary
    assert summary["val_auc"] > 0.8
    assert summary["onnx_parity_max_abs_diff"] < 1e-5
    assert summary["feature_names"] == FEATURES
    assert summary["hyperparameters"]["hidden"] == [8, 8]
    history = pd.read_csv(outdir / "history.csv")
    assert list(history.columns) == ["epoch", "train_loss", "val_loss", "val_auc"]
    assert history["epoch"].tolist() == list(range(summary["epochs_run"]))
    assert not history.isna().any().any()
    assert summary["best_val_loss"] == pytest.approx(history["val_loss"].min())
    assert history["val_loss"].iloc[summary["best_epoch"]] == pytest.approx(
        summary["best_val_loss"]
    )
    onnx = OnnxClassifier(outdir / "model.onnx")
    x = table[FEATURES].to_numpy(np.float32)
    proba = onnx.predict(x, batch_size=7)
    np.testing.assert_allclose(proba, onnx.predict(x), atol=1e-6)
    best = ClassifierModule.load_from_checkpoint(
        outdir / "model.ckpt", map_location="cpu"
    )
    np.testing.assert_allclose(proba, best.predict_proba(x), atol=1e-5)


def test_train_fold_keeps_test_rows_out(
    trained: tuple[pd.DataFrame, Path, dict[str, Any], dict[str, Any]],
) -> None:
    table, _, summary, seen = trained
    fold = table["fold"].to_numpy()
    test_rows = np.flatnonzero(fold == 0)
    assert summary["n_test"] == test_rows.size
    assert summary["n_val"] == int((fold == 1).sum())
    assert summary["n_train"] + summary["n_val"] + summary["n_test"] == len(table)
    assert np.intersect1d(seen["train"], test_rows).size == 0
    assert np.intersect1d(seen["val"], test_rows).size == 0
    assert np.all(fold[seen["val"]] == 1) and np.all(fold[seen["train"]] == 2)
    train, val, test = split_indices(fold, 2, 3)
    assert set(fold[test]) == {2} and set(fold[val]) == {0} and set(fold[train]) == {1}
    with pytest.raises(ConfigError, match="n_folds"):
        split_indices(fold, 0, 2)


def test_train_fold_is_deterministic(
    trained: tuple[pd.DataFrame, Path, dict[str, Any], dict[str, Any]], tmp_path: Path
) -> None:
    table, outdir, summary, _ = trained
    again, _ = _train(table, tmp_path)
    x = table[FEATURES].to_numpy(np.float32)
    first = OnnxClassifier(outdir / "model.onnx").predict(x)
    second = OnnxClassifier(tmp_path / "model.onnx").predict(x)
    np.testing.assert_array_equal(first, second)
    assert again["best_val_loss"] == summary["best_val_loss"]


def test_train_fold_rejects_bad_table(tmp_path: Path) -> None:
    table = make_table(60)
    with pytest.raises(HepchainError, match="column 'weight' is missing"):
        train_fold(table.drop(columns="weight"), FEATURES, 0, 3, tmp_path, **TINY)
    table.loc[4, "f1"] = np.nan
    with pytest.raises(HepchainError, match="column 'f1'"):
        train_fold(table, FEATURES, 0, 3, tmp_path, **TINY)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_train_fold_on_gpu(tmp_path: Path) -> None:
    table = make_table()
    summary, _ = _train(table, tmp_path)
    assert summary["device"].startswith("cuda")
    assert summary["val_auc"] > 0.8
    assert summary["onnx_parity_max_abs_diff"] < 1e-5
    x = table[FEATURES].to_numpy(np.float32)
    data = TensorDataModule(
        x,
        table["label"].to_numpy(),
        np.ones(len(x), np.float32),
        np.arange(500),
        np.arange(500, 600),
    )
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert all(t.device.type == "cuda" for t in batch)
