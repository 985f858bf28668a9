"""The W -> mu nu skim of the hadronic-recoil calibration study (seed 000, low pile-up).

Seed 000 trains on W -> mu nu Monte Carlo at low pile-up without spelling out
the event selection; where it is silent the standard low pile-up W selection
of ATLAS (W mass, EPJC 78 (2018) 110; low pile-up W/Z pT, arXiv:2404.06204:
one lepton pT > 25 GeV, MET > 25 GeV, m_T > 50 GeV) is used with the CMS
NanoAOD muon and electron IDs (tight muon ID, PF isolation dR < 0.4 below 0.15;
loose veto leptons as in CMS W/Z analyses).  Defaults are those of
:class:`RecoilSelection` (GeV, cm; every threshold a strict inequality):

* selected muon: pT > 25, |eta| < 2.4, ``tightId``, ``pfRelIso04_all < 0.15``,
  prompt: |dxy| < 0.05 and |dz| < 0.2;
* veto muons: any other muon with pT > 10, |eta| < 2.4, ``pfRelIso04_all < 0.25``
  (every NanoAOD muon is at least a loose PF muon, and our ntuples carry no
  ``looseId``); veto electrons: pT > 10, |eta| < 2.5, ``cutBased >= 1`` (veto ID);
* jets (columns only): pT > 20 (the seed's jet threshold), |eta| < 4.7, tight ID
  (``jetId & 2``), dR(jet, muon) > 0.4.

No trigger is required: the ntuples carry no trigger bits.

Event cuts, in order, each a named bit of a ``PackedSelection``:

================  ============================================================
``one_muon``      exactly one selected muon
``lepton_veto``   no veto muon besides it and no veto electron
``met``           PF MET > 25 GeV
``mt``            m_T(muon, PF MET) > 50 GeV, m_T = sqrt(2 pT MET (1 - cos dphi))
================  ============================================================

Hadronic recoil (seed: "the vector sum of all reconstructed PFOs (charged and
neutral) excluding the decay leptons", ``u_T = sum pT(PFO)``, ideally
``-pT(W)``): the PF candidates (``PFCands``) outside a cone dR < 0.1 around the
selected muon (its own PF candidate and its collinear FSR photons, which
belong to the W decay; the seed does not give a cone size, 0.1 is the usual
dressed-lepton cone; the cone's share of the underlying event is not added
back as ATLAS's cone replacement would), keeping charged candidates only from
the primary vertex (``fromPV >= 1``, charged-hadron subtraction, as ATLAS
PFlow removes charged PFOs of pile-up vertices) and every neutral one.  Charged
means charge != 0 (hadrons and PF leptons); a neutral candidate is a photon if
|pdgId| is 22 (or 2, HF EM) and a neutral hadron otherwise.  The charged
pile-up candidates left out are kept as ``u_pu_x``/``u_pu_y``, so that the
all-candidate recoil ``u + u_pu`` (close to ``-(MET + pT(mu))``) is available.

Columns (see :func:`skim_columns`; K = ``n_pfos``, S = ``n_pfos_split``):

``event``, ``genWeight``
    event number; generator weight (1 for data).
``mu_pt``, ``mu_eta``, ``mu_phi``, ``mu_charge``, ``mt``
    the selected muon and the transverse mass.
``met_pt``, ``met_phi``, ``met_sumEt``, ``tkmet_pt``, ``tkmet_phi``, ``npv``
    PF MET, track MET, ``PV_npvs``.
``u_x``, ``u_y``, ``u_ch_x``, ``u_ch_y``, ``u_neu_x``, ``u_neu_y``, ``u_pu_x``, ``u_pu_y``
    recoil (= charged + neutral parts) and the left-out charged pile-up sum [GeV].
``sumet``, ``sumet_ch``, ``sumet_nh``, ``sumet_gamma``
    scalar pT sums of the recoil candidates: all, charged, neutral hadrons, photons.
``n_pfo_ch``, ``n_pfo_nh``, ``n_pfo_gamma``, ``n_pfo_pu``
    candidate counts of each kind.
``pfo_pt``, ``pfo_eta``, ``pfo_phi``, ``pfo_charge``, ``pfo_pdgId``, ``pfo_mask`` (K,)
    the K leading recoil candidates by pT (absolute azimuth), zero padded.
``pfo_ch_pt``, ``pfo_ch_phi``, ``pfo_ch_mask``, ``pfo_neu_pt``, ``pfo_neu_phi``, ``pfo_neu_mask`` (S,)
    the S leading charged and neutral recoil candidates (the seed's 5 + 5).
``j0_pt`` ... ``j1_phi``, ``njets``
    the two leading selected jets (NaN where absent) and their number.
``w_pt``, ``w_phi``, ``w_mass``, ``genmet_pt``, ``genmet_phi``
    truth: the first GenPart with |pdgId| = 24 and statusFlags bit 13
    (isLastCopy), and GenMET; NaN where absent (data, or no GenPart/GenMET).

Branches: :data:`BRANCHES` (the selection's, standard NanoAOD),
:data:`COLUMN_BRANCHES` (standard NanoAOD, for the columns),
:data:`EXTENDED_BRANCHES` (``PFCands_*``: our ``wmunu`` ntuples simulated with
``store_pfcands: true``, or PFNano; standard NanoAOD lacks them) and the
optional :data:`OPTIONAL_BRANCHES` (truth, genWeight).  With
``cutflow_only=True`` only :data:`BRANCHES` are needed and read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from coffea.processor import ProcessorABC

from ..detector.particles import index_within_group
from ..errors import ConfigError
from ..features.recoil import N_PFOS, N_PFOS_SPLIT, transverse_mass
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

STAGE = "recoil skim"

#: Branches the selection reads (standard NanoAOD); every input must have them.  coffea's Muon and Electron
#: behaviours need phi, mass and charge to build the collections, even where the selection does not use them.
BRANCHES: tuple[str, ...] = (
    *(f"Muon_{f}" for f in ("pt", "eta", "phi", "mass", "charge", "pfRelIso04_all", "tightId", "dxy", "dz")),
    *(f"Electron_{f}" for f in ("pt", "eta", "phi", "mass", "charge", "cutBased")),
    "MET_pt",
    "MET_phi",
    "event",
)

#: Standard NanoAOD branches the columns read besides :data:`BRANCHES` (not needed with ``cutflow_only``).
COLUMN_BRANCHES: tuple[str, ...] = (
    "MET_sumEt",
    "TkMET_pt",
    "TkMET_phi",
    "PV_npvs",
    *(f"Jet_{f}" for f in ("pt", "eta", "phi", "mass", "jetId")),
)

#: hepchain-extended branches the recoil columns need (PF candidates; absent from standard NanoAOD).
EXTENDED_BRANCHES: tuple[str, ...] = tuple(f"PFCands_{f}" for f in ("pt", "eta", "phi", "charge", "pdgId", "fromPV"))

#: Branches read when present (truth W, GenMET, generator weight); NaN or 1 where absent.
OPTIONAL_BRANCHES: tuple[str, ...] = (
    *(f"GenPart_{f}" for f in ("pt", "phi", "mass", "pdgId", "statusFlags")),
    "GenMET_pt",
    "GenMET_phi",
    "genWeight",
)

#: The event cuts, in cutflow order.
CUTS: tuple[str, ...] = ("one_muon", "lepton_veto", "met", "mt")

#: NanoAOD GenPart statusFlags bit 13: isLastCopy.
LAST_COPY = 1 << 13

EXTENDED_HINT = (
    "the recoil study needs the extended hepchain ntuples with PF candidates (PFCands_*): simulate with "
    "store_pfcands: true (standard NanoAOD has no PFCands; PFNano files do); --cutflow-only runs the selection alone"
)
STANDARD_HINT = "the recoil skim reads NanoAOD muons, electrons, MET, TkMET, PV_npvs and jets"


@dataclass(frozen=True)
class RecoilSelection(SelectionConfig):
    """Thresholds of the W -> mu nu selection and of the recoil columns (GeV, cm; strict inequalities).

    ``recoil_cone_dr``: PF candidates with dR(muon) < this are not recoil;
    ``pfcand_from_pv_min``: charged candidates need ``fromPV >=`` this;
    ``n_pfos`` / ``n_pfos_split``: sizes of the padded leading-candidate sets.
    """

    label: ClassVar[str] = "recoil"

    muon_pt_min: float = 25.0
    muon_abs_eta_max: float = 2.4
    muon_tight_id: bool = True
    muon_iso_max: float = 0.15
    muon_dxy_max: float = 0.05
    muon_dz_max: float = 0.2
    veto_muon_pt_min: float = 10.0
    veto_muon_abs_eta_max: float = 2.4
    veto_muon_iso_max: float = 0.25
    veto_electron_pt_min: float = 10.0
    veto_electron_abs_eta_max: float = 2.5
    veto_electron_cut_based_min: int = 1
    met_min: float = 25.0
    mt_min: float = 50.0
    recoil_cone_dr: float = 0.1
    pfcand_from_pv_min: int = 1
    jet_pt_min: float = 20.0
    jet_abs_eta_max: float = 4.7
    jet_id_mask: int = 2
    jet_muon_dr_min: float = 0.4
    n_pfos: int = N_PFOS
    n_pfos_split: int = N_PFOS_SPLIT

    def __post_init__(self) -> None:
        self.check_numbers()
        for name in ("n_pfos", "n_pfos_split"):
            if getattr(self, name) < 1:
                raise ConfigError(f"selection key '{name}' must be at least 1, got {getattr(self, name)}")
        if self.recoil_cone_dr <= 0:
            raise ConfigError(
                f"selection key 'recoil_cone_dr' must be positive (the muon's own PF candidate is at dR 0), "
                f"got {self.recoil_cone_dr}"
            )



def skim_columns(selection: RecoilSelection | None = None) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Output columns ``name -> (dtype, row shape)`` for ``selection``'s set sizes, in order."""
    s = selection or RecoilSelection()
    k, n = (s.n_pfos,), (s.n_pfos_split,)
    f8, i4 = "float64", "int32"
    cols: dict[str, tuple[str, tuple[int, ...]]] = {"event": ("uint64", ()), "genWeight": (f8, ())}
    cols |= {c: (f8, ()) for c in ("mu_pt", "mu_eta", "mu_phi")}
    cols["mu_charge"] = (i4, ())
    cols |= {c: (f8, ()) for c in ("mt", "met_pt", "met_phi", "met_sumEt", "tkmet_pt", "tkmet_phi")}
    cols["npv"] = (i4, ())
    cols |= {f"u{p}_{x}": (f8, ()) for p in ("", "_ch", "_neu", "_pu") for x in ("x", "y")}
    cols |= {c: (f8, ()) for c in ("sumet", "sumet_ch", "sumet_nh", "sumet_gamma")}
    cols |= {c: (i4, ()) for c in ("n_pfo_ch", "n_pfo_nh", "n_pfo_gamma", "n_pfo_pu")}
    cols |= {"pfo_pt": ("float32", k), "pfo_eta": ("float32", k), "pfo_phi": ("float32", k)}
    cols |= {"pfo_charge": (i4, k), "pfo_pdgId": (i4, k), "pfo_mask": ("bool", k)}
    for part in ("ch", "neu"):
        cols |= {f"pfo_{part}_pt": ("float32", n), f"pfo_{part}_phi": ("float32", n), f"pfo_{part}_mask": ("bool", n)}
    cols |= {f"j{i}_{f}": (f8, ()) for i in (0, 1) for f in ("pt", "eta", "phi")}
    cols["njets"] = (i4, ())
    cols |= {c: (f8, ()) for c in ("w_pt", "w_phi", "w_mass", "genmet_pt", "genmet_phi")}
    return cols


#: Output columns of the default selection: name -> (dtype, row shape).
COLUMNS: ColumnSpec = skim_columns()


def _np(x: Any, dtype: Any = np.float64, passed: np.ndarray | None = None) -> np.ndarray:
    """A per-event branch as numpy ``dtype``; only the ``passed`` events when given."""
    out = event_values(x)
    return (out if passed is None else out[passed]).astype(dtype)


def _event_index(counts: np.ndarray) -> np.ndarray:
    """The event index of each object of a flat collection with ``counts`` objects per event."""
    return np.repeat(np.arange(len(counts)), counts)


def _flat(collection: Any, fields: Sequence[str], passed: np.ndarray | None) -> tuple[int, np.ndarray, dict]:
    """(number of events, event index of each object, flat fields) of a jagged collection.

    With ``passed`` (a per-event mask of ``collection``'s events) only the objects of the passed events are kept
    and the event index counts the passed events (0 .. passed.sum() - 1).
    """
    counts, flat = flat_fields(collection, fields)
    if passed is None:
        return len(counts), _event_index(counts), flat
    keep = np.repeat(passed, counts)
    return int(np.count_nonzero(passed)), _event_index(counts[passed]), {f: v[keep] for f, v in flat.items()}


def _first(evt: np.ndarray, values: np.ndarray, n: int, fill: float = np.nan, dtype: Any = np.float64) -> np.ndarray:
    """Per event, the first of the flat ``values`` (grouped by their event index ``evt``), ``fill`` where none."""
    out = np.full(n, fill, dtype=dtype)
    first = np.ones(len(evt), dtype=bool)
    first[1:] = evt[1:] != evt[:-1]
    out[evt[first]] = values[first]
    return out


def _dr2(eta: Any, phi: Any, ref_eta: Any, ref_phi: Any) -> Any:
    """dR^2 of flat (eta, phi) to their event's reference (``ref_*`` indexed by each object's event)."""
    deta = eta - ref_eta
    dphi = (phi - ref_phi + np.pi) % (2 * np.pi) - np.pi
    return deta * deta + dphi * dphi


def _mask(counts: np.ndarray, size: int) -> np.ndarray:
    return np.arange(size)[None, :] < np.asarray(counts)[:, None]


def _by_event_then_pt(idx: np.ndarray, evt: np.ndarray, pt: np.ndarray) -> np.ndarray:
    """The flat indices ``idx`` (increasing, grouped by event) ordered by event, then decreasing ``pt``.

    Stable: equal pT keep their input order (as a stable descending argsort within each event).  For float32
    pT without negative-signed or NaN values one argsort of the 64-bit key (event, ~bits(pT)) does it (the
    bits of non-negative floats order as the floats do); otherwise a lexsort.
    """
    p = pt[idx]
    if p.dtype == np.float32 and not (np.signbit(p) | np.isnan(p)).any():
        key = (evt[idx].astype(np.uint64) << np.uint64(32)) | (np.uint64(0xFFFFFFFF) - p.view(np.uint32))
        return idx[np.argsort(key, kind="stable")]
    return idx[np.lexsort((-p.astype(np.float64), evt[idx]))]


def _ranks(lead_evt: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(objects per event, rank of each object in its event) of flat objects grouped by event ``lead_evt``."""
    counts = np.bincount(lead_evt, minlength=n)
    return counts, index_within_group(counts)


def _padded(idx: np.ndarray, evt: np.ndarray, rank: np.ndarray, n: int, size: int,
            columns: Mapping[str, tuple[np.ndarray, float, Any]]) -> dict[str, np.ndarray]:
    """Padded ``(n, size)`` sets of ranked objects: ``name -> (flat values, fill, dtype)``.

    ``idx``: flat indices of the objects in (event, rank) order, ``evt`` their events, ``rank`` their rank in
    the event; the objects of rank < size are scattered into their event's row, ``fill`` beyond.
    """
    pick = rank < size
    chosen, slot = idx[pick], evt[pick] * size + rank[pick]
    out = {}
    for name, (values, fill, dtype) in columns.items():
        arr = np.full(n * size, fill, dtype=dtype)
        arr[slot] = values[chosen]
        out[name] = arr.reshape(n, size)
    return out


def _within(eta: np.ndarray, phi: np.ndarray, ref_eta: np.ndarray, ref_phi: np.ndarray, evt: np.ndarray,
            dr2_max: float) -> np.ndarray:
    """``_dr2(eta, phi, ref_eta[evt], ref_phi[evt]) < dr2_max``, bit for bit, computing the azimuthal part only
    where deta^2 alone is below ``dr2_max`` (adding dphi^2 >= 0 never lowers the rounded sum)."""
    deta = eta - ref_eta[evt]
    deta2 = deta * deta
    near = np.flatnonzero(deta2 < dr2_max)
    out = np.zeros(len(deta), dtype=bool)
    dphi = (phi[near] - ref_phi[evt[near]] + np.pi) % (2 * np.pi) - np.pi
    out[near] = deta2[near] + dphi * dphi < dr2_max
    return out


def _kind_tables() -> tuple[np.ndarray, np.ndarray]:
    """Kind of a PF candidate from its code (bits: in cone 8, charged 4, from PV 2, photon-like 1).

    ``_KIND``: 0 charged recoil, 1 neutral hadron, 2 photon, 3 charged pile-up, 4 none (in the cone);
    ``_VEC_KIND``: 0 charged recoil, 1 neutral recoil, 2 charged pile-up, 3 none.
    """
    kind = np.empty(16, dtype=np.int64)
    for code in range(16):
        in_cone, charged, from_pv, photon = code & 8, code & 4, code & 2, code & 1
        kind[code] = 4 if in_cone else (0 if from_pv else 3) if charged else (2 if photon else 1)
    return kind, np.array([0, 1, 1, 2, 3], dtype=np.int64)[kind]


_KIND, _VEC_KIND = _kind_tables()


class RecoilProcessor(ProcessorABC):
    """coffea processor of the W -> mu nu recoil skim; ``process`` returns ``{"cutflow", "columns"}`` per chunk.

    Each chunk's collections are read once per field as flat numpy arrays with the event index of each
    object; masks, sums, counts and leading-object sets are numpy operations on them.
    """

    def __init__(self, selection: RecoilSelection | None = None, cutflow_only: bool = False) -> None:
        self.selection = selection or RecoilSelection()
        self.cutflow_only = cutflow_only
        self.columns = skim_columns(self.selection)
        self.cutflow = Cutflow(CUTS)

    def _muons(self, events: Any) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """(event index of each muon, flat fields, selected mask, veto-loose mask)."""
        s = self.selection
        _, evt, m = _flat(events.Muon, ("pt", "eta", "phi", "charge", "pfRelIso04_all", "tightId", "dxy", "dz"), None)
        pt = m["pt"].astype(np.float64)
        abs_eta = np.abs(m["eta"].astype(np.float64))
        iso = m["pfRelIso04_all"].astype(np.float64)
        selected = (
            (pt > s.muon_pt_min)
            & (abs_eta < s.muon_abs_eta_max)
            & (iso < s.muon_iso_max)
            & (np.abs(m["dxy"].astype(np.float64)) < s.muon_dxy_max)
            & (np.abs(m["dz"].astype(np.float64)) < s.muon_dz_max)
        )
        if s.muon_tight_id:
            selected = selected & m["tightId"].astype(bool)
        loose = (pt > s.veto_muon_pt_min) & (abs_eta < s.veto_muon_abs_eta_max) & (iso < s.veto_muon_iso_max)
        return evt, m, selected, loose

    def muon_masks(self, events: Any) -> tuple[Any, Any]:
        """Per-muon masks (flat numpy over the chunk's muons): (selected, veto-loose) as in the module docstring."""
        _, _, selected, loose = self._muons(events)
        return selected, loose

    def veto_electrons(self, events: Any) -> np.ndarray:
        """Number of veto electrons per event."""
        s = self.selection
        n, evt, e = _flat(events.Electron, ("pt", "eta", "cutBased"), None)
        mask = (
            (e["pt"].astype(np.float64) > s.veto_electron_pt_min)
            & (np.abs(e["eta"].astype(np.float64)) < s.veto_electron_abs_eta_max)
            & (e["cutBased"].astype(np.int64) >= s.veto_electron_cut_based_min)
        )
        return np.bincount(evt[mask], minlength=n).astype(np.int32)

    def process(self, events: Any) -> dict[str, Any]:
        """Select one chunk: its cutflow entry and the columns of the events passing every cut."""
        s = self.selection
        n = len(events)
        weights = event_weights(events)
        m_evt, m, selected, loose = self._muons(events)
        sel_evt = m_evt[selected]
        n_mu = np.bincount(sel_evt, minlength=n)
        n_veto = np.bincount(m_evt[loose & ~selected], minlength=n) + self.veto_electrons(events)
        mu_pt, mu_phi = _first(sel_evt, m["pt"][selected], n), _first(sel_evt, m["phi"][selected], n)
        met_pt, met_phi = _np(events.MET.pt), _np(events.MET.phi)
        with np.errstate(invalid="ignore"):
            mt = transverse_mass(mu_pt, mu_phi, met_pt, met_phi)
            masks = {
                "one_muon": n_mu == 1,
                "lepton_veto": n_veto == 0,
                "met": met_pt > s.met_min,
                "mt": mt > s.mt_min,  # NaN (no muon) fails
            }
        selection = self.cutflow.selection(masks)
        key_cutflow = self.cutflow.fill(selection, weights)
        if self.cutflow_only:
            chunk = chunk_columns(events, {})
        else:
            passed = np.asarray(selection.all(*CUTS), dtype=bool)
            muons = {
                "pt": mu_pt[passed],
                "eta": _first(sel_evt, m["eta"][selected], n)[passed],
                "phi": mu_phi[passed],
                "charge": _first(sel_evt, m["charge"][selected], n, 0, np.int32)[passed],
            }
            columns = self.columns_of(events, muons, weights[passed], mt[passed], passed=passed)
            chunk = chunk_columns(events, {c: columns[c] for c in self.columns})
        (key,) = chunk
        return {"cutflow": {key: key_cutflow}, "columns": chunk}

    def columns_of(
        self, ev: Any, muons: Any, weights: np.ndarray, mt: np.ndarray, passed: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """The output columns of the selected events ``ev`` (their selected muons ``muons``).

        ``muons``: the selected muons as a jagged collection (one per event), or their ``pt``, ``eta``, ``phi``,
        ``charge`` as per-event arrays.  With ``passed``, ``ev`` is the whole chunk and the selected events are
        those where ``passed`` is true (``muons``, ``weights``, ``mt`` given for them only).
        """
        if not isinstance(muons, Mapping):
            n_mu, mu_evt, flat = _flat(muons, ("pt", "eta", "phi", "charge"), None)
            muons = {f: _first(mu_evt, flat[f], n_mu) for f in ("pt", "eta", "phi")} | {
                "charge": _first(mu_evt, flat["charge"], n_mu, 0, np.int32)
            }
        mu_eta, mu_phi = np.asarray(muons["eta"], dtype=np.float64), np.asarray(muons["phi"], dtype=np.float64)
        out: dict[str, np.ndarray] = {"event": _np(ev.event, np.uint64, passed), "genWeight": weights}
        out["mu_pt"], out["mu_eta"], out["mu_phi"] = np.asarray(muons["pt"], dtype=np.float64), mu_eta, mu_phi
        out["mu_charge"] = np.asarray(muons["charge"]).astype(np.int32)
        out["mt"] = np.asarray(mt, dtype=np.float64)
        met, tkmet = ev.MET, ev.TkMET
        out["met_pt"], out["met_phi"] = _np(met.pt, passed=passed), _np(met.phi, passed=passed)
        out["met_sumEt"] = _np(met.sumEt, passed=passed)
        out["tkmet_pt"], out["tkmet_phi"] = _np(tkmet.pt, passed=passed), _np(tkmet.phi, passed=passed)
        out["npv"] = _np(ev.PV.npvs, np.int32, passed)
        out |= self.recoil_columns(ev, mu_eta, mu_phi, passed=passed)
        out |= self.jet_columns(ev, mu_eta, mu_phi, passed=passed)
        out |= truth_columns(ev, passed=passed)
        return out

    def recoil_columns(
        self, ev: Any, mu_eta: np.ndarray, mu_phi: np.ndarray, passed: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """Recoil sums, counts and leading candidates of the selected events (``passed`` as in :meth:`columns_of`)."""
        s = self.selection
        n, evt, pf = _flat(ev.PFCands, ("pt", "eta", "phi", "charge", "pdgId", "fromPV"), passed)
        pt, phi = pf["pt"].astype(np.float64), pf["phi"].astype(np.float64)
        in_cone = _within(pf["eta"], phi, mu_eta, mu_phi, evt, s.recoil_cone_dr**2)
        charged = pf["charge"] != 0
        from_pv = pf["fromPV"] >= s.pfcand_from_pv_min
        pdg_id = pf["pdgId"]
        photon_like = (pdg_id == 22) | (pdg_id == -22) | (pdg_id == 2) | (pdg_id == -2)
        recoil = ~in_cone & (~charged | from_pv)
        # one code per candidate (bits: in cone, charged, from PV, photon-like) -> its kind; each per-event sum is
        # one bin of a bincount over (event, kind), adding its candidates in input order
        code = (
            (in_cone.view(np.uint8) << 3)
            | (charged.view(np.uint8) << 2)
            | (from_pv.view(np.uint8) << 1)
            | photon_like.view(np.uint8)
        )
        by_kind = evt * 5 + _KIND[code]
        by_vec = evt * 4 + _VEC_KIND[code]
        by_recoil = evt * 2 + recoil
        px, py = pt * np.cos(phi), pt * np.sin(phi)
        out: dict[str, np.ndarray] = {}
        for comp, values in (("x", px), ("y", py)):
            parts = np.bincount(by_vec, weights=values, minlength=4 * n).reshape(n, 4)
            for i, part in enumerate(("ch", "neu", "pu")):
                out[f"u_{part}_{comp}"] = np.ascontiguousarray(parts[:, i])
        for name, values in (("u_x", px), ("u_y", py), ("sumet", pt)):
            out[name] = np.ascontiguousarray(np.bincount(by_recoil, weights=values, minlength=2 * n)[1::2])
        sumet = np.bincount(by_kind, weights=pt, minlength=5 * n).reshape(n, 5)
        counts = np.bincount(by_kind, minlength=5 * n).reshape(n, 5)
        for i, part in enumerate(("ch", "nh", "gamma")):
            out[f"sumet_{part}"] = np.ascontiguousarray(sumet[:, i])
        for i, part in enumerate(("ch", "nh", "gamma", "pu")):
            out[f"n_pfo_{part}"] = counts[:, i].astype(np.int32)

        k = s.n_pfos
        lead = _by_event_then_pt(np.flatnonzero(recoil), evt, pf["pt"])
        lead_evt = evt[lead]
        n_lead, rank = _ranks(lead_evt, n)
        out |= _padded(lead, lead_evt, rank, n, k, {
            "pfo_pt": (pf["pt"], 0, np.float32),
            "pfo_eta": (pf["eta"], 0, np.float32),
            "pfo_phi": (pf["phi"], 0, np.float32),
            "pfo_charge": (pf["charge"], 0, np.int32),
            "pfo_pdgId": (pf["pdgId"], 0, np.int32),
        })
        out["pfo_mask"] = _mask(n_lead, k)
        # the recoil order restricted to charged (neutral) candidates is their own (event, -pT) order: the rank of
        # a candidate among its kind is the number of candidates of that kind before it in its event
        lead_charged = charged[lead]
        charged_upto = np.cumsum(lead_charged)  # charged candidates up to and including each one (all events)
        charged_before_event = np.concatenate(([0], charged_upto))[np.cumsum(n_lead) - n_lead]
        charged_in_event = charged_upto - charged_before_event[lead_evt]  # ... within its event
        n_charged = np.bincount(lead_evt[lead_charged], minlength=n)
        ranks = {"ch": charged_in_event - 1, "neu": rank - charged_in_event}
        part_counts = {"ch": n_charged, "neu": n_lead - n_charged}
        for part, keep in (("ch", lead_charged), ("neu", ~lead_charged)):
            part_rank = np.where(keep, ranks[part], s.n_pfos_split)  # other kind: never picked
            columns = {f"pfo_{part}_pt": (pf["pt"], 0, np.float32), f"pfo_{part}_phi": (pf["phi"], 0, np.float32)}
            out |= _padded(lead, lead_evt, part_rank, n, s.n_pfos_split, columns)
            out[f"pfo_{part}_mask"] = _mask(part_counts[part], s.n_pfos_split)
        return out

    def jet_columns(
        self, ev: Any, mu_eta: np.ndarray, mu_phi: np.ndarray, passed: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """The two leading selected jets and the number of selected jets (``passed`` as in :meth:`columns_of`)."""
        s = self.selection
        n, evt, j = _flat(ev.Jet, ("pt", "eta", "phi", "jetId"), passed)
        pt, eta, phi = (j[f].astype(np.float64) for f in ("pt", "eta", "phi"))
        mask = (
            (pt > s.jet_pt_min)
            & (np.abs(eta) < s.jet_abs_eta_max)
            & ((j["jetId"].astype(np.int64) & s.jet_id_mask) == s.jet_id_mask)
            & (_dr2(eta, phi, mu_eta[evt], mu_phi[evt]) > s.jet_muon_dr_min**2)
        )
        lead = _by_event_then_pt(np.flatnonzero(mask), evt, j["pt"])
        lead_evt = evt[lead]
        n_jets, rank = _ranks(lead_evt, n)
        two = _padded(lead, lead_evt, rank, n, 2, {f: (v, np.nan, np.float64) for f, v in (("pt", pt), ("eta", eta),
                                                                                         ("phi", phi))})
        out = {f"j{i}_{f}": np.ascontiguousarray(two[f][:, i]) for i in (0, 1) for f in ("pt", "eta", "phi")}
        out["njets"] = n_jets.astype(np.int32)
        return out

    def postprocess(self, accumulator: Any) -> Any:
        """Nothing to do: merging is done by :func:`run_recoil_skim`."""
        return accumulator


def truth_columns(ev: Any, passed: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Truth W (first |pdgId| 24 last copy) pT, phi, mass and GenMET; NaN where absent.

    With ``passed``, of the events of ``ev`` where it is true.
    """
    n = len(ev) if passed is None else int(np.count_nonzero(passed))
    out = {c: np.full(n, np.nan) for c in ("w_pt", "w_phi", "w_mass", "genmet_pt", "genmet_phi")}
    fields = ev.fields
    if "GenPart" in fields and {"pt", "phi", "mass", "pdgId", "statusFlags"} <= set(ev.GenPart.fields):
        _, evt, gp = _flat(ev.GenPart, ("pt", "phi", "mass", "pdgId", "statusFlags"), passed)
        is_w = (np.abs(gp["pdgId"].astype(np.int64)) == 24) & ((gp["statusFlags"].astype(np.int64) & LAST_COPY) != 0)
        w_evt = evt[is_w]
        for f in ("pt", "phi", "mass"):
            out[f"w_{f}"] = _first(w_evt, gp[f][is_w], n)
    if "GenMET" in fields and {"pt", "phi"} <= set(ev.GenMET.fields):
        out["genmet_pt"], out["genmet_phi"] = _np(ev.GenMET.pt, passed=passed), _np(ev.GenMET.phi, passed=passed)
    return out


def run_recoil_skim(
    files: Sequence[str],
    *,
    selection: RecoilSelection | None = None,
    executor: str = "iterative",
    workers: int = 1,
    chunksize: int = 100_000,
    scheduler: str | None = None,
    cutflow_only: bool = False,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Run the W -> mu nu recoil skim over ``files``; return the skim table (dict of arrays) and the cutflow.

    ``executor``, ``workers``, ``chunksize`` and ``scheduler`` (dask only) are
    passed to :func:`~hepchain.skim.common.run_processor`.  The table has the
    columns of :func:`skim_columns` for the selection (one
    row per event passing every cut, in input file then entry order; empty
    arrays with ``cutflow_only``, which needs and reads only :data:`BRANCHES`).
    The cutflow is ``{"cuts": [{"name", "raw", "weighted"}, ...], "sumw",
    "n_events", "selection"}`` with the cuts of :data:`CUTS` after ``all``.
    A missing standard branch or a missing ``PFCands_*`` branch raises a
    one-line :class:`~hepchain.errors.MissingBranchError` naming the file and
    the branch (the latter saying that the extended ntuples are needed).
    """
    files = [str(f) for f in files]
    processor = RecoilProcessor(selection, cutflow_only=cutflow_only)
    standard = BRANCHES if cutflow_only else (*BRANCHES, *COLUMN_BRANCHES)
    out = run_processor(
        files,
        processor,
        branches=standard if cutflow_only else (*standard, *EXTENDED_BRANCHES),
        stage=STAGE,
        executor=executor,
        workers=workers,
        chunksize=chunksize,
        scheduler=scheduler,
        # standard branches are checked first (list order); each kind of missing branch gets its own advice
        hint=lambda branch: EXTENDED_HINT if branch in EXTENDED_BRANCHES else STANDARD_HINT,
    )
    table = columns_to_arrays(out["columns"], files, processor.columns)
    cutflow = processor.cutflow.finalize(out["cutflow"])
    cutflow["selection"] = processor.selection.to_dict()
    return table, cutflow
