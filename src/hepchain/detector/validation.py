"""Detector validation: response, resolution, efficiencies and pulls of the fast simulation.

Every number is measured on NanoAOD files of dedicated samples (roles) and
compared with an expectation band taken from a published detector figure (or,
for the pseudo-data tune, from the shift injected in :mod:`.tune`).  The
output, ``results/detector/validation.json``, holds for each check::

    {"value": x, "error": dx, "expected": [lo, hi], "source": "...", "definition": "...", "pass": bool}

grouped by object, plus the binned curves the figures draw.

Roles (``inputs`` maps role -> {tune: [files]}):

``dijet``    Pythia HardQCD, pTHatMin ~ 1 TeV, mu = 20 (jets, seed-002 asymmetry)
``zee``      Z -> ee, mu = 20 (electrons, BW (x) CB peak of seed 004, cell images)
``ztautau``  Z -> tau tau, inclusive tau decays, mu = 20 (hadronic taus)
``wmunu``    W -> mu nu at low pile-up, mu ~ 2 (muons, MET, hadronic recoil of seed 000)
``ttbar``    ttbar with W -> e/mu, mu = 20 (jets, muons, MET, taus)

Estimators, the same for every object:

- *core fit*: iterative unbinned maximum-likelihood fit of a Gaussian
  truncated to [mu - 2 sigma, mu + 2 sigma] (iminuit), the window re-centred
  on the fitted mu, sigma until it is stable; starts from the median and
  (P75 - P25)/1.349.  Its mean is the response, its width the resolution;
  errors are the fit's (HESSE) errors.  The truncated likelihood makes the fit
  unbiased for Gaussian data whatever the window.
- *eIQR*: (P75 - P25)/1.349, stored next to the core width in every bin
  (the seed-004 figure of merit).
- Relative resolutions are sigma/mu of pT_reco/pT_true (width relative to the
  response, the JER convention of ATLAS and CMS).

Pass rule: a check passes when [value - 2 error, value + 2 error] overlaps the
expected band (statistical compatibility at 2 sigma) and its error is at most
half the band width; a check with a larger error is marked inconclusive and
does not pass.

Every branch a check needs is read only where present: a missing branch, or a
missing role, gives a skip entry naming what is missing (``{"skipped": reason}``
in place, and a line in the top-level ``skipped`` list).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

SCHEMA = "hepchain.detector.validation/1"
NSIGMA_CORE = 2.0
MIN_ENTRIES = 25  # below this a bin is not fitted
M_Z = 91.1876  # GeV, PDG
GAMMA_Z = 2.4952  # GeV, PDG
ZPEAK_WINDOW = (75.0, 105.0)
MEDIUM_WP = 16  # bit of idDeepTau2017v2p1VSjet for the Medium working point
PASS_RULE = (
    "pass when [value - 2 error, value + 2 error] overlaps the expected band and the error is at most half the band width "
    "(a check with a larger error is inconclusive: conclusive = false, pass = false)"
)

# Jet energy composition of CMS particle-flow jets (charged hadrons ~65%, photons ~25%, neutral hadrons ~10%;
# CMS, JINST 12 (2017) P10003, jet energy fractions): weights of the injected EM / hadronic shifts in jets.
_PF_PHOTON_FRACTION = 0.25
_PF_NEUTRAL_HADRON_FRACTION = 0.10

# ----------------------------------------------------------------------------------------------------------- sources

SRC = {
    "atlas_jer": "ATLAS, EPJC 81 (2021) 689 (arXiv:2007.02645), abstract and in-situ JER combination: relative JER "
    "(24 +- 1.5)% at 20 GeV and (6 +- 0.5)% at 300 GeV",
    "cms_jer_8tev": "CMS, JINST 12 (2017) P02014 (arXiv:1607.03663), JER vs pT in |eta| < 1.3: about 5% at 1 TeV (8 TeV)",
    "seed002": "seed 002 (in-situ JER from the dijet asymmetry), 'Gaussian fit of histogram sigma = 0.099' at "
    "1.1 <= pT_avg < 2.6 TeV; relation sigma(pT)/pT = sigma_A/sqrt(2) from ATLAS EPJC 81 (2021) 689",
    "atlas_insitu": "ATLAS, EPJC 73 (2013) 2306 (arXiv:1210.6210): in-situ (dijet balance) and MC-truth JER agree within "
    "~10% once the particle-level imbalance is subtracted",
    "seed004_zee": "seed 004, Z->ee BW(x)CB fit: sigma_CB = 2.393 +- 0.01 GeV (ATLAS calibration, MC) and "
    "2.271 +- 0.019 GeV (data); ATLAS electron calibration JINST 14 (2019) P03017 (arXiv:1812.03848)",
    "em_stochastic": "ATLAS LAr EM barrel module in an electron test beam, NIM A 568 (2006) 601 (physics/0608012): "
    "sigma/E = 10.1%/sqrt(E) (+) 0.17% after noise subtraction (the Delphes ATLAS card of shared/PHYSICS.md); design "
    "10%/sqrt(E) (+) 0.7% (ATLAS, JINST 3 (2008) S08003)",
    "cms_muon": "CMS, JINST 7 (2012) P10002 (arXiv:1206.4071), abstract: pT resolution 1% to 6% depending on eta for "
    "pT < 100 GeV (1-2% in the barrel); reconstruction + identification efficiency above 95% for |eta| < 2.4",
    "cms_met": "CMS JME-17-001, JINST 14 (2019) P07004, resolution of u_par, u_perp vs scalar pT sum fitted as "
    "sqrt(sigma_c^2 + sigma_s^2 SumET), and ATLAS EPJC 72 (2012) 1844 (arXiv:1108.5602) sigma = k sqrt(SumET): "
    "stochastic coefficient about 0.5-0.7 sqrt(GeV) per component (values recalled; the search tool gave only the "
    "abstracts; check against Table 3 of JME-17-001)",
    "cms_metsig": "CMS JME-17-001, JINST 14 (2019) P07004, sect. 8: with the per-event covariance, the MET "
    "significance follows a chi^2 with 2 degrees of freedom for events without genuine MET (unit pulls)",
    "atlas_tkmet": "ATLAS, EPJC 78 (2018) 903 (arXiv:1802.08168): track-based missing pT lacks the neutral component "
    "and under-estimates the true missing pT in events with jets (linearity well below 1) (recalled)",
    "atlas_recoil": "ATLAS W mass, EPJC 78 (2018) 110 (arXiv:1701.07240), recoil calibration, and the seed-000 "
    "low pile-up recoil: u_par response below 1 at low pT(W) rising with pT(W); sigma(u_perp) of a few GeV at "
    "mu ~ 2 (values recalled, not checked against the figures)",
    "cms_deeptau_dm": "CMS, JINST 17 (2022) P07023 (arXiv:2201.08458), Fig. 1: decay-mode confusion matrix in Z->tau tau, "
    "pT > 20 GeV, |eta| < 2.3 (diagonal fractions recalled)",
    "cms_deeptau_eff": "CMS, JINST 17 (2022) P07023 (arXiv:2201.08458): DeepTau v2.1 Medium WP vs jets, genuine tau_h "
    "efficiency ~60-75% for jet misidentification of ~0.2-2% of tau_h candidates from jets (recalled)",
    "cms_tau_scale": "CMS TAU-16-003, JINST 13 (2018) P10005: tau_h energy response within a few % of 1 per decay mode; "
    "pT resolution better for h+- (track) than for modes with pi0 (recalled)",
    "gp_layers": "Grindhammer-Peters longitudinal profile (hep-ex/0001020; shared/PHYSICS.md) integrated over the ATLAS "
    "EM barrel layer depths of PHYSICS.md (strips 4.3 X0, middle 16 X0) for a 40 GeV electron with ~2 X0 upstream: "
    "presampler ~1-5%, strips ~20%, middle ~75%, back ~2%; bands widened for material and sampling corrections",
    "injected": "shift injected in hepchain.detector.tune.PSEUDODATA (closure of the pseudo-data tune)",
    "internal": "internal consistency of the ntuple (no published figure)",
}

# ------------------------------------------------------------------------------------------------------ estimators


@dataclass(frozen=True)
class CoreFit:
    """Result of :func:`core_gauss_fit`."""

    mu: float
    sigma: float
    mu_err: float
    sigma_err: float
    n: int
    n_core: int
    iqr_sigma: float


def iqr_sigma(x: np.ndarray) -> float:
    """eIQR = (P75 - P25)/1.349 (the seed-004 effective width)."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 2:
        return math.nan
    p25, p75 = np.percentile(x, [25.0, 75.0])
    return float((p75 - p25) / 1.349)


def _truncated_gauss_fit(x: np.ndarray, lo: float, hi: float, mu0: float, s0: float) -> tuple[float, float, float, float]:
    """Unbinned ML fit of a Gaussian truncated to [lo, hi]; returns mu, sigma and their HESSE errors."""
    from iminuit import Minuit
    from scipy.special import ndtr

    n = len(x)

    def nll(mu: float, sigma: float) -> float:
        z = (x - mu) / sigma
        norm = ndtr((hi - mu) / sigma) - ndtr((lo - mu) / sigma)
        return float(0.5 * np.dot(z, z) + n * math.log(sigma) + n * math.log(max(norm, 1e-300)))

    m = Minuit(nll, mu=mu0, sigma=s0)
    m.errordef = Minuit.LIKELIHOOD
    m.limits["sigma"] = (s0 * 1e-3, s0 * 1e3)
    m.limits["mu"] = (lo - (hi - lo), hi + (hi - lo))
    m.migrad()
    m.hesse()
    return float(m.values["mu"]), float(m.values["sigma"]), float(m.errors["mu"]), float(m.errors["sigma"])


def core_gauss_fit(x: np.ndarray, nsigma: float = NSIGMA_CORE, max_iter: int = 12, tol: float = 1e-3) -> CoreFit:
    """Iterative 2-sigma truncated-Gaussian fit of the core of ``x`` (see the module docstring).

    With fewer than :data:`MIN_ENTRIES` values the median and eIQR are returned
    with their large-sample errors for Gaussian data (1.2533 sigma/sqrt(n) and
    1.1664 sigma/sqrt(n)).
    """
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    n = len(x)
    width_iqr = iqr_sigma(x)
    if n == 0:
        return CoreFit(math.nan, math.nan, math.nan, math.nan, 0, 0, math.nan)
    mu = float(np.median(x))
    sigma = width_iqr if width_iqr > 0 else float(np.std(x))
    if n < MIN_ENTRIES or not sigma > 0:
        err = sigma / math.sqrt(max(n, 1))
        return CoreFit(mu, sigma, 1.2533 * err, 1.1664 * err, n, n, width_iqr)
    mu_err = sigma_err = math.nan
    n_core = n
    for _ in range(max_iter):
        lo, hi = mu - nsigma * sigma, mu + nsigma * sigma
        core = x[(x >= lo) & (x <= hi)]
        n_core = len(core)
        if n_core < MIN_ENTRIES:
            break
        new_mu, new_sigma, mu_err, sigma_err = _truncated_gauss_fit(core, lo, hi, mu, sigma)
        converged = abs(new_mu - mu) < tol * sigma and abs(new_sigma - sigma) < tol * sigma
        mu, sigma = new_mu, new_sigma
        if converged:
            break
    if not math.isfinite(mu_err):
        mu_err, sigma_err = 1.2533 * sigma / math.sqrt(n), 1.1664 * sigma / math.sqrt(n)
    return CoreFit(mu, sigma, mu_err, sigma_err, n, n_core, width_iqr)


def relative_resolution(fit: CoreFit) -> tuple[float, float]:
    """sigma/mu of a response fit with its propagated error (mu and sigma errors taken as uncorrelated)."""
    if not (fit.mu and math.isfinite(fit.mu)):
        return math.nan, math.nan
    r = fit.sigma / fit.mu
    return r, abs(r) * math.hypot(fit.sigma_err / fit.sigma if fit.sigma else 0.0, fit.mu_err / fit.mu)


def binned_response(
    x: np.ndarray, ratio: np.ndarray, edges: Sequence[float], x_label: str, *, relative: bool = True
) -> dict[str, Any]:
    """Core fit of ``ratio`` in bins of ``x``: response (core mean) and resolution (core width, relative by default).

    Returns the curve as lists (bin edges, entries, mean x, response, resolution,
    eIQR, errors), bins with fewer than :data:`MIN_ENTRIES` entries as NaN.
    """
    x = np.asarray(x, dtype=np.float64)
    ratio = np.asarray(ratio, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    which = np.digitize(x, edges) - 1
    nb = len(edges) - 1
    out: dict[str, list[float]] = {k: [] for k in ("n", "x_mean", "response", "response_err", "resolution", "resolution_err", "eiqr")}
    for b in range(nb):
        sel = which == b
        vals = ratio[sel]
        out["n"].append(int(sel.sum()))
        out["x_mean"].append(float(x[sel].mean()) if sel.any() else math.nan)
        if len(vals) < MIN_ENTRIES:
            for k in ("response", "response_err", "resolution", "resolution_err", "eiqr"):
                out[k].append(math.nan)
            continue
        fit = core_gauss_fit(vals)
        if relative:
            res, res_err = relative_resolution(fit)
            eiqr = fit.iqr_sigma / fit.mu
        else:
            res, res_err, eiqr = fit.sigma, fit.sigma_err, fit.iqr_sigma
        out["response"].append(fit.mu)
        out["response_err"].append(fit.mu_err)
        out["resolution"].append(res)
        out["resolution_err"].append(res_err)
        out["eiqr"].append(eiqr)
    return {"x": x_label, "edges": edges.tolist(), **out}


def fit_energy_resolution(energy: np.ndarray, resolution: np.ndarray, error: np.ndarray, c_fixed: float | None = None) -> dict[str, float]:
    """Least-squares fit of sigma(E)/E = a/sqrt(E) (+) b (+) c/E to binned relative resolutions (E in GeV).

    With ``c_fixed`` the noise term is fixed (as test-beam fits fix it from
    pedestal runs); over the Z->ee energy range a free c is degenerate with a.
    """
    from iminuit import Minuit
    from iminuit.cost import LeastSquares

    ok = np.isfinite(energy) & np.isfinite(resolution) & np.isfinite(error) & (error > 0)
    e, r, dr = energy[ok], resolution[ok], error[ok]
    if len(e) < 3:
        return {k: math.nan for k in ("a", "a_err", "b", "b_err", "c", "c_err", "chi2")} | {"ndof": 0}

    def model(x: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
        return np.sqrt(a * a / x + b * b + (c / x) ** 2)

    m = Minuit(LeastSquares(e, r, dr, model), a=0.10, b=0.005, c=0.3 if c_fixed is None else c_fixed)
    m.limits["a"] = (0.0, 1.0)
    m.limits["b"] = (0.0, 0.2)
    m.limits["c"] = (0.0, 10.0)
    if c_fixed is not None:
        m.fixed["c"] = True
    m.migrad()
    m.hesse()
    return {
        "a": float(m.values["a"]), "a_err": float(m.errors["a"]), "b": float(m.values["b"]), "b_err": float(m.errors["b"]),
        "c": float(m.values["c"]), "c_err": 0.0 if c_fixed is not None else float(m.errors["c"]), "chi2": float(m.fval),
        "ndof": int(max(len(e) - (2 if c_fixed is not None else 3), 0)),
    }


def fit_sqrt_sumet(sumet: np.ndarray, sigma: np.ndarray, error: np.ndarray) -> dict[str, float]:
    """Least-squares fit of sigma = sqrt(a^2 + b^2 SumET) (sigma_c (+) sigma_s sqrt(SumET) of CMS JME-17-001)."""
    from iminuit import Minuit
    from iminuit.cost import LeastSquares

    ok = np.isfinite(sumet) & np.isfinite(sigma) & np.isfinite(error) & (error > 0)
    s, y, dy = sumet[ok], sigma[ok], error[ok]
    if len(s) < 2:
        return {k: math.nan for k in ("a", "a_err", "b", "b_err", "chi2")} | {"ndof": 0}

    def model(x: np.ndarray, a: float, b: float) -> np.ndarray:
        return np.sqrt(a * a + b * b * x)

    b0 = float(np.median(y / np.sqrt(np.maximum(s, 1.0)))) if len(s) else 0.5
    m = Minuit(LeastSquares(s, y, dy, model), a=1.0, b=b0)
    m.limits["a"] = (0.0, 100.0)
    m.limits["b"] = (0.0, 10.0)
    m.migrad()
    m.hesse()
    return {"a": float(m.values["a"]), "a_err": float(m.errors["a"]), "b": float(m.values["b"]), "b_err": float(m.errors["b"]),
            "chi2": float(m.fval), "ndof": int(max(len(s) - 2, 0))}


# ---------------------------------------------------------------------------------------- Breit-Wigner (x) Crystal Ball


def crystal_ball(t: np.ndarray, alpha: float, n: float) -> np.ndarray:
    """Unnormalised Crystal Ball in the standardised variable t = (x - mean)/sigma, power-law tail below -alpha."""
    t = np.asarray(t, dtype=np.float64)
    a = abs(alpha)
    out = np.exp(-0.5 * t * t)
    tail = t < -a
    if tail.any():
        log_a = n * math.log(n / a) - 0.5 * a * a
        b = n / a - a
        out[tail] = np.exp(log_a - n * np.log(b - t[tail]))
    return out


def _bw_cb_grid(dm: float, sigma: float, alpha: float, n: float, grid: np.ndarray) -> np.ndarray:
    """BW(m_Z, Gamma_Z) convolved with CB(dm, sigma, alpha, n), evaluated on an equally spaced ``grid`` (unnormalised)."""
    from scipy.signal import fftconvolve

    h = grid[1] - grid[0]
    half = math.ceil((12.0 * sigma + abs(dm) + 30.0) / h)
    t = np.arange(-half, half + 1) * h
    kernel = crystal_ball((t - dm) / sigma, alpha, n)
    bw = 1.0 / ((grid - M_Z) ** 2 + 0.25 * GAMMA_Z**2)  # non-relativistic Breit-Wigner (RooBreitWigner)
    return np.maximum(fftconvolve(bw, kernel, mode="same"), 1e-300)


def bw_cb_pdf(m: np.ndarray, dm: float, sigma: float, alpha: float, n: float, window: tuple[float, float] = ZPEAK_WINDOW) -> np.ndarray:
    """BW (x) CB probability density in ``window`` (normalised there), evaluated at ``m``."""
    lo, hi = window
    grid = np.arange(lo - 40.0, hi + 40.0, 0.02)
    conv = _bw_cb_grid(dm, sigma, alpha, n, grid)
    inside = (grid >= lo) & (grid <= hi)
    norm = np.trapezoid(conv[inside], grid[inside])
    return np.interp(m, grid, conv) / norm


def fit_bw_cb(m: np.ndarray, window: tuple[float, float] = ZPEAK_WINDOW) -> dict[str, Any]:
    """Unbinned ML fit of a BW (m_Z, Gamma_Z fixed to PDG) (x) Crystal Ball to di-electron masses in ``window``.

    Free parameters: the CB mean shift ``dm`` (the peak position is m_Z + dm),
    the CB width ``sigma_cb`` (the seed-004 figure of merit), the tail
    parameters ``alpha`` and ``n_tail``.  Returns values, HESSE errors, and the
    fitted curve (normalised to the number of events per GeV) for the figure.
    """
    from iminuit import Minuit

    lo, hi = window
    x = np.asarray(m, dtype=np.float64)
    x = x[(x >= lo) & (x <= hi)]
    n_ev = len(x)
    if n_ev < MIN_ENTRIES:
        return {"n": n_ev, "status": "too few events"}
    grid = np.arange(lo - 40.0, hi + 40.0, 0.02)
    inside = (grid >= lo) & (grid <= hi)

    def nll(dm: float, sigma_cb: float, alpha: float, n: float) -> float:
        conv = _bw_cb_grid(dm, sigma_cb, alpha, n, grid)
        norm = np.trapezoid(conv[inside], grid[inside])
        return float(-np.sum(np.log(np.interp(x, grid, conv) / norm)))

    core = x[np.abs(x - np.median(x)) < 6.0]
    s0 = max(0.5, math.sqrt(max(iqr_sigma(core) ** 2 - (GAMMA_Z / 2.0) ** 2, 0.25)))
    mi = Minuit(nll, dm=float(np.median(core) - M_Z), sigma_cb=s0, alpha=1.2, n=5.0)
    mi.errordef = Minuit.LIKELIHOOD
    mi.limits["dm"] = (-10.0, 10.0)
    mi.limits["sigma_cb"] = (0.1, 10.0)
    mi.limits["alpha"] = (0.2, 5.0)
    mi.limits["n"] = (1.05, 50.0)
    mi.migrad()
    mi.hesse()
    names = {"dm": "dm", "sigma_cb": "sigma_cb", "alpha": "alpha", "n": "n_tail"}
    vals = {out: float(mi.values[k]) for k, out in names.items()}
    errs = {f"{out}_err": float(mi.errors[k]) for k, out in names.items()}
    xs = np.linspace(lo, hi, 151)
    curve = bw_cb_pdf(xs, vals["dm"], vals["sigma_cb"], vals["alpha"], vals["n_tail"], window) * n_ev
    return {
        "n": n_ev, "status": "ok" if mi.valid else "fit not converged", **vals, **errs,
        "peak": M_Z + vals["dm"], "window": list(window), "curve": {"x": xs.tolist(), "y_per_gev": curve.tolist()},
    }


# ----------------------------------------------------------------------------------------------------------- MET pulls


def met_pulls(rx: np.ndarray, ry: np.ndarray, cxx: np.ndarray, cxy: np.ndarray, cyy: np.ndarray) -> dict[str, np.ndarray]:
    """Pulls of a 2D residual r along the principal axes of its covariance V, and chi2 = r^T V^-1 r.

    Eigen-decomposition of the symmetric 2x2 V per event (vectorised):
    pull_k = (r . e_k)/sqrt(lambda_k).  For r drawn from V the pulls are unit
    Gaussians and chi2 follows a chi^2 with 2 degrees of freedom (mean 2).
    """
    cxx, cxy, cyy = (np.asarray(v, dtype=np.float64) for v in (cxx, cxy, cyy))
    tr_half = 0.5 * (cxx + cyy)
    disc = np.sqrt(np.maximum((0.5 * (cxx - cyy)) ** 2 + cxy**2, 0.0))
    lam1, lam2 = tr_half + disc, np.maximum(tr_half - disc, 1e-12)
    theta = 0.5 * np.arctan2(2.0 * cxy, cxx - cyy)  # direction of the major axis
    c, s = np.cos(theta), np.sin(theta)
    p1 = (rx * c + ry * s) / np.sqrt(lam1)
    p2 = (-rx * s + ry * c) / np.sqrt(lam2)
    det = np.maximum(cxx * cyy - cxy**2, 1e-12)
    chi2 = (cyy * rx * rx - 2.0 * cxy * rx * ry + cxx * ry * ry) / det
    return {"major": p1, "minor": p2, "chi2": chi2}


def dijet_asymmetry(pt1: np.ndarray, pt2: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A = (pT_ref - pT_probe)/pT_avg with reference and probe assigned at random (seed 002)."""
    swap = rng.random(len(pt1)) < 0.5
    ref = np.where(swap, pt2, pt1)
    probe = np.where(swap, pt1, pt2)
    return (ref - probe) / (0.5 * (ref + probe))


# ------------------------------------------------------------------------------------------------------- check entries


def check(value: float, error: float, expected: Sequence[float], source: str, definition: str, **extra: Any) -> dict[str, Any]:
    """One validation entry (see :data:`PASS_RULE`): compatible with the band at 2 sigma, and conclusive."""
    lo, hi = float(expected[0]), float(expected[1])
    err = float(error) if math.isfinite(error) else 0.0
    compatible = bool(math.isfinite(value)) and value + 2.0 * err >= lo and value - 2.0 * err <= hi
    conclusive = err <= 0.5 * (hi - lo)
    return {"value": float(value), "error": float(error), "expected": [lo, hi], "source": source, "definition": definition,
            "pass": compatible and conclusive, "conclusive": conclusive, **extra}


class Skips:
    """Collects skipped checks with their reasons."""

    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def __call__(self, name: str, reason: str) -> dict[str, str]:
        self.items.append({"check": name, "reason": reason})
        return {"skipped": reason}


# ------------------------------------------------------------------------------------------------------------- reading


@dataclass
class RoleData:
    """Branches of one role and tune, concatenated over files, with what was missing."""

    arrays: dict[str, ak.Array]
    missing: dict[str, str]  # branch -> file lacking it
    n_events: int
    files: list[str]

    def has(self, *branches: str) -> str | None:
        """None when every branch is there, else the reason naming the first missing branch and a file lacking it."""
        for b in branches:
            if b not in self.arrays:
                where = self.missing.get(b, "every file")
                return f"branch '{b}' missing from {where}"
        return None

    def __getitem__(self, key: str) -> ak.Array:
        return self.arrays[key]


def nominal_role(
    data: Mapping[str, Mapping[str, RoleData]], role: str, branches: Sequence[str], skip: Skips, where: str
) -> tuple[RoleData | None, dict[str, str] | None]:
    """The nominal-tune data of ``role`` if it holds ``branches``; else None and the skip entry saying why."""
    d = data.get(role, {}).get("nominal")
    if d is None:
        return None, skip(where, f"no {role} sample with the nominal tune given")
    reason = d.has(*branches)
    if reason:
        return None, skip(where, reason)
    return d, None


def read_role(files: Sequence[str], branches: Sequence[str]) -> RoleData:
    """Read ``branches`` (those present in every file) from the ``Events`` trees of ``files`` with uproot."""
    from ..nanoaod import open_events

    wanted = list(dict.fromkeys(branches))
    pieces: list[dict[str, ak.Array]] = []
    present_all: set[str] | None = None
    missing: dict[str, str] = {}
    trees = []
    for path in files:
        tree = open_events(str(path), "validate-detector")
        keys = set(tree.keys())
        for b in wanted:
            if b not in keys and b not in missing:
                missing[b] = str(path)
        present_all = keys if present_all is None else present_all & keys
        trees.append(tree)
    take = [b for b in wanted if present_all is not None and b in present_all]
    n_events = 0
    for tree in trees:
        n_events += int(tree.num_entries)
        if take:
            pieces.append(tree.arrays(take, library="ak", how=dict))
    arrays = {b: ak.concatenate([p[b] for p in pieces]) if len(pieces) > 1 else pieces[0][b] for b in take} if pieces else {}
    return RoleData(arrays=arrays, missing=missing, n_events=n_events, files=[str(f) for f in files])


def _np(a: Any) -> np.ndarray:
    return ak.to_numpy(ak.flatten(a)) if isinstance(a, ak.Array) and a.ndim > 1 else ak.to_numpy(a)


def _offsets(jagged: ak.Array) -> np.ndarray:
    counts = ak.to_numpy(ak.num(jagged, axis=1)).astype(np.int64)
    return np.concatenate([[0], np.cumsum(counts)])


def _evt(jagged: ak.Array) -> np.ndarray:
    counts = ak.to_numpy(ak.num(jagged, axis=1)).astype(np.int64)
    return np.repeat(np.arange(len(counts)), counts)


def gather(target: ak.Array, index: ak.Array) -> tuple[np.ndarray, np.ndarray]:
    """Flat values of jagged ``target`` at the per-event local ``index`` (jagged, -1 = none).

    Returns (values, valid) flat over the objects of ``index``; invalid entries
    (negative or out-of-range index) hold NaN.
    """
    idx = _np(index).astype(np.int64)
    evt = _evt(index)
    offs = _offsets(target)
    counts = np.diff(offs)
    valid = (idx >= 0) & (idx < counts[evt])
    flat = _np(target).astype(np.float64)
    out = np.full(len(idx), np.nan)
    out[valid] = flat[offs[evt[valid]] + idx[valid]]
    return out, valid


def _delta_phi(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a - b + np.pi) % (2.0 * np.pi) - np.pi


# ---------------------------------------------------------------------------------------------------------- electrons

ELE_PT_EDGES = [20, 30, 40, 50, 70, 100, 200]
ELE_ETA_EDGES = [0.0, 0.6, 1.0, 1.37, 1.52, 2.0, 2.47]
ELE_E_EDGES = [20, 25, 30, 35, 40, 45, 50, 60, 70, 85, 100, 150, 250, 500]
ELE_BRANCHES = [
    "Electron_pt", "Electron_eta", "Electron_phi", "Electron_charge", "Electron_genPartIdx", "Electron_genPartFlav",
    "GenPart_pt", "GenPart_eta", "GenPart_pdgId", "GenPart_status",
    "EleCell_electronIdx", "EleCell_layer", "EleCell_ieta", "EleCell_iphi", "EleCell_e", "EleCell_t",
    "Electron_f0", "Electron_r12", "Electron_eAcc",
]
CELL_BRANCHES = ("EleCell_electronIdx", "EleCell_layer", "EleCell_ieta", "EleCell_iphi", "EleCell_e", "EleCell_t")
LAYER_NAMES = ("presampler", "strips", "middle", "back")
LAYER_BANDS = {"presampler": (0.0, 0.10), "strips": (0.10, 0.40), "middle": (0.50, 0.85), "back": (0.0, 0.06)}


def matched_leptons(d: RoleData, coll: str, abs_id: int, prompt_only: bool) -> dict[str, np.ndarray]:
    """Reconstructed leptons of ``coll`` with their GenPart (via ``<coll>_genPartIdx``) of the same flavour.

    Only matches to a final-state (status 1) GenPart are kept, as NanoAOD's
    index points to the final-state lepton (after FSR); ``final_fraction`` is
    the fraction of matched leptons whose index does so.
    """
    idx = d[f"{coll}_genPartIdx"]
    gen_pt, ok = gather(d["GenPart_pt"], idx)
    gen_id, _ = gather(d["GenPart_pdgId"], idx)
    gen_eta, _ = gather(d["GenPart_eta"], idx)
    same = ok & (np.abs(gen_id) == abs_id)
    if "GenPart_status" in d.arrays:
        status, _ = gather(d["GenPart_status"], idx)
        final = same & (status == 1)
    else:
        final = same
    sel = final & (_np(d[f"{coll}_genPartFlav"]) == 1) if prompt_only and f"{coll}_genPartFlav" in d.arrays else final
    pt = _np(d[f"{coll}_pt"]).astype(np.float64)
    return {"pt": pt[sel], "gen_pt": gen_pt[sel], "gen_eta": gen_eta[sel], "eta": _np(d[f"{coll}_eta"])[sel].astype(np.float64),
            "n_matched": np.array(int(same.sum())), "n_final": np.array(int(final.sum()))}


def _final_state_check(m: dict[str, np.ndarray], coll: str) -> dict[str, Any]:
    n, k = int(m["n_matched"]), int(m["n_final"])
    f = k / max(n, 1)
    return check(f, math.sqrt(max(f * (1 - f), 1.0 / max(n, 1)) / max(n, 1)), (0.97, 1.0),
                 SRC["internal"] + f"; NanoAOD convention: {coll}_genPartIdx points to the final-state (status 1) lepton",
                 f"fraction of {coll} entries with a same-flavour GenPart match whose GenPart has status 1", n=n)


def _matched_electrons(d: RoleData) -> dict[str, np.ndarray]:
    return matched_leptons(d, "Electron", 11, prompt_only=True)


def _dielectron_mass(d: RoleData) -> np.ndarray:
    """Invariant mass of the two leading electrons (pT > 25 GeV, |eta| < 2.47) of opposite charge."""
    pt, eta, phi, q = (d[f"Electron_{k}"] for k in ("pt", "eta", "phi", "charge"))
    good = (pt > 25.0) & (abs(eta) < 2.47)
    pt, eta, phi, q = pt[good], eta[good], phi[good], q[good]
    two = ak.num(pt) >= 2
    pt, eta, phi, q = pt[two], eta[two], phi[two], q[two]
    os_ = ak.to_numpy(q[:, 0] * q[:, 1]) < 0
    p1, p2 = ak.to_numpy(pt[:, 0]).astype(np.float64), ak.to_numpy(pt[:, 1]).astype(np.float64)
    e1, e2 = ak.to_numpy(eta[:, 0]).astype(np.float64), ak.to_numpy(eta[:, 1]).astype(np.float64)
    f1, f2 = ak.to_numpy(phi[:, 0]).astype(np.float64), ak.to_numpy(phi[:, 1]).astype(np.float64)
    m2 = 2.0 * p1 * p2 * (np.cosh(e1 - e2) - np.cos(f1 - f2))
    return np.sqrt(np.maximum(m2, 0.0))[os_]


def electron_images(d: RoleData) -> dict[str, Any]:
    """Average cell image per layer and per-electron layer energy fractions from the EleCell collection.

    Cells carry (electronIdx, layer, ieta, iphi, e, t); the average image of a
    layer is the summed energy per (ieta, iphi) divided by the number of
    electrons with cells.  Layer fractions are E_layer / sum of the four layers
    per electron, averaged over electrons (error: standard error of the mean).
    """
    evt = _evt(d["EleCell_e"])
    ele = _np(d["EleCell_electronIdx"]).astype(np.int64)
    layer = _np(d["EleCell_layer"]).astype(np.int64)
    e = _np(d["EleCell_e"]).astype(np.float64)
    if len(e) == 0:
        return {"n_electrons": 0}
    key = evt * 1024 + ele  # one id per electron (fewer than 1024 electrons per event)
    uniq, eid = np.unique(key, return_inverse=True)
    n_ele = len(uniq)
    n_layers = max(int(layer.max()) + 1, 4)
    e_layer = np.zeros((n_ele, n_layers))
    np.add.at(e_layer, (eid, layer), e)
    total = e_layer.sum(axis=1)
    ok = total > 0
    frac = e_layer[ok] / total[ok, None]
    # the cells of one electron come in the fixed window order of hepchain.detector.calo_images.cell_layout
    # (layer, then local eta, then local phi): the position within the electron's block gives the pixel
    from .calo_images import cell_layout

    layout = cell_layout()
    images = {}
    if len(e) == n_ele * layout.n_cells:
        dense = e[np.argsort(eid, kind="stable")].reshape(n_ele, layout.n_cells).mean(axis=0)
        for lay in range(len(layout.offsets) - 1):
            block = layout.block(lay)
            shape = (int(layout.local_eta[block].max()) + 1, int(layout.local_phi[block].max()) + 1)
            images[LAYER_NAMES[lay] if lay < len(LAYER_NAMES) else f"layer{lay}"] = dense[block].reshape(shape).tolist()
    return {
        "n_electrons": int(n_ele),
        "layer_fraction": frac.mean(axis=0).tolist(),
        "layer_fraction_err": (frac.std(axis=0) / math.sqrt(max(len(frac), 1))).tolist(),
        "mean_layer_energy": e_layer.mean(axis=0).tolist(),
        "images": images,
        "per_electron_layer_energy": e_layer,  # dropped before writing (used for the scalar consistency check)
        "electron_key": uniq,
    }


TEST_BEAM_ENERGIES = (10.0, 20.0, 40.0, 80.0, 120.0, 180.0, 245.0)  # GeV: the range of the ATLAS barrel-module beam test


def beam_test_resolution(n_per_energy: int = 600, seed: int = 20060601, n_boot: int = 40) -> dict[str, Any]:
    """sigma(E)/E of the electron cluster measured as in a test beam: single electrons, no pile-up, noise subtracted.

    The ATLAS barrel-module test (NIM A 568 (2006) 601) fired electrons of
    10-245 GeV at a module and quoted a/sqrt(E) (+) b after subtracting the
    electronic noise measured from pedestals.  Here: ``n_per_energy`` electrons
    per energy of :data:`TEST_BEAM_ENERGIES`, |eta| uniform in 0.05-0.75 (the
    module's coverage), random sign and phi, vertex at the origin, the nominal
    tune's full cell simulation (upstream material, sampling, presampler,
    leakage, electronic noise) and the standard 3x7 cluster calibration; the
    noise term is the spread of the same cluster with nothing deposited.  The
    fit is :func:`~hepchain.detector.calo_images.fit_resolution` (eIQR widths);
    errors are the spread of ``n_boot`` bootstrap refits.
    """
    from .calo_images import cluster_noise, fire_electrons, fit_resolution
    from .tune import NOMINAL

    rng = np.random.default_rng(seed)
    energies = np.repeat(np.asarray(TEST_BEAM_ENERGIES), n_per_energy)
    eta = rng.uniform(0.05, 0.75, len(energies)) * np.where(rng.random(len(energies)) < 0.5, -1.0, 1.0)
    shot = fire_electrons(energies, eta, NOMINAL, np.random.default_rng(seed + 1), store_cells=False)
    noise = cluster_noise(energies, eta, NOMINAL, np.random.default_rng(seed + 2))
    e_reco = shot.scalars["energy"].astype(np.float64)
    a, b, c, widths = fit_resolution(energies, e_reco, noise)
    boot = np.empty((n_boot, 2))
    groups = [np.flatnonzero(energies == e) for e in TEST_BEAM_ENERGIES]
    for i in range(n_boot):
        idx = np.concatenate([rng.choice(g, len(g)) for g in groups])
        boot[i] = fit_resolution(energies[idx], e_reco[idx], noise)[:2]
    return {
        "a": a, "a_err": float(np.std(boot[:, 0])), "b": b, "b_err": float(np.std(boot[:, 1])), "noise_gev": c,
        "energies": list(TEST_BEAM_ENERGIES), "relative_widths": widths.tolist(), "n_per_energy": n_per_energy,
    }


def validate_electrons(data: Mapping[str, RoleData], skip: Skips) -> dict[str, Any]:
    """Electrons of the ``zee`` role: response, resolution, sigma(E)/E fit, Z peak, pseudo-data shifts, cells."""
    out: dict[str, Any] = {"checks": {}, "curves": {}, "zpeak": {}}
    chk = out["checks"]
    if "nominal" not in data:
        chk["all"] = skip("electrons", "no zee sample with the nominal tune given")
        return out
    fits: dict[str, dict[str, Any]] = {}
    for tune, d in data.items():
        reason = d.has("Electron_pt", "Electron_eta", "Electron_genPartIdx", "Electron_genPartFlav", "GenPart_pt", "GenPart_pdgId", "GenPart_eta")
        if reason:
            out["curves"][tune] = skip(f"electrons.curves.{tune}", reason)
        else:
            m = _matched_electrons(d)
            ratio = m["pt"] / m["gen_pt"]
            central = np.abs(m["gen_eta"]) < 1.37
            e_gen = m["gen_pt"] * np.cosh(m["gen_eta"])
            out["curves"][tune] = {
                "vs_pt": binned_response(m["gen_pt"][central], ratio[central], ELE_PT_EDGES, "pT_gen [GeV], |eta| < 1.37"),
                "vs_abseta": binned_response(np.abs(m["gen_eta"])[m["gen_pt"] > 25], ratio[m["gen_pt"] > 25], ELE_ETA_EDGES, "|eta_gen|, pT_gen > 25 GeV"),
                "vs_energy": binned_response(e_gen[central], ratio[central], ELE_E_EDGES, "E_gen [GeV], |eta| < 1.37"),
            }
        reason = d.has("Electron_pt", "Electron_eta", "Electron_phi", "Electron_charge")
        if reason:
            out["zpeak"][tune] = skip(f"electrons.zpeak.{tune}", reason)
        else:
            mass = _dielectron_mass(d)
            fits[tune] = fit_bw_cb(mass)
            counts, edges = np.histogram(mass, bins=60, range=ZPEAK_WINDOW)
            out["zpeak"][tune] = {**fits[tune], "hist": {"edges": edges.tolist(), "counts": counts.tolist()}}

    nominal_curves = out["curves"].get("nominal", {})
    if "vs_pt" in nominal_curves:
        m = _matched_electrons(data["nominal"])
        sel = (np.abs(m["gen_eta"]) < 1.37) & (m["gen_pt"] > 25) & (m["gen_pt"] < 100)
        fit = core_gauss_fit(m["pt"][sel] / m["gen_pt"][sel])
        res, res_err = relative_resolution(fit)
        chk["genpart_match_final_state"] = _final_state_check(m, "Electron")
        chk["response_barrel"] = check(
            fit.mu, fit.mu_err, (0.98, 1.02), SRC["seed004_zee"] + "; Z peak position within ~1% of m_Z after calibration",
            "core mean of pT_reco/pT_gen, prompt electrons matched to GenPart, |eta_gen| < 1.37, 25 < pT_gen < 100 GeV",
        )
        chk["resolution_barrel"] = check(
            res, res_err, (0.01, 0.035), SRC["em_stochastic"] + ": 10%/sqrt(45 GeV) (+) 0.7% = 1.6%, up to ~3% with material",
            "core sigma/mu of pT_reco/pT_gen, prompt electrons, |eta_gen| < 1.37, 25 < pT_gen < 100 GeV",
        )
        ve = nominal_curves["vs_energy"]
        from .tune import NOMINAL

        e_args = (np.asarray(ve["x_mean"], float), np.asarray(ve["resolution"], float), np.asarray(ve["resolution_err"], float))
        efit = fit_energy_resolution(*e_args, c_fixed=NOMINAL.em_noise)
        out["energy_resolution_fit"] = efit
        out["energy_resolution_fit_free_noise"] = fit_energy_resolution(*e_args)
        # in situ (Z -> ee, pile-up, upstream material of the inner detector, the angular spread of Z electrons): an
        # effective stochastic term, larger than the calorimeter's own; reported, compared with the test beam below
        out["energy_resolution_fit"]["definition"] = (
            "a, b of sigma(E)/E = a/sqrt(E) (+) b (+) c/E fitted (least squares) to the core sigma/mu of E_reco/E_gen in bins "
            f"of E_gen, prompt Z -> ee electrons, |eta_gen| < 1.37, c fixed to Tune.em_noise = {NOMINAL.em_noise} GeV; an "
            "in-situ effective term (material, pile-up), not the calorimeter's stochastic term, which is checked with the test "
            "beam setup (stochastic_term)"
        )
    beam = beam_test_resolution()
    out["test_beam"] = beam
    chk["stochastic_term"] = check(
        beam["a"], beam["a_err"], (0.08, 0.13), SRC["em_stochastic"],
        "a of sigma(E)/E = a/sqrt(E) (+) b (+) c/E fitted to the eIQR width of E_cluster/E of single electrons fired as in the "
        f"ATLAS barrel-module beam test: {beam['n_per_energy']} per energy at {', '.join(f'{e:g}' for e in TEST_BEAM_ENERGIES)} "
        "GeV, |eta| < 0.75, no pile-up, full cell simulation and 3x7 cluster calibration; c = the noise of the same cluster "
        "with nothing deposited (noise subtraction, as the test beam does from pedestals)",
        constant_term=beam["b"], constant_term_err=beam["b_err"], noise_term_gev=beam["noise_gev"],
    )
    if fits.get("nominal", {}).get("status") == "ok":
        f = fits["nominal"]
        chk["zpeak_sigma_cb"] = check(
            f["sigma_cb"], f["sigma_cb_err"], (1.5, 3.0), SRC["seed004_zee"],
            f"sigma_CB of an unbinned BW(m_Z, Gamma_Z PDG) (x) CB fit in {ZPEAK_WINDOW[0]:.0f}-{ZPEAK_WINDOW[1]:.0f} GeV to the "
            "mass of the two leading opposite-charge electrons with pT > 25 GeV",
        )
        chk["zpeak_position"] = check(
            f["peak"], f["dm_err"], (M_Z - 1.0, M_Z + 1.0), SRC["seed004_zee"] + "; peak at m_Z within the ~0.5% ATLAS scale uncertainty",
            "m_Z + dm of the BW (x) CB fit (dm: CB mean)",
        )
    elif "nominal" in data:
        chk["zpeak_sigma_cb"] = skip("electrons.zpeak_sigma_cb", f"Z peak fit: {fits.get('nominal', {}).get('status', 'no fit')}")
    # pseudo-data vs nominal
    if "pseudodata" not in data:
        chk["pseudodata_scale_shift"] = skip("electrons.pseudodata", "no zee sample with the pseudodata tune given")
    elif fits.get("pseudodata", {}).get("status") == "ok" and fits.get("nominal", {}).get("status") == "ok":
        fn, fp = fits["nominal"], fits["pseudodata"]
        shift = fp["peak"] / fn["peak"] - 1.0
        shift_err = math.hypot(fp["dm_err"] / fp["peak"], fn["dm_err"] / fn["peak"])
        inj = injected_shifts()
        chk["pseudodata_scale_shift"] = check(
            shift, shift_err, (inj["em"] - 0.01, inj["em"] + 0.01), SRC["injected"] + f": EM scale ratio {inj['em']:+.4f} (more material: -0.2 to -0.7%)",
            "peak(pseudodata)/peak(nominal) - 1 from the BW (x) CB fits (same generated events)",
        )
        ratio = fp["sigma_cb"] / fn["sigma_cb"]
        ratio_err = ratio * math.hypot(fp["sigma_cb_err"] / fp["sigma_cb"], fn["sigma_cb_err"] / fn["sigma_cb"])
        r0 = inj["em_resolution_ratio"]
        chk["pseudodata_sigma_cb_ratio"] = check(
            ratio, ratio_err, (max(1.0, 0.75 * r0), 1.25 * r0),
            SRC["injected"] + f": sigma/E = (sampling (+) shower-depth term)/sqrt(E) (+) 0.65% at 45 GeV, "
            f"pseudodata/nominal = {r0:.3f}, +-25% for pile-up, noise and material",
            "sigma_CB(pseudodata)/sigma_CB(nominal) (errors treated as uncorrelated, hence conservative)",
        )
    if "pseudodata" in data and all(isinstance(out["curves"].get(t), dict) and "vs_pt" in out["curves"][t] for t in ("nominal", "pseudodata")):
        inj = injected_shifts()
        r0 = inj["em_resolution_ratio"]
        fits_m = {}
        for tune in ("nominal", "pseudodata"):
            mt = _matched_electrons(data[tune])
            sel = (np.abs(mt["gen_eta"]) < 1.37) & (mt["gen_pt"] > 25) & (mt["gen_pt"] < 100)
            fits_m[tune] = core_gauss_fit(mt["pt"][sel] / mt["gen_pt"][sel])
        fn_m, fp_m = fits_m["nominal"], fits_m["pseudodata"]
        chk["pseudodata_response_shift"] = check(
            fp_m.mu / fn_m.mu - 1.0, math.hypot(fp_m.mu_err / fp_m.mu, fn_m.mu_err / fn_m.mu), (inj["em"] - 0.01, inj["em"] + 0.01),
            SRC["injected"] + f": EM scale ratio {inj['em']:+.4f} (more material: -0.2 to -0.7%)",
            "core mean of pT_reco/pT_gen (pseudodata) / (nominal) - 1, prompt matched electrons, |eta_gen| < 1.37, 25 < pT_gen < 100 GeV",
        )
        rn, rn_err = relative_resolution(fn_m)
        rp, rp_err = relative_resolution(fp_m)
        chk["pseudodata_resolution_ratio"] = check(
            rp / rn, rp / rn * math.hypot(rp_err / rp, rn_err / rn), (max(1.0, 0.75 * r0), 1.25 * r0),
            SRC["injected"] + f": sigma/E = (sampling (+) shower-depth term)/sqrt(E) (+) 0.65% at 45 GeV, pseudodata/nominal = {r0:.3f}, +-25%",
            "core sigma/mu of pT_reco/pT_gen, pseudodata over nominal, prompt matched electrons, |eta_gen| < 1.37, 25 < pT_gen < 100 GeV",
        )
    # cell images and shower-shape scalars
    d = data["nominal"]
    reason = d.has(*CELL_BRANCHES)
    images: dict[str, Any] = {}
    if reason:
        out["images"] = skip("electrons.images", reason)
    else:
        images = electron_images(d)
        out["images"] = {k: v for k, v in images.items() if k not in ("per_electron_layer_energy", "electron_key")}
        if images.get("n_electrons", 0) > 0:
            for lay, name in enumerate(LAYER_NAMES):
                if lay < len(images["layer_fraction"]):
                    chk[f"layer_fraction_{name}"] = check(
                        images["layer_fraction"][lay], images["layer_fraction_err"][lay], LAYER_BANDS[name], SRC["gp_layers"],
                        f"mean over electrons of E({name})/E(4 layers) from the EleCell images",
                    )
    reason = d.has("Electron_f0", "Electron_r12", "Electron_eAcc", "Electron_genPartIdx", "GenPart_pt", "GenPart_eta")
    if reason:
        chk["shower_shapes"] = skip("electrons.shower_shapes", reason)
    else:
        f0 = _np(d["Electron_f0"]).astype(np.float64)
        r12 = _np(d["Electron_r12"]).astype(np.float64)
        eacc = _np(d["Electron_eAcc"]).astype(np.float64)
        gen_pt, ok = gather(d["GenPart_pt"], d["Electron_genPartIdx"])
        gen_eta, _ = gather(d["GenPart_eta"], d["Electron_genPartIdx"])
        fine = np.isfinite(r12) & np.isfinite(f0)
        if not fine.any():
            chk["shower_shapes"] = skip("electrons.shower_shapes", "no electron with finite Electron_f0 and Electron_r12")
            return out
        chk["mean_f0"] = check(float(np.mean(f0[fine])), float(np.std(f0[fine]) / math.sqrt(max(fine.sum(), 1))), (0.0, 0.10),
                               SRC["gp_layers"], "mean of Electron_f0 = E(presampler)/E_acc over all electrons")
        chk["mean_r12"] = check(float(np.median(r12[fine])), float(1.2533 * np.std(r12[fine]) / math.sqrt(max(fine.sum(), 1))),
                                (0.12, 0.6), SRC["gp_layers"] + ": strips/middle ~ 0.2/0.75",
                                "median of Electron_r12 = E(strips)/E(middle) over all electrons")
        e_gen = gen_pt * np.cosh(gen_eta)
        good = ok & (gen_pt > 25) & (eacc > 0)
        fit = core_gauss_fit(eacc[good] / e_gen[good])
        if good.sum() < MIN_ENTRIES:
            chk["eacc_response"] = skip("electrons.eacc_response", f"{int(good.sum())} matched electrons with pT_gen > 25 GeV")
        else:
            chk["eacc_response"] = check(fit.mu, fit.mu_err, (0.85, 1.02), SRC["gp_layers"] + ": E_acc (layers 1-3) misses the presampler "
                                         "share and the upstream loss", "core mean of Electron_eAcc/E_gen, matched electrons, pT_gen > 25 GeV")
        if images.get("n_electrons", 0) > 0:
            e_layer = images["per_electron_layer_energy"]
            keys = images["electron_key"]
            ele_evt = _evt(d["Electron_pt"])
            ele_loc = _np(ak.local_index(d["Electron_pt"], axis=1)).astype(np.int64)
            pos = np.searchsorted(keys, ele_evt * 1024 + ele_loc)
            has = (pos < len(keys)) & (keys[np.minimum(pos, len(keys) - 1)] == ele_evt * 1024 + ele_loc)
            cells_acc = e_layer[pos[has], 1:4].sum(axis=1)
            rel = eacc[has] / np.where(cells_acc > 0, cells_acc, np.nan)
            rel = rel[np.isfinite(rel)]
            if len(rel):
                chk["eacc_vs_cells"] = check(float(np.median(rel)), float(1.2533 * np.std(rel) / math.sqrt(len(rel))), (0.88, 1.0),
                                             SRC["internal"] + ": the 3x7 cluster inside the 7x11 window holds 90-97% of an EM shower "
                                             "(Grindhammer-Peters lateral profile, PHYSICS.md)",
                                             "median of Electron_eAcc (3x7 cluster) / sum of the window's EleCell energies in layers 1-3")
    return out


# -------------------------------------------------------------------------------------------------------------- muons

MU_PT_EDGES = [10, 20, 30, 50, 100, 200, 500]
MU_ETA_EDGES = [0.0, 0.9, 1.2, 2.1, 2.4]
MU_BRANCHES = [
    "Muon_pt", "Muon_eta", "Muon_phi", "Muon_genPartIdx",
    "GenPart_pt", "GenPart_eta", "GenPart_phi", "GenPart_pdgId", "GenPart_status", "GenPart_statusFlags",
]


def validate_muons(data: Mapping[str, Mapping[str, RoleData]], skip: Skips) -> dict[str, Any]:
    """Muons of the ``wmunu`` and ``ttbar`` roles (nominal): pT resolution vs pT and |eta|, prompt reconstruction efficiency."""
    out: dict[str, Any] = {"checks": {}, "curves": {}}
    chk = out["checks"]
    pt_reco, pt_gen, eta_gen = [], [], []
    eff_num = eff_den = n_matched = n_final = 0
    used = []
    for role in ("wmunu", "ttbar"):
        d, _ = nominal_role(data, role, MU_BRANCHES, skip, f"muons.{role}")
        if d is None:
            continue
        used.append(role)
        m = matched_leptons(d, "Muon", 13, prompt_only=False)
        pt_reco.append(m["pt"])
        pt_gen.append(m["gen_pt"])
        eta_gen.append(m["gen_eta"])
        n_matched += int(m["n_matched"])
        n_final += int(m["n_final"])
        # efficiency: prompt final-state muons, pT > 10 GeV, |eta| < 2.4, with a reconstructed muon within dR < 0.1
        prompt = (abs(d["GenPart_pdgId"]) == 13) & (d["GenPart_status"] == 1) & ((d["GenPart_statusFlags"] & 1) != 0)
        den = prompt & (d["GenPart_pt"] > 10) & (abs(d["GenPart_eta"]) < 2.4)
        near = _nearest(d["GenPart_eta"][den], d["GenPart_phi"][den], d["Muon_eta"], d["Muon_phi"], 0.1)
        eff_den += len(near)
        eff_num += int((near >= 0).sum())
    if not used:
        chk["all"] = {"skipped": "no wmunu or ttbar sample with the muon branches"}
        return out
    pr, pg, eg = np.concatenate(pt_reco), np.concatenate(pt_gen), np.concatenate(eta_gen)
    ratio = pr / pg
    barrel = np.abs(eg) < 1.2
    out["curves"]["nominal"] = {
        "vs_pt": binned_response(pg[barrel], ratio[barrel], MU_PT_EDGES, "pT_gen [GeV], |eta| < 1.2"),
        "vs_abseta": binned_response(np.abs(eg)[(pg > 20) & (pg < 100)], ratio[(pg > 20) & (pg < 100)], MU_ETA_EDGES,
                                     "|eta_gen|, 20 < pT_gen < 100 GeV"),
        "roles": used,
    }
    sel = barrel & (pg > 20) & (pg < 100)
    fit = core_gauss_fit(ratio[sel])
    res, res_err = relative_resolution(fit)
    chk["resolution_barrel_20_100"] = check(res, res_err, (0.01, 0.02), SRC["cms_muon"],
                                            f"core sigma/mu of pT_reco/pT_gen, muons matched to GenPart, |eta| < 1.2, 20 < pT_gen < 100 GeV ({'+'.join(used)})")
    chk["response_barrel_20_100"] = check(fit.mu, fit.mu_err, (0.998, 1.002), SRC["cms_muon"] + ": momentum scale known to 0.2%",
                                          "core mean of pT_reco/pT_gen, |eta| < 1.2, 20 < pT_gen < 100 GeV")
    allr = (pg > 20) & (pg < 100)
    fit_all = core_gauss_fit(ratio[allr])
    res_all, res_all_err = relative_resolution(fit_all)
    chk["resolution_all_20_100"] = check(res_all, res_all_err, (0.01, 0.06), SRC["cms_muon"],
                                         "core sigma/mu of pT_reco/pT_gen, |eta| < 2.4, 20 < pT_gen < 100 GeV")
    if eff_den > 0:
        eff = eff_num / eff_den
        chk["reco_efficiency_prompt"] = check(eff, math.sqrt(max(eff * (1 - eff), 1.0 / eff_den) / eff_den), (0.95, 1.0), SRC["cms_muon"],
                                              "fraction of prompt final-state GenPart muons (pT > 10 GeV, |eta| < 2.4) with a Muon within "
                                              "dR < 0.1 (binomial error)", n=eff_den)
    chk["genpart_match_final_state"] = _final_state_check({"n_matched": np.array(n_matched), "n_final": np.array(n_final)}, "Muon")
    return out


# --------------------------------------------------------------------------------------------------------------- jets

JET_PT_EDGES = [20, 30, 50, 80, 120, 200, 300, 500, 800, 1200, 2000, 3000]
JET_ETA_EDGES = [0.0, 0.5, 1.3, 2.5, 3.0, 4.7]
JET_BRANCHES = ["Jet_pt", "Jet_eta", "Jet_phi", "Jet_genJetIdx", "GenJet_pt", "GenJet_eta"]
JER_POINTS = (  # reference points drawn on the JER figure: (pT, JER, error, label)
    (20.0, 0.24, 0.015, "ATLAS 13 TeV, EPJC 81 (2021) 689"),
    (300.0, 0.06, 0.005, "ATLAS 13 TeV, EPJC 81 (2021) 689"),
    (1000.0, 0.05, 0.01, "CMS 8 TeV, arXiv:1607.03663"),
)


def _matched_jets(d: RoleData) -> dict[str, np.ndarray]:
    gpt, ok = gather(d["GenJet_pt"], d["Jet_genJetIdx"])
    geta, _ = gather(d["GenJet_eta"], d["Jet_genJetIdx"])
    return {"pt": _np(d["Jet_pt"]).astype(np.float64)[ok], "gen_pt": gpt[ok], "gen_eta": geta[ok]}


def injected_shifts() -> dict[str, float]:
    """EM and jet response shifts of the pseudo-data tune relative to nominal, as injected in :mod:`.tune`.

    Electrons are measured by the cell simulation (:mod:`.calo_images`) with the
    *nominal* calibration, so the EM shift is the em_scale ratio; the extra
    upstream material of the pseudo-data tune lowers it by a few per mille at Z
    energies (single-electron gun: +3.3% at 10 GeV, +3.8% at 40 GeV, +4.0% at
    160 GeV), inside the band the checks allow.  The EM resolution ratio at
    45 GeV follows from the scaled sampling term: the stochastic term is the
    sampling term (+) the shower-depth fluctuations (0.071, measured with the
    gun: 10.5% total against a 7.7% sampling term), with a 0.65% constant term.
    The jet shift weights the EM shift by the photon fraction and the
    hadronic-scale shift by the neutral-hadron fraction of PF jets (charged
    hadrons are measured by the tracker): CMS, JINST 12 (2017) P10003.
    """
    from .tune import NOMINAL, PSEUDODATA

    em = PSEUDODATA.em_scale / NOMINAL.em_scale - 1.0
    had = PSEUDODATA.had_scale / NOMINAL.had_scale - 1.0

    def em_sigma(t: Any, e: float = 45.0) -> float:
        stochastic2 = t.cells_sampling_term**2 + 0.071**2
        return math.sqrt(stochastic2 / e + 0.0065**2)

    return {"em": em, "had": had, "jet": _PF_PHOTON_FRACTION * em + _PF_NEUTRAL_HADRON_FRACTION * had,
            "em_resolution_ratio": em_sigma(PSEUDODATA) / em_sigma(NOMINAL)}


def _dijet_events(d: RoleData, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Seed-002 dijet selection and asymmetry at reco and truth (GenJets matched to the two leading jets)."""
    pt, eta, phi = d["Jet_pt"], d["Jet_eta"], d["Jet_phi"]
    n = ak.to_numpy(ak.num(pt))
    two = n >= 2
    padded = ak.fill_none(ak.pad_none(pt, 3, axis=1), 0.0)
    pt1, pt2, pt3 = (ak.to_numpy(padded[:, k]).astype(np.float64) for k in range(3))
    eta_p = ak.fill_none(ak.pad_none(eta, 2, axis=1), 99.0)
    phi_p = ak.fill_none(ak.pad_none(phi, 2, axis=1), 0.0)
    eta1, eta2 = ak.to_numpy(eta_p[:, 0]).astype(np.float64), ak.to_numpy(eta_p[:, 1]).astype(np.float64)
    dphi = np.abs(_delta_phi(ak.to_numpy(phi_p[:, 0]).astype(np.float64), ak.to_numpy(phi_p[:, 1]).astype(np.float64)))
    avg = 0.5 * (pt1 + pt2)
    swap = rng.random(len(pt1)) < 0.5
    ref, probe = np.where(swap, pt2, pt1), np.where(swap, pt1, pt2)
    probe_eta = np.abs(np.where(swap, eta1, eta2))
    sel = two & (dphi > 2.7) & (pt3 < np.maximum(25.0, 0.25 * avg)) & (probe_eta > 0.2) & (probe_eta < 0.7) & (avg >= 1100.0) & (avg < 2600.0)
    a_reco = (ref - probe) / avg
    # truth asymmetry of the same two jets (their matched GenJets)
    gidx = ak.fill_none(ak.pad_none(d["Jet_genJetIdx"], 2, axis=1), -1)
    gpt = d["GenJet_pt"]
    ng = ak.to_numpy(ak.num(gpt))
    offs = np.concatenate([[0], np.cumsum(ng)])
    flat = ak.to_numpy(ak.flatten(gpt)).astype(np.float64)
    g = []
    for k in range(2):
        i = ak.to_numpy(gidx[:, k]).astype(np.int64)
        okk = (i >= 0) & (i < ng)
        v = np.full(len(i), np.nan)
        v[okk] = flat[offs[np.flatnonzero(okk)] + i[okk]]
        g.append(v)
    gref, gprobe = np.where(swap, g[1], g[0]), np.where(swap, g[0], g[1])
    a_truth = (gref - gprobe) / (0.5 * (gref + gprobe))
    # response of the two selected jets themselves (the reference jet may be forward, with a worse resolution)
    resp = np.concatenate([pt1[sel] / g[0][sel], pt2[sel] / g[1][sel]])
    paired = sel & np.isfinite(a_truth)
    return {"sel": sel, "a_reco": a_reco[sel], "a_truth": a_truth[paired], "pt_avg": avg[sel],
            "response": resp[np.isfinite(resp)], "a_detector": (a_reco - a_truth)[paired]}


def validate_jets(data: Mapping[str, Mapping[str, RoleData]], skip: Skips, seed: int = 2) -> dict[str, Any]:
    """Jets of the ``dijet`` and ``ttbar`` roles: response, JER, seed-002 asymmetry, pseudo-data shift."""
    out: dict[str, Any] = {"checks": {}, "curves": {}, "asymmetry": {}, "reference_points": [list(p) for p in JER_POINTS]}
    chk = out["checks"]
    per_tune: dict[str, list[dict[str, np.ndarray]]] = {}
    roles_of: dict[str, list[str]] = {}
    for role in ("ttbar", "dijet"):
        for tune, d in data.get(role, {}).items():
            reason = d.has(*JET_BRANCHES)
            if reason:
                skip(f"jets.{role}.{tune}", reason)
                continue
            per_tune.setdefault(tune, []).append(_matched_jets(d))
            roles_of.setdefault(tune, []).append(role)
    for role in ("ttbar", "dijet"):
        if role not in data:
            skip(f"jets.{role}", f"no {role} sample given")
    if "nominal" not in per_tune:
        chk["all"] = {"skipped": "no dijet or ttbar sample with the jet branches"}
        return out
    merged: dict[str, dict[str, np.ndarray]] = {}
    for tune, parts in per_tune.items():
        m = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        merged[tune] = m
        ratio = m["pt"] / m["gen_pt"]
        central = np.abs(m["gen_eta"]) < 1.3
        out["curves"][tune] = {
            "vs_pt": binned_response(m["gen_pt"][central], ratio[central], JET_PT_EDGES, "pT_gen [GeV], |eta| < 1.3"),
            "vs_abseta": binned_response(np.abs(m["gen_eta"])[m["gen_pt"] > 30], ratio[m["gen_pt"] > 30], JET_ETA_EDGES, "|eta_gen|, pT_gen > 30 GeV"),
            "roles": roles_of[tune],
        }
    m = merged["nominal"]
    ratio = m["pt"] / m["gen_pt"]
    central = np.abs(m["gen_eta"]) < 1.3
    windows = (
        ("jer_20_30", 20.0, 30.0, (0.15, 0.30), SRC["atlas_jer"] + "; 24% at 20 GeV falling with pT"),
        ("jer_250_400", 250.0, 400.0, (0.045, 0.075), SRC["atlas_jer"]),
        ("jer_800_1300", 800.0, 1300.0, (0.04, 0.07), SRC["cms_jer_8tev"]),
    )
    for name, lo, hi, band, source in windows:
        sel = central & (m["gen_pt"] >= lo) & (m["gen_pt"] < hi)
        if sel.sum() < MIN_ENTRIES:
            chk[name] = skip(f"jets.{name}", f"{int(sel.sum())} matched jets with {lo:.0f} <= pT_gen < {hi:.0f} GeV, |eta| < 1.3 "
                             f"(fewer than {MIN_ENTRIES})")
            continue
        fit = core_gauss_fit(ratio[sel])
        res, res_err = relative_resolution(fit)
        chk[name] = check(res, res_err, band, source,
                          f"core sigma/mu of pT_reco/pT_gen for jets matched to GenJets (Jet_genJetIdx), |eta_gen| < 1.3, "
                          f"{lo:.0f} <= pT_gen < {hi:.0f} GeV", n=int(sel.sum()))
        if name == "jer_250_400":
            chk["response_250_400"] = check(fit.mu, fit.mu_err, (0.97, 1.03), SRC["atlas_jer"] + ": calibrated jets, JES within ~1-3%",
                                            "core mean of pT_reco/pT_gen, |eta_gen| < 1.3, 250 <= pT_gen < 400 GeV")
    # seed-002 dijet asymmetry
    rng_seed = seed
    for tune, d in data.get("dijet", {}).items():
        reason = d.has(*JET_BRANCHES)
        if reason:
            out["asymmetry"][tune] = skip(f"jets.asymmetry.{tune}", reason)
            continue
        ev = _dijet_events(d, np.random.default_rng(rng_seed))
        a = ev["a_reco"]
        if len(a) < MIN_ENTRIES:
            out["asymmetry"][tune] = skip(f"jets.asymmetry.{tune}", f"{len(a)} dijet events pass the seed-002 selection (fewer than {MIN_ENTRIES})")
            continue
        fit = core_gauss_fit(a)
        fit_truth = core_gauss_fit(ev["a_truth"]) if len(ev["a_truth"]) >= MIN_ENTRIES else None
        counts, edges = np.histogram(a, bins=40, range=(-0.5, 0.5))
        entry: dict[str, Any] = {
            "n": len(a), "mu": fit.mu, "sigma": fit.sigma, "sigma_err": fit.sigma_err, "mu_err": fit.mu_err, "eiqr": fit.iqr_sigma,
            "hist": {"edges": edges.tolist(), "counts": counts.tolist()}, "pt_avg_median": float(np.median(ev["pt_avg"])),
        }
        if fit_truth is not None:
            entry["sigma_truth"] = fit_truth.sigma
            entry["sigma_truth_err"] = fit_truth.sigma_err
        out["asymmetry"][tune] = entry
        if tune == "nominal":
            chk["dijet_asymmetry_width"] = check(
                fit.sigma, fit.sigma_err, (0.08, 0.12), SRC["seed002"],
                "core (2-sigma iterative) Gaussian width of A = (pT_ref - pT_probe)/pT_avg, ref/probe random, two leading jets, "
                "dphi > 2.7, pT3 < max(25 GeV, 0.25 pT_avg), 0.2 < |eta_probe| < 0.7, 1.1 <= pT_avg < 2.6 TeV",
                jer_insitu=fit.sigma / math.sqrt(2.0),
            )
            # particle-level imbalance removed event by event (A_reco - A_truth of the same jets and assignment):
            # the truth asymmetry has a narrow core on wide radiation tails, so subtracting core widths in
            # quadrature is not valid (it gave 1.7 for a closure that is 1.1 event by event)
            if fit_truth is not None and len(ev["a_detector"]) >= MIN_ENTRIES and len(ev["response"]) >= MIN_ENTRIES:
                dfit = core_gauss_fit(ev["a_detector"])
                jer_insitu, jer_insitu_err = dfit.sigma / math.sqrt(2.0), dfit.sigma_err / math.sqrt(2.0)
                tfit = core_gauss_fit(ev["response"])
                jer_truth, jer_truth_err = relative_resolution(tfit)
                closure = jer_insitu / jer_truth
                chk["insitu_vs_truth_jer"] = check(
                    closure, closure * math.hypot(jer_insitu_err / jer_insitu, jer_truth_err / jer_truth), (0.8, 1.2), SRC["atlas_insitu"],
                    "core width of (A_reco - A_truth)/sqrt(2) (A_truth: matched GenJets of the same two jets, same ref/probe "
                    "assignment) divided by the truth-matched JER (core sigma/mu of pT_reco/pT_gen) of the same two jets",
                    jer_insitu=jer_insitu, jer_truth=jer_truth,
                    quadrature_insitu=math.sqrt(max(fit.sigma**2 - fit_truth.sigma**2, 0.0) / 2.0),
                )
    if "dijet" not in data:
        chk["dijet_asymmetry_width"] = skip("jets.dijet_asymmetry_width", "no dijet sample given")
    # pseudo-data vs nominal on the same dijet events
    dj = data.get("dijet", {})
    if "pseudodata" in dj and "nominal" in dj and not dj["pseudodata"].has(*JET_BRANCHES) and not dj["nominal"].has(*JET_BRANCHES):
        fits = {}
        for tune in ("nominal", "pseudodata"):
            mt = _matched_jets(dj[tune])
            sel = (np.abs(mt["gen_eta"]) < 1.3) & (mt["gen_pt"] > 100)
            fits[tune] = core_gauss_fit(mt["pt"][sel] / mt["gen_pt"][sel])
        fn, fp = fits["nominal"], fits["pseudodata"]
        inj = injected_shifts()
        shift = fp.mu / fn.mu - 1.0
        chk["pseudodata_response_shift"] = check(
            shift, math.hypot(fp.mu_err / fp.mu, fn.mu_err / fn.mu), (inj["jet"] - 0.015, inj["jet"] + 0.015),
            SRC["injected"] + f": EM {inj['em']:+.3f} x photon fraction {_PF_PHOTON_FRACTION} + hadronic {inj['had']:+.3f} x neutral-hadron "
            f"fraction {_PF_NEUTRAL_HADRON_FRACTION} (CMS PF jet composition, JINST 12 (2017) P10003) = {inj['jet']:+.4f}",
            "core mean of pT_reco/pT_gen (pseudodata) / (nominal) - 1, dijet sample, |eta_gen| < 1.3, pT_gen > 100 GeV",
        )
        rn, rn_err = relative_resolution(fn)
        rp, rp_err = relative_resolution(fp)
        chk["pseudodata_jer_ratio"] = check(
            rp / rn, rp / rn * math.hypot(rp_err / rp, rn_err / rn), (1.0, max(1.2, inj["em_resolution_ratio"])),
            SRC["injected"] + ": 20% worse EM and hadronic stochastic terms and more material act on the ~35% neutral share of "
            "the jet energy: worse, by at most the EM (electron) resolution ratio",
            "JER(pseudodata)/JER(nominal), dijet sample, |eta_gen| < 1.3, pT_gen > 100 GeV",
        )
    elif "dijet" in data:
        chk["pseudodata_response_shift"] = skip("jets.pseudodata", "no dijet sample with both the nominal and the pseudodata tune")
    return out


# --------------------------------------------------------------------------------------------------------------- taus

TAU_BRANCHES = [
    "Tau_pt", "Tau_eta", "Tau_phi", "Tau_mass", "Tau_decayMode", "Tau_genPartFlav", "Tau_genPartIdx", "Tau_idDeepTau2017v2p1VSjet",
    "GenVisTau_pt", "GenVisTau_eta", "GenVisTau_phi", "GenVisTau_mass", "GenVisTau_status",
]
TAU_DMS = (0, 1, 10, 11)
TAU_PT_EDGES = [20, 30, 40, 60, 100, 200]
TAU_MATCH_DR = 0.3  # the NanoAOD tau truth-matching cone
DM_DIAGONAL_BANDS = {0: (0.75, 0.97), 1: (0.55, 0.90), 10: (0.70, 0.97), 11: (0.30, 0.80)}


def _nearest(eta_a: ak.Array, phi_a: ak.Array, eta_b: ak.Array, phi_b: ak.Array, max_dr: float) -> np.ndarray:
    """For each object of a (flat order), the local index of the nearest b in the same event within max_dr, else -1."""
    pairs_eta = ak.cartesian([eta_a, eta_b], nested=True)
    pairs_phi = ak.cartesian([phi_a, phi_b], nested=True)
    deta = pairs_eta["0"] - pairs_eta["1"]
    dphi = (pairs_phi["0"] - pairs_phi["1"] + np.pi) % (2 * np.pi) - np.pi
    dr2 = deta**2 + dphi**2
    best = ak.argmin(dr2, axis=2)
    best_dr2 = ak.min(dr2, axis=2)
    idx = ak.to_numpy(ak.flatten(ak.fill_none(best, -1))).astype(np.int64)
    dmin = ak.to_numpy(ak.flatten(ak.fill_none(best_dr2, np.inf))).astype(np.float64)
    return np.where(dmin < max_dr**2, idx, -1)


def _merge_dm(dm: np.ndarray) -> np.ndarray:
    """Decay mode (GenVisTau_status 0, 1, 2, 10, 11, 15 or Tau_decayMode) with h+-pi0 and h+-2pi0 merged into 1.

    As in Fig. 1 of CMS JINST 17 (2022) P07023: decay modes with the same
    number of charged hadrons and one or two pi0 are combined.
    """
    return np.where(dm == 2, 1, dm)


def validate_taus(data: Mapping[str, Mapping[str, RoleData]], skip: Skips) -> dict[str, Any]:
    """Hadronic taus of ``ztautau`` (and ``ttbar`` for fakes): response per DM, DM migration, Medium WP efficiency, fake rate."""
    out: dict[str, Any] = {"checks": {}, "curves": {}, "per_decay_mode": {}}
    chk = out["checks"]
    d, skipped = nominal_role(data, "ztautau", TAU_BRANCHES, skip, "taus")
    if d is None:
        chk["all"] = skipped
        return out
    # reco side: genuine taus matched to the nearest GenVisTau (dR < 0.3)
    t_pt, t_eta = _np(d["Tau_pt"]).astype(np.float64), _np(d["Tau_eta"]).astype(np.float64)
    t_dm = _merge_dm(_np(d["Tau_decayMode"]).astype(np.int64))
    t_flav = _np(d["Tau_genPartFlav"]).astype(np.int64)
    t_id = _np(d["Tau_idDeepTau2017v2p1VSjet"]).astype(np.int64)
    near = _nearest(d["Tau_eta"], d["Tau_phi"], d["GenVisTau_eta"], d["GenVisTau_phi"], TAU_MATCH_DR)
    tevt = _evt(d["Tau_pt"])
    goffs = _offsets(d["GenVisTau_pt"])
    g_pt_flat = _np(d["GenVisTau_pt"]).astype(np.float64)
    genuine = (t_flav == 5) & (near >= 0)
    gpos = goffs[tevt[genuine]] + near[genuine]
    vis_pt = g_pt_flat[gpos]
    ratio = t_pt[genuine] / vis_pt
    acc = (vis_pt > 20) & (np.abs(t_eta[genuine]) < 2.3)
    dm_g = t_dm[genuine]
    curves: dict[str, Any] = {}
    for dm in TAU_DMS:
        sel = acc & (dm_g == dm)
        curves[f"dm{dm}"] = binned_response(vis_pt[sel], ratio[sel], TAU_PT_EDGES, f"visible pT_gen [GeV], reco DM {dm}")
        if sel.sum() >= MIN_ENTRIES:
            fit = core_gauss_fit(ratio[sel])
            res, res_err = relative_resolution(fit)
            out["per_decay_mode"][str(dm)] = {"n": int(sel.sum()), "response": fit.mu, "response_err": fit.mu_err,
                                              "resolution": res, "resolution_err": res_err, "eiqr": fit.iqr_sigma / fit.mu}
            chk[f"response_dm{dm}"] = check(fit.mu, fit.mu_err, (0.93, 1.07), SRC["cms_tau_scale"],
                                            f"core mean of Tau_pt/GenVisTau_pt, genuine taus (genPartFlav 5) matched to the nearest GenVisTau within dR < 0.3, reco DM {dm} (2 merged into 1), "
                                            "visible pT > 20 GeV, |eta| < 2.3")
            band = (0.005, 0.08) if dm in (0, 10) else (0.03, 0.18)
            chk[f"resolution_dm{dm}"] = check(res, res_err, band, SRC["cms_tau_scale"],
                                              f"core sigma/mu of Tau_pt/GenVisTau_pt, reco DM {dm} (as response)")
        else:
            chk[f"response_dm{dm}"] = skip(f"taus.response_dm{dm}", f"{int(sel.sum())} genuine taus in reco DM {dm} (fewer than {MIN_ENTRIES})")
    out["curves"]["nominal"] = curves
    # DM migration: generated visible taus (pT > 20, |eta| < 2.3) -> reco DM of the nearest Tau (pT > 20, |eta| < 2.3) within dR 0.3
    tau_ok = (d["Tau_pt"] > 20) & (abs(d["Tau_eta"]) < 2.3)
    rt_eta, rt_phi, rt_dm = d["Tau_eta"][tau_ok], d["Tau_phi"][tau_ok], d["Tau_decayMode"][tau_ok]
    g_acc = (d["GenVisTau_pt"] > 20) & (abs(d["GenVisTau_eta"]) < 2.3)
    g_near = _nearest(d["GenVisTau_eta"][g_acc], d["GenVisTau_phi"][g_acc], rt_eta, rt_phi, TAU_MATCH_DR)
    gdm = _merge_dm(_np(d["GenVisTau_status"][g_acc]).astype(np.int64))
    gevt = _evt(d["GenVisTau_pt"][g_acc])
    roffs = _offsets(rt_dm)
    rdm_flat = _merge_dm(_np(rt_dm).astype(np.int64))
    reco_dm = np.full(len(gdm), -1, dtype=np.int64)
    has = g_near >= 0
    reco_dm[has] = rdm_flat[roffs[gevt[has]] + g_near[has]]
    cols = [*TAU_DMS, "other", "none"]
    matrix = np.zeros((len(TAU_DMS), len(cols)))
    for i, gd in enumerate(TAU_DMS):
        rows = gdm == gd
        for j, rd in enumerate(TAU_DMS):
            matrix[i, j] = np.sum(rows & (reco_dm == rd))
        matrix[i, -2] = np.sum(rows & (reco_dm >= 0) & ~np.isin(reco_dm, TAU_DMS))
        matrix[i, -1] = np.sum(rows & (reco_dm < 0))
    totals = matrix.sum(axis=1)
    frac = matrix / np.maximum(totals[:, None], 1)
    out["dm_migration"] = {"gen_rows": list(TAU_DMS), "reco_columns": [str(c) for c in cols], "counts": matrix.astype(int).tolist(),
                           "fractions": frac.tolist(),
                           "definition": "rows: generated visible taus (GenVisTau_status, 2 merged into 1) with pT > 20 GeV, |eta| < 2.3; "
                           "columns: decay mode (2 merged into 1) of the nearest Tau with pT > 20 GeV, |eta| < 2.3 within dR < 0.3, or none"}
    for i, gd in enumerate(TAU_DMS):
        if totals[i] >= MIN_ENTRIES:
            reco_rows = matrix[i, : len(TAU_DMS) + 1].sum()
            p = matrix[i, i] / max(reco_rows, 1)
            chk[f"dm_purity_gen{gd}"] = check(p, math.sqrt(max(p * (1 - p), 1.0 / max(reco_rows, 1)) / max(reco_rows, 1)), DM_DIAGONAL_BANDS[gd],
                                              SRC["cms_deeptau_dm"],
                                              f"fraction of reconstructed taus from generated DM {gd} that are reconstructed in DM {gd}")
    rec_eff = 1.0 - matrix[:, -1].sum() / max(totals.sum(), 1)
    out["dm_migration"]["reconstruction_efficiency"] = rec_eff
    # Medium WP efficiency for genuine taus and fake rate for Tau entries from jets (genPartFlav 0)
    medium = (t_id & MEDIUM_WP) != 0
    base = (t_pt > 20) & (np.abs(t_eta) < 2.3) & np.isin(t_dm, TAU_DMS)
    gen_sel = base & (t_flav == 5)
    if gen_sel.sum() >= MIN_ENTRIES:
        eff = float(medium[gen_sel].mean())
        chk["medium_wp_efficiency"] = check(eff, math.sqrt(eff * (1 - eff) / gen_sel.sum()), (0.55, 0.80), SRC["cms_deeptau_eff"],
                                            "fraction of genuine Tau entries (genPartFlav 5, pT > 20 GeV, |eta| < 2.3, DM 0/1/10/11) passing "
                                            "idDeepTau2017v2p1VSjet Medium (bit 16)", n=int(gen_sel.sum()))
    fake_rates: dict[str, Any] = {}
    for role in ("ztautau", "ttbar"):
        dd = data.get(role, {}).get("nominal")
        if dd is None or dd.has("Tau_pt", "Tau_eta", "Tau_decayMode", "Tau_genPartFlav", "Tau_idDeepTau2017v2p1VSjet"):
            continue
        fl = _np(dd["Tau_genPartFlav"]).astype(np.int64)
        fdm = _merge_dm(_np(dd["Tau_decayMode"]).astype(np.int64))
        fb = (_np(dd["Tau_pt"]) > 20) & (np.abs(_np(dd["Tau_eta"])) < 2.3) & np.isin(fdm, TAU_DMS) & (fl == 0)
        fm = (_np(dd["Tau_idDeepTau2017v2p1VSjet"]).astype(np.int64) & MEDIUM_WP) != 0
        fake_rates[role] = (int((fb & fm).sum()), int(fb.sum()))
    num = sum(v[0] for v in fake_rates.values())
    den = sum(v[1] for v in fake_rates.values())
    if den >= MIN_ENTRIES:
        fr = num / den
        chk["medium_wp_jet_fake_rate"] = check(fr, math.sqrt(max(fr * (1 - fr), 1.0 / den) / den), (0.001, 0.03), SRC["cms_deeptau_eff"],
                                               "fraction of Tau entries from jets (genPartFlav 0, pT > 20 GeV, |eta| < 2.3, DM 0/1/10/11) passing "
                                               f"Medium ({'+'.join(fake_rates)})", n=den)
    else:
        chk["medium_wp_jet_fake_rate"] = skip("taus.medium_wp_jet_fake_rate", f"{den} Tau entries with genPartFlav 0 (fewer than {MIN_ENTRIES})")
    return out


# ---------------------------------------------------------------------------------------------------------------- MET

MET_BRANCHES = ["MET_pt", "MET_phi", "MET_sumEt", "MET_covXX", "MET_covXY", "MET_covYY", "MET_significance", "GenMET_pt", "GenMET_phi"]
RECOIL_BRANCHES = ["MET_pt", "MET_phi", "Muon_pt", "Muon_eta", "Muon_phi", "GenPart_pt", "GenPart_phi", "GenPart_pdgId", "GenPart_statusFlags"]
WPT_EDGES = [0, 5, 10, 15, 20, 30, 40, 60, 100]
FLAG_LAST_COPY = 1 << 13


def _xy(pt: Any, phi: Any) -> tuple[np.ndarray, np.ndarray]:
    p, f = ak.to_numpy(pt).astype(np.float64), ak.to_numpy(phi).astype(np.float64)
    return p * np.cos(f), p * np.sin(f)


def _quantile_edges(x: np.ndarray, n_bins: int) -> np.ndarray:
    edges = np.unique(np.round(np.quantile(x, np.linspace(0.0, 1.0, n_bins + 1)), 1))
    edges[-1] = edges[-1] + 0.1
    return edges


def _leptons_in_acceptance(d: RoleData, eta_max: float = 2.4) -> tuple[np.ndarray, str]:
    """Events whose prompt final-state electrons and muons all lie within |eta| < eta_max.

    GenMET holds the neutrinos only, so a prompt lepton lost outside the
    acceptance is genuine MET that GenMET does not see; such events are left
    out of the MET resolution and pull checks.
    """
    need = ("GenPart_pdgId", "GenPart_status", "GenPart_statusFlags", "GenPart_eta")
    if d.has(*need):
        return np.ones(len(d["MET_pt"]), dtype=bool), "all events (GenPart branches missing: no lepton-acceptance requirement)"
    pid = abs(d["GenPart_pdgId"])
    lep = ((pid == 11) | (pid == 13)) & (d["GenPart_status"] == 1) & ((d["GenPart_statusFlags"] & 1) != 0)
    lost = ak.to_numpy(ak.sum(lep & (abs(d["GenPart_eta"]) >= eta_max), axis=1)) > 0
    return ~lost, f"events whose prompt final-state e and mu all have |eta| < {eta_max} (GenMET does not see lost leptons)"


def validate_met(data: Mapping[str, Mapping[str, RoleData]], skip: Skips) -> dict[str, Any]:
    """MET of ``ttbar`` (mu 20) and ``wmunu`` (mu 2): resolution vs SumET, covariance pulls, TkMET, W recoil."""
    out: dict[str, Any] = {"checks": {}, "curves": {}, "pulls": {}, "recoil": {}}
    chk = out["checks"]
    for role in ("ttbar", "wmunu"):
        d, skipped = nominal_role(data, role, MET_BRANCHES, skip, f"met.{role}")
        if d is None:
            chk[role] = skipped
            continue
        acc, acc_text = _leptons_in_acceptance(d)
        mx, my = _xy(d["MET_pt"][acc], d["MET_phi"][acc])
        gx, gy = _xy(d["GenMET_pt"][acc], d["GenMET_phi"][acc])
        rx, ry = mx - gx, my - gy
        sumet = ak.to_numpy(d["MET_sumEt"][acc]).astype(np.float64)
        edges = _quantile_edges(sumet, 8)
        comp = binned_response(np.concatenate([sumet, sumet]), np.concatenate([rx, ry]), edges, "MET_sumEt [GeV]", relative=False)
        sfit = fit_sqrt_sumet(np.asarray(comp["x_mean"], float), np.asarray(comp["resolution"], float), np.asarray(comp["resolution_err"], float))
        out["curves"][role] = {"resolution_vs_sumet": comp, "fit": sfit}
        if not math.isfinite(sfit["b"]):
            chk[f"{role}_sumet_stochastic"] = skip(f"met.{role}_sumet_stochastic", "fewer than 2 SumET bins with enough events for the fit")
        else:
            chk[f"{role}_sumet_stochastic"] = check(
                sfit["b"], sfit["b_err"], (0.4, 0.8), SRC["cms_met"],
                "b of sigma = sqrt(a^2 + b^2 SumET) fitted to the core width of MET_x,y - GenMET_x,y (both components pooled) in "
                f"8 quantile bins of MET_sumEt; {acc_text}", constant_term_gev=sfit["a"], constant_term_err=sfit["a_err"],
            )
        p = met_pulls(rx, ry, ak.to_numpy(d["MET_covXX"][acc]), ak.to_numpy(d["MET_covXY"][acc]), ak.to_numpy(d["MET_covYY"][acc]))
        pulls = np.concatenate([p["major"], p["minor"]])
        pfit = core_gauss_fit(pulls)
        hist = {}
        for k in ("major", "minor"):
            c, e = np.histogram(p[k], bins=50, range=(-5, 5))
            hist[k] = {"edges": e.tolist(), "counts": c.tolist(), "sigma": core_gauss_fit(p[k]).sigma}
        c2, e2 = np.histogram(p["chi2"], bins=50, range=(0, 20))
        hist["chi2"] = {"edges": e2.tolist(), "counts": c2.tolist()}
        out["pulls"][role] = hist
        chk[f"{role}_pull_width"] = check(pfit.sigma, pfit.sigma_err, (0.9, 1.1), SRC["cms_metsig"],
                                          "core width of (MET - GenMET) projected on the principal axes of (MET_covXX, covXY, covYY), "
                                          f"divided by sqrt(eigenvalue); both axes pooled; {acc_text}", n=int(acc.sum()))
        chi2 = p["chi2"][np.isfinite(p["chi2"])]
        med = float(np.median(chi2))
        # the median of a chi^2(2) is 2 ln 2 = 1.386; quoted next to the mean, which tails inflate
        chk[f"{role}_chi2_mean"] = check(float(np.mean(chi2)), float(np.std(chi2) / math.sqrt(len(chi2))), (1.8, 2.2), SRC["cms_metsig"],
                                         f"mean of r^T V^-1 r, r = MET - GenMET, V the MET covariance (chi^2 with 2 dof: mean 2); {acc_text}",
                                         median=med, median_expected=2.0 * math.log(2.0))
        if role == "ttbar":
            reason = d.has("TkMET_pt", "TkMET_phi")
            if reason:
                chk["ttbar_tkmet_response"] = skip("met.tkmet", reason)
            else:
                tx, ty = _xy(d["TkMET_pt"][acc], d["TkMET_phi"][acc])
                gpt = np.hypot(gx, gy)
                ok = gpt > 30
                proj = (tx[ok] * gx[ok] + ty[ok] * gy[ok]) / gpt[ok]
                resp = float(np.mean(proj) / np.mean(gpt[ok]))
                resp_err = float(np.std(proj) / math.sqrt(ok.sum()) / np.mean(gpt[ok]))
                tres = core_gauss_fit(np.concatenate([tx - gx, ty - gy]))
                chk["ttbar_tkmet_response"] = check(resp, resp_err, (0.5, 0.95), SRC["atlas_tkmet"],
                                                    "<TkMET . GenMET_hat>/<GenMET> for GenMET > 30 GeV", n=int(ok.sum()),
                                                    tkmet_component_sigma=tres.sigma, pfmet_component_sigma=core_gauss_fit(np.concatenate([rx, ry])).sigma)
    # hadronic recoil of W -> mu nu at low pile-up
    d, skipped = nominal_role(data, "wmunu", RECOIL_BRANCHES, skip, "met.recoil")
    if d is None:
        chk["recoil"] = skipped
        return out
    mx, my = _xy(d["MET_pt"], d["MET_phi"])
    mu_ok = (d["Muon_pt"] > 20) & (abs(d["Muon_eta"]) < 2.4)
    mpt = ak.fill_none(ak.firsts(d["Muon_pt"][mu_ok]), np.nan)
    mphi = ak.fill_none(ak.firsts(d["Muon_phi"][mu_ok]), 0.0)
    lx, ly = _xy(mpt, mphi)
    is_w = (abs(d["GenPart_pdgId"]) == 24) & ((d["GenPart_statusFlags"] & FLAG_LAST_COPY) != 0)
    wpt = ak.fill_none(ak.firsts(d["GenPart_pt"][is_w]), np.nan)
    wphi = ak.fill_none(ak.firsts(d["GenPart_phi"][is_w]), 0.0)
    wx, wy = _xy(wpt, wphi)
    ux, uy = -(mx + lx), -(my + ly)
    w = np.hypot(wx, wy)
    ok = np.isfinite(ux) & np.isfinite(w) & (w > 0)
    ex, ey = wx[ok] / w[ok], wy[ok] / w[ok]
    # u is the hadronic recoil (ideally -pT(W)); u_par is its component along -pT(W)_hat so that a perfect recoil gives u_par = pT(W)
    u_par = -(ux[ok] * ex + uy[ok] * ey)
    u_perp = ux[ok] * ey - uy[ok] * ex
    wv = w[ok]
    which = np.digitize(wv, WPT_EDGES) - 1
    resp, resp_err, perp, perp_err, n, xm = [], [], [], [], [], []
    for b in range(len(WPT_EDGES) - 1):
        sel = which == b
        n.append(int(sel.sum()))
        xm.append(float(wv[sel].mean()) if sel.any() else math.nan)
        if sel.sum() < MIN_ENTRIES:
            resp.append(math.nan), resp_err.append(math.nan), perp.append(math.nan), perp_err.append(math.nan)
            continue
        mean_w = float(wv[sel].mean())
        resp.append(float(u_par[sel].mean() / mean_w))
        resp_err.append(float(u_par[sel].std() / math.sqrt(sel.sum()) / mean_w))
        f = core_gauss_fit(u_perp[sel])
        perp.append(f.sigma)
        perp_err.append(f.sigma_err)
    out["recoil"] = {"edges": WPT_EDGES, "n": n, "x_mean": xm, "response": resp, "response_err": resp_err, "sigma_uperp": perp,
                     "sigma_uperp_err": perp_err, "x": "pT(W) truth [GeV]",
                     "definition": "u = -(MET + leading muon pT) (hadronic recoil); u_par = -u . pT(W)_hat; u_perp = u_x e_y - u_y e_x; "
                     "response <u_par>/<pT(W)>; resolution: core width of u_perp"}
    low = wv < 30
    if low.sum() >= MIN_ENTRIES:
        f = core_gauss_fit(u_perp[low])
        chk["recoil_uperp_sigma_ptw_below_30"] = check(f.sigma, f.sigma_err, (4.0, 10.0), SRC["atlas_recoil"],
                                                       "core width of u_perp for pT(W) < 30 GeV, W -> mu nu at low pile-up", n=int(low.sum()))
    mid = (wv >= 20) & (wv < 40)
    if mid.sum() >= MIN_ENTRIES:
        r = float(u_par[mid].mean() / wv[mid].mean())
        chk["recoil_response_ptw_20_40"] = check(r, float(u_par[mid].std() / math.sqrt(mid.sum()) / wv[mid].mean()), (0.65, 1.0), SRC["atlas_recoil"],
                                                 "<u_par>/<pT(W)> for 20 <= pT(W) < 40 GeV", n=int(mid.sum()))
    return out


# ------------------------------------------------------------------------------------------------------------- driver

ROLES = ("dijet", "zee", "ztautau", "wmunu", "ttbar")
ROLE_BRANCHES: dict[str, list[str]] = {
    "dijet": JET_BRANCHES,
    "zee": ELE_BRANCHES + MET_BRANCHES,
    "ztautau": TAU_BRANCHES,
    "wmunu": MU_BRANCHES + MET_BRANCHES + RECOIL_BRANCHES + ["TkMET_pt", "TkMET_phi"],
    "ttbar": MU_BRANCHES + JET_BRANCHES + MET_BRANCHES + ["TkMET_pt", "TkMET_phi"] + TAU_BRANCHES,
}


def _clean(node: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, numpy scalars and arrays -> Python."""
    if isinstance(node, dict):
        return {str(k): _clean(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_clean(v) for v in node]
    if isinstance(node, np.ndarray):
        return _clean(node.tolist())
    if isinstance(node, np.generic):
        node = node.item()
    if isinstance(node, float) and not math.isfinite(node):
        return None
    return node


def _summary(result: Mapping[str, Any]) -> dict[str, Any]:
    checks: list[tuple[str, Mapping[str, Any]]] = []

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, Mapping):
            if "expected" in node and "value" in node:
                checks.append((prefix, node))
                return
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))

    for obj in ("electrons", "muons", "jets", "taus", "met"):
        walk(result.get(obj, {}), obj)
    failed = [name for name, c in checks if not c.get("pass")]
    return {"n_checks": len(checks), "n_pass": len(checks) - len(failed), "failed": failed}


def run_validation(
    inputs: dict[str, dict[str, list[str]]], out_json: Path, figures_dir: Path | None, progress: bool = True
) -> dict[str, Any]:
    """Validate the fast simulation on the NanoAOD files of each role and tune; write the JSON (and figures).

    ``inputs`` maps a role (:data:`ROLES`) to {tune: [NanoAOD files]}.  Roles
    or branches that are absent give skip entries with the reason.  The JSON
    is written atomically; figures (PDF + PNG) go under ``figures_dir``.
    """
    from ..errors import ConfigError
    from ..io import write_json_atomic

    unknown = sorted(set(inputs) - set(ROLES))
    if unknown:
        raise ConfigError(f"validate-detector: unknown role '{unknown[0]}' (known: {', '.join(ROLES)})")

    def say(msg: str) -> None:
        if progress:
            print(f"validate-detector: {msg}", file=sys.stderr, flush=True)

    skip = Skips()
    data: dict[str, dict[str, RoleData]] = {}
    for role in ROLES:
        if role not in inputs:
            skip(role, f"no {role} sample given")
            continue
        for tune, files in sorted(inputs[role].items()):
            if not files:
                skip(f"{role}.{tune}", "no files given")
                continue
            say(f"reading {role}/{tune} ({len(files)} file{'s' if len(files) != 1 else ''})")
            data.setdefault(role, {})[tune] = read_role(files, ROLE_BRANCHES[role])
    steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("electrons", lambda: validate_electrons(data.get("zee", {}), skip)),
        ("muons", lambda: validate_muons(data, skip)),
        ("jets", lambda: validate_jets(data, skip)),
        ("taus", lambda: validate_taus(data, skip)),
        ("met", lambda: validate_met(data, skip)),
    ]
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "pass_rule": PASS_RULE,
        "estimators": {
            "core_fit": f"iterative unbinned ML fit of a Gaussian truncated to mu +- {NSIGMA_CORE:g} sigma (iminuit), window re-centred "
            "until stable, started from median and (P75-P25)/1.349; errors from HESSE",
            "eiqr": "(P75 - P25)/1.349",
            "relative_resolution": "core sigma / core mu of pT_reco/pT_true",
            "min_entries": MIN_ENTRIES,
        },
        "inputs": {role: {tune: d.files for tune, d in tunes.items()} for role, tunes in data.items()},
        "n_events": {role: {tune: d.n_events for tune, d in tunes.items()} for role, tunes in data.items()},
    }
    for name, step in steps:
        say(f"measuring {name}")
        result[name] = step()
    result["skipped"] = skip.items
    result["summary"] = _summary(result)
    result = _clean(result)
    if figures_dir is not None:
        from ..plots.detector import draw_all

        say(f"drawing figures in {figures_dir}")
        result["figures"] = [str(p) for p in draw_all(result, Path(figures_dir))]
    write_json_atomic(result, Path(out_json))
    say(f"{result['summary']['n_pass']}/{result['summary']['n_checks']} checks inside expectations; wrote {out_json}")
    return result
