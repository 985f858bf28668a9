"""The fast detector simulation of one generated chunk, written as NanoAOD.

Pipeline per sub-chunk (all vectorised over flat particle tables):
pile-up overlay -> particle flow (tracking, calorimeters, lepton
reconstruction) -> electrons and muons (ID, isolation, truth matching) ->
jets (CHS anti-kt R=0.4, pile-up correction, flavour, b-tagging) and truth
jets -> MET (with covariance and significance), track MET, soft activity,
vertices.  Sub-chunks bound the memory for any chunk size.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from ..generate.seeds import derive_seed
from ..nanoaod import CONTRACT, NanoAODWriter, conform
from .calo_images import build_electron_calo, nanoaod_arrays
from .jets import build_jets
from .leptons import build_leptons
from .met import build_met, track_met
from .particles import Table, from_jagged, index_within_group
from .pflow import PF_ELECTRON, PF_MUON, build_pf
from .pileup import FIELDS, PileupLibrary
from .taus import build_taus
from .tune import Tune

_GENVISTAU_FIELDS = ["pt", "eta", "phi", "mass", "charge", "status", "genPartIdxMother"]
_GENPART_FIELDS = ["pt", "eta", "phi", "mass", "pdgId", "status", "statusFlags", "genPartIdxMother"]


def _met(px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.hypot(px, py).astype(np.float32), np.arctan2(py, px).astype(np.float32)


def _event_sums(evt: np.ndarray, values: np.ndarray, n_events: int) -> np.ndarray:
    return np.bincount(evt, weights=values, minlength=n_events)


class StepRandom:
    """One independent random stream per simulation step.

    Every step (pile-up overlay, particle flow, leptons, jets, ...) draws from
    its own generator seeded by (job seed, sub-chunk, step), so that a tune
    change in one step (say, a tracking efficiency that changes how many
    random numbers particle flow consumes) leaves the random numbers of every
    other step untouched: two tunes differ exactly where the tune differs.
    """

    def __init__(self, seed: int, block: int) -> None:
        self.seed = seed
        self.block = block

    def __call__(self, step: str) -> np.random.Generator:
        code = int.from_bytes(hashlib.sha256(step.encode()).digest()[:8], "little")
        return np.random.default_rng(np.random.SeedSequence([self.seed, self.block, code]))


def simulate_events(
    gen: ak.Array,
    *,
    tune: Tune,
    rng: StepRandom,
    pileup: PileupLibrary | None,
    mu: float,
    store_pfcands: bool,
    store_cells: bool = False,
) -> dict[str, Any]:
    """Simulate a block of generated events; returns NanoAOD arrays (collections as record arrays)."""
    n = len(gen)
    hard = from_jagged(gen.particles, FIELDS)
    hard["pu"] = np.zeros(len(hard), dtype=bool)
    vertex_rng = rng("vertex")
    pv_z = vertex_rng.normal(0.0, tune.beamspot_sigma_z, n)
    hard["vz"] = pv_z[hard["evt"]].astype(np.float32)
    if pileup is not None and mu > 0:
        pu_particles, n_pu, _ = pileup.overlay(n, mu, rng("pileup"), tune.beamspot_sigma_z)
        particles = Table.concat([hard, pu_particles]).sorted_by_event()
    else:
        n_pu = np.zeros(n, dtype=np.int64)
        particles = hard

    pf = build_pf(particles, pv_z, tune, rng("pflow"))

    genpart = from_jagged(gen.genpart, _GENPART_FIELDS)
    genpart["local"] = index_within_group(genpart.counts(n)).astype(np.int32)
    electrons, muons = build_leptons(pf, genpart, n, tune, rng("leptons"))

    # electron calorimeter: cell images, cluster energy and scalars, nearby tracks; the Electron energy is
    # the calibrated cluster energy (the standard reconstruction that the electron study's regression improves on)
    calo = build_electron_calo(
        Table({k: electrons[k] for k in ("evt", "pt", "eta", "phi", "charge", "truth", "dxy", "dz")}),
        particles, pf.select(pf["charge"] != 0), n, tune, rng("electron_cells"), mu, store_cells,
    )
    electron_extra, electron_collections = nanoaod_arrays(calo, n, store_cells)
    for key, value in electron_extra.items():
        electrons[key] = value
    if len(electrons):
        electrons["pt"] = (electrons["energyCluster"] / np.cosh(electrons["eta"])).astype(np.float32)

    truth_visible = hard.select(np.abs(hard["eta"]) < 5.0)
    heavy = from_jagged(gen.heavy, ["pt", "eta", "phi", "flavour"])
    jets, genjets, links, rho = build_jets(pf, truth_visible, heavy, n, tune, rng("jets"))

    genvistau = from_jagged(gen.genvistau, _GENVISTAU_FIELDS)
    taus = build_taus(pf, jets, links, genvistau, n, tune, rng("taus"), genpart=genpart)

    met = build_met(pf, jets, links["pf"], links["jet_flat"], n, tune)
    tk_pt, tk_phi, tk_sumet = track_met(pf, n, tune.track_eta_max)

    # soft activity: PV tracks above 1 GeV that are not leptons nor in jets above 25 GeV
    pt = pf["pt"]
    trk = (pf["charge"] != 0) & (pf["fromPV"] == 3) & (np.abs(pf["eta"]) < tune.track_eta_max)
    in_hard_jet = np.zeros(len(pf), dtype=bool)
    in_hard_jet[links["pf"][jets["pt"][links["jet_flat"]] > 25.0]] = True
    soft = trk & (pt > 1.0) & ~in_hard_jet & ~np.isin(np.abs(pf["pdgId"]), (PF_ELECTRON, PF_MUON))
    soft_ht = _event_sums(pf["evt"][soft], pt[soft], n)

    gm_pt, gm_phi = _met(ak.to_numpy(gen.genmet_px).astype(np.float64), ak.to_numpy(gen.genmet_py).astype(np.float64))
    npvs = 1 + vertex_rng.binomial(n_pu, tune.vertex_eff)

    out: dict[str, Any] = {
        "run": np.ones(n, dtype=np.uint32),
        "event": ak.to_numpy(gen.event).astype(np.uint64),
        "genWeight": ak.to_numpy(gen.genWeight).astype(np.float32),
        "Electron": electrons.to_jagged(n, {k: k for k in electrons.columns if k != "evt"}),
        "Muon": muons.to_jagged(n, {k: k for k in muons.columns if k != "evt"}),
        "Jet": jets.to_jagged(n, {k: k for k in CONTRACT["Jet"]}),
        "GenJet": genjets.to_jagged(n, {k: k for k in CONTRACT["GenJet"]}),
        "GenPart": gen.genpart,
        "Tau": taus.to_jagged(n, {k: k for k in CONTRACT["Tau"]}),
        "GenVisTau": gen.genvistau,
        "MET": ak.zip(
            {
                "pt": met.pt, "phi": met.phi, "sumEt": met.sum_et,
                "covXX": met.cov_xx, "covXY": met.cov_xy, "covYY": met.cov_yy, "significance": met.significance,
            }
        ),
        "TkMET": ak.zip({"pt": tk_pt, "phi": tk_phi, "sumEt": tk_sumet}),
        "GenMET": ak.zip({"pt": gm_pt, "phi": gm_phi}),
        "PV": ak.zip(
            {
                "x": (0.001 * vertex_rng.standard_normal(n)).astype(np.float32),
                "y": (0.001 * vertex_rng.standard_normal(n)).astype(np.float32),
                "z": pv_z.astype(np.float32),
                "npvs": npvs.astype(np.int32),
                "npvsGood": npvs.astype(np.int32),
            }
        ),
        "Pileup": ak.zip({"nTrueInt": np.full(n, mu, dtype=np.float32), "nPU": n_pu.astype(np.int32)}),
        "SoftActivityJetHT": soft_ht.astype(np.float32),
        "fixedGridRhoFastjetCentralNeutral": rho.astype(np.float32),
    }
    out.update(electron_collections)
    if store_pfcands:
        names = {"d0": "dxy", "d0Err": "d0err", "dzErr": "dzerr"}
        out["PFCands"] = pf.to_jagged(n, {k: names.get(k, k) for k in CONTRACT["PFCands"]})
        pf_starts = np.concatenate([[0], np.cumsum(pf.counts(n))[:-1]])
        links["pf_local"] = (links["pf"] - pf_starts[links["evt"]]).astype(np.int32)
        out["JetPFCands"] = links.to_jagged(n, {"jetIdx": "jet", "pFCandsIdx": "pf_local"})
    return conform(out)


def simulate_chunk(
    gen_path: Path,
    out_path: Path,
    *,
    tune: Tune,
    global_seed: int,
    sample: str,
    chunk: int,
    pileup_path: Path | None,
    mu: float,
    store_pfcands: bool = False,
    store_cells: bool = False,
    sub_chunk: int = 1000,
    progress: bool = True,
) -> dict[str, Any]:
    """Simulate a generated chunk and write the NanoAOD file atomically."""
    from tqdm import tqdm

    from ..errors import InputFileError

    if not Path(gen_path).exists():
        raise InputFileError(f"{gen_path}: generated chunk does not exist")
    gen_all = ak.from_parquet(gen_path)
    # the seed does not depend on the tune: two tunes see the same random numbers wherever they agree
    seed = derive_seed(global_seed, "simulate", sample, chunk)
    pileup = PileupLibrary.load(pileup_path) if (pileup_path is not None and mu > 0) else None
    n_total = len(gen_all)
    with (
        NanoAODWriter(out_path, seed=f"{sample}:{chunk}:{tune.name}") as writer,
        tqdm(total=n_total, desc=f"simulate {sample}[{chunk}]", unit="ev", disable=not progress, mininterval=2.0) as bar,
    ):
        for block_index, start in enumerate(range(0, n_total, sub_chunk)):
            block = gen_all[start : start + sub_chunk]
            arrays = simulate_events(
                block, tune=tune, rng=StepRandom(seed, block_index), pileup=pileup, mu=mu,
                store_pfcands=store_pfcands, store_cells=store_cells,
            )
            arrays["luminosityBlock"] = np.full(len(block), chunk + 1, dtype=np.uint32)
            writer.extend(arrays)
            bar.update(len(block))
    return {"sample": sample, "chunk": chunk, "events": n_total, "seed": seed, "tune": tune.name}
