"""The 27 inputs of the di-tau mass regression (seed 001), the classical estimators and the training table.

The inputs are those of the seed's model (DNN1 of DL_for_HTT_mass, as
documented with the published models in lucastorterotot/DiTau_ML_mass), in
the seed's order, computed from the skim table of :mod:`hepchain.skim.ditau`:

===============================================  =====  =====================================================
``tau1_pt``, ``tau1_eta``, ``tau1_phi``          GeV    leg 1 (the light lepton in mu tau_h / e tau_h, the
                                                        electron in e mu, the higher-pT tau_h in tau_h tau_h)
``tau2_pt``, ``tau2_eta``, ``tau2_phi``          GeV    leg 2
``jet1_pt``, ``jet1_eta``, ``jet1_phi``          GeV    leading selected jet (pT > 30 GeV, |eta| < 4.7); 0s if none
``jet2_pt``, ``jet2_eta``, ``jet2_phi``          GeV    subleading selected jet; 0s if none
``remaining_jets_pt``, ``_eta``, ``_phi``        GeV    vector sum of the other selected jets ("additional
                                                        hadronic activity"); 0s if none
``remaining_jets_N``                                    number of those jets
``MET_pt``, ``MET_phi``                          GeV    missing transverse momentum (PF MET here; PuppiMET in
                                                        the seed)
``MET_covXX``, ``MET_covXY``, ``MET_covYY``      GeV^2  MET covariance matrix
``mT1``, ``mT2``                                 GeV    m_T(leg, MET)
``mTtt``                                         GeV    m_T(leg 1, leg 2)
``mTtot``                                        GeV    sqrt(mT1^2 + mT2^2 + mTtt^2)
``PU_npvsGood``                                         good reconstructed vertices (pile-up)
``N_neutrinos``                                         neutrinos of the channel: 2 tau_h tau_h, 3 mu/e tau_h,
                                                        4 e mu (the seed's channel input)
===============================================  =====  =====================================================

with m_T(A, B) = sqrt(2 pT_A pT_B (1 - cos(phi_A - phi_B))) (seed, slide
"target and inputs").  Absent jets are zeros, as in the seed's inputs (pT 0
marks them); the remaining-activity eta is 0 where its pT is 0.

Target (:data:`TARGETS`): ``m_true``, the generated resonance mass (the seed
regresses the mass itself, with a MAPE-type loss; no ratio target).  Rows
without a generated H or Z (collision data, other processes) keep NaN there.

Beside the inputs the table carries (:data:`AUX_COLUMNS`) what the classical
baselines and the per-channel metrics need: ``channel``, ``pt_true``, the legs'
masses, types (11 e, 13 mu, 15 tau_h) and decay modes, the MET significance,
``njets``, ``npvs``, and the classical estimators ``m_vis`` (visible mass),
``m_col`` (collinear mass, NaN where the approximation fails) with
``collinear_ok``.  The transverse masses are inputs already.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import ConfigError, EmptySelectionError, HepchainError
from .assemble import bookkeeping, check_finite_features, sample_names, sample_weight
from .spec import Feature, FeatureFunction, FeatureSpec, Table
from .vh import collinear_fractions, four_momentum, invariant_mass

Array = np.ndarray

#: Neutrinos of each channel code (0 tt, 1 mt, 2 et, 3 em), the seed's ``N_neutrinos_reco``.
NEUTRINOS_PER_CHANNEL: tuple[int, ...] = (2, 3, 3, 4)


# --------------------------------------------------------------------------- physics helpers


def transverse_mass(pt1: Array, phi1: Array, pt2: Array, phi2: Array) -> Array:
    """m_T(A, B) = sqrt(2 pT_A pT_B (1 - cos(phi_A - phi_B))) (seed 001; massless transverse mass)."""
    pt1, phi1, pt2, phi2 = (np.asarray(v, dtype=np.float64) for v in (pt1, phi1, pt2, phi2))
    return np.sqrt(np.maximum(2.0 * pt1 * pt2 * (1.0 - np.cos(phi1 - phi2)), 0.0))


def total_transverse_mass(mt1: Array, mt2: Array, mt12: Array) -> Array:
    """m_T^tot = sqrt(m_T(1, MET)^2 + m_T(2, MET)^2 + m_T(1, 2)^2) (seed 001; CMS MSSM H->tautau)."""
    return np.sqrt(np.asarray(mt1) ** 2 + np.asarray(mt2) ** 2 + np.asarray(mt12) ** 2)


def n_neutrinos(channel: Array) -> Array:
    """Neutrinos of the di-tau decay given the channel code: 2 (tau_h tau_h), 3 (mu/e tau_h), 4 (e mu)."""
    channel = np.asarray(channel)
    if channel.size and (channel.min() < 0 or channel.max() >= len(NEUTRINOS_PER_CHANNEL)):
        raise HepchainError(f"channel codes must be 0..3, got values in [{channel.min()}, {channel.max()}]")
    return np.asarray(NEUTRINOS_PER_CHANNEL, dtype=np.float64)[channel.astype(np.int64)]


def momentum_to_pt_eta_phi(px: Array, py: Array, pz: Array) -> tuple[Array, Array, Array]:
    """(pT, eta, phi) of a momentum; eta = asinh(pz / pT), set to 0 (and phi to 0) where pT = 0."""
    px, py, pz = (np.asarray(v, dtype=np.float64) for v in (px, py, pz))
    pt = np.hypot(px, py)
    safe = np.where(pt > 0, pt, 1.0)
    eta = np.where(pt > 0, np.arcsinh(pz / safe), 0.0)
    phi = np.where(pt > 0, np.arctan2(py, px), 0.0)
    return pt, eta, phi


def visible_mass(
    pt1: Array, eta1: Array, phi1: Array, m1: Array, pt2: Array, eta2: Array, phi2: Array, m2: Array
) -> Array:
    """m_vis = invariant mass of the two visible legs, sqrt((E1 + E2)^2 - |p1 + p2|^2)."""
    return invariant_mass(four_momentum(pt1, eta1, phi1, m1), four_momentum(pt2, eta2, phi2, m2))


def collinear_mass_ditau(
    pt1: Array,
    eta1: Array,
    phi1: Array,
    m1: Array,
    pt2: Array,
    eta2: Array,
    phi2: Array,
    m2: Array,
    met_pt: Array,
    met_phi: Array,
) -> tuple[Array, Array]:
    """Collinear-approximation di-tau mass m_col = m_vis / sqrt(x1 x2) and whether it is defined.

    Collinear approximation (Ellis, Hinchliffe, Soldate, van der Bij, Nucl. Phys.
    B297 (1988) 221; Plehn, Rainwater, Zeppenfeld, hep-ph/9911385): the neutrinos
    of each tau fly along its visible products, which carry a fraction x_i of
    the tau momentum, so MET = (1/x1 - 1) pT(leg1) + (1/x2 - 1) pT(leg2), solved
    per event in closed form (:func:`hepchain.features.vh.collinear_fractions`).
    Returns ``(m_col, ok)``; ``m_col`` is NaN where ``ok`` is False (legs
    back-to-back or collinear in the transverse plane, or x1 <= 0 or x2 <= 0).
    Solutions with x > 1 are kept as computed.
    """
    p1 = four_momentum(pt1, eta1, phi1, m1)
    p2 = four_momentum(pt2, eta2, phi2, m2)
    met_pt, met_phi = np.asarray(met_pt, dtype=np.float64), np.asarray(met_phi, dtype=np.float64)
    x1, x2, ok = collinear_fractions(p1[0], p1[1], p2[0], p2[1], met_pt * np.cos(met_phi), met_pt * np.sin(met_phi))
    m_vis = invariant_mass(p1, p2)
    with np.errstate(invalid="ignore"):
        m_col = np.where(ok, m_vis / np.sqrt(np.where(ok, x1 * x2, 1.0)), np.nan)
    return m_col, ok


# --------------------------------------------------------------------------- table access


def _col(table: Table, name: str) -> Array:
    return np.asarray(table[name], dtype=np.float64)


def _zero_nan(table: Table, name: str) -> Array:
    return np.nan_to_num(_col(table, name), nan=0.0)


def _copy(column: str, *, zero_missing: bool = False) -> FeatureFunction:
    if zero_missing:
        return lambda t: _zero_nan(t, column)
    return lambda t: _col(t, column)


def _aha(t: Table) -> tuple[Array, Array, Array]:
    return momentum_to_pt_eta_phi(_col(t, "aha_px"), _col(t, "aha_py"), _col(t, "aha_pz"))


def _mt_leg_met(leg: str) -> FeatureFunction:
    return lambda t: transverse_mass(_col(t, f"{leg}_pt"), _col(t, f"{leg}_phi"), _col(t, "met_pt"), _col(t, "met_phi"))


def _mt_legs(t: Table) -> Array:
    return transverse_mass(_col(t, "leg1_pt"), _col(t, "leg1_phi"), _col(t, "leg2_pt"), _col(t, "leg2_phi"))


def _mt_tot(t: Table) -> Array:
    return total_transverse_mass(_mt_leg_met("leg1")(t), _mt_leg_met("leg2")(t), _mt_legs(t))


_LEGS_MET = ("leg1_pt", "leg1_phi", "leg2_pt", "leg2_phi", "met_pt", "met_phi")
_AHA = ("aha_px", "aha_py", "aha_pz")
_LEG_NAMES = {"leg1": "tau1", "leg2": "tau2"}
_LEG_TEXT = {
    "leg1": "leg 1 (light lepton in mu/e tau_h, electron in e mu, higher-pT tau_h in tau_h tau_h)",
    "leg2": "leg 2 (tau_h in mu/e tau_h, muon in e mu, lower-pT tau_h in tau_h tau_h)",
}


def _features() -> tuple[Feature, ...]:
    out: list[Feature] = []
    for leg, name in _LEG_NAMES.items():
        text = _LEG_TEXT[leg]
        out += [
            Feature(f"{name}_pt", "GeV", f"visible pT of {text}", _copy(f"{leg}_pt"), (f"{leg}_pt",)),
            Feature(f"{name}_eta", "", f"pseudorapidity of {text}", _copy(f"{leg}_eta"), (f"{leg}_eta",)),
            Feature(f"{name}_phi", "rad", f"azimuth of {text}", _copy(f"{leg}_phi"), (f"{leg}_phi",)),
        ]
    for jet, text in (("jet1", "leading"), ("jet2", "subleading")):
        for f, unit, what in (("pt", "GeV", "pT"), ("eta", "", "pseudorapidity"), ("phi", "rad", "azimuth")):
            out.append(
                Feature(
                    f"{jet}_{f}",
                    unit,
                    f"{what} of the {text} jet (pT > 30 GeV, |eta| < 4.7, dR > 0.5 from the legs); 0 if absent",
                    _copy(f"{jet}_{f}", zero_missing=True),
                    (f"{jet}_{f}",),
                )
            )
    aha_text = "vector sum of the selected jets beyond the two leading (remaining hadronic activity)"
    out += [
        Feature("remaining_jets_pt", "GeV", f"pT of the {aha_text}; 0 if none", lambda t: _aha(t)[0], _AHA),
        Feature("remaining_jets_eta", "", f"pseudorapidity of the {aha_text}; 0 if pT = 0", lambda t: _aha(t)[1], _AHA),
        Feature("remaining_jets_phi", "rad", f"azimuth of the {aha_text}; 0 if pT = 0", lambda t: _aha(t)[2], _AHA),
        Feature(
            "remaining_jets_N", "", "number of selected jets beyond the two leading", _copy("aha_njets"), ("aha_njets",)
        ),
        Feature("MET_pt", "GeV", "missing transverse momentum (PF MET)", _copy("met_pt"), ("met_pt",)),
        Feature("MET_phi", "rad", "azimuth of the missing transverse momentum", _copy("met_phi"), ("met_phi",)),
        Feature("MET_covXX", "GeV^2", "MET covariance, xx element", _copy("met_covXX"), ("met_covXX",)),
        Feature("MET_covXY", "GeV^2", "MET covariance, xy element", _copy("met_covXY"), ("met_covXY",)),
        Feature("MET_covYY", "GeV^2", "MET covariance, yy element", _copy("met_covYY"), ("met_covYY",)),
        Feature(
            "mT1",
            "GeV",
            "m_T(leg 1, MET) = sqrt(2 pT1 MET (1 - cos dphi))",
            _mt_leg_met("leg1"),
            ("leg1_pt", "leg1_phi", "met_pt", "met_phi"),
        ),
        Feature(
            "mT2",
            "GeV",
            "m_T(leg 2, MET) = sqrt(2 pT2 MET (1 - cos dphi))",
            _mt_leg_met("leg2"),
            ("leg2_pt", "leg2_phi", "met_pt", "met_phi"),
        ),
        Feature(
            "mTtt",
            "GeV",
            "m_T(leg 1, leg 2) = sqrt(2 pT1 pT2 (1 - cos dphi)) (not m_T of the pair with MET)",
            _mt_legs,
            ("leg1_pt", "leg1_phi", "leg2_pt", "leg2_phi"),
        ),
        Feature("mTtot", "GeV", "total transverse mass sqrt(mT1^2 + mT2^2 + mTtt^2)", _mt_tot, _LEGS_MET),
        Feature("PU_npvsGood", "", "number of good reconstructed primary vertices", _copy("npvs_good"), ("npvs_good",)),
        Feature(
            "N_neutrinos",
            "",
            "neutrinos expected from the channel: 2 tau_h tau_h, 3 mu tau_h / e tau_h, 4 e mu",
            lambda t: n_neutrinos(np.asarray(t["channel"])),
            ("channel",),
        ),
    ]
    return tuple(out)


#: The 27 inputs of the seed's di-tau mass model, in its order.
DITAU_SPEC = FeatureSpec("ditau", _features())

#: Regression target(s): the generated resonance mass.
TARGETS: tuple[str, ...] = ("m_true",)

#: Columns for baselines and per-channel metrics (not network inputs), with their dtypes.
AUX_COLUMNS: dict[str, str] = {
    "channel": "int32",
    "pt_true": "float64",
    "leg1_mass": "float64",
    "leg2_mass": "float64",
    "leg1_type": "int32",
    "leg2_type": "int32",
    "leg1_decay_mode": "int32",
    "leg2_decay_mode": "int32",
    "met_significance": "float64",
    "njets": "int32",
    "npvs": "int32",
    "m_vis": "float64",
    "m_col": "float64",
    "collinear_ok": "bool",
}

_LEG_P4 = tuple(f"{leg}_{f}" for leg in ("leg1", "leg2") for f in ("pt", "eta", "phi", "mass"))
_BASELINES = ("m_vis", "m_col", "collinear_ok")
_SKIM_AUX = tuple(c for c in AUX_COLUMNS if c not in _BASELINES)


def baseline_columns(table: Table) -> dict[str, np.ndarray]:
    """The classical estimators of a skim table: ``m_vis``, ``m_col`` (NaN where undefined), ``collinear_ok``."""
    legs = [_col(table, c) for c in _LEG_P4]
    m_col, ok = collinear_mass_ditau(*legs, _col(table, "met_pt"), _col(table, "met_phi"))
    return {"m_vis": visible_mass(*legs), "m_col": m_col, "collinear_ok": np.asarray(ok, dtype=bool)}


#: Columns of :func:`build_feature_table`, in order.
OUTPUT_COLUMNS: tuple[str, ...] = (*DITAU_SPEC.names, *TARGETS, *AUX_COLUMNS, "weight", "sample", "event", "fold")



def build_feature_table(
    skims: Mapping[str, Mapping[str, np.ndarray]],
    *,
    n_folds: int,
    seed: int,
    weights: Mapping[str, float] | None = None,
) -> dict[str, np.ndarray]:
    """Inputs, target, auxiliary columns, weights, sample index and folds of all samples, concatenated.

    ``skims[sample]`` is a skim table of :mod:`hepchain.skim.ditau`; samples are
    taken in :func:`sample_names` order and ``sample`` is the int32 index in it;
    ``weight = genWeight * weights[sample]`` (factor 1 where not given); ``fold``
    from :func:`~hepchain.features.vh.assign_folds`.  Raises
    :class:`~hepchain.errors.HepchainError` naming the feature and sample if an
    input is NaN or infinite, :class:`~hepchain.errors.ConfigError` for a weight
    of an unknown sample, and :class:`~hepchain.errors.EmptySelectionError` if no
    sample has any event.
    """
    weights = dict(weights or {})
    names = sample_names(skims)
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise ConfigError(
            f"weights given for sample(s) {', '.join(repr(u) for u in unknown)} without a skim; "
            f"samples: {', '.join(names)}"
        )
    parts: list[dict[str, np.ndarray]] = []
    for index, sample in enumerate(names):
        table = skims[sample]
        source = f"skim of sample '{sample}'"
        for column in (*TARGETS, "genWeight", "event", *_LEG_P4, "met_pt", "met_phi", *_SKIM_AUX):
            if column not in table:
                raise HepchainError(f"{source}: column '{column}' is missing")
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):  # bad inputs are reported below
            part = DITAU_SPEC.compute_arrays(table, source=source)
        n = len(np.asarray(table["event"]))
        check_finite_features(part, sample, "event(s)")
        weight = sample_weight(table, n, float(weights.get(sample, 1.0)), sample, "event(s)")
        for target in TARGETS:
            part[target] = np.asarray(table[target], dtype=np.float64)
        baselines = baseline_columns(table)
        for column, dtype in AUX_COLUMNS.items():
            values = baselines[column] if column in _BASELINES else table[column]
            part[column] = np.asarray(values, dtype=dtype)
        part.update(bookkeeping(table["event"], weight, index, sample, n_folds, seed))
        parts.append(part)
    total = sum(len(p["event"]) for p in parts)
    if total == 0:
        raise EmptySelectionError(
            f"feature table is empty: no selected events in samples {', '.join(names) or 'none given'}"
        )
    return {c: np.concatenate([p[c] for p in parts]) for c in OUTPUT_COLUMNS}
