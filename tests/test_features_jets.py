"""Tests of the jet-calibration inputs, helpers and training table (hepchain.features.jets).

Expected numbers are computed by hand from the formulas (with math), not with
the functions under test.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from hepchain.errors import ConfigError, EmptySelectionError, HepchainError
from hepchain.features.jets import (
    AUXILIARY,
    JETS_SPEC,
    TARGETS,
    build_feature_table,
    dijet_asymmetry,
    pf_type_one_hot,
    relative_jer,
    sample_names,
    signed_delta_phi,
    spec_for,
    third_jet_veto,
)
from hepchain.features.vh import assign_folds

pytestmark = [
    pytest.mark.filterwarnings("ignore:Missing cross-reference index:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Branch Photon_:RuntimeWarning"),
]

K = 4


def _table() -> dict[str, np.ndarray]:
    """Three jet rows with K = 4 constituent slots; row 1 has garbage in a padded slot, row 2 no constituents."""
    n = 3
    table: dict[str, np.ndarray] = {
        "event": np.array([11, 11, 12], dtype=np.uint64),
        "genWeight": np.array([1.5, 1.5, -0.5]),
        "jet_rank": np.array([0, 1, 0], dtype=np.int32),
        "is_probe": np.array([True, False, True]),
        "pt_avg": np.array([950.0, 950.0, 1000.0]),
        "asymmetry": np.array([-100 / 950, -100 / 950, 0.0]),
        "pt3": np.zeros(n),
        "in_probe_region": np.array([True, True, False]),
        "jet_in_probe_region": np.array([True, True, False]),
        "rho": np.array([8.5, 8.5, 12.0]),
        "npvs": np.array([20, 20, 31], dtype=np.int32),
        "jet_pt": np.array([1000.0, 900.0, 1000.0]),
        "jet_eta": np.array([0.5, -0.4, 2.0]),
        "jet_phi": np.array([0.0, 3.0, -1.0]),
        "jet_mass": np.array([60.0, 50.0, 80.0]),
        "jet_area": np.full(n, 0.5),
        "jet_rawFactor": np.array([0.25, 0.1, 0.2]),
        "jet_chHEF": np.array([0.5, 0.6, 0.7]),
        "jet_neHEF": np.full(n, 0.125),
        "jet_chEmEF": np.zeros(n),
        "jet_neEmEF": np.full(n, 0.25),
        "jet_muEF": np.full(n, 0.125),
        "jet_nConstituents": np.array([2, 2, 0], dtype=np.int32),
        "jet_nElectrons": np.zeros(n, dtype=np.int32),
        "jet_nMuons": np.array([1, 0, 0], dtype=np.int32),
        "jet_nTracks": np.array([21, 7, 0], dtype=np.int32),
        "jet_trackWidth": np.array([0.0625, 0.125, -1.0]),
        "jet_emFrac": np.array([0.375, 0.5, -1.0]),
        "matched": np.array([True, False, True]),
        "gen_pt": np.array([1040.0, np.nan, 950.0]),
        "calib_factor": np.array([1.04, np.nan, 0.95]),
        "constituents_pt": np.array([[450, 300, 0, 0], [400, 100, 7, 0], [0, 0, 0, 0]], dtype=np.float32),
        "constituents_eta": np.array([[0.625, 0.5, 0, 0], [-0.5, -0.25, 1, 0], [0] * 4], dtype=np.float32),
        "constituents_phi": np.array([[-0.25, 0.125, 0, 0], [-3.1, 2.875, 1, 0], [0] * 4], dtype=np.float32),
        "constituents_charge": np.array([[0, 1, 0, 0], [-1, 0, 1, 0], [0] * 4], dtype=np.int32),
        "constituents_pdgId": np.array([[130, 211, 0, 0], [-211, 22, 13, 0], [0] * 4], dtype=np.int32),
        "constituents_fromPV": np.array([[0, 3, 0, 0], [3, 0, 3, 0], [0] * 4], dtype=np.int32),
        "constituents_d0": np.array([[0, 0.0025, 0, 0], [-0.005, 0, 9, 0], [0] * 4], dtype=np.float32),
        "constituents_dz": np.array([[0, 0.0125, 0, 0], [0.02, 0, 9, 0], [0] * 4], dtype=np.float32),
        "constituents_mask": np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0] * 4], dtype=bool),
    }
    return table


# ------------------------------------------------------------------ helpers


def test_dijet_asymmetry_by_hand() -> None:
    # probe 900, ref 1000: (1000 - 900) / 950
    assert dijet_asymmetry(900.0, 1000.0) == pytest.approx(0.10526315789473684)
    assert dijet_asymmetry(1000.0, 900.0) == pytest.approx(-0.10526315789473684)
    np.testing.assert_allclose(dijet_asymmetry([500.0, 1200.0], [500.0, 800.0]), [0.0, -400.0 / 1000.0])


def test_third_jet_veto_by_hand() -> None:
    # pT_avg = 950: threshold max(25, 237.5) = 237.5
    assert third_jet_veto(237.4, 950.0) and not third_jet_veto(237.6, 950.0)
    # pT_avg = 55: threshold max(25, 13.75) = 25
    assert third_jet_veto(24.9, 55.0) and not third_jet_veto(25.1, 55.0)
    assert not third_jet_veto(25.0, 100.0)  # strict: 25 < 25 is false
    assert third_jet_veto(0.0, 10.0)  # no third jet
    np.testing.assert_array_equal(
        third_jet_veto([29.0, 31.0], [100.0, 100.0], pt_floor=10.0, fraction=0.3), [True, False]
    )


def test_relative_jer_and_angles() -> None:
    assert relative_jer(0.099) == pytest.approx(0.099 / 1.4142135623730951)
    assert signed_delta_phi(-3.1, 3.0) == pytest.approx(-6.1 + 2 * math.pi)
    assert signed_delta_phi(3.1, -3.0) == pytest.approx(6.1 - 2 * math.pi)
    assert signed_delta_phi(0.5, 0.25) == pytest.approx(0.25)
    np.testing.assert_array_equal(
        pf_type_one_hot(np.array([211, -211, 130, 22, -11, 13, 1])).astype(int),
        [
            [1, 0, 0, 0, 0],
            [1, 0, 0, 0, 0],
            [0, 1, 0, 0, 0],
            [0, 0, 1, 0, 0],
            [0, 0, 0, 1, 0],
            [0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0],
        ],
    )


# ------------------------------------------------------------------ the spec


def test_spec_layout() -> None:
    assert JETS_SPEC.study == "jets"
    assert JETS_SPEC.groups == ["event", "constituents"]
    assert len(JETS_SPEC.group_names("event")) == 19
    assert len(JETS_SPEC.group_names("constituents")) == 14
    assert len(JETS_SPEC) == 33
    mask = JETS_SPEC["constituents_mask"]
    assert mask.dtype == "bool" and mask.shape == (64,) and mask.group == "constituents"
    for f in JETS_SPEC.features:
        if f.group == "constituents" and f.name != "constituents_mask":
            assert f.dtype == "float32" and f.shape == (64,) and f.per == "constituent", f.name
    json.dumps(JETS_SPEC.to_dict())
    assert set(TARGETS) | set(AUXILIARY) <= set(_table())


def test_spec_inputs_are_skim_columns() -> None:
    from hepchain.skim.jets import COLUMNS

    for f in JETS_SPEC.features:
        for column in f.inputs:
            assert column in COLUMNS, (f.name, column)
            if f.shape:
                assert COLUMNS[column][1] in ((), f.shape), (f.name, column)
    for column in (*TARGETS, *AUXILIARY):
        assert column in COLUMNS


def test_spec_for_other_k() -> None:
    spec = spec_for(K)
    assert spec.names == JETS_SPEC.names
    assert spec["const_dz"].shape == (K,) and spec["log_pt"].shape == ()
    assert spec_for(64) is JETS_SPEC


def test_jet_features_by_hand() -> None:
    arrays = spec_for(K).compute_arrays(_table())
    np.testing.assert_allclose(arrays["log_pt"], [math.log(1000.0), math.log(900.0), math.log(1000.0)])
    energy0 = math.sqrt((1000.0 * math.cosh(0.5)) ** 2 + 60.0**2)
    energy1 = math.sqrt((900.0 * math.cosh(-0.4)) ** 2 + 50.0**2)
    assert arrays["log_energy"][0] == pytest.approx(math.log(energy0))
    assert arrays["log_energy"][1] == pytest.approx(math.log(energy1))
    np.testing.assert_allclose(arrays["mass_over_pt"], [0.06, 50.0 / 900.0, 0.08])
    np.testing.assert_array_equal(arrays["eta"], [0.5, -0.4, 2.0])
    np.testing.assert_array_equal(arrays["raw_factor"], [0.25, 0.1, 0.2])
    np.testing.assert_array_equal(arrays["n_tracks"], [21, 7, 0])
    np.testing.assert_array_equal(arrays["track_width"], [0.0625, 0.125, -1.0])
    np.testing.assert_array_equal(arrays["rho"], [8.5, 8.5, 12.0])
    np.testing.assert_array_equal(arrays["npvs"], [20, 20, 31])


def test_constituent_features_by_hand() -> None:
    arrays = spec_for(K).compute_arrays(_table())
    # raw pT: 1000 (1 - 0.25) = 750 and 900 (1 - 0.1) = 810
    np.testing.assert_allclose(arrays["const_pt_frac"][0], [0.6, 0.4, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(arrays["const_pt_frac"][1], [400 / 810, 100 / 810, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(arrays["const_deta"][0], [0.125, 0.0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(arrays["const_deta"][1], [-0.1, 0.15, 0, 0], atol=1e-6)
    # -3.1 - 3.0 wraps to 2 pi - 6.1 = 0.18318...
    np.testing.assert_allclose(arrays["const_dphi"][1], [2 * math.pi - 6.1, -0.125, 0, 0], atol=1e-6)
    np.testing.assert_allclose(arrays["const_log_pt"][0], [math.log(450), math.log(300), 0, 0], rtol=1e-6)
    np.testing.assert_array_equal(arrays["const_charge"][1], [-1, 0, 0, 0])
    np.testing.assert_array_equal(arrays["const_is_charged_hadron"][:2], [[0, 1, 0, 0], [1, 0, 0, 0]])
    np.testing.assert_array_equal(arrays["const_is_neutral_hadron"][:2], [[1, 0, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(arrays["const_is_photon"][:2], [[0, 0, 0, 0], [0, 1, 0, 0]])
    np.testing.assert_array_equal(arrays["const_is_muon"][1], [0, 0, 0, 0])  # the muon sits in a padded slot
    np.testing.assert_array_equal(arrays["const_from_pv"][:2], [[0, 3, 0, 0], [3, 0, 0, 0]])
    np.testing.assert_allclose(arrays["const_d0"][:2], [[0, 0.0025, 0, 0], [-0.005, 0, 0, 0]], atol=1e-9)
    np.testing.assert_allclose(arrays["const_dz"][:2], [[0, 0.0125, 0, 0], [0.02, 0, 0, 0]], atol=1e-9)
    np.testing.assert_array_equal(arrays["constituents_mask"], _table()["constituents_mask"])
    # padded slots and the empty jet are all zero
    for name in JETS_SPEC.group_names("constituents"):
        if name != "constituents_mask":
            assert not arrays[name][2].any() and not arrays[name][:, 2:].any(), name
            assert arrays[name].dtype == np.float32
    tensors = spec_for(K).tensors(arrays)
    assert tensors["event"].shape == (3, 19)
    assert tensors["constituents"].shape == (3, K, 13)
    assert tensors["constituents_mask"].shape == (3, K) and tensors["constituents_mask"].dtype == bool


# ------------------------------------------------------------------ the training table


def _two_samples() -> dict[str, dict[str, np.ndarray]]:
    b = _table()
    a = {name: values[:2] for name, values in _table().items()}
    a["event"] = np.array([5, 5], dtype=np.uint64)
    a["genWeight"] = np.array([2.0, 2.0])
    return {"qcd_b": b, "qcd_a": a}


def test_build_feature_table() -> None:
    skims = _two_samples()
    assert sample_names(skims) == ["qcd_a", "qcd_b"]
    table = build_feature_table(skims, n_folds=5, seed=3, weights={"qcd_a": 0.5, "qcd_b": 4.0})
    assert set(table) == {*JETS_SPEC.names, *TARGETS, *AUXILIARY, "weight", "sample", "event", "fold"}
    assert all(len(v) == 5 for v in table.values())
    assert table["sample"].tolist() == [0, 0, 1, 1, 1] and table["sample"].dtype == np.int32
    assert table["event"].tolist() == [5, 5, 11, 11, 12] and table["event"].dtype == np.uint64
    np.testing.assert_allclose(table["weight"], [1.0, 1.0, 6.0, 6.0, -2.0])
    expected_fold = np.concatenate(
        [assign_folds(np.array([5, 5]), "qcd_a", 5, 3), assign_folds(np.array([11, 11, 12]), "qcd_b", 5, 3)]
    )
    np.testing.assert_array_equal(table["fold"], expected_fold)
    assert table["fold"][0] == table["fold"][1] and table["fold"][2] == table["fold"][3]
    np.testing.assert_array_equal(table["calib_factor"], [1.04, np.nan, 1.04, np.nan, 0.95])
    np.testing.assert_array_equal(table["matched"], [True, False, True, False, True])
    assert table["const_pt_frac"].shape == (5, K)
    np.testing.assert_allclose(table["const_pt_frac"][2], [0.6, 0.4, 0, 0], rtol=1e-6)


def test_build_feature_table_default_weights_and_empty_samples() -> None:
    skims = _two_samples()
    skims["qcd_c"] = {name: values[:0] for name, values in _table().items()}
    table = build_feature_table(skims, n_folds=2, seed=0)
    np.testing.assert_allclose(table["weight"], [2.0, 2.0, 1.5, 1.5, -0.5])
    assert sample_names(skims)[2] == "qcd_c" and 2 not in table["sample"]


def test_build_feature_table_errors() -> None:
    skims = _two_samples()
    with pytest.raises(ConfigError, match="'qcd_b'"):
        build_feature_table(skims, n_folds=2, seed=0, weights={"qcd_a": 1.0})
    with pytest.raises(ConfigError, match="n_folds"):
        build_feature_table(skims, n_folds=0, seed=0)
    empty = {"qcd": {name: values[:0] for name, values in _table().items()}}
    with pytest.raises(EmptySelectionError, match="qcd"):
        build_feature_table(empty, n_folds=2, seed=0)
    bad = _two_samples()
    bad["qcd_b"]["jet_eta"] = np.array([0.5, np.nan, 1.0])
    with pytest.raises(HepchainError, match=r"feature 'eta' is NaN or infinite in 1 value.*'qcd_b'"):
        build_feature_table(bad, n_folds=2, seed=0)
    missing = _two_samples()
    del missing["qcd_a"]["jet_nTracks"]
    with pytest.raises(HepchainError, match=r"'jet_nTracks'.*'n_tracks'"):
        build_feature_table(missing, n_folds=2, seed=0)
    no_target = _two_samples()
    del no_target["qcd_a"]["calib_factor"]
    with pytest.raises(HepchainError, match="'calib_factor'"):
        build_feature_table(no_target, n_folds=2, seed=0)
    mixed = _two_samples()
    mixed["qcd_a"] = {
        name: (values[:, :2] if name.startswith("constituents_") else values) for name, values in mixed["qcd_a"].items()
    }
    with pytest.raises(HepchainError, match="different numbers of constituents"):
        build_feature_table(mixed, n_folds=2, seed=0)


def test_features_of_the_hand_made_skim(tmp_path: Path) -> None:
    from hepchain.skim.jets import run_jets_skim
    from tests.test_skim_jets import EXPECTED_RAW, _events, write_events

    path = write_events(tmp_path / "cases.root", _events())
    skim, _ = run_jets_skim([str(path)])
    table = build_feature_table({"dijet": skim}, n_folds=3, seed=1)
    n = 2 * EXPECTED_RAW[-1]
    assert table["log_pt"].shape == (n,) and table["const_pt_frac"].shape == (n, 64)
    for name in JETS_SPEC.names:
        assert np.isfinite(table[name]).all() if table[name].dtype.kind == "f" else True, name
    # base event, leading jet: raw pT = 1000 (1 - 0.25) = 750; constituents 450, 300, 150, 5 GeV
    np.testing.assert_allclose(table["const_pt_frac"][0, :5], [0.6, 0.4, 0.2, 5 / 750, 0.0], rtol=1e-6)
    np.testing.assert_allclose(table["const_dphi"][0, :4], [-0.25, 0.125, -0.0625, 0.0], atol=1e-7)
    np.testing.assert_array_equal(table["const_is_muon"][0, :4], [0, 0, 0, 1])
    assert table["log_pt"][0] == pytest.approx(math.log(1000.0))
    assert (table["fold"][::2] == table["fold"][1::2]).all()
