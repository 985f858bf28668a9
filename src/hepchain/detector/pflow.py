"""Particle flow: tracks, calorimeter deposits and lepton candidates into PF candidates.

Every truth particle of the event (hard scatter and pile-up) meets the detector:

- charged particles with a reconstructed track become charged hadrons (211),
  electrons (11, energy from the EM calorimeter) or muons (13, muon system);
- photons, electrons without a reconstructed electron, neutral hadrons and
  charged hadrons without a track (inefficiency or |eta| > 2.5) leave
  calorimeter deposits that become PF photons (22) or neutral hadrons (130)
  above thresholds, calibrated with the *nominal* response (so a pseudo-data
  tune leaves the residual miscalibration a real detector would show);
- charged particles below the curling threshold and muons outside the muon
  system are lost.

Vertex association: charged candidates from the hard scatter, or from a
pile-up vertex closer than ``vertex_merge_dz`` to it, get ``fromPV = 3``;
other pile-up charged candidates ``fromPV = 0``; neutrals ``fromPV = 0``
(charged-hadron subtraction keeps ``fromPV > 0`` or neutral).
"""

from __future__ import annotations

import numpy as np

from .calorimeter import FORWARD_ETA, calibrate_hadron, em_resolution, had_resolution, measure_em, measure_hadron
from .particles import Table
from .tracker import impact_parameters, smear_track_pt, track_pt_resolution, tracking_efficiency
from .tune import NOMINAL, Tune

PF_CHARGED, PF_ELECTRON, PF_MUON, PF_PHOTON, PF_NEUTRAL = 211, 11, 13, 22, 130
MASS = {PF_CHARGED: 0.13957, PF_ELECTRON: 0.000511, PF_MUON: 0.10566, PF_PHOTON: 0.0, PF_NEUTRAL: 0.0}

_NEUTRAL_HADRONS = (130, 2112, 310, 3122, 3322)


def electron_tight_efficiency(pt: np.ndarray, tune: Tune) -> np.ndarray:
    return tune.electron_tight_eff_plateau * (1.0 - np.exp(-np.maximum(pt - 5.0, 0.0) / tune.electron_tight_eff_turnon))


def build_pf(particles: Table, pv_z: np.ndarray, tune: Tune, rng: np.random.Generator) -> Table:
    """Return the PF candidates (sorted by event, then by decreasing pT)."""
    p = particles
    n = len(p)
    pt, eta, phi = p["pt"].astype(np.float64), p["eta"].astype(np.float64), p["phi"].astype(np.float64)
    pid = p["pdgId"]
    apid = np.abs(pid)
    charge = p["charge"].astype(np.int32)
    u = rng.random((4, n))

    charged = charge != 0
    tracked = charged & (u[0] < tracking_efficiency(pt, eta, tune))
    is_mu = apid == 13
    is_e = apid == 11
    muon = is_mu & (np.abs(eta) < tune.muon_eta_max) & (pt > 3.0) & (u[1] < tune.muon_eff)
    electron = is_e & tracked & (np.abs(eta) < tune.electron_eta_max) & (pt > 5.0) & (u[1] < tune.electron_reco_eff)
    track_hadron = tracked & ~muon & ~electron & ~is_mu  # tracked non-lepton, or tracked electron not identified
    lost = charged & (pt < tune.track_pt_min) & ~muon
    to_em = ((apid == 22) | (is_e & ~electron & ~track_hadron)) & ~lost
    to_had = (np.isin(apid, _NEUTRAL_HADRONS) | (charged & ~tracked & ~is_mu & ~is_e)) & ~lost
    in_calo = np.abs(eta) < tune.calo_eta_max

    e_true = pt * np.cosh(eta)
    pieces: list[Table] = []

    def make(mask: np.ndarray, pt_new: np.ndarray, eta_new: np.ndarray, phi_new: np.ndarray, kind: int, sigma: np.ndarray) -> None:
        idx = np.flatnonzero(mask)
        sign = np.sign(pid[idx]) if kind in (PF_ELECTRON, PF_MUON) else charge[idx]
        if kind in (PF_ELECTRON, PF_MUON):
            pf_id = (kind * sign).astype(np.int32)
        elif kind == PF_CHARGED:
            pf_id = (PF_CHARGED * charge[idx]).astype(np.int32)
        else:
            pf_id = np.full(len(idx), kind, dtype=np.int32)
        pieces.append(
            Table(
                {
                    "evt": p["evt"][idx],
                    "pt": pt_new.astype(np.float32),
                    "eta": eta_new.astype(np.float32),
                    "phi": phi_new.astype(np.float32),
                    "mass": np.full(len(idx), MASS[kind], dtype=np.float32),
                    "charge": charge[idx] if kind in (PF_CHARGED, PF_ELECTRON, PF_MUON) else np.zeros(len(idx), np.int32),
                    "pdgId": pf_id,
                    "sigma_pt": sigma.astype(np.float32),
                    "truth": idx.astype(np.int64),
                }
            )
        )

    # tracks: charged hadrons (and unidentified tracked electrons)
    sel = track_hadron
    pt_trk = smear_track_pt(pt[sel], eta[sel], tune, rng)
    make(sel, pt_trk, eta[sel], phi[sel], PF_CHARGED, pt_trk * track_pt_resolution(pt_trk, eta[sel], tune))

    # muons: combined tracker + muon system
    sel = muon
    rel = np.hypot(tune.muon_res_ms, tune.muon_res_sagitta * pt[sel])
    pt_mu = pt[sel] / np.maximum(1.0 + rel * rng.standard_normal(sel.sum()), 0.05)
    make(sel, pt_mu, eta[sel], phi[sel], PF_MUON, rel * pt_mu)

    # electrons: EM energy, track direction; nominal material correction
    sel = electron
    e_meas = measure_em(e_true[sel], eta[sel], tune, rng) / (1.0 - NOMINAL.em_material_loss)
    pt_e = e_meas / np.cosh(eta[sel])
    make(sel, pt_e, eta[sel], phi[sel], PF_ELECTRON, em_resolution(e_meas, eta[sel], tune) / np.cosh(eta[sel]))

    # EM deposits -> photons
    sel = to_em & in_calo
    e_em = measure_em(e_true[sel], eta[sel], tune, rng) / (1.0 - NOMINAL.em_material_loss)
    keep = e_em > tune.photon_energy_min
    eta_em = eta[sel] + 0.005 * rng.standard_normal(sel.sum())
    phi_em = phi[sel] + 0.005 * rng.standard_normal(sel.sum())
    mask = sel.copy()
    mask[np.flatnonzero(sel)[~keep]] = False
    make(mask, (e_em / np.cosh(eta_em))[keep], eta_em[keep], phi_em[keep], PF_PHOTON,
         (em_resolution(e_em, eta_em, tune) / np.cosh(eta_em))[keep])

    # hadronic deposits -> neutral hadrons (PF-calibrated with the nominal response)
    sel = to_had & in_calo
    e_had = calibrate_hadron(measure_hadron(e_true[sel], eta[sel], tune, rng), NOMINAL)
    keep = e_had > tune.neutral_energy_min
    spread = np.where(np.abs(eta[sel]) > FORWARD_ETA, 0.05, 0.03)
    eta_h = eta[sel] + spread * rng.standard_normal(sel.sum())
    phi_h = phi[sel] + spread * rng.standard_normal(sel.sum())
    mask = sel.copy()
    mask[np.flatnonzero(sel)[~keep]] = False
    make(mask, (e_had / np.cosh(eta_h))[keep], eta_h[keep], phi_h[keep], PF_NEUTRAL,
         (had_resolution(e_had, eta_h, tune) / np.cosh(eta_h))[keep])

    pf = Table.concat(pieces)
    truth = pf["truth"]
    is_charged = pf["charge"] != 0
    from_pu = p["pu"][truth]
    near_pv = np.abs(p["vz"][truth] - pv_z[pf["evt"]]) < tune.vertex_merge_dz
    pf["fromPV"] = np.where(is_charged & (~from_pu | near_pv), 3, 0).astype(np.int32)
    pf["pu"] = from_pu
    pf["origin"] = p["origin"][truth]
    dxy, dz = impact_parameters(pf["origin"], rng)
    pf["dxy"], pf["dz"] = dxy, dz
    order = np.lexsort((-pf["pt"], pf["evt"]))
    return pf.take(order)
