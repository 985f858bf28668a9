"""Inputs, targets and training table of the W hadronic-recoil calibration study (seed 000).

Seed 000 (M. Khandoga, "DNNs in W mass and W pT measurement", IN2P3/IRFU ML
workshop, 2020) regresses the hadronic recoil of low pile-up W -> mu nu events
with an MLP.  The recoil is the vector sum of all reconstructed particle-flow
objects (PFOs) except the decay lepton, ``u_T = sum pT(PFO)``, ideally
``u_T = -pT(W)``.  The seed's inputs are reproduced from the skim table of
:mod:`hepchain.skim.recoil` (every momentum in the detector frame, x and y
components as in the seed):

=================================================  =====  ====================================================
``u_x``, ``u_y``, ``u_t``                          GeV    recoil vector and magnitude (PV charged + neutral PFOs)
``u_ch_x``, ``u_ch_y``                             GeV    its charged part (charged PFOs of the primary vertex)
``u_neu_x``, ``u_neu_y``                           GeV    its neutral part (photons and neutral hadrons)
``sumet``, ``sumet_ch``, ``sumet_nh``,             GeV    scalar pT sums of the recoil PFOs: all, charged,
``sumet_gamma``                                           neutral hadrons, photons (the seed's SumET_neutralEM)
``j0_px``, ``j0_py``, ``j1_px``, ``j1_py``         GeV    leading and second jet pT components, 0 without a jet
                                                          above the skim's 20 GeV ("cut below 20 GeV")
``njets``                                                 number of selected jets
``npv``                                                   number of reconstructed primary vertices (NPV)
``n_pfo_ch``, ``n_pfo_nh``, ``n_pfo_gamma``               recoil PFO counts per type
``ch_pfo{i}_px``, ``ch_pfo{i}_py`` (i < 5)         GeV    the 5 leading charged recoil PFOs, 0 where absent
``neu_pfo{i}_px``, ``neu_pfo{i}_py`` (i < 5)       GeV    the 5 leading neutral recoil PFOs, 0 where absent
``mu_px``, ``mu_py``, ``mu_eta``                   GeV,   the selected muon
``met_px``, ``met_py``, ``tkmet_px``, ``tkmet_py`` GeV    PF MET and track MET
=================================================  =====  ====================================================

Beyond the seed's scalar list, the ``pfos`` group holds the K = 20 leading
recoil PFOs as a padded set (``pfo_px``, ``pfo_py``, ``pfo_pt``, ``pfo_eta``,
``pfo_phi`` absolute as in the seed's components, ``pfo_charge``,
``pfo_is_photon``, ``pfo_is_neutral_hadron``, mask ``pfos_mask``) for set-based
networks; an MLP uses the ``event`` group only.

Targets (:data:`TARGETS`): the seed's "pT_truth x, pT_truth y" in the recoil's
own frame and sign, i.e. the true recoil ``truth_ux, truth_uy = -pT(W)`` from
the last-copy generator W (:func:`truth_recoil`), so that the network output
replaces ``(u_x, u_y)`` one to one; NaN where the sample has no generator W
(collision data), where the table can be used for inference only.

Response and resolution (seed, and ATLAS EPJC 78 (2018) 110) use
:func:`recoil_components`: ``u_par`` along the true W direction with the sign
that makes a perfect recoil give ``u_par = pT(W)``, ``u_perp`` across it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..errors import ConfigError, EmptySelectionError, HepchainError
from .assemble import bookkeeping, check_finite_features, sample_names, sample_weight
from .spec import Feature, FeatureSpec

Array = np.ndarray
SkimTable = Mapping[str, np.ndarray]

#: Default size of the padded set of leading recoil PFOs (the skim's ``n_pfos``).
N_PFOS = 20
#: Default number of leading charged and of leading neutral PFOs given as event inputs (seed: 5 of each).
N_PFOS_SPLIT = 5

#: Regression targets: the true recoil vector -pT(W) [GeV].
TARGETS: tuple[str, ...] = ("truth_ux", "truth_uy")


# --------------------------------------------------------------------------- physics helpers


def transverse_mass(pt1: Any, phi1: Any, pt2: Any, phi2: Any) -> Array:
    """Transverse mass of two massless objects: ``m_T = sqrt(2 pT1 pT2 (1 - cos(phi1 - phi2)))``.

    For W -> l nu with object 2 the MET (UA1, Phys. Lett. B 122 (1983) 103;
    ATLAS W mass, EPJC 78 (2018) 110, eq. 1).  Vectorised, float64; a tiny
    negative argument from rounding gives 0; NaN inputs give NaN.
    """
    pt1, phi1, pt2, phi2 = (np.asarray(v, dtype=np.float64) for v in (pt1, phi1, pt2, phi2))
    m2 = 2.0 * pt1 * pt2 * (1.0 - np.cos(phi1 - phi2))
    return np.sqrt(np.maximum(m2, 0.0))


def recoil_components(ux: Any, uy: Any, ref_phi: Any) -> tuple[Array, Array]:
    """Parallel and perpendicular recoil components relative to a boson direction.

    With ``e = (cos ref_phi, sin ref_phi)`` the unit vector of the reference
    (the true W, pT(W)/|pT(W)|, as in the seed)::

        u_par  = -(u_x e_x + u_y e_y)
        u_perp =   u_x e_y - u_y e_x

    Sign convention: the recoil balances the boson, ideally ``u = -pT(W)``; the
    minus sign in ``u_par`` makes a perfect recoil give ``u_par = |pT(W)|`` and
    ``u_perp = 0``, so the response is ``u_par / pT(W)`` and the seed's bias
    ``1 - u_par / pT(W)``; ``u_perp`` is the seed's ``u_x v_y - u_y v_x``, whose
    width is the resolution.  (The ATLAS lepton-projected ``u_par^l = u . l_hat``
    is ``-recoil_components(ux, uy, phi_l)[0]``.)  The same convention is used in
    :mod:`hepchain.detector.validation`.
    """
    ux, uy, ref_phi = (np.asarray(v, dtype=np.float64) for v in (ux, uy, ref_phi))
    ex, ey = np.cos(ref_phi), np.sin(ref_phi)
    return -(ux * ex + uy * ey), ux * ey - uy * ex


def truth_recoil(w_pt: Any, w_phi: Any) -> tuple[Array, Array]:
    """The true recoil ``(-pT(W)_x, -pT(W)_y)`` from the generator W (NaN stays NaN)."""
    w_pt, w_phi = np.asarray(w_pt, dtype=np.float64), np.asarray(w_phi, dtype=np.float64)
    return -w_pt * np.cos(w_phi), -w_pt * np.sin(w_phi)


# --------------------------------------------------------------------------- table access


def _col(table: SkimTable, name: str) -> Array:
    return np.asarray(table[name], dtype=np.float64)


def _x(pt: str, phi: str) -> Callable[[SkimTable], Array]:
    """x component of (pt, phi) columns, 0 where pt is NaN (absent object)."""

    def f(t: SkimTable) -> Array:
        p = _col(t, pt)
        return np.where(np.isfinite(p), np.nan_to_num(p) * np.cos(np.nan_to_num(_col(t, phi))), 0.0)

    return f


def _y(pt: str, phi: str) -> Callable[[SkimTable], Array]:
    """y component of (pt, phi) columns, 0 where pt is NaN (absent object)."""

    def f(t: SkimTable) -> Array:
        p = _col(t, pt)
        return np.where(np.isfinite(p), np.nan_to_num(p) * np.sin(np.nan_to_num(_col(t, phi))), 0.0)

    return f


def _slot(column: str, i: int, trig: Callable[[Array], Array], phi: str) -> Callable[[SkimTable], Array]:
    """``pt[:, i] * trig(phi[:, i])`` of a padded set (padding has pt 0, so gives 0)."""
    return lambda t: _col(t, column)[:, i] * trig(_col(t, phi)[:, i])


def _plain(name: str) -> Callable[[SkimTable], Array]:
    return lambda t: _col(t, name)


def u_magnitude(table: SkimTable) -> Array:
    """|u_T| = hypot(u_x, u_y)."""
    return np.hypot(_col(table, "u_x"), _col(table, "u_y"))


def _f32(column: str) -> Callable[[SkimTable], Array]:
    return lambda t: np.asarray(t[column], dtype=np.float32)


def _pfo_component(trig: Callable[[Array], Array]) -> Callable[[SkimTable], Array]:
    return lambda t: (_col(t, "pfo_pt") * trig(_col(t, "pfo_phi"))).astype(np.float32)


def _pfo_class(photon: bool) -> Callable[[SkimTable], Array]:
    """1 for a neutral recoil PFO of the class (photon: |pdgId| 22 or 2; neutral hadron: other), else 0."""

    def f(t: SkimTable) -> Array:
        neutral = np.asarray(t["pfo_charge"]) == 0
        is_photon = np.isin(np.abs(np.asarray(t["pfo_pdgId"])), (22, 2))
        cls = is_photon if photon else ~is_photon
        return (neutral & cls & np.asarray(t["pfo_mask"], dtype=bool)).astype(np.float32)

    return f


# --------------------------------------------------------------------------- the spec


def recoil_spec(n_pfos: int = N_PFOS, n_split: int = N_PFOS_SPLIT) -> FeatureSpec:
    """The study's feature spec for skims with ``n_pfos`` set entries and ``n_split`` leading charged/neutral PFOs."""
    ev: list[Feature] = [
        Feature(
            "u_x",
            "GeV",
            "hadronic recoil x: sum of recoil PFO px (PV charged + neutral, muon cone out)",
            _plain("u_x"),
            ("u_x",),
        ),
        Feature("u_y", "GeV", "hadronic recoil y: sum of recoil PFO py", _plain("u_y"), ("u_y",)),
        Feature("u_t", "GeV", "hadronic recoil magnitude |u_T|", u_magnitude, ("u_x", "u_y")),
        Feature("u_ch_x", "GeV", "charged recoil x: charged PFOs of the primary vertex", _plain("u_ch_x"), ("u_ch_x",)),
        Feature("u_ch_y", "GeV", "charged recoil y", _plain("u_ch_y"), ("u_ch_y",)),
        Feature("u_neu_x", "GeV", "neutral recoil x: photons and neutral hadrons", _plain("u_neu_x"), ("u_neu_x",)),
        Feature("u_neu_y", "GeV", "neutral recoil y", _plain("u_neu_y"), ("u_neu_y",)),
        Feature("sumet", "GeV", "scalar pT sum of all recoil PFOs (SumET)", _plain("sumet"), ("sumet",)),
        Feature("sumet_ch", "GeV", "scalar pT sum of charged recoil PFOs", _plain("sumet_ch"), ("sumet_ch",)),
        Feature("sumet_nh", "GeV", "scalar pT sum of neutral-hadron recoil PFOs", _plain("sumet_nh"), ("sumet_nh",)),
        Feature(
            "sumet_gamma",
            "GeV",
            "scalar pT sum of photon recoil PFOs (neutral EM)",
            _plain("sumet_gamma"),
            ("sumet_gamma",),
        ),
        Feature(
            "j0_px", "GeV", "leading jet px (0 without a jet above 20 GeV)", _x("j0_pt", "j0_phi"), ("j0_pt", "j0_phi")
        ),
        Feature(
            "j0_py", "GeV", "leading jet py (0 without a jet above 20 GeV)", _y("j0_pt", "j0_phi"), ("j0_pt", "j0_phi")
        ),
        Feature(
            "j1_px",
            "GeV",
            "second jet px (0 without a second jet above 20 GeV)",
            _x("j1_pt", "j1_phi"),
            ("j1_pt", "j1_phi"),
        ),
        Feature(
            "j1_py",
            "GeV",
            "second jet py (0 without a second jet above 20 GeV)",
            _y("j1_pt", "j1_phi"),
            ("j1_pt", "j1_phi"),
        ),
        Feature("njets", "", "number of selected jets (pT > 20 GeV, away from the muon)", _plain("njets"), ("njets",)),
        Feature("npv", "", "number of reconstructed primary vertices (PV_npvs)", _plain("npv"), ("npv",)),
        Feature("n_pfo_ch", "", "number of charged recoil PFOs", _plain("n_pfo_ch"), ("n_pfo_ch",)),
        Feature("n_pfo_nh", "", "number of neutral-hadron recoil PFOs", _plain("n_pfo_nh"), ("n_pfo_nh",)),
        Feature("n_pfo_gamma", "", "number of photon recoil PFOs", _plain("n_pfo_gamma"), ("n_pfo_gamma",)),
    ]
    for kind, column, words in (("ch", "pfo_ch", "charged"), ("neu", "pfo_neu", "neutral")):
        for i in range(n_split):
            for comp, trig in (("px", np.cos), ("py", np.sin)):
                ev.append(
                    Feature(
                        f"{kind}_pfo{i}_{comp}",
                        "GeV",
                        f"{comp} of the {words} recoil PFO of pT rank {i} (0 where absent)",
                        _slot(f"{column}_pt", i, trig, f"{column}_phi"),
                        (f"{column}_pt", f"{column}_phi"),
                    )
                )
    ev += [
        Feature("mu_px", "GeV", "selected muon px", _x("mu_pt", "mu_phi"), ("mu_pt", "mu_phi")),
        Feature("mu_py", "GeV", "selected muon py", _y("mu_pt", "mu_phi"), ("mu_pt", "mu_phi")),
        Feature("mu_eta", "", "selected muon pseudorapidity", _plain("mu_eta"), ("mu_eta",)),
        Feature("met_px", "GeV", "PF MET x", _x("met_pt", "met_phi"), ("met_pt", "met_phi")),
        Feature("met_py", "GeV", "PF MET y", _y("met_pt", "met_phi"), ("met_pt", "met_phi")),
        Feature(
            "tkmet_px",
            "GeV",
            "track MET x (PV charged candidates)",
            _x("tkmet_pt", "tkmet_phi"),
            ("tkmet_pt", "tkmet_phi"),
        ),
        Feature("tkmet_py", "GeV", "track MET y", _y("tkmet_pt", "tkmet_phi"), ("tkmet_pt", "tkmet_phi")),
    ]
    shape = (n_pfos,)
    pf_kin = ("pfo_pt", "pfo_phi")

    def pfo(
        name: str,
        unit: str,
        description: str,
        function: Callable[[SkimTable], Array],
        inputs: tuple[str, ...],
        dtype: str = "float32",
    ) -> Feature:
        return Feature(name, unit, description, function, inputs, per="pfo", shape=shape, group="pfos", dtype=dtype)

    sets = [
        pfo("pfo_px", "GeV", "px of a leading recoil PFO (0 padding)", _pfo_component(np.cos), pf_kin),
        pfo("pfo_py", "GeV", "py of a leading recoil PFO (0 padding)", _pfo_component(np.sin), pf_kin),
        pfo("pfo_pt", "GeV", "pT of a leading recoil PFO", _f32("pfo_pt"), ("pfo_pt",)),
        pfo("pfo_eta", "", "pseudorapidity of a leading recoil PFO", _f32("pfo_eta"), ("pfo_eta",)),
        pfo("pfo_phi", "rad", "azimuth of a leading recoil PFO (detector frame)", _f32("pfo_phi"), ("pfo_phi",)),
        pfo("pfo_charge", "", "electric charge of a leading recoil PFO", _f32("pfo_charge"), ("pfo_charge",)),
        pfo(
            "pfo_is_photon",
            "",
            "1 for a photon PFO (|pdgId| 22, or 2 HF EM)",
            _pfo_class(True),
            ("pfo_charge", "pfo_pdgId", "pfo_mask"),
        ),
        pfo(
            "pfo_is_neutral_hadron",
            "",
            "1 for a neutral-hadron PFO (neutral, not a photon)",
            _pfo_class(False),
            ("pfo_charge", "pfo_pdgId", "pfo_mask"),
        ),
        pfo(
            "pfos_mask",
            "",
            "true for a real PFO, false for padding",
            lambda t: np.asarray(t["pfo_mask"], bool),
            ("pfo_mask",),
            dtype="bool",
        ),
    ]
    return FeatureSpec("recoil", (*ev, *sets))


#: The study's inputs for the default skim (20 leading PFOs, 5 leading charged and 5 neutral).
RECOIL_SPEC = recoil_spec()


def spec_for_skims(skims: Mapping[str, SkimTable]) -> FeatureSpec:
    """The spec matching the set sizes of ``skims`` (all samples must agree); the default spec if empty."""
    sizes = {
        (int(np.shape(t["pfo_pt"])[1]), int(np.shape(t["pfo_ch_pt"])[1]))
        for t in skims.values()
        if "pfo_pt" in t and "pfo_ch_pt" in t and np.ndim(t["pfo_pt"]) == 2 and np.ndim(t["pfo_ch_pt"]) == 2
    }
    if len(sizes) > 1:
        raise HepchainError(f"recoil skims disagree on (n_pfos, n_pfos_split): {sorted(sizes)}")
    if not sizes or sizes == {(N_PFOS, N_PFOS_SPLIT)}:
        return RECOIL_SPEC
    ((n_pfos, n_split),) = sizes
    return recoil_spec(n_pfos, n_split)


# --------------------------------------------------------------------------- the training table



def build_feature_table(
    skims: Mapping[str, SkimTable],
    *,
    n_folds: int,
    seed: int,
    weights: Mapping[str, float] | None = None,
) -> dict[str, np.ndarray]:
    """Features, targets, weights, sample index, event and fold of all samples, concatenated.

    ``skims[sample]`` is a skim table of :mod:`hepchain.skim.recoil` (dict of
    arrays).  Per sample, in :func:`sample_names` order: every feature of the
    spec (:func:`spec_for_skims`, :data:`RECOIL_SPEC` for default skims), the
    :data:`TARGETS` (NaN where the sample has no generator W), ``weight`` =
    genWeight x ``weights[sample]`` (1 when ``weights`` is None), ``sample``
    (int32 index into :func:`sample_names`), ``event`` (uint64) and ``fold``
    (:func:`~hepchain.features.vh.assign_folds`).  Raises
    :class:`~hepchain.errors.ConfigError` when ``weights`` lacks a sample,
    :class:`~hepchain.errors.HepchainError` naming the feature, the sample and
    the count when a feature or weight is NaN or infinite, and
    :class:`~hepchain.errors.EmptySelectionError` when no event is left.
    """
    spec = spec_for_skims(skims)
    names = sample_names(skims)
    parts: dict[str, list[np.ndarray]] = {}
    for index, sample in enumerate(names):
        table = skims[sample]
        if weights is None:
            factor = 1.0
        elif sample in weights:
            factor = float(weights[sample])
        else:
            raise ConfigError(
                f"sample '{sample}' has a recoil skim but no weight factor; known: {', '.join(sorted(weights)) or 'none'}"
            )
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):  # bad inputs are reported below
            features = spec.compute_arrays(table, source=f"recoil skim of sample '{sample}'")
        n = int(np.shape(table["event"])[0])
        check_finite_features(features, sample, "event(s)")
        weight = sample_weight(table, n, factor, sample, "event(s)")
        truth_ux, truth_uy = truth_recoil(_col(table, "w_pt"), _col(table, "w_phi"))
        columns = {
            **features,
            "truth_ux": truth_ux,
            "truth_uy": truth_uy,
            **bookkeeping(table["event"], weight, index, sample, n_folds, seed),
        }
        for key, values in columns.items():
            parts.setdefault(key, []).append(values)
    if not parts or sum(len(p) for p in parts["event"]) == 0:
        raise EmptySelectionError(
            f"recoil feature table is empty: no selected events in samples {', '.join(names) or 'none given'}"
        )
    return {key: np.concatenate(values) for key, values in parts.items()}
