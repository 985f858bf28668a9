"""Command line: ``python -m hepchain <stage> ...``, one stage per Snakemake rule.

Every stage takes its config section as JSON (``--config``), reads its inputs
and writes its outputs atomically.  A :class:`~hepchain.errors.HepchainError`
(bad input, bad config, empty selection) prints one line, ``hepchain <stage>:
error: ...``, and exits with status 2, touching no existing output.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigError, HepchainError

Handler = Callable[[argparse.Namespace], None]
_COMMANDS: dict[str, tuple[Handler, str]] = {}


def command(name: str, help_text: str) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        _COMMANDS[name] = (func, help_text)
        return func

    return register


def args(setup: Callable[[argparse.ArgumentParser], None]) -> Callable[[Handler], Handler]:
    def attach(func: Handler) -> Handler:
        func._args = setup  # type: ignore[attr-defined]
        return func

    return attach


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--config is not valid JSON: {exc}") from exc


def _progress() -> bool:
    return os.environ.get("HEPCHAIN_PROGRESS", "1") != "0"


# --------------------------------------------------------------------------- generation


@args(
    lambda p: (
        p.add_argument("--sample", required=True),
        p.add_argument("--chunk", type=int, required=True),
        p.add_argument("--seed", type=int, required=True),
        p.add_argument("--config", required=True, help="the sample's generate: block as JSON"),
        p.add_argument("--min-pt", type=float, default=0.0, help="drop final-state particles below this pT [GeV]"),
        p.add_argument("--out", required=True, type=Path),
        p.add_argument("--meta", required=True, type=Path),
    )
)
@command("generate", "generate one chunk of a sample with Pythia 8")
def _generate(ns: argparse.Namespace) -> None:
    from .generate.pythia import GenerationSpec, generate_chunk

    spec = GenerationSpec.from_config(_json(ns.config), f"samples.{ns.sample}.generate")
    meta = generate_chunk(
        spec, sample=ns.sample, chunk=ns.chunk, global_seed=ns.seed, out_parquet=ns.out, out_meta=ns.meta,
        progress=_progress(), min_pt=ns.min_pt,
    )
    print(json.dumps(meta, indent=2))


@args(lambda p: (p.add_argument("--metas", nargs="+", required=True, type=Path), p.add_argument("--out", required=True, type=Path)))
@command("xsec", "combine the chunk metadata of a sample into its cross section and sum of weights")
def _xsec(ns: argparse.Namespace) -> None:
    from .generate.pythia import combine_chunk_metadata
    from .io import write_json_atomic

    metas = []
    for path in ns.metas:
        if not path.exists():
            raise HepchainError(f"{path}: chunk metadata does not exist")
        metas.append(json.loads(path.read_text()))
    combined = combine_chunk_metadata(metas)
    write_json_atomic(combined, ns.out)
    print(json.dumps(combined, indent=2))


@args(
    lambda p: (
        p.add_argument("--gen", required=True, type=Path),
        p.add_argument("--pileup", type=Path, default=None),
        p.add_argument("--sample", required=True),
        p.add_argument("--chunk", type=int, required=True),
        p.add_argument("--seed", type=int, required=True),
        p.add_argument("--mu", type=float, default=0.0),
        p.add_argument("--config", required=True, help="the detector: section as JSON"),
        p.add_argument("--out", required=True, type=Path),
    )
)
@command("simulate", "fast detector simulation of one generated chunk, written as NanoAOD")
def _simulate(ns: argparse.Namespace) -> None:
    from .detector.simulate import simulate_chunk
    from .detector.tune import get_tune

    cfg = _json(ns.config)
    info = simulate_chunk(
        ns.gen, ns.out, tune=get_tune(cfg.get("tune", "nominal")), global_seed=ns.seed, sample=ns.sample, chunk=ns.chunk,
        pileup_path=ns.pileup, mu=ns.mu, store_pfcands=bool(cfg.get("store_pfcands", False)),
        store_cells=bool(cfg.get("store_cells", False)), sub_chunk=int(cfg.get("sub_chunk", 1000)), progress=_progress(),
    )
    print(json.dumps(info, indent=2))


@args(
    lambda p: (
        p.add_argument(
            "--input", nargs="*", default=[], metavar="ROLE:TUNE:FILE",
            help="NanoAOD file of a validation role (dijet, zee, ztautau, wmunu, ttbar) simulated with a tune",
        ),
        p.add_argument("--out", required=True, type=Path),
        p.add_argument("--figures", type=Path, default=None),
    )
)
@command("validate-detector", "response, resolution and pulls of the fast simulation against published figures")
def _validate_detector(ns: argparse.Namespace) -> None:
    from .detector.validation import run_validation
    from .errors import ConfigError

    inputs: dict[str, dict[str, list[str]]] = {}
    for item in ns.input:
        parts = item.split(":", 2)
        if len(parts) != 3 or not all(parts):
            raise ConfigError(f"--input '{item}': expected ROLE:TUNE:FILE")
        role, tune, path = parts
        inputs.setdefault(role, {}).setdefault(tune, []).append(path)
    summary = run_validation(inputs, ns.out, ns.figures, progress=_progress())["summary"]
    failed = summary["failed"]
    print(f"{summary['n_checks']} checks, {summary['n_pass']} inside expectations" + (f"; outside: {', '.join(failed)}" if failed else ""))


# --------------------------------------------------------------------------- VH study


@args(
    lambda p: (
        p.add_argument("--sample", required=True),
        p.add_argument("--files", nargs="+", required=True),
        p.add_argument("--selection", default="{}", help="vh.selection as JSON"),
        p.add_argument("--executor", default="{}", help="executor: section as JSON"),
        p.add_argument("--out", required=True, type=Path),
        p.add_argument("--cutflow", required=True, type=Path),
    )
)
@command("skim-vh", "DFOS e-mu preselection (coffea) of one sample; table + cutflow")
def _skim_vh(ns: argparse.Namespace) -> None:
    from .io import write_json_atomic, write_table_atomic
    from .skim.vh import DFOSSelection, run_vh_skim

    executor = _json(ns.executor)
    table, cutflow = run_vh_skim(
        list(ns.files), selection=DFOSSelection.from_config(_json(ns.selection)),
        executor=executor.get("name", "iterative"), workers=int(executor.get("workers", 1)),
        chunksize=int(executor.get("chunksize", 100_000)),
    )
    cutflow = {"sample": ns.sample, "files": list(ns.files), **cutflow}
    write_table_atomic(table, ns.out)
    write_json_atomic(cutflow, ns.cutflow)
    print(json.dumps(cutflow, indent=2))


@args(
    lambda p: (
        p.add_argument("--skims", nargs="+", required=True, type=Path, help="one skim table per sample, in vh.samples order"),
        p.add_argument("--cutflows", nargs="+", required=True, type=Path),
        p.add_argument("--xsecs", nargs="+", required=True, help="per sample: a cross-section JSON or 'config'"),
        p.add_argument("--config", required=True, help="{vh, samples, luminosity_fb, seed} as JSON"),
        p.add_argument("--out", required=True, type=Path),
    )
)
@command("features-vh", "the 17 inputs of seed 003 for all samples, with weights, labels and folds")
def _features_vh(ns: argparse.Namespace) -> None:
    import pandas as pd

    from .features.vh import build_feature_table
    from .io import read_table, write_table_atomic
    from .studies.vh import read_xsec, sample_norm

    cfg = _json(ns.config)
    samples = cfg["vh"]["samples"]
    if not (len(ns.skims) == len(ns.cutflows) == len(ns.xsecs) == len(samples)):
        raise ConfigError("features-vh: --skims, --cutflows and --xsecs need one entry per sample of vh.samples")
    skims: dict[str, pd.DataFrame] = {}
    norm: dict[str, float] = {}
    sample_class: dict[str, int] = {}
    for sample, skim, cutflow_path, xsec in zip(samples, ns.skims, ns.cutflows, ns.xsecs, strict=True):
        scfg = cfg["samples"][sample]
        cutflow = json.loads(Path(cutflow_path).read_text())
        if xsec == "config":
            xsec_pb = float(scfg["xsec_pb"])
            sumw = float(scfg.get("sumw", cutflow["sumw"]))
        else:
            meta = read_xsec(xsec)
            xsec_pb, sumw = float(meta["sigma_pb"]), float(meta["sum_gen_weight"])
        norm[sample] = sample_norm(xsec_pb, sumw, float(cfg["luminosity_fb"]), sample)
        skims[sample] = read_table(skim)
        sample_class[sample] = cfg["vh"]["classes"].index(scfg["class"])
    table = build_feature_table(skims, sample_class, norm, int(cfg["vh"]["n_folds"]), int(cfg["seed"]))
    write_table_atomic(table, ns.out)
    summary = table.groupby("sample").agg(rows=("weight", "size"), expected=("weight", "sum"))
    print(summary.to_string())


# --------------------------------------------------------------------------- skims and features of the other studies


@args(
    lambda p: (
        p.add_argument("--study", required=True, help="recoil | ditau | jets | electrons"),
        p.add_argument("--sample", required=True),
        p.add_argument("--files", nargs="+", required=True),
        p.add_argument("--selection", default="{}", help="<study>.selection as JSON"),
        p.add_argument("--executor", default="{}", help="executor: section as JSON"),
        p.add_argument("--out", type=Path, help="skim table (parquet); not written with --cutflow-only"),
        p.add_argument("--cutflow", required=True, type=Path),
        p.add_argument("--cutflow-only", action="store_true",
                       help="run the selection alone (standard NanoAOD without the study's extended branches)"),
    )
)
@command("skim", "one study's selection (coffea) of one sample: skim table + cutflow JSON")
def _skim(ns: argparse.Namespace) -> None:
    from .features.table import table_length, write_table
    from .io import write_json_atomic
    from .skim.registry import get_study

    study = get_study(ns.study)
    if ns.out is None and not ns.cutflow_only:
        raise ConfigError("skim: --out is required unless --cutflow-only")
    table, cutflow = study.run_skim(
        list(ns.files), selection=_json(ns.selection), executor=_json(ns.executor), cutflow_only=ns.cutflow_only
    )
    cutflow = {"study": study.name, "sample": ns.sample, "files": list(ns.files), **cutflow}
    if not ns.cutflow_only:
        write_table(ns.out, table, metadata={"study": study.name, "sample": ns.sample, "selection": cutflow["selection"]})
        cutflow["rows"] = table_length(table)
    write_json_atomic(cutflow, ns.cutflow)
    print(json.dumps({k: v for k, v in cutflow.items() if k != "files"}, indent=2))


@args(
    lambda p: (
        p.add_argument("--study", required=True, help="recoil | ditau | jets | electrons"),
        p.add_argument("--skims", nargs="+", required=True, type=Path, help="one skim table per sample"),
        p.add_argument("--samples", nargs="+", required=True, help="the sample of each skim table"),
        p.add_argument("--config", required=True, help="{n_folds, seed} as JSON"),
        p.add_argument("--out", required=True, type=Path),
    )
)
@command("features", "one study's feature table (inputs, targets, weights, folds) from its skims")
def _features(ns: argparse.Namespace) -> None:
    import numpy as np

    from .features.table import read_table, table_length, write_table
    from .skim.registry import get_study

    study = get_study(ns.study)
    if len(ns.skims) != len(ns.samples):
        raise ConfigError("features: --skims and --samples need one entry each per sample")
    cfg = _json(ns.config)
    skims = {sample: read_table(path)[0] for sample, path in zip(ns.samples, ns.skims, strict=True)}
    module = study.features()
    table = module.build_feature_table(skims, n_folds=int(cfg["n_folds"]), seed=int(cfg["seed"]))
    spec = study.spec()
    meta = {"study": study.name, "spec": spec.to_dict(), "targets": list(study.targets()),
            "samples": list(module.sample_names(skims)), "n_folds": int(cfg["n_folds"]), "seed": int(cfg["seed"])}
    write_table(ns.out, table, metadata=meta)
    n = table_length(table)
    print(f"{study.name}: {n} rows, {len(spec)} features in groups {spec.groups}, targets {list(study.targets())}")
    for i, sample in enumerate(meta["samples"]):
        rows = table["sample"] == i
        print(f"  {sample}: {int(rows.sum())} rows, sum of weights {float(np.sum(table['weight'][rows])):.6g}")


@args(
    lambda p: (
        p.add_argument("--features", required=True, type=Path),
        p.add_argument("--fold", type=int, required=True),
        p.add_argument("--config", required=True, help="{vh.training, n_folds, classes, seed} as JSON"),
        p.add_argument("--outdir", required=True, type=Path),
    )
)
@command("train-vh", "train the 6-class network of one fold (k-fold cross-training)")
def _train_vh(ns: argparse.Namespace) -> None:
    from .features.vh import VH_SPEC
    from .io import read_table
    from .ml.train import train_fold

    cfg = _json(ns.config)
    tr = cfg["training"]
    table = read_table(ns.features)
    summary = train_fold(
        table, VH_SPEC.names, ns.fold, int(cfg["n_folds"]), ns.outdir,
        hidden=tuple(tr["hidden"]), activation=tr["activation"], noise_std=float(tr["noise_std"]), lr=float(tr["lr"]),
        batch_size=int(tr["batch_size"]), max_epochs=int(tr["max_epochs"]), patience=int(tr["patience"]),
        seed=int(cfg["seed"]), n_classes=len(cfg["classes"]), threads=tr.get("threads"), progress_bar=_progress(),
    )
    print(json.dumps(summary, indent=2, default=str))


@args(
    lambda p: (
        p.add_argument("--features", required=True, type=Path),
        p.add_argument("--models", nargs="+", required=True, type=Path, help="ONNX model of fold k, k = 0..n-1"),
        p.add_argument("--out", required=True, type=Path),
    )
)
@command("infer-vh", "score every event with the exported model of the fold that did not see it")
def _infer_vh(ns: argparse.Namespace) -> None:
    import numpy as np

    from .features.vh import VH_SPEC
    from .io import read_table, write_table_atomic
    from .ml.export import OnnxClassifier

    table = read_table(ns.features)
    folds = table["fold"].to_numpy()
    n_folds = len(ns.models)
    if folds.max() >= n_folds:
        raise ConfigError(f"infer-vh: the table has fold {folds.max()} but only {n_folds} models were given")
    x = table[VH_SPEC.names].to_numpy(dtype=np.float32)
    probs: np.ndarray | None = None
    for k, model_path in enumerate(ns.models):
        if not model_path.exists():
            raise HepchainError(f"{model_path}: model of fold {k} does not exist")
        rows = folds == k
        p = OnnxClassifier(model_path).predict(x[rows])
        if probs is None:
            probs = np.zeros((len(table), p.shape[1]), dtype=np.float32)
        probs[rows] = p
    assert probs is not None
    out = table[["sample", "event", "fold", "label", "weight"]].copy()
    for c in range(probs.shape[1]):
        out[f"p{c}"] = probs[:, c]
    write_table_atomic(out, ns.out)
    print(f"scored {len(out)} events with {n_folds} fold models")


@args(
    lambda p: (
        p.add_argument("--features", required=True, type=Path),
        p.add_argument("--scores", required=True, type=Path),
        p.add_argument("--config", required=True, help="{binning, classes, luminosity_fb} as JSON"),
        p.add_argument("--config-hash", required=True),
        p.add_argument("--out", required=True, type=Path),
        p.add_argument("--figures", type=Path, default=None, help="also write the study's figures here"),
        p.add_argument("--histories", nargs="*", type=Path, default=[]),
        p.add_argument("--cutflows", nargs="*", type=Path, default=[]),
    )
)
@command("binning-vh", "optimise the VH discriminant binning (Asimov Z0), compare with the cut-based selection, plot")
def _binning_vh(ns: argparse.Namespace) -> None:
    from .io import read_table, write_json_atomic
    from .studies.vh import binning_report

    cfg = _json(ns.config)
    table = read_table(ns.features)
    scores = read_table(ns.scores)
    if len(scores) != len(table) or not (scores["event"].to_numpy() == table["event"].to_numpy()).all():
        raise HepchainError(f"{ns.scores}: scores do not line up with {ns.features} (rerun infer-vh)")
    report = binning_report(
        table, scores["p0"].to_numpy(), classes=cfg["classes"], cfg=cfg["binning"],
        luminosity_fb=float(cfg["luminosity_fb"]), config_hash=ns.config_hash,
    )
    if ns.figures is not None:
        from .plots.vh import make_all

        written = make_all(
            features=ns.features, scores=ns.scores, report=report, histories=ns.histories,
            cutflows=ns.cutflows, classes=cfg["classes"], outdir=ns.figures,
        )
        print("\n".join(str(p) for p in written))
    write_json_atomic(report, ns.out)
    print(json.dumps({k: report[k] for k in ("edges", "z0_mva", "z0_cut_based", "z0_ratio")}, indent=2))


# --------------------------------------------------------------------------- generic training engine


@args(
    lambda p: (
        p.add_argument("--study", required=True, help="recoil | ditau | jets | electrons | vh"),
        p.add_argument("--table", required=True, type=Path, help="the study's feature table"),
        p.add_argument("--out", required=True, type=Path, help="output directory (model.ckpt, model.onnx, ...)"),
        p.add_argument("--config-json", default="{}", help="engine config as JSON (keys: see hepchain.ml.engine)"),
        p.add_argument("--accelerator", choices=("auto", "cpu", "gpu"), default=None, help="overrides the config's"),
    )
)
@command("train", "train one fold of a study's network with the generic engine; checkpoint, ONNX, history, summary")
def _train(ns: argparse.Namespace) -> None:
    from .ml.engine import train_study

    try:
        cfg = json.loads(ns.config_json)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--config-json is not valid JSON: {exc}") from exc
    if not isinstance(cfg, dict):
        raise ConfigError(f"--config-json must be a JSON object, got {type(cfg).__name__}")
    if ns.accelerator is not None:
        cfg["accelerator"] = ns.accelerator
    cfg.setdefault("progress_bar", _progress())
    s = train_study(ns.study, ns.table, ns.out, cfg)
    parity = s["onnx_parity"]["max_abs_diff"]
    print(
        f"{s['study']} fold {s['fold']}: {s['rows_used']} rows used ({s['rows_dropped_nan_target']} dropped: NaN target), "
        f"{s['epochs_run']} epochs, best val_loss {s['best_val_loss']:.6g} at epoch {s['best_epoch']}, "
        f"{s['train_samples_per_s']:.0f} samples/s on {s['device']}, ONNX parity {parity:.2g} -> {ns.out}"
    )


@args(
    lambda p: (
        p.add_argument("--features", required=True, type=Path),
        p.add_argument("--config", required=True, help="JSON: {hpo, training, n_folds, classes, seed}"),
        p.add_argument("--out", required=True, type=Path, help="hpo.json"),
        p.add_argument("--figures", required=True, type=Path),
        p.add_argument("--storage", default=None, help="Optuna journal file (or RDB URL) shared by parallel workers"),
        p.add_argument("--n-jobs", type=int, default=None, help="trials in parallel threads (overrides vh.hpo.n_jobs)"),
    )
)
@command("hpo-vh", "Optuna search of the VH network (seed 003's space; optional target results/vh/hpo.json)")
def _hpo_vh(ns: argparse.Namespace) -> None:
    from .ml.hpo import run

    run(ns)


# --------------------------------------------------------------------------- recoil study (seed 000)


def _recoil_config(text: str) -> tuple[dict[str, Any], int]:
    from .studies.recoil import resolve_config

    raw = _json(text)
    if not isinstance(raw, dict) or "recoil" not in raw or "seed" not in raw:
        raise ConfigError("--config must be a JSON object with keys 'recoil' (the config section) and 'seed'")
    return resolve_config(raw["recoil"]), int(raw["seed"])


@args(
    lambda p: (
        p.add_argument("--table", required=True, type=Path, help="results/recoil/features.parquet"),
        p.add_argument("--variant", required=True, help="a name of recoil.variants (mse, bias_l1, bias_l2)"),
        p.add_argument("--fold", required=True, type=int),
        p.add_argument("--config", required=True, help="JSON: {recoil: <config section>, seed}"),
        p.add_argument("--out", required=True, type=Path, help="model directory"),
    )
)
@command("train-recoil", "train one (variant, fold) recoil network (seed 000) with the engine; alpha from the table")
def _train_recoil(ns: argparse.Namespace) -> None:
    from .studies.recoil import train_variant

    cfg, seed = _recoil_config(ns.config)
    s = train_variant(ns.table, ns.out, ns.variant, ns.fold, cfg, seed, progress_bar=_progress())
    print(
        f"recoil {ns.variant} fold {ns.fold}: alpha {s['config']['loss']['alpha']:.6g}, {s['n_train']} training rows, "
        f"{s['epochs_run']} epochs, best val_loss {s['best_val_loss']:.6g} at epoch {s['best_epoch']}, "
        f"{s['train_samples_per_s']:.0f} samples/s on {s['device']} -> {ns.out}"
    )


@args(
    lambda p: (
        p.add_argument("--table", required=True, type=Path),
        p.add_argument("--models", nargs="+", required=True, type=Path, help="model directories or files in them"),
        p.add_argument("--config", required=True, help="JSON: {recoil: <config section>, seed}"),
        p.add_argument("--out", required=True, type=Path, help="metrics.json"),
        p.add_argument("--predictions", type=Path, default=None, help="per-event predictions (parquet)"),
        p.add_argument("--figures", type=Path, default=None),
    )
)
@command("evaluate-recoil", "recoil metrics (response, bias, sigma(u_perp), improvements) and figures")
def _evaluate_recoil(ns: argparse.Namespace) -> None:
    from .studies.recoil import evaluate

    cfg, seed = _recoil_config(ns.config)
    report = evaluate(ns.table, ns.models, cfg, seed, out=ns.out, predictions=ns.predictions, figures=ns.figures)
    print(json.dumps({"n_events": report["n_events"], "summary": report["summary"]}, indent=2))


# --------------------------------------------------------------------------- entry point


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hepchain", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="stage", required=True)
    for name, (func, help_text) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        getattr(func, "_args", lambda _: None)(p)
        p.set_defaults(func=func)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        ns.func(ns)
    except HepchainError as exc:
        print(f"hepchain {ns.stage}: error: {exc}", file=sys.stderr)
        return 2
    return 0
