"""Generation: seeds, chunking, cross sections with forced decays, filters, determinism."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from hepchain.errors import ConfigError
from hepchain.generate.pythia import (
    FLAG_LAST_COPY,
    GenerationSpec,
    _make_pythia,
    combine_chunk_metadata,
    generate_chunk,
    open_branching_fraction,
)
from hepchain.generate.seeds import derive_seed

W_MUNU = GenerationSpec(
    processes=["WeakSingleBoson:ffbar2W = on"],
    decays=["24:onMode = off", "24:onIfAny = 13"],
    events=40,
    chunk_size=20,
)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_seeds_are_deterministic_distinct_and_in_pythia_range() -> None:
    assert derive_seed(1, "generate", "vh", 0) == derive_seed(1, "generate", "vh", 0)
    seeds = {derive_seed(s, "generate", name, c) for s in (1, 2) for name in ("vh", "top") for c in range(50)}
    assert len(seeds) == 200
    assert all(1 <= s <= 900_000_000 for s in seeds)


def test_chunking() -> None:
    spec = GenerationSpec(processes=["X"], events=2500, chunk_size=1000)
    assert spec.n_chunks == 3
    assert [spec.chunk_events(c) for c in range(3)] == [1000, 1000, 500]
    with pytest.raises(ConfigError):
        spec.chunk_events(3)


def test_unknown_generate_key_is_named() -> None:
    with pytest.raises(ConfigError, match=r"samples\.x\.generate: unknown key 'evnts'"):
        GenerationSpec.from_config({"processes": ["a"], "evnts": 3}, "samples.x.generate")


def test_same_config_same_bytes_and_chunks_differ(tmp_path: Path) -> None:
    paths = []
    for run in ("a", "b"):
        for chunk in (0, 1):
            out = tmp_path / run / f"{chunk}.parquet"
            generate_chunk(W_MUNU, sample="w", chunk=chunk, global_seed=7, out_parquet=out, out_meta=out.with_suffix(".json"), progress=False)
            paths.append(out)
    a0, a1, b0, b1 = paths
    assert _sha(a0) == _sha(b0) and _sha(a1) == _sha(b1)
    assert _sha(a0) != _sha(a1)
    meta = json.loads(a1.with_suffix(".json").read_text())
    assert meta["first_event"] == 21 and meta["events"] == 20
    events = ak.from_parquet(a1)
    assert events.event.tolist() == list(range(21, 41))


def test_reduced_record_content(tmp_path: Path) -> None:
    out = tmp_path / "w.parquet"
    generate_chunk(W_MUNU, sample="w", chunk=0, global_seed=3, out_parquet=out, out_meta=tmp_path / "w.json", progress=False)
    ev = ak.from_parquet(out)
    # every event has exactly one prompt muon among the final-state particles
    muons = ev.particles[(abs(ev.particles.pdgId) == 13) & (ev.particles.origin == 1)]
    assert ak.all(ak.num(muons) == 1)
    # neutrinos are not among the visible particles; GenMET (all neutrinos) is mostly the prompt one
    assert not ak.any(abs(ev.particles.pdgId) == 14)
    nu = ev.genpart[(abs(ev.genpart.pdgId) == 14) & (ev.genpart.status == 1)]
    assert ak.all(ak.num(nu) == 1)
    diff = ak.to_numpy(ak.sum(nu.pt, axis=1)) - np.hypot(ev.genmet_px, ev.genmet_py)
    assert np.median(np.abs(diff)) < 0.5
    # the W is kept as a last copy and the muon's mother chain reaches it
    w = ev.genpart[(abs(ev.genpart.pdgId) == 24) & ((ev.genpart.statusFlags & FLAG_LAST_COPY) > 0)]
    assert ak.all(ak.num(w) >= 1)
    mu = ev.genpart[(abs(ev.genpart.pdgId) == 13) & (ev.genpart.status == 1)]
    mother = mu.genPartIdxMother
    # the final muon's mother is the W or the muon copy of the hard process, whose mother is the W
    mother = ak.where(abs(ev.genpart.pdgId[mother]) == 13, ev.genpart.genPartIdxMother[mother], mother)
    assert ak.all(abs(ak.flatten(ev.genpart.pdgId[mother])) == 24)
    # charges of visible particles are physical
    assert set(np.unique(ak.to_numpy(ak.flatten(ev.particles.charge)))) <= {-1, 0, 1}


def test_sigma_gen_folds_in_resonance_branching_fractions() -> None:
    """Pythia's sigmaGen already includes forced resonance decays (H -> WW, W -> l nu)."""

    def sigma(decays: list[str]) -> float:
        spec = GenerationSpec(processes=["HiggsSM:gg2H = on"], decays=decays, settings=["PartonLevel:all = off", "HadronLevel:all = off"])
        pythia, _ = _make_pythia(spec.pythia_settings(12345))
        pythia.nextBatch(3000)
        return pythia.infoPython().sigmaGen()

    inclusive = sigma([])
    to_ww = sigma(["25:onMode = off", "25:onIfMatch = 24 -24"])
    to_lvlv = sigma(["25:onMode = off", "25:onIfMatch = 24 -24", "24:onMode = off", "24:onIfAny = 11 13"])
    assert to_ww / inclusive == pytest.approx(0.216, rel=0.05)  # BR(H -> WW) at 125 GeV
    assert to_lvlv / to_ww == pytest.approx((0.1081 * 2) ** 2, rel=0.05)  # BR(W -> e nu, mu nu)^2


def test_tau_branching_fraction_for_br_correction() -> None:
    spec = GenerationSpec(processes=["WeakSingleBoson:ffbar2gmZ = on"], decays=["15:onMode = off", "15:onIfAny = 11 13"], settings=["PartonLevel:all = off"])
    pythia, _ = _make_pythia(spec.pythia_settings(1))
    assert open_branching_fraction(pythia, 15) == pytest.approx(0.1782 + 0.1739, abs=0.01)  # PDG leptonic tau BRs


def test_vh_filter_keeps_hadronic_v_and_leptonic_higgs(tmp_path: Path) -> None:
    spec = GenerationSpec(
        processes=["HiggsSM:ffbar2HW = on", "HiggsSM:ffbar2HZ = on"],
        decays=["25:onMode = off", "25:onIfMatch = 24 -24", "24:onMode = off", "24:onIfAny = 1 2 3 4 5 11 13", "23:onMode = off", "23:onIfAny = 1 2 3 4 5"],
        filter="vh_hadronic_v_leptonic_h",
        settings=["PartonLevel:MPI = off", "HadronLevel:all = off"],
        events=30,
        chunk_size=30,
    )
    out = tmp_path / "vh.parquet"
    meta = generate_chunk(spec, sample="vh", chunk=0, global_seed=5, out_parquet=out, out_meta=tmp_path / "vh.json", progress=False)
    ev = ak.from_parquet(out)
    leptons = ev.genpart[((abs(ev.genpart.pdgId) == 11) | (abs(ev.genpart.pdgId) == 13)) & (ev.genpart.status == 1)]
    assert ak.all(ak.num(leptons) == 2)  # both W from the Higgs decay to e or mu
    assert meta["sigma_pb"] > 0
    with pytest.raises(ConfigError, match="unknown filter"):
        _make_pythia(spec.pythia_settings(1), "nosuch")


def test_combine_chunk_metadata() -> None:
    metas = [
        {"sample": "s", "events": 100, "sigma_pb": 2.0, "sigma_gen_err_pb": 0.2, "br_correction": 1.0, "sum_gen_weight": 100.0},
        {"sample": "s", "events": 300, "sigma_pb": 1.0, "sigma_gen_err_pb": 0.1, "br_correction": 1.0, "sum_gen_weight": 300.0},
    ]
    c = combine_chunk_metadata(metas)
    assert c["sigma_pb"] == pytest.approx(1.25)
    assert c["events"] == 400 and c["sum_gen_weight"] == 400.0
    assert c["sigma_err_pb"] == pytest.approx(np.hypot(0.25 * 0.2, 0.75 * 0.1))
