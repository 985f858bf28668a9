# The W recoil calibration study (seed 000): the skim and feature table come from
# studies.smk; here the networks (one per variant and fold, hepchain.studies.recoil)
# and the evaluation.  Target: results/recoil/metrics.json (+ figures, predictions).
from hepchain.studies.recoil import resolve_config as _resolve_recoil

RECOIL_CFG = _resolve_recoil(config["recoil"])
RECOIL_VARIANTS = list(RECOIL_CFG["variants"])
RECOIL_FIGURES = [
    "targets_ux_uy", "ut_upar_bias", "uperp", "bias_vs_pt", "resolution_vs_pt", "sigma_uperp_vs_pt",
    "sigma_uperp_vs_sumet", "response_correction", "training_curves",
]
RECOIL_ARGS = as_json({"recoil": config["recoil"], "seed": config["seed"]})


rule train_recoil:
    input:
        "results/recoil/features.parquet",
    output:
        onnx="results/recoil/models/{variant}/fold{fold}/model.onnx",
        ckpt="results/recoil/models/{variant}/fold{fold}/model.ckpt",
        history="results/recoil/models/{variant}/fold{fold}/history.csv",
        summary="results/recoil/models/{variant}/fold{fold}/summary.json",
    wildcard_constraints:
        variant="|".join(RECOIL_VARIANTS),
        fold=r"\d+",
    params:
        config=RECOIL_ARGS,
        outdir=lambda w, output: os.path.dirname(output.onnx),
    log:
        "results/logs/recoil/train/{variant}/fold{fold}.log",
    benchmark:
        "results/benchmarks/recoil/train/{variant}/fold{fold}.tsv"
    threads: RECOIL_CFG["training"]["threads"] or 1
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=1 if RECOIL_CFG["training"]["accelerator"] == "gpu" else 0,
    conda:
        "../../envs/hepchain.yaml"
    shell:
        "python -m hepchain train-recoil --table {input} --variant {wildcards.variant} --fold {wildcards.fold}"
        " --config {params.config:q} --out {params.outdir} > {log} 2>&1"


rule evaluate_recoil:
    input:
        table="results/recoil/features.parquet",
        models=expand(
            "results/recoil/models/{variant}/fold{fold}/model.onnx", variant=RECOIL_VARIANTS, fold=RECOIL_CFG["folds"]
        ),
    output:
        metrics="results/recoil/metrics.json",
        predictions="results/recoil/predictions.parquet",
        figures=expand("results/recoil/figures/{name}.{ext}", name=RECOIL_FIGURES, ext=["pdf", "png"]),
    params:
        config=RECOIL_ARGS,
    log:
        "results/logs/recoil/evaluate.log",
    benchmark:
        "results/benchmarks/recoil/evaluate.tsv"
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/hepchain.yaml"
    shell:
        "python -m hepchain evaluate-recoil --table {input.table} --models {input.models} --config {params.config:q}"
        " --out {output.metrics} --predictions {output.predictions} --figures results/recoil/figures > {log} 2>&1"
