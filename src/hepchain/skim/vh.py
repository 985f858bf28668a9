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

from ..detector.particles import pairs_within_event
from ..errors import ConfigError
from ..features.vh import four_momentum, invariant_mass
from .common import (
    Cutflow,
    SelectionConfig,
    chunk_columns,
    columns_to_frame,
    event_weights,
    first_two,
    flat_fields,
    run_processor,
)

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



class DFOSProcessor(ProcessorABC):
    """coffea processor of the DFOS e-mu skim; ``process`` returns ``{"cutflow", "columns"}`` per chunk."""

    def __init__(self, selection: DFOSSelection | None = None) -> None:
        self.selection = selection or DFOSSelection()
        self.cutflow = Cutflow(CUTS)

    def select_electrons(self, events: Any) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
        """(electrons per event, flat fields, mask of those passing the object selection)."""
        s = self.selection
        counts, e = flat_fields(events.Electron, ("pt", "eta", "phi", "mass", "charge", "pdgId", "pfRelIso03_all",
                                             "cutBased", "dxy", "dz"))
        abs_eta = np.abs(e["eta"])
        mask = (
            (e["pt"] > s.electron_pt_min)
            & (abs_eta < s.electron_abs_eta_max)
            & ~((abs_eta > s.electron_crack_min) & (abs_eta < s.electron_crack_max))
            & (e["cutBased"] >= s.electron_cut_based_min)
            & (e["pfRelIso03_all"] < s.electron_iso_max)
            & (np.abs(e["dxy"]) < s.lepton_dxy_max)
            & (np.abs(e["dz"]) < s.lepton_dz_max)
        )
        return counts, e, mask

    def select_muons(self, events: Any) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
        """(muons per event, flat fields, mask of those passing the object selection)."""
        s = self.selection
        counts, m = flat_fields(events.Muon, ("pt", "eta", "phi", "mass", "charge", "pdgId", "pfRelIso04_all", "tightId",
                                         "dxy", "dz"))
        mask = (
            (m["pt"] > s.muon_pt_min)
            & (np.abs(m["eta"]) < s.muon_abs_eta_max)
            & (m["pfRelIso04_all"] < s.muon_iso_max)
            & (np.abs(m["dxy"]) < s.lepton_dxy_max)
            & (np.abs(m["dz"]) < s.lepton_dz_max)
        )
        if s.muon_tight_id:
            mask = mask & m["tightId"].astype(bool)
        return counts, m, mask

    def select_jets(self, events: Any, lep_evt: np.ndarray, lep_eta: np.ndarray, lep_phi: np.ndarray) -> dict:
        """Selected jets as flat float64 arrays with ``evt``, pT-ordered within each event, cleaned against leptons.

        ``lep_*``: the selected leptons (flat, grouped by event).
        """
        s = self.selection
        counts, j = flat_fields(events.Jet, ("pt", "eta", "phi", "mass", "btagDeepFlavB", "jetId"))
        evt = np.repeat(np.arange(len(counts)), counts)
        jet_id = j["jetId"].astype(np.int64)
        keep = (j["pt"] > s.jet_pt_min) & (np.abs(j["eta"]) < s.jet_abs_eta_max) & ((jet_id & s.jet_id_mask) == s.jet_id_mask)
        idx = np.flatnonzero(keep)
        # distance to the nearest selected lepton of the same event (inf without one)
        ij, il = pairs_within_event(evt[idx], lep_evt, len(counts))
        deta = j["eta"][idx][ij].astype(np.float64) - lep_eta[il]
        dphi = (j["phi"][idx][ij].astype(np.float64) - lep_phi[il] + np.pi) % (2 * np.pi) - np.pi
        min_dr = np.full(len(idx), np.inf)
        np.minimum.at(min_dr, ij, np.sqrt(deta**2 + dphi**2))
        idx = idx[min_dr > s.jet_lepton_dr_min]
        pt = j["pt"][idx].astype(np.float64)
        order = np.lexsort((-pt, evt[idx]))  # stable: equal pT keep their input order
        idx = idx[order]
        out = {f: j[f][idx].astype(np.float64) for f in ("pt", "eta", "phi", "mass")}
        out["btag"] = j["btagDeepFlavB"][idx].astype(np.float64)
        out["evt"] = evt[idx]
        return out

    def process(self, events: Any) -> dict[str, Any]:
        """Select one chunk: its cutflow entry and the columns of the events passing every cut."""
        s = self.selection
        n = len(events)
        weights = event_weights(events)
        n_ele_all, e, e_mask = self.select_electrons(events)
        n_mu_all, m, m_mask = self.select_muons(events)
        e_evt = np.repeat(np.arange(n), n_ele_all)[e_mask]
        m_evt = np.repeat(np.arange(n), n_mu_all)[m_mask]
        n_ele = np.bincount(e_evt, minlength=n)
        n_mu = np.bincount(m_evt, minlength=n)
        n_lep = n_ele + n_mu

        # selected leptons, electrons before muons within an event, then ordered by decreasing pT (stable)
        lep = {
            f: np.concatenate([e[f][e_mask].astype(dt), m[f][m_mask].astype(dt)])
            for f, dt in (("pt", np.float64), ("eta", np.float64), ("phi", np.float64), ("mass", np.float64),
                          ("charge", np.int32), ("pdgId", np.int32))
        }
        l_evt = np.concatenate([e_evt, m_evt])
        source = np.concatenate([np.zeros(len(e_evt), np.int8), np.ones(len(m_evt), np.int8)])
        order = np.lexsort((source, -lep["pt"], l_evt))
        l_evt = l_evt[order]
        lep = {f: v[order] for f, v in lep.items()}
        fills = {"pt": np.nan, "eta": np.nan, "phi": np.nan, "mass": np.nan, "charge": 0, "pdgId": 0}
        two = first_two(l_evt, lep, n, fills)
        with np.errstate(invalid="ignore"):
            m_ll = invariant_mass(
                four_momentum(two[0, "pt"], two[0, "eta"], two[0, "phi"], two[0, "mass"]),
                four_momentum(two[1, "pt"], two[1, "eta"], two[1, "phi"], two[1, "mass"]),
            )
        m_ll = np.where(n_lep >= 2, m_ll, 0.0)

        jets = self.select_jets(events, l_evt, lep["eta"], lep["phi"])
        n_jets = np.bincount(jets["evt"], minlength=n)
        n_bjets = np.bincount(jets["evt"], weights=jets["btag"] > s.btag_min, minlength=n).astype(np.int64)

        masks = {
            "two_leptons": n_lep == 2,
            "different_flavour": (n_ele == 1) & (n_mu == 1),
            "opposite_sign": (n_lep >= 2) & (two[0, "charge"] * two[1, "charge"] < 0),
            "lead_pt": (n_lep >= 1) & (np.nan_to_num(two[0, "pt"], nan=0.0) > s.lead_lepton_pt_min),
            "mll": (n_lep >= 2) & (m_ll > s.mll_min),
            "two_jets": n_jets >= s.n_jets_min,
            "zero_bjets": n_bjets == 0,
        }
        selection = self.cutflow.selection(masks)
        passed = np.asarray(selection.all(*CUTS), dtype=bool)

        jet_two = first_two(jets["evt"], {f: jets[f] for f in ("pt", "eta", "phi", "mass")}, n,
                             dict.fromkeys(("pt", "eta", "phi", "mass"), np.nan))
        columns: dict[str, np.ndarray] = {
            "event": ak.to_numpy(events.event[passed]).astype(np.uint64),
            "genWeight": weights[passed],
        }
        for i, name in ((0, "l0"), (1, "l1")):
            for f in ("pt", "eta", "phi", "mass"):
                columns[f"{name}_{f}"] = two[i, f][passed]
            columns[f"{name}_pdgId"] = two[i, "pdgId"][passed].astype(np.int32)
        for i, name in ((0, "j0"), (1, "j1")):
            for f in ("pt", "eta", "phi", "mass"):
                columns[f"{name}_{f}"] = jet_two[i, f][passed]
        columns["njets"] = n_jets[passed].astype(np.int32)
        columns["nbjets"] = n_bjets[passed].astype(np.int32)
        columns["sum_jet_px"] = np.bincount(jets["evt"], weights=jets["pt"] * np.cos(jets["phi"]), minlength=n)[passed]
        columns["sum_jet_py"] = np.bincount(jets["evt"], weights=jets["pt"] * np.sin(jets["phi"]), minlength=n)[passed]
        columns["sum_jet_pt"] = np.bincount(jets["evt"], weights=jets["pt"], minlength=n)[passed]
        met, tkmet = events.MET, events.TkMET
        columns["met_pt"] = ak.to_numpy(met.pt).astype(np.float64)[passed]
        columns["met_phi"] = ak.to_numpy(met.phi).astype(np.float64)[passed]
        columns["met_sumEt"] = ak.to_numpy(met.sumEt).astype(np.float64)[passed]
        columns["met_significance"] = ak.to_numpy(met.significance).astype(np.float64)[passed]
        columns["tkmet_pt"] = ak.to_numpy(tkmet.pt).astype(np.float64)[passed]
        columns["tkmet_phi"] = ak.to_numpy(tkmet.phi).astype(np.float64)[passed]
        columns["soft_ht"] = ak.to_numpy(events.SoftActivityJetHT).astype(np.float64)[passed]

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
