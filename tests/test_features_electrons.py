"""Tests of the electron-study feature spec and helpers (hepchain.features.electrons) against hand computations."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from hepchain.errors import ConfigError, EmptySelectionError, HepchainError
from hepchain.features.electrons import (
    AUX_COLUMNS,
    ELECTRONS_SPEC,
    M_Z,
    TARGETS,
    build_feature_table,
    pt_over_charge,
    sample_names,
    truth_energy,
    z_constraint_energy,
    z_constraint_energy_from_mass,
    z_constraint_et,
)
from hepchain.features.table import read_table, write_table
from hepchain.features.vh import assign_folds
from hepchain.skim.electrons import COLUMNS, run_electrons_skim
from tests.test_skim_electrons import CASES, write

pytestmark = [
    pytest.mark.filterwarnings("ignore:Missing cross-reference index:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Branch Photon_:RuntimeWarning"),
]

SCALARS = [
    "pt", "eta", "phi", "energyCluster", "etaCluster", "phiCluster", "eAcc", "ePS", "e1", "e2", "e3", "f0", "r12",
    "deltaEta2", "deltaPhi2", "etaModCalo", "poscs2", "dPhiTH3", "etaIndex", "nTracks", "ptTrack", "mu", "nVertex",
]  # fmt: skip
TRACKS = [
    "track_pt_over_q", "track_d0sig", "track_dr", "track_vertex", "track_z0", "track_eta", "track_phi",
    "track_nPixel", "track_nSCT", "track_nTRT", "track_isElectronTrack",
]  # fmt: skip


def skim_table(n: int, event0: int = 100) -> dict[str, np.ndarray]:
    """A skim-like table of ``n`` probes: every column of the skim, deterministic values."""
    rows = np.arange(n)
    table: dict[str, np.ndarray] = {}
    for k, (name, (dtype, shape)) in enumerate(COLUMNS.items()):
        values = (k + 1.0 + rows.reshape(-1, *([1] * len(shape)))) * np.ones((n, *shape))
        table[name] = values.astype(dtype)
    table["event"] = (event0 + rows // 2).astype(np.uint64)  # two probes per event
    table["genWeight"] = np.linspace(0.5, 2.0, n)
    table["Pileup_nTrueInt"] = np.full(n, 20.5, dtype=np.float32)
    table["PV_npvs"] = np.full(n, 17, dtype=np.int32)
    charge = np.zeros((n, 10), dtype=np.int32)
    charge[:, :3] = [-1, 1, -1]
    table["track_charge"] = charge
    table["track_pt"] = np.where(charge != 0, 10.0 + np.arange(10), 0.0).astype(np.float32)
    table["track_mask"] = charge != 0
    table["cell_e"] = (rows[:, None] + np.arange(310) / 1024.0).astype(np.float32)
    table["probe_energy_truth"] = np.where(rows == 0, np.nan, 50.0 + rows)
    return table


# ------------------------------------------------------------------ the Z-mass-constraint label


def test_z_constraint_label_against_hand_computation() -> None:
    # E_T,tag = 40 GeV at (0.5, 0.1), probe at (-0.7, 2.9):
    # E_T = 91.19^2 / (2 * 40 * (cosh(-1.2) - cos(2.8))), E = E_T cosh(-0.7)
    cosh12, cos28, cosh07 = 1.8106555673243747, -0.9422223406686581, 1.255169005630943
    et = 91.19**2 / (2.0 * 40.0 * (cosh12 - cos28))
    assert z_constraint_et(40.0, 0.5, 0.1, -0.7, 2.9)[()] == pytest.approx(et, rel=1e-12)
    assert z_constraint_energy(40.0, 0.5, 0.1, -0.7, 2.9)[()] == pytest.approx(et * cosh07, rel=1e-12)
    assert et * cosh07 == pytest.approx(47.3934, abs=1e-3)
    # back to back at eta = 0 with E_T,tag = M/2: cosh 0 - cos pi = 2, so E_T = M^2 / (4 M/2) = M/2
    assert z_constraint_energy(M_Z / 2, 0.0, 0.0, 0.0, math.pi)[()] == pytest.approx(M_Z / 2, rel=1e-12)
    assert M_Z == 91.19


def test_z_constraint_label_equals_energy_times_mass_ratio_squared() -> None:
    pt1, eta1, phi1 = 30.0, 1.1, -0.4  # probe
    pt2, eta2, phi2 = 50.0, -0.3, 2.2  # tag
    m = math.sqrt(2.0 * pt1 * pt2 * (math.cosh(eta1 - eta2) - math.cos(phi1 - phi2)))
    e1 = pt1 * math.cosh(eta1)
    label = z_constraint_energy(pt2, eta2, phi2, eta1, phi1)[()]
    assert label == pytest.approx(e1 * (91.19 / m) ** 2, rel=1e-12)
    assert z_constraint_energy_from_mass(e1, m)[()] == pytest.approx(label, rel=1e-12)
    # a pair already on the Z mass keeps its energy
    pt1_on_peak = 91.19**2 / (2.0 * pt2 * (math.cosh(eta1 - eta2) - math.cos(phi1 - phi2)))
    assert label == pytest.approx(pt1_on_peak * math.cosh(eta1), rel=1e-12)
    assert z_constraint_et(pt2, eta2, phi2, eta1, phi1, m_z=m)[()] == pytest.approx(pt1, rel=1e-12)


def test_z_constraint_label_is_nan_where_undefined() -> None:
    got = z_constraint_energy(
        np.array([40.0, 0.0, 40.0]), 0.3, 1.0, np.array([0.3, 0.0, 0.0]), np.array([1.0, 0.5, 2.0])
    )
    assert np.isnan(got[0]) and np.isnan(got[1]) and np.isfinite(got[2])
    assert np.isnan(z_constraint_energy_from_mass(50.0, 0.0))


def test_truth_energy_and_pt_over_charge() -> None:
    assert truth_energy(30.0, 1.0, 0.000511)[()] == pytest.approx(
        math.sqrt((30.0 * math.cosh(1.0)) ** 2 + 0.000511**2), rel=1e-12
    )
    np.testing.assert_array_equal(pt_over_charge(np.array([10.0, 5.0, 0.0]), np.array([1, -1, 0])), [10.0, -5.0, 0.0])


# ------------------------------------------------------------------ the spec


def test_spec_groups_names_and_documentation() -> None:
    assert ELECTRONS_SPEC.study == "electrons"
    assert ELECTRONS_SPEC.groups == ["cells", "event", "tracks"]
    assert ELECTRONS_SPEC.group_names("cells") == ["cell_e", "cell_t"]
    assert ELECTRONS_SPEC.group_names("event") == SCALARS
    assert ELECTRONS_SPEC.group_names("tracks") == [*TRACKS, "tracks_mask"]
    assert len(ELECTRONS_SPEC) == 37
    doc = ELECTRONS_SPEC.to_dict()
    cell = doc["features"][0]
    assert cell["shape"] == [310] and cell["group"] == "cells" and cell["dtype"] == "float32" and cell["per"] == "cell"
    mask = ELECTRONS_SPEC["tracks_mask"].to_dict()
    assert mask["dtype"] == "bool" and mask["shape"] == [10] and mask["inputs"] == ["track_mask"]
    assert ELECTRONS_SPEC["mu"].inputs == ("Pileup_nTrueInt",)
    assert set(ELECTRONS_SPEC.inputs) <= set(COLUMNS)
    assert TARGETS == ("probe_energy_truth", "probe_energy_zlabel")
    assert set(TARGETS) | set(AUX_COLUMNS) <= set(COLUMNS)


def test_feature_values_of_a_hand_table() -> None:
    table = skim_table(3)
    arrays = ELECTRONS_SPEC.compute_arrays(table)
    np.testing.assert_array_equal(arrays["cell_e"], table["cell_e"])
    assert arrays["cell_e"].dtype == np.float32 and arrays["cell_e"].shape == (3, 310)
    expected = np.zeros((3, 10))
    expected[:, :3] = [-10.0, 11.0, -12.0]  # pT / q of the three tracks
    np.testing.assert_array_equal(arrays["track_pt_over_q"], expected)
    assert arrays["track_pt_over_q"].dtype == np.float32
    np.testing.assert_array_equal(arrays["tracks_mask"], np.tile(np.arange(10) < 3, (3, 1)))
    np.testing.assert_array_equal(arrays["mu"], [20.5, 20.5, 20.5])
    np.testing.assert_array_equal(arrays["nVertex"], [17.0, 17.0, 17.0])
    np.testing.assert_array_equal(arrays["energyCluster"], table["probe_energyCluster"].astype(np.float64))
    np.testing.assert_array_equal(arrays["track_d0sig"], table["track_d0sig"])
    tensors = ELECTRONS_SPEC.tensors(arrays)
    assert tensors["cells"].shape == (3, 310, 2)
    assert tensors["event"].shape == (3, 23)
    assert tensors["tracks"].shape == (3, 10, 11)
    assert tensors["tracks_mask"].shape == (3, 10) and tensors["tracks_mask"].dtype == bool
    np.testing.assert_array_equal(tensors["cells"][:, :, 1], table["cell_t"])


# ------------------------------------------------------------------ the training table


def test_build_feature_table_samples_weights_targets_folds() -> None:
    skims = {"zee_pseudodata": skim_table(2, event0=500), "zee": skim_table(4)}
    assert sample_names(skims) == ["zee", "zee_pseudodata"]
    out = build_feature_table(skims, n_folds=5, seed=7, weights={"zee": 2.0})
    assert len(out["event"]) == 6
    for name in (*ELECTRONS_SPEC.names, *TARGETS, *AUX_COLUMNS, "weight", "sample", "event", "fold"):
        assert name in out and len(out[name]) == 6, name
    assert out["sample"].dtype == np.int32 and out["sample"].tolist() == [0, 0, 0, 0, 1, 1]
    np.testing.assert_allclose(out["weight"][:4], 2.0 * skims["zee"]["genWeight"])
    np.testing.assert_allclose(out["weight"][4:], skims["zee_pseudodata"]["genWeight"])
    assert out["event"].dtype == np.uint64 and out["event"].tolist() == [100, 100, 101, 101, 500, 500]
    np.testing.assert_array_equal(out["fold"][:4], assign_folds(skims["zee"]["event"], "zee", 5, 7))
    np.testing.assert_array_equal(
        out["fold"][4:], assign_folds(skims["zee_pseudodata"]["event"], "zee_pseudodata", 5, 7)
    )
    assert out["fold"][0] == out["fold"][1]  # both probes of an event in one fold
    assert np.isnan(out["probe_energy_truth"][0]) and out["probe_energy_truth"][1] == 51.0  # NaN targets are kept
    assert out["cell_e"].shape == (6, 310) and out["track_dr"].shape == (6, 10)
    assert out["label_window"].dtype == bool


def test_build_feature_table_round_trips_through_parquet(tmp_path: Path) -> None:
    out = build_feature_table({"zee": skim_table(3)}, n_folds=2, seed=1)
    path = tmp_path / "features.parquet"
    write_table(path, out, metadata={"spec": ELECTRONS_SPEC.to_dict(), "targets": list(TARGETS)})
    back, meta = read_table(path)
    assert meta["targets"] == list(TARGETS)
    for name, values in out.items():
        np.testing.assert_array_equal(back[name], values, err_msg=name)


def test_build_feature_table_errors() -> None:
    bad = skim_table(3)
    bad["probe_eAcc"] = bad["probe_eAcc"].copy()
    bad["probe_eAcc"][1] = np.nan
    with pytest.raises(HepchainError, match=r"feature 'eAcc' is NaN or infinite in 1 row\(s\) of sample 'zee'"):
        build_feature_table({"zee": bad}, n_folds=2, seed=1)
    bad = skim_table(3)
    bad["cell_t"] = bad["cell_t"].copy()
    bad["cell_t"][2, 100] = np.inf
    with pytest.raises(HepchainError, match="feature 'cell_t'"):
        build_feature_table({"zee": bad}, n_folds=2, seed=1)
    missing = skim_table(2)
    del missing["probe_energy_zlabel"]
    with pytest.raises(HepchainError, match="'probe_energy_zlabel' is missing"):
        build_feature_table({"zee": missing}, n_folds=2, seed=1)
    empty = {name: values[:0] for name, values in skim_table(2).items()}
    with pytest.raises(EmptySelectionError, match="zee"):
        build_feature_table({"zee": empty}, n_folds=2, seed=1)
    out = build_feature_table({"zee": empty, "zz": skim_table(2)}, n_folds=2, seed=1)
    assert out["sample"].tolist() == [1, 1]
    with pytest.raises(ConfigError, match="n_folds"):
        build_feature_table({"zee": skim_table(2)}, n_folds=0, seed=1)


def test_features_of_a_hand_made_skim(tmp_path: Path) -> None:
    path = write(tmp_path / "zee.root", CASES[:3])
    table, _ = run_electrons_skim([str(path)])
    out = build_feature_table({"zee": table}, n_folds=3, seed=2)
    assert len(out["event"]) == 4
    np.testing.assert_array_equal(out["cell_e"], table["cell_e"])
    np.testing.assert_array_equal(out["energyCluster"], table["probe_energyCluster"].astype(np.float64))
    np.testing.assert_array_equal(out["probe_energy_zlabel"], table["probe_energy_zlabel"])
    np.testing.assert_array_equal(out["tracks_mask"], table["track_mask"])
    assert all(np.isfinite(out[n]).all() for n in ELECTRONS_SPEC.names if out[n].dtype != bool)
