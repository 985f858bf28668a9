"""Per-electron LAr cell images (detector/calo_images.py, detector/showers.py): shower physics, cell order, scalars, tracks."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.stats import gamma as gamma_dist

from hepchain.detector.calo_images import (
    build_electron_calo,
    cluster_noise,
    fire_electrons,
    fit_resolution,
    gun_tables,
    layer_positions,
)
from hepchain.detector.particles import Table
from hepchain.detector.showers import gp_lateral, gp_longitudinal, lateral_fraction_within, longitudinal_fraction
from hepchain.detector.tune import NOMINAL, PSEUDODATA

QUIET = replace(NOMINAL, cells_noise=(0.0,) * 4, cells_pu_noise=(0.0,) * 4)
NO_FLUCT = replace(QUIET, cells_sampling_term=0.0, cells_ps_sampling_term=0.0, cells_constant_term=0.0)


def _central(n: int, rng: np.random.Generator, lo: float = 0.05, hi: float = 0.75) -> np.ndarray:
    return rng.uniform(lo, hi, n) * np.where(rng.random(n) < 0.5, -1.0, 1.0)


def test_longitudinal_profile_integrates_to_one_and_depth_follows_ln_e() -> None:
    energies = np.array([2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0])
    alpha, beta, tmax = gp_longitudinal(energies, NOMINAL)
    for a, b in zip(alpha, beta, strict=True):
        pdf = lambda t, a=a, b=b: gamma_dist.pdf(t, a, scale=1.0 / b)  # noqa: E731
        assert quad(pdf, 0.0, 200.0, limit=200)[0] == pytest.approx(1.0, abs=1e-6)
    assert np.allclose(longitudinal_fraction(np.zeros(8), np.full(8, 1e4), alpha, beta), 1.0)
    # T follows the sampling-calorimeter GP mean: T = ln y - 0.812 - 0.55/F_S - 0.69 (1 - e_hat), y = E/E_c
    lny = np.log(energies / NOMINAL.cells_critical_energy)
    expected_t = lny - 0.812 - 0.55 / NOMINAL.cells_fs - 0.69 * (1 - NOMINAL.cells_ehat)
    assert np.allclose(tmax, expected_t, rtol=1e-9)
    # the mean depth alpha/beta grows linearly with ln E (slope ~1 X0 per e-fold, as a shower maximum must)
    slope, _ = np.polyfit(np.log(energies), alpha / beta, 1)
    assert 0.9 < slope < 1.3, slope
    # the fluctuated profiles scatter around the mean one, with the GP correlation between ln T and ln alpha
    rng = np.random.default_rng(1)
    z = rng.standard_normal((2, 20000))
    a_f, _, t_f = gp_longitudinal(np.full(20000, 50.0), NOMINAL, z)
    assert np.mean(np.log(t_f)) == pytest.approx(np.log(tmax[4]), abs=0.01)
    ln_y50 = np.log(50.0 / NOMINAL.cells_critical_energy)
    assert np.std(np.log(t_f)) == pytest.approx(1.0 / (-2.5 + 1.25 * ln_y50), rel=0.05)
    assert np.corrcoef(np.log(t_f), np.log(a_f))[0, 1] == pytest.approx(0.784 - 0.023 * ln_y50, abs=0.03)


def test_lateral_profile_and_containment_in_the_3x7_cluster() -> None:
    r_core, r_tail, p = gp_lateral(np.array([50.0]), np.array([1.0]), NOMINAL)
    assert r_core[0] < 0.2 < r_tail[0] < 1.0 and 0.7 < p[0] < 1.0  # narrow core, wide tail (Moliere radii)
    assert lateral_fraction_within(np.array([1e6]), r_core, r_tail, p)[0] == pytest.approx(1.0, abs=1e-6)
    # containment of a 50 GeV electron's middle-layer energy in the 3 x 7 cells: 90-95% (ATLAS-like)
    rng = np.random.default_rng(2)
    out = fire_electrons(np.full(800, 50.0), _central(800, rng), QUIET, rng, store_cells=False)
    containment = out.scalars["e2"] / out.visible[:, 2]
    assert 0.90 < np.mean(containment) < 0.96, np.mean(containment)


def test_layer_fractions_are_plausible() -> None:
    rng = np.random.default_rng(3)
    out = fire_electrons(np.full(500, 50.0), _central(500, rng, 0.1, 0.5), QUIET, rng, store_cells=False)
    frac = out.visible.mean(axis=0) / 50.0
    assert frac[2] > 0.5  # most of the shower in the middle layer
    assert 0.2 < frac[1] < 0.4  # strips: the first ~4 X0 of the accordion
    assert frac[3] < 0.05 and frac[0] < 0.05
    s = out.scalars
    assert 0.003 < np.median(s["f0"]) < 0.05
    assert 0.3 < np.median(s["r12"]) < 0.8
    # a deeper (more energetic) shower has a smaller strips/middle ratio and presampler fraction
    hi = fire_electrons(np.full(500, 300.0), _central(500, rng, 0.1, 0.5), QUIET, rng, store_cells=False).scalars
    assert np.median(hi["r12"]) < np.median(s["r12"]) and np.median(hi["f0"]) < np.median(s["f0"])


def test_cell_sums_reproduce_the_deposited_energy_without_noise() -> None:
    rng = np.random.default_rng(4)
    n = 300
    energies = rng.uniform(10.0, 200.0, n)
    out = fire_electrons(energies, _central(n, rng), NO_FLUCT, rng, store_cells=True)
    e = out.cells["e"].reshape(n, out.layout.n_cells).astype(np.float64)
    per_layer = np.stack([e[:, out.layout.block(k)].sum(axis=1) for k in range(4)], axis=1)
    assert np.allclose(per_layer, out.in_window, rtol=1e-5, atol=1e-5)
    # energy conservation of the lone electron: visible + lost upstream + leaking = E (no fluctuations, scale 1)
    assert np.allclose(out.visible.sum(axis=1) + out.lost_upstream + out.leakage, energies, rtol=1e-6)
    # the window holds almost all of the visible energy
    assert 0.97 < np.mean(out.in_window.sum(axis=1) / out.visible.sum(axis=1)) < 1.0


def test_cluster_resolution_and_calibrated_response() -> None:
    rng = np.random.default_rng(5)
    energies = np.repeat([5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0], 500)
    eta = _central(len(energies), rng)
    out = fire_electrons(energies, eta, NOMINAL, np.random.default_rng(6), store_cells=False, vz_sigma_cm=3.5)
    e_reco = out.scalars["energy"].astype(np.float64)
    # noise term of the cluster, measured with nothing deposited (electronic noise of ~60 cells, presampler weighted)
    noise = cluster_noise(energies, eta, NOMINAL, np.random.default_rng(6))
    assert 0.2 < noise < 0.4
    a, b, _, widths = fit_resolution(energies, e_reco, noise)
    assert 0.08 < a < 0.13, (a, b, widths)  # stochastic term ~10%/sqrt(E) (PHYSICS.md: 10.1%)
    assert b < 0.012, (a, b, widths)
    for energy in (10.0, 20.0, 40.0, 80.0, 160.0, 320.0):
        assert np.mean((e_reco / energies)[energies == energy]) == pytest.approx(1.0, abs=0.01), energy


def test_pseudodata_shifts_the_scale_as_stated() -> None:
    """Pseudo-data: EM scale +4% and 10% more upstream material: +3.3% at 10 GeV, +3.8% at 40 GeV, +4.0% at 160 GeV."""
    shifts = {}
    for energy in (10.0, 40.0, 160.0):
        means = []
        for tune in (NOMINAL, PSEUDODATA):
            rng = np.random.default_rng(6)
            energies = np.full(600, energy)
            out = fire_electrons(energies, _central(600, rng), tune, rng, store_cells=False)
            means.append(np.mean(out.scalars["energy"] / energies))
        shifts[energy] = means[1] / means[0] - 1.0
    assert 0.033 < shifts[40.0] < 0.042, shifts
    assert shifts[10.0] < shifts[40.0] < shifts[160.0] < 0.045, shifts


def test_cell_order_puts_the_hottest_middle_cell_at_the_centre() -> None:
    rng = np.random.default_rng(7)
    n = 200
    out = fire_electrons(rng.uniform(20.0, 100.0, n), _central(n, rng, 0.0, 2.3), NOMINAL, rng, store_cells=True)
    layout = out.layout
    assert layout.n_cells == 7 * 3 + 56 * 3 + 7 * 11 + 4 * 11 == len(out.cells) // n
    cells = out.cells
    e = cells["e"].reshape(n, layout.n_cells)
    middle = e[:, layout.block(2)].reshape(n, 7, 11)
    hottest = middle.reshape(n, -1).argmax(axis=1)
    assert np.mean(hottest == 3 * 11 + 5) > 0.97
    # the table columns follow the documented order: layer-major, then eta, then phi
    assert np.array_equal(cells["layer"].reshape(n, -1)[0], layout.layer)
    assert np.array_equal(cells["electronIdx"], np.zeros(len(cells), np.int32))  # one electron per event
    ieta = cells["ieta"].reshape(n, -1)[:, layout.block(2)].reshape(n, 7, 11)
    iphi = cells["iphi"].reshape(n, -1)[:, layout.block(2)].reshape(n, 7, 11)
    assert np.all(np.diff(ieta, axis=1) == 1) and np.all(np.diff(ieta, axis=2) == 0)
    assert np.all((np.diff(iphi, axis=2) % 256) == 1)
    assert np.array_equal(ieta[:, 3, 5], out.scalars["eta_index"])
    # strips: 8 per middle cell, aligned on the same eta edges
    strips = cells["ieta"].reshape(n, -1)[:, layout.block(1)].reshape(n, 56, 3)
    assert np.array_equal(strips[:, 0, 0], 8 * ieta[:, 0, 0])
    # no presampler beyond |eta| = 1.8
    ps_eta = (cells["ieta"].reshape(n, -1)[:, layout.block(0)] + 0.5) * 0.025
    assert np.all(cells["e"].reshape(n, -1)[:, layout.block(0)][np.abs(ps_eta) > 1.8] == 0.0)


def test_scalars_equal_hand_computations() -> None:
    energies = np.array([40.0, 60.0, 25.0])
    eta = np.array([0.3107, -0.8321, 1.9])
    phi = np.array([0.05, -2.9, 3.1])
    electrons, particles, tracks = gun_tables(energies, eta, phi, np.array([-1, 1, -1]), np.array([0.0, 2.0, -3.0]))
    out = build_electron_calo(electrons, particles, tracks, 3, NOMINAL, np.random.default_rng(8), 0.0, True)
    n_cells = out.layout.n_cells
    c = out.cells
    e = c["e"].reshape(3, n_cells).astype(np.float64)
    layer = c["layer"].reshape(3, n_cells)
    deta = np.array([0.025, 0.003125, 0.025, 0.05])[layer]
    dphi = 2 * np.pi / np.array([64, 64, 256, 256])[layer]
    cell_eta = (c["ieta"].reshape(3, n_cells) + 0.5) * deta
    cell_phi = (c["iphi"].reshape(3, n_cells) + 0.5) * dphi - np.pi
    s = out.scalars
    for i in range(3):
        mid = np.flatnonzero(layer[i] == 2)
        hot = mid[np.argmax(e[i, mid])]
        eta_c, phi_c = cell_eta[i, hot], cell_phi[i, hot]
        d_phi = (cell_phi[i] - phi_c + np.pi) % (2 * np.pi) - np.pi
        box = (np.abs(cell_eta[i] - eta_c) < 0.0375 + 1e-9) & (np.abs(d_phi) < 3.5 * 2 * np.pi / 256 + 1e-9)
        sums = [e[i, box & (layer[i] == k)].sum() for k in range(4)]
        e_acc = sum(sums[1:])
        assert s["e_acc"][i] == pytest.approx(e_acc, rel=1e-4)
        assert s["r12"][i] == pytest.approx(sums[1] / sums[2], rel=1e-4)
        f0 = sums[0] / e_acc if abs(eta_c) < 1.8 else 0.0
        assert s["f0"][i] == pytest.approx(f0, rel=1e-4, abs=1e-7)
        core = (layer[i] == 2) & (np.abs(cell_eta[i] - eta_c) < 0.0375) & (np.abs(d_phi) < 1.5 * 2 * np.pi / 256)
        w = np.maximum(e[i, core], 0.0)
        eta_cl = np.sum(w * cell_eta[i, core]) / w.sum()
        phi_cl = phi_c + np.sum(w * d_phi[core]) / w.sum()
        assert s["eta_cluster"][i] == pytest.approx(eta_cl, abs=1e-6)
        assert s["poscs2"][i] == pytest.approx(2 * (eta_cl - eta_c) / 0.025 - 1, abs=1e-4)
        assert s["dphi_th3"][i] == pytest.approx(np.mod(2 * np.pi + phi_cl, np.pi / 32) - np.pi / 32, abs=1e-5)
        assert s["eta_mod_calo"][i] == pytest.approx(np.fmod(abs(eta_cl), 0.025), abs=1e-6)
        assert s["eta_index"][i] == int(np.floor(eta_c / 0.025 + 1e-9))
    # the cluster sits where the bent electron hits the middle layer
    e_eta2, e_phi2, radius, _ = layer_positions(eta, phi, np.array([0.0, 2.0, -3.0]), energies / np.cosh(eta), np.array([-1, 1, -1]), NOMINAL)
    assert np.allclose(s["eta_cluster"], e_eta2[:, 2], atol=0.006)
    assert np.allclose((s["phi_cluster"] - e_phi2[:, 2] + np.pi) % (2 * np.pi) - np.pi, 0.0, atol=0.006)
    # bending in the 2 T field at the middle layer: phi - q asin(0.3 B R / 2 pT), R = 1.71 m at |eta| = 0.31
    pt0 = 40.0 / np.cosh(0.3107)
    assert radius[0, 2] == pytest.approx(171.0)
    assert e_phi2[0, 2] - 0.05 == pytest.approx(np.arcsin(0.3 * 2.0 * 1.71 / (2 * pt0)), rel=1e-6)
    assert e_eta2[1, 2] == pytest.approx(np.arcsinh((0.02 + 1.71 * np.sinh(-0.8321)) / 1.71), rel=1e-9)


def _tracks(evt, pt, eta, phi, charge, pdg, from_pv, dxy, dz, d0err, truth) -> Table:
    return Table({
        "evt": np.asarray(evt, np.int64), "pt": np.asarray(pt, np.float32), "eta": np.asarray(eta, np.float32),
        "phi": np.asarray(phi, np.float32), "charge": np.asarray(charge, np.int32), "pdgId": np.asarray(pdg, np.int32),
        "fromPV": np.asarray(from_pv, np.int32), "dxy": np.asarray(dxy, np.float32), "dz": np.asarray(dz, np.float32),
        "d0err": np.asarray(d0err, np.float32), "dzerr": np.full(len(evt), 1e-9, np.float32),
        "truth": np.asarray(truth, np.int64),
    })  # fmt: skip


def test_tracks_near_the_electron() -> None:
    # event 0: one electron (truth particle 0) at (0.5, 1.0); 13 tracks: its own PF track, 11 others at increasing
    # dR (0.01, 0.03, ..., 0.45: 9 inside 0.4 but only the 9 nearest kept), one pile-up; event 1: an electron alone
    electrons, particles, _ = gun_tables(np.array([50.0, 30.0]), np.array([0.5, -1.0]), np.array([1.0, -2.0]),
                                         np.array([-1, 1]), np.array([1.0, -2.0]))  # fmt: skip
    # extra truth particles for the tracks (charged pions, pt 0.4 so that they leave no calorimeter signal)
    n_t = 12
    dr = np.array([0.01, 0.03, 0.06, 0.09, 0.12, 0.16, 0.2, 0.25, 0.3, 0.35, 0.38, 0.45])
    t_eta = 0.5 + dr
    extra = Table({
        "evt": np.zeros(n_t, np.int64), "pt": np.full(n_t, 0.4, np.float32), "eta": t_eta.astype(np.float32),
        "phi": np.full(n_t, 1.0, np.float32), "mass": np.full(n_t, 0.1396, np.float32),
        "pdgId": np.full(n_t, 211, np.int32), "charge": np.ones(n_t, np.int32), "pu": np.arange(n_t) == 3,
        "vz": np.where(np.arange(n_t) == 3, 5.0, 1.0).astype(np.float32),
    })  # fmt: skip
    parts = Table.concat([particles, extra]).sorted_by_event()  # order: [e0, pions..., e1]
    electrons["truth"] = np.array([0, len(parts) - 1])
    pt = np.array([2.0, 0.5, 3.0, 1.5] + [1.0] * 8)
    tracks = _tracks(
        np.zeros(n_t + 1), np.r_[45.0, pt], np.r_[0.5, t_eta], np.r_[1.0, np.ones(n_t)], np.r_[-1, np.ones(n_t)],
        np.r_[11, np.full(n_t, 211)], np.r_[3, np.where(np.arange(n_t) == 3, 0, 3)], np.r_[0.001, np.full(n_t, 0.002)],
        np.zeros(n_t + 1), np.r_[0.001, np.full(n_t, 0.001)], np.r_[0, np.arange(1, n_t + 1)],
    )
    out = build_electron_calo(electrons, parts, tracks, 2, NOMINAL, np.random.default_rng(9), 0.0, False)
    trk = out.tracks
    ev0 = trk["evt"] == 0
    assert ev0.sum() == 10 and (trk["evt"] == 1).sum() == 1  # own track + 9 nearest; event 1: own track only
    assert trk["isElectronTrack"][ev0][0] and not np.any(trk["isElectronTrack"][ev0][1:])
    assert np.allclose(trk["dr"][ev0][1:], dr[:9], atol=1e-5)  # the PF copy of the electron's track is not repeated
    assert np.allclose(trk["d0sig"][ev0][1:], 2.0)
    assert np.array_equal(trk["vertex"][ev0][1:], (np.arange(9) == 3).astype(np.int32))
    assert np.allclose(trk["z0"][ev0][1:], np.where(np.arange(9) == 3, 4.0, 0.0), atol=1e-4)  # w.r.t. the electron
    assert trk["z0"][ev0][0] == 0.0 and trk["electronIdx"][ev0].max() == 0
    # n_tracks: own + pT > 1 GeV within dR < 0.1 (tracks at 0.01 (2 GeV), 0.06 (3 GeV), 0.09 (1.5 GeV))
    assert out.scalars["n_tracks"][0] == 4 and out.scalars["n_tracks"][1] == 1
    # hit counts: 4 pixel layers, 8 SCT sides, TRT straws (none beyond |eta| = 2)
    assert np.all((trk["nPixel"] >= 3) & (trk["nPixel"] <= 8)) and np.all((trk["nSCT"] >= 6) & (trk["nSCT"] <= 16))
    assert np.all(trk["nTRT"] > 5)
    # the electron track's pT: bremsstrahlung makes it at most the true pT (up to the tracker resolution)
    assert 0.5 < out.scalars["pt_track"][0] / (50.0 / np.cosh(0.5)) < 1.03


def test_store_cells_off_keeps_the_scalars_and_noise_grows_with_pileup() -> None:
    energies = np.full(200, 40.0)
    eta = np.linspace(-1.2, 1.2, 200)
    phi = np.linspace(-3.0, 3.0, 200)
    tables = gun_tables(energies, eta, phi, np.ones(200, np.int32), np.zeros(200))
    with_cells = build_electron_calo(*tables, 200, NOMINAL, np.random.default_rng(10), 20.0, True)
    without = build_electron_calo(*tables, 200, NOMINAL, np.random.default_rng(10), 20.0, False)
    assert len(without.cells) == 0
    for k in ("energy", "e_acc", "f0", "poscs2"):
        assert np.array_equal(with_cells.scalars[k], without.scalars[k])
    # noise alone (nothing deposits): per layer sqrt(electronic^2 + pile-up^2 mu/20)
    dark = replace(NOMINAL, cells_min_energy=1e9)
    for mu in (0.0, 80.0):
        out = build_electron_calo(*tables, 200, dark, np.random.default_rng(11), mu, True)
        e = out.cells["e"].reshape(200, -1)
        for k in (1, 2, 3):
            expected = np.hypot(NOMINAL.cells_noise[k], NOMINAL.cells_pu_noise[k] * np.sqrt(mu / 20.0))
            assert np.std(e[:, out.layout.block(k)]) == pytest.approx(expected, rel=0.05), (mu, k)
    # cell times: hot cells are measured to ~ sqrt((1.5/E)^2 + 0.25^2) ns
    t = with_cells.cells["t"]
    e = with_cells.cells["e"]
    assert np.std(t[e > 5.0]) < 0.45 and np.std(t[np.abs(e) < 0.05]) > 5.0


@pytest.fixture(scope="module")
def zee(tmp_path_factory: pytest.TempPathFactory):
    import awkward as ak

    from hepchain.generate.pythia import GenerationSpec, generate_chunk

    d = tmp_path_factory.mktemp("zee")
    spec = GenerationSpec(
        processes=["WeakSingleBoson:ffbar2gmZ = on"], decays=["23:onMode = off", "23:onIfAny = 11"],
        phase_space={"mHatMin": 60.0}, events=120, chunk_size=120,
    )  # fmt: skip
    generate_chunk(spec, sample="zee", chunk=0, global_seed=3, out_parquet=d / "z.parquet", out_meta=d / "z.json", progress=False)
    return ak.from_parquet(d / "z.parquet")


def test_zee_events_from_pythia(zee) -> None:
    """Whole events (FSR photons, underlying event): prompt electrons' cluster energy and the Z mass."""
    from hepchain.detector.particles import energy, from_jagged

    n = len(zee)
    particles = from_jagged(zee.particles, ["pt", "eta", "phi", "mass", "pdgId", "charge", "origin"])
    particles["pu"] = np.zeros(len(particles), bool)
    particles["vz"] = np.zeros(len(particles), np.float32)
    sel = (np.abs(particles["pdgId"]) == 11) & (particles["origin"] == 1) & (particles["pt"] > 15) & (np.abs(particles["eta"]) < 1.37)
    idx = np.flatnonzero(sel)
    electrons = Table({k: particles[k][idx] for k in ("evt", "pt", "eta", "phi", "charge")})
    electrons["truth"] = idx
    empty = _tracks(*[np.zeros(0)] * 11)
    out = build_electron_calo(electrons, particles, empty, n, NOMINAL, np.random.default_rng(12), 0.0, True)
    e_true = energy(particles["pt"][idx].astype(float), particles["eta"][idx].astype(float), particles["mass"][idx].astype(float))
    r = out.scalars["energy"] / e_true
    assert len(idx) > 80
    assert np.median(r) == pytest.approx(1.0, abs=0.015)  # FSR photons in the cluster give a high tail, not a shift
    assert np.array_equal(out.cells["electronIdx"].reshape(len(idx), -1)[:, 0], np.r_[0, np.diff(electrons["evt"]) == 0].astype(np.int32))
    # events with two central electrons: the cluster energies and track directions reconstruct the Z
    evt = electrons["evt"]
    two = np.flatnonzero(np.bincount(evt, minlength=n) == 2)
    first = np.searchsorted(evt, two)
    e1, e2 = out.scalars["energy"][first], out.scalars["energy"][first + 1]
    eta1, eta2, phi1, phi2 = electrons["eta"][first], electrons["eta"][first + 1], electrons["phi"][first], electrons["phi"][first + 1]
    cos_angle = (np.cos(phi1 - phi2) + np.sinh(eta1) * np.sinh(eta2)) / (np.cosh(eta1) * np.cosh(eta2))
    mass = np.sqrt(2 * e1 * e2 * (1 - cos_angle))
    assert len(mass) > 20 and np.median(mass) == pytest.approx(91.2, abs=2.5)
