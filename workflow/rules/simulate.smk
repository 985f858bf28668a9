# Fast detector simulation: one job per generated chunk, NanoAOD-schema ROOT out.


rule simulate:
    input:
        events="results/samples/{sample}/gen/{chunk}.parquet",
        pileup=pileup_inputs,
    output:
        "results/samples/{sample}/{tune}/{chunk}.root",
    params:
        detector=lambda w: as_json(
            {**config["detector"], "tune": w.tune, "store_pfcands": store_option(w.sample, "store_pfcands"),
             "store_cells": store_option(w.sample, "store_cells")}
        ),
        mu=lambda w: config["samples"][w.sample]["generate"]["pileup_mu"],
        pileup=lambda w, input: f"--pileup {input.pileup[0]}" if input.pileup else "",
        seed=config["seed"],
    log:
        "results/logs/simulate/{sample}/{tune}/{chunk}.log",
    benchmark:
        "results/benchmarks/simulate/{sample}/{tune}/{chunk}.tsv"
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/hepchain.yaml"
    shell:
        "python -m hepchain simulate --gen {input.events} {params.pileup} --mu {params.mu} --sample {wildcards.sample}"
        " --chunk {wildcards.chunk} --seed {params.seed} --config {params.detector:q} --out {output} > {log} 2>&1"
