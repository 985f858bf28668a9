"""Tests of the VH(->WW) DFOS e-mu skim (hepchain.skim.vh) and its shared runner.

Tiny hand-made NanoAOD files put one event on each side of every threshold;
each event carries the name of the first cut it must fail (or None), from
which the expected survivors and cutflow follow.
"""

from __future__ import annotations

import itertools
import math
import shutil
import warnings
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest

from hepchain.errors import ConfigError, InputFileError, MissingBranchError
from hepchain.nanoaod import write_nanoaod
from hepchain.skim.common import Cutflow, check_inputs
from hepchain.skim.vh import COLUMNS, CUTS, DFOSSelection, run_vh_skim

REAL_FILE = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real" / "nanoAOD_2015_CMS_Open_Data_ttbar.root"
)

pytestmark = [
    pytest.mark.filterwarnings("ignore:Missing cross-reference index:RuntimeWarning"),
    # the real 2015 file triggers this one from coffea's schema (Photon_mass present as a branch)
    pytest.mark.filterwarnings("ignore:Branch Photon_:RuntimeWarning"),
]

ELE_FIELDS = {
    "pt": np.float32,
    "eta": np.float32,
    "phi": np.float32,
    "mass": np.float32,
    "charge": np.int32,
    "pdgId": np.int32,
    "pfRelIso03_all": np.float32,
    "cutBased": np.int32,
    "dxy": np.float32,
    "dz": np.float32,
}
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
JET_FIELDS = {
    "pt": np.float32,
    "eta": np.float32,
    "phi": np.float32,
    "mass": np.float32,
    "btagDeepFlavB": np.float32,
    "jetId": np.int32,
}


def ele(**kw: Any) -> dict[str, Any]:
    """A selected electron (e-) unless overridden."""
    base = {
        "pt": 40.0,
        "eta": 0.5,
        "phi": 0.0,
        "mass": 0.000511,
        "charge": -1,
        "pdgId": 11,
        "pfRelIso03_all": 0.01,
        "cutBased": 4,
        "dxy": 0.001,
        "dz": 0.01,
    }
    return base | kw


def mu(**kw: Any) -> dict[str, Any]:
    """A selected muon (mu+) unless overridden."""
    base = {
        "pt": 30.0,
        "eta": -0.3,
        "phi": 2.5,
        "mass": 0.1057,
        "charge": 1,
        "pdgId": -13,
        "pfRelIso04_all": 0.02,
        "tightId": True,
        "dxy": 0.001,
        "dz": 0.01,
    }
    return base | kw


def jet(**kw: Any) -> dict[str, Any]:
    """A selected light jet, far from the default leptons, unless overridden."""
    base = {"pt": 60.0, "eta": 1.5, "phi": -1.5, "mass": 8.0, "btagDeepFlavB": 0.05, "jetId": 6}
    return base | kw


def jets2(**kw1: Any) -> list[dict[str, Any]]:
    """The default two jets; keyword arguments modify the second one."""
    return [jet(), jet(**({"pt": 45.0, "eta": -1.8, "phi": -2.8, "mass": 6.0} | kw1))]


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
    path: Path, events: list[dict[str, Any]], *, gen_weight: bool = True, skip_muon: tuple[str, ...] = ()
) -> Path:
    """Write ``events`` (dicts with electrons, muons, jets, w, and optional MET) as NanoAOD."""
    n = len(events)
    arrays: dict[str, Any] = {
        "run": np.ones(n, dtype=np.uint32),
        "luminosityBlock": np.ones(n, dtype=np.uint32),
        "event": np.array([ev["event"] for ev in events], dtype=np.uint64),
        "Electron": _collection(events, "electrons", ELE_FIELDS),
        "Muon": _collection(events, "muons", MU_FIELDS, skip_muon),
        "Jet": _collection(events, "jets", JET_FIELDS),
        "MET": ak.zip(
            {
                "pt": np.array([ev.get("met_pt", 35.0) for ev in events], dtype=np.float32),
                "phi": np.array([ev.get("met_phi", 1.0) for ev in events], dtype=np.float32),
                "sumEt": np.full(n, 500.0, dtype=np.float32),
                "significance": np.full(n, 4.5, dtype=np.float32),
            }
        ),
        "TkMET": ak.zip({"pt": np.full(n, 30.0, dtype=np.float32), "phi": np.full(n, 1.2, dtype=np.float32)}),
        "SoftActivityJetHT": np.full(n, 12.5, dtype=np.float32),
    }
    if gen_weight:
        arrays["genWeight"] = np.array([ev["w"] for ev in events], dtype=np.float32)
    write_nanoaod(path, arrays, seed=path.name)
    return path


def _mll_phi(m: float, pt1: float, pt2: float) -> float:
    """Azimuthal separation giving invariant mass ``m`` for massless leptons at equal eta."""
    return math.acos(1.0 - m * m / (2.0 * pt1 * pt2))


# (label, first cut the event fails or None, electrons, muons, jets, genWeight); weights are exact in float32
CASES: list[tuple[str, str | None, list, list, list, float]] = [
    ("base", None, [ele()], [mu()], jets2(), 1.5),
    (
        "third_lepton",
        "two_leptons",
        [ele()],
        [mu(), mu(pt=20.0, eta=-2.0, phi=-0.5, charge=-1, pdgId=13)],
        jets2(),
        2.0,
    ),
    ("only_electron", "two_leptons", [ele()], [], jets2(), 0.25),
    ("no_objects", "two_leptons", [], [], [], 3.0),
    ("electron_in_crack", "two_leptons", [ele(eta=1.45)], [mu()], jets2(), 1.25),
    ("electron_beyond_crack", None, [ele(eta=1.55)], [mu()], jets2(), -0.5),
    ("electron_eta_2p48", "two_leptons", [ele(eta=2.48)], [mu()], jets2(), 1.0),
    ("muon_not_isolated", "two_leptons", [ele()], [mu(pfRelIso04_all=0.16)], jets2(), 0.75),
    ("muon_isolated_0p14", None, [ele()], [mu(pfRelIso04_all=0.14)], jets2(), 2.25),
    ("electron_not_isolated", "two_leptons", [ele(pfRelIso03_all=0.11)], [mu()], jets2(), 1.0),
    ("electron_medium_id", "two_leptons", [ele(cutBased=3)], [mu()], jets2(), 1.0),
    ("muon_not_tight", "two_leptons", [ele()], [mu(tightId=False)], jets2(), 1.0),
    ("electron_dxy", "two_leptons", [ele(dxy=-0.06)], [mu()], jets2(), 1.0),
    ("muon_dz", "two_leptons", [ele()], [mu(dz=0.25)], jets2(), 1.0),
    ("sublead_pt_14p9", "two_leptons", [ele()], [mu(pt=14.9)], jets2(), 1.0),
    ("sublead_pt_15p1", None, [ele()], [mu(pt=15.1)], jets2(), 0.5),
    ("ee", "different_flavour", [ele(), ele(pt=25.0, eta=-0.3, phi=2.5, charge=1, pdgId=-11)], [], jets2(), 4.0),
    ("mumu", "different_flavour", [], [mu(pt=35.0, eta=0.5, phi=0.0, charge=-1, pdgId=13), mu()], jets2(), 1.0),
    ("same_sign", "opposite_sign", [ele()], [mu(charge=-1, pdgId=13)], jets2(), -2.0),
    ("lead_pt_22p1", None, [ele(pt=22.1)], [mu(pt=20.0)], jets2(), 1.75),
    ("lead_pt_21p9", "lead_pt", [ele(pt=21.9)], [mu(pt=20.0)], jets2(), 0.5),
    ("lead_muon_22p1", None, [ele(pt=16.0)], [mu(pt=22.1)], jets2(), 1.0),
    (
        "mll_10p5",
        None,
        [ele(pt=25.0, eta=0.2, phi=0.0, mass=0.0)],
        [mu(pt=16.0, eta=0.2, phi=_mll_phi(10.5, 25.0, 16.0), mass=0.0)],
        jets2(),
        1.0,
    ),
    (
        "mll_9p5",
        "mll",
        [ele(pt=25.0, eta=0.2, phi=0.0, mass=0.0)],
        [mu(pt=16.0, eta=0.2, phi=_mll_phi(9.5, 25.0, 16.0), mass=0.0)],
        jets2(),
        -1.25,
    ),
    ("jet_pt_25p1", None, [ele()], [mu()], jets2(pt=25.1), 1.0),
    ("jet_pt_24p9", "two_jets", [ele()], [mu()], jets2(pt=24.9), 1.5),
    ("jet_overlaps_electron", "two_jets", [ele()], [mu()], jets2(eta=0.8, phi=0.0), 1.0),  # dR = 0.3
    ("jet_near_electron", None, [ele()], [mu()], jets2(eta=1.0, phi=0.0), 1.0),  # dR = 0.5
    ("jet_forward", "two_jets", [ele()], [mu()], jets2(eta=2.6), 1.0),
    ("jet_fails_id", "two_jets", [ele()], [mu()], jets2(jetId=0), 1.0),
    ("btag_0p28", "zero_bjets", [ele()], [mu()], [jet(btagDeepFlavB=0.28), jets2()[1]], 2.5),
    ("btag_0p27", None, [ele()], [mu()], [jet(btagDeepFlavB=0.27), jets2()[1]], 1.0),
    (
        "bjet_on_muon_removed",
        None,
        [ele()],
        [mu()],
        [*jets2(), jet(pt=80.0, eta=-0.4, phi=2.6, btagDeepFlavB=0.9)],
        1.0,
    ),
]


def _events() -> list[dict[str, Any]]:
    return [
        {"event": 1000 + i, "electrons": e, "muons": m, "jets": j, "w": w} for i, (_, _, e, m, j, w) in enumerate(CASES)
    ]


def _expected_cutflow(cases: list[tuple]) -> list[tuple[str, int, float]]:
    order = ["all", *CUTS]
    rows = []
    for k, name in enumerate(order):
        # an event is counted at cut k if it fails none of the cuts up to and including k
        kept = [c for c in cases if c[1] is None or order.index(c[1]) > k]
        rows.append((name, len(kept), math.fsum(c[5] for c in kept)))
    return rows


@pytest.fixture(scope="module")
def skim_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_events(tmp_path_factory.mktemp("vh") / "cases.root", _events())


@pytest.fixture(scope="module")
def skim_result(skim_file: Path) -> tuple:
    return run_vh_skim([str(skim_file)], selection=DFOSSelection())


def test_survivors_are_exactly_the_passing_cases(skim_result: tuple) -> None:
    table, _ = skim_result
    expected = [1000 + i for i, c in enumerate(CASES) if c[1] is None]
    assert table["event"].tolist() == expected
    assert list(table.columns) == list(COLUMNS)
    assert len(expected) == 11


def test_cutflow_counts_raw_and_weighted(skim_result: tuple) -> None:
    _, cutflow = skim_result
    got = [(c["name"], c["raw"], c["weighted"]) for c in cutflow["cuts"]]
    assert [g[0] for g in got] == ["all", *CUTS]
    assert [g[1] for g in got] == [33, 21, 19, 18, 17, 16, 12, 11]  # counted by hand from CASES
    for (name, raw, weighted), (ename, eraw, eweighted) in zip(got, _expected_cutflow(CASES), strict=True):
        assert (name, raw) == (ename, eraw)
        assert weighted == pytest.approx(eweighted, abs=1e-12), name
    assert cutflow["sumw"] == pytest.approx(math.fsum(c[5] for c in CASES))
    assert cutflow["n_events"] == len(CASES)
    assert cutflow["selection"]["btag_min"] == pytest.approx(0.2783)


def test_every_cut_is_exercised_on_both_sides() -> None:
    failing = {c[1] for c in CASES}
    assert set(CUTS) <= failing
    assert None in failing


def test_columns_of_the_base_event(skim_result: tuple) -> None:
    table, _ = skim_result
    row = table.iloc[0]
    assert row["event"] == 1000 and row["genWeight"] == pytest.approx(1.5)
    assert row["l0_pdgId"] == 11 and row["l1_pdgId"] == -13
    assert row["l0_pt"] == pytest.approx(40.0) and row["l1_pt"] == pytest.approx(30.0)
    assert row["j0_pt"] == pytest.approx(60.0) and row["j1_pt"] == pytest.approx(45.0)
    assert row["njets"] == 2 and row["nbjets"] == 0
    px = 60.0 * math.cos(-1.5) + 45.0 * math.cos(-2.8)
    py = 60.0 * math.sin(-1.5) + 45.0 * math.sin(-2.8)
    assert row["sum_jet_px"] == pytest.approx(px, rel=1e-6)
    assert row["sum_jet_py"] == pytest.approx(py, rel=1e-6)
    assert row["sum_jet_pt"] == pytest.approx(105.0)
    assert row["met_pt"] == pytest.approx(35.0) and row["tkmet_pt"] == pytest.approx(30.0)
    assert row["soft_ht"] == pytest.approx(12.5) and row["met_significance"] == pytest.approx(4.5)
    # the b-tagged jet overlapping the muon is removed: 2 jets, no b-jet, sum_jet_pt without it
    removed = table[table["event"] == 1000 + [c[0] for c in CASES].index("bjet_on_muon_removed")].iloc[0]
    assert removed["njets"] == 2 and removed["nbjets"] == 0 and removed["sum_jet_pt"] == pytest.approx(105.0)
    # muon leading: l0 is the muon
    lead_mu = table[table["event"] == 1000 + [c[0] for c in CASES].index("lead_muon_22p1")].iloc[0]
    assert lead_mu["l0_pdgId"] == -13 and lead_mu["l1_pdgId"] == 11


def test_chunking_and_file_order_do_not_change_the_result(skim_file: Path, skim_result: tuple, tmp_path: Path) -> None:
    table, cutflow = skim_result
    other = tmp_path / "copy.root"
    shutil.copy(skim_file, other)
    table2, cutflow2 = run_vh_skim([str(skim_file), str(other)], selection=DFOSSelection(), chunksize=4)
    assert table2["event"].tolist() == table["event"].tolist() * 2
    assert [c["raw"] for c in cutflow2["cuts"]] == [2 * c["raw"] for c in cutflow["cuts"]]
    assert [c["weighted"] for c in cutflow2["cuts"]] == pytest.approx([2 * c["weighted"] for c in cutflow["cuts"]])


def test_futures_executor_matches_iterative(skim_file: Path, skim_result: tuple) -> None:
    table, cutflow = skim_result
    table2, cutflow2 = run_vh_skim(
        [str(skim_file)], selection=DFOSSelection(), executor="futures", workers=2, chunksize=10
    )
    assert table2.equals(table)
    assert cutflow2 == cutflow


def test_dask_executor_matches_iterative(skim_file: Path, skim_result: tuple) -> None:
    """A local dask.distributed cluster (what a cluster profile points at) gives the same table and cutflow."""
    table, cutflow = run_vh_skim([str(skim_file)], executor="dask", workers=1, chunksize=4)
    assert table.equals(skim_result[0])
    assert cutflow == skim_result[1]


def test_data_without_genweight_counts_weight_one(tmp_path: Path) -> None:
    path = write_events(tmp_path / "data.root", _events()[:3], gen_weight=False)
    table, cutflow = run_vh_skim([str(path)], selection=DFOSSelection())
    assert table["genWeight"].tolist() == [1.0]
    assert [c["weighted"] for c in cutflow["cuts"]] == [float(c["raw"]) for c in cutflow["cuts"]]


def test_no_xref_warning_escapes(skim_file: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_vh_skim([str(skim_file)], selection=DFOSSelection())
    assert not [w for w in caught if "cross-reference" in str(w.message)]


def test_selection_from_config() -> None:
    s = DFOSSelection.from_config({"jet_pt_min": 30.0, "muon_tight_id": False})
    assert s.jet_pt_min == 30.0 and s.muon_tight_id is False and s.lead_lepton_pt_min == 22.0
    assert DFOSSelection.from_config(None) == DFOSSelection()
    with pytest.raises(ConfigError, match="'jet_pt_mni'"):
        DFOSSelection.from_config({"jet_pt_mni": 30.0})
    with pytest.raises(ConfigError, match="muon_tight_id"):
        DFOSSelection.from_config({"muon_tight_id": "yes"})
    with pytest.raises(ConfigError, match="mll_min"):
        DFOSSelection.from_config({"mll_min": "ten"})


def test_bad_executor_and_chunksize(skim_file: Path) -> None:
    with pytest.raises(ConfigError, match="'spark'"):
        run_vh_skim([str(skim_file)], executor="spark")
    with pytest.raises(ConfigError, match="scheduler"):
        run_vh_skim([str(skim_file)], executor="futures", scheduler="tcp://localhost:8786")
    with pytest.raises(ConfigError, match="workers"):
        run_vh_skim([str(skim_file)], executor="futures", workers=0)
    with pytest.raises(ConfigError, match="chunksize"):
        run_vh_skim([str(skim_file)], chunksize=0)


def test_cutflow_helper_rejects_reserved_and_duplicate_names() -> None:
    with pytest.raises(ValueError, match="reserved"):
        Cutflow(["all"])
    with pytest.raises(ValueError, match="unique"):
        Cutflow(["a", "a"])


# ------------------------------------------------------------------ bad inputs


def test_missing_branch_names_file_and_branch(tmp_path: Path, skim_file: Path) -> None:
    path = write_events(tmp_path / "no_tight.root", _events()[:2], skip_muon=("tightId",))
    with pytest.raises(MissingBranchError) as err:
        # the good file first: every file is checked before anything is processed
        run_vh_skim([str(skim_file), str(path)])
    message = str(err.value)
    assert str(path) in message and "'Muon_tightId'" in message and "\n" not in message
    assert err.value.branch == "Muon_tightId" and err.value.path == str(path)


def test_check_inputs_needs_files() -> None:
    with pytest.raises(InputFileError, match="no input files"):
        check_inputs([], ["event"], "test")


# ------------------------------------------------------------------ the real CMS NanoAOD file


def _real_file() -> str:
    if not REAL_FILE.exists():
        pytest.skip(f"real CMS NanoAOD file not available at {REAL_FILE} (shared data folder absent)")
    return str(REAL_FILE)


#: Objects without ID/isolation/impact-parameter cuts and looser jets, so that the one
#: e-mu event of the 200-event ttbar file reaches the end of the cutflow.
LOOSE = {
    "electron_cut_based_min": 0,
    "electron_iso_max": 1e9,
    "muon_tight_id": False,
    "muon_iso_max": 1e9,
    "lepton_dxy_max": 1e9,
    "lepton_dz_max": 1e9,
    "jet_pt_min": 15.0,
    "jet_abs_eta_max": 4.7,
    "jet_id_mask": 0,
}


def _monotonic(cutflow: dict) -> bool:
    raw = [c["raw"] for c in cutflow["cuts"]]
    return all(a >= b for a, b in itertools.pairwise(raw))


def test_real_file_default_selection() -> None:
    table, cutflow = run_vh_skim([_real_file()], selection=DFOSSelection())
    raw = [c["raw"] for c in cutflow["cuts"]]
    assert _monotonic(cutflow)
    # Muon_tightId is False for every muon of this 2015 file, so no DFOS event survives
    assert raw == [200, 0, 0, 0, 0, 0, 0, 0]
    assert cutflow["sumw"] == pytest.approx(33432083.0625)
    assert table.empty and list(table.columns) == list(COLUMNS)


def test_real_file_loose_selection_and_features() -> None:
    from hepchain.features.vh import VH_SPEC

    table, cutflow = run_vh_skim([_real_file()], selection=DFOSSelection.from_config(LOOSE))
    raw = [c["raw"] for c in cutflow["cuts"]]
    assert _monotonic(cutflow)
    assert raw == [200, 4, 1, 1, 1, 1, 1, 1]
    assert table["event"].tolist() == [227291826]
    assert cutflow["cuts"][-1]["weighted"] == pytest.approx(225892.453125)
    features = VH_SPEC.compute(table)
    assert list(features.columns) == VH_SPEC.names and len(features) == 1
    assert np.isfinite(features.to_numpy()).all()
