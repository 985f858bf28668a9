"""Tests of the Z->ee tag-and-probe skim of the electron study (hepchain.skim.electrons).

Tiny hand-made NanoAOD files (with hepchain's EleCell / EleTrack / cluster
extensions) put one event on each side of every threshold; each event carries
the name of the first cut it must fail (or None) and the Electron indices of
its expected probes, from which the survivors, rows and cutflow follow.
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

from hepchain.detector.calo_images import ELECTRON_NANOAOD, cell_layout
from hepchain.errors import ConfigError, InputFileError, MissingBranchError
from hepchain.nanoaod import write_nanoaod
from hepchain.skim.electrons import (
    BRANCHES,
    COLUMNS,
    CUTS,
    EXTENDED_BRANCHES,
    ZeeSelection,
    column_spec,
    run_electrons_skim,
)
from tests.helpers import real_nanoaod

pytestmark = [
    pytest.mark.filterwarnings("ignore:Missing cross-reference index:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Branch Photon_:RuntimeWarning"),
]

LAYOUT = cell_layout()
NPHI = (64, 64, 256, 256)
M_Z = 91.19

ELE_FIELDS: dict[str, Any] = {
    "pt": np.float32,
    "eta": np.float32,
    "phi": np.float32,
    "mass": np.float32,
    "charge": np.int32,
    "pdgId": np.int32,
    "cutBased": np.int32,
    "genPartIdx": np.int32,
    **{name: (np.int32 if dtype == "int32" else np.float32) for name, (_, dtype, _) in ELECTRON_NANOAOD.items()},
}
TRACK_FIELDS: dict[str, Any] = {
    "electronIdx": np.int32,
    "pt": np.float32,
    "charge": np.int32,
    "eta": np.float32,
    "phi": np.float32,
    "dr": np.float32,
    "d0": np.float32,
    "d0sig": np.float32,
    "z0": np.float32,
    "vertex": np.int32,
    "nPixel": np.int32,
    "nSCT": np.int32,
    "nTRT": np.int32,
    "isElectronTrack": np.bool_,
}
CELL_FIELDS: dict[str, Any] = {
    "electronIdx": np.int32,
    "layer": np.uint8,
    "ieta": np.int16,
    "iphi": np.int16,
    "e": np.float32,
    "t": np.float32,
}


def ele(pt: float = 45.0, eta: float = 0.3, phi: float = 0.0, charge: int = -1, cut: int = 4, **kw: Any) -> dict:
    """An electron: tight (a tag above 25 GeV) unless ``cut`` says otherwise; massless for exact m_ee."""
    base = {"pt": pt, "eta": eta, "phi": phi, "mass": 0.0, "charge": charge, "pdgId": -11 * charge, "cutBased": cut}
    return base | kw


def pair(
    pt1: float, pt2: float, m: float, *, eta1: float = 0.3, cut1: int = 4, cut2: int = 4, q2: int = 1, **kw2: Any
) -> list[dict]:
    """Two massless electrons with invariant mass ``m``: same eta if possible, else back to back in phi."""
    x = m * m / (2.0 * pt1 * pt2)  # = cosh(deta) - cos(dphi)
    if x <= 2.0:
        eta2, phi2 = eta1, math.acos(1.0 - x)
    else:
        eta2, phi2 = eta1 - math.acosh(x - 1.0), math.pi
    return [ele(pt1, eta1, 0.0, -1, cut1), ele(pt2, eta2, phi2, q2, cut2) | kw2]


# (label, first cut the event fails or None, electrons, genWeight, expected probe indices)
CASES: list[tuple[str, str | None, list[dict], float, list[int]]] = [
    ("base_two_tags", None, pair(45.0, 40.0, 91.0), 1.5, [0, 1]),
    ("one_tag", None, pair(45.0, 30.0, 91.0, cut2=2), 2.0, [1]),
    ("second_is_tag", None, pair(45.0, 30.0, 91.0, cut1=2), 0.25, [0]),
    ("tag_pt_25p1", None, pair(25.1, 60.0, 91.0, cut2=2), 0.75, [1]),
    ("tag_pt_24p9", "tag", pair(24.9, 60.0, 91.0, cut2=2), 3.0, []),
    ("tag_medium_id", "tag", pair(45.0, 40.0, 91.0, cut1=3, cut2=2), 1.25, []),
    ("probe_pt_9p6", None, pair(80.0, 9.6, 91.0, cut2=2), -0.5, [1]),
    ("probe_pt_9p4", "two_electrons", pair(80.0, 9.4, 91.0, cut2=2), 1.0, []),
    ("eta_2p46", None, pair(45.0, 40.0, 91.0, eta1=2.46), 2.25, [0, 1]),
    ("eta_2p48", "two_electrons", pair(45.0, 40.0, 91.0, eta1=2.48), 1.0, []),
    ("probe_loose_id", None, pair(45.0, 40.0, 91.0, cut2=2), 1.75, [1]),
    ("probe_veto_id", "two_electrons", pair(45.0, 40.0, 91.0, cut2=1), 0.5, []),
    ("crack_kept", None, pair(45.0, 40.0, 91.0, eta1=1.45), 1.0, [0, 1]),
    (
        "third_electron",
        "two_electrons",
        [*pair(45.0, 40.0, 91.0), ele(20.0, -1.0, 2.0, -1, 4)],
        4.0,
        [],
    ),
    (
        "unselected_first_electron",
        None,
        [ele(9.0, 1.0, 1.0, 1, 4), *pair(45.0, 30.0, 91.0, cut2=2)],
        -2.0,
        [2],
    ),
    ("same_sign", "opposite_sign", pair(45.0, 40.0, 91.0, q2=-1), 1.0, []),
    ("m_70p1", None, pair(45.0, 40.0, 70.1), 1.0, [0, 1]),
    ("m_69p9", "m_ee_window", pair(45.0, 40.0, 69.9), 2.5, []),
    ("m_109p9", None, pair(45.0, 40.0, 109.9), 1.0, [0, 1]),
    ("m_110p1", "m_ee_window", pair(45.0, 40.0, 110.1), 0.125, []),
    ("m_85p9", None, pair(45.0, 40.0, 85.9, cut2=2), 1.0, [1]),
    ("m_86p1", None, pair(45.0, 40.0, 86.1, cut2=2), 1.0, [1]),
    ("m_96p9", None, pair(45.0, 40.0, 96.9, cut2=2), 1.0, [1]),
    ("m_97p1", None, pair(45.0, 40.0, 97.1, cut2=2), 1.0, [1]),
    ("one_electron", "two_electrons", [ele()], 1.0, []),
    ("no_electrons", "two_electrons", [], 0.375, []),
]
LABELS = [c[0] for c in CASES]
EVENT0 = 5000


def _ev(label: str) -> int:
    return EVENT0 + LABELS.index(label)


def _code(i_event: int, k: int) -> int:
    """A number identifying electron k of event i (cell energies, track pT and cluster scalars derive from it)."""
    return 10 * i_event + k + 1


def _cells(code: int, k: int, eta: float, phi: float) -> dict[str, np.ndarray]:
    """310 cells of one electron in the documented order (phi indices wrap at the edge of the detector)."""
    deta = np.array([0.025, 0.003125, 0.025, 0.05])
    nw_eta = np.array([7, 56, 7, 4])
    nw_phi = np.array([3, 3, 11, 11])
    nphi = np.array(NPHI)
    start_eta = np.floor(eta / deta - nw_eta / 2 + 0.5).astype(int)
    start_phi = np.floor((phi + math.pi) / (2 * math.pi / nphi) - nw_phi / 2 + 0.5).astype(int) % nphi
    layer = LAYOUT.layer
    j = np.arange(LAYOUT.n_cells)
    return {
        "electronIdx": np.full(LAYOUT.n_cells, k),
        "layer": layer,
        "ieta": start_eta[layer] + LAYOUT.local_eta,
        "iphi": (start_phi[layer] + LAYOUT.local_phi) % nphi[layer],
        "e": code + j / 1024.0,
        "t": -code + j / 512.0,
    }


def _tracks(code: int, k: int, n: int) -> dict[str, np.ndarray]:
    i = np.arange(n)
    return {
        "electronIdx": np.full(n, k),
        "pt": code + i,
        "charge": np.where(i % 2 == 0, -1, 1),
        "eta": 0.1 * i,
        "phi": -0.1 * i,
        "dr": 0.03 * i,
        "d0": 0.001 * i,
        "d0sig": 0.5 * i,
        "z0": 0.02 * i,
        "vertex": i % 2,
        "nPixel": 4 + i,
        "nSCT": 8 + i,
        "nTRT": 30 + i,
        "isElectronTrack": i == 0,
    }


def _concat(blocks: list[dict[str, np.ndarray]], fields: dict[str, Any]) -> dict[str, np.ndarray]:
    return {f: np.concatenate([np.asarray(b[f]) for b in blocks]) if blocks else np.zeros(0) for f in fields}


def _jagged(per_event: list[dict[str, np.ndarray]], fields: dict[str, Any]) -> ak.Array:
    counts = np.array([len(ev[next(iter(fields))]) for ev in per_event], dtype=np.int64)
    return ak.zip(
        {
            f: ak.unflatten(np.concatenate([np.asarray(ev[f]) for ev in per_event]).astype(dt), counts)
            for f, dt in fields.items()
        }
    )


def build_arrays(
    cases: list[tuple],
    *,
    mc: bool = True,
    cells: bool = True,
    n_tracks: dict[tuple[int, int], int] | None = None,
    cell_hook: Any = None,
) -> dict[str, Any]:
    """NanoAOD arrays of ``cases``: Electron (with cluster scalars), EleCell, EleTrack, GenPart, PV, Pileup.

    Electron k of event i matches GenPart k (energy 1.02 x its own) unless it is the
    third electron of an event; event 1 stores its cells and tracks electron by
    electron in reverse order (grouping must go by electronIdx, not by position).
    ``cell_hook(i, k, cells)`` may modify one electron's cells.
    """
    n_tracks = n_tracks or {}
    electrons, gen, cell_ev, track_ev = [], [], [], []
    for i, case in enumerate(cases):
        eles = [dict(e) for e in case[2]]
        gens = []
        cell_blocks, track_blocks = [], []
        for k, e in enumerate(eles):
            code = _code(i, k)
            for name, (_, dtype, _) in ELECTRON_NANOAOD.items():
                e.setdefault(name, code + 0.5 if dtype != "int32" else code)
            e["energyCluster"] = e["pt"] * math.cosh(e["eta"])
            if k < 2:
                energy = 1.02 * e["pt"] * math.cosh(e["eta"])
                gens.append({"pt": energy / math.cosh(e["eta"]), "eta": e["eta"], "phi": e["phi"], "mass": 0.0})
                e["genPartIdx"] = k
            else:
                e["genPartIdx"] = -1
            block = _cells(code, k, e["eta"], e["phi"])
            if cell_hook is not None:
                block = cell_hook(i, k, block)
            cell_blocks.append(block)
            track_blocks.append(_tracks(code, k, n_tracks.get((i, k), 3)))
        if i == 1:
            cell_blocks, track_blocks = cell_blocks[::-1], track_blocks[::-1]
        electrons.append({f: np.array([e[f] for e in eles]) for f in ELE_FIELDS})
        gen.append({f: np.array([g[f] for g in gens]) for f in ("pt", "eta", "phi", "mass")})
        cell_ev.append(_concat(cell_blocks, CELL_FIELDS))
        track_ev.append(_concat(track_blocks, TRACK_FIELDS))
    n = len(cases)
    ele_fields = {f: dt for f, dt in ELE_FIELDS.items() if mc or f != "genPartIdx"}
    arrays: dict[str, Any] = {
        "run": np.ones(n, dtype=np.uint32),
        "luminosityBlock": np.ones(n, dtype=np.uint32),
        "event": np.arange(EVENT0, EVENT0 + n, dtype=np.uint64),
        "Electron": _jagged(electrons, ele_fields),
        "EleTrack": _jagged(track_ev, TRACK_FIELDS),
        "PV": ak.zip(
            {
                "x": np.zeros(n, dtype=np.float32),
                "y": np.zeros(n, dtype=np.float32),
                "z": np.zeros(n, dtype=np.float32),
                "npvs": np.arange(n, dtype=np.int32) + 3,
            }
        ),
    }
    if cells:
        arrays["EleCell"] = _jagged(cell_ev, CELL_FIELDS)
    if mc:
        arrays["genWeight"] = np.array([c[3] for c in cases], dtype=np.float32)
        arrays["GenPart"] = _jagged(gen, {"pt": np.float32, "eta": np.float32, "phi": np.float32, "mass": np.float32})
        arrays["Pileup"] = ak.zip(
            {"nTrueInt": np.full(n, 20.5, dtype=np.float32), "nPU": np.arange(n, dtype=np.int32) + 10}
        )
    return arrays


def write(path: Path, cases: list[tuple] = CASES, **kw: Any) -> Path:
    write_nanoaod(path, build_arrays(cases, **kw), seed=path.name)
    return path


def _expected_cutflow(cases: list[tuple]) -> list[tuple[str, int, float]]:
    order = ["all", *CUTS]
    rows = []
    for k, name in enumerate(order):
        kept = [c for c in cases if c[1] is None or order.index(c[1]) > k]
        rows.append((name, len(kept), math.fsum(c[3] for c in kept)))
    return rows


def _f32(x: float) -> float:
    return float(np.float32(x))


@pytest.fixture(scope="module")
def skim_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 12 tracks for the second electron of the base event: only the first 10 are kept
    return write(tmp_path_factory.mktemp("zee") / "cases.root", n_tracks={(0, 1): 12})


@pytest.fixture(scope="module")
def skim_result(skim_file: Path) -> tuple[dict[str, np.ndarray], dict]:
    return run_electrons_skim([str(skim_file)], selection=ZeeSelection())


def _row(table: dict[str, np.ndarray], label: str, probe: int) -> int:
    hits = np.flatnonzero((table["event"] == _ev(label)) & (table["probe_idx"] == probe))
    assert len(hits) == 1, (label, probe)
    return int(hits[0])


# ------------------------------------------------------------------ selection, rows and cutflow


def test_rows_are_the_probes_of_the_passing_events(skim_result: tuple) -> None:
    table, _ = skim_result
    expected = [(EVENT0 + i, p) for i, c in enumerate(CASES) if c[1] is None for p in c[4]]
    assert list(zip(table["event"].tolist(), table["probe_idx"].tolist(), strict=True)) == expected
    assert len(expected) == 20
    # the tag of each row is the other electron of the pair
    for i, c in enumerate(CASES):
        if c[1] is None and c[4]:
            rows = np.flatnonzero(table["event"] == EVENT0 + i)
            assert set(table["tag_idx"][rows].tolist()) | set(table["probe_idx"][rows].tolist()) == (
                {0, 1} if len(c[2]) == 2 else {1, 2}
            )
            assert (table["tag_idx"][rows] != table["probe_idx"][rows]).all()


def test_every_cut_is_exercised_on_both_sides() -> None:
    failing = {c[1] for c in CASES}
    assert set(CUTS) <= failing and None in failing
    for c in CASES:
        assert (c[1] is None) == bool(c[4]), c[0]


def test_cutflow_counts_events_raw_and_weighted(skim_result: tuple) -> None:
    _, cutflow = skim_result
    got = [(c["name"], c["raw"], c["weighted"]) for c in cutflow["cuts"]]
    assert [g[0] for g in got] == ["all", "two_electrons", "opposite_sign", "tag", "m_ee_window"]
    assert [g[1] for g in got] == [26, 20, 19, 17, 15]  # counted by hand from CASES
    for (name, raw, weighted), (ename, eraw, eweighted) in zip(got, _expected_cutflow(CASES), strict=True):
        assert (name, raw) == (ename, eraw)
        assert weighted == pytest.approx(eweighted, abs=1e-12), name
    assert cutflow["cuts"][-1]["weighted"] == pytest.approx(13.0)
    assert cutflow["sumw"] == pytest.approx(math.fsum(c[3] for c in CASES))
    assert cutflow["n_events"] == len(CASES)
    assert cutflow["selection"]["m_ee_min"] == 70.0 and cutflow["selection"]["n_tracks"] == 10


def test_columns_declared_shapes_and_dtypes(skim_result: tuple) -> None:
    table, _ = skim_result
    assert list(table) == list(COLUMNS)
    n = len(table["event"])
    for name, (dtype, shape) in COLUMNS.items():
        assert table[name].dtype == np.dtype(dtype), name
        assert table[name].shape == (n, *shape), name
    assert COLUMNS["cell_e"] == ("float32", (310,)) and COLUMNS["track_pt"] == ("float32", (10,))
    assert column_spec(4)["track_mask"] == ("bool", (4,))


def test_event_columns_repeated_on_both_rows(skim_result: tuple) -> None:
    table, _ = skim_result
    rows = np.flatnonzero(table["event"] == _ev("base_two_tags"))
    assert len(rows) == 2
    for name in ("genWeight", "m_ee", "PV_npvs", "Pileup_nTrueInt", "Pileup_nPU", "label_window"):
        assert table[name][rows[0]] == table[name][rows[1]], name
    assert table["genWeight"][rows[0]] == 1.5
    assert table["PV_npvs"][rows[0]] == 3 and table["Pileup_nPU"][rows[0]] == 10
    assert table["Pileup_nTrueInt"][rows[0]] == pytest.approx(20.5)


def test_kinematics_label_and_truth_of_a_known_probe(skim_result: tuple) -> None:
    table, _ = skim_result
    e0, e1 = CASES[0][2]
    r = _row(table, "base_two_tags", 1)  # probe = electron 1, tag = electron 0
    pt0, eta0, phi0 = _f32(e0["pt"]), _f32(e0["eta"]), _f32(e0["phi"])
    pt1, eta1, phi1 = _f32(e1["pt"]), _f32(e1["eta"]), _f32(e1["phi"])
    assert table["tag_idx"][r] == 0
    assert (table["tag_pt"][r], table["tag_eta"][r], table["tag_phi"][r]) == (pt0, eta0, phi0)
    assert (table["probe_pt"][r], table["probe_eta"][r], table["probe_phi"][r]) == (pt1, eta1, phi1)
    assert table["probe_charge"][r] == 1 and table["probe_cutBased"][r] == 4
    angular = math.cosh(eta1 - eta0) - math.cos(phi1 - phi0)
    m_ee = math.sqrt(2.0 * pt0 * pt1 * angular)
    assert table["m_ee"][r] == pytest.approx(m_ee, rel=1e-12)
    assert m_ee == pytest.approx(91.0, rel=1e-6)
    # seed: E_label = M^2 / (2 E_T,tag (cosh(deta) - cos(dphi))) is the probe E_T; x cosh(eta) for the energy
    label = M_Z**2 / (2.0 * pt0 * angular) * math.cosh(eta1)
    assert table["probe_energy_zlabel"][r] == pytest.approx(label, rel=1e-12)
    assert table["probe_energy_zlabel"][r] == pytest.approx(pt1 * math.cosh(eta1) * (M_Z / m_ee) ** 2, rel=1e-9)
    # truth: GenPart 1 carries 1.02 x the electron's energy
    gen_pt = _f32(1.02 * e1["pt"] * math.cosh(e1["eta"]) / math.cosh(e1["eta"]))
    assert table["probe_energy_truth"][r] == pytest.approx(gen_pt * math.cosh(eta1), rel=1e-12)
    # cluster scalars of electron 1 of event 0 (code 2): energyCluster = pt cosh(eta), others code + 0.5
    assert table["probe_energyCluster"][r] == pytest.approx(e1["pt"] * math.cosh(e1["eta"]), rel=1e-6)
    assert table["probe_eAcc"][r] == 2.5 and table["probe_etaIndex"][r] == 2 and table["probe_nTracks"][r] == 2


def test_truth_is_nan_without_a_match(skim_result: tuple) -> None:
    table, _ = skim_result
    r = _row(table, "unselected_first_electron", 2)  # the third electron has genPartIdx = -1
    assert np.isnan(table["probe_energy_truth"][r])
    assert table["tag_idx"][r] == 1
    assert np.isfinite(table["probe_energy_truth"][_row(table, "one_tag", 1)])


def test_label_window_column(skim_result: tuple) -> None:
    table, _ = skim_result
    expected = {
        "base_two_tags": True,
        "m_70p1": False,
        "m_109p9": False,
        "m_85p9": False,
        "m_86p1": True,
        "m_96p9": True,
        "m_97p1": False,
    }
    for label, flag in expected.items():
        rows = np.flatnonzero(table["event"] == _ev(label))
        assert rows.size and (table["label_window"][rows] == flag).all(), label


def test_cells_grouped_by_electron_in_layout_order(skim_result: tuple) -> None:
    table, _ = skim_result
    j = np.arange(310)
    for label, probe in (("base_two_tags", 0), ("base_two_tags", 1), ("one_tag", 1), ("unselected_first_electron", 2)):
        i = LABELS.index(label)
        r = _row(table, label, probe)
        code = _code(i, probe)
        np.testing.assert_array_equal(table["cell_e"][r], (code + j / 1024.0).astype(np.float32))
        np.testing.assert_array_equal(table["cell_t"][r], (-code + j / 512.0).astype(np.float32))
    # the middle layer reshapes to (7, 11) eta x phi
    r = _row(table, "base_two_tags", 0)
    middle = table["cell_e"][r, LAYOUT.block(2)].reshape(7, 11)
    assert middle[3, 5] == np.float32(_code(0, 0) + (189 + 3 * 11 + 5) / 1024.0)


def test_tracks_padded_truncated_and_grouped(skim_result: tuple) -> None:
    table, _ = skim_result
    r = _row(table, "base_two_tags", 1)  # 12 tracks stored: the first 10 kept
    assert table["track_mask"][r].all()
    np.testing.assert_array_equal(table["track_pt"][r], np.float32(_code(0, 1) + np.arange(10)))
    np.testing.assert_array_equal(table["track_isElectronTrack"][r], np.arange(10) == 0)
    np.testing.assert_array_equal(table["track_nTRT"][r], 30 + np.arange(10))
    r = _row(table, "one_tag", 1)  # 3 tracks, stored after the other electron's (reverse order in event 1)
    np.testing.assert_array_equal(table["track_mask"][r], np.arange(10) < 3)
    np.testing.assert_array_equal(table["track_pt"][r], np.where(np.arange(10) < 3, _code(1, 1) + np.arange(10), 0))
    np.testing.assert_array_equal(table["track_charge"][r], [-1, 1, -1, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(table["track_dr"][r], [0.0, 0.03, 0.06, 0, 0, 0, 0, 0, 0, 0], rtol=1e-6)


def test_crack_veto_option(tmp_path: Path) -> None:
    cases = [
        ("crack_1p45", "two_electrons", pair(45.0, 40.0, 91.0, eta1=1.45), 1.0, []),
        ("crack_1p38", "two_electrons", pair(45.0, 40.0, 91.0, eta1=-1.38), 1.0, []),
        ("beyond_1p53", None, pair(45.0, 40.0, 91.0, eta1=-1.53), 1.0, [0, 1]),
        ("before_1p36", None, pair(45.0, 40.0, 91.0, eta1=1.36), 1.0, [0, 1]),
    ]
    path = write(tmp_path / "crack.root", cases)
    table, cutflow = run_electrons_skim([str(path)], selection=ZeeSelection(crack_veto=True))
    assert [c["raw"] for c in cutflow["cuts"]] == [4, 2, 2, 2, 2]
    assert table["event"].tolist() == [EVENT0 + 2, EVENT0 + 2, EVENT0 + 3, EVENT0 + 3]
    _, default = run_electrons_skim([str(path)], cutflow_only=True)
    assert [c["raw"] for c in default["cuts"]] == [4, 4, 4, 4, 4]


def test_chunking_and_file_order_do_not_change_the_result(skim_file: Path, skim_result: tuple, tmp_path: Path) -> None:
    table, cutflow = skim_result
    other = tmp_path / "copy.root"
    shutil.copy(skim_file, other)
    table2, cutflow2 = run_electrons_skim([str(skim_file), str(other)], chunksize=7)
    for name in COLUMNS:
        np.testing.assert_array_equal(table2[name], np.concatenate([table[name], table[name]]), err_msg=name)
    assert [c["raw"] for c in cutflow2["cuts"]] == [2 * c["raw"] for c in cutflow["cuts"]]


def test_futures_executor_matches_iterative(skim_file: Path, skim_result: tuple) -> None:
    table, cutflow = skim_result
    table2, cutflow2 = run_electrons_skim([str(skim_file)], executor="futures", workers=2, chunksize=10)
    assert cutflow2 == cutflow
    for name in COLUMNS:
        np.testing.assert_array_equal(table2[name], table[name], err_msg=name)


def test_cutflow_only_matches_and_returns_empty_columns(skim_file: Path, skim_result: tuple) -> None:
    _, cutflow = skim_result
    table, cutflow2 = run_electrons_skim([str(skim_file)], cutflow_only=True)
    assert cutflow2 == cutflow
    assert list(table) == list(COLUMNS)
    assert all(len(v) == 0 for v in table.values())
    assert table["cell_e"].shape == (0, 310)


def test_data_without_truth_weights_or_pileup(tmp_path: Path) -> None:
    path = write(tmp_path / "data.root", CASES[:3], mc=False)
    table, cutflow = run_electrons_skim([str(path)])
    assert table["probe_idx"].tolist() == [0, 1, 1, 0]
    assert (table["genWeight"] == 1.0).all()
    assert np.isnan(table["probe_energy_truth"]).all() and np.isnan(table["Pileup_nTrueInt"]).all()
    assert (table["Pileup_nPU"] == -1).all()
    assert np.isfinite(table["probe_energy_zlabel"]).all()
    assert [c["weighted"] for c in cutflow["cuts"]] == [float(c["raw"]) for c in cutflow["cuts"]]


def test_selection_from_config() -> None:
    s = ZeeSelection.from_config({"m_ee_min": 80.0, "crack_veto": True, "n_tracks": 5})
    assert s.m_ee_min == 80.0 and s.crack_veto is True and s.n_tracks == 5 and s.electron_pt_min == 9.5
    assert ZeeSelection.from_config(None) == ZeeSelection()
    assert ZeeSelection().to_dict()["tag_cut_based_min"] == 4
    with pytest.raises(ConfigError, match=r"'m_ee_mni'.*known keys"):
        ZeeSelection.from_config({"m_ee_mni": 80.0})
    with pytest.raises(ConfigError, match="crack_veto"):
        ZeeSelection.from_config({"crack_veto": "yes"})
    with pytest.raises(ConfigError, match="n_tracks"):
        ZeeSelection.from_config({"n_tracks": 2.5})
    with pytest.raises(ConfigError, match="m_ee_min"):
        ZeeSelection.from_config({"m_ee_min": 120.0})
    with pytest.raises(ConfigError, match="tag_pt_min"):
        ZeeSelection.from_config({"tag_pt_min": float("nan")})


def test_n_tracks_changes_the_set_size(skim_file: Path) -> None:
    table, _ = run_electrons_skim([str(skim_file)], selection=ZeeSelection(n_tracks=2))
    assert table["track_pt"].shape[1:] == (2,) and table["track_mask"].shape[1:] == (2,)


# ------------------------------------------------------------------ bad inputs


def test_probe_with_missing_cells_names_the_file(tmp_path: Path) -> None:
    def drop_one(i: int, k: int, cells: dict) -> dict:
        return {f: v[:-1] for f, v in cells.items()} if (i, k) == (0, 1) else cells

    path = write(tmp_path / "short.root", CASES[:2], cell_hook=drop_one)
    with pytest.raises(InputFileError) as err:
        run_electrons_skim([str(path)])
    message = str(err.value)
    assert str(path) in message and "309 EleCell cells, expected 310" in message and "event 5000" in message
    assert "\n" not in message


def test_cells_out_of_order_name_the_file(tmp_path: Path) -> None:
    def swap(i: int, k: int, cells: dict) -> dict:
        if (i, k) != (1, 1):
            return cells
        order = np.arange(310)
        order[[200, 201]] = order[[201, 200]]  # two middle-layer cells swapped
        return {f: v[order] for f, v in cells.items()}

    path = write(tmp_path / "swapped.root", CASES[:2], cell_hook=swap)
    with pytest.raises(InputFileError) as err:
        run_electrons_skim([str(path)])
    message = str(err.value)
    assert str(path) in message and "not in the documented order" in message and "cell 200" in message
    assert "electron 1 of event 5001" in message


def test_cells_with_phi_wrap_are_in_order(tmp_path: Path) -> None:
    electrons = pair(45.0, 40.0, 91.0, eta1=0.2)
    electrons[0]["phi"] = math.pi - 0.01  # the first electron's windows cross phi = pi
    electrons[1]["phi"] = -0.01  # still back to back
    cases = [("wrap", None, electrons, 1.0, [0, 1])]
    path = write(tmp_path / "wrap.root", cases)
    table, _ = run_electrons_skim([str(path)])
    assert len(table["event"]) == 2


def test_missing_selection_branch(tmp_path: Path, skim_file: Path) -> None:
    arrays = build_arrays(CASES[:2])
    arrays["Electron"] = ak.zip({f: arrays["Electron"][f] for f in arrays["Electron"].fields if f != "cutBased"})
    path = tmp_path / "no_id.root"
    write_nanoaod(path, arrays, seed="no_id")
    with pytest.raises(MissingBranchError) as err:
        run_electrons_skim([str(skim_file), str(path)], cutflow_only=True)
    message = str(err.value)
    assert str(path) in message and "'Electron_cutBased'" in message and "\n" not in message
    assert err.value.branch == "Electron_cutBased"


def test_ntuple_without_cells_needs_store_cells(tmp_path: Path) -> None:
    path = write(tmp_path / "nocells.root", CASES[:3], cells=False)
    with pytest.raises(MissingBranchError) as err:
        run_electrons_skim([str(path)])
    message = str(err.value)
    assert "'EleCell_electronIdx'" in message and "store_cells: true" in message and "--cutflow-only" in message
    _, cutflow = run_electrons_skim([str(path)], cutflow_only=True)
    assert [c["raw"] for c in cutflow["cuts"]] == [3, 3, 3, 3, 3]


def test_branch_lists() -> None:
    assert set(CUTS) == {"two_electrons", "opposite_sign", "tag", "m_ee_window"}
    assert not any(b.startswith(("EleCell", "EleTrack", "nEleCell", "nEleTrack")) for b in BRANCHES)
    assert EXTENDED_BRANCHES[0] == "EleCell_electronIdx"
    assert "Electron_energyCluster" in EXTENDED_BRANCHES and "EleTrack_d0sig" in EXTENDED_BRANCHES


# ------------------------------------------------------------------ the real CMS NanoAOD file


def test_real_file_cutflow_only() -> None:
    path = str(real_nanoaod())
    table, cutflow = run_electrons_skim([path], cutflow_only=True)
    raw = [c["raw"] for c in cutflow["cuts"]]
    assert raw[0] == 200 and cutflow["n_events"] == 200
    assert all(a >= b for a, b in itertools.pairwise(raw))
    # 39 events have one loose electron (pT > 9.5 GeV, |eta| < 2.47), none has two: no Z->ee candidate in ttbar
    assert raw == [200, 0, 0, 0, 0]
    assert cutflow["sumw"] == pytest.approx(33432083.0625)
    assert all(len(v) == 0 for v in table.values())


def test_real_file_cutflow_without_id() -> None:
    loose = ZeeSelection.from_config({"electron_cut_based_min": 0, "tag_cut_based_min": 0})
    _, cutflow = run_electrons_skim([str(real_nanoaod())], selection=loose, cutflow_only=True)
    # without ID three events have two electrons, all same-sign
    assert [c["raw"] for c in cutflow["cuts"]] == [200, 3, 0, 0, 0]
    assert cutflow["cuts"][1]["weighted"] == pytest.approx(225892.453125)


def test_real_file_full_skim_needs_extended_branches() -> None:
    path = real_nanoaod()
    with pytest.raises(MissingBranchError) as err:
        run_electrons_skim([str(path)])
    message = str(err.value)
    assert "'EleCell_electronIdx'" in message and path.name in message and "extended" in message
    assert "\n" not in message
