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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import awkward as ak
import numpy as np
from coffea.processor import ProcessorABC

from ..errors import ConfigError
from ..features.recoil import N_PFOS, N_PFOS_SPLIT, transverse_mass
from .common import (
    ColumnSpec,
    Cutflow,
    SelectionConfig,
    chunk_columns,
    columns_to_arrays,
    event_weights,
    padded,
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


def _f64(x: Any) -> ak.Array:
    return ak.values_astype(x, np.float64)


def _i64(x: Any) -> ak.Array:
    return ak.values_astype(x, np.int64)


def _np(x: Any, dtype: Any = np.float64) -> np.ndarray:
    return np.asarray(ak.to_numpy(x)).astype(dtype)


def _first(x: Any, fill: float = np.nan) -> np.ndarray:
    """The first entry of each event's list as float64 numpy, ``fill`` where the list is empty."""
    return np.asarray(ak.to_numpy(ak.fill_none(ak.firsts(_f64(x), axis=1), fill)), dtype=np.float64)


def _nth(x: Any, n: int, fill: float = np.nan) -> np.ndarray:
    padded_x = ak.pad_none(_f64(x), n + 1, axis=1, clip=True)[:, n]
    return np.asarray(ak.to_numpy(ak.fill_none(padded_x, fill)), dtype=np.float64)


def _dr2(eta: Any, phi: Any, ref_eta: Any, ref_phi: Any) -> Any:
    """dR^2 of jagged (eta, phi) to one reference per event (numpy arrays broadcast over each list)."""
    deta = eta - ref_eta
    dphi = (phi - ref_phi + np.pi) % (2 * np.pi) - np.pi
    return deta * deta + dphi * dphi


def _sum(x: Any) -> np.ndarray:
    return np.asarray(ak.to_numpy(ak.sum(x, axis=1)), dtype=np.float64)


def _count(mask: Any) -> np.ndarray:
    return np.asarray(ak.to_numpy(ak.sum(mask, axis=1)), dtype=np.int32)


def _mask(counts: np.ndarray, size: int) -> np.ndarray:
    return np.arange(size)[None, :] < np.asarray(counts)[:, None]


def _leading(cands: ak.Array, keep: Any) -> ak.Array:
    chosen = cands[keep]
    return chosen[ak.argsort(chosen.pt, axis=1, ascending=False, stable=True)]


class RecoilProcessor(ProcessorABC):
    """coffea processor of the W -> mu nu recoil skim; ``process`` returns ``{"cutflow", "columns"}`` per chunk."""

    def __init__(self, selection: RecoilSelection | None = None, cutflow_only: bool = False) -> None:
        self.selection = selection or RecoilSelection()
        self.cutflow_only = cutflow_only
        self.columns = skim_columns(self.selection)
        self.cutflow = Cutflow(CUTS)

    def muon_masks(self, events: Any) -> tuple[Any, Any]:
        """Per-muon masks: (selected, veto-loose) as defined in the module docstring."""
        s, m = self.selection, events.Muon
        pt, abs_eta, iso = _f64(m.pt), abs(_f64(m.eta)), _f64(m.pfRelIso04_all)
        selected = (
            (pt > s.muon_pt_min)
            & (abs_eta < s.muon_abs_eta_max)
            & (iso < s.muon_iso_max)
            & (abs(_f64(m.dxy)) < s.muon_dxy_max)
            & (abs(_f64(m.dz)) < s.muon_dz_max)
        )
        if s.muon_tight_id:
            selected = selected & m.tightId
        loose = (pt > s.veto_muon_pt_min) & (abs_eta < s.veto_muon_abs_eta_max) & (iso < s.veto_muon_iso_max)
        return selected, loose

    def veto_electrons(self, events: Any) -> np.ndarray:
        """Number of veto electrons per event."""
        s, e = self.selection, events.Electron
        mask = (
            (_f64(e.pt) > s.veto_electron_pt_min)
            & (abs(_f64(e.eta)) < s.veto_electron_abs_eta_max)
            & (_i64(e.cutBased) >= s.veto_electron_cut_based_min)
        )
        return _count(mask)

    def process(self, events: Any) -> dict[str, Any]:
        """Select one chunk: its cutflow entry and the columns of the events passing every cut."""
        s = self.selection
        weights = event_weights(events)
        selected, loose = self.muon_masks(events)
        n_mu = _count(selected)
        n_veto = _count(loose & ~selected) + self.veto_electrons(events)
        muons = events.Muon[selected]
        mu_pt, mu_phi = _first(muons.pt), _first(muons.phi)
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
            columns = self.columns_of(events[passed], muons[passed], weights[passed], mt[passed])
            chunk = chunk_columns(events, {c: columns[c] for c in self.columns})
        (key,) = chunk
        return {"cutflow": {key: key_cutflow}, "columns": chunk}

    def columns_of(self, ev: Any, muons: Any, weights: np.ndarray, mt: np.ndarray) -> dict[str, np.ndarray]:
        """The output columns of the selected events ``ev`` (their selected muons ``muons``)."""
        mu_eta, mu_phi = _first(muons.eta), _first(muons.phi)
        out: dict[str, np.ndarray] = {"event": _np(ev.event, np.uint64), "genWeight": weights}
        out["mu_pt"], out["mu_eta"], out["mu_phi"] = _first(muons.pt), mu_eta, mu_phi
        out["mu_charge"] = _first(muons.charge, 0).astype(np.int32)
        out["mt"] = np.asarray(mt, dtype=np.float64)
        out["met_pt"], out["met_phi"], out["met_sumEt"] = _np(ev.MET.pt), _np(ev.MET.phi), _np(ev.MET.sumEt)
        out["tkmet_pt"], out["tkmet_phi"] = _np(ev.TkMET.pt), _np(ev.TkMET.phi)
        out["npv"] = _np(ev.PV.npvs, np.int32)
        out |= self.recoil_columns(ev, mu_eta, mu_phi)
        out |= self.jet_columns(ev, mu_eta, mu_phi)
        out |= truth_columns(ev)
        return out

    def recoil_columns(self, ev: Any, mu_eta: np.ndarray, mu_phi: np.ndarray) -> dict[str, np.ndarray]:
        """Recoil sums, counts and leading candidates of the selected events."""
        s, pf = self.selection, ev.PFCands
        cands = ak.zip(
            {
                "pt": _f64(pf.pt),
                "eta": _f64(pf.eta),
                "phi": _f64(pf.phi),
                "charge": _i64(pf.charge),
                "pdgId": _i64(pf.pdgId),
            }
        )
        in_cone = _dr2(cands.eta, cands.phi, mu_eta, mu_phi) < s.recoil_cone_dr**2
        charged = cands.charge != 0
        from_pv = _i64(pf.fromPV) >= s.pfcand_from_pv_min
        abs_id = abs(cands.pdgId)
        photon_like = (abs_id == 22) | (abs_id == 2)
        recoil = ~in_cone & (~charged | from_pv)
        parts = {
            "ch": recoil & charged,
            "neu": recoil & ~charged,
            "nh": recoil & ~charged & ~photon_like,
            "gamma": recoil & ~charged & photon_like,
            "pu": ~in_cone & charged & ~from_pv,
        }
        px, py = cands.pt * np.cos(cands.phi), cands.pt * np.sin(cands.phi)
        out: dict[str, np.ndarray] = {}
        for part in ("ch", "neu", "pu"):
            out[f"u_{part}_x"], out[f"u_{part}_y"] = _sum(px[parts[part]]), _sum(py[parts[part]])
        out["u_x"] = _sum(px[recoil])
        out["u_y"] = _sum(py[recoil])
        out["sumet"] = _sum(cands.pt[recoil])
        for part in ("ch", "nh", "gamma"):
            out[f"sumet_{part}"] = _sum(cands.pt[parts[part]])
        for part in ("ch", "nh", "gamma", "pu"):
            out[f"n_pfo_{part}"] = _count(parts[part])

        lead = _leading(cands, recoil)
        k = s.n_pfos
        out["pfo_pt"] = padded(lead.pt, k)
        out["pfo_eta"] = padded(lead.eta, k)
        out["pfo_phi"] = padded(lead.phi, k)
        out["pfo_charge"] = padded(lead.charge, k, 0, np.int32)
        out["pfo_pdgId"] = padded(lead.pdgId, k, 0, np.int32)
        out["pfo_mask"] = _mask(np.asarray(ak.to_numpy(ak.num(lead, axis=1))), k)
        for part in ("ch", "neu"):
            lead = _leading(cands, parts[part])
            out[f"pfo_{part}_pt"] = padded(lead.pt, s.n_pfos_split)
            out[f"pfo_{part}_phi"] = padded(lead.phi, s.n_pfos_split)
            out[f"pfo_{part}_mask"] = _mask(np.asarray(ak.to_numpy(ak.num(lead, axis=1))), s.n_pfos_split)
        return out

    def jet_columns(self, ev: Any, mu_eta: np.ndarray, mu_phi: np.ndarray) -> dict[str, np.ndarray]:
        """The two leading selected jets and the number of selected jets."""
        s, j = self.selection, ev.Jet
        jets = ak.zip({"pt": _f64(j.pt), "eta": _f64(j.eta), "phi": _f64(j.phi)})
        mask = (
            (jets.pt > s.jet_pt_min)
            & (abs(jets.eta) < s.jet_abs_eta_max)
            & ((_i64(j.jetId) & s.jet_id_mask) == s.jet_id_mask)
            & (_dr2(jets.eta, jets.phi, mu_eta, mu_phi) > s.jet_muon_dr_min**2)
        )
        jets = _leading(jets, mask)
        out = {f"j{i}_{f}": _nth(jets[f], i) for i in (0, 1) for f in ("pt", "eta", "phi")}
        out["njets"] = np.asarray(ak.to_numpy(ak.num(jets, axis=1)), dtype=np.int32)
        return out

    def postprocess(self, accumulator: Any) -> Any:
        """Nothing to do: merging is done by :func:`run_recoil_skim`."""
        return accumulator


def truth_columns(ev: Any) -> dict[str, np.ndarray]:
    """Truth W (first |pdgId| 24 last copy) pT, phi, mass and GenMET; NaN where absent."""
    n = len(ev)
    out = {c: np.full(n, np.nan) for c in ("w_pt", "w_phi", "w_mass", "genmet_pt", "genmet_phi")}
    fields = ev.fields
    if "GenPart" in fields and {"pt", "phi", "mass", "pdgId", "statusFlags"} <= set(ev.GenPart.fields):
        gp = ev.GenPart
        is_w = (abs(_i64(gp.pdgId)) == 24) & ((_i64(gp.statusFlags) & LAST_COPY) != 0)
        w = gp[is_w]
        out["w_pt"], out["w_phi"], out["w_mass"] = _first(w.pt), _first(w.phi), _first(w.mass)
    if "GenMET" in fields and {"pt", "phi"} <= set(ev.GenMET.fields):
        out["genmet_pt"], out["genmet_phi"] = _np(ev.GenMET.pt), _np(ev.GenMET.phi)
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
