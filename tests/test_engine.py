"""The generic training engine: data on the device, one module for every study, train/export/predict, benchmark."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from hepchain.cli import main as cli_main
from hepchain.errors import ConfigError, EmptySelectionError, HepchainError, InputFileError
from hepchain.features.table import write_table
from hepchain.ml import losses as L
from hepchain.ml.engine import (
    ENGINE_LOSSES,
    DeviceDataModule,
    _batch_plan,
    build_study,
    make_loss,
    make_trainer,
    predict_study,
    resolve_config,
    train_study,
    weighted_auc,
)
from hepchain.ml.onnx_export import PARITY_ATOL
from hepchain.ml.study_data import (
    STUDIES,
    Standardize,
    load_study_tensors,
    study_spec,
    study_tensors_from_columns,
    synthetic_feature_table,
)

#: Small networks for the end-to-end tests (the defaults are used in the fast_dev_run test).
SMALL_NETWORKS: dict[str, dict[str, Any]] = {
    "recoil": {"hidden": [32, 32]},
    "ditau": {"hidden": [32, 32]},
    "jets": {"phi": [16, 16], "rho": [16]},
    "electrons": {"conv_channels": [4], "scalar_hidden": [16], "film_hidden": [16], "track_phi": [8], "top": [16]},
    "vh": {"hidden": [16, 16]},
}
QUIET = {"progress_bar": False, "accelerator": "cpu"}


def _table(tmp: Path, study: str, n: int, seed: int = 1, **edits: Any) -> Path:
    columns = synthetic_feature_table(study, n, seed=seed)
    for name, (rows, value) in edits.items():
        columns[name] = np.array(columns[name], copy=True)
        columns[name][rows] = value
    path = tmp / f"{study}-{n}-{seed}.parquet"
    write_table(path, columns, metadata={"study": study, "n_folds": 5})
    return path


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Any:
    """One intra-op thread: the tiny networks here gain nothing from more, and a busy 2-core machine loses a lot."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("tables")
    sizes = {"recoil": 2000, "ditau": 600, "jets": 400, "electrons": 120, "vh": 600}
    return {study: _table(tmp, study, n) for study, n in sizes.items()}


# --------------------------------------------------------------------------- every study network


@pytest.mark.parametrize("study", STUDIES)
def test_fast_dev_run_of_every_study_network(study: str, tables: dict[str, Path], tmp_path: Path) -> None:
    cfg = resolve_config(study, {**QUIET, "batch_size": 16})
    from hepchain.ml.engine import load_for_config

    tensors = load_for_config(study, tables[study], cfg)
    module, data, _ = build_study(study, tensors, cfg)
    trainer = make_trainer(cfg, tmp_path, fast_dev_run=True, enable_model_summary=False)
    trainer.fit(module, datamodule=data)
    assert trainer.state.finished
    batch = next(iter(data.train_dataloader()))
    assert set(module.input_names) <= set(batch) and {"target", "weight"} <= set(batch)
    assert all(t.device.type == "cpu" for t in batch.values())
    pred = module.predict({n: tensors.inputs[n][:8] for n in module.input_names})
    assert pred.shape[0] == 8 and np.isfinite(pred).all()


# --------------------------------------------------------------------------- training


def test_short_training_lowers_val_loss(tables: dict[str, Path], tmp_path: Path) -> None:
    cfg = {**QUIET, "max_epochs": 6, "patience": 6, "batch_size": 100, "lr": 3e-3}
    summary = train_study("recoil", tables["recoil"], tmp_path, cfg)
    history = pd.read_csv(tmp_path / "history.csv")
    assert len(history) == 6 == summary["epochs_run"]
    assert history["val_loss"].iloc[-1] < 0.5 * history["val_loss"].iloc[0]
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    assert {"val_response", "val_sigma_uperp"} <= set(history.columns)
    assert summary["best_val_loss"] == pytest.approx(history["val_loss"].min(), rel=1e-5)
    assert summary["train_samples_per_s"] > 0 and summary["rows_used"] == 2000


def test_same_seed_same_first_epoch_and_model(tables: dict[str, Path], tmp_path: Path) -> None:
    cfg = {**QUIET, "max_epochs": 2, "batch_size": 64, "network": SMALL_NETWORKS["ditau"]}
    first = train_study("ditau", tables["ditau"], tmp_path / "a", cfg)
    second = train_study("ditau", tables["ditau"], tmp_path / "b", cfg)
    h1, h2 = (pd.read_csv(tmp_path / d / "history.csv") for d in ("a", "b"))
    assert h1["train_loss"].iloc[0] == h2["train_loss"].iloc[0]
    assert h1["val_loss"].iloc[0] == h2["val_loss"].iloc[0]
    assert first["best_val_loss"] == second["best_val_loss"]
    other = train_study("ditau", tables["ditau"], tmp_path / "c", {**cfg, "seed": 99})
    assert other["best_val_loss"] != first["best_val_loss"]


@pytest.mark.parametrize("study", ["jets", "electrons", "vh"])
def test_train_study_exports_onnx_with_parity_and_predicts(study: str, tables: dict[str, Path], tmp_path: Path) -> None:
    cfg = {**QUIET, "max_epochs": 1, "batch_size": 32, "network": SMALL_NETWORKS[study]}
    summary = train_study(study, tables[study], tmp_path, cfg)
    for name in ("model.ckpt", "model.onnx", "history.csv", "summary.json"):
        assert (tmp_path / name).is_file()
    assert json.loads((tmp_path / "summary.json").read_text())["study"] == study
    assert not list(tmp_path.glob(".train-*"))
    parity = summary["onnx_parity"]
    assert parity["max_abs_diff"] <= parity["atol"] == PARITY_ATOL and parity["rows"] == summary["n_test"]
    from_onnx = predict_study(tmp_path / "model.onnx", tables[study])
    from_ckpt = predict_study(tmp_path / "model.ckpt", tables[study], device="cpu")
    from hepchain.ml.engine import StudyModule

    module = StudyModule.load_from_checkpoint(tmp_path / "model.ckpt", map_location="cpu")
    tensors = load_study_tensors(study, tables[study], input_names=module.input_names, drop_nan_targets=False)
    expected = module.predict(tensors.inputs)
    assert from_onnx.shape == expected.shape == (tensors.n_rows, summary["n_outputs"])
    np.testing.assert_array_equal(from_ckpt, expected)
    np.testing.assert_allclose(from_onnx, expected, rtol=1e-4, atol=1e-4)
    if study == "vh":
        np.testing.assert_allclose(from_onnx.sum(axis=1), 1.0, rtol=1e-5)
        assert 0.5 < summary["val_metrics"]["val_auc"] <= 1.0
    if study == "jets":
        assert (from_onnx[:, 1] > 0).all() and "val_asym_width" in summary["val_metrics"]


def test_failed_run_keeps_the_earlier_result(tables: dict[str, Path], tmp_path: Path) -> None:
    cfg = {**QUIET, "max_epochs": 1, "batch_size": 64, "network": SMALL_NETWORKS["ditau"]}
    train_study("ditau", tables["ditau"], tmp_path, cfg)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    with pytest.raises(EmptySelectionError, match="no test rows"):
        train_study("ditau", tables["ditau"], tmp_path, {**cfg, "n_folds": 6, "fold": 5})
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


# --------------------------------------------------------------------------- data


def test_jets_batches_keep_the_two_jets_of_an_event_together(tmp_path: Path) -> None:
    columns = synthetic_feature_table("jets", 600, seed=3)
    n = len(columns["event"])
    columns["log_pt"] = columns["event"].astype(np.float64)  # the event number, visible in the batch
    columns["eta"] = columns["is_probe"].astype(np.float64)
    columns["calib_factor"][[5, 100, 101, 333]] = np.nan  # two events lose one jet, one event both
    path = tmp_path / "jets.parquet"
    write_table(path, columns)
    tensors = load_study_tensors("jets", path)
    assert tensors.n_dropped == 4 and len(tensors.pairs) == n // 2 - 3
    data = DeviceDataModule.from_fold(tensors, 0, 5, batch_size=50, seed=7)
    data.setup("fit")
    train = data.split("train")
    epochs = []
    for _ in range(2):
        seen = []
        for batch in data.train_dataloader():
            pairs = batch["pairs"]
            event, probe = batch["event"][:, 0], batch["event"][:, 1]
            assert len(batch["weight"]) > 1 and pairs.shape[1] == 2
            assert torch.equal(event[pairs[:, 0]], event[pairs[:, 1]])
            assert (probe[pairs[:, 0]] == 0).all() and (probe[pairs[:, 1]] == 1).all()
            assert torch.equal(pairs.reshape(-1), torch.arange(2 * len(pairs)))
            assert len(np.unique(event.numpy())) == len(pairs) + len(event) - 2 * len(pairs)
            seen.append(event.numpy())
        order = np.concatenate(seen)
        assert len(order) >= train.n_rows - 1
        epochs.append(order)
    assert not np.array_equal(epochs[0], epochs[1])  # reshuffled every epoch
    again = DeviceDataModule.from_fold(tensors, 0, 5, batch_size=50, seed=7)
    assert np.array_equal(np.concatenate([b["event"][:, 0].numpy() for b in again.train_dataloader()]), epochs[0])


def test_batch_plan_drops_a_last_single_row_in_training_only() -> None:
    assert _batch_plan(0, 2001, 1000, pair_events=False, drop_single=True) == [(0, 0, 0, 1000), (0, 0, 1000, 2000)]
    assert len(_batch_plan(0, 2001, 1000, pair_events=False, drop_single=False)) == 3
    plan = _batch_plan(300, 7, 100, pair_events=True, drop_single=True)
    assert sum(2 * (p1 - p0) + s1 - s0 for p0, p1, s0, s1 in plan) == 607
    assert max(2 * (p1 - p0) + s1 - s0 for p0, p1, s0, s1 in plan) <= 101


def test_nan_input_is_an_error_naming_the_column_and_count(tmp_path: Path) -> None:
    path = _table(tmp_path, "recoil", 50, u_x=([3, 7, 9], np.nan))
    with pytest.raises(HepchainError, match=r"recoil-50-1\.parquet: column 'u_x' .* has 3 NaN/inf values") as info:
        load_study_tensors("recoil", path)
    assert "\n" not in str(info.value)
    columns = synthetic_feature_table("jets", 40, seed=2)
    mask = columns["constituents_mask"]
    columns["const_deta"][~mask] = np.nan  # padding may hold anything
    columns["const_deta"][np.flatnonzero(mask[:, 0])[:2], 0] = np.inf
    write_table(tmp_path / "jets.parquet", columns)
    with pytest.raises(HepchainError, match=r"column 'const_deta' .* has 2 NaN/inf values among the unmasked entries"):
        load_study_tensors("jets", tmp_path / "jets.parquet")


def test_missing_column_is_an_error_naming_file_and_column(tmp_path: Path) -> None:
    columns = synthetic_feature_table("ditau", 20)
    del columns["MET_covXY"]
    write_table(tmp_path / "t.parquet", columns)
    with pytest.raises(InputFileError, match=r"t\.parquet: column 'MET_covXY' \(feature of input 'event'\) is missing"):
        load_study_tensors("ditau", tmp_path / "t.parquet")
    with pytest.raises(InputFileError, match="does not exist"):
        load_study_tensors("ditau", tmp_path / "absent.parquet")


def test_nan_targets_are_dropped_and_counted(tmp_path: Path) -> None:
    path = _table(tmp_path, "ditau", 600, m_true=(np.arange(0, 600, 10), np.nan))
    tensors = load_study_tensors("ditau", path)
    assert (tensors.n_dropped, tensors.n_rows, tensors.n_table_rows) == (60, 540, 600)
    assert not np.isin(np.arange(0, 600, 10), tensors.rows).any()
    cfg = {**QUIET, "max_epochs": 1, "batch_size": 64, "network": SMALL_NETWORKS["ditau"]}
    summary = train_study("ditau", path, tmp_path / "out", cfg)
    assert summary["rows_dropped_nan_target"] == 60 and summary["rows_used"] == 540
    assert predict_study(tmp_path / "out" / "model.onnx", path).shape == (600, 1)
    with pytest.raises(HepchainError, match="target column 'm_true' has 1 values <= 0"):
        bad = _table(tmp_path, "ditau", 100, m_true=([4], -3.0))
        train_study("ditau", bad, tmp_path / "bad", cfg)


def test_standardize_uses_training_rows_and_ignores_padding() -> None:
    spec = study_spec("jets")
    columns = synthetic_feature_table("jets", 200, seed=5)
    columns["const_pt_frac"] = np.where(columns["constituents_mask"], 4.0 + 2.0 * columns["const_pt_frac"], 1e6)
    tensors = study_tensors_from_columns("jets", columns)
    layer = Standardize.for_spec(spec, ("event", "constituents", "constituents_mask")).fit(
        tensors.inputs, np.arange(100)
    )
    j = spec.group_names("constituents").index("const_pt_frac")
    assert layer.stats["constituents"].mean[j] == pytest.approx(4.0, abs=0.2)
    assert layer.stats["constituents"].std[j] == pytest.approx(2.0, abs=0.2)
    event, objects, mask = layer(
        tensors.inputs["event"], tensors.inputs["constituents"], tensors.inputs["constituents_mask"]
    )
    assert (objects[~mask] == 0).all() and abs(float(event[:100].mean())) < 0.05


# --------------------------------------------------------------------------- config, losses, metrics


def test_config_errors_are_one_line(tables: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config key 'learning_rate' is unknown"):
        resolve_config("recoil", {"learning_rate": 1.0})
    with pytest.raises(ConfigError, match="loss option 'beta' is unknown for loss 'recoil_bias_penalty'"):
        resolve_config("recoil", {"loss": {"name": "recoil_bias_penalty", "beta": 1}})
    with pytest.raises(ConfigError, match="needs the option 'low'"):
        resolve_config("ditau", {"loss": "mirrored_boundary"})
    with pytest.raises(ConfigError, match="alpha"):
        resolve_config("recoil", {"loss": {"name": "recoil_bias_penalty", "alpha": -1}})
    with pytest.raises(ConfigError, match="study 'top' is unknown"):
        resolve_config("top", {})
    assert resolve_config("recoil")["batch_size"] == 1500 and resolve_config("recoil")["lr"] == 1e-3
    assert resolve_config("recoil", {"network": {"hidden": [8]}})["network"]["batch_norm"] is True


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a CUDA device")
def test_gpu_without_cuda_is_one_config_error(tables: dict[str, Path], tmp_path: Path) -> None:
    for call in (
        lambda: train_study("recoil", tables["recoil"], tmp_path, {"accelerator": "gpu"}),
        lambda: make_trainer({"accelerator": "gpu"}, tmp_path),
    ):
        with pytest.raises(
            ConfigError, match=r"'gpu' but torch.cuda.is_available\(\) is False.*use accelerator 'cpu'"
        ) as info:
            call()
        assert "\n" not in str(info.value)
    assert not (tmp_path / "model.ckpt").exists()


def test_sync_free_losses_equal_the_loss_functions() -> None:
    g = torch.Generator().manual_seed(0)
    n = 64
    w = torch.rand(n, generator=g) + 0.1
    t1 = torch.rand(n, 1, generator=g) * 100 + 50
    p1 = t1 * (1 + 0.1 * torch.randn(n, 1, generator=g))
    pairs = torch.arange(n).reshape(-1, 2)
    cases = {
        "recoil_bias_penalty": (
            {"alpha": 2.0},
            torch.randn(n, 2, generator=g) * 20,
            torch.randn(n, 2, generator=g) * 20,
        ),
        "mape": ({}, p1, t1),
        "mape_sqrt": ({}, p1, t1),
        "mirrored_boundary": ({"low": 50.0, "high": 150.0}, p1, t1),
        "relative_energy": ({"norm": "huber"}, p1, t1),
        "gaussian_nll_asymmetry": (
            {"f": 1.5},
            torch.rand(n, 2, generator=g) + 0.5,
            torch.rand(n, 1, generator=g) + 0.5,
        ),
    }
    assert set(cases) | {"weighted_cross_entropy"} == set(ENGINE_LOSSES) == set(L.LOSSES)
    for name, (options, pred, target) in cases.items():
        loss = make_loss({"name": name, **options})
        batch = {"target": target, "weight": w, "pairs": pairs, "pt_reco": torch.rand(n, generator=g) * 500 + 800}
        got = loss(pred, batch)
        if name == "gaussian_nll_asymmetry":
            want = L.gaussian_nll_asymmetry_loss(
                pred[:, 0], pred[:, 1], target[:, 0], batch["pt_reco"], pairs, weight=w, **options
            )
        else:
            want = L.get_loss(name)(pred, target, weight=w, **options)
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6, msg=name)
    logits, labels = torch.randn(n, 3, generator=g), torch.randint(0, 3, (n,), generator=g)
    ce = make_loss({"name": "weighted_cross_entropy"})(logits, {"target": labels, "weight": w})
    torch.testing.assert_close(ce, L.weighted_cross_entropy(logits, labels, w))


def test_weighted_auc_matches_sklearn() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(4)
    score = np.round(rng.random(500), 2)  # with ties
    label = rng.random(500) < 0.3 + 0.4 * score
    weight = rng.random(500)
    got = weighted_auc(torch.tensor(score), torch.tensor(label), torch.tensor(weight))
    assert got == pytest.approx(roc_auc_score(label, score, sample_weight=weight), abs=1e-9)


# --------------------------------------------------------------------------- command line, benchmark, GPU


def test_cli_train_prints_one_summary_line(
    tables: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = json.dumps({"max_epochs": 1, "batch_size": 64, "network": SMALL_NETWORKS["vh"], "progress_bar": False})
    argv = ["train", "--study", "vh", "--table", str(tables["vh"]), "--out", str(tmp_path), "--config-json", config]
    assert cli_main([*argv, "--accelerator", "cpu"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("vh fold 0: 600 rows used (0 dropped: NaN target)")
    assert cli_main([*argv[:-1], '{"epochs": 3}']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hepchain train: error: config key 'epochs' is unknown (allowed: ")


def test_benchmark_smoke_run(capsys: pytest.CaptureFixture[str]) -> None:
    from hepchain.bench.train import main

    main(["--rows", "20000", "--epochs", "1"])
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.rstrip().endswith("samples/s")]
    assert [line[:3] for line in lines] == ["(a)", "(b)", "(c)"]
    assert all(float(line.split()[-2]) > 0 for line in lines)
    assert "(a)/(b) = " in out and "(a)/(c) = " in out and "events/s" in out


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_train_study_on_gpu(tables: dict[str, Path], tmp_path: Path) -> None:
    cfg = {"accelerator": "gpu", "progress_bar": False, "max_epochs": 3, "batch_size": 100}
    summary = train_study("recoil", tables["recoil"], tmp_path, cfg)
    assert summary["device"].startswith("cuda")
    assert summary["onnx_parity"]["max_abs_diff"] <= PARITY_ATOL
    from hepchain.ml.engine import StudyModule

    module = StudyModule.load_from_checkpoint(tmp_path / "model.ckpt", map_location="cuda")
    tensors = load_study_tensors("recoil", tables["recoil"], input_names=module.input_names)
    data = DeviceDataModule.from_fold(tensors, 0, 5, batch_size=100, device="cuda")
    batch = next(iter(data.train_dataloader()))
    assert all(t.device.type == "cuda" for t in batch.values())
    on_gpu = predict_study(tmp_path / "model.ckpt", tables["recoil"], device="gpu")
    np.testing.assert_allclose(on_gpu, predict_study(tmp_path / "model.onnx", tables["recoil"]), rtol=1e-3, atol=1e-3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_steps_do_not_sync_the_host_on_gpu(tables: dict[str, Path]) -> None:
    from hepchain.ml.engine import load_for_config

    loss = {"name": "gaussian_nll_asymmetry", "f": 1.0}
    cfg = resolve_config(
        "jets", {"accelerator": "gpu", "batch_size": 64, "loss": loss, "network": SMALL_NETWORKS["jets"]}
    )
    tensors = load_for_config("jets", tables["jets"], cfg)
    module, _, _ = build_study("jets", tensors, cfg)
    module = module.cuda().train()
    data = DeviceDataModule.from_fold(tensors, 0, 5, batch_size=64, device="cuda")
    optimizer = module.configure_optimizers()
    module.on_train_epoch_start()
    batches = iter(data.train_dataloader())
    first = next(batches)  # the epoch's permutation is drawn here
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)  # as the Trainer runs on the GPU
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for i, batch in enumerate([first, *batches]):
            step_loss = module.training_step(batch, i)
            optimizer.zero_grad(set_to_none=True)
            step_loss.backward()
            optimizer.step()
    finally:
        torch.cuda.set_sync_debug_mode(0)
        torch.use_deterministic_algorithms(deterministic)
    assert torch.isfinite(module._train_sums).all()
