"""Calorimeter response: EM and hadronic sections, non-compensation, material.

Each neutral particle (and each charged particle without a track) becomes a
deposit whose energy is drawn from the response of its calorimeter section.
Particle flow then calibrates deposits on average (see :mod:`.pflow`).
"""

from __future__ import annotations

import numpy as np

from .tune import Tune

FORWARD_ETA = 3.2


def em_resolution(e: np.ndarray, eta: np.ndarray, tune: Tune) -> np.ndarray:
    """Absolute EM energy resolution [GeV]: stochastic (+) constant (+) noise."""
    stoch = np.where(np.abs(eta) > FORWARD_ETA, tune.em_stochastic_forward, tune.em_stochastic)
    return np.sqrt((stoch**2) * e + (tune.em_constant * e) ** 2 + tune.em_noise**2)


def had_resolution(e: np.ndarray, eta: np.ndarray, tune: Tune) -> np.ndarray:
    """Absolute hadronic energy resolution [GeV] (stochastic (+) constant)."""
    stoch = np.where(np.abs(eta) > FORWARD_ETA, tune.had_stochastic_forward, tune.had_stochastic)
    return np.sqrt((stoch**2) * e + (tune.had_constant * e) ** 2)


def hadron_response(e: np.ndarray, tune: Tune) -> np.ndarray:
    """Mean response to a hadron of energy e: R = 1 - (1 - h/e)(1 - F_em), Groom's F_em."""
    f_em = 1.0 - np.power(np.maximum(e, 1.0), tune.had_k - 1.0)
    return 1.0 - (1.0 - tune.had_h_over_e) * (1.0 - f_em)


def measure_em(e: np.ndarray, eta: np.ndarray, tune: Tune, rng: np.random.Generator) -> np.ndarray:
    """Measured energy of an EM shower: material loss upstream, scale and resolution."""
    loss = rng.exponential(tune.em_material_loss, len(e))
    deposited = e * np.clip(1.0 - loss, 0.0, 1.0) * tune.em_scale
    measured = deposited + em_resolution(e, eta, tune) * rng.standard_normal(len(e))
    return np.maximum(measured, 0.0)


def measure_hadron(e: np.ndarray, eta: np.ndarray, tune: Tune, rng: np.random.Generator) -> np.ndarray:
    """Measured energy of a hadron shower: non-compensating response and resolution."""
    mean = e * hadron_response(e, tune) * tune.had_scale
    measured = mean + had_resolution(e, eta, tune) * rng.standard_normal(len(e))
    return np.maximum(measured, 0.0)


def calibrate_hadron(measured: np.ndarray, tune_for_calibration: Tune) -> np.ndarray:
    """Particle-flow hadron calibration: invert the *nominal* mean response (fixed-point)."""
    e = measured.copy()
    for _ in range(6):
        e = measured / hadron_response(np.maximum(e, 1e-3), tune_for_calibration)
    return e
