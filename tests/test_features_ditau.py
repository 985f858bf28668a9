"""Tests of the di-tau feature spec (hepchain.features.ditau) against hand computations."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hepchain.errors import ConfigError, EmptySelectionError, HepchainError
from hepchain.features.ditau import (
    AUX_COLUMNS,
    DITAU_SPEC,
    OUTPUT_COLUMNS,
    TARGETS,
    baseline_columns,
    build_feature_table,
    collinear_mass_ditau,
    momentum_to_pt_eta_phi,
    n_neutrinos,
    sample_names,
    total_transverse_mass,
    transverse_mass,
    visible_mass,
)
from hepchain.features.vh import assign_folds
from hepchain.skim.ditau import COLUMNS

pytestmark = [
    pytest.mark.filterwarnings("ignore:Missing cross-reference index:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Branch Photon_:RuntimeWarning"),
]

DEFAULT_ROW: dict[str, Any] = {
    "event": 1,
    "genWeight": 1.0,
    "channel": 1,
    "leg1_pt": 30.0,
    "leg1_eta": 0.0,
    "leg1_phi": 0.0,
    "leg1_mass": 0.0,
    "leg1_charge": -1,
    "leg1_type": 13,
    "leg1_decay_mode": -1,
    "leg1_gen_flav": 15,
    "leg1_gen_pt": 29.0,
    "leg2_pt": 20.0,
    "leg2_eta": 0.0,
    "leg2_phi": math.pi / 2,
    "leg2_mass": 0.0,
    "leg2_charge": 1,
    "leg2_type": 15,
    "leg2_decay_mode": 1,
    "leg2_gen_flav": 5,
    "leg2_gen_pt": 19.0,
    "met_pt": math.hypot(10.0, 5.0),
    "met_phi": math.atan2(5.0, 10.0),
    "met_covXX": 100.0,
    "met_covXY": -5.0,
    "met_covYY": 120.0,
    "met_significance": 2.5,
    "njets": 2,
    "jet1_pt": 70.0,
    "jet1_eta": 1.2,
    "jet1_phi": -2.0,
    "jet1_mass": 9.0,
    "jet2_pt": 40.0,
    "jet2_eta": -3.0,
    "jet2_phi": 1.0,
    "jet2_mass": 5.0,
    "aha_px": 3.0,
    "aha_py": 4.0,
    "aha_pz": 12.0,
    "aha_njets": 2,
    "npvs": 31,
    "npvs_good": 29,
    "m_true": 91.0,
    "pt_true": 12.0,
}


def table(*rows: dict[str, Any]) -> dict[str, np.ndarray]:
    """A skim-like table (dict of arrays with the skim's dtypes): DEFAULT_ROW overridden by each row."""
    rows = rows or ({},)
    return {
        name: np.array([(DEFAULT_ROW | r)[name] for r in rows], dtype=dtype) for name, (dtype, _) in COLUMNS.items()
    }


def feature(name: str, *rows: dict[str, Any]) -> np.ndarray:
    return DITAU_SPEC[name].compute(table(*rows))


def test_spec_is_the_seeds_27_inputs_in_order() -> None:
    assert DITAU_SPEC.names == [
        "tau1_pt", "tau1_eta", "tau1_phi", "tau2_pt", "tau2_eta", "tau2_phi",
        "jet1_pt", "jet1_eta", "jet1_phi", "jet2_pt", "jet2_eta", "jet2_phi",
        "remaining_jets_pt", "remaining_jets_eta", "remaining_jets_phi", "remaining_jets_N",
        "MET_pt", "MET_phi", "MET_covXX", "MET_covXY", "MET_covYY",
        "mT1", "mT2", "mTtt", "mTtot", "PU_npvsGood", "N_neutrinos",
    ]  # fmt: skip
    assert len(DITAU_SPEC) == 27 and DITAU_SPEC.groups == ["event"]
    assert set(DITAU_SPEC.inputs) <= set(COLUMNS)
    doc = DITAU_SPEC.to_dict()
    assert doc["study"] == "ditau" and doc["features"][21]["name"] == "mT1"
    assert doc["features"][21]["inputs"] == ["leg1_pt", "leg1_phi", "met_pt", "met_phi"]
    assert all(f["shape"] == [] and f["per"] == "event" for f in doc["features"])
    assert TARGETS == ("m_true",)
    assert OUTPUT_COLUMNS[: len(DITAU_SPEC)] == tuple(DITAU_SPEC.names)
    assert OUTPUT_COLUMNS[-4:] == ("weight", "sample", "event", "fold")


def test_legs_met_and_pileup_are_copied() -> None:
    arrays = DITAU_SPEC.compute_arrays(table())
    assert arrays["tau1_pt"][0] == 30.0 and arrays["tau2_phi"][0] == pytest.approx(math.pi / 2)
    assert arrays["MET_pt"][0] == pytest.approx(math.hypot(10.0, 5.0))
    assert (arrays["MET_covXX"][0], arrays["MET_covXY"][0], arrays["MET_covYY"][0]) == (100.0, -5.0, 120.0)
    assert arrays["PU_npvsGood"][0] == 29.0 and arrays["remaining_jets_N"][0] == 2.0
    assert all(v.dtype == np.float64 and v.shape == (1,) for v in arrays.values())


def test_transverse_masses_by_hand() -> None:
    # leg 1 along x (30 GeV), leg 2 along y (20 GeV), MET (10, 5)
    met, met_phi = math.hypot(10.0, 5.0), math.atan2(5.0, 10.0)
    mt1 = math.sqrt(2 * 30.0 * met * (1 - math.cos(met_phi)))
    mt2 = math.sqrt(2 * 20.0 * met * (1 - math.cos(math.pi / 2 - met_phi)))
    mt12 = math.sqrt(2 * 30.0 * 20.0)  # dphi = pi/2
    assert feature("mT1")[0] == pytest.approx(mt1, rel=1e-12)
    assert feature("mT2")[0] == pytest.approx(mt2, rel=1e-12)
    assert feature("mTtt")[0] == pytest.approx(mt12, rel=1e-12)
    assert feature("mTtot")[0] == pytest.approx(math.sqrt(mt1**2 + mt2**2 + mt12**2), rel=1e-12)
    # back-to-back: m_T = 2 sqrt(pT1 pT2); collinear: 0
    assert transverse_mass(np.array([40.0]), np.array([0.5]), np.array([10.0]), np.array([0.5 - math.pi]))[0] == (
        pytest.approx(40.0)
    )
    assert transverse_mass(np.array([40.0]), np.array([1.0]), np.array([10.0]), np.array([1.0]))[0] == 0.0
    assert total_transverse_mass(np.array([3.0]), np.array([4.0]), np.array([12.0]))[0] == pytest.approx(13.0)


def test_remaining_activity_and_missing_jets() -> None:
    got = [feature(n)[0] for n in ("remaining_jets_pt", "remaining_jets_eta", "remaining_jets_phi")]
    assert got == [pytest.approx(5.0), pytest.approx(math.asinh(12.0 / 5.0)), pytest.approx(math.atan2(4.0, 3.0))]
    none = {"aha_px": 0.0, "aha_py": 0.0, "aha_pz": 0.0, "aha_njets": 0}
    assert [feature(n, none)[0] for n in ("remaining_jets_pt", "remaining_jets_eta", "remaining_jets_phi")] == [0, 0, 0]
    # a sum with no transverse momentum: eta 0 rather than infinite
    pt, eta, phi = momentum_to_pt_eta_phi(np.array([0.0]), np.array([0.0]), np.array([7.0]))
    assert (pt[0], eta[0], phi[0]) == (0.0, 0.0, 0.0)
    # absent jets (NaN in the skim) become 0, as in the seed's inputs
    row = {"njets": 1, "jet2_pt": np.nan, "jet2_eta": np.nan, "jet2_phi": np.nan, "jet2_mass": np.nan}
    assert [feature(n, row)[0] for n in ("jet2_pt", "jet2_eta", "jet2_phi")] == [0.0, 0.0, 0.0]
    assert feature("jet1_eta", row)[0] == pytest.approx(1.2)


def test_n_neutrinos_per_channel() -> None:
    got = feature("N_neutrinos", {"channel": 0}, {"channel": 1}, {"channel": 2}, {"channel": 3})
    assert got.tolist() == [2.0, 3.0, 3.0, 4.0]
    with pytest.raises(HepchainError, match="channel codes"):
        n_neutrinos(np.array([0, 4]))
    assert n_neutrinos(np.array([], dtype=np.int32)).shape == (0,)


def test_visible_and_collinear_mass_by_hand() -> None:
    one = [np.array([v]) for v in (30.0, 0.0, 0.0, 0.0, 20.0, 0.0, math.pi / 2, 0.0)]
    m_vis = math.sqrt(2 * 30.0 * 20.0)  # massless, same eta, dphi = pi/2
    assert visible_mass(*one)[0] == pytest.approx(m_vis, rel=1e-12)
    # MET (10, 5) = (1/x1 - 1) (30, 0) + (1/x2 - 1) (0, 20): x1 = 0.75, x2 = 0.8
    m_col, ok = collinear_mass_ditau(*one, np.array([math.hypot(10.0, 5.0)]), np.array([math.atan2(5.0, 10.0)]))
    assert ok[0] and m_col[0] == pytest.approx(m_vis / math.sqrt(0.75 * 0.8), rel=1e-12)
    # MET against leg 1: x1 < 0, undefined
    m_col, ok = collinear_mass_ditau(*one, np.array([40.0]), np.array([math.pi]))
    assert not ok[0] and np.isnan(m_col[0])
    # back-to-back legs: singular
    b2b = [np.array([v]) for v in (30.0, 0.0, 0.0, 0.0, 20.0, 0.0, math.pi, 0.0)]
    m_col, ok = collinear_mass_ditau(*b2b, np.array([10.0]), np.array([0.0]))
    assert not ok[0] and np.isnan(m_col[0])
    # massive legs: E = sqrt(p^2 + m^2)
    massive = [np.array([v]) for v in (30.0, 0.0, 0.0, 1.777, 30.0, 0.0, math.pi, 0.1057)]
    expected = math.sqrt(30.0**2 + 1.777**2) + math.sqrt(30.0**2 + 0.1057**2)
    assert visible_mass(*massive)[0] == pytest.approx(expected, rel=1e-12)
    cols = baseline_columns(table({}, {"met_pt": 40.0, "met_phi": math.pi}))
    assert cols["m_vis"][0] == pytest.approx(m_vis) and cols["m_col"][0] == pytest.approx(m_vis / math.sqrt(0.6))
    assert cols["collinear_ok"].tolist() == [True, False] and np.isnan(cols["m_col"][1])


# ------------------------------------------------------------------ the training table


def test_build_feature_table() -> None:
    skims = {
        "ztautau": table({"event": 11, "genWeight": 2.0}, {"event": 12, "genWeight": -1.0, "channel": 3}),
        "htautau": table({"event": 5, "genWeight": 0.5, "m_true": 300.0, "channel": 0}),
    }
    assert sample_names(skims) == ["htautau", "ztautau"]
    out = build_feature_table(skims, n_folds=5, seed=7, weights={"ztautau": 0.25})
    assert list(out) == list(OUTPUT_COLUMNS)
    assert set(AUX_COLUMNS) <= set(out) and set(TARGETS) <= set(out)
    assert out["event"].tolist() == [5, 11, 12] and out["event"].dtype == np.uint64
    assert out["sample"].tolist() == [0, 1, 1] and out["sample"].dtype == np.int32
    assert out["weight"].tolist() == [0.5, 0.5, -0.25]
    assert out["m_true"].tolist() == [300.0, 91.0, 91.0] and out["pt_true"].tolist() == [12.0] * 3
    assert out["channel"].tolist() == [0, 1, 3] and out["N_neutrinos"].tolist() == [2.0, 3.0, 4.0]
    assert out["collinear_ok"].dtype == np.bool_ and out["leg2_decay_mode"].tolist() == [1, 1, 1]
    np.testing.assert_array_equal(out["fold"][1:], assign_folds(np.array([11, 12], dtype=np.uint64), "ztautau", 5, 7))
    np.testing.assert_array_equal(out["fold"][:1], assign_folds(np.array([5], dtype=np.uint64), "htautau", 5, 7))
    assert all(len(v) == 3 for v in out.values())


def test_build_feature_table_errors() -> None:
    good = table()
    with pytest.raises(ConfigError, match="'wjets'"):
        build_feature_table({"ztautau": good}, n_folds=2, seed=1, weights={"wjets": 1.0})
    bad = table({"leg1_pt": np.nan})
    with pytest.raises(HepchainError, match=r"feature 'tau1_pt' is NaN or infinite in 1 event.*'ztautau'"):
        build_feature_table({"ztautau": bad}, n_folds=2, seed=1)
    missing = {k: v for k, v in good.items() if k != "met_covXY"}
    with pytest.raises(HepchainError, match=r"'ztautau'.*'met_covXY'.*'MET_covXY'"):
        build_feature_table({"ztautau": missing}, n_folds=2, seed=1)
    no_target = {k: v for k, v in good.items() if k != "m_true"}
    with pytest.raises(HepchainError, match="'m_true'"):
        build_feature_table({"ztautau": no_target}, n_folds=2, seed=1)
    empty = {k: v[:0] for k, v in good.items()}
    with pytest.raises(EmptySelectionError, match="ztautau"):
        build_feature_table({"ztautau": empty}, n_folds=2, seed=1)
    with pytest.raises(HepchainError, match="weight is NaN"):
        build_feature_table({"ztautau": good}, n_folds=2, seed=1, weights={"ztautau": float("nan")})


def test_empty_sample_beside_a_full_one() -> None:
    good = table()
    out = build_feature_table({"a": {k: v[:0] for k, v in good.items()}, "b": good}, n_folds=3, seed=0)
    assert out["sample"].tolist() == [1] and out["tau1_pt"].tolist() == [30.0]


def test_skim_to_features_end_to_end(tmp_path: Path) -> None:
    from hepchain.skim.ditau import run_ditau_skim
    from tests.test_skim_ditau import gen, mt, tt, write_events

    events = [
        dict(mt(), met_pt=30.0, met_phi=-2.0, gen=[gen(mass=90.0, pt=8.0)], event=1, w=1.0),
        dict(tt(), gen=[gen(mass=250.0, pdgId=25)], event=2, w=2.0),
    ]
    path = write_events(tmp_path / "e2e.root", events)
    skim, _ = run_ditau_skim([str(path)])
    out = build_feature_table({"ztautau": skim}, n_folds=5, seed=3)
    # mu tau_h: mu (30, eta 0.5, phi 0), tau (45, eta -0.5, phi 2.5), MET (30, -2)
    assert out["mT1"][0] == pytest.approx(math.sqrt(2 * 30 * 30 * (1 - math.cos(2.0))), rel=1e-6)
    assert out["mT2"][0] == pytest.approx(math.sqrt(2 * 45 * 30 * (1 - math.cos(4.5))), rel=1e-6)
    assert out["mTtt"][0] == pytest.approx(math.sqrt(2 * 30 * 45 * (1 - math.cos(2.5))), rel=1e-6)
    e1 = math.sqrt((30 * math.cosh(0.5)) ** 2 + 0.1057**2)
    e2 = math.sqrt((45 * math.cosh(0.5)) ** 2 + 0.9**2)
    px, py = 30 + 45 * math.cos(2.5), 45 * math.sin(2.5)
    pz = 30 * math.sinh(0.5) - 45 * math.sinh(0.5)
    assert out["m_vis"][0] == pytest.approx(math.sqrt((e1 + e2) ** 2 - px**2 - py**2 - pz**2), rel=1e-5)
    assert out["m_true"].tolist() == [90.0, 250.0] and out["N_neutrinos"].tolist() == [3.0, 2.0]
    assert out["jet1_pt"].tolist() == [0.0, 0.0] and out["PU_npvsGood"].tolist() == [28.0, 28.0]
    assert out["weight"].tolist() == [1.0, 2.0]
    assert all(np.isfinite(out[n]).all() for n in DITAU_SPEC.names)
