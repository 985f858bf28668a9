"""Tracking: efficiency and pT resolution of charged particles, vertex association."""

from __future__ import annotations

import numpy as np

from .tune import Tune


def tracking_efficiency(pt: np.ndarray, eta: np.ndarray, tune: Tune) -> np.ndarray:
    """Probability to reconstruct a charged-particle track (0 outside the tracker)."""
    eff = np.where(pt > 1.0, tune.track_eff_high, tune.track_eff_low)
    eff = np.where(np.abs(eta) > 1.5, eff * tune.track_eff_endcap_factor, eff)
    inside = (np.abs(eta) < tune.track_eta_max) & (pt > tune.track_pt_min)
    return np.where(inside, eff, 0.0)


def track_pt_resolution(pt: np.ndarray, eta: np.ndarray, tune: Tune) -> np.ndarray:
    """Relative pT resolution sqrt(a^2 + (b pT)^2), worse in the endcaps."""
    rel = np.hypot(tune.track_res_ms, tune.track_res_sagitta * pt)
    return np.where(np.abs(eta) > 1.5, rel * tune.track_res_endcap_factor, rel)


def smear_track_pt(pt: np.ndarray, eta: np.ndarray, tune: Tune, rng: np.random.Generator) -> np.ndarray:
    """Smear in curvature (1/pT), as a tracker measures, then return pT."""
    rel = track_pt_resolution(pt, eta, tune)
    curvature = (1.0 + rel * rng.standard_normal(len(pt))) / pt
    return 1.0 / np.maximum(curvature, 1e-4)


def impact_parameters(origin: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(dxy, dz) in cm: resolution-limited for prompt tracks, lifetime tails for b/c/tau daughters."""
    n = len(origin)
    dxy = 0.002 * rng.standard_normal(n)
    dz = 0.004 * rng.standard_normal(n)
    displaced = np.isin(origin, (4, 5, 15))
    flight = rng.exponential(np.where(origin == 5, 0.02, np.where(origin == 4, 0.012, 0.004)))
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    dxy = np.where(displaced, dxy + sign * flight, dxy)
    dz = np.where(displaced, dz + sign * flight * 1.5, dz)
    return dxy.astype(np.float32), dz.astype(np.float32)
