"""VH study logic: the Run-1 cut-based selection, orthogonality cuts, normalisation, binning report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hepchain.errors import ConfigError, EmptySelectionError
from hepchain.studies.vh import binning_report, orthogonality_mask, run1_cut_based, sample_norm

PASSING = {"met_track": 30.0, "m_tautau": 40.0, "m_ll": 30.0, "dphi_ll": 1.0, "dy_jj": 0.5, "m_jj": 85.0, "m_T": 100.0}
BINNING = {"lo": 0.2, "hi": 1.0, "min_signal": 3.0, "min_background": 3.0, "rel_sigma_b": 0.1,
           "mjj_center": 85.0, "mjj_half_width": 15.0, "dy_jj_max": 1.2}


@pytest.mark.parametrize(
    ("column", "inside", "outside"),
    [
        ("met_track", 20.1, 19.9),
        ("m_tautau", 91.1876 - 25.1, 91.1876 - 24.9),
        ("m_ll", 49.9, 50.1),
        ("dphi_ll", 1.79, 1.81),
        ("dy_jj", 1.19, 1.21),
        ("m_jj", 99.9, 100.1),
        ("m_jj", 70.1, 69.9),
        ("m_T", 124.9, 125.1),
    ],
)
def test_run1_cut_based_each_threshold(column: str, inside: float, outside: float) -> None:
    rows = pd.DataFrame([PASSING | {column: inside}, PASSING | {column: outside}])
    assert run1_cut_based(rows).tolist() == [True, False]


def test_orthogonality_mask() -> None:
    rows = pd.DataFrame({"m_jj": [85.0, 99.9, 100.1, 70.1, 85.0], "dy_jj": [0.0, 1.0, 1.0, 1.0, 1.21]})
    assert orthogonality_mask(rows, BINNING).tolist() == [True, True, False, True, False]


def test_sample_norm() -> None:
    # 0.5 pb at 139 fb^-1 is 69500 events; 1000 unit-weight events -> 69.5 each
    assert sample_norm(0.5, 1000.0, 139.0, "s") == pytest.approx(69.5)
    with pytest.raises(ConfigError, match="sample 'x'"):
        sample_norm(0.0, 10.0, 139.0, "x")
    with pytest.raises(EmptySelectionError, match="sample 'y'"):
        sample_norm(1.0, 0.0, 139.0, "y")


def _toy(n: int = 40_000, seed: int = 3) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 6, n)
    score = np.where(label == 0, rng.beta(5, 2, n), rng.beta(2, 5, n))
    weight = np.where(label == 0, 0.02, 0.5)
    table = pd.DataFrame(
        {
            "label": label, "weight": weight, "m_jj": rng.normal(85, 20, n), "dy_jj": rng.exponential(1.0, n),
            "met_track": rng.exponential(30, n), "m_tautau": rng.uniform(0, 200, n), "m_ll": rng.uniform(10, 150, n),
            "dphi_ll": rng.uniform(0, np.pi, n), "m_T": rng.uniform(30, 200, n),
        }
    )
    return table, score


def test_binning_report_is_physical() -> None:
    table, score = _toy()
    classes = ["VH", "ggF", "VBF", "top", "Zjets", "WW"]
    report = binning_report(table, score, classes=classes, cfg=BINNING, luminosity_fb=139.0, config_hash="abc")
    edges = np.array(report["edges"])
    assert edges[0] == 0.2 and edges[-1] == 1.0 and np.all(np.diff(edges) > 0)
    assert report["n_bins"] == len(report["bins"]) >= 2
    for b in report["bins"]:
        assert b["s"] > 3 and b["b"] > 3
        assert b["s_err"] > 0 and b["b_err"] > 0
        assert sum(v for k, v in b["yields"].items() if k != "VH") == pytest.approx(b["b"])
        assert b["yields"]["VH"] == pytest.approx(b["s"])
    assert report["z0_mva"] >= report["z0_mva_single_bin"]
    assert report["z0_ratio"] == pytest.approx(report["z0_mva"] / report["z0_cut_based"])
    assert report["config_hash"] == "abc" and report["luminosity_fb"] == 139.0
    assert report["seed_reference"]["z0_mva"] == 0.97
    lo, hi = report["z0_mc_stat"]["mva_16_84"]
    assert lo <= report["z0_mva"] * 1.05 and hi >= report["z0_mva"] * 0.95 and hi > lo


def test_binning_report_empty_orthogonality_region() -> None:
    table, score = _toy(1000)
    table["m_jj"] = 300.0
    with pytest.raises(EmptySelectionError, match="orthogonality"):
        binning_report(table, score, classes=["VH", "B"], cfg=BINNING, luminosity_fb=139.0, config_hash="x")



def test_bootstrap_z0_spread_follows_mc_statistics() -> None:
    from hepchain.stats.asimov import combined_z0
    from hepchain.studies.vh import bootstrap_z0

    rng = np.random.default_rng(7)
    edges = np.array([0.0, 0.5, 1.0])

    def sample(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        is_sig = rng.random(n) < 0.2
        score = np.where(is_sig, rng.uniform(0.4, 1.0, n), rng.uniform(0.0, 0.7, n))
        weight = np.where(is_sig, 10.0, 100.0) * 2000 / n  # same expected yields whatever n
        return score, weight, is_sig

    spreads = []
    for n in (2000, 8000):
        score, weight, is_sig = sample(n)
        s = np.histogram(score[is_sig], edges, weights=weight[is_sig])[0]
        b = np.histogram(score[~is_sig], edges, weights=weight[~is_sig])[0]
        z = bootstrap_z0(score, weight, is_sig, edges, 0.1)
        assert np.nanmedian(z) == pytest.approx(combined_z0(s, b, 0.1), rel=0.05)
        spreads.append(np.subtract(*np.nanpercentile(z, [84, 16])))
    assert spreads[1] / spreads[0] == pytest.approx(0.5, abs=0.15)  # 4x the MC events halves the spread
