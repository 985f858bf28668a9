"""The 17 inputs of the VH(->WW) DFOS e-mu study, folds and the training table.

The inputs follow the seed study's list (ATLAS VH/VBF H->WW 2-jet e-mu
analyses, arXiv:1808.09054 and arXiv:1903.10052).  They are computed from the
skim table of :mod:`hepchain.skim.vh` (columns ``l0_pt``, ``j1_eta``, ``met_pt``,
... for the leading two leptons and jets) with plain numpy kinematics, in this
order:

======================  =====  ==============================================================
``pt_l0``, ``pt_l1``    GeV    leading / subleading lepton pT
``dphi_ll``             rad    |delta phi| of the leptons, in [0, pi]
``dy_ll``                      |delta y| of the leptons (rapidity from pt, eta, mass)
``m_ll``                GeV    dilepton invariant mass
``pt_j0``, ``pt_j1``    GeV    leading / subleading jet pT
``dphi_jj``, ``dy_jj``  rad,   |delta phi|, |delta y| of the two leading jets
``m_jj``                GeV    invariant mass of the two leading jets
``m_tautau``            GeV    collinear-approximation ditau mass (0 where it fails)
``m_T``                 GeV    transverse mass of the dilepton + MET system (ATLAS HWW)
``met_track``           GeV    track MET (TkMET) magnitude
``ht_soft``             GeV    pT(l0) + pT(l1) + scalar sum of jet pT + SoftActivityJetHT
``met_sig``                    MET significance as stored in NanoAOD
``pt_total_track``      GeV    |pT(l0) + pT(l1) + sum of jet pT vectors + track MET vector|
``sum_m_lj``            GeV    sum of m(l_i, j_k) over i in {l0, l1}, k in {j0, j1}
======================  =====  ==============================================================

Collinear approximation (Plehn, Rainwater, Zeppenfeld, hep-ph/9911385): each
tau's decay products are collinear with the tau, the visible lepton carrying a
fraction x of its momentum and the neutrinos the rest, so the (PF) MET vector is
``(1/x1 - 1) pT(l0) + (1/x2 - 1) pT(l1)``.  This 2x2 linear system is solved in
closed form per event; ``m_tautau = m_ll / sqrt(x1 x2)``.  Where the leptons are
(anti)collinear in the transverse plane (|det| <= 1e-6 pT(l0) pT(l1), that is
|sin dphi_ll| <= 1e-6) or where a solution has x1 <= 0 or x2 <= 0, the
approximation fails and ``m_tautau`` is set to 0 (a value it cannot otherwise
take, which the network can learn to treat as "undefined").  Solutions with
x > 1 (neutrino momentum against the lepton) are kept as computed.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..errors import ConfigError, EmptySelectionError, HepchainError
from .spec import Feature, FeatureSpec

#: Relative determinant below which the collinear system counts as singular.
COLLINEAR_DET_TOLERANCE = 1e-6

Array = np.ndarray


# --------------------------------------------------------------------------- kinematics


def four_momentum(pt: Array, eta: Array, phi: Array, mass: Array) -> tuple[Array, Array, Array, Array]:
    """Cartesian ``(px, py, pz, E)`` from ``(pt, eta, phi, mass)`` (float64)."""
    pt, eta, phi, mass = (np.asarray(v, dtype=np.float64) for v in (pt, eta, phi, mass))
    px = pt * np.cos(phi)
    py = pt * np.sin(phi)
    pz = pt * np.sinh(eta)
    energy = np.sqrt(px * px + py * py + pz * pz + mass * mass)
    return px, py, pz, energy


def invariant_mass(*p4s: tuple[Array, Array, Array, Array]) -> Array:
    """Invariant mass of the sum of ``(px, py, pz, E)`` tuples; negative m^2 from rounding gives 0."""
    px = sum(p[0] for p in p4s)
    py = sum(p[1] for p in p4s)
    pz = sum(p[2] for p in p4s)
    energy = sum(p[3] for p in p4s)
    m2 = energy * energy - (px * px + py * py + pz * pz)
    return np.sqrt(np.maximum(m2, 0.0))


def delta_phi(phi1: Array, phi2: Array) -> Array:
    """|phi1 - phi2| wrapped into [0, pi]."""
    d = np.mod(np.asarray(phi1, dtype=np.float64) - np.asarray(phi2, dtype=np.float64) + np.pi, 2 * np.pi) - np.pi
    return np.abs(d)


def rapidity(pt: Array, eta: Array, mass: Array) -> Array:
    """Rapidity y = asinh(pz / mT) with mT = sqrt(pt^2 + m^2) (0 for a null momentum)."""
    pt, eta, mass = (np.asarray(v, dtype=np.float64) for v in (pt, eta, mass))
    pz = pt * np.sinh(eta)
    mt = np.sqrt(pt * pt + mass * mass)
    ratio = np.divide(pz, mt, out=np.zeros_like(pz), where=mt > 0)
    return np.arcsinh(ratio)


def collinear_fractions(
    l0_px: Array, l0_py: Array, l1_px: Array, l1_py: Array, met_px: Array, met_py: Array
) -> tuple[Array, Array, Array]:
    """Solve MET = (1/x1 - 1) pT(l0) + (1/x2 - 1) pT(l1) for the visible fractions.

    Returns ``(x1, x2, ok)``; ``ok`` is False where the system is singular or a
    fraction is not positive (x1 and x2 are then NaN).
    """
    det = l0_px * l1_py - l0_py * l1_px
    scale = np.hypot(l0_px, l0_py) * np.hypot(l1_px, l1_py)
    regular = np.abs(det) > COLLINEAR_DET_TOLERANCE * scale
    safe_det = np.where(regular, det, 1.0)
    a = (met_px * l1_py - met_py * l1_px) / safe_det  # 1/x1 - 1
    b = (l0_px * met_py - l0_py * met_px) / safe_det  # 1/x2 - 1
    one_a, one_b = 1.0 + a, 1.0 + b
    ok = regular & (one_a > 0) & (one_b > 0) & np.isfinite(one_a) & np.isfinite(one_b)
    x1 = np.where(ok, 1.0 / np.where(ok, one_a, 1.0), np.nan)
    x2 = np.where(ok, 1.0 / np.where(ok, one_b, 1.0), np.nan)
    return x1, x2, ok


def collinear_mass(m_ll: Array, x1: Array, x2: Array, ok: Array) -> Array:
    """m_tautau = m_ll / sqrt(x1 x2) where ``ok``, else 0."""
    prod = np.where(ok, x1 * x2, 1.0)
    return np.where(ok, np.asarray(m_ll, dtype=np.float64) / np.sqrt(prod), 0.0)


# --------------------------------------------------------------------------- table access


def _col(table: pd.DataFrame, name: str) -> Array:
    return table[name].to_numpy(dtype=np.float64)


def _p4(table: pd.DataFrame, prefix: str) -> tuple[Array, Array, Array, Array]:
    return four_momentum(
        _col(table, f"{prefix}_pt"),
        _col(table, f"{prefix}_eta"),
        _col(table, f"{prefix}_phi"),
        _col(table, f"{prefix}_mass"),
    )


def _vec(table: pd.DataFrame, pt: str, phi: str) -> tuple[Array, Array]:
    magnitude, angle = _col(table, pt), _col(table, phi)
    return magnitude * np.cos(angle), magnitude * np.sin(angle)


def _f_dphi(a: str, b: str):
    return lambda t: delta_phi(_col(t, f"{a}_phi"), _col(t, f"{b}_phi"))


def _f_dy(a: str, b: str):
    def f(t: pd.DataFrame) -> Array:
        ya = rapidity(_col(t, f"{a}_pt"), _col(t, f"{a}_eta"), _col(t, f"{a}_mass"))
        yb = rapidity(_col(t, f"{b}_pt"), _col(t, f"{b}_eta"), _col(t, f"{b}_mass"))
        return np.abs(ya - yb)

    return f


def _f_mass(*prefixes: str):
    return lambda t: invariant_mass(*(_p4(t, p) for p in prefixes))


def m_tautau(table: pd.DataFrame) -> Array:
    """Collinear-approximation ditau mass with the PF MET (0 where the approximation fails)."""
    l0, l1 = _p4(table, "l0"), _p4(table, "l1")
    met_px, met_py = _vec(table, "met_pt", "met_phi")
    x1, x2, ok = collinear_fractions(l0[0], l0[1], l1[0], l1[1], met_px, met_py)
    return collinear_mass(invariant_mass(l0, l1), x1, x2, ok)


def transverse_mass(table: pd.DataFrame) -> Array:
    """ATLAS HWW m_T: sqrt((E_T^ll + MET)^2 - |pT_ll + MET|^2), E_T^ll = sqrt(pT_ll^2 + m_ll^2)."""
    l0, l1 = _p4(table, "l0"), _p4(table, "l1")
    ll_px, ll_py = l0[0] + l1[0], l0[1] + l1[1]
    m_ll = invariant_mass(l0, l1)
    et_ll = np.sqrt(ll_px**2 + ll_py**2 + m_ll**2)
    met = _col(table, "met_pt")
    met_px, met_py = _vec(table, "met_pt", "met_phi")
    mt2 = (et_ll + met) ** 2 - ((ll_px + met_px) ** 2 + (ll_py + met_py) ** 2)
    return np.sqrt(np.maximum(mt2, 0.0))


def ht_soft(table: pd.DataFrame) -> Array:
    """pT(l0) + pT(l1) + scalar sum of selected-jet pT + SoftActivityJetHT."""
    return _col(table, "l0_pt") + _col(table, "l1_pt") + _col(table, "sum_jet_pt") + _col(table, "soft_ht")


def pt_total_track(table: pd.DataFrame) -> Array:
    """|pT(l0) + pT(l1) + sum of all selected-jet pT vectors + track-MET vector|."""
    l0x, l0y = _vec(table, "l0_pt", "l0_phi")
    l1x, l1y = _vec(table, "l1_pt", "l1_phi")
    tkx, tky = _vec(table, "tkmet_pt", "tkmet_phi")
    px = l0x + l1x + _col(table, "sum_jet_px") + tkx
    py = l0y + l1y + _col(table, "sum_jet_py") + tky
    return np.hypot(px, py)


def sum_m_lj(table: pd.DataFrame) -> Array:
    """m(l0 j0) + m(l0 j1) + m(l1 j0) + m(l1 j1)."""
    leptons = [_p4(table, "l0"), _p4(table, "l1")]
    jets = [_p4(table, "j0"), _p4(table, "j1")]
    return sum(invariant_mass(lep, jet) for lep in leptons for jet in jets)


_L = ("l0_pt", "l0_eta", "l0_phi", "l0_mass", "l1_pt", "l1_eta", "l1_phi", "l1_mass")
_J = ("j0_pt", "j0_eta", "j0_phi", "j0_mass", "j1_pt", "j1_eta", "j1_phi", "j1_mass")

#: The 17 inputs of the VH(->WW) DFOS e-mu study, in network input order.
VH_SPEC = FeatureSpec(
    study="vh",
    features=(
        Feature("pt_l0", "GeV", "leading lepton transverse momentum", lambda t: _col(t, "l0_pt"), ("l0_pt",)),
        Feature("pt_l1", "GeV", "subleading lepton transverse momentum", lambda t: _col(t, "l1_pt"), ("l1_pt",)),
        Feature(
            "dphi_ll",
            "rad",
            "|delta phi| between the two leptons, in [0, pi]",
            _f_dphi("l0", "l1"),
            ("l0_phi", "l1_phi"),
        ),
        Feature("dy_ll", "", "|delta rapidity| between the two leptons", _f_dy("l0", "l1"), _L),
        Feature("m_ll", "GeV", "dilepton invariant mass", _f_mass("l0", "l1"), _L),
        Feature("pt_j0", "GeV", "leading jet transverse momentum", lambda t: _col(t, "j0_pt"), ("j0_pt",)),
        Feature("pt_j1", "GeV", "subleading jet transverse momentum", lambda t: _col(t, "j1_pt"), ("j1_pt",)),
        Feature(
            "dphi_jj",
            "rad",
            "|delta phi| between the two leading jets, in [0, pi]",
            _f_dphi("j0", "j1"),
            ("j0_phi", "j1_phi"),
        ),
        Feature("dy_jj", "", "|delta rapidity| between the two leading jets", _f_dy("j0", "j1"), _J),
        Feature("m_jj", "GeV", "invariant mass of the two leading jets", _f_mass("j0", "j1"), _J),
        Feature(
            "m_tautau",
            "GeV",
            "collinear-approximation ditau mass (hep-ph/9911385) with PF MET; 0 where x1 <= 0, x2 <= 0 or singular",
            m_tautau,
            (*_L, "met_pt", "met_phi"),
        ),
        Feature(
            "m_T",
            "GeV",
            "transverse mass of dilepton + MET, ATLAS HWW definition with E_T^ll = sqrt(pT_ll^2 + m_ll^2)",
            transverse_mass,
            (*_L, "met_pt", "met_phi"),
        ),
        Feature(
            "met_track",
            "GeV",
            "track-based missing transverse momentum (TkMET)",
            lambda t: _col(t, "tkmet_pt"),
            ("tkmet_pt",),
        ),
        Feature(
            "ht_soft",
            "GeV",
            "pT of both leptons + scalar sum of selected-jet pT + SoftActivityJetHT (hard objects plus soft activity)",
            ht_soft,
            ("l0_pt", "l1_pt", "sum_jet_pt", "soft_ht"),
        ),
        Feature(
            "met_sig",
            "",
            "MET significance as stored in NanoAOD",
            lambda t: _col(t, "met_significance"),
            ("met_significance",),
        ),
        Feature(
            "pt_total_track",
            "GeV",
            "|vector sum of the two leptons, all selected jets and the track MET| (ATLAS pT^tot)",
            pt_total_track,
            ("l0_pt", "l0_phi", "l1_pt", "l1_phi", "sum_jet_px", "sum_jet_py", "tkmet_pt", "tkmet_phi"),
        ),
        Feature("sum_m_lj", "GeV", "sum of the four lepton-jet invariant masses m(l_i, j_k)", sum_m_lj, _L + _J),
    ),
)


# --------------------------------------------------------------------------- folds and the training table

_SM_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_SM_M1 = np.uint64(0xBF58476D1CE4E5B9)
_SM_M2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(x: Array) -> Array:
    """The splitmix64 finaliser applied to ``x + golden gamma`` (uint64, wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = (np.asarray(x, dtype=np.uint64) + _SM_GAMMA).astype(np.uint64)
        z = (z ^ (z >> np.uint64(30))) * _SM_M1
        z = (z ^ (z >> np.uint64(27))) * _SM_M2
        return z ^ (z >> np.uint64(31))


def assign_folds(event: np.ndarray, sample: str, n_folds: int, seed: int) -> np.ndarray:
    """Deterministic fold (0 .. n_folds-1) of each event, from a hash of (event, sample, seed).

    ``h = splitmix64(event ^ splitmix64(crc32(sample) ^ splitmix64(seed)))`` and the
    fold is ``h mod n_folds``: the same event of the same sample always lands in
    the same fold, independent of file order, chunking or the other events;
    different samples or seeds give independent assignments.
    """
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 1:
        raise ConfigError(f"n_folds must be a positive integer, got {n_folds!r}")
    events = np.asarray(event)
    if events.size == 0:
        return np.zeros(0, dtype=np.int64)
    if events.dtype.kind not in "iu":
        raise HepchainError(f"assign_folds: event numbers must be integers, got dtype {events.dtype}")
    events = events.astype(np.int64).view(np.uint64) if events.dtype.kind == "i" else events.astype(np.uint64)
    seed_key = _splitmix64(np.array([int(seed) & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))
    sample_key = _splitmix64(np.array([zlib.crc32(sample.encode())], dtype=np.uint64) ^ seed_key)
    h = _splitmix64(events ^ sample_key[0])
    return (h % np.uint64(n_folds)).astype(np.int64)


OUTPUT_COLUMNS = (*VH_SPEC.names, "weight", "label", "sample", "event", "fold")


def build_feature_table(
    skims: Mapping[str, pd.DataFrame],
    sample_class: Mapping[str, int],
    norm: Mapping[str, float],
    n_folds: int,
    seed: int,
) -> pd.DataFrame:
    """Features, weights, labels and folds of all samples in one table.

    ``skims[sample]`` is a skim table of :mod:`hepchain.skim.vh`;
    ``sample_class[sample]`` its integer label; ``norm[sample]`` the per-event
    weight factor (cross section * luminosity / sum of generator weights), so
    ``weight = genWeight * norm[sample]``.  Columns: the 17 features of
    :data:`VH_SPEC`, ``weight``, ``label``, ``sample``, ``event``, ``fold``.
    Raises :class:`~hepchain.errors.HepchainError` naming the feature, the sample
    and the count if a feature is NaN or infinite, and
    :class:`~hepchain.errors.EmptySelectionError` naming the samples if no event is left.
    """
    parts: list[pd.DataFrame] = []
    for sample, table in skims.items():
        if sample not in sample_class:
            raise ConfigError(f"sample '{sample}' has a skim but no class label (sample_class)")
        if sample not in norm:
            raise ConfigError(f"sample '{sample}' has a skim but no normalisation (norm)")
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):  # bad inputs are reported below
            features = VH_SPEC.compute(table, source=f"skim of sample '{sample}'").reset_index(drop=True)
        if features.empty:
            continue
        for name in VH_SPEC.names:
            bad = int((~np.isfinite(features[name].to_numpy())).sum())
            if bad:
                raise HepchainError(f"feature '{name}' is NaN or infinite in {bad} event(s) of sample '{sample}'")
        gen_weight = table["genWeight"].to_numpy(dtype=np.float64) if "genWeight" in table else np.ones(len(table))
        weight = gen_weight * float(norm[sample])
        bad = int((~np.isfinite(weight)).sum())
        if bad:
            raise HepchainError(
                f"weight is NaN or infinite in {bad} event(s) of sample '{sample}' (norm {norm[sample]!r})"
            )
        event = table["event"].to_numpy()
        features["weight"] = weight
        features["label"] = np.full(len(table), int(sample_class[sample]), dtype=np.int64)
        features["sample"] = sample
        features["event"] = event.astype(np.uint64)
        features["fold"] = assign_folds(event, sample, n_folds, seed)
        parts.append(features)
    combined = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(OUTPUT_COLUMNS))
    if combined.empty:
        names = ", ".join(skims) or "none given"
        raise EmptySelectionError(f"feature table is empty: no selected events in samples {names}")
    return combined[list(OUTPUT_COLUMNS)]
