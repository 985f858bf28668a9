# Detector validation: response, resolution and pulls of the fast simulation on
# dedicated samples (both tunes where asked), each number against a published figure.


rule validate_detector:
    input:
        validation_inputs,
    output:
        json="results/detector/validation.json",
        figures=directory("results/detector/figures"),
    params:
        inputs=lambda w: validation_args(),
    log:
        "results/logs/detector/validation.log",
    benchmark:
        "results/benchmarks/detector/validation.tsv"
    resources:
        mem_mb=6000,
        runtime=30,
    conda:
        "../../envs/hepchain.yaml"
    shell:
        "python -m hepchain validate-detector --input {params.inputs} --out {output.json} --figures {output.figures}"
        " > {log} 2>&1"
