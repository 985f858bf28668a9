"""Showers in the ATLAS LAr electromagnetic calorimeter, for the per-electron cell images.

Every particle near an electron becomes one or two *sources* of energy along
its path through the calorimeter, and each source a set of *spots* (energy
points) in depth slices of the four layers (presampler, strips, middle,
back), all as flat numpy arrays over every source of a sub-chunk.

Longitudinal profile (Grindhammer-Peters, hep-ex/0001020, as in GFlash;
PHYSICS.md): dE/dt = E beta^alpha t^(alpha-1) e^(-beta t) / Gamma(alpha),
t in radiation lengths from the shower start, with y = E / E_c,
ln T_hom = ln(ln y - 0.812), ln alpha_hom = ln(0.81 + (0.458 + 2.26/Z) ln y)
and, for a sampling calorimeter, T = T_hom - 0.55/F_S - 0.69 (1 - e_hat),
alpha = alpha_hom - 0.476/F_S; ln T and ln alpha fluctuate as correlated
Gaussians with sigma(ln T) = 1/(-2.5 + 1.25 ln y),
sigma(ln alpha) = 1/(-0.82 + 0.79 ln y), rho = 0.784 - 0.023 ln y (the
clamps of GFlash's GFlashSamplingShowerParameterisation: T >= 1,
alpha >= 1.1, sigmas <= 0.5).  The profile is integrated analytically over
each depth slice with the regularised incomplete Gamma function.

Lateral profile (same paper): in Moliere radii,
f(r) = p 2 r R_C^2/(r^2 + R_C^2)^2 + (1 - p) 2 r R_T^2/(r^2 + R_T^2)^2 with
R_C, R_T and p functions of tau = t/T, ln E and Z (PHYSICS.md).  The spots of
a slice are *stratified* over the radial CDF r^2/(r^2 + R^2) (inverse:
r = R sqrt(u/(1-u))) and a golden-ratio sequence in azimuth, with a random
offset per slice: the contained fraction of a window then fluctuates like
1/N, not 1/sqrt(N), so a few hundred spots give the smooth average profile
(the lateral fluctuations that remain come from those of T and alpha).

Upstream material and presampler: the shower starts at the first material
(photons after an exponential conversion depth, mean 9/7 X0).  The dead
material in front of the presampler (``cells_material_x0`` vs |eta|) and the
presampler slab take ``cells_upstream_k`` times the profile fraction they
hold: ionisation per X0 per shower particle is the critical energy, higher in
aluminium/argon than in the Pb/LAr medium the profile describes.  The energy
lost there is gone, the presampler reports its share; what remains
is spread over the accordion slices by the profile, and the tail beyond the
back layer leaks.

Sampling fluctuations: each slice's visible energy is Gamma-distributed with
variance s^2 E (GFlash ``ApplySampling``), so the sum has s/sqrt(E);
a per-source factor (1 + c z) adds the constant term.

Hadrons (simple, stated): charged hadrons and muons leave a MIP signal of
``cells_mip_per_x0`` per X0 traversed; a hadron interacts after an
exponential depth (``cells_had_lambda_x0``) in the accordion, after which it
deposits a uniform fraction in [0, 2 ``cells_had_em_frac``] of its energy as
an EM-like shower starting there, ``cells_had_lateral`` times wider.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammainc

from .particles import index_within_group
from .tune import Tune

N_LAYERS = 4
_GOLDEN = 0.6180339887498949  # azimuthal low-discrepancy sequence of the spots


def depth_scale(eta: np.ndarray, tune: Tune) -> np.ndarray:
    """Depth of the growing layers relative to eta = 0: min(cosh eta, cells_depth_scale_max)."""
    return np.minimum(np.cosh(np.asarray(eta, dtype=np.float64)), tune.cells_depth_scale_max)


def material_x0(eta: np.ndarray, tune: Tune) -> np.ndarray:
    """Material in front of the presampler [X0 along the particle] vs |eta| (piecewise linear), times the tune scale."""
    x0 = np.interp(np.abs(eta), tune.cells_material_eta, tune.cells_material_x0)
    return x0 * tune.cells_material_scale


def slice_layers(tune: Tune) -> np.ndarray:
    """Layer (0 presampler ... 3 back) of each depth slice."""
    return np.repeat(np.arange(N_LAYERS), tune.cells_depth_slices)


def slice_bounds(eta: np.ndarray, tune: Tune) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Depths [X0 from the first material] of the slices: (lo, hi) of shape (n, n_slices), and the accordion front.

    Slice 0 is the presampler slab, which starts behind the dead material in
    front of it (``cells_material_x0``); the accordion (strips, middle, back,
    each cut into ``cells_depth_slices`` equal slices) starts a further
    ``cells_ps_gap_x0`` behind (cables and electronics between presampler and
    accordion).
    """
    eta = np.asarray(eta, dtype=np.float64)
    scale = depth_scale(eta, tune)
    one = np.ones_like(eta)
    ps_lo = material_x0(eta, tune)
    ps_hi = ps_lo + tune.cells_depth_x0[0] * one
    front = ps_hi + tune.cells_ps_gap_x0 * one
    steps = []
    for layer in range(1, N_LAYERS):
        n_sub = tune.cells_depth_slices[layer]
        grow = scale if tune.cells_depth_grows[layer] else one
        steps.extend([tune.cells_depth_x0[layer] * grow / n_sub] * n_sub)
    edges = front[:, None] + np.concatenate([np.zeros((len(eta), 1)), np.cumsum(np.stack(steps, axis=1), axis=1)], axis=1)
    lo = np.concatenate([ps_lo[:, None], edges[:, :-1]], axis=1)
    hi = np.concatenate([ps_hi[:, None], edges[:, 1:]], axis=1)
    return lo, hi, front


def gp_longitudinal(
    energy: np.ndarray, tune: Tune, z: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(alpha, beta, T) of the sampling-calorimeter Grindhammer-Peters profile for showers of ``energy`` [GeV].

    ``z``: (2, n) standard normals for the correlated fluctuations of ln T and
    ln alpha; None gives the mean profile (T = exp<ln T>, alpha = exp<ln alpha>).
    """
    energy = np.asarray(energy, dtype=np.float64)
    lny = np.log(np.maximum(energy / tune.cells_critical_energy, 1.0001))
    t_hom = np.maximum(lny - 0.812, 0.1)
    a_hom = np.maximum(0.81 + (0.458 + 2.26 / tune.cells_z_eff) * lny, 0.1)
    ln_t = np.log(np.maximum(t_hom - 0.55 / tune.cells_fs - 0.69 * (1.0 - tune.cells_ehat), 1.105))
    ln_a = np.log(np.maximum(a_hom - 0.476 / tune.cells_fs, 1.105))
    if z is not None:
        den_t = -2.5 + 1.25 * lny
        den_a = -0.82 + 0.79 * lny
        sig_t = np.where(den_t > 2.0, 1.0 / np.maximum(den_t, 2.0), 0.5)
        sig_a = np.where(den_a > 2.0, 1.0 / np.maximum(den_a, 2.0), 0.5)
        rho = np.clip(0.784 - 0.023 * lny, -1.0, 1.0)
        c1, c2 = np.sqrt((1.0 + rho) / 2.0), np.sqrt((1.0 - rho) / 2.0)
        ln_t = ln_t + sig_t * (c1 * z[0] + c2 * z[1])
        ln_a = ln_a + sig_a * (c1 * z[0] - c2 * z[1])
    tmax = np.maximum(np.exp(ln_t), 1.0)
    alpha = np.maximum(np.exp(ln_a), 1.1)
    return alpha, (alpha - 1.0) / tmax, tmax


def longitudinal_fraction(t_lo: np.ndarray, t_hi: np.ndarray, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Fraction of the Gamma(alpha, beta) profile between depths t_lo and t_hi [X0 from the shower start]."""
    lo = gammainc(alpha, beta * np.maximum(t_lo, 0.0))
    hi = gammainc(alpha, beta * np.maximum(t_hi, 0.0))
    return hi - lo


def gp_lateral(energy: np.ndarray, tau: np.ndarray, tune: Tune) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(R_C, R_T, p) of the Grindhammer-Peters radial profile [Moliere radii] at tau = t/T, E [GeV]."""
    ln_e = np.log(np.maximum(np.asarray(energy, dtype=np.float64), 1e-3))
    z_eff = tune.cells_z_eff
    r_core = 0.0251 + 0.00319 * ln_e + (0.1162 - 0.000381 * z_eff) * tau
    k1, k2, k3, k4 = 0.659 - 0.00309 * z_eff, 0.645, -2.59, 0.3585 + 0.0412 * ln_e
    r_tail = k1 * (np.exp(k3 * (tau - k2)) + np.exp(k4 * (tau - k2)))
    p1, p2, p3 = 2.632 - 0.00094 * z_eff, 0.401 + 0.00187 * z_eff, 1.313 - 0.0686 * ln_e
    x = (p2 - tau) / p3
    p = p1 * np.exp(x - np.exp(x))
    return r_core, r_tail, np.clip(p, 0.0, 1.0)


def lateral_fraction_within(r: np.ndarray, r_core: np.ndarray, r_tail: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Fraction of the radial profile inside radius r (same units): p r^2/(r^2 + R_C^2) + (1 - p) r^2/(r^2 + R_T^2)."""
    r2 = r * r
    return p * r2 / (r2 + r_core**2) + (1.0 - p) * r2 / (r2 + r_tail**2)


@dataclass
class Sources:
    """Energy sources along particle paths (one row per source; ``part`` indexes the particle arrays given)."""

    part: np.ndarray  # int64
    energy: np.ndarray  # GeV: shower energy (the particle's for EM, its EM-like share for hadrons); particle's for MIPs
    mip: np.ndarray  # bool
    lateral: np.ndarray  # lateral width factor
    t0: np.ndarray  # X0: shower start
    tmax: np.ndarray  # X0: depth of the shower maximum after t0
    slice_e: np.ndarray  # (n, n_slices) visible energy per slice, GeV (EM scale, fluctuated)
    lost_upstream: np.ndarray  # GeV lost in front of the presampler and in the dead part of the presampler slab
    leakage: np.ndarray  # GeV behind the back layer


def make_sources(
    energy: np.ndarray, eta: np.ndarray, pdg_id: np.ndarray, charge: np.ndarray, tune: Tune, rng: np.random.Generator
) -> Sources:
    """Showers (e, gamma; interacting hadrons) and MIP tracks (muons, charged hadrons) of the given particles.

    Random numbers: a fixed number per particle (5) and per source-slice (1),
    so that a tune change does not shift the streams.
    """
    energy = np.asarray(energy, dtype=np.float64)
    eta = np.asarray(eta, dtype=np.float64)
    n = len(energy)
    apid = np.abs(pdg_id)
    em = (apid == 11) | (apid == 22)
    muon = apid == 13
    hadron = ~em & ~muon
    u = rng.random((3, n))
    z = rng.standard_normal((2, n))
    lo, hi, front = slice_bounds(eta, tune)
    n_slices = lo.shape[1]
    end = hi[:, -1]

    t0_em = np.where(apid == 22, -tune.cells_photon_conversion_x0 * np.log1p(-u[0]), 0.0)
    t_int = front + (-tune.cells_had_lambda_x0 * np.log1p(-u[1]))
    interacts = hadron & (t_int < end)
    frac = np.minimum(u[2] * 2.0 * tune.cells_had_em_frac, 1.0)

    shower = em | interacts
    sh = np.flatnonzero(shower)
    sh_energy = np.where(em, energy, frac * energy)[sh]
    sh_t0 = np.where(em, t0_em, t_int)[sh]
    alpha, beta, tmax = gp_longitudinal(sh_energy, tune, z[:, sh])

    def cdf(t: np.ndarray) -> np.ndarray:
        return gammainc(alpha, beta * np.maximum(t - sh_t0, 0.0))

    c_ps_lo, c_ps_hi, c_front, c_end = cdf(lo[sh, 0]), cdf(hi[sh, 0]), cdf(front[sh]), cdf(end[sh])
    has_ps = np.abs(eta[sh]) < tune.cells_ps_eta_max
    k = tune.cells_upstream_k
    dead = c_ps_lo + (c_front - c_ps_hi) + np.where(has_ps, 0.0, c_ps_hi - c_ps_lo)
    lost = np.minimum(k * dead, 1.0) * sh_energy
    ps = np.minimum(k * np.where(has_ps, c_ps_hi - c_ps_lo, 0.0) * sh_energy, sh_energy - lost)
    rem = sh_energy - lost - ps
    norm = 1.0 - c_front
    ok = norm > 1e-12
    safe = np.where(ok, norm, 1.0)
    d_cdf = gammainc(alpha[:, None], beta[:, None] * np.maximum(hi[sh, 1:] - sh_t0[:, None], 0.0)) - gammainc(
        alpha[:, None], beta[:, None] * np.maximum(lo[sh, 1:] - sh_t0[:, None], 0.0)
    )
    calo = np.where(ok[:, None], rem[:, None] * d_cdf / safe[:, None], 0.0)
    leak = np.where(ok, rem * (1.0 - c_end) / safe, 0.0)
    lost = lost + np.where(ok, 0.0, rem)
    sh_slices = np.concatenate([ps[:, None], calo], axis=1)

    mip = muon | (hadron & (charge != 0))
    mp = np.flatnonzero(mip)
    t_end = np.where(interacts, t_int, np.inf)[mp]
    mip_slices = tune.cells_mip_per_x0 * np.clip(np.minimum(hi[mp], t_end[:, None]) - lo[mp], 0.0, None)
    mip_slices[:, 0] = np.where(np.abs(eta[mp]) < tune.cells_ps_eta_max, mip_slices[:, 0], 0.0)
    mip_slices = np.minimum(mip_slices, energy[mp, None] / n_slices)

    part = np.concatenate([sh, mp])
    order = np.argsort(part, kind="stable")
    slices = np.concatenate([sh_slices, mip_slices])[order]
    n_src = len(part)
    # visible energy: EM scale, constant term per source, sampling fluctuations per slice
    extra = rng.standard_normal(n_src)
    visible = tune.em_scale * slices * np.maximum(1.0 + tune.cells_constant_term * extra, 0.0)[:, None]
    s2 = np.full(n_slices, tune.cells_sampling_term**2)
    s2[0] = tune.cells_ps_sampling_term**2
    shape = visible / np.where(s2 > 0, s2, 1.0)
    draws = rng.gamma(np.maximum(shape, 1e-12))
    visible = np.where(s2 > 0, draws * s2, visible)
    visible = np.where(slices > 0, visible, 0.0)
    return Sources(
        part=part[order].astype(np.int64),
        energy=np.concatenate([sh_energy, energy[mp]])[order],
        mip=np.concatenate([np.zeros(len(sh), bool), np.ones(len(mp), bool)])[order],
        lateral=np.concatenate([np.where(em[sh], 1.0, tune.cells_had_lateral), np.ones(len(mp))])[order],
        t0=np.concatenate([sh_t0, np.zeros(len(mp))])[order],
        tmax=np.concatenate([tmax, np.ones(len(mp))])[order],
        slice_e=visible,
        lost_upstream=np.concatenate([lost, np.zeros(len(mp))])[order],
        leakage=np.concatenate([leak, np.zeros(len(mp))])[order],
    )


@dataclass
class Spots:
    """Energy spots: source, layer, transverse displacement from the axis (cm) and azimuth, energy (GeV)."""

    src: np.ndarray
    layer: np.ndarray
    radius_cm: np.ndarray
    angle: np.ndarray
    energy: np.ndarray


def make_spots(src: Sources, eta: np.ndarray, tune: Tune, rng: np.random.Generator) -> Spots:
    """Spread each source-slice energy over spots drawn (stratified) from the GP radial profile at that depth.

    ``eta``: of each source's particle (for the slice depths).  MIP slices
    give one spot on the axis.  One uniform pair per source-slice.
    """
    n_src, n_slices = src.slice_e.shape
    offsets = rng.random((2, n_src, n_slices))
    e = src.slice_e
    count = np.where(
        e > 1e-6,
        np.where(src.mip[:, None], 1, np.clip(np.ceil(tune.cells_spots_min + tune.cells_spots_per_gev * e), 1, tune.cells_spots_max)),
        0,
    ).astype(np.int64)
    lo, hi, _ = slice_bounds(eta, tune)
    mid = 0.5 * (lo + hi)
    tau = np.maximum(mid - src.t0[:, None], 0.0) / src.tmax[:, None]
    r_core, r_tail, p = gp_lateral(src.energy[:, None], tau, tune)
    n_core = np.rint(p * count).astype(np.int64)
    p_eff = np.where(n_core == 0, 0.0, np.where(n_core == count, 1.0, p))

    flat = count.ravel()
    group = np.repeat(np.arange(flat.size), flat)
    k = index_within_group(flat)
    n_all = flat[group]
    nc = n_core.ravel()[group]
    core = k < nc
    kk = np.where(core, k, k - nc)
    nn = np.where(core, nc, n_all - nc)
    u = np.minimum((kk + offsets[0].ravel()[group]) / np.maximum(nn, 1), 0.999)
    width = np.where(core, r_core.ravel()[group], r_tail.ravel()[group])
    lateral = np.repeat(src.lateral, n_slices)[group]
    r = np.where(np.repeat(src.mip, n_slices)[group], 0.0, lateral * width * np.sqrt(u / (1.0 - u)))
    pe = p_eff.ravel()[group]
    weight = np.where(core, pe / np.maximum(nc, 1), (1.0 - pe) / np.maximum(n_all - nc, 1))
    angle = 2.0 * np.pi * ((k * _GOLDEN + offsets[1].ravel()[group]) % 1.0)
    layers = slice_layers(tune)
    return Spots(
        src=group // n_slices,
        layer=layers[group % n_slices],
        radius_cm=r * tune.cells_moliere_cm,
        angle=angle,
        energy=e.ravel()[group] * weight,
    )
