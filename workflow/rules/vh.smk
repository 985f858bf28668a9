# The VH(->WW) study (seed 003): skim, features, k-fold training, inference, binning.
VH = config["vh"]
VH_FOLDS = list(range(VH["n_folds"]))
VH_FIGURES = [
    "discriminant_binned", "roc_vh", "input_shapes", "confusion_matrix", "training_curves", "cutflow",
]
VH_HPO_FIGURES = ["hpo_history", "hpo_importance"]
# Wall-time limit of the optional search [min]: its timeout plus a margin, else 4 h.
VH_HPO_RUNTIME = int(VH["hpo"]["timeout_s"] // 60) + 30 if VH["hpo"]["timeout_s"] else 240


rule skim_vh:
    input:
        nano_inputs,
    output:
        table="results/vh/skim/{sample}.parquet",
        cutflow="results/vh/cutflow/{sample}.json",
    params:
        files=lambda w: " ".join(nano_files(w)),
        selection=as_json(VH.get("selection", {})),
        executor=as_json(config["executor"]),
    log:
        "results/logs/vh/skim/{sample}.log",
    benchmark:
        "results/benchmarks/vh/skim/{sample}.tsv"
    threads: config["executor"]["workers"]
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/hepchain.yaml"
    shell:
        "python -m hepchain skim-vh --sample {wildcards.sample} --files {params.files} --selection {params.selection:q}"
        " --executor {params.executor:q} --out {output.table} --cutflow {output.cutflow} > {log} 2>&1"


rule features_vh:
    input:
        skims=expand("results/vh/skim/{sample}.parquet", sample=VH["samples"]),
        cutflows=expand("results/vh/cutflow/{sample}.json", sample=VH["samples"]),
        xsecs=xsec_inputs(VH["samples"]),
    output:
        "results/vh/features.parquet",
    params:
        xsecs=xsec_args(VH["samples"]),
        config=as_json(
            {"vh": VH, "samples": {s: config["samples"][s] for s in VH["samples"]},
             "luminosity_fb": config["luminosity_fb"], "seed": config["seed"]}
        ),
    log:
        "results/logs/vh/features.log",
    benchmark:
        "results/benchmarks/vh/features.tsv"
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/hepchain.yaml"
    shell:
        "python -m hepchain features-vh --skims {input.skims} --cutflows {input.cutflows} --xsecs {params.xsecs}"
        " --config {params.config:q} --out {output} > {log} 2>&1"


rule train_vh:
    input:
        "results/vh/features.parquet",
    output:
        onnx="results/vh/model/fold{fold}/model.onnx",
        ckpt="results/vh/model/fold{fold}/model.ckpt",
        history="results/vh/model/fold{fold}/history.csv",
        summary="results/vh/model/fold{fold}/summary.json",
    params:
        config=as_json(
            {"training": VH["training"], "n_folds": VH["n_folds"], "classes": VH["classes"], "seed": config["seed"]}
        ),
        outdir=lambda w, output: os.path.dirname(output.onnx),
    log:
        "results/logs/vh/train/fold{fold}.log",
    benchmark:
        "results/benchmarks/vh/train/fold{fold}.tsv"
    threads: VH["training"]["threads"]
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=0,
    conda:
        "../../envs/hepchain.yaml"
    shell:
        "python -m hepchain train-vh --features {input} --fold {wildcards.fold} --config {params.config:q}"
        " --outdir {params.outdir} > {log} 2>&1"


rule infer_vh:
    input:
        features="results/vh/features.parquet",
        models=expand("results/vh/model/fold{fold}/model.onnx", fold=VH_FOLDS),
    output:
        "results/vh/scores.parquet",
    log:
        "results/logs/vh/infer.log",
    benchmark:
        "results/benchmarks/vh/infer.tsv"
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/hepchain.yaml"
    shell:
        "python -m hepchain infer-vh --features {input.features} --models {input.models} --out {output} > {log} 2>&1"


rule binning_vh:
    # The main target: the optimised binning and, from the same inputs, the study's figures.
    input:
        features="results/vh/features.parquet",
        scores="results/vh/scores.parquet",
        histories=expand("results/vh/model/fold{fold}/history.csv", fold=VH_FOLDS),
        cutflows=expand("results/vh/cutflow/{sample}.json", sample=VH["samples"]),
    output:
        binning="results/vh/binning.json",
        figures=expand("results/vh/figures/{name}.{ext}", name=VH_FIGURES, ext=["pdf", "png"]),
    params:
        config=as_json(
            {"binning": VH["binning"], "classes": VH["classes"], "luminosity_fb": config["luminosity_fb"]}
        ),
        config_hash=CONFIG_HASH,
        figures=lambda w, output: os.path.dirname(output.figures[0]),
    log:
        "results/logs/vh/binning.log",
    benchmark:
        "results/benchmarks/vh/binning.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/hepchain.yaml"
    shell:
        "python -m hepchain binning-vh --features {input.features} --scores {input.scores} --config {params.config:q}"
        " --config-hash {params.config_hash} --out {output.binning} --figures {params.figures}"
        " --histories {input.histories} --cutflows {input.cutflows} > {log} 2>&1"


rule hpo_vh:
    # Optional target (not part of all): Optuna search of the network on fold 0's split (hepchain.ml.hpo).
    # Parallel trials: vh.hpo.n_jobs threads here; more workers join through a vh.hpo.storage journal file.
    input:
        "results/vh/features.parquet",
    output:
        json="results/vh/hpo.json",
        figures=expand("results/vh/figures/{name}.{ext}", name=VH_HPO_FIGURES, ext=["pdf", "png"]),
    params:
        config=as_json(
            {"hpo": VH["hpo"], "training": VH["training"], "n_folds": VH["n_folds"], "classes": VH["classes"],
             "seed": config["seed"]}
        ),
        figures=lambda w, output: os.path.dirname(output.figures[0]),
    log:
        "results/logs/vh/hpo.log",
    benchmark:
        "results/benchmarks/vh/hpo.tsv"
    threads: VH["hpo"]["n_jobs"] * VH["training"]["threads"]
    resources:
        mem_mb=4000,
        runtime=VH_HPO_RUNTIME,
        gpu=0,
    conda:
        "../../envs/hepchain.yaml"
    shell:
        "python -m hepchain hpo-vh --features {input} --config {params.config:q} --out {output.json}"
        " --figures {params.figures} > {log} 2>&1"
