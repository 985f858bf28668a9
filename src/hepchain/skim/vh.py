"""The VH(->WW) different-flavour opposite-sign (DFOS) e-mu skim.

Object and event selection follow the ATLAS H->WW 2-jet e-mu analyses
(VBF/VH, arXiv:1808.09054; VH 2-jet, arXiv:1903.10052) translated to CMS NanoAOD
branches; the defaults are those of :class:`DFOSSelection`:

* electrons: pT > 15 GeV, |eta| < 2.47 outside the barrel-endcap crack
  1.37 < |eta| < 1.52 (NanoAOD has no supercluster eta, so the track eta is
  used), ``cutBased >= 4`` (tight), ``pfRelIso03_all < 0.1``;
* muons: pT > 15 GeV, |eta| < 2.5, ``tightId``, ``pfRelIso04_all < 0.15``
  (the CMS tight PF-isolation working point);
* both: |dxy| < 0.05 cm and |dz| < 0.2 cm (prompt leptons from the hard vertex);
* jets: pT > 25 GeV, |eta| < 2.5, tight jet ID (``jetId & 2``: NanoAOD's jetId
  is a bit field, 2 = tight, 6 = tight + lepton veto, so this equals
  ``jetId >= 2`` for every value NanoAOD writes), removed within dR < 0.4 of
  any selected lepton; b-jets are selected jets with ``btagDeepFlavB > 0.2783``
  (DeepJet medium working point, CMS UL).

Event cuts, in order, each one a named bit of a ``PackedSelection``:

====================  ========================================================
``two_leptons``       exactly two selected leptons (electrons + muons)
``different_flavour`` one electron and one muon
``opposite_sign``     the two leading leptons have opposite charge
``lead_pt``           leading lepton pT > 22 GeV (subleading > 15 from objects)
``mll``               m_ll > 10 GeV
``two_jets``          at least two selected jets
``zero_bjets``        no b-tagged selected jet
====================  ========================================================

Branches read (and checked in every input before processing) are listed in
:data:`BRANCHES`; ``genWeight`` is optional (real data: weight 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import awkward as ak
import numpy as np
import pandas as pd
from coffea.processor import ProcessorABC

from ..errors import ConfigError
from ..features.vh import four_momentum, invariant_mass
from .common import Cutflow, SelectionConfig, chunk_columns, columns_to_frame, event_weights, run_processor

STAGE = "vh skim"

#: Branches the skim reads; every input must have them (genWeight is optional).
BRANCHES: tuple[str, ...] = (
    *(
        f"Electron_{f}"
        for f in ("pt", "eta", "phi", "mass", "charge", "pdgId", "pfRelIso03_all", "cutBased", "dxy", "dz")
    ),
    *(f"Muon_{f}" for f in ("pt", "eta", "phi", "mass", "charge", "pdgId", "pfRelIso04_all", "tightId", "dxy", "dz")),
    *(f"Jet_{f}" for f in ("pt", "eta", "phi", "mass", "btagDeepFlavB", "jetId")),
    "MET_pt",
    "MET_phi",
    "MET_sumEt",
    "MET_significance",
    "TkMET_pt",
    "TkMET_phi",
    "SoftActivityJetHT",
    "event",
)

#: The event cuts, in cutflow order.
CUTS: tuple[str, ...] = (
    "two_leptons",
    "different_flavour",
    "opposite_sign",
    "lead_pt",
    "mll",
    "two_jets",
    "zero_bjets",
)

#: Output columns of the skim table, in order.
COLUMNS: tuple[str, ...] = (
    "event",
    "genWeight",
    *(f"{o}_{f}" for o in ("l0", "l1") for f in ("pt", "eta", "phi", "mass", "pdgId")),
    *(f"{o}_{f}" for o in ("j0", "j1") for f in ("pt", "eta", "phi", "mass")),
    "njets",
    "nbjets",
    "sum_jet_px",
    "sum_jet_py",
    "sum_jet_pt",
    "met_pt",
    "met_phi",
    "met_sumEt",
    "met_significance",
    "tkmet_pt",
    "tkmet_phi",
    "soft_ht",
)


@dataclass(frozen=True)
class DFOSSelection(SelectionConfig):
    """Thresholds of the DFOS e-mu selection (GeV, cm; strict inequalities)."""

    label: ClassVar[str] = "DFOS"

    electron_pt_min: float = 15.0
    electron_abs_eta_max: float = 2.47
    electron_crack_min: float = 1.37
    electron_crack_max: float = 1.52
    electron_cut_based_min: int = 4
    electron_iso_max: float = 0.1
    muon_pt_min: float = 15.0
    muon_abs_eta_max: float = 2.5
    muon_tight_id: bool = True
    muon_iso_max: float = 0.15
    lepton_dxy_max: float = 0.05
    lepton_dz_max: float = 0.2
    lead_lepton_pt_min: float = 22.0
    mll_min: float = 10.0
    jet_pt_min: float = 25.0
    jet_abs_eta_max: float = 2.5
    jet_id_mask: int = 2
    jet_lepton_dr_min: float = 0.4
    n_jets_min: int = 2
    btag_min: float = 0.2783

    def __post_init__(self) -> None:
        self.check_numbers()
        if self.electron_crack_min > self.electron_crack_max:
            raise ConfigError(
                f"selection: electron_crack_min ({self.electron_crack_min}) exceeds electron_crack_max ({self.electron_crack_max})"
            )



def _f64(x: Any) -> ak.Array:
    return ak.values_astype(x, np.float64)


def _leptons(collection: Any) -> ak.Array:
    """A plain lepton record (float64 kinematics) so electrons and muons concatenate."""
    return ak.zip(
        {
            "pt": _f64(collection.pt),
            "eta": _f64(collection.eta),
            "phi": _f64(collection.phi),
            "mass": _f64(collection.mass),
            "charge": ak.values_astype(collection.charge, np.int32),
            "pdgId": ak.values_astype(collection.pdgId, np.int32),
        }
    )


def _nth(array: ak.Array, n: int, fill: float = np.nan) -> np.ndarray:
    """The n-th entry of each event's list as numpy, ``fill`` where there is none.

    Works on the flat content and the list offsets (no padding of the jagged array).
    """
    counts = ak.to_numpy(ak.num(array, axis=1)).astype(np.int64)
    flat = ak.to_numpy(ak.flatten(array, axis=1))
    starts = np.cumsum(counts) - counts
    out = np.full(len(counts), fill, dtype=np.result_type(flat.dtype, np.min_scalar_type(fill)))
    has = counts > n
    out[has] = flat[starts[has] + n]
    return out


def _flat(x: Any, dtype: Any = np.float64) -> np.ndarray:
    return ak.to_numpy(x).astype(dtype)


class DFOSProcessor(ProcessorABC):
    """coffea processor of the DFOS e-mu skim; ``process`` returns ``{"cutflow", "columns"}`` per chunk."""

    def __init__(self, selection: DFOSSelection | None = None) -> None:
        self.selection = selection or DFOSSelection()
        self.cutflow = Cutflow(CUTS)

    def select_electrons(self, events: Any) -> Any:
        """Electrons passing the object selection."""
        s, e = self.selection, events.Electron
        abs_eta = abs(e.eta)
        mask = (
            (e.pt > s.electron_pt_min)
            & (abs_eta < s.electron_abs_eta_max)
            & ~((abs_eta > s.electron_crack_min) & (abs_eta < s.electron_crack_max))
            & (e.cutBased >= s.electron_cut_based_min)
            & (e.pfRelIso03_all < s.electron_iso_max)
            & (abs(e.dxy) < s.lepton_dxy_max)
            & (abs(e.dz) < s.lepton_dz_max)
        )
        return e[mask]

    def select_muons(self, events: Any) -> Any:
        """Muons passing the object selection."""
        s, m = self.selection, events.Muon
        mask = (
            (m.pt > s.muon_pt_min)
            & (abs(m.eta) < s.muon_abs_eta_max)
            & (m.pfRelIso04_all < s.muon_iso_max)
            & (abs(m.dxy) < s.lepton_dxy_max)
            & (abs(m.dz) < s.lepton_dz_max)
        )
        if s.muon_tight_id:
            mask = mask & m.tightId
        return m[mask]

    def select_jets(self, events: Any, leptons: ak.Array) -> ak.Array:
        """Selected jets (plain float64 records, pT-ordered), cleaned against ``leptons``."""
        s, j = self.selection, events.Jet
        jets = ak.zip(
            {
                "pt": _f64(j.pt),
                "eta": _f64(j.eta),
                "phi": _f64(j.phi),
                "mass": _f64(j.mass),
                "btag": _f64(j.btagDeepFlavB),
            }
        )
        jet_id = ak.values_astype(j.jetId, np.int64)
        mask = (
            (jets.pt > s.jet_pt_min) & (abs(jets.eta) < s.jet_abs_eta_max) & ((jet_id & s.jet_id_mask) == s.jet_id_mask)
        )
        jets = jets[mask]
        pairs = ak.cartesian({"j": jets, "l": leptons}, axis=1, nested=True)
        deta = pairs.j.eta - pairs.l.eta
        dphi = (pairs.j.phi - pairs.l.phi + np.pi) % (2 * np.pi) - np.pi
        min_dr = ak.fill_none(ak.min(np.sqrt(deta**2 + dphi**2), axis=2), np.inf)
        jets = jets[min_dr > s.jet_lepton_dr_min]
        return jets[ak.argsort(jets.pt, axis=1, ascending=False, stable=True)]

    def process(self, events: Any) -> dict[str, Any]:
        """Select one chunk: its cutflow entry and the columns of the events passing every cut."""
        s = self.selection
        weights = event_weights(events)
        electrons = self.select_electrons(events)
        muons = self.select_muons(events)
        n_ele = ak.to_numpy(ak.num(electrons, axis=1))
        n_mu = ak.to_numpy(ak.num(muons, axis=1))
        leptons = ak.concatenate([_leptons(electrons), _leptons(muons)], axis=1)
        leptons = leptons[ak.argsort(leptons.pt, axis=1, ascending=False, stable=True)]
        n_lep = n_ele + n_mu

        lep = {
            (i, f): _nth(leptons[f], i, 0 if f in ("charge", "pdgId") else np.nan)
            for i in (0, 1)
            for f in ("pt", "eta", "phi", "mass", "charge", "pdgId")
        }
        with np.errstate(invalid="ignore"):
            m_ll = invariant_mass(
                four_momentum(lep[0, "pt"], lep[0, "eta"], lep[0, "phi"], lep[0, "mass"]),
                four_momentum(lep[1, "pt"], lep[1, "eta"], lep[1, "phi"], lep[1, "mass"]),
            )
        m_ll = np.where(n_lep >= 2, m_ll, 0.0)

        jets = self.select_jets(events, leptons)
        n_jets = ak.to_numpy(ak.num(jets, axis=1))
        n_bjets = ak.to_numpy(ak.sum(jets.btag > s.btag_min, axis=1))

        masks = {
            "two_leptons": n_lep == 2,
            "different_flavour": (n_ele == 1) & (n_mu == 1),
            "opposite_sign": (n_lep >= 2) & (lep[0, "charge"] * lep[1, "charge"] < 0),
            "lead_pt": (n_lep >= 1) & (np.nan_to_num(lep[0, "pt"], nan=0.0) > s.lead_lepton_pt_min),
            "mll": (n_lep >= 2) & (m_ll > s.mll_min),
            "two_jets": n_jets >= s.n_jets_min,
            "zero_bjets": n_bjets == 0,
        }
        selection = self.cutflow.selection(masks)
        passed = np.asarray(selection.all(*CUTS), dtype=bool)

        sel_jets = jets[passed]
        columns: dict[str, np.ndarray] = {
            "event": _flat(events.event[passed], np.uint64),
            "genWeight": weights[passed],
        }
        for i, name in ((0, "l0"), (1, "l1")):
            for f in ("pt", "eta", "phi", "mass"):
                columns[f"{name}_{f}"] = lep[i, f][passed]
            columns[f"{name}_pdgId"] = lep[i, "pdgId"][passed].astype(np.int32)
        for i, name in ((0, "j0"), (1, "j1")):
            for f in ("pt", "eta", "phi", "mass"):
                columns[f"{name}_{f}"] = _nth(sel_jets[f], i)
        columns["njets"] = n_jets[passed].astype(np.int32)
        columns["nbjets"] = n_bjets[passed].astype(np.int32)
        columns["sum_jet_px"] = ak.to_numpy(ak.sum(sel_jets.pt * np.cos(sel_jets.phi), axis=1)).astype(np.float64)
        columns["sum_jet_py"] = ak.to_numpy(ak.sum(sel_jets.pt * np.sin(sel_jets.phi), axis=1)).astype(np.float64)
        columns["sum_jet_pt"] = ak.to_numpy(ak.sum(sel_jets.pt, axis=1)).astype(np.float64)
        columns["met_pt"] = _flat(events.MET.pt[passed])
        columns["met_phi"] = _flat(events.MET.phi[passed])
        columns["met_sumEt"] = _flat(events.MET.sumEt[passed])
        columns["met_significance"] = _flat(events.MET.significance[passed])
        columns["tkmet_pt"] = _flat(events.TkMET.pt[passed])
        columns["tkmet_phi"] = _flat(events.TkMET.phi[passed])
        columns["soft_ht"] = _flat(events.SoftActivityJetHT[passed])

        key_cutflow = self.cutflow.fill(selection, weights)
        chunk = chunk_columns(events, {c: columns[c] for c in COLUMNS})
        (key,) = chunk
        return {"cutflow": {key: key_cutflow}, "columns": chunk}

    def postprocess(self, accumulator: Any) -> Any:
        """Nothing to do: merging is done by :func:`run_vh_skim`."""
        return accumulator


def run_vh_skim(
    files: Sequence[str],
    *,
    selection: DFOSSelection | None = None,
    executor: str = "iterative",
    workers: int = 1,
    chunksize: int = 100_000,
    scheduler: str | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Run the DFOS e-mu skim over ``files``; return the skim table and the cutflow dict.

    The table has :data:`COLUMNS` (one row per event passing every cut, in input
    file then entry order); the cutflow is ``{"cuts": [{"name", "raw", "weighted"}, ...],
    "sumw", "n_events", "selection"}`` with the cuts of :data:`CUTS` after ``all``.
    """
    files = [str(f) for f in files]
    processor = DFOSProcessor(selection)
    out = run_processor(
        files,
        processor,
        branches=BRANCHES,
        stage=STAGE,
        executor=executor,
        workers=workers,
        chunksize=chunksize,
        scheduler=scheduler,
        hint="the DFOS e-mu skim reads NanoAOD electrons, muons, jets, MET, TkMET and SoftActivityJetHT",
    )
    table = columns_to_frame(out["columns"], files, COLUMNS)
    table = table.astype(_dtypes())
    cutflow = processor.cutflow.finalize(out["cutflow"])
    cutflow["selection"] = processor.selection.to_dict()
    return table, cutflow


def _dtypes() -> dict[str, Any]:
    types: dict[str, Any] = {c: np.float64 for c in COLUMNS}
    types.update(
        {"event": np.uint64, "l0_pdgId": np.int32, "l1_pdgId": np.int32, "njets": np.int32, "nbjets": np.int32}
    )
    return types
