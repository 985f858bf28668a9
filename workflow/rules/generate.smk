# Event generation with Pythia 8: a pile-up library once, then one job per (sample, chunk).


rule minbias_library:
    output:
        events="results/common/minbias.parquet",
        meta="results/common/minbias.json",
    params:
        spec=lambda w: as_json(
            {"processes": config["pileup"]["processes"], "events": config["pileup"]["library_events"],
             "chunk_size": config["pileup"]["library_events"]}
        ),
        seed=config["seed"],
        min_pt=config["pileup"]["min_pt"],
    log:
        "results/logs/generate/minbias.log",
    benchmark:
        "results/benchmarks/generate/minbias.tsv"
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../../envs/hepchain.yaml"
    shell:
        "python -m hepchain generate --sample minbias --chunk 0 --seed {params.seed} --config {params.spec:q}"
        " --min-pt {params.min_pt} --out {output.events} --meta {output.meta} > {log} 2>&1"


rule generate:
    output:
        events="results/samples/{sample}/gen/{chunk}.parquet",
        meta="results/samples/{sample}/gen/{chunk}.json",
    params:
        spec=lambda w: as_json(config["samples"][w.sample]["generate"]),
        seed=config["seed"],
    log:
        "results/logs/generate/{sample}/{chunk}.log",
    benchmark:
        "results/benchmarks/generate/{sample}/{chunk}.tsv"
    resources:
        mem_mb=3000,
        runtime=120,
    conda:
        "../../envs/hepchain.yaml"
    shell:
        "python -m hepchain generate --sample {wildcards.sample} --chunk {wildcards.chunk} --seed {params.seed}"
        " --config {params.spec:q} --out {output.events} --meta {output.meta} > {log} 2>&1"


rule cross_section:
    input:
        chunk_metas,
    output:
        "results/samples/{sample}/xsec.json",
    log:
        "results/logs/xsec/{sample}.log",
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../../envs/hepchain.yaml"
    shell:
        "python -m hepchain xsec --metas {input} --out {output} > {log} 2>&1"
