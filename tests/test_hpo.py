"""Tests of hepchain.ml.hpo: the seed's search space, a tiny Optuna study, pruning, determinism, storage."""

from __future__ import annotations

import argparse
import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml

from hepchain.config import _schema, load_config
from hepchain.errors import ConfigError
from hepchain.features.vh import VH_SPEC
from hepchain.ml import hpo
from hepchain.ml.hpo import FIXED_TRAINING_KEYS, HPO_DEFAULTS, add_arguments, run, run_study, search_space, seed_point

from .helpers import ROOT

FEATURES = list(VH_SPEC.names)
CLASSES = ["VH", "ggF", "VBF", "top", "Zjets", "WW"]
#: A tiny search: 3 folds, small batches (several steps an epoch), 3 epochs a trial.
TINY: dict[str, Any] = {
    "hpo": {"n_trials": 4, "max_epochs": 3},
    "training": {"batch_size": 32, "patience": 5},
    "n_folds": 3,
    "classes": CLASSES,
    "seed": 7,
}


def make_table(n: int = 480, seed: int = 0) -> pd.DataFrame:
    """Six classes in the VH feature layout; class 0 (VH) is separated along two features."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, len(CLASSES), n)
    x = rng.normal(size=(n, len(FEATURES)))
    x[:, 0] += 4.0 * (label == 0)
    x[:, 1] -= 3.0 * (label == 0)
    x[:, 2 : 2 + len(CLASSES)] += np.eye(len(CLASSES))[label]
    table = pd.DataFrame(x * 40.0 + 100.0, columns=FEATURES)
    table["weight"] = rng.uniform(0.5, 1.5, n)
    table["label"] = label
    table["fold"] = rng.integers(0, 3, n)
    return table


def config(**hpo_overrides: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(TINY)
    cfg["hpo"].update(hpo_overrides)
    return cfg


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any], Path]:
    """The tiny study run twice with the same seed (hyperband, n_jobs=1)."""
    table = make_table()
    root = tmp_path_factory.mktemp("hpo")
    reports = []
    for k in (1, 2):
        reports.append(
            run_study(table, FEATURES, config(), out_json=root / f"run{k}" / "hpo.json", figures_dir=root / f"run{k}" / "figures")
        )
    return reports[0], reports[1], root


def test_search_space_is_the_seeds() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trials = [study.ask() for _ in range(200)]
    samples = [search_space(t) for t in trials]
    nodes = {s[f"nodes_{i}"] for s in samples for i in range(10)}
    assert nodes == set(range(10, 101, 10))  # every allowed value, nothing else
    assert all(set(s) == {*(f"nodes_{i}" for i in range(10)), "activation", "lr"} for s in samples)
    lrs = np.array([s["lr"] for s in samples])
    assert np.all((lrs >= 1e-7) & (lrs <= 1e-2))
    assert 0.3 < np.mean(lrs < 10**-4.5) < 0.7  # log-uniform: half the draws below the middle decade
    assert {s["activation"] for s in samples} == {"elu", "relu"}
    dists = trials[0].distributions
    assert dists["nodes_0"] == optuna.distributions.IntDistribution(10, 100, step=10)
    assert dists["lr"] == optuna.distributions.FloatDistribution(1e-7, 1e-2, log=True)
    assert dists["activation"] == optuna.distributions.CategoricalDistribution(["elu", "relu"])
    # the seed's best network is a point of the space
    fixed = optuna.trial.FixedTrial(seed_point())
    assert search_space(fixed) == seed_point()
    assert hpo.network_from_params(seed_point())["hidden"] == [20, 20, 40, 70, 20, 50, 40, 30, 40, 30]


def test_tiny_study_report_and_figures(two_runs: tuple[dict[str, Any], dict[str, Any], Path]) -> None:
    report, _, root = two_runs
    on_disk = json.loads((root / "run1" / "hpo.json").read_text())
    assert on_disk["best"] == report["best"]
    assert 0.5 < on_disk["best"]["value"] <= 1.0
    assert on_disk["trials"][0]["params"] == seed_point() and on_disk["trials"][0]["seed_point"]
    assert on_disk["seed_reference"]["this_run"]["trial"] == 0
    assert on_disk["seed_reference"]["slides"]["val_auc"] == 0.87
    assert on_disk["counts"]["total"] == 4 == len(on_disk["trials"])
    assert on_disk["counts"]["complete"] + on_disk["counts"]["pruned"] + on_disk["counts"]["fail"] == 4
    assert on_disk["sampler"] == {"name": "TPESampler", "seed": 7, **hpo.TPE_SETTINGS}
    assert on_disk["pruner"]["name"] == "HyperbandPruner" and on_disk["pruner"]["max_resource"] == 3
    assert on_disk["split"]["test_fold"] == 0 and on_disk["split"]["validation_fold"] == 1
    for t in on_disk["trials"]:
        assert 1 <= t["epochs_run"] <= 3 and t["duration_s"] > 0
        assert t["state"] in {"COMPLETE", "PRUNED"}
    best_values = [t["value"] for t in on_disk["trials"] if t["value"] is not None]
    assert on_disk["best"]["value"] == max(best_values)
    assert (on_disk["importance"] is None) == (on_disk["counts"]["complete"] < 3)
    for name in hpo.FIGURES:
        for ext in ("pdf", "png"):
            assert (root / "run1" / "figures" / f"{name}.{ext}").stat().st_size > 1000
    assert not list((root / "run1").rglob("*.tmp*"))


def test_same_seed_gives_the_same_trials(two_runs: tuple[dict[str, Any], dict[str, Any], Path]) -> None:
    first, second, _ = two_runs
    keys = ("number", "state", "params", "value", "best_intermediate_auc", "epochs_run")
    assert [{k: t[k] for k in keys} for t in first["trials"]] == [{k: t[k] for k in keys} for t in second["trials"]]


def test_median_pruner_prunes_a_clearly_worse_trial(tmp_path: Path) -> None:
    # trial 0: the seed's network; trial 1: the same network with lr = 1e-7 (it barely moves from its start)
    cfg = config(n_trials=2, max_epochs=4, pruner="median", n_startup_trials=1, n_warmup_steps=2)
    slow = {**seed_point(), "lr": 1e-7}
    report = run_study(make_table(), FEATURES, cfg, out_json=tmp_path / "hpo.json", figures_dir=tmp_path, enqueue=[slow])
    first, second = report["trials"]
    assert first["state"] == "COMPLETE" and first["epochs_run"] == 4
    assert second["params"]["lr"] == pytest.approx(1e-7)
    assert second["state"] == "PRUNED" and second["epochs_run"] == 2  # the first epoch the warm-up (2) allows
    assert second["best_intermediate_auc"] < first["value"]
    assert report["pruner"]["name"] == "MedianPruner" and report["counts"]["pruned"] == 1
    assert report["importance"] is None and "skipped" in report["importance_note"]


def test_a_failing_trial_is_recorded_and_the_search_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    train = hpo.train_trial

    def diverging(data: Any, params: Any, *args: Any, **kwargs: Any) -> None:
        if params["lr"] == pytest.approx(1e-2):
            raise ValueError("Input contains NaN")  # what roc_auc_score says of a diverged network
        train(data, params, *args, **kwargs)

    monkeypatch.setattr(hpo, "train_trial", diverging)
    cfg = config(n_trials=2, max_epochs=2)
    report = run_study(make_table(), FEATURES, cfg, out_json=tmp_path / "hpo.json", figures_dir=tmp_path,
                       enqueue=[{**seed_point(), "lr": 1e-2}])
    assert [t["state"] for t in report["trials"]] == ["COMPLETE", "FAIL"]
    assert report["trials"][1]["error"] == "ValueError: Input contains NaN"
    assert report["counts"]["fail"] == 1 and report["best"]["trial"] == 0


def test_journal_storage_shares_one_study_through_the_command(tmp_path: Path) -> None:
    features = tmp_path / "features.parquet"
    make_table().to_parquet(features)
    journal = tmp_path / "hpo.journal"
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    cfg = config(n_trials=2, max_epochs=2)
    reports = []
    for k in (1, 2):
        out = tmp_path / f"worker{k}.json"
        ns = parser.parse_args(
            ["--features", str(features), "--config", json.dumps(cfg), "--out", str(out),
             "--figures", str(tmp_path / f"figures{k}"), "--storage", str(journal)]
        )
        run(ns)
        reports.append(json.loads(out.read_text()))
    assert journal.exists()
    assert [t["number"] for t in reports[0]["trials"]] == [0, 1]
    assert [t["number"] for t in reports[1]["trials"]] == [0, 1, 2, 3]  # the second call continued the study
    assert reports[1]["trials"][:2] == reports[0]["trials"]
    assert sum(t["seed_point"] for t in reports[1]["trials"]) == 1  # enqueued once per study
    assert reports[1]["storage"] == str(journal)


@pytest.mark.parametrize(
    ("cfg", "key"),
    [
        ({**TINY, "hpo": {"n_trails": 5}}, "vh.hpo.n_trails"),
        ({**TINY, "training": {"batchsize": 5}}, "vh.training.batchsize"),
        ({**TINY, "hop": {}}, "'hop'"),
        ({**TINY, "hpo": {"pruner": "asha"}}, "vh.hpo.pruner"),
        ({**TINY, "hpo": {"n_trials": None}}, "vh.hpo.n_trials"),
        ({**TINY, "hpo": {"min_resource": 5, "max_epochs": 3}}, "vh.hpo.min_resource"),
    ],
)
def test_bad_config_raises_naming_the_key(tmp_path: Path, cfg: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        run_study(make_table(60), FEATURES, cfg, out_json=tmp_path / "hpo.json", figures_dir=tmp_path)
    assert not (tmp_path / "hpo.json").exists()


def test_defaults_agree_with_the_schema_and_configs_validate() -> None:
    vh = _schema()["$defs"]["vh"]["properties"]
    assert {k: v["default"] for k, v in vh["hpo"]["properties"].items()} == HPO_DEFAULTS
    assert all("default" in vh["training"]["properties"][k] for k in FIXED_TRAINING_KEYS)
    for name in ("config.yaml", "paper.yaml"):
        cfg = load_config(ROOT / "config" / name)
        assert hpo.hpo_config({**{k: cfg["vh"][k] for k in ("hpo", "training", "n_folds", "classes")}, "seed": cfg["seed"]})
    paper = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())["vh"]["hpo"]
    assert paper["n_trials"] >= 200  # the seed-like budget
    assert math.isfinite(hpo.SEED_REFERENCE["val_auc"])
