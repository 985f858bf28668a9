"""Tests of the recoil feature spec and helpers (hepchain.features.recoil) against hand computations."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from hepchain.errors import ConfigError, EmptySelectionError, HepchainError
from hepchain.features.recoil import (
    N_PFOS,
    N_PFOS_SPLIT,
    RECOIL_SPEC,
    TARGETS,
    build_feature_table,
    recoil_components,
    recoil_spec,
    sample_names,
    spec_for_skims,
    transverse_mass,
    truth_recoil,
)
from hepchain.features.vh import assign_folds
from hepchain.skim.recoil import COLUMNS, RecoilSelection, skim_columns

# ------------------------------------------------------------------ helpers


def test_transverse_mass_by_hand() -> None:
    # back to back, equal pT: m_T = 2 pT; perpendicular: sqrt(2) pT; collinear: 0
    assert transverse_mass(40.0, 0.0, 40.0, math.pi) == pytest.approx(80.0)
    assert transverse_mass(40.0, 1.0, 40.0, 1.0 + math.pi / 2) == pytest.approx(56.568542494923804)
    assert transverse_mass(40.0, 0.3, 25.0, 0.3) == 0.0
    # 30 and 50 GeV at dphi = 2: sqrt(2 * 30 * 50 * (1 - cos 2)) = sqrt(3000 * 1.4161468365471424)
    assert transverse_mass(30.0, -1.0, 50.0, 1.0) == pytest.approx(65.18006221, rel=1e-8)
    # dphi across the -pi/pi boundary is the same as the short way round
    assert transverse_mass(30.0, 3.0, 50.0, -3.0) == pytest.approx(transverse_mass(30.0, 0.0, 50.0, 2 * math.pi - 6.0))
    out = transverse_mass(np.array([40.0, np.nan]), np.array([0.0, 0.0]), np.array([40.0, 1.0]), np.array([math.pi, 0]))
    assert out[0] == pytest.approx(80.0) and np.isnan(out[1]) and out.dtype == np.float64


def test_recoil_components_by_hand() -> None:
    # reference along +x: a recoil pointing to -x is a perfect balance of a boson along +x
    assert recoil_components(-10.0, 0.0, 0.0) == pytest.approx((10.0, 0.0))
    # reference along +x, recoil along +y: no parallel part, u_perp = u_x e_y - u_y e_x = -5
    assert recoil_components(0.0, 5.0, 0.0) == pytest.approx((0.0, -5.0))
    # reference along +y, u = (3, 4): u_par = -(3*0 + 4*1) = -4, u_perp = 3*1 - 4*0 = 3
    assert recoil_components(3.0, 4.0, math.pi / 2) == pytest.approx((-4.0, 3.0))
    # reference at 45 degrees, u = (1, 3): e = (1, 1)/sqrt2; u_par = -4/sqrt2, u_perp = (1 - 3)/sqrt2
    assert recoil_components(1.0, 3.0, math.pi / 4) == pytest.approx((-2.8284271247, -1.4142135624))
    # a perfect recoil of a W with pT 12.5 at phi 2.8 gives u_par = 12.5, u_perp = 0
    ux, uy = -12.5 * math.cos(2.8), -12.5 * math.sin(2.8)
    u_par, u_perp = recoil_components(np.array([ux, 2 * ux]), np.array([uy, 2 * uy]), np.array([2.8, 2.8]))
    assert u_par.tolist() == pytest.approx([12.5, 25.0]) and u_perp.tolist() == pytest.approx([0.0, 0.0], abs=1e-12)


def test_truth_recoil_is_minus_the_w() -> None:
    ux, uy = truth_recoil(np.array([12.5, np.nan]), np.array([2.8, 0.0]))
    assert ux[0] == pytest.approx(-12.5 * math.cos(2.8)) and uy[0] == pytest.approx(-12.5 * math.sin(2.8))
    assert np.isnan(ux[1]) and np.isnan(uy[1])


# ------------------------------------------------------------------ a hand-made skim table


def skim(n: int, **columns: Any) -> dict[str, np.ndarray]:
    """A skim table of ``n`` rows: zeros of each COLUMNS dtype and shape, overridden by ``columns``."""
    table = {name: np.zeros((n, *shape), dtype=dtype) for name, (dtype, shape) in COLUMNS.items()}
    table["event"] = np.arange(1, n + 1, dtype=np.uint64)
    table["genWeight"] = np.ones(n)
    for c in ("j0_pt", "j0_eta", "j0_phi", "j1_pt", "j1_eta", "j1_phi"):
        table[c] = np.full(n, np.nan)
    for name, values in columns.items():
        table[name] = np.asarray(values, dtype=table[name].dtype).reshape(table[name].shape)
    return table


def two_events() -> dict[str, np.ndarray]:
    pfo_pt = np.zeros((2, N_PFOS), dtype=np.float32)
    pfo_phi = np.zeros((2, N_PFOS), dtype=np.float32)
    pfo_charge = np.zeros((2, N_PFOS), dtype=np.int32)
    pfo_pdg = np.zeros((2, N_PFOS), dtype=np.int32)
    pfo_mask = np.zeros((2, N_PFOS), dtype=bool)
    # event 0: charged hadron 10 GeV at phi 2, neutral hadron 8 at 3, HF EM (pdgId 2) 1.5 at 0.5
    pfo_pt[0, :3], pfo_phi[0, :3], pfo_charge[0, :3], pfo_pdg[0, :3] = (
        [10, 8, 1.5],
        [2, 3, 0.5],
        [1, 0, 0],
        [211, 130, 2],
    )
    pfo_mask[0, :3] = True
    # event 1: one photon 4 GeV at phi -1
    pfo_pt[1, 0], pfo_phi[1, 0], pfo_pdg[1, 0], pfo_mask[1, 0] = 4, -1, 22, True
    ch_pt = np.zeros((2, N_PFOS_SPLIT), dtype=np.float32)
    ch_phi = np.zeros((2, N_PFOS_SPLIT), dtype=np.float32)
    ch_pt[0, :2], ch_phi[0, :2] = [10, 5], [2, -2.5]
    return skim(
        2,
        u_x=[3.0, -6.0],
        u_y=[4.0, 8.0],
        j0_pt=[30.0, np.nan],
        j0_phi=[2.1, np.nan],
        j1_pt=[np.nan, np.nan],
        mu_pt=[40.0, 35.0],
        mu_phi=[0.0, -1.0],
        mu_eta=[0.3, -2.0],
        met_pt=[40.0, 20.0],
        met_phi=[3.0, 1.0],
        npv=[3, 1],
        pfo_pt=pfo_pt,
        pfo_phi=pfo_phi,
        pfo_charge=pfo_charge,
        pfo_pdgId=pfo_pdg,
        pfo_mask=pfo_mask,
        pfo_ch_pt=ch_pt,
        pfo_ch_phi=ch_phi,
        w_pt=[12.5, 7.0],
        w_phi=[2.8, -0.5],
        genWeight=[1.5, -0.5],
        event=[11, 12],
    )


def test_event_features_by_hand() -> None:
    f = RECOIL_SPEC.compute_arrays(two_events())
    assert f["u_x"].tolist() == [3.0, -6.0] and f["u_t"].tolist() == pytest.approx([5.0, 10.0])
    assert f["j0_px"].tolist() == pytest.approx([30.0 * math.cos(2.1), 0.0])  # no jet: 0
    assert f["j0_py"].tolist() == pytest.approx([30.0 * math.sin(2.1), 0.0])
    assert f["j1_px"].tolist() == [0.0, 0.0]
    assert f["ch_pfo0_px"].tolist() == pytest.approx([10 * math.cos(2.0), 0.0], rel=1e-6)
    assert f["ch_pfo1_py"].tolist() == pytest.approx([5 * math.sin(-2.5), 0.0], rel=1e-6)
    assert f["ch_pfo4_px"].tolist() == [0.0, 0.0] and f["neu_pfo0_px"].tolist() == [0.0, 0.0]
    assert f["mu_px"].tolist() == pytest.approx([40.0, 35.0 * math.cos(-1.0)])
    assert f["mu_py"].tolist() == pytest.approx([0.0, 35.0 * math.sin(-1.0)])
    assert f["mu_eta"].tolist() == pytest.approx([0.3, -2.0])
    assert f["met_px"].tolist() == pytest.approx([40.0 * math.cos(3.0), 20.0 * math.cos(1.0)])
    assert f["npv"].tolist() == [3.0, 1.0]


def test_pfo_set_features_by_hand() -> None:
    f = RECOIL_SPEC.compute_arrays(two_events())
    assert f["pfo_px"].dtype == np.float32 and f["pfo_px"].shape == (2, N_PFOS)
    assert f["pfo_px"][0, :4].tolist() == pytest.approx(
        [10 * math.cos(2), 8 * math.cos(3), 1.5 * math.cos(0.5), 0], rel=1e-6
    )
    assert f["pfo_py"][1, :2].tolist() == pytest.approx([4 * math.sin(-1.0), 0.0], rel=1e-6)
    assert f["pfo_is_photon"][0, :4].tolist() == [0.0, 0.0, 1.0, 0.0]
    assert f["pfo_is_neutral_hadron"][0, :4].tolist() == [0.0, 1.0, 0.0, 0.0]  # padding is no neutral hadron
    assert f["pfo_is_photon"][1, :2].tolist() == [1.0, 0.0]
    assert f["pfo_charge"][0, :3].tolist() == [1.0, 0.0, 0.0]
    assert f["pfos_mask"].dtype == bool and f["pfos_mask"].sum(axis=1).tolist() == [3, 1]


def test_spec_structure() -> None:
    assert RECOIL_SPEC.study == "recoil"
    assert RECOIL_SPEC.groups == ["event", "pfos"]
    event, pfos = RECOIL_SPEC.group_names("event"), RECOIL_SPEC.group_names("pfos")
    assert len(event) == 20 + 4 * N_PFOS_SPLIT + 7 == 47
    assert event[:3] == ["u_x", "u_y", "u_t"] and "sumet_gamma" in event and "ch_pfo4_py" in event
    assert pfos[-1] == "pfos_mask" and len(pfos) == 9
    assert RECOIL_SPEC["pfos_mask"].dtype == "bool" and RECOIL_SPEC["pfo_px"].shape == (N_PFOS,)
    assert all(RECOIL_SPEC[n].dtype == "float32" for n in pfos[:-1])
    # every input the spec reads is a skim column, and the targets' inputs too
    assert set(RECOIL_SPEC.inputs) <= set(COLUMNS)
    assert {"w_pt", "w_phi"} <= set(COLUMNS) and TARGETS == ("truth_ux", "truth_uy")
    tensors = RECOIL_SPEC.tensors(RECOIL_SPEC.compute_arrays(two_events()))
    assert tensors["event"].shape == (2, 47) and tensors["pfos"].shape == (2, N_PFOS, 8)
    assert tensors["pfos_mask"].shape == (2, N_PFOS)
    record = RECOIL_SPEC.to_dict()
    assert record["study"] == "recoil" and len(record["features"]) == 56


def test_spec_for_other_set_sizes() -> None:
    spec = recoil_spec(n_pfos=3, n_split=2)
    assert spec["pfo_pt"].shape == (3,) and "ch_pfo1_px" in spec.names and "ch_pfo2_px" not in spec.names
    columns = skim_columns(RecoilSelection(n_pfos=3, n_pfos_split=2))
    table = {name: np.zeros((1, *shape), dtype=dtype) for name, (dtype, shape) in columns.items()}
    assert spec_for_skims({"a": table}).names == spec.names
    assert spec_for_skims({"a": two_events()}) is RECOIL_SPEC
    assert spec_for_skims({}) is RECOIL_SPEC
    with pytest.raises(HepchainError, match="disagree"):
        spec_for_skims({"a": table, "b": two_events()})


# ------------------------------------------------------------------ the training table


def test_build_feature_table() -> None:
    data = skim(1, u_x=[1.0], u_y=[2.0], w_pt=[np.nan], w_phi=[np.nan], event=[5])
    out = build_feature_table(
        {"wmunu": two_events(), "data": data}, n_folds=5, seed=3, weights={"wmunu": 2.0, "data": 1}
    )
    assert sample_names({"wmunu": 0, "data": 0}) == ["data", "wmunu"]
    assert set(out) == {*RECOIL_SPEC.names, *TARGETS, "weight", "sample", "event", "fold"}
    assert out["sample"].tolist() == [0, 1, 1] and out["sample"].dtype == np.int32
    assert out["event"].tolist() == [5, 11, 12] and out["event"].dtype == np.uint64
    assert out["weight"].tolist() == [1.0, 3.0, -1.0]
    assert out["u_x"].tolist() == [1.0, 3.0, -6.0]
    assert np.isnan(out["truth_ux"][0]) and np.isnan(out["truth_uy"][0])
    assert out["truth_ux"][1:].tolist() == pytest.approx([-12.5 * math.cos(2.8), -7.0 * math.cos(-0.5)])
    assert out["truth_uy"][1:].tolist() == pytest.approx([-12.5 * math.sin(2.8), -7.0 * math.sin(-0.5)])
    folds = [
        *assign_folds(np.array([5], np.uint64), "data", 5, 3),
        *assign_folds(np.array([11, 12], np.uint64), "wmunu", 5, 3),
    ]
    assert out["fold"].tolist() == folds
    assert out["pfo_px"].shape == (3, N_PFOS) and out["pfos_mask"].shape == (3, N_PFOS)
    # without weights: genWeight alone
    plain = build_feature_table({"wmunu": two_events()}, n_folds=2, seed=0)
    assert plain["weight"].tolist() == [1.5, -0.5] and plain["sample"].tolist() == [0, 0]


def test_build_feature_table_errors() -> None:
    with pytest.raises(ConfigError, match="'data'"):
        build_feature_table({"wmunu": two_events(), "data": skim(1)}, n_folds=2, seed=0, weights={"wmunu": 1.0})
    bad = two_events()
    bad["u_x"] = np.array([np.nan, 1.0])
    with pytest.raises(HepchainError, match=r"feature 'u_x' is NaN or infinite in 1 event\(s\) of sample 'wmunu'"):
        build_feature_table({"wmunu": bad}, n_folds=2, seed=0)
    bad = two_events()
    bad["genWeight"] = np.array([np.inf, 1.0])
    with pytest.raises(HepchainError, match="weight is NaN or infinite"):
        build_feature_table({"wmunu": bad}, n_folds=2, seed=0)
    missing = two_events()
    del missing["sumet_nh"]
    with pytest.raises(HepchainError, match="column 'sumet_nh' needed by feature 'sumet_nh'"):
        build_feature_table({"wmunu": missing}, n_folds=2, seed=0)
    with pytest.raises(EmptySelectionError, match="wmunu"):
        build_feature_table({"wmunu": skim(0)}, n_folds=2, seed=0)
    with pytest.raises(EmptySelectionError):
        build_feature_table({}, n_folds=2, seed=0)
    with pytest.raises(ConfigError, match="n_folds"):
        build_feature_table({"wmunu": two_events()}, n_folds=0, seed=0)
