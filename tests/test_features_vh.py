"""Tests of the VH feature spec (hepchain.features.vh) against hand computations."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from hepchain.errors import ConfigError, EmptySelectionError, HepchainError
from hepchain.features.spec import Feature, FeatureSpec
from hepchain.features.vh import OUTPUT_COLUMNS, VH_SPEC, assign_folds, build_feature_table, delta_phi
from hepchain.skim.vh import COLUMNS

SKIM_COLUMNS = COLUMNS  # the skim's output columns are the features' input columns

DEFAULT_ROW: dict[str, float] = {
    "event": 1,
    "genWeight": 1.0,
    "l0_pt": 40.0,
    "l0_eta": 0.3,
    "l0_phi": 0.1,
    "l0_mass": 0.0,
    "l0_pdgId": 11,
    "l1_pt": 25.0,
    "l1_eta": -0.4,
    "l1_phi": 1.2,
    "l1_mass": 0.0,
    "l1_pdgId": -13,
    "j0_pt": 60.0,
    "j0_eta": 1.5,
    "j0_phi": -1.5,
    "j0_mass": 0.0,
    "j1_pt": 45.0,
    "j1_eta": -1.8,
    "j1_phi": -2.8,
    "j1_mass": 0.0,
    "njets": 2,
    "nbjets": 0,
    "sum_jet_px": 0.0,
    "sum_jet_py": 0.0,
    "sum_jet_pt": 105.0,
    "met_pt": 30.0,
    "met_phi": 2.0,
    "met_sumEt": 400.0,
    "met_significance": 3.5,
    "tkmet_pt": 20.0,
    "tkmet_phi": 2.2,
    "soft_ht": 15.0,
}


def table(*rows: dict[str, Any]) -> pd.DataFrame:
    """A skim-like table: DEFAULT_ROW overridden by each row."""
    return pd.DataFrame([DEFAULT_ROW | r for r in rows], columns=list(SKIM_COLUMNS))


def feature(name: str, *rows: dict[str, Any]) -> np.ndarray:
    return VH_SPEC[name].compute(table(*rows))


def massless_mass(pt1: float, eta1: float, phi1: float, pt2: float, eta2: float, phi2: float) -> float:
    """m^2 = 2 pT1 pT2 (cosh deta - cos dphi) for two massless particles."""
    return math.sqrt(2.0 * pt1 * pt2 * (math.cosh(eta1 - eta2) - math.cos(phi1 - phi2)))


def test_spec_names_and_order() -> None:
    assert VH_SPEC.names == [
        "pt_l0",
        "pt_l1",
        "dphi_ll",
        "dy_ll",
        "m_ll",
        "pt_j0",
        "pt_j1",
        "dphi_jj",
        "dy_jj",
        "m_jj",
        "m_tautau",
        "m_T",
        "met_track",
        "ht_soft",
        "met_sig",
        "pt_total_track",
        "sum_m_lj",
    ]
    doc = VH_SPEC.to_dict()
    assert doc["study"] == "vh" and len(doc["features"]) == 17
    assert doc["features"][4] == {
        "name": "m_ll",
        "unit": "GeV",
        "description": "dilepton invariant mass",
        "inputs": ["l0_pt", "l0_eta", "l0_phi", "l0_mass", "l1_pt", "l1_eta", "l1_phi", "l1_mass"],
        "per": "event",
        "shape": [],
        "group": "event",
        "dtype": "float64",
    }
    assert set(VH_SPEC.inputs) <= set(SKIM_COLUMNS)


def test_m_ll_back_to_back_and_m_jj() -> None:
    m_ll = feature(
        "m_ll", {"l0_pt": 40.0, "l0_eta": 0.0, "l0_phi": 0.0, "l1_pt": 40.0, "l1_eta": 0.0, "l1_phi": math.pi}
    )
    assert m_ll[0] == pytest.approx(80.0, rel=1e-12)
    row = {"j0_pt": 50.0, "j0_eta": 1.2, "j0_phi": 0.3, "j1_pt": 35.0, "j1_eta": -2.0, "j1_phi": 2.9}
    assert feature("m_jj", row)[0] == pytest.approx(massless_mass(50.0, 1.2, 0.3, 35.0, -2.0, 2.9), rel=1e-12)
    # massive: E = sqrt(p^2 + m^2), sum four-vectors by hand
    row = {
        "j0_pt": 30.0,
        "j0_eta": 0.0,
        "j0_phi": 0.0,
        "j0_mass": 10.0,
        "j1_pt": 30.0,
        "j1_eta": 0.0,
        "j1_phi": math.pi,
        "j1_mass": 10.0,
    }
    assert feature("m_jj", row)[0] == pytest.approx(2.0 * math.sqrt(30.0**2 + 10.0**2), rel=1e-12)


def test_dphi_wraps_across_pi() -> None:
    got = feature(
        "dphi_ll", {"l0_phi": 3.0, "l1_phi": -3.0}, {"l0_phi": -3.1, "l1_phi": 3.1}, {"l0_phi": 0.5, "l1_phi": -0.25}
    )
    np.testing.assert_allclose(got, [2 * math.pi - 6.0, 2 * math.pi - 6.2, 0.75], rtol=1e-12)
    assert delta_phi(np.array([math.pi]), np.array([-math.pi]))[0] == pytest.approx(0.0, abs=1e-12)
    assert delta_phi(np.array([0.0]), np.array([math.pi]))[0] == pytest.approx(math.pi)
    assert feature("dphi_jj", {"j0_phi": 2.0, "j1_phi": -2.5})[0] == pytest.approx(2 * math.pi - 4.5)


def test_dy_uses_rapidity() -> None:
    # massless: y = eta
    assert feature("dy_ll", {"l0_eta": 1.1, "l1_eta": -0.4})[0] == pytest.approx(1.5, rel=1e-12)
    # massive: y = 0.5 ln((E + pz) / (E - pz))
    pt, eta, m = 30.0, 1.0, 20.0
    pz, energy = pt * math.sinh(eta), math.sqrt((pt * math.cosh(eta)) ** 2 + m * m)
    y = 0.5 * math.log((energy + pz) / (energy - pz))
    got = feature("dy_jj", {"j0_pt": pt, "j0_eta": eta, "j0_mass": m, "j1_eta": 0.0, "j1_mass": 0.0})[0]
    assert got == pytest.approx(y, rel=1e-12) and y < eta


def test_m_T_hand_case() -> None:
    # leptons collinear along x (m_ll = 0, pT_ll = 50), MET 40 along y:
    # m_T^2 = (50 + 40)^2 - (50^2 + 40^2) = 4000
    row = {
        "l0_pt": 30.0,
        "l0_eta": 0.0,
        "l0_phi": 0.0,
        "l1_pt": 20.0,
        "l1_eta": 0.0,
        "l1_phi": 0.0,
        "met_pt": 40.0,
        "met_phi": math.pi / 2,
    }
    assert feature("m_T", row)[0] == pytest.approx(math.sqrt(4000.0), rel=1e-9)
    # back-to-back 40 GeV leptons (pT_ll = 0, m_ll = 80), no MET: m_T = m_ll
    row = {"l0_pt": 40.0, "l0_eta": 0.0, "l0_phi": 0.0, "l1_pt": 40.0, "l1_eta": 0.0, "l1_phi": math.pi, "met_pt": 0.0}
    assert feature("m_T", row)[0] == pytest.approx(80.0, rel=1e-9)


def _collinear_row(x1: float, x2: float) -> tuple[dict[str, float], float]:
    """Massless taus, visible leptons x * tau, MET = neutrino sum; returns the row and m(tau tau)."""
    t1 = (60.0, 0.4, 0.3)  # pt, eta, phi
    t2 = (45.0, -0.7, 2.1)
    met_x = (1 - x1) * t1[0] * math.cos(t1[2]) + (1 - x2) * t2[0] * math.cos(t2[2])
    met_y = (1 - x1) * t1[0] * math.sin(t1[2]) + (1 - x2) * t2[0] * math.sin(t2[2])
    row = {
        "l0_pt": x1 * t1[0],
        "l0_eta": t1[1],
        "l0_phi": t1[2],
        "l0_mass": 0.0,
        "l1_pt": x2 * t2[0],
        "l1_eta": t2[1],
        "l1_phi": t2[2],
        "l1_mass": 0.0,
        "met_pt": math.hypot(met_x, met_y),
        "met_phi": math.atan2(met_y, met_x),
    }
    return row, massless_mass(t1[0], t1[1], t1[2], t2[0], t2[1], t2[2])


def test_collinear_mass_recovers_the_ditau_mass() -> None:
    row, m_tautau = _collinear_row(0.5, 0.25)
    assert feature("m_tautau", row)[0] == pytest.approx(m_tautau, rel=1e-6)
    row2, m2 = _collinear_row(0.9, 0.6)
    np.testing.assert_allclose(feature("m_tautau", row, row2), [m_tautau, m2], rtol=1e-6)


def test_collinear_mass_failure_is_zero() -> None:
    # MET = -3 pT(l1): 1/x2 - 1 = -3, so x2 = -0.5 <= 0
    l1x, l1y = 25.0 * math.cos(1.2), 25.0 * math.sin(1.2)
    negative = {"met_pt": 3 * math.hypot(l1x, l1y), "met_phi": math.atan2(-l1y, -l1x)}
    # leptons collinear in the transverse plane: singular system
    singular = {"l0_phi": 0.7, "l1_phi": 0.7}
    back_to_back = {"l0_phi": 0.7, "l1_phi": 0.7 - math.pi}
    good, _ = _collinear_row(0.5, 0.25)
    got = feature("m_tautau", negative, singular, back_to_back, good)
    assert got[0] == 0.0 and got[1] == 0.0 and got[2] == 0.0 and got[3] > 0.0


def test_pt_total_track_balanced_event_is_zero() -> None:
    # leptons 40 at phi 0 and 30 at phi pi/2, jets sum (-20, -50), track MET (-20, 20)
    row = {
        "l0_pt": 40.0,
        "l0_phi": 0.0,
        "l1_pt": 30.0,
        "l1_phi": math.pi / 2,
        "sum_jet_px": -20.0,
        "sum_jet_py": -50.0,
        "tkmet_pt": math.hypot(20.0, 20.0),
        "tkmet_phi": math.atan2(20.0, -20.0),
    }
    assert feature("pt_total_track", row)[0] == pytest.approx(0.0, abs=1e-9)
    unbalanced = row | {"tkmet_pt": 0.0}
    assert feature("pt_total_track", unbalanced)[0] == pytest.approx(math.hypot(20.0, -20.0), rel=1e-12)


def test_sum_m_lj() -> None:
    row = {
        "l0_pt": 40.0,
        "l0_eta": 0.3,
        "l0_phi": 0.1,
        "l1_pt": 25.0,
        "l1_eta": -0.4,
        "l1_phi": 1.2,
        "j0_pt": 60.0,
        "j0_eta": 1.5,
        "j0_phi": -1.5,
        "j1_pt": 45.0,
        "j1_eta": -1.8,
        "j1_phi": -2.8,
    }
    leptons = [(40.0, 0.3, 0.1), (25.0, -0.4, 1.2)]
    jets = [(60.0, 1.5, -1.5), (45.0, -1.8, -2.8)]
    expected = sum(massless_mass(*lep, *j) for lep in leptons for j in jets)
    assert feature("sum_m_lj", row)[0] == pytest.approx(expected, rel=1e-12)


def test_simple_features() -> None:
    t = table(
        {"l0_pt": 41.0, "l1_pt": 21.0, "sum_jet_pt": 100.0, "soft_ht": 7.0, "tkmet_pt": 12.0, "met_significance": 2.5}
    )
    f = VH_SPEC.compute(t)
    assert f.loc[0, "ht_soft"] == pytest.approx(169.0)
    assert f.loc[0, "met_track"] == 12.0 and f.loc[0, "met_sig"] == 2.5
    assert f.loc[0, "pt_l0"] == 41.0 and f.loc[0, "pt_j1"] == 45.0
    assert list(f.columns) == VH_SPEC.names and f.dtypes.unique().tolist() == [np.dtype("float64")]


def test_compute_on_empty_table() -> None:
    f = VH_SPEC.compute(table().iloc[:0])
    assert f.empty and list(f.columns) == VH_SPEC.names


def test_missing_column_is_named() -> None:
    t = table({}).drop(columns=["tkmet_phi"])
    with pytest.raises(HepchainError, match=r"'tkmet_phi'.*'pt_total_track'"):
        VH_SPEC.compute(t)


def test_spec_rejects_duplicates_and_bad_shapes() -> None:
    f = Feature("a", "", "a", lambda t: np.zeros(len(t)))
    with pytest.raises(ValueError, match="repeats"):
        FeatureSpec("x", (f, f))
    bad = FeatureSpec("x", (Feature("b", "", "b", lambda t: np.zeros(3)),))
    with pytest.raises(HepchainError, match="'b' returned shape"):
        bad.compute(table({}))


# ------------------------------------------------------------------ folds


def test_assign_folds_deterministic_balanced_and_sample_dependent() -> None:
    events = np.arange(100_000, dtype=np.uint64) + np.uint64(123_456_789)
    a = assign_folds(events, "vh_signal", 5, 42)
    assert np.array_equal(a, assign_folds(events, "vh_signal", 5, 42))
    assert a.min() == 0 and a.max() == 4
    counts = np.bincount(a, minlength=5)
    assert np.all(np.abs(counts - 20_000) < 0.03 * 20_000), counts
    # per-event: independent of the order and of the other events
    perm = np.random.default_rng(0).permutation(events.size)
    assert np.array_equal(assign_folds(events[perm], "vh_signal", 5, 42), a[perm])
    assert np.array_equal(assign_folds(events[:10], "vh_signal", 5, 42), a[:10])
    # other sample / other seed: a different, unrelated assignment (agreement ~ 1/5)
    for other in (assign_folds(events, "ttbar", 5, 42), assign_folds(events, "vh_signal", 5, 43)):
        agree = float(np.mean(other == a))
        assert 0.17 < agree < 0.23
    # signed integer event numbers are accepted
    assert np.array_equal(assign_folds(events.astype(np.int64), "vh_signal", 5, 42), a)


def test_assign_folds_rejects_bad_input() -> None:
    with pytest.raises(ConfigError, match="n_folds"):
        assign_folds(np.arange(3), "s", 0, 1)
    with pytest.raises(HepchainError, match="integers"):
        assign_folds(np.arange(3, dtype=float), "s", 2, 1)


# ------------------------------------------------------------------ training table


def test_build_feature_table() -> None:
    sig = table({"event": 10, "genWeight": 2.0}, {"event": 11, "genWeight": -1.0})
    bkg = table({"event": 10, "genWeight": 0.5})
    out = build_feature_table(
        {"vh": sig, "ttbar": bkg}, {"vh": 1, "ttbar": 0}, {"vh": 0.1, "ttbar": 3.0}, n_folds=4, seed=7
    )
    assert list(out.columns) == [*VH_SPEC.names, "weight", "label", "sample", "event", "fold"] == list(OUTPUT_COLUMNS)
    assert out["weight"].tolist() == pytest.approx([0.2, -0.1, 1.5])
    assert out["label"].tolist() == [1, 1, 0]
    assert out["sample"].tolist() == ["vh", "vh", "ttbar"]
    assert out["event"].tolist() == [10, 11, 10]
    assert out["fold"].tolist() == [
        *assign_folds(np.array([10, 11]), "vh", 4, 7).tolist(),
        *assign_folds(np.array([10]), "ttbar", 4, 7).tolist(),
    ]
    np.testing.assert_allclose(
        out[VH_SPEC.names].to_numpy(), pd.concat([VH_SPEC.compute(sig), VH_SPEC.compute(bkg)]).to_numpy()
    )


def test_build_feature_table_rejects_non_finite_features() -> None:
    sig = table({"l0_pt": np.nan}, {}, {"l0_pt": np.inf})
    with pytest.raises(HepchainError, match=r"feature 'pt_l0' is NaN or infinite in 2 event\(s\) of sample 'vh'"):
        build_feature_table({"vh": sig}, {"vh": 1}, {"vh": 1.0}, n_folds=2, seed=1)


def test_build_feature_table_empty_and_config_errors() -> None:
    empty = table().iloc[:0]
    with pytest.raises(EmptySelectionError, match="vh, ttbar"):
        build_feature_table({"vh": empty, "ttbar": empty}, {"vh": 1, "ttbar": 0}, {"vh": 1.0, "ttbar": 1.0}, 2, 1)
    with pytest.raises(ConfigError, match=r"'ttbar'.*class"):
        build_feature_table({"ttbar": table({})}, {"vh": 1}, {"ttbar": 1.0}, 2, 1)
    with pytest.raises(ConfigError, match=r"'ttbar'.*normalisation"):
        build_feature_table({"ttbar": table({})}, {"ttbar": 0}, {}, 2, 1)
