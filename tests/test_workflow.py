"""Workflow: lint, dry runs of every study target, bad config, and a tiny end-to-end run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from .helpers import ROOT, TINY_CONFIG

#: Every target the DAG offers so far, with the rules its dry run must schedule.
STUDY_TARGETS = {
    "results/vh/binning.json": (
        "minbias_library", "generate", "simulate", "skim_vh", "features_vh", "train_vh", "infer_vh", "binning_vh",
    ),
    "results/detector/validation.json": ("minbias_library", "generate", "simulate", "validate_detector"),
    "results/vh/hpo.json": ("minbias_library", "generate", "simulate", "skim_vh", "features_vh", "hpo_vh"),
    "results/recoil/metrics.json": (
        "minbias_library", "generate", "simulate", "skim_study", "features_study", "train_recoil", "evaluate_recoil",
    ),
    **{
        f"results/{study}/features.parquet": ("minbias_library", "generate", "simulate", "skim_study", "features_study")
        for study in ("recoil", "ditau", "jets", "electrons")
    },
}


def snakemake(*args: str, cwd: Path = ROOT, timeout: int = 1500) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HEPCHAIN_PROGRESS="0")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(cwd), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False)


def test_lint_is_clean(tmp_path: Path) -> None:
    r = snakemake("--lint", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Lints for" not in r.stdout + r.stderr


@pytest.mark.parametrize("target", STUDY_TARGETS)
def test_dry_run_default_config(tmp_path: Path, target: str) -> None:
    r = snakemake("-n", target, "--cores", "8", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    for rule in STUDY_TARGETS[target]:
        assert re.search(rf"^{rule}\s+\d+$", out, flags=re.M), (rule, out[-2000:])


def test_hpo_is_an_optional_target(tmp_path: Path) -> None:
    r = snakemake("-n", "--cores", "8", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert not re.search(r"^hpo_vh\s+\d+$", r.stdout + r.stderr, flags=re.M)


def test_paper_recoil_config_schedules_the_seed_statistics_on_a_gpu(tmp_path: Path) -> None:
    r = snakemake("-n", "results/recoil/metrics.json", "--cores", "8", "--configfile", str(ROOT / "config/paper.yaml"),
                  cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert re.search(r"^generate\s+130$", out, flags=re.M)  # 6.5M W -> mu nu in 50k chunks
    assert re.search(r"^train_recoil\s+3$", out, flags=re.M)  # fold 0 of each variant
    assert "gpu=1" in out  # the training jobs ask the cluster for a GPU


def test_validation_simulates_pseudodata_from_the_same_generated_events(tmp_path: Path) -> None:
    r = snakemake("-n", "results/detector/validation.json", "--cores", "8", cwd=tmp_path)
    out = r.stdout + r.stderr
    assert "results/samples/zee/pseudodata/0.root" in out and "results/samples/zee/nominal/0.root" in out
    # one generation job per chunk, whatever the number of tunes simulated from it
    assert len(re.findall(r"output: results/samples/zee/gen/0.parquet", out)) == 1


def test_unknown_config_key_fails_at_once_naming_it(tmp_path: Path) -> None:
    cfg = yaml.safe_load(TINY_CONFIG.read_text())
    cfg["samples"]["vh"]["generate"]["evnts"] = 10
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    r = snakemake("-n", "results/vh/binning.json", "--configfile", str(bad), cwd=tmp_path)
    assert r.returncode != 0
    assert "config key 'samples.vh.generate.evnts': unknown key" in r.stdout + r.stderr


def test_configfile_replaces_default_samples(tmp_path: Path) -> None:
    r = snakemake("-n", "results/vh/binning.json", "--configfile", str(TINY_CONFIG), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    # only the tiny config's chunks are scheduled: the default's samples must not leak in
    cfg = yaml.safe_load(TINY_CONFIG.read_text())
    vh_samples = [cfg["samples"][name] for name in cfg["vh"]["samples"]]
    expected = sum(-(-s["generate"]["events"] // s["generate"]["chunk_size"]) for s in vh_samples)
    counts = re.findall(r"^generate\s+(\d+)$", r.stdout, flags=re.M)
    assert counts and int(counts[0]) == expected, r.stdout


FEATURE_TARGETS = tuple(f"results/{s}/features.parquet" for s in ("recoil", "ditau", "jets", "electrons"))


def _check_feature_tables(root: Path) -> None:
    """Each study's feature table: rows, every declared group, finite inputs, folds, targets in range."""
    from hepchain.features.table import read_table

    for study, target, lo, hi, min_rows in (
        ("recoil", "truth_ux", -500.0, 500.0, 50),
        ("ditau", "m_true", 50.0, 300.0, 4),  # 1500 inclusive Z -> tau tau: about 12 expected
        ("jets", "calib_factor", 0.5, 2.0, 100),
        ("electrons", "probe_energy_truth", 5.0, 1000.0, 50),
    ):
        table, meta = read_table(root / f"results/{study}/features.parquet")
        n = len(table["weight"])
        assert n >= min_rows, (study, n)
        assert meta["study"] == study and meta["n_folds"] == 3
        for feature in meta["spec"]["features"]:
            values = table[feature["name"]]
            assert values.shape == (n, *feature["shape"]), feature["name"]
            assert np.all(np.isfinite(values.astype(np.float64))), (study, feature["name"])
        assert set(np.unique(table["fold"])) <= {0, 1, 2}
        finite = np.isfinite(table[target])
        assert finite.mean() > 0.8, (study, target, finite.mean())
        assert np.all((table[target][finite] > lo) & (table[target][finite] < hi)), (study, target)
        cutflow = json.loads((root / f"results/{study}/cutflow/{meta['samples'][0]}.json").read_text())
        raws = [c["raw"] for c in cutflow["cuts"]]
        assert raws == sorted(raws, reverse=True) and raws[-1] > 0, (study, raws)
    jets, _ = read_table(root / "results/jets/features.parquet", ["constituents_mask", "calib_factor"])
    assert jets["constituents_mask"].sum(axis=1).min() >= 1  # every jet has constituents through JetPFCands
    assert np.nanmedian(jets["calib_factor"]) == pytest.approx(1.0, abs=0.1)  # JEC closes


@pytest.mark.slow
def _check_recoil(root: Path) -> None:
    """The tiny recoil run: every method has sane numbers, the figures exist, the models were trained on fold 0."""
    metrics = json.loads((root / "results/recoil/metrics.json").read_text())
    assert metrics["folds_evaluated"] == [0] and metrics["n_events"] > 20
    dnn = {f"dnn_{v}{c}" for v in ("mse", "bias_l1", "bias_l2") for c in ("", "_corrected")}
    assert set(metrics["methods"]) == {"standard", "standard_corrected", *dnn}
    standard = metrics["methods"]["standard"]
    # the PF recoil of W -> mu nu: under-calibrated (response 0.5-1.0), a few GeV of u_perp spread
    assert 0.4 < standard["response"] < 1.05
    assert 2.0 < standard["sigma_uperp"] < 20.0
    for m, values in metrics["methods"].items():
        assert np.isfinite(values["sigma_uperp"]) and values["sigma_uperp"] > 0, m
    assert metrics["alpha"]["mse"]["0"] == 0.0
    assert metrics["alpha"]["bias_l1"]["0"] > 0
    assert metrics["alpha"]["bias_l2"]["0"] == pytest.approx(5 * metrics["alpha"]["bias_l1"]["0"])
    for m in ("dnn_mse", "dnn_bias_l1", "dnn_bias_l2"):
        imp = metrics["summary"][m]["vs_standard"]
        assert np.isfinite(imp["improvement"]) and imp["stat_err"] > 0
    for name in ("bias_vs_pt", "resolution_vs_pt", "uperp", "targets_ux_uy", "training_curves"):
        for ext in ("pdf", "png"):
            assert (root / f"results/recoil/figures/{name}.{ext}").stat().st_size > 1000


def test_tiny_end_to_end(tmp_path: Path) -> None:
    r = snakemake(
        "results/vh/binning.json", "results/detector/validation.json", *FEATURE_TARGETS, "results/recoil/metrics.json",
        "--cores", "2", "--configfile", str(TINY_CONFIG), cwd=tmp_path,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    _check_recoil(tmp_path)
    _check_feature_tables(tmp_path)
    validation = json.loads((tmp_path / "results/detector/validation.json").read_text())
    assert {"electrons", "muons", "jets", "taus", "met", "summary"} <= set(validation)
    assert validation["electrons"]["checks"]["response_barrel"]["value"] == pytest.approx(1.0, abs=0.03)
    assert validation["muons"]["checks"]["response_barrel_20_100"]["value"] == pytest.approx(1.0, abs=0.01)
    assert validation["summary"]["n_checks"] > 10
    assert "electrons.pseudodata" not in str(validation["skipped"])  # the tiny config asks for pseudodata Z -> ee
    for name in ("electron_images", "met_pulls", "zee_peak"):
        for ext in ("pdf", "png"):
            assert (tmp_path / f"results/detector/figures/{name}.{ext}").stat().st_size > 1000
    report = json.loads((tmp_path / "results/vh/binning.json").read_text())
    edges = np.array(report["edges"])
    assert edges[0] == pytest.approx(0.0) and edges[-1] == pytest.approx(1.0)  # tiny config: range [0, 1]
    assert np.all(np.diff(edges) > 0)
    for b in report["bins"]:
        assert b["s"] > 3 and b["b"] > 3  # regularisation on expected yields
        assert b["s_err"] > 0 and b["b_err"] > 0
        assert sum(b["yields"].values()) == pytest.approx(b["s"] + b["b"], rel=1e-9)
    assert report["z0_mva"] > 0 and np.isfinite(report["z0_cut_based"])
    assert report["luminosity_fb"] == 139.0 and len(report["config_hash"]) == 64
    for name in ("discriminant_binned", "roc_vh", "input_shapes", "confusion_matrix", "training_curves", "cutflow"):
        for ext in ("pdf", "png"):
            assert (tmp_path / f"results/vh/figures/{name}.{ext}").stat().st_size > 1000
    for fold in range(3):
        summary = json.loads((tmp_path / f"results/vh/model/fold{fold}/summary.json").read_text())
        assert summary["onnx_parity_max_abs_diff"] < 1e-5
    # a second call runs nothing
    again = snakemake(
        "-n", "results/vh/binning.json", "results/detector/validation.json", *FEATURE_TARGETS,
        "results/recoil/metrics.json", "--configfile", str(TINY_CONFIG), cwd=tmp_path,
    )
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr


def test_files_sample_runs_through_the_same_skim_rule(tmp_path: Path) -> None:
    """A sample given by `files:` (real CMS NanoAOD) needs no generation and is skimmed by the same rule."""
    from .helpers import real_nanoaod

    cfg = yaml.safe_load(TINY_CONFIG.read_text())
    cfg["samples"]["top"] = {"class": "top", "files": [str(real_nanoaod())], "xsec_pb": 87.3}
    path = tmp_path / "files.yaml"
    path.write_text(yaml.safe_dump(cfg))
    dry = snakemake("-n", "results/vh/binning.json", "--configfile", str(path), cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "results/samples/top/" not in dry.stdout  # nothing generated for a files: sample
    run = snakemake("results/vh/cutflow/top.json", "--cores", "1", "--configfile", str(path), cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    cutflow = json.loads((tmp_path / "results/vh/cutflow/top.json").read_text())
    assert cutflow["cuts"][0]["raw"] == 200 and cutflow["files"] == [str(real_nanoaod())]
