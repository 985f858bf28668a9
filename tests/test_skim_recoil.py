"""Tests of the W -> mu nu recoil skim (hepchain.skim.recoil).

Tiny hand-made NanoAOD files put one event on each side of every threshold;
each event carries the name of the first cut it must fail (or None), from
which the expected survivors and cutflow follow.  The base event's PF
candidates, jets and truth are laid out so that every recoil column can be
computed by hand.
"""

from __future__ import annotations

import itertools
import math
import shutil
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest

from hepchain.errors import ConfigError, MissingBranchError
from hepchain.nanoaod import write_nanoaod
from hepchain.skim.recoil import (
    BRANCHES,
    COLUMN_BRANCHES,
    COLUMNS,
    CUTS,
    EXTENDED_BRANCHES,
    STAGE,
    RecoilSelection,
    run_recoil_skim,
    skim_columns,
)
from tests.helpers import real_nanoaod

pytestmark = [
    pytest.mark.filterwarnings("ignore:Missing cross-reference index:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Branch Photon_:RuntimeWarning"),
]

MU_FIELDS = {
    "pt": np.float32,
    "eta": np.float32,
    "phi": np.float32,
    "mass": np.float32,
    "charge": np.int32,
    "pdgId": np.int32,
    "pfRelIso04_all": np.float32,
    "tightId": np.bool_,
    "dxy": np.float32,
    "dz": np.float32,
}
ELE_FIELDS = {
    "pt": np.float32,
    "eta": np.float32,
    "phi": np.float32,
    "mass": np.float32,
    "charge": np.int32,
    "pdgId": np.int32,
    "cutBased": np.int32,
}
JET_FIELDS = {"pt": np.float32, "eta": np.float32, "phi": np.float32, "mass": np.float32, "jetId": np.int32}
PF_FIELDS = {
    "pt": np.float32,
    "eta": np.float32,
    "phi": np.float32,
    "mass": np.float32,
    "charge": np.int32,
    "pdgId": np.int32,
    "fromPV": np.int32,
}
GEN_FIELDS = {
    "pt": np.float32,
    "eta": np.float32,
    "phi": np.float32,
    "mass": np.float32,
    "pdgId": np.int32,
    "status": np.int32,
    "statusFlags": np.int32,
    "genPartIdxMother": np.int32,
}

LAST = 1 << 13
HARD = (1 << 7) | (1 << 8)


def mu(**kw: Any) -> dict[str, Any]:
    """The selected muon (mu-) unless overridden."""
    base = {
        "pt": 40.0,
        "eta": 0.3,
        "phi": 0.0,
        "mass": 0.1057,
        "charge": -1,
        "pdgId": 13,
        "pfRelIso04_all": 0.02,
        "tightId": True,
        "dxy": 0.001,
        "dz": 0.01,
    }
    return base | kw


def loose_mu(**kw: Any) -> dict[str, Any]:
    """A second, non-tight muon that is a veto muon unless overridden."""
    return mu(pt=15.0, eta=-1.2, phi=2.0, charge=1, pdgId=-13, pfRelIso04_all=0.2, tightId=False) | kw


def ele(**kw: Any) -> dict[str, Any]:
    """A veto electron unless overridden."""
    return {"pt": 15.0, "eta": 1.0, "phi": -2.0, "mass": 0.000511, "charge": 1, "pdgId": -11, "cutBased": 1} | kw


def pf(pt: float, eta: float, phi: float, charge: int, pdg: int, from_pv: int) -> dict[str, Any]:
    return {"pt": pt, "eta": eta, "phi": phi, "mass": 0.0, "charge": charge, "pdgId": pdg, "fromPV": from_pv}


#: PF candidates of the base event (muon at eta 0.3, phi 0): (pt, eta, phi, charge, pdgId, fromPV).
BASE_PF = [
    pf(40.0, 0.3, 0.0, -1, 13, 3),  # the muon itself: dR 0, out
    pf(2.0, 0.3, 0.09, 0, 22, 0),  # FSR photon at dR 0.09: out
    pf(3.0, 0.41, 0.0, 0, 22, 0),  # photon at dR 0.11: recoil (photon)
    pf(10.0, -1.0, 2.0, 1, 211, 3),  # PV charged hadron
    pf(5.0, 0.5, -2.5, -1, 211, 1),  # charged hadron with fromPV 1 (PVLoose): still PV
    pf(4.0, 1.0, 1.0, 1, 211, 0),  # pile-up charged hadron: not recoil, in u_pu
    pf(8.0, 2.0, 3.0, 0, 130, 0),  # neutral hadron
    pf(6.0, -0.5, -1.0, 0, 22, 0),  # photon
    pf(1.5, 4.0, 0.5, 0, 2, 0),  # HF EM: photon class
    pf(3.5, 0.0, 1.5, -1, 11, 3),  # PV PF electron: charged
    pf(0.7, -3.5, -3.0, 0, 1, 0),  # HF hadron: neutral-hadron class
]


def jet(pt: float, eta: float, phi: float, jet_id: int = 6) -> dict[str, Any]:
    return {"pt": pt, "eta": eta, "phi": phi, "mass": 5.0, "jetId": jet_id}


BASE_JETS = [
    jet(45.0, 0.32, 0.02),  # the muon's jet, dR 0.028: removed
    jet(30.0, -1.0, 2.1),  # j0
    jet(25.0, 0.3, 0.39),  # dR 0.39 to the muon: removed
    jet(22.0, 0.3, -0.41),  # dR 0.41: kept, j1
    jet(20.5, 3.0, -2.0, 2),  # tight ID only (jetId 2): kept
    jet(19.9, 1.0, 1.0),  # below 20 GeV
    jet(50.0, 4.8, 0.0),  # |eta| > 4.7
    jet(60.0, -2.0, -1.5, 0),  # fails jet ID
]


def gen(pt: float, eta: float, phi: float, mass: float, pdg: int, status: int, flags: int, mother: int) -> dict:
    return {
        "pt": pt,
        "eta": eta,
        "phi": phi,
        "mass": mass,
        "pdgId": pdg,
        "status": status,
        "statusFlags": flags,
        "genPartIdxMother": mother,
    }


def gen_w(pdg: int = 24, last: bool = True) -> list[dict[str, Any]]:
    """A W (first copy, then last copy unless ``last`` is False) with its muon and neutrino."""
    return [
        gen(5.0, 0.0, 1.0, 80.0, pdg, 22, HARD, -1),
        gen(12.5, 0.1, 2.8, 80.25, pdg, 62, HARD | (LAST if last else 0), 0),
        gen(41.0, 0.3, 0.0, 0.1057, 13 if pdg < 0 else -13, 1, 1 | LAST, 1),
        gen(38.0, 1.5, 3.05, 0.0, -14 if pdg < 0 else 14, 1, 1 | LAST, 1),
    ]


def _mt_phi(mt: float, pt1: float, pt2: float) -> float:
    """Azimuthal separation giving transverse mass ``mt``."""
    return math.acos(1.0 - mt * mt / (2.0 * pt1 * pt2))


# (label, first cut failed or None, muons, electrons, MET (pt, phi), genWeight)
CASES: list[tuple[str, str | None, list, list, tuple[float, float], float]] = [
    ("base", None, [mu()], [], (40.0, 3.0), 1.5),
    ("no_muon", "one_muon", [], [], (40.0, 3.0), 2.0),
    ("muon_pt_25p1", None, [mu(pt=25.1)], [], (40.0, 3.0), 0.25),
    ("muon_pt_24p9", "one_muon", [mu(pt=24.9)], [], (40.0, 3.0), 3.0),
    ("muon_eta_2p39", None, [mu(eta=-2.39)], [], (40.0, 3.0), 1.25),
    ("muon_eta_2p41", "one_muon", [mu(eta=2.41)], [], (40.0, 3.0), -0.5),
    ("muon_iso_0p14", None, [mu(pfRelIso04_all=0.14)], [], (40.0, 3.0), 0.75),
    ("muon_iso_0p16", "one_muon", [mu(pfRelIso04_all=0.16)], [], (40.0, 3.0), 2.25),
    ("muon_not_tight", "one_muon", [mu(tightId=False)], [], (40.0, 3.0), 1.0),
    ("muon_dxy_0p04", None, [mu(dxy=-0.04)], [], (40.0, 3.0), 1.75),
    ("muon_dxy_0p06", "one_muon", [mu(dxy=-0.06)], [], (40.0, 3.0), 1.0),
    ("muon_dz_0p19", None, [mu(dz=0.19)], [], (40.0, 3.0), 1.0),
    ("muon_dz_0p21", "one_muon", [mu(dz=-0.21)], [], (40.0, 3.0), 1.0),
    ("two_muons", "one_muon", [mu(), mu(pt=30.0, eta=-1.0, phi=2.0, charge=1, pdgId=-13)], [], (40.0, 3.0), 4.0),
    ("veto_muon_10p1", "lepton_veto", [mu(), loose_mu(pt=10.1)], [], (40.0, 3.0), 0.5),
    ("veto_muon_9p9", None, [mu(), loose_mu(pt=9.9)], [], (40.0, 3.0), 1.0),
    ("veto_muon_iso_0p24", "lepton_veto", [mu(), loose_mu(pfRelIso04_all=0.24)], [], (40.0, 3.0), 1.0),
    ("veto_muon_iso_0p26", None, [mu(), loose_mu(pfRelIso04_all=0.26)], [], (40.0, 3.0), 1.0),
    ("veto_muon_eta_2p41", None, [mu(), loose_mu(eta=2.41)], [], (40.0, 3.0), 1.0),
    ("second_tight_muon_20", "lepton_veto", [mu(), mu(pt=20.0, eta=-1.0, phi=2.0)], [], (40.0, 3.0), -1.5),
    ("veto_ele_10p1", "lepton_veto", [mu()], [ele(pt=10.1)], (40.0, 3.0), 2.5),
    ("veto_ele_9p9", None, [mu()], [ele(pt=9.9)], (40.0, 3.0), 1.0),
    ("veto_ele_fails_id", None, [mu()], [ele(cutBased=0)], (40.0, 3.0), 1.0),
    ("veto_ele_eta_2p49", "lepton_veto", [mu()], [ele(eta=-2.49)], (40.0, 3.0), 1.0),
    ("veto_ele_eta_2p51", None, [mu()], [ele(eta=2.51)], (40.0, 3.0), 1.0),
    ("met_25p1", None, [mu()], [], (25.1, 3.0), 0.5),
    ("met_24p9", "met", [mu()], [], (24.9, 3.0), 1.25),
    ("mt_50p1", None, [mu()], [], (40.0, _mt_phi(50.1, 40.0, 40.0)), 1.0),
    ("mt_49p9", "mt", [mu()], [], (40.0, -_mt_phi(49.9, 40.0, 40.0)), 2.0),
    ("w_minus", None, [mu(charge=1, pdgId=-13)], [], (40.0, 3.0), 1.0),
    ("no_last_copy_w", None, [mu()], [], (40.0, 3.0), 1.0),
]

N_PASS = 16


def _events() -> list[dict[str, Any]]:
    out = []
    for i, (label, _, muons, electrons, (met_pt, met_phi), w) in enumerate(CASES):
        m = muons[0] if muons else mu()
        pfs = [pf(m["pt"], m["eta"], m["phi"], m["charge"], m["pdgId"], 3), *BASE_PF[1:]]
        truth = gen_w(-24) if label == "w_minus" else gen_w(24, last=label != "no_last_copy_w")
        out.append(
            {
                "event": 1000 + i,
                "muons": muons,
                "electrons": electrons,
                "jets": BASE_JETS,
                "pfcands": pfs,
                "genpart": truth,
                "met": (met_pt, met_phi),
                "w": w,
            }
        )
    return out


def _collection(events: list[dict[str, Any]], key: str, fields: dict[str, Any], skip: tuple[str, ...] = ()) -> ak.Array:
    counts = np.array([len(ev[key]) for ev in events], dtype=np.int64)
    return ak.zip(
        {
            f: ak.unflatten(np.array([o[f] for ev in events for o in ev[key]], dtype=dt), counts)
            for f, dt in fields.items()
            if f not in skip
        }
    )


def write_events(
    path: Path,
    events: list[dict[str, Any]],
    *,
    truth: bool = True,
    skip: dict[str, tuple[str, ...]] | None = None,
    pfcands: bool = True,
) -> Path:
    """Write ``events`` as NanoAOD; ``truth=False`` drops genWeight, GenPart and GenMET (data)."""
    skip = skip or {}
    n = len(events)
    arrays: dict[str, Any] = {
        "run": np.ones(n, dtype=np.uint32),
        "luminosityBlock": np.ones(n, dtype=np.uint32),
        "event": np.array([ev["event"] for ev in events], dtype=np.uint64),
        "Muon": _collection(events, "muons", MU_FIELDS, skip.get("Muon", ())),
        "Electron": _collection(events, "electrons", ELE_FIELDS, skip.get("Electron", ())),
        "Jet": _collection(events, "jets", JET_FIELDS, skip.get("Jet", ())),
        "MET": ak.zip(
            {
                "pt": np.array([ev["met"][0] for ev in events], dtype=np.float32),
                "phi": np.array([ev["met"][1] for ev in events], dtype=np.float32),
                "sumEt": np.full(n, 120.0, dtype=np.float32),
            }
        ),
        "TkMET": ak.zip(
            {
                "pt": np.full(n, 30.0, dtype=np.float32),
                "phi": np.full(n, 2.9, dtype=np.float32),
                "sumEt": np.full(n, 50.0, dtype=np.float32),
            }
        ),
        "PV": ak.zip(
            {
                "x": np.zeros(n, dtype=np.float32),
                "y": np.zeros(n, dtype=np.float32),
                "z": np.zeros(n, dtype=np.float32),
                "npvs": np.arange(n, dtype=np.int32) % 4 + 1,
                "npvsGood": np.arange(n, dtype=np.int32) % 4 + 1,
            }
        ),
    }
    if pfcands:
        arrays["PFCands"] = _collection(events, "pfcands", PF_FIELDS, skip.get("PFCands", ()))
    if truth:
        arrays["genWeight"] = np.array([ev["w"] for ev in events], dtype=np.float32)
        arrays["GenPart"] = _collection(events, "genpart", GEN_FIELDS)
        arrays["GenMET"] = ak.zip({"pt": np.full(n, 38.0, dtype=np.float32), "phi": np.full(n, 3.05, dtype=np.float32)})
    write_nanoaod(path, arrays, seed=path.name)
    return path


def _expected_cutflow(cases: list[tuple]) -> list[tuple[str, int, float]]:
    order = ["all", *CUTS]
    rows = []
    for k, name in enumerate(order):
        kept = [c for c in cases if c[1] is None or order.index(c[1]) > k]
        rows.append((name, len(kept), math.fsum(c[5] for c in kept)))
    return rows


def _index(label: str) -> int:
    return [c[0] for c in CASES].index(label)


@pytest.fixture(scope="module")
def skim_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_events(tmp_path_factory.mktemp("recoil") / "cases.root", _events())


@pytest.fixture(scope="module")
def skim_result(skim_file: Path) -> tuple[dict[str, np.ndarray], dict]:
    return run_recoil_skim([str(skim_file)], selection=RecoilSelection())


# ------------------------------------------------------------------ selection


def test_survivors_are_exactly_the_passing_cases(skim_result: tuple) -> None:
    table, _ = skim_result
    expected = [1000 + i for i, c in enumerate(CASES) if c[1] is None]
    assert table["event"].tolist() == expected
    assert len(expected) == N_PASS
    assert list(table) == list(COLUMNS)
    for name, (dtype, shape) in COLUMNS.items():
        assert table[name].dtype == np.dtype(dtype), name
        assert table[name].shape == (N_PASS, *shape), name


def test_cutflow_counts_raw_and_weighted(skim_result: tuple) -> None:
    _, cutflow = skim_result
    got = [(c["name"], c["raw"], c["weighted"]) for c in cutflow["cuts"]]
    assert [g[0] for g in got] == ["all", *CUTS]
    assert [g[1] for g in got] == [31, 23, 18, 17, 16]  # counted by hand from CASES
    for (name, raw, weighted), (ename, eraw, eweighted) in zip(got, _expected_cutflow(CASES), strict=True):
        assert (name, raw) == (ename, eraw)
        assert weighted == pytest.approx(eweighted, abs=1e-12), name
    assert [g[2] for g in got] == pytest.approx([36.5, 22.75, 19.25, 18.0, 16.0])
    assert cutflow["sumw"] == pytest.approx(math.fsum(c[5] for c in CASES))
    assert cutflow["n_events"] == len(CASES)
    assert cutflow["selection"] == RecoilSelection().to_dict()


def test_every_cut_is_exercised_on_both_sides() -> None:
    failing = {c[1] for c in CASES}
    assert set(CUTS) <= failing and None in failing


def test_cutflow_only_gives_same_cutflow_and_empty_columns(skim_file: Path, skim_result: tuple) -> None:
    _, cutflow = skim_result
    table, cutflow2 = run_recoil_skim([str(skim_file)], cutflow_only=True)
    assert cutflow2 == cutflow
    assert list(table) == list(COLUMNS)
    for name, (dtype, shape) in COLUMNS.items():
        assert table[name].shape == (0, *shape) and table[name].dtype == np.dtype(dtype), name


# ------------------------------------------------------------------ columns of known events


def _vec_sum(items: list[tuple[float, float]]) -> tuple[float, float]:
    return math.fsum(p * math.cos(f) for p, f in items), math.fsum(p * math.sin(f) for p, f in items)


def test_muon_met_and_event_columns_of_the_base_event(skim_result: tuple) -> None:
    table, _ = skim_result
    assert table["event"][0] == 1000 and table["genWeight"][0] == 1.5
    assert table["mu_pt"][0] == pytest.approx(40.0) and table["mu_eta"][0] == pytest.approx(0.3)
    assert table["mu_phi"][0] == 0.0 and table["mu_charge"][0] == -1
    assert table["mt"][0] == pytest.approx(math.sqrt(2 * 40.0 * 40.0 * (1 - math.cos(3.0))), rel=1e-6)
    assert table["met_pt"][0] == 40.0 and table["met_phi"][0] == pytest.approx(3.0)
    assert table["met_sumEt"][0] == 120.0
    assert table["tkmet_pt"][0] == 30.0 and table["tkmet_phi"][0] == pytest.approx(2.9)
    assert table["npv"][0] == 1 and table["npv"][1] == 3  # arange % 4 + 1 at entries 0 and 2


def test_recoil_columns_of_the_base_event(skim_result: tuple) -> None:
    table, _ = skim_result
    charged = [(10.0, 2.0), (5.0, -2.5), (3.5, 1.5)]
    photons = [(3.0, 0.0), (6.0, -1.0), (1.5, 0.5)]
    hadrons = [(8.0, 3.0), (0.7, -3.0)]
    ch, neu = _vec_sum(charged), _vec_sum(photons + hadrons)
    pu = _vec_sum([(4.0, 1.0)])
    got = {k: table[k][0] for k in table if np.ndim(table[k]) == 1}
    assert (got["u_ch_x"], got["u_ch_y"]) == pytest.approx(ch, abs=1e-5)
    assert (got["u_neu_x"], got["u_neu_y"]) == pytest.approx(neu, abs=1e-5)
    assert (got["u_x"], got["u_y"]) == pytest.approx((ch[0] + neu[0], ch[1] + neu[1]), abs=1e-5)
    assert (got["u_pu_x"], got["u_pu_y"]) == pytest.approx(pu, abs=1e-6)
    assert got["sumet_ch"] == pytest.approx(18.5)
    assert got["sumet_gamma"] == pytest.approx(10.5)
    assert got["sumet_nh"] == pytest.approx(8.7)
    assert got["sumet"] == pytest.approx(37.7)
    assert (got["n_pfo_ch"], got["n_pfo_nh"], got["n_pfo_gamma"], got["n_pfo_pu"]) == (3, 2, 3, 1)
    # the leading recoil candidates: 8 of them, pT-ordered, zero padded to 20
    assert table["pfo_pt"][0, :9].tolist() == pytest.approx([10.0, 8.0, 6.0, 5.0, 3.5, 3.0, 1.5, 0.7, 0.0])
    assert table["pfo_mask"][0].tolist() == [True] * 8 + [False] * 12
    assert table["pfo_charge"][0, :8].tolist() == [1, 0, 0, -1, -1, 0, 0, 0]
    assert table["pfo_pdgId"][0, :9].tolist() == [211, 130, 22, 211, 11, 22, 2, 1, 0]
    assert table["pfo_eta"][0, :8].tolist() == pytest.approx([-1.0, 2.0, -0.5, 0.5, 0.0, 0.41, 4.0, -3.5])
    assert table["pfo_phi"][0, :8].tolist() == pytest.approx([2.0, 3.0, -1.0, -2.5, 1.5, 0.0, 0.5, -3.0])
    assert not table["pfo_pt"][0, 8:].any() and not table["pfo_eta"][0, 8:].any()
    assert table["pfo_ch_pt"][0].tolist() == pytest.approx([10.0, 5.0, 3.5, 0.0, 0.0])
    assert table["pfo_ch_phi"][0].tolist() == pytest.approx([2.0, -2.5, 1.5, 0.0, 0.0])
    assert table["pfo_ch_mask"][0].tolist() == [True, True, True, False, False]
    assert table["pfo_neu_pt"][0].tolist() == pytest.approx([8.0, 6.0, 3.0, 1.5, 0.7])
    assert table["pfo_neu_mask"][0].all()


def test_jet_columns_of_the_base_event(skim_result: tuple) -> None:
    table, _ = skim_result
    # kept: 30 (eta -1), 22 (dR 0.41 to the muon), 20.5 (jetId 2); removed: muon jet, dR 0.39, 19.9, |eta| 4.8, ID 0
    assert table["njets"][0] == 3
    assert (table["j0_pt"][0], table["j0_eta"][0], table["j0_phi"][0]) == pytest.approx((30.0, -1.0, 2.1))
    assert (table["j1_pt"][0], table["j1_eta"][0], table["j1_phi"][0]) == pytest.approx((22.0, 0.3, -0.41))


def test_truth_columns(skim_result: tuple) -> None:
    table, _ = skim_result
    rows = {int(e): i for i, e in enumerate(table["event"])}
    base = rows[1000]
    assert (table["w_pt"][base], table["w_phi"][base], table["w_mass"][base]) == pytest.approx((12.5, 2.8, 80.25))
    assert (table["genmet_pt"][base], table["genmet_phi"][base]) == pytest.approx((38.0, 3.05))
    assert table["w_pt"][rows[1000 + _index("w_minus")]] == pytest.approx(12.5)
    assert np.isnan(table["w_pt"][rows[1000 + _index("no_last_copy_w")]])
    assert np.isnan(table["w_mass"][rows[1000 + _index("no_last_copy_w")]])


def test_cone_and_set_sizes_follow_the_selection(skim_file: Path) -> None:
    selection = RecoilSelection(recoil_cone_dr=0.05, n_pfos=3, n_pfos_split=2, pfcand_from_pv_min=2)
    table, _ = run_recoil_skim([str(skim_file)], selection=selection)
    assert table["pfo_pt"].shape == (N_PASS, 3) and table["pfo_ch_pt"].shape == (N_PASS, 2)
    assert skim_columns(selection)["pfo_mask"] == ("bool", (3,))
    # the dR 0.09 photon is now recoil; the fromPV = 1 hadron is pile-up
    assert table["sumet_gamma"][0] == pytest.approx(12.5)
    assert table["sumet_ch"][0] == pytest.approx(13.5) and table["n_pfo_pu"][0] == 2
    assert table["pfo_pt"][0].tolist() == pytest.approx([10.0, 8.0, 6.0])
    assert table["pfo_mask"][0].all()
    assert table["pfo_ch_pt"][0].tolist() == pytest.approx([10.0, 3.5])


def test_data_without_truth(tmp_path: Path) -> None:
    path = write_events(tmp_path / "data.root", _events()[:4], truth=False)
    table, cutflow = run_recoil_skim([str(path)])
    assert table["event"].tolist() == [1000, 1002]
    assert table["genWeight"].tolist() == [1.0, 1.0]
    for name in ("w_pt", "w_phi", "w_mass", "genmet_pt", "genmet_phi"):
        assert np.isnan(table[name]).all(), name
    assert [c["weighted"] for c in cutflow["cuts"]] == [float(c["raw"]) for c in cutflow["cuts"]]


def test_chunking_and_file_order_do_not_change_the_result(skim_file: Path, skim_result: tuple, tmp_path: Path) -> None:
    table, cutflow = skim_result
    other = tmp_path / "copy.root"
    shutil.copy(skim_file, other)
    table2, cutflow2 = run_recoil_skim([str(skim_file), str(other)], chunksize=16)
    for name in COLUMNS:
        np.testing.assert_array_equal(table2[name], np.concatenate([table[name], table[name]]), err_msg=name)
    assert [c["raw"] for c in cutflow2["cuts"]] == [2 * c["raw"] for c in cutflow["cuts"]]
    assert [c["weighted"] for c in cutflow2["cuts"]] == pytest.approx([2 * c["weighted"] for c in cutflow["cuts"]])


def test_features_of_the_skim(skim_result: tuple) -> None:
    from hepchain.features.recoil import RECOIL_SPEC, build_feature_table

    table, _ = skim_result
    arrays = RECOIL_SPEC.compute_arrays(table)
    for name, values in arrays.items():
        assert values.shape[0] == N_PASS, name
        if values.dtype != bool:
            assert np.isfinite(values).all(), name
    assert arrays["u_x"][0] == pytest.approx(table["u_x"][0])
    out = build_feature_table({"wmunu": table}, n_folds=5, seed=1)
    truth = out["truth_ux"][0], out["truth_uy"][0]
    assert truth == pytest.approx((-12.5 * math.cos(2.8), -12.5 * math.sin(2.8)), rel=1e-6)


# ------------------------------------------------------------------ selection config


def test_selection_from_config() -> None:
    s = RecoilSelection.from_config({"met_min": 20.0, "muon_tight_id": False, "n_pfos": 32})
    assert s.met_min == 20.0 and s.muon_tight_id is False and s.n_pfos == 32 and s.mt_min == 50.0
    assert RecoilSelection.from_config(None) == RecoilSelection()
    with pytest.raises(ConfigError, match="'met_mni'") as err:
        RecoilSelection.from_config({"met_mni": 20.0})
    assert "known keys" in str(err.value) and "met_min" in str(err.value)
    with pytest.raises(ConfigError, match="muon_tight_id"):
        RecoilSelection.from_config({"muon_tight_id": "yes"})
    with pytest.raises(ConfigError, match="mt_min"):
        RecoilSelection.from_config({"mt_min": "fifty"})
    with pytest.raises(ConfigError, match="n_pfos"):
        RecoilSelection.from_config({"n_pfos": 2.5})
    with pytest.raises(ConfigError, match="n_pfos_split"):
        RecoilSelection.from_config({"n_pfos_split": 0})
    with pytest.raises(ConfigError, match="recoil_cone_dr"):
        RecoilSelection.from_config({"recoil_cone_dr": 0.0})
    with pytest.raises(ConfigError, match="met_min"):
        RecoilSelection.from_config({"met_min": float("nan")})


def test_branch_lists() -> None:
    assert all(b.startswith("PFCands_") for b in EXTENDED_BRANCHES)
    assert not set(BRANCHES) & set(COLUMN_BRANCHES)
    assert STAGE == "recoil skim"


# ------------------------------------------------------------------ bad inputs


def test_missing_selection_branch(tmp_path: Path, skim_file: Path) -> None:
    path = write_events(tmp_path / "no_tight.root", _events()[:2], skip={"Muon": ("tightId",)})
    for cutflow_only in (False, True):
        with pytest.raises(MissingBranchError) as err:
            run_recoil_skim([str(skim_file), str(path)], cutflow_only=cutflow_only)
        message = str(err.value)
        assert str(path) in message and "'Muon_tightId'" in message and "\n" not in message
        assert "extended" not in message
        assert err.value.branch == "Muon_tightId" and err.value.path == str(path)


def test_missing_column_branch_only_matters_for_columns(tmp_path: Path) -> None:
    path = write_events(tmp_path / "no_jetid.root", _events()[:3], skip={"Jet": ("jetId",)})
    with pytest.raises(MissingBranchError, match="'Jet_jetId'"):
        run_recoil_skim([str(path)])
    _, cutflow = run_recoil_skim([str(path)], cutflow_only=True)
    assert [c["raw"] for c in cutflow["cuts"]] == [3, 2, 2, 2, 2]


def test_missing_pfcands_needs_extended_ntuples(tmp_path: Path) -> None:
    path = write_events(tmp_path / "no_frompv.root", _events()[:3], skip={"PFCands": ("fromPV",)})
    with pytest.raises(MissingBranchError) as err:
        run_recoil_skim([str(path)])
    message = str(err.value)
    assert str(path) in message and "'PFCands_fromPV'" in message and "\n" not in message
    assert "extended" in message and "store_pfcands: true" in message and "--cutflow-only" in message
    table, cutflow = run_recoil_skim([str(path)], cutflow_only=True)
    assert [c["raw"] for c in cutflow["cuts"]] == [3, 2, 2, 2, 2] and table["event"].size == 0


# ------------------------------------------------------------------ the real CMS NanoAOD file


def _monotonic(cutflow: dict) -> bool:
    raw = [c["raw"] for c in cutflow["cuts"]]
    return all(a >= b for a, b in itertools.pairwise(raw))


def test_real_file_cutflow_only() -> None:
    path = str(real_nanoaod())
    _, cutflow = run_recoil_skim([path], cutflow_only=True)
    raw = [c["raw"] for c in cutflow["cuts"]]
    assert _monotonic(cutflow) and raw[0] == 200
    # Muon_tightId is False for every muon of this 2015 file: no muon passes the default selection
    assert raw == [200, 0, 0, 0, 0]
    assert cutflow["sumw"] == pytest.approx(33432083.0625)
    _, loose = run_recoil_skim([path], cutflow_only=True, selection=RecoilSelection(muon_tight_id=False))
    assert _monotonic(loose)
    assert [c["raw"] for c in loose["cuts"]] == REAL_LOOSE_RAW


REAL_LOOSE_RAW = [200, 27, 26, 19, 17]


def test_real_file_full_skim_needs_pfcands() -> None:
    path = real_nanoaod()
    with pytest.raises(MissingBranchError) as err:
        run_recoil_skim([str(path)])
    message = str(err.value)
    assert "'PFCands_pt'" in message and path.name in message and "extended" in message and "\n" not in message


def test_cutflow_only_needs_only_the_selection_branches(tmp_path: Path) -> None:
    events = _events()[:4]
    n = len(events)
    path = tmp_path / "minimal.root"
    write_nanoaod(
        path,
        {
            "run": np.ones(n, dtype=np.uint32),
            "luminosityBlock": np.ones(n, dtype=np.uint32),
            "event": np.array([ev["event"] for ev in events], dtype=np.uint64),
            "Muon": _collection(events, "muons", MU_FIELDS, ("pdgId",)),
            "Electron": _collection(events, "electrons", ELE_FIELDS, ("pdgId",)),
            "MET": ak.zip(
                {
                    "pt": np.array([ev["met"][0] for ev in events], dtype=np.float32),
                    "phi": np.array([ev["met"][1] for ev in events], dtype=np.float32),
                }
            ),
        },
        seed="minimal",
    )
    import uproot

    with uproot.open(path) as f:
        assert set(BRANCHES) <= set(f["Events"].keys())
    _, cutflow = run_recoil_skim([str(path)], cutflow_only=True)
    assert [c["raw"] for c in cutflow["cuts"]] == [4, 2, 2, 2, 2]
    with pytest.raises(MissingBranchError, match="'MET_sumEt'"):
        run_recoil_skim([str(path)])
