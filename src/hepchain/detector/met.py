"""Missing transverse momentum: PF MET, its per-event covariance and significance, track MET.

MET is minus the vector sum of all PF candidates (pile-up included, as CMS PF MET).

The covariance follows the CMS MET-significance construction (JINST 14 (2019)
P07004, section 8): every object contributes its resolution rotated into the
transverse plane,

- jets above ``met_jet_pt_min``: sigma(pT) from the jet energy resolution of the
  simulation, sigma(pT)/pT = sqrt(N^2/pT^2 + S^2/pT + C^2) (the Tune's
  ``met_jer_n/s/c``, fitted to the truth-matched JER of our own jets, see
  ``results/detector/validation.json``), along the jet; pT sigma(phi) across it;
- leptons (PF electrons and muons outside jets): their measurement resolution;
- everything else (unclustered PF candidates, pile-up included): an isotropic
  term sigma^2 = sigma_0^2 + sigma_U^2 sum pT(unclustered) per component.

The scale factors that CMS fits to data are here fitted once to the nominal
simulation so that the pulls of (MET - GenMET) have unit width; they live in
the Tune (MET section) and the pseudo-data tune keeps them, so its pulls show
the resolution mismodelling a real analysis would see.

Significance: S = MET^T V^-1 MET (the log-likelihood ratio of CMS), chi^2 with 2
degrees of freedom for events without genuine MET.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .particles import Table
from .pflow import PF_ELECTRON, PF_MUON
from .tune import Tune


@dataclass(frozen=True)
class MET:
    pt: np.ndarray
    phi: np.ndarray
    sum_et: np.ndarray
    cov_xx: np.ndarray
    cov_xy: np.ndarray
    cov_yy: np.ndarray
    significance: np.ndarray


def _sums(evt: np.ndarray, values: np.ndarray, n_events: int) -> np.ndarray:
    return np.bincount(evt, weights=values, minlength=n_events)


def jet_resolution(pt: np.ndarray, tune: Tune) -> np.ndarray:
    """Relative jet pT resolution sqrt(N^2/pT^2 + S^2/pT + C^2) used in the MET covariance."""
    pt = np.maximum(pt, 1.0)
    return np.sqrt((tune.met_jer_n / pt) ** 2 + tune.met_jer_s**2 / pt + tune.met_jer_c**2)


def _rotated(var_par: np.ndarray, var_perp: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c, s = np.cos(phi), np.sin(phi)
    return var_par * c * c + var_perp * s * s, (var_par - var_perp) * c * s, var_par * s * s + var_perp * c * c


def build_met(pf: Table, jets: Table, link_pf: np.ndarray, link_jet: np.ndarray, n_events: int, tune: Tune) -> MET:
    """PF MET with its covariance.

    ``jets`` holds the calibrated jets (evt, pt, phi); ``link_pf`` and ``link_jet``
    are the flat PF index and the flat jet index of every jet constituent.
    """
    pt = pf["pt"].astype(np.float64)
    phi = pf["phi"].astype(np.float64)
    px, py = pt * np.cos(phi), pt * np.sin(phi)
    met_x = -_sums(pf["evt"], px, n_events)
    met_y = -_sums(pf["evt"], py, n_events)

    # jets above threshold
    hard = jets["pt"] > tune.met_jet_pt_min
    jpt, jphi, jevt = jets["pt"][hard].astype(np.float64), jets["phi"][hard].astype(np.float64), jets["evt"][hard]
    var_par = (jpt * jet_resolution(jpt, tune) * tune.met_jet_scale) ** 2
    var_perp = (jpt * tune.met_jet_phi_res) ** 2
    jxx, jxy, jyy = _rotated(var_par, var_perp, jphi)

    # unclustered: candidates not in those jets; isolated leptons with their own resolution
    in_jet = np.zeros(len(pf), dtype=bool)
    in_jet[link_pf[hard[link_jet]]] = True
    lepton = np.isin(np.abs(pf["pdgId"]), (PF_ELECTRON, PF_MUON)) & ~in_jet & (pt > 10.0)
    lvar = pf["sigma_pt"][lepton].astype(np.float64) ** 2
    lxx, lxy, lyy = _rotated(lvar, (pt[lepton] * 1e-3) ** 2, phi[lepton])
    unclustered = ~in_jet & ~lepton
    sum_uncl = _sums(pf["evt"][unclustered], pt[unclustered], n_events)
    var_u = tune.met_uncl_sigma0**2 + tune.met_uncl_sigma_u**2 * sum_uncl

    cov_xx = _sums(jevt, jxx, n_events) + _sums(pf["evt"][lepton], lxx, n_events) + var_u
    cov_xy = _sums(jevt, jxy, n_events) + _sums(pf["evt"][lepton], lxy, n_events)
    cov_yy = _sums(jevt, jyy, n_events) + _sums(pf["evt"][lepton], lyy, n_events) + var_u
    det = np.maximum(cov_xx * cov_yy - cov_xy**2, 1e-9)
    significance = (met_x**2 * cov_yy - 2 * met_x * met_y * cov_xy + met_y**2 * cov_xx) / det
    return MET(
        pt=np.hypot(met_x, met_y),
        phi=np.arctan2(met_y, met_x),
        sum_et=_sums(pf["evt"], pt, n_events),
        cov_xx=cov_xx,
        cov_xy=cov_xy,
        cov_yy=cov_yy,
        significance=significance,
    )


def track_met(pf: Table, n_events: int, eta_max: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pt, phi, sumEt) of minus the vector sum of charged PF candidates from the primary vertex."""
    trk = (pf["charge"] != 0) & (pf["fromPV"] == 3) & (np.abs(pf["eta"]) < eta_max)
    pt = pf["pt"][trk].astype(np.float64)
    phi = pf["phi"][trk].astype(np.float64)
    x = -_sums(pf["evt"][trk], pt * np.cos(phi), n_events)
    y = -_sums(pf["evt"][trk], pt * np.sin(phi), n_events)
    return np.hypot(x, y), np.arctan2(y, x), _sums(pf["evt"][trk], pt, n_events)
