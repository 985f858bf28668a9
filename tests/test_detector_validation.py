"""Detector validation: estimators on toys with known widths, hand-made events, skips, and a run on a simulated file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from hepchain.detector.validation import (
    M_Z,
    TEST_BEAM_ENERGIES,
    beam_test_resolution,
    check,
    core_gauss_fit,
    dijet_asymmetry,
    fit_bw_cb,
    fit_energy_resolution,
    fit_sqrt_sumet,
    gather,
    met_pulls,
    relative_resolution,
    run_validation,
)
from hepchain.nanoaod import write_nanoaod

# --------------------------------------------------------------------------------------------- estimators on toys


def test_core_fit_recovers_gaussian_core_under_tails() -> None:
    rng = np.random.default_rng(1)
    core = rng.normal(1.02, 0.05, 20_000)
    tail = 1.02 - rng.exponential(0.3, 2_000)  # a low-side tail (10%), as radiation or upstream losses give
    fit = core_gauss_fit(np.concatenate([core, tail]))
    # the 2-sigma window still contains some tail: allow a small bias on top of the statistical error
    assert fit.mu == pytest.approx(1.02, abs=3 * fit.mu_err + 0.003)
    assert fit.sigma == pytest.approx(0.05, abs=3 * fit.sigma_err + 0.003)
    pure = core_gauss_fit(core)  # truncated likelihood: unbiased for Gaussian data
    assert abs(pure.mu - 1.02) < 3 * pure.mu_err
    assert abs(pure.sigma - 0.05) < 3 * pure.sigma_err
    r, r_err = relative_resolution(pure)
    assert r == pytest.approx(0.05 / 1.02, abs=3 * r_err)


def _sample_crystal_ball(rng: np.random.Generator, n: int, sigma: float, alpha: float, power: float) -> np.ndarray:
    """Inverse-CDF sampling of a Crystal Ball (mean 0) on a fine grid."""
    from hepchain.detector.validation import crystal_ball

    t = np.linspace(-60.0, 8.0, 200_001)
    pdf = crystal_ball(t, alpha, power)
    cdf = np.cumsum(pdf)
    cdf /= cdf[-1]
    return sigma * np.interp(rng.random(n), cdf, t)


def test_bw_cb_fit_recovers_sigma_cb() -> None:
    rng = np.random.default_rng(4)
    n = 6000
    bw = M_Z + 0.5 * 2.4952 * np.tan(np.pi * (rng.random(n) - 0.5))  # Cauchy with FWHM Gamma_Z
    m = bw + 0.3 + _sample_crystal_ball(rng, n, 1.5, 1.2, 5.0)
    fit = fit_bw_cb(m)
    assert fit["status"] == "ok"
    assert abs(fit["sigma_cb"] - 1.5) < 3 * fit["sigma_cb_err"]
    assert fit["sigma_cb_err"] < 0.15
    assert abs(fit["peak"] - (M_Z + 0.3)) < 3 * fit["dm_err"]


def test_met_pulls_of_toy_residuals_drawn_from_their_covariance_are_unit() -> None:
    rng = np.random.default_rng(7)
    n = 20_000
    lam1, lam2 = rng.uniform(50, 900, n), rng.uniform(20, 200, n)
    theta = rng.uniform(-np.pi, np.pi, n)
    c, s = np.cos(theta), np.sin(theta)
    cxx, cyy, cxy = lam1 * c * c + lam2 * s * s, lam1 * s * s + lam2 * c * c, (lam1 - lam2) * c * s
    z1, z2 = rng.standard_normal(n), rng.standard_normal(n)
    rx = np.sqrt(lam1) * z1 * c - np.sqrt(lam2) * z2 * s
    ry = np.sqrt(lam1) * z1 * s + np.sqrt(lam2) * z2 * c
    p = met_pulls(rx, ry, cxx, cxy, cyy)
    for axis in ("major", "minor"):
        fit = core_gauss_fit(p[axis])
        assert abs(fit.sigma - 1.0) < 3 * fit.sigma_err
    assert np.mean(p["chi2"]) == pytest.approx(2.0, abs=4 * 2.0 / math.sqrt(n))
    # a covariance twice too large gives pulls of width 1/sqrt(2)
    half = core_gauss_fit(met_pulls(rx, ry, 2 * cxx, 2 * cxy, 2 * cyy)["major"])
    assert half.sigma == pytest.approx(1 / math.sqrt(2), abs=3 * half.sigma_err)


def test_dijet_asymmetry_width_of_toy_jets_is_resolution_times_sqrt2() -> None:
    rng = np.random.default_rng(3)
    n = 20_000
    true = rng.uniform(1100, 2600, n)
    pt1, pt2 = true * (1 + 0.05 * rng.standard_normal(n)), true * (1 + 0.05 * rng.standard_normal(n))
    a = dijet_asymmetry(pt1, pt2, rng)
    fit = core_gauss_fit(a)
    assert abs(fit.mu) < 3 * fit.mu_err
    assert fit.sigma == pytest.approx(0.05 * math.sqrt(2), abs=3 * fit.sigma_err + 0.001)


def test_resolution_curve_fits_recover_their_parameters() -> None:
    e = np.array([20, 30, 45, 60, 90, 150, 300, 600], dtype=float)
    a, b, c = 0.10, 0.007, 0.4
    r = np.sqrt(a * a / e + b * b + (c / e) ** 2)
    fit = fit_energy_resolution(e, r, 0.002 * r)
    assert fit["a"] == pytest.approx(a, rel=0.02)
    assert fit["b"] == pytest.approx(b, rel=0.1)
    fixed = fit_energy_resolution(e[1:5], r[1:5], 0.002 * r[1:5], c_fixed=c)  # Z->ee-like range, noise fixed
    assert fixed["a"] == pytest.approx(a, rel=0.02) and fixed["c"] == c
    s = np.array([100, 200, 400, 800, 1600, 3200], dtype=float)
    sig = np.sqrt(3.0**2 + 0.55**2 * s)
    mfit = fit_sqrt_sumet(s, sig, 0.01 * sig)
    assert mfit["b"] == pytest.approx(0.55, rel=0.02)
    assert mfit["a"] == pytest.approx(3.0, rel=0.1)


def test_pass_rule_needs_compatibility_at_two_sigma_and_a_conclusive_error() -> None:
    assert check(1.03, 0.02, (0.9, 1.0), "s", "d")["pass"]  # 1.03 - 2 x 0.02 = 0.99 inside
    assert not check(1.05, 0.02, (0.9, 1.0), "s", "d")["pass"]
    wide = check(0.5, 0.06, (0.9, 1.0), "s", "d")  # error above half the band width: inconclusive, not a pass
    assert not wide["conclusive"] and not wide["pass"]
    assert not check(math.nan, 0.01, (0.9, 1.0), "s", "d")["pass"]


def test_gather_follows_local_indices_per_event() -> None:
    target = ak.Array([[10.0, 11.0, 12.0], [], [20.0, 21.0]])
    index = ak.Array([[2, -1], [0], [1, 0, 5]])
    values, ok = gather(target, index)
    assert ok.tolist() == [True, False, False, True, True, False]
    assert values[ok].tolist() == [12.0, 21.0, 20.0]


# ------------------------------------------------------------------------------- synthetic NanoAOD with NEW branches

#: the real window of hepchain.detector.calo_images (presampler 7x3, strips 56x3, middle 7x11, back 4x11)
LAYER_SHAPE = {0: (7, 3), 1: (56, 3), 2: (7, 11), 3: (4, 11)}
LAYER_SHARE = (0.05, 0.25, 0.68, 0.02)


def _synthetic(n: int, rng: np.random.Generator, with_taus: bool = True, with_cells: bool = True) -> dict[str, object]:
    """Hand-made events: two electrons with cell images and shower-shape scalars, two generated taus with reco taus.

    Cell energies: each layer holds the share LAYER_SHARE of the electron energy, spread evenly over its cells, so the
    layer fractions and average images are known exactly.  Taus: every generated DM is reconstructed in the same DM
    except 10% of DM 1 which go to DM 0; 70% of genuine taus pass Medium; one jet fake per event, 10% pass Medium.
    """
    gen_pt = rng.uniform(30, 60, (n, 2))
    eta = rng.uniform(-1.2, 1.2, (n, 2))
    phi = rng.uniform(-np.pi, np.pi, (n, 2))
    reco_pt = gen_pt * (1 + 0.02 * rng.standard_normal((n, 2)))
    energy = reco_pt * np.cosh(eta)
    arrays: dict[str, object] = {
        "run": np.ones(n, np.uint32), "luminosityBlock": np.ones(n, np.uint32), "event": np.arange(n, dtype=np.uint64),
        "Electron": ak.zip({
            "pt": reco_pt.astype(np.float32), "eta": eta.astype(np.float32), "phi": phi.astype(np.float32),
            "charge": np.tile([1, -1], (n, 1)).astype(np.int32), "genPartIdx": np.tile([0, 1], (n, 1)).astype(np.int32),
            "genPartFlav": np.ones((n, 2), np.uint8),
            "f0": np.full((n, 2), LAYER_SHARE[0] / sum(LAYER_SHARE[1:]), np.float32),
            "r12": np.full((n, 2), LAYER_SHARE[1] / LAYER_SHARE[2], np.float32),
            "eAcc": (energy * sum(LAYER_SHARE[1:])).astype(np.float32),
        }),
        "GenPart": ak.zip({
            "pt": gen_pt.astype(np.float32), "eta": eta.astype(np.float32), "phi": phi.astype(np.float32),
            "pdgId": np.tile([11, -11], (n, 1)).astype(np.int32), "status": np.ones((n, 2), np.int32),
            "statusFlags": np.full((n, 2), 1 | (1 << 13), np.int32),
        }),
    }
    if with_cells:
        cols: dict[str, list[np.ndarray]] = {k: [] for k in ("electronIdx", "layer", "ieta", "iphi", "e", "t")}
        for ele in range(2):  # layer-major, then ieta, then iphi, per electron
            for lay, (ne, nph) in LAYER_SHAPE.items():
                ie, ip = np.meshgrid(np.arange(ne), np.arange(nph), indexing="ij")
                k = ne * nph
                cols["electronIdx"].append(np.full((n, k), ele))
                cols["layer"].append(np.full((n, k), lay))
                cols["ieta"].append(np.tile(ie.ravel(), (n, 1)))
                cols["iphi"].append(np.tile(ip.ravel(), (n, 1)))
                cols["e"].append(np.repeat(energy[:, ele : ele + 1] * LAYER_SHARE[lay] / k, k, axis=1))
                cols["t"].append(np.zeros((n, k)))
        dtypes = {"electronIdx": np.int32, "layer": np.int32, "ieta": np.int32, "iphi": np.int32, "e": np.float32, "t": np.float32}
        arrays["EleCell"] = ak.zip({k: np.concatenate(v, axis=1).astype(dtypes[k]) for k, v in cols.items()})
    if with_taus:
        gdm = rng.choice([0, 1, 2, 10, 11], size=(n, 2), p=[0.25, 0.3, 0.1, 0.25, 0.1])
        vis = rng.uniform(25, 60, (n, 2))
        teta, tphi = rng.uniform(-2.0, 2.0, (n, 2)), rng.uniform(-np.pi, np.pi, (n, 2))
        rdm = np.where(gdm == 2, 1, gdm)
        rdm = np.where((rdm == 1) & (rng.random((n, 2)) < 0.1), 0, rdm)
        medium = rng.random((n, 2)) < 0.7
        fake_pass = rng.random((n, 1)) < 0.1
        arrays["GenVisTau"] = ak.zip({
            "pt": vis.astype(np.float32), "eta": teta.astype(np.float32), "phi": tphi.astype(np.float32),
            "mass": np.full((n, 2), 0.8, np.float32), "status": gdm.astype(np.int32),
        })
        fake_eta = rng.uniform(-2.0, 2.0, (n, 1))
        arrays["Tau"] = ak.zip({
            "pt": np.concatenate([vis * (1 + 0.05 * rng.standard_normal((n, 2))), rng.uniform(25, 60, (n, 1))], axis=1).astype(np.float32),
            "eta": np.concatenate([teta + 0.01, fake_eta], axis=1).astype(np.float32),
            "phi": np.concatenate([tphi, tphi[:, :1] + np.pi / 2], axis=1).astype(np.float32),
            "mass": np.full((n, 3), 0.8, np.float32),
            "decayMode": np.concatenate([rdm, np.zeros((n, 1), int)], axis=1).astype(np.int32),
            "genPartFlav": np.tile([5, 5, 0], (n, 1)).astype(np.uint8),
            "genPartIdx": np.tile([0, 1, -1], (n, 1)).astype(np.int32),
            "idDeepTau2017v2p1VSjet": np.where(np.concatenate([medium, fake_pass], axis=1), 31, 15).astype(np.uint8),
        })
    # NanoAOD collections are jagged (nX counters): regular numpy blocks become var-length lists
    return {k: ak.from_regular(v, axis=1) if isinstance(v, ak.Array) else v for k, v in arrays.items()}


def test_synthetic_cells_shower_shapes_and_taus(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    n = 400
    f = tmp_path / "synthetic.root"
    write_nanoaod(f, _synthetic(n, rng))
    res = run_validation({"zee": {"nominal": [str(f)]}, "ztautau": {"nominal": [str(f)]}}, tmp_path / "v.json", None, progress=False)
    ele = res["electrons"]
    img = ele["images"]
    assert img["n_electrons"] == 2 * n
    assert img["layer_fraction"] == pytest.approx(list(LAYER_SHARE), abs=1e-5)
    for lay, name in enumerate(("presampler", "strips", "middle", "back")):
        grid = np.asarray(img["images"][name])
        assert grid.shape == LAYER_SHAPE[lay]
        assert np.allclose(grid, grid[0, 0])  # evenly spread
    checks = ele["checks"]
    assert checks["eacc_vs_cells"]["value"] == pytest.approx(1.0, abs=1e-5)
    assert checks["mean_f0"]["value"] == pytest.approx(LAYER_SHARE[0] / sum(LAYER_SHARE[1:]), rel=1e-5)
    assert checks["mean_r12"]["value"] == pytest.approx(LAYER_SHARE[1] / LAYER_SHARE[2], rel=1e-5)
    assert checks["response_barrel"]["value"] == pytest.approx(1.0, abs=3 * checks["response_barrel"]["error"] + 0.002)
    assert checks["resolution_barrel"]["value"] == pytest.approx(0.02, abs=3 * checks["resolution_barrel"]["error"])
    taus = res["taus"]
    mig = taus["dm_migration"]
    frac = np.asarray(mig["fractions"])
    cols = mig["reco_columns"]
    assert frac[0, cols.index("0")] == pytest.approx(1.0)  # DM 0 always right
    assert frac[2, cols.index("10")] == pytest.approx(1.0)
    assert frac[1, cols.index("0")] == pytest.approx(0.1, abs=0.04)  # the injected 10% DM 1 -> DM 0
    eff = taus["checks"]["medium_wp_efficiency"]
    assert eff["value"] == pytest.approx(0.7, abs=3 * eff["error"])
    fake = taus["checks"]["medium_wp_jet_fake_rate"]
    assert fake["value"] == pytest.approx(0.1, abs=3 * fake["error"])
    assert taus["per_decay_mode"]["10"]["resolution"] == pytest.approx(0.05, abs=3 * taus["per_decay_mode"]["10"]["resolution_err"])
    written = json.loads((tmp_path / "v.json").read_text())
    assert written["summary"]["n_checks"] == res["summary"]["n_checks"]


def test_missing_branches_and_roles_give_skip_entries(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    f = tmp_path / "no_taus.root"
    write_nanoaod(f, _synthetic(100, rng, with_taus=False, with_cells=False))
    res = run_validation({"zee": {"nominal": [str(f)]}, "ztautau": {"nominal": [str(f)]}}, tmp_path / "v.json", None, progress=False)
    reason = res["taus"]["checks"]["all"]["skipped"]
    assert "Tau_pt" in reason and str(f) in reason
    assert "EleCell_electronIdx" in res["electrons"]["images"]["skipped"]
    skipped = {s["check"]: s["reason"] for s in res["skipped"]}
    assert "taus" in skipped and "dijet" in skipped and "no dijet sample given" in skipped["dijet"]
    assert "skipped" in res["jets"]["checks"]["all"]
    # shower-shape scalars present, cells absent: the scalars are still checked
    assert "value" in res["electrons"]["checks"]["mean_r12"]


# ------------------------------------------------------------------------------------------- on a simulated file


def test_run_validation_on_a_tiny_simulated_zee_file(tmp_path: Path) -> None:
    from hepchain.detector.simulate import simulate_chunk
    from hepchain.detector.tune import NOMINAL
    from hepchain.generate.pythia import GenerationSpec, generate_chunk

    spec = GenerationSpec(processes=["WeakSingleBoson:ffbar2gmZ = on"], phase_space={"mHatMin": 60.0},
                          decays=["23:onMode = off", "23:onIfAny = 11"], events=300, chunk_size=300)
    generate_chunk(spec, sample="zee", chunk=0, global_seed=5, out_parquet=tmp_path / "zee.parquet", out_meta=tmp_path / "zee.json", progress=False)
    root = tmp_path / "zee.root"
    simulate_chunk(tmp_path / "zee.parquet", root, tune=NOMINAL, global_seed=5, sample="zee", chunk=0, pileup_path=None, mu=0.0,
                   progress=False)
    out = tmp_path / "detector" / "validation.json"
    res = run_validation({"zee": {"nominal": [str(root)]}}, out, tmp_path / "figures", progress=False)
    written = json.loads(out.read_text())
    for key in ("schema", "pass_rule", "estimators", "inputs", "n_events", "electrons", "muons", "jets", "taus", "met", "skipped", "summary"):
        assert key in written, key
    assert written["n_events"]["zee"]["nominal"] == 300
    chk = written["electrons"]["checks"]
    for name in ("response_barrel", "resolution_barrel", "zpeak_sigma_cb"):
        entry = chk[name]
        assert set(entry) >= {"value", "error", "expected", "source", "definition", "pass"}, name
    assert chk["response_barrel"]["value"] == pytest.approx(1.0, abs=0.02)
    # Z peak at m_Z (no pile-up): the peak position is within 1 GeV
    assert abs(written["electrons"]["zpeak"]["nominal"]["peak"] - M_Z) < 1.0
    curve = written["electrons"]["curves"]["nominal"]["vs_pt"]
    assert len(curve["edges"]) == len(curve["response"]) + 1
    assert (tmp_path / "figures" / "zee_peak.png").exists() and (tmp_path / "figures" / "electrons_vs_pt.pdf").exists()
    assert res["summary"]["n_checks"] >= 4
    roles = {s["check"] for s in written["skipped"]}
    assert {"dijet", "ztautau", "wmunu", "ttbar"} <= roles


def test_beam_test_resolution_measures_the_calorimeter_stochastic_term() -> None:
    r = beam_test_resolution(n_per_energy=300, n_boot=10)
    assert r["energies"] == list(TEST_BEAM_ENERGIES)
    assert 0.08 < r["a"] < 0.13  # ATLAS barrel-module beam test: 10.1%/sqrt(E)
    assert 0.0 < r["a_err"] < 0.015 and r["b"] < 0.012
    assert 0.2 < r["noise_gev"] < 0.4  # ~60 cells of electronic noise
    widths = np.asarray(r["relative_widths"])
    assert np.all(np.diff(widths[:4]) < 0)  # sigma/E falls with E up to where the constant term takes over
    # the fitted curve goes through the measured widths
    e = np.asarray(TEST_BEAM_ENERGIES)
    model = np.sqrt(r["a"] ** 2 / e + r["b"] ** 2 + (r["noise_gev"] / e) ** 2)
    np.testing.assert_allclose(model, widths, rtol=0.15)
