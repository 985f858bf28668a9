# Skims and feature tables of the recoil (000), ditau (001), jets (002) and
# electrons (004) studies: one generic rule each, the study's code is chosen by
# the {study} wildcard (hepchain.skim.registry).  Targets:
#   results/<study>/skim/<sample>.parquet, results/<study>/cutflow/<sample>.json,
#   results/<study>/features.parquet
STUDIES = [s for s in ("recoil", "ditau", "jets", "electrons") if s in config]


rule skim_study:
    input:
        nano_inputs,
    output:
        table="results/{study}/skim/{sample}.parquet",
        cutflow="results/{study}/cutflow/{sample}.json",
    wildcard_constraints:
        study="|".join(STUDIES) if STUDIES else "none",
    params:
        files=lambda w: " ".join(nano_files(w)),
        selection=lambda w: as_json(config[w.study].get("selection", {})),
        executor=as_json(config["executor"]),
    log:
        "results/logs/{study}/skim/{sample}.log",
    benchmark:
        "results/benchmarks/{study}/skim/{sample}.tsv"
    threads: config["executor"]["workers"]
    resources:
        mem_mb=6000,
        runtime=60,
    conda:
        "../../envs/hepchain.yaml"
    shell:
        "python -m hepchain skim --study {wildcards.study} --sample {wildcards.sample} --files {params.files}"
        " --selection {params.selection:q} --executor {params.executor:q} --out {output.table}"
        " --cutflow {output.cutflow} > {log} 2>&1"


rule features_study:
    input:
        lambda w: expand("results/{study}/skim/{sample}.parquet", study=w.study, sample=study_samples(w)),
    output:
        "results/{study}/features.parquet",
    wildcard_constraints:
        study="|".join(STUDIES) if STUDIES else "none",
    params:
        samples=lambda w: " ".join(study_samples(w)),
        config=lambda w: as_json({"n_folds": config[w.study]["n_folds"], "seed": config["seed"]}),
    log:
        "results/logs/{study}/features.log",
    benchmark:
        "results/benchmarks/{study}/features.tsv"
    resources:
        mem_mb=6000,
        runtime=30,
    conda:
        "../../envs/hepchain.yaml"
    shell:
        "python -m hepchain features --study {wildcards.study} --skims {input} --samples {params.samples}"
        " --config {params.config:q} --out {output} > {log} 2>&1"
