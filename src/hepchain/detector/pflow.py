"""Particle flow on calorimeter towers: tracks, tower excesses and lepton candidates into PF candidates.

Every truth particle of the event (hard scatter and pile-up) meets the detector:

- charged particles with a reconstructed track (:mod:`.tracker`; in dense jet
  cores a track can be lost when two particles share an innermost-pixel
  cluster) become charged hadrons (211), identified electrons (11, energy
  from the EM calorimeter, unchanged by the tower model) or muons (13);
- every other particle that reaches the calorimeter, charged hadrons with a
  track included, showers there (:mod:`.calorimeter`): photons and
  unidentified electrons in the EM section, hadrons in both sections with a
  fluctuating non-compensating response.  Charged particles arrive at the
  azimuth where the solenoid field has turned them.  The HAD-section signal of
  a hadron spreads laterally over its tower and the three nearest neighbours
  (Gaussian profile of width ``had_lateral_sigma``, different shower by
  shower).  Signals are summed per tower with noise and zero suppression.

Particle flow (the CMS algorithm, arXiv:1706.04965 section 6.2, with towers
as calorimeter clusters linked to tracks):

- a track's expected signal is the *nominal* mean hadron response at its
  momentum, shared among the towers with the mean lateral profile, with the
  nominal spread (sampling, F_em fluctuations) and the track resolution;
- per tower, excess = (EM + HAD signal) - expected.  If excess >
  ``pf_excess_nsigma`` sigma (sigma^2 = sigma_cal^2 + (R sigma_track)^2 +
  noise^2) it is neutral: a photon up to the EM-section signal, a neutral
  hadron (nominal hadron calibration) for the rest;
- otherwise calorimeter and tracks measure the same particles and the tracks'
  energies are rescaled to the weighted mean of the track sum and the
  calorimeter estimate (signal / R).  At high pT, where the sagitta term makes
  tracks worse than the calorimeter, the calorimeter dominates, as in real PF;
- towers without tracks give a photon (EM section) and a neutral hadron (HAD
  section, nominal hadron calibration).

So charged-shower fluctuations (F_em, lateral profile) leak into neutral
energy, neutral energy under a charged shower can be lost (confusion), and
calibrating with the nominal response leaves a pseudo-data tune its residual
miscalibration.  Charged particles below the curling threshold are lost;
muons that miss the muon system or fail its identification keep their track
as a charged hadron candidate; muons (a MIP signal of no consequence here) and
identified electrons do not enter the towers.

Vertex association: charged candidates from the hard scatter, or from a
pile-up vertex closer than ``vertex_merge_dz`` to it, get ``fromPV = 3``;
other pile-up charged candidates ``fromPV = 0``; neutrals ``fromPV = 0``
(charged-hadron subtraction keeps ``fromPV > 0`` or neutral).

Columns beyond the NanoAOD ones: ``sigma_pt``, ``truth`` (particle index; for
a tower neutral the largest contributor, -1 for noise), ``tower`` (event-tower
key, -1 none), ``tower_em``/``tower_had`` (EM-scale section signals of that
tower [GeV]), ``pu``, ``origin``, ``d0err``/``dzerr`` (impact-parameter
resolutions [cm], 0 for neutrals).
"""

from __future__ import annotations

import functools
from dataclasses import fields, replace

import numpy as np

from .calorimeter import (
    TowerGrid,
    build_towers,
    calibrate_hadron_signal,
    em_resolution,
    em_shower,
    had_resolution,
    hadron_em_share_mean,
    hadron_expectation,
    hadron_shower,
    lateral_split,
    measure_em,
)
from .particles import Table
from .tracker import (
    calorimeter_phi,
    impact_parameters,
    merged_in_pixel,
    smear_track_pt,
    track_pt_resolution,
    tracking_efficiency,
)
from .tune import NOMINAL, PSEUDODATA, Tune

PF_CHARGED, PF_ELECTRON, PF_MUON, PF_PHOTON, PF_NEUTRAL = 211, 11, 13, 22, 130
MASS = {PF_CHARGED: 0.13957, PF_ELECTRON: 0.000511, PF_MUON: 0.10566, PF_PHOTON: 0.0, PF_NEUTRAL: 0.0}

_STREAMS = ("tracks", "muons", "electrons", "em", "hadrons", "lateral", "towers", "impact")


def electron_tight_efficiency(pt: np.ndarray, tune: Tune) -> np.ndarray:
    return tune.electron_tight_eff_plateau * (1.0 - np.exp(-np.maximum(pt - 5.0, 0.0) / tune.electron_tight_eff_turnon))


@functools.lru_cache(maxsize=16)
def calibration_tune(tune: Tune) -> Tune:
    """The tune the reconstruction is calibrated with.

    A nominal tune (or a variant of it, same name) calibrates with itself;
    pseudo-data with its shifts undone, i.e. with the nominal numbers, so that it
    keeps the residual miscalibration real data would show.
    """
    if tune.name == NOMINAL.name:
        return tune
    shifted = {f.name: getattr(NOMINAL, f.name) for f in fields(Tune)
               if f.name != "name" and getattr(PSEUDODATA, f.name) != getattr(NOMINAL, f.name)}
    return replace(tune, **shifted)


def _streams(rng: np.random.Generator) -> dict[str, np.random.Generator]:
    """One child generator per purpose, so that a tune change in one leaves the others' numbers alone."""
    seeds = rng.integers(0, 2**63 - 1, size=len(_STREAMS))
    return {name: np.random.default_rng(int(s)) for name, s in zip(_STREAMS, seeds, strict=True)}


def _candidates(
    evt: np.ndarray, pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, pdg: np.ndarray | int, charge: np.ndarray | int,
    sigma: np.ndarray, truth: np.ndarray, tower: np.ndarray | int, mass: float,
) -> Table:
    n = len(evt)
    return Table(
        {
            "evt": evt.astype(np.int64),
            "pt": pt.astype(np.float32),
            "eta": eta.astype(np.float32),
            "phi": phi.astype(np.float32),
            "mass": np.full(n, mass, dtype=np.float32),
            "charge": np.broadcast_to(np.asarray(charge, dtype=np.int32), (n,)).copy(),
            "pdgId": np.broadcast_to(np.asarray(pdg, dtype=np.int32), (n,)).copy(),
            "sigma_pt": sigma.astype(np.float32),
            "truth": truth.astype(np.int64),
            "tower": np.broadcast_to(np.asarray(tower, dtype=np.int64), (n,)).copy(),
        }
    )


def _spread(
    idx: np.ndarray, eta: np.ndarray, phi: np.ndarray, spread: np.ndarray, width: np.ndarray | float, grid: TowerGrid,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Entries (particle index, eta, phi, share) of signals spread over four towers where ``spread``.

    The first ``len(idx)`` entries are the particles' own towers (in order, share 1
    where not spread), then three entries per spread particle for its neighbours.
    """
    big = np.flatnonzero(spread)
    width = np.broadcast_to(width, spread.shape)
    le, lp, lf = lateral_split(eta[big], phi[big], width[big], grid)
    own = np.ones(len(idx))
    own[big] = lf[0]
    return (
        np.concatenate([idx, np.tile(idx[big], 3)]),
        np.concatenate([eta, le[1:].ravel()]),
        np.concatenate([phi, lp[1:].ravel()]),
        np.concatenate([own, lf[1:].ravel()]),
    )


def build_pf(particles: Table, pv_z: np.ndarray, tune: Tune, rng: np.random.Generator) -> Table:
    """Return the PF candidates (sorted by event, then by decreasing pT)."""
    p = particles
    n = len(p)
    n_events = len(pv_z)
    cal = calibration_tune(tune)
    rs = _streams(rng)
    grid = TowerGrid.from_tune(tune)
    evt = p["evt"].astype(np.int64)
    pt, eta, phi = p["pt"].astype(np.float64), p["eta"].astype(np.float64), p["phi"].astype(np.float64)
    pid = p["pdgId"]
    apid = np.abs(pid)
    charge = p["charge"].astype(np.int32)
    cosh = np.cosh(eta)
    e_true = pt * cosh
    charged = charge != 0

    # ---- tracks (random numbers drawn for all charged particles, so their use does not depend on the tune)
    ch = np.flatnonzero(charged)
    u_trk = rs["tracks"].random((2, len(ch)))
    z_ch = rs["tracks"].standard_normal(len(ch))
    tracked = np.zeros(n, dtype=bool)
    tracked[ch] = u_trk[0] < tracking_efficiency(pt[ch], eta[ch], tune)
    cand = np.flatnonzero(tracked & (pt > 1.0))
    merged = merged_in_pixel(evt[cand], pt[cand], eta[cand], phi[cand], p["vz"][cand].astype(np.float64), tune)
    lose = np.zeros(n, dtype=bool)
    lose[ch] = u_trk[1] < tune.track_merge_loss
    tracked[cand[merged & lose[cand]]] = False
    is_mu = apid == 13
    is_e = apid == 11
    u_lep = np.ones(n)
    lep = np.flatnonzero(is_mu | is_e)
    u_lep[lep] = rs["muons"].random(len(lep))
    muon = is_mu & (np.abs(eta) < tune.muon_eta_max) & (pt > 3.0) & (u_lep < tune.muon_eff)
    electron = is_e & tracked & (np.abs(eta) < tune.electron_eta_max) & (pt > 5.0) & (u_lep < tune.electron_reco_eff)
    # every other track is a charged hadron candidate: hadrons, unidentified electrons and muons that fail the
    # muon ID or miss the muon system (CMS PF keeps their tracks, arXiv:1706.04965 sect. 6.2; without that a lost
    # muon becomes fake MET)
    track_hadron = tracked & ~muon & ~electron
    lost = charged & (pt < tune.track_pt_min) & ~muon

    # ---- showers of everything that reaches the calorimeter, except identified leptons and muons
    phi_calo = phi.copy()
    reaches = np.ones(n, dtype=bool)
    phi_calo[ch], reaches[ch] = calorimeter_phi(pt[ch], eta[ch], phi[ch], charge[ch], tune)
    calo_ok = (np.abs(eta) < tune.calo_eta_max) & reaches & ~lost & ~is_mu
    in_calo = calo_ok & ~electron
    em_like = (apid == 22) | is_e
    em_dep = np.zeros(n)
    had_dep = np.zeros(n)
    ie_all = np.flatnonzero(calo_ok & em_like)  # random numbers for all, used for those not identified as electrons
    u_em = rs["em"].random(len(ie_all))
    z_em = rs["em"].standard_normal(len(ie_all))
    not_e = ~electron[ie_all]
    ie = ie_all[not_e]
    em_dep[ie] = em_shower(e_true[ie], eta[ie], tune, u_em[not_e], z_em[not_e])
    ih = np.flatnonzero(in_calo & ~em_like)
    em_dep[ih], had_dep[ih] = hadron_shower(e_true[ih], eta[ih], charged[ih], tune, rs["hadrons"])
    width = tune.had_lateral_sigma * np.exp(tune.had_lateral_fluct * rs["lateral"].standard_normal(len(ih)))
    # lateral spread where tracks are linked (|eta| < 2.5 + margin); elsewhere PF sees no tracks and it does not matter
    spread = (had_dep[ih] > tune.had_lateral_min) & (np.abs(eta[ih]) < tune.track_eta_max + 0.1)
    s_idx, s_eta, s_phi, s_frac = _spread(ih, eta[ih], phi_calo[ih], spread, width, grid)
    # entries: EM showers, then hadrons (first entry of each carries its EM-section signal)
    dep = np.concatenate([ie, s_idx])
    d_eta = np.concatenate([eta[ie], s_eta])
    d_phi = np.concatenate([phi_calo[ie], s_phi])
    first = np.zeros(len(s_idx), dtype=bool)
    first[: len(ih)] = True
    d_em = np.concatenate([em_dep[ie], np.where(first, em_dep[s_idx], 0.0)])
    d_had = np.concatenate([np.zeros(len(ie)), had_dep[s_idx] * s_frac])
    towers = build_towers(evt[dep], d_eta, d_phi, d_em, d_had, n_events, tune, rs["towers"])
    n_t = len(towers)

    pieces: list[Table] = []

    # ---- charged hadrons: track momentum, then PF per tower with the calorimeter
    ti = np.flatnonzero(track_hadron)
    z_trk = np.zeros(n)
    z_trk[ch] = z_ch
    pt_trk = smear_track_pt(pt[ti], eta[ti], tune, rs["tracks"], z=z_trk[ti])
    p_trk = pt_trk * cosh[ti]
    sig_p = p_trk * track_pt_resolution(pt_trk, eta[ti], tune)
    mu_exp, sig_exp = hadron_expectation(p_trk, eta[ti], cal)
    em_share = hadron_em_share_mean(mu_exp, cal)
    nt = len(ti)
    reach_t = in_calo[ti]
    # expected signal entries: the EM share in the impact tower, the HAD share spread with the mean profile
    j_all = np.arange(nt)
    spread_t = mu_exp * (1.0 - em_share) > cal.had_lateral_min
    e_j, e_eta, e_phi, h_f = _spread(j_all, eta[ti], phi_calo[ti], spread_t, cal.had_lateral_sigma, grid)
    # share of the track's expected signal: EM share and the contained HAD share in the impact tower, the rest around
    e_f = (1.0 - em_share[e_j]) * h_f
    e_f[:nt] += em_share
    e_tower = grid.locate(e_eta, e_phi)
    ok = reach_t[e_j] & (e_tower >= 0) & (e_f > 0)
    e_t = np.full(len(e_j), -1, dtype=np.int64)
    e_t[ok] = towers.find(evt[ti][e_j[ok]] * grid.n_towers + e_tower[ok])
    link = e_t >= 0
    tt, ej, ef = e_t[link], e_j[link], e_f[link]
    exp_sum = np.bincount(tt, weights=mu_exp[ej] * ef, minlength=n_t)
    exp_var = np.bincount(tt, weights=sig_exp[ej] ** 2 * ef, minlength=n_t)
    exp_var = exp_var + (cal.had_constant * exp_sum) ** 2  # constant term on the whole signal (bincount without links is int)
    trk_sum = np.bincount(tt, weights=p_trk[ej] * ef, minlength=n_t)
    trk_var = np.bincount(tt, weights=(sig_p[ej] * ef) ** 2, minlength=n_t)
    has_trk = trk_sum > 0
    calo = towers.em + towers.had
    resp = np.where(has_trk, exp_sum / np.where(has_trk, trk_sum, 1.0), 1.0)  # expected signal per unit track energy
    noise_var = towers.noise_em**2 + towers.noise_had**2
    sigma = np.sqrt(exp_var + resp**2 * trk_var + noise_var)
    excess = calo - exp_sum
    neutral_excess = has_trk & (excess > tune.pf_excess_nsigma * sigma)
    # compatible towers: weighted mean of the track sum and the calorimeter estimate of the same energy
    combine = has_trk & ~neutral_excess
    var_cal = (exp_var + noise_var) / resp**2
    w_trk = 1.0 / np.maximum(trk_var, 1e-12)
    w_cal = np.where(combine, 1.0 / np.maximum(var_cal, 1e-12), 0.0)
    best = (w_trk * trk_sum + w_cal * calo / resp) / (w_trk + w_cal)
    factor = np.where(combine, best / np.where(has_trk, trk_sum, 1.0), 1.0)
    rel_sigma = np.where(combine, np.sqrt(1.0 / (w_trk + w_cal)) / np.maximum(best, 1e-9), 0.0)
    share = np.bincount(ej, weights=ef, minlength=nt)
    linked = share > 0
    norm = np.maximum(share, 1e-12)
    f_trk = np.where(linked, np.bincount(ej, weights=ef * factor[tt], minlength=nt) / norm, 1.0)
    rel_trk = np.where(linked, np.bincount(ej, weights=ef * rel_sigma[tt], minlength=nt) / norm, 0.0)
    sig_trk = np.where(rel_trk > 0, rel_trk * pt_trk * f_trk, sig_p / cosh[ti])
    impact = np.full(nt, -1, dtype=np.int64)
    first = e_t[:nt]  # the EM-share entry of each track sits in its impact tower
    impact[first >= 0] = towers.key[first[first >= 0]]
    pieces.append(_candidates(evt[ti], pt_trk * f_trk, eta[ti], phi[ti], PF_CHARGED * charge[ti], charge[ti], sig_trk,
                              ti, impact, MASS[PF_CHARGED]))

    # ---- neutral candidates from the towers
    em_excess = np.where(has_trk, np.where(neutral_excess, np.minimum(excess, towers.em), 0.0), towers.em)
    had_excess = np.where(has_trk, np.where(neutral_excess, excess - em_excess, 0.0), towers.had)
    e_gamma = em_excess / (1.0 - cal.em_material_loss)
    e_nh = calibrate_hadron_signal(had_excess, cal)
    for kind, energy, lead, threshold in (
        (PF_PHOTON, e_gamma, towers.lead_em, tune.photon_energy_min),
        (PF_NEUTRAL, e_nh, towers.lead_had, tune.neutral_energy_min),
    ):
        keep = np.flatnonzero(energy > threshold)
        # position: the section's signal-weighted centroid (the EM one if the HAD section is empty)
        use_em = (towers.had[keep] <= 0) if kind == PF_NEUTRAL else np.ones(len(keep), dtype=bool)
        c_eta = np.where(use_em, towers.eta_em[keep], towers.eta_had[keep])
        c_phi = np.where(use_em, towers.phi_em[keep], towers.phi_had[keep])
        e = energy[keep]
        c_cosh = np.cosh(c_eta)
        res = em_resolution(e, c_eta, tune) if kind == PF_PHOTON else had_resolution(e, c_eta, tune)
        lead_entry = lead[keep]
        truth = np.where(lead_entry >= 0, dep[np.maximum(lead_entry, 0)], -1) if len(dep) else lead_entry
        pieces.append(_candidates(towers.evt[keep], e / c_cosh, c_eta, c_phi, kind, 0, res / c_cosh, truth,
                                  towers.key[keep], MASS[kind]))

    # ---- muons: combined tracker + muon system
    mi = np.flatnonzero(muon)
    rel = np.hypot(tune.muon_res_ms, tune.muon_res_sagitta * pt[mi])
    pt_mu = pt[mi] / np.maximum(1.0 + rel * rs["muons"].standard_normal(len(mi)), 0.05)
    pieces.append(_candidates(evt[mi], pt_mu, eta[mi], phi[mi], PF_MUON * np.sign(pid[mi]), charge[mi], rel * pt_mu,
                              mi, -1, MASS[PF_MUON]))

    # ---- electrons: EM energy, track direction; nominal material correction (not changed by the tower model)
    ei = np.flatnonzero(electron)
    e_meas = measure_em(e_true[ei], eta[ei], tune, rs["electrons"]) / (1.0 - NOMINAL.em_material_loss)
    pieces.append(_candidates(evt[ei], e_meas / cosh[ei], eta[ei], phi[ei], PF_ELECTRON * np.sign(pid[ei]), charge[ei],
                              em_resolution(e_meas, eta[ei], tune) / cosh[ei], ei, -1, MASS[PF_ELECTRON]))

    pf = Table.concat(pieces)
    truth = pf["truth"]
    has_truth = truth >= 0
    t = np.maximum(truth, 0)
    is_charged = pf["charge"] != 0
    from_pu = np.where(has_truth, p["pu"][t], True)
    near_pv = np.abs(p["vz"][t] - pv_z[pf["evt"]]) < tune.vertex_merge_dz
    pf["fromPV"] = np.where(is_charged & (~from_pu | near_pv), 3, 0).astype(np.int32)
    pf["pu"] = from_pu
    pf["origin"] = np.where(has_truth, p["origin"][t], 0).astype(p["origin"].dtype)
    n_pf = len(pf)
    dxy = np.zeros(n_pf, dtype=np.float32)
    dz = np.zeros(n_pf, dtype=np.float32)
    d0err = np.zeros(n_pf, dtype=np.float32)
    dzerr = np.zeros(n_pf, dtype=np.float32)
    c = np.flatnonzero(is_charged)
    dxy[c], dz[c], d0err[c], dzerr[c] = impact_parameters(
        pf["origin"][c], pf["pt"][c].astype(np.float64), pf["eta"][c].astype(np.float64), tune, rs["impact"]
    )
    pf["dxy"], pf["dz"], pf["d0err"], pf["dzerr"] = dxy, dz, d0err, dzerr
    ti_pf = towers.find(pf["tower"])
    has_tower = ti_pf >= 0
    pf["tower_em"] = np.where(has_tower, towers.em[np.maximum(ti_pf, 0)], 0.0).astype(np.float32)
    pf["tower_had"] = np.where(has_tower, towers.had[np.maximum(ti_pf, 0)], 0.0).astype(np.float32)
    # sort by event, then by decreasing pT: one int64 key (the bits of a positive float32 grow with its value)
    pt_bits = np.maximum(pf["pt"], np.float32(0.0)).view(np.int32).astype(np.int64)
    order = np.argsort((pf["evt"] << 32) | (0x7FFFFFFF - pt_bits))
    return pf.take(order)

