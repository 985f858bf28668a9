"""Tests of the dijet skim of the jet-calibration study (hepchain.skim.jets).

Tiny hand-made NanoAOD files put one event on each side of every threshold;
each case carries the name of the first cut it must fail (or None), from which
the expected survivors and cutflow follow.  Expected numbers are written by
hand from the definitions (pT_avg = (pT1 + pT2)/2, A = (pT_ref - pT_probe)/pT_avg).
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
from hepchain.features.vh import assign_folds
from hepchain.nanoaod import write_nanoaod
from hepchain.skim.jets import (
    BRANCHES,
    COLUMNS,
    CUTS,
    EXTENDED_BRANCHES,
    PROBE_SALT,
    DijetSelection,
    columns,
    run_jets_skim,
)
from tests.helpers import real_nanoaod

pytestmark = [
    pytest.mark.filterwarnings("ignore:Missing cross-reference index:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Branch Photon_:RuntimeWarning"),
]

JET_FIELDS = {
    "pt": np.float32,
    "eta": np.float32,
    "phi": np.float32,
    "mass": np.float32,
    "area": np.float32,
    "rawFactor": np.float32,
    "chHEF": np.float32,
    "neHEF": np.float32,
    "chEmEF": np.float32,
    "neEmEF": np.float32,
    "muEF": np.float32,
    "nConstituents": np.int32,
    "nElectrons": np.int32,
    "nMuons": np.int32,
    "nTracks": np.int32,
    "trackWidth": np.float32,
    "emFrac": np.float32,
    "jetId": np.int32,
    "genJetIdx": np.int32,
}
GEN_FIELDS = {"pt": np.float32, "eta": np.float32, "phi": np.float32, "mass": np.float32}
PF_FIELDS = {
    "pt": np.float32,
    "eta": np.float32,
    "phi": np.float32,
    "mass": np.float32,
    "charge": np.int32,
    "pdgId": np.int32,
    "fromPV": np.int32,
    "d0": np.float32,
    "dz": np.float32,
}
LINK_FIELDS = {"jetIdx": np.int32, "pFCandsIdx": np.int32}


def jet(**kw: Any) -> dict[str, Any]:
    """A selected central 1 TeV jet unless overridden (values exact in float32 where compared)."""
    base = {
        "pt": 1000.0,
        "eta": 0.5,
        "phi": 0.0,
        "mass": 60.0,
        "area": 0.5,
        "rawFactor": 0.25,
        "chHEF": 0.5,
        "neHEF": 0.125,
        "chEmEF": 0.0,
        "neEmEF": 0.25,
        "muEF": 0.125,
        "nConstituents": 4,
        "nElectrons": 0,
        "nMuons": 1,
        "nTracks": 21,
        "trackWidth": 0.0625,
        "emFrac": 0.375,
        "jetId": 6,
        "genJetIdx": -1,
    }
    return base | kw


def dijet(**kw2: Any) -> list[dict[str, Any]]:
    """The default back-to-back pair (1000 GeV at phi 0, 900 GeV at phi 3); keywords modify the second jet."""
    return [jet(), jet(**({"pt": 900.0, "eta": -0.4, "phi": 3.0, "mass": 50.0} | kw2))]


def third(**kw: Any) -> dict[str, Any]:
    return jet(**({"pt": 100.0, "eta": 1.0, "phi": 1.5, "mass": 10.0} | kw))


def pf(
    pt: float, eta: float, phi: float, pdg: int, charge: int = 0, from_pv: int = 0, d0: float = 0.0, dz: float = 0.0
) -> dict[str, Any]:
    return {
        "pt": pt,
        "eta": eta,
        "phi": phi,
        "mass": 0.0,
        "charge": charge,
        "pdgId": pdg,
        "fromPV": from_pv,
        "d0": d0,
        "dz": dz,
    }


def gen(pt: float, eta: float, phi: float, mass: float = 40.0) -> dict[str, Any]:
    return {"pt": pt, "eta": eta, "phi": phi, "mass": mass}


#: PF candidates of the base event: jet 0 owns 0, 1, 2, 6; jet 1 owns 4, 5; 3 is unclustered pile-up.
BASE_PF = [
    pf(300.0, 0.5, 0.125, 211, 1, 3, 0.0025, 0.0125),
    pf(150.0, 0.375, -0.0625, 22),
    pf(450.0, 0.625, -0.25, 130),
    pf(2.0, 2.0, 1.0, 211, -1, 0, 0.5, 1.5),
    pf(400.0, -0.5, -3.0, -211, -1, 3, -0.005, 0.02),
    pf(100.0, -0.25, 2.875, 22),
    pf(5.0, 0.5, 0.0, 13, -1, 3, 0.001, 0.003),
]
BASE_LINKS = [(0, 0), (0, 1), (0, 2), (1, 4), (1, 5), (0, 6)]
BASE_JETS = [jet(genJetIdx=1), jet(pt=900.0, eta=-0.4, phi=3.0, mass=50.0, genJetIdx=0)]
BASE_GEN = [gen(880.0, -0.375, 3.0), gen(1040.0, 0.5, 0.0)]

# the unordered event: Jet[0] is the subleading jet; its links and genJetIdx must follow the re-ordering
UNORDERED_JETS = [jet(pt=900.0, eta=-0.4, phi=3.0, genJetIdx=1), jet(genJetIdx=0)]
UNORDERED_GEN = [gen(960.0, 0.5, 0.0), gen(920.0, -0.4, 3.0)]
UNORDERED_PF = [pf(50.0, -0.4, 3.0, 22), pf(100.0, 0.5, 0.0, 22), pf(70.0, 0.5, 0.0, 130)]
UNORDERED_LINKS = [(1, 1), (0, 0), (1, 2)]

# (label, first cut failed or None, jets, genWeight, extras); weights are exact in float32 and distinct
CASES: list[tuple[str, str | None, list, float, dict]] = [
    ("base", None, BASE_JETS, 1.5, {"pf": BASE_PF, "links": BASE_LINKS, "gen": BASE_GEN}),
    ("no_jets", "two_jets", [], 2.0, {}),
    ("one_jet", "two_jets", [jet()], 0.25, {}),
    ("sublead_pt_25p1", None, [jet(pt=2000.0), jet(pt=25.1, eta=-0.4, phi=3.0)], 3.0, {}),
    ("sublead_pt_24p9", "two_jets", [jet(pt=2000.0), jet(pt=24.9, eta=-0.4, phi=3.0)], -0.5, {}),
    ("sublead_eta_4p69", None, dijet(eta=4.69), 0.75, {}),
    ("sublead_eta_4p71", "two_jets", dijet(eta=-4.71), 1.25, {}),
    ("sublead_id_2", None, dijet(jetId=2), 2.25, {}),
    ("sublead_id_4", "two_jets", dijet(jetId=4), 1.75, {}),
    ("sublead_id_0", "two_jets", dijet(jetId=0), 0.125, {}),
    ("unordered", None, UNORDERED_JETS, 4.0, {"pf": UNORDERED_PF, "links": UNORDERED_LINKS, "gen": UNORDERED_GEN}),
    ("dphi_2p71", None, dijet(phi=2.71), 0.375, {}),
    ("dphi_2p69", "back_to_back", dijet(phi=2.69), -1.5, {}),
    ("dphi_wrapped_3p08", None, [jet(phi=1.6), jet(pt=900.0, eta=-0.4, phi=-1.6)], 0.625, {}),
    ("dphi_wrapped_0p28", "back_to_back", [jet(phi=3.0), jet(pt=900.0, eta=-0.4, phi=-3.0)], 2.5, {}),
    ("third_237p4", None, [*dijet(), third(pt=237.4)], 0.875, {}),
    ("third_237p6", "third_jet_veto", [*dijet(), third(pt=237.6)], 3.5, {}),
    ("third_forward", "third_jet_veto", [*dijet(), third(pt=300.0, eta=4.6)], 1.125, {}),
    ("third_fails_id", None, [*dijet(), third(pt=300.0, jetId=0)], 1.375, {}),
    ("pt_avg_800p1", None, [jet(pt=850.0), jet(pt=750.2, eta=-0.4, phi=3.0)], 1.625, {}),
    ("pt_avg_799p9", "pt_avg_window", [jet(pt=850.0), jet(pt=749.8, eta=-0.4, phi=3.0)], -2.0, {}),
    ("pt_avg_2799p9", None, [jet(pt=2900.0), jet(pt=2699.8, eta=-0.4, phi=3.0)], 1.875, {}),
    ("pt_avg_2800p1", "pt_avg_window", [jet(pt=2900.0), jet(pt=2700.2, eta=-0.4, phi=3.0)], 2.75, {}),
    ("region_edges_in", None, [jet(eta=0.21), jet(pt=900.0, eta=-0.69, phi=3.0)], 0.0625, {}),
    ("region_low_out", None, [jet(eta=0.19), jet(pt=900.0, eta=-0.4, phi=3.0)], 5.0, {}),
    ("region_high_out", None, [jet(eta=-0.5), jet(pt=900.0, eta=0.71, phi=3.0)], 6.0, {}),
    ("genjet_out_of_range", None, dijet(genJetIdx=3), 7.0, {"gen": [gen(1000.0, 0.5, 0.0)]}),
]

#: Events counted after each of all, two_jets, back_to_back, third_jet_veto, pt_avg_window (by hand from CASES).
EXPECTED_RAW = [27, 21, 19, 17, 15]


def _collection(objs: list[list[dict[str, Any]]], fields: dict[str, Any], skip: tuple[str, ...] = ()) -> ak.Array:
    counts = np.array([len(o) for o in objs], dtype=np.int64)
    return ak.zip(
        {
            f: ak.unflatten(np.array([x[f] for o in objs for x in o], dtype=dt), counts)
            for f, dt in fields.items()
            if f not in skip
        }
    )


def write_events(
    path: Path,
    events: list[dict[str, Any]],
    *,
    gen_weight: bool = True,
    truth: bool = True,
    pfcands: bool = True,
    skip_jet: tuple[str, ...] = (),
) -> Path:
    """Write ``events`` (dicts with jets, gen, pf, links, w, rho, npvs) as NanoAOD."""
    n = len(events)
    jet_skip = skip_jet if truth else (*skip_jet, "genJetIdx")
    arrays: dict[str, Any] = {
        "run": np.ones(n, dtype=np.uint32),
        "luminosityBlock": np.ones(n, dtype=np.uint32),
        "event": np.array([ev["event"] for ev in events], dtype=np.uint64),
        "Jet": _collection([ev["jets"] for ev in events], JET_FIELDS, jet_skip),
        "PV": ak.zip(
            {
                "x": np.zeros(n, dtype=np.float32),
                "y": np.zeros(n, dtype=np.float32),
                "z": np.zeros(n, dtype=np.float32),
                "npvs": np.array([ev.get("npvs", 21) for ev in events], dtype=np.int32),
            }
        ),
        "fixedGridRhoFastjetCentralNeutral": np.array([ev.get("rho", 8.5) for ev in events], dtype=np.float32),
    }
    if truth:
        arrays["GenJet"] = _collection([ev.get("gen", []) for ev in events], GEN_FIELDS)
    if pfcands:
        arrays["PFCands"] = _collection([ev.get("pf", []) for ev in events], PF_FIELDS)
        links = [[{"jetIdx": j, "pFCandsIdx": p} for j, p in ev.get("links", [])] for ev in events]
        arrays["JetPFCands"] = _collection(links, LINK_FIELDS)
    if gen_weight:
        arrays["genWeight"] = np.array([ev["w"] for ev in events], dtype=np.float32)
    write_nanoaod(path, arrays, seed=path.name)
    return path


def _events(cases: list[tuple] = CASES, first: int = 1000) -> list[dict[str, Any]]:
    return [
        {"event": first + i, "jets": jets, "w": w, "rho": 8.5 + i, "npvs": 20 + i, **extra}
        for i, (_, _, jets, w, extra) in enumerate(cases)
    ]


def _event_of(label: str) -> int:
    return 1000 + [c[0] for c in CASES].index(label)


def _expected_cutflow(cases: list[tuple]) -> list[tuple[str, int, float]]:
    order = ["all", *CUTS]
    rows = []
    for k, name in enumerate(order):
        kept = [c for c in cases if c[1] is None or order.index(c[1]) > k]
        rows.append((name, len(kept), math.fsum(c[3] for c in kept)))
    return rows


@pytest.fixture(scope="module")
def skim_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_events(tmp_path_factory.mktemp("jets") / "cases.root", _events())


@pytest.fixture(scope="module")
def skim_result(skim_file: Path) -> tuple[dict[str, np.ndarray], dict]:
    return run_jets_skim([str(skim_file)], selection=DijetSelection())


def _row(table: dict[str, np.ndarray], label: str, rank: int) -> dict[str, Any]:
    (index,) = np.flatnonzero((table["event"] == _event_of(label)) & (table["jet_rank"] == rank))
    return {name: values[index] for name, values in table.items()}


# ------------------------------------------------------------------ selection and cutflow


def test_survivors_are_exactly_the_passing_cases(skim_result: tuple) -> None:
    table, _ = skim_result
    expected = [1000 + i for i, c in enumerate(CASES) if c[1] is None]
    assert len(expected) == EXPECTED_RAW[-1]
    assert table["event"].tolist() == list(np.repeat(expected, 2))
    assert table["jet_rank"].tolist() == [0, 1] * len(expected)
    assert list(table) == list(COLUMNS)
    for name, (dtype, shape) in COLUMNS.items():
        assert table[name].dtype == np.dtype(dtype) and table[name].shape == (2 * len(expected), *shape), name


def test_cutflow_counts_raw_and_weighted(skim_result: tuple) -> None:
    _, cutflow = skim_result
    got = [(c["name"], c["raw"], c["weighted"]) for c in cutflow["cuts"]]
    assert [g[0] for g in got] == ["all", *CUTS]
    assert [g[1] for g in got] == EXPECTED_RAW
    for (name, raw, weighted), (ename, eraw, eweighted) in zip(got, _expected_cutflow(CASES), strict=True):
        assert (name, raw) == (ename, eraw)
        assert weighted == pytest.approx(eweighted, abs=1e-12), name
    # by hand: all weights 47.5625; the survivors' weights 36.3125
    assert cutflow["sumw"] == 47.5625
    assert got[-1][2] == 36.3125
    assert cutflow["n_events"] == len(CASES)
    assert cutflow["selection"] == DijetSelection().to_dict()


def test_every_cut_is_exercised_on_both_sides() -> None:
    failing = {c[1] for c in CASES}
    assert set(CUTS) <= failing
    assert None in failing


def test_columns_of_the_base_event(skim_result: tuple) -> None:
    table, _ = skim_result
    lead, sub = _row(table, "base", 0), _row(table, "base", 1)
    for row in (lead, sub):
        assert row["event"] == 1000 and row["genWeight"] == 1.5
        assert row["pt_avg"] == pytest.approx(950.0)
        assert row["dphi_jj"] == pytest.approx(3.0, abs=1e-6)
        assert row["pt3"] == 0.0 and row["njets"] == 2
        assert row["rho"] == 8.5 and row["npvs"] == 20
        assert bool(row["in_probe_region"])
    assert lead["jet_pt"] == 1000.0 and sub["jet_pt"] == 900.0
    assert lead["jet_eta"] == pytest.approx(0.5) and sub["jet_eta"] == pytest.approx(-0.4)
    assert lead["jet_mass"] == 60.0 and sub["jet_mass"] == 50.0
    assert lead["jet_rawFactor"] == 0.25 and lead["jet_area"] == 0.5 and lead["jet_chHEF"] == 0.5
    assert lead["jet_neHEF"] == 0.125 and lead["jet_neEmEF"] == 0.25 and lead["jet_muEF"] == 0.125
    assert lead["jet_nConstituents"] == 4 and lead["jet_nMuons"] == 1 and lead["jet_nElectrons"] == 0
    assert lead["jet_nTracks"] == 21 and lead["jet_trackWidth"] == 0.0625 and lead["jet_emFrac"] == 0.375
    # truth: Jet[0] -> GenJet[1] (1040 GeV), Jet[1] -> GenJet[0] (880 GeV)
    assert lead["matched"] and sub["matched"]
    assert lead["gen_pt"] == 1040.0 and sub["gen_pt"] == 880.0
    assert sub["gen_eta"] == -0.375 and sub["gen_phi"] == 3.0 and sub["gen_mass"] == 40.0
    assert lead["calib_factor"] == pytest.approx(1.04) and sub["calib_factor"] == pytest.approx(880.0 / 900.0)


def test_asymmetry_and_probe_assignment(skim_result: tuple) -> None:
    table, _ = skim_result
    events = table["event"][::2]
    probe_rank = assign_folds(events, PROBE_SALT, 2, 0)
    assert table["is_probe"].reshape(-1, 2).sum(axis=1).tolist() == [1] * len(events)
    assert table["is_probe"][::2].tolist() == (probe_rank == 0).tolist()
    assert set(probe_rank.tolist()) == {0, 1}  # both assignments occur among these events
    pt1, pt2 = table["jet_pt"][::2], table["jet_pt"][1::2]
    sign = np.where(probe_rank == 0, -1.0, 1.0)  # probe = leading jet: A = (pT2 - pT1)/pT_avg
    np.testing.assert_allclose(table["asymmetry"][::2], sign * (pt1 - pt2) / ((pt1 + pt2) / 2), rtol=1e-12)
    np.testing.assert_array_equal(table["asymmetry"][::2], table["asymmetry"][1::2])
    # base event by hand: |A| = 100 / 950
    assert abs(_row(table, "base", 0)["asymmetry"]) == pytest.approx(100.0 / 950.0)


def test_probe_seed_changes_the_assignment(skim_file: Path, skim_result: tuple) -> None:
    table, _ = skim_result
    other, _ = run_jets_skim([str(skim_file)], selection=DijetSelection(probe_seed=7))
    assert other["is_probe"].tolist() != table["is_probe"].tolist()
    np.testing.assert_array_equal(np.abs(other["asymmetry"]), np.abs(table["asymmetry"]))


def test_probe_region_flags(skim_result: tuple) -> None:
    table, _ = skim_result
    expected = {
        "base": (True, True),
        "region_edges_in": (True, True),  # |eta| = 0.21 and 0.69
        "region_low_out": (False, True),  # |eta| = 0.19
        "region_high_out": (True, False),  # |eta| = 0.71
        "sublead_eta_4p69": (True, False),
    }
    for label, flags in expected.items():
        rows = (_row(table, label, 0), _row(table, label, 1))
        assert tuple(bool(r["jet_in_probe_region"]) for r in rows) == flags, label
        assert all(bool(r["in_probe_region"]) == all(flags) for r in rows), label


def test_dphi_wraps_and_third_jet_columns(skim_result: tuple) -> None:
    table, _ = skim_result
    assert _row(table, "dphi_wrapped_3p08", 0)["dphi_jj"] == pytest.approx(2 * math.pi - 3.2, abs=1e-6)
    row = _row(table, "third_237p4", 0)
    assert row["pt3"] == pytest.approx(237.4, abs=1e-4) and row["njets"] == 3
    # a third jet failing the jet ID is not a selected jet: no veto, not counted
    row = _row(table, "third_fails_id", 0)
    assert row["pt3"] == 0.0 and row["njets"] == 2


def test_unordered_jets_follow_links_and_truth(skim_result: tuple) -> None:
    table, _ = skim_result
    lead, sub = _row(table, "unordered", 0), _row(table, "unordered", 1)
    assert lead["jet_pt"] == 1000.0 and sub["jet_pt"] == 900.0
    assert lead["gen_pt"] == 960.0 and sub["gen_pt"] == 920.0
    assert lead["constituents_pt"][:3].tolist() == [100.0, 70.0, 0.0]
    assert lead["constituents_pdgId"][:2].tolist() == [22, 130]
    assert sub["constituents_pt"][:2].tolist() == [50.0, 0.0]
    assert lead["constituents_mask"].sum() == 2 and sub["constituents_mask"].sum() == 1


def test_unmatched_jets_have_nan_truth(skim_result: tuple) -> None:
    table, _ = skim_result
    for label in ("genjet_out_of_range", "sublead_id_2"):  # index 3 of one GenJet; index -1 with no GenJet
        for rank in (0, 1):
            row = _row(table, label, rank)
            assert not row["matched"]
            assert math.isnan(row["gen_pt"]) and math.isnan(row["calib_factor"]) and math.isnan(row["gen_eta"])


def test_constituents_of_the_base_event(skim_result: tuple) -> None:
    table, _ = skim_result
    lead, sub = _row(table, "base", 0), _row(table, "base", 1)
    # jet 0 owns candidates 0, 1, 2, 6 (pT 300, 150, 450, 5): pT-ordered 450, 300, 150, 5
    assert lead["constituents_pt"][:5].tolist() == [450.0, 300.0, 150.0, 5.0, 0.0]
    assert lead["constituents_pdgId"][:4].tolist() == [130, 211, 22, 13]
    assert lead["constituents_charge"][:4].tolist() == [0, 1, 0, -1]
    assert lead["constituents_fromPV"][:4].tolist() == [0, 3, 0, 3]
    assert lead["constituents_eta"][:4].tolist() == [0.625, 0.5, 0.375, 0.5]
    assert lead["constituents_phi"][:4].tolist() == [-0.25, 0.125, -0.0625, 0.0]
    assert lead["constituents_d0"][1] == pytest.approx(0.0025) and lead["constituents_dz"][1] == pytest.approx(0.0125)
    assert lead["constituents_mask"].tolist() == [True] * 4 + [False] * 60
    # jet 1 owns 4 and 5; the pile-up candidate 3 belongs to no jet
    assert sub["constituents_pt"][:3].tolist() == [400.0, 100.0, 0.0]
    assert sub["constituents_pdgId"][:2].tolist() == [-211, 22]
    assert sub["constituents_mask"].sum() == 2
    for name in ("constituents_pt", "constituents_eta", "constituents_pdgId", "constituents_d0"):
        assert not lead[name][4:].any() and not sub[name][2:].any(), name
    # events without PF candidates have empty sets
    row = _row(table, "dphi_2p71", 0)
    assert not row["constituents_mask"].any() and not row["constituents_pt"].any()


def test_fewer_constituent_slots_keep_the_hardest(skim_file: Path) -> None:
    table, _ = run_jets_skim([str(skim_file)], selection=DijetSelection(n_constituents=2))
    assert table["constituents_pt"].shape == (2 * EXPECTED_RAW[-1], 2)
    assert list(table) == list(columns(2))
    index = np.flatnonzero(table["event"] == 1000)
    assert table["constituents_pt"][index].tolist() == [[450.0, 300.0], [400.0, 100.0]]
    assert table["constituents_mask"][index].all()


def test_third_jet_floor_with_low_pt_selection(tmp_path: Path) -> None:
    # pT_avg = 55 GeV: 0.25 pT_avg = 13.75, so the 25 GeV floor applies; jets from 20 GeV are selected
    pair = [jet(pt=60.0), jet(pt=50.0, eta=-0.4, phi=3.0)]
    cases = [
        ("pt3_24p9", None, [*pair, third(pt=24.9)], 1.0, {}),
        ("pt3_25p1", "third_jet_veto", [*pair, third(pt=25.1)], 2.0, {}),
        ("pt3_19p9_not_a_jet", None, [*pair, third(pt=19.9)], 4.0, {}),
    ]
    path = write_events(tmp_path / "floor.root", _events(cases))
    selection = DijetSelection(jet_pt_min=20.0, pt_avg_min=10.0)
    table, cutflow = run_jets_skim([str(path)], selection=selection)
    assert table["event"][::2].tolist() == [1000, 1002]
    assert table["pt3"][::2] == pytest.approx([24.9, 0.0], abs=1e-5)
    assert [c["raw"] for c in cutflow["cuts"]] == [3, 3, 3, 2, 2]
    assert [c["weighted"] for c in cutflow["cuts"]] == [7.0, 7.0, 7.0, 5.0, 5.0]


def test_chunking_and_file_order_do_not_change_the_result(skim_file: Path, skim_result: tuple, tmp_path: Path) -> None:
    table, cutflow = skim_result
    other = tmp_path / "copy.root"
    shutil.copy(skim_file, other)
    table2, cutflow2 = run_jets_skim([str(skim_file), str(other)], selection=DijetSelection(), chunksize=4)
    for name in table:
        np.testing.assert_array_equal(table2[name], np.concatenate([table[name], table[name]]), err_msg=name)
    assert [c["raw"] for c in cutflow2["cuts"]] == [2 * c["raw"] for c in cutflow["cuts"]]
    assert [c["weighted"] for c in cutflow2["cuts"]] == pytest.approx([2 * c["weighted"] for c in cutflow["cuts"]])


def test_futures_executor_matches_iterative(skim_file: Path, skim_result: tuple) -> None:
    table, cutflow = skim_result
    table2, cutflow2 = run_jets_skim([str(skim_file)], executor="futures", workers=2, chunksize=10)
    assert list(table2) == list(table)
    for name in table:
        np.testing.assert_array_equal(table2[name], table[name], err_msg=name)
    assert cutflow2 == cutflow


def test_data_without_genweight_and_truth(tmp_path: Path) -> None:
    path = write_events(tmp_path / "data.root", _events()[:3], gen_weight=False, truth=False)
    table, cutflow = run_jets_skim([str(path)])
    assert table["genWeight"].tolist() == [1.0, 1.0]
    assert not table["matched"].any() and np.isnan(table["gen_pt"]).all() and np.isnan(table["calib_factor"]).all()
    assert [c["weighted"] for c in cutflow["cuts"]] == [float(c["raw"]) for c in cutflow["cuts"]]


def test_cutflow_only_runs_without_extended_branches(tmp_path: Path, skim_result: tuple) -> None:
    path = write_events(tmp_path / "standard.root", _events(), pfcands=False, skip_jet=("nTracks",))
    table, cutflow = run_jets_skim([str(path)], cutflow_only=True)
    assert cutflow["cuts"] == skim_result[1]["cuts"]
    assert list(table) == list(COLUMNS) and all(len(v) == 0 for v in table.values())
    with pytest.raises(MissingBranchError) as err:
        run_jets_skim([str(path)])
    message = str(err.value)
    assert err.value.branch == "Jet_nTracks" and str(path) in message and "extended" in message
    assert "store_pfcands: true" in message and "--cutflow-only" in message and "\n" not in message


def test_missing_pfcands_named(tmp_path: Path) -> None:
    path = write_events(tmp_path / "no_pf.root", _events()[:2], pfcands=False)
    with pytest.raises(MissingBranchError) as err:
        run_jets_skim([str(path)])
    assert err.value.branch == "nPFCands" and "store_pfcands" in str(err.value)


def test_branch_lists() -> None:
    assert BRANCHES == ("Jet_pt", "Jet_eta", "Jet_phi", "Jet_jetId", "event")
    assert EXTENDED_BRANCHES[:3] == ("Jet_nTracks", "Jet_trackWidth", "Jet_emFrac")
    assert {"JetPFCands_jetIdx", "JetPFCands_pFCandsIdx", "PFCands_pt", "PFCands_pdgId"} <= set(EXTENDED_BRANCHES)


# ------------------------------------------------------------------ config


def test_selection_from_config() -> None:
    s = DijetSelection.from_config({"dphi_min": 2.8, "n_constituents": 32})
    assert s.dphi_min == 2.8 and s.n_constituents == 32 and s.pt_avg_min == 800.0
    assert DijetSelection.from_config(None) == DijetSelection()
    assert DijetSelection().to_dict()["third_jet_fraction"] == 0.25
    with pytest.raises(ConfigError, match="'dphi_mni'") as err:
        DijetSelection.from_config({"dphi_mni": 2.8})
    assert "dphi_min" in str(err.value)  # the known keys are listed
    with pytest.raises(ConfigError, match="n_constituents"):
        DijetSelection.from_config({"n_constituents": 0})
    with pytest.raises(ConfigError, match="n_constituents"):
        DijetSelection.from_config({"n_constituents": 6.5})
    with pytest.raises(ConfigError, match="jet_pt_min"):
        DijetSelection.from_config({"jet_pt_min": "25"})
    with pytest.raises(ConfigError, match="pt_avg_min"):
        DijetSelection.from_config({"pt_avg_min": 3000.0})
    with pytest.raises(ConfigError, match="probe_abs_eta_min"):
        DijetSelection.from_config({"probe_abs_eta_min": 0.7})
    with pytest.raises(ConfigError, match="dphi_min"):
        DijetSelection.from_config({"dphi_min": float("nan")})


def test_bad_executor_and_chunksize(skim_file: Path) -> None:
    with pytest.raises(ConfigError, match="'threads'"):
        run_jets_skim([str(skim_file)], executor="threads")
    with pytest.raises(ConfigError, match="chunksize"):
        run_jets_skim([str(skim_file)], chunksize=0)
    with pytest.raises(ConfigError, match="scheduler"):
        run_jets_skim([str(skim_file)], scheduler="tcp://localhost:8786")


def test_no_surviving_event_gives_empty_columns_of_the_right_shape(tmp_path: Path) -> None:
    path = write_events(tmp_path / "none.root", _events()[1:3])  # no jets; one jet
    table, cutflow = run_jets_skim([str(path)])
    assert [c["raw"] for c in cutflow["cuts"]] == [2, 0, 0, 0, 0]
    assert list(table) == list(COLUMNS)
    for name, (dtype, shape) in COLUMNS.items():
        assert table[name].shape == (0, *shape) and table[name].dtype == np.dtype(dtype), name


# ------------------------------------------------------------------ bad inputs


@pytest.mark.parametrize("cutflow_only", [True, False])
def test_missing_selection_branch(tmp_path: Path, skim_file: Path, cutflow_only: bool) -> None:
    path = write_events(tmp_path / "no_id.root", _events()[:2], skip_jet=("jetId",))
    with pytest.raises(MissingBranchError) as err:
        run_jets_skim([str(skim_file), str(path)], cutflow_only=cutflow_only)
    message = str(err.value)
    assert str(path) in message and "'Jet_jetId'" in message and "jets skim" in message and "\n" not in message
    assert err.value.branch == "Jet_jetId" and err.value.path == str(path)


# ------------------------------------------------------------------ the real CMS NanoAOD file


def _monotonic(cutflow: dict) -> bool:
    raw = [c["raw"] for c in cutflow["cuts"]]
    return all(a >= b for a, b in itertools.pairwise(raw))


def test_real_file_cutflow_only() -> None:
    path = str(real_nanoaod())
    table, cutflow = run_jets_skim([path], cutflow_only=True)
    raw = [c["raw"] for c in cutflow["cuts"]]
    assert _monotonic(cutflow) and raw[0] == 200
    # 2015 ttbar: no jet reaches the TeV window of the seed
    assert raw == [200, 48, 15, 7, 0]
    assert cutflow["sumw"] == pytest.approx(33432083.0625)
    weighted = [c["weighted"] for c in cutflow["cuts"]]
    assert weighted == pytest.approx([33432083.0625, 5873203.78125, 1581247.171875, 1581247.171875, 0.0])
    assert all(len(v) == 0 for v in table.values())
    # with the pT_avg window opened the topology cuts keep 7 events, 1 of them above 100 GeV
    _, loose_cutflow = run_jets_skim([path], cutflow_only=True, selection=DijetSelection(pt_avg_min=0.0))
    assert [c["raw"] for c in loose_cutflow["cuts"]] == [200, 48, 15, 7, 7]
    mid = run_jets_skim([path], cutflow_only=True, selection=DijetSelection(pt_avg_min=100.0))[1]
    assert [c["raw"] for c in mid["cuts"]] == [200, 48, 15, 7, 1]
    assert mid["cuts"][-1]["weighted"] == pytest.approx(225892.453125)


def test_real_file_full_skim_needs_extended_branches() -> None:
    path = real_nanoaod()
    with pytest.raises(MissingBranchError) as err:
        run_jets_skim([str(path)])
    message = str(err.value)
    assert err.value.branch == "Jet_nTracks" and "'Jet_nTracks'" in message
    assert path.name in message and "extended" in message and "store_pfcands: true" in message
