"""One training engine for the five studies (recoil, ditau, jets, electrons, vh).

Pieces, each usable on its own:

- :class:`DeviceDataModule`: a study's whole feature table (a
  :class:`~hepchain.ml.study_data.StudyTensors`) moved once to the trainer's
  device, split into train/val/test by the ``fold`` column exactly as
  :func:`hepchain.ml.train.split_indices`; batches are dicts ``{input
  names..., "target", "weight", aux...}`` gathered on the device with
  ``index_select`` from a per-epoch permutation drawn by a ``torch.Generator``
  seeded from ``(seed, epoch)`` (:func:`~hepchain.ml.datamodule.epoch_seed`).
  No DataLoader, no workers, no per-row collation.  For ``jets`` the two jets
  of an event stay in one batch (events are shuffled, not rows) and batches
  carry ``"pairs"`` ``(P, 2)`` (ref, probe) row indices inside the batch.  A
  last training batch of one row is dropped (batch norm).
- :class:`StudyModule`: :class:`~hepchain.ml.study_data.Standardize` ->
  network -> :class:`OutputScale` (target de-standardisation, regression
  only), trained with a loss chosen by name; logs ``train_loss`` and
  ``val_loss`` per epoch (weighted: sum over batches of loss x batch weight
  over the total weight) and the study metrics of the validation set
  (:func:`study_metrics`); :meth:`StudyModule.inference_model` is the
  raw-features-to-prediction model that is exported (softmax added for vh).
- :func:`make_trainer`: the Lightning ``Trainer`` (accelerator check, early
  stopping and best-``val_loss`` checkpoint, CSV and TensorBoard loggers).
- :func:`train_study`: one fold end to end, writing ``model.ckpt``,
  ``model.onnx``, ``history.csv`` and ``summary.json`` atomically;
  :func:`predict_study` predicts from the exported model or the checkpoint.

Config keys (``train_study(..., config)``; unknown keys raise
:class:`~hepchain.errors.ConfigError` naming them; defaults in
:data:`COMMON_DEFAULTS` and :data:`STUDY_DEFAULTS`):

``network``
    ``{"kind": ..., <options>}`` of :func:`hepchain.ml.networks.build_network`;
    default :data:`hepchain.ml.networks.STUDY_NETWORKS` ``[study]``.  Options
    given without a kind, or with the study's default kind, override the
    study's defaults; another kind starts from that kind's defaults.
``loss``
    a name or ``{"name": ..., <options>}`` (names of
    :data:`hepchain.ml.losses.LOSSES`; options are the loss function's
    keyword parameters, e.g. ``alpha``, ``min_pt``, ``f``, ``low``/``high``,
    ``norm``).  Defaults: recoil ``recoil_bias_penalty`` (alpha 0), ditau
    ``mape_sqrt``, jets ``gaussian_nll_asymmetry`` (f 0), electrons
    ``relative_energy``, vh ``weighted_cross_entropy``.  Options given for the
    study's default loss override its defaults.
``targets``
    target columns (default :data:`~hepchain.ml.study_data.DEFAULT_TARGETS`).
``batch_size``
    rows per batch: recoil 1500 (seed 000), ditau 2048, jets 1024 (about
    512 events), electrons 256, vh 1024.
``lr``
    Adam learning rate: 1e-3 (vh 0.00222, as :mod:`hepchain.ml.train`).
``max_epochs`` (100), ``patience`` (10, early stopping on ``val_loss``)
``fold`` (0), ``n_folds`` (None: the table's metadata ``n_folds``, else max(fold) + 1; >= 3)
``seed`` (1234; the run seeds with ``seed + fold``)
``accelerator``
    ``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"gpu"``
    (:class:`~hepchain.errors.ConfigError` without a CUDA device).
``precision``
    ``"32-true"`` (default) or ``"bf16-mixed"`` (passed to the Trainer).
``compile`` (False)
    ``torch.compile`` the training/validation step (forward + loss).
``max_rows`` (None)
    use the first rows of the table only (tests, quick looks).
``features`` (None)
    feature names to train on, a subset of the study's spec in the given
    order (e.g. the seed's input list, or an ablation); None: every feature.
    A name the table's spec lacks raises :class:`ConfigError` naming it
    when the table is read.
``scale_targets`` (True)
    regression outputs are ``network * std + mean`` of the training targets
    (a Gaussian head's sigma is scaled by std only), part of the exported model.
``progress_bar`` (True)

Weights: the table's ``weight`` column, except for a classification (vh),
where the training and validation weights are class-balanced per split with
:func:`hepchain.ml.losses.class_balanced_weights` as in :mod:`hepchain.ml.train`
(number of classes: max(label) + 1).  Every split's total weight must be > 0.

Host syncs: the training step runs the same math as the loss functions of
:mod:`hepchain.ml.losses` through sync-free adapters (:data:`ENGINE_LOSSES`);
the data are validated once when loading instead (finite inputs, weights and
targets; positive targets where a loss divides by them; positive jet pT).
Per-step loss sums are accumulated on the device and read once per epoch.
Without the per-call checks, a batch whose weights sum to 0 (possible only
with negative event weights) gives a non-finite loss instead of an error, and
the jets asymmetry term clamps the predicted calibration at 1e-6 instead of
raising when it is not positive.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning
import numpy as np
import pandas as pd
import torch
from lightning.pytorch import Callback, LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from torch import Tensor, nn

from hepchain.errors import ConfigError, EmptySelectionError, HepchainError
from hepchain.features.spec import FeatureSpec
from hepchain.ml import losses as L
from hepchain.ml.datamodule import epoch_seed
from hepchain.ml.networks import STUDY_NETWORKS, build_network, describe
from hepchain.ml.onnx_export import PARITY_ATOL, PARITY_RTOL, OnnxModel, check_onnx_parity, export_network
from hepchain.ml.study_data import (
    STUDIES,
    Standardize,
    StudyTensors,
    check_study,
    load_study_tensors,
    spec_sizes,
    study_spec,
    table_columns,
)
from hepchain.ml.train import split_indices

log = logging.getLogger(__name__)

Batch = dict[str, Tensor]

#: Rows of the test fold used for the ONNX parity check.
PARITY_ROWS = 10_000

#: Defaults shared by every study (see the module docstring).
COMMON_DEFAULTS: dict[str, Any] = {
    "network": None,
    "loss": None,
    "targets": None,
    "max_epochs": 100,
    "patience": 10,
    "fold": 0,
    "n_folds": None,
    "seed": 1234,
    "accelerator": "auto",
    "precision": "32-true",
    "compile": False,
    "max_rows": None,
    "features": None,
    "scale_targets": True,
    "progress_bar": True,
}

#: Per-study defaults: loss (name and options), batch size, learning rate.
STUDY_DEFAULTS: dict[str, dict[str, Any]] = {
    "recoil": {"loss": {"name": "recoil_bias_penalty", "alpha": 0.0}, "batch_size": 1500, "lr": 1e-3},
    "ditau": {"loss": {"name": "mape_sqrt"}, "batch_size": 2048, "lr": 1e-3},
    "jets": {"loss": {"name": "gaussian_nll_asymmetry", "f": 0.0}, "batch_size": 1024, "lr": 1e-3},
    "electrons": {"loss": {"name": "relative_energy"}, "batch_size": 256, "lr": 1e-3},
    "vh": {"loss": {"name": "weighted_cross_entropy"}, "batch_size": 1024, "lr": 0.00222},
}

CONFIG_KEYS: tuple[str, ...] = (*COMMON_DEFAULTS, "batch_size", "lr")
ACCELERATORS: tuple[str, ...] = ("auto", "cpu", "gpu")
PRECISIONS: tuple[str, ...] = ("32-true", "bf16-mixed")


# --------------------------------------------------------------------------- config


def _int(key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"config key '{key}' must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"config key '{key}' must be true or false, got {value!r}")
    return value


def _choice(key: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ConfigError(f"config key '{key}' = {value!r} is not allowed (allowed: {', '.join(allowed)})")
    return str(value)


def _plain(value: Any) -> Any:
    """Tuples to lists, recursively (JSON- and checkpoint-friendly hyper-parameters)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _network_config(study: str, value: Any) -> dict[str, Any]:
    default = dict(STUDY_NETWORKS[study])
    if value is None:
        return _plain(default)
    if not isinstance(value, Mapping):
        raise ConfigError(f"config key 'network' must be a mapping {{kind, options...}}, got {value!r}")
    user = dict(value)
    kind = user.get("kind", default["kind"])
    if kind == default["kind"]:
        return _plain({**default, **user, "kind": kind})
    return _plain({**user, "kind": kind})


def _loss_config(study: str, value: Any) -> dict[str, Any]:
    default = dict(STUDY_DEFAULTS[study]["loss"])
    if value is None:
        return dict(default)
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, Mapping) or "name" not in value:
        raise ConfigError(f"config key 'loss' must be a loss name or a mapping with 'name', got {value!r}")
    user = dict(value)
    if user["name"] == default["name"]:
        return {**default, **user}
    return user


def resolve_config(study: str, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The complete, validated config of ``study``: ``config`` over the study's defaults.

    Raises :class:`ConfigError` naming an unknown key or a bad value.
    """
    check_study(study)
    config = dict(config or {})
    unknown = [k for k in config if k not in CONFIG_KEYS]
    if unknown:
        raise ConfigError(f"config key '{unknown[0]}' is unknown (allowed: {', '.join(CONFIG_KEYS)})")
    cfg: dict[str, Any] = {**COMMON_DEFAULTS, **STUDY_DEFAULTS[study], **config}
    cfg["network"] = _network_config(study, config.get("network"))
    cfg["loss"] = _loss_config(study, config.get("loss"))
    make_loss(cfg["loss"])  # validates name and options
    if cfg["targets"] is not None:
        targets = cfg["targets"]
        if isinstance(targets, str) or not isinstance(targets, Sequence) or not targets:
            raise ConfigError(f"config key 'targets' must be a non-empty list of column names, got {targets!r}")
        cfg["targets"] = [str(t) for t in targets]
    cfg["batch_size"] = _int("batch_size", cfg["batch_size"], 2)
    lr = cfg["lr"]
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr) and lr > 0):
        raise ConfigError(f"config key 'lr' must be a number > 0, got {lr!r}")
    cfg["lr"] = float(lr)
    cfg["max_epochs"] = _int("max_epochs", cfg["max_epochs"], 1)
    cfg["patience"] = _int("patience", cfg["patience"], 0)
    cfg["fold"] = _int("fold", cfg["fold"], 0)
    if cfg["n_folds"] is not None:
        cfg["n_folds"] = _int("n_folds", cfg["n_folds"], 3)
        if cfg["fold"] >= cfg["n_folds"]:
            raise ConfigError(f"config key 'fold' must be in 0..{cfg['n_folds'] - 1}, got {cfg['fold']}")
    if isinstance(cfg["seed"], bool) or not isinstance(cfg["seed"], (int, np.integer)):
        raise ConfigError(f"config key 'seed' must be an integer, got {cfg['seed']!r}")
    cfg["accelerator"] = _choice("accelerator", cfg["accelerator"], ACCELERATORS)
    cfg["precision"] = _choice("precision", cfg["precision"], PRECISIONS)
    for key in ("compile", "scale_targets", "progress_bar"):
        cfg[key] = _bool(key, cfg[key])
    if cfg["max_rows"] is not None:
        cfg["max_rows"] = _int("max_rows", cfg["max_rows"], 1)
    features = cfg["features"]
    if features is not None:
        if isinstance(features, str) or not isinstance(features, Sequence) or not features:
            raise ConfigError(f"config key 'features' must be a non-empty list of feature names, got {features!r}")
        names = [str(f) for f in features]
        if len(set(names)) != len(names):
            raise ConfigError("config key 'features' lists a feature twice")
        cfg["features"] = names
    return cfg


def resolve_accelerator(accelerator: str) -> str:
    """``"cpu"`` or ``"gpu"`` for a config value; ``"gpu"`` without CUDA raises one line."""
    _choice("accelerator", accelerator, ACCELERATORS)
    if accelerator == "gpu" and not torch.cuda.is_available():
        raise ConfigError(
            "config key 'accelerator' = 'gpu' but torch.cuda.is_available() is False "
            "(no CUDA device or a CPU-only torch build); use accelerator 'cpu' or 'auto' to train on the CPU"
        )
    if accelerator == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    return accelerator


# --------------------------------------------------------------------------- sync-free losses


class EngineLoss:
    """A loss of :mod:`hepchain.ml.losses` applied to ``(pred, batch)`` without host syncs.

    The loss is called with ``check=False``: its value checks (which read the
    tensors on the host every call) are done once on the whole table when it
    is loaded.  ``options`` are the keyword parameters of the loss function
    (checked against its signature and validated once by calling it on a tiny
    CPU example, so bad values raise its own :class:`ConfigError`).
    """

    name: str = ""
    #: Arguments of the loss function that come from the batch, not from the config.
    data_args: tuple[str, ...] = ("pred", "target", "weight", "check")
    #: True when the loss divides by the target (checked once on loading).
    positive_target: bool = False
    classification: bool = False

    def __init__(self, **options: Any) -> None:
        self.original = L.get_loss(self.name)
        params = inspect.signature(self.original).parameters
        allowed = [p for p in params if p not in self.data_args]
        for key in options:
            if key not in allowed:
                raise ConfigError(
                    f"loss option '{key}' is unknown for loss '{self.name}' (allowed: {', '.join(allowed) or 'none'})"
                )
        missing = [p for p in allowed if params[p].default is inspect.Parameter.empty and p not in options]
        if missing:
            raise ConfigError(f"loss '{self.name}' needs the option '{missing[0]}'")
        self.options = {p: options.get(p, params[p].default) for p in allowed}
        self._validate()

    def n_outputs(self, n_targets: int) -> int:
        """Network outputs for ``n_targets`` target columns."""
        return n_targets

    def _validate(self) -> None:
        pred, target = torch.full((4, 1), 2.0), torch.full((4, 1), 1.5)
        self.original(pred, target, weight=torch.ones(4), **self.options)

    def __call__(self, pred: Tensor, batch: Batch) -> Tensor:
        """The scalar loss of a batch: ``pred`` ``(N, n_outputs)``, ``batch`` with ``target``, ``weight`` (+ aux)."""
        return self.original(pred, batch["target"], weight=batch["weight"], check=False, **self.options)


class _WeightedCrossEntropy(EngineLoss):
    name = "weighted_cross_entropy"
    data_args = ("logits", "target", "weight")
    classification = True

    def _validate(self) -> None:
        pass

    def n_outputs(self, n_targets: int) -> int:
        raise ConfigError("weighted_cross_entropy: the number of classes comes from the labels")

    def __call__(self, pred: Tensor, batch: Batch) -> Tensor:
        return L.weighted_cross_entropy(pred.float(), batch["target"], batch["weight"])


class _RecoilBiasPenalty(EngineLoss):
    name = "recoil_bias_penalty"

    def _validate(self) -> None:
        self.original(torch.ones(4, 2), torch.full((4, 2), 3.0), weight=torch.ones(4), **self.options)

    def __call__(self, pred: Tensor, batch: Batch) -> Tensor:
        if pred.shape[-1] != 2 or batch["target"].shape[-1] != 2:
            raise ConfigError("loss 'recoil_bias_penalty' needs 2 targets (the recoil x, y) and 2 outputs")
        return super().__call__(pred, batch)


class _Mape(EngineLoss):
    name = "mape"
    positive_target = True


class _MapeSqrt(EngineLoss):
    name = "mape_sqrt"
    positive_target = True


class _MirroredBoundary(EngineLoss):
    name = "mirrored_boundary"
    positive_target = True

    def _validate(self) -> None:
        self.original(torch.full((4, 1), 60.0), torch.full((4, 1), 70.0), weight=torch.ones(4), **self.options)


class _GaussianNllAsymmetry(EngineLoss):
    name = "gaussian_nll_asymmetry"
    data_args = ("mu", "sigma", "target", "pt_reco", "pairs", "weight", "check")

    def n_outputs(self, n_targets: int) -> int:
        if n_targets != 1:
            raise ConfigError(f"loss 'gaussian_nll_asymmetry' needs exactly one target, got {n_targets}")
        return 2

    def _validate(self) -> None:
        ones = torch.ones(4)
        pairs = torch.tensor([[0, 1], [2, 3]])
        self.original(ones, ones, ones, ones * 100, pairs, weight=ones, **self.options)

    def __call__(self, pred: Tensor, batch: Batch) -> Tensor:
        return self.original(
            pred[:, 0], pred[:, 1], batch["target"][:, 0], batch["pt_reco"], batch["pairs"],
            weight=batch["weight"], check=False, **self.options,
        )


class _RelativeEnergy(EngineLoss):
    name = "relative_energy"
    data_args = ("pred", "target", "is_data", "weight", "check")
    positive_target = True
    # every row is an MC row (is_data None): the data part of the loss is 0


#: The engine's loss adapters by name (every loss of :data:`hepchain.ml.losses.LOSSES`).
ENGINE_LOSSES: dict[str, type[EngineLoss]] = {
    cls.name: cls
    for cls in (
        _WeightedCrossEntropy,
        _RecoilBiasPenalty,
        _Mape,
        _MapeSqrt,
        _MirroredBoundary,
        _GaussianNllAsymmetry,
        _RelativeEnergy,
    )
}


def make_loss(config: Mapping[str, Any]) -> EngineLoss:
    """The sync-free loss for ``{"name": ..., <options>}``; unknown names or options raise :class:`ConfigError`."""
    options = dict(config)
    name = options.pop("name", None)
    L.get_loss(name)  # unknown name: ConfigError with the allowed names
    return ENGINE_LOSSES[name](**options)


# --------------------------------------------------------------------------- metrics


def _wstats(x: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """Weighted mean and standard deviation (weights >= 0)."""
    total = w.sum().clamp(min=1e-30)
    mean = (w * x).sum() / total
    var = (w * (x - mean) ** 2).sum() / total
    return mean, var.clamp(min=0).sqrt()


def _quantile(x: Tensor, q: float) -> Tensor:
    """Linear-interpolation quantile by sorting (no size limit, unlike ``torch.quantile``)."""
    s = x.sort().values
    pos = q * (s.numel() - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, s.numel() - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def weighted_auc(score: Tensor, is_signal: Tensor, weight: Tensor) -> float:
    """Weighted ROC AUC (negative weights clipped to 0, ties grouped); NaN without both classes."""
    order = score.argsort(descending=True)
    s, sig, w = score[order], is_signal[order], weight[order].clamp(min=0).double()
    tp = (w * sig).cumsum(0)
    fp = (w * ~sig).cumsum(0)
    last = torch.ones_like(s, dtype=torch.bool)
    last[:-1] = s[:-1] != s[1:]
    zero = torch.zeros(1, dtype=tp.dtype, device=tp.device)
    tp, fp = torch.cat([zero, tp[last]]), torch.cat([zero, fp[last]])
    if not (float(tp[-1]) > 0 and float(fp[-1]) > 0):
        return float("nan")
    return float(torch.trapezoid(tp / tp[-1], fp / fp[-1]))


def study_metrics(study: str, out: Mapping[str, Tensor], prefix: str = "val_") -> dict[str, float]:
    """Metrics of the validation (or test) set, vectorised; ``out`` has ``pred``, ``target``, ``weight`` (+ ``asymmetry``).

    recoil: ``response`` = sum w u_par / sum w pT(W) and ``sigma_uperp`` (weighted
    std of u_perp) of the predicted recoil, projected on the true W direction
    (rows with pT(W) >= 1 GeV); ditau: ``mass_resolution`` / ``mass_bias``,
    weighted std / mean of (m_pred - m_true) / m_true; jets: ``calib_mean`` and
    ``calib_std`` of the predicted calibration mu, ``asym_width`` the std of
    the dijet asymmetry of the calibrated jets over the pairs; electrons:
    ``eiqr`` = IQR / 1.349 of E_pred / E_true and ``median_response``; vh:
    ``auc`` of class 0 against the rest.  Negative weights count as 0 here.
    """
    pred, target = out["pred"].double(), out["target"]
    w = out["weight"].double().clamp(min=0)
    result: dict[str, Tensor | float] = {}
    if study == "recoil":
        t = target.double()
        pt = t.norm(dim=1)
        valid = (pt >= L.RECOIL_MIN_PT).double() * w
        e = t / pt.clamp(min=1e-12).unsqueeze(1)
        u_par = (pred * e).sum(dim=1)
        u_perp = pred[:, 0] * e[:, 1] - pred[:, 1] * e[:, 0]
        result["response"] = (valid * u_par).sum() / (valid * pt).sum().clamp(min=1e-30)
        result["sigma_uperp"] = _wstats(u_perp, valid)[1]
    elif study == "ditau":
        t = target[:, 0].double()
        mean, std = _wstats((pred[:, 0] - t) / t, w)
        result["mass_resolution"], result["mass_bias"] = std, mean
    elif study == "jets":
        mean, std = _wstats(pred[:, 0], w)
        result["calib_mean"], result["calib_std"] = mean, std
        asym = out.get("asymmetry")
        if asym is not None and asym.numel() > 1:
            result["asym_width"] = asym.double().std()
    elif study == "electrons":
        ratio = pred[:, 0] / target[:, 0].double()
        result["eiqr"] = (_quantile(ratio, 0.75) - _quantile(ratio, 0.25)) / 1.349
        result["median_response"] = _quantile(ratio, 0.5)
    elif study == "vh":
        prob = torch.softmax(pred, dim=1)[:, 0]
        result["auc"] = weighted_auc(prob, target == 0, w)
    return {f"{prefix}{k}": float(v) for k, v in result.items()}


# --------------------------------------------------------------------------- data module


@dataclass
class SplitTensors:
    """One split on its device: rows reordered as the dijet pairs (ref, probe), then the single rows."""

    tensors: dict[str, Tensor]
    n_pairs: int
    n_singles: int
    rows: np.ndarray

    @property
    def n_rows(self) -> int:
        """Rows of the split."""
        return 2 * self.n_pairs + self.n_singles


def _batch_plan(
    n_pairs: int, n_singles: int, batch_size: int, *, pair_events: bool, drop_single: bool
) -> list[tuple[int, int, int, int]]:
    """``(pair_start, pair_stop, single_start, single_stop)`` of each batch (host-side, once per split)."""
    if pair_events and n_pairs:
        n_batches = max(1, math.ceil((2 * n_pairs + n_singles) / batch_size))
        per_pair, per_single = math.ceil(n_pairs / n_batches), math.ceil(n_singles / n_batches)
        plan = [
            (
                min(i * per_pair, n_pairs),
                min((i + 1) * per_pair, n_pairs),
                min(i * per_single, n_singles),
                min((i + 1) * per_single, n_singles),
            )
            for i in range(n_batches)
        ]
    else:
        plan = [(0, 0, s, min(s + batch_size, n_singles)) for s in range(0, n_singles, batch_size)]
    sizes = [2 * (p1 - p0) + (s1 - s0) for p0, p1, s0, s1 in plan]
    return [b for b, n in zip(plan, sizes, strict=True) if n > (1 if drop_single else 0)]


class DeviceBatches:
    """Iterable of batch dicts over a :class:`SplitTensors` already on its device.

    With ``shuffle`` the pairs and the single rows are permuted every pass
    with a generator seeded from ``(seed, epoch)`` (``epoch_fn`` supplies the
    epoch, else passes are counted); batches are gathered with
    ``index_select``.  Unshuffled batches of one kind of row are slices
    (views).  The number and composition of batches are fixed on the host,
    so iterating never waits for the device.
    """

    def __init__(
        self,
        split: SplitTensors,
        batch_size: int,
        *,
        shuffle: bool = False,
        drop_single: bool = False,
        seed: int = 0,
        epoch_fn: Callable[[], int] | None = None,
        pair_events: bool = False,
    ) -> None:
        self.split = split
        self.shuffle = shuffle
        self.seed = int(seed)
        self.epoch_fn = epoch_fn
        self.pair_events = pair_events
        self.plan = _batch_plan(
            split.n_pairs, split.n_singles, int(batch_size), pair_events=pair_events, drop_single=drop_single
        )
        self._passes = 0
        self.device = next(iter(split.tensors.values())).device
        max_pairs = max((p1 - p0 for p0, p1, _, _ in self.plan), default=0)
        self._pair_template = torch.arange(2 * max_pairs, device=self.device).reshape(-1, 2)
        self._two = torch.arange(2, device=self.device)

    def __len__(self) -> int:
        return len(self.plan)

    @property
    def n_rows(self) -> int:
        """Rows served per pass."""
        return sum(2 * (p1 - p0) + (s1 - s0) for p0, p1, s0, s1 in self.plan)

    def __iter__(self) -> Iterator[Batch]:
        epoch = self.epoch_fn() if self.epoch_fn is not None else self._passes
        self._passes += 1
        split = self.split
        base = 2 * split.n_pairs
        perm_pairs = perm_singles = None
        if self.shuffle:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(epoch_seed(self.seed, epoch))
            perm_pairs = torch.randperm(split.n_pairs, generator=generator, device=self.device)
            perm_singles = torch.randperm(split.n_singles, generator=generator, device=self.device)
        for p0, p1, s0, s1 in self.plan:
            if perm_pairs is None or perm_singles is None:
                if p1 == p0 or s1 == s0:
                    start, stop = (2 * p0, 2 * p1) if p1 > p0 else (base + s0, base + s1)
                    batch = {k: t[start:stop] for k, t in split.tensors.items()}
                else:
                    index = torch.cat(
                        [
                            torch.arange(2 * p0, 2 * p1, device=self.device),
                            torch.arange(base + s0, base + s1, device=self.device),
                        ]
                    )
                    batch = {k: t.index_select(0, index) for k, t in split.tensors.items()}
            else:
                parts = []
                if p1 > p0:
                    parts.append((perm_pairs[p0:p1].unsqueeze(1) * 2 + self._two).reshape(-1))
                if s1 > s0:
                    parts.append(perm_singles[s0:s1] + base)
                index = parts[0] if len(parts) == 1 else torch.cat(parts)
                batch = {k: t.index_select(0, index) for k, t in split.tensors.items()}
            if self.pair_events:
                batch["pairs"] = self._pair_template[: p1 - p0]
            yield batch


def _indexed(device: torch.device) -> torch.device:
    """``cuda`` as ``cuda:<current>`` (what tensors report), so that devices compare equal."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


class DeviceDataModule(LightningDataModule):
    """Serve a :class:`StudyTensors` from its training device, split by ``fold``.

    ``splits`` maps ``"train"``, ``"val"`` (and optionally ``"test"``) to row
    indices of ``tensors`` (see :meth:`from_fold`).  ``weight`` (``(N,)``)
    replaces the table's weights (e.g. class-balanced weights for vh).
    ``pair_events`` (default: study ``jets``) keeps the two jets of an event
    together and adds ``"pairs"`` to each batch.  Everything moves to the
    device once, in :meth:`setup` (the trainer's root device when attached,
    else ``device``, else CUDA if available, else CPU).
    """

    def __init__(
        self,
        tensors: StudyTensors,
        splits: Mapping[str, np.ndarray],
        *,
        batch_size: int,
        seed: int = 0,
        weight: np.ndarray | Tensor | None = None,
        device: str | torch.device | None = None,
        pair_events: bool | None = None,
    ) -> None:
        super().__init__()
        if batch_size < 2:
            raise ConfigError(f"config key 'batch_size' must be >= 2 (batch norm), got {batch_size}")
        self.study_tensors = tensors
        self.splits = {k: np.asarray(v, dtype=np.int64) for k, v in splits.items()}
        for name in ("train", "val"):
            if name not in self.splits:
                raise ValueError(f"splits need '{name}' rows")
        if self.splits["train"].size < 2:
            raise EmptySelectionError(
                f"{tensors.source}: training needs at least 2 rows, got {self.splits['train'].size}"
            )
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.pair_events = tensors.study == "jets" if pair_events is None else bool(pair_events)
        self.weight = tensors.weight if weight is None else torch.as_tensor(weight, dtype=torch.float32)
        if self.weight.shape != tensors.weight.shape:
            raise ValueError(f"weight has shape {tuple(self.weight.shape)}, expected {tuple(tensors.weight.shape)}")
        for name in ("train", "val"):
            total = float(self.weight[torch.from_numpy(self.splits[name])].sum())
            if not total > 0:
                raise HepchainError(
                    f"{tensors.source}: the {name} rows' weights sum to {total:g}; the total must be > 0"
                )
        self._device = None if device is None else _indexed(torch.device(device))
        self._on_device: dict[str, SplitTensors] = {}
        self._passes = 0

    @classmethod
    def from_fold(cls, tensors: StudyTensors, fold: int, n_folds: int, **kwargs: Any) -> DeviceDataModule:
        """Split by the ``fold`` column as :func:`hepchain.ml.train.split_indices` (test = fold, val = fold + 1)."""
        train, val, test = split_indices(tensors.fold, fold, n_folds)
        return cls(tensors, {"train": train, "val": val, "test": test}, **kwargs)

    @property
    def device(self) -> torch.device:
        """Device the tensors live (or will live) on."""
        if self.trainer is not None:
            return _indexed(self.trainer.strategy.root_device)
        if self._device is not None:
            return self._device
        return _indexed(torch.device("cuda" if torch.cuda.is_available() else "cpu"))

    def _gather(self, index: np.ndarray, device: torch.device) -> SplitTensors:
        t = self.study_tensors
        pairs = np.zeros((0, 2), dtype=np.int64)
        singles = index
        if self.pair_events and len(t.pairs):
            member = np.zeros(t.n_rows, dtype=bool)
            member[index] = True
            pairs = t.pairs[member[t.pairs[:, 0]] & member[t.pairs[:, 1]]]
            paired = np.zeros(t.n_rows, dtype=bool)
            paired[pairs.reshape(-1)] = True
            singles = index[~paired[index]]
        order = np.concatenate([pairs.reshape(-1), singles]).astype(np.int64)
        rows = torch.from_numpy(order)
        sources: dict[str, Tensor] = {**t.inputs, "target": t.target, "weight": self.weight, **t.aux}
        tensors = {k: v.index_select(0, rows).to(device) for k, v in sources.items()}
        return SplitTensors(tensors, len(pairs), len(singles), order)

    def setup(self, stage: str | None = None) -> None:
        """Move every split to the device once."""
        device = self.device
        if self._on_device and next(iter(self._on_device.values())).tensors["weight"].device == device:
            return
        self._on_device = {name: self._gather(index, device) for name, index in self.splits.items()}

    def split(self, name: str) -> SplitTensors:
        """The device tensors of split ``name``."""
        if not self._on_device:
            self.setup()
        if name not in self._on_device:
            raise ValueError(f"no '{name}' rows were given to the data module")
        return self._on_device[name]

    def _current_epoch(self) -> int:
        if self.trainer is not None:
            return int(self.trainer.current_epoch)
        self._passes += 1
        return self._passes - 1

    def batches(self, name: str, *, shuffle: bool = False) -> DeviceBatches:
        """Batches of split ``name`` (shuffled per epoch and without one-row batches for training)."""
        return DeviceBatches(
            self.split(name),
            self.batch_size,
            shuffle=shuffle,
            drop_single=shuffle,
            seed=self.seed,
            epoch_fn=self._current_epoch if shuffle else None,
            pair_events=self.pair_events,
        )

    def train_dataloader(self) -> DeviceBatches:  # type: ignore[override]
        """Shuffled training batches."""
        return self.batches("train", shuffle=True)

    def val_dataloader(self) -> DeviceBatches:  # type: ignore[override]
        """Validation batches in order."""
        return self.batches("val")

    def test_dataloader(self) -> DeviceBatches:  # type: ignore[override]
        """Test batches in order."""
        return self.batches("test")

    def predict_dataloader(self) -> DeviceBatches:  # type: ignore[override]
        """The test batches, for ``Trainer.predict``."""
        return self.batches("test")


# --------------------------------------------------------------------------- model


class OutputScale(nn.Module):
    """``y = x * scale + offset`` per output column (regression targets back to physical units)."""

    offset: Tensor
    scale: Tensor

    def __init__(self, n_outputs: int) -> None:
        super().__init__()
        self.register_buffer("offset", torch.zeros(n_outputs))
        self.register_buffer("scale", torch.ones(n_outputs))

    def forward(self, x: Tensor) -> Tensor:
        """Scaled outputs ``(N, n_outputs)``."""
        return x * self.scale + self.offset


class InferenceModel(nn.Module):
    """Raw features to predictions: standardisation, network, output scale (softmax for a classifier)."""

    def __init__(self, preprocess: Standardize, network: nn.Module, output: OutputScale, softmax: bool) -> None:
        super().__init__()
        self.input_names: tuple[str, ...] = tuple(network.input_names)
        self.preprocess = preprocess
        self.network = network
        self.output = output
        self.softmax = softmax

    def forward(self, *inputs: Tensor) -> Tensor:
        """``(N, n_outputs)`` predictions (probabilities for a classifier)."""
        y = self.output(self.network(*self.preprocess(*inputs)))
        return torch.softmax(y, dim=1) if self.softmax else y


def _network_inputs(study: str, spec: FeatureSpec, network: Mapping[str, Any]) -> tuple[str, ...]:
    """The input names of a network config on ``spec`` (built once with 2 outputs, then dropped)."""
    options = dict(network)
    kind = options.pop("kind")
    return tuple(build_network(kind, spec, 2, **options).input_names)


class StudyModule(LightningModule):
    """Standardize -> network -> OutputScale of one study, with its loss and metrics.

    All arguments are plain values (saved as hyper-parameters, so
    ``StudyModule.load_from_checkpoint`` rebuilds the model; the fitted
    statistics are buffers in the state dict): ``sizes`` and
    ``feature_names`` select the spec (a subset of the study's spec for
    ablations), ``network`` and ``loss`` are the resolved configs.
    """

    def __init__(
        self,
        study: str,
        n_outputs: int,
        network: Mapping[str, Any],
        loss: Mapping[str, Any],
        lr: float = 1e-3,
        sizes: Mapping[str, int] | None = None,
        feature_names: Sequence[str] | None = None,
        target_names: Sequence[str] = (),
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(
            {
                "study": study,
                "n_outputs": int(n_outputs),
                "network": _plain(dict(network)),
                "loss": _plain(dict(loss)),
                "lr": float(lr),
                "sizes": dict(sizes or {}),
                "feature_names": list(feature_names) if feature_names is not None else None,
                "target_names": list(target_names),
                "compile": bool(compile),
            }
        )
        self.study = check_study(study)
        spec = study_spec(study, **dict(sizes or {}))
        if feature_names is not None and list(feature_names) != spec.names:
            spec = spec.subset(list(feature_names))
        self.spec = spec
        options = dict(network)
        kind = options.pop("kind")
        self.network = build_network(kind, spec, int(n_outputs), **options)
        self.input_names: tuple[str, ...] = tuple(self.network.input_names)
        self.preprocess = Standardize.for_spec(spec, self.input_names)
        self.output = OutputScale(int(n_outputs))
        self.loss_fn = make_loss(loss)
        self.lr = float(lr)
        self.n_outputs = int(n_outputs)
        self._step: Callable[[Batch], tuple[Tensor, Tensor]] = (
            torch.compile(self._loss_and_output) if compile else self._loss_and_output
        )
        self._train_sums: Tensor | None = None
        self._val_parts: list[dict[str, Tensor]] = []

    # -- model

    def forward(self, *inputs: Tensor) -> Tensor:
        """Raw inputs to training-space outputs (physical units; logits for a classifier)."""
        return self.output(self.network(*self.preprocess(*inputs)))

    def inference_model(self) -> InferenceModel:
        """The exported model (shares this module's layers): + softmax for a classifier."""
        return InferenceModel(self.preprocess, self.network, self.output, self.loss_fn.classification)

    def fit_scalers(self, tensors: StudyTensors, train_rows: np.ndarray, *, scale_targets: bool = True) -> StudyModule:
        """Fit the input standardisation (and, for a regression, the output scale) on the training rows."""
        self.preprocess.fit(tensors.inputs, train_rows)
        if self.loss_fn.classification or not scale_targets:
            return self
        target = tensors.target[torch.as_tensor(train_rows)].double()
        mean, std = target.mean(dim=0), target.std(dim=0, unbiased=False)
        std = torch.where(std > 0, std, torch.ones_like(std))
        with torch.no_grad():
            if isinstance(self.loss_fn, _GaussianNllAsymmetry):
                self.output.offset.copy_(torch.stack([mean[0], torch.zeros_like(mean[0])]).float())
                self.output.scale.copy_(torch.stack([std[0], std[0]]).float())
            else:
                self.output.offset.copy_(mean.float())
                self.output.scale.copy_(std.float())
        return self

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam with the configured learning rate."""
        return torch.optim.Adam(self.parameters(), lr=self.lr)

    # -- steps

    def _loss_and_output(self, batch: Batch) -> tuple[Tensor, Tensor]:
        pred = self(*(batch[name] for name in self.input_names))
        return self.loss_fn(pred, batch), pred

    def on_train_epoch_start(self) -> None:
        """Reset the epoch's device-side loss sums."""
        self._train_sums = torch.zeros(2, device=self.device)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        """Loss of one batch; the weighted sum is accumulated on the device (no host sync)."""
        loss, _ = self._step(batch)
        weight_sum = batch["weight"].sum()
        sums = torch.stack([loss.detach().float() * weight_sum, weight_sum])
        self._train_sums = sums if self._train_sums is None else self._train_sums + sums
        return loss

    def on_train_epoch_end(self) -> None:
        """Log the epoch's weighted mean training loss."""
        if self._train_sums is not None:
            self.log("train_loss", self._train_sums[0] / self._train_sums[1], on_epoch=True, prog_bar=True)

    def on_validation_epoch_start(self) -> None:
        """Reset the collected validation outputs."""
        self._val_parts = []

    def evaluation_part(self, batch: Batch) -> dict[str, Tensor]:
        """Per-batch loss sums and the tensors :func:`study_metrics` needs (eval mode expected)."""
        loss, pred = self._step(batch)
        weight = batch["weight"]
        weight_sum = weight.sum()
        part = {
            "sums": torch.stack([loss.detach().float() * weight_sum, weight_sum]),
            "pred": pred.detach().float(),
            "target": batch["target"],
            "weight": weight,
        }
        if "pairs" in batch and "pt_reco" in batch:
            pt = pred[:, 0].detach().float() * batch["pt_reco"]
            ref, probe = pt[batch["pairs"][:, 0]], pt[batch["pairs"][:, 1]]
            part["asymmetry"] = (ref - probe) / (0.5 * (ref + probe))
        return part

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        """Collect the batch's loss sums and outputs."""
        self._val_parts.append(self.evaluation_part(batch))

    def summarize(self, parts: Sequence[Mapping[str, Tensor]], prefix: str = "val_") -> dict[str, float]:
        """``<prefix>loss`` (weighted over batches) and the study metrics of collected parts."""
        if not parts:
            return {}
        sums = torch.stack([p["sums"] for p in parts]).sum(dim=0)
        merged = {k: torch.cat([p[k] for p in parts]) for k in parts[0] if k != "sums"}
        return {f"{prefix}loss": float(sums[0] / sums[1]), **study_metrics(self.study, merged, prefix)}

    def on_validation_epoch_end(self) -> None:
        """Log ``val_loss`` and the study metrics over the whole validation set."""
        values = self.summarize(self._val_parts)
        self._val_parts = []
        for key, value in values.items():
            self.log(key, value, on_epoch=True, prog_bar=key == "val_loss")

    def predict_step(self, batch: Batch, batch_idx: int) -> Tensor:
        """Predictions (probabilities for a classifier) of a batch dict."""
        return self.inference_model()(*(batch[name] for name in self.input_names))

    @torch.no_grad()
    def predict(self, inputs: Mapping[str, np.ndarray | Tensor], batch_size: int = 65536) -> np.ndarray:
        """Predictions ``(N, n_outputs)`` of raw ``inputs`` (name -> array), in eval mode, batched."""
        model = self.inference_model()
        was_training = self.training
        self.eval()
        try:
            tensors = []
            for name in self.input_names:
                value = inputs[name]
                t = (value if isinstance(value, Tensor) else torch.from_numpy(np.asarray(value))).to(self.device)
                tensors.append(t if t.dtype == torch.bool else t.float())
            n = int(tensors[0].shape[0])
            parts = [model(*(t[i : i + batch_size] for t in tensors)).float().cpu() for i in range(0, n, batch_size)]
            return torch.cat(parts).numpy() if parts else np.zeros((0, self.n_outputs), dtype=np.float32)
        finally:
            self.train(was_training)


@torch.no_grad()
def evaluate(module: StudyModule, data: DeviceDataModule, split: str = "test") -> dict[str, float]:
    """``<split>_loss`` and the study metrics of ``module`` on a split of ``data`` (eval mode)."""
    was_training = module.training
    module.eval()
    try:
        parts = [module.evaluation_part(batch) for batch in data.batches(split)]
    finally:
        module.train(was_training)
    return module.summarize(parts, prefix=f"{split}_")


# --------------------------------------------------------------------------- trainer


def _batch_rows(batch: Any) -> int:
    """Rows of a batch dict (its ``weight``), of a tuple batch (its first tensor) or of a tensor."""
    if isinstance(batch, Mapping):
        return int(batch["weight"].shape[0])
    if isinstance(batch, (list, tuple)):
        return int(batch[0].shape[0])
    return int(batch.shape[0])


class ThroughputCallback(Callback):
    """Training rows per second over the training batches of every epoch (validation excluded).

    The clock stops after the last training batch of an epoch, with one
    device synchronisation there (once per epoch).
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.rows = 0
        self._start = 0.0

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Start the epoch's clock."""
        self._start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Count the rows; stop the clock after the epoch's last batch."""
        self.rows += _batch_rows(batch)
        if batch_idx + 1 == trainer.num_training_batches:
            if pl_module.device.type == "cuda":
                torch.cuda.synchronize(pl_module.device)
            self.seconds += time.perf_counter() - self._start

    @property
    def samples_per_s(self) -> float:
        """Rows per second so far (NaN before the first epoch)."""
        return self.rows / self.seconds if self.seconds > 0 else float("nan")


def make_trainer(
    config: Mapping[str, Any],
    out_dir: str | Path,
    *,
    log_dir: str | Path | None = None,
    callbacks: Sequence[Callback] = (),
    **overrides: Any,
) -> Trainer:
    """The Lightning ``Trainer`` of a (partial) engine config.

    Keys used (defaults of :data:`COMMON_DEFAULTS`): ``accelerator``,
    ``precision``, ``max_epochs``, ``patience``, ``seed``, ``fold``,
    ``progress_bar``; any other known key is accepted and ignored, an unknown
    one raises :class:`ConfigError`.  Early stopping and a best-``val_loss``
    checkpoint (``out_dir/checkpoints/best.ckpt``), CSV and TensorBoard
    loggers under ``log_dir`` (default ``out_dir``), one device, seeded with
    ``lightning.seed_everything(seed + fold)``, deterministic algorithms
    (warn-only on the GPU).  ``overrides`` go to ``Trainer`` (e.g.
    ``fast_dev_run=True``).
    """
    unknown = [k for k in config if k not in CONFIG_KEYS]
    if unknown:
        raise ConfigError(f"config key '{unknown[0]}' is unknown (allowed: {', '.join(CONFIG_KEYS)})")
    cfg = {**COMMON_DEFAULTS, **dict(config)}
    accelerator = resolve_accelerator(cfg["accelerator"])
    precision = _choice("precision", cfg["precision"], PRECISIONS)
    max_epochs = _int("max_epochs", cfg["max_epochs"], 1)
    patience = _int("patience", cfg["patience"], 0)
    progress = _bool("progress_bar", cfg["progress_bar"])
    lightning.seed_everything(int(cfg["seed"]) + int(cfg["fold"]), workers=True, verbose=False)
    out_dir = Path(out_dir)
    log_dir = Path(log_dir) if log_dir is not None else out_dir
    checkpoint = ModelCheckpoint(
        dirpath=out_dir / "checkpoints",
        filename="best",
        monitor="val_loss",
        mode="min",
        save_top_k=1,
        auto_insert_metric_name=False,
        enable_version_counter=False,
    )
    options: dict[str, Any] = {
        "accelerator": accelerator,
        "devices": 1,
        "precision": precision,
        "max_epochs": max_epochs,
        "deterministic": True if accelerator == "cpu" else "warn",
        "callbacks": [EarlyStopping(monitor="val_loss", mode="min", patience=patience), checkpoint, *callbacks],
        "logger": [CSVLogger(log_dir, name="logs"), TensorBoardLogger(log_dir, name="tensorboard")],
        "enable_progress_bar": progress,
        "enable_model_summary": progress,
        "log_every_n_steps": 1,
    }
    options.update(overrides)
    return Trainer(**options)


# --------------------------------------------------------------------------- one fold end to end


def history_from_metrics(metrics_csv: Path) -> pd.DataFrame:
    """One row per epoch (``epoch``, ``train_loss``, ``val_loss``, metrics) from Lightning's ``metrics.csv``."""
    raw = pd.read_csv(metrics_csv)
    columns = [
        "epoch",
        "train_loss",
        "val_loss",
        *sorted(c for c in raw.columns if c.startswith("val_") and c != "val_loss"),
    ]
    for column in columns:
        if column not in raw.columns:
            raw[column] = np.nan
    history = raw[columns].dropna(subset=["epoch"]).groupby("epoch", as_index=False).first()
    history = history.dropna(subset=["train_loss", "val_loss"], how="all")
    history["epoch"] = history["epoch"].astype(int)
    return history.sort_values("epoch").reset_index(drop=True)


def _write_text_atomic(path: Path, text: str) -> None:
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, np.generic):
        return _json_value(value.item())
    return value


def _n_classes(tensors: StudyTensors) -> int:
    n = int(tensors.target.max()) + 1 if tensors.n_rows else 0
    if n < 2:
        raise HepchainError(f"{tensors.source}: label column '{tensors.target_names[0]}' holds fewer than 2 classes")
    return n


def _check_for_loss(tensors: StudyTensors, loss: EngineLoss) -> None:
    """The data checks the loss functions would repeat every call, done once here."""
    if loss.classification != tensors.is_classification:
        kind = "integer labels" if loss.classification else "float targets"
        raise ConfigError(
            f"loss '{loss.name}' needs {kind}; targets {list(tensors.target_names)} of {tensors.source} are not"
        )
    if loss.positive_target:
        tensors.require_positive("target", f"loss '{loss.name}' divides by it")
    if isinstance(loss, _GaussianNllAsymmetry):
        if "pt_reco" not in tensors.aux:
            raise ConfigError(f"loss '{loss.name}' needs the dijet columns of study 'jets', not '{tensors.study}'")
        tensors.require_positive("pt_reco", "the calibrated pT is mu * jet_pt")


def _balanced_weight(tensors: StudyTensors, splits: Mapping[str, np.ndarray], n_classes: int) -> np.ndarray:
    """Class-balanced weights of the training and validation rows (as :mod:`hepchain.ml.train`), raw elsewhere."""
    w = tensors.weight.numpy().astype(np.float64)
    y = tensors.target.numpy()
    out = w.copy()
    for name in ("train", "val"):
        index = splits[name]
        out[index] = L.class_balanced_weights(w[index], y[index], n_classes)
    return out.astype(np.float32)


def _n_folds(cfg: Mapping[str, Any], tensors: StudyTensors) -> int:
    if cfg["n_folds"] is not None:
        n_folds = int(cfg["n_folds"])
    elif "n_folds" in tensors.metadata:
        n_folds = int(tensors.metadata["n_folds"])
    else:
        n_folds = int(tensors.fold.max()) + 1 if tensors.n_rows else 0
    outside = (tensors.fold < 0) | (tensors.fold >= n_folds)
    if outside.any():
        raise HepchainError(
            f"{tensors.source}: column 'fold' has {int(outside.sum())} values outside 0..{n_folds - 1} (n_folds {n_folds})"
        )
    return n_folds


def build_study(
    study: str, tensors: StudyTensors, cfg: Mapping[str, Any]
) -> tuple[StudyModule, DeviceDataModule, dict[str, np.ndarray]]:
    """Module and data module of one fold from loaded tensors and a resolved config (scalers fitted)."""
    loss = make_loss(cfg["loss"])
    _check_for_loss(tensors, loss)
    n_folds = _n_folds(cfg, tensors)
    train, val, test = split_indices(tensors.fold, int(cfg["fold"]), n_folds)
    splits = {"train": train, "val": val, "test": test}
    if loss.classification:
        n_outputs = _n_classes(tensors)
        weight: np.ndarray | None = _balanced_weight(tensors, splits, n_outputs)
    else:
        n_outputs = loss.n_outputs(len(tensors.target_names))
        weight = None
    seed = int(cfg["seed"]) + int(cfg["fold"])
    lightning.seed_everything(seed, workers=True, verbose=False)
    module = StudyModule(
        study,
        n_outputs,
        cfg["network"],
        cfg["loss"],
        lr=cfg["lr"],
        sizes=tensors.sizes,
        feature_names=tensors.spec.names,
        target_names=tensors.target_names,
        compile=cfg["compile"],
    )
    missing = [n for n in module.input_names if n not in tensors.inputs]
    if missing:
        raise HepchainError(f"{tensors.source}: input '{missing[0]}' of the network was not loaded")
    module.fit_scalers(tensors, train, scale_targets=cfg["scale_targets"])
    data = DeviceDataModule(tensors, splits, batch_size=cfg["batch_size"], seed=seed, weight=weight)
    return module, data, splits


def load_for_config(study: str, table_path: str | Path, cfg: Mapping[str, Any]) -> StudyTensors:
    """Load the columns a resolved config needs (the network's inputs, the targets)."""
    sizes = spec_sizes(study, table_columns(table_path))
    spec = study_spec(study, **sizes)
    if cfg.get("features") is not None:
        missing = [n for n in cfg["features"] if n not in spec.names]
        if missing:
            raise ConfigError(
                f"{table_path}: '{missing[0]}' of config key 'features' is not a feature of the {study} spec"
            )
        spec = spec.subset(cfg["features"])
    names = _network_inputs(study, spec, cfg["network"])
    return load_study_tensors(
        study, table_path, spec=spec, targets=cfg["targets"], input_names=names, max_rows=cfg["max_rows"]
    )


def train_study(
    study: str, table_path: str | Path, out_dir: str | Path, config: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Train one fold of ``study`` on the feature table ``table_path``; returns the summary.

    Writes into ``out_dir`` ``model.ckpt`` (best ``val_loss``), ``model.onnx``
    (raw features in, predictions out; checked against the checkpoint on up
    to :data:`PARITY_ROWS` held-out test rows), ``history.csv`` (one row per
    epoch) and ``summary.json``, each moved into place only after everything
    succeeded, so a failure leaves an earlier result untouched.  Lightning's
    CSV and TensorBoard logs go to ``out_dir/logs`` and ``out_dir/tensorboard``
    (a new version per run).
    """
    start = time.perf_counter()
    cfg = resolve_config(study, config)
    resolve_accelerator(cfg["accelerator"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = load_for_config(study, table_path, cfg)
    module, data, splits = build_study(study, tensors, cfg)
    work = Path(tempfile.mkdtemp(prefix=".train-", dir=out_dir))
    try:
        throughput = ThroughputCallback()
        trainer = make_trainer(cfg, work, log_dir=out_dir, callbacks=[throughput])
        fit_start = time.perf_counter()
        trainer.fit(module, datamodule=data)
        fit_seconds = time.perf_counter() - fit_start
        checkpoint = trainer.checkpoint_callback
        best_path = getattr(checkpoint, "best_model_path", "")
        if not best_path:
            raise HepchainError(f"{table_path}: no checkpoint was saved (val_loss never finite?)")
        ckpt_path = work / "model.ckpt"
        os.replace(best_path, ckpt_path)
        best_epoch = int(torch.load(ckpt_path, map_location="cpu", weights_only=False)["epoch"])
        best = StudyModule.load_from_checkpoint(ckpt_path, map_location="cpu").eval()

        test = splits["test"][:PARITY_ROWS]
        index = torch.from_numpy(test)
        parity_inputs = {n: tensors.inputs[n].index_select(0, index) for n in best.input_names}
        onnx_path = export_network(best.inference_model(), parity_inputs, work / "model.onnx")
        parity = check_onnx_parity(best.inference_model(), parity_inputs, onnx_path)

        device = data.device
        test_metrics = evaluate(best.to(device), data, "test")
        history = history_from_metrics(Path(trainer.loggers[0].log_dir) / "metrics.csv")
        history.to_csv(work / "history.csv", index=False)
        best_row = history[history["epoch"] == best_epoch]
        val_metrics = (
            {k: float(v) for k, v in best_row.iloc[0].items() if str(k).startswith("val_")} if len(best_row) else {}
        )
        summary: dict[str, Any] = {
            "study": study,
            "table": str(table_path),
            "fold": int(cfg["fold"]),
            "n_folds": int(_n_folds(cfg, tensors)),
            "rows_in_table": tensors.n_table_rows,
            "rows_used": tensors.n_rows,
            "rows_dropped_nan_target": tensors.n_dropped,
            "n_train": int(splits["train"].size),
            "n_val": int(splits["val"].size),
            "n_test": int(splits["test"].size),
            "n_pairs": len(tensors.pairs),
            "epochs_run": len(history),
            "best_epoch": best_epoch,
            "best_val_loss": float(checkpoint.best_model_score),  # type: ignore[union-attr]
            "val_metrics": val_metrics,
            "test_metrics": test_metrics,
            "onnx_parity": {"max_abs_diff": parity, "atol": PARITY_ATOL, "rtol": PARITY_RTOL, "rows": int(test.size)},
            "wall_time_s": time.perf_counter() - start,
            "fit_time_s": fit_seconds,
            "train_samples_per_s": throughput.samples_per_s,
            "device": str(device),
            "targets": list(tensors.target_names),
            "input_names": list(best.input_names),
            "sizes": tensors.sizes,
            "feature_names": tensors.spec.names,
            "n_outputs": best.n_outputs,
            "network": dict(describe(best.network)),
            "config": _plain(cfg),
        }
        _write_text_atomic(work / "summary.json", json.dumps(_json_value(summary), indent=2) + "\n")
        for name in ("model.ckpt", "model.onnx", "history.csv", "summary.json"):
            os.replace(work / name, out_dir / name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info(
        "%s fold %d: %d rows (%d dropped), best val_loss %.5g",
        study,
        cfg["fold"],
        tensors.n_rows,
        tensors.n_dropped,
        summary["best_val_loss"],
    )
    return summary


def _study_of(model_path: Path, table_path: Path, study: str | None) -> tuple[str, dict[str, Any]]:
    """The study (and the saved summary) of an exported model."""
    summary_path = model_path.parent / "summary.json"
    saved: dict[str, Any] = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    if study is None:
        study = saved.get("study")
    if study is None:
        from hepchain.features.table import read_table

        study = read_table(table_path, [])[1].get("study")
    if study is None:
        raise ConfigError(f"{model_path}: cannot tell the study (no summary.json beside it); pass study=")
    return check_study(str(study)), saved


def predict_study(
    model_path: str | Path,
    table_path: str | Path,
    *,
    study: str | None = None,
    batch_size: int = 65536,
    device: str = "auto",
    max_rows: int | None = None,
) -> np.ndarray:
    """Predictions ``(N, n_outputs)`` for every row of a feature table, from ``model.onnx`` or ``model.ckpt``.

    Rows are in table order (rows with a NaN target included: no truth is
    needed).  An ONNX model runs with ONNX Runtime (CUDA provider when
    ``device`` is not ``"cpu"`` and available); a checkpoint with torch on
    ``device`` (``"auto"``, ``"cpu"``, ``"gpu"``).  Regression outputs are in
    physical units; vh gives class probabilities.  Nothing is retrained.
    """
    model_path, table_path = Path(model_path), Path(table_path)
    accelerator = resolve_accelerator(device)
    if model_path.suffix == ".ckpt":
        if not model_path.is_file():
            raise HepchainError(f"{model_path}: checkpoint not found")
        torch_device = torch.device("cuda" if accelerator == "gpu" else "cpu")
        module = StudyModule.load_from_checkpoint(model_path, map_location=torch_device).eval()
        tensors = load_study_tensors(
            module.study,
            table_path,
            spec=module.spec,
            input_names=module.input_names,
            max_rows=max_rows,
            drop_nan_targets=False,
        )
        return module.predict(tensors.inputs, batch_size=batch_size)
    onnx = OnnxModel(model_path, cpu_only=accelerator == "cpu")
    study, saved = _study_of(model_path, table_path, study)
    spec = None
    if "sizes" in saved and "feature_names" in saved:
        spec = study_spec(study, **saved["sizes"])
        if saved["feature_names"] != spec.names:
            spec = spec.subset(saved["feature_names"])
    tensors = load_study_tensors(
        study, table_path, spec=spec, input_names=onnx.input_names, max_rows=max_rows, drop_nan_targets=False
    )
    return onnx.predict(tensors.inputs, batch_size=batch_size)


__all__ = [
    "COMMON_DEFAULTS",
    "ENGINE_LOSSES",
    "STUDIES",
    "STUDY_DEFAULTS",
    "DeviceBatches",
    "DeviceDataModule",
    "EngineLoss",
    "InferenceModel",
    "OutputScale",
    "StudyModule",
    "ThroughputCallback",
    "build_study",
    "evaluate",
    "load_for_config",
    "make_loss",
    "make_trainer",
    "predict_study",
    "resolve_accelerator",
    "resolve_config",
    "study_metrics",
    "train_study",
    "weighted_auc",
]
