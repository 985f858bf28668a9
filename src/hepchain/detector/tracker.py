"""Tracking: efficiency, pT and impact-parameter resolution, extrapolation to the calorimeter.

- pT resolution sqrt(a^2 + (b pT)^2): multiple-scattering and sagitta terms
  (MadAnalysis5 SFS CMS card style; PHYSICS.md), smeared in curvature.
- Impact parameters: sigma(d0) = a (+) b / (pT sin^(1/2) theta) and
  sigma(z0) = a (+) b / (pT sin^(3/2) theta), the multiple-scattering form of
  the ATLAS detector paper (JINST 3 (2008) S08003, section 10.2) with a = 10 um,
  b = 80 um GeV for d0 (CMS tracker, JINST 9 (2014) P10009, and ATLAS with IBL,
  ATL-PHYS-PUB-2015-018: about 10 um at high pT and 80-90 um at 1 GeV; recalled)
  and a = 30 um, b = 100 um GeV for z0.  Displaced daughters of b, c hadrons
  and taus get an exponential lifetime offset on top.
- Dense jet cores (ATLAS arXiv:1704.07983): two charged particles that share a
  cluster of the innermost pixel layer (same 50 x 250 um pixel cell at
  r = 3.3 cm) produce a merged cluster; the softer one is lost with
  probability ``track_merge_loss``.  This makes the tracking efficiency fall
  in the cores of TeV jets, as measured there.
- Extrapolation to the calorimeter: a charged particle of transverse momentum
  pT [GeV] in a solenoid of B [T] reaches radius r [m] turned in azimuth by
  asin(0.3 B r / (2 pT)) (helix), with r the calorimeter front (barrel) or
  where the helix crosses the endcap / forward face; particles that cannot
  reach r (0.3 B r / 2 > pT) curl up before the calorimeter.
"""

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


def smear_track_pt(
    pt: np.ndarray, eta: np.ndarray, tune: Tune, rng: np.random.Generator, z: np.ndarray | None = None
) -> np.ndarray:
    """Smear in curvature (1/pT), as a tracker measures, then return pT (``z``: given standard normals)."""
    rel = track_pt_resolution(pt, eta, tune)
    if z is None:
        z = rng.standard_normal(len(pt))
    curvature = (1.0 + rel * z) / pt
    return 1.0 / np.maximum(curvature, 1e-4)


def d0_resolution(pt: np.ndarray, eta: np.ndarray, tune: Tune) -> np.ndarray:
    """Transverse impact-parameter resolution [cm]: a (+) b / (pT sqrt(sin theta))."""
    sin_theta = 1.0 / np.cosh(eta)
    return np.hypot(tune.ip_d0_a, tune.ip_d0_b / (np.maximum(pt, 1e-3) * np.sqrt(sin_theta)))


def z0_resolution(pt: np.ndarray, eta: np.ndarray, tune: Tune) -> np.ndarray:
    """Longitudinal impact-parameter resolution [cm]: a (+) b / (pT sin^(3/2) theta)."""
    sin_theta = 1.0 / np.cosh(eta)
    return np.hypot(tune.ip_z0_a, tune.ip_z0_b / (np.maximum(pt, 1e-3) * sin_theta**1.5))


def impact_parameters(
    origin: np.ndarray, pt: np.ndarray, eta: np.ndarray, tune: Tune, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(dxy, dz, d0err, dzerr) in cm: resolution from pT and eta, lifetime tails for b/c/tau daughters."""
    n = len(origin)
    d0err = d0_resolution(pt, eta, tune)
    dzerr = z0_resolution(pt, eta, tune)
    z = rng.standard_normal((2, n))
    u = rng.random((2, n))
    displaced = np.isin(origin, (4, 5, 15))
    mean_flight = np.where(origin == 5, 0.02, np.where(origin == 4, 0.012, 0.004))
    flight = -mean_flight * np.log1p(-np.minimum(u[0], 1.0 - 1e-12))
    sign = np.where(u[1] < 0.5, -1.0, 1.0)
    dxy = d0err * z[0] + np.where(displaced, sign * flight, 0.0)
    dz = dzerr * z[1] + np.where(displaced, sign * flight * 1.5, 0.0)
    return dxy.astype(np.float32), dz.astype(np.float32), d0err.astype(np.float32), dzerr.astype(np.float32)


def merged_in_pixel(
    evt: np.ndarray, pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, vz: np.ndarray, tune: Tune
) -> np.ndarray:
    """True for each charged particle that shares an innermost-pixel cell with a harder one.

    Cells are 50 um in r-phi and 250 um in z at r = ``pixel_radius``; the hit z
    is vz + r sinh(eta) (vz in cm), so pile-up tracks from other vertices land
    elsewhere.
    """
    if len(pt) == 0:
        return np.zeros(0, dtype=bool)
    r = tune.pixel_radius
    iphi = np.floor((phi + np.pi) * r / tune.pixel_pitch_rphi).astype(np.int64)
    iz = np.floor((vz + r * np.sinh(eta)) / tune.pixel_pitch_z).astype(np.int64)
    n_phi = int(2 * np.pi * r / tune.pixel_pitch_rphi) + 2
    cell = (evt.astype(np.int64) * 1_000_003 + iz) * n_phi + iphi
    order = np.lexsort((-pt, cell))
    sc = cell[order]
    shared_with_harder = np.concatenate([[False], sc[1:] == sc[:-1]])
    out = np.zeros(len(pt), dtype=bool)
    out[order] = shared_with_harder
    return out


def calorimeter_phi(
    pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, charge: np.ndarray, tune: Tune
) -> tuple[np.ndarray, np.ndarray]:
    """Azimuth where a particle reaches the calorimeter, and whether it reaches it at all."""
    sinh = np.abs(np.sinh(eta))
    z_face = np.where(np.abs(eta) > 3.0, tune.calo_z_forward, tune.calo_z_endcap)
    radius = np.minimum(tune.calo_radius, z_face / np.maximum(sinh, 1e-9))
    arg = 0.3 * tune.calo_bfield * radius / (2.0 * np.maximum(pt, 1e-6))
    reaches = (charge == 0) | (arg < 1.0)
    bend = np.where(charge != 0, np.arcsin(np.minimum(arg, 1.0)) * np.sign(charge), 0.0)
    return (phi - bend + np.pi) % (2 * np.pi) - np.pi, reaches
