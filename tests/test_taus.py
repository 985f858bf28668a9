"""Hadronic taus: GenVisTau in the generation record, HPS-like reconstruction, DeepTau-like identification."""

from __future__ import annotations

from dataclasses import replace

import awkward as ak
import numpy as np
import pytest

from hepchain.detector.jets import build_jets
from hepchain.detector.particles import Table, from_jagged, index_within_group
from hepchain.detector.pflow import build_pf
from hepchain.detector.pileup import FIELDS
from hepchain.detector.simulate import _GENPART_FIELDS, StepRandom
from hepchain.detector.taus import _kinematics, _p4, build_taus, survival_to_score, vsjet_survival, wp_bits
from hepchain.detector.tune import NOMINAL
from hepchain.generate.pythia import FLAG_LAST_COPY, GenerationSpec, generate_chunk

Z_TAUTAU = GenerationSpec(
    processes=["WeakSingleBoson:ffbar2gmZ = on"],
    decays=["23:onMode = off", "23:onIfAny = 15"],
    phase_space={"mHatMin": 60},
    events=500,
    chunk_size=500,
)
GVT_FIELDS = ["pt", "eta", "phi", "mass", "charge", "status", "genPartIdxMother"]
PION = 0.13957


@pytest.fixture(scope="module")
def ztt(tmp_path_factory: pytest.TempPathFactory) -> ak.Array:
    out = tmp_path_factory.mktemp("ztt") / "ztt.parquet"
    generate_chunk(Z_TAUTAU, sample="ztt", chunk=0, global_seed=21, out_parquet=out, out_meta=out.with_suffix(".json"), progress=False)
    return ak.from_parquet(out)


def _reconstruct(gen: ak.Array, tune=NOMINAL) -> tuple[Table, Table]:
    """Particle flow, jets and taus as simulate.py runs them (no pile-up); returns (Tau, GenVisTau)."""
    n = len(gen)
    rng = StepRandom(5, 0)
    hard = from_jagged(gen.particles, FIELDS)
    hard["pu"] = np.zeros(len(hard), dtype=bool)
    pv_z = rng("vertex").normal(0.0, tune.beamspot_sigma_z, n)
    hard["vz"] = pv_z[hard["evt"]].astype(np.float32)
    pf = build_pf(hard, pv_z, tune, rng("pflow"))
    genpart = from_jagged(gen.genpart, _GENPART_FIELDS)
    genpart["local"] = index_within_group(genpart.counts(n)).astype(np.int32)
    heavy = from_jagged(gen.heavy, ["pt", "eta", "phi", "flavour"])
    jets, _, links, _ = build_jets(pf, hard.select(np.abs(hard["eta"]) < 5.0), heavy, n, tune, rng("jets"))
    gvt = from_jagged(gen.genvistau, GVT_FIELDS)
    return build_taus(pf, jets, links, gvt, n, tune, rng("taus"), genpart=genpart), gvt


@pytest.fixture(scope="module")
def reco(ztt: ak.Array) -> tuple[Table, Table]:
    return _reconstruct(ztt)


def _genuine(taus: Table, gvt: Table) -> tuple[np.ndarray, np.ndarray]:
    """Rows of genuine taus and the flat GenVisTau index each is matched to."""
    rows = np.flatnonzero(taus["genPartFlav"] == 5)
    first_of_event = np.searchsorted(gvt["evt"], taus["evt"][rows], side="left")
    return rows, first_of_event + taus["genPartIdx"][rows]


# --------------------------------------------------------------------------- generation record


def test_genvistau_decay_modes_follow_pdg(ztt: ak.Array) -> None:
    """Per Z->tau tau tau: PDG 2024 h 11.5%, h pi0 25.9%, h 2pi0 9.3%, 3h 9.8%, 3h pi0 4.6%, leptonic 35.2%."""
    status = ak.to_numpy(ak.flatten(ztt.genvistau.status))
    n_tau = 2 * len(ztt)
    frac = {dm: np.sum(status == dm) / n_tau for dm in (0, 1, 2, 10, 11, 15)}
    assert frac[0] == pytest.approx(0.115, abs=0.03)
    assert frac[1] == pytest.approx(0.259, abs=0.04)
    assert frac[2] == pytest.approx(0.093, abs=0.03)
    assert frac[10] == pytest.approx(0.098, abs=0.03)
    assert frac[11] == pytest.approx(0.046, abs=0.025)
    assert frac[15] < 0.07
    assert 1.0 - len(status) / n_tau == pytest.approx(0.352, abs=0.045)


def test_genvistau_masses_and_links(ztt: ak.Array) -> None:
    gvt = ztt.genvistau
    status = ak.to_numpy(ak.flatten(gvt.status))
    mass = ak.to_numpy(ak.flatten(gvt.mass))
    assert np.median(mass[status == 0]) == pytest.approx(PION, abs=0.005)  # pi nu (K nu is 6% of it)
    assert np.median(mass[status == 1]) == pytest.approx(0.775, abs=0.07)  # rho(770)
    assert 1.0 < np.median(mass[status == 10]) < 1.3  # a1(1260), visible part of its broad shape
    assert np.all(mass < 1.777 + 1e-3)  # never above the tau mass
    # genPartIdxMother is the tau (last copy) in the pruned GenPart, with the same charge
    mother = ztt.genpart[gvt.genPartIdxMother]
    assert ak.all(abs(mother.pdgId) == 15)
    assert ak.all(mother.pdgId == -15 * gvt.charge)
    assert ak.all((mother.statusFlags & FLAG_LAST_COPY) > 0)
    assert ak.all(gvt.pt[:, :-1] >= gvt.pt[:, 1:])
    # the visible particles (|eta| < 5) flagged with a tau add up to its visible charge and pT
    p = ztt.particles
    for i in range(2):
        sel = p.tau == i
        has = ak.to_numpy(ak.num(gvt) > i)
        central = np.zeros(len(has), dtype=bool)
        central[has] = np.abs(ak.to_numpy(gvt.eta[has][:, i])) < 4.0
        charge = ak.to_numpy(ak.sum(p.charge[sel], axis=1))[central]
        assert np.all(charge == ak.to_numpy(gvt.charge[central][:, i]))
        px = ak.to_numpy(ak.sum((p.pt * np.cos(p.phi))[sel], axis=1))[central]
        py = ak.to_numpy(ak.sum((p.pt * np.sin(p.phi))[sel], axis=1))[central]
        closure = np.abs(np.hypot(px, py) / ak.to_numpy(gvt.pt[central][:, i]) - 1.0)
        assert np.all(closure < 1e-3)
    # leptons of leptonic tau decays keep origin 15 and are not flagged (only Dalitz pi0 electrons are)
    leptons = p[(abs(p.pdgId) == 11) | (abs(p.pdgId) == 13)]
    assert ak.all(leptons.tau[leptons.origin == 15] == -1)
    assert ak.sum(leptons.origin == 15) > 0.5 * len(ztt) * 2 * 0.3


def test_radiating_tau_is_not_a_last_copy(ztt: ak.Array) -> None:
    """A tau that radiates a photon has daughters (tau, gamma): only the decaying copy is the last copy."""
    gp = ztt.genpart
    last = gp[(abs(gp.pdgId) == 15) & ((gp.statusFlags & FLAG_LAST_COPY) > 0)]
    mother_id = abs(gp.pdgId[last.genPartIdxMother])
    from_z = last[(mother_id == 15) | (mother_id == 23) | (mother_id == 22)]  # not taus from b/c-hadron decays
    assert ak.all(ak.num(from_z) == 2)
    radiated = gp[(abs(gp.pdgId) == 15) & ((gp.statusFlags & FLAG_LAST_COPY) == 0)]
    assert ak.sum(ak.num(radiated)) > 0.05 * len(ztt)  # the sample has taus that radiated (QED FSR)


# --------------------------------------------------------------------------- hand-made candidates


def _handmade(objects: list[tuple[float, float, float, int, int, int]], in_jet: list[bool]) -> tuple[Table, Table, Table]:
    """One event: PF candidates (pt, eta, phi, charge, pdgId, fromPV), one jet made of those flagged ``in_jet``."""
    pt, eta, phi, charge, pdg, from_pv = (np.array(c) for c in zip(*objects, strict=True))
    n = len(pt)
    mass = np.where(charge != 0, PION, 0.0)
    pf = Table(
        {
            "evt": np.zeros(n, dtype=np.int64), "pt": pt.astype(np.float32), "eta": eta.astype(np.float32),
            "phi": phi.astype(np.float32), "mass": mass.astype(np.float32), "charge": charge.astype(np.int32),
            "pdgId": pdg.astype(np.int32), "fromPV": from_pv.astype(np.int32),
            "dxy": np.full(n, 0.001, np.float32), "dz": np.full(n, 0.002, np.float32),
        }
    )
    members = np.flatnonzero(in_jet)
    jp4 = _p4(pf["pt"][members], pf["eta"][members], pf["phi"][members], pf["mass"][members]).sum(axis=0)
    jpt, jeta, jphi, jmass = _kinematics(jp4)
    jets = Table({"evt": np.zeros(1, np.int64), "pt": np.array([jpt]), "eta": np.array([jeta]), "phi": np.array([jphi]),
                  "mass": np.array([jmass])})
    links = Table({"evt": np.zeros(len(members), np.int64), "jet": np.zeros(len(members), np.int32),
                   "jet_flat": np.zeros(len(members), np.int64), "pf": members})
    return pf, jets, links


NO_GEN = Table({"evt": np.zeros(0, np.int64), "pt": np.zeros(0), "eta": np.zeros(0), "phi": np.zeros(0)})


def test_one_prong_one_pi0_with_isolation() -> None:
    """pi+ (20 GeV) and a pi0 seen as two merged photons (8 + 6 GeV) dphi = 0.05 away: decay mode 1, rho-like mass."""
    objects = [
        (20.0, 0.0, 0.50, 1, 211, 3),  # leading charged pion
        (8.0, 0.0, 0.55, 0, 22, 0),  # pi0 photons
        (6.0, 0.0, 0.55, 0, 22, 0),
        (2.0, 0.3, 0.50, -1, -211, 3),  # PV charged hadron in the isolation cone
        (3.0, 0.0, 0.90, 0, 22, 0),  # photon in the isolation cone
        (5.0, 0.6, 0.50, 1, 211, 0),  # pile-up charged hadron within dR < 0.8
    ]
    pf, jets, links = _handmade(objects, [True, True, True, True, False, False])
    taus = build_taus(pf, jets, links, NO_GEN, 1, NOMINAL, np.random.default_rng(1))
    assert len(taus) == 1
    # hand computation: the strip is the photon pair's 3-momentum with the pi0 mass
    pion = _p4(np.array([20.0]), np.array([0.0]), np.array([0.50]), np.array([PION]))[0]
    strip = _p4(np.array([14.0]), np.array([0.0]), np.array([0.55]), np.array([0.136]))[0]
    pt, _, _, mass = _kinematics(pion + strip)
    assert taus["decayMode"][0] == 1
    assert taus["charge"][0] == 1
    assert taus["mass"][0] == pytest.approx(mass, rel=1e-4)
    assert 0.6 < mass < 1.0
    assert taus["pt"][0] == pytest.approx(pt, rel=1e-5)
    assert taus["leadTkPtOverTauPt"][0] == pytest.approx(20.0 / pt, rel=1e-5)
    assert taus["chargedIso"][0] == pytest.approx(2.0)
    assert taus["neutralIso"][0] == pytest.approx(3.0)
    assert taus["puCorr"][0] == pytest.approx(5.0)
    assert taus["rawIso"][0] == pytest.approx(2.0 + 3.0 - 0.2 * 5.0)
    assert taus["genPartFlav"][0] == 0 and taus["genPartIdx"][0] == -1 and taus["jetIdx"][0] == 0


def test_three_prongs_charge_rule_and_two_prong_rejection() -> None:
    three = [(15.0, 0.0, 1.0, 1, 211, 3), (10.0, 0.03, 1.04, 1, 211, 3), (8.0, -0.02, 0.97, -1, -211, 3)]
    pf, jets, links = _handmade(three, [True] * 3)
    taus = build_taus(pf, jets, links, NO_GEN, 1, NOMINAL, np.random.default_rng(1))
    p4 = _p4(pf["pt"], pf["eta"], pf["phi"], pf["mass"]).sum(axis=0)
    pt, _, _, mass = _kinematics(p4)
    assert taus["decayMode"].tolist() == [10] and taus["charge"].tolist() == [1]
    assert taus["mass"][0] == pytest.approx(mass, rel=1e-4) and 0.8 < mass < 1.5
    assert taus["pt"][0] == pytest.approx(pt, rel=1e-5)
    assert taus["idDecayModeOldDMs"][0]
    # three same-sign prongs (|q| = 3): the 3-prong hypotheses are invalid, the leading prong alone remains
    same_sign = [(20.0, 0.0, 1.0, 1, 211, 3), (10.0, 0.03, 1.04, 1, 211, 3), (8.0, -0.02, 0.97, 1, 211, 3)]
    pf, jets, links = _handmade(same_sign, [True] * 3)
    taus = build_taus(pf, jets, links, NO_GEN, 1, NOMINAL, np.random.default_rng(1))
    assert taus["decayMode"].tolist() == [0] and taus["pt"][0] == pytest.approx(20.0, rel=1e-5)
    assert taus["mass"][0] == pytest.approx(PION, rel=1e-3)
    # two prongs inside the signal cone: a 2-prong candidate, dropped as in analyses
    two = [(20.0, 0.0, 1.0, 1, 211, 3), (10.0, 0.02, 1.02, -1, -211, 3)]
    pf, jets, links = _handmade(two, [True] * 2)
    assert len(build_taus(pf, jets, links, NO_GEN, 1, NOMINAL, np.random.default_rng(1))) == 0


def test_scores_reproduce_survival_and_bits_are_cumulative() -> None:
    wps = NOMINAL.deeptau_vsjet_wp
    target = np.array(NOMINAL.deeptau_vsjet_eff)
    u = np.random.default_rng(3).random(200_000)
    score = survival_to_score(np.broadcast_to(target, (len(u), len(wps))).copy(), wps, u)
    passed = np.array([np.mean(score > t) for t in wps])
    np.testing.assert_allclose(passed, target, atol=0.005)
    assert np.all((score >= 0) & (score <= 1))
    bits = wp_bits(np.array([0.0, 0.9, 1.0], dtype=np.float32), wps)
    assert bits.tolist() == [0, 0b11111, 0xFF]  # 0.9 passes VVVLoose ... Medium


def test_vsjet_survival_isolated_fakes_pass_more() -> None:
    pt = np.full(3, 30.0)
    s = vsjet_survival(pt, np.array([0.05, 0.45, 1.5]), np.zeros(3, bool), NOMINAL)
    medium = s[:, 4]
    assert medium[1] == pytest.approx(NOMINAL.deeptau_vsjet_fake[4])  # at the reference isolation: the published rate
    assert medium[0] > 2 * medium[1] > 4 * medium[2]
    assert np.all(np.diff(s, axis=1) <= 0)  # tighter working points never pass more
    genuine = vsjet_survival(pt, np.array([0.0, 0.2, 2.0]), np.ones(3, bool), NOMINAL)
    np.testing.assert_allclose(genuine[:2], np.broadcast_to(NOMINAL.deeptau_vsjet_eff, (2, 8)))
    assert genuine[2, 4] < 0.5 * NOMINAL.deeptau_vsjet_eff[4]


# --------------------------------------------------------------------------- Z -> tau tau


def test_reconstructed_taus_response_and_decay_modes(reco: tuple[Table, Table]) -> None:
    taus, gvt = reco
    rows, gen = _genuine(taus, gvt)
    assert len(rows) > 150
    response = taus["pt"][rows] / gvt["pt"][gen]
    p25, p50, p75 = np.percentile(response, [25, 50, 75])
    assert p50 == pytest.approx(1.0, abs=0.03)
    assert 0.005 < (p75 - p25) / 1.349 < 0.15
    reco_dm, gen_dm = taus["decayMode"][rows], gvt["status"][gen]
    for dm in (0, 10):
        assert np.mean(gen_dm[reco_dm == dm] == dm) > 0.55, dm  # purity (measured 0.66 and 0.80 on 1000 events)
    assert np.median(taus["mass"][rows][reco_dm == 1]) == pytest.approx(0.775, abs=0.12)
    # reconstruction efficiency of hadronic taus in the acceptance, as CMS (about 80-90% at pT > 20 GeV)
    acc = (gvt["pt"] > 20) & (np.abs(gvt["eta"]) < 2.1) & np.isin(gvt["status"], (0, 1, 2, 10, 11))
    found = np.zeros(len(gvt), bool)
    found[gen] = True
    assert 0.65 < found[acc].mean() < 0.95


def test_identification_rates(reco: tuple[Table, Table]) -> None:
    taus, _ = reco
    flav = taus["genPartFlav"]
    medium = (taus["idDeepTau2017v2p1VSjet"] & 16) > 0
    genuine, jet = flav == 5, flav == 0
    assert medium[genuine].mean() == pytest.approx(0.70, abs=0.08)  # DeepTau Medium: 70% for genuine taus
    iso = taus["rawIso"] / taus["pt"]
    expected = vsjet_survival(taus["pt"][jet], iso[jet], np.zeros(jet.sum(), bool), NOMINAL)[:, 4]
    assert jet.sum() > 20
    assert 0.002 < expected.mean() < 0.03  # percent-level fake rate per candidate, as published
    assert medium[jet].mean() < 0.1
    # muons from tau decays make DM0 candidates; DeepTau VSmu Tight rejects them, keeps genuine taus
    mu_tight = (taus["idDeepTau2017v2p1VSmu"] & 8) > 0
    muons = (flav == 2) | (flav == 4)
    assert muons.sum() > 10 and mu_tight[muons].mean() < 0.05
    assert mu_tight[genuine].mean() > 0.95
    e_medium = (taus["idDeepTau2017v2p1VSe"] & 16) > 0
    electrons = (flav == 1) | (flav == 3)
    assert electrons.sum() > 10 and e_medium[electrons].mean() < 0.05
    assert e_medium[genuine].mean() == pytest.approx(0.90, abs=0.05)
    # bitmasks are cumulative
    for name in ("VSjet", "VSe", "VSmu"):
        bits = taus[f"idDeepTau2017v2p1{name}"].astype(np.int64)
        assert np.all((bits & (bits + 1)) == 0)


def test_pseudodata_tau_energy_scale_and_id(ztt: ak.Array, reco: tuple[Table, Table]) -> None:
    shifted = replace(NOMINAL, tau_energy_scale=0.98, tau_id_eff_scale=0.95)
    taus, gvt = _reconstruct(ztt, shifted)
    nominal, _ = reco
    rows_s, gen_s = _genuine(taus, gvt)
    rows_n, gen_n = _genuine(nominal, gvt)
    ratio = np.median(taus["pt"][rows_s] / gvt["pt"][gen_s]) / np.median(nominal["pt"][rows_n] / gvt["pt"][gen_n])
    assert ratio == pytest.approx(0.98, abs=0.006)
    s = vsjet_survival(np.array([40.0]), np.array([0.0]), np.array([True]), shifted)
    assert s[0, 4] == pytest.approx(0.95 * 0.70)
