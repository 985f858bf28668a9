"""The recoil study (seed 000): metrics by hand, the classical correction, alpha, config, a small training."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from hepchain.errors import ConfigError, InputFileError
from hepchain.features.table import write_table
from hepchain.studies import recoil as R


def ev_cfg(**over: object) -> dict[str, object]:
    return {**R.resolve_config({"samples": ["w"]})["evaluation"], **over}


def test_method_metrics_by_hand() -> None:
    # W along +x with pT 10 and 20: truth recoil (-10, 0), (-20, 0); measured (-9, 2), (-16, -2)
    tx, ty = np.array([-10.0, -20.0]), np.array([0.0, 0.0])
    ux, uy = np.array([-9.0, -16.0]), np.array([2.0, -2.0])
    m = R.method_metrics(ux, uy, tx, ty, np.array([50.0, 60.0]), np.ones(2), ev_cfg(bias_pt_min=5.0))
    # u_par = -(u . e_W) = 9, 16; u_perp = u_x e_y - u_y e_x = -2, +2
    assert m["response"] == pytest.approx(25.0 / 30.0)
    assert m["bias"] == pytest.approx(1 - 25.0 / 30.0)
    assert m["sigma_uperp"] == pytest.approx(2.0)
    assert m["mean_ut"] == pytest.approx((math.hypot(9, 2) + math.hypot(16, 2)) / 2)
    assert m["bias_pt_above_5"] == pytest.approx(1 - 25.0 / 30.0)
    # W along +y: recoil (0, -10) measured (1, -11): u_par 11, u_perp = 1*1 - (-11)*0 = 1
    m2 = R.method_metrics(np.array([1.0, -1.0]), np.array([-11.0, -11.0]), np.zeros(2), np.array([-10.0, -10.0]),
                          np.ones(2), np.ones(2), ev_cfg())
    assert m2["response"] == pytest.approx(1.1)
    assert m2["sigma_uperp"] == pytest.approx(1.0)  # u_perp = +1, -1


def test_binned_bias_and_resolution() -> None:
    rng = np.random.default_rng(1)
    n = 40000
    pt = rng.uniform(12.0, 18.0, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    tx, ty = -pt * np.cos(phi), -pt * np.sin(phi)
    # response 0.9 along the W, Gaussian u_perp of 5 GeV
    par, perp = 0.9 * pt, rng.normal(0, 5.0, n)
    e = np.stack([np.cos(phi), np.sin(phi)])
    ux = -par * e[0] + perp * e[1]
    uy = -par * e[1] - perp * e[0]
    m = R.method_metrics(ux, uy, tx, ty, np.full(n, 100.0), np.ones(n), ev_cfg(pt_edges=[10.0, 15.0, 20.0]))
    for b in m["vs_pt"]:
        assert b["bias"] == pytest.approx(0.1, abs=1e-9)
        assert b["sigma_uperp"] == pytest.approx(5.0, rel=0.03)
        assert b["sigma_uperp_err"] == pytest.approx(5.0 / math.sqrt(2 * b["n"]), rel=0.05)
    assert m["max_abs_bias_bins_above_10"] == pytest.approx(0.1)


def test_auto_alpha_by_hand() -> None:
    # truth (-10, 0) and (-2, 0); u = (-8, 1) and (0, 0): MSE = ((4 + 1) + 4) / 2 / 2 = 2.25
    # r = u.y/|y|^2 = 0.8 and 0 -> <(1-r)^2> = (0.04 + 1) / 2 = 0.52
    out = R.auto_alpha(np.array([-8.0, 0.0]), np.array([1.0, 0.0]), np.array([-10.0, -2.0]), np.zeros(2), np.ones(2), 1.0)
    assert out["mse"] == pytest.approx(2.25)
    assert out["bias_term"] == pytest.approx(0.52)
    assert out["alpha"] == pytest.approx(2.25 / 0.52)
    # min_pt 5 keeps only the first row in the bias term: (1 - 0.8)^2 = 0.04
    assert R.auto_alpha(np.array([-8.0, 0.0]), np.array([1.0, 0.0]), np.array([-10.0, -2.0]), np.zeros(2), np.ones(2),
                        5.0)["bias_term"] == pytest.approx(0.04)


def test_response_correction_restores_the_scale() -> None:
    rng = np.random.default_rng(2)
    n = 50000
    pt = rng.uniform(20.0, 60.0, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    tx, ty = -pt * np.cos(phi), -pt * np.sin(phi)
    ux, uy = 0.8 * tx + rng.normal(0, 1.0, n), 0.8 * ty + rng.normal(0, 1.0, n)
    corr = R.response_correction(ux, uy, tx, ty, np.ones(n), [0, 10, 20, 30, 40, 50, 60, 80])
    assert np.asarray(corr["response"]) == pytest.approx(0.8, abs=0.002)  # the mean response per truth bin
    assert corr["pt_mean"] == pytest.approx([25, 35, 45, 55], abs=0.1)  # empty bins left out
    cx, cy = R.apply_response_correction(ux, uy, corr)
    m = R.method_metrics(cx, cy, tx, ty, np.ones(n), np.ones(n), ev_cfg(pt_edges=[20, 30, 40, 50, 60]))
    assert m["response"] == pytest.approx(1.0, abs=0.005)
    assert [b["bias"] for b in m["vs_pt"]] == pytest.approx([0, 0, 0, 0], abs=0.01)
    # by hand: f = <u_par> = (8, 16) at <pT> = (10, 20); u_T 12 -> pT 15 -> c 1.25; beyond the ends 10/8, 20/16
    hand = {"pt_mean": [10.0, 20.0], "upar_mean": [8.0, 16.0]}
    x, y = R.apply_response_correction(np.array([12.0, 4.0, 0.0]), np.array([0.0, 0.0, 40.0]), hand)
    assert x == pytest.approx([15.0, 5.0, 0.0]) and y == pytest.approx([0.0, 0.0, 50.0])


def test_bootstrap_improvement_recovers_the_width_ratio() -> None:
    rng = np.random.default_rng(3)
    n = 20000
    tx, ty = np.full(n, -20.0), np.zeros(n)
    # u_perp (the y component here, sign flipped) with widths 10 and 8: improvement 0.2
    common = rng.normal(0, 1, n)
    est = {
        "standard": (tx.copy(), 10.0 * common),
        "dnn": (tx.copy(), 8.0 * (0.8 * common + 0.6 * rng.normal(0, 1, n))),
    }
    out = R.bootstrap_improvement(est, "standard", tx, ty, np.ones(n), 100, seed=4)
    assert out["dnn"]["improvement"] == pytest.approx(0.2, abs=0.02)
    assert 0.001 < out["dnn"]["stat_err"] < 0.01  # about sigma/sqrt(2n) of a correlated ratio


def test_config_checks() -> None:
    cfg = R.resolve_config({"samples": ["w"], "n_folds": 4})
    assert cfg["folds"] == [0, 1, 2, 3] and cfg["feature_names"] == list(R.SEED_FEATURES)
    assert cfg["variants"] == {"mse": 0.0, "bias_l1": 1.0, "bias_l2": 5.0}
    assert R.resolve_config({"samples": ["w"], "features": "all"})["feature_names"] is None
    for bad, key in (
        ({"folds": [5]}, "recoil.folds"),
        ({"variants": {"a b": 1.0}}, "recoil.variants"),
        ({"variants": {"x": -1.0}}, "recoil.variants.x"),
        ({"alpha": "big"}, "recoil.alpha"),
        ({"training": {"epochs": 3}}, "recoil.training.epochs"),
        ({"evaluation": {"pt_edges": [10, 5]}}, "recoil.evaluation.pt_edges"),
        ({"features": 3}, "recoil.features"),
    ):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            R.resolve_config({"samples": ["w"], **bad})


def test_seed_features_are_in_the_spec() -> None:
    from hepchain.features.recoil import RECOIL_SPEC

    assert set(R.SEED_FEATURES) <= set(RECOIL_SPEC.names)
    assert not {"mu_px", "met_px", "tkmet_px"} & set(R.SEED_FEATURES)  # the seed uses hadronic inputs only


def synthetic_table(path: Path, n: int, seed: int = 5) -> None:
    """A recoil feature table with the seed's columns: u = 0.7 (-pT(W)) + N(0, 2), the rest small noise."""
    rng = np.random.default_rng(seed)
    pt = rng.exponential(12.0, n) + 1.0
    phi = rng.uniform(-np.pi, np.pi, n)
    tx, ty = -pt * np.cos(phi), -pt * np.sin(phi)
    cols: dict[str, np.ndarray] = {name: rng.normal(0, 0.01, n).astype(np.float32) for name in R.SEED_FEATURES}
    cols["u_x"] = (0.7 * tx + rng.normal(0, 2.0, n)).astype(np.float32)
    cols["u_y"] = (0.7 * ty + rng.normal(0, 2.0, n)).astype(np.float32)
    cols["sumet"] = rng.uniform(50, 300, n).astype(np.float32)
    cols.update(truth_ux=tx, truth_uy=ty, weight=np.ones(n), sample=np.zeros(n, np.int32),
                event=np.arange(n, dtype=np.uint64), fold=(np.arange(n) % 3).astype(np.int8))
    write_table(path, cols, {"study": "recoil", "n_folds": 3})


def test_train_and_evaluate_learn_the_response(tmp_path: Path) -> None:
    table = tmp_path / "features.parquet"
    synthetic_table(table, 12000)
    section = {
        "samples": ["w"], "n_folds": 3, "folds": [0], "variants": {"mse": 0.0, "bias_l1": 1.0},
        "features": ["u_x", "u_y", "sumet"],
        "training": {"max_epochs": 20, "patience": 20, "batch_size": 256, "accelerator": "cpu"},
        "evaluation": {"bootstrap": 20, "pt_edges": [0, 10, 20, 40]},
    }
    cfg = R.resolve_config(section)
    dirs = []
    for variant in ("mse", "bias_l1"):
        s = R.train_variant(table, tmp_path / variant, variant, 0, cfg, seed=7, progress_bar=False)
        dirs.append(tmp_path / variant)
        assert s["variant"] == variant and s["input_names"] == ["event"]
        assert s["feature_names"] == ["u_x", "u_y", "sumet"]
        if variant == "bias_l1":
            assert s["alpha_normalisation"]["alpha"] > 0
            assert s["config"]["loss"]["alpha"] == pytest.approx(s["alpha_normalisation"]["alpha"])
    report = R.evaluate(table, dirs, cfg, seed=1, out=tmp_path / "metrics.json",
                        predictions=tmp_path / "pred.parquet", figures=tmp_path / "figures")
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["n_events"] == 4000 and saved["folds_evaluated"] == [0]
    methods = saved["methods"]
    assert methods["standard"]["bias_pt_above_10"] == pytest.approx(0.3, abs=0.02)  # the built-in response 0.7
    assert abs(methods["standard_corrected"]["bias_pt_above_10"]) < 0.03  # numerical inversion: unit response
    assert abs(methods["dnn_mse_corrected"]["vs_pt"][-1]["bias"]) < 0.05
    # the network learned the 1/0.7 calibration: bias 0.3 -> about 0.05 at 20-40 GeV; below, the MSE optimum
    # shrinks towards the mean of the falling spectrum (the seed's low-pT bias)
    assert abs(methods["dnn_mse"]["vs_pt"][-1]["bias"]) < 0.1
    assert abs(methods["dnn_mse"]["bias_pt_above_10"]) < 0.15
    assert set(report["summary"]) == {"dnn_mse", "dnn_bias_l1", "dnn_mse_corrected", "dnn_bias_l1_corrected"}
    for name in ("bias_vs_pt", "uperp", "training_curves"):
        assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 1000
    # a model missing for a fold is one clear error
    with pytest.raises(InputFileError, match="variant 'bias_l1' for fold 0"):
        R.evaluate(table, dirs[:1], cfg, seed=1, out=tmp_path / "m2.json")
    assert not (tmp_path / "m2.json").exists()


def test_engine_features_subset_errors(tmp_path: Path) -> None:
    from hepchain.ml.engine import resolve_config, train_study

    table = tmp_path / "features.parquet"
    synthetic_table(table, 600)
    with pytest.raises(ConfigError, match="'features'"):
        resolve_config("recoil", {"features": "u_x"})
    with pytest.raises(ConfigError, match="'nope' of config key 'features'"):
        train_study("recoil", table, tmp_path / "m", {"features": ["u_x", "nope"], "max_epochs": 1})
