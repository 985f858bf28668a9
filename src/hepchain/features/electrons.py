"""Inputs and targets of the electron energy regression (seed 004): cell images, scalars, nearby tracks.

The seed (Algren, Rosted, Petersen, "Electron energy regression with CNN";
public code DeepCalo, Faye 2019) regresses the energy of the probe electron of
Z->ee tag-and-probe pairs from three inputs, computed here from the skim table
of :mod:`hepchain.skim.electrons` (one row per probe electron):

``"cells"`` (image group, shape (310,) per row, float32)
    ``cell_e`` [GeV] and ``cell_t`` [ns] of the probe's 310 LAr cells in the
    fixed order of :mod:`hepchain.detector.calo_images`: layer-major
    (presampler 7x3, strips 56x3, middle 7x11, back 4x11; eta x phi), then
    eta, then phi, so that ``cell_e[:, 189:266].reshape(-1, 7, 11)`` is the
    middle layer with its hottest cell at [3, 5].  The seed up-samples the
    layers to a common grid inside the network; that is the network's job.

``"event"`` (one value per row; float64)
    the seed's scalar table (slide "The input variables"), NanoAOD names of
    :data:`hepchain.nanoaod.CONTRACT` ``["Electron"]``: ``energyCluster``,
    ``etaCluster``, ``phiCluster``, ``eAcc``, ``ePS``, ``e1``, ``e2``, ``e3``,
    ``f0``, ``r12``, ``deltaEta2``, ``deltaPhi2``, ``etaModCalo``, ``poscs2``,
    ``dPhiTH3``, ``etaIndex``, ``nTracks``, ``ptTrack``; the electron's ``pt``,
    ``eta``, ``phi``; ``mu`` (<mu>, ``Pileup_nTrueInt``) and ``nVertex``
    (``PV_npvs``).  The seed's E_TC3 (crack scintillators) and E_tile-gap are
    not simulated and are left out.

``"tracks"`` (set group, K = 10 per row, float32, mask ``tracks_mask``)
    the TrackNet inputs of the seed: pT/q, d0/sigma(d0), dR, vertex, z0, eta,
    phi, pixel / SCT / TRT hits, plus a flag for the electron's own track
    (stored first, then by increasing dR).  Padding entries are 0.

Targets (:data:`TARGETS`): ``probe_energy_truth`` (energy of the matched
generator electron, NaN where there is none: train on finite values only) and
``probe_energy_zlabel``, the seed's Z-mass-constraint label
(:func:`z_constraint_energy`), used in (pseudo-)data, where there is no truth.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from ..errors import EmptySelectionError, HepchainError
from .assemble import bookkeeping, check_finite_features, sample_names, sample_weight
from .spec import Feature, FeatureSpec

Array = np.ndarray
#: A skim table of :mod:`hepchain.skim.electrons`: column name -> array with one row per probe.
Table = Mapping[str, np.ndarray]

#: The Z mass of the seed's label, M = 91.19 GeV ("with ... M^2 = 91.19^2").
M_Z = 91.19

#: Cells per electron (presampler 7x3 + strips 56x3 + middle 7x11 + back 4x11).
N_CELLS = 310

#: Nearby tracks per electron (the seed's "(up to) 10 nearest tracks").
N_TRACKS = 10

#: Target columns of the training table.
TARGETS: tuple[str, ...] = ("probe_energy_truth", "probe_energy_zlabel")

#: Skim columns carried into the feature table unchanged (evaluation: Z peak, label window, pairing of rows).
AUX_COLUMNS: tuple[str, ...] = ("m_ee", "label_window", "probe_idx", "tag_idx", "tag_pt", "tag_eta", "tag_phi")


# --------------------------------------------------------------------------- physics helpers


def z_constraint_et(
    et_tag: Array, eta_tag: Array, phi_tag: Array, eta_probe: Array, phi_probe: Array, m_z: float = M_Z
) -> Array:
    """Transverse energy of the probe that puts the (massless) pair on the Z mass.

    Seed 004, slide "Training in data": with
    ``M^2 = 2 p_T,1 p_T,2 (cosh(eta_1 - eta_2) - cos(phi_1 - phi_2))`` and p_T = E_T,

    ``E_label = M^2 / (2 E_T,2 (cosh(eta_1 - eta_2) - cos(phi_1 - phi_2)))``

    with electron 2 the tag (E_T,2 its calibrated transverse energy) and
    M = 91.19 GeV.  Solved for p_T,1 this is the probe's *transverse* energy;
    :func:`z_constraint_energy` turns it into an energy.  Where the angular
    factor is not positive (collinear electrons) or E_T,2 <= 0 the result is NaN.
    """
    et_tag, eta_tag, phi_tag, eta_probe, phi_probe = (
        np.asarray(v, dtype=np.float64) for v in (et_tag, eta_tag, phi_tag, eta_probe, phi_probe)
    )
    angular = np.cosh(eta_probe - eta_tag) - np.cos(phi_probe - phi_tag)
    denominator = 2.0 * et_tag * angular
    ok = (angular > 0) & (et_tag > 0)
    return np.where(ok, float(m_z) ** 2 / np.where(ok, denominator, 1.0), np.nan)


def z_constraint_energy(
    et_tag: Array, eta_tag: Array, phi_tag: Array, eta_probe: Array, phi_probe: Array, m_z: float = M_Z
) -> Array:
    """The seed's Z-mass-constraint energy label of the probe electron [GeV].

    ``E_label = cosh(eta_probe) M^2 / (2 E_T,tag (cosh(eta_probe - eta_tag) - cos(phi_probe - phi_tag)))``:
    :func:`z_constraint_et` (the seed's formula, which gives the probe's E_T
    since p_T = E_T for electrons) times cosh(eta_probe), the massless
    E = E_T cosh(eta).  Equivalently ``E_probe (M / m_ee)^2`` for massless
    electrons (:func:`z_constraint_energy_from_mass`), since m_ee^2 is linear
    in the probe energy at fixed directions.  The seed uses it for
    86 < m_ee < 97 GeV (the skim's ``label_window``).
    """
    et = z_constraint_et(et_tag, eta_tag, phi_tag, eta_probe, phi_probe, m_z)
    return et * np.cosh(np.asarray(eta_probe, dtype=np.float64))


def z_constraint_energy_from_mass(e_probe: Array, m_ee: Array, m_z: float = M_Z) -> Array:
    """``E_probe (M_Z / m_ee)^2``: the same label from the measured pair mass (massless electrons); NaN if m_ee <= 0."""
    e_probe, m_ee = np.asarray(e_probe, dtype=np.float64), np.asarray(m_ee, dtype=np.float64)
    ok = m_ee > 0
    return np.where(ok, e_probe * (float(m_z) / np.where(ok, m_ee, 1.0)) ** 2, np.nan)


def truth_energy(pt: Array, eta: Array, mass: Array) -> Array:
    """E = sqrt((pT cosh eta)^2 + m^2) of a generator particle [GeV]."""
    pt, eta, mass = (np.asarray(v, dtype=np.float64) for v in (pt, eta, mass))
    return np.sqrt((pt * np.cosh(eta)) ** 2 + mass * mass)


def pt_over_charge(pt: Array, charge: Array) -> Array:
    """pT / q of tracks (the seed's first TrackNet input); 0 where q = 0 (padding)."""
    pt, charge = np.asarray(pt, dtype=np.float64), np.asarray(charge, dtype=np.float64)
    return np.divide(pt, charge, out=np.zeros_like(pt), where=charge != 0)


# --------------------------------------------------------------------------- the feature spec


def _col(name: str, dtype: str = "float64") -> Callable[[Table], Array]:
    return lambda t: np.asarray(t[name], dtype=dtype)


#: (feature name, skim column, unit, description) of the probe scalars, in input order.
_SCALARS: tuple[tuple[str, str, str, str], ...] = (
    ("pt", "probe_pt", "GeV", "electron transverse momentum (calibrated cluster E_T in hepchain ntuples)"),
    ("eta", "probe_eta", "", "electron pseudorapidity (track)"),
    ("phi", "probe_phi", "rad", "electron azimuth (track)"),
    ("energyCluster", "probe_energyCluster", "GeV", "calibrated 3x7 cluster energy (the standard reconstruction)"),
    ("etaCluster", "probe_etaCluster", "", "cluster eta (layer-2 barycentre)"),
    ("phiCluster", "probe_phiCluster", "rad", "cluster phi (layer-2 barycentre)"),
    ("eAcc", "probe_eAcc", "GeV", "E_acc: cluster energy in layers 1-3, EM scale"),
    ("ePS", "probe_ePS", "GeV", "cluster energy in the presampler, EM scale"),
    ("e1", "probe_e1", "GeV", "cluster energy in the strips (layer 1)"),
    ("e2", "probe_e2", "GeV", "cluster energy in the middle layer (layer 2)"),
    ("e3", "probe_e3", "GeV", "cluster energy in the back layer (layer 3)"),
    ("f0", "probe_f0", "", "f0: presampler / E_acc (|eta| < 1.8)"),
    ("r12", "probe_r12", "", "R12: layer-1 / layer-2 cluster energy"),
    ("deltaEta2", "probe_deltaEta2", "", "track eta extrapolated to layer 2 minus cluster eta"),
    ("deltaPhi2", "probe_deltaPhi2", "rad", "rescaled track phi at layer 2 minus cluster phi"),
    ("etaModCalo", "probe_etaModCalo", "", "eta position w.r.t. the layer-2 cell edge"),
    ("poscs2", "probe_poscs2", "", "2 (eta_cluster - eta_maxEcell)/0.025 - 1"),
    ("dPhiTH3", "probe_dPhiTH3", "rad", "mod(2 pi + phi, pi/32) - pi/32"),
    ("etaIndex", "probe_etaIndex", "", "layer-2 eta cell index of the hottest cell"),
    ("nTracks", "probe_nTracks", "", "number of tracks assigned to the electron"),
    ("ptTrack", "probe_ptTrack", "GeV", "pT of the electron's track"),
    ("mu", "Pileup_nTrueInt", "", "<mu>: mean number of interactions per bunch crossing"),
    ("nVertex", "PV_npvs", "", "number of reconstructed primary vertices"),
)

#: (feature name, unit, description, function of the skim table) of the track set, in input order.
_TRACKS: tuple[tuple[str, str, str, Callable[[Table], Array], tuple[str, ...]], ...] = (
    (
        "track_pt_over_q",
        "GeV",
        "track pT divided by its charge",
        lambda t: pt_over_charge(t["track_pt"], t["track_charge"]),
        ("track_pt", "track_charge"),
    ),
    ("track_d0sig", "", "d0 / sigma(d0)", _col("track_d0sig"), ("track_d0sig",)),
    ("track_dr", "", "dR between the track and the electron", _col("track_dr"), ("track_dr",)),
    ("track_vertex", "", "vertex of the track: 0 primary, 1 pile-up", _col("track_vertex"), ("track_vertex",)),
    ("track_z0", "cm", "z0 relative to the electron's track", _col("track_z0"), ("track_z0",)),
    ("track_eta", "", "track pseudorapidity", _col("track_eta"), ("track_eta",)),
    ("track_phi", "rad", "track azimuth", _col("track_phi"), ("track_phi",)),
    ("track_nPixel", "", "pixel hits", _col("track_nPixel"), ("track_nPixel",)),
    ("track_nSCT", "", "SCT hits", _col("track_nSCT"), ("track_nSCT",)),
    ("track_nTRT", "", "TRT hits", _col("track_nTRT"), ("track_nTRT",)),
    (
        "track_isElectronTrack",
        "",
        "1 for the electron's own track, 0 otherwise",
        _col("track_isElectronTrack"),
        ("track_isElectronTrack",),
    ),
)


def _mask(t: Table) -> Array:
    return np.asarray(t["track_mask"], dtype=bool)


#: The inputs of the electron energy regression, in network input order (see the module docstring).
ELECTRONS_SPEC = FeatureSpec(
    study="electrons",
    features=(
        Feature(
            "cell_e",
            "GeV",
            "LAr cell energies of the probe, 310 cells: presampler 7x3, strips 56x3, middle 7x11, back 4x11 (eta x phi)",
            _col("cell_e", "float32"),
            ("cell_e",),
            per="cell",
            shape=(N_CELLS,),
            group="cells",
            dtype="float32",
        ),
        Feature(
            "cell_t",
            "ns",
            "LAr cell times of the probe, same order as cell_e",
            _col("cell_t", "float32"),
            ("cell_t",),
            per="cell",
            shape=(N_CELLS,),
            group="cells",
            dtype="float32",
        ),
        *(Feature(name, unit, doc, _col(column), (column,)) for name, column, unit, doc in _SCALARS),
        *(
            Feature(name, unit, doc, fn, inputs, per="track", shape=(N_TRACKS,), group="tracks", dtype="float32")
            for name, unit, doc, fn, inputs in _TRACKS
        ),
        Feature(
            "tracks_mask",
            "",
            "True for the real tracks of the padded set",
            _mask,
            ("track_mask",),
            per="track",
            shape=(N_TRACKS,),
            group="tracks",
            dtype="bool",
        ),
    ),
)


# --------------------------------------------------------------------------- the training table



def build_feature_table(
    skims: Mapping[str, Mapping[str, np.ndarray]],
    *,
    n_folds: int,
    seed: int,
    weights: Mapping[str, float] | None = None,
) -> dict[str, np.ndarray]:
    """Features, targets, weights and folds of all samples, one row per probe electron.

    ``skims[sample]`` is a skim table of :mod:`hepchain.skim.electrons` (dict of
    arrays).  Columns: the features of :data:`ELECTRONS_SPEC` (cells (N, 310),
    tracks (N, 10), scalars (N,)), the :data:`TARGETS`, :data:`AUX_COLUMNS`,
    ``weight`` = genWeight x ``weights[sample]`` (default 1), ``sample``
    (int32 index into :func:`sample_names`), ``event`` and ``fold``
    (:func:`~hepchain.features.vh.assign_folds`: both probes of an event share
    a fold).  Samples are concatenated in sorted order.  Raises
    :class:`~hepchain.errors.HepchainError` naming the feature and sample if an
    input is NaN or infinite (targets may be NaN), and
    :class:`~hepchain.errors.EmptySelectionError` if no row is left.
    """
    weights = dict(weights or {})
    names = sample_names(skims)
    parts: list[dict[str, np.ndarray]] = []
    for index, sample in enumerate(names):
        table = skims[sample]
        source = f"skim of sample '{sample}'"
        for column in (*TARGETS, *AUX_COLUMNS, "event", "genWeight"):
            if column not in table:
                raise HepchainError(f"{source}: column '{column}' is missing (not an electrons skim table?)")
        features = ELECTRONS_SPEC.compute_arrays(table, source=source)
        check_finite_features(features, sample, "row(s)")
        n = len(np.asarray(table["event"]))
        weight = sample_weight(table, n, float(weights.get(sample, 1.0)), sample, "row(s)")
        part = dict(features)
        for column in TARGETS:
            part[column] = np.asarray(table[column], dtype=np.float64)
        for column in AUX_COLUMNS:
            part[column] = np.asarray(table[column])
        part.update(bookkeeping(table["event"], weight, index, sample, n_folds, seed))
        parts.append(part)
    total = sum(len(p["event"]) for p in parts)
    if total == 0:
        raise EmptySelectionError(
            f"feature table is empty: no probe electrons in samples {', '.join(names) or 'none given'}"
        )
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
