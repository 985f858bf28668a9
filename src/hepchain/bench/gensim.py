"""Generation against simulation cost per event, measured in one process.

The reference is Pythia 8 itself (``nextBatch`` with MPI and hadronisation):
the detector simulation is reported as a fraction of it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from ..detector.simulate import simulate_chunk
from ..detector.tune import get_tune
from ..generate.pythia import GenerationSpec, generate_chunk

PROCESSES = {
    "ttbar": (["Top:gg2ttbar = on", "Top:qqbar2ttbar = on"], ["24:onMode = off", "24:onIfAny = 11 13"]),
    "vh": (
        ["HiggsSM:ffbar2HW = on", "HiggsSM:ffbar2HZ = on"],
        ["25:onMode = off", "25:onIfMatch = 24 -24", "24:onMode = off", "24:onIfAny = 1 2 3 4 5 11 13", "23:onMode = off", "23:onIfAny = 1 2 3 4 5"],
    ),
}


def run(process: str, events: int, mu: float, library: int, store_pfcands: bool, tune: str) -> dict[str, float]:
    processes, decays = PROCESSES[process]
    spec = GenerationSpec(processes=processes, decays=decays, events=events, chunk_size=events,
                          filter="vh_hadronic_v_leptonic_h" if process == "vh" else None)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        mb = None
        if mu > 0:
            lib = GenerationSpec(processes=["SoftQCD:inelastic = on"], events=library, chunk_size=library)
            generate_chunk(lib, sample="minbias", chunk=0, global_seed=1, out_parquet=d / "mb.parquet", out_meta=d / "mb.json", progress=False, min_pt=0.3)
            mb = d / "mb.parquet"
        # warm-up: imports (fastjet, vector, uproot writing) and first calls, outside the timed region
        import fastjet  # noqa: F401
        import vector  # noqa: F401

        warm = GenerationSpec(processes=processes, decays=decays, events=5, chunk_size=5, filter=spec.filter)
        generate_chunk(warm, sample="warm", chunk=0, global_seed=2, out_parquet=d / "w.parquet", out_meta=d / "w.json", progress=False)
        simulate_chunk(d / "w.parquet", d / "w.root", tune=get_tune(tune), global_seed=2, sample="warm", chunk=0,
                       pileup_path=mb, mu=mu, store_pfcands=store_pfcands, progress=False)
        t0 = time.perf_counter()
        generate_chunk(spec, sample=process, chunk=0, global_seed=1, out_parquet=d / "gen.parquet", out_meta=d / "gen.json", progress=False)
        t1 = time.perf_counter()
        simulate_chunk(d / "gen.parquet", d / "nano.root", tune=get_tune(tune), global_seed=1, sample=process, chunk=0,
                       pileup_path=mb, mu=mu, store_pfcands=store_pfcands, progress=False)
        t2 = time.perf_counter()
    return {"generation_ms_per_event": 1e3 * (t1 - t0) / events, "simulation_ms_per_event": 1e3 * (t2 - t1) / events,
            "ratio": (t2 - t1) / (t1 - t0)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m hepchain.bench gensim", description=__doc__.splitlines()[0])
    p.add_argument("--process", choices=sorted(PROCESSES), default="ttbar")
    p.add_argument("--events", type=int, default=1000)
    p.add_argument("--mu", type=float, default=20.0)
    p.add_argument("--library", type=int, default=300, help="minimum-bias library size")
    p.add_argument("--pfcands", action="store_true", help="also write PFCands/JetPFCands")
    p.add_argument("--tune", default="nominal")
    ns = p.parse_args(argv)
    r = run(ns.process, ns.events, ns.mu, ns.library, ns.pfcands, ns.tune)
    print(f"process {ns.process}, {ns.events} events, pile-up mu = {ns.mu}, PFCands stored: {ns.pfcands}")
    print(f"generation (Pythia 8, full events): {r['generation_ms_per_event']:.2f} ms/event")
    print(f"simulation (detector + NanoAOD write): {r['simulation_ms_per_event']:.2f} ms/event")
    print(f"simulation / generation: {r['ratio']:.3f}")
