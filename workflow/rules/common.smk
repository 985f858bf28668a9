# Helpers shared by the rules: config sections as JSON, chunk lists, inputs.
import json
import math
import os
SAMPLES = list(config["samples"])


wildcard_constraints:
    sample="|".join(SAMPLES) if SAMPLES else "none",
    chunk=r"\d+",
    tune="nominal|pseudodata",
    fold=r"\d+",


def as_json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def is_generated(sample):
    return "generate" in config["samples"][sample]


def n_chunks(sample):
    gen = config["samples"][sample]["generate"]
    return max(1, math.ceil(gen["events"] / gen["chunk_size"]))


def chunk_metas(wildcards):
    return [f"results/samples/{wildcards.sample}/gen/{c}.json" for c in range(n_chunks(wildcards.sample))]


def pileup_inputs(wildcards):
    mu = config["samples"][wildcards.sample]["generate"]["pileup_mu"]
    return ["results/common/minbias.parquet"] if mu > 0 else []


def simulated(sample, tune=None):
    """NanoAOD files of a generated sample simulated with ``tune`` (default: detector.tune, the studies' MC)."""
    tune = tune or config["detector"]["tune"]
    return [f"results/samples/{sample}/{tune}/{c}.root" for c in range(n_chunks(sample))]


def store_option(sample, key):
    """A per-sample simulate: override of a detector: storage switch (store_pfcands, store_cells)."""
    return bool(config["samples"][sample].get("simulate", {}).get(key, config["detector"][key]))


def nano_inputs(wildcards):
    """Local NanoAOD inputs of a sample (generated chunks, or local files: entries)."""
    sample = config["samples"][wildcards.sample]
    if "generate" in sample:
        return simulated(wildcards.sample)
    return [f for f in sample["files"] if "://" not in f]


def nano_files(wildcards):
    """All NanoAOD inputs of a sample, remote URLs included (read by uproot directly)."""
    sample = config["samples"][wildcards.sample]
    if "generate" in sample:
        return nano_inputs(wildcards)
    return sample["files"]


def xsec_inputs(samples):
    return [f"results/samples/{s}/xsec.json" for s in samples if is_generated(s)]


def xsec_args(samples):
    return " ".join(f"results/samples/{s}/xsec.json" if is_generated(s) else "config" for s in samples)


VALIDATION = config["detector_validation"]


def validation_inputs(wildcards=None):
    """NanoAOD files of the detector-validation samples: nominal for every role, pseudodata where asked."""
    files = []
    for role, sample in VALIDATION["samples"].items():
        files += simulated(sample, "nominal")
        if role in VALIDATION["pseudodata"]:
            files += simulated(sample, "pseudodata")
    return files


def validation_args():
    """--input role:tune:file arguments of the validate-detector command."""
    args = []
    for role, sample in VALIDATION["samples"].items():
        tunes = ["nominal"] + (["pseudodata"] if role in VALIDATION["pseudodata"] else [])
        args += [f"{role}:{tune}:{f}" for tune in tunes for f in simulated(sample, tune)]
    return " ".join(args)


def study_samples(wildcards):
    """Samples skimmed for the {study} of the generic skim and feature rules."""
    return config[wildcards.study]["samples"]
