"""Hyperparameter optimisation of the VH multiclassifier with Optuna (seed 003).

The seed searched its network with Ray Tune + Hyperopt under the asynchronous
HyperBand scheduler, maximising the validation ROC AUC, over

* the nodes of each of the 10 hidden layers: 10 to 100 in steps of 10,
* the activation: ELU or ReLU,
* the learning rate: log-uniform in [1e-7, 1e-2],

with batch size 1024, Adam, batch normalisation, Gaussian noise and early
stopping fixed.  Its best network (validation AUC ~0.87 on the ATLAS samples):
nodes 20, 20, 40, 70, 20, 50, 40, 30, 40, 30, ELU, learning rate 0.00222.

Here the same space (:func:`search_space`) is searched with Optuna's TPE
sampler (the algorithm behind Hyperopt; seeded from the config ``seed``) and
a :class:`~optuna.pruners.HyperbandPruner` (default) or
:class:`~optuna.pruners.MedianPruner` (``vh.hpo.pruner``) fed with the
validation AUC of every epoch.  Every trial trains on ONE split of the k-fold
table, fold 0's split of :func:`~hepchain.ml.train.split_indices` (fold 0
held out and never used, fold 1 validates, the others train), with the
training code of the cross-training (:class:`ClassifierModule`,
:class:`TensorDataModule`, class-balanced weights, a :class:`RobustScaler`
fitted on the training rows) and the same training seed in every trial, so
trials differ by their hyperparameters only.  The objective is the best
per-epoch validation AUC (class 0 = VH against the rest, class-balanced
weights) of the trial.  The seed's network is enqueued as the first trial,
so ``hpo.json`` compares it with the search's best in the same conditions.

Parallel trials
---------------
* In one process: ``n_jobs`` threads (``vh.hpo.n_jobs``, or ``n_jobs=`` of
  :func:`run_study`) share one study; the Snakemake rule asks for
  ``n_jobs * vh.training.threads`` cores.  Trials then interleave on the
  global torch RNG: results are no longer reproducible trial by trial.
* Across processes or machines: give a storage (``vh.hpo.storage``: the path
  of an Optuna journal file, ``JournalStorage(JournalFileBackend(path))``,
  which needs a shared filesystem but no database server; a ``sqlite:///``
  or other RDB URL also works) and start more workers on the same study,
  e.g. ``python -m hepchain hpo-vh --features results/vh/features.parquet
  --config '<same JSON>' --storage results/vh/hpo.journal --out
  /tmp/worker1.json --figures /tmp/worker1`` beside the Snakemake job.  Each
  call runs ``n_trials`` more trials of the shared study (trials accumulate,
  also over re-runs, which resumes a killed search), samples with a seed
  mixed with its process id (workers must not draw the same start-up
  points) and writes a report of all trials in the storage so far.  The
  journal is not a Snakemake output (Snakemake would delete it before the
  job); remove it to start afresh.

With ``n_jobs=1`` and no storage a study is deterministic for a given seed
(same trial parameters and values).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import re
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning
import numpy as np
import optuna
import pandas as pd
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import EarlyStopping

from hepchain.errors import ConfigError, HepchainError
from hepchain.io import write_json_atomic
from hepchain.ml.datamodule import TensorDataModule
from hepchain.ml.module import ClassifierModule
from hepchain.ml.networks import VH_HIDDEN
from hepchain.ml.train import FoldData, prepare_fold

#: Number of hidden layers searched (the seed's network has 10).
N_LAYERS = 10
#: Nodes per hidden layer: 10 to 100 in steps of 10 (seed 003, backup "Hyperparameter Space").
NODES_LOW, NODES_HIGH, NODES_STEP = 10, 100, 10
#: Activations searched.
ACTIVATIONS = ("elu", "relu")
#: Learning rate range, sampled log-uniformly.
LR_LOW, LR_HIGH = 1e-7, 1e-2
#: Fold split of the search: fold 0 held out (test), fold 1 validates, the rest train.
HPO_FOLD = 0

#: The seed's best network (seed 003, "Optimized Network Structure"); AUC from its slides.
SEED_REFERENCE: dict[str, Any] = {
    "hidden": list(VH_HIDDEN),
    "activation": "elu",
    "lr": 0.00222,
    "batch_size": 1024,
    "optimizer": "Adam",
    "batch_norm": True,
    "early_stopping": True,
    "val_auc": 0.87,
    "source": "seed 003 slides: network yielding the highest validation ROC AUC (~0.87), ATLAS VH(->WW) samples",
}

#: Defaults of ``vh.hpo``, for reference: the schema (workflow/schemas/config.schema.yaml)
#: is their source, :func:`hpo_config` reads them there and a test checks they agree.
HPO_DEFAULTS: dict[str, Any] = {
    "n_trials": 30,
    "timeout_s": None,
    "max_epochs": 30,
    "pruner": "hyperband",
    "min_resource": 1,
    "reduction_factor": 3,
    "n_startup_trials": 5,
    "n_warmup_steps": 0,
    "n_jobs": 1,
    "storage": None,
    "study_name": "vh_hpo",
}
#: Keys of ``vh.training`` every trial takes as they are (``hidden``, ``activation``
#: and ``lr`` are searched, ``max_epochs`` comes from ``vh.hpo``).
FIXED_TRAINING_KEYS = ("noise_std", "batch_size", "patience", "threads")
#: Top-level keys of the config given to :func:`run_study` (the rule's ``params.config``).
CONFIG_KEYS = ("hpo", "training", "n_folds", "classes", "seed")
#: TPE settings (Optuna's defaults, spelled out for the report).
TPE_SETTINGS: dict[str, Any] = {"n_startup_trials": 10, "n_ei_candidates": 24, "multivariate": False}
#: Figure stems written under ``figures_dir``.
FIGURES = ("hpo_history", "hpo_importance")
#: Fewest complete trials for the fANOVA importances.
MIN_TRIALS_IMPORTANCE = 3

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- search space


def search_space(trial: optuna.trial.BaseTrial) -> dict[str, Any]:
    """Sample the seed's space: ``nodes_0..nodes_9``, ``activation`` and ``lr``.

    ``nodes_i`` are integers 10..100 in steps of 10, ``activation`` is
    ``"elu"`` or ``"relu"`` and ``lr`` is log-uniform in [1e-7, 1e-2].  The
    other hyperparameters (batch size, noise, batch norm, patience) are fixed
    from ``vh.training``.
    """
    params: dict[str, Any] = {
        f"nodes_{i}": trial.suggest_int(f"nodes_{i}", NODES_LOW, NODES_HIGH, step=NODES_STEP)
        for i in range(N_LAYERS)
    }
    params["activation"] = trial.suggest_categorical("activation", list(ACTIVATIONS))
    params["lr"] = trial.suggest_float("lr", LR_LOW, LR_HIGH, log=True)
    return params


def network_from_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """``{"hidden", "activation", "lr"}`` of a point of :func:`search_space`."""
    return {
        "hidden": [int(params[f"nodes_{i}"]) for i in range(N_LAYERS)],
        "activation": str(params["activation"]),
        "lr": float(params["lr"]),
    }


def seed_point() -> dict[str, Any]:
    """The seed's best network as a point of :func:`search_space` (enqueued as the first trial)."""
    point: dict[str, Any] = {f"nodes_{i}": int(n) for i, n in enumerate(SEED_REFERENCE["hidden"])}
    point["activation"] = SEED_REFERENCE["activation"]
    point["lr"] = float(SEED_REFERENCE["lr"])
    return point


# --------------------------------------------------------------------------- config


def _schema_section(name: str) -> dict[str, Any]:
    """``$defs.vh.properties.<name>`` of the config schema (``seed``: the top-level property)."""
    from hepchain.config import _schema

    schema = _schema()
    return schema["properties"]["seed"] if name == "seed" else schema["$defs"]["vh"]["properties"][name]


def _validated_section(section: Mapping[str, Any] | None, name: str) -> dict[str, Any]:
    """``vh.<name>`` with the schema's defaults filled in, validated against the schema's section."""
    import jsonschema

    if section is None:
        section = {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"config key 'vh.{name}': must be a mapping, got {type(section).__name__}")
    schema = _schema_section(name)
    allowed = sorted(schema["properties"])
    unknown = sorted(set(section) - set(allowed))
    if unknown:
        raise ConfigError(f"config key 'vh.{name}.{unknown[0]}': unknown key (allowed here: {', '.join(allowed)})")
    defaults = {key: sub["default"] for key, sub in schema["properties"].items() if "default" in sub}
    out = {**copy.deepcopy(defaults), **dict(section)}
    errors = sorted(
        # the section-level anyOf (n_trials or timeout_s) is checked with a clearer message by hpo_config
        (e for e in jsonschema.Draft202012Validator(schema).iter_errors(out) if e.absolute_path or e.validator != "anyOf"),
        key=lambda e: [str(p) for p in e.absolute_path],
    )
    if errors:
        where = ".".join(str(p) for p in errors[0].absolute_path)
        key = f"vh.{name}.{where}" if where else f"vh.{name}"
        raise ConfigError(f"config key '{key}': {errors[0].message}")
    return out


def hpo_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the config of :func:`run_study` and fill in defaults.

    ``config`` has the keys ``hpo`` (``vh.hpo``), ``training``
    (``vh.training``), ``n_folds``, ``classes`` and ``seed``, as the rule
    passes them.  An unknown key, a value of the wrong type or range, or a
    search without ``n_trials`` and ``timeout_s`` raises :class:`ConfigError`
    naming the key.
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"hpo config must be a mapping, got {type(config).__name__}")
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise ConfigError(f"config key '{unknown[0]}': unknown key (allowed here: {', '.join(CONFIG_KEYS)})")
    hpo = _validated_section(config.get("hpo"), "hpo")
    training = _validated_section(config.get("training"), "training")
    missing = [key for key in FIXED_TRAINING_KEYS if key not in training]
    if missing:
        raise ConfigError(f"config key 'vh.training.{missing[0]}': needed by the search (fixed in every trial)")
    if hpo["n_trials"] is None and hpo["timeout_s"] is None:
        raise ConfigError("config key 'vh.hpo.n_trials': null needs 'vh.hpo.timeout_s' (the search would never stop)")
    if hpo["pruner"] == "hyperband" and hpo["min_resource"] > hpo["max_epochs"]:
        raise ConfigError(
            f"config key 'vh.hpo.min_resource': {hpo['min_resource']} exceeds vh.hpo.max_epochs = {hpo['max_epochs']}"
        )
    classes = config.get("classes")
    if not isinstance(classes, Sequence) or isinstance(classes, str) or len(classes) < 2:
        raise ConfigError(f"config key 'vh.classes': a list of at least 2 class names is required, got {classes!r}")
    n_folds = config.get("n_folds", _schema_section("n_folds")["default"])
    seed = config.get("seed", _schema_section("seed")["default"])
    for key, value, low in (("vh.n_folds", n_folds, 3), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"config key '{key}': an integer >= {low} is required, got {value!r}")
    return {"hpo": hpo, "training": training, "n_folds": n_folds, "classes": list(classes), "seed": seed}


def make_pruner(hpo: Mapping[str, Any]) -> tuple[optuna.pruners.BasePruner, dict[str, Any]]:
    """The pruner of ``vh.hpo`` and its settings (for the report)."""
    if hpo["pruner"] == "hyperband":
        settings = {
            "name": "HyperbandPruner",
            "min_resource": int(hpo["min_resource"]),
            "max_resource": int(hpo["max_epochs"]),
            "reduction_factor": int(hpo["reduction_factor"]),
            "resource": "epochs",
        }
        pruner: optuna.pruners.BasePruner = optuna.pruners.HyperbandPruner(
            min_resource=settings["min_resource"],
            max_resource=settings["max_resource"],
            reduction_factor=settings["reduction_factor"],
        )
        return pruner, settings
    settings = {
        "name": "MedianPruner",
        "n_startup_trials": int(hpo["n_startup_trials"]),
        "n_warmup_steps": int(hpo["n_warmup_steps"]),
        "interval_steps": 1,
        "resource": "epochs",
    }
    return optuna.pruners.MedianPruner(
        n_startup_trials=settings["n_startup_trials"], n_warmup_steps=settings["n_warmup_steps"]
    ), settings


def open_storage(storage: str | os.PathLike[str] | optuna.storages.BaseStorage | None) -> optuna.storages.BaseStorage | None:
    """An Optuna storage from a journal-file path or an RDB URL (``None``: in memory)."""
    if storage is None or isinstance(storage, optuna.storages.BaseStorage):
        return storage
    text = os.fspath(storage)
    if "://" in text:
        return optuna.storages.RDBStorage(text)
    path = Path(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


# --------------------------------------------------------------------------- data and training




class AucPruningCallback(Callback):
    """Report ``val_auc`` to an Optuna trial after every validation epoch and prune.

    The step is the number of epochs trained.  Runs in ``on_validation_end``,
    after the module has logged the epoch's metrics; raises
    :class:`optuna.TrialPruned` when the pruner says so.  NaN AUCs (no signal
    or no background weight) are not reported.
    """

    def __init__(self, trial: optuna.Trial, monitor: str = "val_auc") -> None:
        super().__init__()
        self.trial = trial
        self.monitor = monitor
        self.epochs = 0
        self.best = float("nan")

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Report the epoch's AUC; raise :class:`optuna.TrialPruned` if the trial should stop."""
        if trainer.sanity_checking:
            return
        step = int(trainer.current_epoch) + 1
        self.epochs = step
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        auc = float(value)
        if not math.isfinite(auc):
            return
        if not auc <= self.best:  # also true while best is NaN
            self.best = auc
        self.trial.report(auc, step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {step} ({self.monitor} {auc:.4f})")


class _TrialFailed(RuntimeError):
    """A trial's training broke down (diverged, NaN outputs); the study goes on."""


def train_trial(
    data: FoldData,
    params: Mapping[str, Any],
    training: Mapping[str, Any],
    *,
    max_epochs: int,
    seed: int,
    callbacks: Sequence[Callback] = (),
) -> None:
    """Train one network of the search on ``data`` (no checkpoint, no logger, no output).

    ``params`` is a point of :func:`search_space`; batch size, noise and
    patience (early stopping on ``val_loss``) come from ``training``.  The
    data order and initial weights follow ``seed``.
    """
    net = network_from_params(params)
    lightning.seed_everything(seed, workers=True, verbose=False)
    datamodule = TensorDataModule(
        data.x, data.y, data.w, data.train_idx, data.val_idx,
        feature_names=data.feature_names, batch_size=int(training["batch_size"]), seed=seed,
    )
    module = ClassifierModule(
        n_inputs=len(data.feature_names),
        hidden=tuple(net["hidden"]),
        n_classes=data.n_classes,
        activation=net["activation"],
        noise_std=float(training["noise_std"]),
        batch_norm=True,
        lr=net["lr"],
        scaler=copy.deepcopy(data.scaler),
    )
    trainer = Trainer(
        deterministic=True,
        accelerator="auto",
        devices=1,
        max_epochs=int(max_epochs),
        callbacks=[EarlyStopping(monitor="val_loss", mode="min", patience=int(training["patience"])), *callbacks],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
    )
    trainer.fit(module, datamodule=datamodule)


def make_objective(
    data: FoldData, training: Mapping[str, Any], *, max_epochs: int, seed: int
) -> Callable[[optuna.Trial], float]:
    """The objective: train the trial's network, return its best per-epoch validation AUC."""

    def objective(trial: optuna.Trial) -> float:
        params = search_space(trial)
        reporter = AucPruningCallback(trial)
        try:
            train_trial(data, params, training, max_epochs=max_epochs, seed=seed, callbacks=[reporter])
        except (optuna.TrialPruned, HepchainError):
            raise
        except Exception as exc:  # a diverging network must not end the search
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            raise _TrialFailed(str(exc)) from exc
        finally:
            trial.set_user_attr("epochs_run", reporter.epochs)
        if not math.isfinite(reporter.best):
            trial.set_user_attr("error", "no finite val_auc in any epoch")
            raise _TrialFailed("no finite val_auc in any epoch")
        return reporter.best

    return objective


# --------------------------------------------------------------------------- report


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


def _best_intermediate(trial: optuna.trial.FrozenTrial) -> float | None:
    values = [v for v in trial.intermediate_values.values() if math.isfinite(v)]
    return max(values) if values else None


def trial_record(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """One trial of the report: number, params, value, state, epochs, duration."""
    duration = trial.duration.total_seconds() if trial.duration is not None else None
    record: dict[str, Any] = {
        "number": trial.number,
        "state": trial.state.name,
        "value": _finite(trial.value) if trial.state == optuna.trial.TrialState.COMPLETE else None,
        "best_intermediate_auc": _best_intermediate(trial),
        "epochs_run": int(trial.user_attrs.get("epochs_run", len(trial.intermediate_values))),
        "duration_s": duration,
        "params": dict(trial.params),
    }
    if "error" in trial.user_attrs:
        record["error"] = trial.user_attrs["error"]
    return record


def _is_seed_point(trial: optuna.trial.FrozenTrial) -> bool:
    point = seed_point()
    return set(trial.params) == set(point) and all(
        math.isclose(float(trial.params[k]), float(v)) if k == "lr" else trial.params[k] == v for k, v in point.items()
    )


def importances(study: optuna.Study, seed: int) -> tuple[dict[str, float] | None, str | None]:
    """fANOVA importances of the complete trials, or ``(None, why not)``."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < MIN_TRIALS_IMPORTANCE:
        return None, f"skipped: {len(complete)} complete trial(s), fANOVA needs at least {MIN_TRIALS_IMPORTANCE}"
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    try:
        values = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=seed))
    except (ValueError, RuntimeError) as exc:
        return None, f"skipped: {type(exc).__name__}: {exc}"
    return {k: float(v) for k, v in values.items()}, None


def plot_history(records: Sequence[Mapping[str, Any]], reference_auc: float, out_stem: Path) -> list[Path]:
    """Validation AUC per trial with the running best; pruned trials at their best epoch."""
    import matplotlib.pyplot as plt

    from hepchain.plots.style import save, setup

    setup()
    fig, ax = plt.subplots(figsize=(8, 5))
    complete = [r for r in records if r["state"] == "COMPLETE" and r["value"] is not None]
    pruned = [r for r in records if r["state"] == "PRUNED" and r["best_intermediate_auc"] is not None]
    failed = [r for r in records if r["state"] == "FAIL"]
    if complete:
        ax.plot([r["number"] for r in complete], [r["value"] for r in complete], "o", color="#1f77b4",
                label=f"complete ({len(complete)})")
        numbers = sorted(r["number"] for r in complete)
        by_number = {r["number"]: r["value"] for r in complete}
        running = np.maximum.accumulate([by_number[n] for n in numbers])
        ax.step(numbers, running, where="post", color="#d62728", label="running best")
    if pruned:
        ax.plot([r["number"] for r in pruned], [r["best_intermediate_auc"] for r in pruned], "x", color="grey",
                label=f"pruned ({len(pruned)}), best epoch so far")
    seed_trials = [r for r in records if r.get("seed_point")]
    if seed_trials and (seed_trials[0]["value"] or seed_trials[0]["best_intermediate_auc"]) is not None:
        r = seed_trials[0]
        ax.plot([r["number"]], [r["value"] if r["value"] is not None else r["best_intermediate_auc"]], "*",
                ms=16, color="#2ca02c", label="seed 003 network, this run")
    ax.axhline(reference_auc, ls="--", color="#2ca02c", lw=1, label=f"seed 003 slides ({reference_auc:.2f}, ATLAS samples)")
    ax.set_xlabel("trial")
    ax.set_ylabel("validation ROC AUC (VH vs rest)")
    title = "Optuna search of the VH network"
    if failed:
        title += f" ({len(failed)} failed trial(s) not shown)"
    ax.set_title(title, fontsize=11)
    ax.legend(fontsize=8, loc="lower right")
    return save(fig, out_stem)


def plot_importance(values: Mapping[str, float] | None, note: str | None, out_stem: Path) -> list[Path]:
    """Horizontal bars of the fANOVA importances (or the reason they are missing)."""
    import matplotlib.pyplot as plt

    from hepchain.plots.style import save, setup

    setup()
    fig, ax = plt.subplots(figsize=(7, 5))
    if values:
        names = sorted(values, key=lambda k: values[k])
        ax.barh(names, [values[k] for k in names], color="#1f77b4")
        ax.set_xlabel("fANOVA importance (validation AUC)")
    else:
        ax.text(0.5, 0.5, f"no importances\n{note}", ha="center", va="center", wrap=True, fontsize=10,
                transform=ax.transAxes)
        ax.set_axis_off()
    ax.set_title("Hyperparameter importance", fontsize=11)
    return save(fig, out_stem)


# --------------------------------------------------------------------------- the study


@contextmanager
def _quiet_logs() -> Iterator[None]:
    """Silence Optuna's per-trial INFO lines and Lightning's per-fit banners for a while.

    Also drops torch's ``LeafSpec`` deprecation warning, which Lightning's
    ``_pytree`` triggers once per fit (one line per trial otherwise).
    """
    names = ("lightning.pytorch", "lightning.fabric", "pytorch_lightning")
    before = {name: logging.getLogger(name).level for name in names}
    verbosity = optuna.logging.get_verbosity()
    try:
        for name in names:
            logging.getLogger(name).setLevel(logging.WARNING)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)
        for name, level in before.items():
            logging.getLogger(name).setLevel(level)


@contextmanager
def _restore_threads(n_threads: int) -> Iterator[None]:
    """Give torch back its former intra-op thread count afterwards."""
    try:
        yield
    finally:
        torch.set_num_threads(n_threads)


def _storage_name(storage: str | os.PathLike[str] | optuna.storages.BaseStorage | None) -> str | None:
    """The storage as the report names it: its path or URL (no password), a storage object's class, or None."""
    if storage is None:
        return None
    if isinstance(storage, optuna.storages.BaseStorage):
        return type(storage).__name__
    return re.sub(r"://[^/@]*@", "://***@", os.fspath(storage))


def _sampler_seed(seed: int, shared: bool, n_existing: int) -> int:
    """The TPE seed: the config seed, mixed with the process when workers share a storage."""
    if not shared:
        return int(seed)
    state = np.random.SeedSequence([int(seed), int(n_existing), os.getpid()]).generate_state(1, np.uint32)
    return int(state[0])


def _progress_line(total: int | None) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        r = trial_record(trial)
        value = r["value"] if r["value"] is not None else r["best_intermediate_auc"]
        auc = f"auc {value:.4f}" if value is not None else "auc -"
        net = network_from_params(trial.params) if len(trial.params) == N_LAYERS + 2 else None
        what = f"{net['activation']} lr {net['lr']:.2e} nodes {','.join(map(str, net['hidden']))}" if net else ""
        try:
            best = f"best {study.best_value:.4f} (trial {study.best_trial.number})"
        except ValueError:
            best = "best -"
        of = f"/{total}" if total else ""
        duration = r["duration_s"] if r["duration_s"] is not None else float("nan")
        print(
            f"hpo trial {trial.number}{of} {r['state'].lower()}: {auc}, {r['epochs_run']} epochs, {duration:.1f} s;"
            f" {what}; {best}" + (f"; {r['error']}" if "error" in r else ""),
            flush=True,
        )

    return report


def run_study(
    table: pd.DataFrame,
    feature_names: Sequence[str],
    config: Mapping[str, Any],
    *,
    out_json: str | os.PathLike[str],
    figures_dir: str | os.PathLike[str],
    storage: str | os.PathLike[str] | optuna.storages.BaseStorage | None = None,
    n_jobs: int | None = None,
    enqueue: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Search the VH network with Optuna; write ``out_json`` and the figures; return the report.

    ``table`` is the VH feature table (feature columns, ``weight``, ``label``,
    ``fold``), ``config`` holds ``hpo``, ``training``, ``n_folds``, ``classes``
    and ``seed`` (see :func:`hpo_config`).  ``storage`` (a journal-file path,
    an RDB URL or an Optuna storage; default ``vh.hpo.storage``, else in
    memory) lets several calls or processes share one study; ``n_jobs``
    (default ``vh.hpo.n_jobs``) runs trials in threads.  The seed's network is
    enqueued first (once per study), then the points of ``enqueue``, then TPE
    samples.  The report (written atomically) lists every trial of the study;
    figures ``hpo_history`` and ``hpo_importance`` (PDF and PNG) go to
    ``figures_dir``.  Raises :class:`HepchainError` when no trial completed.
    """
    cfg = hpo_config(config)
    hpo, training, seed = cfg["hpo"], cfg["training"], int(cfg["seed"])
    n_jobs = int(hpo["n_jobs"] if n_jobs is None else n_jobs)
    if n_jobs < 1:
        raise ConfigError(f"config key 'vh.hpo.n_jobs': must be >= 1, got {n_jobs}")
    storage_spec = hpo["storage"] if storage is None else storage
    storage_obj = open_storage(storage_spec)
    data = prepare_fold(table, feature_names, int(cfg["n_folds"]), len(cfg["classes"]), HPO_FOLD)
    pruner, pruner_settings = make_pruner(hpo)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(int(training["threads"]))
    start = time.perf_counter()
    with _quiet_logs(), _restore_threads(threads_before):
        n_existing = 0
        if storage_obj is not None:
            try:
                n_existing = len(optuna.load_study(study_name=hpo["study_name"], storage=storage_obj).trials)
            except KeyError:
                n_existing = 0
        sampler_seed = _sampler_seed(seed, storage_obj is not None, n_existing)
        sampler = optuna.samplers.TPESampler(seed=sampler_seed, **TPE_SETTINGS)
        study = optuna.create_study(
            study_name=hpo["study_name"], storage=storage_obj, sampler=sampler, pruner=pruner,
            direction="maximize", load_if_exists=True,
        )
        study.enqueue_trial(seed_point(), user_attrs={"seed_point": True}, skip_if_exists=True)
        for point in enqueue:
            study.enqueue_trial(dict(point), skip_if_exists=True)
        study.optimize(
            make_objective(data, training, max_epochs=int(hpo["max_epochs"]), seed=seed),
            n_trials=hpo["n_trials"],
            timeout=hpo["timeout_s"],
            n_jobs=n_jobs,
            catch=(_TrialFailed,),
            callbacks=[_progress_line(hpo["n_trials"])],
            gc_after_trial=False,
        )
    wall = time.perf_counter() - start

    trials = study.get_trials(deepcopy=False)
    records = [{**trial_record(t), "seed_point": _is_seed_point(t)} for t in trials]
    states = [t.state for t in trials]
    counts = {
        "total": len(trials),
        **{s.name.lower(): sum(st == s for st in states) for s in optuna.trial.TrialState},
    }
    if counts["complete"] == 0:
        errors = [r["error"] for r in records if "error" in r]
        raise HepchainError(
            f"hpo: none of {len(trials)} trials completed" + (f" (first error: {errors[0]})" if errors else "")
        )
    best = study.best_trial
    seed_records = [r for r in records if r["seed_point"]]
    this_run = seed_records[0] if seed_records else None
    imp, imp_note = importances(study, seed)

    figures_dir = Path(figures_dir)
    figures = [
        *plot_history(records, float(SEED_REFERENCE["val_auc"]), figures_dir / FIGURES[0]),
        *plot_importance(imp, imp_note, figures_dir / FIGURES[1]),
    ]
    report: dict[str, Any] = {
        "objective": "maximise the best per-epoch validation ROC AUC of class 0 (VH) against the rest, "
        "class-balanced weights",
        "study_name": hpo["study_name"],
        "storage": _storage_name(storage_spec),
        "seed": seed,
        "split": {
            "test_fold": HPO_FOLD,
            "validation_fold": (HPO_FOLD + 1) % int(cfg["n_folds"]),
            "n_folds": int(cfg["n_folds"]),
            "n_train": int(data.train_idx.size),
            "n_val": int(data.val_idx.size),
            "n_test_unused": int(data.test_idx.size),
        },
        "search_space": {
            "nodes_0..nodes_9": {"low": NODES_LOW, "high": NODES_HIGH, "step": NODES_STEP},
            "activation": list(ACTIVATIONS),
            "lr": {"low": LR_LOW, "high": LR_HIGH, "log": True},
        },
        "fixed": {
            "batch_size": int(training["batch_size"]),
            "noise_std": float(training["noise_std"]),
            "batch_norm": True,
            "optimizer": "Adam",
            "early_stopping": {"monitor": "val_loss", "patience": int(training["patience"])},
            "max_epochs": int(hpo["max_epochs"]),
            "threads": int(training["threads"]),
        },
        "sampler": {"name": "TPESampler", "seed": sampler_seed, **TPE_SETTINGS},
        "pruner": pruner_settings,
        "n_jobs": n_jobs,
        "budget": {"n_trials": hpo["n_trials"], "timeout_s": hpo["timeout_s"]},
        "best": {
            "trial": best.number,
            "value": _finite(best.value),
            "params": dict(best.params),
            **network_from_params(best.params),
        },
        "seed_reference": {
            "slides": dict(SEED_REFERENCE),
            "this_run": None
            if this_run is None
            else {
                "trial": this_run["number"],
                "state": this_run["state"],
                "value": this_run["value"],
                "best_intermediate_auc": this_run["best_intermediate_auc"],
                "epochs_run": this_run["epochs_run"],
            },
        },
        "counts": counts,
        "importance": imp,
        "importance_method": "fANOVA (optuna FanovaImportanceEvaluator, seeded)",
        "importance_note": imp_note,
        "trials": records,
        "wall_time_s": wall,
        "figures": [str(p) for p in figures],
    }
    write_json_atomic(report, Path(out_json))
    return report


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m hepchain hpo-vh``."""
    parser.add_argument("--features", required=True, type=Path, help="VH feature table (results/vh/features.parquet)")
    parser.add_argument("--config", required=True, help="{hpo, training, n_folds, classes, seed} as JSON")
    parser.add_argument("--out", required=True, type=Path, help="report (results/vh/hpo.json)")
    parser.add_argument("--figures", required=True, type=Path, help="folder of hpo_history / hpo_importance .pdf/.png")
    parser.add_argument("--storage", default=None,
                        help="journal file or RDB URL shared by several workers (overrides vh.hpo.storage)")
    parser.add_argument("--n-jobs", type=int, default=None, help="trials in parallel threads (overrides vh.hpo.n_jobs)")


def run(ns: argparse.Namespace) -> None:
    """Run ``hpo-vh``: read the table, search, write the report and figures, print a summary."""
    from hepchain.features.vh import VH_SPEC
    from hepchain.io import read_table

    try:
        config = json.loads(ns.config)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--config is not valid JSON: {exc}") from exc
    table = read_table(ns.features)
    report = run_study(
        table, VH_SPEC.names, config, out_json=ns.out, figures_dir=ns.figures,
        storage=ns.storage, n_jobs=ns.n_jobs,
    )
    summary = {
        "best": report["best"],
        "seed_network_this_run": report["seed_reference"]["this_run"],
        "counts": report["counts"],
        "wall_time_s": round(report["wall_time_s"], 1),
    }
    print(json.dumps(summary, indent=2))
