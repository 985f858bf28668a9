"""Inputs, targets and the training table of the jet-calibration study (seed 002).

The seed's network is a Deep Sets model "constructed using 2 NN, 1 for jet
constituents, 1 for jet 4-vector" (Zaheer et al., arXiv:1703.06114; Energy
Flow Networks, Komiske et al., arXiv:1810.05165), predicting per jet a
Gaussian (mu, sigma) of the calibration, trained with the Gaussian NLL plus
f * sigma_A, the width of the dijet asymmetry (in-situ JER).  Rows are the
two leading jets of each selected dijet event (:mod:`hepchain.skim.jets`).

Groups of :data:`JETS_SPEC`:

``event`` (one value per row, i.e. per jet; the jet branch of the network)
    the jet 4-vector as log pT, eta, log E and m/pT (the seed's (px, py, pT,
    eta, E) without the azimuth, which carries no calibration information),
    and the GSC-like variables of the seed's backup table (ATL-PHYS-PUB-2018-013
    Table 1) in their NanoAOD / hepchain form: rawFactor, area, the five PF
    energy fractions, nConstituents, nTracks (N_track), trackWidth (W_track,
    -1 without tracks), emFrac (f_LAr-like, -1 without calorimeter signal),
    nElectrons, nMuons (stand-in for N_segments), and the pile-up
    variables rho and N_PV.

``constituents`` (K per jet, zero-padded, ``constituents_mask`` marks real ones)
    EFN-style per-particle inputs: the pT fraction z = pT / pT_raw of the jet
    (pT_raw = pT (1 - rawFactor), the uncorrected constituent sum, so that the
    fractions of a jet add up to about 1 and do not depend on the jet energy
    correction), delta eta and delta phi to the jet axis, ln(pT / GeV), the
    charge, the PF type one-hot (charged hadron, neutral hadron, photon,
    electron, muon; other types all zero), fromPV, d0 and dz [cm].

Targets (:data:`TARGETS`): ``calib_factor`` = pT_true / pT_reco (the seed's
target: the mean of the predicted Gaussian is the calibration factor; NaN for
unmatched jets) and ``gen_pt``.  :data:`AUXILIARY` columns ride along for the
loss and the evaluation (matching flag, reco pT and eta, the dijet pairing:
``jet_rank``, ``is_probe``, ``pt_avg``, ``asymmetry``, region flags, pT3).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import ConfigError, EmptySelectionError, HepchainError
from .assemble import bookkeeping, check_finite_features, sample_names, sample_weight
from .spec import Feature, FeatureFunction, FeatureSpec, Table, n_rows

Array = np.ndarray

#: Third-jet veto parameters of the seed (ATLAS EPJC 81 (2021) 689): pT3 < max(25 GeV, 0.25 pT_avg).
THIRD_JET_PT_FLOOR = 25.0
THIRD_JET_FRACTION = 0.25

#: |pdgId| of the PF types, in one-hot order (hepchain.nanoaod.CONTRACT["PFCands"]["pdgId"]).
PF_TYPES: tuple[tuple[str, int], ...] = (
    ("charged_hadron", 211),
    ("neutral_hadron", 130),
    ("photon", 22),
    ("electron", 11),
    ("muon", 13),
)


# --------------------------------------------------------------------------- physics helpers


def dijet_asymmetry(pt_probe: Array, pt_ref: Array) -> Array:
    """Dijet asymmetry A = (pT_ref - pT_probe) / pT_avg with pT_avg = (pT_ref + pT_probe) / 2.

    Definition of the seed (after ATLAS, EPJC 81 (2021) 689), where reference
    and probe are assigned at random to the two leading jets, so that <A> = 0
    and sigma_A is that of (pT1 - pT2) / pT_avg; the relative JER follows as
    sigma(pT)/pT = sigma_A / sqrt(2) (see :func:`relative_jer`).
    """
    pt_probe = np.asarray(pt_probe, dtype=np.float64)
    pt_ref = np.asarray(pt_ref, dtype=np.float64)
    return (pt_ref - pt_probe) / (0.5 * (pt_ref + pt_probe))


def third_jet_veto(
    pt3: Array, pt_avg: Array, pt_floor: float = THIRD_JET_PT_FLOOR, fraction: float = THIRD_JET_FRACTION
) -> Array:
    """True where the event passes the third-jet veto pT3 < max(pt_floor, fraction * pT_avg) (strict).

    Seed 002 / ATLAS EPJC 81 (2021) 689 (defaults 25 GeV and 0.25); pT3 = 0 for
    events without a third jet, which always pass.
    """
    pt3 = np.asarray(pt3, dtype=np.float64)
    pt_avg = np.asarray(pt_avg, dtype=np.float64)
    return pt3 < np.maximum(pt_floor, fraction * pt_avg)


def relative_jer(sigma_asymmetry: Array) -> Array:
    """Relative JER sigma(pT)/pT = sigma_A / sqrt(2), both jets in the same region (seed; ATLAS EPJC 81 689)."""
    return np.asarray(sigma_asymmetry, dtype=np.float64) / np.sqrt(2.0)


def signed_delta_phi(phi: Array, phi_axis: Array) -> Array:
    """phi - phi_axis wrapped into [-pi, pi)."""
    d = np.asarray(phi, dtype=np.float64) - np.asarray(phi_axis, dtype=np.float64)
    return np.mod(d + np.pi, 2 * np.pi) - np.pi


def jet_energy(pt: Array, eta: Array, mass: Array) -> Array:
    """E = sqrt((pT cosh eta)^2 + m^2)."""
    pt, eta, mass = (np.asarray(v, dtype=np.float64) for v in (pt, eta, mass))
    return np.sqrt((pt * np.cosh(eta)) ** 2 + mass * mass)


def raw_pt(pt: Array, raw_factor: Array) -> Array:
    """Uncorrected jet pT = pT (1 - rawFactor) (NanoAOD's definition of rawFactor)."""
    return np.asarray(pt, dtype=np.float64) * (1.0 - np.asarray(raw_factor, dtype=np.float64))


def pf_type_one_hot(pdg_id: Array) -> Array:
    """One-hot ``(..., 5)`` of |pdgId| over :data:`PF_TYPES` (211, 130, 22, 11, 13); other ids give zeros."""
    magnitude = np.abs(np.asarray(pdg_id))
    return np.stack([magnitude == code for _, code in PF_TYPES], axis=-1)


def calibration_factor(pt_true: Array, pt_reco: Array) -> Array:
    """The seed's regression target pT_true / pT_reco (NaN where pT_true is NaN, i.e. unmatched)."""
    return np.asarray(pt_true, dtype=np.float64) / np.asarray(pt_reco, dtype=np.float64)


# --------------------------------------------------------------------------- feature functions


def _col(table: Table, name: str) -> Array:
    return np.asarray(table[name], dtype=np.float64)


def _mask(table: Table) -> Array:
    return np.asarray(table["constituents_mask"], dtype=bool)


def _masked(table: Table, values: Array) -> Array:
    """Zero outside ``constituents_mask``."""
    return np.where(_mask(table), values, 0.0)


def _pt_frac(t: Table) -> Array:
    raw = raw_pt(_col(t, "jet_pt"), _col(t, "jet_rawFactor"))[:, None]
    pt = _col(t, "constituents_pt")
    return _masked(t, np.divide(pt, raw, out=np.zeros_like(pt), where=raw > 0))


def _deta(t: Table) -> Array:
    return _masked(t, _col(t, "constituents_eta") - _col(t, "jet_eta")[:, None])


def _dphi(t: Table) -> Array:
    return _masked(t, signed_delta_phi(_col(t, "constituents_phi"), _col(t, "jet_phi")[:, None]))


def _log_pt(t: Table) -> Array:
    pt = _col(t, "constituents_pt")
    mask = _mask(t) & (pt > 0)
    return np.where(mask, np.log(np.where(mask, pt, 1.0)), 0.0)


def _one_hot(index: int) -> FeatureFunction:
    return lambda t: _masked(t, pf_type_one_hot(np.asarray(t["constituents_pdgId"]))[..., index])


def _copy_set(column: str) -> FeatureFunction:
    return lambda t: _masked(t, _col(t, column))


def _copy(column: str) -> FeatureFunction:
    return lambda t: _col(t, column)


_K = (64,)
_C = ("constituents_mask",)


def _jet_feature(name: str, column: str, unit: str, description: str) -> Feature:
    return Feature(name, unit, description, _copy(column), (column,), per="jet")


def _set_feature(name: str, unit: str, description: str, function: FeatureFunction, inputs: tuple[str, ...]) -> Feature:
    return Feature(
        name,
        unit,
        description,
        function,
        (*inputs, *_C),
        per="constituent",
        shape=_K,
        group="constituents",
        dtype="float32",
    )


JETS_SPEC = FeatureSpec(
    "jets",
    (
        Feature(
            "log_pt",
            "",
            "ln(jet pT / GeV), calibrated NanoAOD pT",
            lambda t: np.log(_col(t, "jet_pt")),
            ("jet_pt",),
            per="jet",
        ),
        _jet_feature("eta", "jet_eta", "", "jet pseudorapidity"),
        Feature(
            "log_energy",
            "",
            "ln(jet E / GeV), E from pT, eta and mass",
            lambda t: np.log(jet_energy(_col(t, "jet_pt"), _col(t, "jet_eta"), _col(t, "jet_mass"))),
            ("jet_pt", "jet_eta", "jet_mass"),
            per="jet",
        ),
        Feature(
            "mass_over_pt",
            "",
            "jet mass / jet pT",
            lambda t: _col(t, "jet_mass") / _col(t, "jet_pt"),
            ("jet_mass", "jet_pt"),
            per="jet",
        ),
        _jet_feature("raw_factor", "jet_rawFactor", "", "1 - raw pT / pT (jet energy correction, NanoAOD rawFactor)"),
        _jet_feature("area", "jet_area", "", "jet catchment area"),
        _jet_feature("ch_hef", "jet_chHEF", "", "charged-hadron energy fraction"),
        _jet_feature("ne_hef", "jet_neHEF", "", "neutral-hadron energy fraction"),
        _jet_feature("ch_em_ef", "jet_chEmEF", "", "electron (charged EM) energy fraction"),
        _jet_feature("ne_em_ef", "jet_neEmEF", "", "photon (neutral EM) energy fraction"),
        _jet_feature("mu_ef", "jet_muEF", "", "muon energy fraction"),
        _jet_feature("n_constituents", "jet_nConstituents", "", "number of PF constituents"),
        _jet_feature("n_tracks", "jet_nTracks", "", "PV tracks with pT > 1 GeV in the jet (ATLAS N_track)"),
        _jet_feature(
            "track_width",
            "jet_trackWidth",
            "",
            "pT-weighted mean dR of the tracks to the jet axis, -1 without tracks (ATLAS W_track)",
        ),
        _jet_feature(
            "em_frac",
            "jet_emFrac",
            "",
            "EM-section share of the jet's calorimeter signal, -1 without signal (ATLAS f_LAr-like)",
        ),
        _jet_feature("n_electrons", "jet_nElectrons", "", "PF electrons in the jet"),
        _jet_feature("n_muons", "jet_nMuons", "", "PF muons in the jet (stand-in for ATLAS N_segments)"),
        Feature(
            "rho", "GeV", "median pT density of the event (fixedGridRhoFastjetCentralNeutral)", _copy("rho"), ("rho",)
        ),
        Feature("npvs", "", "number of reconstructed primary vertices (PV_npvs)", _copy("npvs"), ("npvs",)),
        _set_feature(
            "const_pt_frac",
            "",
            "constituent pT / raw jet pT (EFN z_i)",
            _pt_frac,
            ("constituents_pt", "jet_pt", "jet_rawFactor"),
        ),
        _set_feature("const_deta", "", "constituent eta - jet eta", _deta, ("constituents_eta", "jet_eta")),
        _set_feature(
            "const_dphi",
            "rad",
            "constituent phi - jet phi, wrapped into [-pi, pi)",
            _dphi,
            ("constituents_phi", "jet_phi"),
        ),
        _set_feature("const_log_pt", "", "ln(constituent pT / GeV)", _log_pt, ("constituents_pt",)),
        _set_feature("const_charge", "", "electric charge", _copy_set("constituents_charge"), ("constituents_charge",)),
        *(
            _set_feature(
                f"const_is_{name}",
                "",
                f"PF type is {name.replace('_', ' ')} (|pdgId| = {code})",
                _one_hot(i),
                ("constituents_pdgId",),
            )
            for i, (name, code) in enumerate(PF_TYPES)
        ),
        _set_feature(
            "const_from_pv",
            "",
            "vertex association fromPV (3 primary vertex, 0 pile-up or neutral)",
            _copy_set("constituents_fromPV"),
            ("constituents_fromPV",),
        ),
        _set_feature(
            "const_d0",
            "cm",
            "transverse impact parameter (0 for neutrals)",
            _copy_set("constituents_d0"),
            ("constituents_d0",),
        ),
        _set_feature(
            "const_dz",
            "cm",
            "longitudinal impact parameter (0 for neutrals)",
            _copy_set("constituents_dz"),
            ("constituents_dz",),
        ),
        Feature(
            "constituents_mask",
            "",
            "true for real constituents, false for padding",
            _mask,
            _C,
            per="constituent",
            shape=_K,
            group="constituents",
            dtype="bool",
        ),
    ),
)

#: Target columns (copied from the skim): the seed's calibration factor and the true pT.
TARGETS: tuple[str, ...] = ("calib_factor", "gen_pt")

#: Skim columns copied to the feature table for the loss (dijet pairing) and the evaluation.
AUXILIARY: tuple[str, ...] = (
    "matched",
    "jet_pt",
    "jet_eta",
    "jet_rank",
    "is_probe",
    "pt_avg",
    "asymmetry",
    "pt3",
    "in_probe_region",
    "jet_in_probe_region",
)


def spec_for(n_constituents: int) -> FeatureSpec:
    """:data:`JETS_SPEC` with K = ``n_constituents`` constituents per jet (the skim's ``n_constituents``)."""
    if n_constituents == _K[0]:
        return JETS_SPEC
    from dataclasses import replace

    shape = (int(n_constituents),)
    return FeatureSpec(
        JETS_SPEC.study, tuple(replace(f, shape=shape) if f.group == "constituents" else f for f in JETS_SPEC.features)
    )



def build_feature_table(
    skims: Mapping[str, Mapping[str, np.ndarray]],
    *,
    n_folds: int,
    seed: int,
    weights: Mapping[str, float] | None = None,
) -> dict[str, np.ndarray]:
    """Features, targets, auxiliary columns, weights, sample index, events and folds of all samples.

    ``skims[sample]`` is a skim table of :mod:`hepchain.skim.jets`; K is read
    from its ``constituents_mask``.  ``weight = genWeight * weights[sample]``
    (1 when ``weights`` is None; a given mapping must name every sample).
    ``fold`` comes from :func:`~hepchain.features.vh.assign_folds` on the event
    number, so both jets of an event share a fold.  Samples are concatenated in
    :func:`sample_names` order.  Raises :class:`~hepchain.errors.HepchainError`
    naming the feature and the sample where a feature is NaN or infinite, and
    :class:`~hepchain.errors.EmptySelectionError` if no row is left.
    """
    names = sample_names(skims)
    if weights is not None:
        missing = [s for s in names if s not in weights]
        if missing:
            raise ConfigError(f"sample(s) {', '.join(repr(s) for s in missing)} have a skim but no weight factor")
    parts: list[dict[str, np.ndarray]] = []
    for index, sample in enumerate(names):
        table = skims[sample]
        n = n_rows(table)
        if n == 0:
            continue
        source = f"skim of sample '{sample}'"
        k = int(np.shape(table["constituents_mask"])[1]) if "constituents_mask" in table else _K[0]
        spec = spec_for(k)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # bad inputs are reported below
            arrays = spec.compute_arrays(table, source=source)
        check_finite_features(arrays, sample, "value(s)", per_row=False)
        for column in (*TARGETS, *AUXILIARY, "event"):
            if column not in table:
                raise HepchainError(f"{source}: column '{column}' is missing")
        for column in TARGETS:
            arrays[column] = np.asarray(table[column], dtype=np.float64)
        for column in AUXILIARY:
            arrays[column] = np.asarray(table[column])
        factor = 1.0 if weights is None else float(weights[sample])
        weight = sample_weight(table, n, factor, sample, "row(s)")
        arrays.update(bookkeeping(table["event"], weight, index, sample, n_folds, seed))
        parts.append(arrays)
    if not parts:
        raise EmptySelectionError(f"feature table is empty: no selected jets in samples {', '.join(names) or 'none'}")
    shapes = {tuple(np.shape(p["constituents_mask"])[1:]) for p in parts}
    if len(shapes) > 1:
        raise HepchainError(f"skims of the samples have different numbers of constituents per jet: {sorted(shapes)}")
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
