"""The di-tau skim of the mass-regression study (seed 001): four channels, one per event.

The seed (Torterotot et al., IN2P3/IRFU ML workshop 2021, DNN for m_tautau)
trains on events selected "similar to the current MSSM H->tautau analysis (pT
and eta cuts, DeepTau, lepton vetoes)" (CMS AN-2020/218, published as CMS
HIG-21-001, JHEP 07 (2023) 073).  The seed gives no numbers; the defaults of
:class:`DitauSelection` are that analysis's object definitions and working
points, with pT thresholds at the plateaus of its 2016-2017 mu/e + tau_h,
tau_h tau_h and e-mu triggers (the ntuples generated here carry no trigger
bits, so the offline thresholds stand in for the triggers).  Strict
inequalities throughout.

Objects (candidate legs; each a cut of ``two_legs``)
    electrons: pT > 10 GeV, |eta| < 2.5, |dxy| < 0.045 cm, |dz| < 0.2 cm;
    muons: pT > 10 GeV, |eta| < 2.4, |dxy| < 0.045 cm, |dz| < 0.2 cm;
    taus: pT > 20 GeV, |eta| < 2.3, |dz| < 0.2 cm, ``idDecayModeNewDMs``,
    decayMode in {0, 1, 10, 11} (the 2-prong modes 5, 6 are dropped), |charge| = 1.

Channels and their leg requirements (leg 1, leg 2 ordered as the seed: the
light lepton first, the electron first in e mu, the higher-pT tau_h first in
tau_h tau_h)

========  ======================  =====================================  ===============================
channel   leg_pt (pT, |eta|)       lepton_id / tau_id (DeepTau bits)      isolation (PF relative)
========  ======================  =====================================  ===============================
0 tt      taus > 40, < 2.1         VSjet Medium (16), VSe VVLoose (2),    --
                                   VSmu VLoose (1)
1 mt      mu > 20, < 2.1;          muon ``mediumId``; VSjet Medium,       muon pfRelIso04_all < 0.15
          tau > 30, < 2.3          VSe VVLoose (2), VSmu Tight (8)
2 et      e > 25, < 2.1;           electron ``cutBased >= 3`` (medium);   electron pfRelIso03_all < 0.15
          tau > 30, < 2.3          VSjet Medium, VSe Tight (32),
                                   VSmu VLoose (1)
3 em      e > 15, < 2.4;           electron ``cutBased >= 3``;            electron < 0.15, muon < 0.2
          mu > 15, < 2.4           muon ``mediumId``
========  ======================  =====================================  ===============================

The CMS analysis identifies electrons with the Fall17 MVA (noIso WP90); the
ntuples generated here carry the cut-based ID only, so the medium cut-based
working point stands in for it.  Tau-ID branch names and working points are
selection keys: bit fields as CMS NanoAOD (a working point ``wp`` passes when
``id & wp == wp``), so 2015-2016 NanoAOD runs the same code with
``tau_vsjet_branch: idMVAoldDM, tau_vse_branch: idAntiEle, tau_vsmu_branch:
idAntiMu`` and their bits (e.g. Medium 4, Tight 8, VLoose 1, Tight 2).

Each channel runs its own selection, in this cut order; the event bit of a cut
in the ``PackedSelection`` is "at least one channel passes this cut and all
before it", so the cutflow counts the events still alive in some channel:

=====================  ====================================================================
``two_legs``           two candidate legs of the channel's flavours (2 taus for tt)
``leg_pt``             ... of which two pass the channel's pT and |eta| cuts
``lepton_id``          ... and the electron / muon identification
``tau_id``             ... and the tau_h DeepTau working points (VSjet, VSe, VSmu)
``isolation``          ... and the light-lepton isolation
``pair``               a pair of such legs with dR > 0.5 (0.3 in e mu), and in e mu the
                       leading leg pT > 24 GeV (e-mu trigger plateau); the pair is the
                       highest-pT leg 1, then the highest-pT leg 2 (CMS ranks by isolation:
                       the same pair in all but multi-candidate events; pT ranking needs no
                       raw DeepTau score, absent in 2015 NanoAOD)
``opposite_sign``      the pair has opposite charges
``third_lepton_veto``  no further loose electron (pT > 10, |eta| < 2.5, dxy/dz as above,
                       cutBased >= 1, iso < 0.3) or loose muon (pT > 10, |eta| < 2.4,
                       mediumId, iso < 0.3) besides the legs
=====================  ====================================================================

With the defaults the extra-lepton veto makes the channels disjoint (every
signal lepton is a loose lepton, so e.g. a mu tau_h event has no other loose
electron or muon, which the e tau_h and e mu selections need).  Where a looser
config lets an event pass several channels it is assigned to the first of
:data:`PRIORITY`: mu tau_h, e tau_h, tau_h tau_h, e mu (light lepton + tau_h
first, the most sensitive H->tautau channels, muon before electron for its
purer identification; then tau_h tau_h; e mu, with four neutrinos and the
poorest mass resolution, last).  The CMS di-lepton (Z->ll) vetoes are covered
by the extra-lepton veto here: with medium-ID muons as loose muons, no looser
ID exists in the ntuples.

Columns (:data:`COLUMNS`): the event, ``genWeight``, ``channel`` (0 tt, 1 mt,
2 et, 3 em), both legs (pT, eta, phi, mass, charge, ``type`` 11/13/15 for
e/mu/tau_h, HPS ``decay_mode`` or -1, ``gen_flav`` (NanoAOD genPartFlav, -1
without truth) and ``gen_pt``, the visible pT of the matched GenVisTau (tau_h,
genPartFlav 5) or GenPart (e, mu; NaN where unmatched)), PF MET (pT, phi,
covariance xx/xy/yy, significance), jets (pT > 30 GeV, |eta| < 4.7, tight ID,
dR > 0.5 from both legs: the seed's jets) with the two leading jets, the
vector sum of the others (``aha_*``, the seed's "remaining hadronic activity")
and their numbers, ``PV_npvs`` and ``PV_npvsGood``, and the truth targets:
mass and pT of the last copy (statusFlags bit 13) of the first GenPart with
pdgId 25, else 23 (``resonance_pdg_ids``), NaN where there is none.  Missing
jets are NaN here (the feature spec maps them to the seed's zeros).

Only standard NanoAOD branches are read (:data:`BRANCHES` for the selection,
:data:`COLUMN_BRANCHES` for the columns, optional :data:`TRUTH_BRANCHES`);
:data:`EXTENDED_BRANCHES` is empty.  The seed uses PuppiMET for pT and phi but
the PF MET covariance; the ntuples here have PF MET only, which is used for both.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from coffea.processor import ProcessorABC

from ..detector.particles import index_within_group, pairs_within_event
from ..errors import ConfigError
from .common import (
    ColumnSpec,
    Cutflow,
    SelectionConfig,
    chunk_columns,
    columns_to_arrays,
    event_values,
    event_weights,
    flat_fields,
    run_processor,
)

STAGE = "ditau skim"

#: Channel names in ``channel`` column order (0 tt, 1 mt, 2 et, 3 em).
CHANNELS: tuple[str, ...] = ("tt", "mt", "et", "em")

#: Readable channel names.
CHANNEL_LABELS: dict[str, str] = {"tt": "tau_h tau_h", "mt": "mu tau_h", "et": "e tau_h", "em": "e mu"}

#: Channel assignment order where several channels pass (see the module docstring).
PRIORITY: tuple[str, ...] = ("mt", "et", "tt", "em")

#: Leg flavours (leg 1, leg 2) of each channel.
LEG_FLAVOURS: dict[str, tuple[str, str]] = {
    "tt": ("tau", "tau"),
    "mt": ("mu", "tau"),
    "et": ("e", "tau"),
    "em": ("e", "mu"),
}

#: Value of the ``leg<i>_type`` column per flavour.
LEG_TYPES: dict[str, int] = {"e": 11, "mu": 13, "tau": 15}

#: The event cuts, in cutflow order.
CUTS: tuple[str, ...] = (
    "two_legs",
    "leg_pt",
    "lepton_id",
    "tau_id",
    "isolation",
    "pair",
    "opposite_sign",
    "third_lepton_veto",
)

#: NanoAOD GenPart statusFlags bit of the last copy.
FLAG_LAST_COPY = 1 << 13

_COLLECTIONS = {"e": "Electron", "mu": "Muon", "tau": "Tau"}
_LEPTON_FIELDS = ("pt", "eta", "phi", "charge", "dxy", "dz")

#: Standard NanoAOD branches the output columns read (checked unless cutflow_only).
COLUMN_BRANCHES: tuple[str, ...] = (
    "Electron_mass",
    "Muon_mass",
    "Tau_mass",
    *(f"Jet_{f}" for f in ("pt", "eta", "phi", "mass", "jetId")),
    *(f"MET_{f}" for f in ("pt", "phi", "covXX", "covXY", "covYY", "significance")),
    "PV_npvs",
    "PV_npvsGood",
    # coffea's NanoAODSchema builds the PV record only with its position
    "PV_x",
    "PV_y",
    "PV_z",
)

#: hepchain-extended branches the columns need: none, the study runs on standard NanoAOD.
EXTENDED_BRANCHES: tuple[str, ...] = ()

#: Optional truth branches (read where present; absent in collision data: targets NaN, gen_flav -1).
TRUTH_BRANCHES: tuple[str, ...] = (
    "GenPart_pdgId",
    "GenPart_statusFlags",
    "GenPart_mass",
    "GenPart_pt",
    "GenVisTau_pt",
    *(f"{c}_{f}" for c in ("Electron", "Muon", "Tau") for f in ("genPartFlav", "genPartIdx")),
)


def _column_spec() -> dict[str, tuple[str, tuple[int, ...]]]:
    spec: dict[str, tuple[str, tuple[int, ...]]] = {
        "event": ("uint64", ()),
        "genWeight": ("float64", ()),
        "channel": ("int32", ()),
    }
    for leg in ("leg1", "leg2"):
        for f in ("pt", "eta", "phi", "mass"):
            spec[f"{leg}_{f}"] = ("float64", ())
        for f in ("charge", "type", "decay_mode", "gen_flav"):
            spec[f"{leg}_{f}"] = ("int32", ())
        spec[f"{leg}_gen_pt"] = ("float64", ())
    for f in ("met_pt", "met_phi", "met_covXX", "met_covXY", "met_covYY", "met_significance"):
        spec[f] = ("float64", ())
    spec["njets"] = ("int32", ())
    for jet in ("jet1", "jet2"):
        for f in ("pt", "eta", "phi", "mass"):
            spec[f"{jet}_{f}"] = ("float64", ())
    for f in ("aha_px", "aha_py", "aha_pz"):
        spec[f] = ("float64", ())
    spec["aha_njets"] = ("int32", ())
    spec["npvs"] = ("int32", ())
    spec["npvs_good"] = ("int32", ())
    spec["m_true"] = ("float64", ())
    spec["pt_true"] = ("float64", ())
    return spec


#: Output columns: name -> (dtype, row shape); all scalars.
COLUMNS: ColumnSpec = _column_spec()


@dataclass(frozen=True)
class DitauSelection(SelectionConfig):
    """Thresholds of the four-channel di-tau selection (GeV, cm; strict inequalities).

    ``tau_*_branch`` name the Tau bit-field ID branches (without ``Tau_``) and
    ``tau_*_wp*`` the bits required (``id & wp == wp``; 0 = no requirement);
    ``muon_id`` names the boolean Muon ID branch ("" = no ID requirement).
    """

    label: ClassVar[str] = "ditau"

    # candidate legs (the ``two_legs`` cut)
    electron_pt_min: float = 10.0
    electron_abs_eta_max: float = 2.5
    muon_pt_min: float = 10.0
    muon_abs_eta_max: float = 2.4
    lepton_dxy_max: float = 0.045
    lepton_dz_max: float = 0.2
    tau_pt_min: float = 20.0
    tau_abs_eta_max: float = 2.3
    tau_dz_max: float = 0.2
    tau_decay_modes: tuple[int, ...] = (0, 1, 10, 11)
    # leg_pt, per channel
    tt_tau_pt_min: float = 40.0
    tt_tau_abs_eta_max: float = 2.1
    mt_muon_pt_min: float = 20.0
    mt_muon_abs_eta_max: float = 2.1
    mt_tau_pt_min: float = 30.0
    mt_tau_abs_eta_max: float = 2.3
    et_electron_pt_min: float = 25.0
    et_electron_abs_eta_max: float = 2.1
    et_tau_pt_min: float = 30.0
    et_tau_abs_eta_max: float = 2.3
    em_electron_pt_min: float = 15.0
    em_electron_abs_eta_max: float = 2.4
    em_muon_pt_min: float = 15.0
    em_muon_abs_eta_max: float = 2.4
    # lepton_id
    electron_id_min: int = 3
    muon_id: str = "mediumId"
    # tau_id
    tau_vsjet_branch: str = "idDeepTau2017v2p1VSjet"
    tau_vse_branch: str = "idDeepTau2017v2p1VSe"
    tau_vsmu_branch: str = "idDeepTau2017v2p1VSmu"
    tau_vsjet_wp: int = 16
    tau_vse_wp_tt: int = 2
    tau_vse_wp_mt: int = 2
    tau_vse_wp_et: int = 32
    tau_vsmu_wp_tt: int = 1
    tau_vsmu_wp_mt: int = 8
    tau_vsmu_wp_et: int = 1
    # isolation
    mt_muon_iso_max: float = 0.15
    et_electron_iso_max: float = 0.15
    em_electron_iso_max: float = 0.15
    em_muon_iso_max: float = 0.2
    # pair
    pair_dr_min: float = 0.5
    em_pair_dr_min: float = 0.3
    em_lead_pt_min: float = 24.0
    # third_lepton_veto
    veto_electron_pt_min: float = 10.0
    veto_electron_abs_eta_max: float = 2.5
    veto_electron_id_min: int = 1
    veto_electron_iso_max: float = 0.3
    veto_muon_pt_min: float = 10.0
    veto_muon_abs_eta_max: float = 2.4
    veto_muon_iso_max: float = 0.3
    # jets (columns only)
    jet_pt_min: float = 30.0
    jet_abs_eta_max: float = 4.7
    jet_id_mask: int = 2
    jet_leg_dr_min: float = 0.5
    # truth target
    resonance_pdg_ids: tuple[int, ...] = (25, 23)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("tau_decay_modes", "resonance_pdg_ids"):
                if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
                    raise ConfigError(f"selection key '{f.name}' must be a list of integers, got {value!r}")
                if not value or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in value):
                    raise ConfigError(f"selection key '{f.name}' must be a non-empty list of integers, got {value!r}")
                object.__setattr__(self, f.name, tuple(int(v) for v in value))
            elif f.type in ("str", str):
                if not isinstance(value, str) or (value and not value.isidentifier()):
                    raise ConfigError(f"selection key '{f.name}' must be a branch name (without prefix), got {value!r}")
                if not value and f.name != "muon_id":
                    raise ConfigError(f"selection key '{f.name}' must not be empty")
            elif f.type in ("int", int):
                if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                    raise ConfigError(f"selection key '{f.name}' must be a non-negative integer, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not np.isfinite(value):
                raise ConfigError(f"selection key '{f.name}' must be a finite number, got {value!r}")


    def branches(self) -> tuple[str, ...]:
        """The branches the selection reads, with the configured tau-ID and muon-ID names."""
        return (
            *(f"Electron_{f}" for f in (*_LEPTON_FIELDS, "cutBased", "pfRelIso03_all")),
            *(f"Muon_{f}" for f in (*_LEPTON_FIELDS, "pfRelIso04_all")),
            *((f"Muon_{self.muon_id}",) if self.muon_id else ()),
            *(f"Tau_{f}" for f in ("pt", "eta", "phi", "charge", "dz", "decayMode", "idDecayModeNewDMs")),
            f"Tau_{self.tau_vsjet_branch}",
            f"Tau_{self.tau_vse_branch}",
            f"Tau_{self.tau_vsmu_branch}",
            "event",
        )


#: Branches the default selection reads (:meth:`DitauSelection.branches` for a configured one).
BRANCHES: tuple[str, ...] = DitauSelection().branches()


HINT = (
    "the ditau skim reads standard NanoAOD only (no extended hepchain ntuples needed); "
    "--cutflow-only runs the selection alone, without the column branches"
)

TAU_ID_HINT = (
    "the tau-ID branches and working points are selection keys: for 2015-2016 NanoAOD set tau_vsjet_branch: "
    "idMVAoldDM, tau_vse_branch: idAntiEle, tau_vsmu_branch: idAntiMu and their bits (tau_vsjet_wp, "
    "tau_vse_wp_<channel>, tau_vsmu_wp_<channel>); no extended hepchain ntuples are needed"
)


def missing_branch_hint(selection: DitauSelection) -> Callable[[str], str]:
    """The advice appended to a missing-branch error: tau-ID and muon-ID keys for those branches."""
    tau_ids = {f"Tau_{b}" for b in (selection.tau_vsjet_branch, selection.tau_vse_branch, selection.tau_vsmu_branch)}

    def hint(branch: str) -> str:
        if branch in tau_ids:
            return TAU_ID_HINT
        if selection.muon_id and branch == f"Muon_{selection.muon_id}":
            return "the selection key muon_id names the boolean Muon ID branch ('' for no ID requirement)"
        return HINT

    return hint


# --------------------------------------------------------------------------- array helpers
#
# The processor works on flat numpy arrays (one entry per object, grouped by event): an awkward
# operation costs about a millisecond whatever the chunk size, which dominated the skim when every
# cut was one.  Fields are taken straight from the NanoEvents layout (:class:`_Chunk`); the
# declared branches arrive in one request per chunk (the shared runner preloads them).  Every comparison is made on the same dtype
# as the awkward version it replaced (raw NanoAOD floats for the candidate and veto cuts, float64
# for the channel cuts), so the selection is the same bit for bit.


def _dphi(a: Any, b: Any) -> Any:
    return (a - b + np.pi) % (2 * np.pi) - np.pi


def _bits(values: np.ndarray, wp: int) -> np.ndarray:
    """``values & wp == wp`` (True for wp 0)."""
    return (values.astype(np.int64) & wp) == wp


class _Chunk:
    """One chunk's branches as flat numpy arrays (:func:`~hepchain.skim.common.flat_fields`, :func:`~hepchain.skim.common.event_values`).

    The declared branches arrive in one request per chunk (the shared runner preloads them).
    """

    def __init__(self, events: Any) -> None:
        self.events = events
        self.n_events = len(events)

    def collection(self, name: str, fields: Sequence[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(objects per event, {field: flat numpy}) of the collection ``name``."""
        return flat_fields(self.events[name], list(dict.fromkeys(fields)))

    def scalar(self, name: str, field: str | None = None) -> np.ndarray:
        """The per-event branch ``name`` (``name_field`` with ``field``) as numpy."""
        return event_values(self.events[name] if field is None else self.events[name][field])


def _chunk(events: Any) -> _Chunk:
    return events if isinstance(events, _Chunk) else _Chunk(events)


def _events_of(counts: np.ndarray) -> np.ndarray:
    """The event index of each object of a flat collection with ``counts`` objects per event."""
    return np.repeat(np.arange(len(counts)), counts)


def _take(counts: np.ndarray, flat: np.ndarray, index: np.ndarray, fill: float = np.nan, dtype: Any = np.float64) -> np.ndarray:
    """``values[event][index[event]]`` for flat ``values`` with ``counts`` per event and a local index (-1: none) -> ``fill``."""
    starts = np.cumsum(counts) - counts
    ok = (index >= 0) & (index < counts)
    out = np.full(len(index), fill, dtype=dtype)
    out[ok] = flat[(starts + index)[ok]]
    return out


def _first_per_event(evt: np.ndarray) -> np.ndarray:
    """Positions of the first entry of each event in a flat array grouped by (non-decreasing) ``evt``."""
    if len(evt) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.concatenate([[True], evt[1:] != evt[:-1]]))


@dataclass(frozen=True)
class _Objects:
    """One flavour's objects of a chunk: flat numpy fields, grouped by event (``evt``) in decreasing pT (stable).

    ``idx`` is each object's index in its event's NanoAOD collection.
    """

    n_events: int
    fields: dict[str, np.ndarray]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.fields[name]


# --------------------------------------------------------------------------- the processor


class DitauProcessor(ProcessorABC):
    """coffea processor of the di-tau skim; ``process`` returns ``{"cutflow", "columns"}`` per chunk."""

    def __init__(self, selection: DitauSelection | None = None, cutflow_only: bool = False) -> None:
        self.selection = selection or DitauSelection()
        self.cutflow_only = cutflow_only
        self.cutflow = Cutflow(CUTS)

    # ---------------------------------------------------------------- objects

    def objects(self, events: Any) -> dict[str, _Objects]:
        """Electrons, muons and taus as pT-ordered flat arrays with their local index and per-object flags."""
        s = self.selection
        chunk = _chunk(events)
        n = chunk.n_events
        ce, e = chunk.collection("Electron", (*_LEPTON_FIELDS, "cutBased", "pfRelIso03_all"))
        cm, m = chunk.collection("Muon", (*_LEPTON_FIELDS, "pfRelIso04_all", *((s.muon_id,) if s.muon_id else ())))
        ct, t = chunk.collection(
            "Tau",
            (
                "pt", "eta", "phi", "charge", "dz", "decayMode", "idDecayModeNewDMs",
                s.tau_vsjet_branch, s.tau_vse_branch, s.tau_vsmu_branch,
            ),
        )  # fmt: skip

        def base(c: Mapping[str, np.ndarray], counts: np.ndarray) -> dict[str, np.ndarray]:
            return {
                "pt": c["pt"].astype(np.float64),
                "eta": c["eta"].astype(np.float64),
                "phi": c["phi"].astype(np.float64),
                "charge": c["charge"].astype(np.int64),
                "idx": index_within_group(counts),
                "evt": _events_of(counts),
            }

        e_vertex = (np.abs(e["dxy"]) < s.lepton_dxy_max) & (np.abs(e["dz"]) < s.lepton_dz_max)
        e_iso = e["pfRelIso03_all"].astype(np.float64)
        ele = {
            **base(e, ce),
            "iso": e_iso,
            "cand": (e["pt"] > s.electron_pt_min) & (np.abs(e["eta"]) < s.electron_abs_eta_max) & e_vertex,
            "lid": e["cutBased"] >= s.electron_id_min,
            "veto": (e["pt"] > s.veto_electron_pt_min)
            & (np.abs(e["eta"]) < s.veto_electron_abs_eta_max)
            & e_vertex
            & (e["cutBased"] >= s.veto_electron_id_min)
            & (e_iso < s.veto_electron_iso_max),
        }
        m_vertex = (np.abs(m["dxy"]) < s.lepton_dxy_max) & (np.abs(m["dz"]) < s.lepton_dz_max)
        m_iso = m["pfRelIso04_all"].astype(np.float64)
        m_id = m[s.muon_id] if s.muon_id else np.ones(len(m["pt"]), dtype=bool)
        mu = {
            **base(m, cm),
            "iso": m_iso,
            "cand": (m["pt"] > s.muon_pt_min) & (np.abs(m["eta"]) < s.muon_abs_eta_max) & m_vertex,
            "lid": m_id,
            "veto": (m["pt"] > s.veto_muon_pt_min)
            & (np.abs(m["eta"]) < s.veto_muon_abs_eta_max)
            & m_vertex
            & m_id
            & (m_iso < s.veto_muon_iso_max),
        }
        dm = t["decayMode"].astype(np.int64)
        dm_ok = np.zeros(len(dm), dtype=bool)
        for mode in s.tau_decay_modes:
            dm_ok = dm_ok | (dm == mode)
        tau = {
            **base(t, ct),
            "cand": (t["pt"] > s.tau_pt_min)
            & (np.abs(t["eta"]) < s.tau_abs_eta_max)
            & (np.abs(t["dz"]) < s.tau_dz_max)
            & t["idDecayModeNewDMs"]
            & dm_ok
            & (np.abs(t["charge"]) == 1),
            "vsjet": t[s.tau_vsjet_branch].astype(np.int64),
            "vse": t[s.tau_vse_branch].astype(np.int64),
            "vsmu": t[s.tau_vsmu_branch].astype(np.int64),
        }
        out = {}
        for name, rec in (("e", ele), ("mu", mu), ("tau", tau)):
            order = np.lexsort((-rec["pt"], rec["evt"]))  # stable: equal pT keep their input order
            out[name] = _Objects(n, {f: v[order] for f, v in rec.items()})
        return out

    def _kinematics(self, channel: str, flavour: str) -> tuple[float, float]:
        s = self.selection
        name = {"e": "electron", "mu": "muon", "tau": "tau"}[flavour]
        return getattr(s, f"{channel}_{name}_pt_min"), getattr(s, f"{channel}_{name}_abs_eta_max")

    def leg_masks(self, channel: str, flavour: str, obj: _Objects) -> list[np.ndarray]:
        """Cumulative object masks of one leg flavour for the cuts two_legs .. isolation."""
        s = self.selection
        pt_min, eta_max = self._kinematics(channel, flavour)
        cand = obj["cand"]
        kin = cand & (obj["pt"] > pt_min) & (np.abs(obj["eta"]) < eta_max)
        if flavour == "tau":
            lid = kin
            tid = (
                lid
                & _bits(obj["vsjet"], s.tau_vsjet_wp)
                & _bits(obj["vse"], getattr(s, f"tau_vse_wp_{channel}"))
                & _bits(obj["vsmu"], getattr(s, f"tau_vsmu_wp_{channel}"))
            )
            iso = tid
        else:
            lid = kin & obj["lid"]
            tid = lid
            name = "electron" if flavour == "e" else "muon"
            iso = tid & (obj["iso"] < getattr(s, f"{channel}_{name}_iso_max"))
        return [cand, kin, lid, tid, iso]

    def channel(self, channel: str, objs: Mapping[str, _Objects]) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """Cumulative per-cut event masks of one channel and the local indices of its legs (-1 if no pair)."""
        s = self.selection
        f1, f2 = LEG_FLAVOURS[channel]
        o1, o2 = objs[f1], objs[f2]
        n = o1.n_events
        m1 = self.leg_masks(channel, f1, o1)
        a = np.flatnonzero(m1[-1])
        if f1 == f2:
            stages = [np.bincount(o1["evt"][m], minlength=n) >= 2 for m in m1]
            # ak.combinations order: (i, j), i < j, by position in the pT-ordered list
            evt_a = o1["evt"][a]
            after = np.bincount(evt_a, minlength=n)[evt_a] - 1 - index_within_group(np.bincount(evt_a, minlength=n))
            pa = np.repeat(np.arange(len(a)), after)
            i1, i2 = a[pa], a[pa + 1 + index_within_group(after)]
        else:
            m2 = self.leg_masks(channel, f2, o2)
            stages = [
                (np.bincount(o1["evt"][x], minlength=n) > 0) & (np.bincount(o2["evt"][y], minlength=n) > 0)
                for x, y in zip(m1, m2, strict=True)
            ]
            # ak.cartesian order: leg 1 by position, then leg 2 by position
            b = np.flatnonzero(m2[-1])
            pa, pb = pairs_within_event(o1["evt"][a], o2["evt"][b], n)
            i1, i2 = a[pa], b[pb]
        deta = o1["eta"][i1] - o2["eta"][i2]
        dphi = _dphi(o1["phi"][i1], o2["phi"][i2])
        dr_min = s.em_pair_dr_min if channel == "em" else s.pair_dr_min
        ok = np.sqrt(deta**2 + dphi**2) > dr_min
        if channel == "em":
            ok = ok & (np.maximum(o1["pt"][i1], o2["pt"][i2]) > s.em_lead_pt_min)
        i1, i2 = i1[ok], i2[ok]
        first = _first_per_event(o1["evt"][i1])
        i1, i2 = i1[first], i2[first]
        evt = o1["evt"][i1]
        has_pair = np.zeros(n, dtype=bool)
        has_pair[evt] = True
        stages.append(has_pair)
        opposite = np.zeros(n, dtype=bool)
        opposite[evt] = o1["charge"][i1] * o2["charge"][i2] < 0
        stages.append(opposite)
        idx1 = np.full(n, -1, dtype=np.int64)
        idx2 = np.full(n, -1, dtype=np.int64)
        idx1[evt] = o1["idx"][i1]
        idx2[evt] = o2["idx"][i2]
        extra = np.zeros(n, dtype=np.int64)
        for flavour in ("e", "mu"):
            own = np.full(n, -1, dtype=np.int64)
            if f1 == flavour:
                own = idx1
            elif f2 == flavour:
                own = idx2
            obj = objs[flavour]
            extra += np.bincount(obj["evt"][obj["veto"] & (obj["idx"] != own[obj["evt"]])], minlength=n)
        stages.append(extra == 0)
        cumulative = []
        alive = np.ones(n, dtype=bool)
        for stage in stages:
            alive = alive & stage
            cumulative.append(alive)
        return cumulative, idx1, idx2

    # ---------------------------------------------------------------- columns

    def _leg_columns(self, events: Any, flavour: np.ndarray, index: np.ndarray) -> dict[str, np.ndarray]:
        """Columns of one leg given its per-event flavour code (0 e, 1 mu, 2 tau, -1 none) and local index."""
        chunk = _chunk(events)
        events = chunk.events
        n = len(index)
        out: dict[str, np.ndarray] = {
            "pt": np.full(n, np.nan),
            "eta": np.full(n, np.nan),
            "phi": np.full(n, np.nan),
            "mass": np.full(n, np.nan),
            "charge": np.zeros(n, dtype=np.int32),
            "type": np.zeros(n, dtype=np.int32),
            "decay_mode": np.full(n, -1, dtype=np.int32),
            "gen_flav": np.full(n, -1, dtype=np.int32),
            "gen_pt": np.full(n, np.nan),
        }
        has_genpart = "GenPart" in events.fields
        has_genvistau = "GenVisTau" in events.fields
        for code, name in enumerate(("e", "mu", "tau")):
            mine = flavour == code
            if not mine.any():
                continue
            idx = np.where(mine, index, -1)
            coll = _COLLECTIONS[name]
            truth = "genPartFlav" in events[coll].fields and "genPartIdx" in events[coll].fields
            fields = ("pt", "eta", "phi", "mass", "charge", "decayMode") if name == "tau" else ("pt", "eta", "phi", "mass", "charge")
            counts, c = chunk.collection(coll, (*fields, *(("genPartFlav", "genPartIdx") if truth else ())))
            for f in ("pt", "eta", "phi", "mass"):
                out[f] = np.where(mine, _take(counts, c[f], idx), out[f])
            out["charge"] = np.where(mine, _take(counts, c["charge"], idx, 0, np.int32), out["charge"])
            out["type"] = np.where(mine, LEG_TYPES[name], out["type"])
            if name == "tau":
                out["decay_mode"] = np.where(mine, _take(counts, c["decayMode"], idx, -1, np.int32), out["decay_mode"])
            if truth:
                flav = _take(counts, c["genPartFlav"], idx, -1, np.int32)
                gidx = _take(counts, c["genPartIdx"], idx, -1, np.int64)
                out["gen_flav"] = np.where(mine, flav, out["gen_flav"])
                if name == "tau":
                    vis = flav == 5
                    if has_genvistau:
                        v_counts, v = chunk.collection("GenVisTau", ("pt",))
                        out["gen_pt"] = np.where(
                            mine & vis, _take(v_counts, v["pt"], np.where(vis, gidx, -1)), out["gen_pt"]
                        )
                    lep = (flav >= 1) & (flav <= 4)
                    if has_genpart:
                        g_counts, g = chunk.collection("GenPart", ("pt",))
                        out["gen_pt"] = np.where(
                            mine & lep, _take(g_counts, g["pt"], np.where(lep, gidx, -1)), out["gen_pt"]
                        )
                elif has_genpart:
                    g_counts, g = chunk.collection("GenPart", ("pt",))
                    out["gen_pt"] = np.where(mine, _take(g_counts, g["pt"], gidx), out["gen_pt"])
        return out

    def _jets(self, events: Any, legs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Selected jets, cleaned against both legs: counts, two leading, and the sum of the rest."""
        s = self.selection
        chunk = _chunk(events)
        counts, j = chunk.collection("Jet", ("pt", "eta", "phi", "mass", "jetId"))
        n = len(counts)
        evt = _events_of(counts)
        pt, eta, phi, mass = (j[f].astype(np.float64) for f in ("pt", "eta", "phi", "mass"))
        mask = (pt > s.jet_pt_min) & (np.abs(eta) < s.jet_abs_eta_max)
        mask = mask & ((j["jetId"].astype(np.int64) & s.jet_id_mask) == s.jet_id_mask)
        for leg in ("leg1", "leg2"):
            dr = np.sqrt((eta - legs[f"{leg}_eta"][evt]) ** 2 + _dphi(phi, legs[f"{leg}_phi"][evt]) ** 2)
            mask = mask & (dr > s.jet_leg_dr_min)
        keep = np.flatnonzero(mask)
        keep = keep[np.lexsort((-pt[keep], evt[keep]))]  # stable: equal pT keep their input order
        jevt = evt[keep]
        njets = np.bincount(jevt, minlength=n)
        rank = index_within_group(njets)
        out: dict[str, np.ndarray] = {"njets": njets.astype(np.int32)}
        for k, name in ((0, "jet1"), (1, "jet2")):
            pick = rank == k
            for f, values in (("pt", pt), ("eta", eta), ("phi", phi), ("mass", mass)):
                column = np.full(n, np.nan)
                column[jevt[pick]] = values[keep[pick]]
                out[f"{name}_{f}"] = column
        rest = keep[rank >= 2]
        revt = evt[rest]
        out["aha_px"] = np.bincount(revt, weights=pt[rest] * np.cos(phi[rest]), minlength=n)
        out["aha_py"] = np.bincount(revt, weights=pt[rest] * np.sin(phi[rest]), minlength=n)
        out["aha_pz"] = np.bincount(revt, weights=pt[rest] * np.sinh(eta[rest]), minlength=n)
        out["aha_njets"] = np.bincount(revt, minlength=n).astype(np.int32)
        return out

    def _truth(self, events: Any) -> tuple[np.ndarray, np.ndarray]:
        """Mass and pT of the resonance (first of ``resonance_pdg_ids`` present, last copy); NaN without."""
        chunk = _chunk(events)
        n = chunk.n_events
        mass, pt = np.full(n, np.nan), np.full(n, np.nan)
        if "GenPart" not in chunk.events.fields:
            return mass, pt
        counts, g = chunk.collection("GenPart", ("pdgId", "statusFlags", "mass", "pt"))
        evt = _events_of(counts)
        last = (g["statusFlags"].astype(np.int64) & FLAG_LAST_COPY) != 0
        for pdg in reversed(self.selection.resonance_pdg_ids):
            chosen = np.flatnonzero(last & (g["pdgId"] == pdg))
            chosen = chosen[_first_per_event(evt[chosen])]
            m, p = np.full(n, np.nan), np.full(n, np.nan)
            m[evt[chosen]] = g["mass"][chosen]
            p[evt[chosen]] = g["pt"][chosen]
            found = ~np.isnan(m)
            mass, pt = np.where(found, m, mass), np.where(found, p, pt)
        return mass, pt

    # ---------------------------------------------------------------- process

    def process(self, events: Any) -> dict[str, Any]:
        """Select one chunk: its cutflow entry (with per-channel counts) and the columns of the selected events."""
        weights = event_weights(events)
        chunk = _Chunk(events)
        objs = self.objects(chunk)
        results = {ch: self.channel(ch, objs) for ch in CHANNELS}
        masks = {cut: np.logical_or.reduce([results[ch][0][k] for ch in CHANNELS]) for k, cut in enumerate(CUTS)}
        selection = self.cutflow.selection(masks)
        channel = np.full(len(weights), -1, dtype=np.int32)
        for ch in reversed(PRIORITY):
            channel = np.where(results[ch][0][-1], CHANNELS.index(ch), channel).astype(np.int32)
        passed = channel >= 0

        entry: dict[str, Any] = self.cutflow.fill(selection, weights)
        for code, ch in enumerate(CHANNELS):
            mine = channel == code
            entry[f"channel:{ch}"] = {"raw": int(mine.sum()), "weighted": math.fsum(weights[mine].tolist())}

        if self.cutflow_only:
            out = chunk_columns(events, {})
        else:
            out = chunk_columns(events, self._columns(chunk, weights, results, channel, passed))
        (key,) = out
        return {"cutflow": {key: entry}, "columns": out}

    def _columns(
        self,
        events: Any,
        weights: np.ndarray,
        results: Mapping[str, tuple[list[np.ndarray], np.ndarray, np.ndarray]],
        channel: np.ndarray,
        passed: np.ndarray,
    ) -> dict[str, np.ndarray]:
        codes = {"e": 0, "mu": 1, "tau": 2}
        chunk = _chunk(events)
        # the per-event helpers run on the whole chunk (numpy: no cost worth a selection first); rows are cut at the end
        columns: dict[str, np.ndarray] = {
            "event": chunk.scalar("event").astype(np.uint64),
            "genWeight": weights,
            "channel": channel,
        }
        legs: dict[str, np.ndarray] = {}
        for pos in (1, 2):
            flavour = np.full(len(channel), -1, dtype=np.int64)
            index = np.full(len(channel), -1, dtype=np.int64)
            for code, name in enumerate(CHANNELS):
                mine = channel == code
                flavour = np.where(mine, codes[LEG_FLAVOURS[name][pos - 1]], flavour)
                index = np.where(mine, results[name][pos], index)
            for f, values in self._leg_columns(events, flavour, index).items():
                legs[f"leg{pos}_{f}"] = values
        columns.update(legs)
        for f in ("pt", "phi", "covXX", "covXY", "covYY", "significance"):
            columns[f"met_{f}"] = chunk.scalar("MET", f).astype(np.float64)
        with np.errstate(invalid="ignore"):  # events without legs (dropped below) have NaN leg angles
            columns.update(self._jets(events, legs))
        columns["npvs"] = chunk.scalar("PV", "npvs").astype(np.int32)
        columns["npvs_good"] = chunk.scalar("PV", "npvsGood").astype(np.int32)
        columns["m_true"], columns["pt_true"] = self._truth(events)
        return {c: columns[c][passed] for c in COLUMNS}

    def postprocess(self, accumulator: Any) -> Any:
        """Nothing to do: merging is done by :func:`run_ditau_skim`."""
        return accumulator


def channel_counts(chunks: Mapping[Any, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per-channel raw and weighted counts after all cuts, summed over chunks (exact sums)."""
    out: dict[str, dict[str, Any]] = {}
    for code, ch in enumerate(CHANNELS):
        entries = [c[f"channel:{ch}"] for c in chunks.values()]
        out[ch] = {
            "channel": code,
            "label": CHANNEL_LABELS[ch],
            "raw": sum(int(e["raw"]) for e in entries),
            "weighted": math.fsum(float(e["weighted"]) for e in entries),
        }
    return out


def run_ditau_skim(
    files: Sequence[str],
    *,
    selection: DitauSelection | None = None,
    executor: str = "iterative",
    workers: int = 1,
    chunksize: int = 100_000,
    cutflow_only: bool = False,
    scheduler: str | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Run the di-tau skim over ``files``; return the skim table (dict of arrays) and the cutflow dict.

    The table has :data:`COLUMNS` (one row per selected event, in input file then
    entry order; no rows with ``cutflow_only``, which reads only the selection's
    branches).  The cutflow is ``{"cuts": [{"name", "raw", "weighted"}, ...], "sumw",
    "n_events", "channels": {ch: {"channel", "label", "raw", "weighted"}}, "selection"}``.
    """
    files = [str(f) for f in files]
    processor = DitauProcessor(selection, cutflow_only=cutflow_only)
    branches = processor.selection.branches()
    if not cutflow_only:
        branches = (*branches, *COLUMN_BRANCHES, *EXTENDED_BRANCHES)
    out = run_processor(
        files,
        processor,
        branches=branches,
        stage=STAGE,
        executor=executor,
        workers=workers,
        chunksize=chunksize,
        hint=missing_branch_hint(processor.selection),
        scheduler=scheduler,
    )
    table = columns_to_arrays(out["columns"], files, COLUMNS)
    cutflow = processor.cutflow.finalize(out["cutflow"])
    cutflow["channels"] = channel_counts(out["cutflow"])
    cutflow["selection"] = processor.selection.to_dict()
    return table, cutflow
