"""Calorimeter response: EM and hadronic sections, non-compensation, material, towers.

Every particle that reaches the calorimeter (photons, electrons, charged and
neutral hadrons) leaves an EM-scale signal in an EM and a hadronic (HAD)
section, summed per tower of an eta x phi grid (:class:`TowerGrid`, CMS HCAL
like: 0.087 x 0.087 up to |eta| = 1.74, coarser beyond).  Particle flow
(:mod:`.pflow`) then reads the towers, not the particles.

- EM showers (photons, electrons): an upstream material loss (exponential,
  mean ``em_material_loss``), the EM scale and sigma/E = 10.1%/sqrt(E) (+) 0.17%
  (Delphes ATLAS ECAL; PHYSICS.md "EM calorimeter energy resolution").
- Hadron showers, charged ones too: a non-compensating calorimeter answers
  R = F_em + (h/e)(1 - F_em) to a shower whose EM fraction is F_em.  Its mean
  follows Groom's parametrisation <F_em> = 1 - (E/E0)^(k-1) (E0 = 1 GeV,
  k = 0.82; Groom, NIM A 572 (2007) 633), and F_em fluctuates strongly from
  shower to shower (the main reason hadron resolution is poor: Wigmans,
  "Calorimetry", 2nd ed., ch. 7; Groom ibid.).  Here F_em is drawn from a Beta
  distribution with that mean and a fixed concentration, so that
  sigma(F_em) = ``had_fem_sigma`` at <F_em> = 0.5 and shrinks like
  sqrt(<F_em>(1 - <F_em>)) towards the ends.  On top come the sampling
  fluctuations of the Delphes ATLAS HCAL card (52.05%/sqrt(E) (+) 3.02%), an
  upstream material loss (``had_material_loss``), and a split of the signal
  between the sections: with probability ``had_em_start_prob`` the shower
  starts in the EM section and leaves a share uniform in [0, 2 x
  ``had_em_share``] there; otherwise a charged hadron leaves a MIP signal
  (``had_mip_em``) in the EM section.
- Towers: per-section electronic noise (``tower_noise_em``/``_had``, times
  ``tower_noise_forward_factor`` for |eta| > 3) and a zero-suppression
  threshold of ``tower_threshold_nsigma`` noise sigmas.  Towers with noise
  only are drawn directly from the Gaussian tail above threshold (their
  number is Poisson), not by simulating every empty tower.

The Delphes HCAL noise term (1.59 GeV per jet-sized cluster) is replaced by
the per-tower noise here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri

from .tune import Tune

FORWARD_ETA = 3.2
_LUT_SCALE = 100.0  # eta bins per unit of the ring lookup table
TOWER_FORWARD_ETA = 3.0  # towers beyond this |eta| are forward (HF-like) ones


def em_resolution(e: np.ndarray, eta: np.ndarray, tune: Tune) -> np.ndarray:
    """Absolute EM energy resolution [GeV]: stochastic (+) constant (+) noise."""
    stoch = np.where(np.abs(eta) > FORWARD_ETA, tune.em_stochastic_forward, tune.em_stochastic)
    return np.sqrt((stoch**2) * e + (tune.em_constant * e) ** 2 + tune.em_noise**2)


def had_resolution(e: np.ndarray, eta: np.ndarray, tune: Tune) -> np.ndarray:
    """Absolute hadronic energy resolution [GeV] (stochastic (+) constant), Delphes ATLAS HCAL."""
    stoch = np.where(np.abs(eta) > FORWARD_ETA, tune.had_stochastic_forward, tune.had_stochastic)
    return np.sqrt((stoch**2) * e + (tune.had_constant * e) ** 2)


def em_fraction_mean(e: np.ndarray, tune: Tune) -> np.ndarray:
    """Groom's mean EM fraction of a hadron shower, <F_em> = 1 - (E / 1 GeV)^(k - 1)."""
    return 1.0 - np.power(np.maximum(e, 1.0), tune.had_k - 1.0)


def hadron_response(e: np.ndarray, tune: Tune) -> np.ndarray:
    """Mean response to a hadron of energy e: R = 1 - (1 - h/e)(1 - <F_em>), Groom's F_em."""
    return 1.0 - (1.0 - tune.had_h_over_e) * (1.0 - em_fraction_mean(e, tune))


def em_fraction_sigma(e: np.ndarray, tune: Tune) -> np.ndarray:
    """Shower-to-shower spread of F_em: ``had_fem_sigma`` at <F_em> = 0.5, Beta-like sqrt(m (1 - m)) elsewhere."""
    m = np.clip(em_fraction_mean(e, tune), 0.01, 0.99)
    return tune.had_fem_sigma * np.sqrt(m * (1.0 - m) / 0.25)


def sample_em_fraction(e: np.ndarray, tune: Tune, rng: np.random.Generator) -> np.ndarray:
    """Draw F_em per shower from a Beta distribution with Groom's mean and :func:`em_fraction_sigma`."""
    m = np.clip(em_fraction_mean(e, tune), 0.01, 0.99)
    concentration = max(0.25 / max(tune.had_fem_sigma, 1e-6) ** 2 - 1.0, 1e-3)
    return rng.beta(m * concentration, (1.0 - m) * concentration)


def measure_em(e: np.ndarray, eta: np.ndarray, tune: Tune, rng: np.random.Generator) -> np.ndarray:
    """Measured energy of an isolated EM shower: material loss upstream, scale, resolution and noise."""
    loss = rng.exponential(tune.em_material_loss, len(e))
    deposited = e * np.clip(1.0 - loss, 0.0, 1.0) * tune.em_scale
    measured = deposited + em_resolution(e, eta, tune) * rng.standard_normal(len(e))
    return np.maximum(measured, 0.0)


# ----------------------------------------------------------------------------- showers in two sections


def em_shower(
    e: np.ndarray, eta: np.ndarray, tune: Tune, loss_u: np.ndarray, z: np.ndarray
) -> np.ndarray:
    """EM-scale signal of EM showers (no noise: that is per tower).

    ``loss_u`` are uniform and ``z`` standard-normal numbers, one per shower, so
    that the caller controls the random streams.
    """
    loss = -tune.em_material_loss * np.log1p(-np.minimum(loss_u, 1.0 - 1e-12))  # exponential, mean em_material_loss
    deposited = e * np.clip(1.0 - loss, 0.0, 1.0) * tune.em_scale
    stoch = np.where(np.abs(eta) > FORWARD_ETA, tune.em_stochastic_forward, tune.em_stochastic)
    return np.maximum(deposited + np.sqrt(stoch**2 * deposited) * z, 0.0)


def hadron_shower(
    e: np.ndarray,
    eta: np.ndarray,
    charged: np.ndarray,
    tune: Tune,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """EM-scale (EM section, HAD section) signals of hadron showers of energy ``e``.

    Signal = E (1 - loss) [F_em + (h/e)(1 - F_em)] had_scale, F_em drawn per shower
    (:func:`sample_em_fraction`), plus Delphes-HCAL sampling fluctuations; then
    split between the sections (see the module doc).
    """
    n = len(e)
    loss_u, start_u = rng.random((2, n))
    z = rng.standard_normal(n)
    share = np.minimum(2.0 * tune.had_em_share * rng.random(n), 1.0)  # broad: uniform around the mean share
    f_em = sample_em_fraction(e, tune, rng)  # last: its consumption of the stream depends on the tune
    loss = -tune.had_material_loss * np.log1p(-np.minimum(loss_u, 1.0 - 1e-12))
    mean = e * np.clip(1.0 - loss, 0.0, 1.0) * (f_em + tune.had_h_over_e * (1.0 - f_em)) * tune.had_scale
    stoch = np.where(np.abs(eta) > FORWARD_ETA, tune.had_stochastic_forward, tune.had_stochastic)
    signal = np.maximum(mean + np.sqrt(stoch**2 * mean) * z, 0.0)
    # longitudinal split: EM-section share
    mip = np.where(charged, np.minimum(tune.had_mip_em, signal), 0.0)
    em = np.where(start_u < tune.had_em_start_prob, share * signal, mip)
    forward = np.abs(eta) > TOWER_FORWARD_ETA  # HF-like: one absorber, no separate EM section for hadrons
    em = np.where(forward, 0.0, em)
    return em, signal - em


def hadron_expectation(p: np.ndarray, eta: np.ndarray, tune: Tune) -> tuple[np.ndarray, np.ndarray]:
    """Mean and shower-to-shower spread of the total EM-scale calorimeter signal of a hadron of energy ``p``.

    mean = p (1 - had_material_loss) R(p) had_scale; the spread adds the sampling
    term (Delphes HCAL stochastic term), the F_em fluctuations (1 - h/e)
    sigma(F_em) p and the material-loss spread.  The constant term belongs to
    the tower (:func:`build_towers`), not to the shower.  Particle flow uses it
    with the calibration tune.
    """
    resp = hadron_response(p, tune)
    mean = p * (1.0 - tune.had_material_loss) * resp * tune.had_scale
    stoch = np.where(np.abs(eta) > FORWARD_ETA, tune.had_stochastic_forward, tune.had_stochastic)
    var = stoch**2 * mean
    var += ((1.0 - tune.had_h_over_e) * em_fraction_sigma(p, tune) * p) ** 2
    var += (tune.had_material_loss * p * resp) ** 2
    return mean, np.sqrt(var)


def hadron_em_share_mean(mean_signal: np.ndarray, tune: Tune) -> np.ndarray:
    """Mean share of a charged hadron's signal in the EM section (shower start there, or a MIP)."""
    mip = np.minimum(tune.had_mip_em, mean_signal) / np.maximum(mean_signal, 1e-9)
    return tune.had_em_start_prob * tune.had_em_share + (1.0 - tune.had_em_start_prob) * mip


def calibrate_hadron_signal(signal: np.ndarray, tune_for_calibration: Tune) -> np.ndarray:
    """Energy of a hadron from its EM-scale signal: invert :func:`hadron_expectation`'s mean.

    E (1 - had_material_loss) R(E) had_scale is monotonic in E; it is inverted by
    interpolation (in log-log) on a fine table, exact to < 1e-4.
    """
    t = tune_for_calibration
    log_s, log_e = _calibration_table(t.had_k, t.had_h_over_e, t.had_material_loss, t.had_scale)
    out = np.zeros(len(signal))
    pos = signal > 0
    out[pos] = np.exp(np.interp(np.log(signal[pos]), log_s, log_e))
    return out


@functools.lru_cache(maxsize=8)
def _calibration_table(k: float, h_over_e: float, loss: float, scale: float) -> tuple[np.ndarray, np.ndarray]:
    e = np.geomspace(1e-3, 1e5, 4001)
    f_em = 1.0 - np.power(np.maximum(e, 1.0), k - 1.0)
    signal = e * (1.0 - loss) * scale * (1.0 - (1.0 - h_over_e) * (1.0 - f_em))
    return np.log(signal), np.log(e)


# ----------------------------------------------------------------------------- tower grid


@dataclass(frozen=True)
class TowerGrid:
    """An eta x phi tower grid: rings in eta (signed), ``nphi`` towers per ring."""

    edges: np.ndarray  # ascending signed eta edges of the rings
    nphi: np.ndarray  # towers per ring
    offset: np.ndarray  # id of the first tower of each ring
    n_towers: int
    lut: np.ndarray  # ring of the lower end of each 0.01-wide eta bin (fast lookup)
    tower_ring: np.ndarray  # ring of each tower id

    @staticmethod
    def from_tune(tune: Tune) -> TowerGrid:
        return _grid(tuple(tuple(r) for r in tune.tower_regions))

    @property
    def eta_center(self) -> np.ndarray:
        return 0.5 * (self.edges[1:] + self.edges[:-1])

    def locate(self, eta: np.ndarray, phi: np.ndarray) -> np.ndarray:
        """Tower id of each (eta, phi), -1 outside the grid."""
        x = (eta - self.edges[0]) * _LUT_SCALE
        inside = (x >= 0.0) & (eta < self.edges[-1])
        ring = self.lut[np.clip(x.astype(np.int64), 0, len(self.lut) - 1)]
        ring = ring + (eta >= self.edges[ring + 1])
        ring = np.minimum(ring, len(self.nphi) - 1)
        nphi = self.nphi[ring]
        iphi = ((phi + np.pi) * (nphi / (2.0 * np.pi))).astype(np.int64)
        iphi = np.where(iphi >= nphi, iphi - nphi, iphi)
        return np.where(inside, self.offset[ring] + iphi, -1)

    def ring(self, tower: np.ndarray) -> np.ndarray:
        return self.tower_ring[tower]

    def center(self, tower: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ring = self.ring(tower)
        nphi = self.nphi[ring]
        iphi = tower - self.offset[ring]
        return self.eta_center[ring], -np.pi + (iphi + 0.5) * 2.0 * np.pi / nphi


@functools.lru_cache(maxsize=8)
def _grid(regions: tuple[tuple[float, float, int, int], ...]) -> TowerGrid:
    pos_edges: list[float] = [0.0]
    pos_nphi: list[int] = []
    for lo, hi, rings, nphi in regions:
        if abs(pos_edges[-1] - lo) > 1e-9:
            raise ValueError(f"tower_regions must be contiguous from |eta| = 0: {regions}")
        pos_edges += list(np.linspace(lo, hi, int(rings) + 1)[1:])
        pos_nphi += [int(nphi)] * int(rings)
    pe = np.array(pos_edges)
    edges = np.concatenate([-pe[::-1], pe[1:]])
    nphi = np.array(pos_nphi[::-1] + pos_nphi, dtype=np.int64)
    offset = np.concatenate([[0], np.cumsum(nphi)[:-1]])
    n_bins = int(np.ceil((edges[-1] - edges[0]) * _LUT_SCALE)) + 1
    lut = np.searchsorted(edges, edges[0] + np.arange(n_bins) / _LUT_SCALE, side="right") - 1
    lut = np.clip(lut, 0, len(nphi) - 1)
    if np.min(np.diff(edges)) <= 1.0 / _LUT_SCALE:
        raise ValueError(f"tower rings narrower than {1.0 / _LUT_SCALE} in eta are not supported: {regions}")
    tower_ring = np.repeat(np.arange(len(nphi)), nphi)
    return TowerGrid(edges=edges, nphi=nphi, offset=offset, n_towers=int(nphi.sum()), lut=lut, tower_ring=tower_ring)


@dataclass
class Towers:
    """Towers with a signal, sorted by ``key = evt * n_towers + tower``.

    ``em``/``had`` are the EM-scale section signals after noise and zero
    suppression; ``eta_em``/``phi_em`` the signal-weighted centroid of the EM
    showers, ``eta_had``/``phi_had`` the tower centre; ``lead_*`` the index (into the deposits given to
    :func:`build_towers`) of the largest contributor, -1 for noise only.
    ``index`` maps every key of the sub-chunk to its tower (-1: no signal).
    """

    key: np.ndarray
    evt: np.ndarray
    tower: np.ndarray
    em: np.ndarray
    had: np.ndarray
    noise_em: np.ndarray
    noise_had: np.ndarray
    eta_em: np.ndarray
    phi_em: np.ndarray
    eta_had: np.ndarray
    phi_had: np.ndarray
    lead_em: np.ndarray
    lead_had: np.ndarray
    index: np.ndarray

    def __len__(self) -> int:
        return len(self.key)

    def find(self, key: np.ndarray) -> np.ndarray:
        """Index of each key among the towers, -1 where that tower has no signal (or key < 0)."""
        ok = key >= 0
        out = np.full(len(key), -1, dtype=np.int64)
        out[ok] = self.index[key[ok]]
        return out


def _leader(group: np.ndarray, weights: np.ndarray, n_groups: int) -> np.ndarray:
    """Entry with the largest positive weight of each group (-1 if none)."""
    gmax = np.zeros(n_groups)
    np.maximum.at(gmax, group, weights)
    out = np.full(n_groups, -1, dtype=np.int64)
    hit = np.flatnonzero((weights > 0) & (weights == gmax[group]))
    out[group[hit[::-1]]] = hit[::-1]  # the first entry wins among equal maxima
    return out


def build_towers(
    evt: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    em: np.ndarray,
    had: np.ndarray,
    n_events: int,
    tune: Tune,
    rng: np.random.Generator,
) -> Towers:
    """Sum deposits (EM-scale section signals at calorimeter position eta, phi) per (event, tower).

    Adds per-tower electronic noise, noise-only towers and the Delphes-style
    constant term per tower (``em_constant``, ``had_constant``: calibration
    non-uniformity is a property of the tower, not of the particle), applies
    the zero-suppression threshold.
    """
    grid = TowerGrid.from_tune(tune)
    n_keys = n_events * grid.n_towers
    tower = grid.locate(eta, phi)
    real = np.flatnonzero(tower >= 0)
    key = evt[real].astype(np.int64) * grid.n_towers + tower[real]

    # noise-only towers: Poisson count per section, uniform position, energy from the Gaussian tail above threshold
    nsig = tune.tower_threshold_nsigma
    p_tail = float(ndtr(-nsig))
    fake_key, fake_z = [], []
    for _section in range(2):
        count = int(rng.poisson(n_keys * p_tail))
        fake_key.append(rng.integers(0, n_keys, count))
        fake_z.append(ndtri(1.0 - rng.random(count) * p_tail))  # standard normal above nsig

    occupied = np.zeros(n_keys, dtype=bool)
    occupied[key] = True
    has_real_dense = occupied.copy()
    occupied[fake_key[0]] = True
    occupied[fake_key[1]] = True
    ukey = np.flatnonzero(occupied)
    n_t = len(ukey)
    dense = np.full(n_keys, -1, dtype=np.int64)
    dense[ukey] = np.arange(n_t)
    group = dense[key]
    utower = ukey % grid.n_towers
    ring = grid.ring(utower)
    t_eta = grid.eta_center[ring]
    t_phi = -np.pi + (utower - grid.offset[ring] + 0.5) * 2.0 * np.pi / grid.nphi[ring]
    w_em, w_had = em[real], had[real]
    e_em = np.bincount(group, weights=w_em, minlength=n_t)
    e_had = np.bincount(group, weights=w_had, minlength=n_t)

    # EM section: signal-weighted centroid (fine-grained EM cells resolve positions within a tower);
    # HAD section: the tower centre (a hadronic tower does not resolve positions inside it)
    dphi = phi[real] - t_phi[group]
    dphi = np.where(dphi > np.pi, dphi - 2 * np.pi, np.where(dphi < -np.pi, dphi + 2 * np.pi, dphi))
    good = e_em > 0
    norm = np.where(good, e_em, 1.0)
    eta_em = np.where(good, np.bincount(group, weights=w_em * eta[real], minlength=n_t) / norm, t_eta)
    phi_em = t_phi + np.bincount(group, weights=w_em * dphi, minlength=n_t) / norm
    phi_em = np.where(phi_em > np.pi, phi_em - 2 * np.pi, np.where(phi_em < -np.pi, phi_em + 2 * np.pi, phi_em))
    lead_em = _leader(group, w_em, n_t)
    lead_had = _leader(group, w_had, n_t)
    lead_em = np.where(lead_em >= 0, real[np.maximum(lead_em, 0)], -1) if len(real) else lead_em
    lead_had = np.where(lead_had >= 0, real[np.maximum(lead_had, 0)], -1) if len(real) else lead_had

    # per-tower constant term and electronic noise; noise-only towers hold their tail value
    forward = np.abs(t_eta) > TOWER_FORWARD_ETA
    factor = np.where(forward, tune.tower_noise_forward_factor, 1.0)
    sig_em = tune.tower_noise_em * factor
    sig_had = tune.tower_noise_had * factor
    has_real = has_real_dense[ukey]
    z = rng.standard_normal((2, n_t))
    e_em = e_em + np.sqrt((tune.em_constant * e_em) ** 2 + np.where(has_real, sig_em**2, 0.0)) * z[0]
    e_had = e_had + np.sqrt((tune.had_constant * e_had) ** 2 + np.where(has_real, sig_had**2, 0.0)) * z[1]
    for section, total, sig in ((0, e_em, sig_em), (1, e_had, sig_had)):
        fk = dense[fake_key[section]]
        only_noise = ~has_real[fk]
        np.add.at(total, fk[only_noise], (fake_z[section] * sig[fk])[only_noise])
    e_em = np.where(e_em > nsig * sig_em, e_em, 0.0)
    e_had = np.where(e_had > nsig * sig_had, e_had, 0.0)

    keep = (e_em > 0) | (e_had > 0)
    kept = np.flatnonzero(keep)
    index = np.full(n_keys, -1, dtype=np.int64)
    index[ukey[kept]] = np.arange(len(kept))
    towers = Towers(
        key=ukey[kept],
        evt=ukey[kept] // grid.n_towers,
        tower=utower[kept],
        em=e_em[kept],
        had=e_had[kept],
        noise_em=sig_em[kept],
        noise_had=sig_had[kept],
        eta_em=eta_em[kept],
        phi_em=phi_em[kept],
        eta_had=t_eta[kept],
        phi_had=t_phi[kept],
        lead_em=lead_em[kept],
        lead_had=lead_had[kept],
        index=index,
    )
    return towers


def lateral_split(
    eta: np.ndarray, phi: np.ndarray, sigma: float | np.ndarray, grid: TowerGrid
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Share a shower between its tower and the three nearest neighbours (Gaussian lateral profile).

    Returns (eta, phi, fraction), each of shape (4, n): the shower's own
    position with the contained fraction, then points just across the nearest
    eta boundary, the nearest phi boundary and the corner.
    """
    ring = np.clip(np.searchsorted(grid.edges, eta, side="right") - 1, 0, len(grid.nphi) - 1)
    lo, hi = grid.edges[ring], grid.edges[ring + 1]
    up_eta = (hi - eta) < (eta - lo)
    d_eta = np.where(up_eta, hi - eta, eta - lo)
    width = 2.0 * np.pi / grid.nphi[ring]
    x = (phi + np.pi) % width
    up_phi = (width - x) < x
    d_phi = np.where(up_phi, width - x, x)
    f_eta = ndtr(-d_eta / sigma)
    f_phi = ndtr(-d_phi / sigma)
    eps = 1e-4
    eta_out = np.where(up_eta, hi + eps, lo - eps)
    phi_out = np.where(up_phi, phi + d_phi + eps, phi - d_phi - eps)
    phi_out = (phi_out + np.pi) % (2 * np.pi) - np.pi
    etas = np.stack([eta, eta_out, eta, eta_out])
    phis = np.stack([phi, phi, phi_out, phi_out])
    frac = np.stack([(1 - f_eta) * (1 - f_phi), f_eta * (1 - f_phi), (1 - f_eta) * f_phi, f_eta * f_phi])
    return etas, phis, frac
